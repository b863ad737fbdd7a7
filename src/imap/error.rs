//! What can go wrong with a server, as types: `ImapError` (the kind `failure::policy` decides on,
//! each with the sentence it is shown with) and `ServerMisbehaved` (a broken bound). A kind is
//! decided where the failure arises and sits at the root, or as context, of the error chain; callers
//! ask `kind_of`, never the text.

use std::time::Duration;

use super::Answer;

/// A server broke one of the bounds in `stream` (`LINE_LIMIT` and the constants after it). The
/// sentence says what it did; the connection is left in the middle of an answer and is never used
/// again (`Session` refuses further commands), and the account fails for this pass without a retry in
/// it (`sync`), since the same server would do it again.
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
    /// The server broke one of the bounds in `stream` (a protocol violation).
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

/// How an error says the server ended the connection itself with `* BYE` and a reason.
pub(super) const BYE_WITH_REASON: &str = "the server closed the connection: ";

/// The reason a server gave with its `* BYE`, if it hung up on purpose (not a cut network).
#[cfg(test)]
pub fn bye_reason(e: &anyhow::Error) -> Option<&str> {
    match kind_of(e)? {
        ImapError::ConnectionLost { bye: Some(reason), .. } | ImapError::HungUpOnMessage { reason, .. } => Some(reason),
        _ => None,
    }
}
