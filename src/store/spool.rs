//! Staged bodies on disk, beside the database: one file per message row in `DATA/spool/`, named by the
//! row's id. SQLite keeps the journal and every fact about a message (size, SHA-256, identity, and
//! `message.spool_bytes`, how many of its bytes the spool holds); the file holds only the bytes. So a
//! body is written once and read once, not written to the write-ahead log, copied again by the
//! checkpoint and read back page by page: measured in make bench, that was half of postflytt's CPU
//! time (see the commit that brought this in for the numbers of both).
//!
//! Crash rules. A body's bytes are written inside the transaction that counts them (`spool_bytes`, and
//! the hash with the last of them), so a committed row never claims bytes nobody wrote. The kernel may
//! still lose them in a power cut (staging does not wait for the disk), so whoever reads a body checks
//! it: the push checks the file's length before it journals an APPEND and the SHA-256 while it sends
//! it (`StagedBody`), and a damaged copy is fetched from the source again. A file is removed only once
//! the transaction that released it has committed (`Tx::release_spooled`); one left by a crash in
//! between, or by a row deleted with its folder, is an orphan that `Store::sweep_spool` removes before
//! the next pass.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{PushState, Store, Tx};

/// How much of a staged body the push reads at a time.
const READ_PIECE: usize = 64 * 1024;

/// The spool directory of one store, with the file its writes went to last kept open (a body arrives
/// in many batches).
pub(super) struct Spool {
    dir: PathBuf,
    writing: RefCell<Option<(i64, File)>>,
}

impl Spool {
    /// The spool of the data directory `data_dir`, created (owner only) if missing.
    pub(super) fn open(data_dir: &Path) -> Result<Spool> {
        let dir = data_dir.join("spool");
        if !dir.exists() {
            fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        Ok(Spool { dir, writing: RefCell::new(None) })
    }

    fn path(&self, id: i64) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Writes `data` at `offset` of message `id`'s file, creating it.
    pub(super) fn write_at(&self, id: i64, offset: u64, data: &[u8]) -> Result<()> {
        let mut writing = self.writing.borrow_mut();
        if writing.as_ref().is_none_or(|(open, _)| *open != id) {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(self.path(id))
                .with_context(|| format!("cannot write the staged copy of message {id} in {}", self.dir.display()))?;
            *writing = Some((id, file));
        }
        let Some((_, file)) = writing.as_ref() else { bail!("no spool file open") };
        file.write_all_at(data, offset).with_context(|| format!("cannot write the staged copy of message {id} in {}", self.dir.display()))
    }

    /// Removes message `id`'s file (none is fine).
    pub(super) fn remove(&self, id: i64) -> Result<()> {
        let mut writing = self.writing.borrow_mut();
        if writing.as_ref().is_some_and(|(open, _)| *open == id) {
            *writing = None;
        }
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(anyhow!(e).context(format!("cannot remove the staged copy of message {id} in {}", self.dir.display())))
            }
            _ => Ok(()),
        }
    }

    /// The length of message `id`'s file; None without one.
    pub(super) fn len(&self, id: i64) -> Option<u64> {
        fs::metadata(self.path(id)).ok().map(|m| m.len())
    }

    /// The first bytes of message `id`'s file, at most `limit`.
    pub(super) fn read_start(&self, id: i64, limit: usize) -> Result<Vec<u8>> {
        let mut start = Vec::new();
        match File::open(self.path(id)) {
            Ok(file) => {
                file.take(limit as u64).read_to_end(&mut start)?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(start)
    }

    /// The ids of the files the spool holds (names that are not ids are not ours and stay).
    pub(super) fn ids(&self) -> Result<Vec<i64>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).with_context(|| format!("cannot read {}", self.dir.display()))? {
            if let Some(id) = entry?.file_name().to_str().and_then(|name| name.parse::<i64>().ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Overwrites every file with zeros and removes it (the end of a migration): like the database's
    /// `secure_delete`, no mail stays readable in the spool's free blocks.
    pub(super) fn purge(&self) -> Result<()> {
        *self.writing.borrow_mut() = None;
        let zeros = vec![0u8; READ_PIECE];
        for id in self.ids()? {
            let path = self.path(id);
            if let Ok(file) = OpenOptions::new().write(true).open(&path) {
                let len = file.metadata()?.len();
                let mut offset = 0;
                while offset < len {
                    let n = (len - offset).min(zeros.len() as u64);
                    file.write_all_at(&zeros[..n as usize], offset)?;
                    offset += n;
                }
                file.sync_data()?;
            }
            self.remove(id)?;
        }
        Ok(())
    }
}

/// A staged body read back for an APPEND, a piece at a time, checked against what staging recorded:
/// its length before the first byte, its SHA-256 before the last piece is handed out. A damaged copy
/// (a power cut took its end, the disk changed it) fails before the target has the whole literal, so the
/// server never completes that APPEND; the caller then has the copy fetched again (`Tx::drop_damaged_body`).
pub struct StagedBody {
    id: i64,
    file: File,
    size: u64,
    offset: u64,
    hasher: Sha256,
    expected: Vec<u8>,
}

/// What `StagedBody` fails with when the staged copy is not the one recorded.
#[derive(Debug)]
pub struct DamagedBody {
    pub id: i64,
    pub what: String,
}

impl std::fmt::Display for DamagedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the staged copy of message {} is damaged ({}); it is fetched from the source again", self.id, self.what)
    }
}

impl std::error::Error for DamagedBody {}

impl StagedBody {
    /// The next piece of the body; empty once all of it was handed out.
    pub fn next_piece(&mut self) -> Result<Vec<u8>> {
        if self.offset >= self.size {
            return Ok(Vec::new());
        }
        let want = (self.size - self.offset).min(READ_PIECE as u64) as usize;
        let mut piece = vec![0u8; want];
        let mut got = 0;
        while got < want {
            let n = self.file.read_at(&mut piece[got..], self.offset + got as u64)?;
            if n == 0 {
                return Err(self.damaged(format!("it ends at {} of {} bytes", self.offset + got as u64, self.size)));
            }
            got += n;
        }
        self.hasher.update(&piece);
        self.offset += want as u64;
        if self.offset == self.size {
            let hash = std::mem::take(&mut self.hasher).finalize();
            if hash.as_slice() != self.expected.as_slice() {
                return Err(self.damaged("its SHA-256 is not the one recorded when it was staged".into()));
            }
        }
        Ok(piece)
    }

    fn damaged(&self, what: String) -> anyhow::Error {
        anyhow!(DamagedBody { id: self.id, what })
    }
}

impl Store {
    /// Message `id`'s staged body for reading, if the spool holds all `size` bytes of it; None when it
    /// does not (never staged, released, or cut short by a power cut: see `Tx::drop_damaged_body`).
    pub fn staged_body(&self, id: i64, size: u64) -> Result<Option<StagedBody>> {
        let expected: Option<(Option<Vec<u8>>, i64)> = self
            .conn
            .query_row("SELECT sha256, spool_bytes FROM message WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((Some(expected), spool_bytes)) = expected else { return Ok(None) };
        if size == 0 {
            // An empty message has no file.
            let file = File::open("/dev/null")?;
            return Ok(Some(StagedBody { id, file, size, offset: 0, hasher: Sha256::new(), expected }));
        }
        let file = match File::open(self.spool.path(id)) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if spool_bytes as u64 != size || file.metadata()?.len() != size {
            return Ok(None);
        }
        Ok(Some(StagedBody { id, file, size, offset: 0, hasher: Sha256::new(), expected }))
    }

    /// Bytes the spool holds, each file rounded up to whole 4 KiB blocks as the file system counts it.
    pub(super) fn spool_used_bytes(&self) -> Result<u64> {
        let used: i64 = self.conn.query_row(
            "SELECT coalesce(sum((spool_bytes + 4095) / 4096 * 4096), 0) FROM message WHERE spool_bytes > 0",
            [],
            |r| r.get(0),
        )?;
        Ok(used.max(0) as u64)
    }

    /// Before a pass: removes spool files no row holds (left by a crash between a release and its
    /// removal, or by rows deleted with their folder), and sends back to the source every row whose
    /// file is shorter than it claims (a power cut). Returns (files removed, rows sent back). Runs
    /// while no pass writes (the pass lock).
    pub fn sweep_spool(&self) -> Result<(u64, u64)> {
        let mut removed = 0;
        for id in self.spool.ids()? {
            let held: Option<i64> = self.conn.query_row("SELECT spool_bytes FROM message WHERE id = ?1", [id], |r| r.get(0)).optional()?;
            if held.unwrap_or(0) == 0 {
                self.spool.remove(id)?;
                removed += 1;
            }
        }
        let claimed: Vec<(i64, i64)> = {
            let mut stmt = self.conn.prepare("SELECT id, spool_bytes FROM message WHERE spool_bytes > 0")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let short: Vec<i64> =
            claimed.into_iter().filter(|&(id, bytes)| self.spool.len(id).is_none_or(|len| len < bytes as u64)).map(|(id, _)| id).collect();
        if !short.is_empty() {
            self.write(|tx| short.iter().try_for_each(|&id| tx.drop_damaged_body(id)))?;
        }
        Ok((removed, short.len() as u64))
    }
}

impl Tx<'_> {
    /// Writes `data` at `offset` of message `id`'s staged copy.
    pub(super) fn spool_write(&self, id: i64, offset: u64, data: &[u8]) -> Result<()> {
        self.spool.write_at(id, offset, data)
    }

    /// Message `id`'s staged copy starts over: its file goes now.
    pub(super) fn spool_restart(&self, id: i64) -> Result<()> {
        self.spool.remove(id)?;
        self.conn().prepare_cached("UPDATE message SET spool_bytes = 0 WHERE id = ?1 AND spool_bytes != 0")?.execute([id])?;
        Ok(())
    }

    /// Records that message `id`'s staged copy holds `bytes` bytes, checking the file does: a message
    /// counts as staged only with all its bytes on disk.
    pub(super) fn spool_count(&self, id: i64, bytes: u64) -> Result<()> {
        let on_disk = if bytes == 0 { 0 } else { self.spool.len(id).unwrap_or(0) };
        if on_disk < bytes {
            bail!("the staged copy of message {id} holds {on_disk} bytes, not the {bytes} written");
        }
        self.conn().prepare_cached("UPDATE message SET spool_bytes = ?2 WHERE id = ?1")?.execute(params![id, bytes as i64])?;
        Ok(())
    }

    /// Message `id` keeps no bytes in staging: counted as none now, its file removed once this
    /// transaction has committed (so a rollback never leaves a row without the bytes it claims).
    pub(super) fn release_spooled(&self, id: i64) -> Result<()> {
        self.conn().prepare_cached("UPDATE message SET spool_bytes = 0 WHERE id = ?1 AND spool_bytes != 0")?.execute([id])?;
        self.remove_after_commit.borrow_mut().push(id);
        Ok(())
    }

    /// Message `id`'s staged copy is damaged or gone (`StagedBody`, `Store::sweep_spool`): it is
    /// released, and a row still to be appended loses its hash, so the pull fetches it again; one
    /// already journalled keeps its hash, by which the look-up on the target finds a copy that did
    /// arrive (`requeue_unfound_appends` then sends it to the source for its bytes).
    pub fn drop_damaged_body(&self, id: i64) -> Result<()> {
        self.release_spooled(id)?;
        self.conn().execute("UPDATE message SET sha256 = NULL WHERE id = ?1 AND push_state = ?2", params![id, PushState::Pending])?;
        Ok(())
    }
}

/// The files waiting for their transaction to commit before they are removed.
pub(super) type RemoveAfterCommit = RefCell<Vec<i64>>;

impl Spool {
    /// Removes the files of a committed transaction's releases. A failure only leaves an orphan for the
    /// next sweep, so it is logged, not returned.
    pub(super) fn remove_released(&self, ids: Vec<i64>) {
        for id in ids {
            if let Err(e) = self.remove(id) {
                log::warn!("{e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BodyWrite;

    fn store(name: &str) -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!("postflytt-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        (Store::open(&dir).unwrap(), dir)
    }

    /// Stages `body` for row `id` in two batches, as the pull does.
    fn stage(store: &Store, id: i64, body: &[u8]) {
        let half = body.len() / 2;
        store
            .write(|tx| tx.write_bodies([BodyWrite::Restart(id), BodyWrite::Chunk { id, offset: 0, data: body[..half].to_vec() }]))
            .unwrap();
        let hash = Sha256::digest(body).to_vec();
        store
            .write(|tx| {
                tx.write_bodies([
                    BodyWrite::Chunk { id, offset: half as u64, data: body[half..].to_vec() },
                    BodyWrite::Staged { id, hash, size: body.len() as u64, identity: None },
                ])
            })
            .unwrap();
    }

    fn read_all(body: &mut StagedBody) -> Result<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let piece = body.next_piece()?;
            if piece.is_empty() {
                return Ok(all);
            }
            all.extend_from_slice(&piece);
        }
    }

    #[test]
    fn a_body_staged_in_batches_reads_back_whole_and_counts_against_the_limit() {
        let (store, dir) = store("whole");
        let ids = store.staging_fixture(&[(1, 200_000)]);
        let body: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let empty = store.staging_used_bytes().unwrap();
        stage(&store, ids[0], &body);
        assert_eq!(store.spool_used_bytes().unwrap(), 200_704, "whole 4 KiB blocks");
        assert!(store.staging_used_bytes().unwrap() >= empty + 200_000);
        let mut staged = store.staged_body(ids[0], 200_000).unwrap().expect("whole");
        assert_eq!(read_all(&mut staged).unwrap(), body);
        // Asked with another size (the row says otherwise), nothing is read.
        assert!(store.staged_body(ids[0], 199_999).unwrap().is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_copy_fails_before_its_last_piece_and_goes_back_to_the_source() {
        let (store, dir) = store("damaged");
        let ids = store.staging_fixture(&[(1, 150_000), (2, 150_000)]);
        let body = vec![b'x'; 150_000];
        stage(&store, ids[0], &body);
        stage(&store, ids[1], &body);
        // One byte changed on disk: the first pieces come, the last one does not.
        OpenOptions::new().write(true).open(dir.join("spool").join(ids[0].to_string())).unwrap().write_all_at(b"y", 140_000).unwrap();
        let mut staged = store.staged_body(ids[0], 150_000).unwrap().expect("the length is right");
        assert_eq!(staged.next_piece().unwrap().len(), READ_PIECE);
        assert_eq!(staged.next_piece().unwrap().len(), READ_PIECE);
        let e = staged.next_piece().unwrap_err();
        assert_eq!(e.downcast_ref::<DamagedBody>().map(|d| d.id), Some(ids[0]), "{e:#}");
        // Cut short (a power cut): not offered at all; the sweep sends it back.
        OpenOptions::new().write(true).open(dir.join("spool").join(ids[1].to_string())).unwrap().set_len(4096).unwrap();
        assert!(store.staged_body(ids[1], 150_000).unwrap().is_none());
        assert_eq!(store.sweep_spool().unwrap(), (0, 1));
        let (state, hash, spooled) = store.staged_state(ids[1]);
        assert_eq!((state, hash, spooled), (PushState::Pending, None, 0), "fetched again");
        assert!(!dir.join("spool").join(ids[1].to_string()).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_released_copy_leaves_only_once_its_transaction_commits_and_the_sweep_takes_orphans() {
        let (store, dir) = store("release");
        let ids = store.staging_fixture(&[(1, 5000), (2, 5000)]);
        stage(&store, ids[0], &[1; 5000]);
        stage(&store, ids[1], &[2; 5000]);
        let file = |id: i64| dir.join("spool").join(id.to_string());
        let failed: Result<()> = store.write(|tx| {
            tx.release_spooled(ids[0])?;
            bail!("the transaction fails after the release")
        });
        assert!(failed.is_err());
        assert!(file(ids[0]).exists() && store.staged_body(ids[0], 5000).unwrap().is_some(), "rolled back: the copy stays");
        store.write(|tx| tx.release_spooled(ids[0])).unwrap();
        assert!(!file(ids[0]).exists());
        assert_eq!(store.staged_state(ids[0]).2, 0);
        // A file no row holds (a crash between a commit and the removal) and a file not ours.
        fs::write(file(999), b"orphan").unwrap();
        fs::write(dir.join("spool").join("notes.txt"), b"not ours").unwrap();
        assert_eq!(store.sweep_spool().unwrap(), (1, 0));
        assert!(!file(999).exists() && file(ids[1]).exists() && dir.join("spool").join("notes.txt").exists());
        // The purge leaves no staged copy.
        store.purge().unwrap();
        assert!(!file(ids[1]).exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
