//! What the operator's message filter records (the filter module above the store decides): a row left out is
//! 'refused' with `left_out = 1` and a skip ledger entry whose reason starts with
//! `LEFT_OUT_REASON`; taken back, it is 'pending' again without a hash (so the reader fetches it) and
//! its entry goes. `account.filter_applied` is the filter the account's rows were last weighed
//! against.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{PushState, Store, Tx};

/// How every skip ledger entry of the filter begins (the words; the report groups by it).
pub const LEFT_OUT_REASON: &str = "left out by the operator's filter";

/// A row the filter may weigh: not on the target, and either pending or left out.
#[derive(Debug, Clone)]
pub struct WeighableRow {
    pub id: i64,
    pub size: u64,
    pub internal_date: Option<String>,
    pub left_out: bool,
    pub folder_id: i64,
    /// The source folder's name, for the skip ledger.
    pub folder: String,
}

impl Store {
    /// Sizes of the account's copies on the target whose source row is gone (the users moved or
    /// deleted the message): `MessageFilter::spared_sizes`.
    pub fn gone_copy_sizes(&self, account_id: i64) -> Result<std::collections::BTreeSet<u64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT m.size FROM message m JOIN source_folder f ON f.id = m.folder_id
              WHERE f.account_id = ?1 AND m.gone_at IS NOT NULL AND m.push_state = 'pushed'",
        )?;
        let rows = stmt.query_map([account_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The account's left-out rows of one of `sizes`: (row id, source folder id).
    pub fn left_out_rows_of_sizes(&self, account_id: i64, sizes: &std::collections::BTreeSet<u64>) -> Result<Vec<(i64, i64)>> {
        let mut found = Vec::new();
        let sizes: Vec<u64> = sizes.iter().copied().collect();
        for chunk in sizes.chunks(200) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT m.id, m.folder_id FROM message m JOIN source_folder f ON f.id = m.folder_id
                  WHERE f.account_id = ? AND m.left_out IS NOT NULL AND m.size IN ({marks})"
            ))?;
            let values = std::iter::once(rusqlite::types::Value::Integer(account_id))
                .chain(chunk.iter().map(|&n| rusqlite::types::Value::Integer(n as i64)));
            let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| Ok((r.get(0)?, r.get(1)?)))?;
            found.extend(rows.collect::<Result<Vec<(i64, i64)>, _>>()?);
        }
        Ok(found)
    }

    /// Sizes of the folder's rows on the target under another UIDVALIDITY than `uidvalidity` (their
    /// messages come back under new UIDs): `MessageFilter::spared_sizes`.
    pub fn stale_copy_sizes(&self, folder_id: i64, uidvalidity: u32) -> Result<std::collections::BTreeSet<u64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT size FROM message WHERE folder_id = ?1 AND uidvalidity != ?2 AND push_state IN ('pushed', 'appending')",
        )?;
        let rows = stmt.query_map(params![folder_id, uidvalidity], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The filter (`MessageFilter::fingerprint`) the account's rows were last weighed against.
    pub fn filter_applied(&self, account_id: i64) -> Result<Option<String>> {
        Ok(self.conn.row("SELECT filter_applied FROM account WHERE id = ?1", [account_id], |r| r.get(0)).optional()?.flatten())
    }

    /// Up to `limit` rows of the account after row id `after`, in id order, that are pending or
    /// left out.
    pub fn weighable_rows(&self, account_id: i64, after: i64, limit: usize) -> Result<Vec<WeighableRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.size, m.internal_date, m.left_out IS NOT NULL, f.id, f.name FROM message m
               JOIN source_folder f ON f.id = m.folder_id
              WHERE f.account_id = ?1 AND m.id > ?2 AND (m.push_state = ?4 OR m.left_out IS NOT NULL) AND m.gone_at IS NULL
              ORDER BY m.id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![account_id, after, limit as i64, PushState::Pending], |r| {
            Ok(WeighableRow {
                id: r.get(0)?,
                size: r.get(1)?,
                internal_date: r.get(2)?,
                left_out: r.get(3)?,
                folder_id: r.get(4)?,
                folder: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// A pending row the filter leaves out: refused, its staged bytes released, and one ledger entry.
    pub fn leave_out(&self, account_id: i64, message_id: i64, folder: &str, reason: &str) -> Result<()> {
        let changed = self.conn().run(
            "UPDATE message SET push_state = ?2, left_out = 1, sha256 = NULL WHERE id = ?1 AND push_state = ?3",
            params![message_id, PushState::Refused, PushState::Pending],
        )?;
        if changed > 0 {
            self.release_spooled(message_id)?;
            self.record_skip(account_id, Some(message_id), folder, reason, None)?;
        }
        Ok(())
    }

    /// A left-out row the filter now takes in: pending, without a hash (its bytes were never staged
    /// or were released), and its ledger entries gone.
    pub fn take_back(&self, message_id: i64) -> Result<()> {
        self.conn().run(
            "UPDATE message SET push_state = ?2, left_out = NULL, sha256 = NULL, staged_bytes = 0, attempts = 0
              WHERE id = ?1 AND left_out IS NOT NULL",
            params![message_id, PushState::Pending],
        )?;
        self.conn()
            .run("DELETE FROM skip WHERE message_id = ?1 AND substr(reason, 1, length(?2)) = ?2", params![message_id, LEFT_OUT_REASON])?;
        Ok(())
    }

    /// The target folder of source folder `folder_id` is looked through from its first UID at the
    /// next push (rows the filter took back may already have copies there).
    pub fn look_through_target_again(&self, folder_id: i64) -> Result<()> {
        self.conn().run(
            "UPDATE target_folder SET indexed_uidnext = min(indexed_uidnext, 1)
              WHERE (account_id, name) = (SELECT account_id, target_name FROM source_folder WHERE id = ?1)",
            [folder_id],
        )?;
        Ok(())
    }

    pub fn set_filter_applied(&self, account_id: i64, fingerprint: &str) -> Result<()> {
        self.conn().run("UPDATE account SET filter_applied = ?2 WHERE id = ?1", params![account_id, fingerprint])?;
        Ok(())
    }
}
