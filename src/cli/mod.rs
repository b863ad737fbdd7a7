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
use crate::units::human_bytes;
use crate::{appliance, check, folders, http, import, mx, progress, report, sync, template, verify, workers};

mod setup;
pub use setup::{SetupArgs, setup};
use setup::{print_cutover, staging_line};

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
    let dav_on = store.dav_set_up()?;
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
        if dav_on {
            let counts = store.dav_counts(a.id)?;
            println!("    calendars and contacts: {}", crate::report::dav_counts_words(&counts, crate::report::Lang::En));
        }
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
    println!("{}", setup::compress_line(&settings));
    println!("{}", crate::filters::MessageFilter::from_settings(&settings).describe());
    println!("{}", check::quota_total_line(settings.quota_total));
    for line in crate::admin_login::status_lines(&store)? {
        println!("{line}");
    }
    for side in ["source", "target"] {
        println!("{}", crate::setup::dav_line(side, store.dav_server(side)?.as_ref()));
    }
    // 2 when an account needs a person: a login the check found failing, mail that will not fit, or a
    // failed last pass.
    Ok(if attention { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// What every pass skipped, as `sync` and `status` end with.
fn print_skips(store: &Store) -> Result<()> {
    let skips = store.all_skips()?;
    // What the operator's filter left out is one line per account, folder and rule, counted (in SQL:
    // a filter may leave out millions).
    let left_out = store.left_out_skips()?;
    let count = skips.len() as i64 + left_out.iter().map(|(_, _, _, n)| n).sum::<i64>();
    if count > 0 {
        println!("skipped ({count}):");
        for s in skips {
            println!("  {} {}: {}: {}", s.source_login, s.folder, s.reason, s.server_says.as_deref().unwrap_or_default());
        }
        for (login, folder, reason, n) in left_out {
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
    // The package is about every account, also those this run did not check: their last results.
    let store = Store::open_existing(dir)?;
    let stored: Vec<check::CheckResult> = store.check_details_by_login()?.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    let package = check::PackageFit::of(&stored, store.settings()?.quota_total, store.accounts(&[])?.len());
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
pub(super) fn read_password_file(path: &Path) -> Result<Secret> {
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
