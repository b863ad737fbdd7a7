//! Runs the account workers of a pass, check or verification as tasks on the calling thread, not as
//! one thread each. A worker spends its time waiting on the network, so one thread keeps up with any
//! number of them, and every extra thread would cost memory of its own (the bench measured about
//! 60 KiB of stack and libc pages per worker thread): with tasks, four accounts in parallel need hardly
//! more memory than one.
//!
//! Waiting for SQLite's write lock is a plain sleep (`store::open` sets `BUSY_LIMIT` as the
//! connection's busy timeout). That is sound because no write transaction stays open across an
//! `.await` (DESIGN.md section 4; `Store::write` takes a synchronous closure): the holder a worker
//! waits for is never a worker of this thread parked at an await, but another thread's or another
//! process's short transaction, which commits without this thread's help. The sleep pauses this
//! thread's other workers for as long as that transaction lasts (milliseconds); their sockets keep
//! receiving into the kernel's buffers meanwhile.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A worker: a future that runs until its accounts are done.
pub type Worker<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// How long a statement waits for another connection's write lock before SQLite gives up with
/// "database is locked". Every holder is a short transaction, so this is a bound for a stuck holder
/// (a CLI command stopped with ^Z in the middle of one), not a wait anyone should see.
pub const BUSY_LIMIT: Duration = Duration::from_secs(30);

/// Runs `workers` on this thread until all are done. A worker's panic is raised here once the others
/// have finished, as a panicking worker thread's was when its scope ended.
pub fn run_together(workers: Vec<Worker<'_>>) {
    let waker_of_the_run = Arc::new(Mutex::new(None::<Waker>));
    let mut slots: Vec<Slot<'_>> = workers
        .into_iter()
        .map(|future| Slot {
            future: Some(future),
            wake: Arc::new(SlotWake { woken: AtomicBool::new(true), waker_of_the_run: Arc::clone(&waker_of_the_run) }),
        })
        .collect();
    let mut first_panic: Option<Box<dyn Any + Send>> = None;
    smol::block_on(std::future::poll_fn(|cx| {
        *waker_of_the_run.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        loop {
            let polled = poll_woken(&mut slots, &mut first_panic);
            if slots.iter().all(|slot| slot.future.is_none()) {
                return Poll::Ready(());
            }
            if !polled {
                return Poll::Pending;
            }
        }
    }));
    if let Some(panic) = first_panic {
        resume_unwind(panic);
    }
}

/// Starts a named thread that will run workers (the appliance's scheduler, check and finish threads).
pub fn spawn_thread<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new().name(name.to_string()).spawn(f)
}

struct Slot<'a> {
    /// `None` once the worker is done.
    future: Option<Worker<'a>>,
    wake: Arc<SlotWake>,
}

/// A worker's waker: marks it as having something to do and wakes the run.
struct SlotWake {
    woken: AtomicBool,
    waker_of_the_run: Arc<Mutex<Option<Waker>>>,
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
    }
}

/// Polls each woken worker once; whether any was. A worker that panics is dropped and its panic kept
/// (the first one) for `run_together` to raise when the others are done.
fn poll_woken(slots: &mut [Slot<'_>], first_panic: &mut Option<Box<dyn Any + Send>>) -> bool {
    let mut polled = false;
    for slot in slots {
        let Some(worker) = slot.future.as_mut() else { continue };
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
        let finished = slot.future.take();
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(finished)));
        for panic in [polled_once.err(), dropped.err()].into_iter().flatten() {
            first_panic.get_or_insert(panic);
        }
    }
    polled
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn database(dir: &std::path::Path) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t (worker INTEGER, n INTEGER);").unwrap();
        conn.busy_timeout(BUSY_LIMIT).unwrap();
        conn
    }

    #[test]
    fn workers_writing_in_short_transactions_on_one_thread_all_commit() {
        // Four workers on one thread, each writing ten short transactions between timer waits, while
        // another thread holds the write lock for 200 ms now and then: every row arrives, and the
        // waits for the other thread's lock are sleeps that end when it commits.
        let dir = std::env::temp_dir().join(format!("pf-workers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let other_thread = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let conn = database(&dir);
                for n in 0..3 {
                    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                    conn.execute("INSERT INTO t VALUES (99, ?1)", [n]).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    conn.execute_batch("COMMIT").unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let connections: Vec<rusqlite::Connection> = (0..4).map(|_| database(&dir)).collect();
        let started = Instant::now();
        run_together(
            connections
                .iter()
                .enumerate()
                .map(|(worker, conn)| {
                    Box::pin(async move {
                        for n in 0..10 {
                            smol::Timer::after(Duration::from_millis(20)).await;
                            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                            conn.execute("INSERT INTO t VALUES (?1, ?2)", [worker as i64, n]).unwrap();
                            conn.execute_batch("COMMIT").unwrap();
                        }
                    }) as Worker<'_>
                })
                .collect(),
        );
        other_thread.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        let rows: i64 = connections[0].query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 4 * 10 + 3);
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
