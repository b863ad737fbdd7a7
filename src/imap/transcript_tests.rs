//! Transcript tests of the IMAP client: a recorded exchange (the server's greeting and answers, and
//! the exact bytes the client must write between them) is played by a scripted server on 127.0.0.1
//! against the real `Session`, connected the way production connects (plain TCP is allowed to
//! loopback). The server checks nothing itself; it records what the client wrote at each of its
//! turns, and `Played::finish` compares the whole of it with the transcript, so a change in what goes
//! on the wire (a tag, a quote, a literal, a resent command) fails here with both streams shown.
//!
//! Each transcript runs twice: answers written whole, and one byte per write with the client reading
//! one byte at a time (`Pace::ByteByByte`), so every split of every answer is met.
//!
//! A new case is a test calling `transcript` with the turns (`s` and `c` for lines, `s_bytes` and
//! `c_bytes` for a literal's bytes) and a closure that drives the session and returns what to check.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use imap_next::imap_types::response::StatusKind;

use super::body_fetch::tests::{Pace, connect, run};
use super::{
    AppendAnswer, AppendItem, BodyRequest, BodySink, FetchItem, FolderStatus, ImapError, ListedFolder, MessageMeta, Selected, Session,
    bye_reason, kind_of,
};
use crate::secret::Secret;

/// One turn of a transcript: bytes the server sends, or bytes the client must write.
enum Turn {
    Server(Vec<u8>),
    Client(Vec<u8>),
}

/// A line the server sends (CRLF added).
fn s(line: &str) -> Turn {
    Turn::Server(format!("{line}\r\n").into_bytes())
}

/// A line the client must write (CRLF added).
fn c(line: &str) -> Turn {
    Turn::Client(format!("{line}\r\n").into_bytes())
}

/// Bytes the server sends as they are (a literal's content).
fn s_bytes(bytes: &[u8]) -> Turn {
    Turn::Server(bytes.to_vec())
}

/// Bytes the client must write as they are (a literal's content).
fn c_bytes(bytes: &[u8]) -> Turn {
    Turn::Client(bytes.to_vec())
}

/// How long the server waits for bytes the transcript says the client writes; past it the client
/// wrote less than the transcript, and the comparison shows what it did write.
const CLIENT_TURN_WAIT: Duration = Duration::from_secs(5);

/// What the server recorded: everything the transcript expected the client to write, everything the
/// client did write at those turns, and what it wrote after the transcript ended.
struct Played {
    expected: Vec<u8>,
    written: Vec<u8>,
    after_the_end: Vec<u8>,
}

impl Played {
    /// Asserts the client wrote exactly what the transcript says, and nothing after it.
    fn finish(self) {
        assert_eq!(
            String::from_utf8_lossy(&self.written),
            String::from_utf8_lossy(&self.expected),
            "the client's commands (left) differ from the transcript's (right)"
        );
        assert_eq!(String::from_utf8_lossy(&self.after_the_end), "", "the client wrote more than the transcript");
    }
}

/// Plays `turns` to one client connection; returns the port and the server, which yields what it
/// recorded once the client has hung up (or stopped writing).
fn play(turns: Vec<Turn>, pace: Pace) -> (u16, JoinHandle<Played>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(CLIENT_TURN_WAIT)).expect("timeout");
        let mut played = Played { expected: Vec::new(), written: Vec::new(), after_the_end: Vec::new() };
        for turn in turns {
            match turn {
                Turn::Server(bytes) => {
                    let sent = match pace {
                        Pace::Whole => stream.write_all(&bytes),
                        Pace::ByteByByte => bytes.iter().try_for_each(|b| stream.write_all(std::slice::from_ref(b))),
                    };
                    // A client that hung up early is shown by the comparison, not by a panic here.
                    if sent.is_err() {
                        break;
                    }
                }
                Turn::Client(bytes) => {
                    played.expected.extend_from_slice(&bytes);
                    if !read_up_to(&mut stream, bytes.len(), &mut played.written) {
                        break;
                    }
                }
            }
        }
        let _ = stream.read_to_end(&mut played.after_the_end);
        played
    });
    (port, handle)
}

/// Reads `len` bytes into `into`; false when the client closed or stopped writing first.
fn read_up_to(stream: &mut impl Read, len: usize, into: &mut Vec<u8>) -> bool {
    let mut left = len;
    let mut buf = [0u8; 4096];
    while left > 0 {
        match stream.read(&mut buf[..left.min(4096)]) {
            Ok(0) => return false,
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                left -= n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Runs `client` on a session connected to a server playing `turns` (built anew for each pace),
/// checks the commands, and returns what `client` returned for the last pace.
fn transcript<T>(turns: impl Fn() -> Vec<Turn>, client: impl AsyncFn(Session) -> T) -> T {
    let mut last = None;
    for pace in [Pace::Whole, Pace::ByteByByte] {
        let (port, server) = play(turns(), pace);
        // The session is the client's to end: it hangs up when `client` drops it (or logs out).
        let out = run(async { client(connect(port, pace).await).await });
        server.join().expect("the scripted server panicked").finish();
        last = Some(out);
    }
    last.expect("two paces ran")
}

/// The whole error chain as a person would read it, and as a log would write it.
fn all_text(e: &anyhow::Error) -> String {
    format!("{e:#} {e:?}")
}

#[test]
fn greeting_capability_and_login_with_a_quoted_password() {
    // The password needs quoting (space, quote, backslash); LOGIN goes out as one line.
    let password = "pa ss\"w\\rd";
    let login = transcript(
        || {
            vec![
                s("* OK Dovecot ready."),
                c("P1 CAPABILITY"),
                s("* CAPABILITY IMAP4rev1 LITERAL+ IDLE"),
                s("P1 OK Capability completed."),
                c("P2 LOGIN alice@example.se \"pa ss\\\"w\\\\rd\""),
                s("P2 OK [CAPABILITY IMAP4rev1 LITERAL+ MOVE UIDPLUS] Logged in"),
            ]
        },
        async |mut session: Session| {
            session.login("alice@example.se", &Secret::new(password)).await.expect("login");
            (session.has("MOVE"), session.has("IDLE"))
        },
    );
    // The capabilities the OK carried replace the ones before login, and no CAPABILITY follows.
    assert_eq!(login, (true, false));
}

#[test]
fn login_with_a_literal_password_waits_for_the_continuation() {
    // 8-bit text cannot be quoted: it goes as a synchronizing literal, after the server's "+".
    let password = "lösenord";
    transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1] ready"),
                c(&format!("P1 LOGIN bob {{{}}}", password.len())),
                s("+ OK"),
                c(password),
                s("P1 OK Logged in"),
                c("P2 CAPABILITY"),
                s("* CAPABILITY IMAP4rev1 CONDSTORE"),
                s("P2 OK done"),
            ]
        },
        async |mut session: Session| {
            session.login("bob", &Secret::new(password)).await.expect("login");
            assert!(session.has("CONDSTORE"), "the capabilities after login were asked for");
        },
    );
}

#[test]
fn a_refused_login_quotes_the_server_and_never_the_password() {
    let password = "hemligt 123";
    let e = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready"),
                c("P1 LOGIN carol \"hemligt 123\""),
                s("P1 NO [AUTHENTICATIONFAILED] Authentication failed."),
            ]
        },
        async |mut session: Session| session.login("carol", &Secret::new(password)).await.expect_err("refused"),
    );
    let text = all_text(&e);
    assert!(!text.contains(password) && !text.contains("hemligt"), "{text}");
    assert!(text.contains("login as carol was refused: NO [AUTHENTICATIONFAILED] Authentication failed."), "{text}");
    match kind_of(&e) {
        Some(ImapError::Refused { command, answer, .. }) => {
            assert_eq!(*command, "LOGIN");
            assert!(answer.has_code("AUTHENTICATIONFAILED"), "{answer:?}");
        }
        other => panic!("a refused login is Refused, not {other:?}"),
    }
}

#[test]
fn authenticate_plain_with_sasl_ir_is_one_round_trip_and_a_refusal_hides_the_password() {
    let password = "sesam";
    // AUTHENTICATE PLAIN's initial response is base64("\0dave\0sesam"); it is the password in other
    // clothes, so neither form may show in the error.
    let initial = "AGRhdmUAc2VzYW0=";
    let e = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready"),
                c(&format!("P1 AUTHENTICATE PLAIN {initial}")),
                s("P1 NO [AUTHENTICATIONFAILED] Authentication failed."),
            ]
        },
        async |mut session: Session| session.login("dave", &Secret::new(password)).await.expect_err("refused"),
    );
    let text = all_text(&e);
    assert!(!text.contains(password) && !text.contains(initial), "{text}");
    assert!(matches!(kind_of(&e), Some(ImapError::Refused { command: "LOGIN", .. })), "{text}");
}

#[test]
fn an_admin_login_as_a_user_is_authenticate_plain_with_the_user_as_authorization_identity() {
    use crate::admin_login::{AdminLogin, Credential, Mode, log_in};
    // base64("dave\0admin\0sesam"): authzid dave, authcid admin (RFC 4616); with SASL-IR in one line.
    let initial = "ZGF2ZQBhZG1pbgBzZXNhbQ==";
    let admin = || Credential::Admin(AdminLogin::new("admin", Mode::Plain, "sesam"));
    transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready"),
                c(&format!("P1 AUTHENTICATE PLAIN {initial}")),
                s("P1 OK [CAPABILITY IMAP4rev1 MOVE] Logged in"),
            ]
        },
        async |mut session: Session| {
            log_in(&mut session, "target", "dave", &admin()).await.expect("login");
            assert!(session.has("MOVE"));
        },
    );
    // Without SASL-IR the same response follows the server's continuation.
    transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready"),
                c("P1 AUTHENTICATE PLAIN"),
                s("+ "),
                c(initial),
                s("P1 OK [CAPABILITY IMAP4rev1] Logged in"),
            ]
        },
        async |mut session: Session| log_in(&mut session, "target", "dave", &admin()).await.expect("login"),
    );
    // A refusal names the admin setting to check, and neither the password nor its base64.
    let e = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready"),
                c(&format!("P1 AUTHENTICATE PLAIN {initial}")),
                s("P1 NO [AUTHENTICATIONFAILED] Authentication failed."),
            ]
        },
        async |mut session: Session| log_in(&mut session, "target", "dave", &admin()).await.expect_err("refused"),
    );
    let text = all_text(&e);
    assert!(!text.contains("sesam") && !text.contains(initial), "{text}");
    assert!(text.contains("the target admin login admin (plain mode) could not log in as dave"), "{text}");
    assert!(text.contains("login as dave by the admin login admin was refused: NO [AUTHENTICATIONFAILED]"), "{text}");
    assert!(matches!(kind_of(&e), Some(ImapError::Refused { command: "AUTHENTICATE", .. })), "{text}");
}

#[test]
fn an_admin_login_in_plain_mode_needs_auth_plain_and_the_master_mode_logs_in_as_user_star_admin() {
    use crate::admin_login::{AdminLogin, Credential, Mode, log_in};
    // No AUTH=PLAIN even after asking: the sentence says which setting to change.
    let e = transcript(
        || vec![s("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready"), c("P1 CAPABILITY"), s("* CAPABILITY IMAP4rev1 LITERAL+"), s("P1 OK done")],
        async |mut session: Session| {
            let admin = Credential::Admin(AdminLogin::new("admin", Mode::Plain, "sesam"));
            log_in(&mut session, "source", "dave", &admin).await.expect_err("no AUTH=PLAIN")
        },
    );
    let text = all_text(&e);
    assert!(text.contains("does not offer AUTHENTICATE PLAIN") && text.contains("postflytt setup --source-admin-mode master"), "{text}");
    // Dovecot's master-user form: the login "dave*admin" (quoted: `*` is no atom character).
    transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready"),
                c("P1 LOGIN \"dave*admin\" sesam"),
                s("P1 OK [CAPABILITY IMAP4rev1] Logged in"),
            ]
        },
        async |mut session: Session| {
            let admin = Credential::Admin(AdminLogin::new("admin", Mode::Master, "sesam"));
            log_in(&mut session, "target", "dave", &admin).await.expect("login");
        },
    );
}

#[test]
fn authenticate_plain_without_sasl_ir_sends_the_response_after_the_continuation() {
    transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready"),
                c("P1 AUTHENTICATE PLAIN"),
                s("+ "),
                c("AGRhdmUAc2VzYW0="),
                s("P1 OK [CAPABILITY IMAP4rev1 QUOTA] Logged in"),
            ]
        },
        async |mut session: Session| {
            session.login("dave", &Secret::new("sesam")).await.expect("login");
            assert!(session.has("QUOTA"));
        },
    );
}

#[test]
fn select_reads_uidvalidity_uidnext_and_highestmodseq_and_lets_an_alert_pass() {
    let selected = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 CONDSTORE] ready"),
                c("P1 SELECT INBOX (CONDSTORE)"),
                s("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)"),
                s("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] Flags permitted."),
                s("* 172 EXISTS"),
                s("* 1 RECENT"),
                s("* OK [ALERT] The system goes down for maintenance at 22:00."),
                s("* OK [UIDVALIDITY 3857529045] UIDs valid"),
                s("* OK [UIDNEXT 4392] Predicted next UID"),
                s("* OK [HIGHESTMODSEQ 715194045007] Highest"),
                s("P1 OK [READ-WRITE] Select completed (0.001 + 0.000 secs)."),
                c("P2 EXAMINE Arkiv"),
                s("* 0 EXISTS"),
                s("* OK [UIDVALIDITY 17] UIDs valid"),
                s("P2 OK [READ-ONLY] Examine completed."),
            ]
        },
        async |mut session: Session| {
            let inbox = session.select("INBOX", false, true).await.expect("select");
            let archive = session.select("Arkiv", true, false).await.expect("examine");
            (inbox, archive)
        },
    );
    let inbox = Selected { exists: 172, uidvalidity: Some(3_857_529_045), uidnext: Some(4392), highest_modseq: Some(715_194_045_007) };
    // EXAMINE starts afresh: nothing of the INBOX's answers carries over.
    let archive = Selected { exists: 0, uidvalidity: Some(17), uidnext: None, highest_modseq: None };
    assert_eq!(selected, (inbox, archive));
}

#[test]
fn statuses_of_many_folders_go_in_one_round_trip_and_a_refused_one_is_left_out() {
    let found = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 CONDSTORE] ready"),
                c("P1 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"),
                c("P2 STATUS Arkiv (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"),
                c("P3 STATUS \"Gamla saker\" (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"),
                s("* STATUS inbox (MESSAGES 12 UIDNEXT 40 UIDVALIDITY 7 HIGHESTMODSEQ 99)"),
                s("P1 OK Status completed."),
                s("* STATUS Arkiv (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8 HIGHESTMODSEQ 1)"),
                s("P2 OK Status completed."),
                s("P3 NO [NONEXISTENT] Mailbox doesn't exist: Gamla saker"),
            ]
        },
        async |mut session: Session| {
            let names = ["INBOX", "Arkiv", "Gamla saker"].map(String::from);
            session.statuses(&names, true).await.expect("statuses")
        },
    );
    let status = |messages, uidnext, uidvalidity, modseq| FolderStatus {
        messages,
        uidvalidity: Some(uidvalidity),
        uidnext: Some(uidnext),
        highest_modseq: Some(modseq),
    };
    let want: BTreeMap<String, FolderStatus> =
        [("INBOX".to_string(), status(12, 40, 7, 99)), ("Arkiv".to_string(), status(0, 1, 8, 1))].into_iter().collect();
    assert_eq!(found, want);
}

#[test]
fn a_tagged_no_with_a_response_code_is_a_refusal_with_the_servers_words() {
    let e = transcript(
        || {
            vec![
                s("* OK ready"),
                c("P1 SELECT \"Gamla saker\""),
                s("P1 NO [NONEXISTENT] Mailbox doesn't exist: Gamla saker"),
                // The connection is still good: the next command goes out and is answered.
                c("P2 SELECT INBOX"),
                s("* 2 EXISTS"),
                s("P2 OK [READ-WRITE] Select completed."),
            ]
        },
        async |mut session: Session| {
            let e = session.select("Gamla saker", false, false).await.expect_err("refused");
            assert_eq!(session.select("INBOX", false, false).await.expect("select").exists, 2);
            e
        },
    );
    assert_eq!(format!("{e}"), "source scripted: cannot open folder Gamla saker: NO [NONEXISTENT] Mailbox doesn't exist: Gamla saker");
    match kind_of(&e) {
        Some(ImapError::Refused { command, answer, .. }) => {
            assert_eq!(*command, "SELECT");
            assert_eq!(answer.kind, StatusKind::No);
            assert!(answer.has_code("NONEXISTENT"));
            assert!(!kind_of(&e).is_some_and(ImapError::ends_connection));
        }
        other => panic!("a NO to SELECT is Refused, not {other:?}"),
    }
}

#[test]
fn list_keeps_wire_names_delimiters_and_attributes() {
    let folders = transcript(
        || {
            vec![
                s("* OK ready"),
                c("P1 LIST \"\" *"),
                s("* LIST (\\HasNoChildren) \".\" INBOX"),
                s("* LIST (\\HasChildren \\Noselect) \".\" \"INBOX.Arkiv 2019\""),
                s("* LIST (\\HasNoChildren \\Trash) \".\" INBOX.Skr&AOQ-p"),
                s("* LIST (\\HasNoChildren) \".\" \"INBOX.&AMQ-ndrat &- sparat\""),
                // A name as a literal (it holds a quote), and a folder without hierarchy.
                s("* LIST (\\HasNoChildren) \".\" {16}"),
                s_bytes(b"INBOX.Sa\"ker {1}"),
                s(""),
                s("* LIST (\\NoInferiors) NIL Platt"),
                s("P1 OK List completed."),
            ]
        },
        async |mut session: Session| session.list().await.expect("list"),
    );
    let folder = |wire_name: &str, delimiter, attributes: &[&str]| ListedFolder {
        wire_name: wire_name.to_string(),
        delimiter,
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
    };
    // Sorted by wire name, as `list` returns them.
    assert_eq!(
        folders,
        vec![
            folder("INBOX", Some('.'), &["\\HasNoChildren"]),
            folder("INBOX.&AMQ-ndrat &- sparat", Some('.'), &["\\HasNoChildren"]),
            folder("INBOX.Arkiv 2019", Some('.'), &["\\HasChildren", "\\Noselect"]),
            folder("INBOX.Sa\"ker {1}", Some('.'), &["\\HasNoChildren"]),
            folder("INBOX.Skr&AOQ-p", Some('.'), &["\\HasNoChildren", "\\Trash"]),
            // imap-types spells the attributes it knows its own way; `has_attribute` ignores case.
            folder("Platt", None, &["\\Noinferiors"]),
        ]
    );
    assert!(folders[5].has_attribute("\\NoInferiors"));
    let names: Vec<String> = folders.iter().map(|f| crate::utf7::decode_or_raw(&f.wire_name)).collect();
    assert_eq!(names[1], "INBOX.Ändrat & sparat");
    assert_eq!(names[4], "INBOX.Skräp");
}

/// What a pass's reader does with a listing: the STATUS it brought, and the selectable folders it
/// came without asked for with `statuses` (see `lanes::Readers::read`).
async fn tree_status(session: &mut Session, condstore: bool) -> (Vec<ListedFolder>, BTreeMap<String, FolderStatus>) {
    let mut listing = session.list_with_status(condstore).await.expect("list");
    let missing: Vec<String> = listing
        .folders
        .iter()
        .filter(|f| !f.has_attribute("\\Noselect") && !f.has_attribute("\\NonExistent"))
        .map(|f| f.wire_name.clone())
        .filter(|name| !listing.statuses.contains_key(name))
        .collect();
    listing.statuses.extend(session.statuses(&missing, condstore).await.expect("statuses"));
    (listing.folders, listing.statuses)
}

#[test]
fn list_status_brings_the_trees_status_in_one_command_and_a_folder_left_without_is_asked_for() {
    // As Dovecot 2.3 answers (recorded, then trimmed): a STATUS after each selectable folder's LIST,
    // none for a \NonExistent parent, an untagged NO in place of the one for a folder it could not
    // open. The STATUS of a name not listed (a server's mistake) is dropped.
    let (folders, statuses) = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 CHILDREN LIST-EXTENDED CONDSTORE LIST-STATUS SPECIAL-USE] ready"),
                c("P1 LIST \"\" \"*\" RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))"),
                s("* LIST (\\HasChildren) \".\" INBOX"),
                s("* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1796568818 HIGHESTMODSEQ 5)"),
                s("* LIST (\\HasNoChildren \\Sent) \".\" INBOX.Sent"),
                s("* STATUS INBOX.Sent (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1796568819 HIGHESTMODSEQ 1)"),
                s("* LIST (\\NonExistent \\HasChildren) \".\" INBOX.Kunder"),
                s("* LIST (\\HasNoChildren) \".\" \"INBOX.Kunder.&AMU-re\""),
                s("* STATUS \"INBOX.Kunder.&AMU-re\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1796568817 HIGHESTMODSEQ 2)"),
                s("* LIST (\\HasNoChildren) \".\" INBOX.Arkiv"),
                s("* NO [SERVERBUG] Internal error occurred. Refer to server log for more information."),
                s("* STATUS INBOX.Spoke (MESSAGES 9 UIDNEXT 10 UIDVALIDITY 1 HIGHESTMODSEQ 9)"),
                s("P1 OK List completed (0.001 + 0.000 secs)."),
                // Only the folder the listing came without is asked for.
                c("P2 STATUS INBOX.Arkiv (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"),
                s("P2 NO [SERVERBUG] Internal error occurred. Refer to server log for more information."),
            ]
        },
        async |mut session: Session| tree_status(&mut session, true).await,
    );
    let names: Vec<&str> = folders.iter().map(|f| f.wire_name.as_str()).collect();
    assert_eq!(names, ["INBOX", "INBOX.Arkiv", "INBOX.Kunder", "INBOX.Kunder.&AMU-re", "INBOX.Sent"]);
    assert!(folders[4].has_attribute("\\Sent"), "{:?}", folders[4]);
    let status = |messages, uidnext, uidvalidity, modseq| FolderStatus {
        messages,
        uidvalidity: Some(uidvalidity),
        uidnext: Some(uidnext),
        highest_modseq: Some(modseq),
    };
    let want: BTreeMap<String, FolderStatus> = [
        ("INBOX", status(3, 4, 1796568818, 5)),
        ("INBOX.Kunder.&AMU-re", status(1, 2, 1796568817, 2)),
        ("INBOX.Sent", status(0, 1, 1796568819, 1)),
    ]
    .into_iter()
    .map(|(name, status)| (name.to_string(), status))
    .collect();
    assert_eq!(statuses, want);
}

#[test]
fn without_list_status_the_tree_is_a_plain_list_then_pipelined_statuses() {
    let (folders, statuses) = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 LIST-EXTENDED SPECIAL-USE] ready"),
                c("P1 LIST \"\" *"),
                s("* LIST (\\HasNoChildren) \"/\" INBOX"),
                s("* LIST (\\HasNoChildren) \"/\" Arkiv"),
                s("P1 OK List completed."),
                c("P2 STATUS Arkiv (MESSAGES UIDNEXT UIDVALIDITY)"),
                c("P3 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)"),
                s("* STATUS Arkiv (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8)"),
                s("P2 OK Status completed."),
                s("* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7)"),
                s("P3 OK Status completed."),
            ]
        },
        async |mut session: Session| tree_status(&mut session, false).await,
    );
    assert_eq!(folders.len(), 2);
    assert_eq!(statuses.keys().collect::<Vec<_>>(), ["Arkiv", "INBOX"]);
}

#[test]
fn list_status_refused_although_offered_falls_back_to_a_plain_list() {
    // No LIST-EXTENDED, CHILDREN or SPECIAL-USE offered: the command asks for STATUS alone.
    let listing = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 LIST-STATUS] ready"),
                c("P1 LIST \"\" \"*\" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY))"),
                s("P1 BAD Error in IMAP command LIST: Unknown return option"),
                c("P2 LIST \"\" *"),
                s("* LIST (\\HasNoChildren) \"/\" INBOX"),
                s("P2 OK List completed."),
            ]
        },
        async |mut session: Session| session.list_with_status(false).await.expect("list"),
    );
    assert_eq!(listing.folders.len(), 1);
    assert!(listing.statuses.is_empty());
}

#[test]
fn a_list_status_answer_is_bounded_like_any_kept_answer() {
    // One STATUS line too many for one command (`UNTAGGED_LIMIT`): the server broke a bound, and
    // the connection is not used again. Answers written whole only: 100,001 lines one byte at a time
    // would take minutes and meet no split the other tests do not.
    let flood = "* STATUS INBOX (MESSAGES 1)\r\n".repeat(super::stream::UNTAGGED_LIMIT as usize + 1);
    let turns = vec![
        s("* OK [CAPABILITY IMAP4rev1 LIST-STATUS] ready"),
        c("P1 LIST \"\" \"*\" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY))"),
        Turn::Server(flood.into_bytes()),
    ];
    let (port, server) = play(turns, Pace::Whole);
    let (first, second) = run(async {
        let mut session = connect(port, Pace::Whole).await;
        let first = session.list_with_status(false).await.expect_err("too many answers");
        let second = session.list().await.expect_err("not used again");
        (first, second)
    });
    assert!(crate::imap::is_misbehaving(&first), "{first:#}");
    assert!(format!("{first:#}").contains("more than 100000 untagged answers to one LIST"), "{first:#}");
    assert!(crate::imap::is_misbehaving(&second), "{second:#}");
    server.join().expect("the scripted server panicked").finish();
}

#[test]
fn uid_fetch_of_metadata_reads_a_header_literal() {
    let header = b"Message-ID: <1@example.se>\r\n\r\n";
    let messages = transcript(
        || {
            vec![
                s("* OK ready"),
                c("P1 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[HEADER.FIELDS (Message-ID)]) (CHANGEDSINCE 7)"),
                s_bytes(b"* 1 FETCH (UID 4 FLAGS (\\Seen \\Recent $Label1) INTERNALDATE \"05-Mar-2021 09:15:00 +0100\" RFC822.SIZE 2044 "),
                s_bytes(format!("MODSEQ (12) BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n", header.len()).as_bytes()),
                s_bytes(header),
                s(")"),
                // An unsolicited FLAGS change without a UID is not a message of the listing.
                s("* 2 FETCH (FLAGS (\\Deleted))"),
                s("P1 OK Fetch completed."),
            ]
        },
        async |mut session: Session| {
            let mut got = Vec::new();
            let items = [
                FetchItem::Uid,
                FetchItem::Flags,
                FetchItem::InternalDate,
                FetchItem::Size,
                FetchItem::ModSeq,
                FetchItem::HeaderFields(&["Message-ID"]),
            ];
            session
                .uid_fetch(&["1:*".to_string()], &items, Some(7), &mut |meta| {
                    got.push(meta);
                    Ok(())
                })
                .await
                .expect("fetch");
            got
        },
    );
    let expected = MessageMeta {
        uid: 4,
        size: Some(2044),
        flags: vec!["\\Seen".into(), "$Label1".into()],
        internal_date: Some(" 5-Mar-2021 09:15:00 +0100".into()),
        modseq: Some(12),
        header: Some(header.to_vec()),
    };
    assert_eq!(messages, vec![expected]);
}

/// Collects streamed bodies whole: (uid, origin, bytes), or the bytes None for NIL.
#[derive(Default)]
struct Bodies(Vec<(u32, Option<u32>, Option<Vec<u8>>)>);

impl BodySink for Bodies {
    fn begin(&mut self, uid: u32, origin: Option<u32>, _len: u32) -> anyhow::Result<()> {
        self.0.push((uid, origin, Some(Vec::new())));
        Ok(())
    }
    fn bytes(&mut self, piece: &[u8]) -> anyhow::Result<()> {
        if let Some((_, _, Some(bytes))) = self.0.last_mut() {
            bytes.extend_from_slice(piece);
        }
        Ok(())
    }
    fn end(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn nil(&mut self, uid: u32) -> anyhow::Result<()> {
        self.0.push((uid, None, None));
        Ok(())
    }
}

#[test]
fn uid_fetch_of_bodies_streams_literals_of_pipelined_commands() {
    let whole = b"Subject: hej\r\n\r\n* 1 FETCH (UID 9)\r\nP2 OK not really\r\n";
    let slice = b"0123456789";
    let bodies = transcript(
        || {
            vec![
                s("* OK ready"),
                c("P1 UID FETCH 7 (UID BODY.PEEK[])"),
                c("P2 UID FETCH 8 (UID BODY.PEEK[]<4096.10>)"),
                s(&format!("* 1 FETCH (UID 7 BODY[] {{{}}}", whole.len())),
                s_bytes(whole),
                s(")"),
                s("P1 OK Fetch completed."),
                s(&format!("* 2 FETCH (UID 8 BODY[]<4096> {{{}}}", slice.len())),
                s_bytes(slice),
                s(")"),
                s("P2 OK Fetch completed."),
            ]
        },
        async |mut session: Session| {
            let requests = [BodyRequest { uid_set: "7".into(), range: None }, BodyRequest { uid_set: "8".into(), range: Some((4096, 10)) }];
            let mut sink = Bodies::default();
            session.uid_fetch_bodies(&requests, &mut sink).await.expect("fetch");
            sink.0
        },
    );
    assert_eq!(bodies, vec![(7, None, Some(whole.to_vec())), (8, Some(4096), Some(slice.to_vec()))]);
}

/// APPENDs one message whose body is held in memory, handed over in slices of 7 bytes.
async fn append_one(session: &mut Session, folder: &str, flags: &[&str], date: Option<&str>, body: &[u8]) -> anyhow::Result<AppendAnswer> {
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let mut slices = body.chunks(7);
    let mut next = || Ok(slices.next().map(<[u8]>::to_vec).unwrap_or_default());
    let mut items = [AppendItem { flags: &flags, internal_date: date, size: body.len() as u64, body: &mut next }];
    session.append(folder, &mut items, &mut || Ok(())).await
}

#[test]
fn append_waits_for_the_continuation_and_reads_appenduid() {
    const BODY: &[u8] = b"From: a@example.se\r\nSubject: hej\r\n\r\nHej!\r\n";
    let uids = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 UIDPLUS] ready"),
                c(&format!("P1 APPEND \"Skickat \\\"ut\\\"\" (\\Seen $Forwarded) \"05-Mar-2021 09:15:00 +0100\" {{{}}}", BODY.len())),
                s("+ Ready for literal data"),
                c_bytes(BODY),
                c(""),
                s("P1 OK [APPENDUID 38505 3955] Append completed."),
            ]
        },
        async |mut session: Session| {
            let answer =
                append_one(&mut session, "Skickat \"ut\"", &["\\Seen", "\\Recent", "$Forwarded"], Some("05-Mar-2021 09:15:00 +0100"), BODY)
                    .await
                    .expect("append");
            assert!(answer.answer.is_ok());
            answer.appended_uids()
        },
    );
    // \Recent is the server's to set and is left out.
    assert_eq!(uids, Some((38505, vec![3955])));
}

#[test]
fn append_with_literal_plus_does_not_wait_and_a_no_at_the_continuation_ends_it() {
    const BODY: &[u8] = b"Subject: x\r\n\r\nx\r\n";
    let answers = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready"),
                c(&format!("P1 APPEND \"INBOX\" () {{{}+}}", BODY.len())),
                c_bytes(BODY),
                c(""),
                s("P1 OK [APPENDUID 9 4:6] Append completed."),
                c("P2 CAPABILITY"),
                s("* CAPABILITY IMAP4rev1"),
                s("P2 OK done"),
                // Without LITERAL+ the body waits for "+"; a NO in its place is the answer.
                c(&format!("P3 APPEND \"Saknas\" () {{{}}}", BODY.len())),
                s("P3 NO [TRYCREATE] Mailbox doesn't exist: Saknas"),
            ]
        },
        async |mut session: Session| {
            let first = append_one(&mut session, "INBOX", &[], None, BODY).await.expect("append");
            session.refresh_capabilities().await.expect("capability");
            let refused = append_one(&mut session, "Saknas", &[], None, BODY).await.expect("an answer");
            (first.appended_uids(), refused.answer.has_code("TRYCREATE"), refused.answer.words())
        },
    );
    assert_eq!(answers, (Some((9, vec![4, 5, 6])), true, "NO [TRYCREATE] Mailbox doesn't exist: Saknas".to_string()));
}

#[test]
fn an_untagged_bye_in_the_middle_of_a_command_loses_the_connection_with_its_reason() {
    let e = transcript(
        || vec![s("* OK ready"), c("P1 LIST \"\" *"), s("* LIST (\\HasNoChildren) \"/\" INBOX"), s("* BYE Server shutting down.")],
        async |mut session: Session| session.list().await.expect_err("bye"),
    );
    assert_eq!(bye_reason(&e), Some("Server shutting down."));
    assert!(matches!(kind_of(&e), Some(ImapError::ConnectionLost { .. })), "{e:#}");
    assert!(format!("{e:#}").contains("source scripted: the server closed the connection: Server shutting down."), "{e:#}");
}

#[test]
fn a_throttled_command_is_sent_again_after_the_wait_the_server_asks_for() {
    let (throttled, folders) = transcript(
        || {
            vec![
                s("* OK The Microsoft Exchange IMAP4 service is ready."),
                c("P1 LIST \"\" *"),
                s("P1 NO Request is throttled. Suggested Backoff Time: 120 milliseconds"),
                c("P2 LIST \"\" *"),
                s("* LIST (\\HasNoChildren) \"/\" INBOX"),
                s("P2 OK LIST completed."),
            ]
        },
        async |mut session: Session| {
            let folders = session.list().await.expect("list");
            (session.throttled, folders.len())
        },
    );
    assert_eq!((throttled, folders), (1, 1));
}

#[test]
fn throttling_that_does_not_stop_is_a_throttled_error() {
    let throttled = "Request is throttled. Suggested Backoff Time: 100 milliseconds";
    let e = transcript(
        || {
            // The first answer and six more after as many waits; then it counts as a failure.
            let mut turns = vec![s("* OK ready")];
            for tag in 1..=7 {
                turns.push(c(&format!("P{tag} LIST \"\" *")));
                turns.push(s(&format!("P{tag} NO {throttled}")));
            }
            turns
        },
        async |mut session: Session| session.list().await.expect_err("throttled"),
    );
    match kind_of(&e) {
        Some(ImapError::Throttled { delay, .. }) => assert_eq!(*delay, Duration::from_millis(100)),
        other => panic!("endless throttling is Throttled, not {other:?}"),
    }
}

#[test]
fn logout_says_goodbye_and_takes_the_bye() {
    transcript(
        || vec![s("* OK ready"), c("P1 LOGOUT"), s("* BYE Logging out"), s("P1 OK Logout completed.")],
        async |session: Session| session.logout().await,
    );
}

/// Mirroring's commands: ENABLE asks for QRESYNC with CONDSTORE in one command; EXAMINE with QRESYNC's
/// parameter reads `VANISHED (EARLIER)` into merged ranges; UID MOVE reads the untagged COPYUID that
/// comes before the expunges (RFC 6851 section 4.3), and UID EXPUNGE goes only after \Deleted is set
/// on exactly those UIDs.
#[test]
fn enable_qresync_examine_vanished_move_and_expunge_by_uid() {
    let (enabled, vanished, moved, expunged) = transcript(
        || {
            vec![
                s("* OK [CAPABILITY IMAP4rev1 ENABLE CONDSTORE QRESYNC MOVE UIDPLUS] ready"),
                c("P1 ENABLE CONDSTORE QRESYNC"),
                s("* ENABLED CONDSTORE QRESYNC"),
                s("P1 OK Enabled"),
                c("P2 EXAMINE Kunder (QRESYNC (7 20))"),
                s("* 3 EXISTS"),
                s("* OK [UIDVALIDITY 7] UIDs valid"),
                s("* OK [HIGHESTMODSEQ 25] Highest"),
                s("* VANISHED (EARLIER) 3:5,9,4"),
                s("P2 OK [READ-ONLY] Examine completed"),
                c("P3 UID MOVE 1:2 Arkiv"),
                s("* OK [COPYUID 8 1:2 21:22] Moved UIDs."),
                s("* VANISHED 1:2"),
                s("P3 OK Move completed"),
                c("P4 UID STORE 6 +FLAGS.SILENT (\\Deleted)"),
                s("P4 OK Store completed"),
                c("P5 UID EXPUNGE 6"),
                s("* VANISHED 6"),
                s("P5 OK Expunge completed"),
            ]
        },
        async |mut session: Session| {
            let enabled = session.enable_condstore().await.expect("enable") && session.qresync();
            let (selected, vanished) = session.examine_vanished("Kunder", 7, 20).await.expect("examine");
            assert_eq!((selected.uidvalidity, selected.exists), (Some(7), 3));
            let moved = session.uid_move("1:2", "Arkiv").await.expect("move");
            let expunged = session.uid_expunge("6").await.expect("expunge").is_ok();
            (enabled, vanished, (moved.answer.is_ok(), moved.uidvalidity, moved.landed), expunged)
        },
    );
    assert!(enabled);
    assert_eq!(vanished, vec![(3, 5), (9, 9)]);
    assert_eq!(moved, (true, Some(8), [(1, 21), (2, 22)].into_iter().collect()));
    assert!(expunged);
}
