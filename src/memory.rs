//! Process-wide memory limits, so that running accounts in parallel does not multiply memory. The
//! account workers of a pass are tasks on one thread (`workers`), but the process still has a few
//! threads (the I/O reactor's, the web server's, a pass and a check started from the page), and
//! without these settings glibc would give each its own malloc arena, and SQLite each connection its
//! own page cache. Here the arenas are shared and the SQLite caches draw on one soft heap budget for
//! the whole process. glibc's per-thread cache of freed small blocks (tcache) stays on: turning it off
//! (as postflytt did, by restarting itself with `GLIBC_TUNABLES`) saved 0.3 MiB of peak and cost 9 %
//! of the full migration's CPU once bodies left SQLite (make bench BENCH_ONLY=full: 1.74 against 1.60
//! CPU s), and a slow core is the scarcer of the two on the box; the
//! per-message buffers are kept small where they are made (slices in `pull`, the read buffer in
//! `imap`).

/// SQLite's heap for the whole process, all connections together. Past it, page caches recycle their
/// own pages instead of growing; schemas and statements still get what they need (it is soft). One
/// worker alone may use all of it, which is what a single connection's 512 KiB cache wanted anyway.
pub const SQLITE_HEAP_BUDGET: i64 = 512 * 1024;

/// Shares one malloc arena between all threads, unless the operator chose otherwise with
/// `MALLOC_ARENA_MAX` (the packaged unit sets 2). Postflytt's threads wait on the network and on
/// fsync, not on malloc, so the lock costs nothing measurable, while per-thread arenas would cost each
/// thread its own retained heap. Called first thing in `main`, before any thread exists.
pub fn share_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator; M_ARENA_MAX takes effect for
    // arenas created afterwards, and no other thread is running yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Sets SQLite's process-wide memory use; called first thing in `main`, before any connection opens
/// (the global settings are refused, harmlessly, once SQLite is initialised). Every connection would
/// otherwise set aside its own lookaside arena (48 KiB) and an up-front block of 20 cache pages
/// (87 KiB), whether or not the budget has room; without them, pages come from the shared budget.
pub fn limit_sqlite() {
    use rusqlite::ffi;
    // SAFETY: sqlite3_config takes the documented arguments for each option (two ints for
    // LOOKASIDE; pointer, size and count for PAGECACHE, where a null pointer and 0 pages mean no
    // up-front block) and is called before SQLite is initialised, on the only thread there is.
    unsafe {
        ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 0 as std::ffi::c_int, 0 as std::ffi::c_int);
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_PAGECACHE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0 as std::ffi::c_int,
            0 as std::ffi::c_int,
        );
    }
    // SAFETY: sets a process-wide number; SQLite serialises it with its own mutex.
    unsafe {
        ffi::sqlite3_soft_heap_limit64(SQLITE_HEAP_BUDGET);
    }
}

/// Workers that may be staging bodies (reading them from the source into the spool) at the same time,
/// process-wide. Each one holds its window of rows, at most one `store::CHUNK_SIZE` chunk of a body on
/// its way into the spool and the marks of what it wrote since its last short transaction; besides, a round of slices may hold slices that came before the one it needs (up to
/// `pull::SLICE_PIPELINE` - 1 slices) and a fetch a body that came before its UID (up to
/// `imap::body_fetch::HELD_LIMIT`, 8 MiB, from a server no one has seen do it). The others meanwhile
/// push, compare flags or wait, so parallel accounts share this working set instead of adding one each.
/// Four is for sources beyond the LAN (`Session::beyond_lan`): each connection waits a round trip per
/// pipelined group, so it takes more of them to fill the line. On the bench's office line (40 ms round
/// trips, 100 Mbit/s, 4 accounts, servers compressing) two turns left the download at 55 % of the
/// line, four at 70 % (22.5 against 21.0 s for the migration, before the larger slices).
pub const STAGING_AT_ONCE: usize = 4;

/// Of those, at most this many from a source on the LAN, where two connections already keep the disk
/// and the cores busy (more measured no faster, and cost memory).
pub const STAGING_AT_ONCE_NEAR: usize = 2;

static STAGING: smol::lock::Semaphore = smol::lock::Semaphore::new(STAGING_AT_ONCE);
static STAGING_NEAR: smol::lock::Semaphore = smol::lock::Semaphore::new(STAGING_AT_ONCE_NEAR);

/// A turn to stage bodies; it ends when dropped.
pub struct StagingTurn {
    _near: Option<smol::lock::SemaphoreGuard<'static>>,
    _turn: smol::lock::SemaphoreGuard<'static>,
}

/// Waits for a turn to stage bodies from a source near or `beyond_lan`. One pool for both, so a
/// process whose accounts were measured differently still stages at most `STAGING_AT_ONCE` at once; a
/// near one takes its near turn first (always in that order, so no two wait on each other).
pub async fn staging_turn(beyond_lan: bool) -> StagingTurn {
    let near = if beyond_lan { None } else { Some(STAGING_NEAR.acquire().await) };
    StagingTurn { _near: near, _turn: STAGING.acquire().await }
}
