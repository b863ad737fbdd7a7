//! A scripted HTTP proxy in front of a real DAV server, for the quirks and cuts a server on loopback
//! cannot produce on demand (issue 19): a calendar another owner shared into the user's home (neither
//! Radicale nor xandikos shares), a sync-collection answer paged with a 507 (Google does it at about
//! 230 items), and a connection cut after a request reached the server but before its answer came back.
//! Each request is forwarded on a connection of its own (`Connection: close`); a [`Rewrite`] sees it and
//! may change the request or the answer, or cut. Answers go back with `Connection: close`, so the
//! client opens a connection per request (which Radicale's HTTP/1.0 makes it do anyway).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dav::{DavResponse, request};

/// One request as the proxy forwards it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// What the proxy does with one exchange.
pub enum Action {
    /// Forward the answer (as possibly changed).
    Answer,
    /// The request reached the server; its answer is dropped and the client's connection closed.
    Cut,
}

/// Called before forwarding (may change the request) and after (may change the answer).
pub trait Rewrite: Send + 'static {
    fn request(&mut self, _seen: &mut Seen) {}
    fn answer(&mut self, seen: &Seen, answer: &mut DavResponse) -> Action;
}

pub struct DavProxy {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl DavProxy {
    /// A proxy on a free loopback port forwarding to `backend_port`.
    pub fn start(backend_port: u16, rewrite: impl Rewrite) -> DavProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("dav proxy: bind");
        let port = listener.local_addr().expect("dav proxy: address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rewrite = Arc::new(Mutex::new(rewrite));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (rewrite, log) = (rewrite.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, backend_port, &rewrite, &log);
                });
            }
        });
        DavProxy { port, seen }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests with this method went through.
    pub fn count(&self, method: &str) -> usize {
        self.seen.lock().expect("dav proxy log").iter().filter(|s| s.method == method).count()
    }
}

fn serve(client: TcpStream, backend: u16, rewrite: &Mutex<impl Rewrite>, log: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if !["host", "connection"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
                headers.push((name, value));
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut seen = Seen { method, path, body };
    rewrite.lock().expect("rewrite").request(&mut seen);
    log.lock().expect("dav proxy log").push(seen.clone());
    let header_refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut answer = request(backend, &seen.method, &seen.path, None, &header_refs, &seen.body)?;
    let mut client = client;
    if let Action::Cut = rewrite.lock().expect("rewrite").answer(&seen, &mut answer) {
        return client.shutdown(std::net::Shutdown::Both);
    }
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n", answer.status, answer.body.len());
    for (name, value) in &answer.headers {
        if !["content-length", "connection", "transfer-encoding"].contains(&name.as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    client.write_all(head.as_bytes())?;
    client.write_all(&answer.body)?;
    client.flush()
}
