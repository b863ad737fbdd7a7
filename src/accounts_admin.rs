//! Accounts one at a time: what the operator does to a single account between imports, the same from
//! the CLI (`remove`, `pause`, `resume`, `sync LOGIN`, `password`) and the API
//! (`/api/accounts/LOGIN/...`). Removing takes an account out of the migration (no pass, check or
//! verification, no say in finishing), wipes its sealed passwords at once and keeps what had been
//! copied for the report; importing it again brings it back. Pausing keeps it in the migration but out
//! of passes, and finishing refuses while any account is paused (unless forced), so nothing is finished
//! silently with mail not copied. A hold set while the account's pass runs stops that pass at its next
//! folder boundary (`sync` asks the store), rather than refusing: the operator who removes an account
//! with a long first copy under way wants it to stop now, and whatever was done is journalled. New
//! passwords are checked as an import checks them, sealed at once, never echoed, and send the account
//! back to be checked.

use anyhow::Result;

use crate::secret::Secret;
use crate::store::{AccountState, RunMark, ServerKind, Store, now};

/// Why an action on one account was refused, with the sentence for the person: `NotFound` (404),
/// `Conflict` (409: finished, paused, removed), `Invalid` (400: what was sent is wrong).
#[derive(Debug)]
pub enum Refused {
    NotFound(String),
    Conflict(String),
    Invalid(String),
}

impl Refused {
    pub fn status(&self) -> u16 {
        match self {
            Refused::NotFound(_) => 404,
            Refused::Conflict(_) => 409,
            Refused::Invalid(_) => 400,
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotFound(s) | Refused::Conflict(s) | Refused::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Refused {}

/// The account a login names, refused once the migration is finished (nothing more happens to any
/// account then) and, unless `removed_ok`, when it was removed.
fn account(store: &Store, login: &str, removed_ok: bool) -> Result<(i64, String, AccountState)> {
    if store.mark(RunMark::FinishedAt)?.is_some() {
        return Err(Refused::Conflict("the migration is finished; its accounts can no longer be changed".into()).into());
    }
    let Some((id, login, state)) = store.account_by_login(login)? else {
        return Err(Refused::NotFound(format!("no account {login:?}: see the account list (postflytt status)")).into());
    };
    if state == AccountState::Removed && !removed_ok {
        return Err(Refused::Conflict(format!("{login} was removed from the migration; import it again to bring it back")).into());
    }
    Ok((id, login, state))
}

/// Removes an account (see the module). `pass_running`: whether a pass may be copying it right now.
pub fn remove(store: &Store, login: &str, pass_running: bool) -> Result<String> {
    let (id, login, state) = account(store, login, true)?;
    if state == AccountState::Removed {
        return Ok(format!("{login} was already removed"));
    }
    store.remove_account(id, now())?;
    log::info!("{login}: removed by the operator; its passwords are wiped");
    let running = if pass_running { "; a pass copying it stops at its next folder" } else { "" };
    Ok(format!(
        "{login} is removed from the migration and its passwords are wiped{running}. What was copied stays in the report; \
         import it again to bring it back"
    ))
}

/// Pauses (`pause` true) or resumes an account.
pub fn pause(store: &Store, login: &str, pause: bool, pass_running: bool) -> Result<String> {
    let (id, login, state) = account(store, login, false)?;
    if pause == (state == AccountState::Paused) {
        return Ok(format!("{login} is already {}", if pause { "paused" } else { "not paused" }));
    }
    store.write(|tx| tx.set_paused(id, pause.then(now)))?;
    log::info!("{login}: {} by the operator", if pause { "paused" } else { "resumed" });
    Ok(if pause {
        let running = if pass_running { "; a pass copying it stops at its next folder" } else { "" };
        format!("{login} is paused: passes leave it alone until it is resumed, and finishing waits for it{running}")
    } else {
        format!("{login} is resumed: the next pass copies it")
    })
}

/// The accounts a pass may take: the paused ones left out. Naming a paused account is refused with a
/// sentence rather than silently skipped.
pub fn passable(store: &Store, accounts: Vec<crate::store::Account>, named: bool) -> Result<Vec<crate::store::Account>> {
    let paused: Vec<String> =
        store.held_accounts()?.into_iter().filter(|h| h.hold == AccountState::Paused).map(|h| h.source_login).collect();
    if named && let Some(a) = accounts.iter().find(|a| paused.contains(&a.source_login)) {
        return Err(
            Refused::Conflict(format!("{} is paused: resume it first (postflytt resume {})", a.source_login, a.source_login)).into()
        );
    }
    Ok(accounts.into_iter().filter(|a| !paused.contains(&a.source_login)).collect())
}

/// The account named for "sync now", ready for a pass: not paused, not removed, not finished.
pub fn for_sync_now(store: &Store, login: &str) -> Result<crate::store::Account> {
    let (_, login, state) = account(store, login, false)?;
    if state == AccountState::Paused {
        return Err(Refused::Conflict(format!("{login} is paused: resume it first")).into());
    }
    let mut accounts = store.accounts(std::slice::from_ref(&login))?;
    accounts.pop().ok_or_else(|| Refused::NotFound(format!("no account {login:?}")).into())
}

/// Refuses to finish while accounts are paused (their mail may not be copied), naming them.
pub fn refuse_finish_while_paused(store: &Store) -> Result<()> {
    let paused: Vec<String> =
        store.held_accounts()?.into_iter().filter(|h| h.hold == AccountState::Paused).map(|h| h.source_login).collect();
    if paused.is_empty() {
        return Ok(());
    }
    let (names, verb) = if paused.len() == 1 { (paused[0].clone(), "is") } else { (paused.join(", "), "are") };
    Err(Refused::Conflict(format!(
        "not finishing: {names} {verb} paused, so the last pass would not copy their mail. Resume or remove them first, \
         or finish with --force to finish anyway"
    ))
    .into())
}

/// One account's new passwords, either or both; checked as an import checks them.
pub struct NewPasswords {
    pub source: Option<Secret>,
    pub target: Option<Secret>,
}

/// Stores new passwords for one account (see the module): the sentence for the person and the
/// warnings an import would give for them. The passwords are sealed at once and never in the answer.
pub fn set_passwords(store: &Store, login: &str, new: &NewPasswords) -> Result<(String, Vec<String>)> {
    let (id, login, _) = account(store, login, false)?;
    if new.source.is_none() && new.target.is_none() {
        return Err(Refused::Invalid("give source_password, target_password or both".into()).into());
    }
    let mut warnings = Vec::new();
    for (side, password, kind) in [("source", &new.source, store.source_kind()?), ("target", &new.target, store.target_kind()?)] {
        let Some(password) = password else { continue };
        let old_new = if side == "source" { "old" } else { "new" };
        if kind == ServerKind::Microsoft365 {
            return Err(Refused::Invalid(format!(
                "the {old_new} server is Microsoft 365, where postflytt logs in with the app, not a password"
            ))
            .into());
        }
        // As validate.rs: an empty password is no password; spaces around it are kept, with a warning.
        if password.expose().trim().is_empty() {
            return Err(Refused::Invalid(format!("the password on the {old_new} server is empty")).into());
        }
        if password.expose().trim() != password.expose() {
            warnings
                .push(format!("{login}: the password on the {old_new} server begins or ends with a space; it is used exactly as written"));
        }
    }
    let source = new.source.as_ref().map(|p| store.seal_password("source", &login, p)).transpose()?;
    let target = new.target.as_ref().map(|p| store.seal_password("target", &login, p)).transpose()?;
    store.write(|tx| tx.set_account_passwords(id, source.as_deref(), target.as_deref()))?;
    let which = match (&new.source, &new.target) {
        (Some(_), Some(_)) => "both passwords",
        (Some(_), None) => "the password on the old server",
        _ => "the password on the new server",
    };
    log::info!("{login}: {which} changed by the operator");
    Ok((format!("{login}: {which} stored. Run the check for this account again to see that it logs in"), warnings))
}
