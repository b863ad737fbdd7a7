//! The IMAP client: one connection to one server, driven by our own async loop over smol sockets.
//!
//! Wire encoding and parsing belong to imap-next (a sans-I/O state machine on top of imap-codec); this
//! module owns the socket, TLS, timeouts, tags and the translation of responses into the few shapes the
//! rest of postflytt needs. Message bytes are the two exceptions, because imap-next holds a whole
//! command or answer in memory: APPEND is written to the socket by us, streaming the body from SQLite
//! slice by slice, while imap-next still parses the server's answers; and body FETCH answers are read
//! by us (`body_fetch`), streaming each literal from the socket into a sink.
//!
//! A server is not trusted to end what it starts: every line, answer and literal has a size bound,
//! every command a bound on its untagged answers and a deadline, and a read loop lets the other
//! accounts of the thread run now and then (see `LINE_LIMIT` and the constants after it). A server
//! that breaks a bound fails with `ServerMisbehaved`, and its connection is not used again.
//!
//! What went wrong is decided here, where it happens, as an `ImapError` at the root (or as context) of
//! the error chain: the connection lost, a command refused, throttling that did not stop, a hang-up
//! on a message, a broken bound. Callers ask `kind_of`, or `failure::policy` what to do; never the
//! text.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::command::{Command, CommandBody, FetchModifier, SelectParameter};
use imap_next::imap_types::core::{AString, Tag, Vec1};
use imap_next::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section};
use imap_next::imap_types::flag::{Flag, FlagFetch, FlagNameAttribute, StoreResponse, StoreType};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Code, Data, Status, StatusBody, StatusKind};
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};
use imap_next::{Interrupt, Io, State};
use sha2::{Digest, Sha256};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;

use crate::quirks::Quirks;
use crate::secret::Secret;
use crate::store::ServerKind;

/// How long any single read or write may stall before the connection is given up (the default of
/// `io_timeout`).
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes read from the socket at a time; with streamed bodies this is all a connection holds of them.
const READ_BUF: usize = 8 * 1024;

// Bounds on what one server may cost. A broken or hostile server (issue 13) must cost only its own
// account: every answer is bounded in size, every command in answers and in time, and a read loop
// lets the other accounts on the thread run (`workers`). Breaking a bound is a `ServerMisbehaved`.

/// Longest protocol line accepted, its line end included (literals are not part of a line). The
/// longest honest lines are a `* SEARCH` listing every UID of a big folder (about 7 bytes a UID, so
/// 4 MiB is half a million) and a CAPABILITY or FLAGS list of a few KiB; imap-next would read a line
/// without an end for ever (it reports an over-long answer only once the line ends).
pub const LINE_LIMIT: usize = 4 * 1024 * 1024;

/// Largest answer (lines and literals) imap-next is asked to hold, its `max_response_size`. Bodies
/// never pass through imap-next (`body_fetch` streams them), so its answers are metadata: a SEARCH
/// line (`LINE_LIMIT`), a FETCH with a few header fields, a LIST line. A literal announced beyond
/// this is refused at its announcement, before a byte of it is read.
pub const RESPONSE_LIMIT: u32 = 8 * 1024 * 1024;

/// Most untagged answers one command may bring when they are kept until it ends (LIST, LSUB, STATUS,
/// NAMESPACE, SELECT's codes...): a LIST of 100,000 folders is far beyond any mailbox we will meet.
/// A streamed metadata FETCH may bring this many more than twice the folder's message count.
pub const UNTAGGED_LIMIT: u64 = 100_000;

/// Most bytes of untagged answers one command may bring when they are kept until it ends: 100,000
/// LIST lines of 160 bytes. Parsed, they take two to three times this in memory.
pub const UNTAGGED_BYTES_LIMIT: u64 = 16 * 1024 * 1024;

/// Untagged response codes kept from one command for the next (SELECT reads UIDVALIDITY, UIDNEXT and
/// HIGHESTMODSEQ from them); others (ALERT, PERMANENTFLAGS...) are not kept at all, and beyond this
/// many the oldest go.
pub const PENDING_CODES_LIMIT: usize = 32;

/// A command's deadline: `command_grace()` of waiting for the server, plus one second for every this
/// many bytes moved for it (read or written). An honest command either ends or keeps moving bytes, and a
/// line of even 8 kbit/s moves a kilobyte a second, so a command is never cut for being long; a
/// server that drips a byte now and then, each in time for the per-read timeout, or keeps a command
/// open without end, fails after `command_grace()` (two minutes) plus next to nothing. A fixed
/// deadline per command would have to be hours for a 100 MB message over an office ADSL line.
pub const COMMAND_MIN_RATE: u64 = 1024;

/// Reads from the socket between two yields to the other tasks of the thread. A socket that always
/// has data never makes a read wait, so without a yield a flooding server would keep every other
/// account on the thread from running (`workers` runs them as tasks on one thread): 16 reads are at
/// most 128 KiB.
const READS_PER_YIELD: u32 = 16;

/// The per-read timeout: `IO_TIMEOUT`, or `POSTFLYTT_IO_TIMEOUT_MS` for the tests of hostile servers,
/// which cannot wait minutes.
pub fn io_timeout() -> Duration {
    static MS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    MS.get_or_init(|| std::env::var("POSTFLYTT_IO_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).filter(|&ms| ms > 0))
        .map_or(IO_TIMEOUT, Duration::from_millis)
}

/// The part of a command's deadline that does not depend on its bytes (see `COMMAND_MIN_RATE`): twice
/// the per-read timeout, so a command may wait for its first answer as long as any read may.
pub fn command_grace() -> Duration {
    io_timeout() * 2
}

/// A server broke one of the bounds above. The sentence says what it did; the connection is left in
/// the middle of an answer and is never used again (`Session` refuses further commands), and the
/// account fails for this pass without a retry in it (`sync`), since the same server would do it again.
#[derive(Debug, Clone)]
pub struct ServerMisbehaved {
    /// "source alice@example.se".
    pub label: String,
    /// "the server sent more than 100000 untagged answers to one LIST; stopped reading it".
    pub what: String,
}

impl std::fmt::Display for ServerMisbehaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.label, self.what)
    }
}

impl std::error::Error for ServerMisbehaved {}

/// Whether a server broke a bound (the error's kind is `ImapError::Misbehaved`).
#[cfg(test)]
pub fn is_misbehaving(e: &anyhow::Error) -> bool {
    matches!(kind_of(e), Some(ImapError::Misbehaved(_)))
}

/// What went wrong with a server, typed where it arises (as imap-next's stream errors are), so that
/// what to do about it (`failure::policy`) never depends on how a message reads. Each kind keeps the
/// sentence it is shown with; `label` is "source alice@example.se" (empty before a session exists).
#[derive(Debug, Clone)]
pub enum ImapError {
    /// The connection is gone or cannot be used again: closed (end of stream, or `* BYE`, whose
    /// reason is `bye`), reset, a read or write that failed or timed out, or a command left half-read
    /// (our side failed in the middle of an answer).
    ConnectionLost { label: String, what: String, bye: Option<String> },
    /// A tagged NO or BAD the caller turned into an error: the command's name and the answer.
    Refused { label: String, what: String, command: &'static str, answer: Answer },
    /// The server asked us to wait (quirk `exchange_throttled`) and kept asking after we did; `delay`
    /// is the wait it last suggested.
    Throttled { label: String, what: String, delay: Duration },
    /// Quirk `dovecot_bye_on_fetch_failure`: the server hung up in the middle of a body FETCH because it
    /// could not read a message (see `body_fetch`).
    HungUpOnMessage { label: String, reason: String },
    /// The server broke one of the bounds above (a protocol violation).
    Misbehaved(ServerMisbehaved),
}

impl ImapError {
    /// Whether the connection can no longer be used.
    pub fn ends_connection(&self) -> bool {
        matches!(self, ImapError::ConnectionLost { .. } | ImapError::HungUpOnMessage { .. } | ImapError::Misbehaved(_))
    }

    /// A lost connection: `what` happened to it.
    pub fn lost(label: &str, what: impl Into<String>) -> ImapError {
        ImapError::ConnectionLost { label: label.to_string(), what: what.into(), bye: None }
    }
}

impl std::fmt::Display for ImapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (label, what) = match self {
            ImapError::ConnectionLost { label, what, .. }
            | ImapError::Refused { label, what, .. }
            | ImapError::Throttled { label, what, .. } => (label, what.clone()),
            ImapError::HungUpOnMessage { label, reason } => (label, format!("{BYE_WITH_REASON}{reason}")),
            ImapError::Misbehaved(m) => return m.fmt(f),
        };
        if label.is_empty() { write!(f, "{what}") } else { write!(f, "{label}: {what}") }
    }
}

impl std::error::Error for ImapError {}

/// The kind of IMAP failure in this error's chain (the outermost, when context added another).
pub fn kind_of(e: &anyhow::Error) -> Option<&ImapError> {
    e.downcast_ref::<ImapError>()
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

/// Whether a command's untagged answers are kept until it ends (so they count against
/// `UNTAGGED_LIMIT` and `UNTAGGED_BYTES_LIMIT`) or handed on one by one as they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    Kept,
    /// Handed on as they come (a metadata FETCH): memory does not grow with them, so only their
    /// count is bounded, by the folder's size.
    Streamed,
}

/// What the command in progress has cost so far, against its bounds.
pub(super) struct Budget {
    /// The command's name, for the error sentence ("LIST", "UID FETCH").
    what: &'static str,
    /// Time spent waiting for the server's bytes. Only the waits count, not the time our side takes
    /// between reads (a sink waiting for SQLite's write lock while another account commits), so a
    /// slow database is never blamed on the server.
    waited: Duration,
    /// Bytes read and written for it.
    moved: u64,
    /// Answers completed (untagged ones and the few tagged), and the bytes of all answers.
    answers: u64,
    answer_bytes: u64,
    max_answers: u64,
    /// None when the answers are not kept.
    max_answer_bytes: Option<u64>,
    /// Reads since the command began, for `READS_PER_YIELD`.
    reads: u32,
}

impl Budget {
    fn new(what: &'static str, answers: Answers, exists: u32) -> Budget {
        let (max_answers, max_answer_bytes) = match answers {
            Answers::Kept => (UNTAGGED_LIMIT, Some(UNTAGGED_BYTES_LIMIT)),
            // One answer a message (flags changed meanwhile may add one more), whatever the server
            // said EXISTS was; capped so a server claiming billions gains nothing.
            // (5 million messages, over ten times the largest folder we plan for.)
            Answers::Streamed => (UNTAGGED_LIMIT + 2 * u64::from(exists.min(5_000_000)), None),
        };
        Budget { what, waited: Duration::ZERO, moved: 0, answers: 0, answer_bytes: 0, max_answers, max_answer_bytes, reads: 0 }
    }

    /// How long the command may still take (see `COMMAND_MIN_RATE`); None once it is over.
    fn time_left(&self) -> Option<Duration> {
        let allowed = command_grace() + Duration::from_secs_f64(self.moved as f64 / COMMAND_MIN_RATE as f64);
        allowed.checked_sub(self.waited).filter(|left| !left.is_zero())
    }

    /// Counts answers completed and bytes of answers; the bound broken, if one is.
    pub(super) fn count(&mut self, answers: u64, bytes: u64) -> Option<String> {
        self.answers += answers;
        self.answer_bytes += bytes;
        if self.answers > self.max_answers {
            return Some(format!(
                "the server sent more than {} untagged answers to one {}; stopped reading it",
                self.max_answers, self.what
            ));
        }
        match self.max_answer_bytes {
            Some(max) if self.answer_bytes > max => {
                Some(format!("the server sent more than {} MiB of untagged answers to one {}; stopped reading it", max >> 20, self.what))
            }
            _ => None,
        }
    }
}

/// Follows the bytes handed to imap-next the way its fragmentizer splits them (lines; a literal when a
/// line ends in `{n}`), so that a line without an end or an answer too large is stopped while it
/// arrives: imap-next checks its `max_response_size` only when a line ends, and reads a line that
/// never ends for ever.
#[derive(Debug, Default)]
pub(super) struct Framing {
    /// Bytes of the current line so far (0 inside a literal).
    line: usize,
    /// The last bytes of the current line, enough for "{4294967295+}\r\n".
    tail: Vec<u8>,
    /// Bytes of the current answer so far, lines and literals.
    answer: u64,
    /// Literal bytes still to come.
    literal: u64,
}

/// How the bytes fed to `Framing` broke a bound.
#[derive(Debug, PartialEq, Eq)]
enum FramingBreak {
    /// A line passed `LINE_LIMIT` without its end.
    Line,
    /// An answer passed `RESPONSE_LIMIT`, or announced a literal of this many bytes that would.
    Answer(u64),
}

impl Framing {
    const TAIL: usize = 16;

    /// Takes the next bytes; returns how many answers ended in them.
    fn feed(&mut self, mut bytes: &[u8]) -> std::result::Result<u64, FramingBreak> {
        let mut ended = 0;
        while !bytes.is_empty() {
            if self.literal > 0 {
                let n = self.literal.min(bytes.len() as u64);
                self.literal -= n;
                self.answer += n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let (part, line_ends) = match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => (&bytes[..=end], true),
                None => (bytes, false),
            };
            bytes = &bytes[part.len()..];
            self.line += part.len();
            self.answer += part.len() as u64;
            if self.line > LINE_LIMIT {
                return Err(FramingBreak::Line);
            }
            if self.answer > u64::from(RESPONSE_LIMIT) {
                return Err(FramingBreak::Answer(0));
            }
            self.tail.extend_from_slice(&part[part.len().saturating_sub(Self::TAIL)..]);
            if self.tail.len() > Self::TAIL {
                self.tail.drain(..self.tail.len() - Self::TAIL);
            }
            if !line_ends {
                continue;
            }
            let announced = announced_literal(&self.tail);
            self.line = 0;
            self.tail.clear();
            match announced {
                Some(n) if self.answer + u64::from(n) > u64::from(RESPONSE_LIMIT) => {
                    return Err(FramingBreak::Answer(u64::from(n)));
                }
                Some(n) => self.literal = u64::from(n),
                None => {
                    ended += 1;
                    self.answer = 0;
                }
            }
        }
        Ok(ended)
    }
}

/// The literal a line announces at its end, exactly as imap-codec's fragmentizer reads it: `{n}` or
/// `{n+}` right before the line end (CRLF or LF), n a decimal that fits 32 bits.
fn announced_literal(line: &[u8]) -> Option<u32> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || line.len() == digits || line[line.len() - digits - 1] != b'{' {
        return None;
    }
    std::str::from_utf8(&line[line.len() - digits..]).ok()?.parse().ok()
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

/// One folder as LIST reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFolder {
    /// The name exactly as the server sent it (modified UTF-7 on most servers).
    pub wire_name: String,
    pub delimiter: Option<char>,
    pub attributes: Vec<String>,
}

impl ListedFolder {
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// What SELECT/EXAMINE told us about a folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    pub exists: u32,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<u64>,
}

/// STATUS of a folder that is not selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderStatus {
    pub messages: u32,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<u64>,
}

/// Metadata of one message from UID FETCH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub size: Option<u32>,
    /// Flags and keywords, `\Recent` left out (the server sets it, nobody can copy it).
    pub flags: Vec<String>,
    /// IMAP date-time text as APPEND takes it: `dd-Mon-yyyy hh:mm:ss +zzzz`.
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
    /// A header section (for Message-ID look-ups).
    pub header: Option<Vec<u8>>,
}

/// A tagged answer: its kind, response code and the server's own words.
#[derive(Debug, Clone)]
pub struct Answer {
    pub kind: StatusKind,
    pub code: Option<Code<'static>>,
    pub text: String,
}

impl Answer {
    pub fn is_ok(&self) -> bool {
        self.kind == StatusKind::Ok
    }

    /// Whether the answer carries response code `name` (one imap-types does not know, as `[ALREADYEXISTS]`
    /// of RFC 5530, arrives by its name).
    pub fn has_code(&self, name: &str) -> bool {
        self.code.as_ref().is_some_and(|code| code_name(code).eq_ignore_ascii_case(name))
    }

    /// The server's words with its response code, for logs and the skip ledger.
    pub fn words(&self) -> String {
        match &self.code {
            Some(code) => format!("{} [{}] {}", kind_str(self.kind), code_name(code), self.text),
            None => format!("{} {}", kind_str(self.kind), self.text),
        }
    }
}

fn kind_str(kind: StatusKind) -> &'static str {
    match kind {
        StatusKind::Ok => "OK",
        StatusKind::No => "NO",
        StatusKind::Bad => "BAD",
    }
}

fn code_name(code: &Code<'_>) -> String {
    match code {
        Code::OverQuota => "OVERQUOTA".into(),
        Code::TooBig => "TOOBIG".into(),
        Code::TryCreate => "TRYCREATE".into(),
        Code::AppendUid { uid_validity, uid } => format!("APPENDUID {uid_validity} {uid}"),
        Code::Other(other) => String::from_utf8_lossy(other.inner()).into_owned(),
        other => format!("{other:?}"),
    }
}

/// One message to APPEND: flags, date, size, and a source of its bytes in order.
pub struct AppendItem<'a> {
    pub flags: &'a [String],
    pub internal_date: Option<&'a str>,
    pub size: u64,
    /// Called repeatedly; returns the next slice of the body, or an empty Vec at the end.
    pub body: &'a mut dyn FnMut() -> Result<Vec<u8>>,
}

/// A connection in the authenticated state (or later).
pub struct Session {
    pub(super) stream: Conn,
    pub(super) client: Client,
    pub(super) next_tag: u32,
    pub(super) capabilities: BTreeSet<String>,
    /// Bytes read from the socket; `read_start..read_end` of it not yet parsed. Outside a streamed
    /// body fetch (`body_fetch`) everything read has been handed to imap-next and the range is empty.
    pub(super) read_buf: Vec<u8>,
    pub(super) read_start: usize,
    pub(super) read_end: usize,
    /// Untagged OK codes seen since the last command that SELECT reads (at most `PENDING_CODES_LIMIT`).
    pub(super) pending_codes: Vec<Code<'static>>,
    pub(super) exists: u32,
    /// Who we are, for error messages: "source alice@example.se".
    pub(super) label: String,
    /// Times this server asked us to back off (throttling answers obeyed).
    pub throttled: u64,
    /// The command in progress: its deadline and what its answers cost so far.
    pub(super) budget: Budget,
    /// Where the bytes handed to imap-next are: in a line, in a literal.
    pub(super) framing: Framing,
    /// Bytes of the FETCH answer line `body_fetch` is reading (literals not counted).
    pub(crate) fetch_line: usize,
    /// Set when the server broke a bound: the connection is mid-answer and no command goes out on it again.
    pub(super) broken: Option<ServerMisbehaved>,
    /// What the operator said this server is, and the text of its greeting: with the capabilities
    /// after login, what `quirks` is computed from.
    pub(super) kind: ServerKind,
    pub(super) greeting: String,
    /// This server's quirks, computed once at login (none before).
    pub(super) quirks: Quirks,
}

/// The socket, plain or wrapped in TLS; one type so STARTTLS can take the plain one back out.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<async_native_tls::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
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

/// Runs `fut` within the per-read timeout. An error that means the connection is gone (a timeout, a
/// reset: see `is_lost`), or any error at all with `always_lost` (a write on an open connection), is a
/// `ConnectionLost` of `label` with `what` happening; others (refused, no route) have `what` as context.
async fn with_timeout<T>(
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

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// Normalises a certificate fingerprint for comparison: lowercase hex without separators.
pub fn normalize_fingerprint(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_ascii_lowercase()
}

/// The one place TLS is set up, so another TLS library could be offered behind it.
async fn connect_tls(tcp: TcpStream, endpoint: &Endpoint) -> Result<Conn> {
    let mut connector = async_native_tls::TlsConnector::new();
    if endpoint.pin_sha256.is_some() {
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
    if let Some(pin) = &endpoint.pin_sha256 {
        let cert = tls
            .peer_certificate()
            .map_err(|e| anyhow!("reading the server certificate: {e}"))?
            .ok_or_else(|| anyhow!("{} sent no certificate", endpoint.describe()))?;
        let der = cert.to_der().map_err(|e| anyhow!("reading the server certificate: {e}"))?;
        let seen = hex(&Sha256::digest(&der));
        if seen != normalize_fingerprint(pin) {
            bail!(
                "the certificate of {} has SHA-256 fingerprint {seen}, not the pinned one; if the server \
                 really changed its certificate, pin the new fingerprint",
                endpoint.describe()
            );
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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn tcp_connect(endpoint: &Endpoint) -> Result<TcpStream> {
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

/// A connected socket (TLS or plain, by the endpoint's mode), for protocols other than IMAP on the
/// same trust rules: the OAuth2 token request.
pub async fn raw_connect(endpoint: &Endpoint) -> Result<Conn> {
    if endpoint.tls != TlsMode::Implicit && !is_loopback(&endpoint.host) {
        bail!("plain text to {} is allowed only on loopback", endpoint.host);
    }
    let tcp = tcp_connect(endpoint).await?;
    match endpoint.tls {
        TlsMode::Implicit => connect_tls(tcp, endpoint).await,
        _ => Ok(Conn::Plain(tcp)),
    }
}

impl Session {
    /// Connects, negotiates TLS and reads the greeting; not yet logged in. `kind` is what the operator
    /// said this server is; with the greeting and the capabilities it decides `quirks` at login.
    pub async fn connect(endpoint: &Endpoint, label: &str, kind: ServerKind) -> Result<Session> {
        if endpoint.tls == TlsMode::Plain && !is_loopback(&endpoint.host) {
            bail!(
                "plain IMAP to {} would send passwords unprotected; plain is allowed only on loopback — use implicit or starttls",
                endpoint.host
            );
        }
        let tcp = tcp_connect(endpoint).await?;
        let stream = match endpoint.tls {
            TlsMode::Implicit => connect_tls(tcp, endpoint).await?,
            TlsMode::Plain | TlsMode::StartTls => Conn::Plain(tcp),
        };
        let mut session = Session {
            stream,
            client: Client::new(client_options(false)),
            next_tag: 1,
            capabilities: BTreeSet::new(),
            read_buf: vec![0; READ_BUF],
            read_start: 0,
            read_end: 0,
            pending_codes: Vec::new(),
            exists: 0,
            label: label.to_string(),
            throttled: 0,
            budget: Budget::new("greeting", Answers::Kept, 0),
            framing: Framing::default(),
            fetch_line: 0,
            broken: None,
            kind,
            greeting: String::new(),
            // What the kind alone says, until the login shows the capabilities (see `quirks`).
            quirks: Quirks::of_kind(kind),
        };
        session.read_greeting().await?;
        if endpoint.tls == TlsMode::StartTls {
            let answer = session.simple(CommandBody::StartTLS).await?;
            if !answer.is_ok() {
                return Err(session.refused("STARTTLS", format!("the server refused STARTTLS: {}", answer.words()), &answer));
            }
            // Anything buffered after the OK would be a plain-text injection; there must be nothing.
            let Conn::Plain(tcp) = session.stream else {
                bail!("internal: STARTTLS on a connection that is already TLS");
            };
            let tls = connect_tls(tcp, endpoint).await?;
            session = Session {
                stream: tls,
                client: Client::new(client_options(true)),
                next_tag: 100,
                capabilities: BTreeSet::new(),
                read_buf: vec![0; READ_BUF],
                read_start: 0,
                read_end: 0,
                pending_codes: Vec::new(),
                exists: 0,
                label: label.to_string(),
                throttled: 0,
                budget: Budget::new("greeting", Answers::Kept, 0),
                framing: Framing::default(),
                fetch_line: 0,
                broken: None,
                kind,
                greeting: session.greeting,
                quirks: Quirks::of_kind(kind),
            };
            session.capabilities.clear();
        }
        Ok(session)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    async fn read_greeting(&mut self) -> Result<()> {
        loop {
            match self.client.next() {
                Ok(Event::GreetingReceived { greeting }) => {
                    if let Some(Code::Capability(caps)) = &greeting.code {
                        self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                    }
                    self.greeting = greeting.text.to_string();
                    if greeting.kind == imap_next::imap_types::response::GreetingKind::Bye {
                        bail!("{}: the server said BYE at once: {}", self.label, greeting.text);
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
    }

    async fn handle_interrupt(&mut self, interrupt: Interrupt<imap_next::client::Error>) -> Result<()> {
        match interrupt {
            Interrupt::Io(Io::NeedMoreInput) if self.read_start < self.read_end => {
                // What a streamed body fetch read past its last answer belongs to imap-next now.
                let (start, end) = (self.read_start, self.read_end);
                self.read_start = 0;
                self.read_end = 0;
                self.feed_client_from_buf(start, end)
            }
            Interrupt::Io(Io::NeedMoreInput) => {
                let n = self.read_some().await?;
                self.feed_client_from_buf(0, n)
            }
            Interrupt::Io(Io::Output(bytes)) => self.write_all(&bytes).await,
            // The rest of that answer is still on its way: the connection is never used again.
            Interrupt::Error(error) => Err(self.misbehaved(format!("the server sent a response that could not be read ({error})"))),
        }
    }

    /// Starts the bounds of a command (see `Budget`); refuses one on a connection whose server broke a
    /// bound, which is in the middle of an answer.
    pub(super) fn begin_command(&mut self, what: &'static str, answers: Answers) -> Result<()> {
        if let Some(broken) = &self.broken {
            return Err(anyhow::Error::new(ImapError::Misbehaved(broken.clone())).context("this connection is not used again"));
        }
        self.budget = Budget::new(what, answers, self.exists);
        Ok(())
    }

    /// The error for a bound the server broke, and the mark that keeps this connection from being
    /// used again.
    pub(crate) fn misbehaved(&mut self, what: String) -> anyhow::Error {
        let error = ServerMisbehaved { label: self.label.clone(), what };
        self.broken = Some(error.clone());
        anyhow::Error::new(ImapError::Misbehaved(error))
    }

    /// The error for a tagged NO or BAD to `command` that the caller cannot go on from; `what` is the
    /// sentence, with the server's words. An answer that still asks us to wait after we did
    /// (`wait_if_throttled`) is `Throttled`.
    pub(crate) fn refused(&self, command: &'static str, what: String, answer: &Answer) -> anyhow::Error {
        let label = self.label.clone();
        anyhow::Error::new(match throttle_delay(answer) {
            Some(delay) => ImapError::Throttled { label, what, delay },
            None => ImapError::Refused { label, what, command, answer: answer.clone() },
        })
    }

    /// An error that arrived while an answer was being read: unless it already ended the connection,
    /// the rest of the answer is still on its way and the connection cannot be used again.
    pub(crate) fn left_mid_command(&self, e: anyhow::Error) -> anyhow::Error {
        if kind_of(&e).is_some_and(ImapError::ends_connection) {
            e
        } else {
            e.context(ImapError::lost(&self.label, "the connection was left in the middle of a command"))
        }
    }

    fn too_slow(&mut self) -> anyhow::Error {
        let what = format!(
            "the server took more than {} s over one {} and sent only {} bytes in that time; stopped waiting for it",
            self.budget.waited.as_secs(),
            self.budget.what,
            self.budget.moved
        );
        self.misbehaved(what)
    }

    /// Reads what the server has into `read_buf`, returning how much: within the per-read timeout
    /// (`io_timeout`) and the command's deadline (`COMMAND_MIN_RATE`), and letting the other tasks of
    /// the thread run every `READS_PER_YIELD` reads.
    pub(crate) async fn read_some(&mut self) -> Result<usize> {
        self.budget.reads = self.budget.reads.wrapping_add(1);
        if self.budget.reads.is_multiple_of(READS_PER_YIELD) {
            smol::future::yield_now().await;
        }
        let Some(left) = self.budget.time_left() else { return Err(self.too_slow()) };
        let per_read = io_timeout();
        let label = self.label.clone();
        let read = self.stream.read(&mut self.read_buf);
        let timer = async {
            smol::Timer::after(left.min(per_read)).await;
            None
        };
        let waiting = std::time::Instant::now();
        let outcome = smol::future::or(async { Some(read.await) }, timer).await;
        self.budget.waited += waiting.elapsed();
        match outcome {
            Some(Ok(0)) => Err(ImapError::lost(&label, "the server closed the connection").into()),
            Some(Ok(n)) => {
                self.budget.moved += n as u64;
                Ok(n)
            }
            Some(Err(e)) => Err(anyhow::Error::new(e).context(ImapError::lost(&label, "reading from the server"))),
            None if left < per_read => Err(self.too_slow()),
            None => Err(anyhow::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", per_read.as_secs_f64()),
            ))
            .context(ImapError::lost(&label, "reading from the server"))),
        }
    }

    /// Hands `read_buf[start..end]` to imap-next (see `feed_client`).
    fn feed_client_from_buf(&mut self, start: usize, end: usize) -> Result<()> {
        let buf = std::mem::take(&mut self.read_buf);
        let fed = self.feed_client(&buf[start..end]);
        self.read_buf = buf;
        fed
    }

    /// Hands bytes to imap-next, counting them against the bounds of the answer and the command first.
    pub(crate) fn feed_client(&mut self, bytes: &[u8]) -> Result<()> {
        let what = self.budget.what;
        let ended = match self.framing.feed(bytes) {
            Ok(ended) => ended,
            Err(FramingBreak::Line) => {
                return Err(self.misbehaved(format!(
                    "the server sent a line of more than {} MiB without its line end in answer to {what}; stopped reading it",
                    LINE_LIMIT >> 20
                )));
            }
            Err(FramingBreak::Answer(0)) => {
                return Err(self.misbehaved(format!(
                    "the server sent one answer of more than {} MiB to {what}; stopped reading it",
                    RESPONSE_LIMIT >> 20
                )));
            }
            Err(FramingBreak::Answer(literal)) => {
                return Err(self.misbehaved(format!(
                    "the server announced a literal of {literal} bytes in an answer to {what}, more than the {} MiB \
                     an answer may hold; stopped reading it",
                    RESPONSE_LIMIT >> 20
                )));
            }
        };
        if let Some(what) = self.budget.count(ended, bytes.len() as u64) {
            return Err(self.misbehaved(what));
        }
        self.client.enqueue_input(bytes);
        Ok(())
    }

    pub(super) async fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.budget.moved += bytes.len() as u64;
        let label = self.label.clone();
        with_timeout(&label, "writing to the server", true, self.stream.write_all(bytes)).await?;
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> Result<()> {
        let label = self.label.clone();
        with_timeout(&label, "writing to the server", true, self.stream.flush()).await
    }

    pub(super) fn tag(&mut self) -> Tag<'static> {
        let text = format!("P{}", self.next_tag);
        self.next_tag += 1;
        // "P" followed by digits is always a valid tag.
        Tag::try_from(text).unwrap_or_else(|_| Tag::unvalidated("P0"))
    }

    /// Sends commands in one go (pipelined) and waits for all their tagged answers. Untagged data goes
    /// to `on_data` as it arrives, so a large FETCH is never collected in memory.
    pub async fn run_many(
        &mut self,
        bodies: Vec<CommandBody<'static>>,
        kept: Answers,
        on_data: &mut dyn FnMut(Data<'static>) -> Result<()>,
    ) -> Result<Vec<Answer>> {
        let mut attempt = 0;
        loop {
            let answers = self.run_many_once(bodies.clone(), kept, on_data).await?;
            if !self.wait_if_throttled(&answers, &mut attempt).await {
                return Ok(answers);
            }
        }
    }

    /// Quirk `exchange_throttled` (Microsoft 365 / Exchange Online): "NO ... Request is throttled.
    /// Suggested Backoff Time: N milliseconds". The commands did nothing; waits as told and says to send
    /// them again, a few times, before the answers count as a failure.
    pub(super) async fn wait_if_throttled(&mut self, answers: &[Answer], attempt: &mut u32) -> bool {
        let Some(wait) = answers.iter().filter_map(throttle_delay).max() else { return false };
        if *attempt >= 6 {
            return false;
        }
        *attempt += 1;
        self.throttled += 1;
        log::warn!("{}: the server is throttling; waiting {} ms as it asks", self.label, wait.as_millis());
        smol::Timer::after(wait).await;
        true
    }

    async fn run_many_once(
        &mut self,
        bodies: Vec<CommandBody<'static>>,
        kept: Answers,
        on_data: &mut dyn FnMut(Data<'static>) -> Result<()>,
    ) -> Result<Vec<Answer>> {
        self.begin_command(bodies.first().map_or("command", CommandBody::name), kept)?;
        let mut tags = Vec::new();
        for body in bodies {
            let tag = self.tag();
            tags.push(tag.clone());
            self.client.enqueue_command(Command { tag, body });
        }
        let mut answers: BTreeMap<String, Answer> = BTreeMap::new();
        while answers.len() < tags.len() {
            match self.client.next() {
                Ok(event) => self.on_event(event, &tags, &mut answers, on_data).map_err(|e| self.left_mid_command(e))?,
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
        self.flush().await?;
        Ok(tags.iter().filter_map(|t| answers.remove(t.inner())).collect())
    }

    pub(super) fn on_event(
        &mut self,
        event: Event,
        tags: &[Tag<'static>],
        answers: &mut BTreeMap<String, Answer>,
        on_data: &mut dyn FnMut(Data<'static>) -> Result<()>,
    ) -> Result<()> {
        match event {
            Event::DataReceived { data } => {
                match &data {
                    Data::Capability(caps) => {
                        self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                    }
                    Data::Exists(n) => self.exists = *n,
                    _ => {}
                }
                on_data(data)?;
            }
            Event::StatusReceived { status } => match status {
                Status::Tagged(tagged) => {
                    if tags.iter().any(|t| t == &tagged.tag) {
                        if let Some(Code::Capability(caps)) = &tagged.body.code {
                            self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                        }
                        answers.insert(tagged.tag.inner().to_string(), answer_of(tagged.body));
                    }
                }
                Status::Untagged(body) => {
                    // Only what SELECT reads is kept, and only the latest few.
                    if let Some(code @ (Code::UidValidity(_) | Code::UidNext(_) | Code::HighestModSeq(_))) = body.code {
                        if self.pending_codes.len() >= PENDING_CODES_LIMIT {
                            self.pending_codes.remove(0);
                        }
                        self.pending_codes.push(code);
                    }
                }
                Status::Bye(bye) => {
                    let reason = bye.text.to_string();
                    return Err(ImapError::ConnectionLost {
                        label: self.label.clone(),
                        what: format!("{BYE_WITH_REASON}{reason}"),
                        bye: Some(reason),
                    }
                    .into());
                }
            },
            Event::CommandRejected { status, .. } => {
                // A synchronizing literal was refused: the command is over, report the words.
                if let Status::Tagged(tagged) = status {
                    answers.insert(tagged.tag.inner().to_string(), answer_of(tagged.body));
                } else {
                    return Err(self.misbehaved("the server refused a literal without saying which command it ended".into()));
                }
            }
            Event::AuthenticateStatusReceived { status: Status::Tagged(tagged), .. } => {
                if let Some(Code::Capability(caps)) = &tagged.body.code {
                    self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                }
                answers.insert(tagged.tag.inner().to_string(), answer_of(tagged.body));
            }
            Event::AuthenticateContinuationRequestReceived { .. } => {
                // We always send the initial response with the command (SASL-IR) or as the single
                // continuation below; a second challenge means the server did not accept it.
                self.client
                    .set_authenticate_data(imap_next::imap_types::auth::AuthenticateData::Cancel)
                    .map_err(|_| anyhow!("{}: the server asked for more login data", self.label))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// One command whose untagged data we keep (small answers: LIST, STATUS, NAMESPACE...).
    pub async fn run(&mut self, body: CommandBody<'static>) -> Result<(Answer, Vec<Data<'static>>)> {
        let mut data = Vec::new();
        let mut answers = self
            .run_many(vec![body], Answers::Kept, &mut |d| {
                data.push(d);
                Ok(())
            })
            .await?;
        let answer = answers.pop().ok_or_else(|| anyhow!("{}: no answer to a command", self.label))?;
        Ok((answer, data))
    }

    async fn simple(&mut self, body: CommandBody<'static>) -> Result<Answer> {
        Ok(self.run(body).await?.0)
    }

    async fn ok(&mut self, body: CommandBody<'static>, what: &str) -> Result<Vec<Data<'static>>> {
        let command = body.name();
        let (answer, data) = self.run(body).await?;
        if !answer.is_ok() {
            return Err(self.refused(command, format!("{what} failed: {}", answer.words()), &answer));
        }
        Ok(data)
    }

    /// This server's quirks, as computed when it logged us in (before that, what its kind alone says,
    /// so a Microsoft 365 session is never taken for Dovecot).
    pub fn quirks(&self) -> Quirks {
        self.quirks
    }

    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.contains(&capability.to_ascii_uppercase())
    }

    pub async fn refresh_capabilities(&mut self) -> Result<()> {
        self.ok(CommandBody::Capability, "CAPABILITY").await?;
        Ok(())
    }

    /// Logs in with AUTHENTICATE PLAIN when offered (one round trip with SASL-IR), else LOGIN. The
    /// error names the side and quotes the server, never the password.
    pub async fn login(&mut self, user: &str, password: &Secret) -> Result<()> {
        if self.capabilities.is_empty() {
            self.refresh_capabilities().await?;
        }
        if self.has("LOGINDISABLED") {
            bail!("{}: the server does not allow login on an unencrypted connection; use implicit or starttls", self.label);
        }
        let answer = if self.has("AUTH=PLAIN") {
            let mut initial = Vec::new();
            initial.push(0);
            initial.extend_from_slice(user.as_bytes());
            initial.push(0);
            initial.extend_from_slice(password.expose().as_bytes());
            let body = CommandBody::authenticate_with_ir(imap_next::imap_types::auth::AuthMechanism::Plain, initial);
            self.run_auth(body).await?
        } else {
            let body = CommandBody::login(user.to_string(), password.expose().to_string())
                .map_err(|_| anyhow!("{}: the login name or password has characters IMAP LOGIN cannot carry", self.label))?;
            self.simple(body).await?
        };
        if !answer.is_ok() {
            return Err(self.refused("LOGIN", format!("login as {user} was refused: {}", answer.words()), &answer));
        }
        if !answer_has_caps(&answer) {
            self.refresh_capabilities().await?;
        }
        self.quirks = Quirks::of(self.kind, &self.capabilities, &self.greeting);
        Ok(())
    }

    /// Logs in with AUTHENTICATE XOAUTH2 (an OAuth2 access token, e.g. Microsoft 365's). The error says
    /// what to check in the app registration, never the token.
    pub async fn login_xoauth2(&mut self, user: &str, token: &Secret) -> Result<()> {
        if self.capabilities.is_empty() {
            self.refresh_capabilities().await?;
        }
        if !self.has("AUTH=XOAUTH2") {
            bail!("{}: the server does not offer AUTHENTICATE XOAUTH2", self.label);
        }
        let body =
            CommandBody::authenticate_with_ir(imap_next::imap_types::auth::AuthMechanism::XOAuth2, crate::oauth::xoauth2(user, token));
        let answer = self.run_auth(body).await?;
        if !answer.is_ok() {
            let what = format!(
                "the OAuth2 login as {user} was refused ({}); check that the app has the IMAP.AccessAsApp \
                 permission with admin consent, and that its service principal has FullAccess to this mailbox \
                 (Add-MailboxPermission)",
                answer.words()
            );
            return Err(self.refused("AUTHENTICATE", what, &answer));
        }
        if !answer_has_caps(&answer) {
            self.refresh_capabilities().await?;
        }
        self.quirks = Quirks::of(self.kind, &self.capabilities, &self.greeting);
        Ok(())
    }

    async fn run_auth(&mut self, body: CommandBody<'static>) -> Result<Answer> {
        let with_ir = self.has("SASL-IR");
        let body = if with_ir {
            body
        } else {
            match body {
                CommandBody::Authenticate { mechanism, initial_response } => {
                    // Without SASL-IR the initial response goes as the first continuation answer.
                    self.begin_command("AUTHENTICATE", Answers::Kept)?;
                    let tag = self.tag();
                    let handle = self.client.enqueue_command(Command {
                        tag: tag.clone(),
                        body: CommandBody::Authenticate { mechanism, initial_response: None },
                    });
                    let _ = handle;
                    let mut answers = BTreeMap::new();
                    let tags = vec![tag.clone()];
                    let mut sent_ir = false;
                    while answers.is_empty() {
                        match self.client.next() {
                            Ok(Event::AuthenticateContinuationRequestReceived { .. }) if !sent_ir => {
                                sent_ir = true;
                                let data = initial_response.as_ref().map(|s| s.declassify().to_vec()).unwrap_or_default();
                                self.client
                                    .set_authenticate_data(imap_next::imap_types::auth::AuthenticateData::r#continue(data))
                                    .map_err(|_| anyhow!("{}: login data out of order", self.label))?;
                            }
                            Ok(event) => self.on_event(event, &tags, &mut answers, &mut |_| Ok(()))?,
                            Err(interrupt) => self.handle_interrupt(interrupt).await?,
                        }
                    }
                    self.flush().await?;
                    return answers.remove(tag.inner()).ok_or_else(|| anyhow!("no answer to AUTHENTICATE"));
                }
                other => other,
            }
        };
        self.simple(body).await
    }

    /// ENABLE CONDSTORE (or QRESYNC) when offered, so SELECT reports HIGHESTMODSEQ and FETCH takes
    /// CHANGEDSINCE. Returns whether mod-sequences are available.
    pub async fn enable_condstore(&mut self) -> Result<bool> {
        if !self.has("CONDSTORE") && !self.has("QRESYNC") {
            return Ok(false);
        }
        if self.has("ENABLE") {
            let caps = vec![imap_next::imap_types::extensions::enable::CapabilityEnable::CondStore];
            let body = CommandBody::Enable { capabilities: Vec1::try_from(caps).map_err(|_| anyhow!("empty ENABLE"))? };
            let answer = self.simple(body).await?;
            return Ok(answer.is_ok());
        }
        Ok(true)
    }

    /// The personal namespace: prefix and delimiter ("INBOX." and '.' on old hosts).
    pub async fn personal_namespace(&mut self) -> Result<Option<(String, Option<char>)>> {
        if !self.has("NAMESPACE") {
            return Ok(None);
        }
        let data = self.ok(CommandBody::Namespace, "NAMESPACE").await?;
        for item in data {
            if let Data::Namespace { personal, .. } = item
                && let Some(first) = personal.first()
            {
                let prefix = String::from_utf8_lossy(first.prefix.as_ref()).into_owned();
                return Ok(Some((prefix, first.delimiter.as_ref().map(|d| d.inner()))));
            }
        }
        Ok(None)
    }

    /// LIST "" "*": every folder with its attributes (special-use ones included, as Dovecot and most
    /// servers send them on a plain LIST).
    pub async fn list(&mut self) -> Result<Vec<ListedFolder>> {
        self.list_kind(false).await
    }

    /// LSUB "" "*": the subscribed folders.
    pub async fn lsub(&mut self) -> Result<Vec<ListedFolder>> {
        self.list_kind(true).await
    }

    async fn list_kind(&mut self, lsub: bool) -> Result<Vec<ListedFolder>> {
        let reference = Mailbox::try_from("").map_err(|_| anyhow!("empty reference"))?;
        let pattern = ListMailbox::try_from("*").map_err(|_| anyhow!("bad pattern"))?;
        let body = if lsub {
            CommandBody::Lsub { reference, mailbox_wildcard: pattern }
        } else {
            CommandBody::List { reference, mailbox_wildcard: pattern }
        };
        let data = self.ok(body, if lsub { "LSUB" } else { "LIST" }).await?;
        let mut out = Vec::new();
        for item in data {
            let (items, delimiter, mailbox) = match item {
                Data::List { items, delimiter, mailbox } | Data::Lsub { items, delimiter, mailbox } => (items, delimiter, mailbox),
                _ => continue,
            };
            out.push(ListedFolder {
                wire_name: mailbox_wire(&mailbox),
                delimiter: delimiter.map(|d| d.inner()),
                attributes: items.iter().map(attribute_name).collect(),
            });
        }
        out.sort_by(|a, b| a.wire_name.cmp(&b.wire_name));
        Ok(out)
    }

    pub async fn status(&mut self, wire_name: &str, condstore: bool) -> Result<FolderStatus> {
        let mut names = vec![StatusDataItemName::Messages, StatusDataItemName::UidNext, StatusDataItemName::UidValidity];
        if condstore {
            names.push(StatusDataItemName::HighestModSeq);
        }
        let body = CommandBody::Status { mailbox: mailbox_of(wire_name)?, item_names: names.into() };
        let data = self.ok(body, &format!("STATUS {wire_name}")).await?;
        let mut status = FolderStatus::default();
        for item in data {
            if let Data::Status { items, .. } = item {
                for it in items.iter() {
                    match it {
                        StatusDataItem::Messages(n) => status.messages = *n,
                        StatusDataItem::UidNext(n) => status.uidnext = Some(n.get()),
                        StatusDataItem::UidValidity(n) => status.uidvalidity = Some(n.get()),
                        StatusDataItem::HighestModSeq(n) => status.highest_modseq = Some(*n),
                        _ => {}
                    }
                }
            }
        }
        Ok(status)
    }

    /// SELECT (read-write) or EXAMINE (read-only, used on the source so nothing there changes).
    pub async fn select(&mut self, wire_name: &str, read_only: bool, condstore: bool) -> Result<Selected> {
        self.pending_codes.clear();
        self.exists = 0;
        let mailbox = mailbox_of(wire_name)?;
        let parameters = if condstore { vec![SelectParameter::CondStore] } else { vec![] };
        let body = if read_only { CommandBody::Examine { mailbox, parameters } } else { CommandBody::Select { mailbox, parameters } };
        let (answer, _) = self.run(body).await?;
        if !answer.is_ok() {
            let command = if read_only { "EXAMINE" } else { "SELECT" };
            return Err(self.refused(command, format!("cannot open folder {wire_name}: {}", answer.words()), &answer));
        }
        let mut selected = Selected { exists: self.exists, ..Selected::default() };
        for code in self.pending_codes.drain(..).chain(answer.code) {
            match code {
                Code::UidValidity(v) => selected.uidvalidity = Some(v.get()),
                Code::UidNext(v) => selected.uidnext = Some(v.get()),
                Code::HighestModSeq(v) => selected.highest_modseq = Some(v.get()),
                _ => {}
            }
        }
        Ok(selected)
    }

    /// UID FETCH with the given items over a UID set; each message's answer goes to `on_message` as it
    /// arrives. `changed_since` adds the CONDSTORE modifier.
    pub async fn uid_fetch(
        &mut self,
        uid_sets: &[String],
        items: &[FetchItem],
        changed_since: Option<u64>,
        on_message: &mut dyn FnMut(MessageMeta) -> Result<()>,
    ) -> Result<()> {
        let requests: Vec<(&str, &[FetchItem])> = uid_sets.iter().map(|set| (set.as_str(), items)).collect();
        self.uid_fetch_each(&requests, changed_since, on_message).await
    }

    /// Like `uid_fetch`, but each pipelined command has its own UID set and items: the partial ranges
    /// of one large message go out together, so a message in many small slices costs one round trip
    /// per pipeline rather than one per slice.
    pub async fn uid_fetch_each(
        &mut self,
        requests: &[(&str, &[FetchItem])],
        changed_since: Option<u64>,
        on_message: &mut dyn FnMut(MessageMeta) -> Result<()>,
    ) -> Result<()> {
        let mut bodies = Vec::new();
        for &(set, items) in requests {
            let sequence_set = SequenceSet::try_from(set).map_err(|_| anyhow!("bad UID set {set}"))?;
            let names: Vec<MessageDataItemName<'static>> = items.iter().map(FetchItem::name).collect();
            let modifiers = changed_since.and_then(NonZeroU64::new).map(|m| vec![FetchModifier::ChangedSince(m)]).unwrap_or_default();
            bodies.push(CommandBody::Fetch {
                sequence_set,
                macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
                uid: true,
                modifiers,
            });
        }
        let answers = self
            .run_many(bodies, Answers::Streamed, &mut |data| {
                if let Data::Fetch { items, .. } = data {
                    let meta = meta_of(items.into_inner());
                    if meta.uid != 0 {
                        on_message(meta)?;
                    }
                }
                Ok(())
            })
            .await?;
        for answer in answers {
            if !answer.is_ok() {
                return Err(self.refused("FETCH", format!("FETCH failed: {}", answer.words()), &answer));
            }
        }
        Ok(())
    }

    /// UID SEARCH ALL: every UID in the selected folder. (Passes use UID FETCH ranges instead, which
    /// also bring sizes; this stays for tools and diagnostics that need only the UIDs.)
    #[allow(dead_code)]
    pub async fn uid_search_all(&mut self) -> Result<Vec<u32>> {
        let body = CommandBody::search(None, Vec1::from(imap_next::imap_types::search::SearchKey::All), true);
        let data = self.ok(body, "UID SEARCH").await?;
        let mut uids = Vec::new();
        for item in data {
            if let Data::Search(found, ..) = item {
                uids.extend(found.iter().map(|u| u.get()));
            }
        }
        uids.sort_unstable();
        Ok(uids)
    }

    pub async fn create(&mut self, wire_name: &str) -> Result<Answer> {
        self.simple(CommandBody::Create { mailbox: mailbox_of(wire_name)? }).await
    }

    pub async fn subscribe(&mut self, wire_name: &str) -> Result<()> {
        self.ok(CommandBody::Subscribe { mailbox: mailbox_of(wire_name)? }, &format!("SUBSCRIBE {wire_name}")).await?;
        Ok(())
    }

    /// UID STORE +FLAGS/-FLAGS .SILENT on a UID set.
    pub async fn uid_store_set(&mut self, uid_set: &str, add: bool, flags: &[String]) -> Result<Answer> {
        let flags: Vec<Flag<'static>> = flags.iter().filter_map(|f| Flag::try_from(f.as_str()).ok().map(|f| f.into_static())).collect();
        if flags.is_empty() {
            return Ok(Answer { kind: StatusKind::Ok, code: None, text: String::new() });
        }
        let body = CommandBody::Store {
            sequence_set: SequenceSet::try_from(uid_set).map_err(|_| anyhow!("bad UID set {uid_set}"))?,
            kind: if add { StoreType::Add } else { StoreType::Remove },
            response: StoreResponse::Silent,
            flags,
            uid: true,
            modifiers: vec![],
        };
        self.simple(body).await
    }

    pub fn supports_multiappend(&self) -> bool {
        self.has("MULTIAPPEND")
    }

    /// APPENDs messages to one folder. With MULTIAPPEND (RFC 3502) several go in one command and one
    /// server transaction; otherwise one command each. The body is streamed from `item.body` slice by
    /// slice with LITERAL+ when offered, else after the server's continuation. Returns one answer per
    /// command sent, and calls `after_literal` once the last literal byte is written but before the
    /// answer is read (a journal point for tests).
    pub async fn append(
        &mut self,
        wire_name: &str,
        items: &mut [AppendItem<'_>],
        after_literal: &mut dyn FnMut() -> Result<()>,
    ) -> Result<AppendAnswer> {
        let literal_plus = self.has("LITERAL+");
        self.begin_command("APPEND", Answers::Kept)?;
        let tag = self.tag();
        let mut line = format!("{} APPEND {}", tag.inner(), quote_mailbox(wire_name));
        self.pending_codes.clear();
        for (index, item) in items.iter_mut().enumerate() {
            if index > 0 {
                line.clear();
            }
            line.push_str(" (");
            line.push_str(&item.flags.iter().filter(|f| !f.eq_ignore_ascii_case("\\Recent")).cloned().collect::<Vec<_>>().join(" "));
            line.push(')');
            if let Some(date) = item.internal_date {
                line.push_str(&format!(" \"{date}\""));
            }
            line.push_str(&format!(" {{{}{}}}\r\n", item.size, if literal_plus { "+" } else { "" }));
            self.write_all(line.as_bytes()).await?;
            if !literal_plus {
                self.flush().await?;
                if let Some(refusal) = self.wait_continuation(&tag).await? {
                    return Ok(AppendAnswer { answer: refusal });
                }
            }
            let mut written: u64 = 0;
            let label = self.label.clone();
            let mid = |e: anyhow::Error| e.context(ImapError::lost(&label, "the connection was left in the middle of an APPEND"));
            loop {
                let chunk = (item.body)().map_err(mid)?;
                if chunk.is_empty() {
                    break;
                }
                written += chunk.len() as u64;
                if written > item.size {
                    return Err(mid(anyhow!("staged body is longer than its recorded size")));
                }
                self.write_all(&chunk).await?;
            }
            if written != item.size {
                return Err(mid(anyhow!("staged body is {written} bytes, recorded size {}", item.size)));
            }
        }
        self.write_all(b"\r\n").await?;
        self.flush().await?;
        after_literal()?;
        let tags = vec![tag.clone()];
        let mut answers = BTreeMap::new();
        while answers.is_empty() {
            match self.client.next() {
                Ok(Event::ContinuationRequestReceived { .. }) => {}
                Ok(event) => self.on_event(event, &tags, &mut answers, &mut |_| Ok(()))?,
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
        let answer = answers.remove(tag.inner()).ok_or_else(|| anyhow!("no answer to APPEND"))?;
        Ok(AppendAnswer { answer })
    }

    /// Waits for "+" after a synchronizing literal; a tagged NO/BAD instead ends the command.
    async fn wait_continuation(&mut self, tag: &Tag<'static>) -> Result<Option<Answer>> {
        let tags = vec![tag.clone()];
        let mut answers = BTreeMap::new();
        loop {
            match self.client.next() {
                Ok(Event::ContinuationRequestReceived { .. }) => return Ok(None),
                Ok(event) => {
                    self.on_event(event, &tags, &mut answers, &mut |_| Ok(()))?;
                    if let Some(answer) = answers.remove(tag.inner()) {
                        return Ok(Some(answer));
                    }
                }
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
    }

    /// GETQUOTAROOT on INBOX: (used KiB, limit KiB) of the tightest STORAGE root.
    pub async fn storage_quota(&mut self) -> Result<Option<(u64, u64)>> {
        if !self.has("QUOTA") {
            return Ok(None);
        }
        let body = CommandBody::GetQuotaRoot { mailbox: Mailbox::Inbox };
        let (answer, data) = self.run(body).await?;
        if !answer.is_ok() {
            return Ok(None);
        }
        let mut best: Option<(u64, u64)> = None;
        for item in data {
            if let Data::Quota { quotas, .. } = item {
                for q in quotas.as_ref() {
                    if matches!(q.resource, imap_next::imap_types::extensions::quota::Resource::Storage) {
                        let free = q.limit.saturating_sub(q.usage);
                        if best.map(|(u, l)| l.saturating_sub(u) > free).unwrap_or(true) {
                            best = Some((q.usage, q.limit));
                        }
                    }
                }
            }
        }
        Ok(best)
    }

    /// The APPENDLIMIT capability value, if the server announces a global one.
    pub fn append_limit(&self) -> Option<u64> {
        self.capabilities.iter().find_map(|c| c.strip_prefix("APPENDLIMIT=").and_then(|v| v.parse().ok()))
    }

    pub async fn logout(mut self) {
        let _ = smol::future::or(
            async {
                let _ = self.simple(CommandBody::Logout).await;
            },
            async {
                smol::Timer::after(Duration::from_secs(2)).await;
            },
        )
        .await;
    }
}

/// The wait a throttled answer asks for ("Suggested Backoff Time: N milliseconds"), capped at a minute.
pub fn throttle_delay(answer: &Answer) -> Option<Duration> {
    if answer.is_ok() {
        return None;
    }
    let text = answer.text.to_ascii_lowercase();
    if !text.contains("throttl") {
        return None;
    }
    let ms = text
        .split("backoff time:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u64>().ok())
        .unwrap_or(1000);
    Some(Duration::from_millis(ms.clamp(100, 60_000)))
}

/// The answer to an APPEND (one command, however many messages it carried).
pub struct AppendAnswer {
    pub answer: Answer,
}

impl AppendAnswer {
    /// The UIDVALIDITY and UIDs from `[APPENDUID v uid-set]`.
    pub fn appended_uids(&self) -> Option<(u32, Vec<u32>)> {
        match &self.answer.code {
            Some(Code::AppendUid { uid_validity, uid }) => Some((uid_validity.get(), vec![uid.get()])),
            // Quirk `appenduid_uid_set` (imap-codec 2.0.0-alpha.10, any server doing MULTIAPPEND with
            // UIDPLUS, e.g. Dovecot): the codec types APPENDUID with a single UID, so the uid-set that
            // MULTIAPPEND gets back ("APPENDUID 17 4:6") arrives as an unparsed code, read here.
            Some(Code::Other(other)) => parse_appenduid(&String::from_utf8_lossy(other.inner())),
            _ => None,
        }
    }
}

/// How an error says the server ended the connection itself with `* BYE` and a reason.
const BYE_WITH_REASON: &str = "the server closed the connection: ";

/// The reason a server gave with its `* BYE`, if it hung up on purpose (not a cut network).
#[cfg(test)]
pub fn bye_reason(e: &anyhow::Error) -> Option<&str> {
    match kind_of(e)? {
        ImapError::ConnectionLost { bye: Some(reason), .. } | ImapError::HungUpOnMessage { reason, .. } => Some(reason),
        _ => None,
    }
}

/// Parses "APPENDUID <validity> <uid-set>" into the validity and the UIDs in order.
pub fn parse_appenduid(text: &str) -> Option<(u32, Vec<u32>)> {
    let mut words = text.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("APPENDUID") {
        return None;
    }
    let validity: u32 = words.next()?.parse().ok()?;
    let mut uids = Vec::new();
    for part in words.next()?.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1_000_000 {
                    return None;
                }
                uids.extend(a..=b);
            }
            None => uids.push(part.parse().ok()?),
        }
    }
    Some((validity, uids))
}

/// What to FETCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchItem {
    Uid,
    Flags,
    InternalDate,
    Size,
    ModSeq,
    /// BODY.PEEK[HEADER.FIELDS (...)]: a few header fields, e.g. Subject and Date for a report.
    HeaderFields(&'static [&'static str]),
}

impl FetchItem {
    fn name(&self) -> MessageDataItemName<'static> {
        match *self {
            FetchItem::Uid => MessageDataItemName::Uid,
            FetchItem::Flags => MessageDataItemName::Flags,
            FetchItem::InternalDate => MessageDataItemName::InternalDate,
            FetchItem::Size => MessageDataItemName::Rfc822Size,
            FetchItem::ModSeq => MessageDataItemName::ModSeq,
            FetchItem::HeaderFields(fields) => {
                let names: Vec<AString<'static>> = fields.iter().filter_map(|f| AString::try_from(*f).ok()).collect();
                let section = Vec1::try_from(names).map(|names| Section::HeaderFields(None, names)).unwrap_or(Section::Header(None));
                MessageDataItemName::BodyExt { section: Some(section), partial: None, peek: true }
            }
        }
    }
}

fn meta_of(items: Vec<MessageDataItem<'static>>) -> MessageMeta {
    let mut meta = MessageMeta::default();
    for item in items {
        match item {
            MessageDataItem::Uid(uid) => meta.uid = uid.get(),
            MessageDataItem::Rfc822Size(size) => meta.size = Some(size),
            MessageDataItem::Flags(flags) => {
                meta.flags = flags
                    .iter()
                    .filter_map(|f| match f {
                        FlagFetch::Flag(flag) => Some(flag.to_string()),
                        FlagFetch::Recent => None,
                    })
                    .collect();
            }
            MessageDataItem::InternalDate(date) => meta.internal_date = Some(format_date(&date)),
            MessageDataItem::ModSeq(m) => meta.modseq = Some(m.get()),
            MessageDataItem::BodyExt { section: Some(_), data, .. } => {
                meta.header = Some(data.0.map(|b| b.into_inner().into_owned()).unwrap_or_default());
            }
            _ => {}
        }
    }
    meta
}

/// IMAP date-time as APPEND takes it back: ` 1-Jan-2020 10:00:00 +0100`.
pub fn format_date(date: &imap_next::imap_types::datetime::DateTime) -> String {
    date.as_ref().format("%e-%b-%Y %H:%M:%S %z").to_string()
}

fn answer_of(body: StatusBody<'static>) -> Answer {
    Answer { kind: body.kind, code: body.code, text: body.text.to_string() }
}

fn answer_has_caps(answer: &Answer) -> bool {
    matches!(answer.code, Some(Code::Capability(_)))
}

fn attribute_name(attr: &FlagNameAttribute<'_>) -> String {
    attr.to_string()
}

/// The wire bytes of a mailbox name as text (modified UTF-7 is ASCII; raw UTF-8 passes through).
pub fn mailbox_wire(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

fn mailbox_of(wire_name: &str) -> Result<Mailbox<'static>> {
    let astring = AString::try_from(wire_name.to_string()).map_err(|_| anyhow!("folder name {wire_name:?} cannot be sent to IMAP"))?;
    Ok(Mailbox::from(astring))
}

/// A mailbox name as an IMAP quoted string, for the APPEND line we write ourselves.
fn quote_mailbox(wire_name: &str) -> String {
    let mut out = String::with_capacity(wire_name.len() + 2);
    out.push('"');
    for c in wire_name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn client_options(discard_greeting: bool) -> Options {
    let mut options = Options::default();
    // Bodies never come through imap-next (see `RESPONSE_LIMIT`); `Framing` stops a larger answer early.
    options.max_response_size = RESPONSE_LIMIT;
    options.discard_greeting = discard_greeting;
    // Quirk `bare_lf_lines` (seen on old Courier and some appliances): lines ending in LF alone.
    options.crlf_relaxed = true;
    options
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

    #[test]
    fn appenduid_sets() {
        assert_eq!(parse_appenduid("APPENDUID 17 4:6"), Some((17, vec![4, 5, 6])));
        assert_eq!(parse_appenduid("APPENDUID 17 4,9,11:12"), Some((17, vec![4, 9, 11, 12])));
        assert_eq!(parse_appenduid("COPYUID 1 2 3"), None);
        assert_eq!(parse_appenduid("APPENDUID x 1"), None);
    }

    #[test]
    fn throttle_answers() {
        let a = |kind, text: &str| Answer { kind, code: None, text: text.into() };
        assert_eq!(
            throttle_delay(&a(StatusKind::No, "Request is throttled. Suggested Backoff Time: 1500 milliseconds")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(throttle_delay(&a(StatusKind::No, "Request is throttled.")), Some(Duration::from_millis(1000)));
        assert_eq!(throttle_delay(&a(StatusKind::No, "Mailbox does not exist")), None);
        assert_eq!(throttle_delay(&a(StatusKind::Ok, "throttled")), None);
    }

    #[test]
    fn literal_announcements_as_the_fragmentizer_reads_them() {
        assert_eq!(announced_literal(b"* LIST () \"/\" {5}\r\n"), Some(5));
        assert_eq!(announced_literal(b"{5+}\n"), Some(5));
        assert_eq!(announced_literal(b"x ~{0}\r\n"), Some(0));
        assert_eq!(announced_literal(b"{4294967295}\r\n"), Some(u32::MAX));
        assert_eq!(announced_literal(b"{4294967296}\r\n"), None);
        assert_eq!(announced_literal(b"{+5}\r\n"), None);
        assert_eq!(announced_literal(b"{}\r\n"), None);
        assert_eq!(announced_literal(b"5}\r\n"), None);
        assert_eq!(announced_literal(b"{5}\r\r\n"), None);
        assert_eq!(announced_literal(b"{5} \r\n"), None);
        assert_eq!(announced_literal(b"* 3 EXISTS\r\n"), None);
    }

    #[test]
    fn framing_counts_answers_across_reads_and_literals() {
        let mut framing = Framing::default();
        // An answer with a literal whose bytes hold a line end and a fake announcement, split anywhere.
        let stream = b"* LIST () \"/\" {7}\r\na\r\n{99}\r\n* 2 EXISTS\nP1 OK done\r\n";
        for split in 0..stream.len() {
            let mut framing = Framing::default();
            let ended = framing.feed(&stream[..split]).unwrap() + framing.feed(&stream[split..]).unwrap();
            assert_eq!(ended, 3, "split at {split}");
            assert_eq!((framing.line, framing.literal, framing.answer), (0, 0, 0));
        }
        assert_eq!(framing.feed(b"* OK [ALERT] par"), Ok(0));
        assert_eq!(framing.feed(b"tial\r\n"), Ok(1));
    }

    #[test]
    fn framing_stops_a_line_without_end_and_a_literal_too_large() {
        let mut framing = Framing::default();
        let chunk = vec![b'x'; READ_BUF];
        let mut fed = 0;
        let broke = loop {
            match framing.feed(&chunk) {
                Ok(_) => fed += chunk.len(),
                Err(broke) => break broke,
            }
            assert!(fed <= LINE_LIMIT, "read past the line limit");
        };
        assert_eq!(broke, FramingBreak::Line);
        let mut framing = Framing::default();
        let announced = format!("* LIST () \"/\" {{{}}}\r\n", RESPONSE_LIMIT);
        assert_eq!(framing.feed(announced.as_bytes()), Err(FramingBreak::Answer(u64::from(RESPONSE_LIMIT))));
        // Many lines of one answer, each below the line limit, add up to the answer limit.
        let mut framing = Framing::default();
        let line = format!("* LIST () \"/\" {{{}}}\r\n", LINE_LIMIT / 2);
        let literal = vec![b'a'; LINE_LIMIT / 2];
        let broke = (0..100).find_map(|_| framing.feed(line.as_bytes()).and_then(|_| framing.feed(&literal)).err());
        assert!(matches!(broke, Some(FramingBreak::Answer(_))), "{broke:?}");
    }

    #[test]
    fn a_command_has_its_grace_then_a_second_per_kibibyte_moved() {
        let mut budget = Budget::new("LIST", Answers::Kept, 0);
        budget.waited = command_grace() + Duration::from_secs(5);
        assert_eq!(budget.time_left(), None, "a silent command is over after its grace");
        budget.moved = 10 * COMMAND_MIN_RATE;
        assert!(budget.time_left().is_some_and(|left| left <= Duration::from_secs(5)), "10 KiB buy 10 s");
        let mut budget = Budget::new("LIST", Answers::Kept, 0);
        assert_eq!(budget.count(UNTAGGED_LIMIT, 100), None);
        let over = budget.count(1, 0).expect("one answer too many");
        assert_eq!(over, "the server sent more than 100000 untagged answers to one LIST; stopped reading it");
        let mut streamed = Budget::new("UID FETCH", Answers::Streamed, 1_000_000);
        assert_eq!(streamed.count(2_000_000 + UNTAGGED_LIMIT, u64::MAX / 2), None, "a folder's worth of FETCH answers");
        assert!(streamed.count(1, 0).is_some());
        let mut claims_billions = Budget::new("UID FETCH", Answers::Streamed, u32::MAX);
        assert!(claims_billions.count(10_000_000 + UNTAGGED_LIMIT + 1, 0).is_some());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_mailbox("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(normalize_fingerprint("AB:cd:01"), "abcd01");
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
