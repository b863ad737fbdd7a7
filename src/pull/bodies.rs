//! Staging the bodies of a folder's new messages: small ones fetched whole, many to a command and
//! pipelined; large ones in `SLICE` ranges, several in flight; each body streamed into a `BodyBatch`
//! and written in short transactions, counted staged only when its hash lands with its last chunk.
//! Also what a source does wrong with a body: a NIL, a hang-up on a message it cannot read (quirk
//! `dovecot_bye_on_fetch_failure`), partial answers without their origin.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::*;
use crate::failure::{Retry, Scope, StoppedHalfWay};
use crate::fault;
use crate::imap::{BodyRequest, BodySink, ImapError, Session};
use crate::store::{BodyWrite, CHUNK_SIZE, Store, Tx, UnstagedMessage};
use crate::stream_append::{FeedGuard, Streams};

/// Quirk `dovecot_bye_on_fetch_failure` (Dovecot; seen with a message file it cannot read): a message
/// the server cannot read is not refused with a tagged NO but with `* BYE FETCH failed: Internal
/// error occurred` and a closed connection, taking the rest of the batch with it (`body_fetch` makes it
/// `ImapError::HungUpOnMessage`). The messages of such a batch that had not arrived become suspects (`fetch_failures`); after the reconnect each suspect is
/// asked for alone, so the next hang-up names the message. One that makes the server hang up this many
/// times is recorded as skipped with the server's words, and the folder goes on without it.
pub(super) const FETCH_FAILURES_BEFORE_SKIP: i64 = 3;

/// What the operator reads above a hang-up on a message. The pass reconnects and goes on (see
/// `FETCH_FAILURES_BEFORE_SKIP`), outside the budget for ordinary lost connections, since each time a
/// suspect is narrowed down or skipped (`sync`, by the error's kind).
pub(super) const HUNG_UP_ON_A_MESSAGE: &str = "the old server hung up instead of sending a message";

/// The server's reason when the source hung up because it could not read a message (quirk
/// `dovecot_bye_on_fetch_failure`), not for a reason of its own (shutting down, a session limit), which
/// says nothing about any message.
pub(super) fn hung_up_on_a_message(e: &anyhow::Error) -> Option<String> {
    match crate::imap::kind_of(e) {
        Some(ImapError::HungUpOnMessage { reason, .. }) => Some(reason.clone()),
        _ => None,
    }
}

/// A message the source will not give: recorded as skipped with the server's words, so the folder
/// goes on without it and the operator sees it in the status and the report. What an earlier attempt
/// (or this one) left of its bytes goes: a refused row holds none.
pub(super) fn refuse(store: &Store, account_id: i64, folder_name: &str, id: i64, server_says: &str) -> Result<()> {
    store.write(|tx| tx.refuse_message(account_id, folder_name, id, server_says))
}

/// What a NIL body is recorded as.
pub(super) const NIL_BODY: &str = "the server answered NIL for the message's content";

/// Counts a hang-up against the rows of `ids` that have not arrived; a row alone (`alone`) that reaches
/// the limit is skipped with `server_says`.
pub(super) fn count_hang_up(store: &Store, account_id: i64, folder_name: &str, ids: &[i64], alone: bool, server_says: &str) -> Result<()> {
    store.write(|tx| {
        for &id in ids {
            let failures = tx.count_fetch_failure(id)?;
            if alone && failures.is_some_and(|f| f >= FETCH_FAILURES_BEFORE_SKIP) {
                tx.refuse_message(account_id, folder_name, id, server_says)?;
            }
        }
        Ok(())
    })
}

/// The fallback after a refused batch: each message alone; one the server will not give is recorded
/// as skipped with the server's words, and the rest is staged.
pub(super) async fn stage_one_by_one(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    group: &[Vec<&UnstagedMessage>],
    stats: &mut PullStats,
) -> Result<()> {
    let with_identity = crate::identity::wanted(store)?;
    for p in group.iter().flatten() {
        // The refused batch may have brought this one whole before it failed.
        if !still_unstaged(store, p.id)? {
            continue;
        }
        let ids = BTreeMap::from([(p.uid, (p.id, p.size))]);
        let (fetched, outcome) = fetch_whole(store, session, vec![p.uid.to_string()], &ids, with_identity, None, stats).await?;
        match fetched {
            Ok(()) if outcome.nil.contains(&p.id) => refuse(store, account_id, folder_name, p.id, NIL_BODY)?,
            Ok(()) if outcome.staged.contains(&p.id) => {}
            Ok(()) => {
                store.write(|tx| tx.forget_message(p.id))?;
                stats.vanished += 1;
            }
            Err(e) if let Some(reason) = hung_up_on_a_message(&e) => {
                count_hang_up(store, account_id, folder_name, &[p.id], true, &reason)?;
                return Err(e.context(HUNG_UP_ON_A_MESSAGE));
            }
            Err(e) if try_again_later(&e) => return Err(e),
            // It came whole (and is staged) before the server failed the command: nothing to refuse.
            Err(_) if outcome.staged.contains(&p.id) => {}
            Err(e) => refuse(store, account_id, folder_name, p.id, &format!("{e:#}"))?,
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn stage_bodies(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    folder_id: i64,
    uidvalidity: u32,
    pipe: &Pipe,
    stats: &mut PullStats,
) -> Result<()> {
    let with_identity = crate::identity::wanted(store)?;
    // The unstaged rows a window at a time in UID order, so memory does not grow with the folder. The
    // cursor moves past each window whatever became of its rows (some stay pending for the next pass).
    let mut after_uid: u32 = 0;
    loop {
        // Two full batches by count: enough to keep the pipeline busy with ordinary mail (a batch is
        // mostly cut by bytes, at 30 to 40 messages), small enough not to count per worker (and, with
        // the tests' small batches, many windows).
        let window = fault::batch_cap(BATCH_COUNT) * 2;
        let mut pending = store.unstaged_window(folder_id, uidvalidity, after_uid, window)?;
        // ... and at most the pipe's window in bytes (always one message), so staging stays near its limit.
        let mut bytes = 0;
        if let Some(cut) = pending.iter().position(|p| {
            bytes += p.size;
            bytes > pipe.window_bytes()
        }) {
            pending.truncate(cut.max(1));
        }
        // The staging limit: wait until the window fits, while the writer is draining staging.
        pipe.room_to_stage(store, pending.iter().map(|p| p.size).sum()).await?;
        // Held by the writer until the next pass: the rest stays unstaged (and is staged then).
        if pipe.stopped() || pipe.held(folder_id) {
            return Ok(());
        }
        let Some(last) = pending.last() else { return Ok(()) };
        after_uid = last.uid;
        let folder_pipe = FolderPipe { pipe, folder_id };
        stage_window(store, session, account_id, folder_name, &pending, with_identity, folder_pipe, stats).await?;
        folder_pipe.staged();
    }
}

/// Stages one window of unstaged rows: suspects alone, small messages whole and batched, large ones in
/// slices. The writer hears of what is staged after every pipelined group and every round of slices,
/// not only at the window's end: a window is up to 16 MiB, and over an office line the upload sat idle
/// for the first seconds of a migration while every account fetched its first window.
#[allow(clippy::too_many_arguments)]
pub(super) async fn stage_window(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    pending: &[UnstagedMessage],
    with_identity: bool,
    pipe: FolderPipe<'_>,
    stats: &mut PullStats,
) -> Result<()> {
    let (small, large): (Vec<&UnstagedMessage>, Vec<&UnstagedMessage>) = pending.iter().partition(|p| p.size <= WHOLE_LIMIT);
    let (suspects, small): (Vec<&UnstagedMessage>, Vec<&UnstagedMessage>) = small.into_iter().partition(|p| p.fetch_failures > 0);

    // Suspects of an earlier hang-up first, each alone, so a hang-up now names its message.
    for p in suspects {
        let group = [vec![p]];
        stage_one_by_one(store, session, account_id, folder_name, &group, stats).await?;
        fault::point("pull: bodies staged");
    }

    // Whole messages, batched and pipelined.
    let mut batches: Vec<Vec<&UnstagedMessage>> = Vec::new();
    let mut current: Vec<&UnstagedMessage> = Vec::new();
    let mut bytes = 0;
    for p in small {
        if !current.is_empty() && (bytes + p.size > BATCH_BYTES || current.len() >= fault::batch_cap(BATCH_COUNT)) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += p.size;
        current.push(p);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    for group in batches.chunks(PIPELINE) {
        let sets: Vec<String> = group.iter().map(|b| uid_set(b.iter().map(|p| p.uid))).collect();
        let ids: BTreeMap<u32, (i64, u64)> = group.iter().flatten().map(|p| (p.uid, (p.id, p.size))).collect();
        let (fetched, outcome) = fetch_whole(store, session, sets, &ids, with_identity, Some(pipe), stats).await?;
        match fetched {
            Ok(()) => {
                for &id in &outcome.nil {
                    refuse(store, account_id, folder_name, id, NIL_BODY)?;
                }
            }
            Err(e) if let Some(reason) = hung_up_on_a_message(&e) => {
                let missing: Vec<i64> = ids.values().map(|&(id, _)| id).collect();
                count_hang_up(store, account_id, folder_name, &missing, false, &reason)?;
                return Err(e.context(HUNG_UP_ON_A_MESSAGE));
            }
            Err(e) if try_again_later(&e) => return Err(e),
            Err(e) => {
                // The server refused the batch (a damaged message file, a server bug). Fetch its
                // messages one at a time so one unreadable message does not block its folder.
                log::warn!("{}: {e:#}; fetching that batch one message at a time", session.label());
                stage_one_by_one(store, session, account_id, folder_name, group, stats).await?;
                pipe.staged();
                continue;
            }
        }
        fault::point("pull: bodies staged");
        if outcome.staged.len() < ids.len() {
            mark_vanished(store, &ids, stats)?;
        }
        pipe.staged();
    }

    // Larger messages in partial ranges, several slices (of one or more messages) per round trip;
    // suspects of an earlier hang-up each alone first, so a hang-up names its message.
    let (large_suspects, large): (Vec<&UnstagedMessage>, Vec<&UnstagedMessage>) = large.into_iter().partition(|p| p.fetch_failures > 0);
    for p in large_suspects {
        stage_large(store, session, account_id, folder_name, &[p], true, pipe, stats).await?;
    }
    match stage_large(store, session, account_id, folder_name, &large, false, pipe, stats).await {
        Err(e) if !try_again_later(&e) => {
            // The source refused a round (a tagged NO): each message not yet staged alone, so the one
            // it will not give is found and skipped with its words, and the others still come.
            log::warn!("{}: {e:#}; staging those messages one at a time", session.label());
            for p in large {
                if !still_unstaged(store, p.id)? {
                    continue;
                }
                match stage_large(store, session, account_id, folder_name, &[p], true, pipe, stats).await {
                    Err(e) if try_again_later(&e) => return Err(e),
                    // Stopping half-way may pass; a message the server refuses is skipped.
                    Err(e) if crate::failure::policy(&e).1 != Retry::Never => log::warn!("{}: {e:#}", session.label()),
                    Err(e) => refuse(store, account_id, folder_name, p.id, &format!("{e:#}"))?,
                    Ok(()) => {}
                }
            }
            Ok(())
        }
        other => other,
    }
}

/// Which rows of a whole-body fetch were staged and which came back NIL.
#[derive(Default)]
pub(super) struct WholeOutcome {
    staged: BTreeSet<i64>,
    nil: BTreeSet<i64>,
}

/// Fetches the whole bodies of `ids` (UID to row and listed SIZE), the UID sets `sets` pipelined. The
/// bodies are gathered in a `BodyBatch` as they arrive and written in short transactions whenever it
/// fills, and once more when the fetch ends, however it ends: a body whose end came is whole and
/// hashed and is kept, one cut short has no hash and is fetched again. When the fetch fails (a tagged
/// NO, a hang-up), only the bodies that came with their listed size are kept: a server that sends a
/// damaged but correctly framed body and then says NO must not have it copied. The outer error is our
/// own database failing (never to be taken for the server refusing a message); the inner result is how
/// the fetch went.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_whole<'s>(
    store: &'s Store,
    session: &mut Session,
    sets: Vec<String>,
    ids: &BTreeMap<u32, (i64, u64)>,
    with_identity: bool,
    news: Option<FolderPipe<'s>>,
    stats: &mut PullStats,
) -> Result<(Result<()>, WholeOutcome)> {
    let requests: Vec<BodyRequest> = sets.into_iter().map(|uid_set| BodyRequest { uid_set, range: None }).collect();
    let _turn = crate::memory::staging_turn(session.beyond_lan()).await;
    let mut sink = WholeBodies {
        ids,
        with_identity,
        writing: None,
        batch: BodyBatch::telling(store, news),
        outcome: WholeOutcome::default(),
        unsure: BTreeMap::new(),
        counted: BTreeSet::new(),
        stats,
    };
    let fetched = session.uid_fetch_bodies(&requests, &mut sink).await;
    if fetched.is_ok() {
        // The server stood by every body it sent: one whose length is not the listed size is what the
        // message really is (some servers list sizes that are off).
        for (id, (mark, bytes)) in std::mem::take(&mut sink.unsure) {
            sink.batch.push(mark);
            sink.staged(id, bytes);
        }
    }
    // Otherwise the unsure ones stay without their hash: fetched again, or refused as before.
    sink.batch.write()?;
    Ok((fetched, sink.outcome))
}

/// Whether a failed fetch must end this pass for the folder rather than count against its messages:
/// a failure wider than a message (`failure::policy`: the connection is gone, the server kept asking
/// us to slow down, our own database failed). None of these says anything about the messages, which
/// come on the next pass; only a server refusing them gets them recorded as skipped.
pub(super) fn try_again_later(e: &anyhow::Error) -> bool {
    crate::failure::policy(e).0 != Scope::Message
}

/// Streams whole bodies into their rows, one at a time in the order they come.
pub(super) struct WholeBodies<'a> {
    ids: &'a BTreeMap<u32, (i64, u64)>,
    with_identity: bool,
    /// The body coming in, and its row's listed size.
    writing: Option<(BodyWriter, u64)>,
    batch: BodyBatch<'a>,
    /// Rows whose end came (written with the batch that holds it: every way out of `fetch_whole`
    /// writes the batch or fails as a whole), and rows the source answered NIL for.
    outcome: WholeOutcome,
    /// Staged marks of bodies whose length is not the listed size, by row: written only when the
    /// whole fetch ends OK.
    unsure: BTreeMap<i64, (BodyWrite, u64)>,
    /// Rows counted in the stats (a repeat after throttling is counted once).
    counted: BTreeSet<i64>,
    stats: &'a mut PullStats,
}

impl WholeBodies<'_> {
    fn staged(&mut self, id: i64, bytes: u64) {
        self.outcome.staged.insert(id);
        if self.counted.insert(id) {
            self.stats.staged += 1;
            self.stats.staged_bytes += bytes;
        }
    }
}

impl BodySink for WholeBodies<'_> {
    fn begin(&mut self, uid: u32, _origin: Option<u32>, _len: u32) -> Result<()> {
        self.writing = self.ids.get(&uid).and_then(|&(id, listed)| {
            // A repeat (commands sent again after throttling) of a body that came whole at its listed
            // size goes nowhere: that first copy may be committed already, and the writer may be
            // appending it or have sent it and released its bytes, so restaging it would pull the
            // bytes from under an APPEND or bring back bytes the target already has. One whose length
            // differed is only marked when the fetch ends, so its repeat replaces it.
            if self.outcome.staged.contains(&id) && !self.unsure.contains_key(&id) {
                return None;
            }
            self.unsure.remove(&id);
            self.outcome.staged.remove(&id);
            Some((BodyWriter::start(id, self.with_identity), listed))
        });
        Ok(())
    }

    fn bytes(&mut self, piece: &[u8]) -> Result<()> {
        if let Some((writer, _)) = &mut self.writing {
            writer.write(&mut self.batch, piece)?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if let Some((mut writer, listed)) = self.writing.take() {
            let (mark, bytes) = writer.finish_mark(&mut self.batch)?;
            if bytes == listed {
                self.batch.push(mark);
                self.batch.write_if_full()?;
                self.staged(writer.id, bytes);
            } else {
                self.unsure.insert(writer.id, (mark, bytes));
            }
        }
        Ok(())
    }

    fn nil(&mut self, uid: u32) -> Result<()> {
        if let Some(&(id, _)) = self.ids.get(&uid) {
            self.outcome.nil.insert(id);
        }
        Ok(())
    }
}

/// Bytes of bodies a staging worker writes to the spool between two commits of what they are (where
/// each message's bytes are, the hashes of those it completes), and at the end of a fetch or a round
/// of slices. The bytes go to the spool as they arrive (`Store::stage_bytes`), outside any
/// transaction, so a batch holds marks only and memory does not grow with it; no transaction stays
/// open while a body comes in, so a source that stalls half-way through a body holds up no other
/// account. When the bytes waited in the batch for its commit, 64 KiB measured best for memory; a
/// commit per 64 KiB was then a fifth of the full migration's CPU (commits, their write-ahead log
/// pages, the checkpoints), which 1 MiB cuts to a sixteenth.
pub(super) const BODY_BATCH_BYTES: usize = 1024 * 1024;

/// How long a staged message waits at most for its batch's commit, which tells the writer (`news`):
/// over the office line a reader fills 1 MiB in about half a second.
const STAGED_NEWS_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// What counts against `BODY_BATCH_BYTES` for a write besides its data (a row id, a statement).
pub(super) const BODY_WRITE_OVERHEAD: usize = 64;

/// The marks of what a staging worker wrote to the spool since its last commit, in the order they came:
/// a message started over, bytes written for a message, a message staged. A chunk that takes the batch
/// to `BODY_BATCH_BYTES` commits it at once, however large the piece a body arrives in (a body held
/// until its UID came is one piece of up to 8 MiB), so staging's use on the rows stays current.
pub(super) struct BodyBatch<'s> {
    store: &'s Store,
    writes: Vec<BodyWrite>,
    /// Bytes written since the last commit, and `BODY_WRITE_OVERHEAD` per mark.
    pub(super) bytes: usize,
    /// When the first message staged since the last commit was (`STAGED_NEWS_WAIT`).
    first_staged: Option<std::time::Instant>,
    /// Told when a write makes a message staged, so an idle writer starts on it then, not when the
    /// fetch ends (a pipelined group of whole bodies is up to 4 MiB: over the office line's shared
    /// download, every writer sat idle for the first second of the migration).
    news: Option<FolderPipe<'s>>,
}

impl<'s> BodyBatch<'s> {
    pub(super) fn new(store: &'s Store) -> BodyBatch<'s> {
        BodyBatch { store, writes: Vec::new(), bytes: 0, first_staged: None, news: None }
    }

    /// A batch whose writes tell the writer of each message they stage.
    pub(super) fn telling(store: &'s Store, news: Option<FolderPipe<'s>>) -> BodyBatch<'s> {
        BodyBatch { news, ..BodyBatch::new(store) }
    }

    /// Adds a mark (a staged message); never writes, so it may be used inside the caller's
    /// transaction (`finish_round`).
    fn push(&mut self, write: BodyWrite) {
        if matches!(write, BodyWrite::Staged { .. }) && self.first_staged.is_none() {
            self.first_staged = Some(std::time::Instant::now());
        }
        self.bytes += BODY_WRITE_OVERHEAD;
        self.writes.push(write);
    }

    /// Message `id` starts over: its copy so far is set aside now, before any new bytes of it are
    /// written, and released when the batch commits. Never writes (see `push`).
    fn restart(&mut self, id: i64) {
        self.store.restart_staging(id);
        self.push(BodyWrite::Restarted(id));
    }

    /// Writes a chunk of message `id` to the spool, for the batch to record; never commits (see `push`).
    fn push_chunk(&mut self, id: i64, offset: u64, data: &[u8]) -> Result<()> {
        self.store.stage_bytes(id, offset, data)?;
        if !matches!(self.writes.last(), Some(BodyWrite::Written(last)) if *last == id) {
            self.push(BodyWrite::Written(id));
        }
        self.bytes += data.len();
        Ok(())
    }

    /// Commits the batch once it holds `BODY_BATCH_BYTES`, or once a message it staged has waited
    /// `STAGED_NEWS_WAIT`.
    fn write_if_full(&mut self) -> Result<()> {
        if self.bytes >= BODY_BATCH_BYTES || self.first_staged.is_some_and(|at| at.elapsed() >= STAGED_NEWS_WAIT) {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the batch in one short transaction.
    pub(super) fn write(&mut self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let store = self.store;
        let stages = self.news.is_some() && self.writes.iter().any(|w| matches!(w, BodyWrite::Staged { .. }));
        // Bytes lost in a power cut are fetched again: no need to wait for the disk.
        store.write_unsynced(|tx| self.apply(tx))?;
        if let (true, Some(news)) = (stages, self.news) {
            news.staged();
        }
        Ok(())
    }

    /// Writes the batch inside the caller's transaction. A failure loses the batch with the
    /// transaction, and the fetch fails (our database).
    fn apply(&mut self, tx: &Tx<'_>) -> Result<()> {
        self.bytes = 0;
        self.first_staged = None;
        tx.write_bodies(self.writes.drain(..))
    }
}

/// Cuts one message's bytes into `CHUNK_SIZE` pieces for its spool file as they arrive (the last one of
/// each slice shorter), hashing them on the way, and hands them to a `BodyBatch`; keeps the first
/// `HEADER_PREFIX` bytes for its identity when the target needs one. A message counts as staged only
/// once the batch holding its `finish` is written: its hash goes in with its last chunk.
pub(super) struct BodyWriter {
    id: i64,
    /// Bytes handed to the batch so far: where the next chunk goes in the spool file.
    written: u64,
    hasher: Sha256,
    total: u64,
    /// Whether the `Restart` that clears an earlier attempt has gone into a batch (with the first
    /// bytes, so a message nothing comes for writes nothing).
    restarted: bool,
    /// Bytes not yet a whole chunk; released by `flush`, so a writer waiting between slices holds none.
    pending: Vec<u8>,
    prefix: Option<Vec<u8>>,
}

impl BodyWriter {
    /// Starts the message over: whatever an interrupted pass staged of it goes.
    pub(super) fn start(id: i64, with_identity: bool) -> BodyWriter {
        BodyWriter {
            id,
            written: 0,
            hasher: Sha256::new(),
            total: 0,
            restarted: false,
            pending: Vec::new(),
            prefix: with_identity.then(Vec::new),
        }
    }

    pub(super) fn write(&mut self, batch: &mut BodyBatch, mut piece: &[u8]) -> Result<()> {
        self.hasher.update(piece);
        self.total += piece.len() as u64;
        if let Some(prefix) = &mut self.prefix {
            let room = crate::identity::HEADER_PREFIX.saturating_sub(prefix.len());
            prefix.extend_from_slice(&piece[..room.min(piece.len())]);
        }
        while !piece.is_empty() {
            if self.pending.is_empty() && piece.len() >= CHUNK_SIZE {
                self.chunk(batch, &piece[..CHUNK_SIZE])?;
                piece = &piece[CHUNK_SIZE..];
                batch.write_if_full()?;
                continue;
            }
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(CHUNK_SIZE);
            }
            let take = (CHUNK_SIZE - self.pending.len()).min(piece.len());
            self.pending.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.pending.len() == CHUNK_SIZE {
                self.flush(batch)?;
                batch.write_if_full()?;
            }
        }
        Ok(())
    }

    /// Hands what is pending to the batch as a chunk of its own.
    fn flush(&mut self, batch: &mut BodyBatch) -> Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.chunk(batch, &pending)?;
        }
        Ok(())
    }

    fn restart(&mut self, batch: &mut BodyBatch) {
        if !self.restarted {
            batch.restart(self.id);
            self.restarted = true;
        }
    }

    fn chunk(&mut self, batch: &mut BodyBatch, data: &[u8]) -> Result<()> {
        self.restart(batch);
        let offset = self.written;
        self.written += data.len() as u64;
        batch.push_chunk(self.id, offset, data)
    }

    /// Hands over the rest and the mark that the message is staged: its hash, its true size, its
    /// identity. Returns the bytes staged.
    pub(super) fn finish(&mut self, batch: &mut BodyBatch) -> Result<u64> {
        let (mark, bytes) = self.finish_mark(batch)?;
        batch.push(mark);
        Ok(bytes)
    }

    /// Hands over the rest, and returns the mark that the message is staged (for the caller to hand
    /// over when it is sure of it) and the bytes staged.
    fn finish_mark(&mut self, batch: &mut BodyBatch) -> Result<(BodyWrite, u64)> {
        self.flush(batch)?;
        self.restart(batch);
        batch.store.end_arrival(self.id);
        let hash = std::mem::take(&mut self.hasher).finalize();
        // '' when looked at and nothing found; NULL when not looked at (see `identity::fill_staged`).
        let identity = self.prefix.take().map(|prefix| crate::identity::of_header(&prefix).unwrap_or_default());
        Ok((BodyWrite::Staged { id: self.id, hash: hash.to_vec(), size: self.total, identity }, self.total))
    }
}

/// Whether row `id` still waits for its bytes: not staged, and not refused (a NIL body) or gone.
pub(super) fn still_unstaged(store: &Store, id: i64) -> Result<bool> {
    store.still_unstaged(id)
}

/// Messages asked for but not answered were expunged on the source meanwhile: nothing to copy.
pub(super) fn mark_vanished(store: &Store, ids: &BTreeMap<u32, (i64, u64)>, stats: &mut PullStats) -> Result<()> {
    stats.vanished += store.write(|tx| {
        let mut vanished = 0;
        for (id, _) in ids.values() {
            // A row refused meanwhile (a NIL body) is known to be there, not gone.
            if tx.still_unstaged(*id)? {
                tx.forget_message(*id)?;
                vanished += 1;
            }
        }
        Ok(vanished)
    })?;
    Ok(())
}

/// Stages messages above `WHOLE_LIMIT` in `SLICE` ranges: each round asks for up to `SLICE_PIPELINE`
/// slices, the rest of the messages already begun first, then the next messages in UID order, so a
/// folder of medium-sized messages does not cost a round trip each. Slices of one message are stored
/// and hashed strictly in order as they stream in; a message counts as staged only when its hash is
/// written; the writer hears of each round that finished a message (`pipe`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn stage_large(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    large: &[&UnstagedMessage],
    alone: bool,
    pipe: FolderPipe<'_>,
    stats: &mut PullStats,
) -> Result<()> {
    let with_identity = crate::identity::wanted(store)?;
    let mut waiting = large.iter();
    let mut active: Vec<Slices> = Vec::new();
    let mut restarts = 0;
    // The message whose bytes also go straight to the target as they come (`stream_append`).
    let streams = &pipe.pipe.streams;
    let mut feed: Option<FeedGuard> = None;
    loop {
        // The stream's lane keeps up before more of its message comes.
        if let Some(feed) = &feed {
            streams.room(feed.row_id()).await;
        }
        // Plan the round: (index in `active`, offset) for each slice asked for.
        let mut plan: Vec<(usize, u32)> = Vec::new();
        let mut index = 0;
        while plan.len() < SLICE_PIPELINE {
            if index == active.len() {
                let Some(p) = waiting.next() else { break };
                if feed.is_none() {
                    feed = streams.offer(p.id, pipe.folder_id, p.size);
                }
                active.push(Slices::new(p, with_identity));
            }
            let m = &active[index];
            // The slices the listed size still calls for (at least one, to see the end).
            let left = m.size.saturating_sub(u64::from(m.offset));
            let want = left.div_ceil(u64::from(SLICE)).max(1) as usize;
            for i in 0..want.min(SLICE_PIPELINE - plan.len()) {
                plan.push((index, m.offset.saturating_add((i as u32).saturating_mul(SLICE))));
            }
            index += 1;
        }
        if plan.is_empty() {
            return Ok(());
        }
        let requests: Vec<BodyRequest> =
            plan.iter().map(|&(i, offset)| BodyRequest { uid_set: active[i].uid.to_string(), range: Some((offset, SLICE)) }).collect();
        for m in active.iter_mut() {
            m.answered = false;
            m.start = m.offset;
            // Early slices left from a round with a short answer no longer line up.
            m.early.clear();
        }
        let _turn = crate::memory::staging_turn(session.beyond_lan()).await;
        let mut round = SliceRound {
            active: &mut active,
            plan: &plan,
            answered: vec![false; plan.len()],
            into: SliceDestination::Nowhere,
            batch: BodyBatch::new(store),
            streams,
            originless: false,
            resent: false,
            stats,
        };
        let fetched = session.uid_fetch_bodies(&requests, &mut round).await;
        let unsure = round.originless && round.resent;
        let mut batch = round.batch;
        if let Err(e) = fetched {
            // What this round gathered is dropped: none of it is hashed, and the messages it belongs
            // to start over when they are asked for again.
            drop(batch);
            if let Some(reason) = hung_up_on_a_message(&e) {
                // Quirk `dovecot_bye_on_fetch_failure`: every message of the round is a suspect; one
                // staged alone (`alone`: it was a suspect already) is the one.
                let mut ids: Vec<i64> = plan.iter().map(|&(i, _)| active[i].writer.id).collect();
                ids.dedup();
                count_hang_up(store, account_id, folder_name, &ids, alone, &reason)?;
                return Err(e.context(HUNG_UP_ON_A_MESSAGE));
            }
            return Err(e).with_context(|| format!("staging message UID {}", active[plan[0].0].uid));
        }
        if unsure {
            // Answers without their origin, and the commands sent again after throttling: which
            // answer was for which slice cannot be told (a repeat of the first slice may have taken
            // the place of the one that was throttled). The round's messages start over from their
            // first byte; none of it was hashed.
            drop(batch);
            restarts += 1;
            if restarts > SLICE_RESTARTS {
                return Err(ImapError::Throttled {
                    label: session.label().to_string(),
                    what: "the server throttled every round of partial fetches and names no origin in its answers; \
                           the next pass tries again"
                        .into(),
                    delay: std::time::Duration::ZERO,
                }
                .into());
            }
            log::warn!(
                "{}: partial answers without origin were sent again after throttling; starting those messages over",
                session.label()
            );
            let mut seen = BTreeSet::new();
            for &(i, _) in &plan {
                if seen.insert(i) {
                    active[i].start_over(with_identity);
                }
            }
            continue;
        }
        // Finish what ended; a message that made no progress was expunged (nothing of it came) or
        // stopped half-way (not an expunge we can trust: try again next pass). The round's last
        // bytes, the hashes and these changes in one short transaction, rolled back (dropped) if any
        // of it fails.
        let done = store.write_unsynced(|tx| {
            let done = finish_round(tx, account_id, folder_name, &mut active, &plan, &mut batch, stats)?;
            batch.apply(tx)?;
            Ok(done)
        })?;
        // Right after the commit, before the writer can see the row staged: its feed is whole, or
        // broken if the message ended any other way.
        for &i in &done {
            let m = &active[i];
            if feed.as_ref().is_some_and(|f| f.row_id() == m.writer.id) {
                if m.ended && !m.nil {
                    streams.staged_whole(m.writer.id, m.writer.total);
                }
                feed = None;
            }
        }
        if !done.is_empty() {
            pipe.staged();
        }
        for i in done.into_iter().rev() {
            active.remove(i);
            fault::point("pull: large body staged");
        }
    }
}

/// Where the bytes of the slice being received go.
pub(super) enum SliceDestination {
    /// Straight into message `active[i]`: the slice it needs next.
    Message(usize),
    /// Held for `active[i]` until the slices before it come (a server answering out of order).
    Early(usize, u32, Vec<u8>),
    /// Nowhere: a repeat, a slice that no longer lines up, or an answer nobody asked for.
    Nowhere,
}

/// One round of partial fetches, as a sink: each answer is matched to the request it answers.
pub(super) struct SliceRound<'a, 's> {
    active: &'a mut Vec<Slices>,
    plan: &'a [(usize, u32)],
    answered: Vec<bool>,
    into: SliceDestination,
    /// The round's bytes not yet written.
    batch: BodyBatch<'s>,
    /// Told of every byte that goes into a message, in order, for the one being streamed.
    streams: &'s Streams,
    /// An answer came without its origin (`BODY[]` for a partial fetch), so it was matched to the
    /// first open request for its UID; and the commands were sent again after throttling. Both
    /// together make that matching unsafe, and the round is started over (`stage_large`).
    originless: bool,
    resent: bool,
    stats: &'a mut PullStats,
}

impl BodySink for SliceRound<'_, '_> {
    fn begin(&mut self, uid: u32, origin: Option<u32>, len: u32) -> Result<()> {
        // Which request this answers: the one for this UID at its origin; or, from a server that
        // leaves the origin out, the first one for this UID still unanswered. An answer whose request
        // was answered already is a repeat (the commands were sent again after throttling) and goes
        // nowhere: taking it for the next open request would store the wrong bytes at that offset.
        self.originless |= origin.is_none();
        let open = |&(k, &(i, _)): &(usize, &(usize, u32))| self.active[i].uid == uid && !self.answered[k];
        let slot = match origin {
            Some(origin) => self.plan.iter().enumerate().find(|e| open(e) && e.1.1 == origin),
            None => self.plan.iter().enumerate().find(|e| open(e)),
        }
        .map(|(k, _)| k);
        self.into = SliceDestination::Nowhere;
        let Some(k) = slot else { return Ok(()) };
        self.answered[k] = true;
        let (i, offset) = self.plan[k];
        let m = &mut self.active[i];
        m.answered = true;
        if m.ended || offset < m.offset {
            return Ok(());
        }
        self.into = if offset > m.offset {
            // Never more room than a slice, whatever length the answer announces.
            SliceDestination::Early(i, offset, Vec::with_capacity((len as usize).min(SLICE as usize)))
        } else {
            SliceDestination::Message(i)
        };
        Ok(())
    }

    fn bytes(&mut self, piece: &[u8]) -> Result<()> {
        match &mut self.into {
            SliceDestination::Message(i) => self.active[*i].write(&mut self.batch, piece, self.streams),
            SliceDestination::Early(_, _, held) => {
                held.extend_from_slice(piece);
                Ok(())
            }
            SliceDestination::Nowhere => Ok(()),
        }
    }

    fn end(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.into, SliceDestination::Nowhere) {
            SliceDestination::Message(i) => {
                let m = &mut self.active[i];
                let len = m.writer.total - u64::from(m.offset);
                m.end_slice(&mut self.batch, len)?;
                self.stats.staged_bytes += len + m.take_early(&mut self.batch, self.streams)?;
            }
            SliceDestination::Early(i, offset, held) => {
                self.active[i].early.insert(offset, held);
            }
            SliceDestination::Nowhere => {}
        }
        Ok(())
    }

    fn nil(&mut self, uid: u32) -> Result<()> {
        if let Some(m) = self.active.iter_mut().find(|m| m.uid == uid) {
            m.nil = true;
        }
        Ok(())
    }

    fn again(&mut self) -> Result<()> {
        self.resent = true;
        Ok(())
    }
}

/// Hands the hash of each message whose end was seen to `batch` and drops the ones that vanished;
/// returns their indices in `active`, in order. Fails for a message that stopped half-way. Runs
/// inside the round's closing transaction.
pub(super) fn finish_round(
    tx: &Tx<'_>,
    account_id: i64,
    folder_name: &str,
    active: &mut [Slices],
    plan: &[(usize, u32)],
    batch: &mut BodyBatch,
    stats: &mut PullStats,
) -> Result<Vec<usize>> {
    let mut done = Vec::new();
    for (i, m) in active.iter_mut().enumerate() {
        let asked = plan.iter().any(|&(j, _)| j == i);
        if m.nil {
            // What an interrupted pass, an earlier round or this round's batch staged of it goes: the
            // batch is written after this, so `refuse` alone would leave this round's chunks behind.
            batch.restart(m.writer.id);
            tx.refuse_message(account_id, folder_name, m.writer.id, NIL_BODY)?;
            done.push(i);
            continue;
        }
        // All the listed bytes came in full slices and the ask past them got no answer at all (some
        // servers send nothing for a range that starts at the end): that is the end too.
        if !m.ended && asked && !m.answered && m.start > 0 && u64::from(m.start) >= m.size {
            m.ended = true;
        }
        if m.ended {
            m.writer.finish(batch)?;
            stats.staged += 1;
            done.push(i);
        } else if m.offset == m.start && asked {
            if m.answered || m.start > 0 {
                return Err(StoppedHalfWay { uid: m.uid, at: m.start }.into());
            }
            tx.forget_message(m.writer.id)?;
            stats.vanished += 1;
            done.push(i);
        }
        // A short answer before the listed end leaves the later slices of that message misaligned:
        // they were dropped, and the next round asks again from where its bytes really end.
    }
    Ok(done)
}

/// One large message being staged slice by slice, in order.
pub(super) struct Slices {
    uid: u32,
    size: u64,
    /// Its bytes so far (row id, chunks, hash); `writer.total` runs ahead of `offset` only while a
    /// slice is coming in.
    writer: BodyWriter,
    offset: u32,
    /// The end was seen: an empty slice, or a short one at or past the listed size.
    ended: bool,
    /// Where this round started, and whether anything came for it.
    start: u32,
    answered: bool,
    /// Slices that arrived before the one at the current offset (a server answering pipelined
    /// commands out of order); with in-order answers this stays empty.
    early: BTreeMap<u32, Vec<u8>>,
    /// The source answered NIL for it: it will not give the content.
    nil: bool,
}

impl Slices {
    /// Begins a message; a partly staged one from an interrupted pass starts over (the hash state is
    /// not kept).
    pub(super) fn new(p: &UnstagedMessage, with_identity: bool) -> Slices {
        Slices {
            uid: p.uid,
            size: p.size,
            writer: BodyWriter::start(p.id, with_identity),
            offset: 0,
            ended: false,
            start: 0,
            answered: false,
            early: BTreeMap::new(),
            nil: false,
        }
    }

    /// Starts the message over from its first byte (its first chunk clears what was staged of it).
    fn start_over(&mut self, with_identity: bool) {
        self.writer = BodyWriter::start(self.writer.id, with_identity);
        self.offset = 0;
        self.ended = false;
        self.start = 0;
        self.answered = false;
        self.early.clear();
        self.nil = false;
    }

    /// A slice of `len` bytes at the current offset is written: move on, and see whether it was the end.
    fn end_slice(&mut self, batch: &mut BodyBatch, len: u64) -> Result<()> {
        self.writer.flush(batch)?;
        if len == 0 {
            self.ended = true;
            return Ok(());
        }
        self.offset = self.offset.saturating_add(len as u32);
        // A server may answer a partial fetch with less than asked before the end (some do); stop
        // only at the listed size, or when an answer comes back empty.
        if u64::from(self.offset) >= self.size && len < u64::from(SLICE) {
            self.ended = true;
        }
        Ok(())
    }

    /// The message's next bytes: into its staged copy, and to its stream if it has one.
    fn write(&mut self, batch: &mut BodyBatch, piece: &[u8], streams: &Streams) -> Result<()> {
        streams.hand_over(self.writer.id, self.writer.total, piece);
        self.writer.write(batch, piece)
    }

    /// Hands the held slices that now line up to the batch; returns their bytes.
    fn take_early(&mut self, batch: &mut BodyBatch, streams: &Streams) -> Result<u64> {
        let mut stored = 0;
        while !self.ended
            && let Some(next) = self.early.remove(&self.offset)
        {
            self.write(batch, &next, streams)?;
            self.end_slice(batch, next.len() as u64)?;
            stored += next.len() as u64;
        }
        if self.ended {
            self.early.clear();
        }
        Ok(stored)
    }
}
