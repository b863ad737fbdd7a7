//! A proxy that makes a real Dovecot answer like servers Dovecot cannot be configured to imitate, for
//! the quirk tests. This is a stand-in only for those answers: Dovecot still does all the storing. On
//! the way from server to client it reads whole responses (lines and their literals) and, as asked:
//!
//! - `no_uidplus` (quirk `no_appenduid`, servers without UIDPLUS such as old Courier setups): removes
//!   `UIDPLUS` from capability lists and the `[APPENDUID ...]` code from tagged OKs, so the client never
//!   learns the UIDs of what it appended;
//! - `bare_lf` (quirk `bare_lf_lines`, old Courier and some appliances): ends every protocol line with a
//!   bare LF instead of CRLF (literals, the message bytes, pass untouched);
//! - `nil_when`: a literal holding these bytes is sent as `NIL` instead (a server that has a message
//!   but will not give its content, as some do for damaged ones);
//! - `uid_after_body` (quirk `uid_after_body`): moves the `UID n` of every FETCH answer that carries
//!   a `BODY[]` literal to after the literal, so the client learns whose body it is only once the body
//!   has come. RFC 3501 does not fix the order of FETCH items and servers may send this shape;
//!   Dovecot never does (it always puts UID first). `uids_moved()` says how many answers it changed.
//!
//! Client commands pass byte for byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    pub no_uidplus: bool,
    pub bare_lf: bool,
    pub nil_when: Option<&'static [u8]>,
    pub uid_after_body: bool,
}

pub struct QuirkProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    uids_moved: Arc<AtomicUsize>,
}

impl QuirkProxy {
    /// Forwards 127.0.0.1:`port()` to the plain IMAP port `upstream_port` on 127.0.0.1.
    pub fn start(upstream_port: u16, quirks: Quirks) -> QuirkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("QuirkProxy: bind");
        let port = listener.local_addr().expect("local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let uids_moved = Arc::new(AtomicUsize::new(0));
        let moved = uids_moved.clone();
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = incoming else { continue };
                let Ok(upstream) = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], upstream_port)), Duration::from_secs(5))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(mut c_read), Ok(c_write), Ok(u_read), Ok(mut u_write)) =
                    (client.try_clone(), client.try_clone(), upstream.try_clone(), upstream.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut u_write);
                    let _ = upstream.shutdown(Shutdown::Both);
                });
                let moved = moved.clone();
                std::thread::spawn(move || {
                    let _ = responses(u_read, c_write, quirks, &moved);
                    let _ = client.shutdown(Shutdown::Both);
                });
            }
        });
        QuirkProxy { port, stop, uids_moved }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// FETCH answers whose UID `uid_after_body` moved behind the body so far.
    pub fn uids_moved(&self) -> usize {
        self.uids_moved.load(Ordering::SeqCst)
    }
}

impl Drop for QuirkProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], self.port)), Duration::from_secs(1));
    }
}

/// The literal length `{n}` at the end of a line (before its CRLF), if any.
fn literal_length(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?.trim_end_matches(['\r', '\n']);
    let open = text.rfind('{')?;
    text.strip_suffix('}')?.get(open + 1..)?.trim_end_matches('+').parse().ok()
}

fn rewrite_line(line: &[u8], quirks: Quirks) -> Vec<u8> {
    let mut out = line.to_vec();
    let upper = line.to_ascii_uppercase();
    let has = |needle: &[u8]| upper.windows(needle.len()).any(|w| w == needle);
    if quirks.no_uidplus && (has(b"[APPENDUID ") || has(b"CAPABILITY ")) {
        // Both are ASCII protocol text, so a text edit is safe here.
        let mut text = String::from_utf8_lossy(line).into_owned();
        if let Some(start) = text.find("[APPENDUID ")
            && let Some(len) = text[start..].find("] ")
        {
            text.replace_range(start..start + len + 2, "");
        }
        text = text.replace(" UIDPLUS", "");
        out = text.into_bytes();
    }
    if quirks.bare_lf && out.ends_with(b"\r\n") {
        out.truncate(out.len() - 2);
        out.push(b'\n');
    }
    out
}

/// Quirk `uid_after_body`: takes `UID n ` out of a FETCH answer's first line when that line announces
/// a `BODY[]` literal ("* 3 FETCH (UID 7 BODY[]<0> {65536}"), keeping it in `held`; then puts ` UID n`
/// before the last ')' of the line that ends the answer (the first one after it that announces no
/// literal: ")" after Dovecot's body).
fn move_uid(mut line: Vec<u8>, held: &mut Option<Vec<u8>>, moved: &AtomicUsize) -> Vec<u8> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    if let Some(uid) = held.take() {
        if literal_length(&line).is_some() {
            *held = Some(uid);
            return line;
        }
        let close = line.iter().rposition(|&b| b == b')').expect("uid_after_body: a FETCH answer without ')'");
        line.splice(close..close, [b" UID ".as_slice(), &uid].concat());
        moved.fetch_add(1, Ordering::SeqCst);
        return line;
    }
    if !line.starts_with(b"* ") || literal_length(&line).is_none() || find(&line, b" BODY[]").is_none() {
        return line;
    }
    let Some(at) = find(&line, b" FETCH (UID ") else { return line };
    let start = at + b" FETCH (".len();
    let digits = start + b"UID ".len();
    let end = digits + line[digits..].iter().take_while(|b| b.is_ascii_digit()).count();
    if end == digits || line.get(end) != Some(&b' ') {
        return line;
    }
    *held = Some(line[digits..end].to_vec());
    line.drain(start..=end);
    line
}

fn responses(upstream: TcpStream, mut client: TcpStream, quirks: Quirks, moved: &AtomicUsize) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(256 * 1024, upstream);
    let mut literal = vec![0u8; 64 * 1024];
    // The UID `uid_after_body` took out of the answer being passed on.
    let mut held_uid: Option<Vec<u8>> = None;
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if quirks.uid_after_body {
            line = move_uid(line, &mut held_uid, moved);
        }
        match (literal_length(&line), quirks.nil_when) {
            (Some(n), Some(marker)) => {
                // Small test messages: the whole literal is looked at before anything is sent.
                let mut bytes = vec![0u8; n];
                r.read_exact(&mut bytes)?;
                if bytes.windows(marker.len()).any(|w| w == marker) {
                    let open = line.iter().rposition(|&b| b == b'{').unwrap_or(line.len());
                    client.write_all(&line[..open])?;
                    client.write_all(b"NIL")?;
                } else {
                    client.write_all(&rewrite_line(&line, quirks))?;
                    client.write_all(&bytes)?;
                }
            }
            (Some(mut n), None) => {
                client.write_all(&rewrite_line(&line, quirks))?;
                while n > 0 {
                    let want = n.min(literal.len());
                    r.read_exact(&mut literal[..want])?;
                    client.write_all(&literal[..want])?;
                    n -= want;
                }
            }
            (None, _) => client.write_all(&rewrite_line(&line, quirks))?,
        }
        client.flush()?;
    }
}
