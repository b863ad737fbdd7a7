//! Admin logins: the operator's one login on a side that may log in as every user there, so the
//! account list needs no passwords for that side (`setup --target-admin LOGIN
//! --target-admin-password-file FILE`, the same for the source, and `target_admin` / `source_admin`
//! in `POST /api/setup`). Two ways to log in as a user, chosen per side by its mode: `plain` is SASL
//! PLAIN with an authorization identity (RFC 4616: `AUTHENTICATE PLAIN` with `user NUL admin NUL
//! password`), which Dovecot's master users, Cyrus's admins and others take; `master` is Dovecot's
//! master-user form, `LOGIN "user*admin"` with the admin's password (`*` being Dovecot's default
//! `auth_master_user_separator`, the only one postflytt writes). An account's own password, when the
//! list gives one, is used before the admin's, so one account whose admin rights are missing can still
//! be given its own. The admin's password is sealed at rest like every secret (`secret.` settings,
//! deleted by the purge at finish), never in an answer, a log line or an error. A Microsoft 365 side
//! logs in with its app registration, so an admin login there is refused.

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::imap::{ImapError, Session, kind_of};
use crate::secret::Secret;
use crate::store::{ServerKind, Store};

/// Dovecot's default `auth_master_user_separator`: `LOGIN "user*admin"` logs in as `user` with the
/// master user `admin`'s password.
pub const MASTER_SEPARATOR: char = '*';

/// How the admin logs in as a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `AUTHENTICATE PLAIN` with the user as authorization identity (RFC 4616); the default.
    Plain,
    /// Dovecot's master-user form: the login `user*admin`, the admin's password.
    Master,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Master => "master",
        }
    }

    /// "plain" or "master", either case; anything else is refused with a sentence naming `what`.
    pub fn parse(what: &str, text: &str) -> Result<Mode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "plain" => Ok(Mode::Plain),
            "master" => Ok(Mode::Master),
            _ => bail!(
                "{what} must be plain (AUTHENTICATE PLAIN as each user, the admin as authentication identity) or master \
                 (Dovecot's master-user login user{MASTER_SEPARATOR}admin); got {:?}",
                text.trim()
            ),
        }
    }
}

/// A side's admin login with its password.
#[derive(Clone)]
pub struct AdminLogin {
    pub login: String,
    pub mode: Mode,
    password: Secret,
}

impl AdminLogin {
    #[cfg(test)]
    pub fn new(login: &str, mode: Mode, password: &str) -> AdminLogin {
        AdminLogin { login: login.to_string(), mode, password: Secret::new(password) }
    }
}

/// What a session logs in with: the account's own password, or the side's admin login.
pub enum Credential {
    Own(Secret),
    Admin(AdminLogin),
}

fn login_key(side: &str) -> String {
    format!("{side}.admin.login")
}

fn mode_key(side: &str) -> String {
    format!("{side}.admin.mode")
}

/// Sealed as `secret.{side}.admin.password`, so the purge at finish deletes it with the others.
fn password_key(side: &str) -> String {
    format!("{side}.admin.password")
}

/// The side's admin login and mode, without the password (for the status and the CLI).
pub fn configured(store: &Store, side: &str) -> Result<Option<(String, Mode)>> {
    let Some(login) = store.setting(&login_key(side))? else { return Ok(None) };
    let mode = store.setting(&mode_key(side))?.and_then(|m| Mode::parse("", &m).ok()).unwrap_or(Mode::Plain);
    Ok(Some((login, mode)))
}

/// How an import treats the source password column: optional with a source admin login (an account
/// with neither its own password nor the admin is refused at import, as before), or as the kind says.
pub fn source_auth(store: &Store) -> Result<crate::import::SourceAuth> {
    let kind = store.source_kind()?;
    if kind == ServerKind::Imap && store.setting(&login_key("source"))?.is_some() {
        return Ok(crate::import::SourceAuth::Admin);
    }
    Ok(crate::import::SourceAuth::of(kind))
}

/// The side's admin login with its password; an error saying what to do when the login is set and its
/// password is not stored (purged at finish, or never given).
pub fn admin_of(store: &Store, side: &str) -> Result<Option<AdminLogin>> {
    let Some((login, mode)) = configured(store, side)? else { return Ok(None) };
    let password = store.secret_setting(&password_key(side))?.ok_or_else(|| {
        anyhow!(
            "the {side} admin login {login} has no password stored (purged at finish, or never given): \
             postflytt setup --{side}-admin-password-file FILE"
        )
    })?;
    Ok(Some(AdminLogin { login, mode, password }))
}

/// What `user` logs in with on `side`: `own` when the account has a password of its own there, else
/// the side's admin login; neither is an error that says how to give one.
pub fn credential(store: &Store, side: &str, user: &str, own: Option<&Secret>) -> Result<Credential> {
    if let Some(own) = own.filter(|p| !p.is_empty()) {
        return Ok(Credential::Own(own.clone()));
    }
    match admin_of(store, side)? {
        Some(admin) => Ok(Credential::Admin(admin)),
        None => bail!(
            "{user}: no {side} password stored and no {side} admin login set: add the password to the account list and import \
             again, or set an admin login (postflytt setup --{side}-admin LOGIN --{side}-admin-password-file FILE)"
        ),
    }
}

/// Logs `session` in as `user` on `side` with `credential`. An admin login the server refuses says
/// which admin and what to check; the error keeps its kind (`ImapError::Refused`) for the failure
/// policy, and never holds the password.
pub async fn log_in(session: &mut Session, side: &str, user: &str, credential: &Credential) -> Result<()> {
    let admin = match credential {
        Credential::Own(password) => return session.login(user, password).await,
        Credential::Admin(admin) => admin,
    };
    let result = match admin.mode {
        Mode::Plain => {
            // Capabilities not known yet (no CAPABILITY in the greeting) read as not offered: ask once.
            if !session.has("AUTH=PLAIN") {
                session.refresh_capabilities().await?;
            }
            if !session.has("AUTH=PLAIN") {
                bail!(
                    "{}: the server does not offer AUTHENTICATE PLAIN, which the {side} admin login's plain mode needs; for Dovecot \
                     set the mode to master (postflytt setup --{side}-admin-mode master), or give the accounts' own passwords",
                    session.label()
                );
            }
            session.login_as(user, &admin.login, &admin.password).await
        }
        Mode::Master => session.login(&format!("{user}{MASTER_SEPARATOR}{}", admin.login), &admin.password).await,
    };
    result.map_err(|e| {
        if matches!(kind_of(&e), Some(ImapError::Refused { .. })) {
            e.context(format!(
                "the {side} admin login {} ({} mode) could not log in as {user}: check the admin's password \
                 (postflytt setup --{side}-admin-password-file FILE), that the server lets it log in as other users, and the mode",
                admin.login,
                admin.mode.as_str()
            ))
        } else {
            e
        }
    })
}

/// A change to one side's admin login, as `setup` or `POST /api/setup` gives it.
#[derive(Default)]
pub struct Change {
    pub login: Option<String>,
    pub password: Option<Secret>,
    pub mode: Option<String>,
    /// `--no-target-admin`, or `"target_admin": null`.
    pub remove: bool,
}

impl Change {
    fn is_empty(&self) -> bool {
        self.login.is_none() && self.password.is_none() && self.mode.is_none() && !self.remove
    }
}

/// A checked change, stored by `apply`.
pub enum Plan {
    Remove,
    Set { login: String, mode: Mode, password: Option<Secret> },
}

/// Checks a change against what is stored and the side's kind after the same setup (`kind`), before
/// anything of the setup is stored; refused with a sentence naming the side's admin setting.
pub fn plan(store: &Store, side: &str, change: Change, kind: ServerKind) -> Result<Option<Plan>> {
    let stored = configured(store, side)?;
    if change.remove {
        if change.login.is_some() || change.password.is_some() || change.mode.is_some() {
            bail!("the {side} admin login cannot be removed and set in one setup; give one or the other");
        }
        return Ok(Some(Plan::Remove));
    }
    if kind == ServerKind::Microsoft365 && (stored.is_some() || !change.is_empty()) {
        bail!(
            "the {side} is Microsoft 365, where postflytt logs in with the app registration, so it takes no admin login; \
             an admin login is for IMAP servers (remove it with postflytt setup --no-{side}-admin, or {side}_admin: null)"
        );
    }
    if change.is_empty() {
        return Ok(None);
    }
    let login = match change.login.as_deref().map(str::trim) {
        Some(login) => {
            if login.is_empty() || login.chars().any(|c| c.is_control() || c.is_whitespace()) {
                bail!("the {side} admin login {login:?} is not a login: give the admin's user name, without spaces");
            }
            login.to_string()
        }
        None => stored.as_ref().map(|(l, _)| l.clone()).ok_or_else(|| {
            anyhow!("no {side} admin login is set, so there is nothing to change: give the login too (--{side}-admin LOGIN, or {side}_admin.login)")
        })?,
    };
    let mode = match change.mode.as_deref() {
        Some(text) => Mode::parse(&format!("the {side} admin mode"), text)?,
        None => stored.as_ref().map_or(Mode::Plain, |(_, m)| *m),
    };
    if mode == Mode::Master && login.contains(MASTER_SEPARATOR) {
        bail!("the {side} admin login {login} holds {MASTER_SEPARATOR}, the master-user separator, so the master mode cannot use it");
    }
    if let Some(password) = &change.password
        && password.expose().trim().is_empty()
    {
        bail!("the {side} admin password is empty");
    }
    let new_login = stored.as_ref().is_none_or(|(l, _)| *l != login);
    if new_login && change.password.is_none() {
        bail!("the {side} admin login {login} needs its password: --{side}-admin-password-file FILE, or {side}_admin.password");
    }
    Ok(Some(Plan::Set { login, mode, password: change.password }))
}

/// `plan` for `postflytt setup`: the side's kind after it is `kind_flag` (`--target-kind`) when given,
/// else the stored one; the refusal names the flag.
pub fn plan_for_setup(store: &Store, side: &str, change: Change, kind_flag: Option<&str>) -> Result<Option<Plan>> {
    let stored = if side == "source" { store.source_kind()? } else { store.target_kind()? };
    let kind = kind_flag.and_then(ServerKind::parse).unwrap_or(stored);
    plan(store, side, change, kind).map_err(|e| anyhow!("--{side}-admin: {e:#}"))
}

/// Stores a checked change; answers the sentence for the operator (never the password).
pub fn apply(store: &Store, side: &str, plan: Plan) -> Result<String> {
    match plan {
        Plan::Remove => {
            store.remove_setting(&login_key(side))?;
            store.remove_setting(&mode_key(side))?;
            store.remove_setting(&format!("secret.{}", password_key(side)))?;
            Ok(format!("{side} admin login removed: accounts log in on the {side} with their own passwords"))
        }
        Plan::Set { login, mode, password } => {
            if let Some(password) = &password {
                store.set_secret_setting(&password_key(side), password)?;
            }
            store.set_setting(&login_key(side), &login)?;
            store.set_setting(&mode_key(side), mode.as_str())?;
            let how = match mode {
                Mode::Plain => format!("AUTHENTICATE PLAIN as each user, authenticated as {login}"),
                Mode::Master => format!("Dovecot's master-user login user{MASTER_SEPARATOR}{login}"),
            };
            let stored = if password.is_some() { "; its password is stored sealed (you can delete the file now)" } else { "" };
            Ok(format!(
                "{side} admin login: {login}, {} mode ({how}); accounts without a {side} password in the list log in with it{stored}",
                mode.as_str()
            ))
        }
    }
}

/// `source_admin` / `target_admin` of `POST /api/setup`: `null` removes the admin login; an object
/// with `login`, `password` (write-only) and `mode` sets or changes it. Unknown keys are refused.
pub fn change_from_json(side: &str, value: &Value) -> Result<Change> {
    let key = format!("{side}_admin");
    let map = match value {
        Value::Null => return Ok(Change { remove: true, ..Change::default() }),
        Value::Object(map) => map,
        _ => bail!("{key} must be an object like {{\"login\": \"admin\", \"password\": \"…\", \"mode\": \"plain\"}}, or null to remove it"),
    };
    let mut change = Change::default();
    for (field, value) in map {
        let text = || value.as_str().map(str::to_string).ok_or_else(|| anyhow!("{key}.{field} must be a string"));
        match field.as_str() {
            "login" => change.login = Some(text()?),
            "password" => change.password = Some(Secret::new(text()?)),
            "mode" => change.mode = Some(text()?),
            other => bail!("{key}: unknown field `{other}`, expected one of `login`, `password`, `mode`"),
        }
    }
    Ok(change)
}

/// The side's admin login as the status shows it: `{"login", "mode", "password_set"}`, or null.
pub fn status_json(store: &Store, side: &str) -> Value {
    match configured(store, side) {
        Ok(Some((login, mode))) => json!({
            "login": login,
            "mode": mode.as_str(),
            // Whether one is stored, never opened for it: the status is asked every few seconds.
            "password_set": store.has_secret_setting(&password_key(side)).unwrap_or(false),
        }),
        _ => Value::Null,
    }
}

/// The admin logins as `postflytt status` says them, source first; none when none is set.
pub fn status_lines(store: &Store) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for side in ["source", "target"] {
        let Some((login, mode)) = configured(store, side)? else { continue };
        let password = if store.has_secret_setting(&password_key(side))? { "password stored" } else { "no password stored" };
        lines.push(format!("{side} admin login: {login}, {} mode ({password})", mode.as_str()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("pf-admin-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (Store::open(&dir).unwrap(), dir)
    }

    #[test]
    fn a_change_is_checked_before_it_is_stored() {
        let (store, dir) = store();
        let imap = ServerKind::Imap;
        let set = |login: &str, password: Option<&str>, mode: Option<&str>| Change {
            login: Some(login.into()),
            password: password.map(Secret::new),
            mode: mode.map(str::to_string),
            remove: false,
        };
        let e = plan(&store, "target", set("admin", None, None), imap).err().unwrap().to_string();
        assert!(e.contains("needs its password"), "{e}");
        let e = plan(&store, "target", set("admin", Some("pw"), Some("sasl")), imap).err().unwrap().to_string();
        assert!(e.contains("the target admin mode must be plain") && e.contains("\"sasl\""), "{e}");
        let e = plan(&store, "target", set("ad min", Some("pw"), None), imap).err().unwrap().to_string();
        assert!(e.contains("is not a login"), "{e}");
        let e = plan(&store, "target", set("a*b", Some("pw"), Some("master")), imap).err().unwrap().to_string();
        assert!(e.contains("separator"), "{e}");
        let e = plan(&store, "target", set("admin", Some("pw"), None), ServerKind::Microsoft365).err().unwrap().to_string();
        assert!(e.contains("Microsoft 365") && !e.contains("pw"), "{e}");
        assert!(crate::swedish::sentence(&e).starts_with("den nya servern är Microsoft 365"), "the Swedish page can say it: {e}");
        let e = plan(&store, "source", Change { mode: Some("master".into()), ..Change::default() }, imap).err().unwrap().to_string();
        assert!(e.contains("no source admin login is set"), "{e}");

        let plan1 = plan(&store, "target", set("admin", Some("hemligt-1"), None), imap).unwrap().unwrap();
        let said = apply(&store, "target", plan1).unwrap();
        assert!(said.contains("admin, plain mode") && !said.contains("hemligt"), "{said}");
        assert_eq!(status_json(&store, "target"), json!({"login": "admin", "mode": "plain", "password_set": true}));
        // The mode alone changes only the mode; the password stays.
        let mode_only = plan(&store, "target", Change { mode: Some("MASTER".into()), ..Change::default() }, imap).unwrap().unwrap();
        apply(&store, "target", mode_only).unwrap();
        let admin = admin_of(&store, "target").unwrap().unwrap();
        assert_eq!((admin.login.as_str(), admin.mode, admin.password.expose()), ("admin", Mode::Master, "hemligt-1"));
        // A target that becomes Microsoft 365 while the admin login is set is refused.
        assert!(plan(&store, "target", Change::default(), ServerKind::Microsoft365).is_err());
        // The account's own password comes first.
        match credential(&store, "target", "a@x.se", Some(&Secret::new("own"))).unwrap() {
            Credential::Own(p) => assert_eq!(p.expose(), "own"),
            Credential::Admin(_) => panic!("own password first"),
        }
        assert!(matches!(credential(&store, "target", "a@x.se", Some(&Secret::new(""))).unwrap(), Credential::Admin(_)));
        let e = credential(&store, "source", "a@x.se", None).err().unwrap().to_string();
        assert!(e.contains("no source password stored and no source admin login set"), "{e}");
        // The purge at finish takes the password with the other secrets.
        store.purge().unwrap();
        let e = admin_of(&store, "target").err().unwrap().to_string();
        assert!(e.contains("has no password stored"), "{e}");
        assert_eq!(status_json(&store, "target")["password_set"], json!(false));
        let remove = plan(&store, "target", Change { remove: true, ..Change::default() }, imap).unwrap().unwrap();
        apply(&store, "target", remove).unwrap();
        assert_eq!(status_json(&store, "target"), Value::Null);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_api_object_is_read_strictly() {
        let c = change_from_json("target", &json!({"login": "admin", "password": "pw", "mode": "master"})).unwrap();
        assert_eq!(
            (c.login.as_deref(), c.mode.as_deref(), c.password.map(|p| p.expose().to_string())),
            (Some("admin"), Some("master"), Some("pw".into()))
        );
        assert!(change_from_json("target", &Value::Null).unwrap().remove);
        let e = change_from_json("target", &json!({"user": "admin"})).err().unwrap().to_string();
        assert_eq!(e, "target_admin: unknown field `user`, expected one of `login`, `password`, `mode`");
        let e = change_from_json("source", &json!({"password": 5})).err().unwrap().to_string();
        assert_eq!(e, "source_admin.password must be a string");
        assert!(change_from_json("target", &json!("admin")).is_err());
    }
}
