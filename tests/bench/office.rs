//! The benchmark's office line: the old host and the new host both behind one line adding a delay
//! each way and carrying at most a rate per direction, shared by every connection (a customer's
//! office connection: the box downloads from the old host and uploads to the new one over it). Each
//! tool migrates the office accounts into its own fresh target, then makes an unchanged pass, over a
//! fresh line; postflytt's copy is checked exactly once, mbsync's by counts.
//!
//! It runs for two kinds of servers, each tool at its best against each: servers that do not offer
//! COMPRESS=DEFLATE (Microsoft 365 does not, and neither tool compresses), and servers that do (most
//! Dovecots on the internet; mbsync compresses whenever offered, postflytt's `auto` does because the
//! line's round trip is a WAN's). The share of the line is bytes over the line, compressed where the
//! connection compresses, against the line rate and the wall time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::latency::{self, DOWN, OfficeLine, UP};
use super::report::Row;
use super::tools::{mbsync_each, mbsync_setup, pf_sync};
use super::{Acct, MB, MIB, PF, Scale, all_uidnexts, exactly_once, mbsync_counts_match, progress, total_messages};
use crate::common::Dovecot;
use crate::driver::{self, Migration, Via};

/// What the office rows migrate: the accounts, and the messages and bytes their source holds.
pub struct Office<'a> {
    pub source: &'a Dovecot,
    pub accounts: &'a [Acct],
    pub msgs: u64,
    pub bytes: u64,
    /// The servers offer COMPRESS=DEFLATE (the source was started with `imap_zlib`).
    pub compress: bool,
}

impl Office<'_> {
    /// The scenario names of the full migration and the unchanged pass.
    pub fn names(&self, scale: &Scale) -> (String, String) {
        if self.compress {
            (
                format!("6c office line, servers offer COMPRESS ({} accounts, full)", self.accounts.len()),
                "6d office line, servers offer COMPRESS, unchanged pass".to_string(),
            )
        } else {
            (
                format!(
                    "6 office line, +{} ms and {:.0} Mbit/s each way ({} accounts, full)",
                    scale.latency.as_millis(),
                    scale.line_bits / 1e6,
                    self.accounts.len()
                ),
                "6b office line, unchanged pass".to_string(),
            )
        }
    }

    /// Runs both tools over a line each and adds their rows; a failed correctness check goes to
    /// `failures`.
    pub fn run(&self, scale: &Scale, t0: Instant, rows: &mut Vec<Row>, failures: &mut Vec<String>) {
        let (full, unchanged) = self.names(scale);
        let start_target = if self.compress { super::start_target_compress } else { super::start_target };
        progress(t0, &format!("postflytt: {full}"));
        {
            let line = OfficeLine::new(scale.line_bits);
            let t_pf = start_target(self.accounts);
            let sp = latency::LatencyProxy::start_on(self.source.port(), scale.latency, Some(line.clone()));
            let tp = latency::LatencyProxy::start_on(t_pf.port(), scale.latency, Some(line.clone()));
            let m = self.migration(sp.port(), &t_pf, tp.port());
            let before = line.bytes();
            let trace = LineTrace::start(&line);
            let r = pf_sync(&m, 4);
            trace.print(&format!("postflytt, {full}"));
            if let Ok(path) = std::env::var("BENCH_PF_LOG") {
                let _ = std::fs::write(path, &r.output);
            }
            let mut row = Row::new(&full, PF, &r);
            row.copied = driver::appended(&r.output);
            row.scanned = self.msgs;
            row.bytes = self.bytes;
            row.line_share = Some(share(&line, before, r.wall));
            let problems = exactly_once(self.source, &t_pf, self.accounts);
            row.check_ok = problems.is_empty() && row.copied == self.msgs;
            row.check = if row.check_ok { "exactly once".into() } else { format!("FAILED: {} problems", problems.len()) };
            row.check.push_str(&line_text(&line, before, compressed_connections(&r.output)));
            if !row.check_ok {
                failures.push(format!("postflytt {full}: {:?}", &problems[..problems.len().min(20)]));
            }
            rows.push(row);

            progress(t0, &format!("postflytt: {unchanged}"));
            let uid_before = all_uidnexts(&t_pf, self.accounts);
            let before = line.bytes();
            let r = pf_sync(&m, 4);
            let mut row = Row::new(&unchanged, PF, &r);
            row.copied = driver::appended(&r.output);
            row.scanned = self.msgs;
            row.line_share = Some(share(&line, before, r.wall));
            let problems = exactly_once(self.source, &t_pf, self.accounts);
            let uid_same = uid_before == all_uidnexts(&t_pf, self.accounts);
            row.check_ok = problems.is_empty() && row.copied == 0 && uid_same;
            row.check = format!(
                "{}; 0 APPEND (target UIDNEXTs unchanged): {}",
                if problems.is_empty() { "exactly once".to_string() } else { format!("FAILED: {} problems", problems.len()) },
                if uid_same && row.copied == 0 { "yes" } else { "NO" }
            );
            row.check.push_str(&line_text(&line, before, compressed_connections(&r.output)));
            if !row.check_ok {
                failures.push(format!("postflytt {unchanged}: {}", row.check));
            }
            rows.push(row);
            drop((sp, tp));
            let _ = std::fs::remove_dir_all(&m.data);
        }
        progress(t0, &format!("mbsync: {full}"));
        {
            let line = OfficeLine::new(scale.line_bits);
            let t_mb = start_target(self.accounts);
            let sp = latency::LatencyProxy::start_on(self.source.port(), scale.latency, Some(line.clone()));
            let tp = latency::LatencyProxy::start_on(t_mb.port(), scale.latency, Some(line.clone()));
            let mbo = mbsync_setup(sp.port(), tp.port(), self.accounts);
            let before = line.bytes();
            let trace = LineTrace::start(&line);
            let r = mbsync_each(&mbo, false);
            trace.print(&format!("mbsync, {full}"));
            let mut row = Row::new(&full, MB, &r);
            row.copied = self.accounts.iter().map(|a| total_messages(&t_mb, &a.tgt)).sum();
            row.scanned = self.msgs;
            row.bytes = self.bytes;
            row.line_share = Some(share(&line, before, r.wall));
            let problems = mbsync_counts_match(self.source, &t_mb, self.accounts);
            row.check_ok = r.success && problems.is_empty();
            row.check = if row.check_ok { "all copied (counts)".into() } else { format!("INCOMPLETE: {problems:?}") };
            row.check.push_str(&line_text(&line, before, None));
            rows.push(row);

            progress(t0, &format!("mbsync: {unchanged}"));
            let before = line.bytes();
            let copied_before: u64 = self.accounts.iter().map(|a| total_messages(&t_mb, &a.tgt)).sum();
            let r = mbsync_each(&mbo, false);
            let mut row = Row::new(&unchanged, MB, &r);
            row.copied = self.accounts.iter().map(|a| total_messages(&t_mb, &a.tgt)).sum::<u64>() - copied_before;
            row.scanned = self.msgs;
            row.line_share = Some(share(&line, before, r.wall));
            row.check_ok = r.success && row.copied == 0;
            row.check = format!("appended {}", row.copied);
            row.check.push_str(&line_text(&line, before, None));
            rows.push(row);
        }
    }

    fn migration(&self, source_port: u16, target: &Dovecot, target_port: u16) -> Migration {
        let accounts: Vec<(&str, &str, &str, &str)> =
            self.accounts.iter().map(|a| (a.src.as_str(), a.src_pw.as_str(), a.tgt.as_str(), a.tgt_pw.as_str())).collect();
        Migration::with_ports(self.source, Via::Plain, Some(source_port), target, Via::Plain, Some(target_port), &accounts)
    }
}

/// The line's bytes since `before` against its rate and `wall`, per direction ([`UP`], [`DOWN`]).
fn share(line: &OfficeLine, before: [u64; 2], wall: f64) -> [f64; 2] {
    let now = line.bytes();
    [(now[UP] - before[UP]) as f64 / (line.bytes_per_s() * wall), (now[DOWN] - before[DOWN]) as f64 / (line.bytes_per_s() * wall)]
}

/// How many connections postflytt's log says it compressed (None: not postflytt's row).
fn compressed_connections(output: &str) -> Option<usize> {
    Some(output.matches("compressing the connection (COMPRESS=DEFLATE").count())
}

fn line_text(line: &OfficeLine, before: [u64; 2], compressed: Option<usize>) -> String {
    let now = line.bytes();
    let mut text = format!(
        "; over the line: {:.1} MB down, {:.1} MB up",
        (now[DOWN] - before[DOWN]) as f64 / MIB,
        (now[UP] - before[UP]) as f64 / MIB
    );
    if let Some(n) = compressed {
        text.push_str(&format!("; {n} connections compressed"));
    }
    text
}

/// `BENCH_LINE_TRACE=1`: the line's use per half second during a full migration, printed after it,
/// to see where a tool leaves the line idle (the start, the end, between folders). Off by default.
struct LineTrace {
    stop: Arc<AtomicBool>,
    bytes_per_s: f64,
    samples: Option<std::thread::JoinHandle<Vec<[u64; 2]>>>,
}

impl LineTrace {
    fn start(line: &Arc<OfficeLine>) -> LineTrace {
        let stop = Arc::new(AtomicBool::new(false));
        if std::env::var_os("BENCH_LINE_TRACE").is_none() {
            return LineTrace { stop, bytes_per_s: line.bytes_per_s(), samples: None };
        }
        let bytes_per_s = line.bytes_per_s();
        let (line, stopped) = (line.clone(), stop.clone());
        let samples = std::thread::spawn(move || {
            let mut samples = vec![line.bytes()];
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                samples.push(line.bytes());
            }
            samples
        });
        LineTrace { stop, bytes_per_s, samples: Some(samples) }
    }

    fn print(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(samples) = self.samples.and_then(|h| h.join().ok()) else { return };
        let pct = |w: &[[u64; 2]], dir: usize, rate: f64| ((w[1][dir] - w[0][dir]) as f64 / (rate * 0.5) * 100.0).round() as u64;
        let rate = self.bytes_per_s;
        let series = |dir: usize| samples.windows(2).map(|w| pct(w, dir, rate).to_string()).collect::<Vec<_>>().join(" ");
        println!("line trace, {what}, % of the line per 0.5 s\n  down: {}\n  up:   {}", series(DOWN), series(UP));
    }
}
