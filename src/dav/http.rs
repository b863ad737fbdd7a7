//! The HTTP/1.1 client CalDAV and CardDAV travel over (design `docs/dav.md` §5): one keep-alive
//! connection per server and account, on the IMAP side's transport (`imap::raw_connect`, so TLS, pins
//! and the loopback rule are one code path), Basic authentication on every request, and every part of
//! an answer bounded: the head by `HEAD_MAX`, the body by the request's own cap, each read and write by
//! the per-read timeout and the whole request by `REQUEST_DEADLINE`. Heads are parsed by `httparse`;
//! bodies are framed by Content-Length, chunked, or the end of the connection. No redirects (discovery
//! follows them itself), no cookies, no compression. A kept connection the server closed while idle is
//! reconnected and the request sent once more, which the DAV journal makes safe.

use std::time::Duration;

use anyhow::Result;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::dav::url::DavUrl;
use crate::imap::Conn;
use crate::secret::Secret;

/// The most a response head (status line and headers) may take: real DAV servers send well under
/// 4 KiB, and a head that never ends must not grow without bound.
pub const HEAD_MAX: usize = 64 * 1024;
/// One calendar item or vCard held whole (design §2).
pub const DAV_ITEM_MAX: usize = 16 << 20;
/// One PROPFIND or REPORT answer held in memory.
pub const MULTISTATUS_MAX: usize = 32 << 20;
/// The most one request may take in all, however steadily the server trickles its answer.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(600);
/// The most headers a head may carry (httparse parses into a fixed array).
const HEADERS_MAX: usize = 256;
/// The longest chunk-size line: a size in hex and extensions we ignore.
const CHUNK_LINE_MAX: usize = 4096;
/// How much one read asks the socket for.
const READ_SIZE: usize = 64 * 1024;

/// One request: what `HttpClient::send` puts on the wire besides the headers it always adds (`Host`,
/// `Authorization`, `User-Agent`, `Content-Length`).
pub struct Request<'a> {
    pub method: &'a str,
    /// As sent on the request line, already percent-encoded.
    pub path: &'a str,
    /// E.g. ("Depth", "1"), ("If-None-Match", "*"), ("Content-Type", ...).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// The answer's body cap: more is `HttpError::TooLarge`.
    pub max_body: usize,
    /// If set, the journal point (`crate::fault::point`) reached after the last byte is flushed and
    /// before the answer is read: the crash tests' "sent, answer not read".
    pub point_after_send: Option<&'static str>,
}

/// A final (non-1xx) answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The ETag as given: quotes kept, a weak `W/` kept (compared as opaque strings).
    pub fn etag(&self) -> Option<String> {
        self.header("ETag").map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("Location").map(str::trim)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The compliance classes of every `DAV:` header, split on commas and trimmed ("1", "calendar-access").
    #[cfg(test)]
    pub fn dav_classes(&self) -> Vec<String> {
        self.all("DAV").flat_map(|v| v.split(',')).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
    }

    /// Whether a `WWW-Authenticate` challenge names Basic (the only scheme we log in with).
    pub fn offers_basic(&self) -> bool {
        self.all("WWW-Authenticate").flat_map(|v| v.split(',')).any(|challenge| {
            let scheme = challenge.trim_start().split([' ', '\t']).next().unwrap_or("");
            scheme.eq_ignore_ascii_case("basic")
        })
    }

    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        values(&self.headers, name)
    }
}

/// The values of every header named `name` (case-insensitive), in order.
fn values<'h>(headers: &'h [(String, String)], name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// What went wrong talking to a DAV server, typed where it arises; callers ask `kind_of`, never the text.
#[derive(Debug)]
pub enum HttpError {
    /// The server could not be reached (name, refused, no route, connect timed out).
    Unreachable(String),
    /// The TLS handshake failed or the pinned certificate did not match.
    Tls(String),
    /// The connection broke before the whole answer came.
    ConnectionLost(String),
    /// A read or write stalled past the per-read timeout, or the request past `REQUEST_DEADLINE`.
    TimedOut(String),
    /// The answer (head or body) is larger than `limit` bytes; the connection was dropped unread.
    TooLarge { limit: usize },
    /// The answer is not HTTP/1.x as it should be (or the request could not be written as HTTP).
    Malformed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Unreachable(what)
            | HttpError::Tls(what)
            | HttpError::ConnectionLost(what)
            | HttpError::TimedOut(what)
            | HttpError::Malformed(what) => f.write_str(what),
            HttpError::TooLarge { limit } => write!(f, "the DAV server's answer is larger than {limit} bytes; stopped reading it"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The HTTP failure in this error's chain (as a context or the root), if there is one.
pub fn kind_of(error: &anyhow::Error) -> Option<&HttpError> {
    error.downcast_ref::<HttpError>().or_else(|| error.chain().find_map(|cause| cause.downcast_ref::<HttpError>()))
}

/// An open connection and what was read from it past the last answer.
struct Connection {
    socket: Conn,
    buf: Vec<u8>,
    /// Bytes received for the request under way: none means a kept connection may have been closed
    /// while idle, so the request can be sent again on a new one.
    received: usize,
}

/// A client for one server and one login. Connects on the first `send`; keeps the connection while the
/// server does.
pub struct HttpClient {
    server: DavUrl,
    login: String,
    password: Secret,
    per_read: Option<Duration>,
    connection: Option<Connection>,
    sent: u64,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("server", &self.server.to_string())
            .field("login", &self.login)
            .field("password", &self.password)
            .field("connected", &self.connection.is_some())
            .field("sent", &self.sent)
            .finish()
    }
}

/// A buffer that held credentials, wiped however the request ends (also when its future is dropped).
struct Wiped(Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        crate::secret::wipe(std::mem::take(&mut self.0));
    }
}

/// How a request attempt ended without an answer.
struct Failed {
    error: HttpError,
    /// Whether sending it again on a new connection is right (a kept connection closed while idle).
    resend: bool,
}

impl HttpClient {
    pub fn new(server: &DavUrl, login: &str, password: &Secret) -> HttpClient {
        HttpClient {
            server: server.clone(),
            login: login.to_string(),
            password: password.clone(),
            per_read: None,
            connection: None,
            sent: 0,
        }
    }

    /// Another per-read timeout than `io_timeout()` (tests of stalling servers).
    pub fn with_timeout(mut self, per_read: Duration) -> HttpClient {
        self.per_read = Some(per_read);
        self
    }

    /// Requests sent (each `send` once, however many times it went on the wire).
    #[cfg(test)]
    pub fn requests_sent(&self) -> u64 {
        self.sent
    }

    /// Sends `request` and reads its final answer, whatever its status. Every failure drops the
    /// connection; a kept connection found closed before any answer is reconnected and the request
    /// sent once more, a new connection's failure never is.
    pub async fn send(&mut self, request: &Request<'_>) -> Result<Response> {
        self.sent += 1;
        let head = Wiped(self.head(request)?);
        let outcome = {
            let late = format!(
                "{} {} on {} took more than {} s in all; gave up",
                request.method,
                request.path,
                self.server.origin(),
                REQUEST_DEADLINE.as_secs()
            );
            let deadline = async {
                smol::Timer::after(REQUEST_DEADLINE).await;
                Err(anyhow::Error::new(HttpError::TimedOut(late)))
            };
            smol::future::or(self.exchange(&head.0, request), deadline).await
        };
        drop(head);
        if outcome.is_err() {
            self.connection = None;
        }
        outcome
    }

    async fn exchange(&mut self, head: &[u8], request: &Request<'_>) -> Result<Response> {
        loop {
            let reused = self.connection.is_some();
            if !reused {
                self.connect().await?;
            }
            match self.attempt(head, request).await {
                Ok(response) => return Ok(response),
                Err(failed) => {
                    self.connection = None;
                    if !(reused && failed.resend) {
                        return Err(anyhow::Error::new(failed.error));
                    }
                    log::debug!("{}: a kept connection was closed ({}); sending again on a new one", self.server.origin(), failed.error);
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<()> {
        let conn = crate::imap::raw_connect(&self.server.endpoint).await.map_err(|e| {
            let tls = e.downcast_ref::<crate::imap::TlsFailed>().is_some() || e.downcast_ref::<crate::imap::PinMismatch>().is_some();
            let what = format!("{e:#}");
            e.context(if tls { HttpError::Tls(what) } else { HttpError::Unreachable(what) })
        })?;
        self.connection = Some(Connection { socket: conn, buf: Vec::new(), received: 0 });
        Ok(())
    }

    /// The request line and headers, Basic credentials included: the caller wipes it (`Wiped`) after sending.
    fn head(&self, request: &Request<'_>) -> Result<Vec<u8>> {
        let clean = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
        if !clean(request.method) || !clean(request.path) {
            return Err(anyhow::Error::new(HttpError::Malformed(format!(
                "cannot send {:?} {:?}: a method or path with a space or control character",
                request.method, request.path
            ))));
        }
        for (name, value) in request.headers {
            if !clean(name) || name.contains(':') || value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(anyhow::Error::new(HttpError::Malformed(format!("cannot send the header {name:?}: not a header"))));
            }
        }
        let mut head = Vec::with_capacity(512 + request.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
        head.extend_from_slice(format!("{} {} HTTP/1.1\r\nHost: {}\r\n", request.method, request.path, self.server.authority()).as_bytes());
        head.extend_from_slice(format!("User-Agent: postflytt/{}\r\n", env!("CARGO_PKG_VERSION")).as_bytes());
        head.extend_from_slice(b"Authorization: Basic ");
        let mut credentials = Vec::with_capacity(self.login.len() + 1 + self.password.expose().len());
        credentials.extend_from_slice(self.login.as_bytes());
        credentials.push(b':');
        credentials.extend_from_slice(self.password.expose().as_bytes());
        // Reserved up front so the buffer never reallocates and leaves a copy of the credentials behind.
        head.reserve(credentials.len().div_ceil(3) * 4 + 2);
        base64_into(&credentials, &mut head);
        crate::secret::wipe(credentials);
        head.extend_from_slice(b"\r\n");
        for (name, value) in request.headers {
            head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", request.body.len()).as_bytes());
        Ok(head)
    }

    /// One round on the current connection: send, then read until a final answer.
    async fn attempt(&mut self, head: &[u8], request: &Request<'_>) -> std::result::Result<Response, Failed> {
        let per_read = self.per_read.unwrap_or_else(crate::imap::io_timeout);
        let origin = self.server.origin();
        let Some(connection) = self.connection.as_mut() else {
            return Err(Failed { error: HttpError::ConnectionLost(format!("{origin}: not connected")), resend: false });
        };
        connection.received = 0;
        let write = async {
            connection.socket.write_all(head).await?;
            if !request.body.is_empty() {
                connection.socket.write_all(request.body).await?;
            }
            connection.socket.flush().await
        };
        // A write into a connection the server closed while idle fails; the request never arrived.
        if let Err(error) = timed(per_read, write).await {
            let resend = !is_timeout(&error);
            return Err(Failed { error: io_failure(&origin, "sending the request", &error), resend });
        }
        if let Some(point) = request.point_after_send {
            crate::fault::point(point);
        }
        let answer = read_answer(connection, request.method, request.max_body, per_read, &origin).await;
        match answer {
            Ok((response, keep)) => {
                if !keep {
                    self.connection = None;
                }
                Ok(response)
            }
            Err(error) => {
                // Closed or reset before a single byte of an answer: the server had closed the kept
                // connection (idle) before our request reached it.
                let resend = connection.received == 0 && matches!(error, HttpError::ConnectionLost(_));
                Err(Failed { error, resend })
            }
        }
    }
}

/// Reads one final answer (skipping 1xx); returns it and whether the connection may carry another.
async fn read_answer(
    c: &mut Connection,
    method: &str,
    max_body: usize,
    per_read: Duration,
    origin: &str,
) -> std::result::Result<(Response, bool), HttpError> {
    loop {
        let (version, status, headers) = read_head(c, per_read, origin).await?;
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(HttpError::Malformed(format!("{origin} switched protocols (101) unasked")));
            }
            // 100 Continue (sent by some servers even unasked), 102 Processing, 103 Early Hints.
            continue;
        }
        let connection_says =
            |token: &str| values(&headers, "Connection").flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token));
        let mut keep = if version == 1 { !connection_says("close") } else { connection_says("keep-alive") };
        let chunked = match values(&headers, "Transfer-Encoding").flat_map(|v| v.split(',')).map(str::trim).last() {
            Some(coding) => coding.eq_ignore_ascii_case("chunked"),
            None => false,
        };
        let has_transfer_encoding = values(&headers, "Transfer-Encoding").next().is_some();
        let body = if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            read_chunked(c, max_body, per_read, origin).await?
        } else if has_transfer_encoding {
            // A coding other than chunked last: the body runs to the end of the connection (RFC 9112 §6.3).
            keep = false;
            read_to_close(c, max_body, per_read, origin).await?
        } else if let Some(length) = content_length(&headers, origin)? {
            if length > max_body {
                return Err(HttpError::TooLarge { limit: max_body });
            }
            // Room for the whole body at once: no doubling past the cap, and the buffer itself is the body.
            c.buf.reserve(length.saturating_sub(c.buf.len()) + READ_SIZE);
            need(c, length, per_read, origin, "the body").await?;
            let rest = c.buf.split_off(length);
            std::mem::replace(&mut c.buf, rest)
        } else {
            keep = false;
            read_to_close(c, max_body, per_read, origin).await?
        };
        return Ok((Response { status, headers, body }, keep));
    }
}

type Head = (u8, u16, Vec<(String, String)>);

/// Reads and parses one response head from the connection's buffer, filling it as needed.
async fn read_head(c: &mut Connection, per_read: Duration, origin: &str) -> std::result::Result<Head, HttpError> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut parsed = httparse::Response::new(&mut slots);
        match parsed.parse(&c.buf) {
            Ok(httparse::Status::Complete(length)) => {
                let version = parsed.version.unwrap_or(1);
                let status = parsed.code.unwrap_or(0);
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).trim().to_string()))
                    .collect::<Vec<_>>();
                c.buf.drain(..length);
                return Ok((version, status, headers));
            }
            Ok(httparse::Status::Partial) if c.buf.len() >= HEAD_MAX => return Err(HttpError::TooLarge { limit: HEAD_MAX }),
            Ok(httparse::Status::Partial) => {
                if fill(c, per_read, origin).await? == 0 {
                    return Err(HttpError::ConnectionLost(format!("{origin} closed the connection before the whole answer's head came")));
                }
            }
            Err(error) => return Err(HttpError::Malformed(format!("{origin} sent an answer that is not HTTP/1.x: {error}"))),
        }
    }
}

fn content_length(headers: &[(String, String)], origin: &str) -> std::result::Result<Option<usize>, HttpError> {
    let mut found: Option<usize> = None;
    for value in values(headers, "Content-Length") {
        for text in value.split(',').map(str::trim) {
            let length = text
                .parse::<usize>()
                .map_err(|_| HttpError::Malformed(format!("{origin} sent a Content-Length that is not a number: {text:?}")))?;
            if found.is_some_and(|f| f != length) {
                return Err(HttpError::Malformed(format!("{origin} sent two different Content-Lengths")));
            }
            found = Some(length);
        }
    }
    Ok(found)
}

/// A chunked body (RFC 9112 §7.1): extensions ignored, trailers read (bounded) and dropped.
async fn read_chunked(c: &mut Connection, max_body: usize, per_read: Duration, origin: &str) -> std::result::Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(c, CHUNK_LINE_MAX, per_read, origin).await?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Malformed(format!("{origin} sent a chunk size that is not hex: {size_text:?}")))?;
        if size == 0 {
            break;
        }
        if body.len().saturating_add(size) > max_body {
            return Err(HttpError::TooLarge { limit: max_body });
        }
        need(c, size + 2, per_read, origin, "a chunk").await?;
        body.extend_from_slice(&c.buf[..size]);
        if &c.buf[size..size + 2] != b"\r\n" {
            return Err(HttpError::Malformed(format!("{origin} sent a chunk longer than its size")));
        }
        c.buf.drain(..size + 2);
    }
    // Trailers: header lines up to an empty one, bounded like a head.
    let mut trailers = 0;
    loop {
        let line = read_line(c, HEAD_MAX, per_read, origin).await?;
        if line.is_empty() {
            return Ok(body);
        }
        trailers += line.len() + 2;
        if trailers > HEAD_MAX {
            return Err(HttpError::TooLarge { limit: HEAD_MAX });
        }
    }
}

/// One CRLF-ended line (without the CRLF), at most `max` bytes.
async fn read_line(c: &mut Connection, max: usize, per_read: Duration, origin: &str) -> std::result::Result<String, HttpError> {
    let mut searched: usize = 0;
    loop {
        if let Some(at) = c.buf[searched.saturating_sub(1)..].windows(2).position(|w| w == b"\r\n") {
            let end = searched.saturating_sub(1) + at;
            let line = String::from_utf8_lossy(&c.buf[..end]).into_owned();
            c.buf.drain(..end + 2);
            return Ok(line);
        }
        if c.buf.len() > max {
            return Err(HttpError::Malformed(format!("{origin} sent a chunked-body line longer than {max} bytes")));
        }
        searched = c.buf.len();
        if fill(c, per_read, origin).await? == 0 {
            return Err(HttpError::ConnectionLost(format!("{origin} closed the connection in the middle of a chunked body")));
        }
    }
}

/// Fills the buffer until it holds `length` bytes.
async fn need(c: &mut Connection, length: usize, per_read: Duration, origin: &str, what: &str) -> std::result::Result<(), HttpError> {
    while c.buf.len() < length {
        if fill(c, per_read, origin).await? == 0 {
            return Err(HttpError::ConnectionLost(format!(
                "{origin} closed the connection in the middle of {what} ({} of {length} bytes came)",
                c.buf.len()
            )));
        }
    }
    Ok(())
}

/// A body without a length: everything until the server closes.
async fn read_to_close(c: &mut Connection, max_body: usize, per_read: Duration, origin: &str) -> std::result::Result<Vec<u8>, HttpError> {
    loop {
        if c.buf.len() > max_body {
            return Err(HttpError::TooLarge { limit: max_body });
        }
        if fill(c, per_read, origin).await? == 0 {
            return Ok(std::mem::take(&mut c.buf));
        }
    }
}

/// One read into the buffer under the per-read timeout; 0 at the end of the stream.
async fn fill(c: &mut Connection, per_read: Duration, origin: &str) -> std::result::Result<usize, HttpError> {
    let start = c.buf.len();
    c.buf.resize(start + READ_SIZE, 0);
    let read = timed(per_read, c.socket.read(&mut c.buf[start..])).await;
    let n = *read.as_ref().unwrap_or(&0);
    c.buf.truncate(start + n);
    c.received += n;
    read.map_err(|error| io_failure(origin, "reading the answer", &error))
}

async fn timed<T>(per_read: Duration, fut: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    let timer = async {
        smol::Timer::after(per_read).await;
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("nothing moved within {} s", per_read.as_secs_f64())))
    };
    smol::future::or(fut, timer).await
}

fn is_timeout(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::TimedOut
}

fn io_failure(origin: &str, doing: &str, error: &std::io::Error) -> HttpError {
    if is_timeout(error) {
        HttpError::TimedOut(format!("{origin}: {doing}: {error}"))
    } else {
        HttpError::ConnectionLost(format!("{origin}: the connection broke {doing}: {error}"))
    }
}

/// Standard base64 with padding (RFC 4648 §4), appended to `out`: all Basic authentication needs.
fn base64_into(data: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for group in data.chunks(3) {
        let b = [group[0], group.get(1).copied().unwrap_or(0), group.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The server here is scripted, not a real DAV server: the point of each test is an exact HTTP
    //! framing (chunks with trailers, a cut mid-body, an idle close, an unasked 100 Continue) that
    //! Radicale or xandikos do not choose on demand.

    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// What the scripted server does after reading one request.
    enum Then {
        /// Writes these bytes (and keeps the connection for the next step).
        Answer(&'static [u8]),
        /// Closes the connection without a word.
        Close,
        /// Says nothing for two seconds, then closes.
        Stall,
    }

    /// Serves `script[i]` on the i-th connection, one step per request, closing it after the last step.
    /// Returns the port and the request heads each connection received.
    fn scripted(script: Vec<Vec<Then>>) -> (u16, std::thread::JoinHandle<Vec<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for steps in script {
                let (mut stream, _) = listener.accept().expect("accept");
                stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
                let mut heads = Vec::new();
                for step in steps {
                    let Some(head) = read_request(&mut stream) else { break };
                    heads.push(head);
                    match step {
                        Then::Answer(bytes) => stream.write_all(bytes).expect("write"),
                        Then::Close => break,
                        Then::Stall => {
                            std::thread::sleep(Duration::from_secs(2));
                            break;
                        }
                    }
                }
                seen.push(heads);
            }
            seen
        });
        (port, server)
    }

    /// One request's head as text (its body read and dropped), or None at the end of the stream.
    fn read_request(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).expect("utf-8 head");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.trim().parse().expect("length"))
            .expect("a Content-Length on every request");
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).ok()?;
        Some(head)
    }

    fn client(port: u16) -> HttpClient {
        let url = DavUrl::parse(&format!("http://127.0.0.1:{port}/"), None).expect("url");
        HttpClient::new(&url, "kalle", &Secret::new("hemligt åäö"))
    }

    fn get(path: &str) -> Request<'_> {
        Request { method: "GET", path, headers: &[], body: b"", max_body: 1 << 20, point_after_send: None }
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn requests_share_one_connection_whatever_the_framing() {
        let chunked: &[u8] = b"HTTP/1.1 207 Multi-Status\r\nTransfer-Encoding: chunked\r\n\r\n5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n";
        let (port, server) =
            scripted(vec![vec![Then::Answer(OK), Then::Answer(chunked), Then::Answer(b"HTTP/1.1 204 No Content\r\n\r\n")]]);
        let mut client = client(port);
        smol::block_on(async {
            let first = client.send(&get("/a")).await.expect("first");
            assert_eq!((first.status, first.body.as_slice()), (200, &b"ok"[..]));
            let body = b"<propfind/>";
            let propfind =
                Request { method: "PROPFIND", path: "/kalle/", headers: &[("Depth", "1")], body, max_body: 100, point_after_send: None };
            let second = client.send(&propfind).await.expect("second");
            assert_eq!((second.status, second.body.as_slice()), (207, &b"hello world"[..]));
            let third = client.send(&get("/c")).await.expect("third");
            assert_eq!((third.status, third.body.len()), (204, 0));
        });
        assert_eq!(client.requests_sent(), 3);
        let seen = server.join().expect("server");
        assert_eq!(seen.len(), 1, "one connection");
        assert!(
            seen[0][1].starts_with("PROPFIND /kalle/ HTTP/1.1\r\n") && seen[0][1].contains("\r\nDepth: 1\r\nContent-Length: 11\r\n\r\n")
        );
    }

    #[test]
    fn a_cut_in_the_middle_of_a_body_is_a_lost_connection_never_resent() {
        let cut: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part";
        let cut_chunk: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly";
        for answer in [cut, cut_chunk] {
            let (port, server) = scripted(vec![vec![Then::Answer(answer)]]);
            let error = smol::block_on(client(port).send(&get("/"))).expect_err("cut");
            assert!(matches!(kind_of(&error), Some(HttpError::ConnectionLost(_))), "{error:#}");
            assert_eq!(server.join().expect("server").len(), 1);
        }
        // A new connection closed before any answer: an error, not a second try.
        let (port, server) = scripted(vec![vec![Then::Close]]);
        let error = smol::block_on(client(port).send(&get("/"))).expect_err("closed");
        assert!(matches!(kind_of(&error), Some(HttpError::ConnectionLost(_))), "{error:#}");
        assert_eq!(server.join().expect("server").len(), 1);
    }

    #[test]
    fn an_answer_over_the_cap_is_too_large_and_the_connection_dropped() {
        let long: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
        let until_close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world";
        for answer in [long, chunked, until_close] {
            let (port, server) = scripted(vec![vec![Then::Answer(answer)]]);
            let mut client = client(port);
            let request = Request { max_body: 10, ..get("/") };
            let error = smol::block_on(client.send(&request)).expect_err("too large");
            assert!(matches!(kind_of(&error), Some(HttpError::TooLarge { limit: 10 })), "{error:#}");
            assert!(client.connection.is_none());
            server.join().expect("server");
        }
    }

    #[test]
    fn a_silent_server_times_out_fast() {
        let (port, server) = scripted(vec![vec![Then::Stall]]);
        let mut client = client(port).with_timeout(Duration::from_millis(200));
        let start = Instant::now();
        let error = smol::block_on(client.send(&get("/"))).expect_err("silent");
        assert!(matches!(kind_of(&error), Some(HttpError::TimedOut(_))), "{error:#}");
        assert!(start.elapsed() < Duration::from_millis(1500), "took {:?}", start.elapsed());
        server.join().expect("server");
    }

    #[test]
    fn a_kept_connection_closed_while_idle_is_reconnected_and_the_request_sent_again() {
        let (port, server) = scripted(vec![vec![Then::Answer(OK)], vec![Then::Answer(OK)]]);
        let mut client = client(port);
        smol::block_on(async {
            client.send(&get("/first")).await.expect("first");
            // Let the server's close arrive, as an idle timeout's would.
            smol::Timer::after(Duration::from_millis(100)).await;
            let second = client.send(&get("/second")).await.expect("second, on a new connection");
            assert_eq!(second.body, b"ok");
        });
        assert_eq!(client.requests_sent(), 2);
        let seen = server.join().expect("server");
        assert_eq!((seen[0].len(), seen[1].len()), (1, 1));
        assert!(seen[1][0].starts_with("GET /second "));
    }

    #[test]
    fn connection_close_and_http_1_0_drop_the_connection_after_the_answer() {
        let close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        let old: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (port, server) = scripted(vec![vec![Then::Answer(close)], vec![Then::Answer(old)], vec![Then::Answer(OK)]]);
        let mut client = client(port);
        smol::block_on(async {
            for path in ["/1", "/2", "/3"] {
                assert_eq!(client.send(&get(path)).await.expect(path).body, b"ok");
            }
        });
        assert!(client.connection.is_some(), "the HTTP/1.1 answer without close keeps it");
        drop(client);
        assert_eq!(server.join().expect("server").iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[test]
    fn an_unasked_100_continue_is_skipped() {
        let answer: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nETag: \"abc-1\"\r\nContent-Length: 0\r\n\r\n";
        let (port, server) = scripted(vec![vec![Then::Answer(answer), Then::Answer(OK)]]);
        let mut client = client(port);
        smol::block_on(async {
            let put = Request { method: "PUT", headers: &[("If-None-Match", "*")], body: b"BEGIN:VCARD\r\n", ..get("/k/a.vcf") };
            let created = client.send(&put).await.expect("put");
            assert_eq!((created.status, created.etag().as_deref()), (201, Some("\"abc-1\"")));
            assert_eq!(client.send(&get("/")).await.expect("after").body, b"ok");
        });
        server.join().expect("server");
    }

    #[test]
    fn basic_credentials_go_on_every_request_and_never_into_debug_output() {
        let (port, server) = scripted(vec![vec![Then::Answer(OK), Then::Answer(OK)]]);
        let mut client = client(port);
        smol::block_on(async {
            client.send(&get("/")).await.expect("first");
            client.send(&get("/")).await.expect("second");
        });
        let debug = format!("{client:?}");
        assert!(!debug.contains("hemligt") && debug.contains("kalle"), "{debug}");
        for head in &server.join().expect("server")[0] {
            assert!(head.contains("\r\nAuthorization: Basic a2FsbGU6aGVtbGlndCDDpcOkw7Y=\r\n"), "{head}");
            assert!(head.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")) && head.contains("\r\nContent-Length: 0\r\n"), "{head}");
            assert!(head.contains(&format!("\r\nUser-Agent: postflytt/{}\r\n", env!("CARGO_PKG_VERSION"))));
        }
    }

    #[test]
    fn unreachable_and_refused_requests() {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let error = smol::block_on(client(port).send(&get("/"))).expect_err("nobody listens");
        assert!(matches!(kind_of(&error), Some(HttpError::Unreachable(_))), "{error:#}");
        let error = smol::block_on(client(port).send(&get("/a b"))).expect_err("a space in the path");
        assert!(matches!(kind_of(&error), Some(HttpError::Malformed(_))), "{error:#}");
        let injected = Request { headers: &[("Depth", "1\r\nX-Evil: 1")], ..get("/") };
        assert!(smol::block_on(client(port).send(&injected)).is_err());
    }

    #[test]
    fn what_an_answer_says() {
        let response = Response {
            status: 401,
            headers: vec![
                ("dav".into(), "1, 2, access-control".into()),
                ("DAV".into(), "calendar-access,addressbook".into()),
                ("WWW-Authenticate".into(), "Bearer realm=\"x\"".into()),
                ("www-authenticate".into(), "Digest realm=\"y\", basic realm=\"z\"".into()),
            ],
            body: Vec::new(),
        };
        assert_eq!(response.dav_classes(), ["1", "2", "access-control", "calendar-access", "addressbook"]);
        assert!(response.offers_basic() && !response.is_success() && response.etag().is_none());
        let bearer = Response { headers: vec![("WWW-Authenticate".into(), "Bearer".into())], ..response };
        assert!(!bearer.offers_basic());
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")] {
            let mut out = Vec::new();
            base64_into(plain.as_bytes(), &mut out);
            assert_eq!(out, encoded.as_bytes());
        }
    }
}
