//! A scripted stand-in for what Exchange Online's IMAP does and Dovecot cannot be configured to do. It
//! is a TCP proxy on a free 127.0.0.1 port in front of a real Dovecot (which still does all the mail
//! storage and the XOAUTH2 logins); it changes only these things on the way through:
//!
//! - **Capabilities** (`* CAPABILITY` and `[CAPABILITY ...]`): only what Exchange Online announces
//!   is left (`IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE
//!   NAMESPACE LITERAL+`). So no CONDSTORE, QRESYNC, QUOTA, SPECIAL-USE, MULTIAPPEND, APPENDLIMIT,
//!   ENABLE, LIST-EXTENDED... postflytt must work without them.
//! - **LIST/LSUB attributes**: special-use attributes (`\Sent \Drafts \Trash \Junk \Archive \All
//!   \Flagged \Important`) are removed, as Exchange does not send them; its special folders are known
//!   only by their names ("Sent Items", "Deleted Items", "Junk Email", "Drafts", "Archive"), which the
//!   tests create on the Dovecot beforehand.
//! - **`\Flagged` on APPEND** (quirk `exchange_drops_flagged_on_append`): removed from the APPEND flag
//!   list before the command reaches Dovecot, so the server really does not have it, as with Exchange.
//! - **Throttling** (quirk `exchange_throttled`): when armed, the next K APPEND commands (or K commands
//!   of another verb: SELECT, LIST, UID...) are answered
//!   `TAG NO Request is throttled. Suggested Backoff Time: N milliseconds` by the stand-in itself and
//!   never reach Dovecot. The message literal is read and discarded first (with LITERAL+ the client sends
//!   it unasked; for a synchronizing literal the stand-in sends the `+` itself), as a server must.
//!
//! - **A brief outage**: when armed, the next K APPENDs are answered
//!   `TAG BAD User is authenticated but not connected.` by the stand-in itself (as Exchange Online does
//!   while a mailbox moves between its servers), the literal read and discarded as for throttling.
//!
//! - **Re-rendering** (quirk `exchange_rewrites_messages`): when armed, every appended message gets a
//!   header line put in front of it (`REWRITE_HEADER`), so what the server stores and serves back has
//!   another size and hash than what the client sent, as with Exchange, which re-renders all mail.
//! - **Lost APPEND answers**: when armed, the connection is cut right after the Nth APPEND reached the
//!   server whole: the server stores the message, its answer never reaches the client. Exchange drops
//!   connections under load; a cut at this moment is the hardest one for exactly-once.
//!
//! Everything else passes byte for byte. Counters (APPENDs seen, throttled, `\Flagged` dropped,
//! connections) let the tests check what happened on the wire.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// What Exchange Online announces (outlook.office365.com:993, before and after login).
pub const EXCHANGE_CAPABILITIES: [&str; 13] = [
    "IMAP4",
    "IMAP4REV1",
    "AUTH=PLAIN",
    "AUTH=XOAUTH2",
    "SASL-IR",
    "UIDPLUS",
    "MOVE",
    "ID",
    "UNSELECT",
    "CHILDREN",
    "IDLE",
    "NAMESPACE",
    "LITERAL+",
];

/// LIST attributes Exchange does not send.
const HIDDEN_ATTRIBUTES: [&str; 8] = ["\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged", "\\Important"];

#[derive(Default, Debug, Clone)]
pub struct Counters {
    pub connections: u64,
    /// APPEND commands received from the client (throttled ones included).
    pub appends: u64,
    /// Commands answered "Request is throttled", all verbs.
    pub throttled: u64,
    pub flagged_dropped: u64,
    /// Mailbox names (as on the wire) of the APPENDs that reached the server.
    pub appended_to: Vec<String>,
    /// Connections cut after an APPEND, its answer lost.
    pub cut_after_append: u64,
}

/// The header line the re-rendering stand-in puts in front of every appended message.
pub const REWRITE_HEADER: &[u8] = b"X-MS-Exchange-Organization-AuthAs: Internal\r\n";

#[derive(Default)]
struct State {
    /// Upper-case command verb to (commands left to throttle, suggested backoff in ms).
    throttle: std::collections::BTreeMap<String, (u64, u64)>,
    /// APPENDs left to answer "not connected".
    not_connected: u64,
    counters: Counters,
    conns: Vec<(TcpStream, TcpStream)>,
    rewrite: bool,
    /// Ordinals (1-based, counting APPENDs that reach the server) after which the connection is cut.
    cut_after: std::collections::BTreeSet<usize>,
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
}

/// The stand-in. See the module docs. Stops on drop.
pub struct ExchangeStandIn {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ExchangeStandIn {
    /// Starts forwarding 127.0.0.1:`port()` to the Dovecot on 127.0.0.1:`upstream_port` (plain).
    pub fn start(upstream_port: u16) -> ExchangeStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("ExchangeStandIn: bind");
        let port = listener.local_addr().expect("local_addr").port();
        let shared =
            Arc::new(Shared { stop: AtomicBool::new(false), state: Mutex::new(State::default()), workers: Mutex::new(Vec::new()) });
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("exo-{port}"))
            .spawn(move || accept_loop(listener, upstream_port, sh))
            .expect("spawn acceptor");
        ExchangeStandIn { port, shared, acceptor: Some(acceptor) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next `count` APPENDs get "Request is throttled. Suggested Backoff Time: `backoff_ms`
    /// milliseconds".
    pub fn throttle_appends(&self, count: u64, backoff_ms: u64) {
        self.throttle("APPEND", count, backoff_ms);
    }

    /// The next `count` APPENDs get "BAD User is authenticated but not connected." (a brief outage).
    pub fn refuse_appends_not_connected(&self, count: u64) {
        self.shared.state().not_connected = count;
    }

    /// The next `count` commands with this verb (`SELECT`, `LIST`, `UID`...) are throttled likewise.
    pub fn throttle(&self, verb: &str, count: u64, backoff_ms: u64) {
        self.shared.state().throttle.insert(verb.to_ascii_uppercase(), (count, backoff_ms));
    }

    /// From now on every appended message is stored with `REWRITE_HEADER` in front of it.
    pub fn rewrite_appends(&self) {
        self.shared.state().rewrite = true;
    }

    /// After the APPENDs with these ordinals (1-based, counting those that reach the server, from the
    /// start) the connection is cut before the server's answer reaches the client.
    pub fn cut_after_appends(&self, ordinals: &[usize]) {
        self.shared.state().cut_after.extend(ordinals.iter().copied());
    }

    pub fn counters(&self) -> Counters {
        self.shared.state().counters.clone()
    }
}

impl Drop for ExchangeStandIn {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (c, u) in std::mem::take(&mut self.shared.state().conns) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
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
        let Ok(upstream) = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], upstream_port)), Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (Ok(c_reg), Ok(u_reg), Ok(c_read), Ok(c_write), Ok(u_read), Ok(u_write)) =
            (client.try_clone(), upstream.try_clone(), client.try_clone(), client.try_clone(), upstream.try_clone(), upstream.try_clone())
        else {
            continue;
        };
        {
            let mut st = sh.state();
            st.counters.connections += 1;
            st.conns.push((c_reg, u_reg));
        }
        let client_out = Arc::new(Mutex::new(c_write));
        // Set when this connection is being cut: nothing the server says reaches the client any more.
        let mute = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        {
            let out = client_out.clone();
            let mute = mute.clone();
            let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) else { continue };
            handles.push(std::thread::spawn(move || {
                let _ = server_to_client(u_read, &out, &mute);
                let _ = c.shutdown(Shutdown::Both);
                let _ = u.shutdown(Shutdown::Both);
            }));
        }
        {
            let sh2 = sh.clone();
            handles.push(std::thread::spawn(move || {
                let _ = client_to_server(c_read, u_write, &client_out, &sh2, &mute);
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
            }));
        }
        let mut workers = sh.workers.lock().unwrap_or_else(|e| e.into_inner());
        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *workers).into_iter().partition(|h| h.is_finished());
        for h in done {
            let _ = h.join();
        }
        *workers = live;
        workers.extend(handles);
    }
}

fn write_client(out: &Mutex<TcpStream>, bytes: &[u8]) -> std::io::Result<()> {
    let mut s = out.lock().unwrap_or_else(|e| e.into_inner());
    s.write_all(bytes)?;
    s.flush()
}

/// `(n, non_synchronizing)` if `line` ends in `{n}`, `{n+}` or `{n-}` and CRLF (a literal follows).
pub fn literal_at_end(line: &[u8]) -> Option<(usize, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let mut digits = &line[open + 1..];
    let mut plus = false;
    if let Some(d) = digits.strip_suffix(b"+").or_else(|| digits.strip_suffix(b"-")) {
        digits = d;
        plus = true;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, plus))
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed"));
    }
    Ok(line)
}

/// Server responses, whole (line plus literals), rewritten where Exchange differs.
fn server_to_client(upstream: TcpStream, out: &Mutex<TcpStream>, mute: &AtomicBool) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(256 * 1024, upstream);
    loop {
        let mut response = read_line(&mut r)?;
        let mut first_line_end = None;
        let mut line_start = 0;
        while let Some((n, _)) = literal_at_end(&response[line_start..]) {
            first_line_end.get_or_insert(response.len());
            let at = response.len();
            response.resize(at + n, 0);
            r.read_exact(&mut response[at..])?;
            line_start = response.len();
            let more = read_line(&mut r)?;
            response.extend_from_slice(&more);
        }
        let first_line_end = first_line_end.unwrap_or(response.len());
        if mute.load(Ordering::SeqCst) {
            continue;
        }
        let rewritten = rewrite_response(&response, first_line_end);
        write_client(out, &rewritten)?;
    }
}

fn rewrite_response(response: &[u8], first_line_end: usize) -> Vec<u8> {
    let head = &response[..first_line_end];
    let Ok(text) = std::str::from_utf8(head) else { return response.to_vec() };
    let upper = text.to_ascii_uppercase();
    let mut new_head: Option<String> = None;
    if upper.starts_with("* CAPABILITY ") {
        let words = text["* CAPABILITY ".len()..].trim_end();
        new_head = Some(format!("* CAPABILITY {}\r\n", filter_caps(words)));
    } else if let Some(start) = upper.find("[CAPABILITY ") {
        if let Some(end) = text[start..].find(']') {
            let words = &text[start + "[CAPABILITY ".len()..start + end];
            new_head = Some(format!("{}[CAPABILITY {}{}", &text[..start], filter_caps(words), &text[start + end..]));
        }
    } else if (upper.starts_with("* LIST (") || upper.starts_with("* LSUB (")) && text.contains(')') {
        let open = text.find('(').expect("checked");
        let close = text.find(')').expect("checked");
        let kept: Vec<&str> =
            text[open + 1..close].split_whitespace().filter(|a| !HIDDEN_ATTRIBUTES.iter().any(|h| h.eq_ignore_ascii_case(a))).collect();
        new_head = Some(format!("{}({}{}", &text[..open], kept.join(" "), &text[close..]));
    }
    match new_head {
        Some(h) => {
            let mut v = h.into_bytes();
            v.extend_from_slice(&response[first_line_end..]);
            v
        }
        None => response.to_vec(),
    }
}

fn filter_caps(words: &str) -> String {
    words.split_whitespace().filter(|w| EXCHANGE_CAPABILITIES.iter().any(|c| c.eq_ignore_ascii_case(w))).collect::<Vec<_>>().join(" ")
}

/// Removes `\Flagged` from the first parenthesised list (outside quoted strings) of an APPEND line.
/// Returns the new line and how many were removed.
pub fn drop_flagged(line: &[u8]) -> (Vec<u8>, u64) {
    let mut in_quote = false;
    let mut escaped = false;
    let mut open = None;
    let mut close = None;
    for (i, &b) in line.iter().enumerate() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quote = false;
            }
            continue;
        }
        match b {
            b'"' => in_quote = true,
            b'(' if open.is_none() => open = Some(i),
            b')' if open.is_some() => {
                close = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (Some(open), Some(close)) = (open, close) else { return (line.to_vec(), 0) };
    let inner = String::from_utf8_lossy(&line[open + 1..close]).into_owned();
    let words: Vec<&str> = inner.split_whitespace().collect();
    let kept: Vec<&str> = words.iter().copied().filter(|w| !w.eq_ignore_ascii_case("\\Flagged")).collect();
    let removed = (words.len() - kept.len()) as u64;
    if removed == 0 {
        return (line.to_vec(), 0);
    }
    let mut out = line[..=open].to_vec();
    out.extend_from_slice(kept.join(" ").as_bytes());
    out.extend_from_slice(&line[close..]);
    (out, removed)
}

/// The quoted (or atom) mailbox argument of an APPEND line, for the counters.
fn append_mailbox(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut words = text.splitn(3, ' ');
    let (_tag, _verb, rest) = (words.next(), words.next(), words.next().unwrap_or(""));
    if let Some(q) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        rest.split(' ').next().unwrap_or("").to_string()
    }
}

/// Client commands: forwarded, except that APPENDs lose `\Flagged` and may be throttled.
fn client_to_server(
    client: TcpStream,
    mut upstream: TcpStream,
    out: &Mutex<TcpStream>,
    sh: &Shared,
    mute: &AtomicBool,
) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(256 * 1024, client);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let first = read_line(&mut r)?;
        let text = String::from_utf8_lossy(&first).into_owned();
        let mut words = text.split(' ');
        let tag = words.next().unwrap_or("").to_string();
        let verb = words.next().unwrap_or("").trim_end().to_ascii_uppercase();
        let is_append = verb == "APPEND";
        let mut throttled = None;
        let mut rewrite = false;
        let mut cut = false;
        let mut fragment = first;
        {
            let mut guard = sh.state();
            let st = &mut *guard;
            if is_append {
                st.counters.appends += 1;
            }
            if let Some((left, ms)) = st.throttle.get_mut(&verb).filter(|(left, _)| *left > 0) {
                *left -= 1;
                throttled = Some(format!("{tag} NO Request is throttled. Suggested Backoff Time: {ms} milliseconds\r\n"));
                st.counters.throttled += 1;
            } else if is_append && st.not_connected > 0 {
                st.not_connected -= 1;
                throttled = Some(format!("{tag} BAD User is authenticated but not connected.\r\n"));
            } else if is_append {
                let (line, removed) = drop_flagged(&fragment);
                st.counters.flagged_dropped += removed;
                st.counters.appended_to.push(append_mailbox(&line));
                rewrite = st.rewrite;
                cut = st.cut_after.contains(&st.counters.appended_to.len());
                fragment = line;
            }
        }
        loop {
            let literal = literal_at_end(&fragment);
            if rewrite && let Some((n, _)) = literal {
                fragment = with_literal_length(&fragment, n + REWRITE_HEADER.len());
            }
            if cut && literal.is_none() {
                // The last bytes of the APPEND: from here on the server's answers are swallowed.
                mute.store(true, Ordering::SeqCst);
            }
            if throttled.is_none() {
                upstream.write_all(&fragment)?;
            }
            let Some((mut n, non_sync)) = literal else { break };
            if rewrite {
                upstream.write_all(REWRITE_HEADER)?;
            }
            if throttled.is_some() && !non_sync {
                write_client(out, b"+ Ready for additional command text.\r\n")?;
            }
            while n > 0 {
                let want = n.min(buf.len());
                let got = r.read(&mut buf[..want])?;
                if got == 0 {
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed inside a literal"));
                }
                if throttled.is_none() {
                    upstream.write_all(&buf[..got])?;
                }
                n -= got;
            }
            fragment = read_line(&mut r)?;
        }
        if let Some(answer) = throttled {
            write_client(out, answer.as_bytes())?;
        }
        if cut {
            // Give the server time to store the message (its answer goes nowhere), then hang up.
            upstream.flush()?;
            std::thread::sleep(Duration::from_millis(300));
            sh.state().counters.cut_after_append += 1;
            if let Ok(s) = r.get_ref().try_clone() {
                let _ = s.shutdown(Shutdown::Both);
            }
            let _ = upstream.shutdown(Shutdown::Both);
            return Err(std::io::Error::new(ErrorKind::ConnectionAborted, "cut after an APPEND"));
        }
    }
}

/// `line` (ending in `{n}`, `{n+}` or `{n-}` and CRLF) with the literal length replaced by `n`.
fn with_literal_length(line: &[u8], n: usize) -> Vec<u8> {
    let open = line.iter().rposition(|&b| b == b'{').unwrap_or(line.len());
    let close = line.iter().rposition(|&b| b == b'}').unwrap_or(line.len());
    let marker: &[u8] = if line[..close].ends_with(b"+") {
        b"+"
    } else if line[..close].ends_with(b"-") {
        b"-"
    } else {
        b""
    };
    let mut out = line[..open].to_vec();
    out.extend_from_slice(format!("{{{n}").as_bytes());
    out.extend_from_slice(marker);
    out.extend_from_slice(&line[close..]);
    out
}
