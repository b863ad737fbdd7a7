//! E-mail when something needs a person (optional; off until a relay is set): the check is done (with
//! the accounts to fix), a pass fails for an account, a domain's MX records flip to the new host, it is
//! safe to finish, and the migration is finished (with the customer report attached). Each notice is
//! sent once: its mark is claimed in the store before it goes out (`Store::claim_notice`), so a restart
//! never sends it again, and a lost send is not retried (at most once, never twice). The appliance calls
//! the event functions here from its own background threads; the send itself runs on a thread of its
//! own with a timeout (`mail`), and a failure is logged and shown in the status, never stops anything,
//! and never carries the relay's password (sealed in the store like every other secret, purged at
//! finish). Setup of the relay, sender and recipients is `change` (CLI and API); the words are `words`.

mod mail;
mod words;

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::check::CheckResult;
use crate::report::Lang;
use crate::secret::Secret;
use crate::store::{NotifyRows, Store, now};
use crate::sync::PassReport;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS on the submission port (587), required: the default.
    StartTls,
    /// TLS from the first byte (465).
    Tls,
    /// No TLS: only to a relay on this machine (loopback).
    Plain,
}

impl Security {
    pub fn parse(text: &str) -> Result<Security> {
        match text.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(Security::StartTls),
            "tls" | "implicit" => Ok(Security::Tls),
            "plain" => Ok(Security::Plain),
            other => bail!("the relay's security {other:?} is not known: use starttls (the default), tls or plain (loopback only)"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::Plain => "plain",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Security::StartTls => 587,
            Security::Tls => 465,
            Security::Plain => 25,
        }
    }
}

/// Whether `host` is this machine: an address in 127.0.0.0/8 or ::1, or the name localhost.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Everything a notice needs to go out, read from the store (the password opened from its seal).
pub struct Config {
    host: String,
    port: u16,
    security: Security,
    login: Option<String>,
    password: Option<Secret>,
    from: String,
    operator: Vec<String>,
    customer: Vec<String>,
    lang: Lang,
}

impl Config {
    /// The relay as set up, or None while notices are off (no relay, no sender, or nobody to tell).
    pub fn load(store: &Store) -> Result<Option<Config>> {
        let rows = store.notify_rows()?;
        let (Some(host), Some(from)) = (rows.host, rows.from) else { return Ok(None) };
        if rows.operator.is_empty() && rows.customer.is_empty() {
            return Ok(None);
        }
        let security = Security::parse(rows.security.as_deref().unwrap_or("starttls"))?;
        Ok(Some(Config {
            port: rows.port.unwrap_or(security.default_port()),
            host,
            security,
            login: rows.login,
            password: store.notify_password()?,
            from,
            operator: rows.operator,
            customer: rows.customer,
            lang: language(rows.language.as_deref()),
        }))
    }
}

fn language(text: Option<&str>) -> Lang {
    if text == Some("en") { Lang::En } else { Lang::Sv }
}

/// What `setup` changes; `None` leaves a value as it is. `off` removes every notice setting.
#[derive(Default)]
pub struct Change {
    pub off: bool,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<String>,
    pub login: Option<String>,
    pub password: Option<Secret>,
    pub from: Option<String>,
    pub operator: Option<Vec<String>>,
    pub customer: Option<Vec<String>>,
    pub language: Option<String>,
}

impl Change {
    /// The `notify` object of `POST /api/setup` (see docs/api.md); `null` switches notices off.
    pub fn from_json(value: &Value) -> Result<Change> {
        if value.is_null() {
            return Ok(Change { off: true, ..Change::default() });
        }
        let object = value.as_object().ok_or_else(|| anyhow!("notify must be an object (see docs/api.md) or null to switch e-mail off"))?;
        let mut change = Change::default();
        let text = |key: &str, v: &Value| -> Result<String> {
            v.as_str().map(|s| s.trim().to_string()).ok_or_else(|| anyhow!("notify.{key} must be a string"))
        };
        let list = |key: &str, v: &Value| -> Result<Vec<String>> {
            match v {
                Value::String(s) => Ok(split_addresses(s)),
                Value::Array(items) => items.iter().map(|i| text(key, i)).collect(),
                _ => bail!("notify.{key} must be a list of addresses"),
            }
        };
        for (key, v) in object {
            match key.as_str() {
                "host" => change.host = Some(text(key, v)?),
                "port" => {
                    let port = v.as_u64().and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0);
                    change.port = Some(port.ok_or_else(|| anyhow!("notify.port must be a port number (1 to 65535)"))?);
                }
                "security" => change.security = Some(text(key, v)?),
                "login" => change.login = Some(text(key, v)?),
                "password" => change.password = Some(Secret::new(v.as_str().ok_or_else(|| anyhow!("notify.password must be a string"))?)),
                "from" => change.from = Some(text(key, v)?),
                "operator" => change.operator = Some(list(key, v)?),
                "customer" => change.customer = Some(list(key, v)?),
                "language" => change.language = Some(text(key, v)?),
                other => bail!(
                    "notify.{other} is not a notice setting: use host, port, security, login, password, from, operator, customer, language"
                ),
            }
        }
        Ok(change)
    }
}

/// Addresses as people write them in one field: separated by commas, semicolons or spaces.
pub fn split_addresses(text: &str) -> Vec<String> {
    text.split([',', ';', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Applies a change after checking the whole result (nothing is stored when any part is refused):
/// addresses must be addresses, security known, plain only to loopback. Returns a line saying what
/// notices are now set up, for the CLI to print.
pub fn change(store: &Store, change: Change) -> Result<String> {
    if change.off {
        store.set_notify_rows(&NotifyRows::default(), Some(&Secret::default()))?;
        return Ok("e-mail notices: off".to_string());
    }
    let mut rows = store.notify_rows()?;
    let set = |slot: &mut Option<String>, value: Option<String>| {
        if let Some(v) = value {
            *slot = Some(v).filter(|v| !v.is_empty());
        }
    };
    set(&mut rows.host, change.host);
    set(&mut rows.security, change.security.map(|s| s.to_ascii_lowercase()));
    set(&mut rows.login, change.login);
    set(&mut rows.from, change.from);
    set(&mut rows.language, change.language);
    if change.port.is_some() {
        rows.port = change.port;
    }
    if let Some(list) = change.operator {
        rows.operator = list;
    }
    if let Some(list) = change.customer {
        rows.customer = list;
    }
    let security = Security::parse(rows.security.as_deref().unwrap_or("starttls"))?;
    if let Some(host) = &rows.host {
        if host.contains(|c: char| c.is_whitespace() || c == '/') {
            bail!("the relay {host:?} is not a host name or address");
        }
        if security == Security::Plain && !is_loopback(host) {
            bail!(
                "plain SMTP sends the relay's password and the report unencrypted: it is allowed only to a relay on this machine \
                 (127.0.0.1), not to {host}; use starttls (the default) or tls"
            );
        }
    }
    if let Some(lang) = &rows.language
        && lang != "sv"
        && lang != "en"
    {
        bail!("the notice language {lang:?} is not known: use sv (Swedish, the default) or en (English)");
    }
    for (what, address) in rows
        .from
        .iter()
        .map(|a| ("sender", a))
        .chain(rows.operator.iter().map(|a| ("operator", a)))
        .chain(rows.customer.iter().map(|a| ("customer", a)))
    {
        mail::check_address(address).map_err(|e| anyhow!("the {what} address {address:?} is not an e-mail address: {e}"))?;
    }
    if rows.security.is_none() && rows.host.is_some() {
        rows.security = Some(security.as_str().to_string());
    }
    store.set_notify_rows(&rows, change.password.as_ref())?;
    summary(store)
}

/// One line on what notices are set up ("e-mail notices: via smtp.example.se:587 (starttls) from ...").
pub fn summary(store: &Store) -> Result<String> {
    let rows = store.notify_rows()?;
    Ok(match (&rows.host, Config::load(store)?) {
        (None, _) => "e-mail notices: off (no relay: postflytt setup --smtp HOST:PORT)".to_string(),
        (Some(_), Some(c)) => format!(
            "e-mail notices: via {}:{} ({}{}) from {}; operator: {}; customer: {}; language {}",
            c.host,
            c.port,
            c.security.as_str(),
            if c.login.is_some() { ", with login" } else { "" },
            c.from,
            or_none(&c.operator),
            or_none(&c.customer),
            if c.lang == Lang::En { "en" } else { "sv" },
        ),
        (Some(_), None) => format!("e-mail notices: not yet on: {}", missing(&rows)),
    })
}

/// What `postflytt status` prints: the summary and the last send's result; None while no relay is set.
pub fn status_line(store: &Store) -> Result<Option<String>> {
    if store.notify_rows()?.host.is_none() {
        return Ok(None);
    }
    let mut line = summary(store)?;
    let last: Option<Value> = store.last_notice()?.and_then(|t| serde_json::from_str(&t).ok());
    if let Some(last) = last {
        let event = last["event"].as_str().unwrap_or("?");
        match last["error"].as_str() {
            Some(error) => line += &format!("\n    the last notice ({event}) was not sent: {error}"),
            None => line += &format!("\n    the last notice ({event}) was sent"),
        }
    }
    Ok(Some(line))
}

fn or_none(list: &[String]) -> String {
    if list.is_empty() { "nobody".to_string() } else { list.join(", ") }
}

fn missing(rows: &NotifyRows) -> String {
    if rows.from.is_none() {
        "the sender address is missing (--mail-from, or notify.from)".to_string()
    } else {
        "nobody to tell yet (--notify-operator / --notify-customer, or notify.operator / notify.customer)".to_string()
    }
}

/// The `notify` part of the status: whether mail is set up, to whom, and how the last send went.
/// Never the password (only whether one is stored).
pub fn status(store: &Store) -> Result<Value> {
    let rows = store.notify_rows()?;
    let configured = Config::load(store)?.is_some();
    let last: Value = store.last_notice()?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    let security = rows.security.as_deref().and_then(|s| Security::parse(s).ok()).unwrap_or(Security::StartTls);
    Ok(json!({
        "configured": configured,
        "needs": if configured || rows.host.is_none() { Value::Null } else { Value::String(missing(&rows)) },
        "relay": rows.host.as_ref().map(|h| json!({
            "host": h,
            "port": rows.port.unwrap_or(security.default_port()),
            "security": security.as_str(),
            "login": rows.login,
            "password_set": store.notify_password().ok().flatten().is_some(),
        })),
        "from": rows.from,
        "operator": rows.operator,
        "customer": rows.customer,
        "language": if language(rows.language.as_deref()) == Lang::En { "en" } else { "sv" },
        "last": last,
    }))
}

/// Who a letter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Operator,
    Customer,
}

/// One message to one audience: plain text, and perhaps the report as an HTML attachment.
pub struct Letter {
    pub audience: Audience,
    pub subject: String,
    pub body: String,
    pub attachment: Option<(String, String)>,
}

/// Sends a test message to every operator and customer address now, and says to whom it went.
pub fn send_test(store: &Store) -> Result<String> {
    let config = Config::load(store)?.ok_or_else(|| anyhow!("{}", summary_or_off(store)))?;
    let mut to = Vec::new();
    for audience in [Audience::Operator, Audience::Customer] {
        let (subject, body) = words::test(config.lang);
        let letter = Letter { audience, subject, body, attachment: None };
        if let Some(sent) = send_and_record(store, &config, "test", &letter)? {
            to.extend(sent);
        }
    }
    Ok(format!("test message sent to {}", to.join(", ")))
}

fn summary_or_off(store: &Store) -> String {
    summary(store).unwrap_or_else(|e| format!("{e:#}"))
}

/// Sends one letter, records the result for the status and returns the addresses it went to (None
/// when its audience has none). A failure is recorded and returned.
fn send_and_record(store: &Store, config: &Config, event: &str, letter: &Letter) -> Result<Option<Vec<String>>> {
    let to = match letter.audience {
        Audience::Operator => &config.operator,
        Audience::Customer => &config.customer,
    };
    if to.is_empty() {
        return Ok(None);
    }
    let result = mail::send(config, to, letter);
    let record = json!({
        "event": event, "at": now(), "to": to, "ok": result.is_ok(),
        "error": result.as_ref().err().map(|e| format!("{e:#}")),
    });
    if let Err(e) = store.set_last_notice(&record.to_string()) {
        log::warn!("e-mail notice {event}: cannot record the result: {e:#}");
    }
    match result {
        Ok(()) => {
            log::info!("e-mail notice {event} sent to {}", to.join(", "));
            Ok(Some(to.clone()))
        }
        Err(e) => Err(e.context(format!("e-mail notice {event} to {} not sent", to.join(", ")))),
    }
}

/// Sends `letters` for the notice `key` once: nothing when notices are off or the mark was already
/// claimed. `wait` sends on this thread (the finish job, whose process may end right after);
/// otherwise on a thread of its own so the caller's loop goes on.
fn deliver(dir: &Path, key: &str, wait: bool, config: Option<Config>, letters: impl FnOnce(&Store, &Config) -> Result<Vec<Letter>>) {
    let run = || -> Result<Option<(Config, Vec<Letter>)>> {
        let store = Store::open(dir)?;
        let Some(config) = config.map_or_else(|| Config::load(&store), |c| Ok(Some(c)))? else { return Ok(None) };
        if !store.claim_notice(key)? {
            return Ok(None);
        }
        let letters = letters(&store, &config)?;
        Ok(Some((config, letters)))
    };
    let (config, letters) = match run() {
        Ok(Some(work)) => work,
        Ok(None) => return,
        Err(e) => {
            log::warn!("e-mail notice {key}: {e:#}");
            return;
        }
    };
    let event = key.split(':').next().unwrap_or(key).to_string();
    let dir = dir.to_path_buf();
    let send = move || {
        let store = match Store::open(&dir) {
            Ok(s) => s,
            Err(e) => return log::warn!("e-mail notice {event}: {e:#}"),
        };
        for letter in &letters {
            if let Err(e) = send_and_record(&store, &config, &event, letter) {
                log::warn!("{e:#}");
            }
        }
    };
    if wait {
        send();
    } else if let Err(e) = crate::workers::spawn_thread("notify", send) {
        log::warn!("e-mail notice {key}: cannot start sending: {e}");
    }
}

/// The check is done: the operator gets the accounts whose verdict is not ready, with the reason.
pub fn check_done(dir: &Path, results: &[CheckResult]) {
    // Each check run is its own notice: two may end within the same second.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let key = format!("check:{nanos}");
    let results: Vec<words::CheckRow> =
        results.iter().map(|r| words::CheckRow { login: r.account.clone(), verdict: r.verdict, problem: r.problem.clone() }).collect();
    deliver(dir, &key, false, None, |_, c| {
        let (subject, body) = words::check_done(c.lang, &results);
        Ok(vec![Letter { audience: Audience::Operator, subject, body, attachment: None }])
    });
}

/// A pass is over: an account that failed is told to the operator once per failure streak (its mark
/// is forgotten when the account has a good pass again).
pub fn passes_done(dir: &Path, reports: &[PassReport]) {
    let forget = || -> Result<()> {
        let store = Store::open(dir)?;
        for r in reports.iter().filter(|r| r.error.is_none()) {
            store.forget_notice(&format!("pass_failed:{}", r.account))?;
        }
        Ok(())
    };
    if let Err(e) = forget() {
        log::warn!("e-mail notices: {e:#}");
    }
    for r in reports {
        if let Some(error) = &r.error {
            deliver(dir, &format!("pass_failed:{}", r.account), false, None, |_, c| {
                let (subject, body) = words::pass_failed(c.lang, &r.account, error);
                Ok(vec![Letter { audience: Audience::Operator, subject, body, attachment: None }])
            });
        }
    }
}

/// A domain's MX records now point at the new host (since `flipped_at`): both are told.
pub fn mx_flipped(dir: &Path, domain: &str, flipped_at: i64) {
    deliver(dir, &format!("mx_flipped:{domain}:{flipped_at}"), false, None, |_, c| {
        let (subject, body) = words::mx_flipped(c.lang, domain, flipped_at);
        Ok([Audience::Operator, Audience::Customer]
            .into_iter()
            .map(|audience| Letter { audience, subject: subject.clone(), body: body.clone(), attachment: None })
            .collect())
    });
}

/// Every domain flipped and the old server has been quiet long enough: the operator may finish.
pub fn safe_to_finish(dir: &Path, quiet_seconds: i64) {
    deliver(dir, "safe_to_finish", false, None, |_, c| {
        let (subject, body) = words::safe_to_finish(c.lang, quiet_seconds);
        Ok(vec![Letter { audience: Audience::Operator, subject, body, attachment: None }])
    });
}

/// The migration is finished: the report goes to both, in the notice language. `config` was read
/// before the purge deleted the relay's password. Sent on the caller's thread.
pub fn finished(dir: &Path, config: Option<Config>, problems: &[String]) {
    deliver(dir, "finished", true, config, |store, c| {
        let report = crate::report::build(store)?;
        let html = report.html(c.lang);
        let name = if c.lang == Lang::En { "postflytt-report.html" } else { "postflytt-rapport.html" }.to_string();
        let mut letters = Vec::new();
        for audience in [Audience::Customer, Audience::Operator] {
            let (subject, body) = words::finished(c.lang, audience, problems);
            letters.push(Letter { audience, subject, body, attachment: Some((name.clone(), html.clone())) });
        }
        Ok(letters)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_and_loopback() {
        assert_eq!(Security::parse("STARTTLS").unwrap(), Security::StartTls);
        assert_eq!(Security::parse("tls").unwrap().default_port(), 465);
        assert!(Security::parse("ssl").unwrap_err().to_string().contains("use starttls (the default), tls or plain"));
        for (host, loopback) in [("127.0.0.1", true), ("127.9.9.9", true), ("::1", true), ("[::1]", true), ("localhost", true)] {
            assert_eq!(is_loopback(host), loopback, "{host}");
        }
        for host in ["10.0.0.1", "smtp.example.se", "localhost.example.se"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn setup_refuses_with_a_sentence_and_stores_nothing_then() {
        let dir = std::env::temp_dir().join(format!("pf-notify-change-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let plain = Change { host: Some("smtp.example.se".into()), security: Some("plain".into()), ..Change::default() };
        let err = change(&store, plain).unwrap_err().to_string();
        assert!(err.contains("allowed only to a relay on this machine"), "{err}");
        let bad = Change { host: Some("smtp.example.se".into()), operator: Some(vec!["drift at example".into()]), ..Change::default() };
        let err = change(&store, bad).unwrap_err().to_string();
        assert!(err.contains("the operator address \"drift at example\" is not an e-mail address"), "{err}");
        assert_eq!(store.notify_rows().unwrap(), NotifyRows::default(), "nothing stored");
        let line = change(&store, Change { host: Some("smtp.example.se".into()), ..Change::default() }).unwrap();
        assert!(line.contains("not yet on: the sender address is missing"), "{line}");
        let good = Change {
            from: Some("flytt@example.se".into()),
            operator: Some(split_addresses("drift@example.se; jour@example.se")),
            password: Some(Secret::new("hemligt")),
            ..Change::default()
        };
        let line = change(&store, good).unwrap();
        assert!(
            line.contains("via smtp.example.se:587 (starttls) from flytt@example.se; operator: drift@example.se, jour@example.se"),
            "{line}"
        );
        let s = status(&store).unwrap();
        assert_eq!(s["configured"], true);
        assert_eq!(s["relay"]["password_set"], true);
        assert!(!s.to_string().contains("hemligt"));
        let json = Change::from_json(&json!({"host": "x", "colour": "red"})).err().unwrap().to_string();
        assert!(json.contains("notify.colour is not a notice setting"), "{json}");
        change(&store, Change::from_json(&Value::Null).unwrap()).unwrap();
        assert_eq!(status(&store).unwrap()["configured"], false);
        assert!(store.notify_password().unwrap().is_none(), "off forgets the password");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failing_account_is_told_once_per_streak() {
        let dir = std::env::temp_dir().join(format!("pf-notify-streak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let report = |error: Option<&str>| PassReport {
            account: "bo@kund.se".into(),
            folders: 0,
            pull: Default::default(),
            push: Default::default(),
            folder_errors: Vec::new(),
            throttled: 0,
            dav: None,
            error: error.map(str::to_string),
            seconds: 0.0,
            repaired: 0,
            mirror: Default::default(),
            held: None,
        };
        // Off: nothing is claimed, so a relay set up later still hears of the next failure.
        passes_done(&dir, &[report(Some("login refused"))]);
        assert!(!store.notice_sent("pass_failed:bo@kund.se").unwrap());
        // A relay that hangs up at once: each send is one connection, counted here.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sends = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&sends);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let sends_after = |n: usize| {
            let started = std::time::Instant::now();
            while sends.load(std::sync::atomic::Ordering::SeqCst) < n && started.elapsed().as_secs() < 2 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            sends.load(std::sync::atomic::Ordering::SeqCst)
        };
        let relay = Change {
            host: Some("127.0.0.1".into()),
            port: Some(port),
            security: Some("plain".into()),
            from: Some("flytt@example.se".into()),
            operator: Some(vec!["drift@example.se".into()]),
            ..Change::default()
        };
        change(&store, relay).unwrap();
        passes_done(&dir, &[report(Some("login refused"))]);
        assert_eq!(sends_after(1), 1, "the first failure is told");
        passes_done(&dir, &[report(Some("login refused"))]);
        assert_eq!(sends_after(2), 1, "a second failure in the same streak is not");
        passes_done(&dir, &[report(None)]);
        passes_done(&dir, &[report(Some("login refused"))]);
        assert_eq!(sends_after(2), 2, "after a good pass, a new failure is told again");
        let last: Value = serde_json::from_str(&store.last_notice().unwrap().unwrap()).unwrap();
        assert_eq!(last["event"], "pass_failed");
        assert_eq!(last["ok"], false, "the relay hung up: {last}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
