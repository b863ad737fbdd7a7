//! A TCP proxy for fault tests: listens on a free 127.0.0.1 port, forwards every connection to an
//! upstream port with one thread per direction, and on request cuts a connection after exactly N more
//! bytes in one direction (a one-shot cut, counted across connections from the moment it is armed; later
//! connections pass untouched until armed again). Threads poll a stop flag through short read timeouts
//! and all sockets are shut down on drop, so nothing outlives the proxy.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }
}

#[derive(Default)]
struct State {
    /// Direction and bytes still allowed through before the cut.
    armed: Option<(Direction, u64)>,
    cuts: u64,
    seen: [u64; 2],
    accepted: u64,
    next_id: u64,
    /// Live connections: id, client side, upstream side (clones, for shutting them down).
    conns: Vec<(u64, TcpStream, TcpStream)>,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, id: u64) {
        let mut st = self.state();
        if let Some(pos) = st.conns.iter().position(|(i, _, _)| *i == id) {
            let (_, c, u) = st.conns.swap_remove(pos);
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
    }
}

/// The proxy. See the module docs.
pub struct CutProxy {
    port: u16,
    upstream: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(100);

impl CutProxy {
    /// Starts forwarding 127.0.0.1:`port()` to 127.0.0.1:`upstream_port`.
    pub fn start(upstream_port: u16) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("CutProxy: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("CutProxy: local_addr").port();
        let shared =
            Arc::new(Shared { stop: AtomicBool::new(false), state: Mutex::new(State::default()), workers: Mutex::new(Vec::new()) });
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("cutproxy-{port}"))
            .spawn(move || accept_loop(listener, upstream_port, sh))
            .expect("CutProxy: spawn acceptor");
        CutProxy { port, upstream: upstream_port, shared, acceptor: Some(acceptor) }
    }

    /// The port clients should connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn upstream_port(&self) -> u16 {
        self.upstream
    }

    /// Arms a one-shot cut: exactly `bytes` more bytes pass in `direction` (on whatever connections carry
    /// them), then the connection that carried the last of them is closed on both sides (with `bytes = 0`,
    /// the next connection to send anything that way). Replaces an earlier arming.
    pub fn cut_after(&self, direction: Direction, bytes: u64) {
        self.shared.state().armed = Some((direction, bytes));
    }

    /// Cancels an armed cut that has not fired.
    pub fn disarm(&self) {
        self.shared.state().armed = None;
    }

    /// Whether a cut is armed and has not fired yet.
    pub fn armed(&self) -> bool {
        self.shared.state().armed.is_some()
    }

    /// Closes every live connection now; counts as one cut per connection.
    pub fn cut_all_now(&self) {
        let conns = std::mem::take(&mut self.shared.state().conns);
        let n = conns.len() as u64;
        for (_, c, u) in conns {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
        self.shared.state().cuts += n;
    }

    /// Connections cut so far (by `cut_after` or `cut_all_now`).
    pub fn cut_count(&self) -> u64 {
        self.shared.state().cuts
    }

    /// Bytes forwarded in `direction` since start, over all connections.
    pub fn bytes_seen(&self, direction: Direction) -> u64 {
        self.shared.state().seen[direction.index()]
    }

    /// Connections accepted since start.
    pub fn connections(&self) -> u64 {
        self.shared.state().accepted
    }

    /// Connections open right now.
    pub fn live_connections(&self) -> usize {
        self.shared.state().conns.len()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (_, c, u) in std::mem::take(&mut self.shared.state().conns) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], self.port)), Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let workers = std::mem::take(&mut *self.shared.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream_port: u16, sh: Arc<Shared>) {
    for incoming in listener.incoming() {
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = incoming else { continue };
        let upstream_addr = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let Ok(upstream) = TcpStream::connect_timeout(&upstream_addr, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let clones =
            (|| Some((client.try_clone().ok()?, upstream.try_clone().ok()?, client.try_clone().ok()?, upstream.try_clone().ok()?)))();
        let Some((c_reg, u_reg, c2, u2)) = clones else {
            continue;
        };
        let id = {
            let mut st = sh.state();
            st.accepted += 1;
            st.next_id += 1;
            let id = st.next_id;
            st.conns.push((id, c_reg, u_reg));
            id
        };
        let mut handles = Vec::new();
        for (dir, from, to) in [(Direction::ClientToServer, client, upstream), (Direction::ServerToClient, u2, c2)] {
            let sh2 = sh.clone();
            let h = std::thread::Builder::new()
                .name(format!("cutproxy-pump-{id}-{}", dir.index()))
                .spawn(move || pump(dir, from, to, id, sh2))
                .expect("CutProxy: spawn pump thread");
            handles.push(h);
        }
        let mut workers = sh.workers.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished pumps so a long test does not pile up handles.
        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *workers).into_iter().partition(|h| h.is_finished());
        for h in done {
            let _ = h.join();
        }
        *workers = live;
        workers.extend(handles);
    }
}

fn pump(dir: Direction, mut from: TcpStream, mut to: TcpStream, id: u64, sh: Arc<Shared>) {
    let _ = from.set_read_timeout(Some(POLL));
    let _ = to.set_write_timeout(Some(Duration::from_secs(30)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue;
            }
            Err(_) => break,
        };
        let (forward, cut) = {
            let mut st = sh.state();
            let mut forward = n;
            let mut cut = false;
            if let Some((d, remaining)) = st.armed
                && d == dir
            {
                if n as u64 >= remaining {
                    forward = remaining as usize;
                    cut = true;
                    st.armed = None;
                    st.cuts += 1;
                } else {
                    st.armed = Some((d, remaining - n as u64));
                }
            }
            st.seen[dir.index()] += forward as u64;
            (forward, cut)
        };
        if forward > 0 && to.write_all(&buf[..forward]).is_err() {
            break;
        }
        if cut {
            break;
        }
    }
    // Either side ended (or we cut): close the whole connection.
    sh.close(id);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
