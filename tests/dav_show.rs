//! Calendars and contacts as people read about them (issue 19, `docs/dav.md` §6): after a `sync` that
//! moved a Radicale source's calendar and address book to xandikos (mail on throwaway Dovecot), the
//! `status` line, the counts in `GET /api/status` for the operator and the customer (viewer), and the
//! report's section, JSON, CSV columns and checklist sentence; and the line on the page, rendered by
//! Debian's headless Chromium (as tests/page.rs does) for the customer in Swedish and English. A
//! migration without DAV keeps the checklist's "move them by hand".

mod common;
mod driver;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dav::{self, DavServer};
use common::fixture::{self, FixtureMsg};
use common::web::http;
use common::{Dovecot, Layout};
use driver::Migration;
use driver::Via;
use serde_json::Value;

/// `postflytt serve` on a free loopback port, stopped when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(data: &Path) -> Serve {
        let port = common::free_port();
        let child = Command::new(common::postflytt_bin())
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Serve { child, port }
    }

    fn status(&self, header: &str, credential: &str) -> Value {
        let r = http(self.port, "GET", "/api/status", &[(header, credential)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn one_message() -> FixtureMsg {
    FixtureMsg {
        folder: "INBOX".into(),
        flags: BTreeSet::new(),
        internal_date: "01-Dec-2026 10:00:00 +0100".into(),
        body: b"From: a@gammal.se\r\nSubject: Hej\r\nMessage-ID: <dav-show-1@postflytt.test>\r\n\r\nHej\r\n".to_vec(),
    }
}

/// `postflytt report ARGS`'s standard output (the log goes to stderr).
fn report(m: &Migration, args: &[&str]) -> String {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    let out = m.run(&all);
    assert!(out.status.success(), "{}", driver::text(&out));
    String::from_utf8(out.stdout).expect("report in UTF-8")
}

#[test]
fn status_api_and_report_count_the_calendars_and_contacts_moved() {
    let source_mail = Dovecot::start(Layout::OldHost, &[("anna", "pw-src")]);
    let target_mail = Dovecot::start(Layout::Target, &[("anna", "pw-tgt")]);
    fixture::load(&mut source_mail.reader("anna"), &[one_message()]);
    let source = DavServer::radicale(&[("anna", "pw-src")]);
    let target = DavServer::xandikos("anna");
    let loaded = dav::load_fixture(&source, "anna");
    let items = (loaded.events.len() + loaded.contacts.len()) as u64;
    let m = Migration::new(&source_mail, Via::Plain, &target_mail, Via::Plain, &[("anna", "pw-src", "anna", "pw-tgt")]);

    // Before DAV is set up the checklist keeps today's sentence and no count is shown.
    let json: Value = serde_json::from_str(&report(&m, &["--format", "json"])).expect("report json");
    let item = json["checklist"].as_array().unwrap().iter().find(|i| i["id"] == "calendars_contacts").cloned().unwrap();
    assert!(item["en"].as_str().unwrap().contains("moved e-mail only"), "{item}");
    assert!(json["accounts"][0]["dav"].is_null(), "{}", json["accounts"][0]);

    let (s, t) = (format!("{}/", source.base_url()), format!("{}/", target.base_url()));
    m.ok(&["setup", "--source-dav", &s, "--target-dav", &t]);
    let out = m.sync();
    assert!(out.contains(&format!("{items} items copied")), "{out}");

    // `status`: one line per account.
    let status = driver::text(&m.run(&["status"]));
    let expected = format!("calendars and contacts: 1 calendar, 1 address book, {items} of {items} items copied");
    assert!(status.lines().any(|l| l.trim() == expected), "want {expected:?} in:\n{status}");

    // The API, for the operator and for the customer alike.
    let serve = Serve::start(&m.data);
    let token = std::fs::read_to_string(m.data.join("operator-token")).unwrap().trim().to_string();
    let code = std::fs::read_to_string(m.data.join("viewer-code")).unwrap().trim().to_string();
    for status in [serve.status("Authorization", &format!("Bearer {token}")), serve.status("X-Viewer-Code", &code)] {
        let want = serde_json::json!({
            "calendars": 1, "address_books": 1, "items": items, "copied": items, "refused": 0, "skipped_collections": 0
        });
        assert_eq!(status["accounts"][0]["dav"], want, "{}", status["accounts"][0]);
        assert_eq!(status["totals"]["dav"], want, "{}", status["totals"]);
    }
    // The page, as the customer sees it, in both languages.
    for (lang, accept, line) in [
        ("sv", "sv-SE,sv", format!("Kalendrar och kontakter: 1 kalender, 1 adressbok, {items} av {items} objekt kopierade")),
        ("en", "en-US,en", format!("Calendars and contacts: 1 calendar, 1 address book, {items} of {items} items copied")),
    ] {
        let dom = common::chromium::dump_dom(&format!("http://127.0.0.1:{}/#code={code}&lang={lang}", serve.port), accept);
        assert!(dom.contains(&format!(">{line}</div>")), "want {line:?} on the page ({lang}):\n{dom}");
    }
    drop(serve);

    // The report: JSON, the HTML section in both languages, the CSV's columns, the checklist.
    let json: Value = serde_json::from_str(&report(&m, &["--format", "json"])).expect("report json");
    let section = &json["accounts"][0]["dav"];
    assert_eq!(section["counts"]["copied"], items, "{section}");
    let names: BTreeSet<(String, String)> = section["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["kind"].as_str().unwrap().to_string()))
        .collect();
    let want: BTreeSet<(String, String)> =
        [(dav::FIXTURE_CALENDAR.to_string(), "calendar".to_string()), (dav::FIXTURE_ADDRESSBOOK.to_string(), "addressbook".to_string())]
            .into();
    assert_eq!(names, want, "{section}");
    let item = json["checklist"].as_array().unwrap().iter().find(|i| i["id"] == "calendars_contacts").cloned().unwrap();
    assert_eq!(
        item["en"].as_str().unwrap(),
        format!(
            "Calendars and contacts were moved ({items} items). Shared calendars, subscriptions and delegations were not: add them again on the new service."
        )
    );
    assert!(item["sv"].as_str().unwrap().starts_with(&format!("Kalendrar och kontakter har flyttats ({items} objekt).")), "{item}");

    let sv = report(&m, &["--format", "html", "--lang", "sv"]);
    assert!(sv.contains("<h3>Kalendrar och kontakter</h3>"), "{sv}");
    assert!(sv.contains(&format!("1 kalender, 1 adressbok, {items} av {items} objekt kopierade")), "{sv}");
    assert!(sv.contains(dav::FIXTURE_CALENDAR) && sv.contains(dav::FIXTURE_ADDRESSBOOK), "{sv}");
    let en = report(&m, &["--format", "html", "--lang", "en"]);
    assert!(en.contains("<h3>Calendars and contacts</h3>"), "{en}");
    assert!(en.contains(&format!("1 calendar, 1 address book, {items} of {items} items copied")), "{en}");

    let csv = report(&m, &["--format", "csv"]);
    let mut lines = csv.lines().map(|l| l.trim_start_matches('\u{feff}'));
    let header = lines.next().unwrap();
    assert!(header.ends_with("calendars;address books;items copied;items refused"), "{csv}");
    for row in lines.filter(|l| !l.is_empty()) {
        assert!(row.ends_with(&format!(";1;1;{items};0")), "{csv}");
    }
}
