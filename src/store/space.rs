//! What staging holds on disk against its limit. The pipe between the source and the target is
//! bounded by this: the reader waits while the database (its pages in use and its write-ahead log)
//! holds `staging_limit` bytes, and the writer frees them as the target confirms each message. The
//! numbers come from SQLite's own header (`page_count`, `freelist_count`) and the file system, so
//! asking is cheap enough for every window of messages.

use std::path::Path;

use anyhow::{Result, anyhow};

use super::Cached;
use super::Store;

/// The staging limit when the operator set none: at most this ...
pub const DEFAULT_STAGING_LIMIT: u64 = 2 << 30;
/// ... and at most this share of the free disk (1/4).
const FREE_DISK_SHARE: u64 = 4;

/// Free bytes on the file system holding `dir`.
pub fn free_disk(dir: &Path) -> Result<u64> {
    let stat = rustix::fs::statvfs(dir).map_err(|e| anyhow!("cannot read free space of {}: {e}", dir.display()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

impl Store {
    /// Bytes staging uses on disk now: the database's pages in use (freed pages are reused before the
    /// file grows, so they are not counted), its write-ahead log and the spool's files.
    pub fn staging_used_bytes(&self) -> Result<u64> {
        let (pages, free, page_size): (i64, i64, i64) = self.conn.row(
            "SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count),
                    (SELECT page_size FROM pragma_page_size)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let in_use = u64::try_from((pages - free).max(0) * page_size).unwrap_or(0);
        let wal = self.conn.path().map(|db| format!("{db}-wal")).and_then(|wal| std::fs::metadata(wal).ok()).map_or(0, |m| m.len());
        Ok(in_use + wal + self.spool_used_bytes()?)
    }

    /// The most staging may hold: the operator's `staging_limit`, else the smaller of
    /// `DEFAULT_STAGING_LIMIT` and a quarter of the free disk (counting what staging holds already as
    /// free, since it is ours to reuse).
    pub fn staging_limit(&self) -> Result<u64> {
        if let Some(limit) = self.settings()?.staging_limit {
            return Ok(limit);
        }
        let dir = self.conn.path().map(Path::new).and_then(Path::parent).ok_or_else(|| anyhow!("the staging database has no directory"))?;
        let available = free_disk(dir)? + self.staging_used_bytes()?;
        Ok(DEFAULT_STAGING_LIMIT.min(available / FREE_DISK_SHARE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_grows_with_staged_bytes_and_the_limit_is_the_operators_or_a_share_of_the_disk() {
        let dir = std::env::temp_dir().join(format!("postflytt-space-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let empty = store.staging_used_bytes().unwrap();
        let ids = store.staging_fixture(&[(1, 300_000)]);
        store.write(|tx| tx.write_bodies([super::super::BodyWrite::Chunk { id: ids[0], offset: 0, data: vec![7; 300_000] }])).unwrap();
        let used = store.staging_used_bytes().unwrap();
        assert!(used >= empty + 300_000, "{empty} then {used}");
        let default = store.staging_limit().unwrap();
        assert!(default > 0 && default <= DEFAULT_STAGING_LIMIT, "{default}");
        assert!(free_disk(Path::new("/")).unwrap() > 0);
        store.change_settings(|s| s.staging_limit = Some(32 << 20)).unwrap();
        assert_eq!(store.staging_limit().unwrap(), 32 << 20);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
