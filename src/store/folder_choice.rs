//! What the operator's folder choice (`crate::folder_choice`) reads and writes: one account's
//! exclusion patterns from the account list (`account.exclude_folders`, one a line), and whether an
//! account's passes have copied anything yet (after that the choice is fixed: changing which folders
//! move mid-migration would leave half-copied folders).

use anyhow::Result;
use rusqlite::params;

use super::Cached;
use super::{Store, Tx};

/// The `map_reason` discovery records for a folder the operator's choice leaves out.
pub const EXCLUDED_REASON: &str = "excluded";

impl Store {
    /// The account list's exclusion patterns for the account, one a line.
    pub fn account_exclude_folders(&self, account_id: i64) -> Result<String> {
        Ok(self.conn.row("SELECT exclude_folders FROM account WHERE id = ?1", [account_id], |r| r.get(0))?)
    }

    /// Source logins of the accounts (all, or the one given) whose passes have copied a message.
    pub fn accounts_with_copies(&self, account_id: Option<i64>) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.source_login FROM account a WHERE (?1 IS NULL OR a.id = ?1) AND EXISTS (
                 SELECT 1 FROM message m JOIN source_folder f ON f.id = m.folder_id
                 WHERE f.account_id = a.id AND m.push_state IN ('appending', 'pushed'))
             ORDER BY a.source_login",
        )?;
        let rows = stmt.query_map([account_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Names of the account's source folders that already have mail on the target (appending or
    /// pushed): no default exclusion leaves these out (`FolderChoice::exclusion`'s `copied`).
    pub fn folders_with_copies(&self, account_id: i64) -> Result<std::collections::BTreeSet<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.name FROM source_folder f WHERE f.account_id = ?1 AND EXISTS (
                 SELECT 1 FROM message m WHERE m.folder_id = f.id AND m.push_state IN ('appending', 'pushed'))",
        )?;
        let rows = stmt.query_map([account_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any account's passes have copied a message: from then on the folder choice is fixed
    /// (the status's `folder_choice_locked`, which the page reads to close its fields).
    pub fn any_copies(&self) -> Result<bool> {
        Ok(self.conn.row("SELECT EXISTS (SELECT 1 FROM message WHERE push_state IN ('appending', 'pushed'))", [], |r| r.get(0))?)
    }
}

impl Tx<'_> {
    /// Sets the account list's exclusion patterns of the account with this source login.
    pub fn set_account_exclude_folders(&self, source_login: &str, patterns: &str) -> Result<()> {
        self.conn().run("UPDATE account SET exclude_folders = ?2 WHERE source_login = ?1", params![source_login, patterns])?;
        Ok(())
    }

    /// The stored patterns of the account with this source login, and whether it has copies yet.
    pub fn account_exclusions_and_copies(&self, source_login: &str) -> Result<Option<(String, bool)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row(
                "SELECT a.exclude_folders, EXISTS (SELECT 1 FROM message m JOIN source_folder f ON f.id = m.folder_id
                     WHERE f.account_id = a.id AND m.push_state IN ('appending', 'pushed'))
                 FROM account a WHERE a.source_login = ?1",
                [source_login],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}
