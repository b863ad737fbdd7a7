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
//! accounts of the thread run now and then (see `stream`). A server that breaks a bound fails with
//! `ServerMisbehaved`, and its connection is not used again.
//!
//! What went wrong is decided here, where it happens, as an `ImapError` at the root (or as context) of
//! the error chain: the connection lost, a command refused, throttling that did not stop, a hang-up
//! on a message, a broken bound. Callers ask `kind_of`, or `failure::policy` what to do; never the
//! text.
//!
//! The files: `connection` reaches the server (TCP, TLS, certificate pins); `stream` moves its bytes
//! under the bounds and deadlines; `session` is the command loop, greeting and login; `commands` the
//! commands on a logged-in session; `compress` COMPRESS=DEFLATE and when a connection is worth it; `probe` the setup test (reach, TLS and its certificate, greeting); `body_fetch` the streamed body FETCH; `response` the shapes
//! answers are read into; `error` the kinds of failure; `transcript_tests` recorded exchanges played
//! against the real session. This file is the public surface: everything the rest of the crate names
//! is re-exported here, as `crate::imap::...`.

mod changes;
mod commands;
mod compress;
mod connection;
mod error;
mod probe;
mod response;
mod session;
mod stream;

pub(crate) mod body_fetch;
#[cfg(test)]
mod transcript_tests;

pub use body_fetch::{BodyRequest, BodySink};
pub use changes::in_ranges;
pub use commands::{AppendItem, AppendUnderWay, FetchItem};
pub use compress::{Compression, WAN_ROUND_TRIP};
pub use connection::{Conn, Endpoint, PinMismatch, TlsFailed, TlsMode, fetch_fingerprint, hex, io_timeout, raw_connect};
pub use error::{ImapError, ServerMisbehaved, kind_of};
#[cfg(test)]
pub use error::{bye_reason, is_misbehaving};
pub use probe::{CertificateInfo, SideTest, plain_allowed, test_endpoint};
pub use response::{Answer, AppendAnswer, FolderStatus, ListedFolder, Listing, MessageMeta, Selected, mailbox_wire, throttle_delay};
pub use session::Session;
pub use stream::{Answers, LINE_LIMIT, PENDING_CODES_LIMIT, RESPONSE_LIMIT};
