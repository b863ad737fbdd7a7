//! The pre-flight check ("test migration"): for one account, log in on both sides, count and size every
//! source folder, find the largest message and the ones over the target's size limit, read the target's
//! quota (or the package limits the operator configured), and give a verdict an operator can act on:
//! ready, login failed (which side, and why in plain words), will not fit, or has messages over the
//! limit. Nothing is copied and nothing on either server changes (folders are opened with EXAMINE).
//! When calendar and contact servers are set up, their part (`dav::check`) follows the mail's, and a
//! failed DAV login is the verdict of an account whose mail is otherwise ready.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::filters::MessageFilter;
use crate::imap::{CertificateInfo, Endpoint, FetchItem, Session, SideTest, TlsMode, fetch_fingerprint};
use crate::store::{Account, Store};
use crate::units::human_bytes;
use crate::utf7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ready,
    SourceLoginFailed,
    TargetLoginFailed,
    WillNotFit,
    OverSizeLimit,
    /// The side's certificate is not trusted: one setup problem, found once per check (`SideGate`);
    /// the account was not tried.
    SourceCertificate,
    TargetCertificate,
    /// The mail is ready, but the account's calendar and contact login failed on that side (the mail
    /// still moves; the calendars do not until the login is fixed).
    DavSourceLoginFailed,
    DavTargetLoginFailed,
}

impl Verdict {
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::SourceLoginFailed => "login failed (source)",
            Verdict::TargetLoginFailed => "login failed (target)",
            Verdict::WillNotFit => "will not fit",
            Verdict::OverSizeLimit => "has messages over the target's size limit",
            Verdict::SourceCertificate => "not checked: the old server's certificate is not trusted",
            Verdict::TargetCertificate => "not checked: the new server's certificate is not trusted",
            Verdict::DavSourceLoginFailed => "calendar login failed on the old server",
            Verdict::DavTargetLoginFailed => "calendar login failed on the new server",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderCount {
    pub source: String,
    pub target: String,
    pub messages: u64,
    pub bytes: u64,
}

/// A source folder the operator's folder choice leaves out (`folder_choice`), with how much mail it
/// holds by STATUS (never opened or read: another user's folder or an Exchange calendar may refuse
/// that): shown, never counted in the totals the verdict weighs. `bytes` is None where the server has
/// no STATUS=SIZE or refused the STATUS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExcludedFolder {
    pub source: String,
    pub reason: String,
    pub messages: u64,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BigMessage {
    pub folder: String,
    pub uid: u32,
    pub size: u64,
    pub date: String,
    pub subject: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub account: String,
    pub target_account: String,
    pub verdict: Verdict,
    /// What went wrong, in words an operator acts on (empty when ready).
    pub problem: String,
    pub folders: Vec<FolderCount>,
    pub messages: u64,
    pub bytes: u64,
    pub largest: Option<BigMessage>,
    pub over_limit: Vec<BigMessage>,
    /// Free room on the target for this account, in bytes, and where the number came from.
    pub target_room: Option<u64>,
    pub target_room_source: String,
    pub size_limit: Option<u64>,
    /// True when some folder could not be measured: the totals are a lower bound.
    pub incomplete: bool,
    /// The side's certificate, when the verdict is a certificate problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateInfo>,
    /// Messages the operator's filter leaves out (not in `messages` and `bytes`).
    #[serde(default)]
    pub left_out_messages: u64,
    #[serde(default)]
    pub left_out_bytes: u64,
    /// Folders left out by the folder choice, with what they hold (not in `messages` and `bytes`).
    #[serde(default)]
    pub excluded: Vec<ExcludedFolder>,
    /// The calendar and contact part, when both DAV servers are set up (null otherwise).
    #[serde(default)]
    pub dav: Option<crate::dav::check::DavCheck>,
}

impl CheckResult {
    fn empty(account: &Account) -> CheckResult {
        CheckResult {
            account: account.source_login.clone(),
            target_account: account.target_login.clone(),
            verdict: Verdict::Ready,
            problem: String::new(),
            folders: Vec::new(),
            messages: 0,
            bytes: 0,
            largest: None,
            over_limit: Vec::new(),
            target_room: None,
            target_room_source: String::new(),
            size_limit: None,
            incomplete: false,
            certificate: None,
            left_out_messages: 0,
            left_out_bytes: 0,
            excluded: Vec::new(),
            dav: None,
        }
    }

    /// A result for an account whose check could not even start.
    pub fn failed(account: &Account, problem: &str) -> CheckResult {
        CheckResult { verdict: Verdict::SourceLoginFailed, problem: problem.to_string(), incomplete: true, ..CheckResult::empty(account) }
    }
}

/// Operator-configured limits for targets that report none (e.g. the package the customer bought),
/// and what this run of the check found about each side.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub quota_per_account: Option<u64>,
    pub message_size_limit: Option<u64>,
    /// The operator's message filter: what it leaves out is counted apart, not as mail to move.
    pub filter: MessageFilter,
    sides: std::sync::Arc<SideGate>,
}

/// Each side tested once per check, by the first account to get there (the others wait for it): a
/// certificate the side's test refuses is one setup problem, so no account logs in against it (each
/// would fail the same way, and it is no login failure).
#[derive(Debug, Default)]
struct SideGate {
    source: smol::lock::OnceCell<Option<SideTest>>,
    target: smol::lock::OnceCell<Option<SideTest>>,
}

impl SideGate {
    /// The side's test when it found a certificate problem; the test is kept for the status too.
    async fn certificate_problem(&self, store: &Store, side: &str) -> Option<SideTest> {
        let cell = if side == "source" { &self.source } else { &self.target };
        cell.get_or_init(|| async {
            let endpoint = store.endpoint(side).ok()?;
            let kind = if side == "source" { store.source_kind().ok()? } else { store.target_kind().ok()? };
            let test = crate::imap::test_endpoint(&endpoint, kind).await;
            if let Err(e) = crate::setup::record_test(store, side, &test) {
                log::warn!("could not keep the {side} test: {e:#}");
            }
            test.certificate_problem().is_some().then_some(test)
        })
        .await
        .clone()
    }
}

/// The result of an account not tried because `side`'s certificate is not trusted.
fn certificate_result(account: &Account, side: &str, test: &SideTest) -> CheckResult {
    let cert = test.certificate_problem().cloned();
    let (verdict, server) =
        if side == "source" { (Verdict::SourceCertificate, "old server") } else { (Verdict::TargetCertificate, "new server") };
    let what = cert.as_ref().and_then(|c| c.problem).map_or("not trusted", |p| p.words());
    let fp = cert.as_ref().map(|c| c.sha256.clone()).unwrap_or_default();
    CheckResult {
        verdict,
        problem: format!(
            "the {server}'s certificate is {what}, so this account was not tried; if it is the right server, trust the \
             certificate (postflytt setup --{side}-pin {fp}, or Trust this certificate on the page) and check again"
        ),
        incomplete: true,
        certificate: cert,
        ..CheckResult::empty(account)
    }
}

impl Limits {
    pub fn from_store(store: &Store) -> Result<Limits> {
        let settings = store.settings()?;
        Ok(Limits {
            quota_per_account: settings.quota_per_account,
            message_size_limit: settings.message_size_limit,
            filter: MessageFilter::from_settings(&settings),
            sides: std::sync::Arc::default(),
        })
    }

    /// The largest message `target` takes (`Session::message_size_limit`).
    pub fn size_limit_of(&self, target: &Session) -> Option<u64> {
        target.message_size_limit(self.message_size_limit)
    }
}

/// Explains a failed connection or login in the operator's terms; for a TLS failure it fetches the
/// certificate's fingerprint so the operator can decide to pin it.
async fn explain_login_failure(error: &anyhow::Error, endpoint: &Endpoint) -> String {
    let text = format!("{error:#}");
    if error.downcast_ref::<crate::imap::TlsFailed>().is_some()
        && endpoint.tls != TlsMode::Plain
        && endpoint.pin_sha256.is_none()
        && let Ok(fp) = fetch_fingerprint(endpoint).await
    {
        return format!(
            "{text}; the server's certificate has SHA-256 fingerprint {fp}: if you trust it, pin it with setup --source-pin/--target-pin {fp}"
        );
    }
    text
}

/// Logs in on one side; on failure, the operator's explanation instead of the error.
async fn login(store: &Store, account: &Account, endpoint: &Endpoint, side: &str) -> Result<Session, String> {
    let attempt =
        if side == "source" { crate::sync::open_source(store, account).await } else { crate::sync::open_target(store, account).await };
    match attempt {
        Ok(s) => Ok(s),
        Err(e) => Err(explain_login_failure(&e, endpoint).await),
    }
}

/// Checks one account: its mail, then its calendars and contacts (unless the account was not tried
/// for a side's certificate).
pub async fn check_account(store: &Store, account: &Account, limits: &Limits) -> CheckResult {
    let result = check_mail(store, account, limits).await;
    if matches!(result.verdict, Verdict::SourceCertificate | Verdict::TargetCertificate) {
        return result;
    }
    let dav = crate::dav::check::check_account(store, account)
        .await
        .unwrap_or_else(|e| Some(crate::dav::check::DavCheck { problem: format!("{e:#}"), ..Default::default() }));
    with_dav(result, dav)
}

/// The result with its DAV part: a failed DAV login becomes the verdict only of an otherwise ready
/// account (a mail problem is the one to fix first).
fn with_dav(mut result: CheckResult, dav: Option<crate::dav::check::DavCheck>) -> CheckResult {
    if result.verdict == Verdict::Ready
        && let Some(dav) = &dav
        && let Some(side) = &dav.login_failed
    {
        result.verdict = if side == "source" { Verdict::DavSourceLoginFailed } else { Verdict::DavTargetLoginFailed };
        result.problem = dav.problem.clone();
    }
    result.dav = dav;
    result
}

async fn check_mail(store: &Store, account: &Account, limits: &Limits) -> CheckResult {
    let mut result = CheckResult::empty(account);
    let endpoints = store.endpoint("source").and_then(|s| Ok((s, store.endpoint("target")?)));
    let (source_ep, target_ep) = match endpoints {
        Ok(e) => e,
        Err(e) => {
            result.verdict = Verdict::SourceLoginFailed;
            result.problem = format!("{e:#}");
            return result;
        }
    };
    for side in ["source", "target"] {
        if let Some(test) = limits.sides.certificate_problem(store, side).await {
            return certificate_result(account, side, &test);
        }
    }
    let mut source = match login(store, account, &source_ep, "source").await {
        Ok(s) => s,
        Err(problem) => {
            result.verdict = Verdict::SourceLoginFailed;
            result.problem = problem;
            return result;
        }
    };
    let mut target = match login(store, account, &target_ep, "target").await {
        Ok(s) => s,
        Err(problem) => {
            result.verdict = Verdict::TargetLoginFailed;
            result.problem = problem;
            source.logout().await;
            return result;
        }
    };
    if let Err(e) = measure(store, account, &mut source, &mut target, limits, &mut result).await {
        result.incomplete = true;
        if result.problem.is_empty() {
            result.problem = format!("could not measure everything: {e:#}");
        }
    }
    source.logout().await;
    target.logout().await;
    result
}

async fn measure(
    store: &Store,
    account: &Account,
    source: &mut Session,
    target: &mut Session,
    limits: &Limits,
    result: &mut CheckResult,
) -> Result<()> {
    let discovery = crate::sync::discover(store, account, source, target, None).await?;
    let target_of: BTreeMap<String, String> = discovery.maps.iter().map(|m| (m.source.clone(), m.target.clone())).collect();
    let excluded: BTreeMap<String, String> = discovery.excluded.iter().map(|(n, why)| (n.clone(), why.to_string())).collect();

    result.size_limit = limits.size_limit_of(target);
    match target.storage_quota().await? {
        Some((used_kib, limit_kib)) => {
            result.target_room = Some(limit_kib.saturating_sub(used_kib).saturating_mul(1024));
            result.target_room_source = format!("target quota: {} of {} used", human_bytes(used_kib * 1024), human_bytes(limit_kib * 1024));
        }
        None => {
            if let Some(q) = limits.quota_per_account {
                result.target_room = Some(q);
                result.target_room_source = format!("package limit {}", human_bytes(q));
            } else {
                result.target_room_source = "the target reports no quota and no package limit is set".into();
            }
        }
    }

    let listed = source.list().await?;
    for folder in listed {
        if folder.has_attribute("\\Noselect") || folder.has_attribute("\\NonExistent") {
            continue;
        }
        let name = utf7::decode_or_raw(&folder.wire_name);
        if let Some(reason) = excluded.get(&name) {
            // Counted by STATUS, and a refusal (a folder we may not open) costs the account nothing.
            let (messages, bytes) = source.messages_and_size(&folder.wire_name).await.unwrap_or_else(|e| {
                log::info!("{}: left-out folder {name} not counted: {e:#}", account.source_login);
                (0, None)
            });
            result.excluded.push(ExcludedFolder { source: name, reason: reason.clone(), messages: messages.into(), bytes });
            continue;
        }
        let mut count =
            FolderCount { target: target_of.get(&name).cloned().unwrap_or_default(), source: name.clone(), messages: 0, bytes: 0 };
        let selected = match source.select(&folder.wire_name, true, false).await {
            Ok(s) => s,
            Err(e) => {
                result.incomplete = true;
                log::warn!("{}: {e:#}", account.source_login);
                result.folders.push(count);
                continue;
            }
        };
        let mut over: Vec<u32> = Vec::new();
        let mut largest: Option<(u32, u64)> = None;
        if selected.exists > 0 {
            let limit = result.size_limit;
            let mut items = vec![FetchItem::Uid, FetchItem::Size];
            if limits.filter.older_than.is_some() || limits.filter.newer_than.is_some() {
                items.push(FetchItem::InternalDate);
            }
            let (left_out_messages, left_out_bytes) = (&mut result.left_out_messages, &mut result.left_out_bytes);
            source
                .uid_fetch(&["1:*".to_string()], &items, None, &mut |meta| {
                    let size = meta.size.unwrap_or(0) as u64;
                    if limits.filter.leaves_out(size, meta.internal_date.as_deref()).is_some() {
                        *left_out_messages += 1;
                        *left_out_bytes += size;
                        return Ok(());
                    }
                    count.messages += 1;
                    count.bytes += size;
                    if largest.is_none_or(|(_, s)| size > s) {
                        largest = Some((meta.uid, size));
                    }
                    if limit.is_some_and(|l| size > l) {
                        over.push(meta.uid);
                    }
                    Ok(())
                })
                .await?;
        }
        let mut wanted: Vec<u32> = over.clone();
        if let Some((uid, size)) = largest
            && result.largest.as_ref().is_none_or(|l| size > l.size)
        {
            wanted.push(uid);
        }
        let mut described: BTreeMap<u32, BigMessage> = BTreeMap::new();
        if !wanted.is_empty() {
            wanted.sort_unstable();
            wanted.dedup();
            let set = crate::pull::uid_set(wanted.iter().copied());
            source
                .uid_fetch(
                    &[set],
                    &[FetchItem::Uid, FetchItem::Size, FetchItem::InternalDate, FetchItem::HeaderFields(&["SUBJECT"])],
                    None,
                    &mut |meta| {
                        let subject = meta.header.as_deref().map(header_value).unwrap_or_default();
                        described.insert(
                            meta.uid,
                            BigMessage {
                                folder: name.clone(),
                                uid: meta.uid,
                                size: meta.size.unwrap_or(0) as u64,
                                date: meta.internal_date.unwrap_or_default().trim().to_string(),
                                subject,
                            },
                        );
                        Ok(())
                    },
                )
                .await?;
        }
        if let Some((uid, size)) = largest
            && result.largest.as_ref().is_none_or(|l| size > l.size)
        {
            result.largest = described.get(&uid).cloned();
        }
        result.over_limit.extend(over.iter().filter_map(|u| described.get(u).cloned()));
        result.messages += count.messages;
        result.bytes += count.bytes;
        result.folders.push(count);
    }
    result.folders.sort_by(|a, b| a.source.cmp(&b.source));

    if result.target_room.is_some_and(|room| result.bytes > room) {
        result.verdict = Verdict::WillNotFit;
        result.problem = format!(
            "{} to copy, but only {} free on the target ({})",
            human_bytes(result.bytes),
            human_bytes(result.target_room.unwrap_or(0)),
            result.target_room_source
        );
    } else if !result.over_limit.is_empty() {
        result.verdict = Verdict::OverSizeLimit;
        result.problem = format!(
            "{} messages are larger than the target accepts ({}); they will be skipped unless the limit is raised",
            result.over_limit.len(),
            human_bytes(result.size_limit.unwrap_or(0))
        );
    }
    Ok(())
}

/// The left-out folders of a result, for one spreadsheet cell: `name (reason kind)` joined by `; `.
fn left_out_names(r: &CheckResult) -> String {
    r.excluded.iter().map(|f| format!("{} ({})", f.source, f.reason)).collect::<Vec<_>>().join("; ")
}

/// The value of a one-field header section, unfolded and decoded (RFC 2047) for display.
fn header_value(raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default().parse_headers(raw);
    parsed
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(raw).split_once(':').map(|(_, v)| v.trim().to_string()).unwrap_or_default())
}

/// Stores the result so the page and exports can show it later.
pub fn record(store: &Store, account: &Account, result: &CheckResult) -> Result<()> {
    let json = serde_json::to_string(result)?;
    let verdict = serde_json::to_value(result.verdict)?;
    let verdict = verdict.as_str().ok_or_else(|| anyhow::anyhow!("the check's verdict {:?} has no name", result.verdict))?;
    store.record_check_result(account.id, verdict, &json)
}

/// A human table of results.
pub fn table(results: &[CheckResult]) -> String {
    let mut out = String::new();
    // A certificate problem is one line per side, not one per account.
    for (verdict, side) in [(Verdict::SourceCertificate, "source"), (Verdict::TargetCertificate, "target")] {
        let untried: Vec<&CheckResult> = results.iter().filter(|r| r.verdict == verdict).collect();
        let Some(first) = untried.first() else { continue };
        let fp = first.certificate.as_ref().map(|c| c.sha256.as_str()).unwrap_or("FINGERPRINT");
        let about = first.certificate.as_ref().map_or(String::new(), |c| {
            let until = c.not_after.and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(|t| t.format("%Y-%m-%d").to_string());
            format!(
                " ({}; subject {}, issuer {}, valid until {}, SHA-256 {})",
                c.problem.map_or("not trusted", |p| p.words()),
                c.subject,
                c.issuer,
                until.as_deref().unwrap_or("unknown"),
                c.sha256
            )
        });
        out.push_str(&format!(
            "{side} server: certificate not trusted{about}; {} accounts not checked. If it is the right server, run \
             `postflytt setup --{side}-pin {fp}` and check again\n",
            untried.len()
        ));
    }
    for r in results.iter().filter(|r| !matches!(r.verdict, Verdict::SourceCertificate | Verdict::TargetCertificate)) {
        out.push_str(&format!(
            "{} -> {}: {}{}\n",
            r.account,
            r.target_account,
            r.verdict.words(),
            if r.problem.is_empty() { String::new() } else { format!(": {}", r.problem) }
        ));
        dav_lines(&mut out, r);
        if matches!(r.verdict, Verdict::SourceLoginFailed | Verdict::TargetLoginFailed) {
            continue;
        }
        out.push_str(&format!(
            "    {}{} messages, {}; target room: {}; size limit: {}\n",
            if r.incomplete { "at least " } else { "" },
            r.messages,
            human_bytes(r.bytes),
            r.target_room.map(human_bytes).unwrap_or_else(|| "unknown".into()),
            r.size_limit.map(human_bytes).unwrap_or_else(|| "none known".into()),
        ));
        if r.left_out_messages > 0 {
            out.push_str(&format!(
                "    left out by the operator's filter: {} messages, {}\n",
                r.left_out_messages,
                human_bytes(r.left_out_bytes)
            ));
        }
        if let Some(l) = &r.largest {
            out.push_str(&format!("    largest: {} in {} ({}, {:?})\n", human_bytes(l.size), l.folder, l.date, l.subject));
        }
        for f in &r.folders {
            out.push_str(&format!("    {:<28} -> {:<28} {:>7} msgs {:>10}\n", f.source, f.target, f.messages, human_bytes(f.bytes)));
        }
        for m in &r.over_limit {
            out.push_str(&format!("    over the limit: {} in {} ({}, {:?})\n", human_bytes(m.size), m.folder, m.date, m.subject));
        }
        for f in &r.excluded {
            let size = format!("{} msgs {}", f.messages, f.bytes.map_or_else(|| "size unknown".to_string(), human_bytes));
            out.push_str(&format!("    left out: {:<28} {size} ({})\n", f.source, f.reason));
        }
    }
    out
}

/// The account's calendars and contacts under its line in the table: the count (or what failed), then
/// each collection with its items and size, or left behind with its reason.
fn dav_lines(out: &mut String, r: &CheckResult) {
    let Some(dav) = &r.dav else { return };
    out.push_str(&format!("    {}\n", dav.line()));
    for c in &dav.collections {
        let kind = if c.kind == "addressbook" { "address book" } else { "calendar" };
        match &c.skipped {
            Some(reason) => out.push_str(&format!("    left out: {kind} {:?}: {}\n", c.name, crate::dav::check::skip_words(reason))),
            None => out.push_str(&format!("    {kind} {:?}: {} items, {}\n", c.name, c.items, human_bytes(c.bytes))),
        }
    }
}

/// Whether all accounts together fit the package's total size (`setup --quota-total`), from the
/// check's results: what they hold to move against the total.
#[derive(Debug, Clone, Serialize)]
pub struct PackageFit {
    pub quota_total_bytes: u64,
    /// What the measured accounts hold to move (after the operator's filter).
    pub bytes: u64,
    pub accounts_measured: usize,
    /// Accounts the check could not measure (whole or in part): the need is at least `bytes`.
    pub accounts_unmeasured: usize,
    pub fits: bool,
    pub left_bytes: u64,
    pub missing_bytes: u64,
}

impl PackageFit {
    /// From the latest result of each account (`results`) of the `accounts` in the migration: one
    /// without a result, whose logins failed or whose folders could not all be measured counts as
    /// unmeasured, so the need is "at least".
    pub fn of(results: &[CheckResult], quota_total: Option<u64>, accounts: usize) -> Option<PackageFit> {
        let total = quota_total.filter(|_| !results.is_empty())?;
        // Logged in on both sides: its bytes count (a lower bound when some folder was not measured).
        let logged_in = |r: &&CheckResult| {
            matches!(
                r.verdict,
                Verdict::Ready
                    | Verdict::WillNotFit
                    | Verdict::OverSizeLimit
                    | Verdict::DavSourceLoginFailed
                    | Verdict::DavTargetLoginFailed
            )
        };
        let bytes: u64 = results.iter().filter(logged_in).map(|r| r.bytes).sum();
        let measured = results.iter().filter(logged_in).filter(|r| !r.incomplete).count();
        let unmeasured = accounts.max(results.len()) - measured;
        Some(PackageFit {
            quota_total_bytes: total,
            bytes,
            accounts_measured: measured,
            accounts_unmeasured: unmeasured,
            fits: bytes <= total,
            left_bytes: total.saturating_sub(bytes),
            missing_bytes: bytes.saturating_sub(total),
        })
    }

    /// One sentence for the check's table and the operator.
    pub fn words(&self) -> String {
        let need = if self.accounts_unmeasured > 0 { "at least " } else { "" };
        let verdict = if self.fits {
            format!("fits, with {} left", human_bytes(self.left_bytes))
        } else {
            format!("does NOT fit: {} missing", human_bytes(self.missing_bytes))
        };
        let unmeasured = match self.accounts_unmeasured {
            0 => String::new(),
            1 => " (1 account could not be measured)".to_string(),
            n => format!(" ({n} accounts could not be measured)"),
        };
        format!(
            "All accounts together: {need}{} to move into a package of {} in total: {verdict}{unmeasured}",
            human_bytes(self.bytes),
            human_bytes(self.quota_total_bytes)
        )
    }
}

/// The package's total as `setup` says it.
pub fn quota_total_line(total: Option<u64>) -> String {
    match total {
        Some(t) => format!("Package in total: {} for all accounts together (the check says whether they fit)", human_bytes(t)),
        None => "Package in total: not set".to_string(),
    }
}

/// The columns of the check's CSV and workbook, one row per account.
const EXPORT_COLUMNS: [&str; 15] = [
    "account",
    "target account",
    "verdict",
    "problem",
    "messages",
    "bytes",
    "largest message bytes",
    "messages over limit",
    "folders left out",
    "messages left out",
    "messages left out by the filter",
    "calendars",
    "address books",
    "calendar and contact items",
    "DAV login",
];

/// The DAV login cell: empty without DAV servers, else `ok`, or which side failed.
fn dav_login_words(r: &CheckResult) -> &'static str {
    match r.dav.as_ref().map(|d| d.login_failed.as_deref()) {
        None => "",
        Some(None) => "ok",
        Some(Some("source")) => "failed on the old server",
        Some(Some(_)) => "failed on the new server",
    }
}

/// The DAV counts (calendars, address books, items) of a result whose DAV logins worked.
fn dav_counts(r: &CheckResult) -> Option<(usize, usize, u64)> {
    r.dav.as_ref().filter(|d| d.login_failed.is_none()).map(|d| (d.calendars(), d.address_books(), d.items()))
}

/// One row per account, for the customer to fix (see `export::csv` for the format).
pub fn csv(results: &[CheckResult]) -> Result<Vec<u8>> {
    let header = EXPORT_COLUMNS.map(String::from);
    let rows = results.iter().map(|r| {
        [
            r.account.clone(),
            r.target_account.clone(),
            r.verdict.words().to_string(),
            r.problem.clone(),
            r.messages.to_string(),
            r.bytes.to_string(),
            r.largest.as_ref().map(|l| l.size.to_string()).unwrap_or_default(),
            r.over_limit.len().to_string(),
            left_out_names(r),
            r.excluded.iter().map(|f| f.messages).sum::<u64>().to_string(),
            r.left_out_messages.to_string(),
            dav_counts(r).map(|c| c.0.to_string()).unwrap_or_default(),
            dav_counts(r).map(|c| c.1.to_string()).unwrap_or_default(),
            dav_counts(r).map(|c| c.2.to_string()).unwrap_or_default(),
            dav_login_words(r).to_string(),
        ]
    });
    crate::export::csv::write(std::iter::once(header).chain(rows))
}

/// The same rows as the CSV, as a workbook the customer opens in Excel, with a second sheet listing
/// every message over the target's size limit.
pub fn xlsx(results: &[CheckResult]) -> Result<Vec<u8>> {
    use crate::export::xlsx::{Cell, Sheet, write_xlsx};
    let text = |s: &str| Cell::Text(s.to_string());
    let mut accounts = vec![EXPORT_COLUMNS.iter().map(|h| text(h)).collect::<Vec<_>>()];
    let mut over = vec![["account", "folder", "date", "subject", "bytes"].iter().map(|h| text(h)).collect::<Vec<_>>()];
    for r in results {
        accounts.push(vec![
            text(&r.account),
            text(&r.target_account),
            text(r.verdict.words()),
            text(&r.problem),
            Cell::Number(r.messages as f64),
            Cell::Number(r.bytes as f64),
            r.largest.as_ref().map_or(Cell::Empty, |l| Cell::Number(l.size as f64)),
            Cell::Number(r.over_limit.len() as f64),
            text(&left_out_names(r)),
            Cell::Number(r.excluded.iter().map(|f| f.messages).sum::<u64>() as f64),
            Cell::Number(r.left_out_messages as f64),
            dav_counts(r).map_or(Cell::Empty, |c| Cell::Number(c.0 as f64)),
            dav_counts(r).map_or(Cell::Empty, |c| Cell::Number(c.1 as f64)),
            dav_counts(r).map_or(Cell::Empty, |c| Cell::Number(c.2 as f64)),
            text(dav_login_words(r)),
        ]);
        for m in &r.over_limit {
            over.push(vec![text(&r.account), text(&m.folder), text(&m.date), text(&m.subject), Cell::Number(m.size as f64)]);
        }
    }
    let sheets =
        [Sheet { name: "Check".into(), rows: accounts, header: true }, Sheet { name: "Over the limit".into(), rows: over, header: true }];
    write_xlsx(&sheets).map_err(|e| anyhow!("writing the workbook: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_decoding() {
        assert_eq!(header_value(b"Subject: =?utf-8?q?R=C3=A4kning?=\r\n\r\n"), "Räkning");
        assert_eq!(header_value(b"Subject: plain\r\n\r\n"), "plain");
    }

    fn dav(login_failed: Option<&str>, collections: &[(&str, u64, Option<&str>)]) -> crate::dav::check::DavCheck {
        crate::dav::check::DavCheck {
            problem: if login_failed.is_some() { "401 Unauthorized".into() } else { String::new() },
            login_failed: login_failed.map(str::to_string),
            collections: collections
                .iter()
                .map(|(kind, items, skipped)| crate::dav::check::CheckedCollection {
                    kind: kind.to_string(),
                    name: format!("{kind} {items}"),
                    colour: None,
                    items: *items,
                    bytes: 0,
                    skipped: skipped.map(str::to_string),
                })
                .collect(),
            target_has_calendars: true,
            target_has_address_books: true,
        }
    }

    fn ready() -> CheckResult {
        // A mail login failure, as `CheckResult::failed` makes it.
        CheckResult {
            account: "anna@kund.se".into(),
            target_account: "anna@kund.se".into(),
            verdict: Verdict::SourceLoginFailed,
            problem: String::new(),
            folders: Vec::new(),
            messages: 0,
            bytes: 0,
            largest: None,
            over_limit: Vec::new(),
            target_room: None,
            target_room_source: String::new(),
            size_limit: None,
            incomplete: true,
            certificate: None,
            left_out_messages: 0,
            left_out_bytes: 0,
            excluded: Vec::new(),
            dav: None,
        }
    }

    #[test]
    fn a_failed_dav_login_is_the_verdict_only_of_an_account_whose_mail_is_ready() {
        let mut mail_ready = ready();
        mail_ready.verdict = Verdict::Ready;
        mail_ready.incomplete = false;
        let r = with_dav(mail_ready.clone(), Some(dav(Some("source"), &[])));
        assert_eq!((r.verdict, r.problem.as_str()), (Verdict::DavSourceLoginFailed, "401 Unauthorized"));
        assert_eq!(r.verdict.words(), "calendar login failed on the old server");
        assert_eq!(with_dav(mail_ready.clone(), Some(dav(Some("target"), &[]))).verdict.words(), "calendar login failed on the new server");
        assert_eq!(serde_json::to_value(Verdict::DavTargetLoginFailed).unwrap(), "dav_target_login_failed");
        // A mail problem stays the verdict; the DAV part rides along.
        let r = with_dav(ready(), Some(dav(Some("source"), &[])));
        assert_eq!(r.verdict, Verdict::SourceLoginFailed);
        assert!(r.dav.is_some());
        assert_eq!(with_dav(mail_ready, None).verdict, Verdict::Ready);
    }

    #[test]
    fn the_table_and_the_export_say_the_dav_part() {
        let mut r = ready();
        r.verdict = Verdict::Ready;
        r.dav = Some(dav(
            None,
            &[("calendar", 400, None), ("calendar", 12, None), ("addressbook", 0, None), ("calendar", 9, Some("shared_by_other_owner"))],
        ));
        let table = table(std::slice::from_ref(&r));
        assert!(
            table.contains("    calendars and contacts: 2 calendars, 1 address book, 412 items, 1 shared or subscribed left out\n"),
            "{table}"
        );
        assert!(
            table.contains("    left out: calendar \"calendar 9\": shared with you by another user: moves with its owner's account\n"),
            "{table}"
        );
        let csv = String::from_utf8(csv(std::slice::from_ref(&r)).unwrap()).unwrap();
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().ends_with(";calendars;address books;calendar and contact items;DAV login"), "{csv}");
        assert!(lines.next().unwrap().ends_with(";2;1;412;ok"), "{csv}");
        r.dav = Some(dav(Some("target"), &[]));
        let csv = String::from_utf8(super::csv(&[r.clone()]).unwrap()).unwrap();
        assert!(csv.lines().nth(1).unwrap().ends_with(";;;;failed on the new server"), "{csv}");
        r.dav = None;
        let csv = String::from_utf8(super::csv(&[r]).unwrap()).unwrap();
        assert!(csv.lines().nth(1).unwrap().ends_with(";0;;;;"), "no DAV, empty cells: {csv}");
    }
}
