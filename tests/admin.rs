//! Admin logins against real Dovecot with master users (`DovecotOptions::master_users`): a migration
//! whose account list has no target passwords, logged in on the target by the admin in either mode
//! (AUTHENTICATE PLAIN with the user as authorization identity, and Dovecot's `user*admin`), read back
//! by the tests' own reader logging in as each user with the user's own password; the check with the
//! admin, a wrong admin password and a server without AUTH=PLAIN, each said in a sentence holding no
//! secret; the admin password nowhere in what a person sees (setup, check and its exports, sync,
//! status, the API's status) and gone from the database file after finish (read with SQLite itself);
//! a source admin with a list that has no password column at all; and the API's keys.

mod common;
mod driver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::fixture;
use common::{Dovecot, DovecotOptions, Layout, Snapshot};
use driver::{Migration, Via};

const ADMIN: &str = "postmaster";
const ADMIN_PASSWORD: &str = "Admin-Lösen 9!";

fn with_master(layout: Layout, users: &[(&str, &str)], extra_config: &str) -> Dovecot {
    let opts = DovecotOptions {
        master_users: vec![(ADMIN.to_string(), ADMIN_PASSWORD.to_string())],
        extra_config: extra_config.to_string(),
        ..DovecotOptions::default()
    };
    Dovecot::start_with(layout, users, opts)
}

fn snapshot(server: &Dovecot, user: &str) -> Snapshot {
    fixture::mailbox_snapshot(&mut server.reader(user))
}

/// The old host's `INBOX.Kunder` is the target's `Kunder`; INBOX is INBOX.
fn old_host_map() -> BTreeMap<String, String> {
    [("INBOX.Kunder".to_string(), "Kunder".to_string())].into()
}

fn fill(source: &Dovecot, user: &str, seed: u64) {
    let mut r = source.reader(user);
    fixture::ensure_folders(&mut r, &["INBOX.Kunder"]);
    fixture::load(&mut r, &fixture::bulk("INBOX", 6, seed, 500..4000));
    fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 4, seed + 100, 500..4000));
}

/// A password file as the operator writes one (with a line end, which is not part of the password).
fn password_file(m: &Migration, name: &str, password: &str) -> String {
    let path = m.data.join(name);
    std::fs::write(&path, format!("{password}\n")).expect("write the password file");
    path.to_string_lossy().into_owned()
}

/// Every form of the admin password a leak could take: as written, and inside AUTHENTICATE PLAIN's
/// base64 for each user it logged in as.
fn secret_forms(users: &[&str]) -> Vec<String> {
    let mut forms = vec![ADMIN_PASSWORD.to_string(), "Admin-Lösen".to_string()];
    for user in users {
        forms.push(common::base64(format!("{user}\0{ADMIN}\0{ADMIN_PASSWORD}").as_bytes()));
    }
    forms
}

fn assert_no_secret(what: &str, text: &str, forms: &[String]) {
    for form in forms {
        assert!(!text.contains(form.as_str()), "{what} shows the admin password ({form}):\n{text}");
    }
}

/// The setting rows of the database file whose key names an admin, read with SQLite itself.
fn admin_rows(data: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(data.join("postflytt.sqlite")).expect("open the database");
    let mut stmt = db.prepare("SELECT key FROM setting WHERE key LIKE '%admin%' ORDER BY key").expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0)).expect("query").map(|k| k.expect("key")).collect()
}

fn line_of<'a>(text: &'a str, account: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(account)).unwrap_or_else(|| panic!("no line for {account}:\n{text}"))
}

#[test]
fn a_target_with_only_an_admin_login_in_plain_mode_gets_all_the_mail_and_finish_forgets_the_admin_password() {
    let source = Dovecot::start(Layout::OldHost, &[("anna@gammal.se", "pw-anna"), ("bo@gammal.se", "pw-bo")]);
    let target = with_master(Layout::Target, &[("anna@ny.se", "eget-anna"), ("bo@ny.se", "eget-bo")], "");
    fill(&source, "anna@gammal.se", 1);
    fill(&source, "bo@gammal.se", 2);
    // The customer's list has no target passwords.
    let m = Migration::new(
        &source,
        Via::Plain,
        &target,
        Via::Tls,
        &[("anna@gammal.se", "pw-anna", "anna@ny.se", ""), ("bo@gammal.se", "pw-bo", "bo@ny.se", "")],
    );
    let forms = secret_forms(&["anna@ny.se", "bo@ny.se"]);
    // Without an admin login the check says how to give one.
    let out = m.run(&["check"]);
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let l = line_of(&text, "anna@gammal.se");
    assert!(l.contains("login failed (target)") && l.contains("no target password stored and no target admin login set"), "{l}");
    assert!(l.contains("postflytt setup --target-admin LOGIN --target-admin-password-file FILE"), "{l}");

    let file = password_file(&m, "admin.txt", ADMIN_PASSWORD);
    let said = m.ok(&["setup", "--target-admin", ADMIN, "--target-admin-password-file", &file]);
    assert!(said.contains("target admin login: postmaster, plain mode (AUTHENTICATE PLAIN as each user"), "{said}");
    assert_no_secret("setup", &said, &forms);

    let out = m.run(&["check"]);
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(0), "both accounts are ready with the admin:\n{text}");
    assert!(line_of(&text, "anna@gammal.se").contains(": ready") && line_of(&text, "bo@gammal.se").contains(": ready"), "{text}");
    assert_no_secret("check", &text, &forms);
    for format in ["csv", "json"] {
        let export = driver::text(&m.run(&["check", "--format", format]));
        assert_no_secret(&format!("the check's {format}"), &export, &forms);
    }

    let out = m.run_env(&["sync"], &[("POSTFLYTT_LOG", "debug")]);
    let text = driver::text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(driver::appended(&text), 20, "{text}");
    assert_no_secret("sync's output and log", &text, &forms);
    for user in ["anna", "bo"] {
        // Read back as the user, with the user's own password, which postflytt never had.
        fixture::assert_same_mail(
            &snapshot(&source, &format!("{user}@gammal.se")),
            &snapshot(&target, &format!("{user}@ny.se")),
            &old_host_map(),
        );
    }
    let status = m.ok(&["status"]);
    assert!(status.contains("target admin login: postmaster, plain mode (password stored)"), "{status}");
    assert_no_secret("status", &status, &forms);
    // Dovecot logged each user in (with the admin's password: postflytt never had the users' own).
    assert!(target.log().contains("Login: user=<anna@ny.se>, method=PLAIN"), "{}", target.log());

    assert_eq!(admin_rows(&m.data), ["secret.target.admin.password", "target.admin.login", "target.admin.mode"]);
    let finished = m.ok(&["finish"]);
    assert_no_secret("finish", &finished, &forms);
    assert_eq!(admin_rows(&m.data), ["target.admin.login", "target.admin.mode"], "the sealed admin password is purged at finish");
    let status = m.ok(&["status"]);
    assert!(status.contains("target admin login: postmaster, plain mode (no password stored)"), "{status}");
}

#[test]
fn the_master_mode_logs_in_as_user_star_admin_and_wrong_settings_are_said_without_the_secret() {
    let source = Dovecot::start(Layout::OldHost, &[("cia@gammal.se", "pw-cia")]);
    // (A server without AUTH=PLAIN, where the plain mode cannot work, is the transcript tests': Dovecot
    // cannot offer LOGIN without the PLAIN mechanism.)
    let target = with_master(Layout::Target, &[("cia@ny.se", "eget-cia")], "");
    fill(&source, "cia@gammal.se", 3);
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[("cia@gammal.se", "pw-cia", "cia@ny.se", "")]);
    let wrong = "Fel-Admin-Lösen";
    let mut forms = secret_forms(&["cia@ny.se"]);
    forms.push(wrong.to_string());
    let file = password_file(&m, "admin.txt", ADMIN_PASSWORD);

    // The master mode with a wrong password: a sentence naming the admin and what to check.
    let wrong_file = password_file(&m, "wrong.txt", wrong);
    let said = m.ok(&["setup", "--target-admin", ADMIN, "--target-admin-mode", "master", "--target-admin-password-file", &wrong_file]);
    assert!(said.contains("target admin login: postmaster, master mode (Dovecot's master-user login user*postmaster)"), "{said}");
    let out = m.run(&["check"]);
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let l = line_of(&text, "cia@gammal.se");
    assert!(l.contains("login failed (target)"), "{l}");
    assert!(l.contains("the target admin login postmaster (master mode) could not log in as cia@ny.se: check the admin's password"), "{l}");
    assert!(l.contains("AUTHENTICATIONFAILED"), "the server's words are quoted: {l}");
    assert_no_secret("check", &text, &forms);
    let export = driver::text(&m.run(&["check", "--format", "csv"]));
    assert!(export.contains("could not log in as cia@ny.se"), "{export}");
    assert_no_secret("the check's csv", &export, &forms);

    // The right password (the login and mode stay): ready, and the mail moves.
    m.ok(&["setup", "--target-admin-password-file", &file]);
    let text = m.ok(&["check"]);
    assert!(line_of(&text, "cia@gammal.se").contains(": ready"), "{text}");
    let text = m.sync();
    assert_eq!(driver::appended(&text), 10, "{text}");
    assert_no_secret("sync", &text, &forms);
    fixture::assert_same_mail(&snapshot(&source, "cia@gammal.se"), &snapshot(&target, "cia@ny.se"), &old_host_map());

    // Removed, the account has nothing to log in with again.
    let said = m.ok(&["setup", "--no-target-admin"]);
    assert!(said.contains("target admin login removed"), "{said}");
    assert!(admin_rows(&m.data).is_empty(), "{:?}", admin_rows(&m.data));
    let out = m.run(&["check"]);
    assert!(driver::text(&out).contains("no target password stored and no target admin login set"), "{}", driver::text(&out));
}

#[test]
fn a_source_admin_login_moves_a_list_without_any_source_password() {
    let source = with_master(Layout::OldHost, &[("dan@gammal.se", "eget-dan"), ("eva@gammal.se", "eget-eva")], "");
    let target = Dovecot::start(Layout::Target, &[("dan@ny.se", "pw-dan"), ("eva@ny.se", "pw-eva")]);
    fill(&source, "dan@gammal.se", 4);
    fill(&source, "eva@gammal.se", 5);
    let m = Migration { data: common::fresh_dir("pf-data") };
    let (sp, tp) = (source.port().to_string(), target.port().to_string());
    m.ok(&[
        "setup",
        "--source",
        &format!("127.0.0.1:{sp}"),
        "--source-tls",
        "plain",
        "--target",
        &format!("127.0.0.1:{tp}"),
        "--target-tls",
        "plain",
    ]);
    // No password column for the old server at all.
    let list: PathBuf = m.data.join("konton.csv");
    std::fs::write(&list, "E-post;Ny inloggning;Nytt lösenord\r\ndan@gammal.se;dan@ny.se;pw-dan\r\neva@gammal.se;eva@ny.se;pw-eva\r\n")
        .expect("list");
    let list = list.to_string_lossy().into_owned();
    let out = m.run(&["import", &list]);
    let text = driver::text(&out);
    assert!(!out.status.success() && text.contains("no column for the password on the old server"), "refused without an admin:\n{text}");

    let file = password_file(&m, "admin.txt", ADMIN_PASSWORD);
    let said = m.ok(&["setup", "--source-admin", ADMIN, "--source-admin-password-file", &file]);
    assert!(said.contains("source admin login: postmaster, plain mode"), "{said}");
    m.ok(&["import", &list]);
    let forms = secret_forms(&["dan@gammal.se", "eva@gammal.se"]);
    let text = m.ok(&["check"]);
    assert!(line_of(&text, "dan@gammal.se").contains(": ready") && line_of(&text, "eva@gammal.se").contains(": ready"), "{text}");
    let text = m.sync();
    assert_eq!(driver::appended(&text), 20, "{text}");
    assert_no_secret("sync", &text, &forms);
    for user in ["dan", "eva"] {
        fixture::assert_same_mail(
            &snapshot(&source, &format!("{user}@gammal.se")),
            &snapshot(&target, &format!("{user}@ny.se")),
            &old_host_map(),
        );
    }
    let verified = m.ok(&["verify"]);
    assert!(verified.contains("dan@gammal.se: verified") && verified.contains("eva@gammal.se: verified"), "{verified}");
}

#[test]
fn setup_refuses_an_admin_login_it_cannot_use_and_stores_nothing_of_it() {
    let m = Migration { data: common::fresh_dir("pf-data") };
    let file = password_file(&m, "admin.txt", ADMIN_PASSWORD);
    let refused = |args: &[&str], want: &str| {
        let out = m.run(args);
        let text = driver::text(&out);
        assert!(!out.status.success() && text.contains(want), "{args:?}: want {want:?}:\n{text}");
        assert!(!text.contains(ADMIN_PASSWORD), "{text}");
    };
    refused(&["setup", "--target-admin", ADMIN], "the target admin login postmaster needs its password");
    refused(&["setup", "--target-admin", ADMIN, "--target-admin-password-file", &file, "--target-admin-mode", "sasl"], "plain");
    refused(&["setup", "--target-admin", ADMIN, "--target-admin-password-file", &file, "--target-kind", "m365"], "Microsoft 365");
    refused(&["setup", "--source-admin-mode", "master"], "no source admin login is set");
    refused(&["setup", "--target-admin", ADMIN, "--no-target-admin"], "cannot be removed and set");
    assert!(!m.data.join("postflytt.sqlite").exists() || admin_rows(&m.data).is_empty(), "nothing of a refused admin login is stored");
}

/// `postflytt serve` on a free port, its log (stderr) in a file, stopped when dropped.
struct Serve {
    child: std::process::Child,
    port: u16,
    data: PathBuf,
}

impl Serve {
    fn start(data: &Path) -> Serve {
        let port = common::free_port();
        let log = std::fs::File::create(data.join("serve.log")).expect("log file");
        let child = std::process::Command::new(common::postflytt_bin())
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            // Nothing answers there: the MX watch has no domains to look at anyway.
            .env("POSTFLYTT_RESOLVER", format!("127.0.0.1:{}", common::free_port()))
            .env("POSTFLYTT_LOG", "debug")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start serve");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "serve did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Serve { child, port, data: data.to_path_buf() }
    }

    fn op(&self, method: &str, path: &str, body: &serde_json::Value) -> common::web::Response {
        let token = std::fs::read_to_string(self.data.join("operator-token")).expect("token");
        let auth = format!("Bearer {}", token.trim());
        common::web::http(self.port, method, path, &[("Authorization", &auth)], body.to_string().as_bytes())
    }

    fn viewer_status(&self) -> String {
        let code = std::fs::read_to_string(self.data.join("viewer-code")).expect("code");
        common::web::http(self.port, "GET", "/api/status", &[("X-Viewer-Code", code.trim())], b"").text()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_api_sets_shows_and_removes_an_admin_login_and_never_answers_its_password() {
    use serde_json::json;
    let target = with_master(Layout::Target, &[("fia@ny.se", "eget-fia")], "");
    let data = common::fresh_dir("pf-serve");
    let serve = Serve::start(&data);
    let forms = secret_forms(&["fia@ny.se"]);
    let side = json!({"host": "127.0.0.1", "port": target.port(), "tls": "plain"});
    let refused = |body: serde_json::Value, want: &str| {
        let r = serve.op("POST", "/api/setup", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(want), "{body}: want {want:?}: {}", r.text());
        assert_no_secret("a refused setup", &r.text(), &forms);
    };
    let admin = |mode: &str| json!({"login": ADMIN, "password": ADMIN_PASSWORD, "mode": mode});
    refused(json!({"target": side, "target_admin": admin("sasl")}), "the target admin mode must be plain");
    refused(json!({"target": side, "target_admin": {"login": ADMIN, "pass": "x"}}), "target_admin: unknown field `pass`");
    refused(json!({"target": side, "target_admin": admin("plain"), "target_kind": "m365"}), "Microsoft 365");
    refused(json!({"target": side, "target_admin": {"login": ADMIN}}), "the target admin login postmaster needs its password");
    let status = serve.op("GET", "/api/status", &json!({})).json();
    assert_eq!(status["target"], serde_json::Value::Null, "nothing of a refused setup is stored: {status:#}");

    let r = serve.op("POST", "/api/setup", &json!({"target": side, "target_admin": admin("master")}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_secret("the setup's answer", &r.text(), &forms);
    let status = serve.op("GET", "/api/status", &json!({}));
    assert_eq!(status.json()["target_admin"], json!({"login": ADMIN, "mode": "master", "password_set": true}));
    assert_eq!(status.json()["source_admin"], serde_json::Value::Null);
    assert_no_secret("the status", &status.text(), &forms);
    let viewer = serve.viewer_status();
    assert!(!viewer.contains("target_admin") && !viewer.contains(ADMIN), "the customer is not shown the admin login: {viewer}");
    // The mode alone changes the mode; the password stays stored.
    let r = serve.op("POST", "/api/setup", &json!({"target_admin": {"mode": "plain"}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(serve.op("GET", "/api/status", &json!({})).json()["target_admin"]["mode"], "plain");
    assert_eq!(admin_rows(&data), ["secret.target.admin.password", "target.admin.login", "target.admin.mode"]);

    let r = serve.op("POST", "/api/setup", &json!({"target_admin": null}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(serve.op("GET", "/api/status", &json!({})).json()["target_admin"], serde_json::Value::Null);
    assert!(admin_rows(&data).is_empty(), "{:?}", admin_rows(&data));
    drop(serve);
    let log = std::fs::read_to_string(data.join("serve.log")).unwrap_or_default();
    assert_no_secret("the appliance's log", &log, &forms);
    let _ = std::fs::remove_dir_all(&data);
}
