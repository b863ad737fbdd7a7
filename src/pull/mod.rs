//! The pull phase: brings one source folder's new messages and flag changes into staging. It opens the
//! folder read-only (EXAMINE), so the source is never changed; it asks STATUS first so an unchanged
//! folder costs one round trip; it stages bodies in `CHUNK_SIZE` slices, fetching small messages many
//! to a command (pipelined) and large ones in partial ranges, so memory never grows with message or
//! folder size. A UIDVALIDITY change re-matches already copied messages by content instead of copying
//! them again.
//!
//! No write transaction here stays open while the network is awaited: what a listing or a body fetch
//! receives is gathered in a bounded batch in memory (`ListingBatch`, `BodyBatch`) and written in one
//! short transaction when the batch fills or the answer ends. A body counts as staged only when its
//! hash is written, with its last chunk; a body cut short leaves chunks without a hash, which the next
//! attempt deletes before it starts over. The queries and writes themselves are `store::staging`'s.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::fault;
use crate::filters::MessageFilter;
use crate::imap::{FetchItem, FolderStatus, Session};
use crate::pipe::{Flow, FolderPipe, Pipe};
use crate::store::{ListedMessage, Store, Tx};

mod bodies;

use bodies::*;

/// Messages up to this size are fetched whole, many per command; larger ones in `SLICE` ranges. Bodies
/// stream into the spool either way (a chunk at a time, recorded by a `BodyBatch`), so memory does
/// not depend on these; they bound what has to be held for a server that names the UID only after the
/// body.
const WHOLE_LIMIT: u64 = 64 * 1024;
/// Partial-fetch range for larger messages. A round of `SLICE_PIPELINE` slices waits for its last answer
/// before the next is asked for, so a round must carry several round trips' worth of the line: with 64
/// KiB slices (512 KiB a round) an account fetched its large messages at about 6 MB/s over the bench's
/// office line (40 ms round trips), and most of real mail's bytes are in such messages; 2 MiB rounds
/// took the compressed office migration from 21.0 to 17.8-18.6 s, and cost nothing on loopback.
const SLICE: u32 = 256 * 1024;
/// Partial fetches in flight at once (of one message or several). Sixteen (4 MiB rounds) measured no
/// faster than eight, and doubles what a server answering out of order can make us hold.
const SLICE_PIPELINE: usize = 8;
/// Rounds of partial fetches started over (see `SliceRound::originless`) before the folder waits for
/// the next pass.
const SLICE_RESTARTS: u32 = 3;
/// A batch of whole-message fetches: at most this many bytes and messages per command.
const BATCH_BYTES: u64 = 1024 * 1024;
const BATCH_COUNT: usize = 200;
/// Commands in flight at once, so the server never waits for us between batches.
const PIPELINE: usize = 4;

/// A source folder as stored (the name `sync` knows it by).
pub use crate::store::SourceFolderRow as FolderRow;

#[derive(Debug, Default, Clone)]
pub struct PullStats {
    pub staged: u64,
    pub staged_bytes: u64,
    pub flag_changes: u64,
    pub vanished: u64,
    pub new_mail: bool,
    /// Folders read under a new UIDVALIDITY this pass (and the new value), for mirroring to find what
    /// the re-match left over.
    pub renewed: Vec<(i64, u32)>,
}

impl PullStats {
    /// Adds what another reader of the same account's pass did.
    pub fn absorb(&mut self, other: PullStats) {
        self.staged += other.staged;
        self.staged_bytes += other.staged_bytes;
        self.flag_changes += other.flag_changes;
        self.vanished += other.vanished;
        self.new_mail |= other.new_mail;
        self.renewed.extend(other.renewed);
    }
}

/// The account's folders a pass pulls.
pub fn folder_rows(store: &Store, account_id: i64) -> Result<Vec<FolderRow>> {
    store.source_folders_to_pull(account_id)
}

fn flags_text(flags: &[String]) -> String {
    let mut f: Vec<&str> = flags.iter().map(String::as_str).filter(|f| !f.eq_ignore_ascii_case("\\Recent")).collect();
    f.sort_unstable();
    f.dedup();
    f.join(" ")
}

/// Pulls one folder. Returns quickly when STATUS (`known_status`, or asked here) shows nothing changed.
#[allow(clippy::too_many_arguments)]
pub async fn pull_folder(
    store: &Store,
    account_id: i64,
    session: &mut Session,
    folder: &FolderRow,
    condstore: bool,
    known_status: Option<FolderStatus>,
    pipe: &Pipe,
    filter: &MessageFilter,
    stats: &mut PullStats,
) -> Result<()> {
    // The folder's STATUS, asked now unless the pass asked for every folder's at once.
    let status = match known_status {
        Some(status) => status,
        None => session.status(&folder.wire_name, condstore).await?,
    };
    let unstaged = store.unstaged_count(folder.id)?;
    let unchanged = status.uidvalidity.is_some()
        && status.uidvalidity == folder.uidvalidity
        && status.uidnext == folder.uidnext
        && condstore
        && status.highest_modseq.is_some()
        && status.highest_modseq == folder.highest_modseq
        && unstaged == 0;
    if unchanged {
        // A pass that died between staging and merging after a UIDVALIDITY change finishes the merge
        // here, before push could append the new-UID rows again.
        if let Some(v) = status.uidvalidity {
            store.merge_uidvalidity_orphans(folder.id, v)?;
        }
        return Ok(());
    }
    let selected = session.select(&folder.wire_name, true, condstore).await?;
    let Some(uidvalidity) = selected.uidvalidity else {
        anyhow::bail!("{}: folder {} has no UIDVALIDITY; it cannot be copied safely", session.label(), folder.name);
    };
    let mut last_uid = folder.last_uid;
    let mut known_modseq = folder.highest_modseq;
    if folder.uidvalidity.is_some_and(|v| v != uidvalidity) {
        log::warn!(
            "{}: folder {} changed UIDVALIDITY ({:?} -> {uidvalidity}); re-matching its messages by content",
            session.label(),
            folder.name,
            folder.uidvalidity
        );
        last_uid = 0;
        known_modseq = None;
    }

    // 1. Metadata of messages not seen before, written in batches of `LISTING_ROWS_PER_WRITE` as it
    // arrives (memory stays flat however big the folder). Unsolicited FETCH answers (flag updates without SIZE/INTERNALDATE) are not new mail.
    let next_uid = last_uid.checked_add(1);
    if let (Some(next_uid), true) = (next_uid, selected.exists > 0 && selected.uidnext.is_none_or(|next| next > last_uid.saturating_add(1)))
    {
        let mut items = vec![FetchItem::Uid, FetchItem::Flags, FetchItem::InternalDate, FetchItem::Size];
        if condstore {
            items.push(FetchItem::ModSeq);
        }
        let known_folder = folder.uidvalidity == Some(uidvalidity);
        // After a UIDVALIDITY change the copies already on the target come back under new UIDs: the
        // filter leaves out none that may be one of them (they are paired by their bytes).
        let spared;
        let filter = if folder.uidvalidity.is_some() && !known_folder && !filter.is_empty() {
            let mut wider = filter.clone();
            wider.spared_sizes.extend(store.stale_copy_sizes(folder.id, uidvalidity)?);
            spared = wider;
            &spared
        } else {
            filter
        };
        let mut new_count = 0u64;
        let mut highest = last_uid;
        let mut rows = ListingBatch::new(|tx: &Tx<'_>, row: &ListedMessage| {
            tx.insert_listed_message(account_id, folder.id, &folder.name, uidvalidity, row)
        });
        // `N:*` also matches the highest UID when N is beyond it, so filter again here.
        session
            .uid_fetch(&[format!("{next_uid}:*")], &items, None, &mut |meta| {
                if meta.uid <= last_uid {
                    return Ok(());
                }
                let Some(size) = meta.size else { return Ok(()) };
                new_count += 1;
                highest = highest.max(meta.uid);
                let left_out = filter.leaves_out(u64::from(size), meta.internal_date.as_deref());
                let row = ListedMessage {
                    uid: meta.uid,
                    size,
                    flags: flags_text(&meta.flags),
                    internal_date: meta.internal_date,
                    modseq: meta.modseq.map(|m| m as i64),
                    left_out,
                };
                rows.push(store, row)
            })
            .await?;
        last_uid = highest;
        // The last rows and the folder's new `last_uid` together: the listing counts as done only now.
        rows.write(store, |tx| tx.set_listed_up_to(folder.id, uidvalidity, last_uid))?;
        // Mail counts as "new on the old server" only in a folder an earlier pass already read: the
        // first pass finds everything, which says nothing about whether the mailbox is still in use.
        if new_count > 0 && known_folder {
            stats.new_mail = true;
        }
        fault::point("pull: new messages listed");
    }

    // 2. Flag changes on messages already known (CHANGEDSINCE when the server has mod-sequences).
    if folder.last_uid > 0 && folder.uidvalidity == Some(uidvalidity) {
        let since = if condstore { known_modseq } else { None };
        if !condstore || since.is_some() {
            let mut changes =
                ListingBatch::new(|tx: &Tx<'_>, (uid, flags): &(u32, String)| tx.set_source_flags(folder.id, uidvalidity, *uid, flags));
            session
                .uid_fetch(&[format!("1:{}", folder.last_uid)], &[FetchItem::Uid, FetchItem::Flags], since, &mut |meta| {
                    changes.push(store, (meta.uid, flags_text(&meta.flags)))
                })
                .await?;
            changes.flush(store)?;
            stats.flag_changes += changes.changed;
        }
    }

    // 3. Bodies of everything not yet staged, appended by the writer as they arrive unless the
    // folder's rows must first be matched across a UIDVALIDITY change (at the end, below).
    if !store.has_uidvalidity_orphans(folder.id, uidvalidity)? {
        pipe.set_flow(folder.id, Flow::Streaming);
    }
    stage_bodies(store, session, account_id, &folder.name, folder.id, uidvalidity, pipe, stats).await?;
    store.merge_uidvalidity_orphans(folder.id, uidvalidity)?;

    store.write(|tx| tx.record_folder_pulled(folder.id, uidvalidity, selected.uidnext, selected.highest_modseq, last_uid))?;
    if folder.uidvalidity.is_some_and(|v| v != uidvalidity) {
        stats.renewed.push((folder.id, uidvalidity));
    }
    Ok(())
}

/// A folder's listing (new messages' metadata, or everyone's flags) is gathered in memory this many
/// rows at a time, and each such batch is written in one short transaction: no transaction stays open
/// while the listing waits for the network, so a big folder over a slow line (or a source that stops
/// answering half-way) keeps no other account and not the web page from writing. A row is a UID, a
/// size, a date and its flags (about 150 bytes), so a batch is some 19 KiB per listing account (every
/// account lists at once, so this is per account), and a 300,000-message folder costs 2,400 commits. What a cut listing wrote is harmless: rows are inserted
/// with ON CONFLICT DO NOTHING and flags are set, and `last_uid` and the mod-sequence move only when
/// it completes.
const LISTING_ROWS_PER_WRITE: usize = 125;

/// A listing's rows not yet written: `write_row` writes one (returning the rows it changed), at most
/// `LISTING_ROWS_PER_WRITE` of them (fewer under POSTFLYTT_BATCH, so the crash tests cut between
/// writes) in one short transaction.
struct ListingBatch<T, F: FnMut(&Tx<'_>, &T) -> Result<usize>> {
    rows: Vec<T>,
    every: usize,
    write_row: F,
    /// Rows changed by all writes so far.
    changed: u64,
}

impl<T, F: FnMut(&Tx<'_>, &T) -> Result<usize>> ListingBatch<T, F> {
    fn new(write_row: F) -> ListingBatch<T, F> {
        ListingBatch { rows: Vec::new(), every: crate::fault::batch_cap(LISTING_ROWS_PER_WRITE), write_row, changed: 0 }
    }

    /// Adds a row; a full batch is written at once.
    fn push(&mut self, store: &Store, row: T) -> Result<()> {
        self.rows.push(row);
        if self.rows.len() >= self.every {
            self.flush(store)?;
        }
        Ok(())
    }

    /// Writes the rows gathered so far, if any.
    fn flush(&mut self, store: &Store) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.write(store, |_| Ok(()))
    }

    /// Writes the rows gathered so far and then `also`, in one short transaction (rolled back if any
    /// of it fails).
    fn write(&mut self, store: &Store, also: impl FnOnce(&Tx<'_>) -> Result<()>) -> Result<()> {
        // A listing lost in a power cut is listed again: no need to wait for the disk.
        let changed = store.write_unsynced(|tx| {
            let mut changed = 0;
            for row in self.rows.drain(..) {
                changed += (self.write_row)(tx, &row)? as u64;
            }
            also(tx)?;
            Ok(changed)
        })?;
        self.changed += changed;
        Ok(())
    }
}

/// A compact UID set ("1:5,9,12:13") for ascending UIDs.
pub fn uid_set(uids: impl IntoIterator<Item = u32>) -> String {
    let mut out = String::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |out: &mut String, (a, b): (u32, u32)| {
        if !out.is_empty() {
            out.push(',');
        }
        if a == b {
            out.push_str(&a.to_string());
        } else {
            out.push_str(&format!("{a}:{b}"));
        }
    };
    for uid in uids {
        run = match run {
            Some((a, b)) if uid == b + 1 => Some((a, uid)),
            Some(r) => {
                flush(&mut out, r);
                Some((uid, uid))
            }
            None => Some((uid, uid)),
        };
    }
    if let Some(r) = run {
        flush(&mut out, r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CHUNK_SIZE, UnstagedMessage};
    use sha2::{Digest, Sha256};

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set([1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set([4]), "4");
        assert_eq!(uid_set(Vec::<u32>::new()), "");
    }

    /// A scripted server's answer to the partial fetch of UID 7 at `offset`, naming its origin
    /// (`BODY[]<offset>`) or leaving it out (`BODY[]`) as some servers do.
    fn slice_answer(body: &[u8], offset: usize, with_origin: bool) -> Vec<u8> {
        let end = (offset + SLICE as usize).min(body.len());
        let section = if with_origin { format!("BODY[]<{offset}>") } else { "BODY[]".to_string() };
        let mut answer = format!("* 1 FETCH (UID 7 {section} {{{}}}\r\n", end - offset).into_bytes();
        answer.extend_from_slice(&body[offset..end]);
        answer.extend_from_slice(b")\r\n");
        answer
    }

    /// Stages one large message in slices (not as a suspect), into a pipe nobody reads.
    async fn stage_large_alone(store: &Store, session: &mut Session, pending: &UnstagedMessage, stats: &mut PullStats) {
        let pipe = Pipe::new(u64::MAX);
        stage_large(store, session, 1, "INBOX", &[pending], false, FolderPipe { pipe: &pipe, folder_id: 1 }, stats).await.unwrap();
    }

    fn staged(store: &Store, id: i64) -> (Vec<u8>, Option<Vec<u8>>) {
        store.staged_copy(id)
    }

    /// A body is written in short transactions as its batch fills, but counts as staged only when the
    /// batch holding its end is written: cut short after a write, it has chunks and no hash; fetched
    /// again, it starts over; and a body staged already that starts over (a repeat) loses its hash
    /// with its first new write, so a cut then never leaves a hash over half the bytes.
    #[test]
    fn a_body_written_in_batches_counts_only_when_whole() {
        let dir = std::env::temp_dir().join(format!("pf-pull-batches-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let id = store.staging_fixture(&[(7, 0)])[0];
        let body: Vec<u8> = (0..3 * BODY_BATCH_BYTES / 2).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let feed = |batch: &mut BodyBatch, writer: &mut BodyWriter, bytes: &[u8]| {
            for piece in bytes.chunks(5000) {
                writer.write(batch, piece).unwrap();
            }
        };

        // Cut short after more than a batch: some chunks, no hash.
        let mut batch = BodyBatch::new(&store);
        let mut writer = BodyWriter::start(id, false);
        feed(&mut batch, &mut writer, &body[..BODY_BATCH_BYTES + 10_000]);
        drop(batch);
        let (chunks, hash) = staged(&store, id);
        assert!(!chunks.is_empty() && hash.is_none(), "{} bytes, hash {hash:?}", chunks.len());

        // Fetched again: starts over, and is staged once whole.
        let mut batch = BodyBatch::new(&store);
        let mut writer = BodyWriter::start(id, false);
        feed(&mut batch, &mut writer, &body);
        assert_eq!(writer.finish(&mut batch).unwrap(), body.len() as u64);
        assert!(staged(&store, id).1.is_none(), "staged before the batch with its end was written");
        batch.write().unwrap();
        let (chunks, hash) = staged(&store, id);
        assert!(chunks == body);
        assert_eq!(hash.as_deref(), Some(Sha256::digest(&body).as_slice()));

        // A repeat cut short after its first write: not staged, so it is fetched again.
        let mut batch = BodyBatch::new(&store);
        let mut writer = BodyWriter::start(id, false);
        feed(&mut batch, &mut writer, &body[..BODY_BATCH_BYTES + 10_000]);
        drop(batch);
        assert!(staged(&store, id).1.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The bytes go to the spool before the batch that records them commits. A message that starts
    /// over while a committed row still claims its earlier copy must leave that copy alone until the
    /// start-over commits: its new bytes, and another message's, go elsewhere; after the commit the
    /// row claims the new copy, and the place of the old one is given back.
    #[test]
    fn a_message_started_over_leaves_its_claimed_copy_alone_until_the_restart_commits() {
        let (dir, store, ids) = store_with_rows("set-aside", &[(7, 0), (8, 0)]);
        let (a, b) = (ids[0], ids[1]);
        // Whole chunks, so all of it is written (a writer keeps a shorter tail until the message ends).
        let first: Vec<u8> = (0..3 * crate::store::CHUNK_SIZE).map(|i| b'a' + (i % 26) as u8).collect();
        let mut batch = BodyBatch::new(&store);
        let mut writer = BodyWriter::start(a, false);
        writer.write(&mut batch, &first).unwrap();
        batch.write().unwrap();
        let (held, _) = staged(&store, a);
        assert!(held == first, "the row claims the first copy, unfinished: {} of {} bytes", held.len(), first.len());

        // Fetched again: new bytes for A and B written, nothing committed yet.
        let again: Vec<u8> = (0..70_000).map(|i| b'A' + (i % 26) as u8).collect();
        let other: Vec<u8> = vec![b'#'; 90_000];
        let mut batch = BodyBatch::new(&store);
        let mut writer = BodyWriter::start(a, false);
        writer.write(&mut batch, &again).unwrap();
        let mut writer_b = BodyWriter::start(b, false);
        writer_b.write(&mut batch, &other).unwrap();
        assert!(staged(&store, a).0 == first, "the claimed copy was overwritten before the restart committed");

        // Committed: A claims its new copy (no hash yet), and its end and B's come whole.
        assert_eq!(writer.finish(&mut batch).unwrap(), again.len() as u64);
        assert_eq!(writer_b.finish(&mut batch).unwrap(), other.len() as u64);
        batch.write().unwrap();
        assert_eq!(staged(&store, a), (again.clone(), Some(Sha256::digest(&again).to_vec())));
        assert_eq!(staged(&store, b), (other.clone(), Some(Sha256::digest(&other).to_vec())));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store in a fresh directory with one account and its INBOX, and a message row per (uid, size).
    fn store_with_rows(name: &str, rows: &[(u32, usize)]) -> (std::path::PathBuf, Store, Vec<i64>) {
        let dir = std::env::temp_dir().join(format!("pf-pull-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        let rows: Vec<(u32, i64)> = rows.iter().map(|&(uid, size)| (uid, size as i64)).collect();
        let ids = store.staging_fixture(&rows);
        (dir, store, ids)
    }

    fn row_state(store: &Store, id: i64) -> (String, Option<Vec<u8>>, i64) {
        let (state, hash, chunks) = store.staged_state(id);
        (state.as_str().to_string(), hash, chunks)
    }

    /// A fetch that ends in a tagged NO after a correctly framed body: the body is kept only when it has
    /// the size the listing gave. A damaged one (shorter here) is not copied: the message is refused
    /// with the server's words, as when nothing came, and keeps no bytes. A scripted server, because
    /// Dovecot never sends a body and then NO.
    #[test]
    fn a_body_before_a_no_is_kept_only_with_its_listed_size() {
        use crate::imap::body_fetch::tests::{Pace, connect, run, scripted_server};
        let (dir, store, ids) = store_with_rows("no-after-body", &[(5, 10), (6, 8)]);
        let steps = vec![
            (1, b"* 1 FETCH (UID 5 BODY[] {7}\r\nbroken )\r\nP1 NO [UNAVAILABLE] Message damaged\r\n".to_vec()),
            (1, b"* 2 FETCH (UID 6 BODY[] {8}\r\nwhole ok)\r\nP2 NO [UNAVAILABLE] Something else failed\r\n".to_vec()),
        ];
        let (port, server) = scripted_server(steps, Pace::Whole);
        let pending = [
            UnstagedMessage { id: ids[0], uid: 5, size: 10, fetch_failures: 0 },
            UnstagedMessage { id: ids[1], uid: 6, size: 8, fetch_failures: 0 },
        ];
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            let group = [pending.iter().collect::<Vec<_>>()];
            stage_one_by_one(&store, &mut session, 1, "INBOX", &group, &mut stats).await.unwrap();
        });
        let (state, hash, chunks) = row_state(&store, ids[0]);
        assert_eq!((state.as_str(), hash, chunks), ("refused", None, 0), "the damaged body is not staged");
        let says = store.skip_server_says(ids[0]);
        assert!(says.contains("Message damaged"), "{says}");
        let (state, hash, _) = row_state(&store, ids[1]);
        assert_eq!(state, "pending");
        assert_eq!(hash.as_deref(), Some(Sha256::digest(b"whole ok").as_slice()), "a body of its listed size is kept");
        assert_eq!(stats.staged, 1);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A body handed over in one large piece (a body held until its UID came, held slices that line up)
    /// is committed as the batch fills, chunk by chunk, not once the whole piece is written, so the
    /// rows say what staging holds while it arrives.
    #[test]
    fn a_large_piece_never_takes_the_batch_past_its_bound() {
        let (dir, store, ids) = store_with_rows("large-piece", &[(7, 0)]);
        let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let mut batch = BodyBatch::new(&store);
        let mut writer = BodyWriter::start(ids[0], false);
        writer.write(&mut batch, &body).unwrap();
        assert!(batch.bytes < BODY_BATCH_BYTES + CHUNK_SIZE + 2 * BODY_WRITE_OVERHEAD, "{} bytes queued", batch.bytes);
        assert_eq!(writer.finish(&mut batch).unwrap(), body.len() as u64);
        batch.write().unwrap();
        assert!(staged(&store, ids[0]).0 == body);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Quirk `partial_answer_without_origin` (answers `BODY[]` to a partial fetch, as some servers do)
    /// with a throttled slice in the middle of a round: the answer to the third slice took the first
    /// slice's open place, and the repeats after the wait the others'. The round starts over from
    /// the first byte instead. A scripted server, because Dovecot names the origin and never throttles.
    #[test]
    fn originless_repeats_after_a_throttled_slice_start_the_message_over() {
        use crate::imap::body_fetch::tests::{Pace, connect, run, scripted_server};
        let size = 2 * SLICE as usize + 18_928;
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let slice = |offset: usize| slice_answer(&body, offset, false);
        let mut first = slice(0);
        first.extend_from_slice(b"P1 OK done\r\nP2 NO Request is throttled. Suggested Backoff Time: 100 milliseconds\r\n");
        first.extend_from_slice(&slice(2 * SLICE as usize));
        first.extend_from_slice(b"P3 OK done\r\n");
        let whole_round = |tags: [u32; 3]| {
            let mut round = Vec::new();
            for (tag, offset) in tags.into_iter().zip([0, SLICE as usize, 2 * SLICE as usize]) {
                round.extend_from_slice(&slice(offset));
                round.extend_from_slice(format!("P{tag} OK done\r\n").as_bytes());
            }
            round
        };
        let steps = vec![(3, first), (3, whole_round([4, 5, 6])), (3, whole_round([7, 8, 9]))];
        let (port, server) = scripted_server(steps, Pace::Whole);
        let (dir, store, ids) = store_with_rows("originless", &[(7, size)]);
        let pending = UnstagedMessage { id: ids[0], uid: 7, size: size as u64, fetch_failures: 0 };
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            stage_large_alone(&store, &mut session, &pending, &mut stats).await;
        });
        let (chunks, hash) = staged(&store, ids[0]);
        assert!(chunks == body, "staged {} bytes, equal to the message: {}", chunks.len(), chunks == body);
        assert_eq!(hash.as_deref(), Some(Sha256::digest(&body).as_slice()));
        assert_eq!(server.join().expect("server").len(), 9, "the message was asked for again from its start");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A NIL answer for a large message after some of its slices came: the message is refused and
    /// keeps none of those bytes (they were written after the refusal, before).
    #[test]
    fn a_nil_slice_leaves_no_chunks_on_the_refused_row() {
        use crate::imap::body_fetch::tests::{Pace, connect, run, scripted_server};
        let size = 2 * SLICE as usize + 18_928;
        let (dir, store, ids) = store_with_rows("nil-slice", &[(7, size)]);
        let mut answer = format!("* 1 FETCH (UID 7 BODY[]<0> {{{}}}\r\n", SLICE).into_bytes();
        answer.resize(answer.len() + SLICE as usize, b'x');
        answer.extend_from_slice(format!(")\r\nP1 OK done\r\n* 1 FETCH (UID 7 BODY[]<{SLICE}> NIL)\r\nP2 OK done\r\n").as_bytes());
        answer.extend_from_slice(format!("* 1 FETCH (UID 7 BODY[]<{}> NIL)\r\nP3 OK done\r\n", 2 * SLICE).as_bytes());
        let (port, server) = scripted_server(vec![(3, answer)], Pace::Whole);
        let pending = UnstagedMessage { id: ids[0], uid: 7, size: size as u64, fetch_failures: 0 };
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            stage_large_alone(&store, &mut session, &pending, &mut stats).await;
        });
        assert_eq!(row_state(&store, ids[0]), ("refused".to_string(), None, 0));
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_are_sorted_without_recent() {
        let f = vec!["\\Seen".to_string(), "$Label1".into(), "\\Recent".into(), "\\Seen".into()];
        assert_eq!(flags_text(&f), "$Label1 \\Seen");
    }

    /// Whole bodies fetched pipelined, the second command throttled: the commands go again after the
    /// wait, and the server sends the first command's bodies a second time. The first copy of UID 5
    /// was committed already (UID 6's bytes filled the batch after it), and during the wait the writer
    /// took it (here: refused it, which releases its bytes as an APPEND's record does). The repeat
    /// must not stage it again, or it would pull the bytes from under an APPEND or bring back bytes
    /// the target already has (found by the pipe's cold review). A scripted server: Dovecot never throttles.
    #[test]
    fn a_whole_body_repeated_after_throttling_is_not_staged_again() {
        use crate::imap::body_fetch::tests::{Pace, connect, run, scripted_server};
        // Together more than a batch, so UID 5's mark is written with UID 6's first bytes.
        let size = BODY_BATCH_BYTES * 3 / 4;
        let five: Vec<u8> = (0..size).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let six: Vec<u8> = (0..size).map(|i| b'a' + (i * 11 % 26) as u8).collect();
        let seven = b"small one".to_vec();
        let answer = |uid: u32, body: &[u8]| {
            let mut a = format!("* {uid} FETCH (UID {uid} BODY[] {{{}}}\r\n", body.len()).into_bytes();
            a.extend_from_slice(body);
            a.extend_from_slice(b")\r\n");
            a
        };
        let mut first = [answer(5, &five), answer(6, &six)].concat();
        first.extend_from_slice(b"P1 OK done\r\nP2 NO Request is throttled. Suggested Backoff Time: 200 milliseconds\r\n");
        let mut again = [answer(5, &five), answer(6, &six)].concat();
        again.extend_from_slice(b"P3 OK done\r\n");
        again.extend_from_slice(&answer(7, &seven));
        again.extend_from_slice(b"P4 OK done\r\n");
        let (port, server) = scripted_server(vec![(2, first), (2, again)], Pace::Whole);
        let (dir, store, ids) = store_with_rows("whole-repeat", &[(5, five.len()), (6, six.len()), (7, seven.len())]);
        let wanted: std::collections::BTreeMap<u32, (i64, u64)> =
            [(5, (ids[0], five.len() as u64)), (6, (ids[1], six.len() as u64)), (7, (ids[2], seven.len() as u64))].into();
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            let fetch = fetch_whole(&store, &mut session, vec!["5:6".into(), "7".into()], &wanted, false, None, &mut stats);
            let writer = async {
                // Within the throttling wait: UID 5 is staged (its hash committed) and the writer takes it.
                smol::Timer::after(std::time::Duration::from_millis(100)).await;
                assert!(row_state(&store, ids[0]).1.is_some(), "UID 5 was not committed before the wait");
                store.write(|tx| tx.mark_refused(ids[0])).unwrap();
            };
            let ((fetched, _), ()) = smol::future::zip(async { fetch.await.unwrap() }, writer).await;
            fetched.unwrap();
        });
        let (state, hash, chunks) = row_state(&store, ids[0]);
        assert_eq!((state.as_str(), chunks), ("refused", 0), "the repeat staged UID 5 again");
        assert_eq!(hash.as_deref(), Some(Sha256::digest(&five).as_slice()));
        assert_eq!(staged(&store, ids[1]).0, six);
        assert_eq!(staged(&store, ids[2]).0, seven);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A throttled slice in the middle of a round: the commands are sent again, and the repeats of the
    /// slices that came the first time must not be taken for the one that did not (they were, before:
    /// bytes 0-65535 were stored a second time as 65536-131071 and the message counted as staged). A
    /// scripted server, because Dovecot never throttles.
    #[test]
    fn repeats_after_a_throttled_slice_go_nowhere() {
        use crate::imap::body_fetch::tests::{Pace, connect, run, scripted_server};
        let size = 2 * SLICE as usize + 18_928;
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let slice = |offset: usize| slice_answer(&body, offset, true);
        let mut first = slice(0);
        first.extend_from_slice(b"P1 OK done\r\nP2 NO Request is throttled. Suggested Backoff Time: 100 milliseconds\r\n");
        first.extend_from_slice(&slice(2 * SLICE as usize));
        first.extend_from_slice(b"P3 OK done\r\n");
        let mut again = Vec::new();
        for (tag, offset) in [(4, 0), (5, SLICE as usize), (6, 2 * SLICE as usize)] {
            again.extend_from_slice(&slice(offset));
            again.extend_from_slice(format!("P{tag} OK done\r\n").as_bytes());
        }
        let (port, server) = scripted_server(vec![(3, first), (3, again)], Pace::Whole);
        let dir = std::env::temp_dir().join(format!("pf-pull-throttle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        let id = store.staging_fixture(&[(7, size as i64)])[0];
        let pending = UnstagedMessage { id, uid: 7, size: size as u64, fetch_failures: 0 };
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            stage_large_alone(&store, &mut session, &pending, &mut stats).await;
        });
        let _ = server;
        let (staged, hash) = staged(&store, id);
        assert!(staged == body, "staged {} bytes, equal to the message: {}", staged.len(), staged == body);
        assert_eq!(hash.as_deref(), Some(Sha256::digest(&body).as_slice()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
