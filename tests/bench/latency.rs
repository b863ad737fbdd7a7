//! A latency-adding TCP proxy for the benchmark's slow-link mode: listens on a free 127.0.0.1 port and
//! forwards every connection to an upstream port, holding each chunk of bytes for a fixed delay in each
//! direction before passing it on. Chunks are timestamped when read and released in order when due, by a
//! separate writer thread per direction, so the link has latency but no throughput cap (a serial
//! read-sleep-write loop would limit it to one chunk per delay). Nothing is dropped or reordered; an
//! end of stream is delayed like data. Dropping the proxy stops accepting and shuts every connection down.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
                    std::thread::spawn(move || pump(client, server, delay, &b1[0]));
                    std::thread::spawn(move || pump(s2, c2, delay, &b2[1]));
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
        (self.bytes[0].load(Ordering::Relaxed), self.bytes[1].load(Ordering::Relaxed))
    }
}

/// Copies `from` to `to`, each chunk released `delay` after it was read. The reader never waits for the
/// writer (an unbounded channel between them), so the delay adds latency only.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration, counter: &AtomicU64) {
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
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = tx.send((Instant::now() + delay, Vec::new()));
                break;
            }
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
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
