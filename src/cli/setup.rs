//! The `setup` verb: the servers (the DAV ones too), the cutover, the package, the operator's filter
//! and folder choice, admin logins and e-mail notices, each checked before anything is stored (the same rules as
//! `POST /api/setup`), then stored and said back; and the lines `setup` and `status` share (the
//! cutover, mirroring, staging).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use argh::FromArgs;

use super::read_password_file;
use crate::secret::Secret;
use crate::store::{self, Store};
use crate::units::{human_bytes, parse_size};
use crate::{appliance, check, mx};

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
    /// compress the IMAP connections to a server that offers COMPRESS=DEFLATE: auto (default: only
    /// a server beyond the LAN, a round trip of 4 ms or more), on or off
    #[argh(option)]
    compress: Option<String>,
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
    /// the old host's calendar and contacts (CalDAV/CardDAV) server: https://HOST/PATH, or a host
    /// name alone (found through /.well-known/); off removes it
    #[argh(option)]
    source_dav: Option<String>,
    /// trust the source DAV server's certificate by its SHA-256 fingerprint (off removes the pin)
    #[argh(option)]
    source_dav_pin: Option<String>,
    /// the new host's calendar and contacts (CalDAV/CardDAV) server, as --source-dav
    #[argh(option)]
    target_dav: Option<String>,
    /// trust the target DAV server's certificate by its SHA-256 fingerprint (off removes the pin)
    #[argh(option)]
    target_dav_pin: Option<String>,
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
    let compress =
        setup.compress.as_deref().map(|c| crate::setup::parse_compress(c).map_err(|e| anyhow!("--compress: {e}"))).transpose()?;
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
    folder_change.check_against(&store)?;
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
    let mut davs = Vec::new();
    for (side, url, pin) in [("source", &setup.source_dav, &setup.source_dav_pin), ("target", &setup.target_dav, &setup.target_dav_pin)] {
        let change = crate::setup::DavChange::from_args(url.as_deref(), pin.as_deref());
        let names = [format!("--{side}-dav"), format!("--{side}-dav-pin")];
        davs.extend(crate::setup::dav_plan(&store, side, &change, [&names[0], &names[1]])?.map(|plan| (side, plan)));
    }
    // Every check done: the folder choice is stored with the rest.
    if !folder_change.is_empty() {
        println!("{}", crate::folder_setup::apply(&store, &folder_change)?);
    }
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
    for (side, setting) in davs {
        store.set_dav_server(side, setting.as_ref())?;
        println!("{}", crate::setup::dav_line(side, setting.as_ref()));
        if let Some(setting) = &setting {
            println!("{}", crate::setup::test_dav_side(&store, side, setting)?.line(side));
        }
    }
    setup_notify(&store, setup)?;
    if let Some(on) = mirror {
        println!("{}", mirror_line(&store.change_settings(|s| s.mirror = on)?));
    }
    if let Some(compress) = compress {
        println!("{}", compress_line(&store.change_settings(|s| s.compress = compress)?));
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

/// The compression setting as `setup` and `status` say it.
pub(super) fn compress_line(s: &store::Settings) -> String {
    use crate::imap::Compression;
    let what = match s.compress {
        Compression::Auto => format!(
            "auto (connections to a server beyond the LAN, a round trip of {} ms or more, that offers COMPRESS=DEFLATE)",
            crate::imap::WAN_ROUND_TRIP.as_millis()
        ),
        Compression::On => "on (every connection to a server that offers COMPRESS=DEFLATE)".to_string(),
        Compression::Off => "off".to_string(),
    };
    format!("Compression: {what}")
}

/// The cutover: its settings and each watched domain as the MX watch last saw it, for `status`.
pub(super) fn print_cutover(store: &Store) -> Result<()> {
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
pub(super) fn staging_line(store: &Store) -> Result<String> {
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
