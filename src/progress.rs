//! Live progress for a person at a terminal while `sync`, `check` and `finish` run: per account the
//! messages and bytes on the target of the total, the speed and the time left, and a line for the
//! whole run, redrawn in place about twice a second at the bottom of the terminal (`terminal`'s live
//! block). Nothing of it when standard error is not a terminal: logs and pipes keep one line per
//! account. A copy's numbers are read from the store on a thread of the CLI's own (its own read
//! connection; WAL lets it read beside the pass's writers) at most once a second and never more than
//! a tenth of the time, since the count is one query over every message. Speed and time left come
//! from this run only: the bytes that reached the target over the last few seconds, never an
//! earlier pass's. An account's total is the larger of what its listing found and what the check
//! counted, and the time left is shown only once that total is known (a check, or an earlier pass).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store::{AccountProgress, Store};
use crate::terminal;
use crate::units::human_bytes;

/// How often the block is drawn again; the store is read at most once a second on top.
const DRAW_EVERY: Duration = Duration::from_millis(500);
/// Reading the store's counts costs a query over every message: at most this often...
const SAMPLE_AT_MOST: Duration = Duration::from_secs(1);
/// ...and spending at most 1/SAMPLE_SHARE of the time on it, so a huge migration is not slowed.
const SAMPLE_SHARE: u32 = 10;
/// The speed is the bytes that reached the target in this window, so it follows the link's pace.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Accounts shown one per line; the rest are counted in the run's line.
const MOST_LINES: usize = 8;

/// What the run does, for the words of its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Copying (`sync`, `finish`'s last pass): numbers from the store.
    Copy,
    /// The pre-flight check: which accounts are being checked, and for how long.
    Check,
}

/// A live block while it stands; dropping it stops the drawing and takes the block away.
pub struct Progress {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What the run's own thread tells the drawing: accounts begun and done.
#[derive(Default)]
struct Shared {
    begun: BTreeMap<String, Instant>,
    done: BTreeSet<String>,
}

impl Progress {
    /// Starts drawing for `logins` (the run's accounts), or `None` when standard error is not a
    /// terminal, or POSTFLYTT_PROGRESS=0.
    pub fn start(dir: &Path, label: &str, logins: Vec<String>, work: Work) -> Option<Progress> {
        if !std::io::stderr().is_terminal() || std::env::var("POSTFLYTT_PROGRESS").is_ok_and(|v| v == "0") {
            return None;
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let drawing = Drawing { dir: dir.to_path_buf(), label: label.to_string(), logins, work, started: Instant::now() };
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            crate::workers::spawn_thread("progress", move || drawing.run(&shared, &stop)).ok()?
        };
        Some(Progress { shared, stop, thread: Some(thread) })
    }

    /// The run began working on `login` (a check: shown as being checked from now on).
    pub fn begun(&self, login: &str) {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).begun.insert(login.to_string(), Instant::now());
    }

    /// The run is done with `login`: its own result line says the rest, so it leaves the block.
    pub fn done(&self, login: &str) {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).done.insert(login.to_string());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        terminal::clear_block();
    }
}

/// Prints a result line on standard output, above the live block if one stands.
pub fn say(line: &str) {
    terminal::print_above(|| println!("{line}"));
}

/// The drawing thread's view of the run.
struct Drawing {
    dir: PathBuf,
    label: String,
    logins: Vec<String>,
    work: Work,
    started: Instant,
}

/// One account's recent bytes on the target, for its speed.
#[derive(Default)]
struct Pace {
    /// (when, bytes on the target) over the last `RATE_WINDOW`.
    samples: VecDeque<(Instant, i64)>,
    /// Messages listed, bytes staged and bytes on the target when this run first looked, and now:
    /// an account whose numbers have not moved is waiting (or has nothing to do) and gets no line.
    first: Option<(i64, i64, i64)>,
    now: (i64, i64, i64),
}

impl Pace {
    fn add(&mut self, at: Instant, mark: (i64, i64, i64)) {
        self.first.get_or_insert(mark);
        self.now = mark;
        let bytes = mark.2;
        self.samples.push_back((at, bytes));
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| at.duration_since(*t) > RATE_WINDOW) {
            self.samples.pop_front();
        }
    }

    fn moved(&self) -> bool {
        self.first.is_some_and(|f| f != self.now)
    }

    /// Bytes a second over the window; `None` until two seconds of this run have been seen.
    fn rate(&self) -> Option<f64> {
        let ((t0, b0), (t1, b1)) = (self.samples.front()?, self.samples.back()?);
        let seconds = t1.duration_since(*t0).as_secs_f64();
        (seconds >= 2.0).then(|| (b1 - b0).max(0) as f64 / seconds)
    }
}

impl Drawing {
    fn run(self, shared: &Mutex<Shared>, stop: &AtomicBool) {
        let store = if self.work == Work::Copy { Store::open(&self.dir).ok() } else { None };
        // What the check counted per account id, read once: the total before the listing has it.
        let checked = store.as_ref().map(checked_totals).unwrap_or_default();
        let mut paces: BTreeMap<String, Pace> = BTreeMap::new();
        let mut rows: Vec<AccountProgress> = Vec::new();
        let mut next_sample = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if let Some(store) = store.as_ref().filter(|_| Instant::now() >= next_sample) {
                let asked = Instant::now();
                if let Ok(all) = store.account_progress() {
                    rows = all.into_iter().filter(|a| self.logins.contains(&a.source_login)).collect();
                    let at = Instant::now();
                    for a in &rows {
                        paces.entry(a.source_login.clone()).or_default().add(at, (a.messages, a.staged_bytes, a.pushed_bytes));
                    }
                }
                next_sample = asked + SAMPLE_AT_MOST.max(asked.elapsed() * SAMPLE_SHARE);
            }
            let lines = {
                let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
                match self.work {
                    Work::Copy => self.copy_lines(&rows, &checked, &paces, &shared),
                    Work::Check => self.check_lines(&shared),
                }
            };
            terminal::draw_block(&lines);
            sleep_unless_stopped(stop, DRAW_EVERY);
        }
    }

    fn copy_lines(
        &self,
        rows: &[AccountProgress],
        checked: &BTreeMap<i64, (i64, i64)>,
        paces: &BTreeMap<String, Pace>,
        shared: &Shared,
    ) -> Vec<String> {
        let (mut bytes, mut total, mut rate, mut all_known) = (0i64, 0i64, 0.0, true);
        let mut moving = Vec::new();
        for a in rows {
            let (check_messages, check_bytes) = checked.get(&a.id).copied().unwrap_or((0, 0));
            let known = check_bytes > 0 || a.last_pass_at.is_some();
            let line = Line {
                login: &a.source_login,
                messages: a.pushed,
                // What will never reach the target (refused by it, or left out by the operator's
                // filter) is not still to move.
                messages_total: (a.messages - a.refused).max(check_messages),
                bytes: a.pushed_bytes,
                bytes_total: (a.bytes - a.refused_bytes).max(check_bytes),
                total_known: known,
                rate: paces.get(&a.source_login).and_then(Pace::rate),
            };
            bytes += line.bytes;
            total += line.bytes_total;
            all_known &= known;
            rate += line.rate.unwrap_or(0.0);
            if paces.get(&a.source_login).is_some_and(Pace::moved) && !shared.done.contains(&a.source_login) {
                moving.push(line.words());
            }
        }
        let done =
            if shared.done.is_empty() { String::new() } else { format!("{} of {} accounts done, ", shared.done.len(), self.logins.len()) };
        let mut head = format!("{} {}: {done}", self.label, elapsed(self.started.elapsed()));
        if total == 0 {
            head.push_str("listing folders");
        } else {
            let plus = if all_known { "" } else { "+" };
            head.push_str(&format!(
                "{} of {}{plus} on the target, {}",
                human_bytes(bytes.max(0) as u64),
                human_bytes(total.max(0) as u64),
                speed(Some(rate).filter(|_| self.started.elapsed() >= Duration::from_secs(2)))
            ));
        }
        if let Some(left) = time_left(total - bytes, Some(rate), all_known && total > 0) {
            head.push_str(&format!(", {left}"));
        }
        block(head, moving)
    }

    fn check_lines(&self, shared: &Shared) -> Vec<String> {
        let now = Instant::now();
        let checking: Vec<String> = shared
            .begun
            .iter()
            .filter(|(login, _)| !shared.done.contains(*login))
            .map(|(login, since)| format!("  {login}: checking ({})", elapsed(now.duration_since(*since))))
            .collect();
        let waiting = self.logins.len().saturating_sub(shared.done.len() + checking.len());
        let head = format!(
            "{} {}: {} of {} accounts done, {} checking, {waiting} waiting",
            self.label,
            elapsed(self.started.elapsed()),
            shared.done.len(),
            self.logins.len(),
            checking.len(),
        );
        block(head, checking)
    }
}

/// The run's line, then at most `MOST_LINES` account lines and how many more there are.
fn block(head: String, accounts: Vec<String>) -> Vec<String> {
    let more = accounts.len().saturating_sub(MOST_LINES);
    let mut lines = vec![head];
    lines.extend(accounts.into_iter().take(MOST_LINES));
    if more > 0 {
        lines.push(format!("  ... and {more} more"));
    }
    lines
}

/// One account's numbers, as its line says them.
struct Line<'a> {
    login: &'a str,
    messages: i64,
    messages_total: i64,
    bytes: i64,
    bytes_total: i64,
    total_known: bool,
    rate: Option<f64>,
}

impl Line<'_> {
    /// "  alice@kund.se: 1234 of 5000 messages, 120.0 MB of 480.0 MB, 2.1 MB/s, about 3 min left";
    /// "5000+" while the total may still grow (a first listing without a check).
    fn words(&self) -> String {
        let plus = if self.total_known { "" } else { "+" };
        let mut line = format!(
            "  {}: {} of {}{plus} messages, {} of {}{plus}, {}",
            self.login,
            self.messages,
            self.messages_total,
            human_bytes(self.bytes.max(0) as u64),
            human_bytes(self.bytes_total.max(0) as u64),
            speed(self.rate)
        );
        if let Some(left) = time_left(self.bytes_total - self.bytes, self.rate, self.total_known) {
            line.push_str(&format!(", {left}"));
        }
        line
    }
}

fn speed(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{}/s", human_bytes(r as u64)),
        None => "measuring speed".to_string(),
    }
}

/// "about 3 min left", only with a known total and a speed to divide by.
fn time_left(bytes_left: i64, rate: Option<f64>, total_known: bool) -> Option<String> {
    if !total_known {
        return None;
    }
    if bytes_left <= 0 {
        return Some("nothing left".into());
    }
    let rate = rate.filter(|r| *r > 0.0)?;
    Some(format!("about {} left", duration_words(bytes_left as f64 / rate)))
}

/// "45 s", "3 min", "2 h 10 min".
fn duration_words(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s.div_ceil(60))
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// "12 s", "3:05", "1:02:03": how long the run or an account has taken.
fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}:{:02}", s / 60, s % 60),
        _ => format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60),
    }
}

/// Messages and bytes the check counted, per account id.
fn checked_totals(store: &Store) -> BTreeMap<i64, (i64, i64)> {
    let details = store.check_details().unwrap_or_default();
    details
        .into_iter()
        .filter_map(|(id, (_, detail, _))| {
            let d: Value = serde_json::from_str(&detail).ok()?;
            Some((id, (d.get("messages")?.as_i64()?, d.get("bytes")?.as_i64()?)))
        })
        .collect()
}

fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_line_says_done_of_total_speed_and_time_left() {
        let line = Line {
            login: "alice@kund.se",
            messages: 1234,
            messages_total: 5000,
            bytes: 120 << 20,
            bytes_total: 480 << 20,
            total_known: true,
            rate: Some(2.0 * (1 << 20) as f64),
        };
        assert_eq!(line.words(), "  alice@kund.se: 1234 of 5000 messages, 120.0 MB of 480.0 MB, 2.0 MB/s, about 3 min left");
        let unknown = Line { total_known: false, rate: None, ..line };
        assert_eq!(unknown.words(), "  alice@kund.se: 1234 of 5000+ messages, 120.0 MB of 480.0 MB+, measuring speed");
    }

    #[test]
    fn speed_comes_from_the_last_seconds_only() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        pace.add(t0, (10, 0, 1000));
        assert!(!pace.moved());
        pace.add(t0 + Duration::from_secs(1), (10, 0, 2000));
        assert_eq!(pace.rate(), None, "one second is too short to say");
        assert!(pace.moved());
        pace.add(t0 + Duration::from_secs(4), (10, 0, 5000));
        assert_eq!(pace.rate(), Some(1000.0));
        // Thirty seconds later nothing moved: the speed is 0, not the average since the start.
        pace.add(t0 + Duration::from_secs(34), (10, 0, 5000));
        pace.add(t0 + Duration::from_secs(36), (10, 0, 5000));
        assert_eq!(pace.rate(), Some(0.0));
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(duration_words(45.0), "45 s");
        assert_eq!(duration_words(150.0), "3 min");
        assert_eq!(duration_words(7800.0), "2 h 10 min");
        assert_eq!(elapsed(Duration::from_secs(12)), "12 s");
        assert_eq!(elapsed(Duration::from_secs(185)), "3:05");
        assert_eq!(elapsed(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(time_left(0, None, true).as_deref(), Some("nothing left"));
        assert_eq!(time_left(100, Some(10.0), false), None);
        assert_eq!(time_left(100, None, true), None);
        let lines = block("head".into(), (0..10).map(|i| i.to_string()).collect());
        assert_eq!(lines.len(), 1 + MOST_LINES + 1);
        assert_eq!(lines.last().map(String::as_str), Some("  ... and 2 more"));
    }
}
