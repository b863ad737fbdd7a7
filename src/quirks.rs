//! What one server does differently from the RFCs and from Dovecot, as one `Quirks` value per
//! connection: computed once, when the session has logged in, from the side's kind (the operator's
//! `source.kind` / `target.kind`), the capabilities the server announced after login, and its
//! greeting. Code that behaves differently for a server asks a field here, never the kind. Each field
//! names the server, when we met it, and the test that shows it.
//!
//! Quirks recognised from one answer rather than from the server stay beside the code reading that
//! answer, named the same way: `exchange_throttled` (`imap::throttle_delay`, `sync`, `push`),
//! `dovecot_bye_on_fetch_failure` (`imap`, `pull`), `appenduid_uid_set` and `bare_lf_lines`
//! (`imap`), `uid_after_body` and `partial_answer_without_origin` (`pull`), and
//! `exchange_special_folders` (`folders`, by name, since Exchange announces no SPECIAL-USE),
//! `status_missing_without_code` (`mirror`). One is
//! met by every connection alike, since it costs nothing where a server lacks it: `nagle_stalls_pieces`
//! (Courier, Cyrus; `imap::connection` acknowledges every read at once).

use std::collections::BTreeSet;

/// Exchange Online's default largest message, 35 MB (a tenant can raise it up to 150 MB).
pub const EXCHANGE_MESSAGE_SIZE_LIMIT: u64 = 35 * 1024 * 1024;

/// The folder name Exchange Online keeps for the mailbox's own use.
pub const EXCHANGE_RESERVED_FILES: &str = "Files";

/// What kind of server one side is (the source's `source.kind`, the target's `target.kind`): how it is
/// logged in to (Microsoft 365 with an app's OAuth2 token) and, with its capabilities, its `Quirks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Imap,
    Microsoft365,
}

impl ServerKind {
    /// The name the settings, the status and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Imap => "imap",
            ServerKind::Microsoft365 => "m365",
        }
    }

    /// A kind as an operator writes it (`imap`, `m365`, or another name for Microsoft 365).
    pub fn parse(text: &str) -> Option<ServerKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "imap" => Some(ServerKind::Imap),
            "m365" | "microsoft365" | "office365" | "exchange" => Some(ServerKind::Microsoft365),
            _ => None,
        }
    }
}

/// How one connected server differs. `Default` is a server with none of these quirks (Dovecot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quirks {
    /// Quirk `exchange_case_insensitive_names` (Exchange Online, seen 2026-12 building the Microsoft 365
    /// target): `Kunder` and `kunder` are one folder, so target names collide case-insensitively.
    /// Test: `tests/m365.rs` `reserved_files_and_case_collisions_get_suffixes`.
    pub exchange_case_insensitive_names: bool,
    /// Quirk `exchange_reserved_files` (Exchange Online, seen 2026-12 building the Microsoft 365 target):
    /// `Files` (`EXCHANGE_RESERVED_FILES`) is the mailbox's own folder; a source folder of that name
    /// gets a suffix. Test: `tests/m365.rs` `reserved_files_and_case_collisions_get_suffixes`.
    pub exchange_reserved_files: bool,
    /// Quirk `exchange_message_size_limit` (Exchange Online, seen 2026-12 building the Microsoft 365
    /// target): it takes 35 MB unless the tenant raised it, and announces no APPENDLIMIT. The limit
    /// when neither the server nor the operator gives one (see `message_size_limit`). Test:
    /// `tests/m365.rs` `messages_over_35_mb_are_listed_by_check_and_skipped_by_sync`.
    pub exchange_message_size_limit: Option<u64>,
    /// Quirk `exchange_drops_flagged_on_append` (Exchange Online, seen 2026-12 building the Microsoft
    /// 365 target): `\Flagged` given with APPEND is not kept, so `push` sets it with a STORE afterwards.
    /// Test: `tests/m365.rs` `hard_cases_reach_exchange_folders_with_flags_and_one_token_per_process`.
    pub exchange_drops_flagged_on_append: bool,
    /// Quirk `exchange_rewrites_messages` (Exchange Online, seen 2026-12 after the first Microsoft 365
    /// migrations): what we append is re-rendered, so our copy is found again by its identity
    /// (Message-ID; see `identity`), not by size and SHA-256, in `push` and in `verify`. Test:
    /// `tests/m365.rs` `rewritten_mail_is_found_by_identity_after_lost_answers_and_a_uidvalidity_change`.
    pub exchange_rewrites_messages: bool,
    /// Quirk `no_appenduid` (servers without UIDPLUS, e.g. old Courier setups; seen 2026-12 with the
    /// first push): APPEND answers carry no APPENDUID, so appended copies are matched by content on
    /// the next look-up. `push` does that for any answer without a usable APPENDUID; this says the
    /// server announced so beforehand. Test: `tests/migrate.rs`
    /// `target_without_uidplus_and_with_bare_lf_lines_gets_everything_once` (the quirk proxy's `no_uidplus`).
    pub no_appenduid: bool,
    /// Quirk `shows_groupware_folders` (Microsoft Exchange and Exchange Online, Kerio Connect,
    /// Zimbra; seen 2026-12 with issue 18's folder choice): the server lists its calendars, contacts,
    /// tasks, notes and outbox as IMAP folders, so on such a source `folder_choice::NOT_MAIL` leaves
    /// them out by default; on Dovecot or cPanel a folder of such a name is the user's own mail.
    /// Told by the kind (Microsoft 365) or by a greeting naming the server (`names_groupware_server`).
    /// Tests: `quirks_of_each_server` here, `tests/folders.rs`.
    pub shows_groupware_folders: bool,
}

/// Whether a greeting names a server that shows its groupware folders over IMAP: Exchange's "The
/// Microsoft Exchange IMAP4 service is ready", Kerio's "Kerio Connect 9.4 IMAP4rev1 server ready",
/// Zimbra's "mail.example.com Zimbra IMAP4rev1 server ready".
fn names_groupware_server(greeting: &str) -> bool {
    let greeting = greeting.to_ascii_lowercase();
    ["microsoft exchange", "kerio connect", "zimbra"].iter().any(|name| greeting.contains(name))
}

impl Quirks {
    /// The quirks of a server of `kind` that announced `capabilities` (upper case, as `imap::Session`
    /// keeps them) after login and greeted us with `greeting` (which tells `shows_groupware_folders`).
    pub fn of(kind: ServerKind, capabilities: &BTreeSet<String>, greeting: &str) -> Quirks {
        let of_kind = Quirks::of_kind(kind);
        Quirks {
            no_appenduid: !capabilities.contains("UIDPLUS"),
            shows_groupware_folders: of_kind.shows_groupware_folders || names_groupware_server(greeting),
            ..of_kind
        }
    }

    /// What the kind alone says, before a connection: for code that must decide without one (`pull`
    /// stages each message's identity when the target will re-render it, from `identity::wanted`).
    pub fn of_kind(kind: ServerKind) -> Quirks {
        let exchange = kind == ServerKind::Microsoft365;
        Quirks {
            exchange_case_insensitive_names: exchange,
            exchange_reserved_files: exchange,
            exchange_message_size_limit: exchange.then_some(EXCHANGE_MESSAGE_SIZE_LIMIT),
            exchange_drops_flagged_on_append: exchange,
            exchange_rewrites_messages: exchange,
            no_appenduid: false,
            shows_groupware_folders: exchange,
        }
    }

    /// The largest message this server takes: its APPENDLIMIT, else the operator's setting, else the
    /// known default of its kind; `None` when nothing is known.
    pub fn message_size_limit(&self, announced: Option<u64>, configured: Option<u64>) -> Option<u64> {
        announced.or(configured).or(self.exchange_message_size_limit)
    }

    /// Folder names the server keeps for itself, which no source folder may take.
    pub fn reserved_folder_names(&self) -> Vec<String> {
        if self.exchange_reserved_files { vec![EXCHANGE_RESERVED_FILES.to_string()] } else { vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &str) -> BTreeSet<String> {
        list.split_whitespace().map(str::to_string).collect()
    }

    /// Dovecot 2.3's post-login capabilities (abridged).
    const DOVECOT: &str = "IMAP4REV1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES \
        THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS \
        LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS \
        BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE QUOTA";
    /// Exchange Online's post-login capabilities (as `tests/m365/exchange.rs` copies them).
    const EXCHANGE: &str = "IMAP4 IMAP4REV1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+";
    /// A server without UIDPLUS (old Courier setups; what the tests' quirk proxy makes of Dovecot).
    fn without_uidplus() -> String {
        DOVECOT.replace(" UIDPLUS", "")
    }

    #[test]
    fn quirks_of_each_server() {
        let exchange = Quirks {
            exchange_case_insensitive_names: true,
            exchange_reserved_files: true,
            exchange_message_size_limit: Some(35 << 20),
            exchange_drops_flagged_on_append: true,
            exchange_rewrites_messages: true,
            no_appenduid: false,
            shows_groupware_folders: true,
        };
        let groupware = Quirks { shows_groupware_folders: true, ..Quirks::default() };
        let cases = [
            ("Dovecot", ServerKind::Imap, DOVECOT, "* OK [CAPABILITY IMAP4rev1 ...] Dovecot (Debian) ready.", Quirks::default()),
            ("Exchange Online", ServerKind::Microsoft365, EXCHANGE, "* OK The Microsoft Exchange IMAP4 service is ready.", exchange),
            (
                "Exchange Online without UIDPLUS",
                ServerKind::Microsoft365,
                "IMAP4REV1 AUTH=XOAUTH2",
                "* OK The Microsoft Exchange IMAP4 service is ready.",
                Quirks { no_appenduid: true, ..exchange },
            ),
            (
                "no UIDPLUS",
                ServerKind::Imap,
                &without_uidplus(),
                "* OK Courier-IMAP ready.",
                Quirks { no_appenduid: true, ..Quirks::default() },
            ),
            // Exchange's capabilities under the kind `imap`: the kind decides the Exchange quirks,
            // the greeting that it shows calendars and contacts as folders.
            ("Exchange as plain IMAP", ServerKind::Imap, EXCHANGE, "The Microsoft Exchange IMAP4 service is ready.", groupware),
            ("Kerio Connect", ServerKind::Imap, DOVECOT, "Kerio Connect 9.4.1 IMAP4rev1 server ready", groupware),
            ("Zimbra", ServerKind::Imap, DOVECOT, "mail.example.com Zimbra IMAP4rev1 server ready", groupware),
            ("cPanel's Dovecot", ServerKind::Imap, DOVECOT, "Dovecot ready.", Quirks::default()),
        ];
        for (server, kind, capabilities, greeting, want) in cases {
            assert_eq!(Quirks::of(kind, &caps(capabilities), greeting), want, "{server}");
        }
    }

    #[test]
    fn of_kind_agrees_with_of_on_the_kind_s_quirks() {
        for kind in [ServerKind::Imap, ServerKind::Microsoft365] {
            assert_eq!(Quirks::of_kind(kind), Quirks { no_appenduid: false, ..Quirks::of(kind, &caps(DOVECOT), "") });
            assert!(Quirks::of(kind, &caps(DOVECOT), "Microsoft Exchange").shows_groupware_folders, "the greeting adds it to {kind:?}");
        }
    }

    #[test]
    fn size_limit_prefers_the_server_then_the_operator_then_the_kind() {
        let exchange = Quirks::of_kind(ServerKind::Microsoft365);
        let dovecot = Quirks::of_kind(ServerKind::Imap);
        let cases = [
            (exchange, Some(10), Some(20), Some(10)),
            (exchange, None, Some(20), Some(20)),
            (exchange, None, None, Some(35 * 1024 * 1024)),
            (dovecot, None, Some(20), Some(20)),
            (dovecot, None, None, None),
        ];
        for (quirks, announced, configured, want) in cases {
            assert_eq!(quirks.message_size_limit(announced, configured), want, "{quirks:?} {announced:?} {configured:?}");
        }
    }

    #[test]
    fn only_exchange_reserves_files() {
        assert_eq!(Quirks::of_kind(ServerKind::Microsoft365).reserved_folder_names(), ["Files"]);
        assert!(Quirks::of_kind(ServerKind::Imap).reserved_folder_names().is_empty());
    }
}
