//! The benchmark's links: a TCP proxy that listens on a free 127.0.0.1 port and forwards every
//! connection to an upstream port, holding each chunk of bytes for a fixed delay in each direction, and
//! optionally sending it over an [`OfficeLine`]: a rate limit per direction shared by every connection
//! of every proxy on that line, so a source and a target behind the same line compete for it as they do
//! behind a customer's 100/100 Mbit/s connection. Chunks are timestamped when read and released in order
//! when due, by a separate writer thread per direction, so the delay adds latency without capping a
//! connection's throughput (a serial read-sleep-write loop would limit it to one chunk per delay).
//! Nothing is dropped or reordered; an end of stream is delayed like data. Dropping the proxy stops
//! accepting and shuts every connection down.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Index of the client-to-server direction (the office's upload: commands, APPENDed mail).
pub const UP: usize = 0;
/// Index of the server-to-client direction (the office's download: FETCHed mail, answers).
pub const DOWN: usize = 1;

/// A line with a rate limit per direction, shared by every connection through every proxy started on
/// it. Each direction is a token bucket kept as a virtual clock: sending `n` bytes reserves `n / rate`
/// of the line after whatever was reserved before, and the bucket may hold `BURST` bytes of credit
/// while the line idles. The reader of a connection sleeps until its piece has left, so a full line
/// pushes back on the sender through TCP, as a router's small queue does.
pub struct OfficeLine {
    bytes_per_s: f64,
    free_at: [Mutex<Option<Instant>>; 2],
    bytes: [AtomicU64; 2],
}

/// Credit a direction may save up while idle: a few packets, so an idle line does not let a later
/// burst through faster than the rate.
const BURST: f64 = 64.0 * 1024.0;
/// Largest piece one connection reserves at a time, so connections sharing the line take turns
/// (about 1.3 ms of a 100 Mbit/s line).
const PIECE: usize = 16 * 1024;

impl OfficeLine {
    pub fn new(bits_per_s: f64) -> Arc<OfficeLine> {
        Arc::new(OfficeLine { bytes_per_s: bits_per_s / 8.0, free_at: [Mutex::new(None), Mutex::new(None)], bytes: Default::default() })
    }

    pub fn bytes_per_s(&self) -> f64 {
        self.bytes_per_s
    }

    /// Bytes sent over the line so far, by direction ([`UP`], [`DOWN`]), over all its connections.
    pub fn bytes(&self) -> [u64; 2] {
        [self.bytes[UP].load(Ordering::Relaxed), self.bytes[DOWN].load(Ordering::Relaxed)]
    }

    /// Reserves the line for `n` bytes in direction `dir` and returns when they have left.
    fn send(&self, dir: usize, n: usize) -> Instant {
        self.bytes[dir].fetch_add(n as u64, Ordering::Relaxed);
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_s);
        let credit = Duration::from_secs_f64(BURST / self.bytes_per_s);
        let done = {
            let mut free_at = self.free_at[dir].lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let earliest = now.checked_sub(credit).unwrap_or(now);
            let start = free_at.map_or(earliest, |f| f.max(earliest));
            let done = start + cost;
            *free_at = Some(done);
            done
        };
        let now = Instant::now();
        if done > now {
            std::thread::sleep(done - now);
        }
        done.max(now)
    }
}

pub struct LatencyProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    bytes: Arc<[AtomicU64; 2]>,
    acceptor: Option<JoinHandle<()>>,
}

impl LatencyProxy {
    /// Forwards 127.0.0.1:`port()` to 127.0.0.1:`upstream`, adding `delay` each way.
    pub fn start(upstream: u16, delay: Duration) -> LatencyProxy {
        LatencyProxy::start_on(upstream, delay, None)
    }

    /// Like [`LatencyProxy::start`], every byte also going over `line` when given.
    pub fn start_on(upstream: u16, delay: Duration, line: Option<Arc<OfficeLine>>) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("LatencyProxy: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("LatencyProxy: local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let bytes: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let acceptor = {
            let (stop, conns, bytes) = (stop.clone(), conns.clone(), bytes.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let addr = SocketAddr::from(([127, 0, 0, 1], upstream));
                    let Ok(server) = TcpStream::connect(addr) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    {
                        let mut list = conns.lock().unwrap_or_else(|e| e.into_inner());
                        list.push(client.try_clone().expect("clone client"));
                        list.push(server.try_clone().expect("clone server"));
                    }
                    let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                    let (b1, b2) = (bytes.clone(), bytes.clone());
                    let (l1, l2) = (line.clone(), line.clone());
                    std::thread::spawn(move || pump(client, server, delay, &b1[UP], l1.as_deref().map(|l| (l, UP))));
                    std::thread::spawn(move || pump(s2, c2, delay, &b2[DOWN], l2.as_deref().map(|l| (l, DOWN))));
                }
            })
        };
        LatencyProxy { port, stop, conns, bytes, acceptor: Some(acceptor) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bytes forwarded so far (client to server, server to client).
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes[UP].load(Ordering::Relaxed), self.bytes[DOWN].load(Ordering::Relaxed))
    }
}

/// Copies `from` to `to`, each chunk released `delay` after it was read (or, on a line, after it has
/// left over the line). The reader never waits for the writer (an unbounded channel between them), so
/// the delay adds latency only; on a line the reader waits for the line, which is the rate limit.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration, counter: &AtomicU64, line: Option<(&OfficeLine, usize)>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if chunk.is_empty() {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    // On a line, small reads so that connections sharing it take turns piece by piece.
    let mut buf = vec![0u8; if line.is_some() { PIECE } else { 256 * 1024 }];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = tx.send((Instant::now() + delay, Vec::new()));
                break;
            }
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                let left = match line {
                    Some((l, dir)) => l.send(dir, n),
                    None => Instant::now(),
                };
                if tx.send((left + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], self.port)), Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for s in self.conns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// The line holds its rate when several connections through two proxies share it, and lets them
/// share it (neither waits for the other to finish). Runs with the tests (about half a second), so a
/// broken line cannot make the benchmark's office-line shares wrong unnoticed.
#[test]
fn office_line_holds_its_rate_across_proxies() {
    const EACH: usize = 3 << 20;
    let sink = |listener: TcpListener| {
        std::thread::spawn(move || {
            for s in listener.incoming().take(1) {
                let mut s = s.expect("accept");
                let mut buf = vec![0u8; 64 * 1024];
                let mut n = 0;
                while n < EACH {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                let _ = s.write_all(b"k");
            }
        })
    };
    let line = OfficeLine::new(100e6);
    let mut sinks = Vec::new();
    let mut proxies = Vec::new();
    for _ in 0..2 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let port = l.local_addr().expect("addr").port();
        sinks.push(sink(l));
        proxies.push(LatencyProxy::start_on(port, Duration::from_millis(20), Some(line.clone())));
    }
    let start = Instant::now();
    let senders: Vec<_> = proxies
        .iter()
        .map(|p| {
            let port = p.port();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.write_all(&vec![7u8; EACH]).expect("send");
                let mut ack = [0u8; 1];
                s.read_exact(&mut ack).expect("ack");
                start.elapsed().as_secs_f64()
            })
        })
        .collect();
    let done: Vec<f64> = senders.into_iter().map(|h| h.join().expect("sender")).collect();
    let ideal = (2 * EACH) as f64 / line.bytes_per_s();
    let last = done.iter().cloned().fold(0.0, f64::max);
    let first = done.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(line.bytes()[UP], 2 * EACH as u64, "every byte went up the line");
    assert!(last >= ideal * 0.95, "6 MiB took {last:.3} s, faster than the line allows ({ideal:.3} s)");
    // Loose above: a busy machine may delay the proxy's threads, and a line too slow shows as low
    // shares for every tool alike; a line too fast (not shared, not limiting) is what must not pass.
    assert!(last <= ideal * 2.0 + 0.3, "6 MiB took {last:.3} s, the line should carry it in {ideal:.3} s");
    assert!(first >= ideal * 0.7, "the connections shared the line (the first ended at {first:.3} s of {ideal:.3} s)");
    for s in sinks {
        let _ = s.join();
    }
}
