//! The benchmark's fixture: per account a dozen old-host folders (Swedish names, nesting, non-ASCII)
//! holding seeded messages, sizes mostly 2-50 KB (skewed small, like real mail), about 2 % with a
//! 200 KB-2 MB base64 attachment, flags and keywords, internal dates over twenty years; plus a fast
//! loader that appends a folder's messages with MULTIAPPEND and LITERAL+ (one command per batch, no
//! round trip per message) where the server has both (Dovecot, Cyrus), else one APPEND per message
//! with a synchronizing literal (Courier). Every body uses CRLF and short lines, so Dovecot serves it
//! byte for byte as appended.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::fixture::FixtureMsg;
use crate::common::reader::{mailbox_arg, quoted};
use crate::common::{XorShift, base64};

/// Folder paths below the old host's `INBOX.` namespace, with the share of messages each gets.
pub const FOLDERS: &[(&[&str], u32)] = &[
    (&["INBOX"], 30),
    (&["Skickat"], 15),
    (&["Utkast"], 2),
    (&["Papperskorg"], 5),
    (&["Skräppost"], 4),
    (&["Kunder"], 8),
    (&["Kunder", "Åre"], 6),
    (&["Kunder", "Luleå"], 6),
    (&["Projekt"], 4),
    (&["Projekt", "2023"], 5),
    (&["Projekt", "2024"], 5),
    (&["Fakturor"], 6),
    (&["Nyhetsbrev"], 4),
];

/// Full old-host name of a folder path (`INBOX`, `INBOX.Kunder.Åre`).
pub fn old_host_name(path: &[&str]) -> String {
    if path == ["INBOX"] { "INBOX".to_string() } else { format!("INBOX.{}", path.join(".")) }
}

const WORDS: [&str; 64] = [
    "och",
    "att",
    "det",
    "som",
    "en",
    "på",
    "är",
    "av",
    "för",
    "med",
    "till",
    "den",
    "har",
    "de",
    "inte",
    "om",
    "ett",
    "men",
    "var",
    "jag",
    "så",
    "vi",
    "kan",
    "man",
    "när",
    "år",
    "sin",
    "nu",
    "offert",
    "faktura",
    "leverans",
    "möte",
    "kund",
    "avtal",
    "projekt",
    "vecka",
    "fredag",
    "måndag",
    "tack",
    "hälsningar",
    "bifogad",
    "pris",
    "order",
    "lager",
    "Åre",
    "Luleå",
    "Göteborg",
    "Malmö",
    "rapport",
    "budget",
    "kvartal",
    "styrelse",
    "protokoll",
    "ändring",
    "förslag",
    "svar",
    "fråga",
    "snart",
    "gärna",
    "bra",
    "viktigt",
    "senast",
    "datum",
    "kontakt",
];

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn unit(rng: &mut XorShift) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// (IMAP internal date, RFC 5322 date) for a seeded moment between 2005 and 2025.
fn dates(rng: &mut XorShift) -> (String, String) {
    let year = rng.range(2005, 2025);
    let month = rng.range(0, 11) as usize;
    let day = rng.range(1, 28);
    let (h, m, s) = (rng.range(0, 23), rng.range(0, 59), rng.range(0, 59));
    let zone = if (3..=9).contains(&month) { "+0200" } else { "+0100" };
    (
        format!("{day:02}-{}-{year} {h:02}:{m:02}:{s:02} {zone}", MONTHS[month]),
        format!("{day} {} {year} {h:02}:{m:02}:{s:02} {zone}", MONTHS[month]),
    )
}

/// Text lines (CRLF, under 78 characters) of seeded Swedish-ish words until `body` reaches `size`.
fn text_until(body: &mut Vec<u8>, size: usize, rng: &mut XorShift) {
    let mut line = String::with_capacity(80);
    let mut bits = 0u64;
    let mut left = 0;
    while body.len() + line.len() + 2 < size {
        if left == 0 {
            bits = rng.next_u64();
            left = 10;
        }
        let w = WORDS[(bits & 63) as usize];
        bits >>= 6;
        left -= 1;
        if line.len() + w.len() + 1 > 74 {
            body.extend_from_slice(line.as_bytes());
            body.extend_from_slice(b"\r\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    body.extend_from_slice(line.as_bytes());
    body.extend_from_slice(b"\r\n");
}

/// One message of about `size` bytes; with `attachment`, multipart/mixed with a base64 part of random
/// bytes making up most of it.
pub fn message(account: usize, i: usize, size: usize, attachment: bool, date: &str, rng: &mut XorShift) -> Vec<u8> {
    let sender = rng.range(1, 400);
    let mut h = String::with_capacity(600);
    let _ = write!(
        h,
        "Return-Path: <avsandare{sender}@exempel{}.se>\r\n\
         Received: from mx{}.exempel.se (mx.exempel.se [192.0.2.{}])\r\n\tby mail.gammal.se with ESMTP id b{account}x{i}; {date}\r\n\
         From: =?UTF-8?Q?Avs=C3=A4ndare_{sender}?= <avsandare{sender}@exempel{}.se>\r\n\
         To: konto{account}@gammal.se\r\n\
         Subject: =?UTF-8?Q?=C3=84rende_{account}-{i}?= {}\r\n\
         Date: {date}\r\n\
         Message-ID: <bench-{account}-{i}@postflytt.test>\r\n\
         MIME-Version: 1.0\r\n",
        sender % 17,
        sender % 9,
        sender % 250,
        sender % 17,
        WORDS[i % 64],
    );
    let mut body = Vec::with_capacity(size + 1024);
    if attachment {
        let boundary = format!("=_bench_{account}_{i}");
        let _ = write!(
            h,
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        );
        body.extend_from_slice(h.as_bytes());
        let text_end = body.len() + 600;
        text_until(&mut body, text_end, rng);
        let part = format!(
            "--{boundary}\r\nContent-Type: application/pdf; name=\"bilaga-{account}-{i}.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"bilaga-{account}-{i}.pdf\"\r\n\r\n"
        );
        body.extend_from_slice(part.as_bytes());
        let encoded_len = size.saturating_sub(body.len() + 64);
        let raw = rng.bytes(encoded_len / 78 * 76 / 4 * 3);
        let b64 = base64(&raw);
        for line in b64.as_bytes().chunks(76) {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    } else {
        h.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
        body.extend_from_slice(h.as_bytes());
        text_until(&mut body, size, rng);
    }
    body
}

/// Seeded flags for a message in `folder`.
fn flags(folder: &[&str], rng: &mut XorShift) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    let r = rng.next_u64();
    if folder == ["Utkast"] {
        f.insert("\\Draft".to_string());
    }
    if r % 100 < 85 || folder == ["Skickat"] {
        f.insert("\\Seen".to_string());
    }
    if (r >> 8) % 100 < 12 {
        f.insert("\\Answered".to_string());
    }
    if (r >> 16) % 100 < 5 {
        f.insert("\\Flagged".to_string());
    }
    if (r >> 24) % 100 < 4 {
        f.insert("$Forwarded".to_string());
    }
    if (r >> 32) % 100 < 2 {
        f.insert("Viktigt".to_string());
    }
    f
}

/// The seeded messages of one account: `n` messages spread over [`FOLDERS`] by their shares; sizes
/// 2-50 KB skewed small, 2 % with a 200 KB-2 MB attachment; plus one of `big` bytes (with attachment)
/// in `INBOX.Kunder.Åre` when `big > 0`.
pub fn account_messages(account: usize, n: usize, big: usize, seed: u64) -> Vec<FixtureMsg> {
    let mut rng = XorShift::new(seed ^ (account as u64).wrapping_mul(0x1000_0000_01b3));
    let total_share: u32 = FOLDERS.iter().map(|(_, s)| s).sum();
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..n {
        let pick = rng.range(0, u64::from(total_share) - 1) as u32;
        let mut acc = 0;
        let path = FOLDERS
            .iter()
            .find(|(_, s)| {
                acc += s;
                pick < acc
            })
            .map(|(p, _)| *p)
            .expect("share table covers the range");
        let attachment = rng.range(0, 999) < 20;
        let size = if attachment {
            let u = unit(&mut rng);
            200 * 1024 + (1800.0 * 1024.0 * u * u) as usize
        } else {
            let u = unit(&mut rng);
            2 * 1024 + (48.0 * 1024.0 * u.powf(2.5)) as usize
        };
        let (internal, header_date) = dates(&mut rng);
        let flags = flags(path, &mut rng);
        let body = message(account, i, size, attachment, &header_date, &mut rng);
        out.push(FixtureMsg { folder: old_host_name(path), flags, internal_date: internal, body });
    }
    if big > 0 {
        let mut r = XorShift::new(seed.wrapping_add(big as u64));
        let (internal, header_date) = dates(&mut r);
        let body = message(account, n, big, true, &header_date, &mut r);
        out.push(FixtureMsg {
            folder: old_host_name(&["Kunder", "Åre"]),
            flags: ["\\Seen".to_string()].into_iter().collect(),
            internal_date: internal,
            body,
        });
    }
    out
}

/// A raw IMAP connection for loading: LOGIN, then MULTIAPPEND batches with non-synchronizing literals,
/// or single APPENDs with synchronizing ones where the server lacks MULTIAPPEND or LITERAL+.
pub struct Loader {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    tag: u32,
    /// The server announced MULTIAPPEND and LITERAL+ after login.
    batches: bool,
}

impl Loader {
    pub fn login(port: u16, user: &str, pass: &str) -> Loader {
        let wr = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("loader: connect");
        wr.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
        wr.set_nodelay(true).expect("nodelay");
        let rd = BufReader::with_capacity(64 * 1024, wr.try_clone().expect("clone"));
        let mut l = Loader { rd, wr, tag: 0, batches: false };
        let mut greeting = String::new();
        l.rd.read_line(&mut greeting).expect("loader: greeting");
        assert!(greeting.starts_with("* OK"), "loader: greeting {greeting:?}");
        l.command(format!("LOGIN {} {}", quoted(user), quoted(pass)).as_bytes());
        let caps = l.command(b"CAPABILITY").to_ascii_uppercase();
        let has = |c: &str| caps.split_whitespace().any(|w| w == c);
        l.batches = has("MULTIAPPEND") && has("LITERAL+");
        l
    }

    /// Sends one command (bytes without tag and final CRLF) and waits for its tagged OK; returns every
    /// line the server sent for it.
    fn command(&mut self, cmd: &[u8]) -> String {
        self.tag += 1;
        let tag = format!("L{}", self.tag);
        let mut out = Vec::with_capacity(cmd.len() + 16);
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(cmd);
        out.extend_from_slice(b"\r\n");
        self.wr.write_all(&out).expect("loader: write");
        self.answer(&tag, cmd)
    }

    /// Reads until the tagged answer to `tag` (an OK, else a panic naming `cmd`).
    fn answer(&mut self, tag: &str, cmd: &[u8]) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.rd.read_line(&mut line).expect("loader: read");
            assert!(n > 0, "loader: server closed the connection");
            all.push_str(&line);
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "loader: {} failed: {line}", String::from_utf8_lossy(&cmd[..cmd.len().min(80)]));
                return all;
            }
        }
    }

    /// One APPEND with a synchronizing literal: the command line, the server's `+`, the body.
    fn append_one(&mut self, folder: &str, m: &FixtureMsg) {
        self.tag += 1;
        let tag = format!("L{}", self.tag);
        let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
        let head =
            format!("{tag} APPEND {} ({}) {} {{{}}}\r\n", mailbox_arg(folder), flags.join(" "), quoted(&m.internal_date), m.body.len());
        self.wr.write_all(head.as_bytes()).expect("loader: write");
        let mut line = String::new();
        self.rd.read_line(&mut line).expect("loader: read");
        assert!(line.starts_with('+'), "loader: APPEND to {folder}: no continuation but {line:?}");
        let mut out = Vec::with_capacity(m.body.len() + 2);
        out.extend_from_slice(&m.body);
        out.extend_from_slice(b"\r\n");
        self.wr.write_all(&out).expect("loader: write");
        self.answer(&tag, head.as_bytes());
    }

    /// Appends `msgs` (all to the same folder) in batches of up to 16 MB per MULTIAPPEND command, or
    /// one by one where the server cannot take batches.
    pub fn append_all(&mut self, folder: &str, msgs: &[&FixtureMsg]) {
        if !self.batches {
            for m in msgs {
                self.append_one(folder, m);
            }
            return;
        }
        let mut start = 0;
        while start < msgs.len() {
            let mut cmd: Vec<u8> = format!("APPEND {}", mailbox_arg(folder)).into_bytes();
            let mut bytes = 0;
            let mut end = start;
            while end < msgs.len() && (end == start || bytes + msgs[end].body.len() < 16 << 20) {
                let m = msgs[end];
                let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
                cmd.extend_from_slice(format!(" ({}) {} {{{}+}}\r\n", flags.join(" "), quoted(&m.internal_date), m.body.len()).as_bytes());
                cmd.extend_from_slice(&m.body);
                bytes += m.body.len();
                end += 1;
            }
            self.command(&cmd);
            start = end;
        }
    }

    pub fn logout(mut self) {
        self.command(b"LOGOUT");
    }
}
