//! The operator's message filter and the package's total (issue 18), old-host Dovecot to target
//! Dovecot, read back with the tests' own IMAP reader. `--newer-than`, `--older-than` and
//! `--max-message-size` leave mail out of the move: it never reaches the target, and the check, the
//! status and the report say how much was left out and why. A wider filter takes it back at the
//! next pass; mail deleted on the old server while left out costs nothing. `--quota-total` makes the
//! check say whether all accounts together fit. Wrong dates and sizes are refused with a sentence.

mod common;
mod driver;

use std::collections::{BTreeMap, BTreeSet};

use common::fixture::{self, FixtureMsg};
use common::{Dovecot, ImapReader, Layout};
use driver::{Migration, Via, text};

fn message(folder: &str, id: &str, date: &str, extra_bytes: usize) -> FixtureMsg {
    let mut body = format!(
        "From: kund@gammal.se\r\nTo: anna@gammal.se\r\nSubject: Brev {id}\r\nMessage-ID: <{id}@postflytt.test>\r\n\r\nHej {id}\r\n"
    )
    .into_bytes();
    for i in 0..extra_bytes / 64 {
        body.extend_from_slice(format!("{i:063}\n").as_bytes());
    }
    FixtureMsg { folder: folder.into(), flags: BTreeSet::from(["\\Seen".to_string()]), internal_date: date.into(), body }
}

/// Message-IDs (without brackets' domain) per folder, as a reader finds them.
fn ids(r: &mut ImapReader) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for folder in r.folders() {
        let found: BTreeSet<String> = r
            .fetch_all(&folder)
            .iter()
            .filter_map(|m| fixture::header_value(&m.body, "Message-ID"))
            .map(|id| id.trim_matches(|c| c == '<' || c == '>').trim_end_matches("@postflytt.test").to_string())
            .collect();
        if !found.is_empty() {
            out.insert(folder, found);
        }
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_filter_leaves_mail_out_says_so_and_a_wider_filter_takes_it_back() {
    let (src_user, tgt_user) = ("anna@gammal.se", "anna@ny.se");
    let source = Dovecot::start(Layout::OldHost, &[(src_user, "pw-src")]);
    let target = Dovecot::start(Layout::Target, &[(tgt_user, "pw-tgt")]);
    let mut sr = source.reader(src_user);
    fixture::ensure_folders(&mut sr, &["INBOX.Kunder"]);
    fixture::load(
        &mut sr,
        &[
            message("INBOX", "old-1", "03-Mar-2018 10:00:00 +0000", 0),
            message("INBOX", "old-2", "31-Dec-2019 23:59:59 +0000", 0),
            // 00:30 in Stockholm on New Year's Day is still 2019 in UTC: left out too.
            message("INBOX", "old-3", "01-Jan-2020 00:30:00 +0100", 0),
            message("INBOX", "mid-1", "01-Jan-2020 00:00:00 +0000", 0),
            message("INBOX", "mid-2", "15-Jun-2021 12:00:00 +0200", 0),
            message("INBOX", "mid-3", "24-Dec-2023 18:00:00 +0100", 0),
            message("INBOX", "new-1", "01-Jan-2025 00:00:00 +0000", 0),
            message("INBOX", "new-2", "06-Dec-2026 09:00:00 +0100", 0),
            message("INBOX.Kunder", "mid-4", "01-Feb-2022 08:00:00 +0100", 0),
            message("INBOX.Kunder", "big-1", "01-Feb-2022 09:00:00 +0100", 300_000),
        ],
    );
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[(src_user, "pw-src", tgt_user, "pw-tgt")]);

    // Refused with a sentence, nothing stored.
    for (args, says) in [
        (vec!["--older-than", "3y"], "--older-than \"3y\" is not a date: write it as YYYY-MM-DD, e.g. 2020-01-01"),
        (vec!["--newer-than", "2020-02-30"], "--newer-than \"2020-02-30\" is not a date"),
        (vec!["--max-message-size", "lots"], "--max-message-size: \"lots\" is not a size"),
        (vec!["--newer-than", "2025-01-01", "--older-than", "2020-01-01"], "leave no day between them, so no message would move"),
        (vec!["--quota-total", "0"], "--quota-total 0 would allow nothing"),
    ] {
        let mut all = vec!["setup"];
        all.extend(args.iter().copied());
        let out = m.run(&all);
        assert!(!out.status.success(), "{all:?} was taken");
        assert!(text(&out).contains(says), "{all:?}: {}", text(&out));
    }
    assert!(m.ok(&["status"]).contains("Messages that move: all (no filter)"));

    let out =
        m.ok(&["setup", "--newer-than", "2020-01-01", "--older-than", "2025-01-01", "--max-message-size", "100K", "--quota-total", "2M"]);
    assert!(
        out.contains(
            "Messages that move: received from 2020-01-01 up to 2025-01-01, at most 100.0 KB (the rest are left out and listed as skipped)"
        ),
        "{out}"
    );
    assert!(out.contains("Package in total: 2.0 MB for all accounts together"), "{out}");

    // The check counts what moves and, apart, what the filter leaves out; the package fits.
    let check = m.ok(&["check"]);
    assert!(check.contains("4 messages,") || check.contains("    4 messages"), "{check}");
    assert!(check.contains("left out by the operator's filter: 6 messages"), "{check}");
    assert!(check.contains("All accounts together: ") && check.contains("into a package of 2.0 MB in total: fits, with"), "{check}");
    let json: serde_json::Value = serde_json::from_str(&m.ok(&["check", "--format", "json"])).expect("check json");
    assert_eq!(json["accounts"][0]["messages"], 4, "{json}");
    assert_eq!(json["accounts"][0]["left_out_messages"], 6, "{json}");
    assert_eq!(json["package"]["fits"], true, "{json}");

    m.sync();
    let mut tr = target.reader(tgt_user);
    let on_target = ids(&mut tr);
    assert_eq!(on_target.get("INBOX"), Some(&set(&["mid-1", "mid-2", "mid-3"])), "{on_target:?}");
    assert_eq!(on_target.get("Kunder"), Some(&set(&["mid-4"])), "{on_target:?}");
    let status = m.ok(&["status"]);
    for line in [
        "anna@gammal.se INBOX: left out by the operator's filter: received before 2020-01-01: 3 messages",
        "anna@gammal.se INBOX: left out by the operator's filter: received on or after 2025-01-01: 2 messages",
        "anna@gammal.se INBOX.Kunder: left out by the operator's filter: larger than 100.0 KB: 1 message",
    ] {
        assert!(status.contains(line), "no {line:?} in:\n{status}");
    }
    let report: serde_json::Value = serde_json::from_str(&m.ok(&["report", "--format", "json"])).expect("report json");
    let skipped = report["accounts"][0]["skipped"].as_array().expect("skipped").clone();
    let before_2020 =
        skipped.iter().find(|s| s["reason"].as_str().is_some_and(|r| r.ends_with("received before 2020-01-01"))).expect("grouped");
    assert_eq!(before_2020["messages"], 3, "{skipped:?}");
    assert_eq!(report["skipped_items"], 6, "{report}");

    // A total too small: the check says what is missing.
    m.ok(&["setup", "--quota-total", "200"]);
    let check = m.ok(&["check"]);
    assert!(check.contains("448 B to move into a package of 200 B in total: does NOT fit: 248 B missing"), "{check}");

    // A user deletes a left-out message on the old server; the filter then widens: no date floor,
    // no size limit. The old and the big mail arrive; the deleted one is simply gone.
    let new_2 = sr
        .fetch_all("INBOX")
        .into_iter()
        .find(|msg| fixture::header_value(&msg.body, "Message-ID").as_deref() == Some("<new-2@postflytt.test>"));
    sr.expunge_uid("INBOX", new_2.expect("new-2 on the source").uid);
    let out = m.ok(&["setup", "--newer-than", "off", "--max-message-size", "off"]);
    assert!(out.contains("Messages that move: received before 2025-01-01 (the rest"), "{out}");
    m.sync();
    let on_target = ids(&mut tr);
    assert_eq!(on_target.get("INBOX"), Some(&set(&["old-1", "old-2", "old-3", "mid-1", "mid-2", "mid-3"])), "{on_target:?}");
    assert_eq!(on_target.get("Kunder"), Some(&set(&["mid-4", "big-1"])), "{on_target:?}");
    let status = m.ok(&["status"]);
    assert!(status.contains("received on or after 2025-01-01: 1 message"), "{status}");
    assert!(!status.contains("received before 2020-01-01") && !status.contains("larger than 100.0 KB"), "{status}");

    // No filter at all: the target is the source, message for message, bytes, flags and dates.
    m.ok(&["setup", "--older-than", "off"]);
    m.sync();
    let src = fixture::mailbox_snapshot(&mut source.reader(src_user));
    let tgt = fixture::mailbox_snapshot(&mut target.reader(tgt_user));
    let names: Vec<String> = src.keys().cloned().collect();
    let map = driver::hard_case_name_map(Layout::OldHost, &names);
    let problems = fixture::diff_mail(&src, &tgt, &map);
    assert!(problems.is_empty(), "the target is not the source:\n  {}", problems.join("\n  "));
    assert!(!m.ok(&["status"]).contains("left out by the operator's filter"));
    let verify = m.ok(&["verify"]);
    assert!(verify.contains("verified — 9 of 9 messages on the target, 0 skipped"), "{verify}");
}

/// What the cold review found, against real Dovecot: (1) a message left out that the target already
/// holds (the customer copied it earlier) is not appended a second time when the filter widens;
/// (2) a copied message that falls outside a filter set later and that the user then files into
/// another folder is moved on the target, not lost; (3) a folder whose UIDVALIDITY changes with
/// left-out mail in it lists that mail once, keeps the copied message once, and takes the left-out
/// one back once when the filter widens.
#[test]
fn a_changed_filter_never_duplicates_or_loses_what_the_target_holds() {
    let (src_user, tgt_user) = ("bo@gammal.se", "bo@ny.se");
    let source = Dovecot::start(Layout::OldHost, &[(src_user, "pw-src")]);
    let target = Dovecot::start(Layout::Target, &[(tgt_user, "pw-tgt")]);
    let mut sr = source.reader(src_user);
    fixture::ensure_folders(&mut sr, &["INBOX.Arkiv", "INBOX.Kunder"]);
    let early = message("INBOX", "early", "10-May-2018 10:00:00 +0000", 0);
    let late = message("INBOX", "late", "10-May-2022 10:00:00 +0000", 0);
    let filed = message("INBOX", "filed", "10-May-2019 10:00:00 +0000", 64);
    let kept = message("INBOX.Kunder", "kept", "10-May-2023 10:00:00 +0000", 128);
    let old_kund = message("INBOX.Kunder", "old-kund", "10-May-2017 10:00:00 +0000", 192);
    fixture::load(&mut sr, &[early.clone(), late.clone(), filed.clone(), kept.clone(), old_kund.clone()]);
    // The customer had already put "early" on the new host with another tool.
    let mut tr = target.reader(tgt_user);
    tr.append("INBOX", &["\\Seen"], Some(&early.internal_date), &early.body);
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[(src_user, "pw-src", tgt_user, "pw-tgt")]);

    // Pass 1 copies "filed" and everything newer; "early" and "old-kund" are left out.
    m.ok(&["setup", "--newer-than", "2019-01-01"]);
    m.sync();
    assert_eq!(ids(&mut tr).get("INBOX"), Some(&set(&["early", "late", "filed"])));

    // (2) The operator narrows the filter; the user files "filed" (now outside it) into Arkiv.
    m.ok(&["setup", "--newer-than", "2020-01-01"]);
    let uid = sr
        .fetch_all("INBOX")
        .into_iter()
        .find(|x| fixture::header_value(&x.body, "Message-ID").as_deref() == Some("<filed@postflytt.test>"))
        .expect("filed on the source")
        .uid;
    sr.move_uids("INBOX", &[uid], "INBOX.Arkiv");
    // (3) The Kunder folder is made again on the old server: a new UIDVALIDITY, the same two messages.
    sr.delete("INBOX.Kunder");
    sr.create("INBOX.Kunder");
    fixture::load(&mut sr, &[kept.clone(), old_kund.clone()]);
    m.sync();
    let on_target = ids(&mut tr);
    assert_eq!(on_target.get("INBOX"), Some(&set(&["early", "late"])), "{on_target:?}");
    assert_eq!(on_target.get("Archive"), Some(&set(&["filed"])), "the copy moved along, not lost: {on_target:?}");
    assert_eq!(on_target.get("Kunder"), Some(&set(&["kept"])), "{on_target:?}");
    let status = m.ok(&["status"]);
    assert!(
        status.contains("bo@gammal.se INBOX.Kunder: left out by the operator's filter: received before 2020-01-01: 1 message\n"),
        "{status}"
    );
    m.sync();

    // (1) and (3): no filter; each message once, "early" not appended next to the customer's copy.
    m.ok(&["setup", "--newer-than", "off"]);
    m.sync();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for folder in tr.folders() {
        for msg in tr.fetch_all(&folder) {
            *count.entry(fixture::header_value(&msg.body, "Message-ID").unwrap_or_default()).or_default() += 1;
        }
    }
    assert!(count.values().all(|&n| n == 1) && count.len() == 5, "each message exactly once: {count:?}");
    assert_eq!(ids(&mut tr).get("Kunder"), Some(&set(&["kept", "old-kund"])));
    let verify = m.ok(&["verify"]);
    assert!(verify.contains("5 of 5 messages on the target, 0 skipped"), "{verify}");
}

/// The folder choice with verify and mirroring: a folder the operator leaves out is no "new folder"
/// with mail missing to verify (finish would never pass), and a copied folder the users rename into
/// a part of the tree that is left out keeps its copies on the target (the mail is still on the old
/// server, only no longer moved).
#[test]
fn excluded_folders_pass_verify_and_a_folder_renamed_into_one_keeps_its_copies() {
    let (src_user, tgt_user) = ("cia@gammal.se", "cia@ny.se");
    let source = Dovecot::start(Layout::OldHost, &[(src_user, "pw-src")]);
    let target = Dovecot::start(Layout::Target, &[(tgt_user, "pw-tgt")]);
    let mut sr = source.reader(src_user);
    fixture::ensure_folders(&mut sr, &["INBOX.Gammalt", "INBOX.Projekt"]);
    fixture::load(
        &mut sr,
        &[
            message("INBOX", "in-1", "10-May-2022 10:00:00 +0000", 0),
            message("INBOX.Gammalt", "old-1", "10-May-2012 10:00:00 +0000", 0),
            message("INBOX.Projekt", "proj-1", "10-May-2023 10:00:00 +0000", 0),
            message("INBOX.Projekt", "proj-2", "11-May-2023 10:00:00 +0000", 0),
        ],
    );
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[(src_user, "pw-src", tgt_user, "pw-tgt")]);
    m.ok(&["setup", "--exclude-folder", "Gammalt"]);
    m.sync();
    let mut tr = target.reader(tgt_user);
    assert_eq!(ids(&mut tr).keys().cloned().collect::<Vec<_>>(), ["INBOX", "Projekt"], "Gammalt stays behind");
    let verify = m.run(&["verify"]);
    assert!(verify.status.success(), "an excluded folder is nothing missing: {}", text(&verify));

    // The users file the whole Projekt folder under Gammalt on the old server.
    sr.rename("INBOX.Projekt", "INBOX.Gammalt.Projekt");
    let out = m.sync();
    assert!(!out.contains("removed") && !out.contains("deleted"), "{out}");
    assert_eq!(ids(&mut tr).get("Projekt"), Some(&set(&["proj-1", "proj-2"])), "the copies stay on the target");
    let verify = m.run(&["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    m.sync();
    assert_eq!(ids(&mut tr).get("Projekt"), Some(&set(&["proj-1", "proj-2"])), "and stay there");

    // The users take it out again under another name: the target folder is renamed, nothing copied twice.
    sr.rename("INBOX.Gammalt.Projekt", "INBOX.Projekt2");
    let out = m.sync();
    assert!(out.contains(" 0 appended,"), "{out}");
    let on_target = ids(&mut tr);
    assert_eq!(on_target.get("Projekt2"), Some(&set(&["proj-1", "proj-2"])), "{on_target:?}");
    assert!(!on_target.contains_key("Projekt"), "{on_target:?}");
    let verify = m.run(&["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}

/// A message copied before a narrower filter, that the users then file into another folder in two
/// steps a pass apart (a copy into Arkiv, listed there as left out; then the original deleted): the
/// next pass takes the left-out twin back and moves the target's copy to it, so the message stays on
/// the target.
#[test]
fn a_left_out_twin_listed_before_its_original_went_keeps_the_copy_on_the_target() {
    let (src_user, tgt_user) = ("dan@gammal.se", "dan@ny.se");
    let source = Dovecot::start(Layout::OldHost, &[(src_user, "pw-src")]);
    let target = Dovecot::start(Layout::Target, &[(tgt_user, "pw-tgt")]);
    let mut sr = source.reader(src_user);
    fixture::ensure_folders(&mut sr, &["INBOX.Arkiv"]);
    let kept = message("INBOX", "kept", "10-May-2019 10:00:00 +0000", 100);
    fixture::load(&mut sr, &[kept.clone(), message("INBOX", "new", "10-May-2024 10:00:00 +0000", 0)]);
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[(src_user, "pw-src", tgt_user, "pw-tgt")]);
    m.sync();
    let mut tr = target.reader(tgt_user);
    assert_eq!(ids(&mut tr).get("INBOX"), Some(&set(&["kept", "new"])));

    m.ok(&["setup", "--newer-than", "2020-01-01"]);
    // The users' mail client files "kept": a copy into Arkiv first (listed there, left out)...
    sr.append("INBOX.Arkiv", &["\\Seen"], Some(&kept.internal_date), &kept.body);
    m.sync();
    assert!(m.ok(&["status"]).contains("dan@gammal.se INBOX.Arkiv: left out by the operator's filter"), "the twin is left out");
    // ...then the original goes.
    let uid = sr
        .fetch_all("INBOX")
        .into_iter()
        .find(|x| fixture::header_value(&x.body, "Message-ID").as_deref() == Some("<kept@postflytt.test>"))
        .expect("kept on the source")
        .uid;
    sr.expunge_uid("INBOX", uid);
    m.sync();
    let on_target = ids(&mut tr);
    assert_eq!(on_target.get("INBOX"), Some(&set(&["new"])), "{on_target:?}");
    assert_eq!(on_target.get("Archive"), Some(&set(&["kept"])), "the copy followed the message, not lost: {on_target:?}");
}
