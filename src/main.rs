//! postflytt's command line: parses arguments, runs the chosen verb, prints the error chain once and
//! sets the exit code. Every verb works on one data directory (`--data`, default /var/lib/postflytt)
//! that holds the staging database and the key file.

mod appliance;
mod check;
mod csv_export;
mod failure;
mod fault;
mod folders;
mod front_door;
mod http;
mod identity;
mod imap;
mod import;
mod logger;
mod memory;
mod mx;
mod oauth;
mod pull;
mod push;
mod report;
mod secret;
mod store;
mod sync;
mod template;
mod utf7;
mod verify;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use argh::FromArgs;

use crate::imap::{Endpoint, TlsMode};
use crate::store::Store;

/// postflytt moves a company's mail from its old IMAP server to a new one, through a local staging
/// database, exactly once.
#[derive(FromArgs)]
struct Args {
    /// data directory holding the staging database and key file (default /var/lib/postflytt, or
    /// $POSTFLYTT_DATA)
    #[argh(option)]
    data: Option<PathBuf>,
    #[argh(subcommand)]
    command: Verb,
}

#[derive(FromArgs)]
#[argh(subcommand)]
// Parsed once per run; boxing a variant would need argh to parse boxes, which it does not.
#[allow(clippy::large_enum_variant)]
enum Verb {
    Setup(SetupArgs),
    Import(ImportArgs),
    Folders(FoldersArgs),
    Sync(SyncArgs),
    Status(StatusArgs),
    Check(CheckArgs),
    Serve(ServeArgs),
    Finish(FinishArgs),
    Template(TemplateArgs),
    Mx(MxArgs),
    Verify(VerifyArgs),
    Report(ReportArgs),
}

/// Configure the source (old) and target (new) IMAP servers.
#[derive(FromArgs)]
#[argh(subcommand, name = "setup")]
struct SetupArgs {
    /// source server as HOST:PORT
    #[argh(option)]
    source: Option<String>,
    /// source TLS: implicit (default), starttls or plain (loopback only)
    #[argh(option, default = "String::from(\"implicit\")")]
    source_tls: String,
    /// trust the source's certificate by its SHA-256 fingerprint (for self-signed or expired ones)
    #[argh(option)]
    source_pin: Option<String>,
    /// target server as HOST:PORT
    #[argh(option)]
    target: Option<String>,
    /// target TLS: implicit (default), starttls or plain (loopback only)
    #[argh(option, default = "String::from(\"implicit\")")]
    target_tls: String,
    /// trust the target's certificate by its SHA-256 fingerprint
    #[argh(option)]
    target_pin: Option<String>,
    /// mailbox size the customer bought per account, for targets that report no quota (e.g. 50G)
    #[argh(option)]
    quota_per_account: Option<String>,
    /// largest message the target takes, when it does not announce APPENDLIMIT (e.g. 35M)
    #[argh(option)]
    message_size_limit: Option<String>,
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
}

/// Import the account list (CSV: login, password, target login, target password, aliases).
#[derive(FromArgs)]
#[argh(subcommand, name = "import")]
struct ImportArgs {
    /// the spreadsheet file
    #[argh(positional)]
    file: PathBuf,
}

/// Show the folder mapping for an account: source name -> target name.
#[derive(FromArgs)]
#[argh(subcommand, name = "folders")]
struct FoldersArgs {
    /// the account's source login
    #[argh(positional)]
    account: String,
}

/// Run one pass: copy new mail and flag changes for every account (or the ones named).
#[derive(FromArgs)]
#[argh(subcommand, name = "sync")]
struct SyncArgs {
    /// how many accounts to copy at once (default 4)
    #[argh(option, default = "4")]
    parallel: usize,
    /// open every target folder even with nothing to copy, so one whose UIDVALIDITY changed is
    /// re-matched now (finish does this for its last pass)
    #[argh(switch)]
    recheck: bool,
    /// source logins to sync (default: all)
    #[argh(positional)]
    accounts: Vec<String>,
}

/// Test every account before anything moves: logins, folder sizes, quota, size limit.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct CheckArgs {
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

/// Run the appliance: the status page and API, passes on an interval, the MX watch.
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
struct ServeArgs {
    /// address and port for the page and API (default $POSTFLYTT_LISTEN or 127.0.0.1:8025; 0.0.0.0:8025
    /// for the office network)
    #[argh(option)]
    listen: Option<String>,
    /// a host name the page is opened by, besides its address and localhost (repeatable; also
    /// $POSTFLYTT_PUBLIC_NAMES, comma-separated), e.g. box.kund.se; other names are refused
    #[argh(option)]
    public_name: Vec<String>,
}

/// Finish the migration: a last pass, verification, then purge passwords and staged mail (the report stays).
#[derive(FromArgs)]
#[argh(subcommand, name = "finish")]
struct FinishArgs {
    /// purge even if the verification finds problems
    #[argh(switch)]
    force: bool,
}

/// Write a blank account-list template (both languages' headers, an example row).
#[derive(FromArgs)]
#[argh(subcommand, name = "template")]
struct TemplateArgs {
    /// xlsx (default) or csv
    #[argh(option, default = "String::from(\"xlsx\")")]
    format: String,
    /// file to write (default: standard output)
    #[argh(option)]
    output: Option<PathBuf>,
}

/// Verify that every source message is on the target (by UID and size per folder).
#[derive(FromArgs)]
#[argh(subcommand, name = "verify")]
struct VerifyArgs {
    /// source logins to verify (default: all)
    #[argh(positional)]
    accounts: Vec<String>,
}

/// Write the customer report: per account folders, messages, bytes, skips, verification, checklist.
#[derive(FromArgs)]
#[argh(subcommand, name = "report")]
struct ReportArgs {
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

/// Look up the MX records of domains, as the cutover watch does.
#[derive(FromArgs)]
#[argh(subcommand, name = "mx")]
struct MxArgs {
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

/// Show accounts, what has been staged and copied, and what was skipped.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
struct StatusArgs {}

fn main() -> ExitCode {
    memory::drop_thread_caches();
    memory::share_malloc_arenas();
    memory::limit_sqlite();
    logger::init();
    let args: Args = argh::from_env();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("<3>postflytt: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn data_dir(args: &Args) -> PathBuf {
    args.data
        .clone()
        .or_else(|| std::env::var_os("POSTFLYTT_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/postflytt"))
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

fn run(args: Args) -> Result<ExitCode> {
    let dir = data_dir(&args);
    match args.command {
        Verb::Setup(setup) => {
            // Checked before anything is stored, so a refused setup changes nothing.
            let from_stdin = |f: &Option<PathBuf>| f.as_deref().is_some_and(|p| p.as_os_str() == "-");
            if from_stdin(&setup.m365_client_secret_file) && from_stdin(&setup.source_m365_client_secret_file) {
                bail!("only one client secret can come from standard input (\"-\"); give the other as a file");
            }
            let store = Store::open(&dir)?;
            for (side, server, tls, pin) in [
                ("source", &setup.source, &setup.source_tls, &setup.source_pin),
                ("target", &setup.target, &setup.target_tls, &setup.target_pin),
            ] {
                if let Some(server) = server {
                    let (host, port) = parse_host_port(server, side)?;
                    let endpoint = Endpoint { host, port, tls: TlsMode::parse(tls)?, pin_sha256: pin.clone() };
                    store.set_endpoint(side, &endpoint)?;
                    println!("{side}: {}", endpoint.describe());
                }
            }
            for (side, kind) in [("target", &setup.target_kind), ("source", &setup.source_kind)] {
                let Some(kind) = kind else { continue };
                let kind = store::TargetKind::parse(kind).ok_or_else(|| anyhow!("--{side}-kind {kind:?}: use imap or m365"))?;
                if let Some(endpoint) = store.set_kind(side, kind)? {
                    println!("{side}: {} (Microsoft 365)", endpoint.describe());
                }
            }
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
                let (key, _) = store::Store::m365_prefixes(side);
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
            if let Some(q) = &setup.quota_per_account {
                store.set_setting("limit.quota_per_account", &parse_size(q)?.to_string())?;
            }
            if let Some(l) = &setup.message_size_limit {
                store.set_setting("limit.message_size", &parse_size(l)?.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Verb::Serve(serve) => serve_cmd(&dir, &serve),
        Verb::Template(t) => {
            let bytes = match t.format.to_ascii_lowercase().as_str() {
                "xlsx" => template::template_xlsx(),
                "csv" => template::template_csv(),
                other => bail!("--format {other:?}: use xlsx or csv"),
            };
            write_output(t.output.as_deref(), &bytes)?;
            Ok(ExitCode::SUCCESS)
        }
        Verb::Verify(v) => {
            let store = Store::open(&dir)?;
            let accounts = store.accounts(&v.accounts)?;
            drop(store);
            let results = sync::for_each_account(
                &dir,
                accounts,
                4,
                &async |store: &Store, account: &crate::store::Account| {
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
        Verb::Report(r) => {
            let store = Store::open(&dir)?;
            let report = report::build(&store)?;
            let bytes = match r.format.to_ascii_lowercase().as_str() {
                "html" => report.html(if r.lang == "en" { report::Lang::En } else { report::Lang::Sv }).into_bytes(),
                "csv" => report.csv()?,
                "json" => serde_json::to_vec_pretty(&report)?,
                other => bail!("--format {other:?}: use html, csv or json"),
            };
            write_output(r.output.as_deref(), &bytes)?;
            Ok(ExitCode::SUCCESS)
        }
        Verb::Mx(m) => {
            print!("{}", mx::cli(m.resolver.as_deref(), &m.target_mx, &m.domains)?);
            Ok(ExitCode::SUCCESS)
        }
        Verb::Finish(f) => finish_cmd(&dir, &f),
        Verb::Check(c) => {
            let format = c.format.to_ascii_lowercase();
            if !["table", "csv", "json", "xlsx"].contains(&format.as_str()) {
                bail!("--format {format:?}: use table, csv, xlsx or json");
            }
            if format == "xlsx" && c.output.is_none() {
                bail!("--format xlsx writes a workbook: give --output FILE.xlsx");
            }
            let store = Store::open(&dir)?;
            let accounts = store.accounts(&c.accounts)?;
            let limits = check::Limits::from_store(&store)?;
            drop(store);
            let quiet = c.output.is_none() && format != "table";
            let mut results = sync::for_each_account(
                &dir,
                accounts.clone(),
                c.parallel.clamp(1, 64),
                &async |store: &Store, account: &crate::store::Account| {
                    let result = check::check_account(store, account, &limits).await;
                    if let Err(e) = check::record(store, account, &result) {
                        log::warn!("{}: could not store the check result: {e:#}", account.source_login);
                    }
                    result
                },
                &|account, e| check::CheckResult::failed(account, &format!("{e:#}")),
                &|r| {
                    if !quiet {
                        eprintln!("<6>checked {}: {}", r.account, r.verdict.words())
                    }
                },
            );
            results.sort_by(|a, b| a.account.cmp(&b.account));
            let total: u64 = results.iter().map(|r| r.bytes).sum();
            let free = check::free_disk(&dir)?;
            let mut text = match format.as_str() {
                "csv" => check::csv(&results)?,
                "xlsx" => check::xlsx(&results)?,
                "json" => {
                    serde_json::to_vec_pretty(&serde_json::json!({"accounts": results, "staging_free_bytes": free, "total_bytes": total}))?
                }
                _ => check::table(&results).into_bytes(),
            };
            if format == "table" {
                let ready = results.iter().filter(|r| r.verdict == check::Verdict::Ready).count();
                text.extend_from_slice(
                    format!(
                        "{ready} of {} accounts ready; {} to stage, {} free for staging in {}{}\n",
                        results.len(),
                        sync::human_bytes(total),
                        sync::human_bytes(free),
                        dir.display(),
                        if total > free { " — NOT ENOUGH DISK for staging" } else { "" }
                    )
                    .as_bytes(),
                );
            }
            write_output(c.output.as_deref(), &text)?;
            let all_ready = results.iter().all(|r| r.verdict == check::Verdict::Ready);
            Ok(if all_ready { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Verb::Import(import) => {
            let store = Store::open(&dir)?;
            let auth = import::SourceAuth::of(store.source_kind()?);
            let rows = import::read_import_for(&import.file, auth).map_err(|e| anyhow!("{e}"))?.accounts;
            let known: Vec<String> = store.accounts(&[])?.into_iter().map(|a| a.source_login).collect();
            let tx = store.write_transaction()?;
            let (mut added, mut updated) = (0, 0);
            for row in &rows {
                let is_new = store.upsert_account(
                    &row.source_login,
                    &row.source_password,
                    &row.target_login,
                    row.target_password.as_ref(),
                    &row.aliases,
                )?;
                if is_new { added += 1 } else { updated += 1 }
            }
            tx.commit()?;
            println!("{added} accounts added, {updated} updated");
            let missing: Vec<&String> = known.iter().filter(|k| !rows.iter().any(|r| r.source_login.eq_ignore_ascii_case(k))).collect();
            for m in missing {
                println!("note: {m} is not in this file; it was kept");
            }
            Ok(ExitCode::SUCCESS)
        }
        Verb::Folders(f) => {
            let store = Store::open(&dir)?;
            let account = store.accounts(std::slice::from_ref(&f.account))?.into_iter().next().ok_or_else(|| anyhow!("no such account"))?;
            let maps = smol::block_on(async {
                let mut both = sync::connect_both(&store, &account).await?;
                let d = sync::discover(&store, &account, &mut both.source, &mut both.target).await?;
                both.source.logout().await;
                both.target.logout().await;
                Ok::<_, anyhow::Error>(d.maps)
            })?;
            print!("{}", folders::describe(&maps));
            Ok(ExitCode::SUCCESS)
        }
        Verb::Sync(s) => {
            let lock_path = dir.join("pass.lock");
            let store = Store::open(&dir)?;
            let accounts = store.accounts(&s.accounts)?;
            drop(store);
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("cannot open {}", lock_path.display()))?;
            if lock.try_lock().is_err() {
                bail!("another pass is running on {} (only one at a time per data directory)", dir.display());
            }
            if accounts.is_empty() {
                println!("no accounts: import the account list first (postflytt import FILE)");
                return Ok(ExitCode::SUCCESS);
            }
            let total = accounts.len();
            let kind = if s.recheck { sync::PassKind::Final } else { sync::PassKind::Incremental };
            let reports = sync::pass_many(&dir, accounts, s.parallel.clamp(1, 64), kind, &|r| println!("{}", r.line()));
            let failed = reports.iter().filter(|r| r.error.is_some()).count();
            let appended: u64 = reports.iter().map(|r| r.push.appended).sum();
            let bytes: u64 = reports.iter().map(|r| r.push.appended_bytes).sum();
            let refused: u64 = reports.iter().map(|r| r.push.refused).sum();
            println!(
                "pass done: {total} accounts, {failed} failed, {appended} messages ({}) appended, {refused} refused",
                sync::human_bytes(bytes)
            );
            print_skips(&Store::open(&dir)?)?;
            if let Some(peak) = peak_rss_kib() {
                log::info!("peak memory (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
            }
            Ok(if failed > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Verb::Status(_) => {
            let store = Store::open(&dir)?;
            let mut stmt = store.conn.prepare(
                "SELECT a.source_login, a.target_login, a.state, coalesce(a.last_error, ''),
                   (SELECT count(*) FROM message m JOIN source_folder f ON f.id = m.folder_id WHERE f.account_id = a.id),
                   (SELECT count(*) FROM message m JOIN source_folder f ON f.id = m.folder_id WHERE f.account_id = a.id AND m.push_state = 'pushed'),
                   (SELECT coalesce(sum(m.size), 0) FROM message m JOIN source_folder f ON f.id = m.folder_id WHERE f.account_id = a.id),
                   coalesce((SELECT p.throttled FROM pass p WHERE p.account_id = a.id AND p.finished_at IS NOT NULL ORDER BY p.id DESC LIMIT 1), 0)
                 FROM account a ORDER BY a.source_login",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })?;
            for row in rows {
                let (source, target, state, error, total, pushed, bytes, throttled) = row?;
                println!(
                    "{source} -> {target}: {state}, {pushed}/{total} messages on the target, {} staged",
                    sync::human_bytes(bytes as u64)
                );
                if throttled > 0 {
                    println!("    the servers asked the last pass to slow down {throttled} times (waited as asked; not an error)");
                }
                if !error.is_empty() {
                    println!("    last error: {error}");
                }
            }
            print_skips(&store)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve_cmd(dir: &std::path::Path, serve: &ServeArgs) -> Result<ExitCode> {
    let listen = serve
        .listen
        .clone()
        .or_else(|| std::env::var("POSTFLYTT_LISTEN").ok().filter(|l| !l.is_empty()))
        .unwrap_or_else(|| "127.0.0.1:8025".into());

    let app = appliance::Appliance::open(dir)?;
    // The first SIGTERM/SIGINT asks for a clean stop; a second one ends the process at once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_default(signal, std::sync::Arc::clone(&stop))?;
        signal_hook::flag::register(signal, std::sync::Arc::clone(&stop))?;
    }
    let host = listen.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
    let shown = if host == "0.0.0.0" || host == "[::]" { listen.replacen(host, "THIS-BOX", 1) } else { listen.clone() };
    log::info!("postflytt {} serving the page at http://{shown}/", env!("CARGO_PKG_VERSION"));
    log::info!("viewer code for the customer: {} (also in {})", app.viewer_code, dir.join("viewer-code").display());
    log::info!("operator token: in {} (send it as 'Authorization: Bearer TOKEN')", dir.join("operator-token").display());
    let scheduler = {
        let a = std::sync::Arc::clone(&app);
        workers::spawn_thread("scheduler", move || a.scheduler())?
    };
    let watcher = {
        let a = std::sync::Arc::clone(&app);
        std::thread::spawn(move || appliance::mx_watcher(a))
    };
    let mut public_names = serve.public_name.clone();
    if let Ok(names) = std::env::var("POSTFLYTT_PUBLIC_NAMES") {
        public_names.extend(names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string));
    }
    let server = {
        let a = std::sync::Arc::clone(&app);
        let listen = listen.clone();
        std::thread::spawn(move || http::serve(a, &listen, &public_names))
    };
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && !server.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    appliance::SHUTDOWN.store(true, std::sync::atomic::Ordering::SeqCst);
    if server.is_finished() {
        // The web side ended without being asked: exit non-zero, so that systemd restarts it.
        match server.join() {
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("the web server stopped: it panicked"),
            Ok(Ok(())) if !stop.load(std::sync::atomic::Ordering::SeqCst) => bail!("the web server stopped"),
            Ok(Ok(())) => {}
        }
    } else {
        log::info!("stopping: a running pass stops at its next folder; everything done so far is journalled");
        let _ = server.join();
    }
    let _ = watcher.join();
    let _ = scheduler.join();
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn finish_cmd(dir: &std::path::Path, f: &FinishArgs) -> Result<ExitCode> {
    let app = appliance::Appliance::open(dir)?;
    let outcome = appliance::finish(&app, f.force)?;
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

/// An app's client secret from a file, or from standard input for "-" (never from the command line,
/// where `ps` and the shell history would show it).
fn read_client_secret(path: &std::path::Path) -> Result<secret::Secret> {
    let text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
        t
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read the client secret file {}", path.display()))?
    };
    let secret = secret::Secret::new(text.trim().to_string());
    if secret.is_empty() {
        bail!("the client secret file {} is empty", path.display());
    }
    Ok(secret)
}

/// Writes a verb's output to `--output FILE`, or to standard output.
fn write_output(path: Option<&std::path::Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(path) => std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display())),
        None => Ok(std::io::Write::write_all(&mut std::io::stdout(), bytes)?),
    }
}

/// "35M", "2G", "500k", "1024" (bytes); binary units.
fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.trim_end_matches('B').trim_end_matches('I');
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len()));
    let value: f64 = digits.parse().map_err(|_| anyhow!("{text:?} is not a size: write e.g. 35M or 50G"))?;
    let factor = match unit.trim() {
        "" => 1u64,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        other => bail!("{text:?}: unknown unit {other:?}; use K, M, G or T"),
    };
    Ok((value * factor as f64) as u64)
}

/// The process's peak resident memory in KiB, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn print_skips(store: &Store) -> Result<()> {
    let mut stmt = store.conn.prepare(
        "SELECT a.source_login, s.folder, s.reason, coalesce(s.server_says, '') FROM skip s JOIN account a ON a.id = s.account_id
         ORDER BY s.id",
    )?;
    let rows: Vec<(String, String, String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
    if !rows.is_empty() {
        println!("skipped ({}):", rows.len());
        for (account, folder, reason, says) in rows {
            println!("  {account} {folder}: {reason}: {says}");
        }
    }
    Ok(())
}
