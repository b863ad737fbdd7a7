//! A TCP proxy for the stall test: forwards every connection to an upstream port, and the first time
//! the server sends a given marker (bytes inside one message's body) it forwards only what comes before
//! the marker and then stops, keeping both sockets open: a source that stops sending half-way through a
//! body literal and neither answers nor hangs up. `release()` closes that connection (the client sees
//! it go and reconnects); later connections, and all client bytes, pass untouched.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Shared {
    marker: Vec<u8>,
    stop: AtomicBool,
    /// Set once a connection has stalled; the stall is one-shot.
    stalled_at: Mutex<Option<Instant>>,
    released: AtomicBool,
    conns: Mutex<Vec<(TcpStream, TcpStream)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub struct StallProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(50);

impl StallProxy {
    /// Forwards 127.0.0.1:`port()` to 127.0.0.1:`upstream_port`, stalling at the first `marker`.
    pub fn start(upstream_port: u16, marker: &[u8]) -> StallProxy {
        assert!(!marker.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").expect("StallProxy: bind");
        let port = listener.local_addr().expect("StallProxy: local_addr").port();
        let shared = Arc::new(Shared {
            marker: marker.to_vec(),
            stop: AtomicBool::new(false),
            stalled_at: Mutex::new(None),
            released: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for incoming in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = incoming else { continue };
                let Ok(upstream) = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], upstream_port)), Duration::from_secs(5))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (client.try_clone(), upstream.try_clone(), client.try_clone(), upstream.try_clone())
                else {
                    continue;
                };
                sh.conns.lock().unwrap_or_else(|e| e.into_inner()).push((c3, u3));
                let (a, b) = (sh.clone(), sh.clone());
                let up = std::thread::spawn(move || pump(client, upstream, false, a));
                let down = std::thread::spawn(move || pump(u2, c2, true, b));
                sh.threads.lock().unwrap_or_else(|e| e.into_inner()).extend([up, down]);
            }
        });
        StallProxy { port, shared, acceptor: Some(acceptor) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// When a connection stalled at the marker, if one has.
    pub fn stalled_at(&self) -> Option<Instant> {
        *self.shared.stalled_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the stalled connection (both sides).
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (c, u) in std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], self.port)), Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for t in std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to`. With `watch` (server to client), looks for the marker, also across reads,
/// and on the first one anywhere forwards only the bytes before it, then holds the connection open
/// until released.
fn pump(mut from: TcpStream, mut to: TcpStream, watch: bool, sh: Arc<Shared>) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    // The last bytes forwarded, so a marker split over two reads is found.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => continue,
            Err(_) => break,
        };
        let mut forward = n;
        let mut stall = false;
        if watch {
            let mut seen = std::mem::take(&mut tail);
            seen.extend_from_slice(&buf[..n]);
            if let Some(at) = seen.windows(sh.marker.len()).position(|w| w == sh.marker.as_slice()) {
                let mut stalled_at = sh.stalled_at.lock().unwrap_or_else(|e| e.into_inner());
                if stalled_at.is_none() {
                    *stalled_at = Some(Instant::now());
                    stall = true;
                    forward = at.saturating_sub(seen.len() - n);
                }
            }
            let keep = sh.marker.len() - 1;
            tail = seen[seen.len().saturating_sub(keep)..].to_vec();
        }
        if forward > 0 && to.write_all(&buf[..forward]).is_err() {
            break;
        }
        if stall {
            while !sh.released.load(Ordering::SeqCst) && !sh.stop.load(Ordering::SeqCst) {
                std::thread::sleep(POLL);
            }
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
