//! `make bench`: postflytt against mbsync (Debian's isync) on the same seeded fixture, between local
//! Dovecot instances, all numbers from one run. Not a timed test: one `#[ignore]`d function that
//!
//! 1. starts a source in the old-host layout (`INBOX.` prefix, `.` separator) and loads 4 accounts x
//!    2,000 messages over 13 folders (2-50 KB mostly, ~2 % with 200 KB-2 MB attachments, one 25 MB
//!    message; about 280 MB);
//! 2. runs postflytt (`sync --parallel 4`) and mbsync (`-a`, one channel per account) each into its own
//!    fresh target, three passes each, interleaved so both see the same source: full copy, unchanged
//!    pass, pass after 20 new source messages;
//! 3. checks after every postflytt pass, with the tests' own IMAP reader, that every source message is
//!    on the target exactly once (bytes, flags, internal date), and that the unchanged pass appended
//!    nothing (target UIDNEXTs) and fetched no body (the source Dovecot's `body_count` logout counters);
//!    checks that mbsync copied every message too (per-folder counts), so the comparison is fair;
//! 4. measures peak RSS of a full postflytt migration with `--parallel 1` against `--parallel 4`
//!    (medians of `BENCH_RSS_RUNS`, default 3, runs of each on fresh targets), a single 100 MB message with both tools, and a slow link (a proxy adding 20 ms each way in front of
//!    source and target) with both tools on a subset of the accounts;
//! 5. prints one Markdown table and writes it as JSON to `target/bench/bench.json`, then fails if a
//!    correctness check failed (speed and memory targets are reported, not asserted).
//!
//! Wall time is measured here around the child process; CPU seconds (user + system) and peak RSS come
//! from GNU time (`/usr/bin/time -v`, i.e. the child's rusage), the same way for both tools.
//! `BENCH_QUICK=1` shrinks everything tenfold for quick iterations (JSON to `target/bench/bench-quick.json`);
//! `BENCH_JSON=path` writes the JSON elsewhere. For diagnosis only (they change the numbers):
//! `BENCH_PF_WRAP` / `BENCH_MBSYNC_WRAP` run a tool under a wrapper (strace, valgrind), and
//! `BENCH_POSTFLYTT` names another postflytt binary for the passes (e.g. one built with debug info).

mod common;
mod driver;
#[path = "bench/latency.rs"]
mod latency;
#[path = "bench/mail.rs"]
mod mail;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fixture::{self, FixtureMsg};
use common::{Dovecot, DovecotOptions, Layout};
use driver::{Migration, Via};

const SEED: u64 = 20_240_301;
const MIB: f64 = 1024.0 * 1024.0;

struct Scale {
    quick: bool,
    accounts: usize,
    per_account: usize,
    big: usize,
    huge: usize,
    new_msgs: usize,
    /// Accounts (indices) migrated over the slow link.
    slow_accounts: Vec<usize>,
    latency: Duration,
}

impl Scale {
    fn from_env() -> Scale {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let div = if quick { 10 } else { 1 };
        Scale {
            quick,
            accounts: 4,
            per_account: 2000 / div,
            big: 25 * 1024 * 1024 / div,
            huge: 100 * 1024 * 1024 / div,
            new_msgs: 20,
            slow_accounts: vec![1],
            latency: Duration::from_millis(20),
        }
    }
}

#[derive(Clone)]
struct Acct {
    src: String,
    src_pw: String,
    tgt: String,
    tgt_pw: String,
}

fn accounts(n: usize) -> Vec<Acct> {
    (0..n)
        .map(|i| Acct {
            src: format!("konto{i}@gammal.se"),
            src_pw: format!("kalla-{i}"),
            tgt: format!("konto{i}@ny.se"),
            tgt_pw: format!("mal-{i}"),
        })
        .collect()
}

fn target_opts() -> DovecotOptions {
    DovecotOptions { append_limit: Some(200 << 20), quota_storage: Some("20G".into()), ..DovecotOptions::default() }
}

fn start_target(accts: &[Acct]) -> Dovecot {
    let users: Vec<(&str, &str)> = accts.iter().map(|a| (a.tgt.as_str(), a.tgt_pw.as_str())).collect();
    Dovecot::start_with(Layout::Target, &users, target_opts())
}

fn start_source(accts: &[Acct]) -> Dovecot {
    let users: Vec<(&str, &str)> = accts.iter().map(|a| (a.src.as_str(), a.src_pw.as_str())).collect();
    Dovecot::start(Layout::OldHost, &users)
}

// ---------------------------------------------------------------------------------------------------
// Running a tool under GNU time.

#[derive(Clone, Debug, Default)]
struct Measure {
    wall: f64,
    cpu: f64,
    rss_kib: u64,
    success: bool,
    output: String,
}

fn timed(program: &Path, args: &[String]) -> Measure {
    let dir = common::fresh_dir("pf-bench-time");
    let report = dir.join("time.txt");
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args)
        .env_remove("POSTFLYTT_KILL_AT")
        .output()
        .unwrap_or_else(|e| panic!("run /usr/bin/time {}: {e} (apt-get install time)", program.display()));
    let wall = start.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in GNU time's report:\n{text}"))
    };
    Measure {
        wall,
        cpu: field("User time (seconds):") + field("System time (seconds):"),
        rss_kib: field("Maximum resident set size (kbytes):") as u64,
        success: out.status.success(),
        output: driver::text(&out),
    }
}

fn pf_sync(m: &Migration, parallel: usize) -> Measure {
    let args: Vec<String> =
        vec!["--data".into(), m.data.to_string_lossy().into_owned(), "sync".into(), "--parallel".into(), parallel.to_string()];
    let bin = std::env::var_os("BENCH_POSTFLYTT").map(PathBuf::from).unwrap_or_else(common::postflytt_bin);
    let r = match wrapped("BENCH_PF_WRAP", &bin, &args) {
        Some((program, wargs)) => timed(&program, &wargs),
        None => timed(&bin, &args),
    };
    assert!(r.success, "postflytt sync failed:\n{}", r.output);
    r
}

/// Diagnosis only (changes the numbers): the env var `var` holds a command to run the tool under, e.g.
/// `BENCH_MBSYNC_WRAP="strace -f -tt -o /tmp/mb{n}.trace"` or
/// `BENCH_PF_WRAP="valgrind --tool=massif --massif-out-file=/tmp/pf{n}.massif"`; `{n}` counts runs.
/// `BENCH_POSTFLYTT` names another postflytt binary (e.g. one built with debug info).
fn wrapped(var: &str, program: &Path, args: &[String]) -> Option<(PathBuf, Vec<String>)> {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let wrap = std::env::var(var).ok()?;
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut w: Vec<String> = wrap.split_whitespace().map(|a| a.replace("{n}", &n.to_string())).collect();
    w.push(program.to_string_lossy().into_owned());
    w.extend(args.iter().cloned());
    let program = PathBuf::from(w.remove(0));
    Some((program, w))
}

/// postflytt's own peak (VmHWM) from its log line, MiB.
fn self_peak(output: &str) -> Option<f64> {
    output.lines().find_map(|l| l.split("peak memory (VmHWM): ").nth(1)).and_then(|v| v.trim().trim_end_matches(" MiB").parse().ok())
}

struct MbsyncSetup {
    dir: PathBuf,
    conf: PathBuf,
}

/// An mbsync config with one IMAP-to-IMAP channel per account: far = source, near = target, pull only,
/// create folders on the target, keep internal dates, state files in a temp dir.
fn mbsync_setup(src_port: u16, tgt_port: u16, accts: &[Acct]) -> MbsyncSetup {
    let dir = common::fresh_dir("pf-bench-mbsync");
    let mut c = String::new();
    for (i, a) in accts.iter().enumerate() {
        let state = dir.join(format!("state-{i}"));
        std::fs::create_dir_all(&state).expect("mbsync state dir");
        for (side, port, user, pw) in [("far", src_port, &a.src, &a.src_pw), ("near", tgt_port, &a.tgt, &a.tgt_pw)] {
            let _ = write!(
                c,
                "IMAPAccount {side}{i}\nHost 127.0.0.1\nPort {port}\nUser \"{user}\"\nPass \"{pw}\"\n\
                 SSLType None\nAuthMechs LOGIN\n\nIMAPStore {side}{i}\nAccount {side}{i}\n\n"
            );
        }
        let _ = write!(
            c,
            "Channel ch{i}\nFar :far{i}:\nNear :near{i}:\nPatterns *\nCreate Near\nSync Pull\n\
             Expunge None\nCopyArrivalDate yes\nSyncState {}/\n\n",
            state.display()
        );
    }
    let conf = dir.join("mbsyncrc");
    std::fs::write(&conf, c).expect("write mbsyncrc");
    MbsyncSetup { dir, conf }
}

fn mbsync_run(s: &MbsyncSetup) -> Measure {
    let args = vec!["-c".to_string(), s.conf.to_string_lossy().into_owned(), "-a".to_string()];
    let bin = Path::new("/usr/bin/mbsync");
    match wrapped("BENCH_MBSYNC_WRAP", bin, &args) {
        Some((program, wargs)) => timed(&program, &wargs),
        None => timed(bin, &args),
    }
}

impl Drop for MbsyncSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------------
// Independent checks.

/// Every source message on the target exactly once, bytes, flags and internal date, under postflytt's
/// documented folder mapping (old-host `INBOX.X.Y` to `X/Y`, Swedish special folders to English).
fn exactly_once(source: &Dovecot, target: &Dovecot, accts: &[Acct]) -> Vec<String> {
    let mut problems = Vec::new();
    for a in accts {
        let src = fixture::mailbox_snapshot(&mut source.reader(&a.src));
        let names: Vec<String> = src.keys().cloned().collect();
        let map = driver::hard_case_name_map(Layout::OldHost, &names);
        let tgt = fixture::mailbox_snapshot(&mut target.reader(&a.tgt));
        problems.extend(fixture::diff_mail(&src, &tgt, &map).into_iter().map(|p| format!("{}: {p}", a.src)));
    }
    problems
}

fn folder_counts(server: &Dovecot, user: &str) -> BTreeMap<String, (u32, u32)> {
    let mut r = server.reader(user);
    let folders = r.folders();
    folders
        .into_iter()
        .map(|f| {
            let st = r.status(&f);
            (f, (st.messages, st.uidnext))
        })
        .collect()
}

fn total_messages(server: &Dovecot, user: &str) -> u64 {
    folder_counts(server, user).values().map(|(n, _)| u64::from(*n)).sum()
}

/// mbsync keeps folder names (no special-folder renaming): old-host `INBOX.X.Y` becomes `X/Y`. Every
/// source folder must have the same message count on the target.
fn mbsync_counts_match(source: &Dovecot, target: &Dovecot, accts: &[Acct]) -> Vec<String> {
    let mut problems = Vec::new();
    for a in accts {
        let src = folder_counts(source, &a.src);
        let tgt = folder_counts(target, &a.tgt);
        for (name, (n, _)) in &src {
            let mapped = Layout::Target.join(&Layout::OldHost.split(name));
            let got = tgt.get(&mapped).map(|(m, _)| *m);
            if got != Some(*n) {
                problems.push(format!("{}: {name} -> {mapped}: source {n}, target {got:?}", a.src));
            }
        }
    }
    problems
}

/// (sessions, messages whose body was fetched, body bytes) from Dovecot's logout lines after `from`.
fn fetch_stats(server: &Dovecot, from: usize) -> (u64, u64, u64) {
    // The log process writes asynchronously: give the last logouts a moment to land.
    std::thread::sleep(Duration::from_millis(500));
    let log = server.log();
    let tail = log.get(from..).unwrap_or("");
    let mut s = (0, 0, 0);
    for line in tail.lines().filter(|l| l.contains("body_count=")) {
        let num = |key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())
                .unwrap_or(0)
        };
        s.0 += 1;
        s.1 += num("body_count=");
        s.2 += num("body_bytes=");
    }
    s
}

fn all_uidnexts(server: &Dovecot, accts: &[Acct]) -> BTreeMap<(String, String), u32> {
    let mut out = BTreeMap::new();
    for a in accts {
        for (f, (_, uidnext)) in folder_counts(server, &a.tgt) {
            out.insert((a.tgt.clone(), f), uidnext);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Results.

#[derive(Clone, Debug, Default)]
struct Row {
    scenario: String,
    tool: String,
    wall: f64,
    copied: u64,
    /// Messages the pass had to consider (source total).
    scanned: u64,
    bytes: u64,
    cpu: f64,
    rss_mib: f64,
    self_rss_mib: Option<f64>,
    check: String,
    check_ok: bool,
}

impl Row {
    fn new(scenario: &str, tool: &str, m: &Measure) -> Row {
        Row {
            scenario: scenario.into(),
            tool: tool.into(),
            wall: m.wall,
            cpu: m.cpu,
            rss_mib: m.rss_kib as f64 / 1024.0,
            self_rss_mib: self_peak(&m.output),
            ..Row::default()
        }
    }

    /// Messages per second: copied ones, or scanned ones for a pass that copies nothing.
    fn msgs_per_s(&self) -> f64 {
        let n = if self.copied > 0 { self.copied } else { self.scanned };
        n as f64 / self.wall
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MIB / self.wall
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "null".into() }
}

fn pair<'a>(rows: &'a [Row], scenario: &str) -> Option<(&'a Row, &'a Row)> {
    let pf = rows.iter().find(|r| r.scenario == scenario && r.tool == "postflytt")?;
    let mb = rows.iter().find(|r| r.scenario == scenario && r.tool == "mbsync")?;
    Some((pf, mb))
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| scenario | tool | wall s | copied | scanned | MB | msgs/s | MB/s | CPU s | peak RSS MiB | check |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    for s in scenarios {
        for r in rows.iter().filter(|r| r.scenario == s) {
            let rss = match r.self_rss_mib {
                Some(own) => format!("{:.1} (own {own:.1})", r.rss_mib),
                None => format!("{:.1}", r.rss_mib),
            };
            let _ = writeln!(
                t,
                "| {} | {} | {:.2} | {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {} | {} |",
                r.scenario,
                r.tool,
                r.wall,
                r.copied,
                r.scanned,
                r.bytes as f64 / MIB,
                r.msgs_per_s(),
                r.mb_per_s(),
                r.cpu,
                rss,
                r.check
            );
        }
        if let Some((pf, mb)) = pair(rows, s) {
            let x = |v: f64| if v.is_finite() { format!("{v:.2}x") } else { "n/a".to_string() };
            let _ = writeln!(
                t,
                "| {s} | **postflytt / mbsync** | {} faster | | | | {} | {} | {} | {} | |",
                x(mb.wall / pf.wall),
                x(pf.msgs_per_s() / mb.msgs_per_s()),
                x(pf.mb_per_s() / mb.mb_per_s()),
                x(pf.cpu / mb.cpu),
                x(pf.rss_mib / mb.rss_mib)
            );
        }
    }
    t
}

struct Target {
    name: &'static str,
    goal: String,
    observed: String,
    met: bool,
}

fn rows_json(rows: &[Row]) -> String {
    let mut j = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            j,
            "    {{\"scenario\": {}, \"tool\": {}, \"wall_s\": {}, \"copied\": {}, \"scanned\": {}, \"bytes\": {}, \
             \"msgs_per_s\": {}, \"mb_per_s\": {}, \"cpu_s\": {}, \"peak_rss_mib\": {}, \"own_vmhwm_mib\": {}, \
             \"check\": {}, \"check_ok\": {}}}{}",
            json_str(&r.scenario),
            json_str(&r.tool),
            json_num(r.wall),
            r.copied,
            r.scanned,
            r.bytes,
            json_num(r.msgs_per_s()),
            json_num(r.mb_per_s()),
            json_num(r.cpu),
            json_num(r.rss_mib),
            r.self_rss_mib.map(json_num).unwrap_or_else(|| "null".into()),
            json_str(&r.check),
            r.check_ok,
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    j.push_str("  ]");
    j
}

fn ratios_json(rows: &[Row]) -> String {
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) && pair(rows, &r.scenario).is_some() {
            scenarios.push(&r.scenario);
        }
    }
    let items: Vec<String> = scenarios
        .iter()
        .map(|s| {
            let (pf, mb) = pair(rows, s).expect("pair exists");
            format!(
                "    {{\"scenario\": {}, \"speedup_wall\": {}, \"msgs_per_s\": {}, \"mb_per_s\": {}, \"cpu\": {}, \"peak_rss\": {}}}",
                json_str(s),
                json_num(mb.wall / pf.wall),
                json_num(pf.msgs_per_s() / mb.msgs_per_s()),
                json_num(pf.mb_per_s() / mb.mb_per_s()),
                json_num(pf.cpu / mb.cpu),
                json_num(pf.rss_mib / mb.rss_mib)
            )
        })
        .collect();
    format!("[\n{}\n  ]", items.join(",\n"))
}

fn cmd_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_string())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn progress(start: Instant, what: &str) {
    eprintln!("[bench {:>7.1} s] {what}", start.elapsed().as_secs_f64());
}

/// Loads each account's seeded messages (generated in its own thread) with MULTIAPPEND. Returns per
/// account (messages, bytes).
fn load_source(source: &Dovecot, accts: &[Acct], scale: &Scale) -> Vec<(u64, u64)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = accts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let port = source.port();
                s.spawn(move || {
                    let big = if i == 0 { scale.big } else { 0 };
                    let msgs = mail::account_messages(i, scale.per_account, big, SEED);
                    let mut r = source.reader(&a.src);
                    let names: Vec<String> = mail::FOLDERS.iter().map(|(p, _)| mail::old_host_name(p)).collect();
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    fixture::ensure_folders(&mut r, &refs);
                    for n in &names {
                        r.subscribe(n);
                    }
                    r.logout();
                    let mut loader = mail::Loader::login(port, &a.src, &a.src_pw);
                    for n in &names {
                        let in_folder: Vec<&FixtureMsg> = msgs.iter().filter(|m| &m.folder == n).collect();
                        loader.append_all(n, &in_folder);
                    }
                    loader.logout();
                    (msgs.len() as u64, msgs.iter().map(|m| m.body.len() as u64).sum::<u64>())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("loader thread")).collect()
    })
}

#[test]
#[ignore = "benchmark: run with `make bench`"]
fn bench_postflytt_against_mbsync() {
    let t0 = Instant::now();
    let scale = Scale::from_env();
    let accts = accounts(scale.accounts);
    let load_start = loadavg();
    let mut rows: Vec<Row> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let acct_args = |a: &[Acct]| -> Vec<(String, String, String, String)> {
        a.iter().map(|a| (a.src.clone(), a.src_pw.clone(), a.tgt.clone(), a.tgt_pw.clone())).collect()
    };
    let migration = |source: &Dovecot, sp: Option<u16>, target: &Dovecot, tp: Option<u16>, a: &[Acct]| -> Migration {
        let owned = acct_args(a);
        let refs: Vec<(&str, &str, &str, &str)> =
            owned.iter().map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str())).collect();
        Migration::with_ports(source, Via::Plain, sp, target, Via::Plain, tp, &refs)
    };

    // --- The fixture.
    let source = start_source(&accts);
    progress(t0, "loading the fixture");
    let load_t = Instant::now();
    let loaded = load_source(&source, &accts, &scale);
    let load_s = load_t.elapsed().as_secs_f64();
    let fixture_msgs: u64 = loaded.iter().map(|l| l.0).sum();
    let fixture_bytes: u64 = loaded.iter().map(|l| l.1).sum();
    for (a, (n, _)) in accts.iter().zip(&loaded) {
        assert_eq!(total_messages(&source, &a.src), *n, "source {} holds what was loaded", a.src);
    }
    progress(
        t0,
        &format!(
            "fixture: {} accounts, {fixture_msgs} messages, {:.1} MB, {} folders each, loaded in {load_s:.1} s",
            accts.len(),
            fixture_bytes as f64 / MIB,
            mail::FOLDERS.len()
        ),
    );

    let pf_target = start_target(&accts);
    let mb_target = start_target(&accts);
    let m = migration(&source, None, &pf_target, None, &accts);
    let mb = mbsync_setup(source.port(), mb_target.port(), &accts);

    // --- Pass 1: full migration.
    progress(t0, "postflytt: full migration (--parallel 4)");
    let r = pf_sync(&m, 4);
    let mut row = Row::new("1 full migration", "postflytt", &r);
    row.copied = driver::appended(&r.output);
    row.scanned = fixture_msgs;
    row.bytes = fixture_bytes;
    progress(t0, &format!("postflytt full: {:.1} s; verifying", r.wall));
    let v = Instant::now();
    let problems = exactly_once(&source, &pf_target, &accts);
    row.check_ok = problems.is_empty() && row.copied == fixture_msgs;
    row.check = if row.check_ok {
        format!("exactly once ({:.0} s to verify)", v.elapsed().as_secs_f64())
    } else {
        failures.push(format!(
            "postflytt full pass: appended {} of {fixture_msgs}; {} problems: {:?}",
            row.copied,
            problems.len(),
            &problems[..problems.len().min(20)]
        ));
        format!("FAILED: {} problems", problems.len())
    };
    rows.push(row);

    progress(t0, "mbsync: full migration");
    let r = mbsync_run(&mb);
    let mut row = Row::new("1 full migration", "mbsync", &r);
    let mb_total = || -> u64 { accts.iter().map(|a| total_messages(&mb_target, &a.tgt)).sum() };
    row.copied = mb_total();
    row.scanned = fixture_msgs;
    row.bytes = fixture_bytes;
    let problems = mbsync_counts_match(&source, &mb_target, &accts);
    row.check_ok = r.success && problems.is_empty();
    row.check = if row.check_ok { "all copied (counts)".into() } else { format!("INCOMPLETE: exit ok {}, {problems:?}", r.success) };
    if !row.check_ok {
        notes.push(format!("mbsync full pass incomplete: {}\n{}", row.check, r.output));
    }
    progress(t0, &format!("mbsync full: {:.1} s", r.wall));
    rows.push(row);

    // --- Pass 2: unchanged. Sub-second runs on a shared machine are noisy: three runs of each tool,
    // alternating, the median (by wall time) reported; every run is checked.
    const UNCHANGED_RUNS: usize = 3;
    let before = all_uidnexts(&pf_target, &accts);
    let mb_before = mb_total();
    let (src_log, pf_log, mb_log) = (source.log().len(), pf_target.log().len(), mb_target.log().len());
    let mut pf_runs: Vec<Measure> = Vec::new();
    let mut mb_runs: Vec<Measure> = Vec::new();
    let mut pf_appended = 0;
    for run in 0..UNCHANGED_RUNS {
        progress(t0, &format!("postflytt: unchanged pass ({}/{UNCHANGED_RUNS})", run + 1));
        let r = pf_sync(&m, 4);
        pf_appended += driver::appended(&r.output);
        pf_runs.push(r);
        progress(t0, &format!("mbsync: unchanged pass ({}/{UNCHANGED_RUNS})", run + 1));
        mb_runs.push(mbsync_run(&mb));
    }
    let src_stats = fetch_stats(&source, src_log);
    let (pf_tgt_stats, mb_tgt_stats) = (fetch_stats(&pf_target, pf_log), fetch_stats(&mb_target, mb_log));
    let median = |runs: &[Measure]| -> (Measure, String) {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.wall.total_cmp(&b.wall));
        let walls: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.wall)).collect();
        (sorted[sorted.len() / 2].clone(), format!("median of {} runs ({} s)", runs.len(), walls.join(", ")))
    };
    let (r, runs_text) = median(&pf_runs);
    let mut row = Row::new("2 unchanged pass", "postflytt", &r);
    row.copied = pf_appended;
    row.scanned = fixture_msgs;
    let after = all_uidnexts(&pf_target, &accts);
    let problems = exactly_once(&source, &pf_target, &accts);
    let uid_same = before == after;
    // The source log also holds mbsync's sessions: mbsync fetches no bodies either when nothing changed,
    // and any body fetched by either tool fails this check (postflytt's target is its own).
    row.check_ok = problems.is_empty() && pf_appended == 0 && uid_same && src_stats.1 == 0 && pf_tgt_stats.1 == 0;
    row.check = format!(
        "{runs_text}; {}; 0 APPEND (target UIDNEXTs unchanged): {}; bodies fetched from source: {} ({} B), from target: {}",
        if problems.is_empty() { "exactly once".to_string() } else { format!("FAILED: {} problems", problems.len()) },
        if uid_same && pf_appended == 0 { "yes" } else { "NO" },
        src_stats.1,
        src_stats.2,
        pf_tgt_stats.1
    );
    if !row.check_ok {
        failures.push(format!("postflytt unchanged pass: {} {:?}", row.check, &problems[..problems.len().min(20)]));
    }
    let pf_unchanged_bodies = (src_stats, pf_tgt_stats);
    rows.push(row);

    let (r, runs_text) = median(&mb_runs);
    let mut row = Row::new("2 unchanged pass", "mbsync", &r);
    row.copied = mb_total() - mb_before;
    row.scanned = fixture_msgs;
    row.check_ok = mb_runs.iter().all(|r| r.success) && row.copied == 0;
    row.check = format!("{runs_text}; bodies fetched from target: {}", mb_tgt_stats.1);
    rows.push(row);

    // --- postflytt --parallel 1 on a fresh target (same source state as the full pass), for peak RSS.
    progress(t0, "postflytt: full migration with --parallel 1 (fresh target)");
    {
        let p1_target = start_target(&accts);
        let m1 = migration(&source, None, &p1_target, None, &accts);
        let r = pf_sync(&m1, 1);
        let mut row = Row::new("1b full migration, --parallel 1", "postflytt", &r);
        row.copied = driver::appended(&r.output);
        row.scanned = fixture_msgs;
        row.bytes = fixture_bytes;
        let problems = exactly_once(&source, &p1_target, &accts);
        row.check_ok = problems.is_empty() && row.copied == fixture_msgs;
        row.check = if row.check_ok { "exactly once".into() } else { format!("FAILED: {} problems", problems.len()) };
        if !row.check_ok {
            failures.push(format!("postflytt --parallel 1: {:?}", &problems[..problems.len().min(20)]));
        }
        rows.push(row);
        let _ = std::fs::remove_dir_all(&m1.data);
    }

    // --- More full migrations with --parallel 4 and 1, alternating, each on a fresh target: peak RSS
    // of a single run moves by a few hundred KiB from run to run (page faults of code, allocator
    // timing), so the parallel_rss target compares medians. `BENCH_RSS_RUNS` (default 3) runs of each.
    let rss_runs: usize = std::env::var("BENCH_RSS_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let mut extra_rss: Vec<(usize, f64)> = Vec::new();
    for run in 1..rss_runs {
        for parallel in [4, 1] {
            progress(t0, &format!("postflytt: full migration with --parallel {parallel} for peak RSS, run {}", run + 1));
            let fresh = start_target(&accts);
            let mr = migration(&source, None, &fresh, None, &accts);
            let r = pf_sync(&mr, parallel);
            if driver::appended(&r.output) != fixture_msgs {
                failures.push(format!("postflytt --parallel {parallel} (RSS run {}): appended {}", run + 1, driver::appended(&r.output)));
            }
            extra_rss.push((parallel, r.rss_kib as f64 / 1024.0));
            let _ = std::fs::remove_dir_all(&mr.data);
        }
    }

    // --- mbsync once more into a target that does not offer COMPRESS=DEFLATE (isync 1.4 compresses
    // whenever the server offers it, at a CPU cost on a fast link; postflytt does not compress):
    // informational, to show how much of mbsync's time that is.
    progress(t0, "mbsync: full migration into a target without COMPRESS=DEFLATE");
    {
        let users: Vec<(&str, &str)> = accts.iter().map(|a| (a.tgt.as_str(), a.tgt_pw.as_str())).collect();
        let opts = DovecotOptions { extra_config: "protocol imap {\n  mail_plugins = quota zlib imap_quota\n}\n".into(), ..target_opts() };
        let plain_target = Dovecot::start_with(Layout::Target, &users, opts);
        let offers = plain_target.reader(&accts[0].tgt).capabilities().contains("COMPRESS=DEFLATE");
        let mbp = mbsync_setup(source.port(), plain_target.port(), &accts);
        let r = mbsync_run(&mbp);
        let mut row = Row::new("1c full migration, target without COMPRESS", "mbsync", &r);
        row.copied = accts.iter().map(|a| total_messages(&plain_target, &a.tgt)).sum();
        row.scanned = fixture_msgs;
        row.bytes = fixture_bytes;
        let problems = mbsync_counts_match(&source, &plain_target, &accts);
        row.check_ok = r.success && problems.is_empty() && !offers;
        row.check = if row.check_ok {
            "all copied (counts); informational".into()
        } else {
            format!("INCOMPLETE or COMPRESS still offered ({offers}): {problems:?}")
        };
        rows.push(row);
    }

    // --- Pass 3: 20 new messages spread over the accounts and folders.
    progress(t0, "adding new source messages");
    let mut new_bytes = 0u64;
    let mut new_per_acct = vec![(0u64, 0u64); accts.len()];
    for k in 0..scale.new_msgs {
        let i = k % accts.len();
        let (path, _) = mail::FOLDERS[(k * 5) % mail::FOLDERS.len()];
        let mut rng = common::XorShift::new(SEED + 1000 + k as u64);
        let body = mail::message(i, 100_000 + k, 3000 + 997 * k, k == 7, "1 Dec 2026 10:00:00 +0100", &mut rng);
        new_bytes += body.len() as u64;
        new_per_acct[i].0 += 1;
        new_per_acct[i].1 += body.len() as u64;
        source.reader(&accts[i].src).append(&mail::old_host_name(path), &["\\Seen"], Some("01-Dec-2026 10:00:00 +0100"), &body);
    }
    let scanned = fixture_msgs + scale.new_msgs as u64;

    progress(t0, "postflytt: pass after new mail");
    let r = pf_sync(&m, 4);
    let mut row = Row::new("3 pass after 20 new", "postflytt", &r);
    row.copied = driver::appended(&r.output);
    row.scanned = scanned;
    row.bytes = new_bytes;
    let problems = exactly_once(&source, &pf_target, &accts);
    row.check_ok = problems.is_empty() && row.copied == scale.new_msgs as u64;
    row.check = if row.check_ok { "exactly once".into() } else { format!("FAILED: {} problems", problems.len()) };
    if !row.check_ok {
        failures.push(format!("postflytt pass 3: appended {}; {:?}", row.copied, &problems[..problems.len().min(20)]));
    }
    rows.push(row);

    progress(t0, "mbsync: pass after new mail");
    let before = mb_total();
    let r = mbsync_run(&mb);
    let mut row = Row::new("3 pass after 20 new", "mbsync", &r);
    row.copied = mb_total() - before;
    row.scanned = scanned;
    row.bytes = new_bytes;
    let problems = mbsync_counts_match(&source, &mb_target, &accts);
    row.check_ok = r.success && problems.is_empty() && row.copied == scale.new_msgs as u64;
    row.check = if row.check_ok { "all copied (counts)".into() } else { format!("INCOMPLETE: {problems:?}") };
    rows.push(row);
    progress(t0, "stopping the targets");
    drop(mb);
    drop(mb_target);
    progress(t0, "stopped mbsync's target");
    drop(pf_target);
    progress(t0, "stopped postflytt's target");
    let _ = std::fs::remove_dir_all(&m.data);
    progress(t0, "removed postflytt's data");

    // --- One 100 MB message.
    progress(t0, &format!("one {} MB message", scale.huge >> 20));
    {
        let huge_acct =
            vec![Acct { src: "stor@gammal.se".into(), src_pw: "kalla-s".into(), tgt: "stor@ny.se".into(), tgt_pw: "mal-s".into() }];
        let hsource = start_source(&huge_acct);
        let mut rng = common::XorShift::new(SEED + 7);
        let body = mail::message(9, 0, scale.huge, true, "2 Jan 2020 08:00:00 +0100", &mut rng);
        let huge_bytes = body.len() as u64;
        {
            let mut r = hsource.reader("stor@gammal.se");
            fixture::ensure_folders(&mut r, &["INBOX"]);
            r.logout();
            let msg = FixtureMsg {
                folder: "INBOX".into(),
                flags: ["\\Seen".to_string()].into_iter().collect(),
                internal_date: "02-Jan-2020 08:00:00 +0100".into(),
                body,
            };
            let mut l = mail::Loader::login(hsource.port(), "stor@gammal.se", "kalla-s");
            l.append_all("INBOX", &[&msg]);
            l.logout();
        }
        let t_pf = start_target(&huge_acct);
        let mh = migration(&hsource, None, &t_pf, None, &huge_acct);
        let r = pf_sync(&mh, 4);
        let huge_name = format!("4 one {} MB message", scale.huge >> 20);
        let mut row = Row::new(&huge_name, "postflytt", &r);
        row.copied = driver::appended(&r.output);
        row.scanned = 1;
        row.bytes = huge_bytes;
        let problems = exactly_once(&hsource, &t_pf, &huge_acct);
        row.check_ok = problems.is_empty() && row.copied == 1;
        row.check = if row.check_ok { "exactly once, byte for byte".into() } else { format!("FAILED: {problems:?}") };
        if !row.check_ok {
            failures.push(format!("postflytt huge message: {problems:?}"));
        }
        rows.push(row);
        drop(t_pf);
        let _ = std::fs::remove_dir_all(&mh.data);

        let t_mb = start_target(&huge_acct);
        let mbh = mbsync_setup(hsource.port(), t_mb.port(), &huge_acct);
        let r = mbsync_run(&mbh);
        let mut row = Row::new(&huge_name, "mbsync", &r);
        row.copied = total_messages(&t_mb, "stor@ny.se");
        row.scanned = 1;
        row.bytes = huge_bytes;
        row.check_ok = r.success && row.copied == 1;
        row.check = if row.check_ok { "copied".into() } else { format!("INCOMPLETE: {}", r.output) };
        rows.push(row);
    }

    // --- Slow link: 20 ms each way in front of source and target, a subset of the accounts.
    let slow: Vec<Acct> = scale.slow_accounts.iter().map(|&i| accts[i].clone()).collect();
    let slow_msgs: u64 = scale.slow_accounts.iter().map(|&i| loaded[i].0 + new_per_acct[i].0).sum();
    let slow_bytes: u64 = scale.slow_accounts.iter().map(|&i| loaded[i].1 + new_per_acct[i].1).sum();
    let slow_name = format!(
        "5 slow link +{} ms each way ({} account{}, full)",
        scale.latency.as_millis(),
        slow.len(),
        if slow.len() == 1 { "" } else { "s" }
    );
    progress(t0, &slow_name);
    {
        let src_proxy = latency::LatencyProxy::start(source.port(), scale.latency);
        let link = |s: &latency::LatencyProxy, before: (u64, u64), t: &latency::LatencyProxy| -> String {
            format!(
                "; over the link: {:.1} MB from source, {:.1} MB to target",
                (s.bytes().1 - before.1) as f64 / MIB,
                t.bytes().0 as f64 / MIB
            )
        };
        let t_pf = start_target(&slow);
        let pf_proxy = latency::LatencyProxy::start(t_pf.port(), scale.latency);
        let ms = migration(&source, Some(src_proxy.port()), &t_pf, Some(pf_proxy.port()), &slow);
        let before = src_proxy.bytes();
        let r = pf_sync(&ms, 4);
        let mut row = Row::new(&slow_name, "postflytt", &r);
        row.copied = driver::appended(&r.output);
        let now_msgs: u64 = slow.iter().map(|a| total_messages(&source, &a.src)).sum();
        assert_eq!(now_msgs, slow_msgs, "the slow-link accounts hold their fixture plus their new messages");
        row.scanned = now_msgs;
        row.bytes = slow_bytes;
        let problems = exactly_once(&source, &t_pf, &slow);
        row.check_ok = problems.is_empty() && row.copied == now_msgs;
        row.check = if row.check_ok { "exactly once".into() } else { format!("FAILED: {} problems", problems.len()) };
        row.check.push_str(&link(&src_proxy, before, &pf_proxy));
        if !row.check_ok {
            failures.push(format!("postflytt slow link: {:?}", &problems[..problems.len().min(20)]));
        }
        rows.push(row);
        drop(pf_proxy);
        drop(t_pf);
        let _ = std::fs::remove_dir_all(&ms.data);

        let t_mb = start_target(&slow);
        let mb_proxy = latency::LatencyProxy::start(t_mb.port(), scale.latency);
        let mbs = mbsync_setup(src_proxy.port(), mb_proxy.port(), &slow);
        let before = src_proxy.bytes();
        let r = mbsync_run(&mbs);
        let mut row = Row::new(&slow_name, "mbsync", &r);
        row.copied = slow.iter().map(|a| total_messages(&t_mb, &a.tgt)).sum();
        row.scanned = now_msgs;
        row.bytes = slow_bytes;
        let problems = mbsync_counts_match(&source, &t_mb, &slow);
        row.check_ok = r.success && problems.is_empty();
        row.check = if row.check_ok { "all copied (counts)".into() } else { format!("INCOMPLETE: {problems:?}") };
        row.check.push_str(&link(&src_proxy, before, &mb_proxy));
        rows.push(row);
    }
    drop(source);

    // --- Targets of the issue.
    let find = |scenario_prefix: &str, tool: &str| -> Option<&Row> {
        rows.iter().find(|r| r.scenario.starts_with(scenario_prefix) && r.tool == tool)
    };
    let mut targets: Vec<Target> = Vec::new();
    if let (Some(pf), Some(mbr)) = (find("1 full", "postflytt"), find("1 full", "mbsync")) {
        let ratio = pf.msgs_per_s() / mbr.msgs_per_s();
        targets.push(Target {
            name: "full_migration_speed",
            goal: "postflytt messages/s >= 1.3 x mbsync's".into(),
            observed: format!("{:.1} vs {:.1} msgs/s = {ratio:.2}x", pf.msgs_per_s(), mbr.msgs_per_s()),
            met: ratio >= 1.3,
        });
    }
    if let (Some(pf), Some(mbr)) = (find("2 unchanged", "postflytt"), find("2 unchanged", "mbsync")) {
        targets.push(Target {
            name: "unchanged_pass",
            goal: format!("unchanged pass over {fixture_msgs} messages no slower than mbsync's, 0 APPEND, no body fetched"),
            observed: format!(
                "{:.2} s vs {:.2} s; appended {}; bodies fetched from source {} / target {}",
                pf.wall, mbr.wall, pf.copied, pf_unchanged_bodies.0.1, pf_unchanged_bodies.1.1
            ),
            met: pf.wall <= mbr.wall && pf.check_ok,
        });
    }
    if let Some(pf) = find("1 full", "postflytt") {
        targets.push(Target {
            name: "full_migration_peak_rss",
            goal: format!("peak RSS of the full migration ({} MB message included) <= 32 MiB", scale.big >> 20),
            observed: format!(
                "{:.1} MiB (postflytt's own VmHWM line: {})",
                pf.rss_mib,
                pf.self_rss_mib.map(|v| format!("{v:.1} MiB")).unwrap_or_else(|| "missing".into())
            ),
            met: pf.rss_mib <= 32.0,
        });
    }
    if let (Some(p4), Some(p1)) = (find("1 full", "postflytt"), find("1b full", "postflytt")) {
        let samples = |first: f64, parallel: usize| -> Vec<f64> {
            let mut v: Vec<f64> = std::iter::once(first).chain(extra_rss.iter().filter(|e| e.0 == parallel).map(|e| e.1)).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (s4, s1) = (samples(p4.rss_mib, 4), samples(p1.rss_mib, 1));
        let median = |v: &[f64]| v[v.len() / 2];
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ");
        targets.push(Target {
            name: "parallel_rss",
            goal: "peak RSS with 4 accounts in parallel no more than with 1 (medians of the runs; tolerance 0.5 MiB for allocator noise)"
                .into(),
            observed: format!(
                "--parallel 4: {:.1} MiB (runs {}), --parallel 1: {:.1} MiB (runs {})",
                median(&s4),
                list(&s4),
                median(&s1),
                list(&s1)
            ),
            met: median(&s4) <= median(&s1) + 0.5,
        });
    }
    if let Some(pf) = find("4 one", "postflytt") {
        targets.push(Target {
            name: "huge_message_rss",
            goal: format!("a {} MB message migrates with peak RSS <= 32 MiB", scale.huge >> 20),
            observed: format!("{:.1} MiB at {:.1} MB/s", pf.rss_mib, pf.mb_per_s()),
            met: pf.rss_mib <= 32.0 && pf.check_ok,
        });
    }
    if let (Some(pf), Some(mbr)) = (find("5 slow", "postflytt"), find("5 slow", "mbsync")) {
        targets.push(Target {
            name: "slow_link_reported",
            goal: "messages/s over a 20 ms-each-way link reported for both tools".into(),
            observed: format!(
                "postflytt {:.1} msgs/s, mbsync {:.1} msgs/s ({:.2}x)",
                pf.msgs_per_s(),
                mbr.msgs_per_s(),
                pf.msgs_per_s() / mbr.msgs_per_s()
            ),
            met: pf.check_ok,
        });
    }
    let correctness_ok = failures.is_empty();

    // --- Output.
    let total_s = t0.elapsed().as_secs_f64();
    let load_end = loadavg();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## postflytt vs mbsync{}\n\nFixture: {} accounts x {} messages ({} in all, {:.1} MB, {} folders each, one {} MB message), \
         seed {SEED}, loaded in {load_s:.1} s. Parallel accounts: postflytt 4, mbsync sequential (`-a`). \
         MB = 2^20 bytes. msgs/s counts copied messages, or scanned ones for a pass that copies nothing. \
         Peak RSS from GNU time (child rusage); \"own\" is postflytt's VmHWM line. \
         Load average {load_start} at start, {load_end} at end; {} CPUs.\n",
        if scale.quick { " (BENCH_QUICK: a tenth of the size)" } else { "" },
        accts.len(),
        scale.per_account,
        fixture_msgs,
        fixture_bytes as f64 / MIB,
        mail::FOLDERS.len(),
        scale.big >> 20,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    out.push_str(&table(&rows));
    out.push_str("\n| target | goal | observed | met |\n|---|---|---|---|\n");
    for t in &targets {
        let _ = writeln!(out, "| {} | {} | {} | {} |", t.name, t.goal, t.observed, if t.met { "yes" } else { "**no**" });
    }
    let _ =
        writeln!(out, "\nCorrectness: {}. Whole benchmark: {total_s:.0} s.", if correctness_ok { "every check passed" } else { "FAILED" });
    println!("{out}");
    for n in &notes {
        println!("note: {n}");
    }

    let targets_json: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "    {{\"name\": {}, \"goal\": {}, \"observed\": {}, \"met\": {}}}",
                json_str(t.name),
                json_str(&t.goal),
                json_str(&t.observed),
                t.met
            )
        })
        .collect();
    let json = format!(
        "{{\n  \"quick\": {},\n  \"seed\": {SEED},\n  \"fixture\": {{\"accounts\": {}, \"messages_per_account\": {}, \"messages\": {fixture_msgs}, \"bytes\": {fixture_bytes}, \
         \"folders_per_account\": {}, \"big_message_bytes\": {}, \"huge_message_bytes\": {}, \"load_seconds\": {}}},\n  \
         \"environment\": {{\"cpus\": {}, \"loadavg_start\": {}, \"loadavg_end\": {}, \"mbsync\": {}, \"dovecot\": {}, \"postflytt_commit\": {}}},\n  \
         \"rows\": {},\n  \"ratios_postflytt_over_mbsync\": {},\n  \"targets\": [\n{}\n  ],\n  \"correctness_ok\": {correctness_ok},\n  \
         \"failures\": [{}],\n  \"total_seconds\": {}\n}}\n",
        scale.quick,
        accts.len(),
        scale.per_account,
        mail::FOLDERS.len(),
        scale.big,
        scale.huge,
        json_num(load_s),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        json_str(&load_start),
        json_str(&load_end),
        json_str(&cmd_line("mbsync", &["--version"])),
        json_str(&cmd_line("dovecot", &["--version"])),
        json_str(&cmd_line("git", &["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])),
        rows_json(&rows),
        ratios_json(&rows),
        targets_json.join(",\n"),
        failures.iter().map(|f| json_str(f)).collect::<Vec<_>>().join(", "),
        json_num(total_s),
    );
    // BENCH_JSON names another file (diagnostic runs that should not replace the benchmark's result).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("bench");
    let path = std::env::var_os("BENCH_JSON")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join(if scale.quick { "bench-quick.json" } else { "bench.json" }));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the JSON file's directory");
    }
    std::fs::write(&path, json).expect("write bench.json");
    println!("JSON: {}", path.display());

    assert!(correctness_ok, "correctness checks failed:\n{}", failures.join("\n"));
}
