//! A change counter that tasks on one thread wait on: the pipe's reader and writer (`pipe`) and an
//! account's stream (`stream_append`) wake each other with it. No lock: everything that waits on one
//! lives on the account's thread.

use std::cell::{Cell, RefCell};
use std::task::{Poll, Waker};

/// A change counter with the wakers of those waiting for the next change.
#[derive(Default)]
pub struct Signal {
    generation: Cell<u64>,
    waiting: RefCell<Vec<Waker>>,
}

impl Signal {
    /// The count of changes so far, to wait past.
    pub fn seen(&self) -> u64 {
        self.generation.get()
    }

    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for waker in self.waiting.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    pub async fn wait_past(&self, seen: u64) {
        std::future::poll_fn(|cx| {
            if self.generation.get() > seen {
                return Poll::Ready(());
            }
            let mut waiting = self.waiting.borrow_mut();
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
