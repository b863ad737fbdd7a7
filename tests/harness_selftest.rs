//! Self-tests of the integration-test harness in `tests/common/`: the three Dovecot layouts start side
//! by side, the hard-case fixture goes in and comes back as loaded (modulo Dovecot's documented
//! normalisation, see `fixture::dovecot_served_form`), the TLS port speaks TLS, passwords with odd
//! characters work (and can change while the server runs), restart keeps mail and ports, the target
//! enforces its APPENDLIMIT, the comparison reports differences precisely, the cutting proxy cuts
//! exactly where told, and Radicale and xandikos take the calendar/contact fixture and give it back
//! (modulo their re-serialising and two named quirks) to the tests' own DAV reader.

mod common;

use common::dav::{self, DavServer};
use common::fixture::{self, Snapshot};
use common::reader::{mutf7_decode, mutf7_encode, parse_internal_date};
use common::{CutProxy, Direction, Dovecot, DovecotOptions, ImapReader, Layout};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn modified_utf7_round_trips() {
    for (utf8, wire) in [
        ("INBOX", "INBOX"),
        ("Skräppost", "Skr&AOQ-ppost"),
        ("Kunder/Åre", "Kunder/&AMU-re"),
        ("INBOX.Kunder.Åre", "INBOX.Kunder.&AMU-re"),
        ("Tomt & tyst", "Tomt &- tyst"),
        ("日本語", "&ZeVnLIqe-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("emoji 📬 låda", "emoji &2D3c7A- l&AOU-da"),
    ] {
        assert_eq!(mutf7_encode(utf8), wire, "encode {utf8:?}");
        assert_eq!(mutf7_decode(wire).as_deref(), Ok(utf8), "decode {wire:?}");
    }
    assert!(mutf7_decode("&AOQ").is_err(), "unterminated shift must fail");
    assert!(mutf7_decode("Skräp").is_err(), "raw 8-bit must fail");
}

#[test]
fn helpers_behave() {
    for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
        assert_eq!(common::base64(input.as_bytes()), want, "base64({input:?})");
    }
    assert_eq!(parse_internal_date("01-Jan-1970 00:00:00 +0000"), Some(0));
    assert_eq!(parse_internal_date("01-Jan-2001 10:00:00 +0530"), parse_internal_date("01-Jan-2001 04:30:00 +0000"));
    assert_eq!(parse_internal_date(" 1-Mar-2024 00:00:00 -0100"), Some(1_709_254_800));
    assert_eq!(parse_internal_date("garbage"), None);
    for size in [300, 301, 302, 377, 378, 379, 1000, 65_536, 1_000_003] {
        let m = fixture::big_message(size);
        assert_eq!(m.len(), size, "big_message({size})");
        assert_eq!(fixture::dovecot_served_form(&m), m, "big_message({size}) must be served unchanged");
    }
    let a = fixture::bulk("INBOX", 20, 7, 500..5000);
    assert_eq!(a, fixture::bulk("INBOX", 20, 7, 500..5000), "bulk is deterministic");
    assert!(a.iter().all(|m| (500..5000).contains(&m.body.len())), "bulk sizes in range");
    // Dovecot's line-ending normalisation, as measured (see the fixture module).
    for (given, served) in [
        (&b"a\nb\n"[..], &b"a\r\nb\r\n"[..]),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\rb\r\n", b"a\rb\r\n"),
        (b"x\r\r\ny", b"x\r\ny"),
        (b"end\r", b"end"),
        (b"nul\x00!", b"nul\x80!"),
    ] {
        assert_eq!(fixture::dovecot_served_form(given), served, "served form of {:?}", given.escape_ascii().to_string());
    }
    let mut names = vec!["INBOX".to_string(), "INBOX.Kunder.Åre".into(), "INBOX.Offert 2024/25".into()];
    names.sort();
    let map = fixture::name_map(Layout::OldHost, Layout::Target, &names, "-");
    assert_eq!(map["INBOX"], "INBOX");
    assert_eq!(map["INBOX.Kunder.Åre"], "Kunder/Åre");
    assert_eq!(map["INBOX.Offert 2024/25"], "Offert 2024-25");
}

/// The core self-test: all three layouts at once, the hard cases loaded into both sources and read back.
#[test]
fn three_layouts_round_trip_hard_cases() {
    let users = [("anna", "hemligt1")];
    let starters: Vec<_> = [Layout::OldHost, Layout::Modern, Layout::Target]
        .into_iter()
        .map(|l| std::thread::spawn(move || Dovecot::start(l, &users)))
        .collect();
    let mut servers: Vec<Dovecot> = starters.into_iter().map(|h| h.join().expect("Dovecot start thread")).collect();
    let target = servers.pop().expect("target");
    let modern = servers.pop().expect("modern");
    let old = servers.pop().expect("old");
    let ports = [old.port(), old.tls_port(), modern.port(), modern.tls_port(), target.port(), target.tls_port()];
    let mut unique = ports.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "every instance has its own ports: {ports:?}");

    // Load both sources in parallel, then read them back.
    let loaders: Vec<_> = [(&old, Layout::OldHost), (&modern, Layout::Modern)]
        .into_iter()
        .map(|(d, l)| (d.port(), l))
        .map(|(port, l)| {
            std::thread::spawn(move || {
                let mut r = ImapReader::login(port, "anna", "hemligt1");
                let msgs = fixture::load_hard_cases(&mut r, l);
                (l, msgs, fixture::mailbox_snapshot(&mut r), r.lsub(), r.list(), r.delimiter())
            })
        })
        .collect();
    for h in loaders {
        let (layout, msgs, snap, lsub, list, delim) = h.join().expect("loader thread");
        assert!((39..=41).contains(&msgs.len()), "{layout:?}: about 40 messages, got {}", msgs.len());
        let expected = fixture::expected_snapshot(&msgs, &fixture::empty_folders(layout));
        assert_eq!(snap.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{layout:?}: folder set read back");
        fixture::assert_same_mail(&expected, &snap, &BTreeMap::new());
        assert_eq!(lsub, fixture::subscribed(layout), "{layout:?}: subscriptions");
        assert_eq!(delim, Some(layout.separator()), "{layout:?}: delimiter");
        // Exactly the messages with bare LF, bare CR or NUL are served differently from what was appended.
        let changed: Vec<String> = msgs
            .iter()
            .filter(|m| fixture::dovecot_served_form(&m.body) != m.body)
            .map(|m| fixture::header_value(&m.body, "Message-ID").unwrap_or_default())
            .collect();
        assert_eq!(
            changed,
            ["<fixture-bare-lf@postflytt.test>", "<fixture-mixed-eol@postflytt.test>", "<fixture-latin1@postflytt.test>"],
            "{layout:?}: normalised messages"
        );
        // Names on the wire are modified UTF-7; the reader decodes them.
        let are = list.iter().find(|e| e.name == layout.join(&["Kunder", "Åre"])).expect("Kunder/Åre listed");
        assert!(are.raw_name.ends_with("&AMU-re"), "{layout:?}: raw name {:?}", are.raw_name);
        if layout == Layout::Modern {
            let archive = list.iter().find(|e| e.name == "Archive").expect("Archive listed");
            assert!(archive.has_attribute("\\Archive"), "Archive carries SPECIAL-USE: {archive:?}");
            assert!(list.iter().all(|e| e.name != "Sent"), "special-use folders are not auto-created");
        }
        // Internal dates: served in the server's zone (Stockholm on the old host), same instants.
        let sample = &snap[&layout.join(&["INBOX"])][0].internal_date;
        let zone = &sample[sample.len() - 5..];
        let stockholm = std::path::Path::new("/usr/share/zoneinfo/Europe/Stockholm").exists();
        match layout {
            Layout::OldHost if stockholm => {
                assert!(zone == "+0100" || zone == "+0200", "old host zone: {sample}")
            }
            _ => assert_eq!(zone, "+0000", "{layout:?} zone: {sample}"),
        }
    }
    // The loader opens INBOX before its first APPEND, so the old host keeps one UIDVALIDITY.
    assert!(!old.log().contains("UIDVALIDITY changed"), "old host log:\n{}", old.log());

    // The target: empty, quota and APPENDLIMIT advertised, doveadm works, TLS port speaks TLS.
    let mut t = target.reader("anna");
    let caps = t.capabilities();
    for cap in ["QUOTA", "SPECIAL-USE", "UIDPLUS", "COMPRESS=DEFLATE", "LITERAL+"] {
        assert!(caps.contains(cap), "target lacks {cap}: {caps:?}");
    }
    assert!(caps.contains(&format!("APPENDLIMIT={}", common::dovecot::DEFAULT_APPEND_LIMIT)), "{caps:?}");
    let quota = t.quota("INBOX");
    assert!(quota.iter().any(|(r, _, limit)| r == "STORAGE" && *limit == 1024 * 1024), "quota: {quota:?}");
    assert_eq!(t.folders(), ["INBOX"], "target starts with INBOX only");
    t.logout();
    let out = target.doveadm_ok(&["mailbox", "list", "-u", "anna"]);
    assert_eq!(out.trim(), "INBOX", "doveadm mailbox list");
    let out = old.doveadm_ok(&["mailbox", "list", "-u", "anna"]);
    assert!(out.lines().any(|l| l == "INBOX.Offert 2024/25"), "doveadm sees the old host's folders:\n{out}");
    assert_tls(&target);
}

fn assert_tls(d: &Dovecot) {
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", d.tls_port()), "-servername", "localhost"])
        .args(["-verify_return_error", "-verify_hostname", "localhost", "-ign_eof", "-crlf", "-CAfile"])
        .arg(d.cert_path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    child.stdin.take().expect("stdin").write_all(b"a LOGOUT\n").expect("write to s_client");
    let out = child.wait_with_output().expect("openssl s_client output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "s_client failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Verify return code: 0 (ok)"), "certificate must verify against cert.pem:\n{text}");
    assert!(text.contains("* OK") && text.contains("* BYE"), "IMAP over TLS:\n{text}");
    assert_eq!(d.cert_sha256_fingerprint().len(), 95, "SHA-256 fingerprint as AA:BB:...");
}

#[test]
fn odd_passwords_log_in_on_the_old_host() {
    let users = [("bo", "p:a\"ss\\w ö"), ("cia", "{PLAIN}x:y"), ("dan", " leading space"), ("eva", "vanligt")];
    let d = Dovecot::start(Layout::OldHost, &users);
    for (u, p) in users {
        let mut r = ImapReader::login(d.port(), u, p);
        assert_eq!(r.folders(), ["INBOX"], "{u} logs in");
        r.logout();
    }
    let err = ImapReader::try_login(d.port(), "bo", "p:a\"ss\\w o").err().expect("wrong password refused");
    assert!(err.contains("NO"), "refusal: {err}");
    // Passwords change (and users appear) while the server runs.
    let mut d = d;
    d.set_password("eva", "nytt:lösen");
    d.set_password("fia", "ny");
    assert!(ImapReader::try_login(d.port(), "eva", "vanligt").is_err(), "old password refused");
    ImapReader::login(d.port(), "eva", "nytt:lösen").logout();
    ImapReader::login(d.port(), "fia", "ny").logout();
}

#[test]
fn restart_keeps_mail_and_ports_and_target_enforces_appendlimit() {
    let opts = DovecotOptions { append_limit: Some(100_000), quota_storage: Some("10M".into()), ..Default::default() };
    let mut d = Dovecot::start_with(Layout::Target, &[("anna", "pw")], opts);
    let (port, tls) = (d.port(), d.tls_port());
    let mut r = d.reader("anna");
    assert!(r.capabilities().contains("APPENDLIMIT=100000"));
    let uid = r.append("INBOX", &["\\Seen"], Some("24-Dec-2024 15:00:00 +0100"), &fixture::big_message(99_000));
    let err = r.try_append("INBOX", &[], None, &fixture::big_message(100_001)).expect_err("over APPENDLIMIT");
    assert!(err.contains("[LIMIT]"), "over-size APPEND: {err}");
    r.create("Kunder/Åre");
    r.store_flags("INBOX", uid, "+FLAGS", &["$Forwarded"]);
    let before = r.status("INBOX");
    r.logout();

    d.restart();
    assert_eq!((d.port(), d.tls_port()), (port, tls), "restart keeps ports");
    let mut r = d.reader("anna");
    assert_eq!(r.status("INBOX"), before, "restart keeps UIDVALIDITY/UIDNEXT");
    let msgs = r.fetch_all("INBOX");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body, fixture::big_message(99_000));
    assert_eq!(msgs[0].internal_date, "24-Dec-2024 14:00:00 +0000");
    assert_eq!(msgs[0].flags.iter().map(String::as_str).collect::<Vec<_>>(), ["$Forwarded", "\\Seen"]);
    r.expunge_uid("INBOX", uid);
    assert_eq!(r.status("INBOX").messages, 0, "expunged");
    assert_eq!(r.folders(), ["INBOX", "Kunder/Åre"]);
    d.stop();
    assert!(!d.is_running());
}

#[test]
fn diff_reports_each_kind_of_difference() {
    let msgs = fixture::hard_cases(Layout::Modern);
    let source = fixture::expected_snapshot(&msgs, &fixture::empty_folders(Layout::Modern));
    assert!(fixture::diff_mail(&source, &source, &BTreeMap::new()).is_empty());
    let mut target: Snapshot = source.clone();
    let inbox = target.get_mut("INBOX").expect("INBOX");
    let dup = inbox[0].clone();
    inbox.push(dup); // duplicated
    inbox[1].flags.insert("\\Deleted".into()); // flags
    inbox[2].internal_date = "01-Jan-2000 00:00:00 +0000".into(); // date
    let last = inbox.len() - 2;
    inbox[last].body.push(b'!'); // body
    target.remove("Utkast"); // missing folder
    target.get_mut("Skickat").expect("Skickat").pop(); // missing message
    target.insert("Extra".into(), vec![source["Kunder"][0].clone()]); // unexpected folder
    target.insert("Sent".into(), vec![]); // empty extra folders are fine
    let problems = fixture::diff_mail(&source, &target, &BTreeMap::new());
    let text = problems.join("\n");
    for needle in [
        "duplicated",
        "flags differ",
        "internal date differs",
        "body differs",
        "first difference at byte",
        "\"Utkast\" → \"Utkast\": missing on target",
        "missing on target: [",
        "\"Extra\": on target only",
    ] {
        assert!(text.contains(needle), "report lacks {needle:?}:\n{text}");
    }
    assert!(!text.contains("\"Sent\""), "empty extra folder reported:\n{text}");
    // Renaming through the map.
    let mut renamed = source.clone();
    let v = renamed.remove("Skickat").expect("Skickat");
    renamed.insert("Sent".into(), v);
    let map: BTreeMap<String, String> = [("Skickat".to_string(), "Sent".to_string())].into();
    fixture::assert_same_mail(&source, &renamed, &map);
}

#[test]
fn proxy_cuts_exactly_and_then_passes() {
    let d = Dovecot::start(Layout::Modern, &[("anna", "pw")]);
    let mut r = d.reader("anna");
    r.append("INBOX", &[], None, &fixture::big_message(200_000));
    r.logout();
    let proxy = CutProxy::start(d.port());

    // Server-to-client: after the greeting, let 5,000 more bytes through, then cut.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect to proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut greeting = [0u8; 512];
    let n = s.read(&mut greeting).expect("greeting");
    assert!(greeting[..n].starts_with(b"* OK"), "greeting through proxy");
    proxy.cut_after(Direction::ServerToClient, 5_000);
    s.write_all(b"a LOGIN anna pw\r\nb SELECT INBOX\r\nc FETCH 1 BODY.PEEK[]\r\n").expect("send");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got); // EOF (or reset) when cut
    assert_eq!(got.len(), 5_000, "exactly the armed number of bytes arrives");
    assert_eq!(proxy.cut_count(), 1);
    assert!(!proxy.armed(), "one-shot");

    // Client-to-server: the server sees 10 bytes of the command, the client sees the close.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect to proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let n = s.read(&mut greeting).expect("greeting");
    assert!(greeting[..n].starts_with(b"* OK"));
    let c2s_before = proxy.bytes_seen(Direction::ClientToServer);
    proxy.cut_after(Direction::ClientToServer, 10);
    let _ = s.write_all(b"a LOGIN anna pw\r\n");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no reply to a cut command: {:?}", String::from_utf8_lossy(&rest));
    assert_eq!(proxy.bytes_seen(Direction::ClientToServer) - c2s_before, 10);
    assert_eq!(proxy.cut_count(), 2);

    // Unarmed, a whole session with the big message passes.
    let mut r = ImapReader::login(proxy.port(), "anna", "pw");
    let msgs = r.fetch_all("INBOX");
    assert_eq!(msgs[0].body, fixture::big_message(200_000));
    r.logout();
    assert_eq!(proxy.cut_count(), 2);
    assert_eq!(proxy.connections(), 3);
    assert!(proxy.bytes_seen(Direction::ServerToClient) > 200_000);
}

/// Loads the DAV fixture, lists both collections and reads every item back with the same lines for
/// [`dav::ITEM_KEYS`] (neither server serves the bytes it was given: both re-serialise, see
/// `dav::same_properties`); a vCard 4.0 PHOTO is left out where the caller checks it itself. Also checks the
/// collections' display names and the calendar's colour by PROPFIND.
fn dav_round_trip(server: &DavServer, user: &str, mangles_v4_photo: bool) {
    let loaded = dav::load_fixture(server, user);
    let c = server.client(user);
    assert_eq!(loaded.events.len(), 4, "fixture calendar items");
    assert_eq!(loaded.contacts.len(), 2, "fixture contacts");
    for (coll, items) in [(&loaded.calendar, &loaded.events), (&loaded.addressbook, &loaded.contacts)] {
        let listed = c.list(coll);
        let hrefs: Vec<&str> = listed.iter().map(|(h, _)| h.as_str()).collect();
        let want: Vec<&str> = items.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(hrefs, want, "{:?}: members of {coll}", server.kind());
        for ((href, etag), (path, original)) in listed.iter().zip(items) {
            let (status, got_etag, body) = c.get(path);
            assert_eq!(status, 200, "{:?}: GET {path}", server.kind());
            assert_eq!(got_etag.as_deref(), Some(etag.as_str()), "{:?}: GET {href} ETag vs PROPFIND getetag", server.kind());
            let uid = dav::prop_values(&dav::unfold(original), "UID");
            assert_eq!(uid.len(), if path.contains("veckomote") { 2 } else { 1 }, "{path}: UIDs in the fixture");
            let v4 = dav::prop_values(&dav::unfold(original), "VERSION") == ["4.0"];
            let keys: Vec<&str> = dav::ITEM_KEYS.iter().copied().filter(|k| !(*k == "PHOTO" && v4 && mangles_v4_photo)).collect();
            if let Err(diff) = dav::same_properties(original, &body, &keys) {
                panic!("{:?}: GET {path} changed:\n{diff}\nserved:\n{}", server.kind(), String::from_utf8_lossy(&body));
            }
        }
    }
    let props = c.props(&loaded.calendar, &["D:displayname", "I:calendar-color", "D:resourcetype"]);
    let get = |props: &[(String, String)], k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get(&props, "displayname").as_deref(), Some(dav::FIXTURE_CALENDAR), "{:?}: calendar props {props:?}", server.kind());
    assert_eq!(get(&props, "calendar-color").as_deref(), Some(dav::FIXTURE_COLOR), "{:?}: calendar props {props:?}", server.kind());
    assert!(get(&props, "resourcetype").is_some_and(|r| r.contains("calendar")), "{:?}: calendar props {props:?}", server.kind());
    let props = c.props(&loaded.addressbook, &["D:displayname", "D:resourcetype"]);
    assert_eq!(get(&props, "displayname").as_deref(), Some(dav::FIXTURE_ADDRESSBOOK), "{:?}: address book props {props:?}", server.kind());
    assert!(get(&props, "resourcetype").is_some_and(|r| r.contains("addressbook")), "{:?}: address book props {props:?}", server.kind());
    // Create-only PUT over an existing item is refused; DELETE then removes it from the listing.
    let (first, bytes) = &loaded.contacts[0];
    let (status, _) = c.put(first, "text/vcard; charset=utf-8", bytes, true);
    assert_eq!(status, 412, "{:?}: PUT If-None-Match: * over {first}", server.kind());
    let status = c.delete(first);
    assert!(status == 200 || status == 204, "{:?}: DELETE {first} gave {status}", server.kind());
    assert_eq!(c.list(&loaded.addressbook).len(), 1, "{:?}: after DELETE {first}", server.kind());
}

#[test]
fn radicale_round_trips_the_dav_fixture() {
    let server = DavServer::radicale(&[("anna", "hemligt ord:åäö"), ("bertil", "annat")]);
    assert!(server.base_url().starts_with("http://127.0.0.1:"), "{}", server.base_url());
    dav_round_trip(&server, "anna", true);
    // Quirk radicale_v4_photo_truncated (Radicale 3.1.8 with Debian 12's vobject): a vCard 4.0
    // `PHOTO:data:image/png;base64,...` comes back cut at the comma, the picture gone. A migration that
    // reads from Radicale cannot get it back; one that writes to Radicale loses it.
    let (status, _, body) = server.client("anna").get("/anna/kontakter/bjorn-arlig.vcf");
    assert_eq!(status, 200, "GET the vCard 4.0");
    assert_eq!(dav::prop_values(&dav::unfold(&body), "PHOTO"), ["data:image/png\\;base64"], "Radicale's vCard 4.0 PHOTO");
    let (status, _, body) = server.client("anna").get("/anna/kontakter/asa-oberg.vcf");
    assert_eq!(status, 404, "asa-oberg.vcf was deleted by dav_round_trip: {}", String::from_utf8_lossy(&body));
    // owner_only: another user cannot read anna's calendar; a wrong password is refused.
    let (status, _) = server.client("bertil").propfind("/anna/", 0, "");
    assert!(status == 403 || status == 404, "bertil reading /anna/ gave {status}");
    let mut wrong = server.client("anna");
    wrong.pass = "fel".into();
    assert_eq!(wrong.propfind("/anna/", 0, "").0, 401, "wrong password");
}

#[test]
fn xandikos_round_trips_the_dav_fixture() {
    let server = DavServer::xandikos("anna");
    dav_round_trip(&server, "anna", false);
    // xandikos has no authentication: a wrong password reads as well as the right one.
    let mut wrong = server.client("anna");
    wrong.pass = "fel".into();
    assert_eq!(wrong.propfind("/anna/", 0, "").0, 207, "xandikos with a wrong password");
}

#[test]
fn dav_xml_and_content_lines_are_read_as_the_servers_write_them() {
    // Radicale: DAV: as the default namespace; xandikos: ns0: prefixes; both self-close empty elements.
    let radicale = "<multistatus xmlns=\"DAV:\"><response><href>/a/</href><propstat><prop><resourcetype><collection />\
                    </resourcetype><getetag>&quot;1&amp;2&quot;</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>\
                    <response><href>/a/b.ics</href></response></multistatus>";
    let xandikos = "<ns0:multistatus xmlns:ns0=\"DAV:\"><ns0:response><ns0:href>/a/</ns0:href><ns0:propstat><ns0:prop>\
                    <ns0:resourcetype><ns0:collection /></ns0:resourcetype><ns0:getetag>\"1&amp;2\"</ns0:getetag></ns0:prop>\
                    </ns0:propstat></ns0:response><ns0:response><ns0:href>/a/b.ics</ns0:href></ns0:response></ns0:multistatus>";
    for xml in [radicale, xandikos] {
        let responses = dav::elements(xml, "response");
        assert_eq!(responses.len(), 2, "responses in {xml}");
        assert_eq!(dav::elements(responses[1], "href"), ["/a/b.ics"], "{xml}");
        assert_eq!(dav::elements(responses[0], "collection"), [""], "self-closing element in {xml}");
        assert_eq!(dav::unescape(dav::elements(xml, "getetag")[0]), "\"1&2\"", "{xml}");
    }
    let nested = "<a:x><a:x>inner</a:x>tail</a:x><a:x/>";
    assert_eq!(dav::elements(nested, "x"), ["<a:x>inner</a:x>tail", ""], "nesting of one name");
    assert_eq!(dav::unescape("&#229;&#xF6;&bogus;"), "åö&bogus;");
    // Folded lines (the fold may split nowhere but between octets of whole characters), quoted parameters.
    let a = b"BEGIN:VEVENT\r\nSUMMARY:Styrelsem\r\n \xc3\xb6te\r\nATTENDEE;CN=\"B, \xc3\x84\";RSVP=TRUE:mailto:b@x\r\nEND:VEVENT\r\n";
    let b = b"BEGIN:VEVENT\nATTENDEE;RSVP=TRUE;CN=B, \xc3\x84:mailto:b@x\nSUMMARY:Styrelsem\xc3\xb6te\nEND:VEVENT\n";
    assert_eq!(dav::prop_values(&dav::unfold(a), "summary"), ["Styrelsemöte"]);
    assert_eq!(dav::same_properties(a, b, &["SUMMARY", "ATTENDEE"]), Ok(()));
    let c = String::from_utf8_lossy(b).replace("mailto:b@x", "mailto:c@x");
    let changed = dav::same_properties(a, c.as_bytes(), &["SUMMARY", "ATTENDEE"]);
    assert!(changed.is_err_and(|e| e.starts_with("ATTENDEE")), "a changed attendee must be reported");
}
