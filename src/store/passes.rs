//! Pass rows and the appliance's run-state. A pass row is written when an account's pass starts and
//! completed with its totals when it ends (the status reads throughput and throttling from the last
//! one). The run-state marks (`RunMark`) are what the appliance remembers across restarts: when passes
//! last ran and how many, when the check last ran, the MX watch's findings, and that the migration is
//! finished. They live in the `setting` table under fixed keys, but they are not the operator's
//! configuration (that is `settings::Settings`): only the appliance writes them.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{Store, Tx, now};

/// One remembered fact of the appliance's run, each under its own key in the `setting` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMark {
    /// When finish purged the migration (Unix seconds); once set, no pass starts again.
    FinishedAt,
    /// How many passes over all accounts have finished.
    PassCount,
    /// When the last pass over all accounts started (Unix seconds).
    PassStartedAt,
    /// When the last pass over all accounts finished (Unix seconds); the scheduler counts the interval
    /// from here, and clearing it starts the next pass at once.
    PassFinishedAt,
    /// When the pre-flight check last ran over the accounts (Unix seconds).
    CheckedAt,
    /// The MX watch's state per domain, as JSON.
    MxState,
}

impl RunMark {
    /// The key in the `setting` table; fixed, databases written before this type read the same.
    fn key(self) -> &'static str {
        match self {
            RunMark::FinishedAt => "finished_at",
            RunMark::PassCount => "passes.count",
            RunMark::PassStartedAt => "passes.last_started",
            RunMark::PassFinishedAt => "passes.last_finished",
            RunMark::CheckedAt => "check.checked_at",
            RunMark::MxState => "mx.state",
        }
    }
}

/// The answer to anything that would change a finished migration (import, check, setup, passes,
/// repair, a second finish): its passwords and staged mail are purged, so it could only half work. The
/// API answers it with 409, the CLI with its sentence and a non-zero exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished;

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the migration is finished: passwords and staged mail are purged, so nothing more can be imported, checked, \
             set up or copied; the report stays available",
        )
    }
}

impl std::error::Error for Finished {}

/// What one account's pass did, for its pass row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassTotals {
    pub staged: i64,
    pub staged_bytes: i64,
    pub appended: i64,
    pub matched: i64,
    pub flag_updates: i64,
    pub refused: i64,
    pub error: Option<String>,
    pub throttled: i64,
    /// The users' moves and deletions on the old server followed on the target (`mirror`).
    pub moved: i64,
    pub removed: i64,
    /// Calendar and contact items put, replaced and removed on the target (`dav`).
    pub dav_put: i64,
    pub dav_replaced: i64,
    pub dav_removed: i64,
}

impl Store {
    /// Refuses (with `Finished`) once the migration is finished: the one guard in front of every
    /// action that would change it.
    pub fn ensure_not_finished(&self) -> Result<()> {
        match self.mark(RunMark::FinishedAt)? {
            Some(_) => Err(Finished.into()),
            None => Ok(()),
        }
    }

    /// A run-state mark's text, if it was ever set.
    pub fn mark(&self, mark: RunMark) -> Result<Option<String>> {
        self.setting(mark.key())
    }

    /// A run-state mark read as a number (a time or a count); a damaged one reads as unset.
    pub fn mark_number(&self, mark: RunMark) -> Result<Option<i64>> {
        Ok(self.mark(mark)?.and_then(|v| v.parse().ok()))
    }

    pub fn set_mark(&self, mark: RunMark, value: &str) -> Result<()> {
        self.set_setting(mark.key(), value)
    }

    /// Sets a mark to the time now.
    pub fn stamp(&self, mark: RunMark) -> Result<()> {
        self.set_mark(mark, &now().to_string())
    }

    pub fn clear_mark(&self, mark: RunMark) -> Result<()> {
        self.remove_setting(mark.key())
    }

    /// A pass over all accounts finished: stamps its time and counts it, in one transaction.
    pub fn count_finished_pass(&self) -> Result<()> {
        self.write(|tx| {
            tx.set_mark(RunMark::PassFinishedAt, &now().to_string())?;
            let count: i64 = tx.mark(RunMark::PassCount)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            tx.set_mark(RunMark::PassCount, &(count + 1).to_string())
        })
    }
}

impl Tx<'_> {
    fn mark(&self, mark: RunMark) -> Result<Option<String>> {
        Ok(self.conn().row("SELECT value FROM setting WHERE key = ?1", [mark.key()], |r| r.get(0)).optional()?)
    }

    fn set_mark(&self, mark: RunMark, value: &str) -> Result<()> {
        self.conn().run(
            "INSERT INTO setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![mark.key(), value],
        )?;
        Ok(())
    }

    /// Starts an account's pass row (now) and returns its id.
    pub fn start_pass(&self, account_id: i64) -> Result<i64> {
        self.conn().run("INSERT INTO pass (account_id, started_at) VALUES (?1, ?2)", params![account_id, now()])?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Completes a pass row (now) with what the pass did.
    pub fn finish_pass(&self, pass_id: i64, totals: &PassTotals) -> Result<()> {
        self.conn().run(
            "UPDATE pass SET finished_at = ?2, staged = ?3, staged_bytes = ?4, appended = ?5, matched = ?6, flag_updates = ?7,
               refused = ?8, error = ?9, throttled = ?10, moved = ?11, removed = ?12,
               dav_put = ?13, dav_replaced = ?14, dav_removed = ?15 WHERE id = ?1",
            params![
                pass_id,
                now(),
                totals.staged,
                totals.staged_bytes,
                totals.appended,
                totals.matched,
                totals.flag_updates,
                totals.refused,
                totals.error,
                totals.throttled,
                totals.moved,
                totals.removed,
                totals.dav_put,
                totals.dav_replaced,
                totals.dav_removed
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_keep_their_keys_and_passes_count() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-passes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        // The keys databases already hold.
        store.set_setting("finished_at", "17").unwrap();
        store.set_setting("mx.state", "[]").unwrap();
        assert_eq!(store.mark_number(RunMark::FinishedAt).unwrap(), Some(17));
        assert_eq!(store.mark(RunMark::MxState).unwrap().as_deref(), Some("[]"));
        store.set_mark(RunMark::CheckedAt, "x").unwrap();
        assert_eq!(
            (store.setting("check.checked_at").unwrap().as_deref(), store.mark_number(RunMark::CheckedAt).unwrap()),
            (Some("x"), None)
        );
        store.stamp(RunMark::PassStartedAt).unwrap();
        assert!(store.setting("passes.last_started").unwrap().is_some());
        store.set_setting("passes.count", "damaged").unwrap();
        store.count_finished_pass().unwrap();
        store.count_finished_pass().unwrap();
        assert_eq!(store.setting("passes.count").unwrap().as_deref(), Some("2"));
        assert!(store.mark_number(RunMark::PassFinishedAt).unwrap().is_some());
        store.clear_mark(RunMark::PassFinishedAt).unwrap();
        assert_eq!(store.setting("passes.last_finished").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
