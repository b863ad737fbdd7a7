//! One function per verb of the command line, each below its argh arguments: the function checks what
//! only the command line can get wrong, calls the module that does the work (`store`, `import`,
//! `sync`, `check`, `verify`, `report`, `appliance`, `mx`), prints what the operator reads and says
//! which exit code the run ends with (0 done, 2 done with accounts that need attention). `main` parses
//! the arguments and hands each verb to its function here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use argh::FromArgs;

use crate::secret::Secret;
use crate::store::{self, Account, Store};
use crate::units::{human_bytes, parse_size};
use crate::{appliance, check, folders, http, import, mx, progress, report, sync, template, verify, workers};

/// Configure the source (old) and target (new) IMAP servers.
#[derive(FromArgs)]
#[argh(subcommand, name = "setup")]
pub struct SetupArgs {
    /// source server as HOST:PORT
    #[argh(option)]
    source: Option<String>,
    /// source TLS: implicit (default), starttls or plain (loopback only)
    #[argh(option)]
    source_tls: Option<String>,
    /// trust the source's certificate by its SHA-256 fingerprint (for self-signed or expired ones)
    #[argh(option)]
    source_pin: Option<String>,
    /// target server as HOST:PORT
    #[argh(option)]
    target: Option<String>,
    /// target TLS: implicit (default), starttls or plain (loopback only)
    #[argh(option)]
    target_tls: Option<String>,
    /// trust the target's certificate by its SHA-256 fingerprint
    #[argh(option)]
    target_pin: Option<String>,
    /// mailbox size the customer bought per account, for targets that report no quota (e.g. 50G)
    #[argh(option)]
    quota_per_account: Option<String>,
    /// largest message the target takes, when it does not announce APPENDLIMIT (e.g. 35M)
    #[argh(option)]
    message_size_limit: Option<String>,
    /// most disk the staging database may hold while mail moves (e.g. 32M, 2G; at least 16M), or
    /// auto for the default: a quarter of the free disk, at most 2G
    #[argh(option)]
    staging_limit: Option<String>,
    /// target kind: imap (default) or m365 (Microsoft 365, OAuth2 app login)
    #[argh(option)]
    target_kind: Option<String>,
    /// the Microsoft 365 tenant id (directory id)
    #[argh(option)]
    m365_tenant: Option<String>,
    /// the Microsoft 365 app registration's client (application) id
    #[argh(option)]
    m365_client_id: Option<String>,
    /// file holding the app's client secret ("-" reads it from standard input); never on the command line
    #[argh(option)]
    m365_client_secret_file: Option<PathBuf>,
    /// token endpoint URL (default Microsoft's v2 endpoint for the tenant; for tests)
    #[argh(option)]
    m365_token_url: Option<String>,
    /// source kind: imap (default) or m365 (moving away from Microsoft 365: OAuth2 app login, no
    /// source passwords in the account list)
    #[argh(option)]
    source_kind: Option<String>,
    /// the source's Microsoft 365 tenant id
    #[argh(option)]
    source_m365_tenant: Option<String>,
    /// the source app registration's client id
    #[argh(option)]
    source_m365_client_id: Option<String>,
    /// file holding the source app's client secret ("-" reads standard input)
    #[argh(option)]
    source_m365_client_secret_file: Option<PathBuf>,
    /// the source's token endpoint URL (default Microsoft's v2 endpoint for the tenant; for tests)
    #[argh(option)]
    source_m365_token_url: Option<String>,
    /// the new host's MX name the cutover watch waits for (repeatable; "*.example" matches
    /// subdomains; replaces the names set before)
    #[argh(option)]
    target_mx: Vec<String>,
    /// no new mail on the old server for this long before finishing is safe: seconds or e.g. 24h, 2d
    /// (0 to 30d; default 24h)
    #[argh(option)]
    quiet_period: Option<String>,
    /// time between passes while the appliance serves: seconds or e.g. 15m, 1h (1s to 7d; default 15m)
    #[argh(option)]
    pass_interval: Option<String>,
    /// a domain the cutover watch looks at besides those of the logins and aliases, e.g. when logins
    /// are user names (repeatable)
    #[argh(option)]
    watch_domain: Vec<String>,
    /// stop watching a domain added with --watch-domain (repeatable)
    #[argh(option)]
    no_watch_domain: Vec<String>,
    /// e-mail notices: the SMTP relay as HOST:PORT (off switches notices off)
    #[argh(option)]
    smtp: Option<String>,
    /// the relay's security: starttls (default), tls, or plain (loopback only)
    #[argh(option)]
    smtp_security: Option<String>,
    /// the login at the relay
    #[argh(option)]
    smtp_login: Option<String>,
    /// file holding the relay's password ("-" reads standard input); never on the command line
    #[argh(option)]
    smtp_password_file: Option<PathBuf>,
    /// the sender address of the notices
    #[argh(option)]
    mail_from: Option<String>,
    /// an operator address to notify (repeat for more; replaces the list)
    #[argh(option)]
    notify_operator: Vec<String>,
    /// a customer address to notify (repeat for more; replaces the list)
    #[argh(option)]
    notify_customer: Vec<String>,
    /// the notices' language: sv (default) or en
    #[argh(option)]
    notify_language: Option<String>,
    /// send a test notice to every operator and customer address
    #[argh(switch)]
    smtp_test: bool,
    /// until an account's users switch, the new host follows their moves and deletions on the old
    /// server (for mail postflytt put there): on (default) or off
    #[argh(option)]
    mirror: Option<String>,
    /// move only messages received before this date, YYYY-MM-DD (off removes it); the rest are left
    /// out and listed as skipped
    #[argh(option)]
    older_than: Option<String>,
    /// move only messages received from this date on, YYYY-MM-DD (off removes it)
    #[argh(option)]
    newer_than: Option<String>,
    /// move only messages of at most this size, e.g. 25M (off removes it); larger ones are left out
    /// and listed as skipped
    #[argh(option)]
    max_message_size: Option<String>,
    /// the package's total size for all accounts together, e.g. 500G (off removes it); the check
    /// says whether everything fits
    #[argh(option)]
    quota_total: Option<String>,
    /// leave out folders matching this pattern in every account (repeatable; replaces the list): '/'
    /// or the old server's delimiter between levels, * and ? within a level, children included
    #[argh(option)]
    exclude_folder: Vec<String>,
    /// copy folders matching this pattern even when a default or a pattern leaves them out
    /// (repeatable; replaces the list)
    #[argh(option)]
    include_folder: Vec<String>,
    /// put a source folder elsewhere on the target, as 'SOURCE=TARGET' (repeatable; replaces the
    /// list; its children follow it)
    #[argh(option)]
    map_folder: Vec<String>,
    /// clear --exclude-folder, --include-folder and --map-folder
    #[argh(switch)]
    no_folder_choice: bool,
    /// an admin login on the target that may log in as every user there (Dovecot master user, Cyrus
    /// admin...): accounts without a target password in the list log in with it
    #[argh(option)]
    target_admin: Option<String>,
    /// file holding the target admin's password ("-" reads standard input); never on the command line
    #[argh(option)]
    target_admin_password_file: Option<PathBuf>,
    /// how the target admin logs in as a user: plain (default; AUTHENTICATE PLAIN with the user as
    /// authorization identity) or master (Dovecot's login user*admin)
    #[argh(option)]
    target_admin_mode: Option<String>,
    /// remove the target's admin login (and its stored password)
    #[argh(switch)]
    no_target_admin: bool,
    /// an admin login on the source that may log in as every user there: accounts without a source
    /// password in the list log in with it
    #[argh(option)]
    source_admin: Option<String>,
    /// file holding the source admin's password ("-" reads standard input); never on the command line
    #[argh(option)]
    source_admin_password_file: Option<PathBuf>,
    /// how the source admin logs in as a user: plain (default) or master
    #[argh(option)]
    source_admin_mode: Option<String>,
    /// remove the source's admin login (and its stored password)
    #[argh(switch)]
    no_source_admin: bool,
}

pub fn setup(dir: &Path, setup: &SetupArgs) -> Result<ExitCode> {
    // Checked before anything is stored, so a refused setup changes nothing.
    let from_stdin = |f: &Option<PathBuf>| f.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let secret_files = [&setup.m365_client_secret_file, &setup.source_m365_client_secret_file];
    let admin_files = [&setup.target_admin_password_file, &setup.source_admin_password_file];
    if secret_files.iter().chain(&admin_files).filter(|f| from_stdin(f)).count() > 1 {
        bail!("only one client secret or password can come from standard input (\"-\"); give the others as files");
    }
    let staging_limit = setup
        .staging_limit
        .as_deref()
        .map(|text| store::parse_staging_limit(text).map_err(|e| anyhow!("--staging-limit {text}: {e}")))
        .transpose()?;
    let quota = setup.quota_per_account.as_deref().map(parse_size).transpose()?;
    let size_limit = setup.message_size_limit.as_deref().map(parse_size).transpose()?;
    let cutover = Cutover::from_args(setup)?;
    let mirror = setup.mirror.as_deref().map(|m| crate::setup::parse_mirror(m).map_err(|e| anyhow!("--mirror: {e}"))).transpose()?;
    let filter = crate::filters::FilterChange::parse(
        [setup.older_than.as_deref(), setup.newer_than.as_deref(), setup.max_message_size.as_deref()],
        ["--older-than", "--newer-than", "--max-message-size"],
    )?;
    let quota_total = setup.quota_total.as_deref().map(|t| crate::units::parse_optional_size("--quota-total", t)).transpose()?;
    let given = |l: &Vec<String>| (setup.no_folder_choice || !l.is_empty()).then(|| l.clone());
    let folder_change = crate::folder_setup::FolderChange {
        exclude: given(&setup.exclude_folder),
        include: given(&setup.include_folder),
        map: given(&setup.map_folder),
    };
    folder_change.check(["--exclude-folder", "--include-folder", "--map-folder"])?;
    let store = Store::open(dir)?;
    filter.check_against(&store.settings()?)?;
    if !folder_change.is_empty() {
        println!("{}", crate::folder_setup::apply(&store, &folder_change)?);
    }
    // Both sides are checked (by the same code as the API's) before either is stored.
    let mut sides = Vec::new();
    for (side, server, tls, pin) in
        [("source", &setup.source, &setup.source_tls, &setup.source_pin), ("target", &setup.target, &setup.target_tls, &setup.target_pin)]
    {
        let (host, port) = match server {
            Some(server) => parse_host_port(server, side).map(|(h, p)| (Some(h), Some(p)))?,
            None => (None, None),
        };
        let request = crate::setup::SideRequest { host, port, tls: tls.clone(), pin_sha256: pin.clone() };
        if !request.is_empty() {
            let endpoint = crate::setup::endpoint_for(&store, side, &request).map_err(|e| anyhow!("--{side}: {e:#}"))?;
            sides.push((side, endpoint));
        }
    }
    let admins = admin_plans(&store, setup)?;
    cutover.store(&store)?;
    for (side, endpoint) in &sides {
        store.set_endpoint(side, endpoint)?;
        println!("{side}: {}{}", endpoint.describe(), endpoint.pin_sha256.as_deref().map(|p| format!(", pinned {p}")).unwrap_or_default());
        println!("{}", crate::setup::test_words(side, &crate::setup::test_side(&store, side)?));
    }
    for (side, kind) in [("target", &setup.target_kind), ("source", &setup.source_kind)] {
        let Some(kind) = kind else { continue };
        let kind = store::ServerKind::parse(kind).ok_or_else(|| anyhow!("--{side}-kind {kind:?}: use imap or m365"))?;
        if let Some(endpoint) = store.set_kind(side, kind)? {
            println!("{side}: {} (Microsoft 365)", endpoint.describe());
        }
    }
    set_m365_apps(&store, setup)?;
    for (side, plan) in admins {
        println!("{}", crate::admin_login::apply(&store, side, plan)?);
    }
    setup_notify(&store, setup)?;
    if let Some(on) = mirror {
        println!("{}", mirror_line(&store.change_settings(|s| s.mirror = on)?));
    }
    if quota.is_some() || size_limit.is_some() {
        store.change_settings(|s| {
            s.quota_per_account = quota.or(s.quota_per_account);
            s.message_size_limit = size_limit.or(s.message_size_limit);
        })?;
    }
    if !filter.is_empty() {
        println!("{}", crate::filters::MessageFilter::from_settings(&store.change_settings(|s| filter.apply(s))?).describe());
    }
    if let Some(total) = quota_total {
        store.change_settings(|s| s.quota_total = total)?;
        println!("{}", check::quota_total_line(total));
    }
    if let Some(limit) = staging_limit {
        store.change_settings(|s| s.staging_limit = limit)?;
        println!("{}", staging_line(&store)?);
        let (free, used) = (store::free_disk(dir)?, store.staging_used_bytes()?);
        if limit.is_some_and(|l| l > free + used) {
            println!("note: only {} is free on the disk of {}; staging stops growing there first", human_bytes(free), dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The cutover settings of `setup`, each checked before anything is stored, as `POST /api/setup`
/// checks them (the same ranges and domain rule).
struct Cutover {
    target_mx: Option<Vec<String>>,
    quiet_period: Option<i64>,
    pass_interval: Option<i64>,
    watch: Vec<String>,
    unwatch: Vec<String>,
}

impl Cutover {
    fn from_args(setup: &SetupArgs) -> Result<Cutover> {
        let seconds = |flag: &str, text: &Option<String>, range: &std::ops::RangeInclusive<i64>| -> Result<Option<i64>> {
            let Some(text) = text else { return Ok(None) };
            let n = crate::units::parse_duration(text).map_err(|e| anyhow!("--{flag} {e}"))?;
            store::check_seconds(&format!("--{flag}"), n, range).map(Some)
        };
        let target_mx: Vec<String> = setup.target_mx.iter().map(|m| m.trim().to_string()).collect();
        if target_mx.iter().any(String::is_empty) {
            bail!("--target-mx needs a host name, e.g. mx.new.example or *.mail.protection.outlook.com");
        }
        let domains = |list: &[String], flag: &str| -> Result<Vec<String>> {
            list.iter().map(|d| mx::check_domain(d).map_err(|e| anyhow!("--{flag}: {e}"))).collect()
        };
        Ok(Cutover {
            target_mx: (!target_mx.is_empty()).then_some(target_mx),
            quiet_period: seconds("quiet-period", &setup.quiet_period, &store::QUIET_PERIOD_SECONDS)?,
            pass_interval: seconds("pass-interval", &setup.pass_interval, &store::PASS_INTERVAL_SECONDS)?,
            watch: domains(&setup.watch_domain, "watch-domain")?,
            unwatch: domains(&setup.no_watch_domain, "no-watch-domain")?,
        })
    }

    /// Stores what was given in one transaction and says what the settings are now.
    fn store(&self, store: &Store) -> Result<()> {
        if self.target_mx.is_none()
            && self.quiet_period.is_none()
            && self.pass_interval.is_none()
            && self.watch.is_empty()
            && self.unwatch.is_empty()
        {
            return Ok(());
        }
        let s = store.change_settings(|s| {
            if let Some(t) = &self.target_mx {
                s.mx_target = t.clone();
            }
            if let Some(n) = self.quiet_period {
                s.quiet_period_seconds = n;
            }
            if let Some(n) = self.pass_interval {
                s.pass_interval_seconds = n;
            }
            for d in &self.watch {
                if !s.watch_domains.contains(d) {
                    s.watch_domains.push(d.clone());
                }
            }
            s.watch_domains.retain(|d| !self.unwatch.contains(d));
        })?;
        for line in cutover_lines(&s) {
            println!("{line}");
        }
        Ok(())
    }
}

/// The cutover settings as `setup` and `status` say them.
fn cutover_lines(s: &store::Settings) -> Vec<String> {
    let or_none = |list: &[String]| if list.is_empty() { "(none)".to_string() } else { list.join(", ") };
    vec![
        format!("Target MX: {}", or_none(&s.mx_target)),
        format!("Domains added to the watch: {}", or_none(&s.watch_domains)),
        format!("Quiet period: {} s; pass interval: {} s", s.quiet_period_seconds, s.pass_interval_seconds),
        mirror_line(s),
    ]
}

/// The mirroring setting as `setup` and `status` say it.
fn mirror_line(s: &store::Settings) -> String {
    if s.mirror {
        "Mirror: on (until an account's users switch, the new host follows their moves and deletions on the old server)".into()
    } else {
        "Mirror: off (the new host never follows moves and deletions on the old server)".into()
    }
}

/// The cutover: its settings and each watched domain as the MX watch last saw it, for `status`.
fn print_cutover(store: &Store) -> Result<()> {
    for line in cutover_lines(&store.settings()?) {
        println!("{line}");
    }
    for d in appliance::domain_states(store)? {
        let seen = match (&d.error, d.checked_at) {
            (Some(e), _) => format!("lookup failed: {e}"),
            (None, None) => "not looked up yet".to_string(),
            (None, Some(_)) if d.points_at_target => format!("points at the target ({})", d.hosts.join(", ")),
            (None, Some(_)) => format!("not yet at the target ({})", d.hosts.join(", ")),
        };
        println!("Domain {}: {seen}", d.domain);
    }
    Ok(())
}

/// "Staging: 1.2 GB of 2.0 GB (default: ...)": what staging holds on disk against its limit and
/// where the limit comes from, as `status` and `setup` print it.
fn staging_line(store: &Store) -> Result<String> {
    let (used, limit) = (store.staging_used_bytes()?, store.staging_limit()?);
    let why = if store.settings()?.staging_limit.is_some() {
        "set by the operator".to_string()
    } else {
        format!("default: a quarter of the free disk, at most {}", human_bytes(store::DEFAULT_STAGING_LIMIT))
    };
    let full = if used >= limit { "; full, so fetching waits while the target takes what is staged" } else { "" };
    Ok(format!("Staging: {} of {} ({why}){full}", human_bytes(used), human_bytes(limit)))
}

/// The Microsoft 365 app registrations of `setup`, target then source: tenant, client id, token URL
/// as settings, the client secret sealed.
fn set_m365_apps(store: &Store, setup: &SetupArgs) -> Result<()> {
    let apps = [
        ("target", &setup.m365_tenant, &setup.m365_client_id, &setup.m365_token_url, &setup.m365_client_secret_file),
        (
            "source",
            &setup.source_m365_tenant,
            &setup.source_m365_client_id,
            &setup.source_m365_token_url,
            &setup.source_m365_client_secret_file,
        ),
    ];
    for (side, tenant, client_id, token_url, secret_file) in apps {
        let (key, _) = Store::m365_prefixes(side);
        for (name, value) in [("tenant", tenant), ("client_id", client_id), ("token_url", token_url)] {
            if let Some(value) = value {
                store.set_setting(&format!("{key}{name}"), value.trim())?;
            }
        }
        if let Some(path) = secret_file {
            let secret = read_client_secret(path)?;
            store.set_secret_setting(&format!("{key}client_secret"), &secret)?;
            println!("Microsoft 365 client secret for the {side} stored (sealed); you can delete the file now");
        }
    }
    Ok(())
}

/// The admin logins of `setup`, checked (`admin_login::plan`) against each side's kind after this
/// setup, before anything is stored.
fn admin_plans(store: &Store, setup: &SetupArgs) -> Result<Vec<(&'static str, crate::admin_login::Plan)>> {
    let target =
        (&setup.target_admin, &setup.target_admin_password_file, &setup.target_admin_mode, setup.no_target_admin, &setup.target_kind);
    let source =
        (&setup.source_admin, &setup.source_admin_password_file, &setup.source_admin_mode, setup.no_source_admin, &setup.source_kind);
    let mut plans = Vec::new();
    for (side, (login, file, mode, remove, kind)) in [("target", target), ("source", source)] {
        let password = file.as_deref().map(read_password_file).transpose()?;
        let change = crate::admin_login::Change { login: login.clone(), password, mode: mode.clone(), remove };
        plans.extend(crate::admin_login::plan_for_setup(store, side, change, kind.as_deref())?.map(|plan| (side, plan)));
    }
    Ok(plans)
}

/// The e-mail notice settings of `setup`, then its test message when asked.
fn setup_notify(store: &Store, setup: &SetupArgs) -> Result<()> {
    let mut change = crate::notify::Change { off: setup.smtp.as_deref() == Some("off"), ..Default::default() };
    if let Some(relay) = setup.smtp.as_deref().filter(|r| *r != "off") {
        let (host, port) = parse_host_port(relay, "smtp")?;
        (change.host, change.port) = (Some(host), Some(port));
    }
    if let Some(path) = &setup.smtp_password_file {
        let mut text = String::new();
        if path.as_os_str() == "-" {
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        } else {
            text = std::fs::read_to_string(path).with_context(|| format!("cannot read the SMTP password file {}", path.display()))?;
        }
        let password = Secret::new(text.trim_end_matches(['\r', '\n']).to_string());
        crate::secret::wipe(text.into_bytes());
        if password.is_empty() {
            bail!("the SMTP password file {} is empty", path.display());
        }
        change.password = Some(password);
    }
    let lists = |l: &[String]| Some(l.iter().flat_map(|a| crate::notify::split_addresses(a)).collect::<Vec<_>>()).filter(|l| !l.is_empty());
    (change.security, change.login, change.from) = (setup.smtp_security.clone(), setup.smtp_login.clone(), setup.mail_from.clone());
    (change.operator, change.customer, change.language) =
        (lists(&setup.notify_operator), lists(&setup.notify_customer), setup.notify_language.clone());
    let given = change.off || change.host.is_some() || change.password.is_some() || change.security.is_some() || change.login.is_some();
    if given || change.from.is_some() || change.operator.is_some() || change.customer.is_some() || change.language.is_some() {
        println!("{}", crate::notify::change(store, change)?);
    }
    if setup.smtp_test {
        println!("{}", crate::notify::send_test(store)?);
    }
    Ok(())
}

fn parse_host_port(text: &str, side: &str) -> Result<(String, u16)> {
    let (host, port) =
        text.rsplit_once(':').ok_or_else(|| anyhow!("--{side} {text:?}: write it as HOST:PORT, e.g. imap.example.se:993"))?;
    let port = port.parse().map_err(|_| anyhow!("--{side} {text:?}: {port:?} is not a port number"))?;
    if host.is_empty() {
        bail!("--{side} {text:?}: the host is missing");
    }
    Ok((host.trim_matches(|c| c == '[' || c == ']').to_string(), port))
}

/// An app's client secret from a file, or from standard input for "-" (never from the command line,
/// where `ps` and the shell history would show it).
fn read_client_secret(path: &Path) -> Result<Secret> {
    let text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
        t
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read the client secret file {}", path.display()))?
    };
    let secret = Secret::new(text.trim().to_string());
    if secret.is_empty() {
        bail!("the client secret file {} is empty", path.display());
    }
    Ok(secret)
}

/// Import the account list (CSV: login, password, target login, target password, aliases).
#[derive(FromArgs)]
#[argh(subcommand, name = "import")]
pub struct ImportArgs {
    /// the spreadsheet file
    #[argh(positional)]
    file: PathBuf,
    /// file holding the password of a password-protected .zip ("-" reads standard input); never on
    /// the command line
    #[argh(option)]
    zip_password_file: Option<PathBuf>,
}

pub fn import(dir: &Path, import: &ImportArgs) -> Result<ExitCode> {
    let store = Store::open(dir)?;
    let auth = crate::admin_login::source_auth(&store)?;
    let zip_password = import.zip_password_file.as_deref().map(read_password_file).transpose()?;
    let read = import::read_import_for(&import.file, auth, zip_password.as_ref()).map_err(|e| anyhow!("{e}"))?;
    let saved = import::save(&store, &read.accounts)?;
    println!("{} accounts added, {} updated", saved.added, saved.updated);
    // The same warnings `POST /api/accounts` answers with: ignored columns and rows, oddities.
    for warning in &read.warnings {
        println!("warning: {warning}");
    }
    for login in saved.not_in_file {
        println!("note: {login} is not in this file; it was kept");
    }
    for kept in saved.kept_folder_choice {
        println!("note: {kept}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Show the folder mapping for an account: source name -> target name.
#[derive(FromArgs)]
#[argh(subcommand, name = "folders")]
pub struct FoldersArgs {
    /// the account's source login
    #[argh(positional)]
    account: String,
}

pub fn folders(dir: &Path, f: &FoldersArgs) -> Result<ExitCode> {
    let store = Store::open_existing(dir)?;
    let account = store.accounts(std::slice::from_ref(&f.account))?.into_iter().next().ok_or_else(|| anyhow!("no such account"))?;
    let maps = smol::block_on(async {
        let mut both = sync::connect_both(&store, &account).await?;
        let d = sync::discover(&store, &account, &mut both.source, &mut both.target, None).await?;
        both.source.logout().await;
        both.target.logout().await;
        Ok::<_, anyhow::Error>((d.maps, d.excluded))
    })?;
    let (maps, excluded) = maps;
    print!("{}", folders::describe(&maps));
    print!("{}", crate::folder_choice::describe_excluded(&excluded));
    Ok(ExitCode::SUCCESS)
}

/// Run one pass: copy new mail and flag changes for every account (or the ones named).
#[derive(FromArgs)]
#[argh(subcommand, name = "sync")]
pub struct SyncArgs {
    /// how many accounts to copy at once (default 4)
    #[argh(option, default = "4")]
    parallel: usize,
    /// open every target folder even with nothing to copy, so one whose UIDVALIDITY changed is
    /// re-matched now (finish does this for its last pass)
    #[argh(switch)]
    recheck: bool,
    /// copy again what the last verification found missing on the target (run verify first)
    #[argh(switch)]
    repair: bool,
    /// source logins to sync (default: all)
    #[argh(positional)]
    accounts: Vec<String>,
}

pub fn sync(dir: &Path, s: &SyncArgs) -> Result<ExitCode> {
    let store = Store::open_existing(dir)?;
    let accounts = crate::accounts_admin::passable(&store, store.accounts(&s.accounts)?, !s.accounts.is_empty())?;
    if s.repair {
        let asked = verify::request_repair(&store, &accounts)?;
        if asked.is_empty() {
            println!("repair: the last verification found no message missing on the target (run postflytt verify first)");
        }
        for (login, missing) in asked {
            println!("repair: {login}: {missing} messages missing on the target are copied again");
        }
    }
    drop(store);
    if accounts.is_empty() {
        println!("no accounts: import the account list first (postflytt import FILE)");
        return Ok(ExitCode::SUCCESS);
    }
    let total = accounts.len();
    let kind = if s.recheck { sync::PassKind::Final } else { sync::PassKind::Incremental };
    let logins = accounts.iter().map(|a| a.source_login.clone()).collect();
    let live = progress::Progress::start(dir, "sync", logins, progress::Work::Copy);
    let reports = sync::pass_many(dir, accounts, s.parallel.clamp(1, 64), kind, &|r| {
        if let Some(live) = &live {
            live.done(&r.account);
        }
        progress::say(&r.line());
    });
    drop(live);
    let reports = reports?;
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    let appended: u64 = reports.iter().map(|r| r.push.appended).sum();
    let bytes: u64 = reports.iter().map(|r| r.push.appended_bytes).sum();
    let refused: u64 = reports.iter().map(|r| r.push.refused).sum();
    println!("pass done: {total} accounts, {failed} failed, {appended} messages ({}) appended, {refused} refused", human_bytes(bytes));
    print_skips(&Store::open(dir)?)?;
    // Asked for by the tests and the bench, not shown to everyone.
    if std::env::var("POSTFLYTT_MEMORY_REPORT").is_ok_and(|v| v == "1")
        && let Some(peak) = peak_rss_kib()
    {
        log::info!("peak memory (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    }
    Ok(if failed > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// The process's peak resident memory in KiB, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Show accounts, what has been staged and copied, and what was skipped.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
pub struct StatusArgs {}

pub fn status(dir: &Path, _: &StatusArgs) -> Result<ExitCode> {
    let store = Store::open_existing(dir)?;
    println!("{}", staging_line(&store)?);
    if let Some(line) = crate::notify::status_line(&store)? {
        println!("{line}");
    }
    let checks = store.check_details()?;
    let finished = store.mark(store::RunMark::FinishedAt)?.is_some();
    let (mirroring, mirror_on) = (store.mirror_progress()?, store.settings()?.mirror);
    let mut attention = false;
    for a in store.account_progress()? {
        // The same one status per account as the page's rows (no pass of this process runs now).
        let check = checks.get(&a.id).map(|(verdict, _, at)| (verdict.as_str(), *at));
        let (row, reason) = crate::row_status::of_account(&a, check, finished, false, false);
        attention |= matches!(row, crate::row_status::RowStatus::Failed | crate::row_status::RowStatus::WillNotFit);
        println!(
            "{} -> {}: {}, {}/{} messages on the target, {} staged",
            a.source_login,
            a.target_login,
            crate::row_status::english(row, reason),
            a.pushed,
            a.messages,
            human_bytes(a.bytes as u64)
        );
        println!("    {}", crate::switching::status_line(mirror_on, &mirroring.get(&a.id).copied().unwrap_or_default()));
        if a.throttled_last_pass > 0 {
            println!("    the servers asked the last pass to slow down {} times (waited as asked; not an error)", a.throttled_last_pass);
        }
        if let Some(error) = a.last_error.as_deref().filter(|e| !e.is_empty()) {
            println!("    last error: {error}");
        }
        // A removed account is out of the verification; its last result is history.
        let removed = row == crate::row_status::RowStatus::Removed;
        if let Some(v) = verify::load(&store, a.id).ok().flatten().filter(|v| !v.ok && !removed) {
            attention = true;
            let missing: u64 = v.folders.iter().map(|f| f.missing_count).sum();
            println!(
                "    NOT verified: {missing} messages missing on the target ({}); postflytt sync --repair copies them again",
                v.summary()
            );
        }
    }
    print_skips(&store)?;
    print_cutover(&store)?;
    let settings = store.settings()?;
    println!("{}", crate::filters::MessageFilter::from_settings(&settings).describe());
    println!("{}", check::quota_total_line(settings.quota_total));
    for line in crate::admin_login::status_lines(&store)? {
        println!("{line}");
    }
    // 2 when an account needs a person: a login the check found failing, mail that will not fit, or a
    // failed last pass.
    Ok(if attention { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// What every pass skipped, as `sync` and `status` end with.
fn print_skips(store: &Store) -> Result<()> {
    let skips = store.all_skips()?;
    if !skips.is_empty() {
        println!("skipped ({}):", skips.len());
        // What the operator's filter left out is one line per account, folder and rule, counted.
        let mut left_out: std::collections::BTreeMap<(&str, &str, &str), u64> = std::collections::BTreeMap::new();
        for s in &skips {
            if s.reason.starts_with(store::LEFT_OUT_REASON) {
                *left_out.entry((&s.source_login, &s.folder, &s.reason)).or_default() += 1;
            } else {
                println!("  {} {}: {}: {}", s.source_login, s.folder, s.reason, s.server_says.as_deref().unwrap_or_default());
            }
        }
        for ((login, folder, reason), n) in left_out {
            println!("  {login} {folder}: {reason}: {n} message{}", if n == 1 { "" } else { "s" });
        }
    }
    Ok(())
}

/// Test every account before anything moves: logins, folder sizes, quota, size limit.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
pub struct CheckArgs {
    /// how many accounts to check at once (default 8)
    #[argh(option, default = "8")]
    parallel: usize,
    /// output: table (default), csv, xlsx (needs --output) or json
    #[argh(option, default = "String::from(\"table\")")]
    format: String,
    /// write the output to this file instead of standard output
    #[argh(option)]
    output: Option<PathBuf>,
    /// source logins to check (default: all)
    #[argh(positional)]
    accounts: Vec<String>,
}

pub fn check(dir: &Path, c: &CheckArgs) -> Result<ExitCode> {
    let format = c.format.to_ascii_lowercase();
    if !["table", "csv", "json", "xlsx"].contains(&format.as_str()) {
        bail!("--format {format:?}: use table, csv, xlsx or json");
    }
    if format == "xlsx" && c.output.is_none() {
        bail!("--format xlsx writes a workbook: give --output FILE.xlsx");
    }
    let store = Store::open_existing(dir)?;
    let accounts = store.accounts(&c.accounts)?;
    let limits = check::Limits::from_store(&store)?;
    drop(store);
    let quiet = c.output.is_none() && format != "table";
    let logins = accounts.iter().map(|a| a.source_login.clone()).collect();
    let live = progress::Progress::start(dir, "check", logins, progress::Work::Check);
    let mut results = sync::for_each_account(
        dir,
        accounts.clone(),
        c.parallel.clamp(1, 64),
        &async |store: &Store, account: &Account| {
            if let Some(live) = &live {
                live.begun(&account.source_login);
            }
            let result = check::check_account(store, account, &limits).await;
            if let Err(e) = check::record(store, account, &result) {
                log::warn!("{}: could not store the check result: {e:#}", account.source_login);
            }
            result
        },
        &|account, e| check::CheckResult::failed(account, &format!("{e:#}")),
        &|r| {
            if let Some(live) = &live {
                live.done(&r.account);
            }
            if !quiet {
                log::info!("checked {}: {}", r.account, r.verdict.words());
            }
        },
    );
    drop(live);
    results.sort_by(|a, b| a.account.cmp(&b.account));
    let text = check_output(dir, &format, &results)?;
    write_output(c.output.as_deref(), &text)?;
    let all_ready = results.iter().all(|r| r.verdict == check::Verdict::Ready);
    Ok(if all_ready { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// The check's results in the chosen format; the table ends with a line on readiness and disk room.
fn check_output(dir: &Path, format: &str, results: &[check::CheckResult]) -> Result<Vec<u8>> {
    let total: u64 = results.iter().map(|r| r.bytes).sum();
    let free = crate::store::free_disk(dir)?;
    let package = check::PackageFit::of(results, Store::open_existing(dir)?.settings()?.quota_total);
    Ok(match format {
        "csv" => check::csv(results)?,
        "xlsx" => check::xlsx(results)?,
        "json" => serde_json::to_vec_pretty(
            &serde_json::json!({"accounts": results, "staging_free_bytes": free, "total_bytes": total, "package": package}),
        )?,
        _ => {
            let ready = results.iter().filter(|r| r.verdict == check::Verdict::Ready).count();
            let mut table = check::table(results);
            table.push_str(&format!(
                "{ready} of {} accounts ready; {} to stage, {} free for staging in {}{}\n",
                results.len(),
                human_bytes(total),
                human_bytes(free),
                dir.display(),
                if total > free { " — NOT ENOUGH DISK for staging" } else { "" }
            ));
            if let Some(package) = &package {
                table.push_str(&format!("{}\n", package.words()));
            }
            table.into_bytes()
        }
    })
}

/// Run the appliance: the status page and API, passes on an interval, the MX watch.
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// address and port for the page and API (default $POSTFLYTT_LISTEN or 127.0.0.1:8025; 0.0.0.0:8025
    /// for the office network)
    #[argh(option)]
    listen: Option<String>,
    /// a host name the page is opened by, besides its address and localhost (repeatable; also
    /// $POSTFLYTT_PUBLIC_NAMES, comma-separated), e.g. box.kund.se; other names are refused
    #[argh(option)]
    public_name: Vec<String>,
}

pub fn serve(dir: &Path, serve: &ServeArgs) -> Result<ExitCode> {
    let listen = serve
        .listen
        .clone()
        .or_else(|| std::env::var("POSTFLYTT_LISTEN").ok().filter(|l| !l.is_empty()))
        .unwrap_or_else(|| "127.0.0.1:8025".into());
    let app = appliance::Appliance::open(dir)?;
    // The first SIGTERM/SIGINT asks for a clean stop; a second one ends the process at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_default(signal, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let host = listen.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
    let shown = if host == "0.0.0.0" || host == "[::]" { listen.replacen(host, "THIS-BOX", 1) } else { listen.clone() };
    log::info!("postflytt {} serving the page at http://{shown}/", env!("CARGO_PKG_VERSION"));
    log::info!("viewer code for the customer: {} (also in {})", app.viewer_code, dir.join("viewer-code").display());
    log::info!("operator token: in {} (send it as 'Authorization: Bearer TOKEN')", dir.join("operator-token").display());
    let scheduler = {
        let a = Arc::clone(&app);
        workers::spawn_thread("scheduler", move || a.scheduler())?
    };
    let watcher = {
        let a = Arc::clone(&app);
        std::thread::spawn(move || appliance::mx_watcher(a))
    };
    let public_names = public_names(serve);
    let server = {
        let a = Arc::clone(&app);
        let listen = listen.clone();
        std::thread::spawn(move || http::serve(a, &listen, &public_names))
    };
    stop_when_asked(&stop, server)?;
    let _ = watcher.join();
    let _ = scheduler.join();
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The hostnames `serve` answers to besides its address and localhost: `--public-name` and
/// $POSTFLYTT_PUBLIC_NAMES (comma-separated).
fn public_names(serve: &ServeArgs) -> Vec<String> {
    let mut public_names = serve.public_name.clone();
    if let Ok(names) = std::env::var("POSTFLYTT_PUBLIC_NAMES") {
        public_names.extend(names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string));
    }
    public_names
}

/// Waits for a stop signal or for the web side to end, tells the scheduler and the watcher to stop,
/// and waits for the web side. A web side that ended without being asked is an error.
fn stop_when_asked(stop: &AtomicBool, server: std::thread::JoinHandle<Result<()>>) -> Result<()> {
    while !stop.load(Ordering::SeqCst) && !server.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    appliance::SHUTDOWN.store(true, Ordering::SeqCst);
    if server.is_finished() {
        // The web side ended without being asked: exit non-zero, so that systemd restarts it.
        match server.join() {
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("the web server stopped: it panicked"),
            Ok(Ok(())) if !stop.load(Ordering::SeqCst) => bail!("the web server stopped"),
            Ok(Ok(())) => {}
        }
    } else {
        log::info!("stopping: a running pass stops at its next folder; everything done so far is journalled");
        let _ = server.join();
    }
    Ok(())
}

/// Finish the migration: a last pass, verification, then purge passwords and staged mail (the report stays).
#[derive(FromArgs)]
#[argh(subcommand, name = "finish")]
pub struct FinishArgs {
    /// purge even if the verification finds problems
    #[argh(switch)]
    force: bool,
}

pub fn finish(dir: &Path, f: &FinishArgs) -> Result<ExitCode> {
    let logins: Vec<String> = Store::open_existing(dir)?.accounts(&[])?.into_iter().map(|a| a.source_login).collect();
    let app = appliance::Appliance::open(dir)?;
    let live = progress::Progress::start(dir, "finish", logins, progress::Work::Copy);
    let outcome = appliance::finish(&app, f.force);
    drop(live);
    let outcome = outcome?;
    for p in &outcome.problems {
        println!("problem: {p}");
    }
    if outcome.purged {
        println!(
            "finished: every account verified{}; passwords and staged mail purged. The report: postflytt report",
            if outcome.verified_ok { "" } else { " (with problems, purged anyway)" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("not finished: fix the problems above and run finish again (or --force)");
        Ok(ExitCode::from(2))
    }
}

/// Write a blank account-list template (both languages' headers, an example row).
#[derive(FromArgs)]
#[argh(subcommand, name = "template")]
pub struct TemplateArgs {
    /// xlsx (default) or csv
    #[argh(option, default = "String::from(\"xlsx\")")]
    format: String,
    /// file to write (default: standard output)
    #[argh(option)]
    output: Option<PathBuf>,
}

pub fn template(t: &TemplateArgs) -> Result<ExitCode> {
    let bytes = match t.format.to_ascii_lowercase().as_str() {
        "xlsx" => template::template_xlsx(),
        "csv" => template::template_csv(),
        other => bail!("--format {other:?}: use xlsx or csv"),
    };
    if t.output.is_none() && t.format.eq_ignore_ascii_case("xlsx") && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!(
            "the xlsx template is a binary workbook, not for a terminal: give --output FILE.xlsx, or redirect (> konton.xlsx); --format csv prints text"
        );
    }
    write_output(t.output.as_deref(), &bytes)?;
    Ok(ExitCode::SUCCESS)
}

/// Verify that every source message is on the target (by UID and size per folder).
#[derive(FromArgs)]
#[argh(subcommand, name = "verify")]
pub struct VerifyArgs {
    /// source logins to verify (default: all)
    #[argh(positional)]
    accounts: Vec<String>,
}

pub fn verify(dir: &Path, v: &VerifyArgs) -> Result<ExitCode> {
    let store = Store::open_existing(dir)?;
    let accounts = store.accounts(&v.accounts)?;
    drop(store);
    let results = sync::for_each_account(
        dir,
        accounts,
        4,
        &async |store: &Store, account: &Account| {
            let r = verify::verify_account(store, account).await;
            if let Err(e) = verify::record(store, &r) {
                log::warn!("{}: {e:#}", account.source_login);
            }
            r
        },
        &|account, e| verify::VerifyResult::failed(account, &format!("{e:#}")),
        &|r| println!("{}", r.line()),
    );
    Ok(if results.iter().all(|r| r.ok) { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// Write the customer report: per account folders, messages, bytes, skips, verification, checklist.
#[derive(FromArgs)]
#[argh(subcommand, name = "report")]
pub struct ReportArgs {
    /// html (default), csv or json
    #[argh(option, default = "String::from(\"html\")")]
    format: String,
    /// sv (default) or en, for html
    #[argh(option, default = "String::from(\"sv\")")]
    lang: String,
    /// file to write (default: standard output)
    #[argh(option)]
    output: Option<PathBuf>,
}

pub fn report(dir: &Path, r: &ReportArgs) -> Result<ExitCode> {
    let lang = match r.lang.to_ascii_lowercase().as_str() {
        "sv" => report::Lang::Sv,
        "en" => report::Lang::En,
        other => bail!("--lang {other:?}: the report is written in Swedish (sv) or English (en)"),
    };
    let store = Store::open_existing(dir)?;
    let report = report::build(&store)?;
    let bytes = match r.format.to_ascii_lowercase().as_str() {
        "html" => report.html(lang).into_bytes(),
        "csv" => report.csv()?,
        "json" => serde_json::to_vec_pretty(&report)?,
        other => bail!("--format {other:?}: use html, csv or json"),
    };
    write_output(r.output.as_deref(), &bytes)?;
    Ok(ExitCode::SUCCESS)
}

/// Look up the MX records of domains, as the cutover watch does.
#[derive(FromArgs)]
#[argh(subcommand, name = "mx")]
pub struct MxArgs {
    /// DNS server to ask (IP or IP:PORT; default: /etc/resolv.conf)
    #[argh(option)]
    resolver: Option<String>,
    /// the new host's MX name (repeatable; "*.example" matches subdomains)
    #[argh(option)]
    target_mx: Vec<String>,
    /// domains to look up
    #[argh(positional)]
    domains: Vec<String>,
}

pub fn mx(m: &MxArgs) -> Result<ExitCode> {
    print!("{}", mx::cli(m.resolver.as_deref(), &m.target_mx, &m.domains)?);
    Ok(ExitCode::SUCCESS)
}

/// Writes a verb's output to `--output FILE`, or to standard output.
fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(path) => std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display())),
        None => Ok(std::io::Write::write_all(&mut std::io::stdout(), bytes)?),
    }
}

/// Remove one account from the migration: no more passes, its passwords wiped, what was copied kept
/// for the report. Importing it again brings it back.
#[derive(FromArgs)]
#[argh(subcommand, name = "remove")]
pub struct RemoveArgs {
    /// the account's source login
    #[argh(positional)]
    login: String,
}

pub fn remove(dir: &Path, r: &RemoveArgs) -> Result<ExitCode> {
    let store = Store::open_existing(dir)?;
    println!("{}", crate::accounts_admin::remove(&store, &r.login, pass_running(dir))?);
    Ok(ExitCode::SUCCESS)
}

/// Pause one account: passes leave it alone (and finish waits) until it is resumed.
#[derive(FromArgs)]
#[argh(subcommand, name = "pause")]
pub struct PauseArgs {
    /// the account's source login
    #[argh(positional)]
    login: String,
}

pub fn pause(dir: &Path, p: &PauseArgs) -> Result<ExitCode> {
    let store = Store::open_existing(dir)?;
    println!("{}", crate::accounts_admin::pause(&store, &p.login, true, pass_running(dir))?);
    Ok(ExitCode::SUCCESS)
}

/// Resume a paused account: the next pass copies it.
#[derive(FromArgs)]
#[argh(subcommand, name = "resume")]
pub struct ResumeArgs {
    /// the account's source login
    #[argh(positional)]
    login: String,
}

pub fn resume(dir: &Path, r: &ResumeArgs) -> Result<ExitCode> {
    let store = Store::open_existing(dir)?;
    println!("{}", crate::accounts_admin::pause(&store, &r.login, false, false)?);
    Ok(ExitCode::SUCCESS)
}

/// Give one account new passwords (either or both), read from files or standard input ("-"), never
/// from the command line; the account is checked again before it counts as ready.
#[derive(FromArgs)]
#[argh(subcommand, name = "password")]
pub struct PasswordArgs {
    /// the account's source login
    #[argh(positional)]
    login: String,
    /// file holding the password on the old server ("-": standard input)
    #[argh(option)]
    source_password_file: Option<PathBuf>,
    /// file holding the password on the new server ("-": standard input)
    #[argh(option)]
    target_password_file: Option<PathBuf>,
}

pub fn password(dir: &Path, p: &PasswordArgs) -> Result<ExitCode> {
    if p.source_password_file.as_deref().is_some_and(|f| f.as_os_str() == "-")
        && p.target_password_file.as_deref().is_some_and(|f| f.as_os_str() == "-")
    {
        bail!("only one of the passwords can come from standard input (\"-\"); give the other as a file");
    }
    let new = crate::accounts_admin::NewPasswords {
        source: p.source_password_file.as_deref().map(read_password_file).transpose()?,
        target: p.target_password_file.as_deref().map(read_password_file).transpose()?,
    };
    let store = Store::open_existing(dir)?;
    let (message, warnings) = crate::accounts_admin::set_passwords(&store, &p.login, &new)?;
    for w in &warnings {
        println!("warning: {w}");
    }
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

/// Say that accounts' users have switched to the new host: from then on nothing is moved or removed
/// there for them, whatever they do on the old server. Cannot be undone.
#[derive(FromArgs)]
#[argh(subcommand, name = "switched")]
pub struct SwitchedArgs {
    /// the accounts' source logins
    #[argh(positional)]
    logins: Vec<String>,
    /// every account in the migration
    #[argh(switch)]
    all: bool,
}

pub fn switched(dir: &Path, s: &SwitchedArgs) -> Result<ExitCode> {
    let which = crate::switching::Which::of(s.logins.clone(), s.all, "--all")?;
    let store = Store::open_existing(dir)?;
    for outcome in crate::switching::mark_by_operator(&store, &which)? {
        println!("{}", outcome.message);
    }
    Ok(ExitCode::SUCCESS)
}

/// A password from a file or standard input: exactly as written but for the line's end (spaces are
/// kept, as an import keeps them).
fn read_password_file(path: &Path) -> Result<Secret> {
    let mut text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
        t
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read the password file {}", path.display()))?
    };
    for end in ["\n", "\r"] {
        if text.ends_with(end) {
            text.pop();
        }
    }
    Ok(Secret::new(text))
}

/// Whether a pass (this machine's appliance or another `sync`) holds the data directory's pass lock.
fn pass_running(dir: &Path) -> bool {
    std::fs::OpenOptions::new().write(true).open(dir.join("pass.lock")).is_ok_and(|f| f.try_lock().is_err())
}
