//! What to do about a failure: one policy, by the kind of the error and never by its text, as mbsync's
//! `driver.h` sorts its results. The kind is decided where the failure arises (`imap::ImapError`,
//! our own database's `rusqlite::Error`, `StoppedHalfWay` here for the pull); `policy` turns it into how far the
//! failure reaches (`Scope`: a message, a folder, an account) and when to try again (`Retry`:
//! at once after reconnecting, on the next pass, never). `sync`, `pull`, `push` and `verify` act on that
//! answer: a message-scope failure is recorded against the message and the folder goes on, a folder-scope
//! one is recorded against the folder and the account goes on, an account-scope one ends the account's
//! pass (reconnecting first when it may be retried now). Our own database failing costs its folder.

use imap_next::imap_types::response::{Code, StatusKind};

use crate::imap::{Answer, ImapError};

/// Raised by the pull: a large message whose partial answers stopped before its listed end without
/// an error. Worth another try next pass, not a refusal (`policy`). Defined here, with the policy that
/// reads it, so that the policy depends on no phase.
#[derive(Debug)]
pub struct StoppedHalfWay {
    pub uid: u32,
    /// The byte it stopped at.
    pub at: u32,
}

impl std::fmt::Display for StoppedHalfWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "staging message UID {}: the source stopped sending it at byte {}", self.uid, self.at)
    }
}

impl std::error::Error for StoppedHalfWay {}

/// How far a failure reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// One message: it is skipped (or left for the next pass), its folder goes on.
    Message,
    /// One folder: recorded as a folder error, the account goes on with its other folders.
    Folder,
    /// One account: its pass ends here (the connection is gone, its mailbox takes no more mail).
    /// Nothing known reaches wider: every account runs its own pass.
    Account,
}

/// When to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// At once, on a new connection (within the pass's few reconnects).
    Now,
    /// On the next pass.
    NextPass,
    /// Never: the server will not do it (the message is recorded as skipped with its words).
    Never,
}

/// The one failure policy. Typed kinds only; an error of no known kind (our own sentences: a folder
/// without UIDVALIDITY, a mapping missing) stays with its folder and is tried again on the next pass.
pub fn policy(e: &anyhow::Error) -> (Scope, Retry) {
    if let Some(kind) = crate::imap::kind_of(e) {
        return match kind {
            // The pass reconnects and goes on where the journal says.
            ImapError::ConnectionLost { .. } | ImapError::HungUpOnMessage { .. } => (Scope::Account, Retry::Now),
            // The same server would do it again at once: the account waits for the next pass.
            ImapError::Misbehaved(_) => (Scope::Account, Retry::NextPass),
            // Nothing was done; the folder's messages come on the next pass, none is to blame.
            ImapError::Throttled { .. } => (Scope::Folder, Retry::NextPass),
            ImapError::Refused { command, answer, .. } => refused(command, answer),
        };
    }
    if e.downcast_ref::<StoppedHalfWay>().is_some() {
        return (Scope::Message, Retry::NextPass);
    }
    // Our own database failing says nothing about the messages (never refused for it) and, as before
    // errors were typed, costs the folder it happened in: the account's other folders go on.
    if e.chain().any(|cause| cause.downcast_ref::<rusqlite::Error>().is_some()) {
        return (Scope::Folder, Retry::NextPass);
    }
    (Scope::Folder, Retry::NextPass)
}

/// A tagged NO or BAD, by the command it answered.
fn refused(command: &str, answer: &Answer) -> (Scope, Retry) {
    match command {
        "APPEND" => append_refused(answer),
        // A body the source will not give (a damaged message file): skipped with the server's words.
        "UID FETCH" => (Scope::Message, Retry::Never),
        "LOGIN" | "AUTHENTICATE" | "STARTTLS" => (Scope::Account, Retry::NextPass),
        // SELECT, EXAMINE, STATUS, LIST, a metadata FETCH...: the folder (or the listing) failed.
        _ => (Scope::Folder, Retry::NextPass),
    }
}

/// A NO or BAD to APPEND, by its response code and then its words (the only thing some servers give):
/// the message itself (too big, malformed) is skipped; the mailbox (over quota, read-only) stops the
/// account for now; anything else (a BAD, a folder gone missing, a server briefly unavailable) says
/// nothing about the message, which is tried again on later passes (`push::MAX_ATTEMPTS`).
pub fn append_refused(answer: &Answer) -> (Scope, Retry) {
    const MESSAGE: (Scope, Retry) = (Scope::Message, Retry::Never);
    const ACCOUNT: (Scope, Retry) = (Scope::Account, Retry::NextPass);
    const LATER: (Scope, Retry) = (Scope::Message, Retry::NextPass);
    let words = answer.text.to_ascii_lowercase();
    match &answer.code {
        Some(Code::TooBig) | Some(Code::Parse) => return MESSAGE,
        Some(Code::OverQuota) | Some(Code::ReadOnly) => return ACCOUNT,
        _ => {}
    }
    if words.contains("quota") || words.contains("mailbox is full") {
        ACCOUNT
    } else if answer.kind == StatusKind::Bad
        || matches!(answer.code, Some(Code::TryCreate))
        || words.contains("unavailable")
        || words.contains("not connected")
    {
        // Exchange: "BAD User is authenticated but not connected".
        LATER
    } else if ["too big", "too large", "size", "invalid", "malformed"].iter().any(|w| words.contains(w)) {
        MESSAGE
    } else {
        LATER
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::Context;

    use super::*;
    use crate::imap::ServerMisbehaved;

    fn answer(kind: StatusKind, code: Option<Code<'static>>, text: &str) -> Answer {
        Answer { kind, code, text: text.into() }
    }

    fn refusal(command: &'static str, answer: Answer) -> anyhow::Error {
        ImapError::Refused { label: "source a@x.se".into(), what: format!("{command} failed"), command, answer }.into()
    }

    /// Every kind, bare and under context as the callers add it.
    #[test]
    fn the_policy_table() {
        let lost = ImapError::lost("source a@x.se", "the server closed the connection");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "Connection reset by peer");
        let no = answer(StatusKind::No, None, "Message not available");
        let sqlite = || rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), Some("database or disk is full".into()));
        let table: Vec<(&str, anyhow::Error, (Scope, Retry))> = vec![
            ("end of stream", anyhow::Error::new(lost.clone()).context("reading INBOX on the source"), (Scope::Account, Retry::Now)),
            ("reset, under its io error", anyhow::Error::new(io).context(lost.clone()), (Scope::Account, Retry::Now)),
            (
                "our database failing in the middle of an answer",
                anyhow::Error::new(sqlite())
                    .context(ImapError::lost("source a@x.se", "the connection was left in the middle of a command")),
                (Scope::Account, Retry::Now),
            ),
            (
                "hung up on a message",
                anyhow::Error::new(ImapError::HungUpOnMessage { label: "source a@x.se".into(), reason: "Internal error".into() })
                    .context("the old server hung up instead of sending a message"),
                (Scope::Account, Retry::Now),
            ),
            (
                "misbehaved",
                anyhow::Error::new(ImapError::Misbehaved(ServerMisbehaved { label: "source a@x.se".into(), what: "too long".into() }))
                    .context("this connection is not used again"),
                (Scope::Account, Retry::NextPass),
            ),
            (
                "throttled",
                ImapError::Throttled { label: "target b@y.se".into(), what: "FETCH failed".into(), delay: Duration::from_secs(1) }.into(),
                (Scope::Folder, Retry::NextPass),
            ),
            ("a body FETCH refused", refusal("UID FETCH", no.clone()).context("staging message UID 7"), (Scope::Message, Retry::Never)),
            ("a metadata FETCH refused", refusal("FETCH", no.clone()), (Scope::Folder, Retry::NextPass)),
            ("a folder that cannot be opened", refusal("EXAMINE", no.clone()), (Scope::Folder, Retry::NextPass)),
            ("a login refused", refusal("LOGIN", no), (Scope::Account, Retry::NextPass)),
            (
                "a full mailbox",
                refusal("APPEND", answer(StatusKind::No, Some(Code::OverQuota), "Quota exceeded")).context("copying INBOX to INBOX"),
                (Scope::Account, Retry::NextPass),
            ),
            ("a message too big", refusal("APPEND", answer(StatusKind::No, Some(Code::TooBig), "x")), (Scope::Message, Retry::Never)),
            (
                "a message that stopped half-way",
                anyhow::Error::new(StoppedHalfWay { uid: 7, at: 65536 }),
                (Scope::Message, Retry::NextPass),
            ),
            ("our database", anyhow::Error::new(sqlite()).context("staging bodies"), (Scope::Folder, Retry::NextPass)),
            ("a sentence of our own", anyhow::anyhow!("folder INBOX has no UIDVALIDITY"), (Scope::Folder, Retry::NextPass)),
        ];
        for (case, error, want) in table {
            assert_eq!(policy(&error), want, "{case}: {error:#}");
        }
    }

    #[test]
    fn append_refusals() {
        let a = answer;
        assert_eq!(append_refused(&a(StatusKind::No, Some(Code::OverQuota), "x")), (Scope::Account, Retry::NextPass));
        assert_eq!(
            append_refused(&a(StatusKind::No, None, "Quota exceeded (mailbox for user is full)")),
            (Scope::Account, Retry::NextPass)
        );
        assert_eq!(append_refused(&a(StatusKind::No, Some(Code::TooBig), "x")), (Scope::Message, Retry::Never));
        assert_eq!(append_refused(&a(StatusKind::No, None, "Message size exceeds limit")), (Scope::Message, Retry::Never));
        assert_eq!(
            append_refused(&a(StatusKind::Bad, None, "User is authenticated but not connected.")),
            (Scope::Message, Retry::NextPass)
        );
        assert_eq!(append_refused(&a(StatusKind::No, Some(Code::TryCreate), "Mailbox doesn't exist")), (Scope::Message, Retry::NextPass));
        assert_eq!(append_refused(&a(StatusKind::No, Some(Code::Parse), "broken header")), (Scope::Message, Retry::Never));
        assert_eq!(append_refused(&a(StatusKind::No, None, "Internal error occurred")), (Scope::Message, Retry::NextPass));
    }

    /// The sentence shown stays the one the error was made with.
    #[test]
    fn kinds_read_as_before() {
        let e = anyhow::Error::new(std::io::Error::other("Broken pipe")).context(ImapError::lost("target b@y.se", "writing to the server"));
        assert_eq!(format!("{e:#}"), "target b@y.se: writing to the server: Broken pipe");
        let e: anyhow::Error = ImapError::HungUpOnMessage { label: "source a@x.se".into(), reason: "FETCH failed".into() }.into();
        assert_eq!(format!("{e:#}"), "source a@x.se: the server closed the connection: FETCH failed");
        assert_eq!(crate::imap::bye_reason(&e), Some("FETCH failed"));
        let e = Err::<(), _>(anyhow::Error::new(ImapError::lost("", "connecting to x:993"))).context("cannot reach x:993").unwrap_err();
        assert!(matches!(crate::imap::kind_of(&e), Some(ImapError::ConnectionLost { .. })), "found under context");
    }
}
