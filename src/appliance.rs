//! The appliance (`postflytt serve`): the long-running process behind the status page. It owns the
//! credentials files (operator token, viewer code), the pass scheduler (passes repeat on an interval, a
//! bounded number of accounts at once, with backoff after failures), the background check, the MX
//! watcher, the finish job (last pass, verification, report, purge) and the status snapshot the page
//! polls. All durable state lives in the store; what is here is only what a restart may forget.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use crate::check;
use crate::row_status;
use crate::store::{AccountState, RunMark, Store, now};
use crate::sync;

pub use crate::fault::{SHUTDOWN, shutting_down};

/// What a restart may forget: whether something is running right now.
#[derive(Debug, Default)]
pub struct Runtime {
    pub pass_active: bool,
    pub check_running: bool,
    pub finish_running: bool,
    pub last_error: Option<String>,
    /// Consecutive passes with a failed account: the pause before the next pass grows with it.
    pub failures_in_a_row: u32,
    pub next_pass_at: Option<i64>,
    /// Accounts the operator asked to sync now, by source login: the scheduler runs them as soon as
    /// no pass, check or finish is running (`run_sync_now`).
    pub sync_now: Vec<String>,
}

pub struct Appliance {
    pub dir: PathBuf,
    pub runtime: Mutex<Runtime>,
    pub operator_token: String,
    pub viewer_code: String,
    status_cache: Mutex<Option<StatusCache>>,
    /// Per account, the running pass as the status first saw it (its start, when seen, bytes on the
    /// target then): the speed and time left shown are this pass's, never the previous one's.
    pass_first_seen: Mutex<BTreeMap<i64, PassSeen>>,
}

#[derive(Debug, Clone, Copy)]
struct PassSeen {
    pass_started_at: i64,
    seen_at: f64,
    pushed_bytes: i64,
}

/// The status's per-account counts, kept for a while: they sum every message row, which takes seconds
/// with millions of rows (1.7 s for 2 million on a 2-core test machine), and every open page polls.
/// A copy is served while it is younger than 20 times what computing it took (at least 2 s), so
/// polling costs at most about 5 % of a core whatever the size; whatever changes accounts forgets it.
struct StatusCache {
    at: std::time::Instant,
    took: Duration,
    details: Vec<AccountDetail>,
}

/// Reads a credential file, or creates it (0600) with a fresh random value.
fn credential_file(path: &Path, make: impl Fn() -> Result<String>) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let value = make()?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(format!("{value}\n").as_bytes())?;
    Ok(value)
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow!("no randomness from the system: {e}"))?;
    Ok(bytes)
}

impl Appliance {
    /// Makes the next status compute its counts afresh (after an import, a pass, a check...).
    pub fn forget_status(&self) {
        *self.status_cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn cached_account_details(&self, store: &Store) -> Result<Vec<AccountDetail>> {
        // Held while computing, so pages polling together wait for one computation, not run several.
        let mut cache = self.status_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref()
            && c.at.elapsed() < (c.took * 20).max(Duration::from_secs(2))
        {
            return Ok(c.details.clone());
        }
        let started = std::time::Instant::now();
        let details = account_details(store)?;
        *cache = Some(StatusCache { at: started, took: started.elapsed(), details: details.clone() });
        Ok(details)
    }

    /// Opens the data directory (creating the database, key file, token and viewer code on first start).
    pub fn open(dir: &Path) -> Result<Arc<Appliance>> {
        let store = Store::open(dir)?;
        drop(store);
        let operator_token = credential_file(&dir.join("operator-token"), || Ok(crate::imap::hex(&random_bytes::<24>()?)))?;
        let code_file = dir.join("viewer-code");
        let new_code = || Ok(crate::front_door::new_viewer_code(&random_bytes()?));
        let mut viewer_code = credential_file(&code_file, new_code)?;
        if !crate::front_door::is_current_viewer_code(&viewer_code) {
            // A six-digit code from an older version was found by guessing in about a minute.
            let _ = fs::remove_file(&code_file);
            viewer_code = credential_file(&code_file, new_code)?;
            log::warn!(
                "the viewer code is now {} characters; the old one no longer opens the page: give the customer the new one",
                crate::front_door::CODE_LENGTH
            );
        }
        Ok(Arc::new(Appliance {
            dir: dir.to_path_buf(),
            runtime: Mutex::new(Runtime::default()),
            operator_token,
            viewer_code,
            status_cache: Mutex::new(None),
            pass_first_seen: Mutex::new(BTreeMap::new()),
        }))
    }

    pub fn runtime(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> Result<Store> {
        Store::open(&self.dir)
    }

    /// Whether passes are switched on (kept in the store so a restart resumes them).
    pub fn passes_enabled(&self, store: &Store) -> Result<bool> {
        Ok(store.settings()?.passes_enabled)
    }

    pub fn interval(store: &Store) -> Result<i64> {
        Ok(store.settings()?.pass_interval_seconds)
    }

    fn parallel(store: &Store) -> Result<usize> {
        Ok(store.settings()?.parallel)
    }

    /// One pass over every account that passed the check (or every account when none was checked).
    pub fn run_pass(self: &Arc<Self>, kind: sync::PassKind) -> Result<Vec<sync::PassReport>> {
        {
            let mut rt = self.runtime();
            if rt.pass_active {
                return Err(anyhow!("a pass is already running"));
            }
            rt.pass_active = true;
        }
        let result = (|| {
            let store = self.store()?;
            store.stamp(RunMark::PassStartedAt)?;
            let accounts = store.accounts(&[])?;
            let runnable = runnable_accounts(&store, accounts)?;
            let parallel = Self::parallel(&store)?;
            drop(store);
            let reports = sync::pass_many(&self.dir, runnable, parallel, kind, &|r| log::info!("{}", r.line()))?;
            let store = self.store()?;
            store.count_finished_pass()?;
            Ok(reports)
        })();
        self.forget_status();
        if let Ok(reports) = &result {
            crate::notify::passes_done(&self.dir, reports);
        }
        let mut rt = self.runtime();
        rt.pass_active = false;
        match &result {
            Ok(reports) if reports.iter().any(|r| r.error.is_some()) => rt.failures_in_a_row += 1,
            Ok(_) => rt.failures_in_a_row = 0,
            Err(e) => {
                rt.failures_in_a_row += 1;
                rt.last_error = Some(format!("{e:#}"));
            }
        }
        result
    }

    /// The scheduler loop: runs until shutdown, starting a pass when passes are on and it is time.
    pub fn scheduler(self: Arc<Self>) {
        while !shutting_down() {
            if let Err(e) = self.scheduler_tick() {
                log::warn!("scheduler: {e:#}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn scheduler_tick(self: &Arc<Self>) -> Result<()> {
        if self.run_sync_now()? {
            return Ok(());
        }
        let store = self.store()?;
        if !self.passes_enabled(&store)? || store.mark(RunMark::FinishedAt)?.is_some() {
            self.runtime().next_pass_at = None;
            return Ok(());
        }
        let interval = Self::interval(&store)?;
        let last = store.mark_number(RunMark::PassFinishedAt)?;
        drop(store);
        let failures = self.runtime().failures_in_a_row;
        // After failures, wait longer (up to 8x), but never less than a minute between passes.
        let pause = if failures > 0 { (interval.max(60) * (1 << failures.min(3))).min(interval.max(60) * 8) } else { interval };
        let next = last.map(|l| l + pause).unwrap_or(0);
        {
            let mut rt = self.runtime();
            rt.next_pass_at = Some(next);
            if rt.pass_active || rt.finish_running || rt.check_running {
                return Ok(());
            }
        }
        if now() >= next {
            self.run_pass(sync::PassKind::Incremental)?;
        }
        Ok(())
    }

    /// Queues one account to be synced now (`POST /api/accounts/LOGIN/sync`): the sentence says when.
    pub fn sync_now(&self, login: &str) -> String {
        let mut rt = self.runtime();
        if !rt.sync_now.iter().any(|l| l == login) {
            rt.sync_now.push(login.to_string());
        }
        if rt.pass_active || rt.check_running || rt.finish_running {
            format!("{login} is queued: its pass starts as soon as the one running now ends")
        } else {
            format!("{login}: its pass starts now")
        }
    }

    /// Runs the accounts queued by `sync_now` when nothing else runs; true when it did. Not counted as
    /// one of the scheduler's passes (it copies only these accounts), so the interval is unchanged.
    fn run_sync_now(self: &Arc<Self>) -> Result<bool> {
        let logins = {
            let mut rt = self.runtime();
            if rt.sync_now.is_empty() || rt.pass_active || rt.check_running || rt.finish_running {
                return Ok(false);
            }
            rt.pass_active = true;
            std::mem::take(&mut rt.sync_now)
        };
        let result = (|| {
            let store = self.store()?;
            // Held or removed since it was queued: left out, with the reason in the log.
            let accounts: Vec<_> = logins
                .iter()
                .filter_map(|l| crate::accounts_admin::for_sync_now(&store, l).map_err(|e| log::warn!("sync now: {e:#}")).ok())
                .collect();
            let parallel = Self::parallel(&store)?;
            drop(store);
            sync::pass_many(&self.dir, accounts, parallel, sync::PassKind::Incremental, &|r| log::info!("{}", r.line()))
        })();
        self.forget_status();
        let mut rt = self.runtime();
        rt.pass_active = false;
        if let Err(e) = result {
            rt.last_error = Some(format!("{e:#}"));
        }
        Ok(true)
    }

    /// Starts the pre-flight check in the background.
    pub fn start_check(self: &Arc<Self>, only: Vec<String>) -> Result<()> {
        {
            let mut rt = self.runtime();
            if rt.check_running {
                return Err(anyhow!("a check is already running"));
            }
            rt.check_running = true;
        }
        let me = Arc::clone(self);
        let started = crate::workers::spawn_thread("check", move || {
            let result = (|| -> Result<()> {
                let store = me.store()?;
                let accounts = store.accounts(&only)?;
                let limits = check::Limits::from_store(&store)?;
                drop(store);
                let results = sync::for_each_account(
                    &me.dir,
                    accounts,
                    8,
                    &async |store: &Store, account: &crate::store::Account| {
                        let r = check::check_account(store, account, &limits).await;
                        if let Err(e) = check::record(store, account, &r) {
                            log::warn!("{}: {e:#}", account.source_login);
                        }
                        r
                    },
                    &|account, e| check::CheckResult::failed(account, &format!("{e:#}")),
                    &|r| log::info!("checked {}: {}", r.account, r.verdict.words()),
                );
                me.store()?.stamp(RunMark::CheckedAt)?;
                crate::notify::check_done(&me.dir, &results);
                Ok(())
            })();
            if let Err(e) = result {
                log::warn!("check: {e:#}");
                me.runtime().last_error = Some(format!("{e:#}"));
            }
            me.forget_status();
            me.runtime().check_running = false;
        });
        if let Err(e) = started {
            self.runtime().check_running = false;
            return Err(anyhow!("cannot start the check: {e}"));
        }
        Ok(())
    }
}

/// Accounts that may be synced: all of them, minus the paused ones (`accounts_admin`; removed ones are
/// not among `Store::accounts`) and those whose stored check verdict is a login failure (they would only
/// fail again; the operator fixes and re-checks them).
fn runnable_accounts(store: &Store, accounts: Vec<crate::store::Account>) -> Result<Vec<crate::store::Account>> {
    let verdicts = stored_verdicts(store)?;
    let accounts = crate::accounts_admin::passable(store, accounts, false)?;
    Ok(accounts
        .into_iter()
        .filter(|a| {
            !matches!(
                verdicts.get(&a.id).map(String::as_str),
                Some("source_login_failed" | "target_login_failed" | "source_certificate" | "target_certificate")
            )
        })
        .collect())
}

pub fn stored_verdicts(store: &Store) -> Result<BTreeMap<i64, String>> {
    store.check_verdicts()
}

/// The whole state the page shows, as JSON (see docs/api.md). Read-only; never contains a secret.
pub fn status(app: &Appliance) -> Result<Value> {
    let store = app.store()?;
    let rt_snapshot = {
        let rt = app.runtime();
        (rt.pass_active, rt.check_running, rt.finish_running, rt.next_pass_at, rt.last_error.clone())
    };
    let (pass_active, check_running, finish_running, next_pass_at, runtime_error) = rt_snapshot;
    let endpoint = |side: &str| -> Value {
        match store.endpoint(side) {
            Ok(e) => json!({"host": e.host, "port": e.port, "tls": e.tls.as_str(), "pin_sha256": e.pin_sha256}),
            Err(_) => Value::Null,
        }
    };

    let details = app.cached_account_details(&store)?;
    let checked: BTreeMap<i64, (String, Value, i64)> = store
        .check_details()?
        .into_iter()
        .map(|(id, (verdict, detail, at))| (id, (verdict, serde_json::from_str(&detail).unwrap_or(Value::Null), at)))
        .collect();
    let finished = store.mark(RunMark::FinishedAt)?.is_some();
    let (mirroring, mirror_on) = (store.mirror_progress()?, store.settings()?.mirror);
    let (mut t_moved, mut t_removed) = (0i64, 0i64);
    // What the operator's filter left out: counted, not listed (it may be most of a mailbox).
    let left_out = store.left_out_by_account()?;
    let (mut t_left_out, mut t_left_out_b) = (0i64, 0i64);
    let mut accounts = Vec::new();
    // Calendars and contacts are counted only when both sides have a DAV server (docs/dav.md §6).
    let dav_on = store.dav_set_up()?;
    let mut t_dav = crate::store::dav::DavCounts::default();
    let (mut t_msgs, mut t_bytes, mut t_staged, mut t_staged_b, mut t_pushed, mut t_pushed_b, mut t_skipped) =
        (0i64, 0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    let mut t_done_b = 0i64;
    let mut totals_known = true;
    let mut eta_known = true;
    let mut throughput_total = 0.0;
    let mut ready = 0;
    let mut up_to_date = 0;
    let mut last_new_mail: Option<i64> = None;
    let mut first_seen = app.pass_first_seen.lock().unwrap_or_else(|p| p.into_inner());
    first_seen.retain(|id, seen| details.iter().any(|d| d.progress.id == *id && d.progress.pass_started_at == Some(seen.pass_started_at)));
    for detail in &details {
        let d = &detail.progress;
        let check = checked.get(&d.id);
        let verdict = check.map(|(v, _, _)| v.clone());
        // A removed account is listed (its state says so) but counts for nothing the migration still does.
        let counts = d.state != AccountState::Removed;
        if counts && verdict.as_deref() == Some("ready") {
            ready += 1;
        }
        let count = |key: &str| check.and_then(|(_, c, _)| c.get(key).and_then(Value::as_i64));
        let check_total = count("messages").map(|m| (m, count("bytes").unwrap_or(0)));
        let in_pass = pass_active && d.pass_started_at.is_some();
        let had_good_pass = d.state == AccountState::Synced;
        let total = row_status::known_total(check_total, (d.messages, d.bytes), had_good_pass, in_pass);
        let (messages, bytes) = total.unwrap_or((d.messages, d.bytes));
        let done_bytes = d.pushed_bytes + d.refused_bytes;
        let (status, reason) = row_status::of_account(d, check.map(|(v, _, at)| (v.as_str(), *at)), finished, in_pass, check_running);
        if status == row_status::RowStatus::UpToDate {
            up_to_date += 1;
        }
        // Speed and time left from the pass running now, measured since the status first saw it.
        let speed = match (in_pass, d.pass_started_at) {
            (true, Some(started)) => {
                let seen = *first_seen.entry(d.id).or_insert(PassSeen {
                    pass_started_at: started,
                    seen_at: detail.measured_at,
                    pushed_bytes: d.pushed_bytes,
                });
                row_status::current_speed((seen.seen_at, seen.pushed_bytes), (detail.measured_at, d.pushed_bytes))
            }
            _ => None,
        };
        let percent = total.map(|(_, b)| if b > 0 { (done_bytes.min(b) as f64 * 100.0 / b as f64).floor() } else { 100.0 });
        let eta = match (total, speed) {
            (Some((_, b)), Some(rate)) if b > done_bytes => Some(((b - done_bytes) as f64 / rate).ceil() as i64),
            (Some((_, b)), _) if b <= done_bytes => Some(0),
            _ => None,
        };
        if counts {
            if total.is_none() {
                totals_known = false;
            }
            if in_pass && eta.is_none() {
                eta_known = false;
            }
            t_msgs += messages;
            t_bytes += bytes;
            t_staged += d.staged;
            t_staged_b += d.staged_bytes;
            t_pushed += d.pushed;
            t_pushed_b += d.pushed_bytes;
            t_done_b += done_bytes.min(bytes);
            t_skipped += detail.skipped.len() as i64;
            let (n, b) = left_out.get(&d.id).copied().unwrap_or((0, 0));
            t_left_out += n;
            t_left_out_b += b;
            throughput_total += speed.unwrap_or(0.0);
            if let Some(t) = d.last_new_mail_at {
                last_new_mail = Some(last_new_mail.map_or(t, |l: i64| l.max(t)));
            }
        }
        let dav = if dav_on { Some(store.dav_counts(d.id)?) } else { None };
        if let Some(c) = dav.filter(|_| counts) {
            t_dav.calendars += c.calendars;
            t_dav.address_books += c.address_books;
            t_dav.skipped_collections += c.skipped_collections;
            t_dav.items += c.items;
            t_dav.copied += c.copied;
            t_dav.refused += c.refused;
        }
        let mirror = mirroring.get(&d.id).copied().unwrap_or_default();
        (t_moved, t_removed) = (t_moved + mirror.moved, t_removed + mirror.removed);
        accounts.push(json!({
            "mirror": crate::switching::mirror_word(mirror_on, &mirror), "switched_at": mirror.switched.map(|s| s.at),
            "switched_by": mirror.switched.map(|s| s.by.as_str()), "moved_messages": mirror.moved, "removed_messages": mirror.removed,
            "login": d.source_login, "target_login": d.target_login, "aliases": d.aliases, "state": d.state.as_str(),
            "status": status.as_str(), "status_reason": reason, "percent": percent,
            "verdict": verdict, "problem": check.and_then(|(_, c, _)| c.get("problem").cloned()).unwrap_or(Value::Null),
            "messages": messages, "bytes": bytes, "total_known": total.is_some(),
            "staged_messages": d.staged, "staged_bytes": d.staged_bytes,
            "pushed_messages": d.pushed, "pushed_bytes": d.pushed_bytes,
            "refused_messages": d.refused, "refused_bytes": d.refused_bytes, "in_pass_since": if in_pass { d.pass_started_at } else { None },
            "throughput_bytes_per_second": speed, "eta_seconds": eta,
            "throttled_last_pass": d.throttled_last_pass,
            "last_pass_at": d.last_pass_at, "last_error": d.last_error, "last_new_mail_at": d.last_new_mail_at,
            // A removed account is out of the verification (and of repair): its last result is history.
            "verified": if counts { detail.verified.map(|(ok, _)| ok) } else { None },
            "missing_messages": if counts { detail.verified.map_or(0, |(_, n)| n) } else { 0 },
            "skipped": detail.skipped.iter().map(|s| json!({"folder": s.folder, "reason": s.reason, "server_says": s.server_says, "at": s.at})).collect::<Vec<_>>(),
            "left_out_messages": left_out.get(&d.id).map_or(0, |(n, _)| *n),
            "left_out_bytes": left_out.get(&d.id).map_or(0, |(_, b)| *b),
            "dav": dav,
        }));
    }
    drop(first_seen);
    let domains: Value = json!(domain_states(&store)?);
    let all_flipped =
        domains.as_array().is_some_and(|d| !d.is_empty() && d.iter().all(|x| x.get("points_at_target") == Some(&Value::Bool(true))));
    let any_flipped = domains.as_array().is_some_and(|d| d.iter().any(|x| x.get("points_at_target") == Some(&Value::Bool(true))));
    let settings = store.settings()?;
    let quiet = settings.quiet_period_seconds;
    let last_flip = domains.as_array().and_then(|d| d.iter().filter_map(|x| x.get("flipped_at").and_then(Value::as_i64)).max());
    // Quiet since the later of: the last new mail, the last MX flip.
    let quiet_since = match (last_new_mail, last_flip) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let finished_at = store.mark_number(RunMark::FinishedAt)?;
    let passes_enabled = app.passes_enabled(&store)?;
    let pass_count = store.mark_number(RunMark::PassCount)?.unwrap_or(0);
    let configured = store.endpoint("source").is_ok() && store.endpoint("target").is_ok();
    // Paused accounts hold finishing up (`accounts_admin::refuse_finish_while_paused`); removed ones
    // and paused ones have no say in whether the rest is copied.
    let paused = details.iter().filter(|d| d.progress.state == AccountState::Paused).count();
    let in_migration = details.iter().filter(|d| d.progress.state != AccountState::Removed).count();
    let safe_to_finish =
        finished_at.is_none() && paused == 0 && all_flipped && pass_count > 0 && quiet_since.is_some_and(|q| now() - q >= quiet);
    // Every passing account's row says up to date: the same words the page shows, so the two agree.
    let passing = details.iter().filter(|d| !matches!(d.progress.state, AccountState::Paused | AccountState::Removed)).count();
    let all_synced = passing > 0 && up_to_date == passing;
    let (phase, next_step) = phase_and_next_step(&PhaseFacts {
        finished: finished_at.is_some(),
        configured,
        accounts: in_migration,
        paused,
        checked: checked.len(),
        ready,
        check_running,
        passes: pass_count,
        passes_enabled,
        all_synced,
        any_flipped,
        all_flipped,
        safe_to_finish,
    });
    // Time left only when every account's total is known and every account in a pass has a speed.
    let eta = if !totals_known || !eta_known {
        None
    } else if t_bytes <= t_done_b {
        Some(0)
    } else if throughput_total > 0.0 {
        Some(((t_bytes - t_done_b) as f64 / throughput_total).ceil() as i64)
    } else {
        None
    };
    let total_percent = if totals_known && t_bytes > 0 {
        Some((t_done_b as f64 * 100.0 / t_bytes as f64).floor())
    } else if totals_known {
        Some(100.0)
    } else {
        None
    };
    let staging_bytes = fs::metadata(app.dir.join("postflytt.sqlite")).map(|m| m.len()).unwrap_or(0)
        + fs::metadata(app.dir.join("postflytt.sqlite-wal")).map(|m| m.len()).unwrap_or(0);
    // Staging against its limit (what the reader waits on); null where the disk cannot be read.
    let staging_used = store.staging_used_bytes().ok();
    let staging_limit = store.staging_limit().ok();
    let staging_limit_set_by = if settings.staging_limit.is_some() { "operator" } else { "default" };
    Ok(json!({
        "phase": phase.as_str(),
        "next_step": next_step.as_str(),
        "now": now(),
        "source": endpoint("source"),
        "target": endpoint("target"),
        "source_test": crate::setup::test_json(crate::setup::last_test(&store, "source").as_ref()),
        "target_test": crate::setup::test_json(crate::setup::last_test(&store, "target").as_ref()),
        "source_kind": store.source_kind()?.as_str(),
        "target_kind": store.target_kind()?.as_str(),
        "passes": {
            "running": passes_enabled, "active": pass_active, "interval_seconds": Appliance::interval(&store)?,
            "last_started_at": store.mark_number(RunMark::PassStartedAt)?,
            "last_finished_at": store.mark_number(RunMark::PassFinishedAt)?,
            "next_at": if passes_enabled { next_pass_at } else { None }, "count": pass_count,
        },
        "check": {"running": check_running, "checked_at": store.mark_number(RunMark::CheckedAt)?},
        "finish": {"running": finish_running},
        "last_error": runtime_error,
        "totals": {
            "accounts": in_migration, "paused": paused, "ready": ready, "messages": t_msgs, "bytes": t_bytes,
            "staged_messages": t_staged, "staged_bytes": t_staged_b, "pushed_messages": t_pushed, "pushed_bytes": t_pushed_b,
            "skipped": t_skipped, "throughput_bytes_per_second": throughput_total, "eta_seconds": eta,
            "done_bytes": t_done_b, "percent": total_percent, "total_known": totals_known, "up_to_date": up_to_date,
            "moved_messages": t_moved, "removed_messages": t_removed,
            "left_out_messages": t_left_out, "left_out_bytes": t_left_out_b,
            "dav": if dav_on { Some(t_dav) } else { None },
        },
        "mirror": if settings.mirror { "on" } else { "off" },
        "compress": settings.compress.as_str(),
        "accounts": accounts,
        "domains": domains,
        "quiet_period_seconds": quiet,
        "target_mx": settings.mx_target,
        "watch_domains": settings.watch_domains,
        "exclude_folders": settings.exclude_folders, "include_folders": settings.include_folders, "map_folders": settings.map_folders,
        "folder_choice_locked": store.any_copies()?,
        "last_new_mail_at": last_new_mail,
        "quiet_since": quiet_since,
        "safe_to_finish": safe_to_finish,
        "finished_at": finished_at,
        // The report is built from the store whenever it is asked for; it is final once finished.
        "report_available": store.mark(RunMark::FinishedAt)?.is_some(),
        "staging_bytes": staging_bytes,
        "free_disk_bytes": crate::store::free_disk(&app.dir).unwrap_or(0),
        "staging_used_bytes": staging_used,
        "staging_limit_bytes": staging_limit,
        "staging_limit_set_by": staging_limit_set_by,
        "notify": crate::notify::status(&store).unwrap_or(Value::Null),
        "filter": {
            "older_than": settings.older_than.map(|d| d.to_string()),
            "newer_than": settings.newer_than.map(|d| d.to_string()),
            "max_message_size": settings.max_message_size,
            "description": crate::filters::MessageFilter::from_settings(&settings).describe(),
        },
        "quota_total_bytes": settings.quota_total,
        "source_admin": crate::admin_login::status_json(&store, "source"),
        "target_admin": crate::admin_login::status_json(&store, "target"),
        "dav": crate::setup::dav_status_json(&store),
    }))
}

/// An account as the page shows it: its progress and its latest skips.
#[derive(Clone)]
struct AccountDetail {
    progress: crate::store::AccountProgress,
    skipped: Vec<crate::store::SkipEntry>,
    /// When the counts were read (Unix seconds with fraction): a pass's speed is measured between two.
    measured_at: f64,
    /// The last verification: whether it passed and how many messages it found missing.
    verified: Option<(bool, u64)>,
}

fn account_details(store: &Store) -> Result<Vec<AccountDetail>> {
    let mut details = Vec::new();
    for progress in store.account_progress()? {
        let skipped = store.recent_skips(progress.id, 200)?;
        let measured_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        // A damaged stored verification reads as not verified, as in the report.
        let verified =
            crate::verify::load(store, progress.id).unwrap_or(None).map(|v| (v.ok, v.folders.iter().map(|f| f.missing_count).sum()));
        details.push(AccountDetail { progress, skipped, measured_at, verified });
    }
    Ok(details)
}

/// What finishing did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinishOutcome {
    pub verified_ok: bool,
    pub problems: Vec<String>,
    pub purged: bool,
}

/// Starts the finish job in the background (see `finish`).
pub fn start_finish(app: &Arc<Appliance>) -> Result<()> {
    {
        let store = app.store()?;
        if store.mark(RunMark::FinishedAt)?.is_some() {
            return Err(anyhow!("the migration is already finished"));
        }
        crate::accounts_admin::refuse_finish_while_paused(&store)?;
        let mut rt = app.runtime();
        if rt.finish_running {
            return Err(anyhow!("finish is already running"));
        }
        rt.finish_running = true;
    }
    let me = Arc::clone(app);
    let started = crate::workers::spawn_thread("finish", move || {
        match finish(&me, false) {
            Ok(outcome) if !outcome.verified_ok => {
                me.runtime().last_error = Some(format!("verification found problems; nothing was purged: {}", outcome.problems.join("; ")));
            }
            // An earlier finish's "verification found problems" is history once one succeeds.
            Ok(_) => me.runtime().last_error = None,
            Err(e) => me.runtime().last_error = Some(format!("finish failed: {e:#}")),
        }
        me.forget_status();
        me.runtime().finish_running = false;
    });
    if let Err(e) = started {
        app.runtime().finish_running = false;
        return Err(anyhow!("cannot start finishing: {e}"));
    }
    Ok(())
}

/// Repair (see `repair`): every account whose last verification found messages missing has its next
/// pass copy them again, and a pass starts now (after a running one). Returns (account, messages
/// missing) for each account asked; none is an error with a sentence.
pub fn start_repair(app: &Arc<Appliance>) -> Result<Vec<(String, u64)>> {
    let store = app.store()?;
    store.ensure_not_finished()?;
    if app.runtime().finish_running {
        return Err(anyhow!("finish is running; it verifies every account again"));
    }
    let asked = crate::verify::request_repair(&store, &store.accounts(&[])?)?;
    drop(store);
    if asked.is_empty() {
        return Err(anyhow!("verification found no message missing on the target, so there is nothing to repair (finish verifies)"));
    }
    let me = Arc::clone(app);
    crate::workers::spawn_thread("repair", move || {
        while me.runtime().pass_active && !shutting_down() {
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Err(e) = me.run_pass(sync::PassKind::Incremental) {
            log::warn!("repair: {e:#}");
        }
    })
    .map_err(|e| anyhow!("cannot start the repair pass: {e}"))?;
    Ok(asked)
}

/// Finishing a migration: passes stop, a last pass copies what is new, every account is verified
/// (every source message on the target), and only when all verify does the purge delete the passwords
/// and the staged mail; `force` purges even so (the report then says what failed). The report and
/// counts stay.
pub fn finish(app: &Arc<Appliance>, force: bool) -> Result<FinishOutcome> {
    if !force {
        crate::accounts_admin::refuse_finish_while_paused(&app.store()?)?;
    }
    app.store()?.change_settings(|s| s.passes_enabled = false)?;
    while app.runtime().pass_active {
        std::thread::sleep(Duration::from_millis(200));
    }
    let reports = app.run_pass(sync::PassKind::Final)?;
    let mut problems: Vec<String> =
        reports.iter().filter_map(|r| r.error.as_ref().map(|e| format!("{}: last pass: {e}", r.account))).collect();
    let store = app.store()?;
    let accounts = store.accounts(&[])?;
    drop(store);
    let results = sync::for_each_account(
        &app.dir,
        accounts,
        4,
        &async |store: &Store, account: &crate::store::Account| {
            let r = crate::verify::verify_account(store, account).await;
            if let Err(e) = crate::verify::record(store, &r) {
                log::warn!("{}: {e:#}", account.source_login);
            }
            r
        },
        &|account, e| crate::verify::VerifyResult::failed(account, &format!("{e:#}")),
        &|r| log::info!("{}", r.line()),
    );
    for r in &results {
        if !r.ok {
            problems.push(format!("{}: {}", r.account, r.summary()));
        }
    }
    let verified_ok = problems.is_empty();
    let mut purged = false;
    if verified_ok || force {
        let store = app.store()?;
        // Read before the purge deletes the relay's password with the others.
        let mail = crate::notify::Config::load(&store).unwrap_or_else(|e| {
            log::warn!("e-mail notices: {e:#}");
            None
        });
        store.purge()?;
        store.stamp(RunMark::FinishedAt)?;
        purged = true;
        log::info!("finished: passwords and staged mail purged; the report stays");
        crate::notify::finished(&app.dir, mail, &problems);
    }
    Ok(FinishOutcome { verified_ok, problems, purged })
}

/// Watches the MX records of every customer domain on an interval and records when each flipped.
pub fn mx_watcher(app: Arc<Appliance>) {
    // The interval is read every tick, so a changed setting takes effect at once.
    let mut last_round: Option<i64> = None;
    while !shutting_down() {
        let interval = app.store().and_then(|s| s.settings()).map(|s| s.mx_interval_seconds).unwrap_or(300);
        if last_round.is_none_or(|l| now() >= l + interval) {
            if let Err(e) = mx_round(&app) {
                log::warn!("MX watch: {e:#}");
            }
            // Safe to finish comes with time as well as with a flip, so it is looked for every round.
            if let Ok(s) = status(&app)
                && s["safe_to_finish"] == true
            {
                crate::notify::safe_to_finish(&app.dir, s["quiet_period_seconds"].as_i64().unwrap_or(0));
            }
            last_round = Some(now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The domains the MX watch looks at: those of every login and alias, and the ones the operator added.
fn watched_domains(store: &Store) -> Result<std::collections::BTreeSet<String>> {
    let accounts = store.accounts(&[])?;
    let mut addresses: Vec<String> = Vec::new();
    for a in &accounts {
        addresses.push(a.source_login.clone());
        addresses.extend(a.aliases.iter().cloned());
    }
    Ok(crate::mx::watched_domains(addresses.iter().map(String::as_str), &store.settings()?.watch_domains))
}

/// Every watched domain as the MX watch last saw it (one not looked up yet as such), for the status.
pub fn domain_states(store: &Store) -> Result<Vec<crate::mx::DomainState>> {
    let seen: Vec<crate::mx::DomainState> = store.mark(RunMark::MxState)?.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
    Ok(crate::mx::listed(seen, &watched_domains(store)?))
}

fn mx_round(app: &Appliance) -> Result<()> {
    let store = app.store()?;
    let domains = watched_domains(&store)?;
    if domains.is_empty() {
        return Ok(());
    }
    let settings = store.settings()?;
    let target_mx = settings.mx_target.clone();
    let resolver_setting = settings.mx_resolver.clone().or_else(|| std::env::var("POSTFLYTT_RESOLVER").ok()).filter(|r| !r.is_empty());
    let mut states: BTreeMap<String, crate::mx::DomainState> = store
        .mark(RunMark::MxState)?
        .and_then(|s| serde_json::from_str::<Vec<crate::mx::DomainState>>(&s).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d.domain.clone(), d))
        .collect();
    drop(store);
    let resolver = crate::mx::Resolver::new(resolver_setting.as_deref())?;
    // All domains at once: a dead nameserver then costs one timeout per round, not one per domain.
    let list: Vec<String> = domains.iter().cloned().collect();
    let answers = smol::block_on(resolver.mx_all(&list));
    for (domain, answer) in list.iter().zip(answers) {
        let state = states.entry(domain.clone()).or_insert_with(|| crate::mx::DomainState::new(domain));
        match &answer {
            Ok(a) => state.observe(Ok(a), &target_mx, now()),
            Err(e) => state.observe(Err(&format!("{e:#}")), &target_mx, now()),
        }
    }
    states.retain(|d, _| domains.contains(d));
    let list: Vec<&crate::mx::DomainState> = states.values().collect();
    let store = app.store()?;
    store.set_mark(RunMark::MxState, &serde_json::to_string(&list)?)?;
    // A domain at the new host switches its accounts (`switching`): mirroring ends for them.
    let flipped: Vec<(String, i64)> =
        list.iter().filter(|d| d.points_at_target).filter_map(|d| d.flipped_at.map(|at| (d.domain.clone(), at))).collect();
    crate::switching::mark_by_mx(&store, &flipped, &settings.watch_domains)?;
    for state in &list {
        if let (true, Some(at)) = (state.points_at_target, state.flipped_at) {
            crate::notify::mx_flipped(&app.dir, &state.domain, at);
        }
    }
    Ok(())
}

/// What the migration's phase and next step are decided from (all read from the store).
#[derive(Debug, Clone, Copy, Default)]
struct PhaseFacts {
    finished: bool,
    configured: bool,
    accounts: usize,
    /// Accounts with a check result, and of them those found ready.
    checked: usize,
    ready: usize,
    check_running: bool,
    /// Passes run so far.
    passes: i64,
    passes_enabled: bool,
    /// Every account has had a pass and has everything it staged on the target (or skipped).
    all_synced: bool,
    any_flipped: bool,
    all_flipped: bool,
    safe_to_finish: bool,
    /// Accounts the operator paused: finishing waits for them.
    paused: usize,
}

/// The phase the page shows (its step indicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Check,
    Syncing,
    Cutover,
    Draining,
    Finished,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Check => "check",
            Phase::Syncing => "syncing",
            Phase::Cutover => "cutover",
            Phase::Draining => "draining",
            Phase::Finished => "finished",
        }
    }
}

/// What someone has to do next (or wait for): "What happens next" on the page, one text each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NextStep {
    SetUpServers,
    ImportAccounts,
    RunCheck,
    FixAccounts,
    StartPasses,
    WaitSync,
    SwitchMx,
    WaitQuiet,
    ResumeAccounts,
    Finish,
    Done,
}

impl NextStep {
    fn as_str(self) -> &'static str {
        match self {
            NextStep::SetUpServers => "set_up_servers",
            NextStep::ImportAccounts => "import_accounts",
            NextStep::RunCheck => "run_check",
            NextStep::FixAccounts => "fix_accounts",
            NextStep::StartPasses => "start_passes",
            NextStep::WaitSync => "wait_sync",
            NextStep::SwitchMx => "switch_mx",
            NextStep::WaitQuiet => "wait_quiet",
            NextStep::ResumeAccounts => "resume_accounts",
            NextStep::Finish => "finish",
            NextStep::Done => "done",
        }
    }
}

/// The migration's phase and next step: the first of these that is not yet behind it.
fn phase_and_next_step(f: &PhaseFacts) -> (Phase, NextStep) {
    if f.finished {
        (Phase::Finished, NextStep::Done)
    } else if !f.configured {
        (Phase::Setup, NextStep::SetUpServers)
    } else if f.accounts == 0 {
        (Phase::Setup, NextStep::ImportAccounts)
    } else if f.checked == 0 && f.passes == 0 {
        (Phase::Check, NextStep::RunCheck)
    } else if f.ready < f.accounts && f.passes == 0 {
        (Phase::Check, if f.check_running { NextStep::RunCheck } else { NextStep::FixAccounts })
    } else if f.passes == 0 && !f.passes_enabled {
        (Phase::Check, NextStep::StartPasses)
    } else if !f.all_synced && !f.any_flipped {
        // Once a domain has flipped, the cutover goes on even if a row still waits (a message the
        // source will not hand over, a folder the target refuses): the rows say which, and finishing
        // verifies every account.
        (Phase::Syncing, if f.passes_enabled { NextStep::WaitSync } else { NextStep::StartPasses })
    } else if !f.all_flipped {
        (if f.any_flipped { Phase::Cutover } else { Phase::Syncing }, NextStep::SwitchMx)
    } else if f.paused > 0 {
        (Phase::Draining, NextStep::ResumeAccounts)
    } else if !f.safe_to_finish {
        (Phase::Draining, NextStep::WaitQuiet)
    } else {
        (Phase::Draining, NextStep::Finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_next_steps() {
        use NextStep::*;
        use Phase::*;
        let base = PhaseFacts { configured: true, accounts: 3, checked: 3, ready: 3, ..PhaseFacts::default() };
        let synced = PhaseFacts { passes: 2, passes_enabled: true, all_synced: true, ..base };
        for (name, facts, wanted) in [
            ("new box", PhaseFacts::default(), (Setup, SetUpServers)),
            ("servers set", PhaseFacts { configured: true, ..PhaseFacts::default() }, (Setup, ImportAccounts)),
            ("imported", PhaseFacts { checked: 0, ready: 0, ..base }, (Check, RunCheck)),
            ("one failed", PhaseFacts { ready: 2, ..base }, (Check, FixAccounts)),
            ("check again", PhaseFacts { ready: 2, check_running: true, ..base }, (Check, RunCheck)),
            ("all ready", base, (Check, StartPasses)),
            ("first pass running", PhaseFacts { passes_enabled: true, ..base }, (Syncing, WaitSync)),
            ("passes stopped midway", PhaseFacts { passes: 1, ..base }, (Syncing, StartPasses)),
            ("copied", synced, (Syncing, SwitchMx)),
            ("one domain flipped", PhaseFacts { any_flipped: true, ..synced }, (Cutover, SwitchMx)),
            ("all flipped", PhaseFacts { any_flipped: true, all_flipped: true, ..synced }, (Draining, WaitQuiet)),
            ("quiet", PhaseFacts { any_flipped: true, all_flipped: true, safe_to_finish: true, ..synced }, (Draining, Finish)),
            ("finished", PhaseFacts { finished: true, ..synced }, (Finished, Done)),
            ("paused account", PhaseFacts { any_flipped: true, all_flipped: true, paused: 1, ..synced }, (Draining, ResumeAccounts)),
            ("failed accounts after passes began", PhaseFacts { ready: 2, ..synced }, (Syncing, SwitchMx)),
        ] {
            assert_eq!(phase_and_next_step(&facts), wanted, "{name}");
        }
    }
    use crate::secret::Secret;

    fn account_count(app: &Appliance) -> usize {
        status(app).unwrap()["accounts"].as_array().map(Vec::len).unwrap()
    }

    #[test]
    fn status_counts_are_cached_until_something_changes() {
        let dir = std::env::temp_dir().join(format!("pf-status-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let app = Appliance::open(&dir).unwrap();
        let store = app.store().unwrap();
        store.upsert_account("a@x.se", &Secret::new("p"), "a@y.se", None, &[]).unwrap();
        assert_eq!(account_count(&app), 1);
        // Written behind the appliance's back: the cached counts stay for now...
        store.upsert_account("b@x.se", &Secret::new("p"), "b@y.se", None, &[]).unwrap();
        assert_eq!(account_count(&app), 1);
        // ...until something that changes accounts says so.
        app.forget_status();
        assert_eq!(account_count(&app), 2);
        // A pass the servers throttled shows as such (information, not an error).
        let id = store.account_id("a@x.se").unwrap().unwrap();
        store
            .write(|tx| {
                let pass = tx.start_pass(id)?;
                tx.finish_pass(pass, &crate::store::PassTotals { throttled: 3, ..Default::default() })
            })
            .unwrap();
        app.forget_status();
        let s = status(&app).unwrap();
        let a = s["accounts"].as_array().unwrap().iter().find(|a| a["login"] == "a@x.se").unwrap().clone();
        assert_eq!(a["throttled_last_pass"], 3, "{a}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
