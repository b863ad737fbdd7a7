//! No loss, no duplicates, whatever stops a pass: the binary is SIGKILLed at journal points spread over
//! a whole migration (every kind of point at least once), and connections are cut by a TCP proxy at
//! byte offsets mid-FETCH, mid-APPEND literal and in the target's answers (after the literal, before the
//! tagged OK). After each interruption a plain resumed pass must leave every source message on the target
//! exactly once, byte for byte, with flags and internal dates, read back by the tests' own IMAP reader.

mod common;
mod driver;
// Only the proxy's delay is used here, not its byte counts.
#[allow(dead_code)]
#[path = "bench/latency.rs"]
mod latency;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;

use common::fixture::{self, Snapshot};
use common::{CutProxy, Direction, Dovecot, Layout};
use driver::{Migration, Via};

/// Small batches, so a modest fixture passes through many journal points.
const BATCH: (&str, &str) = ("POSTFLYTT_BATCH", "3");
/// Reconnect quickly after the cuts these tests make on purpose.
const RECONNECT: (&str, &str) = ("POSTFLYTT_RECONNECT_MS", "50");

fn snapshot(server: &Dovecot, user: &str) -> Snapshot {
    fixture::mailbox_snapshot(&mut server.reader(user))
}

/// A source with the hard cases (3 MB attachment included: partial fetches) plus bulk mail.
fn loaded_source() -> (Dovecot, Snapshot, BTreeMap<String, String>) {
    let source = Dovecot::start(Layout::OldHost, &[("src@gammal.se", "pw")]);
    let mut reader = source.reader("src@gammal.se");
    fixture::load_hard_cases(&mut reader, Layout::OldHost);
    fixture::load(&mut reader, &fixture::bulk("INBOX.Kunder", 25, 11, 300..6000));
    drop(reader);
    let snap = snapshot(&source, "src@gammal.se");
    let names: Vec<String> = snap.keys().cloned().collect();
    let map = driver::hard_case_name_map(Layout::OldHost, &names);
    (source, snap, map)
}

fn target_users(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("t{i}@ny.se"), format!("pw{i}"))).collect()
}

#[test]
fn sigkill_at_journal_points_resumes_exactly_once() {
    let (source, src, map) = loaded_source();
    let users = target_users(40);
    let user_refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let target = Dovecot::start(Layout::Target, &user_refs);

    // A traced clean run lists the journal points a whole migration passes through.
    let account = |i: usize| [("src@gammal.se", "pw", users[i].0.as_str(), users[i].1.as_str())];
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &account(0));
    let out = m.run_env(&["sync"], &[BATCH, ("POSTFLYTT_TRACE_POINTS", "1")]);
    let trace = driver::text(&out);
    assert!(out.status.success(), "{trace}");
    let points: Vec<String> = trace.lines().filter_map(|l| l.split_once("journal point ").map(|(_, r)| r.to_string())).collect();
    assert!(points.len() >= 20, "too few journal points to test: {}", points.len());
    fixture::assert_same_mail(&src, &snapshot(&target, &users[0].0), &map);

    // Kill at the first occurrence of every kind of point, then at evenly spread others.
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        let kind = p.split_once(": ").map(|(_, k)| k.to_string()).unwrap_or_default();
        kinds.entry(kind).or_insert(i + 1);
    }
    chosen.extend(kinds.values().copied());
    let step = (points.len() / 24).max(1);
    chosen.extend((1..=points.len()).step_by(step));
    let chosen: Vec<usize> = chosen.into_iter().take(users.len() - 2).collect();
    assert!(chosen.len() >= 20, "{} kill points", chosen.len());

    for (n, &kill_at) in chosen.iter().enumerate() {
        let user = n + 1;
        let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &account(user));
        let kill = kill_at.to_string();
        let out = m.run_env(&["sync"], &[BATCH, ("POSTFLYTT_KILL_AT", &kill)]);
        assert_eq!(
            out.status.signal(),
            Some(9),
            "kill at point {kill_at} ({}) did not happen:\n{}",
            points[kill_at - 1],
            driver::text(&out)
        );
        let out = m.run_env(&["sync"], &[BATCH]);
        assert!(out.status.success(), "resume after kill at {kill_at}:\n{}", driver::text(&out));
        let problems = fixture::diff_mail(&src, &snapshot(&target, &users[user].0), &map);
        assert!(problems.is_empty(), "after SIGKILL at point {kill_at} ({}):\n{}", points[kill_at - 1], problems.join("\n"));
    }
    eprintln!("SIGKILL at {} journal points ({} kinds) of {}: all resumed exactly once", chosen.len(), kinds.len(), points.len());

    // Killed again and again in one migration, each run getting a little further.
    let last = users.len() - 1;
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &account(last));
    let mut kills = 0;
    for attempt in 0..400 {
        let kill = (3 + attempt % 5).to_string();
        let out = m.run_env(&["sync"], &[BATCH, ("POSTFLYTT_KILL_AT", &kill)]);
        if out.status.success() {
            break;
        }
        assert_eq!(out.status.signal(), Some(9), "{}", driver::text(&out));
        kills += 1;
    }
    m.run_env(&["sync"], &[BATCH]);
    fixture::assert_same_mail(&src, &snapshot(&target, &users[last].0), &map);
    eprintln!("one migration killed {kills} times in a row: exactly once");
}

#[test]
fn sigkill_with_two_readers_resumes_exactly_once() {
    // Behind 3 ms each way the source is beyond the LAN: two connections read its folders at once and
    // the writer takes staged mail from whichever folder has some, so the journal points come in an
    // order no single reader makes. A kill at any of them still resumes exactly once.
    let (source, src, map) = loaded_source();
    let users = target_users(16);
    let user_refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let target = Dovecot::start(Layout::Target, &user_refs);
    let slow_source = latency::LatencyProxy::start(source.port(), std::time::Duration::from_millis(3));
    let account = |i: usize| [("src@gammal.se", "pw", users[i].0.as_str(), users[i].1.as_str())];
    let migration = |i: usize| Migration::with_ports(&source, Via::Plain, Some(slow_source.port()), &target, Via::Plain, None, &account(i));

    let out = migration(0).run_env(&["sync"], &[BATCH, ("POSTFLYTT_TRACE_POINTS", "1")]);
    let trace = driver::text(&out);
    assert!(out.status.success(), "{trace}");
    assert!(trace.contains("a second connection reads folders beside the first"), "{trace}");
    let points = trace.lines().filter(|l| l.contains("journal point ")).count();
    assert!(points >= 20, "too few journal points to test: {points}");
    fixture::assert_same_mail(&src, &snapshot(&target, &users[0].0), &map);

    let step = (points / (users.len() - 1)).max(1);
    let mut kills = 0;
    for (n, kill_at) in (1..=points).step_by(step).take(users.len() - 1).enumerate() {
        let user = n + 1;
        let m = migration(user);
        let out = m.run_env(&["sync"], &[BATCH, ("POSTFLYTT_KILL_AT", &kill_at.to_string())]);
        // The order differs from run to run, so a late point may not be reached: then the pass is whole.
        assert!(out.status.success() || out.status.signal() == Some(9), "kill at point {kill_at}:\n{}", driver::text(&out));
        kills += usize::from(out.status.signal() == Some(9));
        let out = m.run_env(&["sync"], &[BATCH]);
        assert!(out.status.success(), "resume after kill at {kill_at}:\n{}", driver::text(&out));
        let problems = fixture::diff_mail(&src, &snapshot(&target, &users[user].0), &map);
        assert!(problems.is_empty(), "after SIGKILL at point {kill_at} of {points} with two readers:\n{}", problems.join("\n"));
    }
    assert!(kills >= 10, "only {kills} of the passes were killed");
    eprintln!("SIGKILL at {kills} of {points} journal points with two readers: all resumed exactly once");
}

/// How many messages a pass found already on the target ("N already on target").
fn matched(output: &str) -> u64 {
    output
        .lines()
        .filter_map(|l| l.split(" already on target").next().filter(|_| l.contains(" already on target")))
        .filter_map(|head| head.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

/// Runs one cut: arm, a pass that may fail, then a clean pass; the target must equal the source.
/// Returns whether the cut happened and how many messages the resumed pass found already there.
fn cut_and_resume(m: &Migration, proxy: &CutProxy, direction: Direction, bytes: u64) -> (bool, u64) {
    proxy.cut_after(direction, bytes);
    let cuts_before = proxy.cut_count();
    let first = m.run_env(&["sync"], &[BATCH, RECONNECT]);
    proxy.disarm();
    let cut = proxy.cut_count() > cuts_before;
    if !cut {
        assert!(first.status.success(), "{}", driver::text(&first));
    }
    let out = m.run_env(&["sync"], &[BATCH, RECONNECT]);
    assert!(out.status.success(), "resume after a cut at {bytes} bytes {direction:?}:\n{}", driver::text(&out));
    // The pass that was cut usually reconnects and finishes by itself; count its finds too.
    (cut, matched(&driver::text(&first)) + matched(&driver::text(&out)))
}

#[test]
fn connection_cuts_resume_exactly_once() {
    let (source, src, map) = loaded_source();
    let users = target_users(40);
    let user_refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let target = Dovecot::start(Layout::Target, &user_refs);
    let target_proxy = CutProxy::start(target.port());
    let source_proxy = CutProxy::start(source.port());
    let account = |i: usize| [("src@gammal.se", "pw", users[i].0.as_str(), users[i].1.as_str())];
    let migration = |i: usize| {
        Migration::with_ports(&source, Via::Plain, Some(source_proxy.port()), &target, Via::Plain, Some(target_proxy.port()), &account(i))
    };

    // Measure a clean run's traffic to place the cuts.
    let m = migration(0);
    m.run_env(&["sync"], &[BATCH]);
    let up = target_proxy.bytes_seen(Direction::ClientToServer);
    let down = target_proxy.bytes_seen(Direction::ServerToClient);
    let fetched = source_proxy.bytes_seen(Direction::ServerToClient);
    fixture::assert_same_mail(&src, &snapshot(&target, &users[0].0), &map);

    let mut user = 1;
    let mut cuts = 0;
    let mut found_after_lost_answer = 0;
    let mut plan: Vec<(&CutProxy, Direction, u64, &str)> = Vec::new();
    // Mid-APPEND literal: most bytes to the target are message bodies.
    for i in 1..=10 {
        plan.push((&target_proxy, Direction::ClientToServer, up * i / 11, "mid-APPEND"));
    }
    // In the target's answers: tagged OKs with APPENDUID lost after the literal went through.
    for i in 1..=8 {
        plan.push((&target_proxy, Direction::ServerToClient, down * i / 9, "target answer"));
    }
    // Mid-FETCH on the source.
    for i in 1..=8 {
        plan.push((&source_proxy, Direction::ServerToClient, fetched * i / 9, "mid-FETCH"));
    }
    for (proxy, direction, bytes, what) in plan {
        let m = migration(user);
        let (cut, found) = cut_and_resume(&m, proxy, direction, bytes);
        cuts += cut as u64;
        found_after_lost_answer += found;
        let problems = fixture::diff_mail(&src, &snapshot(&target, &users[user].0), &map);
        assert!(problems.is_empty(), "after a {what} cut at {bytes} bytes:\n{}", problems.join("\n"));
        user += 1;
    }
    assert!(cuts >= 20, "only {cuts} cuts happened");
    assert!(found_after_lost_answer > 0, "no cut fell between a stored APPEND and its answer");
    eprintln!(
        "{cuts} connection cuts (target {up}/{down} bytes, source {fetched} bytes): all resumed exactly once; \
         {found_after_lost_answer} messages whose APPEND answer was lost were found on the target, not sent again"
    );
}

/// Repair (issue 16 #6) under SIGKILL: messages lost on the target, found by `verify`, then `sync
/// --repair` killed at every journal point it passes (its own "repair: lost copies reopened" first);
/// a plain `sync` afterwards must leave every source message on the target exactly once. The request
/// is durable until acted on and the reopened rows are journalled, so the resumed pass needs no flag.
#[test]
fn sigkill_during_a_repair_resumes_exactly_once() {
    let source = Dovecot::start(Layout::OldHost, &[("rep@gammal.se", "pw")]);
    let mut reader = source.reader("rep@gammal.se");
    fixture::ensure_folders(&mut reader, &["INBOX.Kunder"]);
    fixture::load(&mut reader, &fixture::bulk("INBOX.Kunder", 12, 51, 300..5000));
    fixture::load(&mut reader, &fixture::bulk("INBOX", 5, 52, 300..2000));
    drop(reader);
    let src = snapshot(&source, "rep@gammal.se");
    let map: BTreeMap<String, String> = [("INBOX.Kunder".to_string(), "Kunder".to_string())].into();
    let users = target_users(30);
    let user_refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let target = Dovecot::start(Layout::Target, &user_refs);
    // A migration of user i, four messages then lost on its target and found missing by verify.
    let lost = |i: usize| -> Migration {
        let m =
            Migration::new(&source, Via::Plain, &target, Via::Plain, &[("rep@gammal.se", "pw", users[i].0.as_str(), users[i].1.as_str())]);
        assert!(m.run_env(&["sync"], &[BATCH]).status.success());
        let mut tr = target.reader(&users[i].0);
        let kunder = tr.fetch_all("Kunder");
        for k in [0, 5, 6, 11] {
            tr.expunge_uid("Kunder", kunder[k].uid);
        }
        drop(tr);
        assert_eq!(m.run(&["verify"]).status.code(), Some(2));
        m
    };

    let m = lost(0);
    let out = m.run_env(&["sync", "--repair"], &[BATCH, ("POSTFLYTT_TRACE_POINTS", "1")]);
    let trace = driver::text(&out);
    assert!(out.status.success(), "{trace}");
    fixture::assert_same_mail(&src, &snapshot(&target, &users[0].0), &map);
    let points: Vec<String> = trace.lines().filter_map(|l| l.split_once("journal point ").map(|(_, r)| r.to_string())).collect();
    assert!(points.iter().any(|p| p.ends_with("repair: lost copies reopened")), "{trace}");
    assert!(points.len() >= 5, "too few journal points in a repair: {points:?}");

    let chosen: Vec<usize> = (1..=points.len()).take(users.len() - 1).collect();
    for (n, &kill_at) in chosen.iter().enumerate() {
        let user = n + 1;
        let m = lost(user);
        let kill = kill_at.to_string();
        let out = m.run_env(&["sync", "--repair"], &[BATCH, ("POSTFLYTT_KILL_AT", &kill)]);
        assert_eq!(
            out.status.signal(),
            Some(9),
            "kill at point {kill_at} ({}) did not happen:\n{}",
            points[kill_at - 1],
            driver::text(&out)
        );
        let out = m.run_env(&["sync"], &[BATCH]);
        assert!(out.status.success(), "resume after kill at {kill_at}:\n{}", driver::text(&out));
        let problems = fixture::diff_mail(&src, &snapshot(&target, &users[user].0), &map);
        assert!(problems.is_empty(), "after SIGKILL at repair point {kill_at} ({}):\n{}", points[kill_at - 1], problems.join("\n"));
    }
    eprintln!("SIGKILL at {} of {} journal points of a repair: all resumed exactly once", chosen.len(), points.len());
}

/// What a user does on the old server between two passes, the same for every account of the test
/// below: files five messages from INBOX into Arkiv and one from Kunder into Projekt/Norr, deletes
/// four in Kunder, renames Projekt (with its subfolder) to Klart, deletes the folder Gammalt, and gets
/// two new messages.
fn users_filing(r: &mut common::ImapReader) {
    let inbox = r.fetch_all("INBOX");
    let filed: Vec<u32> = inbox[..5].iter().map(|m| m.uid).collect();
    r.move_uids("INBOX", &filed, "INBOX.Arkiv");
    let kunder = r.fetch_all("INBOX.Kunder");
    r.expunge_uids("INBOX.Kunder", &[kunder[1].uid, kunder[2].uid, kunder[5].uid, kunder[7].uid]);
    r.move_uids("INBOX.Kunder", &[kunder[0].uid], "INBOX.Projekt.Norr");
    r.rename("INBOX.Projekt", "INBOX.Klart");
    r.delete("INBOX.Gammalt");
    fixture::load(r, &fixture::bulk("INBOX", 2, 65, 300..2000));
}

/// The target holds the source's mail exactly: every folder and message once, and no folder more
/// (a deleted or renamed folder's old name gone).
fn mirror_problems(source: &Dovecot, src_user: &str, target: &Dovecot, tgt_user: &str) -> Vec<String> {
    let src = snapshot(source, src_user);
    let names: Vec<String> = src.keys().cloned().collect();
    let mut map = driver::hard_case_name_map(Layout::OldHost, &names);
    // The target declares `\Archive` on Archive, and Arkiv is one of its names in postflytt's rules.
    map.insert("INBOX.Arkiv".to_string(), "Archive".to_string());
    let tgt = snapshot(target, tgt_user);
    let mut problems = fixture::diff_mail(&src, &tgt, &map);
    let expected: BTreeSet<&String> = map.values().collect();
    problems.extend(tgt.keys().filter(|f| !expected.contains(f)).map(|f| format!("folder {f:?}: on the target, not on the source")));
    problems
}

/// Source logins `m{i}@gammal.se` with their passwords.
fn source_users(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("m{i}@gammal.se"), format!("spw{i}"))).collect()
}

/// An old host and a target with these users.
fn servers_for_following(sources: &[(String, String)], users: &[(String, String)]) -> (Dovecot, Dovecot) {
    let refs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    let (sources, users) = (refs(sources), refs(users));
    let src_refs: Vec<(&str, &str)> = sources.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let user_refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    (Dovecot::start(Layout::OldHost, &src_refs), Dovecot::start(Layout::Target, &user_refs))
}

/// One account ready for a pass that follows its user: the mail, a first pass (through the proxies
/// when given, disarmed), then `users_filing` on the old server.
fn following(
    source: &Dovecot,
    target: &Dovecot,
    src: &(String, String),
    tgt: &(String, String),
    proxies: Option<(&CutProxy, &CutProxy)>,
) -> Migration {
    let folders = ["INBOX.Kunder", "INBOX.Arkiv", "INBOX.Projekt", "INBOX.Projekt.Norr", "INBOX.Gammalt"];
    let mail: Vec<fixture::FixtureMsg> = [
        fixture::bulk("INBOX", 12, 61, 300..3000),
        fixture::bulk("INBOX.Kunder", 10, 62, 300..3000),
        fixture::bulk("INBOX.Arkiv", 2, 63, 300..3000),
        fixture::bulk("INBOX.Projekt", 4, 64, 300..3000),
        fixture::bulk("INBOX.Projekt.Norr", 3, 66, 300..3000),
        fixture::bulk("INBOX.Gammalt", 3, 67, 300..3000),
    ]
    .concat();
    let mut reader = source.reader(&src.0);
    fixture::ensure_folders(&mut reader, &folders);
    fixture::load(&mut reader, &mail);
    let account = [(src.0.as_str(), src.1.as_str(), tgt.0.as_str(), tgt.1.as_str())];
    let m = match proxies {
        Some((sp, tp)) => Migration::with_ports(source, Via::Plain, Some(sp.port()), target, Via::Plain, Some(tp.port()), &account),
        None => Migration::new(source, Via::Plain, target, Via::Plain, &account),
    };
    let out = m.run_env(&["sync"], &[BATCH, RECONNECT]);
    assert!(out.status.success(), "{}", driver::text(&out));
    let problems = mirror_problems(source, &src.0, target, &tgt.0);
    assert!(problems.is_empty(), "after the first pass:\n{}", problems.join("\n"));
    users_filing(&mut reader);
    m
}

/// Mirroring (issue 17) under SIGKILL: after a first pass the user files, deletes and renames on the
/// old server (`users_filing`); a traced pass lists the journal points it passes, then a fresh copy of
/// that state (an account of its own, prepared the same way) is killed at every mirror point and at
/// the first of every other kind; a plain pass afterwards must leave the target equal to the source,
/// every message exactly once: a kill between a MOVE and its record neither loses nor doubles it.
#[test]
fn sigkill_while_following_the_users_resumes_exactly_once() {
    let (sources, users) = (source_users(36), target_users(36));
    let (source, target) = servers_for_following(&sources, &users);
    let prepared = |i: usize| following(&source, &target, &sources[i], &users[i], None);

    let m = prepared(0);
    let out = m.run_env(&["sync"], &[BATCH, ("POSTFLYTT_TRACE_POINTS", "1")]);
    let trace = driver::text(&out);
    assert!(out.status.success(), "{trace}");
    let problems = mirror_problems(&source, &sources[0].0, &target, &users[0].0);
    assert!(problems.is_empty(), "after the traced pass:\n{}\n{trace}", problems.join("\n"));
    let points: Vec<String> = trace.lines().filter_map(|l| l.split_once("journal point ").map(|(_, r)| r.to_string())).collect();
    let kind = |p: &String| p.split_once(": ").map(|(_, k)| k.to_string()).unwrap_or_default();
    for expected in [
        "mirror: move journalled",
        "mirror: moved, not recorded",
        "mirror: expunge journalled",
        "mirror: expunged, not recorded",
        "mirror: rename journalled",
        "mirror: renamed, not recorded",
        "mirror: folder deleted, not recorded",
    ] {
        assert!(points.iter().any(|p| kind(p) == expected), "the pass never came to {expected:?}: {points:#?}");
    }
    // Every mirror point, and the first of every other kind.
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        if kind(p).starts_with("mirror:") {
            chosen.insert(i + 1);
        }
        kinds.entry(kind(p)).or_insert(i + 1);
    }
    chosen.extend(kinds.values().copied());
    assert!(chosen.len() < users.len(), "{} kill points for {} prepared accounts", chosen.len(), users.len() - 1);

    for (k, &kill_at) in chosen.iter().enumerate() {
        let i = k + 1;
        let m = prepared(i);
        let kill = kill_at.to_string();
        let out = m.run_env(&["sync"], &[BATCH, ("POSTFLYTT_KILL_AT", &kill)]);
        assert_eq!(
            out.status.signal(),
            Some(9),
            "kill at point {kill_at} ({}) did not happen:\n{}",
            points[kill_at - 1],
            driver::text(&out)
        );
        let out = m.run_env(&["sync"], &[BATCH]);
        assert!(out.status.success(), "resume after kill at {kill_at}:\n{}", driver::text(&out));
        let problems = mirror_problems(&source, &sources[i].0, &target, &users[i].0);
        assert!(
            problems.is_empty(),
            "after SIGKILL at point {kill_at} ({}) and a plain pass:\n{}\n{}",
            points[kill_at - 1],
            problems.join("\n"),
            driver::text(&out)
        );
    }
    eprintln!("SIGKILL at {} of {} journal points while following the users: all resumed exactly once", chosen.len(), points.len());
}

/// Mirroring (issue 17) under connection cuts: the pass that follows the user's filing, deleting and
/// renaming (`users_filing`) has its target connection cut at offsets spread over what it sends and
/// receives (mid-MOVE, mid-EXPUNGE, an answer lost after the server acted), and its source connection
/// mid-answer while UIDs are read; a plain pass afterwards must leave the target equal to the source.
#[test]
fn connection_cuts_while_following_the_users_resume_exactly_once() {
    let (sources, users) = (source_users(30), target_users(30));
    let (source, target) = servers_for_following(&sources, &users);
    let (source_proxy, target_proxy) = (CutProxy::start(source.port()), CutProxy::start(target.port()));
    let prepared = |i: usize| following(&source, &target, &sources[i], &users[i], Some((&source_proxy, &target_proxy)));

    // A clean following pass, measured.
    let m = prepared(0);
    let seen = || {
        [
            target_proxy.bytes_seen(Direction::ClientToServer),
            target_proxy.bytes_seen(Direction::ServerToClient),
            source_proxy.bytes_seen(Direction::ServerToClient),
        ]
    };
    let before = seen();
    let out = m.run_env(&["sync"], &[BATCH, RECONNECT]);
    assert!(out.status.success(), "{}", driver::text(&out));
    let after = seen();
    let [up, down, fetched] = [0, 1, 2].map(|k| after[k] - before[k]);
    let problems = mirror_problems(&source, &sources[0].0, &target, &users[0].0);
    assert!(problems.is_empty(), "after the clean pass:\n{}", problems.join("\n"));

    let mut plan: Vec<(&CutProxy, Direction, u64, &str)> = Vec::new();
    for k in 1..=12 {
        plan.push((&target_proxy, Direction::ClientToServer, up * k / 13, "target command"));
    }
    for k in 1..=10 {
        plan.push((&target_proxy, Direction::ServerToClient, down * k / 11, "target answer"));
    }
    for k in 1..=6 {
        plan.push((&source_proxy, Direction::ServerToClient, fetched * k / 7, "source answer"));
    }
    assert!(plan.len() < users.len());
    let mut cuts = 0;
    for (n, (proxy, direction, bytes, what)) in plan.into_iter().enumerate() {
        let i = n + 1;
        let m = prepared(i);
        let (cut, _) = cut_and_resume(&m, proxy, direction, bytes);
        cuts += u64::from(cut);
        let problems = mirror_problems(&source, &sources[i].0, &target, &users[i].0);
        assert!(problems.is_empty(), "after a {what} cut at {bytes} of the pass's bytes:\n{}", problems.join("\n"));
    }
    assert!(cuts >= 20, "only {cuts} cuts happened");
    eprintln!("{cuts} connection cuts while following the users (target {up}/{down} bytes, source {fetched}): all resumed exactly once");
}
