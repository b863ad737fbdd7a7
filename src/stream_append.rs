//! One large message appended while it is still being fetched, on a target connection of its own.
//! Otherwise a message goes to the target only once it is staged whole: over the office line a 25 MB
//! message came down at its reader's share of the line for 13 s, and only then went up, alone at the
//! end of the migration (make bench, about 2 s of a 16 s run).
//!
//! From a source beyond the LAN (`Streams::allow`), the account's reader hands the bytes of one
//! message of at least `STREAM_MIN` to a `Feed` as they arrive (in order, the same pieces it hashes
//! and stages); the stream lane (`carry`, one more task of
//! the account's pass beside the readers and the writer) sends them at once as the literal of an
//! APPEND announced with the listed size. It holds back the literal's last byte: until that byte and
//! the command's line end are sent, the server holds an unfinished command that it drops with the
//! connection, so nothing is stored. The writer decides, as for any other message: when its push comes
//! to the row (staged whole, so hashed), it asks the lane whether the bytes it sent are that row's
//! (`Streams::ready`: same size, SHA-256, flags, date, folder), writes the same journal entry as for
//! any APPEND (`appending`, on the disk), and only then has the lane send the last byte
//! (`Streams::complete`). A kill before that entry leaves nothing on the target; after it, the row is
//! `appending` and the look-up decides, as after any cut (and if the lane's connection fails then, the
//! folder's next push looks the row up while the pass goes on). Anything else breaks the feed: the
//! reader starting the message over, a size other than the listed one, the lane's connection failing,
//! the writer finishing the folder without the row (a MOVE or the look-up took it) or not coming to it
//! within `DECISION_WAIT`. The lane then drops its connection, with the unfinished command, and the
//! message goes the ordinary way from staging.
//!
//! Everything lives on the account's thread; cells and `signal::Signal` suffice.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::fault;
use crate::imap::{AppendAnswer, AppendUnderWay, ImapError, Session};
use crate::signal::Signal;
use crate::store::Store;

/// The smallest message streamed. Smaller ones come down in about a second even at an eighth of an
/// office line, and a stream costs a login on a connection of its own.
pub const STREAM_MIN: u64 = 4 * 1024 * 1024;

/// Bytes the reader may have handed over that the lane has not sent yet: the reader waits before its
/// next round of slices while the feed holds more (a round is up to 2 MiB).
const FEED_ROOM: usize = 1024 * 1024;

/// How long a stream whose bytes are all sent but the last waits for the writer to come to its row.
/// The writer may be busy with the rows before it, or wait for the folder's look-up; past this the
/// APPEND is given up (nothing is stored) and the message goes from staging. It also ends a wait on
/// a target that locks a folder for the whole of an unfinished APPEND while the writer appends to the
/// same folder on its own connection.
const DECISION_WAIT: Duration = Duration::from_secs(60);

/// Streams under way in this process at once, over every account: each holds up to a round of slices
/// and `FEED_ROOM` in memory. (The unit tests, running at once, each hold their own.)
const STREAMS_AT_ONCE: usize = if cfg!(test) { 64 } else { 2 };
static STREAMING: AtomicUsize = AtomicUsize::new(0);

/// One of `STREAMS_AT_ONCE`, given back when its feed goes.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        STREAMING.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < STREAMS_AT_ONCE).then_some(n + 1)).ok().map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        STREAMING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the writer asked the lane to do with a stream that is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Complete,
    Abandon,
}

/// What the lane announced and sent of a stream, for the writer to compare with the row.
struct Sent {
    target_wire: String,
    flags: String,
    internal_date: Option<String>,
    sha256: Vec<u8>,
}

/// The one message of an account being streamed.
struct Feed {
    row_id: i64,
    folder_id: i64,
    size: u64,
    /// Handed over by the reader, not yet taken by the lane.
    pieces: VecDeque<Vec<u8>>,
    buffered: usize,
    /// Bytes the reader handed over in all.
    received: u64,
    /// The reader staged it whole, with its hash, and every byte was handed over.
    whole: bool,
    /// It will not be completed: the lane drops its connection.
    broken: bool,
    /// Set by the lane once every byte but the last is sent.
    sent: Option<Sent>,
    decision: Option<Decision>,
    answer: Option<Result<AppendAnswer>>,
    /// The lane has begun sending this feed.
    taken: bool,
    _slot: Slot,
}

/// An account's stream during a pass, shared by its readers, its writer and its stream lane.
#[derive(Default)]
pub struct Streams {
    feed: RefCell<Option<Feed>>,
    /// Wakes the lane: bytes came, the feed ended or broke, the writer decided, the pass ended.
    to_lane: Signal,
    /// Wakes the reader (room in the feed) and the writer (the lane is ready, or answered).
    from_lane: Signal,
    /// The writer is done: the lane ends, and no feed starts.
    ended: Cell<bool>,
    /// The lane could not open its connection: no stream this pass.
    disabled: Cell<bool>,
    /// Streams are for a source beyond the LAN (`allow`).
    allowed: Cell<bool>,
    /// The lane's connection as the log names it.
    label: RefCell<String>,
    /// The largest message the target takes (`push::skip_oversized` skips the rest): none larger is
    /// streamed, since its APPEND would never be completed.
    size_limit: Cell<Option<u64>>,
}

impl Streams {
    /// Lets messages stream this pass: from a source beyond the LAN (`Session::beyond_lan`), each no
    /// larger than the target's limit (`Session::message_size_limit`). From a source on the LAN a
    /// large message comes down in a fraction of a second and then goes up at the speed a stream
    /// would: on the bench's loopback migration streams bought no time and cost 1.5 MiB of peak memory.
    pub fn allow(&self, beyond_lan: bool, size_limit: Option<u64>) {
        self.allowed.set(beyond_lan);
        self.size_limit.set(size_limit);
    }

    /// The reader begins staging message `row_id` of `folder_id` (listed `size` bytes): Some when its
    /// bytes are to be handed over as they come (`hand_over`); the guard breaks the feed if the reader
    /// leaves the message unfinished.
    pub fn offer(&self, row_id: i64, folder_id: i64, size: u64) -> Option<FeedGuard<'_>> {
        let too_large = self.size_limit.get().is_some_and(|limit| size > limit);
        if !self.allowed.get()
            || self.ended.get()
            || self.disabled.get()
            || too_large
            || size < fault::stream_min(STREAM_MIN)
            || self.feed.borrow().is_some()
        {
            return None;
        }
        let slot = Slot::take()?;
        *self.feed.borrow_mut() = Some(Feed {
            row_id,
            folder_id,
            size,
            pieces: VecDeque::new(),
            buffered: 0,
            received: 0,
            whole: false,
            broken: false,
            sent: None,
            decision: None,
            answer: None,
            taken: false,
            _slot: slot,
        });
        self.to_lane.notify();
        Some(FeedGuard { streams: self, row_id })
    }

    /// The reader's next bytes of `row_id`, starting at `offset` of the message. Bytes out of order
    /// (the message started over) or past the listed size break the feed.
    pub fn hand_over(&self, row_id: i64, offset: u64, piece: &[u8]) {
        let mut feed = self.feed.borrow_mut();
        let Some(feed) = feed.as_mut().filter(|f| f.row_id == row_id && !f.broken) else { return };
        if offset != feed.received || feed.received + piece.len() as u64 > feed.size || feed.whole {
            feed.broken = true;
        } else {
            feed.received += piece.len() as u64;
            feed.buffered += piece.len();
            feed.pieces.push_back(piece.to_vec());
        }
        self.to_lane.notify();
    }

    /// The reader staged `row_id` whole (its hash committed) at `total` bytes; called right after
    /// that commit, before anything else can run, so the writer never sees the row staged without
    /// knowing its feed is complete. A total other than the listed size breaks the feed.
    pub fn staged_whole(&self, row_id: i64, total: u64) {
        if let Some(feed) = self.feed.borrow_mut().as_mut().filter(|f| f.row_id == row_id && !f.broken) {
            if total == feed.size && feed.received == total {
                feed.whole = true;
            } else {
                // The source lists sizes other than what it sends: every stream of this pass would go
                // up whole and then again from staging.
                log::info!("a message came at another size than the old server listed; large messages go once staged this pass");
                feed.broken = true;
                self.disabled.set(true);
            }
        }
        self.to_lane.notify();
    }

    /// The reader left `row_id` without staging it whole (a failed round, NIL, vanished, refused).
    fn left(&self, row_id: i64) {
        if let Some(feed) = self.feed.borrow_mut().as_mut().filter(|f| f.row_id == row_id && !f.whole) {
            feed.broken = true;
        }
        self.to_lane.notify();
    }

    /// Waits while the feed of `row_id` holds more than `FEED_ROOM` bytes the lane has not sent.
    pub async fn room(&self, row_id: i64) {
        loop {
            let seen = self.from_lane.seen();
            let full = self.feed.borrow().as_ref().is_some_and(|f| f.row_id == row_id && !f.broken && f.buffered > FEED_ROOM);
            if !full || self.ended.get() {
                return;
            }
            self.from_lane.wait_past(seen).await;
        }
    }

    /// Whether the bytes of `row_id` are on their way to the target on the lane's connection.
    pub fn carries(&self, row_id: i64) -> bool {
        !self.ended.get() && self.feed.borrow().as_ref().is_some_and(|f| f.row_id == row_id && !f.broken)
    }

    /// The writer's push came to `row_id`, staged whole: waits until the lane has sent every byte but
    /// the last, and tells whether those bytes and what their APPEND announced are the row's. When
    /// they are not (or the feed broke), the stream is given up and the row goes the ordinary way.
    pub async fn ready(&self, row_id: i64, target_wire: &str, flags: &str, internal_date: Option<&str>, sha256: &[u8]) -> bool {
        loop {
            let seen = self.from_lane.seen();
            {
                let mut feed = self.feed.borrow_mut();
                let Some(feed) = feed.as_mut().filter(|f| f.row_id == row_id) else { return false };
                if feed.broken || self.ended.get() {
                    return false;
                }
                if let Some(sent) = &feed.sent {
                    let same = sent.target_wire == target_wire
                        && sent.flags == flags
                        && sent.internal_date.as_deref() == internal_date
                        && sent.sha256 == sha256;
                    if !same {
                        log::warn!(
                            "{}: a message streamed to the target changed before its APPEND ended; it is sent again from staging",
                            self.label.borrow()
                        );
                        feed.decision = Some(Decision::Abandon);
                        feed.broken = true;
                        self.to_lane.notify();
                    }
                    return same;
                }
            }
            self.from_lane.wait_past(seen).await;
        }
    }

    /// After the journal entry: the lane sends the last byte, and its answer comes back. An Err is a
    /// failed connection with the APPEND's outcome unknown (the row stays `appending`).
    pub async fn complete(&self, row_id: i64) -> Result<AppendAnswer> {
        if let Some(feed) = self.feed.borrow_mut().as_mut().filter(|f| f.row_id == row_id) {
            feed.decision = Some(Decision::Complete);
        }
        self.to_lane.notify();
        loop {
            let seen = self.from_lane.seen();
            {
                let mut slot = self.feed.borrow_mut();
                let Some(feed) = slot.as_mut().filter(|f| f.row_id == row_id) else {
                    let label = self.label.borrow().clone();
                    return Err(ImapError::lost(&label, "the connection carrying a large message closed before its APPEND ended").into());
                };
                if let Some(answer) = feed.answer.take() {
                    *slot = None;
                    self.from_lane.notify();
                    return answer;
                }
            }
            self.from_lane.wait_past(seen).await;
        }
    }

    /// The writer is done with a folder for this pass (pushed whole, held or failed): a stream of its
    /// messages will not be completed, so it is given up now and its slot freed.
    pub fn give_up_folder(&self, folder_id: i64) {
        if let Some(feed) = self.feed.borrow_mut().as_mut().filter(|f| f.folder_id == folder_id && f.decision.is_none()) {
            feed.broken = true;
        }
        self.to_lane.notify();
    }

    /// The writer is done for this pass: the lane ends, giving up what it has not completed.
    pub fn end(&self) {
        self.ended.set(true);
        self.to_lane.notify();
        self.from_lane.notify();
    }

    /// Drops a broken feed (the lane's side), so the reader's next large message may take its place.
    fn drop_broken(&self) {
        let mut feed = self.feed.borrow_mut();
        if feed.as_ref().is_some_and(|f| f.broken) {
            *feed = None;
        }
        self.from_lane.notify();
    }
}

/// The reader's hold on a feed: dropped before the message is staged whole, it breaks the feed.
pub struct FeedGuard<'a> {
    streams: &'a Streams,
    row_id: i64,
}

impl FeedGuard<'_> {
    /// The message whose bytes the reader hands over.
    pub fn row_id(&self) -> i64 {
        self.row_id
    }
}

impl Drop for FeedGuard<'_> {
    fn drop(&mut self) {
        self.streams.left(self.row_id);
    }
}

/// The stream lane of an account's pass: sends each feed as it fills on a target connection of its
/// own, opened by `open` at the first one, until the writer is done. `target_wires` names each source
/// folder's target folder as APPEND names it. Its failures are never the pass's: the message goes the
/// ordinary way, and `login` names the account in the log. Returns how often its connection's
/// server asked to slow down (`Session::throttled`), for the pass's count.
pub async fn carry<F, O>(streams: &Streams, store: &Store, login: &str, target_wires: &BTreeMap<i64, String>, open: F) -> u64
where
    F: Fn() -> O,
    O: Future<Output = Result<Session>>,
{
    streams.label.replace(format!("target {login}"));
    let mut session: Option<Session> = None;
    let mut throttled = 0;
    loop {
        // The next feed not yet taken, or the end; one broken before it was taken goes.
        let row_id = loop {
            let seen = streams.to_lane.seen();
            if streams.ended.get() {
                break None;
            }
            let next = {
                let mut feed = streams.feed.borrow_mut();
                match feed.as_mut() {
                    Some(f) if f.broken && !f.taken => {
                        *feed = None;
                        streams.from_lane.notify();
                        None
                    }
                    Some(f) if !f.taken && !f.broken => {
                        f.taken = true;
                        Some(f.row_id)
                    }
                    _ => None,
                }
            };
            if next.is_some() {
                break next;
            }
            streams.to_lane.wait_past(seen).await;
        };
        let Some(row_id) = row_id else { break };
        if session.is_none() {
            match open().await {
                Ok(opened) => session = Some(opened),
                Err(e) => {
                    log::warn!("{login}: a second connection to the target failed ({e:#}); large messages go once staged");
                    streams.disabled.set(true);
                    break_feed(streams);
                    continue;
                }
            }
        }
        let Some(open_session) = session.as_mut() else {
            break_feed(streams);
            continue;
        };
        let sending = send(streams, store, open_session, row_id, target_wires).await;
        throttled += open_session.throttled;
        open_session.throttled = 0;
        match sending {
            Ok(Sending::Ended) => {}
            // The writer has the error; the connection cannot be used again.
            Ok(Sending::EndFailed) => session = None,
            // Nothing of the command was left unfinished: the connection serves the next one.
            Ok(Sending::NotBegun) => break_feed(streams),
            Ok(Sending::GivenUp) => {
                // Given up half-way: the server drops the unfinished APPEND with the connection.
                session = None;
                break_feed(streams);
            }
            Err(e) => {
                log::warn!("{login}: streaming a large message to the target failed ({e:#}); it goes once staged");
                session = None;
                break_feed(streams);
            }
        }
    }
    break_feed(streams);
    if let Some(session) = session {
        session.logout().await;
    }
    throttled
}

fn break_feed(streams: &Streams) {
    if let Some(feed) = streams.feed.borrow_mut().as_mut() {
        feed.broken = true;
    }
    streams.drop_broken();
}

/// How a feed's APPEND went, as the lane needs to know.
enum Sending {
    /// The answer came; the writer has it.
    Ended,
    /// Its end failed (the outcome is unknown and the writer has the error): the connection goes.
    EndFailed,
    /// Given up before its last byte: the connection goes, and with it the unfinished command.
    GivenUp,
    /// Given up before the command began, or refused at its start: the connection is as before.
    NotBegun,
}

/// Sends one feed: the APPEND's announcement, every byte but the last as it comes, and the last after
/// the writer's journal entry.
async fn send(
    streams: &Streams,
    store: &Store,
    session: &mut Session,
    row_id: i64,
    target_wires: &BTreeMap<i64, String>,
) -> Result<Sending> {
    let (folder_id, size) = match streams.feed.borrow().as_ref() {
        Some(f) => (f.folder_id, f.size),
        None => return Ok(Sending::NotBegun),
    };
    let Some(target_wire) = target_wires.get(&folder_id) else { return Ok(Sending::NotBegun) };
    let Some((flags, internal_date)) = store.append_head(row_id)? else { return Ok(Sending::NotBegun) };
    if streams.ended.get() {
        return Ok(Sending::NotBegun);
    }
    let flag_list: Vec<String> = flags.split_whitespace().map(str::to_string).collect();
    let mut under_way: AppendUnderWay = match session.begin_append(target_wire, &flag_list, internal_date.as_deref(), size).await? {
        Ok(under_way) => under_way,
        Err(refused) => {
            log::warn!("{}: the target refused to take a streamed message ({})", session.label(), refused.answer.words());
            return Ok(Sending::NotBegun);
        }
    };
    let mut hasher = Sha256::new();
    let mut sent: u64 = 0;
    // The literal's last byte, held back until the writer's journal entry.
    let mut last: Vec<u8> = Vec::new();
    let mut unflushed = false;
    let mut flushed_once = false;
    loop {
        let seen = streams.to_lane.seen();
        // One piece at a time, counted out of the feed's room only once it is sent.
        let (piece, whole) = {
            let mut feed = streams.feed.borrow_mut();
            let Some(feed) = feed.as_mut().filter(|f| f.row_id == row_id) else { return Ok(Sending::GivenUp) };
            if feed.broken || streams.ended.get() {
                return Ok(Sending::GivenUp);
            }
            (feed.pieces.pop_front(), feed.whole)
        };
        let Some(piece) = piece else {
            if unflushed {
                session.flush_writes().await?;
                unflushed = false;
                if !flushed_once {
                    flushed_once = true;
                    fault::point_once("push: streamed bytes sent, not journalled");
                }
            }
            if whole {
                break;
            }
            streams.to_lane.wait_past(seen).await;
            continue;
        };
        hasher.update(&piece);
        let room = (size - 1).saturating_sub(sent) as usize;
        let (now, held) = piece.split_at(room.min(piece.len()));
        if !now.is_empty() {
            session.append_more(&mut under_way, now).await?;
            sent += now.len() as u64;
            unflushed = true;
        }
        last.extend_from_slice(held);
        if let Some(feed) = streams.feed.borrow_mut().as_mut().filter(|f| f.row_id == row_id) {
            feed.buffered = feed.buffered.saturating_sub(piece.len());
        }
        streams.from_lane.notify();
    }
    if sent + last.len() as u64 != size || last.len() != 1 {
        return Ok(Sending::GivenUp);
    }
    // Ready: the writer compares and decides, within `DECISION_WAIT`.
    let sha256 = hasher.finalize().to_vec();
    if let Some(feed) = streams.feed.borrow_mut().as_mut().filter(|f| f.row_id == row_id) {
        feed.sent = Some(Sent { target_wire: target_wire.clone(), flags, internal_date, sha256 });
    }
    streams.from_lane.notify();
    let deadline = Instant::now() + DECISION_WAIT;
    let decision = loop {
        let seen = streams.to_lane.seen();
        let decision = streams.feed.borrow().as_ref().filter(|f| f.row_id == row_id).and_then(|f| f.decision);
        if let Some(decision) = decision {
            break decision;
        }
        let broken = streams.feed.borrow().as_ref().filter(|f| f.row_id == row_id).is_none_or(|f| f.broken);
        let left = deadline.saturating_duration_since(Instant::now());
        if broken || streams.ended.get() || left.is_zero() {
            if left.is_zero() {
                log::info!(
                    "{}: the writer did not come to a streamed message within {} s; it goes from staging",
                    session.label(),
                    DECISION_WAIT.as_secs()
                );
            }
            return Ok(Sending::GivenUp);
        }
        smol::future::or(streams.to_lane.wait_past(seen), async {
            smol::Timer::after(left).await;
        })
        .await;
    };
    if decision == Decision::Abandon {
        return Ok(Sending::GivenUp);
    }
    let answer = session
        .finish_append(under_way, &last, &mut || {
            fault::point("push: streamed append sent, answer not read");
            Ok(())
        })
        .await;
    let outcome = if answer.is_ok() { Sending::Ended } else { Sending::EndFailed };
    if let Some(feed) = streams.feed.borrow_mut().as_mut().filter(|f| f.row_id == row_id) {
        feed.answer = Some(answer);
    }
    streams.from_lane.notify();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 5 * 1024 * 1024;

    fn allowed() -> Streams {
        let streams = Streams::default();
        streams.allow(true, None);
        streams
    }

    #[test]
    fn one_feed_at_a_time_and_none_the_target_would_refuse() {
        let streams = allowed();
        let guard = streams.offer(1, 10, BIG);
        assert!(guard.is_some());
        assert!(streams.offer(2, 10, BIG).is_none(), "a second message while one streams");
        assert!(allowed().offer(3, 10, STREAM_MIN - 1).is_none(), "a message under the minimum");
        assert!(Streams::default().offer(3, 10, BIG).is_none(), "from a source on the LAN");
        let limited = Streams::default();
        limited.allow(true, Some(BIG - 1));
        assert!(limited.offer(4, 10, BIG).is_none(), "a message over the target's limit");
        let ended = allowed();
        ended.end();
        assert!(ended.offer(5, 10, BIG).is_none(), "after the writer is done");
    }

    #[test]
    fn bytes_out_of_order_or_past_the_listed_size_break_the_feed() {
        let streams = allowed();
        let _guard = streams.offer(1, 10, BIG);
        streams.hand_over(1, 0, &[b'a'; 100]);
        streams.hand_over(2, 0, &[b'b'; 100]);
        assert!(streams.carries(1), "in order, and another message's bytes go elsewhere");
        streams.hand_over(1, 0, &[b'a'; 100]);
        assert!(!streams.carries(1), "the message started over");

        let streams = allowed();
        let guard = streams.offer(1, 10, BIG);
        streams.hand_over(1, 0, &vec![b'a'; BIG as usize + 1]);
        assert!(!streams.carries(1), "longer than announced");
        drop(guard);
    }

    #[test]
    fn a_message_left_unfinished_or_ending_at_another_size_breaks_the_feed() {
        let streams = allowed();
        let guard = streams.offer(1, 10, BIG);
        streams.hand_over(1, 0, &[b'a'; 1000]);
        drop(guard);
        assert!(!streams.carries(1), "the reader left it");

        let streams = allowed();
        let guard = streams.offer(1, 10, BIG);
        streams.hand_over(1, 0, &[b'a'; 1000]);
        streams.staged_whole(1, 1000);
        assert!(!streams.carries(1), "whole at another size than the APPEND announced");
        drop(guard);

        let streams = allowed();
        let guard = streams.offer(1, 10, BIG);
        streams.hand_over(1, 0, &vec![b'a'; BIG as usize]);
        streams.staged_whole(1, BIG);
        drop(guard);
        assert!(streams.carries(1), "whole at its size: the guard's drop leaves it");
    }
}
