//! The account rows: who is migrated from which source login to which target login, their passwords
//! (sealed with the key file, the login as associated data, so a sealed password cannot be moved to
//! another account), aliases, and how the account's last pass ended (`AccountState`, its error, when
//! it last saw new mail). An import writes them, every pass reads them and records its outcome here.

use anyhow::{Result, bail};
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{Store, Tx};
use crate::secret::Secret;

/// One account as the workers need it.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub source_login: String,
    pub target_login: String,
    pub source_password: Option<Secret>,
    pub target_password: Option<Secret>,
    pub aliases: Vec<String>,
    /// The account's own logins on the DAV servers (issue 19), None when the list gave none: the
    /// engine then uses the mail login and password of that side.
    // Until the engine reads them, within this session.
    #[allow(dead_code)]
    pub source_dav_login: Option<String>,
    #[allow(dead_code)]
    pub source_dav_password: Option<Secret>,
    #[allow(dead_code)]
    pub target_dav_login: Option<String>,
    #[allow(dead_code)]
    pub target_dav_password: Option<Secret>,
}

/// The DAV logins of one account as the list gives them (the four optional columns); an empty cell is
/// None. A password is sealed with its column named in the associated data (`dav_aad`).
#[derive(Debug, Clone, Default)]
pub struct DavLogins {
    pub source_login: Option<String>,
    pub source_password: Option<Secret>,
    pub target_login: Option<String>,
    pub target_password: Option<Secret>,
}

/// The associated data a side's DAV password is sealed with: the column and the account, so a sealed
/// DAV password can be neither moved to another account nor taken for the mail password.
fn dav_aad(side: &str, source_login: &str) -> String {
    format!("{side}_dav:{source_login}")
}

/// How an account's last pass ended (`account.state`): `New` until its first pass (the schema's
/// default), then `Synced` or `Failed`. The page and the report show the text as it is stored, except
/// that an account the operator holds (`holds`) reads as `Paused` or `Removed` whatever its last pass
/// did (`SHOWN_STATE`); those two are never stored in the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    New,
    Synced,
    Failed,
    Paused,
    Removed,
}

/// The state as read for the page, the CLI and the report: the operator's hold first, else the column.
pub(super) const SHOWN_STATE: &str =
    "CASE WHEN removed_at IS NOT NULL THEN 'removed' WHEN paused_at IS NOT NULL THEN 'paused' ELSE state END";

impl AccountState {
    /// The text the database holds and the page, the CLI and the report show.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::New => "new",
            AccountState::Synced => "synced",
            AccountState::Failed => "failed",
            AccountState::Paused => "paused",
            AccountState::Removed => "removed",
        }
    }
}

impl std::fmt::Display for AccountState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl rusqlite::ToSql for AccountState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for AccountState {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<AccountState> {
        match value.as_str()? {
            "new" => Ok(AccountState::New),
            "synced" => Ok(AccountState::Synced),
            "failed" => Ok(AccountState::Failed),
            "paused" => Ok(AccountState::Paused),
            "removed" => Ok(AccountState::Removed),
            other => Err(rusqlite::types::FromSqlError::Other(format!("unknown account state {other:?}").into())),
        }
    }
}

/// An account as an import gives it, its passwords already sealed: sealing is done before the write
/// transaction, so the transaction holds the write lock only for the rows.
#[derive(Debug, Clone)]
pub struct SealedAccount {
    source_login: String,
    source_password: Vec<u8>,
    target_login: String,
    target_password: Option<Vec<u8>>,
    aliases: String,
    source_dav_login: Option<String>,
    source_dav_password: Option<Vec<u8>>,
    target_dav_login: Option<String>,
    target_dav_password: Option<Vec<u8>>,
}

/// An account's row without its passwords, as the report lists it. `aliases` is the text as stored
/// (comma-separated); the reader decides how to split it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub id: i64,
    pub source_login: String,
    pub target_login: String,
    pub aliases: String,
    pub state: AccountState,
    pub last_error: Option<String>,
    pub last_pass_at: Option<i64>,
    pub last_new_mail_at: Option<i64>,
    /// When the operator removed the account (`postflytt remove`); its counts stay for the report.
    pub removed_at: Option<i64>,
}

impl Store {
    /// Seals an account's passwords for `Tx::upsert_account`. An empty target password counts as none.
    pub fn seal_account(
        &self,
        source_login: &str,
        source_password: &Secret,
        target_login: &str,
        target_password: Option<&Secret>,
        aliases: &[String],
    ) -> Result<SealedAccount> {
        let sealed_source = self.seal(source_password, &format!("source:{source_login}"))?;
        let sealed_target = match target_password {
            Some(p) if !p.is_empty() => Some(self.seal(p, &format!("target:{source_login}"))?),
            _ => None,
        };
        Ok(SealedAccount {
            source_login: source_login.to_string(),
            source_password: sealed_source,
            target_login: target_login.to_string(),
            target_password: sealed_target,
            aliases: aliases.join(","),
            source_dav_login: None,
            source_dav_password: None,
            target_dav_login: None,
            target_dav_password: None,
        })
    }

    /// Adds an account's DAV logins to its sealed row (an empty login or password counts as none).
    /// Written by the same upsert, so a re-import sets them as the list has them, like the mail passwords.
    pub fn seal_dav_logins(&self, mut sealed: SealedAccount, dav: &DavLogins) -> Result<SealedAccount> {
        let login = |l: &Option<String>| l.as_deref().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string);
        let password = |side: &str, p: &Option<Secret>| -> Result<Option<Vec<u8>>> {
            match p {
                Some(p) if !p.is_empty() => Ok(Some(self.seal(p, &dav_aad(side, &sealed.source_login))?)),
                _ => Ok(None),
            }
        };
        let (source, target) = (password("source", &dav.source_password)?, password("target", &dav.target_password)?);
        (sealed.source_dav_login, sealed.source_dav_password) = (login(&dav.source_login), source);
        (sealed.target_dav_login, sealed.target_dav_password) = (login(&dav.target_login), target);
        Ok(sealed)
    }

    /// Inserts or updates one account by source login, in its own transaction; true when it is new.
    /// Tests make their accounts so; an import writes all of its accounts in one transaction with
    /// `Tx::upsert_account`.
    #[cfg(test)]
    pub fn upsert_account(
        &self,
        source_login: &str,
        source_password: &Secret,
        target_login: &str,
        target_password: Option<&Secret>,
        aliases: &[String],
    ) -> Result<bool> {
        let sealed = self.seal_account(source_login, source_password, target_login, target_password, aliases)?;
        self.write(|tx| tx.upsert_account(&sealed))
    }

    /// Accounts by source login, all of them when `only` is empty; unknown names are an error. A
    /// removed account is not among them (named, it is an error that says how to bring it back).
    pub fn accounts(&self, only: &[String]) -> Result<Vec<Account>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, source_login, target_login, source_password, target_password, aliases,
                    source_dav_login, source_dav_password, target_dav_login, target_dav_password FROM account
             WHERE removed_at IS NULL ORDER BY source_login",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, String>(5)?,
                [r.get::<_, Option<String>>(6)?, r.get::<_, Option<String>>(8)?],
                [r.get::<_, Option<Vec<u8>>>(7)?, r.get::<_, Option<Vec<u8>>>(9)?],
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, source_login, target_login, sp, tp, aliases, [sdl, tdl], [sdp, tdp]) = row?;
            if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&source_login)) {
                continue;
            }
            let source_password = match sp {
                Some(sealed) => Some(self.key.open(&sealed, format!("source:{source_login}").as_bytes())?),
                None => None,
            };
            let target_password = match tp {
                Some(sealed) => Some(self.key.open(&sealed, format!("target:{source_login}").as_bytes())?),
                None => None,
            };
            let dav_password = |side: &str, sealed: Option<Vec<u8>>| -> Result<Option<Secret>> {
                sealed.map(|sealed| self.key.open(&sealed, dav_aad(side, &source_login).as_bytes())).transpose()
            };
            let (source_dav_password, target_dav_password) = (dav_password("source", sdp)?, dav_password("target", tdp)?);
            let login = |l: Option<String>| l.filter(|l| !l.is_empty());
            out.push(Account {
                id,
                source_login,
                target_login,
                source_password,
                target_password,
                aliases: aliases.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect(),
                source_dav_login: login(sdl),
                source_dav_password,
                target_dav_login: login(tdl),
                target_dav_password,
            });
        }
        for wanted in only {
            if !out.iter().any(|a| a.source_login.eq_ignore_ascii_case(wanted)) {
                if self.removed_login(wanted)? {
                    bail!("{wanted} was removed from the migration; import it again to bring it back");
                }
                bail!("no account {wanted:?}: import it first (postflytt import FILE), or see `postflytt status`");
            }
        }
        Ok(out)
    }

    /// The id of the account with exactly this source login, if there is one.
    pub fn account_id(&self, source_login: &str) -> Result<Option<i64>> {
        Ok(self.conn.row("SELECT id FROM account WHERE source_login = ?1", [source_login], |r| r.get(0)).optional()?)
    }

    /// Every account without its passwords, by source login.
    pub fn account_summaries(&self) -> Result<Vec<AccountSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, source_login, target_login, aliases, {SHOWN_STATE}, last_error, last_pass_at, last_new_mail_at, removed_at
             FROM account ORDER BY source_login"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(AccountSummary {
                id: r.get(0)?,
                source_login: r.get(1)?,
                target_login: r.get(2)?,
                aliases: r.get(3)?,
                state: r.get(4)?,
                last_error: r.get(5)?,
                last_pass_at: r.get(6)?,
                last_new_mail_at: r.get(7)?,
                removed_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Tx<'_> {
    /// Inserts or updates an account by source login (a re-import never drops one, and brings a removed
    /// or paused one back); true when it is new.
    pub fn upsert_account(&self, account: &SealedAccount) -> Result<bool> {
        let old_target: Option<String> = self
            .conn()
            .row("SELECT target_login FROM account WHERE source_login = ?1", [&account.source_login], |r| r.get(0))
            .optional()?;
        let existed = old_target.is_some();
        if old_target.is_some_and(|old| old != account.target_login) {
            // Another target mailbox (the operator fixing a wrong new login): the UIDs recorded in the
            // old one say nothing about it, even where its UIDVALIDITY happens to be the same number.
            // The copies go back to `appending` and the folders read as never looked through, so the
            // next push looks them up by content in the new mailbox before appending what is not there.
            self.conn().run(
                "UPDATE message SET push_state = 'appending', origin = NULL WHERE push_state = 'pushed' AND folder_id IN
                   (SELECT f.id FROM source_folder f JOIN account a ON a.id = f.account_id WHERE a.source_login = ?1)",
                [&account.source_login],
            )?;
            self.conn().run(
                "UPDATE target_folder SET uidvalidity = NULL, indexed_uidnext = 0
                   WHERE account_id = (SELECT id FROM account WHERE source_login = ?1)",
                [&account.source_login],
            )?;
        }
        self.conn().run(
            "INSERT INTO account (source_login, source_password, target_login, target_password, aliases,
                 source_dav_login, source_dav_password, target_dav_login, target_dav_password)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (source_login) DO UPDATE SET source_password = excluded.source_password,
                 target_login = excluded.target_login, target_password = excluded.target_password,
                 aliases = excluded.aliases, removed_at = NULL, paused_at = NULL,
                 source_dav_login = excluded.source_dav_login, source_dav_password = excluded.source_dav_password,
                 target_dav_login = excluded.target_dav_login, target_dav_password = excluded.target_dav_password",
            params![
                account.source_login,
                account.source_password,
                account.target_login,
                account.target_password,
                account.aliases,
                account.source_dav_login,
                account.source_dav_password,
                account.target_dav_login,
                account.target_dav_password
            ],
        )?;
        Ok(!existed)
    }

    /// Records how an account's pass ended at `at`: `Failed` with its error, or `Synced`; the time of
    /// new mail moves only when the pass found some.
    pub fn record_account_pass(&self, account_id: i64, at: i64, error: Option<&str>, new_mail: bool) -> Result<()> {
        let state = if error.is_some() { AccountState::Failed } else { AccountState::Synced };
        self.conn().run(
            "UPDATE account SET last_pass_at = ?2, last_error = ?3, state = ?4,
               last_new_mail_at = CASE WHEN ?5 THEN ?2 ELSE last_new_mail_at END WHERE id = ?1",
            params![account_id, at, error, state, new_mail],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_reads_back_as_written_and_the_default_is_new() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-accounts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.upsert_account("a@x.se", &Secret::new("pw"), "a@y.se", None, &["b@x.se".into(), "c@x.se".into()]).unwrap();
        let id = store.account_id("a@x.se").unwrap().unwrap();
        assert_eq!(store.account_id("A@x.se").unwrap(), None, "exactly this login");
        let summary = |store: &Store| store.account_summaries().unwrap().remove(0);
        assert_eq!((summary(&store).state, summary(&store).aliases.as_str()), (AccountState::New, "b@x.se,c@x.se"));
        store.write(|tx| tx.record_account_pass(id, 10, Some("lost"), true)).unwrap();
        let failed = summary(&store);
        assert_eq!(
            (failed.state, failed.last_error.as_deref(), failed.last_pass_at, failed.last_new_mail_at),
            (AccountState::Failed, Some("lost"), Some(10), Some(10))
        );
        store.write(|tx| tx.record_account_pass(id, 20, None, false)).unwrap();
        let synced = summary(&store);
        assert_eq!(
            (synced.state, synced.last_error, synced.last_pass_at, synced.last_new_mail_at),
            (AccountState::Synced, None, Some(20), Some(10))
        );
        assert_eq!(store.account_progress().unwrap()[0].state.to_string(), "synced");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dav_passwords_are_sealed_to_their_column_and_wiped_when_the_account_is_removed() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-accounts-dav-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let dav = DavLogins {
            source_login: Some(" anna.cal ".into()),
            source_password: Some(Secret::new("gammal")),
            target_login: Some(String::new()),
            target_password: Some(Secret::new("ny")),
        };
        let sealed = store.seal_account("a@x.se", &Secret::new("pw"), "a@y.se", None, &[]).unwrap();
        let sealed = store.seal_dav_logins(sealed, &dav).unwrap();
        store.write(|tx| tx.upsert_account(&sealed)).unwrap();
        let a = store.accounts(&[]).unwrap().remove(0);
        assert_eq!((a.source_dav_login.as_deref(), a.target_dav_login.as_deref()), (Some("anna.cal"), None), "trimmed; empty is None");
        assert_eq!(
            (a.source_dav_password.as_ref().map(Secret::expose), a.target_dav_password.as_ref().map(Secret::expose)),
            (Some("gammal"), Some("ny"))
        );
        // Sealed to its column: the source's DAV password does not open as the target's or the mail one.
        let sealed_source: Vec<u8> = store.conn.row("SELECT source_dav_password FROM account", [], |r| r.get(0)).unwrap();
        assert!(store.key.open(&sealed_source, b"target_dav:a@x.se").is_err());
        assert!(store.key.open(&sealed_source, b"source:a@x.se").is_err());
        store.remove_account(a.id, 5).unwrap();
        let left: (Option<Vec<u8>>, Option<Vec<u8>>) =
            store.conn.row("SELECT source_dav_password, target_dav_password FROM account", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(left, (None, None), "removed with the mail passwords");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
