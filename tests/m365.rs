//! Microsoft 365 (Exchange Online) as the target, end to end with the real binary, against local
//! stand-ins for the two Microsoft services involved:
//!
//! - the identity platform (`m365/idp.rs`): a tiny_http token endpoint for the client-credentials
//!   grant that counts requests and can refuse, expire and revoke tokens, plus the token introspection
//!   endpoint Dovecot asks;
//! - Exchange Online's IMAP: a real Dovecot 2.3 whose `oauth2` passdb accepts or refuses real
//!   `AUTHENTICATE XOAUTH2` logins by asking that introspection endpoint (the passwd-file passdb stays
//!   too, so the tests' own reader logs in with a password), behind `m365/exchange.rs`, a scripted
//!   stand-in that imitates what Exchange Online does and Dovecot cannot be made to do: Exchange's
//!   capability list (no CONDSTORE, QRESYNC, QUOTA, SPECIAL-USE, MULTIAPPEND, APPENDLIMIT), no
//!   special-use attributes in LIST (Exchange's special folders "Sent Items", "Deleted Items",
//!   "Junk Email", "Drafts", "Archive" exist by name, created beforehand), `\Flagged` dropped from
//!   APPEND, and "Request is throttled. Suggested Backoff Time: N milliseconds" answers to APPEND.
//!
//! Each Exchange quirk postflytt handles by name has a test here; results are read back with the
//! harness's own IMAP reader straight from Dovecot, never through postflytt or the stand-in.

mod common;
mod driver;
#[allow(dead_code)]
#[path = "m365/exchange.rs"]
mod exchange;
#[allow(dead_code)]
#[path = "m365/idp.rs"]
mod idp;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::time::Instant;

use common::fixture::{self, Snapshot};
use common::{Dovecot, DovecotOptions, ImapReader, Layout};
use driver::{Migration, Via, appended};
use exchange::ExchangeStandIn;
use idp::Idp;

const TENANT: &str = "3f6b2c1a-9d4e-4b7a-8c21-5e0f9a7d6b13";
const CLIENT_ID: &str = "b7e1d0c2-4a5f-4e3b-9c8d-1f2a3b4c5d6e";
/// Shaped like an Entra ID client secret value (40 characters with `~`, `.`, `_`).
const SECRET: &str = "Zq8~Tn3.Kp_w2RmXv7Ls4Yb9Hc1Jd6Fg0Ae5Ui~Q";
const DOMAIN: &str = "ny.se";
/// Password of the target users for the tests' own reader (passwd-file passdb); postflytt never has it.
const READER_PW: &str = "only-for-the-test-reader";
/// Exchange Online's own folders, present in every mailbox.
const EXCHANGE_FOLDERS: [&str; 5] = ["Sent Items", "Deleted Items", "Junk Email", "Drafts", "Archive"];
/// Exchange Online's default message size limit.
const LIMIT_35_MB: u64 = 35 * 1024 * 1024;

/// A removable temp directory.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_DOVECOT").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Source Dovecot, Microsoft-365-configured target behind the Exchange stand-in, the identity
/// platform stand-in, and a postflytt data directory set up for them. Fields drop in this order.
struct World {
    m: Migration,
    exo: ExchangeStandIn,
    target: Dovecot,
    source: Dovecot,
    idp: Idp,
    conf: TempDir,
    /// Every postflytt output so far, to be searched for secrets.
    outputs: Mutex<Vec<String>>,
}

/// `accounts`: (source login, source password, target login). Target passwords stay empty in the
/// account list, as they are for Microsoft 365.
fn world(accounts: &[(&str, &str, &str)]) -> World {
    world_with_secret(accounts, SECRET)
}

fn world_with_secret(accounts: &[(&str, &str, &str)], secret_given: &str) -> World {
    let idp = Idp::start(TENANT, CLIENT_ID, SECRET, DOMAIN);
    let conf = TempDir(common::fresh_dir("pf-m365"));
    let oauth_conf = conf.0.join("dovecot-oauth2.conf.ext");
    std::fs::write(&oauth_conf, idp.dovecot_oauth2_conf()).expect("write oauth2 args");
    set_mode(&conf.0, 0o755);
    set_mode(&oauth_conf, 0o644);
    let source_users: Vec<(&str, &str)> = accounts.iter().map(|(l, p, _)| (*l, *p)).collect();
    let target_users: Vec<(&str, &str)> = accounts.iter().map(|(_, _, t)| (*t, READER_PW)).collect();
    let source = Dovecot::start(Layout::OldHost, &source_users);
    let target = oauth_dovecot(&oauth_conf, &target_users);
    for (t, _) in &target_users {
        let mut r = target.reader(t);
        fixture::ensure_folders(&mut r, &EXCHANGE_FOLDERS);
    }
    let exo = ExchangeStandIn::start(target.port());
    let csv: Vec<(&str, &str, &str, &str)> = accounts.iter().map(|(l, p, t)| (*l, *p, *t, "")).collect();
    let m = Migration::with_ports(&source, Via::Plain, None, &target, Via::Plain, Some(exo.port()), &csv);
    let w = World { m, exo, target, source, idp, conf, outputs: Mutex::new(Vec::new()) };
    w.set_secret(secret_given);
    let out = w.ok(&[
        "setup",
        "--target-kind",
        "m365",
        "--m365-tenant",
        TENANT,
        "--m365-client-id",
        CLIENT_ID,
        "--m365-token-url",
        &w.idp.token_url(),
    ]);
    assert!(!out.contains("outlook.office365.com"), "setup with --target already given must keep it:\n{out}");
    w
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl World {
    /// Stores the app's client secret the way an operator does: from a file, deleted afterwards.
    fn set_secret(&self, secret: &str) {
        let file = self.conf.0.join("client-secret.txt");
        std::fs::write(&file, format!("{secret}\n")).expect("write secret file");
        let out = self.ok(&["setup", "--m365-client-secret-file", &file.to_string_lossy()]);
        assert!(out.contains("sealed"), "{out}");
        std::fs::remove_file(&file).expect("remove secret file");
    }

    /// Runs postflytt; returns the exit code and stdout + stderr (also kept for the secret search).
    fn run(&self, args: &[&str]) -> (i32, String) {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let out: Output = self.m.run_env(args, env);
        let text = driver::text(&out);
        self.outputs.lock().unwrap_or_else(|e| e.into_inner()).push(format!("$ postflytt {args:?}\n{text}"));
        (out.status.code().unwrap_or(-1), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, text) = self.run(args);
        assert_eq!(code, 0, "postflytt {args:?} failed:\n{text}");
        text
    }

    /// A sync pass; returns the output and the token requests it made.
    fn sync(&self, args: &[&str]) -> (i32, String, u64) {
        let before = self.idp.token_requests();
        let mut all = vec!["sync"];
        all.extend_from_slice(args);
        let (code, text) = self.run(&all);
        (code, text, self.idp.token_requests() - before)
    }

    fn source_reader(&self, login: &str) -> ImapReader {
        self.source.reader(login)
    }

    fn target_reader(&self, login: &str) -> ImapReader {
        self.target.reader(login)
    }

    /// No client secret (either given) and no access token in any output or in any file of the data
    /// directory (the secret is stored sealed); the identity stand-in saw no protocol mistakes.
    fn assert_nothing_leaked(&self, secrets: &[&str]) {
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        for out in outputs.iter() {
            for s in secrets {
                assert!(!out.contains(s), "the client secret appears in postflytt's output:\n{out}");
            }
            assert!(!out.contains("m365tok-"), "an access token appears in postflytt's output:\n{out}");
        }
        let files = common::files_under(&self.m.data);
        assert!(!files.is_empty());
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_default();
            for s in secrets {
                assert!(!contains(&bytes, s.as_bytes()), "the client secret is readable in {}", f.display());
            }
            assert!(!contains(&bytes, b"m365tok-"), "an access token is stored in {}", f.display());
        }
        assert_eq!(self.idp.complaints(), Vec::<String>::new(), "token endpoint protocol mistakes");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn snapshot(server: &Dovecot, user: &str) -> Snapshot {
    fixture::mailbox_snapshot(&mut server.reader(user))
}

/// The names Exchange gives the hard-case fixture's folders (old host → Exchange Online), written out
/// by hand: Swedish special folders to Exchange's own, `.` hierarchy to `/`, a `/` inside a name to
/// U+2215.
fn exchange_name_map(names: &[String]) -> BTreeMap<String, String> {
    let specials = [("Skickat", "Sent Items"), ("Utkast", "Drafts"), ("Papperskorg", "Deleted Items"), ("Skräppost", "Junk Email")];
    names
        .iter()
        .map(|n| {
            let mut parts: Vec<String> = Layout::OldHost.split(n).iter().map(|c| c.replace('/', "\u{2215}")).collect();
            if let Some((_, to)) = specials.iter().find(|(s, _)| parts.len() == 1 && parts[0] == *s) {
                parts[0] = to.to_string();
            }
            (n.clone(), Layout::Modern.join(&parts))
        })
        .collect()
}

/// `postflytt folders` output as source → (target, reason and note).
fn parse_folders(out: &str) -> BTreeMap<String, (String, String)> {
    out.lines()
        .filter_map(|l| {
            let (source, rest) = l.split_once(" -> ")?;
            let (target, why) = rest.split_once("  (")?;
            Some((source.trim().to_string(), (target.trim().to_string(), why.trim_end_matches(')').to_string())))
        })
        .collect()
}

fn uidnexts(server: &Dovecot, user: &str) -> BTreeMap<String, u32> {
    let mut r = server.reader(user);
    r.folders()
        .into_iter()
        .map(|f| {
            let s = r.status(&f);
            (f, s.uidnext)
        })
        .collect()
}

/// A Dovecot in the modern layout that takes XOAUTH2 logins checked by an identity stand-in (whose
/// passdb args file is `oauth_conf`), and passwords for the tests' own reader.
fn oauth_dovecot(oauth_conf: &Path, users: &[(&str, &str)]) -> Dovecot {
    let extra_config = format!(
        "# Microsoft 365 stand-in: XOAUTH2 logins checked by the test's introspection endpoint.\n\
         auth_mechanisms = plain login xoauth2 oauthbearer\n\
         passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
        oauth_conf.display()
    );
    Dovecot::start_with(Layout::Modern, users, DovecotOptions { extra_config, ..DovecotOptions::default() })
}

fn simple_message(id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Åsa Öberg <asa@gammal.se>\r\nTo: kund@kund.se\r\nSubject: {subject}\r\nMessage-ID: <{id}@gammal.se>\r\n\
         Date: Tue, 03 Mar 2020 10:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nInnehåll: {subject}.\r\n"
    )
    .into_bytes()
}

/// The target as it was before the re-rendering stand-in changed it: `REWRITE_HEADER` taken off the
/// front of every message (each must have it, or the stand-in was not in the way).
fn unrendered(target: Snapshot) -> Snapshot {
    target
        .into_iter()
        .map(|(folder, msgs)| {
            let mut msgs: Vec<fixture::SnapMsg> = msgs
                .into_iter()
                .map(|mut m| {
                    assert!(m.body.starts_with(exchange::REWRITE_HEADER), "{folder}: a message was not re-rendered");
                    m.body.drain(..exchange::REWRITE_HEADER.len());
                    m
                })
                .collect();
            fixture::sort_msgs(&mut msgs);
            (folder, msgs)
        })
        .collect()
}

fn subjects(reader: &mut ImapReader, folder: &str) -> BTreeSet<String> {
    reader.fetch_all(folder).iter().filter_map(|m| fixture::header_value(&m.body, "Subject")).collect()
}

/// The throttled pass took at least the `waits_ms` the server asked for, and about that much longer
/// than the same pass unthrottled (150 ms of slack for the noise between two runs of the binary).
/// The throttled pass cannot take less than the waits it was asked for. (Comparing with the unthrottled
/// pass's time as well proved too noisy on a loaded 2-core machine, so that is only printed.)
fn assert_waited(throttled: std::time::Duration, plain: std::time::Duration, waits_ms: u128) {
    eprintln!("throttled pass {throttled:?}, unthrottled {plain:?}, waits asked {waits_ms} ms");
    assert!(
        throttled.as_millis() >= waits_ms,
        "the suggested backoff ({waits_ms} ms in all) was not waited: {throttled:?} throttled vs {plain:?} unthrottled"
    );
}

/// Quirks `exchange_special_folders` (Swedish specials land in "Sent Items", "Deleted Items", "Junk
/// Email", "Drafts"), `exchange_drops_flagged_on_append` (the stand-in strips `\Flagged` from APPEND;
/// it must be on the target after the pass anyway) and `exchange_no_condstore_quota_special_use`
/// (none of them announced); with one app token per process for every connection, and byte-exact
/// bodies, flags, keywords and internal dates. A second pass appends nothing.
#[test]
fn hard_cases_reach_exchange_folders_with_flags_and_one_token_per_process() {
    let w = world(&[("alice@gammal.se", "källa-1", "alice@ny.se"), ("bo@gammal.se", "källa-2", "bo@ny.se")]);
    fixture::load_hard_cases(&mut w.source_reader("alice@gammal.se"), Layout::OldHost);
    let bo_msgs = fixture::bulk("INBOX", 6, 11, 400..3000);
    fixture::load(&mut w.source_reader("bo@gammal.se"), &bo_msgs);

    // The stand-in looks like Exchange to any client (checked with the harness's reader).
    let mut through = ImapReader::login(w.exo.port(), "alice@ny.se", READER_PW);
    let caps = through.capabilities();
    for absent in ["CONDSTORE", "QRESYNC", "QUOTA", "SPECIAL-USE", "MULTIAPPEND", "ENABLE"] {
        assert!(!caps.contains(absent), "the stand-in announces {absent}: {caps:?}");
    }
    assert!(caps.contains("AUTH=XOAUTH2") || through.greeting.contains("AUTH=XOAUTH2"), "{caps:?} / {}", through.greeting);
    let drafts = through.list().into_iter().find(|e| e.name == "Drafts").expect("Drafts listed");
    assert!(!drafts.has_attribute("\\Drafts"), "special-use attribute leaked: {drafts:?}");
    through.logout();

    // The mapping the operator sees: Exchange's own special folders.
    let before = w.idp.token_requests();
    let folders = parse_folders(&w.ok(&["folders", "alice@gammal.se"]));
    assert_eq!(w.idp.token_requests() - before, 1, "`folders` gets one token");
    for (source, target) in [
        ("INBOX.Skickat", "Sent Items"),
        ("INBOX.Papperskorg", "Deleted Items"),
        ("INBOX.Skräppost", "Junk Email"),
        ("INBOX.Utkast", "Drafts"),
        ("INBOX.Kunder.Åre", "Kunder/Åre"),
    ] {
        assert_eq!(folders.get(source).map(|t| t.0.as_str()), Some(target), "{source}: {folders:#?}");
    }

    // First pass: two accounts, two target connections, one token.
    let (code, out, tokens) = w.sync(&["--parallel", "1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(tokens, 1, "one token for both accounts' connections in one process:\n{out}");
    let src = snapshot(&w.source, "alice@gammal.se");
    let names: Vec<String> = src.keys().cloned().collect();
    let map = exchange_name_map(&names);
    let tgt = snapshot(&w.target, "alice@ny.se");
    fixture::assert_same_mail(&src, &tgt, &map);
    let bo_src = snapshot(&w.source, "bo@gammal.se");
    fixture::assert_same_mail(&bo_src, &snapshot(&w.target, "bo@ny.se"), &BTreeMap::new());
    let total: usize = src.values().chain(bo_src.values()).map(Vec::len).sum();
    assert_eq!(appended(&out), total as u64, "{out}");
    // No stray English defaults were made next to Exchange's folders.
    for not_made in ["Sent", "Trash", "Junk"] {
        assert!(!tgt.contains_key(not_made), "{not_made} was created on the target: {:?}", tgt.keys());
    }

    // \Flagged really did not arrive with APPEND, and is on the target anyway (set by STORE).
    let flagged_on_source: usize = src.values().chain(bo_src.values()).flatten().filter(|m| m.flags.contains("\\Flagged")).count();
    assert!(flagged_on_source >= 4, "the fixture has flagged mail");
    assert_eq!(w.exo.counters().flagged_dropped, flagged_on_source as u64, "the stand-in dropped \\Flagged from every APPEND that had it");
    let flagged_on_target: usize =
        tgt.values().chain(snapshot(&w.target, "bo@ny.se").values()).flatten().filter(|m| m.flags.contains("\\Flagged")).count();
    assert_eq!(flagged_on_target, flagged_on_source);

    // Second pass: nothing appended, nothing changed; again one token for the process.
    let appends_before = w.exo.counters().appends;
    let before = uidnexts(&w.target, "alice@ny.se");
    let (code, out, tokens) = w.sync(&["--parallel", "1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 0, "{out}");
    assert_eq!(tokens, 1, "{out}");
    assert_eq!(w.exo.counters().appends, appends_before);
    assert_eq!(uidnexts(&w.target, "alice@ny.se"), before);
    fixture::assert_same_mail(&src, &snapshot(&w.target, "alice@ny.se"), &map);

    // With parallel passes the two accounts log in at the same moment (shown, not asserted: the cache
    // has no single-flight).
    let (code, out, tokens) = w.sync(&[]);
    assert_eq!(code, 0, "{out}");
    eprintln!("token requests of a --parallel 4 pass over 2 accounts: {tokens}");
    assert!(tokens <= 2, "{tokens} token requests for 2 accounts");
    w.assert_nothing_leaked(&[SECRET]);
}

/// Quirks `exchange_reserved_files` (a source folder `Files` may not become Exchange's own `Files`)
/// and `exchange_case_insensitive_names` (`INBOX.kunder` next to `INBOX.Kunder` would be one folder
/// on Exchange): both get a collision suffix, shown by `postflytt folders` and created on the target.
#[test]
fn reserved_files_and_case_collisions_get_suffixes() {
    let w = world(&[("cecilia@gammal.se", "källa-3", "cecilia@ny.se")]);
    {
        let mut r = w.source_reader("cecilia@gammal.se");
        fixture::ensure_folders(&mut r, &["INBOX.Files", "INBOX.Kunder", "INBOX.kunder"]);
        for (folder, id) in [
            ("INBOX", "inbox-1"),
            ("INBOX.Files", "files-1"),
            ("INBOX.Files", "files-2"),
            ("INBOX.Kunder", "stora-k"),
            ("INBOX.kunder", "lilla-k"),
        ] {
            r.append(folder, &["\\Seen"], Some("02-Feb-2022 09:00:00 +0100"), &simple_message(id, &format!("{folder} {id}")));
        }
    }
    let folders = parse_folders(&w.ok(&["folders", "cecilia@gammal.se"]));
    let target_of = |s: &str| folders.get(s).map(|t| t.0.clone()).unwrap_or_else(|| panic!("{s} not in {folders:#?}"));
    assert_eq!(target_of("INBOX.Files"), "Files (2)");
    assert!(folders["INBOX.Files"].1.contains("reserved"), "{:?}", folders["INBOX.Files"]);
    assert_eq!(target_of("INBOX.Kunder"), "Kunder");
    assert_eq!(target_of("INBOX.kunder"), "kunder (2)");
    assert!(folders["INBOX.kunder"].1.contains("renamed"), "{:?}", folders["INBOX.kunder"]);

    let (code, out, _) = w.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 5, "{out}");
    let mut t = w.target_reader("cecilia@ny.se");
    let names: BTreeSet<String> = t.folders().into_iter().collect();
    for made in ["Files (2)", "Kunder", "kunder (2)"] {
        assert!(names.contains(made), "{made} missing on the target: {names:?}");
    }
    assert!(!names.contains("Files") && !names.contains("kunder"), "{names:?}");
    assert_eq!(subjects(&mut t, "Files (2)"), ["INBOX.Files files-1", "INBOX.Files files-2"].map(String::from).into());
    assert_eq!(subjects(&mut t, "Kunder"), ["INBOX.Kunder stora-k".to_string()].into());
    assert_eq!(subjects(&mut t, "kunder (2)"), ["INBOX.kunder lilla-k".to_string()].into());
    w.assert_nothing_leaked(&[SECRET]);
}

/// Quirk `exchange_throttled`: "NO Request is throttled. Suggested Backoff Time: 300 milliseconds"
/// to the first three APPENDs. The pass waits as told and goes on: it succeeds, nothing is refused
/// or skipped, every message arrives exactly once, and it takes at least the 900 ms asked for longer
/// than the same pass unthrottled.
#[test]
fn throttled_appends_are_waited_out_not_failed() {
    let w = world(&[("dan@gammal.se", "källa-4", "dan@ny.se"), ("eva@gammal.se", "källa-5", "eva@ny.se")]);
    for (login, seed) in [("dan@gammal.se", 21), ("eva@gammal.se", 21)] {
        let mut r = w.source_reader(login);
        fixture::ensure_folders(&mut r, &["INBOX.Kunder"]);
        fixture::load(&mut r, &fixture::bulk("INBOX", 6, seed, 500..4000));
        fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 3, seed + 1, 500..4000));
    }
    // The same pass unthrottled, for the time it takes.
    let started = Instant::now();
    let (code, out, _) = w.sync(&["dan@gammal.se"]);
    let plain = started.elapsed();
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 9, "{out}");
    assert_eq!(w.exo.counters().appends, 9);

    w.exo.throttle_appends(3, 300);
    let started = Instant::now();
    let (code, out, _) = w.sync(&["eva@gammal.se"]);
    let throttled = started.elapsed();
    let c = w.exo.counters();
    eprintln!("unthrottled pass {plain:?}, throttled pass {throttled:?}; stand-in: {c:?}\n{out}");
    assert_eq!(c.throttled, 3, "three APPENDs were throttled");
    assert_eq!(code, 0, "a throttled pass is not a failure:\n{out}");
    assert!(out.contains("0 failed") && out.contains(" 0 refused"), "{out}");
    assert!(!out.contains("skipped ("), "throttling must not skip anything:\n{out}");
    assert_eq!(appended(&out), 9, "{out}");
    assert_eq!(c.appends, 9 + 9 + 3, "each throttled APPEND was sent again, once");
    let src = snapshot(&w.source, "eva@gammal.se");
    let map: BTreeMap<String, String> = [("INBOX.Kunder".to_string(), "Kunder".to_string())].into();
    fixture::assert_same_mail(&src, &snapshot(&w.target, "eva@ny.se"), &map);
    assert_waited(throttled, plain, 900);
    assert!(out.to_ascii_lowercase().contains("throttl"), "the throttling is not shown:\n{out}");
    let status = w.ok(&["status"]);
    assert!(status.contains("slow down 3 times"), "the status shows the throttling:\n{status}");
    w.assert_nothing_leaked(&[SECRET]);
}

/// A brief outage on the target ("BAD User is authenticated but not connected.", as Exchange Online
/// answers while it moves a mailbox) refuses the first APPEND of each of three pushes. Such a refusal
/// says nothing about the message, which gets one attempt per pass: its folder waits for the next
/// pass, and is not pushed again in this one each time the reader stages more (it was, and the
/// third push within seconds recorded the message as refused for good).
#[test]
fn a_brief_outage_holds_the_folder_until_the_next_pass_and_skips_nothing() {
    let w = world(&[("dan@gammal.se", "källa-4", "dan@ny.se")]);
    let mut r = w.source_reader("dan@gammal.se");
    fixture::ensure_folders(&mut r, &["INBOX.Kunder"]);
    fixture::load(&mut r, &fixture::bulk("INBOX", 30, 31, 500..4000));
    fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 12, 32, 500..4000));
    drop(r);
    w.exo.refuse_appends_not_connected(3);
    let mut passes = 0;
    let mut total = 0;
    while passes < 4 {
        let (code, out) = w.run_env(&["sync", "dan@gammal.se"], &[("POSTFLYTT_BATCH", "3")]);
        passes += 1;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(" 0 refused") && !out.contains("skipped ("), "pass {passes} skipped a message:\n{out}");
        total += appended(&out);
        if passes == 1 {
            // One refused APPEND in each folder, and neither folder pushed again in the same pass.
            assert_eq!((w.exo.counters().appends, total), (2, 0), "{out}");
        }
        if total == 42 {
            break;
        }
        assert!(out.contains("will try again next pass"), "{out}");
    }
    assert_eq!(total, 42, "after {passes} passes");
    assert!(passes >= 2, "the outage held nothing back");
    let src = snapshot(&w.source, "dan@gammal.se");
    let map: BTreeMap<String, String> = [("INBOX.Kunder".to_string(), "Kunder".to_string())].into();
    fixture::assert_same_mail(&src, &snapshot(&w.target, "dan@ny.se"), &map);
}

/// Quirk `exchange_throttled` on commands other than APPEND: the first two SELECTs, the first LIST
/// and the first UID command (the STORE that sets `\Flagged`) of the pass are throttled with a
/// suggested backoff of 200 ms. postflytt waits and sends them again: the pass succeeds, all mail
/// and flags arrive once, and it takes the 800 ms asked for longer than the same pass unthrottled.
#[test]
fn throttled_commands_are_waited_out_not_failed() {
    let w = world(&[("dan@gammal.se", "källa-4", "dan@ny.se"), ("eva@gammal.se", "källa-5", "eva@ny.se")]);
    for login in ["dan@gammal.se", "eva@gammal.se"] {
        let mut r = w.source_reader(login);
        fixture::ensure_folders(&mut r, &["INBOX.Kunder"]);
        let mut msgs = fixture::bulk("INBOX", 4, 51, 500..4000);
        msgs[0].flags.insert("\\Flagged".to_string());
        fixture::load(&mut r, &msgs);
        fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 2, 52, 500..4000));
    }
    let started = Instant::now();
    let (code, out, _) = w.sync(&["dan@gammal.se"]);
    let plain = started.elapsed();
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 6, "{out}");

    w.exo.throttle("SELECT", 2, 200);
    w.exo.throttle("LIST", 1, 200);
    w.exo.throttle("UID", 1, 200);
    let started = Instant::now();
    let (code, out, _) = w.sync(&["eva@gammal.se"]);
    let throttled = started.elapsed();
    let c = w.exo.counters();
    eprintln!("unthrottled pass {plain:?}, throttled pass {throttled:?}; {} commands throttled", c.throttled);
    assert_eq!(c.throttled, 4, "{out}");
    assert_eq!(code, 0, "a throttled pass is not a failure:\n{out}");
    assert!(out.contains("0 failed") && out.contains(" 0 refused") && !out.contains("skipped ("), "{out}");
    assert_eq!(appended(&out), 6, "{out}");
    let map: BTreeMap<String, String> = [("INBOX.Kunder".to_string(), "Kunder".to_string())].into();
    fixture::assert_same_mail(&snapshot(&w.source, "eva@gammal.se"), &snapshot(&w.target, "eva@ny.se"), &map);
    assert_waited(throttled, plain, 800);
    assert!(out.to_ascii_lowercase().contains("throttl"), "the throttling is not shown:\n{out}");
    w.assert_nothing_leaked(&[SECRET]);
}

/// The app's client secret is wrong (Entra ID: `invalid_client`, AADSTS7000215): `check` and `sync`
/// fail for the target side and say what to fix; after the operator stores the right secret the
/// pass works; when the secret is later revoked in the portal, `check` says so again. Neither secret
/// nor any token appears in any output or in the data directory.
#[test]
fn refused_client_secret_is_explained_and_never_shown() {
    let wrong = "Wr0ng~Secret.Value_copied-the-ID-not-the-value";
    let w = world_with_secret(&[("fia@gammal.se", "källa-6", "fia@ny.se")], wrong);
    {
        let mut r = w.source_reader("fia@gammal.se");
        for id in ["a", "b"] {
            r.append("INBOX", &[], None, &simple_message(id, &format!("brev {id}")));
        }
    }
    let (code, out) = w.run(&["check"]);
    eprintln!("check with a wrong client secret:\n{out}");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("login failed (target)"), "{out}");
    assert!(out.contains("client secret"), "the check does not name the client secret:\n{out}");
    assert!(out.contains("invalid_client"), "{out}");

    let (code, out, _) = w.sync(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("FAILED") && out.contains("client secret"), "{out}");
    assert_eq!(w.idp.tokens_issued(), 0);
    assert!(w.idp.refused_requests() >= 2, "{}", w.idp.refused_requests());
    assert_eq!(w.idp.introspections().0, 0, "no login was tried without a token");

    // The operator stores the right secret: the pass works.
    w.set_secret(SECRET);
    let (code, out, tokens) = w.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((appended(&out), tokens), (2, 1), "{out}");

    // The secret is deleted in the portal: the check says so again.
    w.idp.set_refuse(true);
    let (code, out) = w.run(&["check"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("login failed (target)") && out.contains("client secret"), "{out}");
    w.assert_nothing_leaked(&[SECRET, wrong]);
}

/// A token the server stops accepting while postflytt still has it cached (revoked after its first
/// use) is dropped, a fresh one is fetched and the login retried once: both accounts of the pass get
/// in. When no fresh token helps (the app lost its mailbox permission), the retry happens once, not in
/// a loop, and the error says what to check.
#[test]
fn revoked_token_is_replaced_by_a_fresh_one_once() {
    let w = world(&[("gun@gammal.se", "källa-7", "gun@ny.se"), ("hans@gammal.se", "källa-8", "hans@ny.se")]);
    for login in ["gun@gammal.se", "hans@gammal.se"] {
        fixture::load(&mut w.source_reader(login), &fixture::bulk("INBOX", 3, 31, 500..2000));
    }
    w.idp.revoke_after_uses(Some(1));
    let (code, out, tokens) = w.sync(&["--parallel", "1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 6, "{out}");
    assert_eq!(tokens, 2, "the revoked cached token was replaced once:\n{out}");
    assert_eq!(w.idp.introspections(), (3, 2), "good login, refused cached token, good login with the fresh one");
    for (s, t) in [("gun@gammal.se", "gun@ny.se"), ("hans@gammal.se", "hans@ny.se")] {
        fixture::assert_same_mail(&snapshot(&w.source, s), &snapshot(&w.target, t), &BTreeMap::new());
    }

    // No token helps: one retry per login, then a clear failure.
    w.idp.revoke_after_uses(None);
    w.idp.deny_all(true);
    let (code, out, tokens) = w.sync(&["--parallel", "1", "gun@gammal.se"]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(tokens, 2, "one fetch, one retry with a fresh token:\n{out}");
    assert!(out.contains("FAILED") && out.contains("IMAP.AccessAsApp"), "{out}");
    w.assert_nothing_leaked(&[SECRET]);
}

/// Tokens are refreshed before they expire: one that has less than five minutes left is never used
/// for a login, so with two-minute tokens each login of a pass fetches its own, and with hour-long
/// ones the process shares one.
#[test]
fn short_lived_tokens_are_fetched_per_login() {
    let w = world(&[("ida@gammal.se", "källa-9", "ida@ny.se"), ("jon@gammal.se", "källa-10", "jon@ny.se")]);
    for login in ["ida@gammal.se", "jon@gammal.se"] {
        fixture::load(&mut w.source_reader(login), &fixture::bulk("INBOX", 2, 41, 500..1500));
    }
    w.idp.set_lifetime(120);
    let (code, out, tokens) = w.sync(&["--parallel", "1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 4, "{out}");
    assert_eq!(tokens, 2, "a two-minute token is not reused:\n{out}");
    w.idp.set_lifetime(3600);
    let (code, out, tokens) = w.sync(&["--parallel", "1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(tokens, 1, "{out}");
    w.assert_nothing_leaked(&[SECRET]);
}

/// Quirk `exchange_message_size_limit`: Exchange announces no APPENDLIMIT (the stand-in strips
/// Dovecot's) and none is configured, so the 35 MB default holds. `check` lists the 36 MB message
/// as over the limit; `sync` records it as skipped with the reason, never sends it, and copies the rest.
#[test]
fn messages_over_35_mb_are_listed_by_check_and_skipped_by_sync() {
    let w = world(&[("kim@gammal.se", "källa-11", "kim@ny.se")]);
    let big = fixture::big_message(36 * 1024 * 1024);
    assert!(big.len() as u64 > LIMIT_35_MB);
    {
        let mut r = w.source_reader("kim@gammal.se");
        r.status("INBOX");
        r.append("INBOX", &["\\Seen"], Some("05-May-2021 08:00:00 +0200"), &simple_message("liten-1", "liten 1"));
        r.append("INBOX", &[], Some("06-May-2021 08:00:00 +0200"), &big);
        r.append("INBOX", &["\\Flagged"], Some("07-May-2021 08:00:00 +0200"), &simple_message("liten-2", "liten 2"));
    }
    let (code, out) = w.run(&["check"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("has messages over the target's size limit"), "{out}");
    assert!(out.contains("size limit: 35.0 MB"), "{out}");
    assert!(out.contains("over the limit: 36.0 MB in INBOX"), "{out}");

    let (code, out, _) = w.sync(&[]);
    assert_eq!(code, 0, "a skipped message does not fail the pass:\n{out}");
    assert_eq!(appended(&out), 2, "{out}");
    assert!(out.contains(" 1 refused"), "{out}");
    assert!(out.contains("skipped (1)") && out.contains("larger than the target's limit"), "{out}");
    assert!(out.contains(&format!("limit of {LIMIT_35_MB} bytes")), "{out}");
    assert_eq!(w.exo.counters().appends, 2, "the big message was never sent");
    let mut t = w.target_reader("kim@ny.se");
    assert_eq!(subjects(&mut t, "INBOX"), ["liten 1".to_string(), "liten 2".to_string()].into());
    // The next pass neither retries it nor reports it twice.
    let (code, out, _) = w.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 0, "{out}");
    assert_eq!(w.exo.counters().appends, 2);
    w.assert_nothing_leaked(&[SECRET]);
}

/// `postflytt check` for a Microsoft 365 target shows what it shows for an IMAP target: the same
/// accounts, folders, counts, sizes and verdict, with Exchange's folder names, its 35 MB size limit,
/// and "no quota reported" (Exchange has no QUOTA).
#[test]
fn check_shows_the_same_for_m365_as_for_imap() {
    let w = world(&[("lisa@gammal.se", "källa-12", "lisa@ny.se")]);
    fixture::load_hard_cases(&mut w.source_reader("lisa@gammal.se"), Layout::OldHost);
    let imap_target = Dovecot::start(Layout::Target, &[("lisa@ny.se", "mål-lösen")]);
    let imap =
        Migration::new(&w.source, Via::Plain, &imap_target, Via::Plain, &[("lisa@gammal.se", "källa-12", "lisa@ny.se", "mål-lösen")]);

    let m365_table = w.ok(&["check"]);
    let imap_table = imap.ok(&["check"]);
    eprintln!("check, Microsoft 365 target:\n{m365_table}\ncheck, IMAP target:\n{imap_table}");
    let m365_json = String::from_utf8_lossy(&w.m.run(&["check", "--format", "json"]).stdout).into_owned();
    let imap_json = String::from_utf8_lossy(&imap.run(&["check", "--format", "json"]).stdout).into_owned();
    let m: serde_json::Value = serde_json::from_str(&m365_json[m365_json.find('{').expect("json")..]).expect("M365 check JSON");
    let i: serde_json::Value = serde_json::from_str(&imap_json[imap_json.find('{').expect("json")..]).expect("IMAP check JSON");
    let (ma, ia) = (&m["accounts"][0], &i["accounts"][0]);
    assert_eq!(ma["verdict"], "ready", "{m365_table}");
    assert_eq!(ia["verdict"], "ready", "{imap_table}");
    for key in ["account", "target_account", "messages", "bytes", "largest", "over_limit", "incomplete"] {
        assert_eq!(ma[key], ia[key], "{key} differs between the Microsoft 365 and the IMAP check");
    }
    let keys = |v: &serde_json::Value| v.as_object().map(|o| o.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
    assert_eq!(keys(ma), keys(ia), "the two checks report different fields");
    let folders = |v: &serde_json::Value| -> BTreeMap<String, (String, u64, u64)> {
        v["folders"]
            .as_array()
            .expect("folders")
            .iter()
            .map(|f| {
                (
                    f["source"].as_str().unwrap_or("").to_string(),
                    (f["target"].as_str().unwrap_or("").to_string(), f["messages"].as_u64().unwrap_or(0), f["bytes"].as_u64().unwrap_or(0)),
                )
            })
            .collect()
    };
    let (mf, imf) = (folders(ma), folders(ia));
    assert_eq!(mf.keys().collect::<Vec<_>>(), imf.keys().collect::<Vec<_>>());
    for (source, (target, n, bytes)) in &mf {
        assert_eq!((n, bytes), (&imf[source].1, &imf[source].2), "{source}");
        let expected = exchange_name_map(std::slice::from_ref(source))[source].clone();
        assert_eq!(target, &expected, "{source} on Microsoft 365");
    }
    assert_eq!(imf["INBOX.Skickat"].0, "Sent");
    assert_eq!(ma["size_limit"].as_u64(), Some(LIMIT_35_MB));
    assert_eq!(ma["target_room"], serde_json::Value::Null);
    assert!(ia["target_room"].as_u64().is_some());

    // The table has the same shape: the same lines, differing only in target names and limits.
    let shape = |t: &str| -> Vec<String> { t.lines().map(|l| l.split_whitespace().next().unwrap_or("").to_string()).collect() };
    assert_eq!(shape(&m365_table), shape(&imap_table), "M365:\n{m365_table}\nIMAP:\n{imap_table}");
    assert!(m365_table.contains("lisa@gammal.se -> lisa@ny.se: ready"), "{m365_table}");
    assert!(m365_table.contains("size limit: 35.0 MB") && m365_table.contains("target room: unknown"), "{m365_table}");
    assert!(m365_table.contains("Sent Items") && m365_table.contains("1 of 1 accounts ready"), "{m365_table}");
    w.assert_nothing_leaked(&[SECRET]);
}

/// Quirk `exchange_rewrites_messages`: Exchange re-renders what is appended, so a message whose APPEND
/// answer was lost cannot be found again by size and SHA-256. The stand-in re-renders every message
/// and cuts the connection right after the 4th and the 15th APPEND reached the server (the 15th is a
/// message without a Message-ID, found by Date, From and Subject); a later pass cuts after the first of
/// two identical messages. postflytt reconnects, finds each of them by its identity and does not send
/// it again: every message reaches the server exactly once. After the target folder's UIDVALIDITY
/// changes, a rechecking pass (`sync --recheck`, as finish's last pass) finds all of them again by
/// identity and appends nothing, and verification compares the re-rendered copies by identity.
#[test]
fn rewritten_mail_is_found_by_identity_after_lost_answers_and_a_uidvalidity_change() {
    let w = world(&[("frida@gammal.se", "källa-6", "frida@ny.se")]);
    let no_id = |subject: &str| {
        format!(
            "From: Åsa <asa@gammal.se>\r\nTo: kund@kund.se\r\nSubject: {subject}\r\n\
             Date: Wed, 04 Mar 2020 11:00:00 +0100\r\n\r\nInget Message-ID.\r\n"
        )
        .into_bytes()
    };
    {
        let mut r = w.source_reader("frida@gammal.se");
        fixture::ensure_folders(&mut r, &["INBOX.Kunder"]);
        fixture::load(&mut r, &fixture::bulk("INBOX", 14, 41, 500..4000));
        for subject in ["Utan id 1", "Utan id 2"] {
            r.append("INBOX", &["\\Seen"], Some("04-Mar-2020 11:00:00 +0100"), &no_id(subject));
        }
        fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 5, 42, 500..4000));
    }
    let map: BTreeMap<String, String> = [("INBOX.Kunder".to_string(), "Kunder".to_string())].into();
    let fast_reconnect = [("POSTFLYTT_RECONNECT_MS", "50")];
    w.exo.rewrite_appends();
    w.exo.cut_after_appends(&[4, 15]);

    let (code, out) = w.run_env(&["sync", "--parallel", "1"], &fast_reconnect);
    let c = w.exo.counters();
    eprintln!("{out}\nstand-in: {c:?}");
    assert_eq!(code, 0, "two cut connections are reconnected within the pass:\n{out}");
    assert_eq!(c.cut_after_append, 2, "{c:?}");
    assert_eq!(c.appended_to.len(), 21, "each of the 21 messages reached the server exactly once: {c:?}");
    assert!(out.contains("2 already on target"), "the two lost answers were found by identity:\n{out}");
    let src = snapshot(&w.source, "frida@gammal.se");
    fixture::assert_same_mail(&src, &unrendered(snapshot(&w.target, "frida@ny.se")), &map);

    // Two identical messages (same Message-ID, same bytes) arrive; the answer to the first is lost.
    let twin = simple_message("tvilling", "Tvilling");
    {
        let mut r = w.source_reader("frida@gammal.se");
        r.append("INBOX", &[], Some("05-Mar-2020 08:00:00 +0100"), &twin);
        r.append("INBOX", &[], Some("05-Mar-2020 08:00:00 +0100"), &twin);
    }
    w.exo.cut_after_appends(&[22]);
    let (code, out) = w.run_env(&["sync", "--parallel", "1"], &fast_reconnect);
    let c = w.exo.counters();
    assert_eq!(code, 0, "{out}");
    assert_eq!(c.cut_after_append, 3, "{c:?}");
    assert_eq!(c.appended_to.len(), 23, "one APPEND per twin, none again: {c:?}");
    let src = snapshot(&w.source, "frida@gammal.se");
    fixture::assert_same_mail(&src, &unrendered(snapshot(&w.target, "frida@ny.se")), &map);

    // Someone (or Exchange) re-creates the folder's UID space: the same mail under new UIDs.
    let before = w.target.doveadm_ok(&["-f", "flow", "mailbox", "status", "-u", "frida@ny.se", "uidvalidity", "INBOX"]);
    w.target.doveadm_ok(&["mailbox", "update", "-u", "frida@ny.se", "--uid-validity", "4711", "INBOX"]);
    let after = w.target.doveadm_ok(&["-f", "flow", "mailbox", "status", "-u", "frida@ny.se", "uidvalidity", "INBOX"]);
    assert_ne!(before, after, "the UIDVALIDITY did not change");
    // Nothing new on the source: only a rechecking pass (finish's last pass) opens the folder.
    let (code, out) = w.run_env(&["sync", "--parallel", "1", "--recheck"], &fast_reconnect);
    assert_eq!(code, 0, "{out}");
    assert_eq!(appended(&out), 0, "{out}");
    assert_eq!(w.exo.counters().appended_to.len(), 23, "nothing appended after the UIDVALIDITY change");
    fixture::assert_same_mail(&src, &unrendered(snapshot(&w.target, "frida@ny.se")), &map);

    // Verification compares the re-rendered copies by identity: all there, none "differs" in size.
    let (code, out) = w.run(&["verify"]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("differ"), "{out}");
    w.assert_nothing_leaked(&[SECRET]);
}

/// The source tenant's app registration, for moving from one Microsoft 365 tenant to another.
const SOURCE_TENANT: &str = "c41d2e7a-5b6f-4a8c-9d0e-7f1a2b3c4d5e";
const SOURCE_CLIENT_ID: &str = "0d9c8b7a-6f5e-4d3c-8b2a-19f8e7d6c5b4";
const SOURCE_SECRET: &str = "Wm2~Rk7.Lp_q9TzXs4Nb8Vc3Hd6Jf1Gy0Ua5Ei~P";

/// XOAUTH2 on the source side: a migration away from Microsoft 365. The source (a Dovecot whose
/// `oauth2` passdb asks the source tenant's identity stand-in) is logged into with the source app's
/// own token (`setup --source-kind m365 --source-m365-...`), the target with the target app's; the
/// account list has no source passwords (refused while the source takes passwords, accepted once it is
/// Microsoft 365). Check and a full pass work, every message arrives exactly once with its flags, and
/// neither client secret nor any token shows up in an output or a stored file.
#[test]
fn microsoft_365_source_logs_in_with_its_own_tenants_app() {
    let source_idp = Idp::start(SOURCE_TENANT, SOURCE_CLIENT_ID, SOURCE_SECRET, "gammal.se");
    let target_idp = Idp::start(TENANT, CLIENT_ID, SECRET, DOMAIN);
    let conf = TempDir(common::fresh_dir("pf-m365-source"));
    set_mode(&conf.0, 0o755);
    let mut servers = Vec::new();
    for (name, idp, user) in [("source", &source_idp, "gustav@gammal.se"), ("target", &target_idp, "gustav@ny.se")] {
        let args = conf.0.join(format!("{name}-oauth2.conf.ext"));
        std::fs::write(&args, idp.dovecot_oauth2_conf()).expect("write oauth2 args");
        set_mode(&args, 0o644);
        servers.push(oauth_dovecot(&args, &[(user, READER_PW)]));
    }
    let (source, target) = (&servers[0], &servers[1]);
    {
        let mut r = source.reader("gustav@gammal.se");
        fixture::ensure_folders(&mut r, &EXCHANGE_FOLDERS);
        fixture::load(&mut r, &fixture::bulk("INBOX", 9, 51, 500..6000));
        fixture::load(&mut r, &fixture::bulk("Sent Items", 3, 52, 500..6000));
        fixture::ensure_folders(&mut target.reader("gustav@ny.se"), &EXCHANGE_FOLDERS);
    }
    let m = Migration::with_ports(source, Via::Plain, None, target, Via::Plain, None, &[("gustav@gammal.se", "x", "gustav@ny.se", "")]);
    let mut outputs = Vec::new();

    // While the source takes passwords, a list without them is refused, naming row and column.
    let list = conf.0.join("konton.csv");
    std::fs::write(&list, "E-post;Lösenord;Ny inloggning\r\ngustav@gammal.se;;gustav@ny.se\r\n").expect("write list");
    let out = m.run(&["import", &list.to_string_lossy()]);
    let text = driver::text(&out);
    assert!(!out.status.success() && text.contains("row 2") && text.contains("Lösenord") && text.contains("empty password"), "{text}");

    let (source_secret, target_secret) = (conf.0.join("source-secret"), conf.0.join("target-secret"));
    std::fs::write(&source_secret, SOURCE_SECRET).expect("write secret");
    std::fs::write(&target_secret, SECRET).expect("write secret");
    let (source_url, target_url) = (source_idp.token_url(), target_idp.token_url());
    outputs.push(m.ok(&[
        "setup",
        "--source-kind",
        "m365",
        "--source-m365-tenant",
        SOURCE_TENANT,
        "--source-m365-client-id",
        SOURCE_CLIENT_ID,
        "--source-m365-token-url",
        &source_url,
        "--source-m365-client-secret-file",
        &source_secret.to_string_lossy(),
        "--target-kind",
        "m365",
        "--m365-tenant",
        TENANT,
        "--m365-client-id",
        CLIENT_ID,
        "--m365-token-url",
        &target_url,
        "--m365-client-secret-file",
        &target_secret.to_string_lossy(),
    ]));
    std::fs::remove_file(&source_secret).expect("remove");
    std::fs::remove_file(&target_secret).expect("remove");
    outputs.push(m.ok(&["import", &list.to_string_lossy()]));

    let check = m.ok(&["check", "--format", "json"]);
    assert!(check.contains("\"ready\""), "{check}");
    outputs.push(check);
    let out = m.ok(&["sync"]);
    assert_eq!(appended(&out), 12, "{out}");
    outputs.push(out);
    assert!(source_idp.token_requests() >= 1 && target_idp.token_requests() >= 1);
    assert_eq!((source_idp.refused_requests(), target_idp.refused_requests()), (0, 0));
    let src = fixture::mailbox_snapshot(&mut source.reader("gustav@gammal.se"));
    let tgt = fixture::mailbox_snapshot(&mut target.reader("gustav@ny.se"));
    fixture::assert_same_mail(&src, &tgt, &BTreeMap::new());

    // A second pass moves nothing; then nothing secret anywhere.
    let out = m.ok(&["sync"]);
    assert_eq!(appended(&out), 0, "{out}");
    outputs.push(out);
    let files = common::files_under(&m.data);
    for text in &outputs {
        assert!(!text.contains(SOURCE_SECRET) && !text.contains(SECRET) && !text.contains("m365tok-"), "{text}");
    }
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for needle in [SOURCE_SECRET.as_bytes(), SECRET.as_bytes(), b"m365tok-"] {
            assert!(!contains(&bytes, needle), "a secret is readable in {}", f.display());
        }
    }
    assert_eq!(source_idp.complaints(), Vec::<String>::new());
    assert_eq!(target_idp.complaints(), Vec::<String>::new());
}

/// Quirk `exchange_throttled`, "fewer connections": with four accounts and `--parallel 2`, the first
/// account that was throttled halves the accounts at once for the rest of the run (from two to one),
/// which the pass says; all mail still arrives exactly once.
#[test]
fn a_throttled_run_goes_on_with_fewer_accounts_at_once() {
    let logins = [("hanna", "källa-7"), ("ivar", "källa-8"), ("jonna", "källa-9"), ("kalle", "källa-10")];
    let accounts: Vec<(String, String, String)> =
        logins.iter().map(|(n, p)| (format!("{n}@gammal.se"), p.to_string(), format!("{n}@ny.se"))).collect();
    let refs: Vec<(&str, &str, &str)> = accounts.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    let w = world(&refs);
    for (i, (login, _, _)) in accounts.iter().enumerate() {
        fixture::load(&mut w.source_reader(login), &fixture::bulk("INBOX", 4, 60 + i as u64, 500..3000));
    }
    w.exo.throttle_appends(1, 100);
    let (code, out, _) = w.sync(&["--parallel", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("at most 1 account at once"), "the run did not slow down:\n{out}");
    assert_eq!(appended(&out), 16, "{out}");
    for (login, _, target) in &accounts {
        fixture::assert_same_mail(&snapshot(&w.source, login), &snapshot(&w.target, target), &BTreeMap::new());
    }
}

/// Quirk `exchange_rewrites_messages` under SIGKILL: the same migration into the re-rendering target is
/// killed at its 7th journal point, run after run (batches of 2, so the points come often: before an
/// APPEND is sent, after it is sent with its answer unread, after it is recorded, after a match, a flag
/// STORE), until a run gets through. Every message reaches the server exactly once and the target
/// holds the source's mail, flags and dates.
#[test]
fn killed_again_and_again_into_a_re_rendering_target_nothing_is_sent_twice() {
    let w = world(&[("lisa@gammal.se", "källa-11", "lisa@ny.se")]);
    {
        let mut r = w.source_reader("lisa@gammal.se");
        fixture::ensure_folders(&mut r, &["INBOX.Kunder"]);
        fixture::load(&mut r, &fixture::bulk("INBOX", 10, 71, 500..3000));
        fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 4, 72, 500..3000));
    }
    w.exo.rewrite_appends();
    let env = [("POSTFLYTT_KILL_AT", "7"), ("POSTFLYTT_BATCH", "2"), ("POSTFLYTT_RECONNECT_MS", "50")];
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 40, "40 killed runs and still not through");
        let (code, out) = w.run_env(&["sync", "--parallel", "1"], &env);
        if code == 0 {
            eprintln!("through on run {runs}:\n{out}");
            break;
        }
        assert!(out.contains("POSTFLYTT_KILL_AT=7"), "run {runs} failed without being killed:\n{out}");
    }
    assert!(runs >= 5, "only {runs} runs: the kills did not interrupt the copy");
    let c = w.exo.counters();
    assert_eq!(c.appended_to.len(), 14, "every message reached the server exactly once: {c:?}");
    let src = snapshot(&w.source, "lisa@gammal.se");
    let map: BTreeMap<String, String> = [("INBOX.Kunder".to_string(), "Kunder".to_string())].into();
    fixture::assert_same_mail(&src, &unrendered(snapshot(&w.target, "lisa@ny.se")), &map);
}
