//! Journal points: named places in a pass right after a durable step and right before a side effect.
//! In normal runs they cost a counter increment. The crash tests set `POSTFLYTT_KILL_AT=N` to have the
//! process SIGKILL itself at the N-th point it reaches (or `POSTFLYTT_KILL_AT_POINT=name` at the first
//! point of that name), which proves that every interruption between two steps resumes without loss or
//! duplicates; `POSTFLYTT_TRACE_POINTS=1` logs each point reached.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static REACHED: AtomicU64 = AtomicU64::new(0);
static KILL_AT: OnceLock<Option<u64>> = OnceLock::new();

/// Marks that the pass reached the journal point `name`.
pub fn point(name: &str) {
    let n = REACHED.fetch_add(1, Ordering::SeqCst) + 1;
    let kill_at = *KILL_AT.get_or_init(|| std::env::var("POSTFLYTT_KILL_AT").ok().and_then(|v| v.parse().ok()));
    if std::env::var_os("POSTFLYTT_TRACE_POINTS").is_some() {
        eprintln!("<7>journal point {n}: {name}");
    }
    // By name: a point met on a task beside others (the stream lane) comes at a count that differs
    // from run to run.
    static KILL_AT_NAMED: OnceLock<Option<String>> = OnceLock::new();
    let named = KILL_AT_NAMED.get_or_init(|| std::env::var("POSTFLYTT_KILL_AT_POINT").ok()).as_deref() == Some(name);
    if kill_at == Some(n) || named {
        eprintln!("<4>POSTFLYTT_KILL_AT={n}: killing the process at journal point {name:?}");
        // A real SIGKILL, not an orderly exit: no destructor, flush or rollback runs.
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
        std::process::abort();
    }
}

/// `point`, only the first time this process comes to `name`: for a point met by every batch before
/// its commit, where each kill leaves the same state (nothing of the batch committed) and a kill every
/// few points would otherwise always land there and never let a run get further.
pub fn point_once(name: &'static str) {
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let first = {
        let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = !seen.contains(&name);
        if first {
            seen.push(name);
        }
        first
    };
    if first {
        point(name);
    }
}

/// How many journal points this process has reached.
#[allow(dead_code)]
pub fn reached() -> u64 {
    REACHED.load(Ordering::SeqCst)
}

/// `POSTFLYTT_BATCH=N` caps fetch and APPEND batches at N messages, so the crash tests reach many
/// journal points with a small fixture. Normal runs leave it unset.
pub fn batch_cap(default: usize) -> usize {
    static CAP: OnceLock<Option<usize>> = OnceLock::new();
    CAP.get_or_init(|| std::env::var("POSTFLYTT_BATCH").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0))
        .map_or(default, |cap| cap.min(default))
}

/// `POSTFLYTT_STREAM_MIN=N` streams messages of N bytes or more (`stream_append`), so the crash tests
/// reach the stream's journal points with a modest fixture. Normal runs leave it unset.
pub fn stream_min(default: u64) -> u64 {
    static MIN: OnceLock<Option<u64>> = OnceLock::new();
    MIN.get_or_init(|| std::env::var("POSTFLYTT_STREAM_MIN").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 1)).unwrap_or(default)
}

/// Set by SIGTERM/SIGINT in `serve`: no new work starts, and a running pass stops before its next
/// folder (everything before that point is journalled, so the next pass resumes there).
pub static SHUTDOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn shutting_down() -> bool {
    SHUTDOWN.load(Ordering::SeqCst)
}

/// The first wait before reconnecting after a dropped connection (doubled for the next try).
/// `POSTFLYTT_RECONNECT_MS` shortens it for the fault tests, which drop connections on purpose.
pub fn reconnect_base() -> std::time::Duration {
    static MS: OnceLock<u64> = OnceLock::new();
    std::time::Duration::from_millis(
        *MS.get_or_init(|| std::env::var("POSTFLYTT_RECONNECT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)),
    )
}
