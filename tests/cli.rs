//! The command line as a person reads it (issue 16): on a terminal (a pseudo-terminal from util-linux's
//! `script`), `sync` and `check` keep live progress lines at the bottom, redrawn in place, and log lines
//! carry the time of day, not journald's `<6>`; piped, none of that. Exit codes that mean something
//! (`status` 2 with a failed account), arguments refused with a sentence (`report --lang de`, an xlsx
//! template to a terminal), import's warnings printed, and the verbs that read a migration never
//! creating a data directory. Against real Dovecot servers from tests/common.

mod common;
mod driver;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture::{self, FixtureMsg};
use common::{Dovecot, Layout};
use driver::{Migration, Via};

/// Runs postflytt with `args` on a pseudo-terminal (stdout and stderr both the terminal, as in a
/// shell), with `env`; `during` runs while it does. Returns the exit code and everything the terminal
/// got, escape sequences included.
fn on_terminal(data: &Path, args: &[&str], env: &[(&str, &str)], during: impl FnOnce()) -> (Option<i32>, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = format!("{} --data {}", quote(&common::postflytt_bin().to_string_lossy()), quote(&data.to_string_lossy()));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("script");
    // -q no banner, -f flush at once, -e the command's exit code, -c the command; the typescript is thrown away.
    cmd.args(["-qfec", &line, "/dev/null"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env_remove("JOURNAL_STREAM").env_remove("POSTFLYTT_KILL_AT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("script (util-linux)");
    during();
    let out = child.wait_with_output().expect("script output");
    (out.status.code(), driver::text(&out))
}

/// The lines a person sees, escape sequences and carriage returns taken out.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

fn starts_with_time(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 9 && b[2] == b':' && b[5] == b':' && b[8] == b' ' && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

/// One account of 40 messages whose source stalls half-way (at a marker in the 26th body) for a few
/// seconds, so the pass is visibly under way; and one whose source password is wrong.
#[test]
fn sync_on_a_terminal_shows_live_progress_and_exit_codes_say_what_needs_a_person() {
    let source = Dovecot::start(Layout::OldHost, &[("a@gammal.se", "pw"), ("b@gammal.se", "rätt")]);
    let target = Dovecot::start(Layout::Target, &[("a@ny.se", "pw"), ("b@ny.se", "pw")]);
    let mut msgs = fixture::bulk("INBOX", 40, 16, 2_000..20_000);
    let padding = "Hej, här kommer mer text.\r\n".repeat(200);
    msgs[25] = FixtureMsg {
        body: format!(
            "From: a@gammal.se\r\nTo: a@gammal.se\r\nSubject: stall\r\nMessage-ID: <stall-16@postflytt.test>\r\n\r\n{padding}PF-STALL-MARKER\r\n{padding}"
        )
        .into_bytes(),
        ..msgs[25].clone()
    };
    fixture::load(&mut source.reader("a@gammal.se"), &msgs);
    let proxy = common::stall_proxy::StallProxy::start(source.port(), b"PF-STALL-MARKER");
    let m = Migration::with_ports(
        &source,
        Via::Plain,
        Some(proxy.port()),
        &target,
        Via::Plain,
        None,
        &[("a@gammal.se", "pw", "a@ny.se", "pw"), ("b@gammal.se", "fel", "b@ny.se", "pw")],
    );

    let env = [("POSTFLYTT_BATCH", "3"), ("POSTFLYTT_RECONNECT_MS", "50")];
    let (code, raw) = on_terminal(&m.data, &["sync"], &env, || {
        let started = Instant::now();
        while proxy.stalled_at().is_none() {
            assert!(started.elapsed() < Duration::from_secs(60), "the source never reached the marker");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Long enough for a few redraws and for a speed to be measured.
        std::thread::sleep(Duration::from_secs(3));
        proxy.release();
    });
    let seen = plain(&raw);
    eprintln!("{seen}");
    assert_eq!(code, Some(2), "b failed, so the pass exits 2:\n{seen}");
    assert!(raw.contains("\x1b[") && raw.contains("A\r"), "the block is redrawn in place (cursor up):\n{raw:?}");
    assert!(seen.lines().any(|l| l.starts_with("sync ") && l.contains(" KB+ on the target")), "the run's line:\n{seen}");
    let account_line = seen.lines().find(|l| l.starts_with("  a@gammal.se: ") && l.contains(" of 40+ messages")).map(str::to_string);
    let account_line = account_line.unwrap_or_else(|| panic!("a@gammal.se's live line, messages done of the total:\n{seen}"));
    let done: u32 = account_line["  a@gammal.se: ".len()..].split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!((1..40).contains(&done), "part of the account was on the target while the source stalled: {account_line}");
    assert!(seen.contains("a@gammal.se: 1 folders") && seen.contains("pass done: 2 accounts, 1 failed"), "{seen}");
    assert!(!raw.contains("<6>") && !raw.contains("<3>") && !raw.contains("<4>"), "no journald prefixes on a terminal:\n{seen}");
    assert!(seen.lines().any(starts_with_time), "log lines start with the time of day:\n{seen}");
    assert!(!seen.contains("peak memory"), "the memory line only when asked:\n{seen}");
    assert_eq!(target.reader("a@ny.se").fetch_all("INBOX").len(), 40);

    // Piped: one line per account, no live lines, no escape sequences, no prefixes.
    let out = m.run(&["sync"]);
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains('\x1b') && !text.contains(" on the target,") && !text.contains("<6>"), "{text}");
    assert!(text.contains("a@gammal.se: 1 folders") && text.contains("b@gammal.se: ") && text.contains("FAILED"), "{text}");

    // status: 2 while an account's last pass failed, with why.
    let out = m.run(&["status"]);
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(2), "a failed account needs a person:\n{text}");
    assert!(text.contains("b@gammal.se -> b@ny.se: failed") && text.contains("last error:"), "{text}");

    // The check on a terminal: its live line while accounts are checked.
    let (code, raw) = on_terminal(&m.data, &["check"], &[], || {});
    let seen = plain(&raw);
    assert_eq!(code, Some(2), "b is not ready:\n{seen}");
    assert!(seen.lines().any(|l| l.starts_with("check ") && l.contains(" of 2 accounts done")), "{seen}");
    assert!(seen.lines().any(|l| starts_with_time(l) && l.contains("checked b@gammal.se: ")), "{seen}");

    // With the password fixed, the account goes through and status exits 0.
    let csv = m.data.join("fixed.csv");
    std::fs::write(&csv, "E-post;Lösenord;Ny inloggning;Nytt lösenord;Avdelning\r\nb@gammal.se;rätt;b@ny.se;pw;Ekonomi\r\n").expect("csv");
    let text = m.ok(&["import", &csv.to_string_lossy()]);
    assert!(text.contains("warning: ") && text.contains("Avdelning") && text.contains("not a column postflytt knows"), "{text}");
    m.ok(&["sync"]);
    let out = m.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", driver::text(&out));
}

#[test]
fn arguments_are_checked_and_reading_verbs_never_create_a_data_directory() {
    let parent = common::fresh_dir("pf-cli-none");
    let missing = parent.join("data");
    for verb in [&["status"][..], &["report"], &["verify"], &["folders", "a@kund.se"], &["sync"], &["check"], &["finish"]] {
        let out = driver::postflytt(&missing, verb, &[]);
        let text = driver::text(&out);
        assert_eq!(out.status.code(), Some(1), "{verb:?}:\n{text}");
        assert!(text.contains(&format!("no data directory at {}; give --data DIR", missing.display())), "{verb:?}:\n{text}");
        assert!(!missing.exists(), "{verb:?} created {}", missing.display());
    }

    let data = common::fresh_dir("pf-cli-args");
    driver::postflytt(&data, &["setup", "--quiet-period", "1h"], &[]);
    let out = driver::postflytt(&data, &["report", "--lang", "de"], &[]);
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--lang \"de\": the report is written in Swedish (sv) or English (en)"), "{text}");
    assert!(!text.contains("<3>"), "not a journald line off the journal:\n{text}");
    assert!(driver::postflytt(&data, &["report", "--lang", "en", "--format", "json"], &[]).status.success());

    // A workbook is not for a terminal; piped it is.
    let (code, raw) = on_terminal(&data, &["template"], &[], || {});
    assert_eq!(code, Some(1), "{raw}");
    assert!(plain(&raw).contains("give --output FILE.xlsx, or redirect"), "{raw}");
    assert!(!raw.contains("PK\u{3}\u{4}"), "no workbook bytes on the terminal");
    let (code, raw) = on_terminal(&data, &["template", "--format", "csv"], &[], || {});
    assert_eq!(code, Some(0), "{raw}");
    let out = driver::postflytt(&data, &["template"], &[]);
    assert!(out.status.success() && out.stdout.starts_with(b"PK\x03\x04"), "{}", driver::text(&out));

    // Under the journal (JOURNAL_STREAM names our stderr), error lines carry their priority.
    let log = data.join("stderr.log");
    let file = std::fs::File::create(&log).expect("log file");
    let meta = file.metadata().expect("stat");
    let stream = format!("{}:{}", std::os::unix::fs::MetadataExt::dev(&meta), std::os::unix::fs::MetadataExt::ino(&meta));
    let status = Command::new(common::postflytt_bin())
        .arg("--data")
        .arg(&data)
        .args(["report", "--lang", "de"])
        .env("JOURNAL_STREAM", &stream)
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .expect("run postflytt");
    assert_eq!(status.code(), Some(1));
    let text = std::fs::read_to_string(&log).expect("read log");
    assert!(text.starts_with("<3>postflytt: --lang \"de\""), "{text}");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&parent);
}

/// Issue 17: `switched` says which accounts' users work on the new host (refused without logins or
/// `--all`, and for a login nobody imported, naming it), each account's line says what happened,
/// `status` shows which accounts mirror and which switched, `setup --mirror` takes on or off only;
/// after the switch a deletion on the old server leaves the new host's copy alone (read back from
/// Dovecot); after finishing the verb is refused.
#[test]
fn switched_marks_accounts_once_and_status_shows_who_mirrors() {
    let source = Dovecot::start(Layout::OldHost, &[("a@gammal.se", "pw"), ("b@gammal.se", "pw")]);
    let target = Dovecot::start(Layout::Target, &[("a@ny.se", "pw"), ("b@ny.se", "pw")]);
    fixture::load(&mut source.reader("a@gammal.se"), &fixture::bulk("INBOX", 4, 17, 500..2_000));
    fixture::load(&mut source.reader("b@gammal.se"), &fixture::bulk("INBOX", 2, 18, 500..2_000));
    let m = Migration::new(
        &source,
        Via::Plain,
        &target,
        Via::Plain,
        &[("a@gammal.se", "pw", "a@ny.se", "pw"), ("b@gammal.se", "pw", "b@ny.se", "pw")],
    );
    m.sync();

    let refused = |args: &[&str], says: &str| {
        let out = m.run(args);
        let text = driver::text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{text}");
        assert!(text.contains(says), "{args:?}:\n{text}");
    };
    refused(&["switched"], "say which accounts' users have switched to the new host: give their logins, or --all for every account");
    refused(&["switched", "a@gammal.se", "nobody@gammal.se"], "no account \"nobody@gammal.se\": see the account list (postflytt status)");
    refused(&["setup", "--mirror", "maybe"], "--mirror: mirror must be on or off (got \"maybe\")");
    let status = m.ok(&["status"]);
    assert!(!status.contains("    switched "), "a mistyped login marks nothing:\n{status}");
    assert!(status.contains("Mirror: on (until an account's users switch"), "{status}");
    assert_eq!(
        status.matches("    not switched yet: follows moves and deletions on the old server; 0 moved and 0 removed").count(),
        2,
        "{status}"
    );

    let stdout = |args: &[&str]| {
        let out = m.run(args);
        assert!(out.status.success(), "{args:?}:\n{}", driver::text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = stdout(&["switched", "A@gammal.se"]);
    assert_eq!(text, "a@gammal.se: switched now; nothing will be moved or removed on the new host from now on\n");
    let text = stdout(&["switched", "a@gammal.se"]);
    assert!(text.starts_with("a@gammal.se: already switched at ") && text.ends_with(" (by the operator)\n"), "{text}");
    let status = m.ok(&["status"]);
    let a = status.lines().skip_while(|l| !l.starts_with("a@gammal.se -> a@ny.se")).nth(1).unwrap_or_default();
    assert!(
        a.starts_with("    switched ") && a.contains("(by the operator); 0 moved and 0 removed on the new host before that"),
        "{status}"
    );
    assert!(status.contains("    not switched yet: follows moves"), "b still mirrors:\n{status}");

    // Switched: what the user deletes on the old server stays on the new one; not switched, it goes.
    for user in ["a@gammal.se", "b@gammal.se"] {
        let mut reader = source.reader(user);
        let first = reader.fetch_all("INBOX")[0].uid;
        reader.expunge_uid("INBOX", first);
    }
    m.sync();
    assert_eq!(target.reader("a@ny.se").fetch_all("INBOX").len(), 4, "the switched account's copy stays");
    assert_eq!(target.reader("b@ny.se").fetch_all("INBOX").len(), 1, "the mirroring account's copy goes");
    let status = m.ok(&["status"]);
    assert!(status.contains("    not switched yet: follows moves and deletions on the old server; 0 moved and 1 removed"), "{status}");

    let text = m.ok(&["setup", "--mirror", "OFF"]);
    assert!(text.contains("Mirror: off"), "{text}");
    let status = m.ok(&["status"]);
    assert!(status.contains("Mirror: off") && status.contains("    not switched yet; mirroring is off"), "{status}");
    let text = stdout(&["switched", "--all"]);
    assert!(text.starts_with("a@gammal.se: already switched at ") && text.contains("\nb@gammal.se: switched now;"), "{text}");

    m.ok(&["finish", "--force"]);
    refused(&["switched", "--all"], "the migration is finished");
}
