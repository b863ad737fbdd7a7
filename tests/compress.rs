//! COMPRESS=DEFLATE (RFC 4978) between real Dovecots that offer it (the `imap_zlib` plugin on the
//! old host too): behind a slow line both sides compress by themselves and every message arrives
//! byte for byte, flags and dates included, exactly once; the line carries fewer bytes than the mail
//! (counted by the tests' proxy, not by postflytt); on loopback `auto` leaves the connections alone;
//! `setup --compress on` and `off` override. Which sessions compressed is read from Dovecot's rawlog.

mod common;
mod driver;
#[allow(dead_code)] // the office line's shared rate is for the bench
#[path = "bench/latency.rs"]
mod latency;

use std::time::Duration;

use common::fixture::{self, FixtureMsg, Snapshot};
use common::{Dovecot, DovecotOptions, Layout};
use driver::{Migration, Via, appended, hard_case_name_map};

const SOURCE: (&str, &str) = ("lena@gammal.se", "käll-lösen");
const TARGET: (&str, &str) = ("lena@ny.se", "mål-lösen");

fn snapshot(server: &Dovecot, user: &str) -> Snapshot {
    fixture::mailbox_snapshot(&mut server.reader(user))
}

/// The old host's mail is the new host's, folder names mapped (`INBOX.Kunder` to `Kunder`).
fn assert_copied(source: &Dovecot, target: &Dovecot) {
    let src = snapshot(source, SOURCE.0);
    let names: Vec<String> = src.keys().cloned().collect();
    fixture::assert_same_mail(&src, &snapshot(target, TARGET.0), &hard_case_name_map(Layout::OldHost, &names));
}

/// An old host that offers COMPRESS=DEFLATE, as most Dovecots on the internet do.
fn compressing_source() -> Dovecot {
    let opts = DovecotOptions {
        rawlog: true,
        extra_config: "mail_plugins = $mail_plugins zlib\nprotocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n".into(),
        ..DovecotOptions::default()
    };
    Dovecot::start_with(Layout::OldHost, &[SOURCE], opts)
}

/// A new host as the tests' target layout has it: it offers COMPRESS=DEFLATE.
fn target() -> Dovecot {
    Dovecot::start_with(Layout::Target, &[TARGET], DovecotOptions { rawlog: true, ..DovecotOptions::default() })
}

/// Sessions (by rawlog name) whose first command after login and the NOOPs timing the line was
/// COMPRESS DEFLATE.
fn compressed_sessions(server: &Dovecot) -> Vec<String> {
    server
        .imap_commands()
        .into_iter()
        .filter(|(_, commands)| commands.iter().find(|c| !c.ends_with(" NOOP")).is_some_and(|c| c.contains("COMPRESS DEFLATE")))
        .map(|(session, _)| session)
        .collect()
}

/// Text mail in three folders, a few of them large, as a mailbox of letters and minutes is, and a few
/// letters with a PDF attached (base64 of bytes that do not compress): postflytt sends those lines
/// Huffman-coded alone and the text around them with repeats, in one deflate stream Dovecot inflates.
fn mail() -> Vec<FixtureMsg> {
    let mut msgs = fixture::bulk("INBOX", 30, 7, 2_000..40_000);
    msgs.extend(fixture::bulk("INBOX.Kunder", 12, 8, 20_000..90_000));
    msgs.extend(fixture::bulk("INBOX.Kunder.Åre", 2, 9, 1_500_000..2_500_000));
    let mut rng = common::XorShift::new(10);
    for (i, size) in [40_000usize, 150_000, 9_000].into_iter().enumerate() {
        let lines: Vec<String> =
            common::base64(&rng.bytes(size)).as_bytes().chunks(76).map(|line| String::from_utf8_lossy(line).into_owned()).collect();
        let body = format!(
            "From: ekonomi@gammal.se\r\nTo: lena@gammal.se\r\nSubject: Faktura {i}\r\nMessage-ID: <faktura-{i}@gammal.se>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"gr\"\r\n\r\n--gr\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nHej Lena, fakturan är bifogad.\r\n--gr\r\n\
             Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--gr--\r\n",
            lines.join("\r\n")
        );
        msgs.push(FixtureMsg {
            folder: "INBOX.Kunder".into(),
            flags: Default::default(),
            internal_date: format!("0{}-Dec-2026 09:00:00 +0100", i + 1),
            body: body.into_bytes(),
        });
    }
    msgs
}

#[test]
fn behind_a_slow_line_both_sides_compress_and_every_message_arrives_exactly_once() {
    let source = compressing_source();
    let target = target();
    let msgs = mail();
    fixture::load(&mut source.reader(SOURCE.0), &msgs);
    let mail_bytes: u64 = msgs.iter().map(|m| m.body.len() as u64).sum();
    let slow_source = latency::LatencyProxy::start(source.port(), Duration::from_millis(10));
    let slow_target = latency::LatencyProxy::start(target.port(), Duration::from_millis(10));
    let m = Migration::with_ports(
        &source,
        Via::Plain,
        Some(slow_source.port()),
        &target,
        Via::Plain,
        Some(slow_target.port()),
        &[(SOURCE.0, SOURCE.1, TARGET.0, TARGET.1)],
    );

    // auto (the default): a round trip of 20 ms is a WAN, and both servers offer it.
    let out = m.sync();
    for side in [format!("source {}", SOURCE.0), format!("target {}", TARGET.0)] {
        assert!(out.contains(&format!("{side}: compressing the connection (COMPRESS=DEFLATE; a round trip takes")), "{side}:\n{out}");
    }
    // Beyond the LAN two connections read the source's folders (`lanes::READERS_BEYOND_LAN`), both compressing.
    assert_eq!(compressed_sessions(&source).len(), 2, "{:#?}", source.imap_commands());
    assert_eq!(compressed_sessions(&target).len(), 1, "{:#?}", target.imap_commands());
    assert_eq!(appended(&out), msgs.len() as u64, "{out}");
    assert_copied(&source, &target);
    // The line carried less than the mail, both ways (the fixture's text compresses to about 70 %).
    let (down, up) = (slow_source.bytes().1, slow_target.bytes().0);
    assert!(down * 10 < mail_bytes * 8, "read {down} bytes from the source for {mail_bytes} bytes of mail");
    assert!(up * 10 < mail_bytes * 8, "wrote {up} bytes to the target for {mail_bytes} bytes of mail");

    // A second pass over compressed connections appends nothing.
    let out = m.sync();
    assert_eq!(appended(&out), 0, "{out}");
    // One more: a pass with nothing to move opens no second reader.
    assert_eq!(compressed_sessions(&source).len(), 3, "{:#?}", source.imap_commands());

    // Off: the next pass compresses nothing and still moves new mail.
    assert!(m.ok(&["setup", "--compress", "off"]).contains("Compression: off"));
    let mut reader = source.reader(SOURCE.0);
    reader.append("INBOX", &["\\Seen"], Some("06-Dec-2026 09:00:00 +0100"), b"From: a@gammal.se\r\nSubject: ny\r\n\r\nHej\r\n");
    drop(reader);
    let out = m.sync();
    assert!(!out.contains("compressing the connection"), "{out}");
    assert_eq!(appended(&out), 1, "{out}");
    assert_eq!(compressed_sessions(&source).len(), 3, "{:#?}", source.imap_commands());
    assert_copied(&source, &target);
    assert!(m.ok(&["status"]).contains("Compression: off"));
}

#[test]
fn on_loopback_auto_leaves_the_connections_alone_and_on_compresses_them() {
    let source = compressing_source();
    let target = target();
    let msgs = mail();
    fixture::load(&mut source.reader(SOURCE.0), &msgs);
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[(SOURCE.0, SOURCE.1, TARGET.0, TARGET.1)]);

    let out = m.sync();
    assert!(!out.contains("compressing the connection"), "{out}");
    assert!(compressed_sessions(&source).is_empty() && compressed_sessions(&target).is_empty());
    assert_eq!(appended(&out), msgs.len() as u64, "{out}");

    // On: compressed although the line is fast; new mail and flag changes move as before.
    assert!(m.ok(&["setup", "--compress", "on"]).contains("Compression: on"));
    let mut reader = source.reader(SOURCE.0);
    let first = reader.fetch_all("INBOX")[0].uid;
    reader.store_flags("INBOX", first, "+FLAGS", &["\\Flagged", "$Viktigt"]);
    for i in 0..3 {
        let body = format!("From: ny@gammal.se\r\nSubject: ny post {i}\r\n\r\n{}\r\n", "hej hopp ".repeat(2000 * (i + 1)));
        reader.append("INBOX.Kunder", &[], Some("01-Dec-2026 10:00:00 +0100"), body.as_bytes());
    }
    drop(reader);
    let out = m.sync();
    assert!(out.contains(&format!("source {}: compressing the connection (COMPRESS=DEFLATE; compression is on)", SOURCE.0)), "{out}");
    assert_eq!(compressed_sessions(&source).len(), 1);
    assert_eq!(compressed_sessions(&target).len(), 1);
    assert_eq!(appended(&out), 3, "{out}");
    assert_copied(&source, &target);

    // The API says the setting and refuses a wrong one with a sentence.
    let status = m.ok(&["status"]);
    assert!(status.contains("Compression: on (every connection to a server that offers COMPRESS=DEFLATE)"), "{status}");
    let refused = m.run(&["setup", "--compress", "maybe"]);
    let text = driver::text(&refused);
    assert!(!refused.status.success() && text.contains("compress must be auto, on or off (got \"maybe\")"), "{text}");
}
