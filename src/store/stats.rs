//! What the page, the CLI and the report count: per account how much is staged and on the target,
//! how its last pass went, what was skipped, and what the check found. Read-only queries, one per
//! question, so that the page and the CLI count the same way.

use std::collections::BTreeMap;

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::switch::{Switched, SwitchedBy};
use super::{AccountState, LEFT_OUT_REASON, Store};

/// One account's progress, as the page and `postflytt status` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountProgress {
    pub id: i64,
    pub source_login: String,
    pub target_login: String,
    pub aliases: Vec<String>,
    pub state: AccountState,
    pub last_pass_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_new_mail_at: Option<i64>,
    /// Messages known from the source, and their bytes.
    pub messages: i64,
    pub bytes: i64,
    /// Of them, staged whole (hashed), and on the target.
    pub staged: i64,
    pub staged_bytes: i64,
    pub pushed: i64,
    pub pushed_bytes: i64,
    /// Of them, refused by the target for good (too large, rejected): done as far as a pass goes.
    pub refused: i64,
    pub refused_bytes: i64,
    /// When the account's pass that has not ended began (a pass running now, or one a crash cut).
    pub pass_started_at: Option<i64>,
    /// Bytes a second of the account's last pass that moved data (0 before one did).
    pub throughput: f64,
    /// How often the servers asked the last finished pass to slow down (waited, not failures).
    pub throttled_last_pass: i64,
}

/// One message or folder a pass skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipEntry {
    pub source_login: String,
    pub folder: String,
    pub reason: String,
    pub server_says: Option<String>,
    pub at: i64,
}

/// One account's side of mirroring (the mirror module): when its users switched and who said so, and
/// how many target copies the passes moved and removed following the users on the old server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorProgress {
    pub switched: Option<Switched>,
    pub moved: i64,
    pub removed: i64,
}

impl Store {
    /// Every account's `MirrorProgress`, by account id: the switch mark and the sums of its passes'
    /// `moved` and `removed` counts.
    pub fn mirror_progress(&self) -> Result<BTreeMap<i64, MirrorProgress>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, a.switched_at, a.switched_by, coalesce(sum(p.moved), 0), coalesce(sum(p.removed), 0)
             FROM account a LEFT JOIN pass p ON p.account_id = a.id GROUP BY a.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let (at, by): (Option<i64>, Option<String>) = (r.get(1)?, r.get(2)?);
            let switched = at.map(|at| Switched { at, by: SwitchedBy::parse(by.as_deref().unwrap_or("operator")) });
            Ok((r.get::<_, i64>(0)?, MirrorProgress { switched, moved: r.get(3)?, removed: r.get(4)? }))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every account's progress, by source login.
    pub fn account_progress(&self) -> Result<Vec<AccountProgress>> {
        // The shown state's columns are the account's alone (the joined tables have none of those names).
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT a.id, a.source_login, a.target_login, a.aliases, {}, a.last_pass_at, a.last_error, a.last_new_mail_at,
               count(m.id), coalesce(sum(m.size), 0),
               coalesce(sum(m.sha256 IS NOT NULL), 0), coalesce(sum(CASE WHEN m.sha256 IS NOT NULL THEN m.size END), 0),
               coalesce(sum(m.push_state = 'pushed'), 0), coalesce(sum(CASE WHEN m.push_state = 'pushed' THEN m.size END), 0),
               coalesce(sum(m.push_state = 'refused'), 0), coalesce(sum(CASE WHEN m.push_state = 'refused' THEN m.size END), 0)
             FROM account a LEFT JOIN source_folder f ON f.account_id = a.id LEFT JOIN message m ON m.folder_id = f.id
             GROUP BY a.id ORDER BY a.source_login",
            super::accounts::SHOWN_STATE
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(AccountProgress {
                id: r.get(0)?,
                source_login: r.get(1)?,
                target_login: r.get(2)?,
                aliases: r.get::<_, String>(3)?.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect(),
                state: r.get(4)?,
                last_pass_at: r.get(5)?,
                last_error: r.get(6)?,
                last_new_mail_at: r.get(7)?,
                messages: r.get(8)?,
                bytes: r.get(9)?,
                staged: r.get(10)?,
                staged_bytes: r.get(11)?,
                pushed: r.get(12)?,
                pushed_bytes: r.get(13)?,
                refused: r.get(14)?,
                refused_bytes: r.get(15)?,
                pass_started_at: None,
                throughput: 0.0,
                throttled_last_pass: 0,
            })
        })?;
        let mut accounts: Vec<AccountProgress> = rows.collect::<rusqlite::Result<_>>()?;
        for a in &mut accounts {
            a.throughput = self
                .conn
                .row(
                    "SELECT staged_bytes, finished_at - started_at FROM pass WHERE account_id = ?1 AND finished_at IS NOT NULL
                     AND staged_bytes > 0 ORDER BY id DESC LIMIT 1",
                    [a.id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )
                .map(|(bytes, seconds)| bytes as f64 / seconds.max(1) as f64)
                .unwrap_or(0.0);
            a.throttled_last_pass = self
                .conn
                .row("SELECT throttled FROM pass WHERE account_id = ?1 AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1", [a.id], |r| {
                    r.get(0)
                })
                .optional()?
                .unwrap_or(0);
            a.pass_started_at = self
                .conn
                .row(
                    // The latest pass only: an older unfinished one was cut and is over.
                    "SELECT started_at, finished_at FROM pass WHERE account_id = ?1 ORDER BY id DESC LIMIT 1",
                    [a.id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
                )
                .optional()?
                .and_then(|(started, finished)| if finished.is_none() { Some(started) } else { None });
        }
        Ok(accounts)
    }

    /// The account's latest skips, newest first, at most `limit`.
    pub fn recent_skips(&self, account_id: i64, limit: i64) -> Result<Vec<SkipEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.source_login, coalesce(s.folder, ''), s.reason, s.server_says, s.at FROM skip s JOIN account a ON a.id = s.account_id
             WHERE s.account_id = ?1 AND substr(s.reason, 1, length(?3)) != ?3 ORDER BY s.id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![account_id, limit, LEFT_OUT_REASON], skip_entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every skip of every account, in the order they happened, but those of the operator's filter
    /// (`left_out_skips` counts them).
    pub fn all_skips(&self) -> Result<Vec<SkipEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.source_login, coalesce(s.folder, ''), s.reason, s.server_says, s.at FROM skip s JOIN account a ON a.id = s.account_id
             WHERE substr(s.reason, 1, length(?1)) != ?1 ORDER BY s.id",
        )?;
        let rows = stmt.query_map([LEFT_OUT_REASON], skip_entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The operator's filter's skips counted per account, folder and rule (one row each, however many
    /// messages): (source login, folder, reason, messages).
    pub fn left_out_skips(&self) -> Result<Vec<(String, String, String, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.source_login, coalesce(s.folder, ''), s.reason, count(*) FROM skip s JOIN account a ON a.id = s.account_id
             WHERE substr(s.reason, 1, length(?1)) = ?1 GROUP BY a.source_login, s.folder, s.reason ORDER BY 1, 2, 3",
        )?;
        let rows = stmt.query_map([LEFT_OUT_REASON], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Messages the operator's filter left out, per account id: (messages, bytes).
    pub fn left_out_by_account(&self) -> Result<BTreeMap<i64, (i64, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.account_id, count(*), coalesce(sum(m.size), 0) FROM message m JOIN source_folder f ON f.id = m.folder_id
             WHERE m.left_out IS NOT NULL GROUP BY f.account_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The check's verdict per account id ("ready", "source_login_failed", ...).
    pub fn check_verdicts(&self) -> Result<BTreeMap<i64, String>> {
        let mut stmt = self.conn.prepare_cached("SELECT account_id, verdict FROM check_result")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The check's verdict, its stored detail (JSON text) and when it was made, per account id.
    pub fn check_details(&self) -> Result<BTreeMap<i64, (String, String, i64)>> {
        let mut stmt = self.conn.prepare_cached("SELECT account_id, verdict, detail, checked_at FROM check_result")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The check's stored details (JSON text), by source login.
    pub fn check_details_by_login(&self) -> Result<Vec<String>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT detail FROM check_result c JOIN account a ON a.id = c.account_id ORDER BY a.source_login")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// One source folder's counts for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderCounts {
    pub source: String,
    pub target: Option<String>,
    /// Whether the source still lists it.
    pub present: bool,
    pub messages: i64,
    pub bytes: i64,
    pub copied: i64,
    pub copied_bytes: i64,
    pub refused: i64,
    pub refused_bytes: i64,
    /// Why the operator's folder choice leaves the folder out (discovery's note), when it does.
    pub left_out: Option<String>,
}

/// A skip with the size and date of its message, when it was about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipDetail {
    pub folder: Option<String>,
    pub reason: String,
    pub server_says: Option<String>,
    pub at: i64,
    pub size: Option<i64>,
    pub internal_date: Option<String>,
}

impl Store {
    /// The account's folders the source lists now, and those it no longer lists whose mail we still
    /// hold counts of, by name.
    pub fn folder_counts(&self, account_id: i64) -> Result<Vec<FolderCounts>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.name, f.target_name, f.present,
                    count(m.id),
                    coalesce(sum(m.size), 0),
                    coalesce(sum(m.push_state = 'pushed'), 0),
                    coalesce(sum(CASE WHEN m.push_state = 'pushed' THEN m.size END), 0),
                    coalesce(sum(m.push_state = 'refused'), 0),
                    coalesce(sum(CASE WHEN m.push_state = 'refused' THEN m.size END), 0),
                    CASE WHEN f.map_reason = ?2 THEN coalesce(f.map_note, '') END
             FROM source_folder f LEFT JOIN message m ON m.folder_id = f.id
             WHERE f.account_id = ?1
             GROUP BY f.id
             HAVING f.present = 1 OR count(m.id) > 0
             ORDER BY f.name",
        )?;
        let rows = stmt.query_map(rusqlite::params![account_id, super::EXCLUDED_REASON], |r| {
            Ok(FolderCounts {
                source: r.get(0)?,
                target: r.get(1)?,
                present: r.get(2)?,
                messages: r.get(3)?,
                bytes: r.get(4)?,
                copied: r.get(5)?,
                copied_bytes: r.get(6)?,
                refused: r.get(7)?,
                refused_bytes: r.get(8)?,
                left_out: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The account's skips in the order they happened, with their messages' size and date; a calendar
    /// or contact item's are the report's calendars and contacts section's (`dav_skips`).
    pub fn skips_with_messages(&self, account_id: i64) -> Result<Vec<SkipDetail>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.folder, s.reason, s.server_says, s.at, m.size, m.internal_date
             FROM skip s LEFT JOIN message m ON m.id = s.message_id
             WHERE s.account_id = ?1 AND s.calendar = 0 ORDER BY s.at, s.id",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(SkipDetail {
                folder: r.get(0)?,
                reason: r.get(1)?,
                server_says: r.get(2)?,
                at: r.get(3)?,
                size: r.get(4)?,
                internal_date: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn skip_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<SkipEntry> {
    Ok(SkipEntry { source_login: r.get(0)?, folder: r.get(1)?, reason: r.get(2)?, server_says: r.get(3)?, at: r.get(4)? })
}
