//! A message's identity for targets that do not keep the bytes we send. Exchange Online re-renders
//! every appended message (quirk `exchange_rewrites_messages`): headers are re-folded and added, MIME
//! parts re-encoded, so the size and SHA-256 we staged never match what it serves back. What survives
//! is the Message-ID, and, for the rare message without one, its Date, From and Subject as decoded
//! values. This module turns a header section (staged or fetched from the target) into short keys, and
//! fills the key in for staged rows that do not have it yet. A staged row keeps one key (the
//! Message-ID's if it has one); a target message yields both, because a server may add a Message-ID to
//! a message that had none.

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::store::{PushState, Store};

/// The header fields the identity is made of, as fetched from a target with
/// `BODY.PEEK[HEADER.FIELDS (...)]`.
pub const HEADER_FIELDS: &[&str] = &["MESSAGE-ID", "DATE", "FROM", "SUBJECT"];

/// Whether staged messages need their identity: only a target that re-renders what it is given
/// (quirk `exchange_rewrites_messages`) is searched by it, so other migrations skip the header parse.
/// Asked while pulling, before the target is, so by the target's kind (`Quirks::of_kind`). Rows
/// staged without one get it from `fill_staged` if the target kind changes later.
pub fn wanted(store: &Store) -> Result<bool> {
    Ok(crate::quirks::Quirks::of_kind(store.target_kind()?).exchange_rewrites_messages)
}

/// How much of a message's start the identity is read from, however the bytes were staged: enough for
/// any real header section (long Received chains included), and the same for every caller, so a key
/// made at pull equals one made later from the staged chunks.
pub const HEADER_PREFIX: usize = 64 * 1024;

/// The first `HEADER_PREFIX` bytes of a message.
pub fn header_prefix(message: &[u8]) -> &[u8] {
    &message[..message.len().min(HEADER_PREFIX)]
}

/// The identity of a message from its header section (a whole message works too: parsing stops at the
/// blank line): its Message-ID key, else its Date/From/Subject key. `None` when there is nothing safe
/// to go by.
pub fn of_header(raw: &[u8]) -> Option<String> {
    let keys = keys_of_header(raw);
    keys.message_id.or(keys.headers)
}

/// Both keys a header section gives.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `mid:` and the Message-ID.
    pub message_id: Option<String>,
    /// `hdr:` and a hash of Date, From and Subject; only when both Date and From are there, since a
    /// Subject alone ("Faktura") is far too common to tell two messages apart.
    pub headers: Option<String>,
}

impl Keys {
    pub fn contains(&self, key: &str) -> bool {
        self.message_id.as_deref() == Some(key) || self.headers.as_deref() == Some(key)
    }

    pub fn is_empty(&self) -> bool {
        self.message_id.is_none() && self.headers.is_none()
    }
}

pub fn keys_of_header(raw: &[u8]) -> Keys {
    let Some(parsed) = mail_parser::MessageParser::default().parse_headers(raw) else { return Keys::default() };
    let message_id = parsed.message_id().map(str::trim).filter(|id| !id.is_empty()).map(|id| format!("mid:{id}"));
    // Decoded values, so a target that re-encodes a Subject (another RFC 2047 charset or folding)
    // still yields the same key; hashed, so the key stays short whatever the Subject's length.
    let date = parsed.date().map(|d| d.to_timestamp().to_string());
    let from = parsed.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_ascii_lowercase);
    let subject = parsed.subject().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
    let headers = match (date, from) {
        (Some(date), Some(from)) => {
            let mut hasher = Sha256::new();
            for part in [date, from, subject.unwrap_or_default()] {
                hasher.update(part.as_bytes());
                hasher.update(b"\n");
            }
            let digest = hasher.finalize();
            Some(format!("hdr:{}", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()))
        }
        _ => None,
    };
    Keys { message_id, headers }
}

/// Gives every fully staged row of `folder_id` in push state `state` that has no identity yet (staged
/// before schema version 4, or for a target that did not need it) its identity, read from the first
/// `HEADER_PREFIX` staged bytes, as the pull does. Returns how many rows were filled in.
pub fn fill_staged(store: &Store, folder_id: i64, state: PushState) -> Result<u64> {
    let ids = store.staged_without_identity(folder_id, state)?;
    let mut filled = 0;
    // A bounded batch per transaction (at most FILL_BATCH x 64 KiB read while holding the write lock),
    // so a folder of old rows does not keep every other writer waiting.
    for batch in ids.chunks(FILL_BATCH) {
        filled += store.write(|tx| {
            for &id in batch {
                // The staged chunks in order, up to HEADER_PREFIX bytes (chunks are smaller than that).
                let start = tx.staged_start(id, HEADER_PREFIX)?;
                // '' marks "looked, nothing to go by", so the row is not read again on every pass.
                let key = of_header(header_prefix(&start)).unwrap_or_default();
                tx.set_identity(id, &key)?;
            }
            Ok(batch.len() as u64)
        })?;
    }
    Ok(filled)
}

/// Rows given their identity per write transaction by `fill_staged`.
const FILL_BATCH: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_wins_and_survives_refolding_and_added_headers() {
        let sent = b"From: A <a@x.se>\r\nSubject: Hej\r\nMessage-ID: <abc.1@x.se>\r\n\r\nbody\r\n";
        let served =
            b"Received: by exchange\r\nMessage-ID:\r\n <abc.1@x.se>\r\nSubject: Hej\r\nFrom: A <a@x.se>\r\nX-MS-Has-Attach: \r\n\r\n";
        assert_eq!(of_header(sent).as_deref(), Some("mid:abc.1@x.se"));
        assert_eq!(of_header(sent), of_header(served));
    }

    #[test]
    fn without_message_id_date_from_and_decoded_subject_decide() {
        let sent = b"From: Asa <ASA@x.se>\r\nDate: Tue, 03 Mar 2020 10:00:00 +0100\r\nSubject: =?utf-8?q?R=C3=A4kning?=\r\n\r\n";
        let served = b"Subject: =?iso-8859-1?q?R=E4kning?=\r\nDate: Tue, 3 Mar 2020 09:00:00 +0000\r\nFrom: \"Asa\" <asa@x.se>\r\n\r\n";
        let key = of_header(sent).expect("a key");
        assert!(key.starts_with("hdr:"), "{key}");
        assert_eq!(Some(key), of_header(served));
        let other = b"From: Asa <asa@x.se>\r\nDate: Tue, 03 Mar 2020 10:00:00 +0100\r\nSubject: Faktura\r\n\r\n";
        assert_ne!(of_header(sent), of_header(other));
    }

    #[test]
    fn nothing_to_go_by_is_none() {
        assert_eq!(of_header(b"X-Other: 1\r\n\r\nbody"), None);
        assert_eq!(of_header(b""), None);
        // A Subject alone, or without From, is too common to tell messages apart.
        assert_eq!(of_header(b"Subject: Faktura\r\n\r\n"), None);
        assert_eq!(of_header(b"Subject: Faktura\r\nDate: Tue, 03 Mar 2020 10:00:00 +0100\r\n\r\n"), None);
    }

    #[test]
    fn a_message_id_added_by_the_target_still_finds_the_staged_key() {
        let sent = b"From: a@x.se\r\nDate: Tue, 03 Mar 2020 10:00:00 +0100\r\nSubject: Hej\r\n\r\n";
        let served = b"Message-ID: <added@exchange>\r\nFrom: a@x.se\r\nDate: Tue, 03 Mar 2020 10:00:00 +0100\r\nSubject: Hej\r\n\r\n";
        let staged = of_header(sent).expect("a key");
        let keys = keys_of_header(served);
        assert_eq!(keys.message_id.as_deref(), Some("mid:added@exchange"));
        assert!(keys.contains(&staged));
    }
}
