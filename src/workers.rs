//! Runs the account workers of a pass, check or verification as tasks on the calling thread, not as
//! one thread each. A worker spends its time waiting on the network, so one thread keeps up with any
//! number of them, and every extra thread would cost memory of its own (the bench measured about
//! 60 KiB of stack and libc pages per worker thread): with tasks, four accounts in parallel need hardly
//! more memory than one.
//!
//! The one thing a thread did for free is waiting for SQLite. Each worker has its own connection. When
//! a worker's write transaction stayed open across network waits (a batch of bodies was written as it
//! arrived), a second worker on the same thread could not simply sleep in SQLite's busy handler: that
//! would stop the first worker too, and nothing would ever commit. So every connection got
//! `while_database_busy` as its busy handler: while it waits, it runs the other workers that have
//! something to do, which let the holder of the write lock finish and commit.
//!
//! Now no write transaction stays open across an `.await` (DESIGN.md section 4): pull and verify
//! gather a bounded batch in memory and write it in one short transaction, push journals before its
//! APPEND and records after it, each in a short transaction of its own. So the holder of the write
//! lock a worker waits for is never a worker of this thread parked at an await. It is another
//! thread's connection (the web server's, the appliance's check or finish thread) or another process
//! (a CLI command beside `serve`), in one short transaction; or a worker this handler polled, which
//! ends its short transaction inside that poll. What the busy handler still has to do is wait for
//! that holder, for which a sleep would do. It still runs the other workers meanwhile, so that one
//! worker waiting does not stop every socket of this thread; and as long as it does, it must stay
//! correct for that: a worker polled from here runs nested on this stack (`WORKER_THREAD_STACK`),
//! the waiting worker is skipped (its slot is borrowed), and a panic is caught, never unwound
//! through SQLite. The test `a_worker_waiting_for_the_write_lock_lets_the_holder_commit` keeps the
//! old case (a transaction held across an await) working should one slip in again. Making the
//! handler a plain sleep, without the nesting, is a later renovation.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A worker: a future that runs until its accounts are done.
pub type Worker<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// How long a statement on a thread without workers (the web server's) waits for another
/// connection's write lock before SQLite gives up with "database is locked".
pub const BUSY_LIMIT: Duration = Duration::from_secs(30);

/// On a thread that runs workers, a statement waits while the other workers get anywhere. The limit
/// dates from when the lock's holder could be one of them, in a transaction that lasted as long as
/// its network answer (a folder's whole listing, a batch of bodies, a throttling pause of up to
/// 60 s); now holders commit at once, and the limit is only an upper bound. It gives up after this
/// long in which no worker moved at all ...
pub const BUSY_LIMIT_AMONG_WORKERS: Duration = Duration::from_secs(150);

/// ... or after this long in all, however busy the others were, so that a waiter cannot be passed
/// over for ever.
pub const BUSY_LIMIT_IN_ALL: Duration = Duration::from_secs(15 * 60);

/// One connection's clock for its current wait for the write lock.
pub struct BusyWait {
    started: Instant,
    last_moved: Instant,
}

impl Default for BusyWait {
    fn default() -> BusyWait {
        BusyWait { started: Instant::now(), last_moved: Instant::now() }
    }
}

/// Runs `workers` on this thread until all are done. A worker's panic is raised here once the others
/// have finished, as a panicking worker thread's was when its scope ended.
pub fn run_together(workers: Vec<Worker<'_>>) {
    let waker_of_the_run = Arc::new(Mutex::new(None::<Waker>));
    let together = Together {
        slots: workers
            .into_iter()
            .map(|future| Slot {
                future: RefCell::new(Some(future)),
                wake: Arc::new(SlotWake {
                    woken: AtomicBool::new(true),
                    waker_of_the_run: Arc::clone(&waker_of_the_run),
                    thread: std::thread::current(),
                }),
            })
            .collect(),
        panic: RefCell::new(None),
    };
    let _active = Active::enter(&together);
    smol::block_on(std::future::poll_fn(|cx| {
        *waker_of_the_run.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        loop {
            let polled = together.poll_woken();
            if together.all_done() {
                return Poll::Ready(());
            }
            if !polled {
                return Poll::Pending;
            }
        }
    }));
    if let Some(panic) = together.panic.borrow_mut().take() {
        resume_unwind(panic);
    }
}

/// SQLite's busy handler for every connection (`attempt` counts from 0 for each statement that
/// waits): while another connection holds the write lock, run the workers of this thread that have
/// something to do (one of them may hold it), else wait for one to be woken, at most 10 ms. Meanwhile
/// their sockets are watched by async-io's own thread, which takes over from `block_on` when this
/// thread does not come back to it. Returns whether to try again (see the limits above).
pub fn while_database_busy(attempt: i32, wait: &mut BusyWait) -> bool {
    if attempt == 0 {
        *wait = BusyWait::default();
    }
    let together = ACTIVE.with(Cell::get);
    let gave_up = match together {
        Some(_) => wait.last_moved.elapsed() >= BUSY_LIMIT_AMONG_WORKERS || wait.started.elapsed() >= BUSY_LIMIT_IN_ALL,
        None => wait.started.elapsed() >= BUSY_LIMIT,
    };
    if gave_up {
        return false;
    }
    match together {
        // SAFETY: the pointer is set only while `run_together` runs on this thread, with `together`
        // alive on its stack, and reset before that returns (see `Active`); a busy handler runs on
        // the thread of the statement that waits, so here it points at a live `Together`.
        Some(together) if unsafe { together.as_ref() }.poll_woken() => wait.last_moved = Instant::now(),
        // A worker's waker unparks this thread, so a wait ends as soon as one has something to do.
        Some(_) => std::thread::park_timeout(Duration::from_millis(10)),
        // As SQLite's own busy timeout: short sleeps first, then 10 ms.
        None => std::thread::sleep(Duration::from_millis((attempt.clamp(0, 9) + 1) as u64)),
    }
    true
}

/// The stack of a thread that runs workers. A busy handler polls the other workers from inside a
/// statement, so with every worker waiting for the lock the stack holds up to one worker's poll per
/// worker (tens of KiB each); Rust's default of 2 MiB for a spawned thread is too tight for 32
/// workers. Only the pages touched cost memory.
const WORKER_THREAD_STACK: usize = 8 << 20;

/// Starts a thread that will run workers (the appliance's scheduler, check and finish threads), with
/// room for their nesting.
pub fn spawn_thread<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new().name(name.to_string()).stack_size(WORKER_THREAD_STACK).spawn(f)
}

struct Together<'a> {
    slots: Vec<Slot<'a>>,
    /// The first worker's panic, caught where it happened (maybe inside SQLite's busy handler, which
    /// must not unwind) and raised by `run_together` when the others are done.
    panic: RefCell<Option<Box<dyn Any + Send>>>,
}

struct Slot<'a> {
    /// `None` once the worker is done. Borrowed while the worker is being polled, so a busy handler
    /// that runs inside that poll skips it.
    future: RefCell<Option<Worker<'a>>>,
    wake: Arc<SlotWake>,
}

/// A worker's waker: marks it as having something to do and wakes the run, or the busy handler
/// waiting on the run's thread.
struct SlotWake {
    woken: AtomicBool,
    waker_of_the_run: Arc<Mutex<Option<Waker>>>,
    thread: std::thread::Thread,
}

impl Wake for SlotWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker_of_the_run.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            waker.wake_by_ref();
        }
        self.thread.unpark();
    }
}

impl Together<'_> {
    /// Polls each woken worker that is not being polled already (further up this thread's stack);
    /// whether any was.
    fn poll_woken(&self) -> bool {
        let mut polled = false;
        for slot in &self.slots {
            let Ok(mut future) = slot.future.try_borrow_mut() else { continue };
            let Some(worker) = future.as_mut() else { continue };
            if !slot.wake.woken.swap(false, Ordering::SeqCst) {
                continue;
            }
            polled = true;
            let waker = Waker::from(Arc::clone(&slot.wake));
            let mut cx = Context::from_waker(&waker);
            let polled_once = catch_unwind(AssertUnwindSafe(|| worker.as_mut().poll(&mut cx)));
            if matches!(polled_once, Ok(Poll::Pending)) {
                continue;
            }
            // Done or panicked: drop it here, where a panic in its drop is caught too.
            let finished = future.take();
            let dropped = catch_unwind(AssertUnwindSafe(|| drop(finished)));
            for panic in [polled_once.err(), dropped.err()].into_iter().flatten() {
                self.panic.borrow_mut().get_or_insert(panic);
            }
        }
        polled
    }

    fn all_done(&self) -> bool {
        self.slots.iter().all(|slot| slot.future.try_borrow().is_ok_and(|future| future.is_none()))
    }
}

thread_local! {
    /// The run in progress on this thread, for `while_database_busy`.
    static ACTIVE: Cell<Option<NonNull<Together<'static>>>> = const { Cell::new(None) };
}

/// Publishes a run to this thread's busy handlers while it lives; puts back what was there before.
struct Active(Option<NonNull<Together<'static>>>);

impl Active {
    fn enter(together: &Together<'_>) -> Active {
        // The lifetime is erased only for the thread-local; the pointer never outlives `together`
        // because `Active` is dropped first (it is declared after it in `run_together`).
        let pointer = NonNull::from(together).cast::<Together<'static>>();
        Active(ACTIVE.with(|active| active.replace(Some(pointer))))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|active| active.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn database(dir: &std::path::Path) -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t (worker INTEGER, n INTEGER);").unwrap();
        let mut wait = BusyWait::default();
        conn.busy_handler(Some(move |attempt| while_database_busy(attempt, &mut wait))).unwrap();
        conn
    }

    #[test]
    fn a_worker_waiting_for_the_write_lock_lets_the_holder_commit() {
        // Worker 0 holds a write transaction across timer waits (as a pull held one across network
        // waits before each write became a short transaction of its own); worker 1 writes meanwhile. On one thread with a sleeping busy handler this would
        // wait for BUSY_LIMIT_AMONG_WORKERS and fail; here both finish at once.
        let dir = std::env::temp_dir().join(format!("pf-workers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (first, second) = (database(&dir), database(&dir));
        let started = Instant::now();
        let holder = async {
            first.execute_batch("BEGIN; INSERT INTO t VALUES (0, 1);").unwrap();
            for n in 2..5 {
                smol::Timer::after(Duration::from_millis(30)).await;
                first.execute("INSERT INTO t VALUES (0, ?1)", [n]).unwrap();
            }
            first.execute_batch("COMMIT").unwrap();
        };
        let writer = async {
            smol::Timer::after(Duration::from_millis(10)).await;
            second.execute("INSERT INTO t VALUES (1, 1)", []).unwrap();
        };
        run_together(vec![Box::pin(holder), Box::pin(writer)]);
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        let rows: i64 = first.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_panicking_worker_is_raised_by_the_run_after_the_others_finish() {
        let finished = std::sync::atomic::AtomicBool::new(false);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_together(vec![
                Box::pin(async {
                    smol::Timer::after(Duration::from_millis(20)).await;
                    finished.store(true, Ordering::SeqCst);
                }),
                Box::pin(async { panic!("worker failed") }),
            ]);
        }));
        assert!(result.is_err());
        assert!(finished.load(Ordering::SeqCst), "the other worker was cut off");
    }
}
