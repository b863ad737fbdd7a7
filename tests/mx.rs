//! The MX watcher through `postflytt mx`, against Debian's dnsmasq serving made-up MX records on a free
//! loopback port: records are shown sorted with their preferences; a domain is "at the target" once
//! dnsmasq is restarted with its MX moved there (exact host and `*.` suffix patterns); a domain
//! without MX and one that does not exist are answers, not errors; an answer too big for UDP arrives
//! whole over TCP; a nameserver that refuses or stays silent gives an error naming the domain and the
//! nameserver within the lookup timeout; a resolver setting that is not an IP address says how to
//! write one. Std only, like the other test files; needs `dnsmasq` (package dnsmasq-base).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the postflytt binary: cargo's for this crate's tests, or `POSTFLYTT_BIN` when this file is
/// compiled elsewhere (a scratch crate that mimics the `mx` verb).
fn postflytt_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_postflytt") {
        return PathBuf::from(p);
    }
    match std::env::var_os("POSTFLYTT_BIN") {
        Some(p) => PathBuf::from(p),
        None => panic!("set POSTFLYTT_BIN: CARGO_BIN_EXE_postflytt exists only in postflytt's own tests"),
    }
}

fn postflytt(args: &[&str]) -> Output {
    Command::new(postflytt_bin()).args(args).env("POSTFLYTT_DATA", "/nonexistent/postflytt-mx-test").output().expect("run postflytt")
}

/// `postflytt mx ...` that must succeed; its standard output.
fn mx_ok(args: &[&str]) -> String {
    let mut all = vec!["mx"];
    all.extend_from_slice(args);
    let out = postflytt(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "postflytt {all:?} failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The output line for `domain`.
fn line<'a>(out: &'a str, domain: &str) -> &'a str {
    let prefix = format!("{domain}: ");
    out.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no line for {domain} in:\n{out}"))
}

/// A loopback port free for both UDP and TCP a moment ago (dnsmasq listens on both).
fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0");
        let port = udp.local_addr().expect("local_addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP after 100 tries");
}

fn fresh_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("pf-mx-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// A throwaway dnsmasq answering only from its command line. It runs under a small `sh` watchdog that
/// stops it when our end of the watchdog's stdin closes, i.e. on drop or when the test process dies
/// in any way, so no dnsmasq outlives the tests.
struct Dnsmasq {
    port: u16,
    dir: PathBuf,
    records: Vec<String>,
    running: Option<(Child, ChildStdin, u32)>,
}

impl Dnsmasq {
    /// `records` are dnsmasq options such as `--mx-host=kund.se,mx.old.example,10`.
    fn start(records: &[&str]) -> Dnsmasq {
        let mut d = Dnsmasq { port: 0, dir: fresh_dir(), records: records.iter().map(|r| r.to_string()).collect(), running: None };
        // A fresh port may be taken by someone else between our check and dnsmasq's bind: try another.
        for _ in 0..5 {
            d.port = free_port();
            if d.spawn() {
                return d;
            }
        }
        panic!("dnsmasq found no free port after 5 tries:\n{}", d.log());
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Stops it and starts it again on the same port with other records, as a DNS change would look.
    fn restart(&mut self, records: &[&str]) {
        self.stop();
        self.records = records.iter().map(|r| r.to_string()).collect();
        assert!(self.spawn(), "dnsmasq did not start again on port {}:\n{}", self.port, self.log());
    }

    /// Starts dnsmasq on `self.port`; false if that port was in use, panics on any other failure.
    fn spawn(&mut self) -> bool {
        const WATCHDOG: &str = r#"
dnsmasq "$@" </dev/null &
pid=$!
echo "$pid"
read -r _ || true
kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("dnsmasq.log")).expect("open dnsmasq.log");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("pf-dnsmasq-watchdog")
            .args([
                "--no-daemon",
                &format!("--port={}", self.port),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--log-queries",
            ])
            .args(&self.records)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("run sh");
        let mut pid_line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("watchdog stdout")).read_line(&mut pid_line);
        let pid: u32 = pid_line.trim().parse().unwrap_or(0);
        let stdin = child.stdin.take().expect("watchdog stdin");
        self.running = Some((child, stdin, pid));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive = running(pid);
            if alive && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if !alive || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        let log = self.log();
        if log.contains("not found") || pid == 0 {
            panic!("dnsmasq did not start; is it installed (apt-get install dnsmasq-base)?\n{log}");
        }
        if !log.contains("in use") {
            panic!("dnsmasq did not start on port {}:\n{log}", self.port);
        }
        false
    }

    fn stop(&mut self) {
        if let Some((mut child, stdin, pid)) = self.running.take() {
            drop(stdin);
            let _ = child.wait();
            // The watchdog waited for dnsmasq; make sure before the port is reused.
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Whether process `pid` runs; a zombie (exited, not yet reaped by the watchdog) does not.
fn running(pid: u32) -> bool {
    pid != 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn mx_records_are_shown_and_the_flip_to_the_target_is_seen() {
    let old = [
        "--mx-host=kund.se,MX2.old.example,20",
        "--mx-host=kund.se,mx.old.example,10",
        "--mx-host=annat.se,annat-se.mail.protection.outlook.com,0",
    ];
    let mut dns = Dnsmasq::start(&old);
    let addr = dns.addr();
    let args =
        ["--resolver", &addr, "--target-mx", "MX.NEW.example", "--target-mx", "*.mail.protection.outlook.com", "Kund.se", "annat.se"];

    let out = mx_ok(&args);
    assert_eq!(line(&out, "kund.se"), "kund.se: MX mx.old.example (10), mx2.old.example (20) -> points at target: no", "{out}");
    assert_eq!(line(&out, "annat.se"), "annat.se: MX annat-se.mail.protection.outlook.com (0) -> points at target: yes", "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // The customer changes the MX: the target first, the old host kept as a backup.
    dns.restart(&[
        "--mx-host=kund.se,mx.new.example,10",
        "--mx-host=kund.se,mx.old.example,20",
        "--mx-host=annat.se,annat-se.mail.protection.outlook.com,0",
    ]);
    let out = mx_ok(&args);
    assert_eq!(line(&out, "kund.se"), "kund.se: MX mx.new.example (10), mx.old.example (20) -> points at target: yes", "{out}");

    // Half done (old and new share the best preference) is not at the target.
    dns.restart(&["--mx-host=kund.se,mx.new.example,10", "--mx-host=kund.se,mx.old.example,10"]);
    let out = mx_ok(&args);
    assert!(line(&out, "kund.se").ends_with("-> points at target: no"), "{out}");
}

#[test]
fn no_mx_and_no_such_domain_are_answers() {
    let dns = Dnsmasq::start(&[
        "--mx-host=kund.se,mx.old.example,10",
        // Known only locally, so dnsmasq answers NXDOMAIN for it and NODATA for a name with only an A record.
        "--local=/borta.example/",
        "--local=/utanmx.example/",
        "--host-record=utanmx.example,192.0.2.1",
    ]);
    let addr = dns.addr();
    let out = mx_ok(&["--resolver", &addr, "--target-mx", "mx.new.example", "borta.example", "utanmx.example", "kund.se"]);
    assert_eq!(out, "borta.example: no such domain\nutanmx.example: no MX\nkund.se: MX mx.old.example (10) -> points at target: no\n");
}

#[test]
fn an_answer_too_big_for_udp_arrives_whole_over_tcp() {
    let records: Vec<String> =
        (1..=40).map(|i| format!("--mx-host=stor.example,mx{i:02}.a-rather-long-mail-exchanger-name-for-padding.example,{i}")).collect();
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let dns = Dnsmasq::start(&refs);
    let addr = dns.addr();
    let out = mx_ok(&["--resolver", &addr, "stor.example"]);
    let l = line(&out, "stor.example");
    assert_eq!(l.matches(".example (").count(), 40, "{l}");
    assert!(
        l.starts_with("stor.example: MX mx01.a-rather") && l.ends_with("mx40.a-rather-long-mail-exchanger-name-for-padding.example (40)"),
        "{l}"
    );
    // Asked twice: over UDP (truncated answer), then over TCP.
    assert_eq!(dns.log().matches("query[MX] stor.example").count(), 2, "{}", dns.log());
}

#[test]
fn a_dead_or_silent_nameserver_is_an_error_naming_domain_and_server_within_the_timeout() {
    // Nothing listens: the kernel refuses at once.
    let refused = {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    // Something listens but never answers: only the timeout ends it.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_addr: SocketAddr = silent.local_addr().expect("addr");

    for (addr, quick) in [(refused.to_string(), true), (silent_addr.to_string(), false)] {
        let started = Instant::now();
        let out = postflytt(&["mx", "--resolver", &addr, "--target-mx", "mx.new.example", "kund.se"]);
        let took = started.elapsed();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let l = text.lines().find(|l| l.contains("kund.se: error: ")).unwrap_or_else(|| panic!("no error line:\n{text}"));
        assert!(l.contains("MX lookup for kund.se") && l.contains(&format!("nameserver {addr}")), "{l}");
        if quick {
            assert!(took < Duration::from_secs(2), "refused took {took:?}: {l}");
        } else {
            assert!(l.contains("no answer within 3 s"), "{l}");
            assert!(took >= Duration::from_millis(2900) && took < Duration::from_secs(6), "silent took {took:?}: {l}");
        }
    }
    // The silent one was asked twice: the query and its one resend.
    silent.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 512];
    let mut queries = 0;
    while silent.recv(&mut buf).is_ok() {
        queries += 1;
    }
    assert_eq!(queries, 2);
}

#[test]
fn a_resolver_that_is_not_an_ip_address_says_how_to_write_one() {
    let out = postflytt(&["mx", "--resolver", "dns.example", "kund.se"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("resolver \"dns.example\"") && stderr.contains("192.0.2.53:5353"), "{stderr}");
}
