//! The operator's hand on one account: paused (passes leave it alone until it is resumed) or removed
//! (out of the migration: no pass, no check, no verification, no say in finishing; its sealed passwords
//! are wiped at once, its folders, counts and skips stay so the report can say what had been copied).
//! A re-import of the account clears both (`Tx::upsert_account`). Also one account's new passwords,
//! sealed like an import's, which send an account back to be checked again.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{AccountState, Store, Tx};
use crate::secret::Secret;

/// An account the operator paused or removed, as finishing and the status name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAccount {
    pub source_login: String,
    /// `Paused` or `Removed`.
    pub hold: AccountState,
}

impl Store {
    /// The account with this source login (exactly, or else the only one that matches it ignoring case):
    /// its id and how it stands, removed ones too.
    pub fn account_by_login(&self, login: &str) -> Result<Option<(i64, String, AccountState)>> {
        let sql = format!("SELECT id, source_login, {} FROM account WHERE source_login = ?1", super::accounts::SHOWN_STATE);
        let exact = self.conn.row(&sql, [login], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
        if exact.is_some() {
            return Ok(exact);
        }
        let sql = format!("SELECT id, source_login, {} FROM account WHERE source_login = ?1 COLLATE NOCASE", super::accounts::SHOWN_STATE);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows: Vec<(i64, String, AccountState)> =
            stmt.query_map([login], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(if rows.len() == 1 { rows.pop() } else { None })
    }

    /// Whether a login names a removed account (for the sentence that says how to bring it back).
    pub(super) fn removed_login(&self, login: &str) -> Result<bool> {
        Ok(self.account_by_login(login)?.is_some_and(|(_, _, state)| state == AccountState::Removed))
    }

    /// `Paused` or `Removed` while the operator holds the account, else None; a pass asks at every
    /// folder boundary, so a hold set during its pass stops it there.
    pub fn account_hold(&self, account_id: i64) -> Result<Option<AccountState>> {
        let hold: Option<Option<AccountState>> = self
            .conn
            .prepare_cached(
                "SELECT CASE WHEN removed_at IS NOT NULL THEN 'removed' WHEN paused_at IS NOT NULL THEN 'paused' END FROM account WHERE id = ?1",
            )?
            .query_row([account_id], |r| r.get(0))
            .optional()?;
        // An account deleted under a running pass is as good as removed.
        Ok(hold.unwrap_or(Some(AccountState::Removed)))
    }

    /// Every paused or removed account, by source login.
    pub fn held_accounts(&self) -> Result<Vec<HeldAccount>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT source_login, {} FROM account WHERE removed_at IS NOT NULL OR paused_at IS NOT NULL ORDER BY source_login",
            super::accounts::SHOWN_STATE
        ))?;
        let rows = stmt.query_map([], |r| Ok(HeldAccount { source_login: r.get(0)?, hold: r.get(1)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A password sealed for one side of an account (`side` "source" or "target"), as an import seals it.
    pub fn seal_password(&self, side: &str, source_login: &str, password: &Secret) -> Result<Vec<u8>> {
        self.seal(password, &format!("{side}:{source_login}"))
    }

    /// Staged copies of removed accounts' mail leave the disk (as a damaged copy would: a row still to
    /// be appended loses its hash, so a re-import fetches it again; a journalled one keeps it for the
    /// look-up on the target). Run under the pass lock before a pass, so no running pass reads them.
    /// Returns how many copies were released.
    pub fn release_removed_accounts(&self) -> Result<usize> {
        let ids: Vec<i64> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT m.id FROM message m JOIN source_folder f ON f.id = m.folder_id JOIN account a ON a.id = f.account_id
                 WHERE a.removed_at IS NOT NULL AND m.spool_bytes > 0",
            )?;
            stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        if !ids.is_empty() {
            self.write(|tx| ids.iter().try_for_each(|&id| tx.drop_damaged_body(id)))?;
        }
        Ok(ids.len())
    }

    /// Removes an account from the migration at `at` and wipes its sealed passwords, with SQLite's
    /// secure delete on so the old bytes are overwritten in the database file, not only unlinked.
    pub fn remove_account(&self, account_id: i64, at: i64) -> Result<()> {
        self.conn.execute_batch("PRAGMA secure_delete = ON")?;
        let done = self.write(|tx| {
            tx.conn().execute(
                "UPDATE account SET removed_at = ?2, paused_at = NULL, source_password = NULL, target_password = NULL,
                   source_dav_password = NULL, target_dav_password = NULL WHERE id = ?1",
                params![account_id, at],
            )?;
            Ok(())
        });
        // Checkpointed so the log does not keep the sealed bytes either.
        let _ = self.conn.row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        self.conn.execute_batch("PRAGMA secure_delete = OFF")?;
        done
    }
}

impl Tx<'_> {
    /// Pauses (`Some(at)`) or resumes (None) an account; a removed one is left as it is. True when
    /// the account was there to change.
    pub fn set_paused(&self, account_id: i64, at: Option<i64>) -> Result<bool> {
        let n = self.conn().run("UPDATE account SET paused_at = ?2 WHERE id = ?1 AND removed_at IS NULL", params![account_id, at])?;
        Ok(n == 1)
    }

    /// Stores one account's new sealed passwords (a side left None keeps its password). The account
    /// goes back to be checked: its check verdict is forgotten, and a failed one reads as new again.
    pub fn set_account_passwords(&self, account_id: i64, source: Option<&[u8]>, target: Option<&[u8]>) -> Result<()> {
        if let Some(sealed) = source {
            self.conn().run("UPDATE account SET source_password = ?2 WHERE id = ?1", params![account_id, sealed])?;
        }
        if let Some(sealed) = target {
            self.conn().run("UPDATE account SET target_password = ?2 WHERE id = ?1", params![account_id, sealed])?;
        }
        self.conn().run("DELETE FROM check_result WHERE account_id = ?1", [account_id])?;
        self.conn().run(
            "UPDATE account SET state = CASE WHEN state = 'failed' THEN 'new' ELSE state END, last_error = NULL WHERE id = ?1",
            [account_id],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_remove_and_reimport() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-holds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.upsert_account("a@x.se", &Secret::new("pw"), "a@y.se", Some(&Secret::new("tpw")), &[]).unwrap();
        store.upsert_account("b@x.se", &Secret::new("pw"), "b@y.se", None, &[]).unwrap();
        let (a, login, state) = store.account_by_login("A@X.SE").unwrap().unwrap();
        assert_eq!((login.as_str(), state), ("a@x.se", AccountState::New));
        assert!(store.write(|tx| tx.set_paused(a, Some(5))).unwrap());
        assert_eq!(store.account_hold(a).unwrap(), Some(AccountState::Paused));
        assert_eq!(store.account_progress().unwrap()[0].state, AccountState::Paused);
        assert_eq!(store.accounts(&[]).unwrap().len(), 2, "a paused account is still in the migration");
        store.remove_account(a, 6).unwrap();
        assert_eq!(store.account_hold(a).unwrap(), Some(AccountState::Removed));
        assert_eq!(store.accounts(&[]).unwrap().len(), 1);
        let err = store.accounts(&["a@x.se".into()]).unwrap_err().to_string();
        assert!(err.contains("import it again"), "{err}");
        let summary = store.account_summaries().unwrap().remove(0);
        assert_eq!((summary.state, summary.removed_at), (AccountState::Removed, Some(6)));
        assert_eq!(store.held_accounts().unwrap(), vec![HeldAccount { source_login: "a@x.se".into(), hold: AccountState::Removed }]);
        // Its passwords are gone from the row; a re-import brings it back with new ones.
        store.upsert_account("a@x.se", &Secret::new("pw2"), "a@y.se", None, &[]).unwrap();
        assert_eq!(store.account_hold(a).unwrap(), None);
        assert_eq!(store.accounts(&["a@x.se".into()]).unwrap()[0].source_password.as_ref().map(Secret::expose), Some("pw2"));
        // New passwords: sealed for the account, the check forgotten, failed back to new.
        store.write(|tx| tx.record_account_pass(a, 10, Some("login failed"), false)).unwrap();
        store.record_check_result(a, "target_login_failed", "{}").unwrap();
        let sealed = store.seal_password("target", "a@x.se", &Secret::new("right")).unwrap();
        store.write(|tx| tx.set_account_passwords(a, None, Some(&sealed))).unwrap();
        let account = store.accounts(&["a@x.se".into()]).unwrap().remove(0);
        assert_eq!(account.target_password.as_ref().map(Secret::expose), Some("right"));
        assert_eq!(account.source_password.as_ref().map(Secret::expose), Some("pw2"));
        assert!(!store.check_verdicts().unwrap().contains_key(&a));
        assert_eq!(store.account_summaries().unwrap()[0].state, AccountState::New);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_removed_accounts_staged_mail_is_released_before_the_next_pass() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-holds-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.upsert_account("a@x.se", &Secret::new("pw"), "a@y.se", None, &[]).unwrap();
        let a = store.account_id("a@x.se").unwrap().unwrap();
        let folder = store.insert_folder_for_tests(a, "INBOX", "INBOX", true, 7);
        let id = store.insert_message_for_tests(folder, 7, 1, 5, crate::store::PushState::Pending);
        let hash = vec![1u8; 32];
        store
            .write(|tx| {
                tx.write_bodies([
                    crate::store::BodyWrite::Restart(id),
                    crate::store::BodyWrite::Chunk { id, offset: 0, data: b"hello".to_vec() },
                    crate::store::BodyWrite::Staged { id, hash, size: 5, identity: None },
                ])
            })
            .unwrap();
        assert_eq!(store.spooled_for_tests().1, 1);
        assert_eq!(store.release_removed_accounts().unwrap(), 0, "nothing of an account still in the migration");
        store.remove_account(a, 1).unwrap();
        assert_eq!(store.release_removed_accounts().unwrap(), 1);
        assert_eq!(store.spooled_for_tests().1, 0, "no row counts staged bytes");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
