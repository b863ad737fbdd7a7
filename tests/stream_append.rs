//! Large messages sent to the target while they are still being fetched (`src/stream_append.rs`),
//! between real Dovecots and checked with the tests' own IMAP reader: from a source beyond the LAN
//! (behind 3 ms each way, so two readers too) they arrive exactly once, byte for byte with flags and
//! internal dates, and from one on the LAN they are not streamed; a SIGKILL at each of the stream's
//! journal points resumes exactly once, and one with the literal half sent leaves nothing on the target;
//! target connections cut at byte offsets (the stream's among them) resume exactly once.

mod common;
mod driver;
#[allow(dead_code)] // only the delay is used here
#[path = "bench/latency.rs"]
mod latency;

use std::os::unix::process::ExitStatusExt;

use common::fixture::{self, Snapshot};
use common::{CutProxy, Direction, Dovecot, Layout};
use driver::{Migration, Via, appended, hard_case_name_map};

/// Messages of a megabyte or more stream, so the fixture stays small.
const STREAM_MIN: (&str, &str) = ("POSTFLYTT_STREAM_MIN", "1000000");

/// The pass line's count of messages sent while they were still being fetched.
fn streamed(output: &str) -> u64 {
    output
        .lines()
        .filter_map(|l| l.split(" large sent while still being fetched").next().filter(|_| l.contains(" large sent while")))
        .filter_map(|head| head.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

fn snapshot(server: &Dovecot, user: &str) -> Snapshot {
    fixture::mailbox_snapshot(&mut server.reader(user))
}

/// The hard cases (a 3 MB attachment among them) and three large messages in two folders, with
/// flags and dates of their own.
fn loaded_source(users: &[(&str, &str)]) -> Dovecot {
    let source = Dovecot::start(Layout::Modern, users);
    for (user, _) in users {
        let mut reader = source.reader(user);
        fixture::load_hard_cases(&mut reader, Layout::Modern);
        reader.append("INBOX", &["\\Seen", "$Label1"], Some("02-Jan-2020 08:00:00 +0100"), &fixture::big_message(2_500_000));
        reader.append("INBOX", &[], Some("03-Feb-2021 09:30:00 +0000"), &fixture::big_message(1_200_000));
        reader.append("Kunder", &["\\Flagged"], Some("14-Mar-2022 17:45:10 +0200"), &fixture::big_message(1_800_000));
    }
    source
}

#[test]
fn large_messages_go_up_while_they_come_down_exactly_once() {
    let users = [("nara@gammal.se", "pw"), ("fjarran@gammal.se", "pw")];
    let source = loaded_source(&users);
    let target = Dovecot::start(Layout::Target, &[("nara@ny.se", "pw"), ("fjarran@ny.se", "pw")]);
    // Behind 3 ms each way the source is beyond the LAN: two readers, and the stream beside them.
    let slow_source = latency::LatencyProxy::start(source.port(), std::time::Duration::from_millis(3));
    for (i, (src_user, tgt_user)) in [("nara@gammal.se", "nara@ny.se"), ("fjarran@gammal.se", "fjarran@ny.se")].into_iter().enumerate() {
        let account = [(src_user, "pw", tgt_user, "pw")];
        let m = if i == 0 {
            Migration::new(&source, Via::Plain, &target, Via::Plain, &account)
        } else {
            Migration::with_ports(&source, Via::Plain, Some(slow_source.port()), &target, Via::Plain, None, &account)
        };
        let out = m.run_env(&["sync"], &[STREAM_MIN]);
        let text = driver::text(&out);
        assert!(out.status.success(), "{text}");
        if i == 0 {
            assert_eq!(streamed(&text), 0, "a source on the LAN streams nothing:\n{text}");
        } else {
            assert!(streamed(&text) >= 1, "no message was streamed:\n{text}");
        }
        let src = snapshot(&source, src_user);
        let names: Vec<String> = src.keys().cloned().collect();
        fixture::assert_same_mail(&src, &snapshot(&target, tgt_user), &hard_case_name_map(Layout::Modern, &names));
        let out = m.run_env(&["sync"], &[STREAM_MIN]);
        let text = driver::text(&out);
        assert_eq!(appended(&text), 0, "{text}");
        assert_eq!(streamed(&text), 0, "{text}");
    }
}

#[test]
fn a_kill_at_each_point_of_a_stream_resumes_exactly_once() {
    let points = [
        "push: streamed bytes sent, not journalled",
        "push: streamed append journalled",
        "push: streamed append sent, answer not read",
        "push: streamed append recorded",
    ];
    let users: Vec<(String, String)> = (0..points.len()).map(|i| (format!("k{i}@ny.se"), "pw".to_string())).collect();
    let user_refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let source = loaded_source(&[("k@gammal.se", "pw")]);
    let target = Dovecot::start(Layout::Target, &user_refs);
    let src = snapshot(&source, "k@gammal.se");
    let names: Vec<String> = src.keys().cloned().collect();
    let map = hard_case_name_map(Layout::Modern, &names);
    let big = fixture::dovecot_served_form(&fixture::big_message(2_500_000));
    let slow_source = latency::LatencyProxy::start(source.port(), std::time::Duration::from_millis(3));

    for (point, (user, _)) in points.iter().zip(&users) {
        let account = [("k@gammal.se", "pw", user.as_str(), "pw")];
        let m = Migration::with_ports(&source, Via::Plain, Some(slow_source.port()), &target, Via::Plain, None, &account);
        let out = m.run_env(&["sync"], &[STREAM_MIN, ("POSTFLYTT_KILL_AT_POINT", point)]);
        assert_eq!(out.status.signal(), Some(9), "no kill at {point:?}:\n{}", driver::text(&out));
        if point.contains("not journalled") {
            // The literal was under way and its last byte never sent: the server kept nothing of it.
            let on_target: Vec<Vec<u8>> = target.reader(user).fetch_all("INBOX").into_iter().map(|m| m.body).collect();
            assert!(on_target.iter().all(|body| body.len() < 1_000_000), "a large message is on the target after the kill at {point:?}");
        }
        let out = m.run_env(&["sync"], &[STREAM_MIN]);
        assert!(out.status.success(), "resume after the kill at {point:?}:\n{}", driver::text(&out));
        let problems = fixture::diff_mail(&src, &snapshot(&target, user), &map);
        assert!(problems.is_empty(), "after SIGKILL at {point:?}:\n{}", problems.join("\n"));
        let inbox = target.reader(user).fetch_all("INBOX");
        assert_eq!(inbox.iter().filter(|m| m.body == big).count(), 1, "the 2.5 MB message once after the kill at {point:?}");
    }
}

#[test]
fn target_connections_cut_while_messages_stream_resume_exactly_once() {
    let users: Vec<(String, String)> = (0..13).map(|i| (format!("c{i}@ny.se"), "pw".to_string())).collect();
    let user_refs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let source = loaded_source(&[("c@gammal.se", "pw")]);
    let target = Dovecot::start(Layout::Target, &user_refs);
    let src = snapshot(&source, "c@gammal.se");
    let names: Vec<String> = src.keys().cloned().collect();
    let map = hard_case_name_map(Layout::Modern, &names);
    let slow_source = latency::LatencyProxy::start(source.port(), std::time::Duration::from_millis(3));
    let target_proxy = CutProxy::start(target.port());
    let migration = |user: &str| {
        let account = [("c@gammal.se", "pw", user, "pw")];
        Migration::with_ports(&source, Via::Plain, Some(slow_source.port()), &target, Via::Plain, Some(target_proxy.port()), &account)
    };
    let reconnect = ("POSTFLYTT_RECONNECT_MS", "50");

    // A clean run's traffic places the cuts.
    let out = migration(&users[0].0).run_env(&["sync"], &[STREAM_MIN]);
    assert!(streamed(&driver::text(&out)) >= 1, "{}", driver::text(&out));
    let up = target_proxy.bytes_seen(Direction::ClientToServer);
    let down = target_proxy.bytes_seen(Direction::ServerToClient);
    let mut plan: Vec<(Direction, u64)> = (1..=8).map(|i| (Direction::ClientToServer, up * i / 9)).collect();
    plan.extend((1..=4).map(|i| (Direction::ServerToClient, down * i / 5)));
    let mut cuts = 0;
    let mut stream_cuts = 0;
    for ((direction, bytes), (user, _)) in plan.into_iter().zip(users.iter().skip(1)) {
        let m = migration(user);
        let before = target_proxy.cut_count();
        target_proxy.cut_after(direction, bytes);
        let first = m.run_env(&["sync"], &[STREAM_MIN, reconnect]);
        target_proxy.disarm();
        cuts += u64::from(target_proxy.cut_count() > before);
        // A cut of the stream's own connection costs the stream, not the pass.
        stream_cuts += u64::from(driver::text(&first).contains("streaming a large message to the target failed"));
        let out = m.run_env(&["sync"], &[STREAM_MIN, reconnect]);
        assert!(
            out.status.success(),
            "resume after a cut at {bytes} bytes {direction:?}:\n{}\n{}",
            driver::text(&first),
            driver::text(&out)
        );
        let problems = fixture::diff_mail(&src, &snapshot(&target, user), &map);
        assert!(problems.is_empty(), "after a cut at {bytes} bytes {direction:?}:\n{}", problems.join("\n"));
    }
    assert!(cuts >= 10, "only {cuts} cuts happened");
    assert!(stream_cuts >= 1, "no cut fell on a stream's connection");
}
