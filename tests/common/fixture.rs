//! Test mail: the hard-case fixture of DESIGN.md §9 (Swedish and nested folder names, a name holding the
//! other layout's separator, empty and unsubscribed folders, flags and keywords, internal dates from
//! 2001 to 2026 in many zones, 8-bit and RFC 2047 headers, no or shared Message-IDs, bare LF and bare CR,
//! a 20,000-character line, a ~3 MB base64 attachment), bulk and exact-size messages for large tests,
//! and snapshots of a whole account that compare source and target folder by folder and say precisely
//! what differs. All content is deterministic (a seeded xorshift), so runs are comparable.
//!
//! Dovecot does not serve every byte it was given (maildir, `mail_save_crlf = no`): see
//! [`dovecot_served_form`]. A migration must be byte-exact relative to what the source *serves*.

use super::dovecot::Layout;
use super::reader::{ImapReader, parse_internal_date};
use super::{XorShift, base64, fnv1a};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// One message to load: `folder` is the full UTF-8 name in the layout it was made for
/// (`INBOX.Kunder.Åre` on the old host, `Kunder/Åre` elsewhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureMsg {
    pub folder: String,
    pub flags: BTreeSet<String>,
    /// IMAP date-time as sent in APPEND, e.g. `"04-Mar-2001 10:15:00 +0530"`.
    pub internal_date: String,
    pub body: Vec<u8>,
}

/// One folder of the hard-case fixture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureFolder {
    /// Full UTF-8 name in the fixture's layout.
    pub name: String,
    /// Components below the personal namespace (`["Kunder", "Åre"]`; the inbox is `["INBOX"]`).
    pub path: Vec<String>,
    pub subscribed: bool,
    /// Messages the fixture puts there (0 for the empty folder).
    pub messages: usize,
}

/// What a message looks like in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapMsg {
    pub flags: BTreeSet<String>,
    pub internal_date: String,
    pub body: Vec<u8>,
}

/// Folder (UTF-8 full name) to its messages, sorted by body hash (then flags, date).
pub type Snapshot = BTreeMap<String, Vec<SnapMsg>>;

const OTHER_SEP_OLD: &str = "Offert 2024/25";
const OTHER_SEP_MODERN: &str = "Rapporter v.1.2";
const EMPTY: &str = "Tomt & tyst";
const UNSUBSCRIBED: &str = "Gammalt 2019";

/// Folder paths of the hard-case fixture, in creation order (parents first).
fn folder_paths(layout: Layout) -> Vec<Vec<&'static str>> {
    let clash = if layout == Layout::OldHost { OTHER_SEP_OLD } else { OTHER_SEP_MODERN };
    let mut v = vec![
        vec!["INBOX"],
        vec!["Skickat"],
        vec!["Utkast"],
        vec!["Papperskorg"],
        vec!["Skräppost"],
        vec!["Kunder"],
        vec!["Kunder", "Åre"],
        vec![clash],
        vec![EMPTY],
        vec![UNSUBSCRIBED],
    ];
    if layout != Layout::OldHost {
        // Declared `\Archive` in the modern layouts' config: a source folder that carries SPECIAL-USE.
        v.push(vec!["Archive"]);
    }
    v
}

/// The hard-case folders with their subscription state and message counts.
pub fn hard_case_folders(layout: Layout) -> Vec<FixtureFolder> {
    let msgs = hard_cases(layout);
    folder_paths(layout)
        .into_iter()
        .map(|p| {
            let name = layout.join(&p);
            FixtureFolder {
                messages: msgs.iter().filter(|m| m.folder == name).count(),
                subscribed: p != [UNSUBSCRIBED],
                path: p.iter().map(|s| s.to_string()).collect(),
                name,
            }
        })
        .collect()
}

/// Folders of the hard-case fixture that hold no message.
pub fn empty_folders(layout: Layout) -> Vec<String> {
    hard_case_folders(layout).into_iter().filter(|f| f.messages == 0).map(|f| f.name).collect()
}

/// Folders the hard-case fixture subscribes (all but one), sorted.
pub fn subscribed(layout: Layout) -> Vec<String> {
    let mut v: Vec<String> = hard_case_folders(layout).into_iter().filter(|f| f.subscribed).map(|f| f.name).collect();
    v.sort();
    v
}

/// The ~40 hard-case messages for `layout` (same bodies, flags and dates on every layout; only the folder
/// names differ, except that the modern layouts have one more folder, `Archive`). Built once per process.
pub fn hard_cases(layout: Layout) -> Vec<FixtureMsg> {
    static CACHE: std::sync::Mutex<BTreeMap<Layout, Vec<FixtureMsg>>> = std::sync::Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.entry(layout).or_insert_with(|| build_hard_cases(layout)).clone()
}

fn build_hard_cases(layout: Layout) -> Vec<FixtureMsg> {
    let f = |path: &[&str]| layout.join(path);
    let clash = if layout == Layout::OldHost { OTHER_SEP_OLD } else { OTHER_SEP_MODERN };
    let mut out: Vec<FixtureMsg> = Vec::new();
    let mut n = 0usize;
    let mut add = |folder: String, flags: &[&str], body: Vec<u8>| {
        out.push(FixtureMsg { folder, flags: flags.iter().map(|s| s.to_string()).collect(), internal_date: spread_date(n), body });
        n += 1;
    };
    let inbox = f(&["INBOX"]);

    // --- INBOX ---
    let welcome = simple(1, "Välkommen till nya servern", "Hej!\r\n\r\nDetta är ett vanligt brev.\r\n");
    add(inbox.clone(), &["\\Seen"], welcome.clone());
    add(
        inbox.clone(),
        &["\\Seen", "\\Flagged"],
        crlf(
            "From: Åsa Öberg <asa@exempel.se>\nTo: Kund Ärlig <kund@exempel.se>\n\
             Subject: Räksmörgås på fredag – 8-bitars rubrik\nDate: Fri, 06 Apr 2007 11:30:00 +0200\n\
             Message-ID: <fixture-2@postflytt.test>\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
             Rubrikerna är rå UTF-8, inte RFC 2047. Blåbär, älg, ö.\n",
        ),
    );
    add(
        inbox.clone(),
        &["\\Answered", "$Forwarded"],
        crlf(&format!(
            "From: =?ISO-8859-1?Q?Bj=F6rn_=C5kesson?= <bjorn@exempel.se>\nTo: asa@exempel.se\n\
             Subject: =?UTF-8?B?{}?=\n =?UTF-8?Q?_och_m=C3=B6te_p=C3=A5_m=C3=A5ndag?=\n\
             Date: Mon, 14 Jan 2013 08:05:00 -0500\nMessage-ID: <fixture-3@postflytt.test>\n\
             MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n\
             Content-Transfer-Encoding: quoted-printable\n\nK=E4ra kund, h=E4r =E4r offerten.\n",
            base64("Offert för Åre – väg 2".as_bytes())
        )),
    );
    add(
        inbox.clone(),
        &[],
        crlf(
            "From: noreply@gammal-leverantor.se\nTo: asa@exempel.se\nSubject: Saknar Message-ID\n\
             Date: Tue, 02 Feb 2010 02:02:02 +0100\n\nDetta brev har ingen Message-ID-rubrik.\n",
        ),
    );
    add(
        inbox.clone(),
        &["\\Seen"],
        crlf(
            "From: lista@exempel.se\nTo: asa@exempel.se\nSubject: Samma Message-ID (kopia 1)\n\
             Date: Wed, 03 Mar 2004 03:03:03 +0000\nMessage-ID: <shared-id@postflytt.test>\n\n\
             Första brevet med delad Message-ID.\n",
        ),
    );
    add(
        inbox.clone(),
        &[],
        crlf(
            "From: lista@exempel.se\nTo: asa@exempel.se\nSubject: Samma Message-ID (kopia 2)\n\
             Date: Wed, 03 Mar 2004 03:04:05 +0000\nMessage-ID: <shared-id@postflytt.test>\n\
             X-Mailing-List: kunder@exempel.se\n\n\
             Andra brevet med samma Message-ID men annat innehåll.\n",
        ),
    );
    // Bare LF throughout, as an old Unix MTA may have stored it.
    add(
        inbox.clone(),
        &["\\Seen"],
        b"From: unix@gammal.exempel.se\nTo: asa@exempel.se\nSubject: Bara LF\n\
          Date: Sat, 05 May 2001 05:05:05 +0200\nMessage-ID: <fixture-bare-lf@postflytt.test>\n\n\
          Rad ett.\nRad tv\xc3\xa5.\n\nSista raden.\n"
            .to_vec(),
    );
    // Mixed line endings, a bare CR inside a line and at the very end.
    add(
        inbox.clone(),
        &[],
        b"From: blandat@exempel.se\r\nTo: asa@exempel.se\nSubject: Blandade radslut\r\n\
          Message-ID: <fixture-mixed-eol@postflytt.test>\r\n\r\n\
          CRLF-rad\r\nLF-rad\nrad med\rCR i mitten\r\n\rinledande CR\r\r\nslut med CR\r"
            .to_vec(),
    );
    // Raw Latin-1 8-bit body with a NUL and 0xFF: arbitrary bytes in a literal.
    let mut latin1 = b"From: latin1@exempel.se\r\nTo: asa@exempel.se\r\nSubject: Latin-1 utan kodning\r\n\
          Message-ID: <fixture-latin1@postflytt.test>\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n\
          R\xe4ksm\xf6rg\xe5s \xc5re \xd6land\r\nNUL:"
        .to_vec();
    latin1.extend_from_slice(b"\x00 FF:\xff DEL:\x7f ESC:\x1b end\r\n");
    add(inbox.clone(), &["Viktigt"], latin1);
    // A 20,000-character line.
    let mut rng = XorShift::new(20_000);
    let long_line: String = (0..20_000).map(|_| (b'a' + (rng.next_u64() % 26) as u8) as char).collect();
    add(
        inbox.clone(),
        &["\\Seen"],
        format!(
            "From: lang@exempel.se\r\nTo: asa@exempel.se\r\nSubject: En rad med 20000 tecken\r\n\
             Message-ID: <fixture-long-line@postflytt.test>\r\n\r\n{long_line}\r\nslut\r\n"
        )
        .into_bytes(),
    );
    // A body that looks like IMAP protocol, to trip naive parsers.
    add(
        inbox.clone(),
        &["\\Seen", "\\Answered"],
        crlf(
            "From: protokoll@exempel.se\nTo: asa@exempel.se\nSubject: * 1 FETCH (BODY[] {5}\n\
             Message-ID: <fixture-lookalike@postflytt.test>\n\n\
             * 2 FETCH (UID 7 BODY[] {12}\nA001 OK done\n)\n.\n..\nFrom the start of a line\n\
             {20}\n\"quoted\" \\backslash ( ) [ ] % *\n",
        ),
    );
    // Headers only: no empty line, no body.
    add(
        inbox.clone(),
        &[],
        b"From: kort@exempel.se\r\nTo: asa@exempel.se\r\nSubject: Bara rubriker\r\n\
          Message-ID: <fixture-headers-only@postflytt.test>\r\n"
            .to_vec(),
    );
    // A byte-identical second copy of the first message (real mailboxes have these).
    add(inbox.clone(), &["\\Seen"], welcome);
    add(
        inbox.clone(),
        &["\\Seen", "\\Answered", "\\Flagged", "$Forwarded", "Viktigt"],
        simple(14, "Alla flaggor och nyckelord", "Sedd, besvarad, flaggad, vidarebefordrad, viktig.\r\n"),
    );
    for i in 15..19 {
        add(
            inbox.clone(),
            if i % 2 == 0 { &["\\Seen"] } else { &[] },
            simple(i, &format!("Vanligt brev nr {i}"), &format!("Innehåll {i}.\r\n")),
        );
    }

    // --- Skickat (Sent) ---
    let sent = f(&["Skickat"]);
    add(sent.clone(), &["\\Seen"], simple(19, "Re: Offert", "Tack, vi återkommer.\r\n"));
    add(
        sent.clone(),
        &["\\Seen"],
        crlf(
            "From: asa@exempel.se\nTo: kund@exempel.se\nBcc: chef@exempel.se\nSubject: Med Bcc\n\
             Message-ID: <fixture-bcc@postflytt.test>\nDate: Thu, 01 Jan 2015 00:00:00 +0000\n\n\
             Skickat brev med Bcc-rubrik.\n",
        ),
    );
    add(
        sent.clone(),
        &["\\Seen"],
        crlf(
            "From: asa@exempel.se\nTo: kund@exempel.se\n\
             Subject: =?UTF-8?Q?HTML_och_text_=E2=80=93_alternativ?=\n\
             Message-ID: <fixture-alt@postflytt.test>\nMIME-Version: 1.0\n\
             Content-Type: multipart/alternative; boundary=\"gräns-1\"\n\n\
             --gräns-1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
             Hej på dig!\n--gräns-1\nContent-Type: text/html; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\n<p>Hej p&aring; dig! Åäö</p>\n--gräns-1--\n",
        ),
    );
    add(sent.clone(), &["\\Seen", "$Forwarded"], simple(22, "Fwd: Avtal", "Vidarebefordrat.\r\n"));

    // --- Utkast (Drafts) ---
    let drafts = f(&["Utkast"]);
    add(drafts.clone(), &["\\Draft"], simple(23, "Halvfärdigt utkast", "Att skriva klart...\r\n"));
    add(drafts.clone(), &["\\Draft", "\\Seen"], simple(24, "Utkast två", "Ännu ett utkast.\r\n"));

    // --- Papperskorg (Trash) ---
    let trash = f(&["Papperskorg"]);
    add(trash.clone(), &["\\Seen"], simple(25, "Gammalt nyhetsbrev", "Slängt.\r\n"));
    add(trash.clone(), &["\\Seen", "\\Flagged"], simple(26, "Slängt men flaggat", "Flaggat i papperskorgen.\r\n"));

    // --- Skräppost (Junk) ---
    let junk = f(&["Skräppost"]);
    add(junk.clone(), &["$Junk"], simple(27, "VINN EN RESA!!!", "Klicka här.\r\n"));
    add(junk.clone(), &["$Junk", "\\Seen"], simple(28, "Ditt paket väntar", "Betala tullavgift.\r\n"));
    add(
        junk.clone(),
        &[],
        b"From: spam@exempel.invalid\r\nSubject: \xc3\x84r du den lyckliga vinnaren?\r\n\
          Message-ID: <fixture-29@postflytt.test>\r\n\r\nSkr\xc3\xa4p utan flaggor.\r\n"
            .to_vec(),
    );

    // --- Kunder, Kunder/Åre ---
    let kunder = f(&["Kunder"]);
    let are = f(&["Kunder", "Åre"]);
    add(kunder.clone(), &["\\Seen"], simple(30, "Kundlista 2020", "Se bifogad lista.\r\n"));
    add(kunder.clone(), &["\\Seen", "Viktigt"], simple(31, "Avtal förnyat", "Avtalet är förnyat.\r\n"));
    add(kunder.clone(), &[], simple(32, "Ny kund i Luleå", "Välkommen.\r\n"));
    add(are.clone(), &["\\Seen", "\\Flagged"], attachment_message(3 * 1024 * 1024, 33));
    add(are.clone(), &["\\Seen"], simple(34, "Stuga i Åre", "Bokad vecka 7.\r\n"));
    add(
        are.clone(),
        &["\\Answered"],
        crlf(
            "From: =?UTF-8?B?w4VyZSBTa2lkc2tvbGE=?= <skola@are.exempel.se>\nTo: asa@exempel.se\n\
             Subject: =?UTF-8?Q?Bekr=C3=A4ftelse_av_bokning_f=C3=B6r_skidskola_i_=C3=85re_och_?=\n \
             =?UTF-8?Q?l=C3=A5ng_rubrik_som_viks_=C3=B6ver_flera_rader?=\n\
             Message-ID: <fixture-35@postflytt.test>\n\nBokningen är bekräftad.\n",
        ),
    );

    // --- The folder named with the other layout's separator ---
    let clash_name = f(&[clash]);
    add(clash_name.clone(), &["\\Seen"], simple(36, "Offert 2024/25 v.1.2", "Bifogad offert.\r\n"));
    add(clash_name, &[], simple(37, "Reviderad offert", "Version 2.\r\n"));

    // --- Unsubscribed folder with old mail ---
    let old = f(&[UNSUBSCRIBED]);
    add(old.clone(), &["\\Seen"], simple(38, "Från förr", "Gammalt brev.\r\n"));
    add(old, &["\\Seen", "\\Answered"], simple(39, "Ännu äldre", "Mycket gammalt brev.\r\n"));

    if layout != Layout::OldHost {
        add(f(&["Archive"]), &["\\Seen"], simple(40, "Arkiverat", "I arkivet (\\Archive).\r\n"));
    }
    out
}

/// An internal date for the `i`-th fixture message: spread over 2001–2026, many UTC offsets.
fn spread_date(i: usize) -> String {
    const ZONES: [&str; 10] = ["+0100", "+0200", "-0500", "+0530", "+0000", "-0800", "+0900", "+1245", "-0330", "+1400"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let year = 2001 + (i * 11) % 26;
    let month = if year == 2026 { (i * 5) % 6 } else { (i * 5) % 12 };
    let day = 1 + (i * 7) % 28;
    format!("{day:02}-{}-{year} {:02}:{:02}:{:02} {}", MONTHS[month], (i * 5) % 24, (i * 13) % 60, (i * 29) % 60, ZONES[i % ZONES.len()])
}

/// Text with every LF turned into CRLF (fixture source is written with `\n`).
fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

fn simple(id: usize, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Åsa Öberg <asa@exempel.se>\r\nTo: kund@exempel.se\r\nSubject: {subject}\r\n\
         Date: Mon, 01 Jun 2020 12:00:00 +0200\r\nMessage-ID: <fixture-{id}@postflytt.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
    )
    .into_bytes()
}

/// multipart/mixed with a short text part and a base64 attachment of about `approx_bytes` encoded bytes
/// of pseudo-random data from `seed`.
pub fn attachment_message(approx_bytes: usize, seed: u64) -> Vec<u8> {
    let raw = XorShift::new(seed).bytes(approx_bytes / 4 * 3);
    let b64 = base64(&raw);
    let mut m = format!(
        "From: Åsa Öberg <asa@exempel.se>\r\nTo: kund@exempel.se\r\nSubject: Bilaga ({} byte)\r\n\
         Message-ID: <fixture-attachment-{seed}@postflytt.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"=_bilaga_{seed}\"\r\n\r\n\
         --=_bilaga_{seed}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSe bilagan.\r\n\
         --=_bilaga_{seed}\r\nContent-Type: application/octet-stream; name=\"data-{seed}.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"data-{seed}.bin\"\r\n\r\n",
        raw.len()
    );
    m.reserve(b64.len() + b64.len() / 76 * 2 + 64);
    for line in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        m.push_str("\r\n");
    }
    let _ = write!(m, "--=_bilaga_{seed}--\r\n");
    m.into_bytes()
}

/// A valid RFC 5322 message of exactly `bytes` bytes (CRLF endings, lines under 80 characters, so
/// Dovecot serves it unchanged): headers plus pseudo-random text lines. Panics if `bytes` is smaller
/// than the headers (about 200).
pub fn big_message(bytes: usize) -> Vec<u8> {
    sized_message(
        &format!(
            "From: stor@exempel.se\r\nTo: asa@exempel.se\r\nSubject: Stort brev, {bytes} byte\r\n\
             Message-ID: <big-{bytes}@postflytt.test>\r\nDate: Mon, 01 Jun 2020 12:00:00 +0200\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        ),
        bytes,
        &mut XorShift::new(bytes as u64),
    )
}

fn sized_message(headers: &str, bytes: usize, rng: &mut XorShift) -> Vec<u8> {
    let mut m = headers.as_bytes().to_vec();
    assert!(bytes >= m.len(), "a message of {bytes} bytes cannot hold its {} bytes of headers", m.len());
    m.reserve(bytes - m.len());
    const LINE: usize = 76;
    let letter = |rng: &mut XorShift| -> u8 {
        let v = (rng.next_u64() % 32) as u8;
        if v < 26 { b'a' + v } else { b' ' }
    };
    while bytes - m.len() >= LINE + 2 {
        for _ in 0..LINE {
            m.push(letter(rng));
        }
        m.extend_from_slice(b"\r\n");
    }
    match bytes - m.len() {
        0 => {}
        1 => {
            // One byte cannot be a line: lengthen the last line, or end without CRLF if there is none.
            if m.ends_with(b"\r\n") && m.len() >= LINE + 2 {
                let at = m.len() - 2;
                m.insert(at, b'x');
            } else {
                m.push(b'x');
            }
        }
        r => {
            for _ in 0..r - 2 {
                m.push(letter(rng));
            }
            m.extend_from_slice(b"\r\n");
        }
    }
    debug_assert_eq!(m.len(), bytes);
    m
}

/// `n` deterministic messages for `folder`, sizes uniform in `size_range` (bytes, exact), flags and
/// dates varied, Message-IDs `<bulk-{seed}-{i}@postflytt.test>`.
pub fn bulk(folder: &str, n: usize, seed: u64, size_range: std::ops::Range<usize>) -> Vec<FixtureMsg> {
    assert!(!size_range.is_empty(), "bulk: empty size range {size_range:?}");
    let mut rng = XorShift::new(seed);
    (0..n)
        .map(|i| {
            let size = rng.range(size_range.start as u64, size_range.end as u64 - 1) as usize;
            let headers = format!(
                "From: bulk@exempel.se\r\nTo: asa@exempel.se\r\nSubject: Bulk {seed}/{i}\r\n\
                 Message-ID: <bulk-{seed}-{i}@postflytt.test>\r\n\r\n"
            );
            let size = size.max(headers.len());
            let mut flags = BTreeSet::new();
            for (bit, flag) in ["\\Seen", "\\Flagged", "\\Answered", "$Forwarded"].iter().enumerate() {
                if rng.next_u64().is_multiple_of(2 + bit as u64 * 2) {
                    flags.insert(flag.to_string());
                }
            }
            FixtureMsg {
                folder: folder.to_string(),
                flags,
                internal_date: spread_date(i + seed as usize),
                body: sized_message(&headers, size, &mut rng),
            }
        })
        .collect()
}

/// Creates the folders `msgs` need (parents first, INBOX and existing ones skipped) and appends every
/// message in order. Returns the UIDs. Does not change subscriptions.
pub fn load(reader: &mut ImapReader, msgs: &[FixtureMsg]) -> Vec<u32> {
    let mut folders: Vec<&str> = Vec::new();
    for m in msgs {
        if !folders.contains(&m.folder.as_str()) {
            folders.push(&m.folder);
        }
    }
    ensure_folders(reader, &folders);
    msgs.iter()
        .map(|m| {
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            reader.append(&m.folder, &flags, Some(&m.internal_date), &m.body)
        })
        .collect()
}

/// Creates each folder that does not exist yet (selectable), in the order given. Opens INBOX first:
/// Dovecot 2.3.19 with `LAYOUT=index` (the old-host layout), when the first command ever to touch a
/// user's INBOX is an APPEND, answers APPENDUID with a UIDVALIDITY one higher than the INBOX then keeps
/// (log: "UIDVALIDITY changed"); a STATUS before it avoids that.
pub fn ensure_folders(reader: &mut ImapReader, folders: &[&str]) {
    reader.status("INBOX");
    let existing: BTreeSet<String> = reader.list().into_iter().filter(|e| e.selectable()).map(|e| e.name).collect();
    for f in folders {
        if !f.eq_ignore_ascii_case("INBOX") && !existing.contains(*f) {
            reader.create(f);
        }
    }
}

/// Loads the whole hard-case fixture for `layout`: every folder (the empty one too), every message, and
/// the subscriptions (all folders but the unsubscribed one). Returns the messages.
pub fn load_hard_cases(reader: &mut ImapReader, layout: Layout) -> Vec<FixtureMsg> {
    let folders = hard_case_folders(layout);
    let names: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    ensure_folders(reader, &names);
    let msgs = hard_cases(layout);
    load(reader, &msgs);
    for f in &folders {
        if f.subscribed {
            reader.subscribe(&f.name);
        } else {
            reader.unsubscribe(&f.name);
        }
    }
    msgs
}

/// The bytes Dovecot 2.3 (maildir, default `mail_save_crlf = no`) serves in `BODY[]` for a message that
/// was appended as `body`, as measured here: on save CRLF becomes LF and a lone CR at the very end is
/// dropped; on fetch every LF not preceded by CR becomes CRLF; NUL is served as 0x80. Net effect: bare
/// LF → CRLF, CR CR LF → CR LF, a bare CR inside a line stays, and messages already in CRLF are served
/// byte for byte.
pub fn dovecot_served_form(body: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                stored.push(b'\n');
                i += 2;
                continue;
            }
            b'\r' if i + 1 == body.len() => {}
            0 => stored.push(0x80),
            b => stored.push(b),
        }
        i += 1;
    }
    let mut served = Vec::with_capacity(stored.len() + stored.len() / 40);
    for (j, &b) in stored.iter().enumerate() {
        if b == b'\n' && (j == 0 || stored[j - 1] != b'\r') {
            served.push(b'\r');
        }
        served.push(b);
    }
    served
}

/// What a correct load of `msgs` looks like through Dovecot: folders (plus `empty_folders`) to
/// messages with bodies in [`dovecot_served_form`], dates as given (compare instants, not strings).
pub fn expected_snapshot(msgs: &[FixtureMsg], empty_folders: &[String]) -> Snapshot {
    let mut s = Snapshot::new();
    for f in empty_folders {
        s.entry(f.clone()).or_default();
    }
    for m in msgs {
        s.entry(m.folder.clone()).or_default().push(SnapMsg {
            flags: m.flags.clone(),
            internal_date: m.internal_date.clone(),
            body: dovecot_served_form(&m.body),
        });
    }
    for v in s.values_mut() {
        sort_msgs(v);
    }
    s
}

/// Every selectable folder of the logged-in account with all its messages (read-only; `\Recent` left
/// out), sorted by body hash within a folder. Empty folders are present with no messages.
pub fn mailbox_snapshot(reader: &mut ImapReader) -> Snapshot {
    let mut s = Snapshot::new();
    for folder in reader.folders() {
        let mut v: Vec<SnapMsg> = reader
            .fetch_all(&folder)
            .into_iter()
            .map(|m| SnapMsg { flags: m.flags, internal_date: m.internal_date, body: m.body })
            .collect();
        sort_msgs(&mut v);
        s.insert(folder, v);
    }
    s
}

pub fn sort_msgs(v: &mut [SnapMsg]) {
    v.sort_by_cached_key(|m| (fnv1a(&m.body), m.body.len(), m.flags.clone(), m.instant()));
}

impl SnapMsg {
    /// Internal date as seconds since the epoch (time zones differ between servers; instants must not).
    pub fn instant(&self) -> Option<i64> {
        parse_internal_date(&self.internal_date)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.body, name)
    }

    /// One line naming the message for reports: Message-ID, Subject, size, hash.
    pub fn describe(&self) -> String {
        let clip = |s: String| {
            if s.chars().count() > 60 { s.chars().take(57).collect::<String>() + "..." } else { s }
        };
        format!(
            "[{} | {:?} | {} bytes | hash {:016x}]",
            self.header("Message-ID").unwrap_or_else(|| "no Message-ID".into()),
            clip(self.header("Subject").unwrap_or_default()),
            self.body.len(),
            fnv1a(&self.body)
        )
    }
}

/// First value of header `name` (unfolded, lossy UTF-8), looking only at the header section.
pub fn header_value(body: &[u8], name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(v) = value.as_mut() {
                v.push(' ');
                v.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if let Some((k, v)) = text.split_once(':')
            && k.trim().eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_string());
        }
    }
    value
}

/// Maps every name from one layout to another component by component (`INBOX.Kunder.Åre` →
/// `Kunder/Åre`), replacing the target separator inside a component with `clash` (postflytt's own rule
/// may differ: build the map by hand then).
pub fn name_map<'a>(from: Layout, to: Layout, names: impl IntoIterator<Item = &'a String>, clash: &str) -> BTreeMap<String, String> {
    let sep = to.separator().to_string();
    names
        .into_iter()
        .map(|n| {
            let path: Vec<String> = from.split(n).into_iter().map(|c| c.replace(&sep, clash)).collect();
            (n.clone(), to.join(&path))
        })
        .collect()
}

/// Panics with a precise report unless `target` holds the same mail as `source` after renaming source
/// folders through `name_map` (names not in the map keep their name). See [`diff_mail`].
pub fn assert_same_mail(source: &Snapshot, target: &Snapshot, name_map: &BTreeMap<String, String>) {
    let problems = diff_mail(source, target, name_map);
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(80).collect();
        let more = problems.len().saturating_sub(shown.len());
        panic!(
            "source and target mail differ ({} problems):\n  {}{}",
            problems.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            if more > 0 { format!("\n  ... and {more} more") } else { String::new() }
        );
    }
}

/// Differences between two snapshots, one line each: missing folders, message counts, missing, extra
/// and duplicated messages, bodies that differ (with the first differing byte), flags, internal dates
/// (compared as instants). Several source folders may map to one target folder. Target folders nobody
/// maps to are reported only if they hold mail (servers create empty special-use folders).
pub fn diff_mail(source: &Snapshot, target: &Snapshot, name_map: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_target: BTreeMap<String, (Vec<String>, Vec<&SnapMsg>)> = BTreeMap::new();
    for (folder, msgs) in source {
        let t = name_map.get(folder).cloned().unwrap_or_else(|| folder.clone());
        let e = by_target.entry(t).or_default();
        e.0.push(folder.clone());
        e.1.extend(msgs.iter());
    }
    for (t, (sources, src)) in &by_target {
        let label = format!("{:?} → {t:?}", sources.join(" + "));
        let Some(tgt) = target.get(t) else {
            problems.push(format!("folder {label}: missing on target (source has {} messages)", src.len()));
            continue;
        };
        let tgt: Vec<&SnapMsg> = tgt.iter().collect();
        if src.len() != tgt.len() {
            problems.push(format!("folder {label}: {} messages on source, {} on target", src.len(), tgt.len()));
        }
        diff_folder(&label, src, &tgt, &mut problems);
    }
    for (t, msgs) in target {
        if !by_target.contains_key(t) && !msgs.is_empty() {
            problems.push(format!("folder {t:?}: on target only, with {} messages", msgs.len()));
        }
    }
    problems
}

fn diff_folder(label: &str, src: &[&SnapMsg], tgt: &[&SnapMsg], problems: &mut Vec<String>) {
    let group = |v: &[&SnapMsg]| -> BTreeMap<(u64, usize), Vec<SnapMsg>> {
        let mut g: BTreeMap<(u64, usize), Vec<SnapMsg>> = BTreeMap::new();
        for m in v {
            g.entry((fnv1a(&m.body), m.body.len())).or_default().push((*m).clone());
        }
        for list in g.values_mut() {
            list.sort_by(|a, b| (&a.flags, a.instant()).cmp(&(&b.flags, b.instant())));
        }
        g
    };
    let (gs, gt) = (group(src), group(tgt));
    let mut missing: Vec<SnapMsg> = Vec::new();
    let mut extra: Vec<SnapMsg> = Vec::new();
    let keys: BTreeSet<&(u64, usize)> = gs.keys().chain(gt.keys()).collect();
    for k in keys {
        let s = gs.get(k).map(Vec::as_slice).unwrap_or(&[]);
        let t = gt.get(k).map(Vec::as_slice).unwrap_or(&[]);
        if !s.is_empty() && t.len() > s.len() {
            problems.push(format!("folder {label}: duplicated: {} on source, {} on target: {}", s.len(), t.len(), s[0].describe()));
        }
        for (a, b) in s.iter().zip(t) {
            if a.flags != b.flags {
                problems.push(format!("folder {label}: flags differ: source {:?}, target {:?}: {}", a.flags, b.flags, a.describe()));
            }
            if a.instant() != b.instant() || a.instant().is_none() {
                problems.push(format!(
                    "folder {label}: internal date differs: source {:?}, target {:?}: {}",
                    a.internal_date,
                    b.internal_date,
                    a.describe()
                ));
            }
        }
        if s.len() > t.len() {
            missing.extend(s[t.len()..].iter().cloned());
        }
        if t.len() > s.len() && s.is_empty() {
            extra.extend(t.iter().cloned());
        }
    }
    // Pair each missing message with an extra one that looks like it, to show how the bytes differ.
    for m in missing {
        let id = m.header("Message-ID");
        let subject = m.header("Subject");
        let pos = extra
            .iter()
            .position(|e| id.is_some() && e.header("Message-ID") == id)
            .or_else(|| extra.iter().position(|e| subject.is_some() && e.header("Subject") == subject));
        match pos {
            Some(p) => {
                let e = extra.remove(p);
                problems.push(format!(
                    "folder {label}: body differs: source {} / target {}: {}",
                    m.describe(),
                    e.describe(),
                    first_difference(&m.body, &e.body)
                ));
            }
            None => problems.push(format!("folder {label}: missing on target: {}", m.describe())),
        }
    }
    for e in extra {
        problems.push(format!("folder {label}: extra on target: {}", e.describe()));
    }
}

/// "first difference at byte N: source ..., target ..." with a little escaped context.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let ctx = |v: &[u8]| -> String {
        let start = i.saturating_sub(16);
        let end = (i + 24).min(v.len());
        v[start..end].escape_ascii().to_string()
    };
    format!("first difference at byte {i}: source \"{}\", target \"{}\"", ctx(a), ctx(b))
}
