//! The front door: the one socket the office network reaches, and everything decided before a request
//! may take one of the few threads that answer it. It accepts connections itself, reads each request's
//! head and body with a size cap and a deadline, checks the Host header against the names the appliance
//! answers to, decides who is asking (operator token, viewer code, or nobody) under one guessing limit
//! for all addresses together, and only then hands the complete request to tiny_http over a private
//! socket (`http.rs` answers it there). Each connection serves one request and is closed.
//!
//! Why tiny_http does not face the network itself (each measured on 0.12): its accept loop ends for
//! good at the first accept error, so running out of file descriptors stopped the page while the
//! process lived on; it offers no deadline on a socket, so four stalled request bodies held every
//! handler; and a request dropped with its body unread is drained into one allocation of the size the
//! client claimed (`Content-Length: 100000000000` aborted the process). Here a connection is a small
//! task on one thread, its memory is capped, and a stalled one costs only itself.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::{LocalExecutor, Timer};

/// Longest request head (request line and headers) accepted; the page's are under 1 KiB.
const MAX_HEAD: usize = 16 * 1024;
/// Largest JSON body an action takes.
pub const MAX_JSON: u64 = 64 * 1024;
/// Largest account-list upload (a spreadsheet of a few hundred rows is kilobytes; a zipped workbook
/// with pictures a few MB). Only the operator may send one, and one at a time.
pub const MAX_UPLOAD: u64 = 32 * 1024 * 1024;
/// Largest answer taken back from the handlers (a report for hundreds of accounts is a few MB).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// A client has this long from connecting to sending its whole head.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// Bodies and answers get this long plus one second per `SLOWEST_LINE` bytes: a 32 MB upload over a
/// slow office uplink still arrives, a client that stops sending is dropped.
const TRANSFER_GRACE: Duration = Duration::from_secs(10);
const SLOWEST_LINE: u64 = 64 * 1024;
/// How long a handler may take to answer (a report over hundreds of accounts takes seconds).
const HANDLER_DEADLINE: Duration = Duration::from_secs(300);
/// How long a complete request may wait for its turn with the handlers.
const QUEUE_DEADLINE: Duration = Duration::from_secs(30);
/// Connections open at once, in all and from one address. Past either, the connection that has waited
/// longest for its request to arrive makes room (a stalled client loses its place to a live one); with
/// no such connection the new one is answered 503. The total is also kept to a quarter of the open
/// files allowed, so the databases, the IMAP connections and the handlers' socket always get theirs.
const MAX_CONNECTIONS: usize = 512;
const MAX_PER_ADDRESS: usize = 64;
/// Requests handed to the handlers at once (tiny_http gives each a thread; the handlers are 4).
const MAX_FORWARDED: usize = 8;

/// Who is asking, as decided here from the credential a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// No credential at all.
    Nobody,
    /// A credential that was wrong: 403 where one is needed, rather than 401.
    Wrong,
    Viewer,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Nobody => "nobody",
            Role::Wrong => "wrong",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Role {
        match text {
            "operator" => Role::Operator,
            "viewer" => Role::Viewer,
            "wrong" => Role::Wrong,
            _ => Role::Nobody,
        }
    }
}

/// The header carrying the decided role to the handlers, and the one proving it came from here. Any
/// copy a client sends is dropped with every other header it sent.
pub const ROLE_HEADER: &str = "X-Postflytt-Role";
pub const DOOR_HEADER: &str = "X-Postflytt-Door";
pub const PEER_HEADER: &str = "X-Postflytt-Peer";
/// Names the account list handed over in memory (`Uploads`) instead of in the forwarded body.
pub const UPLOAD_HEADER: &str = "X-Postflytt-Upload";

/// Account lists on their way from the door to the handler, in memory. An upload holds every
/// password of the list; handed over here it never passes through a socket or tiny_http's buffers,
/// and every copy of it can be wiped: the handler wipes what it takes once parsed, the door wipes
/// what the handler did not take.
#[derive(Default)]
pub struct Uploads {
    waiting: std::sync::Mutex<BTreeMap<u64, Vec<u8>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Uploads {
    fn put(&self, body: Vec<u8>) -> u64 {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id, body);
        id
    }

    /// The upload the door put here, once.
    pub fn take(&self, id: u64) -> Option<Vec<u8>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id)
    }

    fn discard(&self, id: u64) {
        if let Some(body) = self.take(id) {
            crate::secret::wipe(body);
        }
    }
}

/// Compares without stopping at the first difference, so timing does not leak the secret.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// Viewer codes

/// The viewer code's letters: no 0/O, 1/I/L, so one read aloud or from paper is typed right.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// 31^10 is about 8.2e14 codes: at the guessing limit below (one wrong guess a second for all
/// addresses together) a year of guessing finds it with a chance of about 4 in 100 million.
pub const CODE_LENGTH: usize = 10;

/// A new viewer code from `random` bytes (one per character), grouped for reading: `ABCDE-23456`.
pub fn new_viewer_code(random: &[u8; CODE_LENGTH * 2]) -> String {
    // Two bytes per character keep the modulo bias below 0.05 %.
    let letters: String = random
        .chunks(2)
        .map(|pair| CODE_ALPHABET[(usize::from(pair[0]) << 8 | usize::from(pair[1])) % CODE_ALPHABET.len()] as char)
        .collect();
    group_viewer_code(&letters)
}

/// `ABCDE23456` as it is shown and written: `ABCDE-23456`.
pub fn group_viewer_code(code: &str) -> String {
    let half = code.len() / 2;
    if code.len() == CODE_LENGTH && code.is_char_boundary(half) { format!("{}-{}", &code[..half], &code[half..]) } else { code.to_string() }
}

/// A viewer code as typed or pasted (`abcde 23456`, `ABCDE-23456`) in the form compared: letters and
/// digits only, upper case.
pub fn normalize_viewer_code(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

/// Whether a stored code is of the current kind (a six-digit one from before is replaced at start).
pub fn is_current_viewer_code(code: &str) -> bool {
    let code = normalize_viewer_code(code);
    code.len() == CODE_LENGTH && code.bytes().all(|b| CODE_ALPHABET.contains(&b))
}

// ---------------------------------------------------------------------------------------------
// The guessing limit

/// A bucket of allowed wrong guesses that refills at a steady rate.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket { tokens: capacity, at: now }
    }

    fn refill(&mut self, capacity: f64, per_second: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
    }

    fn seconds_to_one(&self, per_second: f64) -> u64 {
        ((1.0 - self.tokens).max(0.0) / per_second).ceil() as u64
    }
}

/// Wrong credentials allowed: `ADDRESS_BURST` from one address, then one per `1/ADDRESS_RATE` s; and
/// `GLOBAL_BURST` from all addresses together, then `GLOBAL_RATE` a second. While either is used up,
/// a viewer code is not even compared (the 192-bit operator token still is: guessing it is hopeless,
/// and staff must be able to act while someone guesses). Addresses kept: at most `MAX_ADDRESSES`.
const ADDRESS_BURST: f64 = 20.0;
const ADDRESS_RATE: f64 = 1.0 / 6.0;
const GLOBAL_BURST: f64 = 60.0;
const GLOBAL_RATE: f64 = 1.0;
const MAX_ADDRESSES: usize = 4096;
/// Addresses that showed the right viewer code lately are still compared while the limit for all
/// addresses together is used up (under their own limit): otherwise anyone could keep every customer
/// off the page by guessing one code a second. At most `MAX_KNOWN` of them, for `KNOWN_FOR`.
const MAX_KNOWN: usize = 256;
const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub struct Limiter {
    global: Bucket,
    by_address: BTreeMap<IpAddr, Bucket>,
    known: BTreeMap<IpAddr, Instant>,
}

/// The address the limits count by: an IPv6 host picks its own address within its /64 at will.
fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & (u128::MAX << 64))),
        },
        v4 => v4,
    }
}

impl Limiter {
    pub fn new(now: Instant) -> Limiter {
        Limiter { global: Bucket::full(GLOBAL_BURST, now), by_address: BTreeMap::new(), known: BTreeMap::new() }
    }

    /// None while guesses are allowed from `address`; else the seconds until the next one is.
    pub fn limited(&mut self, address: IpAddr, now: Instant) -> Option<u64> {
        let address = counted_as(address);
        self.global.refill(GLOBAL_BURST, GLOBAL_RATE, now);
        let known = self.known.get(&address).is_some_and(|&at| now.saturating_duration_since(at) < KNOWN_FOR);
        let mut wait = if self.global.tokens < 1.0 && !known { self.global.seconds_to_one(GLOBAL_RATE) } else { 0 };
        if let Some(bucket) = self.by_address.get_mut(&address) {
            bucket.refill(ADDRESS_BURST, ADDRESS_RATE, now);
            if bucket.tokens < 1.0 {
                wait = wait.max(bucket.seconds_to_one(ADDRESS_RATE));
            }
        }
        (wait > 0).then_some(wait)
    }

    /// Remembers that `address` showed the right viewer code.
    pub fn succeeded(&mut self, address: IpAddr, now: Instant) {
        let address = counted_as(address);
        if !self.known.contains_key(&address) && self.known.len() >= MAX_KNOWN {
            self.known.retain(|_, &mut at| now.saturating_duration_since(at) < KNOWN_FOR);
            if self.known.len() >= MAX_KNOWN
                && let Some(oldest) = self.known.iter().min_by_key(|(_, at)| **at).map(|(a, _)| *a)
            {
                self.known.remove(&oldest);
            }
        }
        self.known.insert(address, now);
    }

    /// Counts one wrong credential from `address`.
    pub fn failed(&mut self, address: IpAddr, now: Instant) {
        let address = counted_as(address);
        self.global.refill(GLOBAL_BURST, GLOBAL_RATE, now);
        self.global.tokens = (self.global.tokens - 1.0).max(0.0);
        if !self.by_address.contains_key(&address) && self.by_address.len() >= MAX_ADDRESSES {
            self.forget_some(now);
        }
        let bucket = self.by_address.entry(address).or_insert_with(|| Bucket::full(ADDRESS_BURST, now));
        bucket.refill(ADDRESS_BURST, ADDRESS_RATE, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    /// Makes room in the table: an address whose bucket has refilled is the same as one never seen;
    /// if none has, the one quiet longest goes.
    fn forget_some(&mut self, now: Instant) {
        // Refilled on a copy: refilling moves `at` to now, and `at` says who was quiet longest.
        self.by_address.retain(|_, b| {
            let mut refilled = *b;
            refilled.refill(ADDRESS_BURST, ADDRESS_RATE, now);
            refilled.tokens < ADDRESS_BURST
        });
        if self.by_address.len() >= MAX_ADDRESSES
            && let Some(oldest) = self.by_address.iter().min_by_key(|(_, b)| b.at).map(|(a, _)| *a)
        {
            self.by_address.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.by_address.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Host names

/// The names the appliance answers to. A request naming any other host gets 421: a web page an
/// office user opens elsewhere could otherwise reach the appliance by DNS rebinding (the browser sends
/// that page's own name), and be same-origin with it.
#[derive(Debug, Clone)]
pub struct Names {
    names: Vec<String>,
    /// Listening on 0.0.0.0 or [::]: any address of the box may be typed. An address in the Host
    /// header is always one a person typed (rebinding needs a name), so any address is accepted then.
    any_address: bool,
    listen_address: Option<IpAddr>,
}

impl Names {
    /// The listen address's, `localhost`, this machine's host name and `extra` (the operator's).
    pub fn new(listen: &SocketAddr, extra: &[String]) -> Names {
        let mut names = vec!["localhost".to_string()];
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            names.push(host.trim().to_ascii_lowercase());
        }
        names.extend(extra.iter().map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()));
        names.retain(|n| !n.is_empty());
        names.sort();
        names.dedup();
        let any_address = listen.ip().is_unspecified();
        Names { names, any_address, listen_address: (!any_address).then_some(listen.ip()) }
    }

    /// Whether a request with this Host header is answered. No Host at all (an HTTP/1.0 script) is:
    /// browsers always send one.
    pub fn allows(&self, host_header: Option<&str>) -> bool {
        let Some(host) = host_header else { return true };
        let host = host.trim();
        let name = if let Some(rest) = host.strip_prefix('[') {
            match rest.split_once(']') {
                Some((inside, _)) => inside,
                None => return false,
            }
        } else {
            match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            }
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(address) = name.parse::<IpAddr>() {
            return self.any_address || address.is_loopback() || Some(address) == self.listen_address;
        }
        self.names.contains(&name)
    }

    pub fn listed(&self) -> String {
        self.names.join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// Request heads

/// A request's head as the door reads it: header names in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

/// A request refused here, with the status it deserves and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into(), retry_after: None }
    }
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body's length: Content-Length, or 0. Chunked bodies are refused (no client of this API
    /// sends one), as are lengths that disagree or do not parse.
    pub fn content_length(&self) -> Result<u64, Refusal> {
        if self.header("transfer-encoding").is_some() {
            return Err(Refusal::new(411, "send the body with a Content-Length (chunked bodies are not accepted)"));
        }
        let mut lengths = self.headers.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.trim());
        let Some(first) = lengths.next() else { return Ok(0) };
        if lengths.any(|other| other != first) {
            return Err(Refusal::new(400, "the request has two different Content-Length headers"));
        }
        if first.is_empty() || first.len() > 20 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refusal::new(400, "the Content-Length header is not a number"));
        }
        first.parse().map_err(|_| Refusal::new(400, "the Content-Length header is not a number"))
    }
}

/// Where the head ends in `buffer`: the index just past its blank line.
fn head_end(buffer: &[u8]) -> Option<usize> {
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads a request head (without its blank line). Strict where tiny_http would be lenient: only
/// visible ASCII in the target, tokens for method and header names, no folded headers.
pub fn parse_head(raw: &[u8]) -> Result<Head, Refusal> {
    let bad = |what: &str| Refusal::new(400, format!("the request is not HTTP/1.1 this appliance understands: {what}"));
    let text = std::str::from_utf8(raw).map_err(|_| bad("bytes that are not text in the head"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("the request line"));
    };
    if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("the method"));
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the path"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Refusal::new(505, "only HTTP/1.0 and HTTP/1.1 are spoken here"));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| bad("a header line without a colon"))?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(bad("a header name"));
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad("a header value"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    if headers.len() > 100 {
        return Err(Refusal::new(431, "the request has too many headers"));
    }
    Ok(Head { method: method.to_string(), target: target.to_string(), version: version.to_string(), headers })
}

// ---------------------------------------------------------------------------------------------
// The door

/// What the door knows to decide: the credentials, the names, the handlers' socket and proof.
pub struct Door {
    pub operator_token: String,
    /// Normalized (letters and digits, upper case).
    pub viewer_code: String,
    pub names: Names,
    pub backend: Backend,
    /// Sent with every forwarded request: the handlers answer nothing without it.
    pub door_secret: String,
    pub uploads: std::sync::Arc<Uploads>,
}

/// Where the handlers listen: a Unix socket in the data directory (0700), or, when its path is too
/// long for one, a loopback port.
#[derive(Debug, Clone)]
pub enum Backend {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// Who is asking: the role decided from the head, or a refusal (429 while guessing is limited).
pub fn decide_role(door: &Door, head: &Head, address: IpAddr, limiter: &mut Limiter, now: Instant) -> Result<Role, Refusal> {
    let bearer = head.header("authorization").map(|a| match a.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => a.trim(),
    });
    // A code in the query only for reading (`/report?code=` so that a plain link works); the
    // operator token only ever in the Authorization header.
    let from_query =
        if head.method == "GET" || head.method == "HEAD" { crate::http::parse_query(&head.target).1.get("code").cloned() } else { None };
    let code = head.header("x-viewer-code").map(str::to_string).or(from_query);
    if bearer.is_none() && code.is_none() {
        return Ok(Role::Nobody);
    }
    if let Some(token) = bearer
        && same(token, &door.operator_token)
    {
        return Ok(Role::Operator);
    }
    if let Some(wait) = limiter.limited(address, now) {
        return Err(Refusal {
            status: 429,
            message: "too many wrong codes or tokens; wait a minute and try again".into(),
            retry_after: Some(wait.max(1)),
        });
    }
    // One candidate per request, so each comparison is counted: the code's own header (or the
    // query), else the bearer value.
    let candidate = code.as_deref().or(bearer).map(normalize_viewer_code).unwrap_or_default();
    if same(&candidate, &door.viewer_code) {
        limiter.succeeded(address, now);
        return Ok(Role::Viewer);
    }
    limiter.failed(address, now);
    log::warn!("http: wrong credential from {address} for {}", head.target.split('?').next().unwrap_or_default());
    Ok(Role::Wrong)
}

/// The largest body the door reads for this request, or None when it should not read one at all
/// (the handlers will refuse the request for its credential, so the body is never needed).
fn body_allowance(head: &Head, role: Role) -> Option<u64> {
    if role != Role::Operator {
        return None;
    }
    Some(if is_upload(head) { MAX_UPLOAD } else { MAX_JSON })
}

/// An account list: its body goes to the handler through `Uploads`.
fn is_upload(head: &Head) -> bool {
    head.method == "POST" && head.target.split('?').next() == Some("/api/accounts")
}

/// The whole request as the handlers get it: only the headers they read, ours set by the door.
fn forwarded(door: &Door, head: &Head, role: Role, peer: IpAddr, body: &[u8], upload: Option<u64>) -> Vec<u8> {
    // The client's own version: tiny_http answers an HTTP/1.0 client without chunked encoding.
    let mut out = format!(
        "{} {} {}\r\nHost: postflytt\r\nConnection: close\r\nContent-Length: {}\r\n{DOOR_HEADER}: {}\r\n{ROLE_HEADER}: {}\r\n{PEER_HEADER}: {peer}\r\n",
        head.method,
        head.target,
        head.version,
        body.len(),
        door.door_secret,
        role.as_str(),
    );
    if let Some(kind) = head.header("content-type") {
        out.push_str(&format!("Content-Type: {kind}\r\n"));
    }
    if let Some(id) = upload {
        out.push_str(&format!("{UPLOAD_HEADER}: {id}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// An answer made by the door itself: the JSON error object every API error is.
pub fn refusal_response(refusal: &Refusal) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(&serde_json::json!({"error": {"status": refusal.status, "message": refusal.message}}))
        .unwrap_or_default();
    let reason = match refusal.status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        refusal.status,
        body.len()
    );
    if let Some(seconds) = refusal.retry_after {
        head.push_str(&format!("Retry-After: {seconds}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The state shared by the connections: all on the door's one thread.
struct Shared<'d> {
    door: &'d Door,
    limiter: RefCell<Limiter>,
    open: RefCell<Registry>,
    forward_slots: smol::lock::Semaphore,
    /// One account-list upload in memory at a time.
    uploading: Cell<bool>,
    max_connections: usize,
    reserve: Reserve,
}

/// Descriptors held open (on /dev/null) so that the handlers' side never runs out: two for each
/// request that may be handed over at once. Given back just before a hand-over, taken again after.
struct Reserve {
    files: RefCell<Vec<std::fs::File>>,
}

impl Reserve {
    fn new() -> Reserve {
        let reserve = Reserve { files: RefCell::new(Vec::new()) };
        reserve.refill();
        reserve
    }

    fn release(&self, count: usize) {
        let mut files = self.files.borrow_mut();
        let keep = files.len().saturating_sub(count);
        files.truncate(keep);
    }

    fn refill(&self) {
        let mut files = self.files.borrow_mut();
        while files.len() < 2 * MAX_FORWARDED {
            match std::fs::File::open("/dev/null") {
                Ok(file) => files.push(file),
                Err(_) => break,
            }
        }
    }
}

/// The connections open now, for the caps and for making room.
#[derive(Default)]
struct Registry {
    next_id: u64,
    slots: BTreeMap<u64, Slot>,
}

struct Slot {
    address: IpAddr,
    since: Instant,
    /// Still waiting for the client's request; may be closed to make room.
    waiting: Rc<Cell<bool>>,
    /// Dropping it ends the connection's task.
    _cancel: smol::channel::Sender<()>,
}

impl Registry {
    /// Closes the connection (from `address`, or any) that has waited longest for its request.
    fn close_longest_waiting(&mut self, address: Option<IpAddr>) -> bool {
        let victim = self
            .slots
            .iter()
            .filter(|(_, s)| s.waiting.get() && address.is_none_or(|a| s.address == a))
            .min_by_key(|(_, s)| s.since)
            .map(|(id, _)| *id);
        victim.is_some_and(|id| self.slots.remove(&id).is_some())
    }

    fn count_from(&self, address: IpAddr) -> usize {
        self.slots.values().filter(|s| s.address == address).count()
    }
}

/// Removes a connection from the registry however its task ends.
struct Registered<'a> {
    open: &'a RefCell<Registry>,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.open.borrow_mut().slots.remove(&self.id);
    }
}

/// Raises the soft limit of open files to the hard one (at most 65,536), and returns the limit now in
/// force. The unit sets `LimitNOFILE` itself (its system call filter refuses this call).
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let wanted = limit.maximum.unwrap_or(65_536).min(65_536);
    if limit.current.is_some_and(|current| current < wanted) {
        let old = limit.current;
        limit.current = Some(wanted);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = old;
        }
    }
    limit.current.unwrap_or(65_536)
}

fn connection_cap(open_files: u64) -> usize {
    usize::try_from(open_files / 4).unwrap_or(MAX_CONNECTIONS).clamp(4, MAX_CONNECTIONS)
}

/// Runs the door on the calling thread until the listener fails for good (it never does on its own:
/// running out of descriptors only slows accepting down).
pub fn run(listener: std::net::TcpListener, door: &Door) -> Result<()> {
    listener.set_nonblocking(true).context("the listening socket")?;
    let listener = smol::net::TcpListener::try_from(listener).context("the listening socket")?;
    let shared = Shared {
        door,
        limiter: RefCell::new(Limiter::new(Instant::now())),
        open: RefCell::new(Registry::default()),
        forward_slots: smol::lock::Semaphore::new(MAX_FORWARDED),
        uploading: Cell::new(false),
        max_connections: connection_cap(raise_open_files_limit()),
        reserve: Reserve::new(),
    };
    // Made after `shared`, so dropped before it: its tasks borrow it.
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(accept_loop(&executor, &listener, &shared)))
}

async fn accept_loop<'a>(executor: &LocalExecutor<'a>, listener: &smol::net::TcpListener, shared: &'a Shared<'a>) -> Result<()> {
    let mut last_warning: Option<Instant> = None;
    let mut accepted = 0u32;
    let refusing = Rc::new(Cell::new(0usize));
    loop {
        // A full backlog makes accept ready at once, every time: let the connections run too.
        accepted = accepted.wrapping_add(1);
        if accepted.is_multiple_of(16) {
            smol::future::yield_now().await;
        }
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (or memory): make room by closing the connection that has waited
                // longest, then try again shortly. Never give up: the page must come back.
                let made_room = shared.open.borrow_mut().close_longest_waiting(None);
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    log::warn!("http: cannot accept a connection ({e}); {} open", shared.open.borrow().slots.len());
                    last_warning = Some(Instant::now());
                }
                Timer::after(if made_room { Duration::from_millis(10) } else { Duration::from_millis(250) }).await;
                continue;
            }
        };
        let address = peer.ip();
        let admitted = {
            let mut open = shared.open.borrow_mut();
            let room_here = open.count_from(address) < MAX_PER_ADDRESS || open.close_longest_waiting(Some(address));
            room_here && (open.slots.len() < shared.max_connections || open.close_longest_waiting(None))
        };
        if !admitted {
            // A few are told why; past that a refused connection is simply closed.
            if refusing.get() < 64 {
                refusing.set(refusing.get() + 1);
                let refusing = Rc::clone(&refusing);
                let busy = Refusal::new(503, "the appliance is answering too many connections; try again in a moment");
                executor
                    .spawn(async move {
                        answer_and_close(stream, refusal_response(&busy)).await;
                        refusing.set(refusing.get() - 1);
                    })
                    .detach();
            }
            continue;
        }
        let (cancel, cancelled) = smol::channel::bounded::<()>(1);
        let waiting = Rc::new(Cell::new(true));
        let id = {
            let mut open = shared.open.borrow_mut();
            open.next_id += 1;
            let id = open.next_id;
            open.slots.insert(id, Slot { address, since: Instant::now(), waiting: Rc::clone(&waiting), _cancel: cancel });
            id
        };
        executor
            .spawn(async move {
                let _registered = Registered { open: &shared.open, id };
                let served = serve_connection(stream, peer, shared, &waiting);
                // The registry dropping the sender (to make room) ends the connection here.
                smol::future::or(served, async {
                    let _ = cancelled.recv().await;
                })
                .await;
            })
            .detach();
    }
}

async fn answer_and_close(mut stream: smol::net::TcpStream, response: Vec<u8>) {
    let _ = with_deadline(Instant::now() + TRANSFER_GRACE, stream.write_all(&response)).await;
    let _ = stream.close().await;
}

/// Runs `work` until `deadline`; None when the deadline came first.
async fn with_deadline<T>(deadline: Instant, work: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(work.await) }, async {
        Timer::at(deadline).await;
        None
    })
    .await
}

fn transfer_deadline(bytes: u64) -> Instant {
    Instant::now() + TRANSFER_GRACE + Duration::from_secs(bytes / SLOWEST_LINE)
}

/// One connection: its request read, decided, forwarded and answered; then closed.
async fn serve_connection(mut stream: smol::net::TcpStream, peer: SocketAddr, shared: &Shared<'_>, waiting: &Cell<bool>) {
    let response = match take_request(&mut stream, peer, shared, waiting).await {
        Ok(response) => closing(response),
        Err(Some(refusal)) => refusal_response(&refusal),
        Err(None) => return,
    };
    let _ = with_deadline(transfer_deadline(response.len() as u64), stream.write_all(&response)).await;
    // Answered: from here on the connection may make room for another.
    waiting.set(true);
    // Half-close, then read briefly what the client may still be sending (a body not read because its
    // request was refused), so the kernel does not reset the connection before the answer is read.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = with_deadline(Instant::now() + Duration::from_secs(2), async {
        let mut drained = 0usize;
        while drained < 256 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The handlers' answer with `Connection: close` (tiny_http leaves it out), so that a client does not
/// send a second request on a connection that serves one.
fn closing(mut answer: Vec<u8>) -> Vec<u8> {
    if let Some(line_end) = answer.windows(2).position(|w| w == b"\r\n") {
        let head_end = head_end(&answer).unwrap_or(answer.len());
        let says_close = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase().contains("\r\nconnection: close");
        if !says_close {
            answer.splice(line_end + 2..line_end + 2, b"Connection: close\r\n".iter().copied());
        }
    }
    answer
}

/// A buffer that may hold secrets (a request's head and body), wiped however the request ends.
struct Scrubbed(Vec<u8>);

impl Drop for Scrubbed {
    fn drop(&mut self) {
        crate::secret::wipe(std::mem::take(&mut self.0));
    }
}

/// Reads and decides one request and returns the answer to send. `Err(None)`: the client went away
/// or was too slow to be worth an answer.
async fn take_request(
    stream: &mut smol::net::TcpStream,
    peer: SocketAddr,
    shared: &Shared<'_>,
    waiting: &Cell<bool>,
) -> Result<Vec<u8>, Option<Refusal>> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut buffer = Scrubbed(Vec::with_capacity(MAX_HEAD + 2048));
    let buffer = &mut buffer.0;
    let mut piece = Scrubbed(vec![0u8; 2048]);
    let end = loop {
        if let Some(end) = head_end(buffer) {
            break end;
        }
        if buffer.len() > MAX_HEAD {
            return Err(Some(Refusal::new(431, format!("the request head is longer than {MAX_HEAD} bytes"))));
        }
        match with_deadline(deadline, stream.read(&mut piece.0)).await {
            Some(Ok(0)) | Some(Err(_)) => return Err(None),
            Some(Ok(n)) => buffer.extend_from_slice(&piece.0[..n]),
            None => return Err(Some(Refusal::new(408, "the request did not arrive in time"))),
        }
    };
    if end > MAX_HEAD {
        return Err(Some(Refusal::new(431, format!("the request head is longer than {MAX_HEAD} bytes"))));
    }
    let head = parse_head(&buffer[..end]).map_err(Some)?;
    if !shared.door.names.allows(head.header("host")) {
        return Err(Some(Refusal::new(
            421,
            format!(
                "this appliance does not answer to the name {:?}; open it by its address, or add the name with 'postflytt serve --public-name NAME' (names now: {})",
                head.header("host").unwrap_or_default(),
                shared.door.names.listed()
            ),
        )));
    }
    let length = head.content_length().map_err(Some)?;
    let role = decide_role(shared.door, &head, peer.ip(), &mut shared.limiter.borrow_mut(), Instant::now()).map_err(Some)?;
    if role == Role::Operator {
        // Staff sending a large upload over a slow line are not "waiting" to be closed for room.
        waiting.set(false);
    }
    let mut body = Scrubbed(Vec::new());
    let mut _upload = None;
    if let Some(allowance) = body_allowance(&head, role).filter(|_| length > 0) {
        if length > allowance {
            return Err(Some(Refusal::new(413, format!("the body is larger than {allowance} bytes"))));
        }
        if length > MAX_JSON {
            if shared.uploading.replace(true) {
                return Err(Some(Refusal::new(503, "another account list is being uploaded; try again when it is done")));
            }
            _upload = Some(UploadTurn(&shared.uploading));
        }
        if head.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
            let _ = with_deadline(Instant::now() + TRANSFER_GRACE, stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")).await;
        }
        // `length` is at most MAX_UPLOAD here, so it fits in memory and in usize.
        let wanted = usize::try_from(length).unwrap_or(usize::MAX);
        body.0 = Vec::with_capacity(wanted);
        body.0.extend_from_slice(&buffer[end..buffer.len().min(end + wanted)]);
        let deadline = transfer_deadline(length);
        let mut piece = Scrubbed(vec![0u8; 16 * 1024]);
        while body.0.len() < wanted {
            let room = (wanted - body.0.len()).min(piece.0.len());
            match with_deadline(deadline, stream.read(&mut piece.0[..room])).await {
                Some(Ok(0)) | Some(Err(_)) => return Err(None),
                Some(Ok(n)) => body.0.extend_from_slice(&piece.0[..n]),
                None => return Err(Some(Refusal::new(408, "the request body did not arrive in time"))),
            }
        }
    }
    waiting.set(false);
    let upload = (role == Role::Operator && is_upload(&head))
        .then(|| HandedOver { uploads: &shared.door.uploads, id: shared.door.uploads.put(std::mem::take(&mut body.0)) });
    let request = Scrubbed(forwarded(shared.door, &head, role, peer.ip(), &body.0, upload.as_ref().map(|u| u.id)));
    forward(shared, &request.0).await.map_err(Some)
}

/// An upload handed to the handlers in memory; what they did not take is wiped however the request ends.
struct HandedOver<'a> {
    uploads: &'a Uploads,
    id: u64,
}

impl Drop for HandedOver<'_> {
    fn drop(&mut self) {
        self.uploads.discard(self.id);
    }
}

/// Gives the upload turn back however the request ends.
struct UploadTurn<'a>(&'a Cell<bool>);

impl Drop for UploadTurn<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Hands a request to the handlers and takes their whole answer.
async fn forward(shared: &Shared<'_>, request: &[u8]) -> Result<Vec<u8>, Refusal> {
    let timed_out = || Refusal::new(504, "the appliance took too long to answer; try again");
    let _slot = with_deadline(Instant::now() + QUEUE_DEADLINE, shared.forward_slots.acquire()).await.ok_or_else(timed_out)?;
    let deadline = Instant::now() + HANDLER_DEADLINE;
    let unreachable = |e: std::io::Error| {
        log::error!("http: the handlers cannot be reached: {e}");
        Refusal::new(502, "the appliance could not answer this request; try again")
    };
    // Out of descriptors, the connections still waiting for their request make room (the handlers'
    // side needs one for each end of the connection).
    let mut tries = 0;
    // Two descriptors set aside for this exchange are given back first: one for our end, one for
    // tiny_http's accept, which would end its accept loop (and so the web side) if it found none.
    shared.reserve.release(2);
    let answer = loop {
        let connected = match &shared.door.backend {
            Backend::Unix(path) => match smol::net::unix::UnixStream::connect(path).await {
                Ok(stream) => Ok(with_deadline(deadline, exchange(stream, request)).await),
                Err(e) => Err(e),
            },
            Backend::Tcp(address) => match smol::net::TcpStream::connect(*address).await {
                Ok(stream) => Ok(with_deadline(deadline, exchange(stream, request)).await),
                Err(e) => Err(e),
            },
        };
        match connected {
            Ok(answer) => break answer,
            Err(e) if tries < 20 && out_of_descriptors(&e) => {
                tries += 1;
                {
                    let mut open = shared.open.borrow_mut();
                    open.close_longest_waiting(None);
                    open.close_longest_waiting(None);
                }
                Timer::after(Duration::from_millis(10)).await;
            }
            Err(e) => {
                shared.reserve.refill();
                return Err(unreachable(e));
            }
        }
    };
    shared.reserve.refill();
    answer.ok_or_else(timed_out)?.map_err(unreachable)
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::EMFILE || code == libc::ENFILE)
}

/// Writes the request while reading the answer to its end (the answer may start before a large
/// request is all written; neither side then waits on the other).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Clone>(stream: S, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut writer = stream.clone();
    let mut reader = stream;
    let write = async {
        writer.write_all(request).await?;
        writer.flush().await
    };
    let read = async {
        let mut answer = Vec::new();
        let mut piece = vec![0u8; 16 * 1024];
        loop {
            let n = reader.read(&mut piece).await?;
            if n == 0 {
                return Ok(answer);
            }
            if answer.len() + n > MAX_RESPONSE {
                return Err(std::io::Error::other("the handlers' answer is too large"));
            }
            answer.extend_from_slice(&piece[..n]);
        }
    };
    let (written, answer) = smol::future::zip(write, read).await;
    // A handler may answer (and close) before reading a whole body it refuses; the answer counts.
    match (written, answer) {
        (_, Ok(answer)) if !answer.is_empty() => Ok(answer),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(()), Ok(_)) => Err(std::io::Error::other("the handlers closed without an answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, Refusal> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads() {
        let h = head("POST /api/accounts?name=a.xlsx HTTP/1.1\r\nHost: 127.0.0.1:8025\r\nContent-Length: 12\r\nX-Viewer-Code:  abc \r\n")
            .unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/api/accounts?name=a.xlsx");
        assert_eq!(h.header("host"), Some("127.0.0.1:8025"));
        assert_eq!(h.header("x-viewer-code"), Some("abc"));
        assert_eq!(h.content_length(), Ok(12));
        for (text, status) in [
            ("GET / HTTP/1.1\r\nContent-Length: 100000000000\r\n", None),
            ("GET / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n", None),
            ("GET / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nContent-Length: -1\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", Some(411)),
        ] {
            assert_eq!(head(text).unwrap().content_length().err().map(|r| r.status), status, "{text}");
        }
        for (text, status) in [
            ("GET /\r\n", 400),
            ("get / HTTP/1.1\r\n", 400),
            ("GET http://x/ HTTP/1.1\r\n", 400),
            ("GET / HTTP/2.0\r\n", 505),
            ("GET / HTTP/1.1\r\nNo colon\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n", 400),
            ("GET / HTTP/1.1\r\nX: a\u{1}b\r\n", 400),
            ("GET /a b HTTP/1.1\r\n", 400),
        ] {
            assert_eq!(head(text).err().map(|r| r.status), Some(status), "{text:?}");
        }
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn host_names() {
        let on_all = Names::new(&"0.0.0.0:8025".parse().unwrap(), &["Box.Kund.se.".to_string()]);
        let on_one = Names::new(&"192.168.1.10:8025".parse().unwrap(), &[]);
        for (names, host, allowed) in [
            (&on_all, None, true),
            (&on_all, Some("box.kund.se"), true),
            (&on_all, Some("BOX.KUND.SE:8025"), true),
            (&on_all, Some("box.kund.se.:8025"), true),
            (&on_all, Some("localhost:8025"), true),
            (&on_all, Some("192.168.7.3:8025"), true),
            (&on_all, Some("[fe80::1]:8025"), true),
            (&on_all, Some("evil.example:8025"), false),
            (&on_all, Some("box.kund.se.evil.example"), false),
            (&on_all, Some("[fe80::1"), false),
            (&on_one, Some("192.168.1.10:8025"), true),
            (&on_one, Some("127.0.0.1:8025"), true),
            (&on_one, Some("192.168.1.11:8025"), false),
            (&on_one, Some("box.kund.se"), false),
            (&on_one, Some(""), false),
        ] {
            assert_eq!(names.allows(host), allowed, "{host:?}");
        }
    }

    #[test]
    fn viewer_codes() {
        let code = new_viewer_code(&[7u8; 20]);
        assert_eq!(code.len(), CODE_LENGTH + 1);
        assert_eq!(&code[5..6], "-");
        assert!(is_current_viewer_code(&code));
        assert_eq!(normalize_viewer_code(" abcde 23456\n"), "ABCDE23456");
        assert_eq!(normalize_viewer_code("ABCDE-23456"), "ABCDE23456");
        assert!(!is_current_viewer_code("123456"));
        assert!(!is_current_viewer_code("ABCDE-2345O"), "O is not in the alphabet");
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..=255u8 {
            let mut random = [0u8; 20];
            random.iter_mut().enumerate().for_each(|(j, b)| *b = i.wrapping_mul(31).wrapping_add((j as u8).wrapping_mul(17)));
            seen.insert(new_viewer_code(&random));
        }
        assert!(seen.len() > 250);
    }

    fn door() -> Door {
        Door {
            operator_token: "t".repeat(48),
            viewer_code: "ABCDE23456".into(),
            names: Names::new(&"127.0.0.1:8025".parse().unwrap(), &[]),
            backend: Backend::Tcp("127.0.0.1:1".parse().unwrap()),
            door_secret: "s".into(),
            uploads: Default::default(),
        }
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Head {
        Head {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn roles() {
        let door = door();
        let now = Instant::now();
        let mut limiter = Limiter::new(now);
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let token = format!("Bearer {}", "t".repeat(48));
        for (head, role) in [
            (request("GET", "/api/status", &[]), Role::Nobody),
            (request("GET", "/api/status", &[("authorization", &token)]), Role::Operator),
            (request("GET", "/api/status", &[("x-viewer-code", "abcde-23456")]), Role::Viewer),
            (request("GET", "/api/status", &[("authorization", "Bearer ABCDE23456")]), Role::Viewer),
            (request("GET", "/report?code=ABCDE-23456", &[]), Role::Viewer),
            // The operator token only in the header; a viewer code in the query only for reading.
            (request("GET", &format!("/api/status?code={}", "t".repeat(48)), &[]), Role::Wrong),
            (request("POST", "/api/check?code=ABCDE23456", &[]), Role::Nobody),
            (request("GET", "/api/status", &[("x-viewer-code", "ABCDE23457")]), Role::Wrong),
        ] {
            assert_eq!(decide_role(&door, &head, ip, &mut limiter, now), Ok(role), "{head:?}");
        }
    }

    #[test]
    fn guessing_is_limited_for_everyone_and_nothing_is_compared_meanwhile() {
        let door = door();
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        let guess = request("GET", "/api/status", &[("x-viewer-code", "ZZZZZ22222")]);
        let right = request("GET", "/api/status", &[("x-viewer-code", "ABCDE23456")]);
        let operator = request("GET", "/api/status", &[("authorization", &format!("Bearer {}", "t".repeat(48)))]);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..ADDRESS_BURST as usize {
            assert_eq!(decide_role(&door, &guess, one, &mut limiter, start), Ok(Role::Wrong));
        }
        // The address is limited: even the right code is not compared, and no right guess clears it.
        let refused = decide_role(&door, &right, one, &mut limiter, start).unwrap_err();
        assert_eq!(refused.status, 429);
        assert!(refused.retry_after.unwrap() >= 1);
        assert_eq!(decide_role(&door, &operator, one, &mut limiter, start), Ok(Role::Operator));
        // Many addresses together (an office behind one NAT, or a guesser with many) share one limit.
        let mut wrong = ADDRESS_BURST as usize;
        for i in 0..100u32 {
            let address = IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
            if decide_role(&door, &guess, address, &mut limiter, start).is_ok() {
                wrong += 1;
            }
        }
        assert_eq!(wrong, 60, "the global burst");
        let other: IpAddr = "10.9.9.9".parse().unwrap();
        assert_eq!(decide_role(&door, &right, other, &mut limiter, start).unwrap_err().status, 429);
        // A second later one more guess is allowed in all.
        let later = start + Duration::from_secs(1);
        let third: IpAddr = "10.9.9.10".parse().unwrap();
        assert_eq!(decide_role(&door, &guess, third, &mut limiter, later), Ok(Role::Wrong));
        assert_eq!(decide_role(&door, &right, third, &mut limiter, later).unwrap_err().status, 429);
        // Over a day, at most about one wrong guess a second gets compared.
        let mut compared = 0u64;
        let mut at = later;
        for _ in 0..86_400 * 4 {
            at += Duration::from_millis(250);
            if decide_role(&door, &guess, IpAddr::from([10, 2, 0, (compared % 200) as u8]), &mut limiter, at).is_ok() {
                compared += 1;
            }
        }
        assert!(compared <= 86_400 + 60, "{compared}");
    }

    #[test]
    fn customers_who_showed_the_code_are_not_locked_out_by_guessers_elsewhere() {
        let door = door();
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        let customer: IpAddr = "192.168.1.20".parse().unwrap();
        let right = request("GET", "/api/status", &[("x-viewer-code", "ABCDE23456")]);
        let guess = request("GET", "/api/status", &[("x-viewer-code", "ZZZZZ22222")]);
        assert_eq!(decide_role(&door, &right, customer, &mut limiter, start), Ok(Role::Viewer));
        for i in 0..200u32 {
            let _ = decide_role(&door, &guess, IpAddr::from([10, 3, (i >> 8) as u8, i as u8]), &mut limiter, start);
        }
        let stranger: IpAddr = "192.168.1.21".parse().unwrap();
        assert_eq!(decide_role(&door, &right, stranger, &mut limiter, start).unwrap_err().status, 429);
        assert_eq!(decide_role(&door, &right, customer, &mut limiter, start), Ok(Role::Viewer));
        // Two candidates in one request are one comparison: the code's own header wins.
        let both = request("GET", "/api/status", &[("x-viewer-code", "ZZZZZ22222"), ("authorization", "Bearer ABCDE23456")]);
        assert_eq!(decide_role(&door, &both, customer, &mut limiter, start), Ok(Role::Wrong));
        // The scheme is case-insensitive.
        let lower = request("GET", "/api/status", &[("authorization", &format!("bearer {}", "t".repeat(48)))]);
        assert_eq!(decide_role(&door, &lower, stranger, &mut limiter, start), Ok(Role::Operator));
    }

    #[test]
    fn ipv6_hosts_count_by_their_64() {
        assert_eq!(counted_as("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(counted_as("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(counted_as("10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn answers_say_the_connection_closes() {
        let answer = closing(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec());
        assert_eq!(answer, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        let already = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        assert_eq!(closing(already.clone()), already);
    }

    #[test]
    fn the_address_table_stays_bounded() {
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        for i in 0..(MAX_ADDRESSES as u32 * 3) {
            limiter.failed(IpAddr::from(i.to_be_bytes()), start + Duration::from_millis(u64::from(i)));
        }
        assert!(limiter.addresses() <= MAX_ADDRESSES);
    }

    #[test]
    fn connections_leave_room_for_the_rest() {
        assert_eq!(connection_cap(1024), 256);
        assert_eq!(connection_cap(65_536), MAX_CONNECTIONS);
        assert_eq!(connection_cap(64), 16);
        assert_eq!(connection_cap(3), 4);
    }

    #[test]
    fn refusals_are_json() {
        let text = String::from_utf8(refusal_response(&Refusal { status: 429, message: "wait".into(), retry_after: Some(7) })).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{text}");
        assert!(text.contains("Retry-After: 7\r\n"));
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["error"]["status"], 429);
    }
}
