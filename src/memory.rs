//! Process-wide memory limits, so that running accounts in parallel does not multiply memory. The
//! account workers of a pass are tasks on one thread (`workers`), but the process still has a few
//! threads (the I/O reactor's, the web server's, a pass and a check started from the page), and
//! without these settings glibc would give each its own malloc arena and cache of freed blocks, and
//! SQLite each connection its own page cache. Here the arenas are shared, freed blocks go straight
//! back to the arena, and the SQLite caches draw on one soft heap budget for the whole process; the
//! per-message buffers are kept small where they are made (slices in `pull`, the read buffer in
//! `imap`).

/// SQLite's heap for the whole process, all connections together. Past it, page caches recycle their
/// own pages instead of growing; schemas and statements still get what they need (it is soft). One
/// worker alone may use all of it, which is what a single connection's 512 KiB cache wanted anyway.
pub const SQLITE_HEAP_BUDGET: i64 = 512 * 1024;

/// What `drop_thread_caches` adds to `GLIBC_TUNABLES`: no per-thread cache of freed small blocks.
const NO_THREAD_CACHE: &str = "glibc.malloc.tcache_count=0";
/// Set in the environment of the restarted process, so it never restarts again.
const RESTARTED: &str = "POSTFLYTT_RESTARTED_FOR_MALLOC";

/// glibc keeps, per thread, a cache of freed small blocks (tcache: up to seven of each size) that only
/// that thread can reuse and that the arena cannot merge or give back while they sit there. The bench
/// measured it with accounts as tasks on one thread: peak 11.1 against 10.8 MiB with the caches and
/// 10.8 against 10.6 MiB without (`--parallel 4` against `--parallel 1`), at no measurable cost in
/// speed here, where postflytt waits on the network and on fsync. glibc reads this setting only from
/// `GLIBC_TUNABLES` when a process starts (mallopt has no knob for it), so postflytt starts itself
/// over once with it added, keeping its pid, arguments and open descriptors. An operator's own tcache
/// tunable wins, and if the restart cannot happen postflytt simply goes on with the caches. Called
/// first thing in `main`, before any thread or file exists.
pub fn drop_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        // Once only: should glibc ignore the tunable (a binary run with raised privileges does), the
        // marker still stops a second restart.
        if std::env::var_os(RESTARTED).is_some() {
            return;
        }
        // A value that is not text is the operator's and left alone.
        let Ok(tunables) = std::env::var("GLIBC_TUNABLES").or_else(|e| match e {
            std::env::VarError::NotPresent => Ok(String::new()),
            std::env::VarError::NotUnicode(_) => Err(()),
        }) else {
            return;
        };
        if tunables.contains("glibc.malloc.tcache_count") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let value = if tunables.is_empty() { NO_THREAD_CACHE.to_string() } else { format!("{tunables}:{NO_THREAD_CACHE}") };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        // `exec` returns only when it failed; then the caches stay, which costs memory, not function.
        let _ = command.args(args).env("GLIBC_TUNABLES", value).env(RESTARTED, "1").exec();
    }
}

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
/// process-wide. Each one holds its window of rows and a batch of bodies on its way into the spool
/// (`pull::BODY_BATCH_BYTES` and at most one `store::CHUNK_SIZE` chunk more, written in one short
/// transaction); besides, a round of slices may hold slices that came before the one it needs (up to
/// `pull::SLICE_PIPELINE` - 1 slices of 64 KiB) and a fetch a body that came before its UID (up to
/// `imap::body_fetch::HELD_LIMIT`, 8 MiB, from a server no one has seen do it). The others meanwhile
/// push, compare flags or wait, so parallel accounts share this working set instead of adding one each.
pub const STAGING_AT_ONCE: usize = 2;

static STAGING: smol::lock::Semaphore = smol::lock::Semaphore::new(STAGING_AT_ONCE);

/// Waits for a turn to stage bodies; the turn ends when the guard is dropped.
pub async fn staging_turn() -> smol::lock::SemaphoreGuard<'static> {
    STAGING.acquire().await
}
