//! The push phase: puts what staging holds and the target lacks into one target folder, exactly once.
//! Every APPEND is journalled first: the rows are marked `appending` and committed (synchronous=FULL)
//! before a byte goes out, and `pushed` with the target UID once the server's APPENDUID arrives. Rows
//! found `appending` later, and staged mail that may already be in a folder another tool filled, are
//! looked up on the target by exact size and SHA-256 of the bytes before anything is appended again.
//! Flag changes on the source are carried over as a three-way merge: only the flags the source added
//! or removed since the last sync are stored, so changes a user made on the target survive.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use crate::failure::{Retry, Scope};
use crate::fault;
use crate::imap::{AppendItem, BodyRequest, BodySink, FetchItem, ImapError, Session};
use crate::pull::uid_set;
// The row type lives with the store's target folder queries; `sync` still names it through here.
pub use crate::store::TargetFolderRow;
use crate::store::{DamagedBody, PendingAppend, PushState, StagedBody, Store, TargetCopy};
use crate::stream_append::Streams;

/// A flag change to make with one STORE: the flags to add and the flags to remove.
type FlagChange = (Vec<String>, Vec<String>);

/// At most this many messages and bytes per MULTIAPPEND command (one target transaction). A batch
/// waits a round trip for its answer before the next goes, so over an office line a batch must carry
/// much more than a round trip's worth: 50 messages of the bench's mail (about 1.7 MB) kept one
/// account's upload at about three quarters of a 100 Mbit/s line with 40 ms round trips at the end of
/// a migration; 200 (up to the byte cap) took the whole line from 81 to 83 %.
const APPEND_BATCH_COUNT: usize = 200;
const APPEND_BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// A message the target answered with an unclassified error is tried this many times, then skipped.
const MAX_ATTEMPTS: i64 = 3;

#[derive(Debug, Default, Clone)]
pub struct PushStats {
    pub appended: u64,
    pub appended_bytes: u64,
    pub matched: u64,
    pub flag_updates: u64,
    pub refused: u64,
    /// Times the target asked us to back off during APPEND.
    pub throttled: u64,
    /// Messages sent back to the source for their bytes: the target lost the copy we had put there
    /// (its folder deleted or re-created), and the bytes had left staging once the target took them.
    pub refetched: u64,
    /// Messages the users moved on the old server, moved on the target instead of appended (`mirror`).
    pub moved: u64,
    /// Of `appended`, the messages sent while they were still being fetched (`stream_append`).
    pub streamed: u64,
}

/// How far a push got with the look-up for copies already on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookUp {
    /// Looked (or there was nothing on the target to look through): later pushes of the folder in
    /// this pass append without looking again.
    Done,
    /// Nothing to look up with yet (no work, or nothing staged): the next push looks.
    NotYet,
    /// The target has mail to compare with the staged rows, and the reader is still staging the
    /// folder: push again once it is whole.
    NeedsWholeFolder,
    /// Looked, and the target refused a message for a reason that may pass: the rest of the folder
    /// waits for the next pass (one attempt per pass), so it is not pushed again in this one.
    HeldUntilNextPass,
}

fn split_flags(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Pushes one source folder's staged messages to its target folder (which exists and is selected by
/// this function). `source_folder_id` rows only, those larger than `size_limit` skipped. With nothing
/// to do the target folder is not even opened, unless `recheck` asks to look at its UIDVALIDITY anyway
/// (the last pass before verification). What the target does differently is `session.quirks()`.
/// `look_up` looks through the target folder for copies of staged messages that arrived another way
/// (another tool, a lost APPEND answer) before appending; a later push of the folder in the same pass
/// skips that once one has looked (`LookUp::Done`). `folder_whole`: the reader has staged all of the
/// folder it will this pass; a look-up by content waits for that (`LookUp::NeedsWholeFolder`).
// The folder's identity on both sides and the pass's settings; to become one struct when the store
// gets its own API (issue 14).
#[allow(clippy::too_many_arguments)]
pub async fn push_folder(
    store: &Store,
    account_id: i64,
    session: &mut Session,
    source_folder_id: i64,
    source_name: &str,
    target: &TargetFolderRow,
    size_limit: Option<u64>,
    look_up: bool,
    folder_whole: bool,
    recheck: bool,
    streams: Option<&Streams>,
    stats: &mut PushStats,
) -> Result<LookUp> {
    let quirks = session.quirks();
    if let Some(limit) = size_limit {
        skip_oversized(store, account_id, source_folder_id, source_name, limit, stats)?;
    }
    // A message the users moved on the old server is moved on the target, not appended again.
    stats.moved += crate::mirror::move_in(store, account_id, session, source_folder_id, target).await?;
    let work = store.push_work(source_folder_id, target.id, target.uidvalidity)?;
    if work == 0 && !(recheck && store.has_pushed(source_folder_id)?) {
        return Ok(LookUp::NotYet);
    }
    // A later push of the folder in the same pass, after one that looked it through up to our own
    // copies: APPEND names its folder, so the folder is not opened again (a round trip before every
    // push, and the writer pushes after each of the reader's groups). The APPENDUIDs show the
    // UIDVALIDITY that was checked at the first push still holds; a folder re-created on the target
    // since answers with another, and `append_batch` leaves those copies to the look-up. The folder
    // is opened only to store flag changes.
    let mut opened = None;
    if let (false, true, Some(uidvalidity)) = (look_up, target.indexed_uidnext > 1, target.uidvalidity) {
        let next =
            append_pending(store, account_id, session, source_folder_id, source_name, target, uidvalidity, size_limit, streams, stats)
                .await?;
        if next == Next::StopFolder {
            return Ok(LookUp::HeldUntilNextPass);
        }
        if store.flags_to_sync(source_folder_id, target.id, uidvalidity)?.is_empty() {
            return Ok(LookUp::Done);
        }
        let selected = session.select(&target.wire_name, false, false).await?;
        if selected.uidvalidity == Some(uidvalidity) {
            sync_flags(store, session, source_folder_id, target.id, uidvalidity, stats).await?;
            return Ok(LookUp::Done);
        }
        // Re-created on the target meanwhile: what we recorded there is reopened below, as when a
        // push finds it so.
        opened = Some(selected);
    }
    let selected = match opened {
        Some(selected) => selected,
        None => session.select(&target.wire_name, false, false).await?,
    };
    let Some(uidvalidity) = selected.uidvalidity else {
        bail!("{}: target folder {} has no UIDVALIDITY", session.label(), target.wire_name);
    };
    let mut indexed_uidnext = target.indexed_uidnext;
    if target.uidvalidity != Some(uidvalidity) || target.indexed_uidnext == 0 && target.uidvalidity.is_none() {
        // A new or re-created target folder: whatever we recorded there is no longer addressable by
        // UID. Those rows go back to 'appending' (maybe there, maybe not) and are looked up by content.
        store.write(|tx| {
            tx.reopen_pushes_elsewhere(source_folder_id, target.id, uidvalidity)?;
            tx.set_target_uidvalidity(target.id, uidvalidity)
        })?;
        indexed_uidnext = 1;
    } else if work == 0 {
        // A recheck that found the UIDVALIDITY unchanged: still nothing to do.
        return Ok(LookUp::NotYet);
    }
    let uidnext = selected.uidnext.unwrap_or(u32::MAX);
    if !look_up && indexed_uidnext > 1 {
        // A later push of the folder in the same pass: the look-up ran at its first, and what came
        // to the target since is what we appended (recorded by UID) or new mail that is not ours.
        let next =
            append_pending(store, account_id, session, source_folder_id, source_name, target, uidvalidity, size_limit, streams, stats)
                .await?;
        sync_flags(store, session, source_folder_id, target.id, uidvalidity, stats).await?;
        return Ok(if next == Next::StopFolder { LookUp::HeldUntilNextPass } else { LookUp::Done });
    }

    // Look-up: target messages we did not put there (another tool, a lost APPEND answer) that equal
    // staged rows not yet known to be there.
    let lookup = store.unplaced_count(source_folder_id)?;
    let appending = store.appending_count(source_folder_id)?;
    // On a re-rendering target only rows we were appending look anything up (see `match_by_identity`).
    let worth_looking = if quirks.exchange_rewrites_messages { appending > 0 } else { indexed_uidnext < uidnext || appending > 0 };
    // By content the look-up compares the target with the rows staged now and then marks the target
    // as looked through: with the reader still staging the folder, later rows would never be
    // compared, so it waits for the whole folder. (By identity only rows we were appending take part,
    // and those are all staged already.)
    let by_content = !quirks.exchange_rewrites_messages;
    if selected.exists > 0 && worth_looking && by_content && !folder_whole {
        return Ok(if lookup > 0 { LookUp::NeedsWholeFolder } else { LookUp::NotYet });
    }
    if lookup > 0 && selected.exists > 0 && worth_looking {
        stats.matched += if quirks.exchange_rewrites_messages {
            match_by_identity(store, session, source_folder_id, target.id, uidvalidity, indexed_uidnext).await?
        } else {
            match_existing(store, session, source_folder_id, target.id, uidvalidity, indexed_uidnext).await?
        };
        store.write(|tx| tx.set_indexed_uidnext(target.id, uidnext))?;
    }
    // What is still 'appending' was not found on the target: it never arrived, so it goes again.
    stats.refetched += store.write(|tx| tx.requeue_unfound_appends(source_folder_id))?;
    if selected.exists == 0 {
        store.write(|tx| tx.set_indexed_uidnext(target.id, uidnext))?;
    }

    let next =
        append_pending(store, account_id, session, source_folder_id, source_name, target, uidvalidity, size_limit, streams, stats).await?;
    sync_flags(store, session, source_folder_id, target.id, uidvalidity, stats).await?;
    Ok(if next == Next::StopFolder { LookUp::HeldUntilNextPass } else { LookUp::Done })
}

/// Messages larger than the target accepts are not sent at all: each is recorded as skipped with the
/// limit, so the operator sees them in the status and the report, and the pass goes on.
fn skip_oversized(
    store: &Store,
    account_id: i64,
    source_folder_id: i64,
    source_name: &str,
    limit: u64,
    stats: &mut PushStats,
) -> Result<()> {
    for (id, size) in store.oversized_pending(source_folder_id, limit)? {
        let reason = format!("{size} bytes is larger than the target's limit of {limit} bytes");
        store.write(|tx| {
            tx.mark_refused(id)?;
            tx.record_skip(account_id, Some(id), source_name, &reason, None)
        })?;
        stats.refused += 1;
    }
    Ok(())
}

/// Fetches size and bytes of target messages at or above `from_uid` that no row claims, and claims
/// each one for a staged row with the same size and SHA-256 (one to one, so two identical messages on
/// the source still need two on the target).
async fn match_existing(
    store: &Store,
    session: &mut Session,
    source_folder_id: i64,
    target_folder_id: i64,
    uidvalidity: u32,
    from_uid: u32,
) -> Result<u64> {
    let known = store.pushed_target_uids(target_folder_id, uidvalidity)?;
    let wanted_sizes = store.unplaced_sizes(source_folder_id)?;
    let mut candidates: Vec<(u32, u64, Vec<String>)> = Vec::new();
    session
        .uid_fetch(&[format!("{}:*", from_uid.max(1))], &[FetchItem::Uid, FetchItem::Size, FetchItem::Flags], None, &mut |meta| {
            let size = meta.size.unwrap_or(0) as u64;
            if meta.uid >= from_uid && !known.contains(&meta.uid) && wanted_sizes.contains(&size) {
                candidates.push((meta.uid, size, meta.flags));
            }
            Ok(())
        })
        .await?;
    let mut matched = 0;
    for (uid, size, flags) in candidates {
        let hash = hash_target_message(session, uid, size).await?;
        let Some(hash) = hash else { continue };
        // Prefer a row we were appending (it is most likely the one that landed). An error reading
        // stops the look-up: counted as no match, the copy would stay unclaimed and its row be
        // appended again, a duplicate on the target.
        let row = store.unplaced_by_content(source_folder_id, size, &hash)?;
        if let Some(id) = row {
            claim(store, id, TargetCopy { folder_id: target_folder_id, uidvalidity, uid }, &flags)?;
            matched += 1;
        }
    }
    Ok(matched)
}

/// Records that staged row `id` is the target message at `copy`, with the target's flags as the
/// three-way base when the row has none yet.
fn claim(store: &Store, id: i64, copy: TargetCopy, target_flags: &[String]) -> Result<()> {
    let mut flags = target_flags.to_vec();
    flags.sort();
    store.write(|tx| tx.claim_target_copy(id, copy, &flags.join(" ")))?;
    fault::point("push: existing message matched");
    Ok(())
}

/// `match_existing` for a target that re-renders messages (quirk `exchange_rewrites_messages`): each
/// target message at or above `from_uid` that no row claims is claimed by a row we were appending (a
/// lost answer, a crash, a changed UIDVALIDITY) with the same identity, one to one. Rows never sent do
/// not claim anything: mail delivered after the MX switch may reuse a Message-ID (scanners and some
/// mailers do), and a row that claimed it would never be copied. So mail another tool put into the
/// folder before us is copied again, not matched: a duplicate is visible, a lost message is not.
/// Streams: every answer is matched and written as it arrives, so memory stays flat whatever the
/// folder size.
async fn match_by_identity(
    store: &Store,
    session: &mut Session,
    source_folder_id: i64,
    target_folder_id: i64,
    uidvalidity: u32,
    from_uid: u32,
) -> Result<u64> {
    crate::identity::fill_staged(store, source_folder_id, PushState::Appending)?;
    let without_identity = store.appending_without_identity(source_folder_id)?;
    if without_identity > 0 {
        log::warn!(
            "{}: {without_identity} messages with no Message-ID, Date or From cannot be looked up on this target; \
             if their earlier copy arrived they will be there twice",
            session.label()
        );
    }
    let mut matched = 0;
    let items = [FetchItem::Uid, FetchItem::Flags, FetchItem::HeaderFields(crate::identity::HEADER_FIELDS)];
    session
        .uid_fetch(&[format!("{}:*", from_uid.max(1))], &items, None, &mut |meta| {
            if meta.uid < from_uid {
                return Ok(());
            }
            let keys = crate::identity::keys_of_header(meta.header.as_deref().unwrap_or_default());
            if keys.is_empty() {
                return Ok(());
            }
            let copy = TargetCopy { folder_id: target_folder_id, uidvalidity, uid: meta.uid };
            if store.target_uid_claimed(copy)? {
                return Ok(());
            }
            if let Some(id) = store.appending_by_identity(source_folder_id, keys.message_id.as_deref(), keys.headers.as_deref())? {
                claim(store, id, copy, &meta.flags)?;
                matched += 1;
            }
            Ok(())
        })
        .await?;
    Ok(matched)
}

/// SHA-256 of one target message, streamed through the hash as it arrives (never held whole); None
/// when the target did not give it or gave a different size.
async fn hash_target_message(session: &mut Session, uid: u32, size: u64) -> Result<Option<Vec<u8>>> {
    let mut sink = HashBody { uid, hasher: Sha256::new(), bytes: 0, seen: false, hashing: false };
    session.uid_fetch_bodies(&[BodyRequest { uid_set: uid.to_string(), range: None }], &mut sink).await.map_err(|e| {
        // A target that hangs up on a message it cannot read is a lost connection here (two reconnects):
        // the thirty of `HungUpOnMessage` are for the source, where each narrows down a message.
        match crate::imap::kind_of(&e) {
            Some(ImapError::HungUpOnMessage { label, reason }) => {
                let what = format!("the server closed the connection: {reason}");
                anyhow::Error::new(ImapError::ConnectionLost { label: label.clone(), what, bye: Some(reason.clone()) })
            }
            _ => e,
        }
    })?;
    if !sink.seen || sink.bytes != size {
        return Ok(None);
    }
    Ok(Some(sink.hasher.finalize().to_vec()))
}

/// Hashes the body of one UID (a repeat after throttling starts the hash over).
struct HashBody {
    uid: u32,
    hasher: Sha256,
    bytes: u64,
    seen: bool,
    hashing: bool,
}

impl BodySink for HashBody {
    fn begin(&mut self, uid: u32, origin: Option<u32>, _len: u32) -> Result<()> {
        self.hashing = uid == self.uid && origin.unwrap_or(0) == 0;
        if self.hashing {
            self.hasher = Sha256::new();
            self.bytes = 0;
            self.seen = true;
        }
        Ok(())
    }

    fn bytes(&mut self, piece: &[u8]) -> Result<()> {
        if self.hashing {
            self.hasher.update(piece);
            self.bytes += piece.len() as u64;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        self.hashing = false;
        Ok(())
    }

    fn nil(&mut self, _uid: u32) -> Result<()> {
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn append_pending(
    store: &Store,
    account_id: i64,
    session: &mut Session,
    source_folder_id: i64,
    source_name: &str,
    target: &TargetFolderRow,
    uidvalidity: u32,
    size_limit: Option<u64>,
    streams: Option<&Streams>,
    stats: &mut PushStats,
) -> Result<Next> {
    let multi = session.supports_multiappend();
    loop {
        // The reader stages while we append: a message over the target's limit that arrived since
        // the push began is skipped here, with the limit as its reason, before it is ever sent.
        if let Some(limit) = size_limit {
            skip_oversized(store, account_id, source_folder_id, source_name, limit, stats)?;
        }
        let limit = if multi { fault::batch_cap(APPEND_BATCH_COUNT) } else { 1 };
        let mut rows = store.pending_appends(source_folder_id, limit)?;
        if rows.is_empty() {
            return Ok(Next::Continue);
        }
        // A message whose bytes went up while they came down (`stream_append`) ends its APPEND on
        // the stream's connection, alone, once the bytes sent are found to be the row's; the rows
        // before it go first.
        if let Some(streams) = streams
            && let Some(at) = rows.iter().position(|row| streams.carries(row.id))
        {
            if at > 0 {
                rows.truncate(at);
            } else if let Some(sha256) = rows[0].place.sha256.clone()
                && streams.ready(rows[0].id, &target.wire_name, &rows[0].flags, rows[0].internal_date.as_deref(), &sha256).await
            {
                let single = &rows[..1];
                let next =
                    append_batch(store, account_id, session, source_name, target, uidvalidity, single, Bodies::Streamed(streams), stats)
                        .await?;
                if next == Next::StopFolder {
                    return Ok(Next::StopFolder);
                }
                continue;
            } else {
                // Given up while waiting for it: the rows are read again, as the next step finds them.
                continue;
            }
        }
        // Cap the batch by bytes (always at least one message). A row whose staged copy is not whole
        // (a power cut took it) is not journalled: it goes back to the source for its bytes.
        let mut batch = Vec::new();
        let mut bodies = Vec::new();
        let mut bytes = 0;
        for row in rows {
            if !batch.is_empty() && bytes + row.size > APPEND_BATCH_BYTES {
                break;
            }
            // The row was read in this same step (no await since `pending_appends`): its place holds.
            let Some(body) = staged_body(store, session, source_name, &row, true, stats)? else { continue };
            bytes += row.size;
            batch.push(row);
            bodies.push(body);
        }
        if batch.is_empty() {
            continue;
        }
        if append_batch(store, account_id, session, source_name, target, uidvalidity, &batch, Bodies::Staged(bodies), stats).await?
            == Next::StopFolder
        {
            return Ok(Next::StopFolder);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn append_batch(
    store: &Store,
    account_id: i64,
    session: &mut Session,
    source_name: &str,
    target: &TargetFolderRow,
    uidvalidity: u32,
    batch: &[PendingAppend],
    bodies: Bodies<'_>,
    stats: &mut PushStats,
) -> Result<Next> {
    let streamed = matches!(bodies, Bodies::Streamed(_));
    // The journal entry: committed before a byte of the APPEND is written (or, for a streamed
    // message, before its last byte: until then the server holds an unfinished command).
    store.write(|tx| {
        for row in batch {
            debug_assert_eq!(row.state, PushState::Pending);
            tx.mark_appending(row.id, target.id)?;
        }
        Ok(())
    })?;
    fault::point(if streamed { "push: streamed append journalled" } else { "push: append journalled" });

    let answer = match bodies {
        Bodies::Streamed(streams) => match streams.complete(batch[0].id).await {
            Ok(answer) => answer,
            Err(e) => {
                // The stream's connection failed with the last byte maybe sent: the row stays
                // `appending`, and the folder's next push looks for it (as after an APPEND without
                // APPENDUID) before it goes again from staging. The writer's own connection is fine.
                log::warn!("{}: {e:#}; the message is looked for on the target before it is sent again", session.label());
                store.write(|tx| tx.forget_indexed_uids(target.id))?;
                return Ok(Next::Continue);
            }
        },
        Bodies::Staged(bodies) => {
            let flag_lists: Vec<Vec<String>> = batch.iter().map(|r| split_flags(&r.flags)).collect();
            let mut readers: Vec<BodyReader> = bodies.into_iter().map(|body| BodyReader { body }).collect();
            let mut closures: Vec<Box<dyn FnMut() -> Result<Vec<u8>> + '_>> =
                readers.iter_mut().map(|reader| Box::new(move || reader.next(store)) as Box<dyn FnMut() -> Result<Vec<u8>>>).collect();
            let mut items: Vec<AppendItem<'_>> = batch
                .iter()
                .zip(flag_lists.iter())
                .zip(closures.iter_mut())
                .map(|((row, flags), body)| AppendItem {
                    flags,
                    internal_date: row.internal_date.as_deref(),
                    size: row.size,
                    body: body.as_mut(),
                })
                .collect();
            session
                .append(&target.wire_name, &mut items, &mut || {
                    fault::point("push: append sent, answer not read");
                    Ok(())
                })
                .await?
        }
    };

    if answer.answer.is_ok() {
        let quirks = session.quirks();
        let uids = answer.appended_uids();
        // Not waited for on disk (as the DAV side's PUT record): lost in a power cut, the rows are
        // still `appending` and the look-up finds the copies by size and SHA-256; the next journal
        // entry's sync makes it durable anyway. Half of the push's fsyncs, each blocking every account
        // of the pass while it lasts (about 1 ms on the development machine's disk).
        store.write_unsynced(|tx| match uids {
            Some((validity, uids)) if validity == uidvalidity && uids.len() == batch.len() => {
                let contiguous = uids.windows(2).all(|w| w[0].checked_add(1) == Some(w[1]));
                if let (true, Some(&first), Some(&last)) = (contiguous, uids.first(), uids.last()) {
                    // Our own copies, each recorded by UID, right after what was looked through: the
                    // folder is looked through past them, so the next push of this pass appends
                    // straight away instead of waiting for the whole folder to look it through again.
                    tx.extend_indexed_uidnext(target.id, first, last.saturating_add(1))?;
                }
                for (row, uid) in batch.iter().zip(uids) {
                    // With `exchange_drops_flagged_on_append`, \Flagged counts as not yet on the target, so the flag
                    // step of this same pass sets it with a STORE.
                    let copy = TargetCopy { folder_id: target.id, uidvalidity, uid };
                    tx.record_appended(row.id, copy, quirks.exchange_drops_flagged_on_append)?;
                }
                Ok(())
            }
            _ => {
                // Quirk `no_appenduid` (servers without UIDPLUS, and any answer without a usable
                // APPENDUID): the message is there but its UID is unknown. The rows stay 'appending'
                // so the next look-up finds them by content.
                log::warn!(
                    "{}: APPEND to {} gave no usable APPENDUID{}; the copies will be matched by content",
                    session.label(),
                    target.wire_name,
                    if quirks.no_appenduid { " (the server does not announce UIDPLUS)" } else { "" }
                );
                tx.forget_indexed_uids(target.id)
            }
        })?;
        stats.appended += batch.len() as u64;
        stats.appended_bytes += batch.iter().map(|r| r.size).sum::<u64>();
        stats.streamed += u64::from(streamed);
        fault::point(if streamed { "push: streamed append recorded" } else { "push: append recorded" });
        return Ok(Next::Continue);
    }

    // Quirk `exchange_throttled` for APPEND (Exchange Online): the answer asks us to wait; nothing was
    // stored. The rows go back to pending without using up an attempt, and the same batch is sent
    // again after the wait. A target that never stops throttling ends the account's pass.
    if let Some(wait) = crate::imap::throttle_delay(&answer.answer) {
        store.write(|tx| batch.iter().try_for_each(|row| tx.return_to_pending(row.id, true)))?;
        stats.throttled += 1;
        if stats.throttled > 50 {
            return Err(ImapError::Throttled {
                label: session.label().to_string(),
                what: format!("the target keeps throttling ({}); the next pass goes on", answer.answer.words()),
                delay: wait,
            }
            .into());
        }
        log::warn!("{}: the target is throttling APPEND; waiting {} ms as it asks", session.label(), wait.as_millis());
        smol::Timer::after(wait).await;
        return Ok(Next::Continue);
    }

    // Refused. MULTIAPPEND is all or nothing (RFC 3502), so nothing of this batch is on the target.
    store.write(|tx| batch.iter().try_for_each(|row| tx.return_to_pending(row.id, false)))?;
    if batch.len() > 1 {
        // Find the message at fault by sending them one at a time.
        for row in batch {
            let single = [PendingAppend { state: PushState::Pending, ..row.clone() }];
            let Some(body) = staged_body(store, session, source_name, row, false, stats)? else { continue };
            let bodies = Bodies::Staged(vec![body]);
            if Box::pin(append_batch(store, account_id, session, source_name, target, uidvalidity, &single, bodies, stats)).await?
                == Next::StopFolder
            {
                return Ok(Next::StopFolder);
            }
        }
        return Ok(Next::Continue);
    }
    let row = &batch[0];
    let words = answer.answer.words();
    // What a refusal means is `failure::append_refused`: the mailbox (the account's pass ends), the
    // message (skipped), or nothing known (tried again on later passes, then skipped).
    match crate::failure::append_refused(&answer.answer) {
        (Scope::Account, _) => {
            return Err(session.refused("APPEND", format!("the target refused new mail in {}: {words}", target.wire_name), &answer.answer));
        }
        (_, Retry::Now | Retry::NextPass) if store.append_attempts(row.id)? < MAX_ATTEMPTS => {
            // One attempt per pass: the rest of this folder waits for the next pass too, so a brief
            // outage does not use up every attempt within seconds.
            log::warn!("{}: APPEND to {} refused ({words}); will try again next pass", session.label(), target.wire_name);
            return Ok(Next::StopFolder);
        }
        _ => {
            store.write(|tx| {
                tx.mark_refused(row.id)?;
                tx.record_skip(account_id, Some(row.id), source_name, "the target refused the message", Some(&words))
            })?;
            stats.refused += 1;
            log::warn!("{}: a message in {source_name} ({} bytes) was refused by the target: {words}", session.label(), row.size);
        }
    }
    Ok(Next::Continue)
}

/// Where an APPEND's bytes come from.
enum Bodies<'a> {
    /// Read back from staging.
    Staged(Vec<StagedBody>),
    /// Sent already on the stream's connection, all but the last byte (`stream_append`).
    Streamed(&'a Streams),
}

/// Whether the folder's push goes on after a batch.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    StopFolder,
}

/// A pending row's staged copy for its APPEND; None when it is not whole (a power cut took it): the
/// row then goes back to the source for its bytes, in the refetch round of this pass.
fn staged_body(
    store: &Store,
    session: &Session,
    source_name: &str,
    row: &PendingAppend,
    read_with_row: bool,
    stats: &mut PushStats,
) -> Result<Option<StagedBody>> {
    let body = if read_with_row { store.open_staged(row.id, row.size, &row.place)? } else { store.staged_body(row.id, row.size)? };
    if body.is_none() {
        log::warn!("{}: the staged copy of a message in {source_name} is not whole; it is fetched again", session.label());
        store.write(|tx| tx.drop_damaged_body(row.id))?;
        stats.refetched += 1;
    }
    Ok(body)
}

/// Reads a staged body back piece by piece for its APPEND. A copy found damaged on the way (it fails
/// before its last piece, so the server never completes the APPEND) is released and its row fetched
/// again: the APPEND's journal entry stays, so the look-up after the reconnect decides as for any cut.
struct BodyReader {
    body: StagedBody,
}

impl BodyReader {
    fn next(&mut self, store: &Store) -> Result<Vec<u8>> {
        let piece = self.body.next_piece();
        if let Err(e) = &piece
            && let Some(damaged) = e.downcast_ref::<DamagedBody>()
        {
            log::warn!("{damaged}");
            store.write(|tx| tx.drop_damaged_body(damaged.id))?;
        }
        piece
    }
}

/// Carries source flag changes to the target: only what the source added or removed since the last
/// sync (three-way), so a flag the user changed on the target is left as the user set it.
async fn sync_flags(
    store: &Store,
    session: &mut Session,
    source_folder_id: i64,
    target_folder_id: i64,
    uidvalidity: u32,
    stats: &mut PushStats,
) -> Result<()> {
    // Group identical changes so one STORE covers many messages.
    let mut groups: BTreeMap<FlagChange, Vec<(i64, u32)>> = BTreeMap::new();
    for row in store.flags_to_sync(source_folder_id, target_folder_id, uidvalidity)? {
        let (added, removed) = flag_delta(&row.synced_flags, &row.flags);
        groups.entry((added, removed)).or_default().push((row.id, row.target_uid));
    }
    for ((added, removed), members) in groups {
        // Long UID sets are split: a STORE line must stay under the server's line limit (Dovecot:
        // 64 KiB), and "mark all as read" on scattered UIDs easily goes past it.
        for part in members.chunks(500) {
            let mut uids: Vec<u32> = part.iter().map(|(_, u)| *u).collect();
            uids.sort_unstable();
            let set = uid_set(uids);
            let mut all_ok = true;
            for (add, flags) in [(true, &added), (false, &removed)] {
                if flags.is_empty() {
                    continue;
                }
                let answer = session.uid_store_set(&set, add, flags).await?;
                if !answer.is_ok() {
                    all_ok = false;
                    log::warn!("{}: the target refused a flag change ({}); it is tried again next pass", session.label(), answer.words());
                }
            }
            if !all_ok {
                continue;
            }
            store.write(|tx| part.iter().try_for_each(|&(id, _)| tx.mark_flags_synced(id)))?;
            stats.flag_updates += part.len() as u64;
            fault::point("push: flags stored");
        }
    }
    Ok(())
}

/// Flags to add and to remove to go from `synced` to `now` (both space separated).
pub fn flag_delta(synced: &str, now: &str) -> (Vec<String>, Vec<String>) {
    let before: BTreeSet<&str> = synced.split_whitespace().collect();
    let after: BTreeSet<&str> = now.split_whitespace().collect();
    let added = after.difference(&before).map(|s| s.to_string()).collect();
    let removed = before.difference(&after).map(|s| s.to_string()).collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas() {
        assert_eq!(flag_delta("\\Seen", "\\Seen \\Flagged"), (vec!["\\Flagged".into()], vec![]));
        assert_eq!(flag_delta("\\Seen $X", "\\Seen"), (vec![], vec!["$X".into()]));
        assert_eq!(flag_delta("", ""), (vec![], vec![]));
    }
}
