//! The calendar and contact part of `postflytt check` (issue 19, design `docs/dav.md` §6) against real
//! servers on loopback: Radicale as the old server's DAV, xandikos as the new one's, the mail on
//! throwaway Dovecot. The check's table line and each left-out collection, a wrong DAV password in the
//! account list as its own verdict, the export's DAV columns, and the setup's side test of a DAV
//! server that answers and of a closed port.

mod common;
mod driver;

use std::collections::BTreeSet;

use common::dav::{self, DavServer};
use common::fixture::{self, FixtureMsg};
use common::{Dovecot, Layout};
use driver::{Migration, Via, text};

fn one_message() -> FixtureMsg {
    FixtureMsg {
        folder: "INBOX".into(),
        flags: BTreeSet::new(),
        internal_date: "01-Dec-2026 10:00:00 +0100".into(),
        body: b"From: a@gammal.se\r\nSubject: Hej\r\nMessage-ID: <davcheck-1@postflytt.test>\r\n\r\nHej\r\n".to_vec(),
    }
}

/// Mail for `anna` on both sides, Radicale (with the fixture's calendar and address book) as the
/// source's DAV and xandikos as the target's, all set up; returns setup's output too.
fn migration() -> (Dovecot, Dovecot, DavServer, DavServer, Migration, String) {
    let source_mail = Dovecot::start(Layout::OldHost, &[("anna", "pw-src")]);
    let target_mail = Dovecot::start(Layout::Target, &[("anna", "pw-tgt")]);
    fixture::load(&mut source_mail.reader("anna"), &[one_message()]);
    let source = DavServer::radicale(&[("anna", "pw-src")]);
    let target = DavServer::xandikos("anna");
    dav::load_fixture(&source, "anna");
    let m = Migration::new(&source_mail, Via::Plain, &target_mail, Via::Plain, &[("anna", "pw-src", "anna", "pw-tgt")]);
    let (s, t) = (format!("{}/", source.base_url()), format!("{}/", target.base_url()));
    let said = m.ok(&["setup", "--source-dav", &s, "--target-dav", &t]);
    (source_mail, target_mail, source, target, m, said)
}

#[test]
fn check_counts_calendars_address_books_and_items_and_exports_them() {
    let (_sm, _tm, source, target, m, said) = migration();
    // The setup's side test: both servers answer (Radicale asks for a login).
    let source_url = format!("{}/", source.base_url());
    assert!(said.contains(&format!("source calendar server at {source_url}: reachable (HTTP ")), "{said}");
    assert!(said.contains(&format!("target calendar server at {}/: reachable (HTTP ", target.base_url())), "{said}");

    let out = m.run(&["check"]);
    let table = text(&out);
    assert!(out.status.success(), "{table}");
    assert!(table.contains("calendars and contacts: 1 calendar, 1 address book, 6 items"), "{table}");
    assert!(table.contains("calendar \"Jobb\": 4 items") && table.contains("address book \"Kontakter\": 2 items"), "{table}");

    let csv_path = m.data.join("check.csv");
    let p = csv_path.to_string_lossy().to_string();
    m.ok(&["check", "--format", "csv", "--output", &p]);
    let csv = std::fs::read_to_string(&csv_path).expect("csv");
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    assert!(header.ends_with("calendars;address books;calendar and contact items;DAV login"), "{csv}");
    let row = lines.next().expect("a row");
    assert!(row.starts_with("anna;anna;ready;"), "{csv}");
    assert!(row.ends_with(";1;1;6;ok"), "{csv}");
}

#[test]
fn a_wrong_dav_password_is_the_verdict_of_an_account_whose_mail_is_ready() {
    let (_sm, _tm, _source, _target, m, _) = migration();
    // The account list's DAV columns: Radicale refuses this password (xandikos takes any login).
    let list = "E-post;Lösenord;Ny inloggning;Nytt lösenord;Source DAV password\r\nanna;pw-src;anna;pw-tgt;fel-lösen\r\n";
    let path = m.data.join("dav-accounts.csv");
    std::fs::write(&path, list).expect("write the list");
    m.ok(&["import", &path.to_string_lossy()]);

    let out = m.run(&["check"]);
    let table = text(&out);
    assert_eq!(out.status.code(), Some(2), "not ready: {table}");
    assert!(table.contains("anna -> anna: calendar login failed on the old server: "), "{table}");
    assert!(table.contains("calendars and contacts: calendar login failed on the old server: "), "{table}");
    // The mail was measured all the same: it moves; only the calendars wait for the login.
    assert!(table.contains(" 1 messages, "), "{table}");

    let csv_path = m.data.join("check.csv");
    let p = csv_path.to_string_lossy().to_string();
    let out = m.run(&["check", "--format", "csv", "--output", &p]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let csv = std::fs::read_to_string(&csv_path).expect("csv");
    let row = csv.lines().nth(1).expect("a row");
    assert!(row.starts_with("anna;anna;calendar login failed on the old server;"), "{csv}");
    assert!(row.ends_with(";;;;failed on the old server"), "{csv}");
}

#[test]
fn the_setup_says_a_closed_dav_port_is_not_reachable_and_stores_it_all_the_same() {
    let data = common::fresh_dir("pf-davcheck-setup");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/dav/");
    let out = driver::postflytt(&data, &["setup", "--source-dav", &url], &[]);
    let said = text(&out);
    assert!(out.status.success(), "stored although the server is down today: {said}");
    assert!(said.contains(&format!("source calendar server at {url}: NOT reachable: ")), "{said}");
    let status = text(&driver::postflytt(&data, &["status"], &[]));
    assert!(status.contains(&format!("source calendars and contacts (CalDAV/CardDAV): {url}")), "{status}");
    let _ = std::fs::remove_dir_all(&data);
}
