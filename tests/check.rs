//! The pre-flight check against real Dovecot servers: a ready account, a wrong source password, a wrong
//! target password, an unreachable host, an account that does not fit its quota and one with a message
//! over the target's size limit, each with a verdict and words an operator acts on; the CSV and JSON
//! exports; and the time `check` takes for 50 accounts.

mod common;
mod driver;

use std::time::Instant;

use common::fixture;
use common::{Dovecot, DovecotOptions, Layout};
use driver::{Migration, Via};

#[test]
fn verdicts_for_every_kind_of_problem() {
    let source = Dovecot::start(
        Layout::OldHost,
        &[("ok@gammal.se", "pw"), ("fel@gammal.se", "rätt"), ("mal@gammal.se", "pw"), ("stor@gammal.se", "pw"), ("stort@gammal.se", "pw")],
    );
    let opts = DovecotOptions { quota_storage: Some("1M".into()), append_limit: Some(512 * 1024), ..DovecotOptions::default() };
    let target = Dovecot::start_with(
        Layout::Target,
        &[("ok@ny.se", "pw"), ("fel@ny.se", "pw"), ("mal@ny.se", "rätt"), ("stor@ny.se", "pw"), ("stort@ny.se", "pw")],
        opts,
    );
    let mut r = source.reader("ok@gammal.se");
    fixture::ensure_folders(&mut r, &["INBOX.Kunder"]);
    fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 5, 1, 1000..2000));
    drop(r);
    // 1.5 MB in small messages: more than the 1 MB quota, none over the 512 KB limit.
    fixture::load(&mut source.reader("stor@gammal.se"), &fixture::bulk("INBOX", 30, 2, 50_000..51_000));
    // One message over the limit, with a subject to list.
    let big = fixture::big_message(700 * 1024);
    let mut r = source.reader("stort@gammal.se");
    r.append("INBOX", &[], Some("05-May-2021 09:00:00 +0200"), &big);
    fixture::load(&mut r, &fixture::bulk("INBOX", 2, 3, 100..200));
    drop(r);

    let m = Migration::new(
        &source,
        Via::Tls,
        &target,
        Via::Plain,
        &[
            ("ok@gammal.se", "pw", "ok@ny.se", "pw"),
            ("fel@gammal.se", "fel-lösen", "fel@ny.se", "pw"),
            ("mal@gammal.se", "pw", "mal@ny.se", "fel-lösen"),
            ("stor@gammal.se", "pw", "stor@ny.se", "pw"),
            ("stort@gammal.se", "pw", "stort@ny.se", "pw"),
        ],
    );
    let out = m.run(&["check"]);
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(2), "not every account is ready:\n{text}");
    let line = |account: &str| {
        text.lines().find(|l| l.starts_with(account)).unwrap_or_else(|| panic!("no line for {account}:\n{text}")).to_string()
    };
    assert!(line("ok@gammal.se").contains(": ready"), "{text}");
    assert!(text.contains("INBOX.Kunder") && text.contains("Kunder "), "folders and their mapping are listed:\n{text}");
    let l = line("fel@gammal.se");
    assert!(l.contains("login failed (source)") && l.contains("AUTHENTICATIONFAILED"), "{l}");
    let l = line("mal@gammal.se");
    assert!(l.contains("login failed (target)") && l.contains("mal@ny.se"), "{l}");
    assert!(line("stor@gammal.se").contains("will not fit"), "{text}");
    let l = line("stort@gammal.se");
    assert!(l.contains("over the target's size limit"), "{l}");
    assert!(text.contains("over the limit: 700.0 KB in INBOX"), "the oversized message is listed:\n{text}");
    assert!(!text.contains("fel-lösen"), "passwords never appear:\n{text}");
    assert!(text.contains("free for staging"), "{text}");

    // Exports for the customer.
    let csv = m.run(&["check", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout).to_string();
    assert!(csv.starts_with('\u{feff}'), "Excel needs the BOM");
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.contains("fel@gammal.se;fel@ny.se;login failed (source)"), "{csv}");
    let book = m.data.join("kontroll.xlsx");
    let out = m.run(&["check", "--format", "xlsx", "--output", book.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{}", driver::text(&out));
    {
        use calamine::{Reader, Xlsx, open_workbook};
        let mut wb: Xlsx<_> = open_workbook(&book).expect("a workbook calamine opens");
        let range = wb.worksheet_range("Check").expect("sheet Check");
        let rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
        assert_eq!(rows.len(), 6, "{rows:?}");
        assert!(rows.iter().any(|r| r[0] == "mal@gammal.se" && r[2] == "login failed (target)"), "{rows:?}");
        let over = wb.worksheet_range("Over the limit").expect("sheet Over the limit");
        assert!(over.rows().any(|r| r[0] == "stort@gammal.se" && r[1] == "INBOX"));
    }
    let json = m.run(&["check", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["accounts"].as_array().map(Vec::len), Some(5));
    let ok = v["accounts"].as_array().and_then(|a| a.iter().find(|x| x["account"] == "ok@gammal.se")).expect("ok account");
    assert_eq!(ok["verdict"], "ready");
    assert!(
        ok["folders"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x["source"] == "INBOX.Kunder" && x["target"] == "Kunder" && x["messages"] == 5))
    );
}

#[test]
fn unreachable_host_and_untrusted_certificate_are_explained() {
    let source = Dovecot::start(Layout::Modern, &[("a@gammal.se", "pw")]);
    let target = Dovecot::start(Layout::Target, &[("a@ny.se", "pw")]);
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[("a@gammal.se", "pw", "a@ny.se", "pw")]);
    // Nothing listens on this port.
    let dead = common::free_port();
    m.ok(&["setup", "--source", &format!("127.0.0.1:{dead}"), "--source-tls", "plain"]);
    let text = driver::text(&m.run(&["check"]));
    assert!(text.contains("login failed (source)") && text.contains("cannot reach"), "{text}");
    // A self-signed certificate that is not pinned: setup says so at once, and the check once for the
    // side (issue 16 #4: no login failure), both with the fingerprint to pin and the command pinning it.
    let fp = source.cert_sha256_fingerprint();
    let plain_fp: String = fp.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_lowercase();
    let setup = driver::text(&m.run(&["setup", "--source", &format!("127.0.0.1:{}", source.tls_port()), "--source-tls", "implicit"]));
    assert!(setup.contains("is self-signed") && setup.contains(&format!("--source-pin {plain_fp}")), "{setup}");
    let text = driver::text(&m.run(&["check"]));
    assert!(
        text.contains("source server: certificate not trusted (self-signed") && text.contains(&plain_fp),
        "the fingerprint is shown:\n{text}"
    );
    assert!(text.contains(&format!("postflytt setup --source-pin {plain_fp}")) && !text.contains("login failed"), "{text}");
    // The same certificate after STARTTLS on the plain port.
    let setup = driver::text(&m.run(&["setup", "--source", &format!("127.0.0.1:{}", source.port()), "--source-tls", "starttls"]));
    assert!(setup.contains("(starttls) is self-signed") && setup.contains(&format!("--source-pin {plain_fp}")), "{setup}");
    m.ok(&["setup", "--source", &format!("127.0.0.1:{}", source.tls_port()), "--source-tls", "implicit", "--source-pin", &fp]);
    let text = driver::text(&m.run(&["check"]));
    assert!(text.contains("a@gammal.se -> a@ny.se: ready"), "{text}");
}

#[test]
fn fifty_accounts_are_checked_in_parallel() {
    let users: Vec<(String, String)> = (0..50).map(|i| (format!("u{i}@kund.se"), format!("pw{i}"))).collect();
    let refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let source = Dovecot::start(Layout::OldHost, &refs);
    let target = Dovecot::start(Layout::Target, &refs);
    for (u, _) in users.iter().take(5) {
        fixture::load(&mut source.reader(u), &fixture::bulk("INBOX", 20, 5, 500..1500));
    }
    let accounts: Vec<(&str, &str, &str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str(), u.as_str(), p.as_str())).collect();
    let m = Migration::new(&source, Via::Tls, &target, Via::Plain, &accounts);
    let started = Instant::now();
    let out = m.run(&["check", "--parallel", "8"]);
    let seconds = started.elapsed().as_secs_f64();
    let text = driver::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("50 of 50 accounts ready"), "{text}");
    eprintln!("check of 50 accounts against local servers: {seconds:.2} s");
}
