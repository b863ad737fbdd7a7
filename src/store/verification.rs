//! What the proofs per account read and record: the pre-flight check's verdict (`check_result`), and
//! finish's verification, which compares the source's UIDs, listed into a TEMP table private to this
//! connection (one listing per source folder, so accounts verified at once on the connection they share
//! keep apart), with the staged rows and where they were pushed, and stores its result as JSON (the
//! setting `verify.<account id>`). The verdicts and results are the checker's own types, stored as
//! text here; this module does not read them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{PushState, Store, now};

/// A source folder to verify: one the source listed at the last pass and that can hold mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderToVerify {
    pub id: i64,
    pub name: String,
    pub wire_name: String,
    pub uidvalidity: Option<u32>,
    pub target_name: Option<String>,
}

/// A staged message as verification compares it: its size, where the journal stands, and where it
/// was pushed (target folder, UIDVALIDITY, UID), with its identity for targets that re-render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRowView {
    pub uid: u32,
    pub size: u64,
    pub push_state: PushState,
    pub target_folder_id: Option<i64>,
    pub target_uidvalidity: Option<u32>,
    pub target_uid: Option<u32>,
    /// Empty when it was never computed.
    pub identity: String,
}

/// The setting that holds an account's last verification.
fn verification_key(account_id: i64) -> String {
    format!("verify.{account_id}")
}

impl Store {
    /// Stores the check's verdict and its details (JSON) for the account, replacing the last one.
    pub fn record_check_result(&self, account_id: i64, verdict: &str, detail: &str) -> Result<()> {
        self.write(|tx| {
            tx.conn().execute(
                "INSERT INTO check_result (account_id, checked_at, verdict, detail) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account_id) DO UPDATE SET checked_at = excluded.checked_at, verdict = excluded.verdict, detail = excluded.detail",
                params![account_id, now(), verdict, detail],
            )?;
            Ok(())
        })
    }

    /// The account's last verification (JSON), if one was stored.
    pub fn verification(&self, account_id: i64) -> Result<Option<String>> {
        self.setting(&verification_key(account_id))
    }

    /// Stores the account's verification (JSON), replacing the last one.
    pub fn set_verification(&self, account_id: i64, json: &str) -> Result<()> {
        self.set_setting(&verification_key(account_id), json)
    }

    /// The account's source folders to verify, by name.
    pub fn folders_to_verify(&self, account_id: i64) -> Result<Vec<FolderToVerify>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, name, wire_name, uidvalidity, target_name FROM source_folder
             WHERE account_id = ?1 AND present = 1 AND selectable = 1 AND coalesce(map_reason, '') != 'excluded' ORDER BY name",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(FolderToVerify { id: r.get(0)?, name: r.get(1)?, wire_name: r.get(2)?, uidvalidity: r.get(3)?, target_name: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Wire names of the account's source folders the folder choice leaves out (as the last pass
    /// recorded them): verification neither checks them nor takes them for new folders.
    pub fn excluded_wire_names(&self, account_id: i64) -> Result<BTreeSet<String>> {
        let mut stmt = self.conn.prepare_cached("SELECT wire_name FROM source_folder WHERE account_id = ?1 AND map_reason = 'excluded'")?;
        let rows = stmt.query_map([account_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Rows pushed per target folder and UIDVALIDITY, from any of the account's source folders, in one
    /// scan (there is no index on the target side, and one scan per folder would cost seconds on a big
    /// account).
    pub fn pushed_counts(&self, account_id: i64) -> Result<BTreeMap<(i64, u32), u64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.target_folder_id, m.target_uidvalidity, count(*) FROM message m JOIN source_folder f ON f.id = m.folder_id
             WHERE f.account_id = ?1 AND m.push_state = 'pushed' AND m.target_folder_id IS NOT NULL AND m.target_uidvalidity IS NOT NULL
             GROUP BY m.target_folder_id, m.target_uidvalidity",
        )?;
        let rows = stmt.query_map([account_id], |r| Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The id of the account's target folder with this wire name, if the push ever made its row.
    pub fn target_folder_id(&self, account_id: i64, wire_name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .row("SELECT id FROM target_folder WHERE account_id = ?1 AND wire_name = ?2", params![account_id, wire_name], |r| r.get(0))
            .optional()?)
    }

    /// The staged rows of a source folder's UIDVALIDITY with UIDs from `first` to `last`.
    pub fn staged_rows_between(&self, folder_id: i64, uidvalidity: u32, first: u32, last: u32) -> Result<Vec<StagedRowView>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT uid, size, push_state, target_folder_id, target_uidvalidity, target_uid, coalesce(identity, '') FROM message
             WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid BETWEEN ?3 AND ?4",
        )?;
        let rows = stmt.query_map(params![folder_id, uidvalidity, first, last], |r| {
            Ok(StagedRowView {
                uid: r.get(0)?,
                size: r.get(1)?,
                push_state: r.get(2)?,
                target_folder_id: r.get(3)?,
                target_uidvalidity: r.get(4)?,
                target_uid: r.get(5)?,
                identity: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Starts a listing of source folder `folder_id`'s UIDs: makes the TEMP table (this connection's
    /// own) and empties the folder's listing. The accounts verified at once share this connection,
    /// each listing under its own folder.
    pub fn start_source_listing(&self, folder_id: i64) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS verify_source
               (folder_id INTEGER NOT NULL, uid INTEGER NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (folder_id, uid)) WITHOUT ROWID;",
        )?;
        self.conn.prepare_cached("DELETE FROM temp.verify_source WHERE folder_id = ?1")?.execute([folder_id])?;
        Ok(())
    }

    /// Ends folder `folder_id`'s listing: its rows go, so the accounts verified on one connection hold
    /// one folder's listing each, not every folder's they went through.
    pub fn end_source_listing(&self, folder_id: i64) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM temp.verify_source WHERE folder_id = ?1")?.execute([folder_id])?;
        Ok(())
    }

    /// Adds (and empties) a batch of folder `folder_id`'s listed source UIDs and sizes, in one short
    /// transaction. It is deferred, not `write`'s IMMEDIATE: the TEMP table is this connection's alone,
    /// so the main database's write lock is never needed (other threads' writers go on meanwhile).
    pub fn add_listed_source_uids(&self, folder_id: i64, listed: &mut Vec<(u32, u32)>) -> Result<()> {
        if listed.is_empty() {
            return Ok(());
        }
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Deferred)?;
        {
            let mut insert = tx.prepare_cached("INSERT OR REPLACE INTO temp.verify_source (folder_id, uid, size) VALUES (?1, ?2, ?3)")?;
            for (uid, size) in listed.drain(..) {
                insert.execute(params![folder_id, uid, size])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The next `limit` listed UIDs (with sizes) of folder `folder_id` after `after`, in UID order.
    pub fn listed_source_uids_after(&self, folder_id: i64, after: i64, limit: usize) -> Result<Vec<(u32, u64)>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT uid, size FROM temp.verify_source WHERE folder_id = ?1 AND uid > ?2 ORDER BY uid LIMIT ?3")?;
        let rows = stmt.query_map(params![folder_id, after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_uids_read_back_in_windows_and_a_new_listing_starts_empty() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-verification-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.start_source_listing(7).unwrap();
        let mut listed = vec![(3, 30), (1, 10), (2, 20)];
        store.add_listed_source_uids(7, &mut listed).unwrap();
        assert!(listed.is_empty(), "the batch is emptied");
        assert_eq!(store.listed_source_uids_after(7, 1, 5).unwrap(), vec![(2, 20), (3, 30)]);
        assert_eq!(store.listed_source_uids_after(7, 0, 1).unwrap(), vec![(1, 10)]);
        // Another folder's listing (another account's, verified at once) is its own.
        store.start_source_listing(8).unwrap();
        store.add_listed_source_uids(8, &mut vec![(2, 99)]).unwrap();
        assert_eq!(store.listed_source_uids_after(8, 0, 5).unwrap(), vec![(2, 99)]);
        assert_eq!(store.listed_source_uids_after(7, 0, 5).unwrap(), vec![(1, 10), (2, 20), (3, 30)]);
        store.start_source_listing(7).unwrap();
        assert_eq!(store.listed_source_uids_after(7, 0, 5).unwrap(), vec![]);
        assert_eq!(store.listed_source_uids_after(8, 0, 5).unwrap(), vec![(2, 99)]);
        store.end_source_listing(8).unwrap();
        assert_eq!(store.listed_source_uids_after(8, 0, 5).unwrap(), vec![]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
