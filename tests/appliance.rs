//! The appliance end to end through its HTTP API, as staff and customers use it: `postflytt serve`
//! against real Dovecot servers and a dnsmasq answering MX queries on loopback. Setup, spreadsheet
//! upload, check, passes on an interval, new mail arriving on the next pass, the MX flip and the quiet
//! period, finish (verification, report, purge: no password or staged mail left in the database file),
//! and a clean stop on SIGTERM. Also every action endpoint without a token, with the viewer code and
//! with a wrong token.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use common::{Dovecot, Layout};
use serde_json::{Value, json};

use common::Dnsmasq;
use common::web::{Response as Reply, http};

struct Serve {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Serve {
    fn start(data: &Path, dns_port: u16) -> Serve {
        Serve::start_logging(data, dns_port, Stdio::piped())
    }

    /// `start`, with the server's log (stderr) going to `log` (a file the test reads afterwards).
    fn start_logging(data: &Path, dns_port: u16, log: Stdio) -> Serve {
        let port = common::free_port();
        let child = Command::new(common::postflytt_bin())
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("POSTFLYTT_RESOLVER", format!("127.0.0.1:{dns_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start serve");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Serve { child, port, data: data.to_path_buf() }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("operator-token")).expect("token").trim().to_string()
    }

    fn code(&self) -> String {
        std::fs::read_to_string(self.data.join("viewer-code")).expect("code").trim().to_string()
    }

    fn op(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let auth = format!("Bearer {}", self.token());
        http(self.port, method, path, &[("Authorization", &auth)], body)
    }

    fn status(&self) -> Value {
        let code = self.code();
        let r = http(self.port, "GET", "/api/status", &[("X-Viewer-Code", &code)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Polls the status until `done` holds (or fails after `secs`).
    fn wait_for(&self, what: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let s = self.status();
            if done(&s) {
                return s;
            }
            assert!(started.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}; status:\n{s:#}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count_in_file(path: &Path, needle: &[u8]) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn whole_migration_through_the_api() {
    let source = Dovecot::start(Layout::OldHost, &[("alice@kund.se", "gammalt-Lösen1"), ("bo@kund.se", "gammalt-Lösen2")]);
    let target = Dovecot::start(Layout::Target, &[("alice@kund.se", "nytt-Lösen1"), ("bo@kund.se", "nytt-Lösen2")]);
    let mut r = source.reader("alice@kund.se");
    fixture::ensure_folders(&mut r, &["INBOX.Skickat", "INBOX.Kunder"]);
    fixture::load(&mut r, &fixture::bulk("INBOX", 12, 1, 800..3000));
    fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 6, 2, 800..3000));
    let marker = b"Unik-staging-markor-4711";
    let body = [b"From: x@kund.se\r\nSubject: markor\r\nMessage-ID: <markor@kund.se>\r\n\r\n".as_slice(), marker, b"\r\n"].concat();
    r.append("INBOX.Skickat", &["\\Seen"], Some("01-Feb-2024 10:00:00 +0100"), &body);
    drop(r);
    fixture::load(&mut source.reader("bo@kund.se"), &fixture::bulk("INBOX", 5, 3, 500..900));

    let dns_port = common::free_port();
    let mut dns = Dnsmasq::start(dns_port, &[("kund.se", "mx.gammal.example")]);
    let data = common::fresh_dir("pf-serve");
    let serve = Serve::start(&data, dns_port);
    let token = serve.token();
    let code = serve.code();
    assert_eq!(code.len(), 11, "two groups of five: {code}");
    let page = http(serve.port, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<html"), "the page is served");

    // Setup through the API.
    let setup = json!({
        "source": {"host": "127.0.0.1", "port": source.port(), "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": target.tls_port(), "tls": "implicit", "pin_sha256": target.cert_sha256_fingerprint()},
        "target_mx": ["mx.ny.example"],
        "pass_interval_seconds": 2,
        "quiet_period_seconds": 3,
        "mx_interval_seconds": 1,
    });
    let r = serve.op("POST", "/api/setup", setup.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let s = serve.status();
    assert_eq!(s["phase"], "setup");
    assert_eq!(s["next_step"], "import_accounts");
    let statuses = |s: &Value| -> Vec<String> {
        s["accounts"].as_array().expect("accounts").iter().map(|a| a["status"].as_str().unwrap_or("?").to_string()).collect()
    };

    // The customer's spreadsheet, as Swedish Excel saves it.
    let csv = "\u{feff}E-post;Lösenord;Nytt lösenord;Alias\r\nalice@kund.se;gammalt-Lösen1;nytt-Lösen1;info@kund.se\r\nbo@kund.se;gammalt-Lösen2;nytt-Lösen2;\r\n";
    let r = serve.op("POST", "/api/accounts?name=konton.csv", csv.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["added"], 2);
    let s = serve.status();
    assert_eq!(statuses(&s), ["not_checked", "not_checked"], "imported, nothing checked: {s:#}");
    assert_eq!(s["accounts"][0]["percent"], Value::Null, "no percentage before any total is known");
    let bad = serve.op("POST", "/api/accounts?name=trasig.csv", b"Namn;Telefon\r\nx;y\r\n");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]["message"].as_str().unwrap_or("").contains("column"), "{}", bad.text());
    // Issue 16 #11: the Swedish page gets the problems in Swedish (the page sends Accept-Language: sv).
    let twice = "E-post;Lösenord\r\nanna@kund.se;x\r\nanna@kund.se;y\r\n";
    let bearer = format!("Bearer {token}");
    let sv = http(
        serve.port,
        "POST",
        "/api/accounts?name=dubbel.csv",
        &[("Authorization", &bearer), ("Accept-Language", "sv-SE,sv;q=0.9")],
        twice.as_bytes(),
    );
    assert_eq!(sv.status, 400, "{}", sv.text());
    let said = sv.json()["error"]["message"].as_str().unwrap_or("").to_string();
    assert!(said.contains("rad 3") && said.contains("inloggningen \"anna@kund.se\" finns också på rad 2"), "{said}");
    let en = http(
        serve.port,
        "POST",
        "/api/accounts?name=dubbel.csv",
        &[("Authorization", &bearer), ("Accept-Language", "en")],
        twice.as_bytes(),
    );
    assert!(en.json()["error"]["message"].as_str().unwrap_or("").contains("is also on row 2"), "{}", en.text());

    // Check, then passes.
    assert_eq!(serve.op("POST", "/api/check", b"{}").status, 202);
    let s = serve.wait_for("the check", 60, |s| s["check"]["running"] == false && s["totals"]["ready"] == 2);
    assert_eq!(s["next_step"], "start_passes", "{s:#}");
    // Issue 16 #3: the rows agree with the check (they said "Not checked" beside "all ready").
    assert_eq!(statuses(&s), ["ready", "ready"], "{s:#}");
    assert_eq!(s["accounts"][0]["percent"], 0.0, "the check counted the mail: a percentage is known");
    assert_eq!(s["totals"]["eta_seconds"], Value::Null, "no time left before a pass has a speed");
    assert_eq!(serve.op("POST", "/api/passes/start", b"{}").status, 200);
    // The first pass: wait_sync while it copies (issue 16 #2: the page had no words for it).
    let s =
        serve.wait_for("the first pass to start", 60, |s| s["passes"]["count"].as_i64().unwrap_or(0) >= 1 || s["passes"]["active"] == true);
    assert!(["wait_sync", "switch_mx"].contains(&s["next_step"].as_str().unwrap_or("")), "{s:#}");
    serve.wait_for("the first pass", 60, |s| s["totals"]["pushed_messages"] == 24);
    let s = serve.wait_for("the rows to say up to date", 30, |s| statuses(s).iter().all(|x| x == "up_to_date"));
    assert_eq!(s["accounts"][0]["percent"], 100.0, "up to date is 100 %: {s:#}");
    assert_eq!(s["next_step"], "switch_mx", "{s:#}");
    let alice = s["accounts"].as_array().and_then(|a| a.iter().find(|x| x["login"] == "alice@kund.se")).expect("alice").clone();
    assert_eq!(alice["staged_messages"], 19);
    assert_eq!(target.reader("alice@kund.se").fetch_all("Sent").len(), 1, "Skickat arrived as Sent");
    // The MX watch runs on its own clock (every second here); wait for its first look at kund.se.
    let s = serve.wait_for("the MX watch", 30, |s| s["domains"][0]["domain"] == "kund.se");
    assert_eq!(s["domains"][0]["points_at_target"], false, "{s:#}");

    // New mail on the old server arrives with the next pass.
    source.reader("bo@kund.se").append("INBOX", &[], None, b"From: ny@kund.se\r\nSubject: ny\r\n\r\nny post\r\n");
    serve.wait_for("the new message", 60, |s| s["totals"]["pushed_messages"] == 25);
    assert_eq!(target.reader("bo@kund.se").fetch_all("INBOX").len(), 6);

    // Issue 17: until the switch every account mirrors; the operator says Bo's users switched first.
    let mirror = |s: &Value, login: &str| {
        let a = s["accounts"].as_array().and_then(|a| a.iter().find(|x| x["login"] == login)).cloned().unwrap_or_default();
        (a["mirror"].as_str().unwrap_or("?").to_string(), a["switched_by"].clone(), a["switched_at"].clone())
    };
    assert_eq!(mirror(&serve.status(), "alice@kund.se"), ("mirroring".to_string(), Value::Null, Value::Null));
    let r = serve.op("POST", "/api/switched", br#"{"accounts": ["bo@kund.se"]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let bo_at = r.json()["accounts"][0]["switched_at"].clone();

    // The MX record flips to the new host; after the quiet period it is safe to finish.
    drop(dns);
    dns = Dnsmasq::start(dns_port, &[("kund.se", "mx.ny.example")]);
    let s = serve.wait_for("the MX flip", 30, |s| s["domains"][0]["points_at_target"] == true);
    assert!(s["domains"][0]["flipped_at"].as_i64().is_some(), "{s:#}");
    // The flip switches the domain's accounts at its time; Bo's word came first and stays.
    let s = serve.wait_for("the switch by MX", 10, |s| mirror(s, "alice@kund.se").0 == "switched");
    assert_eq!(mirror(&s, "alice@kund.se"), ("switched".to_string(), json!("mx"), s["domains"][0]["flipped_at"].clone()), "{s:#}");
    assert_eq!(mirror(&s, "bo@kund.se"), ("switched".to_string(), json!("operator"), bo_at), "{s:#}");
    let s = serve.wait_for("safe to finish", 30, |s| s["safe_to_finish"] == true);
    assert_eq!(s["phase"], "draining");
    assert_eq!(s["next_step"], "finish");
    assert_eq!(s["report_available"], false, "no final report before finish");

    // Finish: last pass, verification, report, purge.
    let r = serve.op("POST", "/api/finish", b"{}");
    assert_eq!(r.status, 400, "finish needs a confirmation");
    assert_eq!(serve.op("POST", "/api/finish", br#"{"confirm": true}"#).status, 202);
    let s = serve.wait_for("finish", 90, |s| s["finished_at"].as_i64().is_some());
    assert_eq!(s["phase"], "finished");
    // Issue 16 #1: the page offers the report only when the status says it exists.
    assert_eq!(s["report_available"], true, "the report is offered once finished: {s:#}");
    let report = http(serve.port, "GET", "/api/report", &[("X-Viewer-Code", &code)], b"");
    assert_eq!(report.status, 200);
    let report = report.json();
    let text = report.to_string();
    assert!(text.contains("alice@kund.se") && text.contains("bo@kund.se"), "{report:#}");
    let html = http(serve.port, "GET", &format!("/report?code={code}&lang=en"), &[], b"");
    assert_eq!(html.status, 200);
    assert!(html.text().contains("alice@kund.se"));
    let csv = http(serve.port, "GET", "/api/report?format=csv", &[("X-Viewer-Code", &code)], b"");
    assert!(csv.text().contains("alice@kund.se"));

    // The purge: no password, no staged mail anywhere in the database files (checked independently).
    let db = data.join("postflytt.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("open db");
    let with_passwords: i64 = conn
        .query_row("SELECT count(*) FROM account WHERE source_password IS NOT NULL OR target_password IS NOT NULL", [], |r| r.get(0))
        .expect("q");
    assert_eq!(with_passwords, 0);
    drop(conn);
    let spooled: Vec<_> = std::fs::read_dir(data.join("spool")).expect("the spool directory").map(|e| e.expect("entry").path()).collect();
    assert!(spooled.is_empty(), "staged copies left after the purge: {spooled:?}");
    for file in ["postflytt.sqlite", "postflytt.sqlite-wal"] {
        assert_eq!(count_in_file(&data.join(file), marker), 0, "staged mail left in {file}");
        assert_eq!(count_in_file(&data.join(file), "gammalt-Lösen1".as_bytes()), 0);
    }
    // Passes cannot start again after finishing.
    assert_eq!(serve.op("POST", "/api/passes/start", b"{}").status, 409);

    // No response ever carried a password or the operator token.
    let status_text = serve.status().to_string();
    for secret in ["gammalt-Lösen1", "nytt-Lösen1", token.as_str()] {
        assert!(!status_text.contains(secret));
        assert!(!text.contains(secret));
    }

    // SIGTERM stops the appliance cleanly.
    let pid = serve.child.id().to_string();
    let mut serve = serve;
    Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    let started = Instant::now();
    loop {
        if let Some(status) = serve.child.try_wait().expect("wait") {
            assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(dns);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn actions_need_the_operator_token() {
    let dns_port = common::free_port();
    let data = common::fresh_dir("pf-serve-auth");
    let serve = Serve::start(&data, dns_port);
    let code = serve.code();
    let actions = [
        ("POST", "/api/setup"),
        ("POST", "/api/accounts?name=a.csv"),
        ("POST", "/api/check"),
        ("POST", "/api/passes/start"),
        ("POST", "/api/passes/stop"),
        ("POST", "/api/passes/interval"),
        ("POST", "/api/finish"),
        ("DELETE", "/api/accounts/a%40kund.se"),
        ("POST", "/api/accounts/a%40kund.se/pause"),
        ("POST", "/api/accounts/a%40kund.se/resume"),
        ("POST", "/api/accounts/a%40kund.se/sync"),
        ("POST", "/api/accounts/a%40kund.se/passwords"),
        ("POST", "/api/switched"),
    ];
    for (method, path) in actions {
        let none = http(serve.port, method, path, &[], b"{}");
        assert_eq!(none.status, 401, "{method} {path} without a token: {}", none.text());
        assert!(none.json()["error"]["message"].as_str().is_some_and(|m| m.contains("operator token")));
        let viewer = http(serve.port, method, path, &[("X-Viewer-Code", &code)], b"{}");
        assert_eq!(viewer.status, 403, "{method} {path} with the viewer code");
        let wrong = http(serve.port, method, path, &[("Authorization", "Bearer not-the-token")], b"{}");
        assert_eq!(wrong.status, 403, "{method} {path} with a wrong token");
        assert!(!wrong.text().contains(&serve.token()));
    }
    for path in ["/api/status", "/api/check", "/api/report"] {
        assert_eq!(http(serve.port, "GET", path, &[], b"").status, 401, "GET {path} without a code");
        assert_eq!(http(serve.port, "GET", path, &[("X-Viewer-Code", "ABCDE-22222")], b"").status, 403, "GET {path} with a wrong code");
        assert_eq!(http(serve.port, "GET", path, &[("X-Viewer-Code", &code)], b"").status, 200, "GET {path} with the viewer code");
    }
    // Repeated wrong credentials are refused for a while (429). While they are, no code is even
    // compared (the right one gets 429 too); the operator token still works, so staff can act.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(http(serve.port, "GET", "/api/status", &[("X-Viewer-Code", "ABCDE-22222")], b"").status);
    }
    assert_eq!(statuses.last(), Some(&429), "guessing is stopped: {statuses:?}");
    assert_eq!(http(serve.port, "GET", "/api/status", &[("X-Viewer-Code", &code)], b"").status, 429);
    assert_eq!(serve.op("GET", "/api/status", b"").status, 200);
    let _ = std::fs::remove_dir_all(&data);
}

/// Microsoft 365 set up through the API as through the CLI: the kinds and the app registration are
/// stored, Exchange Online's host is filled in, the status shows the kinds, and the client secret
/// appears in no answer and in no file of the data directory (it is stored sealed). A wrong kind is a
/// clear 400.
#[test]
fn microsoft_365_is_set_up_through_the_api_and_its_secret_is_never_shown() {
    let dns_port = common::free_port();
    let data = common::fresh_dir("pf-serve-m365");
    let serve = Serve::start(&data, dns_port);
    let secret = "Qr5~Vx8.Ty_u3ZaBc4De9Fg1Hi6Jk0Lm7No2Pq~S";
    let setup = json!({
        "target_kind": "m365",
        "target_m365": {"tenant": "3f6b2c1a-9d4e-4b7a-8c21-5e0f9a7d6b13", "client_id": "b7e1d0c2-4a5f-4e3b-9c8d-1f2a3b4c5d6e", "client_secret": secret},
        "source": {"host": "imap.gammal.example", "port": 993, "tls": "implicit"},
    });
    let r = serve.op("POST", "/api/setup", setup.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains(secret));
    let status = serve.status();
    assert_eq!(status["target_kind"], "m365", "{status}");
    assert_eq!(status["source_kind"], "imap", "{status}");
    assert_eq!(status["target"]["host"], "outlook.office365.com", "{status}");
    assert!(!status.to_string().contains(secret));
    let bad = serve.op("POST", "/api/setup", br#"{"source_kind": "pop3"}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.json()["error"]["message"].as_str().is_some_and(|m| m.contains("source_kind")), "{}", bad.text());
    for entry in std::fs::read_dir(&data).expect("data dir").flatten() {
        assert_eq!(count_in_file(&entry.path(), secret.as_bytes()), 0, "the secret is readable in {}", entry.path().display());
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// The staging limit as staff set and read it (issue 15): through the API and through the CLI on the
/// same data directory while the appliance runs, each side seeing what the other set; the status
/// says whether the limit is the operator's or the default; junk and sizes too small for a window of
/// messages are refused with 400 and a sentence (the CLI with exit 1 and the same sentence), and a
/// refused request stores nothing of itself.
#[test]
fn staging_limit_is_set_and_read_through_the_api_and_the_cli_and_junk_is_refused() {
    const MIB: u64 = 1 << 20;
    let dns_port = common::free_port();
    let data = common::fresh_dir("pf-serve-staging");
    let serve = Serve::start(&data, dns_port);
    let cli = |args: &[&str]| {
        let out = Command::new(common::postflytt_bin()).arg("--data").arg(&data).args(args).output().expect("run postflytt");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let limit = |s: &Value| (s["staging_limit_bytes"].as_u64(), s["staging_limit_set_by"].as_str().map(str::to_string));

    // The default: the smaller of 2 GiB and a quarter of the free disk; staging holds the schema.
    let s = serve.status();
    let (default, by) = limit(&s);
    assert!(default.is_some_and(|d| d > 0 && d <= 2 << 30), "{s:#}");
    assert_eq!(by.as_deref(), Some("default"));
    assert!(s["staging_used_bytes"].as_u64().is_some_and(|u| u > 0), "{s:#}");
    let (code, text) = cli(&["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(default: a quarter of the free disk, at most 2.0 GB)") && text.starts_with("Staging: "), "{text}");

    // Set through the API, as a size string and as bytes.
    for (given, bytes) in [(json!("48M"), 48 * MIB), (json!(64 * MIB), 64 * MIB)] {
        let r = serve.op("POST", "/api/setup", json!({"staging_limit": given}).to_string().as_bytes());
        assert_eq!(r.status, 200, "{given}: {}", r.text());
        assert_eq!(limit(&serve.status()), (Some(bytes), Some("operator".to_string())), "{given}");
    }
    let (_, text) = cli(&["status"]);
    assert!(text.contains(" of 64.0 MB (set by the operator)"), "the CLI reads what the API set:\n{text}");

    // Junk and too small: 400 with a sentence saying why, and the limit stays.
    for (given, says) in [
        (
            json!("8M"),
            "staging_limit: a staging limit of 8.0 MB is too small: staging must hold at least 16.0 MB so that a window of messages fits",
        ),
        (json!(0), "staging_limit: a staging limit of 0 would let no message through"),
        (json!("0"), "would let no message through"),
        (json!(MIB), "1.0 MB is too small"),
        (json!("lots"), "staging_limit: \"lots\" is not a size: write e.g. 35M or 50G"),
        (json!("5X"), "unknown unit"),
        (json!(-5), "is not a number of bytes"),
        (json!(1.5), "is not a number of bytes"),
        (json!(true), "staging_limit must be a size like \"2G\" or a number of bytes, or \"auto\" for the default"),
        (json!(["2G"]), "must be a size like"),
    ] {
        let r = serve.op("POST", "/api/setup", json!({"staging_limit": given}).to_string().as_bytes());
        assert_eq!(r.status, 400, "{given}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(says), "{given}: {message}");
        assert_eq!(limit(&serve.status()).0, Some(64 * MIB), "{given} changed the limit");
    }
    // A refused limit keeps the rest of the request from being stored too.
    let r =
        serve.op("POST", "/api/setup", json!({"source": {"host": "imap.gammal.example"}, "staging_limit": "1M"}).to_string().as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(serve.status()["source"], Value::Null, "the source was stored although the request was refused");

    // The CLI on the same data directory while the appliance runs: the API reads what it set.
    let (code, text) = cli(&["setup", "--staging-limit", "32M"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(" of 32.0 MB (set by the operator)"), "{text}");
    assert_eq!(limit(&serve.status()), (Some(32 * MIB), Some("operator".to_string())));
    for (given, says) in [
        ("1M", "--staging-limit 1M: a staging limit of 1.0 MB is too small: staging must hold at least 16.0 MB"),
        ("0", "would let no message through"),
        ("big", "\"big\" is not a size"),
    ] {
        let (code, text) = cli(&["setup", "--staging-limit", given]);
        assert_eq!(code, Some(1), "{given} must be refused:\n{text}");
        assert!(text.contains(says) && !text.contains("panicked"), "{given}:\n{text}");
    }
    assert_eq!(limit(&serve.status()).0, Some(32 * MIB), "a refused --staging-limit changed the limit");

    // Back to the default: auto from the CLI, and auto or null from the API.
    let (code, text) = cli(&["setup", "--staging-limit", "auto"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(default: a quarter of the free disk"), "{text}");
    assert_eq!(limit(&serve.status()).1.as_deref(), Some("default"));
    for back in [json!("auto"), Value::Null] {
        assert_eq!(serve.op("POST", "/api/setup", br#"{"staging_limit": "20M"}"#).status, 200);
        let r = serve.op("POST", "/api/setup", json!({"staging_limit": back}).to_string().as_bytes());
        assert_eq!(r.status, 200, "{back}: {}", r.text());
        assert_eq!(limit(&serve.status()).1.as_deref(), Some("default"), "{back}");
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// `openssl x509 -enddate` of a Dovecot's certificate as Unix seconds, read independently of postflytt.
fn cert_not_after(dovecot: &Dovecot) -> i64 {
    let out = Command::new("openssl").args(["x509", "-noout", "-enddate", "-in"]).arg(dovecot.cert_path()).output().expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout);
    let date = text.trim().strip_prefix("notAfter=").expect("notAfter=");
    chrono::NaiveDateTime::parse_from_str(date, "%b %e %H:%M:%S %Y GMT").expect("openssl's date").and_utc().timestamp()
}

/// Issue 16 #4, setup checks itself: saving a side whose certificate is self-signed answers with the
/// certificate (subject, expiry, the fingerprint `openssl x509` computes) and its kind of problem; the
/// check then shows one certificate problem per side and no login failure (and no account even tries
/// to log in: the old server's log has no login); the customer sees no OpenSSL words; trusting the
/// fingerprint as the page's button does (the pin alone) makes the check pass.
#[test]
fn a_self_signed_certificate_is_one_setup_problem_and_trusting_it_makes_the_check_pass() {
    let users = [("alice@kund.se", "gammalt-1"), ("bo@kund.se", "gammalt-2")];
    let source = Dovecot::start(Layout::OldHost, &users);
    let target = Dovecot::start(Layout::Target, &[("alice@kund.se", "nytt-1"), ("bo@kund.se", "nytt-2")]);
    let data = common::fresh_dir("pf-serve-cert");
    let serve = Serve::start(&data, common::free_port());
    let fingerprint = source.cert_sha256_fingerprint().replace(':', "").to_ascii_lowercase();
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");

    let setup = json!({
        "source": {"host": "127.0.0.1", "port": source.tls_port(), "tls": "implicit"},
        "target": {"host": "127.0.0.1", "port": target.port(), "tls": "plain"},
    });
    let r = serve.op("POST", "/api/setup", setup.to_string().as_bytes());
    assert_eq!(r.status, 200, "stored although its test failed: {}", r.text());
    let answer = r.json();
    let test = &answer["source_test"];
    assert_eq!(test["outcome"], "certificate", "{answer:#}");
    assert_eq!(test["certificate"]["problem"], "self_signed", "{answer:#}");
    assert_eq!(test["certificate"]["sha256"], fingerprint.as_str(), "{answer:#}");
    assert_eq!(test["certificate"]["subject"], "CN=localhost", "{answer:#}");
    assert_eq!(test["certificate"]["not_after"].as_i64(), Some(cert_not_after(&source)), "{answer:#}");
    assert!(test["message"].as_str().is_some_and(|m| m.contains("self-signed") && m.contains(&fingerprint)), "{answer:#}");
    assert_eq!(answer["target_test"]["outcome"], "ok", "{answer:#}");
    assert!(answer["target_test"]["capabilities"].as_array().is_some_and(|c| c.iter().any(|c| c == "IMAP4REV1")), "{answer:#}");

    // The status keeps what the test found; the customer's view has no OpenSSL or English words.
    let viewer = serve.status();
    assert_eq!(viewer["source_test"]["outcome"], "certificate", "{viewer:#}");
    assert_eq!(viewer["source_test"]["certificate"]["sha256"], fingerprint.as_str());
    assert!(viewer["source_test"]["certificate"].get("error").is_none() && viewer["source_test"].get("message").is_none(), "{viewer:#}");
    let operator = serve.op("GET", "/api/status", b"").json();
    assert!(operator["source_test"]["certificate"]["error"].as_str().is_some_and(|e| e.contains("self")), "{operator:#}");

    let csv = "E-post;Lösenord;Nytt lösenord\r\nalice@kund.se;gammalt-1;nytt-1\r\nbo@kund.se;gammalt-2;nytt-2\r\n";
    assert_eq!(serve.op("POST", "/api/accounts?name=konton.csv", csv.as_bytes()).status, 200);
    assert_eq!(serve.op("POST", "/api/check", b"{}").status, 202);
    let s = serve.wait_for("the check", 60, |s| s["check"]["running"] == false && s["check"]["checked_at"].as_i64().is_some());
    let verdicts: Vec<&Value> = s["accounts"].as_array().expect("accounts").iter().map(|a| &a["verdict"]).collect();
    assert_eq!(verdicts, [&json!("source_certificate"), &json!("source_certificate")], "{s:#}");
    assert!(
        s["accounts"].as_array().expect("accounts").iter().all(|a| a["problem"].is_null()),
        "the customer gets the words from the page: {s:#}"
    );
    let checked = serve.op("GET", "/api/check", b"").json();
    assert_eq!(checked["accounts"][0]["certificate"]["sha256"], fingerprint.as_str(), "{checked:#}");
    assert!(!source.log().contains("Login: user=<"), "no account tried to log in to the old server:\n{}", source.log());

    // The command line says it once, with the command that trusts it.
    let out = Command::new(common::postflytt_bin()).arg("--data").arg(&data).arg("check").output().expect("run postflytt");
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "{table}");
    assert_eq!(table.matches("certificate not trusted").count(), 1, "{table}");
    assert!(table.contains("self-signed") && table.contains(&format!("postflytt setup --source-pin {fingerprint}")), "{table}");
    assert!(table.contains("2 accounts not checked") && !table.contains("login failed"), "{table}");

    // Trust it as the page's button does: the pin alone.
    let r = serve.op("POST", "/api/setup", json!({"source": {"pin_sha256": source.cert_sha256_fingerprint()}}).to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["source_test"]["outcome"], "ok", "{}", r.text());
    let s = serve.status();
    assert_eq!(
        (s["source"]["host"].as_str(), s["source"]["port"].as_u64()),
        (Some("127.0.0.1"), Some(u64::from(source.tls_port()))),
        "{s:#}"
    );
    assert_eq!(s["source"]["pin_sha256"], fingerprint.as_str(), "{s:#}");
    // The page's setup form sends the same server again with every change: the pin stays.
    let again = json!({"source": {"host": "127.0.0.1", "port": source.tls_port(), "tls": "implicit"}, "pass_interval_seconds": 600});
    let r = serve.op("POST", "/api/setup", again.to_string().as_bytes());
    assert_eq!(r.json()["source_test"]["outcome"], "ok", "{}", r.text());
    assert_eq!(serve.op("POST", "/api/check", b"{}").status, 202);
    let s = serve.wait_for("the check", 60, |s| s["check"]["running"] == false && s["totals"]["ready"] == 2);
    assert_eq!(s["source_test"]["outcome"], "ok", "{s:#}");
    assert!(source.log().contains("Login: user=<alice@kund.se>"), "{}", source.log());
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// Issue 16 #4: what setup refuses, with 400 and a sentence through the API and exit 1 with the same
/// sentence through the CLI, storing nothing of it: a pin that is no SHA-256 fingerprint, a key
/// nobody knows (at the top and inside a side), plain IMAP to a host that is not loopback; and a pin
/// alone, which changes only the pin of the side already set up.
#[test]
fn setup_refuses_junk_pins_unknown_keys_and_plain_to_other_hosts_and_takes_a_pin_alone() {
    let data = common::fresh_dir("pf-serve-refuse");
    let serve = Serve::start(&data, common::free_port());
    let cli = |args: &[&str]| {
        let out = Command::new(common::postflytt_bin()).arg("--data").arg(&data).args(args).output().expect("run postflytt");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let refused = |body: Value, words: &str| {
        let r = serve.op("POST", "/api/setup", body.to_string().as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(words), "{body}: {message}");
    };
    refused(json!({"source": {"host": "127.0.0.1", "pin_sha256": "abc"}}), "is not a SHA-256 fingerprint: it has 3 hex digits");
    refused(json!({"source": {"host": "127.0.0.1", "pin": "ab"}}), "source: unknown field `pin`");
    refused(json!({"source": {"host": "127.0.0.1"}, "passes": 3}), "unknown field `passes`");
    refused(json!({"source": {"host": "imap.example.se", "port": 143, "tls": "plain"}}), "plain is allowed only to loopback");
    refused(json!({"source": {"pin_sha256": "ab".repeat(32)}}), "no source server is set up yet");
    assert!(serve.status()["source"].is_null(), "nothing of a refused setup is stored");
    let (code, text) = cli(&["setup", "--source", "imap.example.se:143", "--source-tls", "plain"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("plain is allowed only to loopback"), "{text}");
    let (code, text) = cli(&["setup", "--source", "127.0.0.1:993", "--source-pin", "abc"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("is not a SHA-256 fingerprint"), "{text}");
    assert!(serve.status()["source"].is_null(), "nothing of a refused setup is stored");

    // A side set up, then its pin alone (in the colon form `openssl x509 -fingerprint` prints).
    let port = common::free_port();
    let (code, text) = cli(&["setup", "--source", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("source test: cannot reach 127.0.0.1:") && text.contains("refused the connection"), "{text}");
    let s = serve.status();
    assert_eq!(
        (s["source_test"]["outcome"].as_str(), s["source_test"]["unreachable"].as_str()),
        (Some("unreachable"), Some("refused")),
        "{s:#}"
    );
    let pin = ["AB"; 32].join(":");
    let (code, text) = cli(&["setup", "--source-pin", &pin]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("pinned {}", "ab".repeat(32))), "{text}");
    let s = serve.status();
    assert_eq!((s["source"]["host"].as_str(), s["source"]["port"].as_u64()), (Some("127.0.0.1"), Some(u64::from(port))), "{s:#}");
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// Cutover from the command line (issue 16): `setup --target-mx`, `--quiet-period`, `--pass-interval`
/// and `--watch-domain` beside a running appliance show in `/api/status` and in `postflytt status`; a
/// domain added to the watch (the logins here are user names, which give none) is looked up in DNS
/// (dnsmasq) and seen pointing at the target; `watch_domains` in the API replaces the list, and junk is
/// refused on both sides with a sentence, storing nothing.
#[test]
fn cutover_settings_and_watched_domains_from_the_cli_and_the_api() {
    let dns_port = common::free_port();
    let _dns = Dnsmasq::start(dns_port, &[("kund.se", "mx.ny.example"), ("annat.se", "mx.gammal.example")]);
    let data = common::fresh_dir("pf-serve-cutover");
    let serve = Serve::start(&data, dns_port);
    let cli = |args: &[&str]| {
        let out = Command::new(common::postflytt_bin()).arg("--data").arg(&data).args(args).output().expect("run postflytt");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    assert_eq!(serve.op("POST", "/api/setup", br#"{"mx_interval_seconds": 1}"#).status, 200);

    let (code, text) = cli(&[
        "setup",
        "--target-mx",
        "mx.ny.example",
        "--target-mx",
        "*.mail.protection.outlook.com",
        "--quiet-period",
        "2h",
        "--pass-interval",
        "10m",
        "--watch-domain",
        "Kund.se",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Target MX: mx.ny.example, *.mail.protection.outlook.com"), "{text}");
    assert!(text.contains("Domains added to the watch: kund.se") && text.contains("Quiet period: 7200 s; pass interval: 600 s"), "{text}");
    let s = serve.wait_for("kund.se looked up", 30, |s| s["domains"][0]["checked_at"].is_i64());
    assert_eq!(s["target_mx"], json!(["mx.ny.example", "*.mail.protection.outlook.com"]), "{s:#}");
    assert_eq!(s["watch_domains"], json!(["kund.se"]), "{s:#}");
    assert_eq!(s["quiet_period_seconds"], 7200);
    assert_eq!(s["passes"]["interval_seconds"], 600);
    assert_eq!(s["domains"][0]["domain"], "kund.se", "{s:#}");
    assert_eq!(s["domains"][0]["points_at_target"], true, "{s:#}");
    let (code, text) = cli(&["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Domain kund.se: points at the target (mx.ny.example)"), "{text}");

    // A second domain, still at the old host: listed at once, and finishing is not safe.
    let (code, text) = cli(&["setup", "--watch-domain", "annat.se"]);
    assert_eq!(code, Some(0), "{text}");
    let s = serve.wait_for("annat.se looked up", 30, |s| {
        s["domains"].as_array().is_some_and(|d| d.iter().any(|d| d["domain"] == "annat.se" && d["checked_at"].is_i64()))
    });
    assert_eq!(s["watch_domains"], json!(["kund.se", "annat.se"]));
    assert_eq!(s["safe_to_finish"], false);
    let (_, text) = cli(&["status"]);
    assert!(text.contains("Domain annat.se: not yet at the target (mx.gammal.example)"), "{text}");
    let (code, text) = cli(&["setup", "--no-watch-domain", "annat.se"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(serve.status()["watch_domains"], json!(["kund.se"]));

    // Junk: refused with a sentence, nothing stored.
    for (args, says) in [
        (
            &["setup", "--watch-domain", "alice@kund.se"][..],
            "--watch-domain: \"alice@kund.se\" is an address; give its domain (\"kund.se\")",
        ),
        (&["setup", "--watch-domain", "kund"], "\"kund\" is not a domain name: write it like kund.se"),
        (&["setup", "--quiet-period", "soon"], "--quiet-period \"soon\" is not a duration"),
        (&["setup", "--quiet-period", "31d"], "--quiet-period must be from 0 to 2592000 seconds"),
        (&["setup", "--pass-interval", "0", "--target-mx", "x.example"], "--pass-interval must be from 1 to 604800 seconds"),
    ] {
        let (code, text) = cli(args);
        assert_eq!(code, Some(1), "{args:?}:\n{text}");
        assert!(text.contains(says), "{args:?}:\n{text}");
    }
    for (body, says) in [
        (json!({"watch_domains": ["kund..se"]}), "watch_domains: \"kund..se\" is not a domain name"),
        (json!({"watch_domains": "kund.se"}), "watch_domains must be a list of domain names"),
        (json!({"watch_domains": ["ok.se", 5]}), "watch_domains must be a list of domain names"),
    ] {
        let r = serve.op("POST", "/api/setup", body.to_string().as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains(says)), "{body}: {}", r.text());
    }
    let s = serve.status();
    assert_eq!((s["watch_domains"].clone(), s["target_mx"][0].clone()), (json!(["kund.se"]), json!("mx.ny.example")), "{s:#}");
    assert_eq!(s["passes"]["interval_seconds"], 600);

    // The API replaces the list.
    let r = serve.op("POST", "/api/setup", br#"{"watch_domains": ["annat.se", "Annat.se."]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(serve.status()["watch_domains"], json!(["annat.se"]));
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// Issue 16 #5 and #6 through the API: a message lost on the target fails finish's verification, the
/// status flags the account with the count, `POST /api/repair` copies it back exactly once, finish then
/// verifies and purges, and after that every action that would change the migration answers 409 with
/// one sentence while reading goes on.
#[test]
fn a_lost_message_is_repaired_through_the_api_and_a_finished_migration_refuses_changes() {
    let source = Dovecot::start(Layout::OldHost, &[("rep@kund.se", "gammalt")]);
    let target = Dovecot::start(Layout::Target, &[("rep@kund.se", "nytt")]);
    fixture::load(&mut source.reader("rep@kund.se"), &fixture::bulk("INBOX", 8, 41, 600..2500));
    let dns_port = common::free_port();
    let data = common::fresh_dir("pf-serve-repair");
    let serve = Serve::start(&data, dns_port);
    let code = serve.code();
    let setup = json!({
        "source": {"host": "127.0.0.1", "port": source.port(), "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": target.port(), "tls": "plain"},
        "pass_interval_seconds": 3600,
    });
    assert_eq!(serve.op("POST", "/api/setup", setup.to_string().as_bytes()).status, 200);
    let csv = "E-post;Lösenord;Nytt lösenord\r\nrep@kund.se;gammalt;nytt\r\n";
    assert_eq!(serve.op("POST", "/api/accounts?name=konton.csv", csv.as_bytes()).status, 200);
    let r = serve.op("POST", "/api/repair", b"{}");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap_or("").contains("nothing to repair"), "{}", r.text());
    assert_eq!(serve.op("POST", "/api/passes/start", b"{}").status, 200);
    serve.wait_for("the first pass", 60, |s| s["totals"]["pushed_messages"] == 8 && s["passes"]["active"] == false);
    assert_eq!(serve.op("POST", "/api/passes/stop", b"{}").status, 200);

    let mut tr = target.reader("rep@kund.se");
    let uid = tr.fetch_all("INBOX")[2].uid;
    tr.expunge_uid("INBOX", uid);
    drop(tr);
    assert_eq!(serve.op("POST", "/api/finish", br#"{"confirm": true}"#).status, 202);
    let s = serve.wait_for("finish to find the loss", 90, |s| s["finish"]["running"] == false && s["last_error"].is_string());
    assert!(s["last_error"].as_str().unwrap_or("").contains("1 missing"), "{s:#}");
    assert!(s["finished_at"].is_null(), "not finished: {s:#}");
    assert_eq!(s["accounts"][0]["verified"], false, "{s:#}");
    assert_eq!(s["accounts"][0]["missing_messages"], 1, "{s:#}");

    let r = serve.op("POST", "/api/repair", b"{}");
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap_or("").contains("1 messages missing on the target in 1 accounts"), "{}", r.text());
    let started = Instant::now();
    while target.reader("rep@kund.se").fetch_all("INBOX").len() < 8 {
        assert!(started.elapsed() < Duration::from_secs(60), "the repair pass did not copy the message back");
        std::thread::sleep(Duration::from_millis(300));
    }
    serve.wait_for("the repair pass to end", 60, |s| s["passes"]["active"] == false);
    let src = fixture::mailbox_snapshot(&mut source.reader("rep@kund.se"));
    fixture::assert_same_mail(&src, &fixture::mailbox_snapshot(&mut target.reader("rep@kund.se")), &Default::default());

    assert_eq!(serve.op("POST", "/api/finish", br#"{"confirm": true}"#).status, 202);
    let s = serve.wait_for("finish", 90, |s| s["finished_at"].as_i64().is_some());
    assert_eq!(s["accounts"][0]["verified"], true, "{s:#}");
    assert!(s["last_error"].is_null(), "the first finish's problem is history: {s:#}");
    assert_eq!(s["accounts"][0]["missing_messages"], 0, "{s:#}");
    assert_eq!(target.reader("rep@kund.se").fetch_all("INBOX").len(), 8, "still each once");

    // Finished means finished.
    for (path, body) in [
        ("/api/setup", setup.to_string()),
        ("/api/accounts?name=konton.csv", csv.to_string()),
        ("/api/check", "{}".to_string()),
        ("/api/passes/start", "{}".to_string()),
        ("/api/passes/interval", r#"{"seconds": 60}"#.to_string()),
        ("/api/repair", "{}".to_string()),
        ("/api/finish", r#"{"confirm": true}"#.to_string()),
        ("/api/switched", r#"{"all": true}"#.to_string()),
    ] {
        let r = serve.op("POST", path, body.as_bytes());
        assert_eq!(r.status, 409, "{path}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap_or("").to_string();
        assert!(message.starts_with("the migration is finished: passwords and staged mail are purged"), "{path}: {message}");
    }
    for path in ["/api/status", "/api/report", "/api/check", "/api/check?format=csv"] {
        assert_eq!(http(serve.port, "GET", path, &[("X-Viewer-Code", &code)], b"").status, 200, "{path}");
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// Issue 16 #7, accounts one at a time through the API against real Dovecot, read back with the test's
/// own IMAP reader: sync one account now (only its mail arrives), pause one (passes leave it alone and
/// finishing is refused, naming it), give one a new password (a wrong target password fails the check;
/// the right one set through the API makes it ready and the passes copy it), remove one (its passwords
/// are wiped, the next passes leave its target mailbox alone, finishing does not wait for it and the
/// report keeps it). No answer and no log line ever carries a password.
#[test]
fn accounts_one_at_a_time_through_the_api() {
    let users = [("anna@kund.se", "gammalt-Anna1"), ("bert@kund.se", "gammalt-Bert1"), ("cilla@kund.se", "gammalt-Cilla1")];
    let source = Dovecot::start(Layout::OldHost, &users);
    let target = Dovecot::start(
        Layout::Target,
        &[("anna@kund.se", "nytt-Anna1"), ("bert@kund.se", "nytt-Bert1"), ("cilla@kund.se", "nytt-Cilla-rätt")],
    );
    for (i, (user, _)) in users.iter().enumerate() {
        fixture::load(&mut source.reader(user), &fixture::bulk("INBOX", 3 + i, 40 + i as u64, 500..1500));
    }
    let inbox = |user: &str| target.reader(user).fetch_all("INBOX").len();
    let dns_port = common::free_port();
    let _dns = Dnsmasq::start(dns_port, &[("kund.se", "mx.gammal.example")]);
    let data = common::fresh_dir("pf-one-account");
    let log_path = data.with_extension("log");
    let serve = Serve::start_logging(&data, dns_port, Stdio::from(std::fs::File::create(&log_path).expect("log file")));
    let setup = json!({
        "source": {"host": "127.0.0.1", "port": source.port(), "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": target.tls_port(), "tls": "implicit", "pin_sha256": target.cert_sha256_fingerprint()},
        "pass_interval_seconds": 1,
    });
    assert_eq!(serve.op("POST", "/api/setup", setup.to_string().as_bytes()).status, 200);
    // Cilla's new password in the list is wrong.
    let csv = "E-post;Lösenord;Nytt lösenord\r\nanna@kund.se;gammalt-Anna1;nytt-Anna1\r\nbert@kund.se;gammalt-Bert1;nytt-Bert1\r\n\
               cilla@kund.se;gammalt-Cilla1;nytt-Cilla-fel\r\n";
    assert_eq!(serve.op("POST", "/api/accounts?name=konton.csv", csv.as_bytes()).status, 200);
    assert_eq!(serve.op("POST", "/api/check", b"{}").status, 202);
    let s = serve.wait_for("the check", 60, |s| s["check"]["running"] == false && s["check"]["checked_at"].is_i64());
    let account =
        |s: &Value, login: &str| s["accounts"].as_array().and_then(|a| a.iter().find(|x| x["login"] == login)).cloned().unwrap_or_default();
    assert_eq!(account(&s, "cilla@kund.se")["verdict"], "target_login_failed", "{s:#}");

    // Sync one now: only Anna's mail arrives.
    let r = serve.op("POST", "/api/accounts/anna%40kund.se/sync", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap_or("").contains("anna@kund.se"), "{}", r.text());
    serve.wait_for("Anna's pass", 60, |s| account(s, "anna@kund.se")["pushed_messages"] == 3);
    assert_eq!((inbox("anna@kund.se"), inbox("bert@kund.se"), inbox("cilla@kund.se")), (3, 0, 0));
    assert_eq!(serve.op("POST", "/api/accounts/nobody%40kund.se/sync", b"").status, 404);

    // Pause Bert: the passes leave him alone, and finishing is refused with his name.
    let r = serve.op("POST", "/api/accounts/bert@kund.se/pause", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap_or("").contains("paused"), "{}", r.text());
    assert_eq!(account(&serve.status(), "bert@kund.se")["state"], "paused");
    assert_eq!(serve.op("POST", "/api/accounts/bert@kund.se/sync", b"").status, 409, "a paused account is not synced now");
    assert_eq!(serve.op("POST", "/api/passes/start", b"{}").status, 200);
    serve.wait_for("two passes", 60, |s| s["passes"]["count"].as_i64().unwrap_or(0) >= 2);
    assert_eq!(inbox("bert@kund.se"), 0, "a paused account is left alone by the passes");
    let r = serve.op("POST", "/api/finish", br#"{"confirm": true}"#);
    assert_eq!(r.status, 409, "{}", r.text());
    let refusal = r.json()["error"]["message"].as_str().unwrap_or("").to_string();
    assert!(refusal.contains("bert@kund.se is paused"), "{refusal}");

    // A new password for Cilla: ready after the check, then the passes copy her.
    let r = serve.op("POST", "/api/accounts/cilla%40kund.se/passwords", br#"{"target_password": ""}"#);
    assert_eq!(r.status, 400, "an empty password is refused as an import refuses it: {}", r.text());
    let r = serve.op("POST", "/api/accounts/cilla%40kund.se/passwords", r#"{"target_password": "nytt-Cilla-rätt"}"#.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("nytt-Cilla"), "the password is never echoed: {}", r.text());
    assert_eq!(account(&serve.status(), "cilla@kund.se")["verdict"], Value::Null, "the account is to be checked again");
    assert_eq!(serve.op("POST", "/api/check", br#"{"accounts": ["cilla@kund.se"]}"#).status, 202);
    serve.wait_for("Cilla checked and copied", 90, |s| {
        account(s, "cilla@kund.se")["verdict"] == "ready" && account(s, "cilla@kund.se")["pushed_messages"] == 5
    });
    assert_eq!(inbox("cilla@kund.se"), 5);

    // Remove Anna: passwords wiped at once, her target left alone by later passes, listed as removed.
    let r = serve.op("DELETE", "/api/accounts/anna%40kund.se", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap_or("").contains("import it again"), "{}", r.text());
    let conn = rusqlite::Connection::open(data.join("postflytt.sqlite")).expect("open db");
    let sealed: i64 = conn
        .query_row(
            "SELECT count(*) FROM account WHERE source_login = 'anna@kund.se' AND (source_password IS NOT NULL OR target_password IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .expect("q");
    assert_eq!(sealed, 0, "a removed account's passwords are wiped at once");
    drop(conn);
    let s = serve.status();
    assert_eq!(account(&s, "anna@kund.se")["state"], "removed");
    assert_eq!(s["totals"]["accounts"], 2, "a removed account no longer counts: {s:#}");
    source.reader("anna@kund.se").append("INBOX", &[], None, b"From: sen@kund.se\r\nSubject: efter\r\n\r\nfor sent\r\n");
    let passes = serve.status()["passes"]["count"].as_i64().unwrap_or(0);
    serve.wait_for("two more passes", 60, |s| s["passes"]["count"].as_i64().unwrap_or(0) >= passes + 2);
    assert_eq!(inbox("anna@kund.se"), 3, "a removed account's target is left alone");

    // Resume Bert: the next pass copies him; then finishing neither waits for Anna nor refuses.
    assert_eq!(serve.op("POST", "/api/accounts/bert%40kund.se/resume", b"").status, 200);
    serve.wait_for("Bert copied", 60, |s| account(s, "bert@kund.se")["pushed_messages"] == 4);
    assert_eq!(inbox("bert@kund.se"), 4);
    let r = serve.op("POST", "/api/finish", br#"{"confirm": true}"#);
    assert_eq!(r.status, 202, "{}", r.text());
    let s = serve.wait_for("finish", 90, |s| s["finished_at"].as_i64().is_some());
    assert_eq!(s["last_error"], Value::Null, "finish verified everything that is still in the migration: {s:#}");
    assert_eq!(inbox("anna@kund.se"), 3);
    let html = http(serve.port, "GET", &format!("/report?code={}&lang=en", serve.code()), &[], b"").text();
    assert!(html.contains("Removed from the migration by the operator"), "the report says Anna was removed");
    assert_eq!(serve.op("DELETE", "/api/accounts/bert%40kund.se", b"").status, 409, "nothing changes after finish");

    // No password in any answer or in the log.
    drop(serve);
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("anna@kund.se: removed by the operator"), "{log}");
    for secret in ["nytt-Cilla-rätt", "nytt-Cilla-fel", "gammalt-Anna1", "nytt-Bert1"] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!html.contains(secret) && !s.to_string().contains(secret));
    }
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&log_path);
}

/// Review of issue 16 #4 (setup tests each side when it is saved): the test runs on the HTTP worker
/// that took the request, up to its deadlines per side. A server that accepts and never answers (a
/// wrong port behind a firewall that accepts, a stuck server) holds a setup request for the length of
/// both sides' tests; four such requests (the operator clicking Save again, two tabs) take every HTTP
/// worker, and the customer's status, polled meanwhile, waits for them.
#[test]
fn setup_tests_against_a_silent_server_do_not_hold_up_the_status() {
    let data = common::fresh_dir("pf-serve-silent");
    let serve = Serve::start(&data, common::free_port());
    // Accepts every connection and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let body = json!({
        "source": {"host": "127.0.0.1", "port": silent_port, "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": silent_port, "tls": "plain"},
    })
    .to_string();
    let (port, auth) = (serve.port, format!("Bearer {}", serve.token()));
    let saves: Vec<_> = (0..4)
        .map(|_| {
            let (body, auth) = (body.clone(), auth.clone());
            std::thread::spawn(move || http(port, "POST", "/api/setup", &[("Authorization", &auth)], body.as_bytes()).status)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    serve.status();
    let waited = asked.elapsed();
    for save in saves {
        assert_eq!(save.join().expect("setup request"), 200);
    }
    assert!(waited < Duration::from_secs(3), "the status waited {waited:?} behind four setup tests of a silent server");
}

/// Review of issue 16 (finished means finished): while finish runs, nothing may change under it. The
/// old server is held mid-message (a stall proxy) so finish's last pass waits there; meanwhile an
/// import, a setup and an account's new password answer 409 "finishing"; released, finish completes
/// and every message is on the target once (read back with the test's own reader).
#[test]
fn nothing_changes_while_finish_runs() {
    let source = Dovecot::start(Layout::OldHost, &[("fin@kund.se", "gammalt")]);
    let target = Dovecot::start(Layout::Target, &[("fin@kund.se", "nytt")]);
    let marker = b"Vanta-har-4713";
    let mut r = source.reader("fin@kund.se");
    fixture::load(&mut r, &fixture::bulk("INBOX", 3, 51, 600..1500));
    let body = [b"From: x@kund.se\r\nSubject: vanta\r\n\r\n".as_slice(), &[b'x'; 4000], marker, b"\r\n"].concat();
    r.append("INBOX", &[], None, &body);
    drop(r);
    let proxy = common::stall_proxy::StallProxy::start(source.port(), marker);
    let data = common::fresh_dir("pf-serve-finishing");
    let serve = Serve::start(&data, common::free_port());
    let setup = json!({
        "source": {"host": "127.0.0.1", "port": proxy.port(), "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": target.port(), "tls": "plain"},
    });
    assert_eq!(serve.op("POST", "/api/setup", setup.to_string().as_bytes()).status, 200);
    let csv = "E-post;Lösenord;Nytt lösenord\r\nfin@kund.se;gammalt;nytt\r\n";
    assert_eq!(serve.op("POST", "/api/accounts?name=k.csv", csv.as_bytes()).status, 200);
    let r = serve.op("POST", "/api/finish", br#"{"confirm": true}"#);
    assert_eq!(r.status, 202, "{}", r.text());
    let started = Instant::now();
    while proxy.stalled_at().is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "finish's pass never reached the marker");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (method, path, body) in [
        ("POST", "/api/accounts?name=k.csv", "E-post;Lösenord\r\nsen@kund.se;pw\r\n"),
        ("POST", "/api/setup", r#"{"quota_per_account": "1G"}"#),
        ("POST", "/api/accounts/fin%40kund.se/passwords", r#"{"target_password": "annat"}"#),
        ("POST", "/api/switched", r#"{"all": true}"#),
    ] {
        let r = serve.op(method, path, body.as_bytes());
        assert_eq!(r.status, 409, "{path} while finishing: {}", r.text());
        assert!(r.json()["error"]["message"].as_str().unwrap_or("").contains("the migration is finishing"), "{path}: {}", r.text());
    }
    proxy.release();
    let s = serve.wait_for("finish", 60, |s| s["finished_at"].as_i64().is_some());
    assert_eq!(s["accounts"].as_array().map(Vec::len), Some(1), "the import during finish added nobody: {s:#}");
    assert_eq!(target.reader("fin@kund.se").fetch_all("INBOX").len(), 4, "every message once");
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// Issue 17 through the API: `POST /api/switched` names each account's result (switched now, or
/// already and by whom), refuses a body that names no account, an unknown login (naming it, in
/// Swedish for the Swedish page, and marking nothing) and junk; `"mirror"` of `POST /api/setup` takes
/// "on" or "off" only; the status shows the setting, each account's mirror state and the totals.
#[test]
fn switched_and_the_mirror_setting_through_the_api() {
    let data = common::fresh_dir("pf-serve-switched");
    let serve = Serve::start(&data, common::free_port());
    let csv = "E-post;Lösenord\r\nanna@kund.se;a\r\nbert@kund.se;b\r\n";
    assert_eq!(serve.op("POST", "/api/accounts?name=k.csv", csv.as_bytes()).status, 200);
    let s = serve.status();
    assert_eq!(s["mirror"], "on", "mirroring is on by default: {s:#}");
    assert_eq!((s["totals"]["moved_messages"].clone(), s["totals"]["removed_messages"].clone()), (json!(0), json!(0)), "{s:#}");
    for a in s["accounts"].as_array().expect("accounts") {
        assert_eq!(
            (a["mirror"].clone(), a["switched_at"].clone(), a["moved_messages"].clone()),
            (json!("mirroring"), Value::Null, json!(0))
        );
    }

    let message = |r: &Reply| r.json()["error"]["message"].as_str().unwrap_or("").to_string();
    let r = serve.op("POST", "/api/switched", b"{}");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        message(&r),
        "say which accounts' users have switched to the new host: give their logins, or {\"all\": true} for every account"
    );
    for junk in [r#"{"accounts": "anna@kund.se"}"#, r#"{"all": "yes"}"#, r#"{"logins": ["anna@kund.se"]}"#] {
        let r = serve.op("POST", "/api/switched", junk.as_bytes());
        assert_eq!((r.status, message(&r).as_str()), (400, "give {\"accounts\": [\"login\", ...]} or {\"all\": true}"), "{junk}");
    }
    let bearer = format!("Bearer {}", serve.token());
    let sv = http(
        serve.port,
        "POST",
        "/api/switched",
        &[("Authorization", &bearer), ("Accept-Language", "sv")],
        br#"{"accounts": ["anna@kund.se", "nobody@kund.se"]}"#,
    );
    assert_eq!(sv.status, 404, "{}", sv.text());
    assert_eq!(message(&sv), "inget konto \"nobody@kund.se\": se kontolistan (postflytt status)");
    assert_eq!(serve.status()["accounts"][0]["mirror"], "mirroring", "an unknown login marks nothing");

    let r = serve.op("POST", "/api/switched", br#"{"accounts": ["anna@kund.se"]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["accounts"][0]["login"], "anna@kund.se");
    assert_eq!(answer["accounts"][0]["now"], true);
    assert_eq!(answer["message"], "anna@kund.se: switched now; nothing will be moved or removed on the new host from now on");
    let r = serve.op("POST", "/api/switched", br#"{"all": true}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    let lines: Vec<&str> = answer["message"].as_str().unwrap_or("").lines().collect();
    assert!(lines[0].starts_with("anna@kund.se: already switched at ") && lines[0].ends_with(" (by the operator)"), "{answer:#}");
    assert_eq!(lines[1], "bert@kund.se: switched now; nothing will be moved or removed on the new host from now on");
    assert_eq!((answer["accounts"][0]["now"].clone(), answer["accounts"][0]["switched_by"].clone()), (json!(false), json!("operator")));
    let s = serve.status();
    for a in s["accounts"].as_array().expect("accounts") {
        assert_eq!((a["mirror"].clone(), a["switched_by"].clone()), (json!("switched"), json!("operator")), "{s:#}");
        assert!(a["switched_at"].as_i64().is_some(), "{s:#}");
    }

    let r = serve.op("POST", "/api/setup", br#"{"mirror": "maybe"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(message(&r).starts_with("mirror must be on or off (got \"maybe\")"), "{}", r.text());
    assert_eq!(serve.status()["mirror"], "on", "a refused setup changes nothing");
    assert_eq!(serve.op("POST", "/api/setup", br#"{"mirror": "off"}"#).status, 200);
    assert_eq!(serve.status()["mirror"], "off");
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// The operator's message filter and the package's total through the API (issue 18): set, shown in
/// the status (viewers see what moves), removed with null; wrong values refused with 400 and a
/// sentence naming the key, and nothing of a refused request stored.
#[test]
fn the_message_filter_and_the_package_total_are_set_through_the_api() {
    let dns_port = common::free_port();
    let data = common::fresh_dir("pf-serve-filter");
    let serve = Serve::start(&data, dns_port);
    let r = serve.op(
        "POST",
        "/api/setup",
        json!({"newer_than": "2024-01-01", "max_message_size": "25M", "quota_total": "500G"}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let s = serve.status();
    assert_eq!(s["filter"]["newer_than"], "2024-01-01", "{s:#}");
    assert_eq!(s["filter"]["max_message_size"], 25 << 20, "{s:#}");
    assert_eq!(
        s["filter"]["description"],
        "Messages that move: received from 2024-01-01 on, at most 25.0 MB (the rest are left out and listed as skipped)"
    );
    assert_eq!(s["quota_total_bytes"], 500u64 << 30, "{s:#}");
    for (body, says) in [
        (json!({"older_than": "2023-12-31"}), "--newer-than 2024-01-01 and --older-than 2023-12-31 leave no day between them"),
        (json!({"newer_than": "yesterday", "quota_total": "1T"}), "newer_than \"yesterday\" is not a date: write it as YYYY-MM-DD"),
        (json!({"max_message_size": true}), "max_message_size must be a string"),
        (json!({"quota_total": "0"}), "quota_total 0 would allow nothing"),
    ] {
        let r = serve.op("POST", "/api/setup", body.to_string().as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains(says)), "{body}: {}", r.text());
    }
    assert_eq!(serve.status()["quota_total_bytes"], 500u64 << 30, "a refused request stored nothing");
    let r =
        serve.op("POST", "/api/setup", json!({"newer_than": null, "max_message_size": null, "quota_total": null}).to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let s = serve.status();
    assert_eq!(s["filter"]["description"], "Messages that move: all (no filter)", "{s:#}");
    assert_eq!(s["quota_total_bytes"], Value::Null, "{s:#}");

    // A password-protected zip (AES-256, by 7-Zip) through the API: its password in a header.
    let zip = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/konton-aes256.zip")).expect("fixture");
    let auth = format!("Bearer {}", serve.token());
    let upload = |password: Option<&str>| {
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(p) = password {
            headers.push(("X-Zip-Password", p));
        }
        http(serve.port, "POST", "/api/accounts?name=konton-aes256.zip", &headers, &zip)
    };
    let r = upload(None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("password-protected") && r.text().contains("X-Zip-Password"), "{}", r.text());
    let r = upload(Some("fel"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("the password does not open the zip archive") && !r.text().contains("fel\""), "{}", r.text());
    let r = upload(Some("Kund-Losen 2026!"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["added"], 3, "{}", r.text());
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}

/// Issue 18's folder choice through the API: `GET /api/accounts/LOGIN/folders` (operator only, 404
/// for an unknown login) lists the folders the check found, each left-out one with its kind and
/// detail; the check's left-out folders carry the same; a bad pattern and the refusal once mail is
/// copied reach the Swedish page in Swedish; `folder_choice_locked` says when the fields close; and
/// the report says a left-out folder was the operator's choice, in JSON, CSV and both languages'
/// HTML, never that it was not verified. Against real Dovecot.
#[test]
fn the_folder_choice_and_each_accounts_folders_through_the_api() {
    // Greeting as Zimbra does, which shows calendars as folders (quirk `shows_groupware_folders`).
    let greeting = "login_greeting = mail.kund.se Zimbra IMAP4rev1 server ready".to_string();
    let source = Dovecot::start_with(
        Layout::Modern,
        &[("mia@kund.se", "pw1")],
        common::DovecotOptions { extra_config: greeting, ..Default::default() },
    );
    let target = Dovecot::start(Layout::Target, &[("mia@kund.se", "pw2")]);
    let mut r = source.reader("mia@kund.se");
    fixture::ensure_folders(&mut r, &["Arkiv", "Calendar", "Kunder"]);
    for (seed, folder) in [(1, "INBOX"), (2, "Arkiv"), (3, "Calendar"), (4, "Kunder")] {
        fixture::load(&mut r, &fixture::bulk(folder, 2, seed, 800..1200));
    }
    drop(r);
    let data = common::fresh_dir("pf-serve-folders");
    let serve = Serve::start(&data, common::free_port());
    let setup = json!({
        "source": {"host": "127.0.0.1", "port": source.port(), "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": target.port(), "tls": "plain"},
        "exclude_folders": ["Arkiv"],
    });
    let r = serve.op("POST", "/api/setup", setup.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let r = serve.op("POST", "/api/accounts?name=konton.csv", b"E-post;L\xc3\xb6senord;Nytt l\xc3\xb6senord\r\nmia@kund.se;pw1;pw2\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(serve.status()["folder_choice_locked"], false);

    // Before any check: nothing recorded yet. The customer's code and no credential are refused,
    // an unknown login is 404 with a sentence.
    let path = "/api/accounts/mia%40kund.se/folders";
    let r = serve.op("GET", path, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["recorded"], false, "{}", r.text());
    let code = serve.code();
    assert_eq!(http(serve.port, "GET", path, &[("X-Viewer-Code", &code)], b"").status, 403);
    assert_eq!(http(serve.port, "GET", path, &[], b"").status, 401);
    let r = serve.op("GET", "/api/accounts/ingen%40kund.se/folders", b"");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "no account \"ingen@kund.se\": see the account list (postflytt status)");

    assert_eq!(serve.op("POST", "/api/check", b"{}").status, 202);
    serve.wait_for("the check", 60, |s| s["check"]["running"] == false && s["check"]["checked_at"].is_i64());
    let r = serve.op("GET", path, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let folders = r.json();
    let row = |name: &str| folders["folders"].as_array().and_then(|l| l.iter().find(|f| f["source"] == name)).cloned();
    assert_eq!(row("INBOX").map(|f| (f["target"].clone(), f["excluded"].clone())), Some((json!("INBOX"), json!(false))), "{folders:#}");
    assert_eq!(row("Kunder").map(|f| f["excluded"].clone()), Some(json!(false)), "{folders:#}");
    assert_eq!(row("Arkiv").map(|f| (f["target"].clone(), f["excluded"].clone())), Some((Value::Null, json!(true))), "{folders:#}");
    let left: Vec<(String, String, String)> = folders["left_out"]
        .as_array()
        .expect("left_out")
        .iter()
        .map(|f| {
            (f["source"].as_str().unwrap_or("").into(), f["kind"].as_str().unwrap_or("").into(), f["detail"].as_str().unwrap_or("").into())
        })
        .collect();
    assert_eq!(
        left,
        [("Arkiv".into(), "operator".into(), "Arkiv".into()), ("Calendar".into(), "not_mail".into(), "Calendar".into())],
        "{folders:#}"
    );
    assert_eq!(folders["left_out"][0]["reason"], "left out by the operator's pattern 'Arkiv'");
    let check = serve.op("GET", "/api/check", b"").json();
    let calendar = check["accounts"][0]["excluded"].as_array().and_then(|l| l.iter().find(|f| f["source"] == "Calendar")).cloned();
    assert_eq!(calendar.map(|f| (f["kind"].clone(), f["messages"].clone())), Some((json!("not_mail"), json!(2))), "{check:#}");

    // A bad pattern: refused, in Swedish for the Swedish page.
    let bearer = format!("Bearer {}", serve.token());
    let sv = [("Authorization", bearer.as_str()), ("Accept-Language", "sv")];
    let r = http(serve.port, "POST", "/api/setup", &sv, json!({"exclude_folders": ["a//b"]}).to_string().as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"]["message"].as_str().is_some_and(|m| m.starts_with("exclude_folders: mappmönstret \"a//b\" har en tom nivå")),
        "{}",
        r.text()
    );

    // A pass copies mail: the choice is fixed, and a change is refused with the reason.
    assert_eq!(serve.op("POST", "/api/passes/start", b"{}").status, 200);
    let s = serve.wait_for("the first pass", 60, |s| s["totals"]["pushed_messages"] == 4);
    assert_eq!(s["folder_choice_locked"], true, "{s:#}");
    let r = http(serve.port, "POST", "/api/setup", &sv, json!({"exclude_folders": ["Kunder"]}).to_string().as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("valet av mappar kan inte ändras nu: mia@kund.se har redan fått e-post kopierad")),
        "{}",
        r.text()
    );
    assert_eq!(serve.op("POST", "/api/passes/stop", b"{}").status, 200);
    assert_eq!(target.reader("mia@kund.se").folders().iter().filter(|f| *f == "Arkiv" || *f == "Calendar").count(), 0);

    // The report: the operator's choice, with why; not "not verified".
    let report = serve.op("GET", "/api/report", b"").json();
    let arkiv =
        report["accounts"][0]["folders"].as_array().and_then(|l| l.iter().find(|f| f["source"] == "Arkiv")).cloned().expect("Arkiv");
    assert_eq!(arkiv["left_out"], "left out by the operator's folder choice: the pattern 'Arkiv'", "{report:#}");
    assert_eq!(arkiv["verified"], Value::Null);
    let csv = serve.op("GET", "/api/report?format=csv", b"").text();
    assert!(csv.contains("mia@kund.se;Calendar;;0;0;0;;;;0;0;left out by the operator's folder choice: not mail"), "{csv}");
    for (lang, words, status) in [
        ("en", "left out by the operator&#39;s folder choice: the pattern &#39;Arkiv&#39;", ">left out</td>"),
        ("sv", "lämnades kvar enligt operatörens val av mappar: inte e-post", ">lämnades kvar</td>"),
    ] {
        let html = serve.op("GET", &format!("/report?lang={lang}"), b"").text();
        assert!(html.contains(words) && html.contains(status), "{lang}: {html}");
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(&data);
}
