//! E-mail notices end to end: `postflytt serve` against real Dovecot servers, sending through a real
//! SMTP server on loopback (aiosmtpd from Debian's python3-aiosmtpd, run by tests/fixtures/smtp_sink.py
//! with STARTTLS and AUTH required, a certificate made here with openssl). What arrived is read from the
//! sink's files with mail-parser, never through postflytt: the check's notice names the account to fix
//! and why, the finished notice carries the report in Swedish to the customer, a restart sends nothing
//! again, and the relay's password is in no status, log line, stored message or (after the purge) the
//! database.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use common::{Dovecot, Layout};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

const RELAY_PASSWORD: &str = "Relä-hemlis-9";

/// A plain HTTP/1.1 request of the test's own (no client library shared with postflytt).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let r = common::web::http(port, method, path, headers, body);
    (r.status, r.text())
}

struct Serve {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Serve {
    /// Starts the appliance; its log goes to `log` (appended), the MX watch asks a port where nothing
    /// answers (no real DNS from a test).
    fn start(data: &Path, log: &Path) -> Serve {
        Serve::start_with_dns(data, log, common::free_port())
    }

    fn start_with_dns(data: &Path, log: &Path, dns_port: u16) -> Serve {
        let port = common::free_port();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
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

    fn op(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let token = std::fs::read_to_string(self.data.join("operator-token")).expect("token");
        let auth = format!("Bearer {}", token.trim());
        let (status, text) = http(self.port, method, path, &[("Authorization", &auth)], body.to_string().as_bytes());
        (status, serde_json::from_str(&text).unwrap_or_else(|_| json!({"text": text})))
    }

    /// The status as the operator reads it (the customer's shows only whether notices are on).
    fn op_status(&self) -> Value {
        let (status, value) = self.op("GET", "/api/status", &json!({}));
        assert_eq!(status, 200, "{value}");
        value
    }

    fn status(&self) -> Value {
        let code = std::fs::read_to_string(self.data.join("viewer-code")).expect("code");
        let (status, text) = http(self.port, "GET", "/api/status", &[("X-Viewer-Code", code.trim())], b"");
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("status JSON")
    }

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

use common::Dnsmasq;

/// The SMTP server the notices go to, and the directory it writes each message to.
struct Sink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Sink {
    fn start(dir: &Path) -> Sink {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "2"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let out = dir.join("mail");
        std::fs::create_dir(&out).expect("mail dir");
        let port = common::free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
        // Debian's python3, where python3-aiosmtpd is installed (not a python3 earlier on PATH).
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args([&out, &cert, &key])
            .args(["flytt@leverantor.se", RELAY_PASSWORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (package python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("sink output");
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start (is python3-aiosmtpd installed?)");
        Sink { child, port, out }
    }

    /// Every message received so far, in order: (envelope, raw bytes).
    fn messages(&self) -> Vec<(Value, Vec<u8>)> {
        let mut all = Vec::new();
        for n in 1.. {
            let env = self.out.join(format!("{n}.env"));
            let Ok(text) = std::fs::read_to_string(&env) else { break };
            let raw = std::fs::read(self.out.join(format!("{n}.eml"))).expect("eml");
            all.push((serde_json::from_str(&text).expect("env JSON"), raw));
        }
        all
    }

    fn wait_for_count(&self, n: usize, what: &str) -> Vec<(Value, Vec<u8>)> {
        let started = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "timed out waiting for {what}: {} messages", m.len());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received message as a person reads it: to, subject, the text, the attachments (name, text).
struct Received {
    to: Vec<String>,
    subject: String,
    text: String,
    attachments: Vec<(String, String)>,
}

fn read(envelope: &Value, raw: &[u8]) -> Received {
    let m = MessageParser::default().parse(raw).expect("a MIME message");
    assert_eq!(envelope["tls"], true, "sent under STARTTLS");
    assert_eq!(envelope["login"], "flytt@leverantor.se", "sent logged in");
    Received {
        to: envelope["to"].as_array().expect("rcpt").iter().map(|v| v.as_str().unwrap_or("").to_string()).collect(),
        subject: m.subject().unwrap_or("").to_string(),
        text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        attachments: m
            .attachments()
            .map(|a| (a.attachment_name().unwrap_or("").to_string(), String::from_utf8_lossy(a.contents()).into_owned()))
            .collect(),
    }
}

fn count_in_file(path: &Path, needle: &[u8]) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn notices_reach_the_operator_and_the_customer_once_and_never_carry_the_password() {
    let source = Dovecot::start(Layout::OldHost, &[("alice@kund.se", "gammalt-1"), ("bo@kund.se", "gammalt-2")]);
    let target = Dovecot::start(Layout::Target, &[("alice@kund.se", "nytt-1"), ("bo@kund.se", "nytt-2")]);
    fixture::load(&mut source.reader("alice@kund.se"), &fixture::bulk("INBOX", 4, 1, 500..900));
    fixture::load(&mut source.reader("bo@kund.se"), &fixture::bulk("INBOX", 3, 2, 500..900));
    let dir = common::fresh_dir("pf-notify");
    let sink = Sink::start(&dir);
    let (data, log) = (dir.join("data"), dir.join("serve.log"));
    let serve = Serve::start(&data, &log);

    // Plain SMTP to another machine is refused with a sentence; nothing is stored.
    let (status, r) = serve.op("POST", "/api/setup", &json!({"notify": {"host": "smtp.example.se", "security": "plain"}}));
    assert_eq!(status, 400, "{r}");
    assert!(r.to_string().contains("allowed only to a relay on this machine"), "{r}");
    let (status, r) = serve.op("POST", "/api/setup", &json!({"notify": {"host": "127.0.0.1", "operator": ["drift"]}}));
    assert_eq!(status, 400, "{r}");
    assert!(r.to_string().contains("the operator address \\\"drift\\\" is not an e-mail address"), "{r}");
    assert_eq!(serve.status()["notify"]["relay"], Value::Null, "nothing stored after a refusal");

    let setup = json!({
        "source": {"host": "127.0.0.1", "port": source.port(), "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": target.port(), "tls": "plain"},
        "pass_interval_seconds": 2,
        "notify": {
            "host": "127.0.0.1", "port": sink.port, "security": "starttls",
            "login": "flytt@leverantor.se", "password": RELAY_PASSWORD,
            "from": "postflytt@leverantor.se", "operator": ["drift@leverantor.se"], "customer": ["it@kund.se"],
        },
    });
    let (status, r) = serve.op("POST", "/api/setup", &setup);
    assert_eq!(status, 200, "{r}");
    let viewer = serve.status();
    assert_eq!(viewer["notify"], json!({"configured": true}), "the customer sees only that notices are on: {viewer:#}");
    let s = serve.op_status();
    assert_eq!(s["notify"]["configured"], true, "{:#}", s["notify"]);
    assert_eq!(s["notify"]["relay"]["password_set"], true);
    assert_eq!(s["notify"]["language"], "sv");

    // The test message: one to the operator, one to the customer, in Swedish.
    let (status, r) = serve.op("POST", "/api/notify/test", &json!({}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["message"], "test message sent to drift@leverantor.se, it@kund.se");
    let got = sink.wait_for_count(2, "the test messages");
    let test = read(&got[1].0, &got[1].1);
    assert_eq!(test.to, ["it@kund.se"]);
    assert_eq!(test.subject, "postflytt: provmeddelande");
    assert_eq!(serve.op_status()["notify"]["last"]["ok"], true);

    // bo's old password in the list is wrong: the check's notice names bo and why, to the operator.
    let csv = "E-post;Lösenord;Nytt lösenord\r\nalice@kund.se;gammalt-1;nytt-1\r\nbo@kund.se;fel-lösen;nytt-2\r\n";
    let token = std::fs::read_to_string(data.join("operator-token")).expect("token");
    let auth = format!("Bearer {}", token.trim());
    let (status, text) = http(serve.port, "POST", "/api/accounts?name=konton.csv", &[("Authorization", &auth)], csv.as_bytes());
    assert_eq!(status, 200, "{text}");
    assert_eq!(serve.op("POST", "/api/check", &json!({})).0, 202);
    let got = sink.wait_for_count(3, "the check's notice");
    let check = read(&got[2].0, &got[2].1);
    assert_eq!(check.to, ["drift@leverantor.se"]);
    assert_eq!(check.subject, "postflytt: kontrollen är klar, 1 av 2 konton behöver åtgärdas");
    assert!(check.text.contains("- bo@kund.se: inloggningen misslyckades (gamla servern)"), "{}", check.text);
    assert!(!check.text.contains("alice@kund.se"), "only the accounts to fix: {}", check.text);

    // Fixed and checked again (one more notice: all ready), then copied and finished.
    let fixed = csv.replace("fel-lösen", "gammalt-2");
    let (status, text) = http(serve.port, "POST", "/api/accounts?name=konton.csv", &[("Authorization", &auth)], fixed.as_bytes());
    assert_eq!(status, 200, "{text}");
    assert_eq!(serve.op("POST", "/api/check", &json!({})).0, 202);
    let got = sink.wait_for_count(4, "the second check's notice");
    assert_eq!(read(&got[3].0, &got[3].1).subject, "postflytt: kontrollen är klar, alla 2 konton är klara");
    assert_eq!(serve.op("POST", "/api/passes/start", &json!({})).0, 200);
    serve.wait_for("the first pass", 60, |s| s["totals"]["pushed_messages"] == 7);
    assert_eq!(serve.op("POST", "/api/finish", &json!({"confirm": true})).0, 202);
    serve.wait_for("finish", 90, |s| s["finished_at"].as_i64().is_some());

    // The finished notice: the customer's in Swedish with the report attached, and the operator's.
    let got = sink.wait_for_count(6, "the finished notices");
    let customer = read(&got[4].0, &got[4].1);
    assert_eq!(customer.to, ["it@kund.se"]);
    assert_eq!(customer.subject, "postflytt: flytten är klar");
    assert!(customer.text.contains("Flytten av er e-post är klar. Rapporten är bifogad"), "{}", customer.text);
    assert_eq!(customer.attachments.len(), 1);
    let (name, html) = &customer.attachments[0];
    assert_eq!(name, "postflytt-rapport.html");
    assert!(html.contains("lang=\"sv\"") && html.contains("alice@kund.se") && html.contains("bo@kund.se"), "{html}");
    let operator = read(&got[5].0, &got[5].1);
    assert_eq!(operator.to, ["drift@leverantor.se"]);
    assert!(operator.text.contains("lösenord och mellanlagrad e-post är raderade"), "{}", operator.text);

    // A restart sends nothing again.
    drop(serve);
    let serve = Serve::start(&data, &log);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sink.messages().len(), 6, "nothing is sent twice after a restart");
    let status_text = serve.op_status().to_string();
    drop(serve);

    // The relay's password: in no status, log line or message; the purge removed it from the database.
    assert!(!status_text.contains(RELAY_PASSWORD), "{status_text}");
    let log_text = std::fs::read_to_string(&log).expect("log");
    assert!(log_text.contains("e-mail notice finished sent to it@kund.se"), "{log_text}");
    assert!(!log_text.contains(RELAY_PASSWORD), "{log_text}");
    for (_, raw) in sink.messages() {
        assert!(!raw.windows(RELAY_PASSWORD.len()).any(|w| w == RELAY_PASSWORD.as_bytes()), "the password in a message");
    }
    for file in ["postflytt.sqlite", "postflytt.sqlite-wal"] {
        assert_eq!(count_in_file(&data.join(file), RELAY_PASSWORD.as_bytes()), 0, "{file}");
    }
    let conn = rusqlite::Connection::open(data.join("postflytt.sqlite")).expect("open db");
    let secrets: i64 = conn.query_row("SELECT count(*) FROM setting WHERE key LIKE 'secret.%'", [], |r| r.get(0)).expect("q");
    assert_eq!(secrets, 0, "the sealed relay password is purged with the other secrets");
    drop(conn);
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cli_sets_up_notices_refuses_plain_to_another_machine_and_sends_a_test() {
    let dir = common::fresh_dir("pf-notify-cli");
    let sink = Sink::start(&dir);
    let data = dir.join("data");
    let run = |args: &[&str]| {
        let out = Command::new(common::postflytt_bin()).arg("--data").arg(&data).arg("setup").args(args).output().expect("run postflytt");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, text) = run(&["--smtp", "smtp.example.se:25", "--smtp-security", "plain"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("plain SMTP sends the relay's password and the report unencrypted"), "{text}");

    let wrong = dir.join("fel");
    std::fs::write(&wrong, "inte-lösenordet\n").expect("write");
    let right = dir.join("rätt");
    std::fs::write(&right, format!("{RELAY_PASSWORD}\n")).expect("write");
    let relay = format!("127.0.0.1:{}", sink.port);
    let (code, text) = run(&[
        "--smtp",
        &relay,
        "--smtp-login",
        "flytt@leverantor.se",
        "--smtp-password-file",
        wrong.to_str().expect("path"),
        "--mail-from",
        "postflytt@leverantor.se",
        "--notify-operator",
        "drift@leverantor.se",
        "--notify-operator",
        "jour@leverantor.se",
        "--notify-language",
        "en",
        "--smtp-test",
    ]);
    assert_eq!(code, Some(1), "a refused login fails the test: {text}");
    assert!(text.contains(&format!("e-mail notices: via {relay} (starttls, with login) from postflytt@leverantor.se")), "{text}");
    assert!(text.contains("e-mail notice test to drift@leverantor.se, jour@leverantor.se not sent"), "{text}");
    assert!(text.contains("Authentication credentials invalid"), "the relay's own words: {text}");
    assert!(!text.contains("inte-lösenordet"), "{text}");
    assert!(sink.messages().is_empty());

    let (code, text) = run(&["--smtp-password-file", right.to_str().expect("path"), "--smtp-test"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("test message sent to drift@leverantor.se, jour@leverantor.se"), "{text}");
    assert!(!text.contains(RELAY_PASSWORD), "{text}");
    let got = sink.wait_for_count(1, "the test message");
    let test = read(&got[0].0, &got[0].1);
    assert_eq!(test.to, ["drift@leverantor.se", "jour@leverantor.se"]);
    assert_eq!(test.subject, "postflytt: test message");
    assert!(test.text.contains("Notices about the migration reach this address."), "{}", test.text);
    let out = Command::new(common::postflytt_bin()).arg("--data").arg(&data).arg("status").output().expect("run postflytt");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains(&format!("e-mail notices: via {relay} (starttls, with login)")), "{status}");
    assert!(status.contains("the last notice (test) was sent"), "{status}");
    assert!(!status.contains(RELAY_PASSWORD), "{status}");
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_mx_flip_goes_to_both_and_safe_to_finish_to_the_operator_in_english() {
    let source = Dovecot::start(Layout::OldHost, &[("alice@kund.se", "gammalt-1")]);
    let target = Dovecot::start(Layout::Target, &[("alice@kund.se", "nytt-1")]);
    fixture::load(&mut source.reader("alice@kund.se"), &fixture::bulk("INBOX", 3, 1, 500..900));
    let dir = common::fresh_dir("pf-notify-mx");
    let sink = Sink::start(&dir);
    let dns_port = common::free_port();
    let mut dns = Dnsmasq::start(dns_port, &[("kund.se", "mx.gammal.example")]);
    let (data, log) = (dir.join("data"), dir.join("serve.log"));
    let serve = Serve::start_with_dns(&data, &log, dns_port);
    let setup = json!({
        "source": {"host": "127.0.0.1", "port": source.port(), "tls": "plain"},
        "target": {"host": "127.0.0.1", "port": target.port(), "tls": "plain"},
        "target_mx": ["mx.ny.example"], "pass_interval_seconds": 2, "quiet_period_seconds": 3, "mx_interval_seconds": 1,
        "notify": {
            "host": "127.0.0.1", "port": sink.port, "login": "flytt@leverantor.se", "password": RELAY_PASSWORD,
            "from": "postflytt@leverantor.se", "operator": "drift@leverantor.se", "customer": "it@kund.se", "language": "en",
        },
    });
    let (status, r) = serve.op("POST", "/api/setup", &setup);
    assert_eq!(status, 200, "{r}");
    let token = std::fs::read_to_string(data.join("operator-token")).expect("token");
    let auth = format!("Bearer {}", token.trim());
    let csv = "E-post;Lösenord;Nytt lösenord\r\nalice@kund.se;gammalt-1;nytt-1\r\n";
    assert_eq!(http(serve.port, "POST", "/api/accounts?name=konton.csv", &[("Authorization", &auth)], csv.as_bytes()).0, 200);
    assert_eq!(serve.op("POST", "/api/passes/start", &json!({})).0, 200);
    serve.wait_for("the first pass", 60, |s| s["totals"]["pushed_messages"] == 3);
    serve.wait_for("the MX watch", 30, |s| s["domains"][0]["domain"] == "kund.se");
    assert!(sink.messages().is_empty(), "nothing to tell before the flip");

    drop(dns);
    dns = Dnsmasq::start(dns_port, &[("kund.se", "mx.ny.example")]);
    let got = sink.wait_for_count(3, "the flip's notices and safe to finish");
    let subjects: Vec<(Vec<String>, String)> = got.iter().map(|(e, raw)| read(e, raw)).map(|m| (m.to, m.subject)).collect();
    let flip = "postflytt: the MX records of kund.se now point at the new server".to_string();
    assert!(subjects.contains(&(vec!["drift@leverantor.se".to_string()], flip.clone())), "{subjects:?}");
    assert!(subjects.contains(&(vec!["it@kund.se".to_string()], flip)), "{subjects:?}");
    assert_eq!(subjects[2], (vec!["drift@leverantor.se".to_string()], "postflytt: safe to finish".to_string()), "{subjects:?}");
    let safe = read(&got[2].0, &got[2].1);
    assert!(safe.text.contains("no new mail has arrived at the old one for 3 seconds"), "{}", safe.text);
    // The watch goes on every second; nothing is told twice.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 3);
    drop(serve);
    drop(dns);
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
}
