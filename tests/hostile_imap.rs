//! A broken or hostile old server costs only its own account (issue 13, items 9 to 11): bounded memory
//! and time, a sentence saying what the server did, and the other accounts of the pass (tasks on the
//! same thread) finish as if it were not there.
//!
//! The old server here is scripted: a std `TcpListener` thread that speaks just enough IMAP (greeting,
//! AUTHENTICATE/LOGIN, LIST, LSUB, STATUS, EXAMINE, UID FETCH) and misbehaves at one chosen point,
//! because Dovecot cannot be made to produce these answers: untagged answers without end, a line that
//! never ends, a literal that stops short of its announced length, bytes dripped between long pauses.
//! For the test with two accounts it relays the honest account's connection, from its login on, to a
//! real Dovecot. Each test runs the real binary with the per-read timeout shortened to 2 s
//! (`POSTFLYTT_IO_TIMEOUT_MS`, so a command's grace is 4 s), and reads its peak memory (VmHWM) from
//! the line `sync` prints.

mod common;
mod driver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::fixture;
use common::{Dovecot, Layout};
use driver::{Migration, Via};

/// How the scripted old server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misbehaviour {
    /// `* LIST` lines without end in answer to LIST.
    ListFlood,
    /// `* OK [ALERT] ...` without end in answer to EXAMINE.
    AlertFlood,
    /// One `* LIST` line in answer to LIST that never reaches its CRLF.
    EndlessLine,
    /// A body literal announced at 200 bytes; 100 come, then nothing (the connection stays open).
    ShortLiteral,
    /// A body literal announced at 200 bytes, one byte a second: each read in time for the per-read
    /// timeout, the command never done.
    Drip,
    /// Within every bound, but heavy: EXAMINE says 5,000,000 EXISTS, and the metadata FETCH is
    /// answered with unsolicited `* 1 FETCH (UID 1 FLAGS ())`, about a million a second (faster than a
    /// debug build reads them) for `FLOOD_SECONDS`, then OK. The reader's socket seldom makes it wait.
    FetchFlood,
}

const FLOOD_SECONDS: u64 = 8;

/// The scripted old server. Serves every connection (the binary reconnects after a lost one).
struct HostileServer {
    port: u16,
    /// Bytes of misbehaviour written (flood lines, the endless line, dripped bytes).
    sent: Arc<AtomicU64>,
    /// Connections accepted.
    connections: Arc<AtomicU64>,
}

/// The account whose connections are relayed to a real server: login, password, plain IMAP port.
#[derive(Clone)]
struct Honest {
    login: String,
    password: String,
    upstream: u16,
}

impl HostileServer {
    fn start(mode: Misbehaviour, honest: Option<Honest>) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let sent = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let (sent2, connections2) = (sent.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                connections2.fetch_add(1, Ordering::SeqCst);
                let (sent, honest) = (sent2.clone(), honest.clone());
                std::thread::spawn(move || serve(stream, mode, honest, &sent));
            }
        });
        HostileServer { port, sent, connections }
    }
}

const CAPS: &str = "IMAP4rev1 AUTH=PLAIN SASL-IR LITERAL+";

/// One connection: answers as a tiny honest server except at the misbehaviour's point. Returns when
/// the client hangs up (a write or read fails).
fn serve(stream: TcpStream, mode: Misbehaviour, honest: Option<Honest>, sent: &AtomicU64) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut input = BufReader::new(read_half);
    let mut out = stream;
    if out.write_all(format!("* OK [CAPABILITY {CAPS}] scripted old server ready\r\n").as_bytes()).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (tag, rest) = line.trim_end().split_once(' ').unwrap_or(("*", ""));
        let command = rest.to_ascii_uppercase();
        let word = command.split(' ').next().unwrap_or("").to_string();
        let second = command.split(' ').nth(1).unwrap_or("").to_string();
        let answer = match (word.as_str(), second.as_str()) {
            ("AUTHENTICATE", _) | ("LOGIN", _) => {
                if let Some(h) = honest.as_ref().filter(|h| is_login_of(&line, h)) {
                    relay(input, out, &line, h.upstream);
                    return;
                }
                format!("{tag} OK [CAPABILITY {CAPS}] Logged in\r\n")
            }
            ("CAPABILITY", _) => format!("* CAPABILITY {CAPS}\r\n{tag} OK done\r\n"),
            ("LIST", _) if mode == Misbehaviour::ListFlood => {
                let lines: String = (0..1000).map(|i| format!("* LIST (\\HasNoChildren) \".\" \"INBOX.folder {i}\"\r\n")).collect();
                flood(&mut out, lines.as_bytes(), sent);
                return;
            }
            ("LIST", _) if mode == Misbehaviour::EndlessLine => {
                if out.write_all(b"* LIST (\\HasNoChildren) \".\" \"INBOX.").is_err() {
                    return;
                }
                flood(&mut out, &[b'x'; 64 * 1024], sent);
                return;
            }
            ("LIST", _) => format!("* LIST (\\HasNoChildren) \".\" INBOX\r\n{tag} OK done\r\n"),
            ("LSUB", _) => format!("{tag} OK done\r\n"),
            ("STATUS", _) => format!("* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\n{tag} OK done\r\n"),
            ("EXAMINE", _) | ("SELECT", _) if mode == Misbehaviour::AlertFlood => {
                let lines = "* OK [ALERT] The server is having a very bad day.\r\n".repeat(1000);
                flood(&mut out, lines.as_bytes(), sent);
                return;
            }
            ("EXAMINE", _) | ("SELECT", _) if mode == Misbehaviour::FetchFlood => {
                format!("* 5000000 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 5000001] ok\r\n{tag} OK [READ-ONLY] done\r\n")
            }
            ("EXAMINE", _) | ("SELECT", _) => {
                format!("* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n{tag} OK [READ-ONLY] done\r\n")
            }
            ("UID", "FETCH") if command.contains("BODY.PEEK[]") => {
                let head = b"* 1 FETCH (UID 1 BODY[] {200}\r\n";
                if out.write_all(head).is_err() {
                    return;
                }
                if mode == Misbehaviour::ShortLiteral {
                    let _ = out.write_all(&[b'a'; 100]);
                    sent.fetch_add(100, Ordering::SeqCst);
                    // Nothing more; stay connected until the client gives up.
                    let _ = input.read_to_end(&mut Vec::new());
                    return;
                }
                for _ in 0..200 {
                    std::thread::sleep(Duration::from_secs(1));
                    if out.write_all(b"a").is_err() {
                        return;
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                format!(")\r\n{tag} OK done\r\n")
            }
            ("UID", "FETCH") if mode == Misbehaviour::FetchFlood => {
                // At most about a million answers a second, so that a release build of the client,
                // which reads faster than that, still gets fewer than its bound of about ten million
                // (100,000 + 2 x EXISTS) in FLOOD_SECONDS and the flood stays within the bounds.
                let lines = "* 1 FETCH (UID 1 FLAGS ())\r\n".repeat(1000);
                let until = Instant::now() + Duration::from_secs(FLOOD_SECONDS);
                while Instant::now() < until {
                    if out.write_all(lines.as_bytes()).is_err() {
                        return;
                    }
                    sent.fetch_add(lines.len() as u64, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                }
                format!("{tag} OK done\r\n")
            }
            ("UID", "FETCH") => {
                format!("* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2020 10:00:00 +0000\" RFC822.SIZE 200)\r\n{tag} OK done\r\n")
            }
            ("LOGOUT", _) => {
                let _ = out.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes());
                return;
            }
            _ => format!("{tag} OK done\r\n"),
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Whether a login command (AUTHENTICATE PLAIN with its initial response, or LOGIN) is the honest
/// account's.
fn is_login_of(line: &str, honest: &Honest) -> bool {
    let plain = common::base64(format!("\0{}\0{}", honest.login, honest.password).as_bytes());
    line.contains(&plain) || line.contains(&honest.login)
}

/// Writes `chunk` again and again until the client hangs up.
fn flood(out: &mut TcpStream, chunk: &[u8], sent: &AtomicU64) {
    while out.write_all(chunk).is_ok() {
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
}

/// From the login on, the connection is the real server's: its greeting is read and dropped, the
/// login line sent, and bytes copied both ways until either side hangs up.
fn relay(mut input: BufReader<TcpStream>, client: TcpStream, login_line: &str, upstream_port: u16) {
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else { return };
    let mut upstream_in = BufReader::new(upstream.try_clone().expect("clone"));
    let mut greeting = String::new();
    let _ = upstream_in.read_line(&mut greeting);
    let mut upstream_out = upstream.try_clone().expect("clone");
    let _ = upstream_out.write_all(login_line.as_bytes());
    // What the client sent after its login line and the BufReader already holds goes first.
    let _ = upstream_out.write_all(input.buffer());
    let mut client_out = client.try_clone().expect("clone");
    let to_client = std::thread::spawn(move || {
        let _ = std::io::copy(&mut upstream_in, &mut client_out);
        let _ = client_out.shutdown(Shutdown::Both);
    });
    let _ = std::io::copy(input.get_mut(), &mut upstream_out);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = to_client.join();
}

/// What a `sync` did: its output, how long it took, its peak memory.
struct Run {
    text: String,
    seconds: f64,
    peak_mib: f64,
}

fn sync(m: &Migration, parallel: &str, exit_code: i32) -> Run {
    let started = Instant::now();
    let out = m.run_env(
        &["sync", "--parallel", parallel],
        &[("POSTFLYTT_IO_TIMEOUT_MS", "2000"), ("POSTFLYTT_RECONNECT_MS", "100"), ("POSTFLYTT_MEMORY_REPORT", "1")],
    );
    let seconds = started.elapsed().as_secs_f64();
    let text = driver::text(&out);
    assert_eq!(out.status.code(), Some(exit_code), "{text}");
    let peak_mib = text
        .lines()
        .find_map(|l| l.split("peak memory (VmHWM): ").nth(1))
        .and_then(|v| v.trim_end_matches(" MiB").parse().ok())
        .unwrap_or_else(|| panic!("no peak memory line:\n{text}"));
    Run { text, seconds, peak_mib }
}

/// One account on the scripted server, migrating to a real Dovecot target: the pass fails that
/// account with `sentence` within `max_seconds` and under `max_mib` of peak memory.
fn one_hostile_account(mode: Misbehaviour, sentence: &str, max_seconds: f64, max_mib: f64) -> (Run, HostileServer) {
    let target = Dovecot::start(Layout::Target, &[("bad@ny.se", "pw")]);
    let server = HostileServer::start(mode, None);
    // The source's port is the scripted server's; `with_ports` takes a Dovecot only for its ports.
    let m = Migration::with_ports(
        &target,
        Via::Plain,
        Some(server.port),
        &target,
        Via::Plain,
        None,
        &[("bad@gammal.se", "pw", "bad@ny.se", "pw")],
    );
    // Setup tested the server once (greeting and CAPABILITY, issue 16 #4); the pass's connections count from here.
    server.connections.store(0, Ordering::SeqCst);
    let run = sync(&m, "1", 2);
    let sent = server.sent.load(Ordering::SeqCst);
    eprintln!(
        "{mode:?}: failed after {:.1} s, peak memory {:.1} MiB, {sent} bytes of misbehaviour sent, {} connections",
        run.seconds,
        run.peak_mib,
        server.connections.load(Ordering::SeqCst)
    );
    let failure = run.text.lines().find(|l| l.contains("bad@gammal.se") && l.contains(sentence));
    assert!(failure.is_some(), "no line for bad@gammal.se saying {sentence:?}:\n{}", run.text);
    assert!(run.seconds < max_seconds, "took {:.1} s:\n{}", run.seconds, run.text);
    assert!(run.peak_mib < max_mib, "peak memory {:.1} MiB", run.peak_mib);
    (run, server)
}

#[test]
fn endless_list_lines_stop_at_the_untagged_answer_limit() {
    one_hostile_account(
        Misbehaviour::ListFlood,
        "source bad@gammal.se: the server sent more than 100000 untagged answers to one LIST; stopped reading it",
        20.0,
        100.0,
    );
}

#[test]
fn endless_alerts_stop_at_the_untagged_answer_limit() {
    let (_, server) = one_hostile_account(
        Misbehaviour::AlertFlood,
        "source bad@gammal.se: the server sent more than 100000 untagged answers to one EXAMINE; stopped reading it",
        20.0,
        60.0,
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 1, "a server that broke a bound is not retried within the pass");
}

#[test]
fn an_endless_line_without_crlf_stops_at_the_line_limit() {
    let (_, server) = one_hostile_account(
        Misbehaviour::EndlessLine,
        "source bad@gammal.se: the server sent a line of more than 4 MiB without its line end in answer to LIST",
        20.0,
        60.0,
    );
    let sent = server.sent.load(Ordering::SeqCst);
    // What the client read is at most the line limit and a read buffer; the rest sat in socket buffers.
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes went out before the client stopped reading");
}

#[test]
fn a_body_literal_shorter_than_announced_times_out_and_the_account_fails() {
    // Lost connections are retried twice in a pass (2 s each, then 0.1 and 0.2 s of waiting).
    one_hostile_account(Misbehaviour::ShortLiteral, "no answer within 2 s", 20.0, 60.0);
}

#[test]
fn a_dripping_server_fails_at_the_command_deadline() {
    let (run, server) =
        one_hostile_account(Misbehaviour::Drip, "the server took more than 4 s over one UID FETCH and sent only", 20.0, 60.0);
    // Each byte came within the 2 s per-read timeout: only the command's deadline stopped it.
    assert!(server.sent.load(Ordering::SeqCst) >= 2, "the server dripped");
    assert!(!run.text.contains("no answer within"), "{}", run.text);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1, "not retried within the pass");
}

/// The starvation case of issue 13 item 10: one account's server sends a line without end as fast as
/// loopback goes (a socket that always has data never makes a read wait), while a second account on
/// the same thread migrates from a real Dovecot. The honest one gets every message exactly once.
#[test]
fn an_honest_account_finishes_beside_a_flooding_server_on_the_same_thread() {
    let source = Dovecot::start(Layout::Modern, &[("good@gammal.se", "pw1")]);
    let target = Dovecot::start(Layout::Target, &[("good@ny.se", "pw2"), ("bad@ny.se", "pw3")]);
    let msgs = fixture::bulk("INBOX", 30, 7, 500..200_000);
    fixture::load(&mut source.reader("good@gammal.se"), &msgs);
    let honest = Honest { login: "good@gammal.se".into(), password: "pw1".into(), upstream: source.port() };
    let server = HostileServer::start(Misbehaviour::EndlessLine, Some(honest));
    let accounts = [("bad@gammal.se", "pw", "bad@ny.se", "pw3"), ("good@gammal.se", "pw1", "good@ny.se", "pw2")];
    let m = Migration::with_ports(&source, Via::Plain, Some(server.port), &target, Via::Plain, None, &accounts);
    let run = sync(&m, "2", 2);
    eprintln!("two accounts: {:.1} s, peak memory {:.1} MiB", run.seconds, run.peak_mib);
    assert!(run.text.contains("without its line end"), "{}", run.text);
    assert!(run.seconds < 25.0, "took {:.1} s:\n{}", run.seconds, run.text);
    assert!(run.peak_mib < 80.0, "peak memory {:.1} MiB", run.peak_mib);
    honest_account_complete(&run, &msgs, &target);
}

/// The honest account of a two-account run: its report has no failure, and the target holds exactly
/// its source messages, byte for byte. Returns the seconds its pass took, from its report line.
fn honest_account_complete(run: &Run, msgs: &[fixture::FixtureMsg], target: &Dovecot) -> f64 {
    let lines: Vec<&str> = run.text.lines().collect();
    let good = lines.iter().position(|l| l.starts_with("good@gammal.se:")).unwrap_or_else(|| panic!("no report for good@:\n{}", run.text));
    assert!(lines[good].contains(&format!(" {} appended", msgs.len())), "{}", run.text);
    assert!(!lines.get(good + 1).is_some_and(|l| l.trim_start().starts_with("FAILED")), "{}", run.text);
    let mut want: Vec<&[u8]> = msgs.iter().map(|m| m.body.as_slice()).collect();
    let got_msgs = target.reader("good@ny.se").fetch_all("INBOX");
    let mut got: Vec<&[u8]> = got_msgs.iter().map(|m| m.body.as_slice()).collect();
    want.sort();
    got.sort();
    assert!(got == want, "{} messages on the target, {} wanted, or bytes differ", got.len(), want.len());
    lines[good]
        .rsplit(" in ")
        .next()
        .and_then(|t| t.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no time in {:?}", lines[good]))
}

/// The starvation itself, with a flood that stays within every bound so it lasts: while one account's
/// server floods for `FLOOD_SECONDS` (its metadata FETCH answers, as fast as loopback goes), the
/// honest account on the same thread must finish long before the flood ends. Without the reader's
/// yields it waited for the flood to end.
#[test]
fn an_honest_account_is_not_starved_by_a_flood_within_the_bounds() {
    let source = Dovecot::start(Layout::Modern, &[("good@gammal.se", "pw1")]);
    let target = Dovecot::start(Layout::Target, &[("good@ny.se", "pw2"), ("bad@ny.se", "pw3")]);
    let msgs = fixture::bulk("INBOX", 30, 8, 500..200_000);
    fixture::load(&mut source.reader("good@gammal.se"), &msgs);
    let honest = Honest { login: "good@gammal.se".into(), password: "pw1".into(), upstream: source.port() };
    let server = HostileServer::start(Misbehaviour::FetchFlood, Some(honest));
    let accounts = [("bad@gammal.se", "pw", "bad@ny.se", "pw3"), ("good@gammal.se", "pw1", "good@ny.se", "pw2")];
    let m = Migration::with_ports(&source, Via::Plain, Some(server.port), &target, Via::Plain, None, &accounts);
    let run = sync(&m, "2", 0);
    let honest_seconds = honest_account_complete(&run, &msgs, &target);
    let sent = server.sent.load(Ordering::SeqCst);
    eprintln!(
        "flood within bounds: pass {:.1} s, honest account {honest_seconds:.1} s, peak memory {:.1} MiB, {} MiB flooded",
        run.seconds,
        run.peak_mib,
        sent >> 20
    );
    assert!(run.seconds >= FLOOD_SECONDS as f64, "the flood lasted its time");
    assert!(honest_seconds < FLOOD_SECONDS as f64 / 2.0, "the honest account waited for the flood:\n{}", run.text);
    assert!(run.peak_mib < 80.0, "peak memory {:.1} MiB", run.peak_mib);
}
