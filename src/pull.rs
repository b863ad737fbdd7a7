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
//! attempt deletes before it starts over.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::failure::{Retry, Scope};
use crate::fault;
use crate::imap::{BodyRequest, BodySink, FetchItem, ImapError, Session};
use crate::store::{CHUNK_SIZE, Store};

/// Messages up to this size are fetched whole, many per command; larger ones in `SLICE` ranges. Bodies
/// stream into SQLite either way (through a `BodyBatch` of at most `BODY_BATCH_BYTES`), so memory does
/// not depend on these; they bound what has to be held for a server that names the UID only after the
/// body.
const WHOLE_LIMIT: u64 = 64 * 1024;
/// Partial-fetch range for larger messages.
const SLICE: u32 = 64 * 1024;
/// Partial fetches in flight at once (of one message or several).
const SLICE_PIPELINE: usize = 8;
/// Rounds of partial fetches started over (see `SliceRound::originless`) before the folder waits for
/// the next pass.
const SLICE_RESTARTS: u32 = 3;
/// A batch of whole-message fetches: at most this many bytes and messages per command.
const BATCH_BYTES: u64 = 1024 * 1024;
const BATCH_COUNT: usize = 200;
/// Commands in flight at once, so the server never waits for us between batches.
const PIPELINE: usize = 4;

/// A source folder as stored.
#[derive(Debug, Clone)]
pub struct FolderRow {
    pub id: i64,
    pub wire_name: String,
    pub name: String,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<u64>,
    pub last_uid: u32,
}

#[derive(Debug, Default, Clone)]
pub struct PullStats {
    pub staged: u64,
    pub staged_bytes: u64,
    pub flag_changes: u64,
    pub vanished: u64,
    pub new_mail: bool,
}

pub fn folder_rows(store: &Store, account_id: i64) -> Result<Vec<FolderRow>> {
    let mut stmt = store.conn.prepare(
        "SELECT id, wire_name, name, uidvalidity, uidnext, highest_modseq, last_uid FROM source_folder
         WHERE account_id = ?1 AND present = 1 AND selectable = 1 ORDER BY name",
    )?;
    let rows = stmt.query_map([account_id], |r| {
        Ok(FolderRow {
            id: r.get(0)?,
            wire_name: r.get(1)?,
            name: r.get(2)?,
            uidvalidity: r.get(3)?,
            uidnext: r.get(4)?,
            highest_modseq: r.get(5)?,
            last_uid: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn flags_text(flags: &[String]) -> String {
    let mut f: Vec<&str> = flags.iter().map(String::as_str).filter(|f| !f.eq_ignore_ascii_case("\\Recent")).collect();
    f.sort_unstable();
    f.dedup();
    f.join(" ")
}

/// Pulls one folder. Returns quickly when STATUS shows nothing changed.
pub async fn pull_folder(
    store: &Store,
    account_id: i64,
    session: &mut Session,
    folder: &FolderRow,
    condstore: bool,
    stats: &mut PullStats,
) -> Result<()> {
    let status = session.status(&folder.wire_name, condstore).await?;
    let unstaged: i64 = store.conn.query_row(
        "SELECT count(*) FROM message WHERE folder_id = ?1 AND sha256 IS NULL AND push_state = 'pending'",
        [folder.id],
        |r| r.get(0),
    )?;
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
            merge_uidvalidity_orphans(store, folder.id, v)?;
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
        let mut new_count = 0u64;
        let mut highest = last_uid;
        let mut rows = ListingBatch::new(|conn: &rusqlite::Connection, row: &NewRow| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO message (folder_id, uidvalidity, uid, size, internal_date, flags, modseq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )?;
            insert.execute(params![folder.id, uidvalidity, row.uid, row.size, row.internal_date, row.flags, row.modseq])
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
                let row = NewRow {
                    uid: meta.uid,
                    size,
                    flags: flags_text(&meta.flags),
                    internal_date: meta.internal_date,
                    modseq: meta.modseq.map(|m| m as i64),
                };
                rows.push(store, row)
            })
            .await?;
        last_uid = highest;
        // The last rows and the folder's new `last_uid` together: the listing counts as done only now.
        rows.write(store, |conn| {
            conn.execute(
                "UPDATE source_folder SET uidvalidity = ?2, last_uid = ?3 WHERE id = ?1",
                params![folder.id, uidvalidity, last_uid],
            )
            .map(drop)
        })?;
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
            let mut changes = ListingBatch::new(|conn: &rusqlite::Connection, (uid, flags): &(u32, String)| {
                let mut update = conn.prepare_cached(
                    "UPDATE message SET flags = ?4 WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3 AND flags != ?4",
                )?;
                update.execute(params![folder.id, uidvalidity, uid, flags])
            });
            session
                .uid_fetch(&[format!("1:{}", folder.last_uid)], &[FetchItem::Uid, FetchItem::Flags], since, &mut |meta| {
                    changes.push(store, (meta.uid, flags_text(&meta.flags)))
                })
                .await?;
            changes.flush(store)?;
            stats.flag_changes += changes.changed;
        }
    }

    // 3. Bodies of everything not yet staged.
    stage_bodies(store, session, account_id, &folder.name, folder.id, uidvalidity, stats).await?;
    merge_uidvalidity_orphans(store, folder.id, uidvalidity)?;

    store.conn.execute(
        "UPDATE source_folder SET uidvalidity = ?2, uidnext = ?3, highest_modseq = ?4, last_uid = max(last_uid, ?5) WHERE id = ?1",
        params![folder.id, uidvalidity, selected.uidnext, selected.highest_modseq.map(|m| m as i64), last_uid],
    )?;
    Ok(())
}

/// A folder's listing (new messages' metadata, or everyone's flags) is gathered in memory this many
/// rows at a time, and each such batch is written in one short transaction: no transaction stays open
/// while the listing waits for the network, so a big folder over a slow line (or a source that stops
/// answering half-way) keeps no other account and not the web page from writing. A row is a UID, a
/// size, a date and its flags (about 150 bytes), so a batch is some 75 KiB per listing worker, and a
/// 300,000-message folder costs 600 commits. What a cut listing wrote is harmless: rows are inserted
/// with ON CONFLICT DO NOTHING and flags are set, and `last_uid` and the mod-sequence move only when
/// it completes.
const LISTING_ROWS_PER_WRITE: usize = 500;

/// A message not seen before, as the listing gives it.
struct NewRow {
    uid: u32,
    size: u32,
    flags: String,
    internal_date: Option<String>,
    modseq: Option<i64>,
}

/// A listing's rows not yet written: `write_row` writes one (returning the rows it changed), at most
/// `LISTING_ROWS_PER_WRITE` of them (fewer under POSTFLYTT_BATCH, so the crash tests cut between
/// writes) in one short transaction.
struct ListingBatch<T, F: FnMut(&rusqlite::Connection, &T) -> rusqlite::Result<usize>> {
    rows: Vec<T>,
    every: usize,
    write_row: F,
    /// Rows changed by all writes so far.
    changed: u64,
}

impl<T, F: FnMut(&rusqlite::Connection, &T) -> rusqlite::Result<usize>> ListingBatch<T, F> {
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
    /// of it fails, when the transaction is dropped).
    fn write(&mut self, store: &Store, also: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<()>) -> Result<()> {
        let tx = store.write_transaction()?;
        let mut changed = 0;
        for row in self.rows.drain(..) {
            changed += (self.write_row)(&tx, &row)? as u64;
        }
        also(&tx)?;
        tx.commit()?;
        self.changed += changed;
        Ok(())
    }
}

struct Pending {
    id: i64,
    uid: u32,
    size: u64,
    /// Times the source hung up while this message was asked for and had not arrived.
    fetch_failures: i64,
}

/// Quirk `dovecot_bye_on_fetch_failure` (Dovecot; seen with a message file it cannot read): a message
/// the server cannot read is not refused with a tagged NO but with `* BYE FETCH failed: Internal
/// error occurred` and a closed connection, taking the rest of the batch with it (`body_fetch` makes it
/// `ImapError::HungUpOnMessage`). The messages of such a batch that had not arrived become suspects (`fetch_failures`); after the reconnect each suspect is
/// asked for alone, so the next hang-up names the message. One that makes the server hang up this many
/// times is recorded as skipped with the server's words, and the folder goes on without it.
const FETCH_FAILURES_BEFORE_SKIP: i64 = 3;

/// What the operator reads above a hang-up on a message. The pass reconnects and goes on (see
/// `FETCH_FAILURES_BEFORE_SKIP`), outside the budget for ordinary lost connections, since each time a
/// suspect is narrowed down or skipped (`sync`, by the error's kind).
const HUNG_UP_ON_A_MESSAGE: &str = "the old server hung up instead of sending a message";

/// The server's reason when the source hung up because it could not read a message (quirk
/// `dovecot_bye_on_fetch_failure`), not for a reason of its own (shutting down, a session limit), which
/// says nothing about any message.
fn hung_up_on_a_message(e: &anyhow::Error) -> Option<String> {
    match crate::imap::kind_of(e) {
        Some(ImapError::HungUpOnMessage { reason, .. }) => Some(reason.clone()),
        _ => None,
    }
}

/// A message the source will not give: recorded as skipped with the server's words, so the folder
/// goes on without it and the operator sees it in the status and the report. What an earlier attempt
/// (or this one) left of its bytes goes: a refused row holds none.
fn refuse(store: &Store, account_id: i64, folder_name: &str, id: i64, server_says: &str) -> Result<()> {
    store.conn.execute("DELETE FROM body_chunk WHERE message_id = ?1", [id])?;
    store.conn.execute("UPDATE message SET push_state = 'refused', sha256 = NULL WHERE id = ?1", [id])?;
    store.record_skip(account_id, Some(id), folder_name, "the old server could not give this message", Some(server_says))
}

/// A large message whose partial answers stopped before its listed end without an error: worth
/// another try next pass, not a refusal (`failure::policy`).
#[derive(Debug)]
pub struct StoppedHalfWay {
    pub uid: u32,
    /// The byte it stopped at.
    pub at: u32,
}

impl std::fmt::Display for StoppedHalfWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "staging message UID {}: the source stopped sending it at byte {}", self.uid, self.at)
    }
}

impl std::error::Error for StoppedHalfWay {}

/// What a NIL body is recorded as.
const NIL_BODY: &str = "the server answered NIL for the message's content";

/// Counts a hang-up against the rows of `ids` that have not arrived; a row alone (`alone`) that reaches
/// the limit is skipped with `server_says`.
fn count_hang_up(store: &Store, account_id: i64, folder_name: &str, ids: &[i64], alone: bool, server_says: &str) -> Result<()> {
    for &id in ids {
        let failures: Option<i64> = store
            .conn
            .query_row(
                "UPDATE message SET fetch_failures = fetch_failures + 1 WHERE id = ?1 AND sha256 IS NULL RETURNING fetch_failures",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if alone && failures.is_some_and(|f| f >= FETCH_FAILURES_BEFORE_SKIP) {
            refuse(store, account_id, folder_name, id, server_says)?;
        }
    }
    Ok(())
}

/// The fallback after a refused batch: each message alone; one the server will not give is recorded
/// as skipped with the server's words, and the rest is staged.
async fn stage_one_by_one(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    group: &[Vec<&Pending>],
    stats: &mut PullStats,
) -> Result<()> {
    let with_identity = crate::identity::wanted(store)?;
    for p in group.iter().flatten() {
        // The refused batch may have brought this one whole before it failed.
        if !still_unstaged(store, p.id)? {
            continue;
        }
        let ids = BTreeMap::from([(p.uid, (p.id, p.size))]);
        let (fetched, outcome) = fetch_whole(store, session, vec![p.uid.to_string()], &ids, with_identity, stats).await?;
        match fetched {
            Ok(()) if outcome.nil.contains(&p.id) => refuse(store, account_id, folder_name, p.id, NIL_BODY)?,
            Ok(()) if outcome.staged.contains(&p.id) => {}
            Ok(()) => {
                store.conn.execute("DELETE FROM message WHERE id = ?1", [p.id])?;
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

async fn stage_bodies(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    folder_id: i64,
    uidvalidity: u32,
    stats: &mut PullStats,
) -> Result<()> {
    let with_identity = crate::identity::wanted(store)?;
    // The unstaged rows a window at a time in UID order, so memory does not grow with the folder. The
    // cursor moves past each window whatever became of its rows (some stay pending for the next pass).
    let mut after_uid: u32 = 0;
    loop {
        let pending: Vec<Pending> = {
            let mut stmt = store.conn.prepare_cached(
                "SELECT id, uid, size, fetch_failures FROM message WHERE folder_id = ?1 AND uidvalidity = ?2 AND sha256 IS NULL
                 AND push_state = 'pending' AND uid > ?3 ORDER BY uid LIMIT ?4",
            )?;
            // Two full batches by count: enough to keep the pipeline busy with ordinary mail (a batch
            // is mostly cut by bytes, at 30 to 40 messages), small enough not to count per worker (and,
            // with the tests' small batches, many windows).
            let window = fault::batch_cap(BATCH_COUNT) * 2;
            let rows = stmt.query_map(params![folder_id, uidvalidity, after_uid, window as i64], |r| {
                Ok(Pending { id: r.get(0)?, uid: r.get(1)?, size: r.get(2)?, fetch_failures: r.get(3)? })
            })?;
            let mut pending = Vec::with_capacity(window);
            for row in rows {
                pending.push(row?);
            }
            pending
        };
        let Some(last) = pending.last() else { return Ok(()) };
        after_uid = last.uid;
        stage_window(store, session, account_id, folder_name, &pending, with_identity, stats).await?;
    }
}

/// Stages one window of unstaged rows: suspects alone, small messages whole and batched, large ones in
/// slices.
async fn stage_window(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    pending: &[Pending],
    with_identity: bool,
    stats: &mut PullStats,
) -> Result<()> {
    let (small, large): (Vec<&Pending>, Vec<&Pending>) = pending.iter().partition(|p| p.size <= WHOLE_LIMIT);
    let (suspects, small): (Vec<&Pending>, Vec<&Pending>) = small.into_iter().partition(|p| p.fetch_failures > 0);

    // Suspects of an earlier hang-up first, each alone, so a hang-up now names its message.
    for p in suspects {
        let group = [vec![p]];
        stage_one_by_one(store, session, account_id, folder_name, &group, stats).await?;
        fault::point("pull: bodies staged");
    }

    // Whole messages, batched and pipelined.
    let mut batches: Vec<Vec<&Pending>> = Vec::new();
    let mut current: Vec<&Pending> = Vec::new();
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
        let (fetched, outcome) = fetch_whole(store, session, sets, &ids, with_identity, stats).await?;
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
                continue;
            }
        }
        fault::point("pull: bodies staged");
        if outcome.staged.len() < ids.len() {
            mark_vanished(store, &ids, stats)?;
        }
    }

    // Larger messages in partial ranges, several slices (of one or more messages) per round trip;
    // suspects of an earlier hang-up each alone first, so a hang-up names its message.
    let (large_suspects, large): (Vec<&Pending>, Vec<&Pending>) = large.into_iter().partition(|p| p.fetch_failures > 0);
    for p in large_suspects {
        stage_large(store, session, account_id, folder_name, &[p], true, stats).await?;
    }
    match stage_large(store, session, account_id, folder_name, &large, false, stats).await {
        Err(e) if !try_again_later(&e) => {
            // The source refused a round (a tagged NO): each message not yet staged alone, so the one
            // it will not give is found and skipped with its words, and the others still come.
            log::warn!("{}: {e:#}; staging those messages one at a time", session.label());
            for p in large {
                if !still_unstaged(store, p.id)? {
                    continue;
                }
                match stage_large(store, session, account_id, folder_name, &[p], true, stats).await {
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
struct WholeOutcome {
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
async fn fetch_whole(
    store: &Store,
    session: &mut Session,
    sets: Vec<String>,
    ids: &BTreeMap<u32, (i64, u64)>,
    with_identity: bool,
    stats: &mut PullStats,
) -> Result<(Result<()>, WholeOutcome)> {
    let requests: Vec<BodyRequest> = sets.into_iter().map(|uid_set| BodyRequest { uid_set, range: None }).collect();
    let _turn = crate::memory::staging_turn().await;
    let mut sink = WholeBodies {
        ids,
        with_identity,
        writing: None,
        batch: BodyBatch::new(store),
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
fn try_again_later(e: &anyhow::Error) -> bool {
    crate::failure::policy(e).0 != Scope::Message
}

/// Streams whole bodies into their rows, one at a time in the order they come.
struct WholeBodies<'a> {
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
        self.writing = self.ids.get(&uid).map(|&(id, listed)| {
            // A repeat (commands sent again after throttling) replaces the first copy: its restart
            // takes the first copy's hash, so the first copy no longer counts as staged.
            self.unsure.remove(&id);
            self.outcome.staged.remove(&id);
            (BodyWriter::start(id, self.with_identity), listed)
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

/// Bytes of bodies a staging worker gathers in memory before it writes them in one short transaction
/// (and when a fetch or a round of slices ends). No transaction stays open while a body comes in, so
/// a source that stalls half-way through a body holds up no other account; and memory stays flat:
/// there are `memory::STAGING_AT_ONCE` staging workers, each with one batch. 256 KiB makes a commit
/// (an fsync, as `synchronous=FULL`) per 256 KiB of mail, a few per batch of whole messages, which
/// costs little beside the network.
const BODY_BATCH_BYTES: usize = 256 * 1024;

/// What counts against `BODY_BATCH_BYTES` for a write besides its data (a row id, a statement).
const BODY_WRITE_OVERHEAD: usize = 64;

/// Staged bytes and staged marks not yet written, in the order they came. A chunk that takes the batch
/// to `BODY_BATCH_BYTES` writes it at once, so a batch never holds more than that and one chunk, however
/// large the piece a body arrives in (a body held until its UID came is one piece of up to 8 MiB).
struct BodyBatch<'s> {
    store: &'s Store,
    writes: Vec<BodyWrite>,
    bytes: usize,
}

enum BodyWrite {
    /// The message starts over: whatever an interrupted pass (or an earlier copy in this fetch) staged
    /// of it goes, and it is not staged until its hash is written again.
    Restart(i64),
    Chunk {
        id: i64,
        seq: i64,
        data: Vec<u8>,
    },
    /// The message is whole: its hash, true size and identity.
    Staged {
        id: i64,
        hash: Vec<u8>,
        size: u64,
        identity: Option<String>,
    },
}

impl<'s> BodyBatch<'s> {
    fn new(store: &'s Store) -> BodyBatch<'s> {
        BodyBatch { store, writes: Vec::new(), bytes: 0 }
    }

    /// Adds a mark (a restart, a staged message); never writes, so it may be used inside the caller's
    /// transaction (`finish_round`).
    fn push(&mut self, write: BodyWrite) {
        self.bytes += BODY_WRITE_OVERHEAD + if let BodyWrite::Chunk { data, .. } = &write { data.len() } else { 0 };
        self.writes.push(write);
    }

    /// Adds a chunk, and writes the batch when that fills it.
    fn push_chunk(&mut self, id: i64, seq: i64, data: Vec<u8>) -> Result<()> {
        self.push(BodyWrite::Chunk { id, seq, data });
        self.write_if_full()
    }

    /// Writes the batch once it holds `BODY_BATCH_BYTES`.
    fn write_if_full(&mut self) -> Result<()> {
        if self.bytes >= BODY_BATCH_BYTES {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the batch in one short transaction.
    fn write(&mut self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let tx = self.store.write_transaction()?;
        self.apply(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes the batch inside the caller's transaction. A failure loses the batch with the
    /// transaction, and the fetch fails (our database).
    fn apply(&mut self, conn: &rusqlite::Connection) -> Result<()> {
        self.bytes = 0;
        for write in self.writes.drain(..) {
            match write {
                BodyWrite::Restart(id) => {
                    conn.prepare_cached("DELETE FROM body_chunk WHERE message_id = ?1")?.execute([id])?;
                    conn.prepare_cached("UPDATE message SET sha256 = NULL WHERE id = ?1 AND sha256 IS NOT NULL")?.execute([id])?;
                }
                BodyWrite::Chunk { id, seq, data } => {
                    conn.prepare_cached("INSERT INTO body_chunk (message_id, seq, data) VALUES (?1, ?2, ?3)")?
                        .execute(params![id, seq, data])?;
                }
                BodyWrite::Staged { id, hash, size, identity } => {
                    conn.prepare_cached("UPDATE message SET sha256 = ?2, staged_bytes = ?3, size = ?3, identity = ?4 WHERE id = ?1")?
                        .execute(params![id, hash, size as i64, identity])?;
                }
            }
        }
        Ok(())
    }
}

/// Cuts one message's bytes into `CHUNK_SIZE` rows of `body_chunk` as they arrive (the last one of
/// each slice shorter), hashing them on the way, and hands them to a `BodyBatch`; keeps the first
/// `HEADER_PREFIX` bytes for its identity when the target needs one. A message counts as staged only
/// once the batch holding its `finish` is written: its hash goes in with its last chunk.
struct BodyWriter {
    id: i64,
    seq: i64,
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
    fn start(id: i64, with_identity: bool) -> BodyWriter {
        BodyWriter {
            id,
            seq: 0,
            hasher: Sha256::new(),
            total: 0,
            restarted: false,
            pending: Vec::new(),
            prefix: with_identity.then(Vec::new),
        }
    }

    fn write(&mut self, batch: &mut BodyBatch, mut piece: &[u8]) -> Result<()> {
        self.hasher.update(piece);
        self.total += piece.len() as u64;
        if let Some(prefix) = &mut self.prefix {
            let room = crate::identity::HEADER_PREFIX.saturating_sub(prefix.len());
            prefix.extend_from_slice(&piece[..room.min(piece.len())]);
        }
        while !piece.is_empty() {
            if self.pending.is_empty() && piece.len() >= CHUNK_SIZE {
                self.chunk(batch, piece[..CHUNK_SIZE].to_vec())?;
                piece = &piece[CHUNK_SIZE..];
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
            }
        }
        Ok(())
    }

    /// Hands what is pending to the batch as a chunk of its own.
    fn flush(&mut self, batch: &mut BodyBatch) -> Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.chunk(batch, pending)?;
        }
        Ok(())
    }

    fn restart(&mut self, batch: &mut BodyBatch) {
        if !self.restarted {
            batch.push(BodyWrite::Restart(self.id));
            self.restarted = true;
        }
    }

    fn chunk(&mut self, batch: &mut BodyBatch, data: Vec<u8>) -> Result<()> {
        self.restart(batch);
        self.seq += 1;
        batch.push_chunk(self.id, self.seq - 1, data)
    }

    /// Hands over the rest and the mark that the message is staged: its hash, its true size, its
    /// identity. Returns the bytes staged.
    fn finish(&mut self, batch: &mut BodyBatch) -> Result<u64> {
        let (mark, bytes) = self.finish_mark(batch)?;
        batch.push(mark);
        Ok(bytes)
    }

    /// Hands over the rest, and returns the mark that the message is staged (for the caller to hand
    /// over when it is sure of it) and the bytes staged.
    fn finish_mark(&mut self, batch: &mut BodyBatch) -> Result<(BodyWrite, u64)> {
        self.flush(batch)?;
        self.restart(batch);
        let hash = std::mem::take(&mut self.hasher).finalize();
        // '' when looked at and nothing found; NULL when not looked at (see `identity::fill_staged`).
        let identity = self.prefix.take().map(|prefix| crate::identity::of_header(&prefix).unwrap_or_default());
        Ok((BodyWrite::Staged { id: self.id, hash: hash.to_vec(), size: self.total, identity }, self.total))
    }
}

/// Whether row `id` still waits for its bytes: not staged, and not refused (a NIL body) or gone.
fn still_unstaged(store: &Store, id: i64) -> Result<bool> {
    Ok(store
        .conn
        .query_row("SELECT sha256 IS NULL AND push_state = 'pending' FROM message WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// Messages asked for but not answered were expunged on the source meanwhile: nothing to copy.
fn mark_vanished(store: &Store, ids: &BTreeMap<u32, (i64, u64)>, stats: &mut PullStats) -> Result<()> {
    for (id, _) in ids.values() {
        // A row refused meanwhile (a NIL body) is known to be there, not gone.
        if still_unstaged(store, *id)? {
            store.conn.execute("DELETE FROM message WHERE id = ?1", [id])?;
            stats.vanished += 1;
        }
    }
    Ok(())
}

/// Stages messages above `WHOLE_LIMIT` in `SLICE` ranges: each round asks for up to `SLICE_PIPELINE`
/// slices, the rest of the messages already begun first, then the next messages in UID order, so a
/// folder of medium-sized messages does not cost a round trip each. Slices of one message are stored
/// and hashed strictly in order as they stream in; a message counts as staged only when its hash is
/// written.
async fn stage_large(
    store: &Store,
    session: &mut Session,
    account_id: i64,
    folder_name: &str,
    large: &[&Pending],
    alone: bool,
    stats: &mut PullStats,
) -> Result<()> {
    let with_identity = crate::identity::wanted(store)?;
    let mut waiting = large.iter();
    let mut active: Vec<Slices> = Vec::new();
    let mut restarts = 0;
    loop {
        // Plan the round: (index in `active`, offset) for each slice asked for.
        let mut plan: Vec<(usize, u32)> = Vec::new();
        let mut index = 0;
        while plan.len() < SLICE_PIPELINE {
            if index == active.len() {
                let Some(p) = waiting.next() else { break };
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
        let _turn = crate::memory::staging_turn().await;
        let mut round = SliceRound {
            active: &mut active,
            plan: &plan,
            answered: vec![false; plan.len()],
            into: SliceDestination::Nowhere,
            batch: BodyBatch::new(store),
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
        let tx = store.write_transaction()?;
        let done = finish_round(store, account_id, folder_name, &mut active, &plan, &mut batch, stats)?;
        batch.apply(&tx)?;
        tx.commit()?;
        for i in done.into_iter().rev() {
            active.remove(i);
            fault::point("pull: large body staged");
        }
    }
}

/// Where the bytes of the slice being received go.
enum SliceDestination {
    /// Straight into message `active[i]`: the slice it needs next.
    Message(usize),
    /// Held for `active[i]` until the slices before it come (a server answering out of order).
    Early(usize, u32, Vec<u8>),
    /// Nowhere: a repeat, a slice that no longer lines up, or an answer nobody asked for.
    Nowhere,
}

/// One round of partial fetches, as a sink: each answer is matched to the request it answers.
struct SliceRound<'a, 's> {
    active: &'a mut Vec<Slices>,
    plan: &'a [(usize, u32)],
    answered: Vec<bool>,
    into: SliceDestination,
    /// The round's bytes not yet written.
    batch: BodyBatch<'s>,
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
            SliceDestination::Message(i) => self.active[*i].writer.write(&mut self.batch, piece),
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
                self.stats.staged_bytes += len + m.take_early(&mut self.batch)?;
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
fn finish_round(
    store: &Store,
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
            batch.push(BodyWrite::Restart(m.writer.id));
            refuse(store, account_id, folder_name, m.writer.id, NIL_BODY)?;
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
            store.conn.execute("DELETE FROM message WHERE id = ?1", [m.writer.id])?;
            stats.vanished += 1;
            done.push(i);
        }
        // A short answer before the listed end leaves the later slices of that message misaligned:
        // they were dropped, and the next round asks again from where its bytes really end.
    }
    Ok(done)
}

/// One large message being staged slice by slice, in order.
struct Slices {
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
    fn new(p: &Pending, with_identity: bool) -> Slices {
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

    /// Hands the held slices that now line up to the batch; returns their bytes.
    fn take_early(&mut self, batch: &mut BodyBatch) -> Result<u64> {
        let mut stored = 0;
        while !self.ended
            && let Some(next) = self.early.remove(&self.offset)
        {
            self.writer.write(batch, &next)?;
            self.end_slice(batch, next.len() as u64)?;
            stored += next.len() as u64;
        }
        if self.ended {
            self.early.clear();
        }
        Ok(stored)
    }
}

/// After a UIDVALIDITY change the folder's messages come back under new UIDs. Each new row whose bytes
/// equal an old row that was already copied takes over the old row's place on the target, so it is
/// not appended a second time. Old rows never copied are dropped (their new twins will be).
pub fn merge_uidvalidity_orphans(store: &Store, folder_id: i64, uidvalidity: u32) -> Result<()> {
    let orphans: i64 = store.conn.query_row(
        "SELECT count(*) FROM message WHERE folder_id = ?1 AND uidvalidity != ?2",
        params![folder_id, uidvalidity],
        |r| r.get(0),
    )?;
    if orphans == 0 {
        return Ok(());
    }
    let pairs: Vec<(i64, i64)> = {
        let mut stmt = store.conn.prepare(
            "SELECT n.id, o.id FROM message n JOIN message o
               ON o.folder_id = n.folder_id AND o.uidvalidity != n.uidvalidity AND o.size = n.size AND o.sha256 = n.sha256
             WHERE n.folder_id = ?1 AND n.uidvalidity = ?2 AND n.push_state = 'pending' AND n.sha256 IS NOT NULL
               AND o.push_state IN ('pushed', 'appending', 'refused')
             ORDER BY n.uid, o.uid",
        )?;
        let rows = stmt.query_map(params![folder_id, uidvalidity], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let tx = store.write_transaction()?;
    let mut used_new = std::collections::BTreeSet::new();
    let mut used_old = std::collections::BTreeSet::new();
    for (new_id, old_id) in pairs {
        if used_new.contains(&new_id) || used_old.contains(&old_id) {
            continue;
        }
        used_new.insert(new_id);
        used_old.insert(old_id);
        tx.execute(
            "UPDATE message SET (push_state, target_folder_id, target_uidvalidity, target_uid, synced_flags, attempts) =
               (SELECT push_state, target_folder_id, target_uidvalidity, target_uid, synced_flags, attempts FROM message WHERE id = ?2)
             WHERE id = ?1",
            params![new_id, old_id],
        )?;
        tx.execute("UPDATE skip SET message_id = ?1 WHERE message_id = ?2", params![new_id, old_id])?;
        tx.execute("DELETE FROM message WHERE id = ?1", [old_id])?;
    }
    // Old rows that were never on the target are replaced by their new-UID twins.
    tx.execute(
        "DELETE FROM message WHERE folder_id = ?1 AND uidvalidity != ?2 AND push_state = 'pending'",
        params![folder_id, uidvalidity],
    )?;
    tx.commit()?;
    Ok(())
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

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set([1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set([4]), "4");
        assert_eq!(uid_set(Vec::<u32>::new()), "");
    }

    fn staged(store: &Store, id: i64) -> (Vec<u8>, Option<Vec<u8>>) {
        let chunks: Vec<u8> = store
            .conn
            .prepare("SELECT data FROM body_chunk WHERE message_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([id], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .flat_map(|c| c.unwrap())
            .collect();
        let hash = store.conn.query_row("SELECT sha256 FROM message WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        (chunks, hash)
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
        store.conn.execute("INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se')", []).unwrap();
        store.conn.execute("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        store.conn.execute("INSERT INTO message (folder_id, uidvalidity, uid, size, flags) VALUES (1, 1, 7, 0, '')", []).unwrap();
        let id = store.conn.last_insert_rowid();
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

    /// A store in a fresh directory with one account and its INBOX, and a message row per (uid, size).
    fn store_with_rows(name: &str, rows: &[(u32, usize)]) -> (std::path::PathBuf, Store, Vec<i64>) {
        let dir = std::env::temp_dir().join(format!("pf-pull-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        store.conn.execute("INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se')", []).unwrap();
        store.conn.execute("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        let mut ids = Vec::new();
        for &(uid, size) in rows {
            store
                .conn
                .execute(
                    "INSERT INTO message (folder_id, uidvalidity, uid, size, flags) VALUES (1, 1, ?1, ?2, '')",
                    params![uid, size as i64],
                )
                .unwrap();
            ids.push(store.conn.last_insert_rowid());
        }
        (dir, store, ids)
    }

    fn row_state(store: &Store, id: i64) -> (String, Option<Vec<u8>>, i64) {
        store
            .conn
            .query_row(
                "SELECT push_state, sha256, (SELECT count(*) FROM body_chunk WHERE message_id = ?1) FROM message WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
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
        let pending =
            [Pending { id: ids[0], uid: 5, size: 10, fetch_failures: 0 }, Pending { id: ids[1], uid: 6, size: 8, fetch_failures: 0 }];
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            let group = [pending.iter().collect::<Vec<_>>()];
            stage_one_by_one(&store, &mut session, 1, "INBOX", &group, &mut stats).await.unwrap();
        });
        let (state, hash, chunks) = row_state(&store, ids[0]);
        assert_eq!((state.as_str(), hash, chunks), ("refused", None, 0), "the damaged body is not staged");
        let says: String = store.conn.query_row("SELECT server_says FROM skip WHERE message_id = ?1", [ids[0]], |r| r.get(0)).unwrap();
        assert!(says.contains("Message damaged"), "{says}");
        let (state, hash, _) = row_state(&store, ids[1]);
        assert_eq!(state, "pending");
        assert_eq!(hash.as_deref(), Some(Sha256::digest(b"whole ok").as_slice()), "a body of its listed size is kept");
        assert_eq!(stats.staged, 1);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A body handed over in one large piece (a body held until its UID came, held slices that line up)
    /// is written as the batch fills, chunk by chunk, not queued whole before the bound is looked at.
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
        let size = 150_000usize;
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let slice = |offset: usize| {
            let end = (offset + SLICE as usize).min(size);
            let mut answer = format!("* 1 FETCH (UID 7 BODY[] {{{}}}\r\n", end - offset).into_bytes();
            answer.extend_from_slice(&body[offset..end]);
            answer.extend_from_slice(b")\r\n");
            answer
        };
        let mut first = slice(0);
        first.extend_from_slice(b"P1 OK done\r\nP2 NO Request is throttled. Suggested Backoff Time: 100 milliseconds\r\n");
        first.extend_from_slice(&slice(131_072));
        first.extend_from_slice(b"P3 OK done\r\n");
        let whole_round = |tags: [u32; 3]| {
            let mut round = Vec::new();
            for (tag, offset) in tags.into_iter().zip([0, 65_536, 131_072]) {
                round.extend_from_slice(&slice(offset));
                round.extend_from_slice(format!("P{tag} OK done\r\n").as_bytes());
            }
            round
        };
        let steps = vec![(3, first), (3, whole_round([4, 5, 6])), (3, whole_round([7, 8, 9]))];
        let (port, server) = scripted_server(steps, Pace::Whole);
        let (dir, store, ids) = store_with_rows("originless", &[(7, size)]);
        let pending = Pending { id: ids[0], uid: 7, size: size as u64, fetch_failures: 0 };
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            stage_large(&store, &mut session, 1, "INBOX", &[&pending], false, &mut stats).await.unwrap();
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
        let size = 150_000usize;
        let (dir, store, ids) = store_with_rows("nil-slice", &[(7, size)]);
        let mut answer = format!("* 1 FETCH (UID 7 BODY[]<0> {{{}}}\r\n", SLICE).into_bytes();
        answer.resize(answer.len() + SLICE as usize, b'x');
        answer.extend_from_slice(b")\r\nP1 OK done\r\n* 1 FETCH (UID 7 BODY[]<65536> NIL)\r\nP2 OK done\r\n");
        answer.extend_from_slice(b"* 1 FETCH (UID 7 BODY[]<131072> NIL)\r\nP3 OK done\r\n");
        let (port, server) = scripted_server(vec![(3, answer)], Pace::Whole);
        let pending = Pending { id: ids[0], uid: 7, size: size as u64, fetch_failures: 0 };
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            stage_large(&store, &mut session, 1, "INBOX", &[&pending], false, &mut stats).await.unwrap();
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

    /// A throttled slice in the middle of a round: the commands are sent again, and the repeats of the
    /// slices that came the first time must not be taken for the one that did not (they were, before:
    /// bytes 0-65535 were stored a second time as 65536-131071 and the message counted as staged). A
    /// scripted server, because Dovecot never throttles.
    #[test]
    fn repeats_after_a_throttled_slice_go_nowhere() {
        use crate::imap::body_fetch::tests::{Pace, connect, run, scripted_server};
        let size = 150_000usize;
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let slice = |offset: usize| {
            let end = (offset + SLICE as usize).min(size);
            let mut answer = format!("* 1 FETCH (UID 7 BODY[]<{offset}> {{{}}}\r\n", end - offset).into_bytes();
            answer.extend_from_slice(&body[offset..end]);
            answer.extend_from_slice(b")\r\n");
            answer
        };
        let mut first = slice(0);
        first.extend_from_slice(b"P1 OK done\r\nP2 NO Request is throttled. Suggested Backoff Time: 100 milliseconds\r\n");
        first.extend_from_slice(&slice(131_072));
        first.extend_from_slice(b"P3 OK done\r\n");
        let mut again = Vec::new();
        for (tag, offset) in [(4, 0), (5, 65_536), (6, 131_072)] {
            again.extend_from_slice(&slice(offset));
            again.extend_from_slice(format!("P{tag} OK done\r\n").as_bytes());
        }
        let (port, server) = scripted_server(vec![(3, first), (3, again)], Pace::Whole);
        let dir = std::env::temp_dir().join(format!("pf-pull-throttle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        store.conn.execute("INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se')", []).unwrap();
        store.conn.execute("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        store
            .conn
            .execute("INSERT INTO message (folder_id, uidvalidity, uid, size, flags) VALUES (1, 1, 7, ?1, '')", [size as i64])
            .unwrap();
        let id = store.conn.last_insert_rowid();
        let pending = Pending { id, uid: 7, size: size as u64, fetch_failures: 0 };
        let mut stats = PullStats::default();
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            stage_large(&store, &mut session, 1, "INBOX", &[&pending], false, &mut stats).await.unwrap();
        });
        let _ = server;
        let staged: Vec<u8> = store
            .conn
            .prepare("SELECT data FROM body_chunk WHERE message_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([id], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .flat_map(|c| c.unwrap())
            .collect();
        let hash: Option<Vec<u8>> = store.conn.query_row("SELECT sha256 FROM message WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        assert!(staged == body, "staged {} bytes, equal to the message: {}", staged.len(), staged == body);
        assert_eq!(hash.as_deref(), Some(Sha256::digest(&body).as_slice()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
