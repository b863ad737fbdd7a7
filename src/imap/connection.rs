//! Reaching a server: TCP (with the name lookup off the thread), TLS implicit or after STARTTLS, and
//! trust by certificate pin instead of the CA chain for old servers with self-signed or expired
//! certificates; `Conn` is the resulting socket, plain or TLS, and `with_timeout` the per-read
//! timeout every wait on it runs under. Plain text is allowed only to loopback. The same rules serve
//! the OAuth2 token request (`raw_connect`), and the pre-flight check reads fingerprints here.

use std::net::{IpAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;

use super::ImapError;

/// How long any single read or write may stall before the connection is given up (the default of
/// `io_timeout`).
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The per-read timeout: `IO_TIMEOUT`, or `POSTFLYTT_IO_TIMEOUT_MS` for the tests of hostile servers,
/// which cannot wait minutes.
pub fn io_timeout() -> Duration {
    static MS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    MS.get_or_init(|| std::env::var("POSTFLYTT_IO_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).filter(|&ms| ms > 0))
        .map_or(IO_TIMEOUT, Duration::from_millis)
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Implicit,
    StartTls,
    /// Plain text; refused unless the server is on loopback (tests, an SSH tunnel).
    Plain,
}

impl TlsMode {
    pub fn parse(text: &str) -> Result<TlsMode> {
        match text.to_ascii_lowercase().as_str() {
            "implicit" | "tls" | "imaps" => Ok(TlsMode::Implicit),
            "starttls" => Ok(TlsMode::StartTls),
            "plain" | "none" => Ok(TlsMode::Plain),
            other => bail!("unknown TLS mode {other:?}: use implicit, starttls or plain"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::StartTls => "starttls",
            TlsMode::Plain => "plain",
        }
    }
}

/// Where a server is and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// SHA-256 of the server certificate (hex, colons allowed): trusted instead of the CA chain, for an
    /// old server whose certificate is self-signed or expired.
    pub pin_sha256: Option<String>,
}

impl Endpoint {
    pub fn describe(&self) -> String {
        format!("{}:{} ({})", self.host, self.port, self.tls.as_str())
    }
}

/// The TLS handshake failed (or the pinned certificate did not match): the pre-flight check offers the
/// certificate's fingerprint to pin.
#[derive(Debug, Clone)]
pub struct TlsFailed(pub String);

impl std::fmt::Display for TlsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The socket, plain or wrapped in TLS; one type so STARTTLS can take the plain one back out.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<async_native_tls::TlsStream<TcpStream>>),
}

impl Conn {
    /// The DER of the server's certificate, on a TLS connection that got one.
    pub(super) fn peer_certificate_der(&self) -> Option<Vec<u8>> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => s.peer_certificate().ok().flatten().and_then(|c| c.to_der().ok()),
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let conn = self.get_mut();
        let read = match conn {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        // Only when the read took all there was (short) or found nothing yet: a full read leaves more
        // to read at once, whose own short read asks for the acknowledgement.
        if matches!(read, Poll::Ready(Ok(n)) if n > 0 && n < buf.len()) || read.is_pending() {
            quick_ack(conn.tcp());
        }
        read
    }
}

/// Quirk `nagle_stalls_pieces` (Courier-IMAP 5.0 and Cyrus IMAP 3.6, seen 2026-12 building make
/// bench's rows from their sources): they write one answer in several pieces with Nagle's algorithm
/// on (no TCP_NODELAY), so a piece after the first waits in their kernel until we acknowledge the
/// first, and Linux delays that acknowledgement up to 40 ms while we have nothing to send. A lone
/// FETCH of one message took 44 ms on loopback; a folder's bodies in one FETCH stalled like that at
/// least once. Asking for an immediate acknowledgement after a read that took all there was, or
/// before waiting for more (TCP_QUICKACK, which Linux drops again by itself, hence every time), lets
/// the rest come at once. Not after a read that filled the buffer: more is there to read at once, and
/// on the bench's loopback migration one system call per read was 37,000 of them. A failure changes
/// nothing but speed, so it is ignored. Test: `imap::transcript_tests` `a_server_writing_in_pieces_with_nagle_on_does_not_stall_a_fetch`.
fn quick_ack(tcp: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_quickack(tcp, true);
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

pub(super) async fn tcp_connect(endpoint: &Endpoint) -> Result<TcpStream> {
    let target = format!("{}:{}", endpoint.host, endpoint.port);
    // An address needs no lookup, and a lookup needs a thread of smol's blocking pool (its own stack).
    let addrs: Vec<_> = match endpoint.host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, endpoint.port)],
        Err(_) => smol::unblock({
            let target = target.clone();
            move || target.to_socket_addrs().map(|a| a.collect::<Vec<_>>())
        })
        .await
        .with_context(|| format!("name not found: {} (check the host name and DNS)", endpoint.host))?,
    };
    let mut last_err = None;
    for addr in addrs {
        match with_timeout("", &format!("connecting to {target}"), false, TcpStream::connect(addr)).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("no address for {}", endpoint.host)))
        .with_context(|| format!("cannot reach {target} (connection refused or timed out: is the server up and the port right?)"))
}

/// How far a TLS handshake trusts the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trust {
    /// The endpoint's pin, else the CA chain and the host name: every connection that carries mail.
    AsConfigured,
    /// Any certificate, to look at it: the setup test (`probe`) after the real handshake failed, so it
    /// can tell the operator what the certificate is. Nothing is sent over such a connection but
    /// STARTTLS and the greeting's answer.
    InspectOnly,
}

/// The certificate of a pinned endpoint is not the pinned one; `seen` is its SHA-256 fingerprint.
#[derive(Debug, Clone)]
pub struct PinMismatch {
    pub seen: String,
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server's certificate has SHA-256 fingerprint {}, not the pinned one", self.seen)
    }
}

impl std::error::Error for PinMismatch {}

/// The one place TLS is set up, so another TLS library could be offered behind it.
pub(super) async fn connect_tls(tcp: TcpStream, endpoint: &Endpoint, trust: Trust) -> Result<Conn> {
    let mut connector = async_native_tls::TlsConnector::new();
    if endpoint.pin_sha256.is_some() || trust == Trust::InspectOnly {
        // The pin replaces the CA chain and the host name check: the operator has seen this exact
        // certificate and told us to trust it. It is compared right after the handshake.
        connector = connector.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
    }
    // The TLS library's error keeps the socket's own error in its chain: a reset or a cut during the
    // handshake is a lost connection (reconnected) like any other, not a TLS failure.
    let handshake = async {
        connector
            .connect(&endpoint.host, tcp)
            .await
            .map_err(|e| std::io::Error::new(io_kind_within(&e).unwrap_or(std::io::ErrorKind::Other), e.to_string()))
    };
    let tls = with_timeout("", &format!("TLS handshake with {}", endpoint.describe()), false, handshake).await.map_err(|e| {
        e.context(TlsFailed(format!(
            "TLS failed with {}; if the server's certificate is self-signed or expired, trust it by its \
                 fingerprint (see `postflytt check`, --source-pin/--target-pin)",
            endpoint.describe()
        )))
    })?;
    if let Some(pin) = endpoint.pin_sha256.as_ref().filter(|_| trust == Trust::AsConfigured) {
        let cert = tls
            .peer_certificate()
            .map_err(|e| anyhow!("reading the server certificate: {e}"))?
            .ok_or_else(|| anyhow!("{} sent no certificate", endpoint.describe()))?;
        let der = cert.to_der().map_err(|e| anyhow!("reading the server certificate: {e}"))?;
        let seen = hex(&Sha256::digest(&der));
        if seen != normalize_fingerprint(pin) {
            return Err(anyhow::Error::new(PinMismatch { seen }).context(format!(
                "the certificate of {} is not the pinned one; if the server really changed its certificate, pin the new fingerprint",
                endpoint.describe()
            )));
        }
    }
    Ok(Conn::Tls(Box::new(tls)))
}

/// The SHA-256 fingerprint of a server's certificate, for the operator to pin.
pub async fn fetch_fingerprint(endpoint: &Endpoint) -> Result<String> {
    let tcp = tcp_connect(endpoint).await?;
    let connector = async_native_tls::TlsConnector::new().danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
    // The TLS library's error keeps the socket's own error in its chain: a reset or a cut during the
    // handshake is a lost connection (reconnected) like any other, not a TLS failure.
    let handshake = async {
        connector
            .connect(&endpoint.host, tcp)
            .await
            .map_err(|e| std::io::Error::new(io_kind_within(&e).unwrap_or(std::io::ErrorKind::Other), e.to_string()))
    };
    let tls = with_timeout("", "TLS handshake", false, handshake).await?;
    let cert = tls.peer_certificate().map_err(|e| anyhow!("{e}"))?.ok_or_else(|| anyhow!("no certificate"))?;
    let der = cert.to_der().map_err(|e| anyhow!("{e}"))?;
    Ok(hex(&Sha256::digest(&der)))
}

/// A connected socket (TLS or plain, by the endpoint's mode), for protocols other than IMAP on the
/// same trust rules: the OAuth2 token request.
pub async fn raw_connect(endpoint: &Endpoint) -> Result<Conn> {
    if endpoint.tls != TlsMode::Implicit && !is_loopback(&endpoint.host) {
        bail!("plain text to {} is allowed only on loopback", endpoint.host);
    }
    let tcp = tcp_connect(endpoint).await?;
    match endpoint.tls {
        TlsMode::Implicit => connect_tls(tcp, endpoint, Trust::AsConfigured).await,
        _ => Ok(Conn::Plain(tcp)),
    }
}

/// Runs `fut` within the per-read timeout. An error that means the connection is gone (a timeout, a
/// reset: see `is_lost`), or any error at all with `always_lost` (a write on an open connection), is a
/// `ConnectionLost` of `label` with `what` happening; others (refused, no route) have `what` as context.
pub(super) async fn with_timeout<T>(
    label: &str,
    what: &str,
    always_lost: bool,
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T> {
    let timer = async {
        let timeout = io_timeout();
        smol::Timer::after(timeout).await;
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {} s", timeout.as_secs_f64())))
    };
    smol::future::or(fut, timer).await.map_err(|e| {
        if always_lost || is_lost(&e) {
            anyhow::Error::new(e).context(ImapError::lost(label, what))
        } else {
            anyhow::Error::new(e).context(if label.is_empty() { what.to_string() } else { format!("{label}: {what}") })
        }
    })
}

/// The kind of the first I/O error in `e`'s chain of sources, if there is one.
fn io_kind_within(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = c.source();
    }
    None
}

/// Whether an I/O error means the connection went away (or never answered), rather than that it was
/// refused or could not be made.
fn is_lost(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), TimedOut | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected)
}

pub(super) fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// Normalises a certificate fingerprint for comparison: lowercase hex without separators.
pub fn normalize_fingerprint(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_ascii_lowercase()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_inside_a_tls_error_is_found() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "handshake failed")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let reset = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(io_kind_within(&reset), Some(std::io::ErrorKind::ConnectionReset));
        assert!(is_lost(&std::io::Error::from(io_kind_within(&reset).unwrap())));
        assert_eq!(io_kind_within(&std::fmt::Error), None);
    }

    /// Quirk `nagle_stalls_pieces`: a scripted server, since the point is the kernels' timing, which
    /// a real Courier or Cyrus shows the same way (make bench measures them): it writes each answer in
    /// two pieces with Nagle on, as they do. Without the immediate acknowledgement every round after the
    /// first few took 40-44 ms here; with it, well under a millisecond. Read into a buffer larger than
    /// the first piece (a short read asks for the acknowledgement) and into one exactly its size (the
    /// full read does not; the read that finds nothing yet does).
    #[test]
    fn a_server_writing_in_pieces_with_nagle_on_does_not_stall_a_fetch() {
        nagle_rounds(64);
        nagle_rounds(b"* 1 FETCH (UID 1 BODY[] {5}\r\nhello".len());
    }

    fn nagle_rounds(read_size: usize) {
        use smol::io::{AsyncReadExt, AsyncWriteExt};
        use std::io::{Read, Write};
        const ROUNDS: usize = 20;
        let (first, second) = (b"* 1 FETCH (UID 1 BODY[] {5}\r\nhello".as_slice(), b")\r\nA1 OK done\r\n".as_slice());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 64];
            for _ in 0..ROUNDS {
                let mut got = 0;
                while got < b"A1 FETCH\r\n".len() {
                    got += s.read(&mut buf).expect("read");
                }
                s.write_all(first).expect("write");
                s.write_all(second).expect("write");
            }
        });
        let rounds: Vec<f64> = smol::block_on(async {
            let endpoint = Endpoint { host: "127.0.0.1".into(), port, tls: TlsMode::Plain, pin_sha256: None };
            let mut conn = Conn::Plain(tcp_connect(&endpoint).await.expect("connect"));
            let mut buf = vec![0u8; read_size];
            let mut times = Vec::new();
            for _ in 0..ROUNDS {
                let start = std::time::Instant::now();
                conn.write_all(b"A1 FETCH\r\n").await.expect("write");
                let mut got = 0;
                while got < first.len() + second.len() {
                    got += conn.read(&mut buf).await.expect("read");
                }
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            times
        });
        server.join().expect("server");
        let slow = rounds.iter().filter(|&&ms| ms >= 30.0).count();
        assert!(slow <= 2, "reading {read_size} bytes at a time, {slow} of {ROUNDS} rounds waited 30 ms or more (ms: {rounds:.1?})");
    }

    #[test]
    fn fingerprints_and_loopback() {
        assert_eq!(normalize_fingerprint("AB:cd:01"), "abcd01");
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
