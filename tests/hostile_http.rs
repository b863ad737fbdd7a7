//! The page and API under attack from the office network, against the real `postflytt serve` (release
//! or debug, whichever the tests were built with): huge and lying Content-Lengths, stalled bodies,
//! hundreds of idle connections, running out of file descriptors, guessing the viewer code, a foreign
//! Host header (DNS rebinding), the operator token in a query. Each test asserts what a person would
//! see (the page answering within a second), that the process is still there, and its peak memory.
//! Every client here is the test's own raw TCP code, nothing shared with postflytt.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Serve {
    fn start(data: &Path, extra: &[&str], fd_limit: Option<u32>) -> Serve {
        let port = common::free_port();
        let bin = common::postflytt_bin();
        let mut command = match fd_limit {
            // Both limits, so postflytt cannot raise its own.
            Some(n) => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = command
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.with_extension("log")).expect("log file"))
            .spawn()
            .expect("start serve");
        let serve = Serve { child, port, data: data.to_path_buf() };
        let started = Instant::now();
        while get(serve.port, "/", &[]).map(|r| r.0) != Some(200) {
            assert!(started.elapsed() < Duration::from_secs(20), "serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("operator-token")).expect("token").trim().to_string()
    }

    fn code(&self) -> String {
        std::fs::read_to_string(self.data.join("viewer-code")).expect("code").trim().to_string()
    }

    fn alive(&mut self) -> bool {
        let alive = matches!(self.child.try_wait(), Ok(None));
        if !alive {
            eprintln!(
                "postflytt ended: {:?}\n{}",
                self.child.try_wait(),
                std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
            );
        }
        alive
    }

    /// Peak resident memory so far, in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }

    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }

    /// The customer's page and status, each within a second, as a person opening it would need.
    fn page_answers_within_a_second(&self, context: &str) {
        let code = self.code();
        for (path, headers) in [("/", vec![]), ("/api/status", vec![("X-Viewer-Code", code.as_str())])] {
            let started = Instant::now();
            let reply = get(self.port, path, &headers);
            let took = started.elapsed();
            assert_eq!(reply.as_ref().map(|r| r.0), Some(200), "{context}: GET {path} answered {reply:?}");
            assert!(took < Duration::from_secs(1), "{context}: GET {path} took {took:?}");
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::remove_file(self.data.with_extension("log"));
    }
}

/// One request on its own connection; the status and the body, or None when the connection failed.
fn request(port: u16, raw: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    stream.write_all(raw).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(port, raw.as_bytes())
}

/// Case 1: a claimed body of 100 GB, or of 2^64-1 bytes, is refused before anything is read; the
/// process neither aborts nor loses its handlers (it used to drain the body into one allocation of
/// the claimed size, and four such requests ended `serve` with exit 0).
#[test]
fn huge_content_lengths_are_refused_at_once() {
    let data = common::fresh_dir("pf-hostile-length");
    let mut serve = Serve::start(&data, &[], None);
    let auth = format!("Authorization: Bearer {}\r\n", serve.token());
    for (length, credential, wanted) in [
        ("100000000000", "", 401),
        ("100000000000", auth.as_str(), 413),
        ("18446744073709551615", "", 401),
        ("18446744073709551615", auth.as_str(), 413),
        ("18446744073709551616", auth.as_str(), 400),
    ] {
        for _ in 0..4 {
            let raw = format!("POST /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n{credential}Content-Length: {length}\r\n\r\n{{}}");
            let started = Instant::now();
            let reply = request(serve.port, raw.as_bytes());
            assert_eq!(reply.as_ref().map(|r| r.0), Some(wanted), "Content-Length {length}: {reply:?}");
            assert!(started.elapsed() < Duration::from_secs(3), "answered at once, not after reading");
        }
        assert!(serve.alive(), "the process is still there after Content-Length {length}");
    }
    let upload = format!("POST /api/accounts?name=a.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 40000000\r\n\r\n");
    let reply = request(serve.port, upload.as_bytes());
    assert_eq!(reply.as_ref().map(|r| r.0), Some(413), "an upload over 32 MB: {reply:?}");
    assert!(reply.unwrap().1.contains("larger than"), "says why");
    // Chunked bodies are not taken (no client of the API sends one).
    let chunked = format!("POST /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n");
    assert_eq!(request(serve.port, chunked.as_bytes()).map(|r| r.0), Some(411));
    serve.page_answers_within_a_second("after the huge lengths");
    let peak = serve.peak_mib();
    eprintln!("peak memory after huge Content-Lengths: {peak:.1} MiB");
    assert!(peak < 64.0, "peak {peak:.1} MiB");
}

/// Cases 2 and 3: four stalled request bodies, 300 idle connections and twenty heads sent a byte at
/// a time do not keep the page from answering within a second; the stalled ones are let go.
#[test]
fn stalled_and_idle_clients_do_not_hold_the_page() {
    let data = common::fresh_dir("pf-hostile-stall");
    let mut serve = Serve::start(&data, &[], None);
    let token = serve.token();
    let mut held = Vec::new();
    for i in 0..8 {
        let mut s = TcpStream::connect(("127.0.0.1", serve.port)).expect("connect");
        // Half with the operator token (the body is then read, and stalls), half without.
        let auth = if i % 2 == 0 { format!("Authorization: Bearer {token}\r\n") } else { String::new() };
        s.write_all(
            format!("POST /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 5000\r\n\r\n{{\"parallel\": ").as_bytes(),
        )
        .expect("write");
        held.push(s);
    }
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", serve.port)) {
            held.push(s);
        }
    }
    let mut slow = Vec::new();
    for _ in 0..20 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", serve.port)) {
            let _ = s.write_all(b"GET /api/status HTTP/1.1\r\nX-Viewer-Code: ");
            slow.push(s);
        }
    }
    for round in 0..3 {
        for s in &mut slow {
            let _ = s.write_all(b"A");
        }
        serve.page_answers_within_a_second(&format!("under 328 hostile connections, round {round}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    // The stalled bodies are given up on: their connections end (within the body deadline of 10 s).
    let started = Instant::now();
    let mut ended = 0;
    for s in held.iter_mut().take(8) {
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        ended += 1;
    }
    assert_eq!(ended, 8);
    assert!(started.elapsed() < Duration::from_secs(20), "stalled bodies were let go in {:?}", started.elapsed());
    drop(held);
    drop(slow);
    serve.page_answers_within_a_second("after the attack");
    assert!(serve.alive());
    let peak = serve.peak_mib();
    eprintln!("peak memory with 328 hostile connections: {peak:.1} MiB");
    assert!(peak < 64.0, "peak {peak:.1} MiB");
}

/// Case 3: with few file descriptors (64, both limits, so postflytt cannot raise them), hundreds of
/// connections make the oldest waiting ones give way; and pushed past the limit (prlimit lowers it to
/// what is open now, plus a few), accepting slows down and resumes: the page answers again and the
/// process never stops.
#[test]
fn running_out_of_descriptors_slows_accepting_down_but_never_ends_it() {
    let data = common::fresh_dir("pf-hostile-fds");
    let mut serve = Serve::start(&data, &[], Some(64));
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", serve.port)) {
            held.push(s);
        }
    }
    serve.page_answers_within_a_second("300 connections under a limit of 64 descriptors");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let open = serve.open_files();
    let squeezed = open + 3;
    let pid = serve.child.id().to_string();
    let status = Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={squeezed}:64")]).status().expect("prlimit");
    assert!(status.success());
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", serve.port)) {
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(serve.alive(), "the process lives through running out of descriptors");
    drop(held);
    let back = Command::new("prlimit").args(["--pid", &pid, "--nofile=64:64"]).status().expect("prlimit");
    assert!(back.success());
    let started = Instant::now();
    while get(serve.port, "/", &[]).map(|r| r.0) != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(10), "the page did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    serve.page_answers_within_a_second("after running out of descriptors");
    assert!(serve.alive());
}

/// Case 4: guessing the viewer code. After a burst, every guess from any address is refused without
/// comparing (the right code too), and the right guess does not lift the limit; the operator token
/// still works. Over 15 s at full speed, at most about one guess a second got compared.
#[test]
fn the_viewer_code_cannot_be_guessed() {
    let data = common::fresh_dir("pf-hostile-guess");
    let serve = Serve::start(&data, &[], None);
    let code = serve.code();
    assert_eq!(code.len(), 11, "ten characters in two groups: {code}");
    assert!(code.chars().all(|c| c == '-' || c.is_ascii_uppercase() || c.is_ascii_digit()));
    let started = Instant::now();
    let (mut compared, mut limited) = (0, 0);
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(15) {
        i += 1;
        let guess = format!("{:05}-{:05}", i % 100_000, i / 7);
        match get(serve.port, "/api/status", &[("X-Viewer-Code", &guess)]).map(|r| r.0) {
            Some(403) => compared += 1,
            Some(429) => limited += 1,
            other => panic!("a guess answered {other:?}"),
        }
    }
    eprintln!("guessing for 15 s: {i} guesses, {compared} compared, {limited} refused unread");
    assert!(compared <= 60 + 16, "{compared} guesses compared in 15 s");
    assert!(limited > 0);
    assert_eq!(
        get(serve.port, "/api/status", &[("X-Viewer-Code", &code)]).map(|r| r.0),
        Some(429),
        "the right code is not compared meanwhile"
    );
    let token = format!("Bearer {}", serve.token());
    assert_eq!(get(serve.port, "/api/status", &[("Authorization", &token)]).map(|r| r.0), Some(200), "staff can still act");
    // Lower case, spaces or no dash: the same code.
    let typed = code.to_ascii_lowercase().replace('-', " ");
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(get(serve.port, "/api/status", &[("X-Viewer-Code", &typed)]).map(|r| r.0), Some(200), "once the limit has let up");
}

/// Cases 5 and 6: a foreign Host (a page elsewhere rebinding its name to the appliance) gets 421;
/// the operator's --public-name is accepted; the operator token is taken only from the header.
#[test]
fn foreign_hosts_and_tokens_in_queries_are_refused() {
    let data = common::fresh_dir("pf-hostile-host");
    let serve = Serve::start(&data, &["--public-name", "box.kund.se"], None);
    let host =
        |name: &str| request(serve.port, format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes()).map(|r| r.0);
    assert_eq!(host("evil.example:8025"), Some(421));
    assert_eq!(host("box.kund.se.evil.example"), Some(421));
    assert_eq!(host("box.kund.se:8025"), Some(200));
    assert_eq!(host("localhost"), Some(200));
    assert_eq!(host(&format!("127.0.0.1:{}", serve.port)), Some(200));
    let reply = request(serve.port, b"GET /api/status HTTP/1.1\r\nHost: attacker.example\r\n\r\n").expect("answer");
    assert!(reply.1.contains("--public-name"), "says how to allow a name: {}", reply.1);
    let token = serve.token();
    assert_eq!(get(serve.port, &format!("/api/status?code={token}"), &[]).map(|r| r.0), Some(403), "a token in a query is not one");
    let post = format!("POST /api/passes/stop?code={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(request(serve.port, post.as_bytes()).map(|r| r.0), Some(401));
    let code = serve.code();
    assert_eq!(
        get(serve.port, &format!("/report?code={code}&lang=en"), &[]).map(|r| r.0),
        Some(200),
        "a viewer link to the report still works"
    );
    // An HTTP/1.0 client gets an answer it can read (no chunked encoding), and every answer says
    // the connection closes (one request per connection).
    let mut stream = TcpStream::connect(("127.0.0.1", serve.port)).expect("connect");
    stream.write_all(b"GET /app.js HTTP/1.0\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.0 200") || text.starts_with("http/1.1 200"), "{}", &text[..80.min(text.len())]);
    assert!(!text.contains("transfer-encoding: chunked"));
    assert!(text.contains("\r\nconnection: close\r\n"));
}

/// Searches the process's writable memory for `needle` (root, or the parent of the process, may read
/// /proc/PID/mem).
fn memory_holds(pid: u32, needle: &[u8]) -> bool {
    use std::io::{Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else { continue };
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        if region.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

/// Case 8: the uploaded account list (every password of the customer's accounts) is wiped once parsed:
/// after an import, no copy of the file, nor of 4 KiB near its start, is left in the process's memory. (The
/// parser's own copies of single cells are out of reach; a `Secret` wipes what it wraps.)
#[test]
fn an_uploaded_account_list_leaves_no_copy_in_memory() {
    let data = common::fresh_dir("pf-hostile-upload");
    let serve = Serve::start(&data, &[], None);
    let mut list = String::from("E-post;Lösenord\r\n");
    for i in 0..600 {
        list.push_str(&format!("anvandare{i}@kund.se;Hemligt-Z7q-{i:04}-xk\r\n"));
    }
    assert!(list.len() > 20_000);
    let raw = format!(
        "POST /api/accounts?name=konton.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n{list}",
        serve.token(),
        list.len()
    );
    let reply = request(serve.port, raw.as_bytes()).expect("answer");
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert!(reply.1.contains("\"added\": 600"), "{}", reply.1);
    std::thread::sleep(Duration::from_millis(300));
    let pid = serve.child.id();
    // The scan itself works: the viewer code is in memory as it should be.
    assert!(memory_holds(pid, serve.code().replace('-', "").as_bytes()), "the scan finds what is there");
    // Not from its very start: the allocator writes its own pointers over the first bytes it frees.
    let bytes = list.as_bytes();
    assert!(!memory_holds(pid, &bytes[64..64 + 4096]), "4 KiB from the start of the upload are still in memory");
    assert!(!memory_holds(pid, &bytes[64..bytes.len() - 64]), "the whole upload is still in memory");
}
