//! Process-wide memory limits, so that running accounts in parallel does not multiply memory. Workers
//! are threads, and two things would otherwise grow per thread: glibc gives each thread its own malloc
//! arena (memory one worker freed cannot serve another, so every arena keeps its own high-water mark),
//! and SQLite gives each worker's connection its own page cache. Here the arenas are shared and the
//! SQLite caches draw on one soft heap budget for the whole process; the per-message buffers are kept
//! small where they are made (slices in `pull`, the read buffer in `imap`).

/// SQLite's heap for the whole process, all connections together. Past it, page caches recycle their
/// own pages instead of growing; schemas and statements still get what they need (it is soft).
pub const SQLITE_HEAP_BUDGET: i64 = 1024 * 1024;

/// Shares one malloc arena between all threads, unless the operator chose otherwise with
/// `MALLOC_ARENA_MAX` (the packaged unit sets 2). Postflytt's threads wait on the network and on
/// fsync, not on malloc, so the lock costs nothing measurable, while per-thread arenas cost each extra
/// worker its own retained heap. Called first thing in `main`, before any thread exists.
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

/// Applies the process-wide SQLite budget on a connection (the pragma sets it for every connection in
/// the process; repeating it is harmless).
pub fn limit_sqlite(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.query_row(&format!("PRAGMA soft_heap_limit = {SQLITE_HEAP_BUDGET}"), [], |_| Ok(()))
}
