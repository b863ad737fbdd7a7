//! The shapes the rest of postflytt gets answers in (`Answer`, `ListedFolder`, `Listing`, `Selected`,
//! `FolderStatus`, `MessageMeta`, `AppendAnswer`) and the reading of imap-types' responses into them:
//! response codes by name, the throttling words of Exchange, APPENDUID's uid-set, FETCH items, dates
//! and mailbox names as they were on the wire.

use std::collections::BTreeMap;
use std::time::Duration;

use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{FlagFetch, FlagNameAttribute};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, StatusBody, StatusKind};

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

/// What `list_with_status` brought: the folders, and the STATUS of those it came with, by wire name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub folders: Vec<ListedFolder>,
    pub statuses: BTreeMap<String, FolderStatus>,
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

pub(super) fn answer_of(body: StatusBody<'static>) -> Answer {
    Answer { kind: body.kind, code: body.code, text: body.text.to_string() }
}

pub(super) fn answer_has_caps(answer: &Answer) -> bool {
    matches!(answer.code, Some(Code::Capability(_)))
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

pub(super) fn meta_of(items: Vec<MessageDataItem<'static>>) -> MessageMeta {
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

pub(super) fn attribute_name(attr: &FlagNameAttribute<'_>) -> String {
    attr.to_string()
}

/// The wire bytes of a mailbox name as text (modified UTF-7 is ASCII; raw UTF-8 passes through).
pub fn mailbox_wire(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
