//! The bounded pipe between one account's readers (source into staging; two beyond the LAN, see
//! `lanes`) and its writer (staging into the target) during a pass. They run at once on the account's
//! task, each on its own connection, so the
//! download and the upload of the office line are busy together: the writer appends a folder's
//! messages while the reader still fetches later ones. The pipe holds what they tell each other:
//! how far each folder is (`Flow`), a signal when staging gained or lost bytes, and whether the
//! account stopped. The reader waits for room while staging holds the staging limit and the writer
//! has work that will free some (`room_to_stage`).
//!
//! Everything here lives on one thread (the account's worker), so plain cells do (but for one count of
//! the writers appending across all accounts, which share staging's limit); the signal wakes
//! whichever side waits.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::signal::Signal;
use crate::store::Store;
use crate::stream_append::Streams;

/// How far the reader is with one folder, as the writer needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Not listed yet (or listed with a UIDVALIDITY change, whose new rows may only be appended
    /// after they are matched to the old ones at the end of the folder).
    Waiting,
    /// Listed; staged messages may be appended while the rest are fetched.
    Streaming,
    /// Everything the reader will stage this pass is staged.
    Done,
    /// The reader could not read the folder; its error is recorded, the writer leaves it.
    Failed,
}

/// Writers of this process appending right now, over every account's pipe: staged bytes that will
/// leave staging soon whichever account they belong to (`room_to_stage`).
static WRITERS_BUSY: AtomicUsize = AtomicUsize::new(0);

/// How long a reader over the staging limit waits for the writer's signal before it looks again
/// (another account's writer freeing space does not signal this pipe).
const ROOM_RECHECK: Duration = Duration::from_millis(200);

#[derive(Default)]
pub struct Pipe {
    flows: RefCell<BTreeMap<i64, Flow>>,
    /// Per folder, the news count at its last news (`news_of`).
    folder_news: RefCell<BTreeMap<i64, u64>>,
    /// Folders the writer leaves until the next pass (`hold`).
    held: RefCell<BTreeSet<i64>>,
    /// Wakes the writer: a folder's flow changed, or the reader staged more.
    to_writer: Signal,
    /// Wakes the reader: the writer freed staging.
    to_reader: Signal,
    stopped: Cell<bool>,
    /// The writer is appending (not waiting for the reader): staged bytes will leave soon.
    writer_busy: Cell<bool>,
    /// The writer is done for this pass: nothing will free room any more.
    writer_finished: Cell<bool>,
    /// The reader's news the writer has taken in (`seen`); less than `to_writer`'s count means the
    /// writer has news it has not acted on yet, so room will come.
    writer_seen: Cell<u64>,
    /// The staging limit for this pass (`Store::staging_limit`, read once when the pass starts).
    limit: Cell<u64>,
    /// The one large message of the account sent to the target while it is still being fetched.
    pub streams: Streams,
}

impl Pipe {
    pub fn new(staging_limit: u64) -> Pipe {
        let pipe = Pipe::default();
        pipe.limit.set(staging_limit);
        pipe
    }

    pub fn flow(&self, folder_id: i64) -> Flow {
        self.flows.borrow().get(&folder_id).copied().unwrap_or(Flow::Waiting)
    }

    pub fn set_flow(&self, folder_id: i64, flow: Flow) {
        self.flows.borrow_mut().insert(folder_id, flow);
        self.staged_in(folder_id);
    }

    /// Some folder's new mail is being staged (a second reader is worth its connection).
    pub fn any_streaming(&self) -> bool {
        self.flows.borrow().values().any(|&flow| flow == Flow::Streaming)
    }

    /// The count of the readers' news so far, to wait past with `news_after` (the writer's own count
    /// is `seen`).
    pub fn news(&self) -> u64 {
        self.to_writer.seen()
    }

    /// A reader staged more of folder `folder_id`: a writer waiting for it looks again.
    pub fn staged_in(&self, folder_id: i64) {
        self.to_writer.notify();
        self.folder_news.borrow_mut().insert(folder_id, self.to_writer.seen());
    }

    /// The readers' news count at the last news of folder `folder_id` (staged mail, a flow changed):
    /// the writer pushes a folder again only after news of its own (`lanes::write_folders`).
    pub fn news_of(&self, folder_id: i64) -> u64 {
        self.folder_news.borrow().get(&folder_id).copied().unwrap_or(0)
    }

    /// The writer leaves folder `folder_id` until the next pass (the target refused a message for a
    /// reason that may pass): its reader stages no more of it (`held`).
    pub fn hold(&self, folder_id: i64) {
        self.held.borrow_mut().insert(folder_id);
        self.to_reader.notify();
    }

    /// Whether the writer left this folder until the next pass.
    pub fn held(&self, folder_id: i64) -> bool {
        self.held.borrow().contains(&folder_id)
    }

    /// The writer freed staging: a reader waiting for room looks again.
    pub fn freed(&self) {
        self.to_reader.notify();
    }

    /// The account's pass is over (an account-wide failure on either side): both sides stop at their
    /// next step.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.to_writer.notify();
        self.to_reader.notify();
    }

    pub fn stopped(&self) -> bool {
        self.stopped.get()
    }

    pub fn set_writer_busy(&self, busy: bool) {
        if self.writer_busy.replace(busy) != busy {
            if busy {
                WRITERS_BUSY.fetch_add(1, Ordering::Relaxed);
            } else {
                WRITERS_BUSY.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// The writer has returned: a reader that goes on alone does not wait for room.
    pub fn writer_finished(&self) {
        self.writer_finished.set(true);
        self.to_reader.notify();
    }

    /// The writer takes in the reader's news so far: the count to wait past with `news_after`.
    pub fn seen(&self) -> u64 {
        let seen = self.to_writer.seen();
        self.writer_seen.set(seen);
        seen
    }

    /// How many bytes of messages the reader stages at most between two looks at the room left: a
    /// sixteenth of the limit, between 1 and 16 MiB, so staging passes its limit by little (make bench
    /// with an eighth: 41.5 MiB for a 32 MiB limit with two accounts, each a window over).
    pub fn window_bytes(&self) -> u64 {
        (self.limit.get() / 16).clamp(1 << 20, 16 << 20)
    }

    /// Waits (the writer) until the reader staged more or a flow changed after `seen`.
    pub async fn news_after(&self, seen: u64) {
        self.to_writer.wait_past(seen).await
    }

    /// Waits, before the reader stages a window of `window` bytes, until staging has room for it
    /// under the limit, while this account's writer is appending or has news to act on (so room will
    /// come). A writer that has taken in all the news and waits for more means every staged byte of
    /// this account that can go has gone, so the reader goes on then (a message larger than the limit
    /// still moves): the limit is passed only by windows that other accounts admitted at the same
    /// moment, and never stops a pass. (Admitting a window while staging was merely under the limit
    /// let a 25 MB message in at 31 MiB of 32: make bench's staging row peaked at 41.1 MiB.)
    /// With two readers (`lanes::READERS_BEYOND_LAN`) the same holds: the writer takes staged mail
    /// from any folder (`lanes::write_folders`), so all of it can leave but a folder waiting to be
    /// whole, whose reader goes on while the writer waits. The two may each admit a window at the
    /// same moment, so one account may pass the limit by two windows (an eighth of it).
    pub async fn room_to_stage(&self, store: &Store, window: u64) -> Result<()> {
        loop {
            let writer_will_free =
                !self.writer_finished.get() && (self.writer_busy.get() || self.writer_seen.get() < self.to_writer.seen());
            // Staging is shared: another account's writer that is appending frees its bytes soon too.
            // Without this, a reader whose own writer had nothing left staged went past the limit while
            // the other accounts' batches filled it (the bench's two accounts under 32 MiB: 42.6 MiB).
            let others_will_free = WRITERS_BUSY.load(Ordering::Relaxed) > usize::from(self.writer_busy.get());
            if self.stopped()
                || !(writer_will_free || others_will_free)
                || store.staging_used_bytes()?.saturating_add(window) <= self.limit.get()
            {
                return Ok(());
            }
            let seen = self.to_reader.seen();
            smol::future::or(self.to_reader.wait_past(seen), async {
                smol::Timer::after(ROOM_RECHECK).await;
            })
            .await;
        }
    }
}

/// One folder's side of the pipe, as the reader staging it holds it.
#[derive(Clone, Copy)]
pub struct FolderPipe<'a> {
    pub pipe: &'a Pipe,
    pub folder_id: i64,
}

impl FolderPipe<'_> {
    /// More of this folder is staged: the writer hears of it.
    pub fn staged(&self) {
        self.pipe.staged_in(self.folder_id);
    }
}

impl Drop for Pipe {
    /// A pass that ended while its writer was appending (an error, a stop) is not counted as busy any more.
    fn drop(&mut self) {
        self.set_writer_busy(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_wakes_on_the_readers_news_and_not_on_its_own() {
        let pipe = Pipe::new(1);
        let seen = pipe.seen();
        let woke = Cell::new(false);
        smol::block_on(async {
            smol::future::zip(
                async {
                    pipe.news_after(seen).await;
                    woke.set(true);
                },
                async {
                    smol::Timer::after(Duration::from_millis(20)).await;
                    pipe.freed();
                    smol::Timer::after(Duration::from_millis(20)).await;
                    assert!(!woke.get(), "the writer woke before the reader's news");
                    pipe.set_flow(7, Flow::Streaming);
                },
            )
            .await;
        });
        assert!(woke.get());
        assert_eq!(pipe.flow(7), Flow::Streaming);
        assert_eq!(pipe.flow(8), Flow::Waiting);
    }
}
