//! The bench's rows from sources of other makes (issue 15: "from Cyrus and Courier sources at least
//! 1.2x mbsync"): for Cyrus IMAP and Courier-IMAP in turn (`servers.rs`), a fresh server loaded by IMAP
//! APPEND with `Scale::source_accounts` accounts of `Scale::source_per_account` messages each from the
//! bench's generator (no big message), then postflytt (`sync --parallel 4`) and mbsync (one process
//! per account, all at once) each migrating it into a fresh target of the bench's kind,
//! `Scale::source_runs` (`BENCH_SOURCE_RUNS`, default 3) times each, alternating (a run takes a second or a few: the median by wall
//! time is the row). Every postflytt copy is checked exactly once (bytes, flags, internal date)
//! against the source as it served the mail before either tool ran; every mbsync copy by per-folder
//! counts, as in the Dovecot rows. The rows also give the time a lone FETCH of a message takes,
//! probed before the runs with delayed and with immediate ACKs (see `single_fetch_ms`). Before the tools run,
//! every folder is opened read-write once and read in full (the reference for the check), so both find
//! the server in the same state (Courier moves new mail to cur/ and builds its UID list on the first
//! SELECT). A server that cannot run here is a note and a target row saying why.
//!
//! `BENCH_ONLY=sources` runs only these rows (and prints their own table, JSON to
//! `target/bench/bench-sources.json` or `BENCH_JSON`).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::common::fixture::{self, FixtureMsg, Snapshot};
use crate::common::reader::quoted;
use crate::driver::{self, Migration};
use crate::report::{Row, Target, json_str, pair, ratios_json, rows_json, table};
use crate::servers::{Make, Server};
use crate::tools::{Measure, mbsync_each, mbsync_setup, pf_sync_unchecked};
use crate::{Acct, MB, PF, SEED, Scale, exactly_once_with, mail, mbsync_counts_match_with, progress, start_target, total_messages};

/// The speed target for every source of another make: postflytt's messages/s over mbsync's.
const RATIO: f64 = 1.2;

/// The accounts of these rows: their own logins, so a row never depends on the Dovecot rows.
fn source_accounts(n: usize) -> Vec<Acct> {
    (0..n)
        .map(|i| Acct {
            src: format!("konto{i}@gammal.se"),
            src_pw: format!("kalla-{i}"),
            tgt: format!("konto{i}@ny.se"),
            tgt_pw: format!("mal-{i}"),
        })
        .collect()
}

/// One line for the report's header.
pub fn describe(scale: &Scale) -> String {
    format!(
        "Rows 7a/7b: the same two tools from a Cyrus IMAP and a Courier-IMAP source (Debian's packages, throwaway \
         instances on loopback, `INBOX.` namespace with `.`), {} accounts x {} messages of the same generator (no big \
         message), each into a fresh target of the same kind; Cyrus announces no COMPRESS=DEFLATE (isync would use it).",
        scale.source_accounts, scale.source_per_account
    )
}

/// Runs the rows of every make; pushes rows, failures and notes; returns the speed targets.
pub fn run(scale: &Scale, t0: Instant, rows: &mut Vec<Row>, failures: &mut Vec<String>, notes: &mut Vec<String>) -> Vec<Target> {
    [(Make::Cyrus, "7a", "cyrus_source_speed"), (Make::Courier, "7b", "courier_source_speed")]
        .into_iter()
        .map(|(make, label, target)| one_make(make, label, target, scale, t0, rows, failures, notes))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn one_make(
    make: Make,
    label: &str,
    target_name: &'static str,
    scale: &Scale,
    t0: Instant,
    rows: &mut Vec<Row>,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Target {
    let goal = format!("full migration from a {} source: postflytt messages/s >= {RATIO} x mbsync per account", make.name());
    let accts = source_accounts(scale.source_accounts);
    progress(t0, &format!("{}: starting a throwaway server", make.name()));
    let server = match Server::start(make, &accts) {
        Ok(s) => s,
        Err(why) => {
            notes.push(format!("{} source: not run: {why}", make.name()));
            return Target { name: target_name, goal, observed: format!("not available: {why}"), met: false };
        }
    };
    progress(t0, &format!("{}: {} on port {}; loading", make.name(), server.version, server.port()));
    let load_t = Instant::now();
    let loaded = load(&server, &accts, scale.source_per_account);
    let (msgs, bytes): (u64, u64) = (loaded.iter().map(|l| l.0).sum(), loaded.iter().map(|l| l.1).sum());
    let held: u64 = accts.iter().map(|a| total_at(&server, a)).sum();
    if held != msgs {
        failures.push(format!("{} source holds {held} messages after loading {msgs}", make.name()));
        return Target { name: target_name, goal, observed: format!("not measured: the source holds {held} of {msgs}"), met: false };
    }
    let load_s = load_t.elapsed().as_secs_f64();
    // Every folder opened read-write once, then read in full: the reference for the checks, and both
    // tools find the server in the same state.
    let snaps: Vec<Snapshot> = accts.iter().map(|a| warm_snapshot(&server, a)).collect();
    let fetch_ms = (single_fetch_ms(&server, &accts[0], false), single_fetch_ms(&server, &accts[0], true));
    let fetch_text = format!("a lone FETCH answers in {:.1} ms, {:.1} ms with every ACK at once", fetch_ms.0, fetch_ms.1);
    progress(t0, &format!("{}: {msgs} messages, {:.1} MB loaded in {load_s:.1} s; {fetch_text}", make.name(), bytes as f64 / crate::MIB));
    let scenario = format!("{label} full migration from {} ({} accounts)", server.version, accts.len());
    let owned: Vec<(&str, &str, &str, &str)> =
        accts.iter().map(|a| (a.src.as_str(), a.src_pw.as_str(), a.tgt.as_str(), a.tgt_pw.as_str())).collect();
    let src_counts = |i: usize, _: &Acct| snaps[i].iter().map(|(f, v)| (f.clone(), (v.len() as u32, 0))).collect();

    // A run takes a second or a few on a machine others share: `source_runs` runs of each tool,
    // alternating, each into a fresh target; the median (by wall time) is the row, every run checked.
    let mut pf_runs: Vec<(Measure, String, bool)> = Vec::new();
    let mut mb_runs: Vec<(Measure, String, bool)> = Vec::new();
    for run in 1..=scale.source_runs {
        progress(t0, &format!("postflytt: {scenario}, run {run}/{}", scale.source_runs));
        let pf_target = start_target(&accts);
        let m = Migration::plain_ports(server.port(), pf_target.port(), &owned);
        let r = pf_sync_unchecked(&m, 4, false);
        let copied = if r.output.contains("pass done:") { driver::appended(&r.output) } else { 0 };
        let problems = exactly_once_with(|i, _| snaps[i].clone(), &pf_target, &accts);
        let ok = r.success && problems.is_empty() && copied == msgs;
        if !ok {
            let out: String = r.output.chars().rev().take(1500).collect::<Vec<_>>().into_iter().rev().collect();
            failures.push(format!(
                "postflytt from {} (run {run}): exit ok {}, appended {copied} of {msgs}; {} problems: {:?}; output tail: {out}",
                server.version,
                r.success,
                problems.len(),
                &problems[..problems.len().min(20)]
            ));
        }
        let check = if ok { "exactly once".to_string() } else { format!("FAILED: exit ok {}, {} problems", r.success, problems.len()) };
        pf_runs.push((r, check, ok));

        progress(t0, &format!("mbsync: {scenario}, run {run}/{}", scale.source_runs));
        let mb_target = start_target(&accts);
        let mb = mbsync_setup(server.port(), mb_target.port(), &accts);
        let r = mbsync_each(&mb, false);
        let copied: u64 = accts.iter().map(|a| total_messages(&mb_target, &a.tgt)).sum();
        let problems = mbsync_counts_match_with(src_counts, &mb_target, &accts);
        let ok = r.success && problems.is_empty() && copied == msgs;
        let check = if ok { "all copied (counts)".to_string() } else { format!("INCOMPLETE: exit ok {}, {problems:?}", r.success) };
        if !ok {
            notes.push(format!("mbsync from {} (run {run}) incomplete: {check}\n{}", server.version, r.output));
        }
        mb_runs.push((r, check, ok));
    }
    drop(server);
    for (tool, runs) in [(PF, &pf_runs), (MB, &mb_runs)] {
        let mut sorted: Vec<&(Measure, String, bool)> = runs.iter().collect();
        sorted.sort_by(|a, b| a.0.wall.total_cmp(&b.0.wall));
        let (r, _, _) = sorted[sorted.len() / 2];
        let walls: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.0.wall)).collect();
        let failed: Vec<&str> = runs.iter().filter(|r| !r.2).map(|r| r.1.as_str()).collect();
        let mut row = Row::new(&scenario, tool, r);
        row.copied = msgs;
        row.scanned = msgs;
        row.bytes = bytes;
        row.check_ok = failed.is_empty();
        row.check = format!(
            "{}; median of {} runs ({} s){}",
            if row.check_ok { runs[0].1.clone() } else { failed.join("; ") },
            runs.len(),
            walls.join(", "),
            if tool == PF { format!("; {fetch_text}") } else { String::new() }
        );
        rows.push(row);
    }

    match pair(rows, &scenario) {
        Some((pf, mbr)) => {
            let ratio = pf.msgs_per_s() / mbr.msgs_per_s();
            Target {
                name: target_name,
                goal,
                observed: format!(
                    "{:.1} vs {:.1} msgs/s = {ratio:.2}x ({:.1} s vs {:.1} s)",
                    pf.msgs_per_s(),
                    mbr.msgs_per_s(),
                    pf.wall,
                    mbr.wall
                ),
                met: ratio >= RATIO && pf.check_ok,
            }
        }
        None => Target { name: target_name, goal, observed: "no rows".into(), met: false },
    }
}

fn total_at(server: &Server, a: &Acct) -> u64 {
    let mut r = server.reader(&a.src, &a.src_pw);
    let folders = r.folders();
    folders.iter().map(|f| u64::from(r.status(f).messages)).sum()
}

/// Loads each account's seeded messages (its own thread): folders created and subscribed over IMAP,
/// then appended (`mail::Loader`: batches where the server takes them). Per account (messages, bytes).
fn load(server: &Server, accts: &[Acct], per_account: usize) -> Vec<(u64, u64)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = accts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                s.spawn(move || {
                    let msgs = mail::account_messages(i, per_account, 0, SEED);
                    let names: Vec<String> = mail::FOLDERS.iter().map(|(p, _)| mail::old_host_name(p)).collect();
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    let mut r = server.reader(&a.src, &a.src_pw);
                    fixture::ensure_folders(&mut r, &refs);
                    for n in &names {
                        r.subscribe(n);
                    }
                    r.logout();
                    let mut loader = mail::Loader::login(server.port(), &a.src, &a.src_pw);
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

/// Opens every folder read-write once, then reads the whole account (read-only).
fn warm_snapshot(server: &Server, a: &Acct) -> Snapshot {
    let mut r = server.reader(&a.src, &a.src_pw);
    for f in r.folders() {
        r.select(&f);
    }
    fixture::mailbox_snapshot(&mut r)
}

/// The median time of five single-message body FETCHes in the account's INBOX, in ms, as a client
/// that acknowledges when the kernel likes (delayed ACKs) and as one that asks for every
/// acknowledgement at once (TCP_QUICKACK after every read, as postflytt does): the issue measured
/// ~44 ms on Courier and 30-45 ms on Cyrus, which write an answer in pieces with Nagle on, so each
/// piece after the first waits for the client's delayed ACK (postflytt's quirk `nagle_stalls_pieces`).
fn single_fetch_ms(server: &Server, a: &Acct, quick_ack: bool) -> f64 {
    let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], server.port()))).expect("probe: connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let mut rd = BufReader::new(stream.try_clone().expect("clone"));
    let mut wr = stream;
    let mut line = Vec::new();
    let mut tag = 0;
    let mut command = |cmd: &str| -> f64 {
        tag += 1;
        let start = Instant::now();
        wr.write_all(format!("p{tag} {cmd}\r\n").as_bytes()).expect("probe: write");
        loop {
            line.clear();
            rd.read_until(b'\n', &mut line).expect("probe: read");
            if quick_ack {
                let _ = rustix::net::sockopt::set_tcp_quickack(rd.get_ref(), true);
            }
            assert!(!line.is_empty(), "probe: the server closed the connection");
            if line.starts_with(format!("p{tag} ").as_bytes()) {
                assert!(line[format!("p{tag} ").len()..].starts_with(b"OK"), "probe: {cmd}: {}", String::from_utf8_lossy(&line));
                return start.elapsed().as_secs_f64() * 1000.0;
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(n) = text.trim_end().strip_suffix('}').and_then(|t| t.rsplit_once('{')).and_then(|(_, n)| n.parse::<u64>().ok()) {
                std::io::copy(&mut (&mut rd).take(n), &mut std::io::sink()).expect("probe: literal");
            }
        }
    };
    let _greeting = command("NOOP");
    command(&format!("LOGIN {} {}", quoted(&a.src), quoted(&a.src_pw)));
    command("EXAMINE INBOX");
    let mut times: Vec<f64> = (1..=5).map(|n| command(&format!("FETCH {n} (UID BODY.PEEK[])"))).collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `BENCH_ONLY=sources`: these rows alone, with their own table and JSON.
pub fn only(scale: &Scale, t0: Instant) {
    let (mut rows, mut failures, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    let targets = run(scale, t0, &mut rows, &mut failures, &mut notes);
    let mut out = format!("\n## postflytt vs mbsync from other sources (BENCH_ONLY=sources)\n\n{}\n\n", describe(scale));
    out.push_str(&table(&rows));
    out.push_str("\n| target | goal | observed | met |\n|---|---|---|---|\n");
    for t in &targets {
        let _ = writeln!(out, "| {} | {} | {} | {} |", t.name, t.goal, t.observed, if t.met { "yes" } else { "**no**" });
    }
    let _ = writeln!(
        out,
        "\nCorrectness: {}. {:.0} s.",
        if failures.is_empty() { "every check passed" } else { "FAILED" },
        t0.elapsed().as_secs_f64()
    );
    println!("{out}");
    for n in &notes {
        println!("note: {n}");
    }
    let targets_json: Vec<String> = targets
        .iter()
        .map(|t| format!("    {{\"name\": {}, \"observed\": {}, \"met\": {}}}", json_str(t.name), json_str(&t.observed), t.met))
        .collect();
    let json = format!(
        "{{\n  \"rows\": {},\n  \"ratios_postflytt_over_mbsync\": {},\n  \"targets\": [\n{}\n  ],\n  \"failures\": [{}]\n}}\n",
        rows_json(&rows),
        ratios_json(&rows),
        targets_json.join(",\n"),
        failures.iter().map(|f| json_str(f)).collect::<Vec<_>>().join(", ")
    );
    let path = std::env::var_os("BENCH_JSON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("bench").join("bench-sources.json"));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the JSON file's directory");
    }
    std::fs::write(&path, json).expect("write the JSON");
    println!("JSON: {}", path.display());
    assert!(failures.is_empty(), "correctness checks failed:\n{}", failures.join("\n"));
}
