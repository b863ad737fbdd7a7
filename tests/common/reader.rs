//! A small synchronous IMAP4rev1 client written for the tests, independent of postflytt's own client, so
//! results are checked by code that shares none of the product's bugs. Plain TCP on loopback only. It
//! sends synchronizing literals (waits for `+`), reads any literal the server sends (bodies are arbitrary
//! bytes: bare LF, 8-bit, very long lines), and speaks UTF-8 folder names to its callers while putting
//! modified UTF-7 (RFC 3501 §5.1.3) on the wire with its own encoder and decoder. Failures panic with
//! the command and the server's words; `try_*` variants return them instead.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One message as read back: `flags` without `\Recent`, `internal_date` exactly as the server sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub uid: u32,
    pub flags: BTreeSet<String>,
    pub internal_date: String,
    pub body: Vec<u8>,
}

/// One `LIST` line: attributes as sent (`\HasNoChildren`, `\Sent`...), the hierarchy delimiter, the
/// mailbox name as on the wire (modified UTF-7) and decoded to UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub attributes: Vec<String>,
    pub delimiter: Option<char>,
    pub raw_name: String,
    pub name: String,
}

impl ListEntry {
    pub fn has_attribute(&self, attr: &str) -> bool {
        self.attributes.iter().any(|a| a.eq_ignore_ascii_case(attr))
    }

    /// False for `\Noselect` / `\NonExistent` placeholders (parents that exist only as hierarchy).
    pub fn selectable(&self) -> bool {
        !self.has_attribute("\\Noselect") && !self.has_attribute("\\NonExistent")
    }
}

/// Mailbox counters from `STATUS` (or from `SELECT`/`EXAMINE`, where `messages` is EXISTS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub messages: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
}

/// A parsed response value. Quoted strings and literals are both `Str`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Val>),
    Nil,
}

impl Val {
    pub fn as_text(&self) -> Option<String> {
        match self {
            Val::Atom(a) => Some(a.clone()),
            Val::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Val::Atom(a) => a.parse().ok(),
            _ => None,
        }
    }
}

/// What a command produced: the untagged responses (raw, literals inline) and the tagged OK text.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub untagged: Vec<Vec<u8>>,
    pub text: String,
}

/// A piece of a command: text sent as is, or a synchronizing literal.
pub enum Part<'a> {
    Text(&'a str),
    Literal(&'a [u8]),
}

/// The test-side IMAP client. See the module docs.
pub struct ImapReader {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    port: u16,
    next_tag: u32,
    /// Currently selected folder (UTF-8) and whether it was opened read-write.
    selected: Option<(String, bool)>,
    pub greeting: String,
}

impl ImapReader {
    /// Connects to 127.0.0.1:`port` and reads the greeting (panics unless `* OK`).
    pub fn connect(port: u16) -> ImapReader {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let wr =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap_or_else(|e| panic!("ImapReader: connect to {addr}: {e}"));
        wr.set_nodelay(true).expect("set_nodelay");
        let rd = BufReader::with_capacity(64 * 1024, wr.try_clone().expect("clone TcpStream"));
        let mut r = ImapReader { rd, wr, port, next_tag: 1, selected: None, greeting: String::new() };
        r.set_timeout(Duration::from_secs(60));
        let g = r.read_response();
        r.greeting = String::from_utf8_lossy(&g).trim_end().to_string();
        assert!(r.greeting.starts_with("* OK"), "ImapReader: port {port} greeted with {:?}", r.greeting);
        r
    }

    /// Connects and logs in with LOGIN; panics with the server's words if refused.
    pub fn login(port: u16, user: &str, pass: &str) -> ImapReader {
        ImapReader::try_login(port, user, pass).unwrap_or_else(|e| panic!("ImapReader: LOGIN {user:?} on port {port} refused: {e}"))
    }

    /// Connects and logs in; `Err` holds the tagged NO/BAD text.
    pub fn try_login(port: u16, user: &str, pass: &str) -> Result<ImapReader, String> {
        let mut r = ImapReader::connect(port);
        let (u, p) = (astring(user.as_bytes()), astring(pass.as_bytes()));
        let mut parts = vec![Part::Text("LOGIN ")];
        parts.extend(u.parts());
        parts.push(Part::Text(" "));
        parts.extend(p.parts());
        r.run(&parts, &mut |_| {})?;
        Ok(r)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Read timeout for every server response (default 60 s); a hang fails the test instead of blocking.
    pub fn set_timeout(&mut self, t: Duration) {
        self.wr.set_read_timeout(Some(t)).expect("set_read_timeout");
        self.wr.set_write_timeout(Some(t)).expect("set_write_timeout");
    }

    /// Sends one command (without tag and CRLF) and collects its untagged responses.
    pub fn command(&mut self, cmd: &str) -> Result<Response, String> {
        let mut untagged = Vec::new();
        let text = self.run(&[Part::Text(cmd)], &mut |u| untagged.push(u.to_vec()))?;
        Ok(Response { untagged, text })
    }

    /// Like [`ImapReader::command`], panicking on NO/BAD.
    pub fn command_ok(&mut self, cmd: &str) -> Response {
        self.command(cmd).unwrap_or_else(|e| panic!("ImapReader: {cmd:?} failed: {e}"))
    }

    /// Runs a command built of parts, handing each untagged response (raw bytes, literals inline) to
    /// `on_untagged`. Returns the tagged OK text, or `Err` with the NO/BAD line.
    pub fn run(&mut self, parts: &[Part], on_untagged: &mut dyn FnMut(&[u8])) -> Result<String, String> {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        let mut out: Vec<u8> = format!("{tag} ").into_bytes();
        for part in parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Literal(bytes) => {
                    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                    self.write(&out);
                    out.clear();
                    // Wait for the go-ahead; the server may refuse instead (e.g. NO [LIMIT]).
                    loop {
                        let resp = self.read_response();
                        if resp.starts_with(b"+") {
                            break;
                        } else if resp.starts_with(b"* ") {
                            on_untagged(&resp);
                        } else {
                            return tagged_result(&tag, &resp);
                        }
                    }
                    self.write(bytes);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        self.write(&out);
        loop {
            let resp = self.read_response();
            if resp.starts_with(b"* ") {
                on_untagged(&resp);
            } else if resp.starts_with(b"+") {
                panic!("ImapReader: unexpected continuation {:?}", lossy_head(&resp));
            } else {
                return tagged_result(&tag, &resp);
            }
        }
    }

    /// `CAPABILITY`, as an upper-cased set.
    pub fn capabilities(&mut self) -> BTreeSet<String> {
        let r = self.command_ok("CAPABILITY");
        let mut caps = BTreeSet::new();
        for u in &r.untagged {
            let line = String::from_utf8_lossy(u);
            if let Some(rest) = line.trim_end().strip_prefix("* CAPABILITY ") {
                caps.extend(rest.split_whitespace().map(|c| c.to_ascii_uppercase()));
            }
        }
        caps
    }

    /// `LIST "" "*"`: every mailbox with its attributes, delimiter and raw and decoded names.
    pub fn list(&mut self) -> Vec<ListEntry> {
        self.list_cmd("LIST \"\" \"*\"", "LIST")
    }

    /// `LSUB "" "*"`: subscribed names (UTF-8), sorted.
    pub fn lsub(&mut self) -> Vec<String> {
        let mut v: Vec<String> = self.list_cmd("LSUB \"\" \"*\"", "LSUB").into_iter().map(|e| e.name).collect();
        v.sort();
        v
    }

    /// Names (UTF-8) of all selectable folders, sorted.
    pub fn folders(&mut self) -> Vec<String> {
        let mut v: Vec<String> = self.list().into_iter().filter(ListEntry::selectable).map(|e| e.name).collect();
        v.sort();
        v
    }

    /// The personal namespace's hierarchy delimiter, from `LIST "" ""`.
    pub fn delimiter(&mut self) -> Option<char> {
        self.list_cmd("LIST \"\" \"\"", "LIST").first().and_then(|e| e.delimiter)
    }

    fn list_cmd(&mut self, cmd: &str, kind: &str) -> Vec<ListEntry> {
        let r = self.command_ok(cmd);
        let mut entries = Vec::new();
        for u in &r.untagged {
            let mut p = Parser::new(u);
            p.expect_star();
            if !p.atom().eq_ignore_ascii_case(kind) {
                continue;
            }
            let attributes = match p.value() {
                Val::List(items) => items.iter().filter_map(Val::as_text).collect(),
                other => panic!("{kind}: attributes not a list: {other:?} in {:?}", lossy_head(u)),
            };
            let delimiter = match p.value() {
                Val::Str(s) => s.first().map(|&b| b as char),
                Val::Nil => None,
                other => panic!("{kind}: bad delimiter {other:?} in {:?}", lossy_head(u)),
            };
            let raw_name = p.value().as_text().unwrap_or_else(|| panic!("{kind}: no name in {:?}", lossy_head(u)));
            let name = mutf7_decode(&raw_name).unwrap_or_else(|e| panic!("{kind}: name {raw_name:?} is not modified UTF-7: {e}"));
            entries.push(ListEntry { attributes, delimiter, raw_name, name });
        }
        entries
    }

    /// Opens `folder` read-write.
    pub fn select(&mut self, folder: &str) -> Status {
        self.open(folder, true)
    }

    /// Opens `folder` read-only (does not touch `\Recent` or `\Seen`).
    pub fn examine(&mut self, folder: &str) -> Status {
        self.open(folder, false)
    }

    fn open(&mut self, folder: &str, rw: bool) -> Status {
        let verb = if rw { "SELECT" } else { "EXAMINE" };
        let cmd = format!("{verb} {}", mailbox_arg(folder));
        let r = self.command(&cmd).unwrap_or_else(|e| {
            self.selected = None;
            panic!("ImapReader: {verb} {folder:?} failed: {e}")
        });
        self.selected = Some((folder.to_string(), rw));
        let mut st = Status::default();
        for u in &r.untagged {
            let line = String::from_utf8_lossy(u);
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() >= 3 && words[2].eq_ignore_ascii_case("EXISTS") {
                st.messages = words[1].parse().unwrap_or(0);
            }
            if let Some(v) = resp_code_number(&line, "UIDVALIDITY") {
                st.uidvalidity = v;
            }
            if let Some(v) = resp_code_number(&line, "UIDNEXT") {
                st.uidnext = v;
            }
        }
        st
    }

    /// `STATUS folder (MESSAGES UIDNEXT UIDVALIDITY)`.
    pub fn status(&mut self, folder: &str) -> Status {
        let cmd = format!("STATUS {} (MESSAGES UIDNEXT UIDVALIDITY)", mailbox_arg(folder));
        let r = self.command_ok(&cmd);
        let mut st = Status::default();
        for u in &r.untagged {
            let mut p = Parser::new(u);
            p.expect_star();
            if !p.atom().eq_ignore_ascii_case("STATUS") {
                continue;
            }
            let _name = p.value();
            let Val::List(items) = p.value() else { panic!("STATUS: no list in {:?}", lossy_head(u)) };
            for pair in items.chunks(2) {
                let (Some(k), Some(v)) = (pair[0].as_text(), pair.get(1).and_then(Val::as_u32)) else {
                    continue;
                };
                match k.to_ascii_uppercase().as_str() {
                    "MESSAGES" => st.messages = v,
                    "UIDNEXT" => st.uidnext = v,
                    "UIDVALIDITY" => st.uidvalidity = v,
                    _ => {}
                }
            }
        }
        st
    }

    /// Every message of `folder` (opened read-only) in UID order, via
    /// `UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])`.
    pub fn fetch_all(&mut self, folder: &str) -> Vec<Msg> {
        let mut v = Vec::new();
        self.fetch_each(folder, |m| v.push(m));
        v.sort_by_key(|m| m.uid);
        v
    }

    /// Like [`ImapReader::fetch_all`] but hands each message over as it arrives (large mailboxes).
    pub fn fetch_each(&mut self, folder: &str, mut f: impl FnMut(Msg)) {
        let st = self.open(folder, false);
        if st.messages == 0 {
            return;
        }
        self.fetch_cmd("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])", &mut f);
    }

    /// One message by UID, or `None` if there is none.
    pub fn fetch_uid(&mut self, folder: &str, uid: u32) -> Option<Msg> {
        self.open(folder, false);
        let mut found = None;
        self.fetch_cmd(&format!("UID FETCH {uid} (UID FLAGS INTERNALDATE BODY.PEEK[])"), &mut |m| {
            if m.uid == uid {
                found = Some(m)
            }
        });
        found
    }

    fn fetch_cmd(&mut self, cmd: &str, f: &mut dyn FnMut(Msg)) {
        let mut on = |u: &[u8]| {
            if let Some(m) = parse_fetch(u) {
                f(m)
            }
        };
        if let Err(e) = self.run(&[Part::Text(cmd)], &mut on) {
            panic!("ImapReader: {cmd:?} failed: {e}");
        }
    }

    /// Appends `body` and returns its UID (from APPENDUID); panics if refused.
    pub fn append(&mut self, folder: &str, flags: &[&str], internal_date: Option<&str>, body: &[u8]) -> u32 {
        self.try_append(folder, flags, internal_date, body)
            .unwrap_or_else(|e| panic!("ImapReader: APPEND to {folder:?} ({} bytes) failed: {e}", body.len()))
    }

    /// Appends; `Err` holds the server's NO/BAD text (e.g. `NO [LIMIT] ...`, `NO [OVERQUOTA] ...`).
    pub fn try_append(&mut self, folder: &str, flags: &[&str], internal_date: Option<&str>, body: &[u8]) -> Result<u32, String> {
        let mut head = format!("APPEND {} ({})", mailbox_arg(folder), flags.join(" "));
        if let Some(d) = internal_date {
            head.push_str(&format!(" {}", quoted(d)));
        }
        head.push(' ');
        let text = self.run(&[Part::Text(&head), Part::Literal(body)], &mut |_| {})?;
        resp_code_words(&text, "APPENDUID")
            .and_then(|w| w.get(1).and_then(|u| u.parse().ok()))
            .ok_or_else(|| format!("APPEND OK without APPENDUID: {text:?}"))
    }

    pub fn create(&mut self, folder: &str) {
        self.command_ok(&format!("CREATE {}", mailbox_arg(folder)));
    }

    pub fn delete(&mut self, folder: &str) {
        if self.selected.as_ref().is_some_and(|(f, _)| f == folder) {
            self.unselect();
        }
        self.command_ok(&format!("DELETE {}", mailbox_arg(folder)));
    }

    pub fn rename(&mut self, from: &str, to: &str) {
        if self.selected.as_ref().is_some_and(|(f, _)| f == from) {
            self.unselect();
        }
        self.command_ok(&format!("RENAME {} {}", mailbox_arg(from), mailbox_arg(to)));
    }

    pub fn subscribe(&mut self, folder: &str) {
        self.command_ok(&format!("SUBSCRIBE {}", mailbox_arg(folder)));
    }

    pub fn unsubscribe(&mut self, folder: &str) {
        self.command_ok(&format!("UNSUBSCRIBE {}", mailbox_arg(folder)));
    }

    /// `UID STORE uid <op> (flags)` with `op` one of `+FLAGS`, `-FLAGS`, `FLAGS`.
    pub fn store_flags(&mut self, folder: &str, uid: u32, op: &str, flags: &[&str]) {
        assert!(
            ["+FLAGS", "-FLAGS", "FLAGS", "+FLAGS.SILENT", "-FLAGS.SILENT", "FLAGS.SILENT"].contains(&op.to_ascii_uppercase().as_str()),
            "store_flags: bad op {op:?}"
        );
        self.open(folder, true);
        self.command_ok(&format!("UID STORE {uid} {op} ({})", flags.join(" ")));
    }

    /// Marks one message `\Deleted` and removes it with `UID EXPUNGE` (UIDPLUS).
    pub fn expunge_uid(&mut self, folder: &str, uid: u32) {
        self.open(folder, true);
        self.command_ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
        self.command_ok(&format!("UID EXPUNGE {uid}"));
    }

    /// Marks the messages `\Deleted` and removes exactly those with `UID EXPUNGE` (UIDPLUS), as a user
    /// deleting them and emptying the folder does.
    pub fn expunge_uids(&mut self, folder: &str, uids: &[u32]) {
        if uids.is_empty() {
            return;
        }
        let set = uid_set(uids);
        self.open(folder, true);
        self.command_ok(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"));
        self.command_ok(&format!("UID EXPUNGE {set}"));
    }

    /// `UID MOVE` (RFC 6851) of `uids` from `folder` to `to`, as a user filing mail does. Returns
    /// `(old UID, new UID)` pairs from the server's COPYUID.
    pub fn move_uids(&mut self, folder: &str, uids: &[u32], to: &str) -> Vec<(u32, u32)> {
        self.open(folder, true);
        let r = self.command_ok(&format!("UID MOVE {} {}", uid_set(uids), mailbox_arg(to)));
        let copyuid = r
            .untagged
            .iter()
            .map(|u| String::from_utf8_lossy(u).to_string())
            .chain(std::iter::once(format!("* OK {}", r.text)))
            .find_map(|line| line.trim_end().strip_prefix("* OK ").and_then(|t| resp_code_words(t, "COPYUID")))
            .unwrap_or_else(|| panic!("UID MOVE to {to:?}: no COPYUID in {:?} / {:?}", r.untagged, r.text));
        let (from, into) = (expand_uid_set(&copyuid[1]), expand_uid_set(&copyuid[2]));
        assert_eq!(from.len(), into.len(), "COPYUID {copyuid:?}");
        from.into_iter().zip(into).collect()
    }

    /// Dovecot's `X-GUID` of every message of `folder` by UID: a copy moved (or copied) within one
    /// Dovecot keeps its GUID, an APPENDed one gets a new one, so it tells a MOVE from an APPEND.
    pub fn guids(&mut self, folder: &str) -> std::collections::BTreeMap<u32, String> {
        let mut out = std::collections::BTreeMap::new();
        if self.open(folder, false).messages == 0 {
            return out;
        }
        let r = self.command_ok("UID FETCH 1:* (UID X-GUID)");
        for u in &r.untagged {
            let mut p = Parser::new(u);
            p.expect_star();
            let _seq = p.atom();
            if !p.atom().eq_ignore_ascii_case("FETCH") {
                continue;
            }
            let Val::List(items) = p.value() else { continue };
            let (mut uid, mut guid) = (None, None);
            for pair in items.chunks(2) {
                match (pair[0].as_text().unwrap_or_default().to_ascii_uppercase().as_str(), pair.get(1)) {
                    ("UID", Some(v)) => uid = v.as_u32(),
                    ("X-GUID", Some(v)) => guid = v.as_text(),
                    _ => {}
                }
            }
            if let (Some(uid), Some(guid)) = (uid, guid) {
                out.insert(uid, guid);
            }
        }
        out
    }

    /// `GETQUOTAROOT folder`: `(resource, usage, limit)` triples, e.g. `("STORAGE", 12, 1048576)` (KiB).
    pub fn quota(&mut self, folder: &str) -> Vec<(String, u64, u64)> {
        let r = self.command_ok(&format!("GETQUOTAROOT {}", mailbox_arg(folder)));
        let mut out = Vec::new();
        for u in &r.untagged {
            let mut p = Parser::new(u);
            p.expect_star();
            if !p.atom().eq_ignore_ascii_case("QUOTA") {
                continue;
            }
            let _root = p.value();
            if let Val::List(items) = p.value() {
                for t in items.chunks(3) {
                    if let [k, used, limit] = t {
                        let num = |v: &Val| v.as_text().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                        out.push((k.as_text().unwrap_or_default(), num(used), num(limit)));
                    }
                }
            }
        }
        out
    }

    /// Closes the selected folder without expunging (UNSELECT).
    pub fn unselect(&mut self) {
        if self.selected.take().is_some() {
            self.command_ok("UNSELECT");
        }
    }

    /// `LOGOUT` and close; errors are ignored (the server may already be gone).
    pub fn logout(mut self) {
        let tag = format!("t{}", self.next_tag);
        let _ = self.wr.write_all(format!("{tag} LOGOUT\r\n").as_bytes());
        let _ = self.wr.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = self.rd.read_to_end(&mut sink);
    }

    fn write(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).unwrap_or_else(|e| panic!("ImapReader: write to port {}: {e}", self.port));
    }

    /// One complete response: a line plus, where it ends in `{n}`, the literal and the rest of the line,
    /// repeatedly. Raw bytes, CRLFs included.
    fn read_response(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        loop {
            let start = buf.len();
            match self.rd.read_until(b'\n', &mut buf) {
                Ok(0) => panic!("ImapReader: port {} closed the connection; partial response {:?}", self.port, lossy_head(&buf)),
                Ok(_) => {}
                Err(e) => panic!("ImapReader: read from port {}: {e}; partial {:?}", self.port, lossy_head(&buf)),
            }
            match literal_len_at_end(&buf[start..]) {
                Some(n) => {
                    let at = buf.len();
                    buf.resize(at + n, 0);
                    self.rd
                        .read_exact(&mut buf[at..])
                        .unwrap_or_else(|e| panic!("ImapReader: reading a {n}-byte literal from port {}: {e}", self.port));
                }
                None => return buf,
            }
        }
    }
}

/// UIDs as an IMAP sequence set, one by one (`3,7,9`).
pub fn uid_set(uids: &[u32]) -> String {
    assert!(!uids.is_empty(), "uid_set: no UIDs");
    uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// A sequence set (`3:5,9`) as its UIDs in order.
pub fn expand_uid_set(set: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in set.split(',') {
        let num = |s: &str| s.parse::<u32>().unwrap_or_else(|_| panic!("bad UID {s:?} in set {set:?}"));
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (num(a), num(b));
                out.extend(a.min(b)..=a.max(b));
            }
            None => out.push(num(part)),
        }
    }
    out
}

fn tagged_result(tag: &str, resp: &[u8]) -> Result<String, String> {
    let line = String::from_utf8_lossy(resp).trim_end().to_string();
    let rest = line
        .strip_prefix(tag)
        .and_then(|r| r.strip_prefix(' '))
        .unwrap_or_else(|| panic!("ImapReader: expected tag {tag}, got {:?}", lossy_head(resp)));
    let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
    if status.eq_ignore_ascii_case("OK") { Ok(text.to_string()) } else { Err(rest.to_string()) }
}

/// `n` if `line` ends in `{n}\r\n` (a literal follows).
fn literal_len_at_end(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn lossy_head(b: &[u8]) -> String {
    let head = &b[..b.len().min(300)];
    let mut s = String::from_utf8_lossy(head).into_owned();
    if b.len() > 300 {
        s.push_str(&format!("...({} bytes)", b.len()));
    }
    s
}

/// The words inside `[CODE ...]` of a response text.
fn resp_code_words(text: &str, code: &str) -> Option<Vec<String>> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    let words: Vec<String> = text[start + 1..end].split_whitespace().map(str::to_string).collect();
    words.first().is_some_and(|w| w.eq_ignore_ascii_case(code)).then_some(words[1..].to_vec())
}

fn resp_code_number(line: &str, code: &str) -> Option<u32> {
    let text = line.strip_prefix("* OK ")?;
    resp_code_words(text, code)?.first()?.parse().ok()
}

/// Parses one `* n FETCH (...)` response holding UID and BODY[]; other responses give `None`.
fn parse_fetch(raw: &[u8]) -> Option<Msg> {
    let mut p = Parser::new(raw);
    p.expect_star();
    let _seq = p.atom();
    if !p.atom().eq_ignore_ascii_case("FETCH") {
        return None;
    }
    let Val::List(items) = p.value() else { panic!("FETCH without a list: {:?}", lossy_head(raw)) };
    let (mut uid, mut flags, mut date, mut body) = (None, BTreeSet::new(), String::new(), None);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let key = k.as_text().unwrap_or_default().to_ascii_uppercase();
        match (key.as_str(), v) {
            ("UID", v) => uid = v.as_u32(),
            ("FLAGS", Val::List(fl)) => {
                flags = fl.iter().filter_map(Val::as_text).filter(|f| !f.eq_ignore_ascii_case("\\Recent")).collect()
            }
            ("INTERNALDATE", v) => date = v.as_text().unwrap_or_default(),
            ("BODY[]", Val::Str(b)) => body = Some(b),
            ("BODY[]", Val::Nil) => body = Some(Vec::new()),
            _ => {}
        }
    }
    Some(Msg { uid: uid?, flags, internal_date: date, body: body? })
}

/// Cursor over one raw response, literals inline.
pub struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    pub fn new(b: &'a [u8]) -> Parser<'a> {
        Parser { b, i: 0 }
    }

    fn expect_star(&mut self) {
        assert!(self.b.starts_with(b"* "), "not an untagged response: {:?}", lossy_head(self.b));
        self.i = 2;
    }

    fn skip_spaces(&mut self) {
        while self.i < self.b.len() && self.b[self.i] == b' ' {
            self.i += 1;
        }
    }

    fn atom(&mut self) -> String {
        match self.value() {
            Val::Atom(a) => a,
            other => panic!("expected an atom, got {other:?} in {:?}", lossy_head(self.b)),
        }
    }

    /// The next value: `(list)`, `"quoted"`, `{n}\r\n` literal, `NIL`, or an atom (which may hold
    /// `[...]` sections with spaces, as in `BODY[HEADER.FIELDS (SUBJECT)]`).
    pub fn value(&mut self) -> Val {
        self.skip_spaces();
        let b = self.b;
        let Some(&c) = b.get(self.i) else {
            return Val::Nil;
        };
        match c {
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match b.get(self.i) {
                        Some(b')') => {
                            self.i += 1;
                            return Val::List(items);
                        }
                        None | Some(b'\r') | Some(b'\n') => {
                            panic!("unclosed list in {:?}", lossy_head(b))
                        }
                        _ => items.push(self.value()),
                    }
                }
            }
            b'"' => {
                self.i += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(self.i) {
                        Some(b'\\') => {
                            s.push(*b.get(self.i + 1).expect("quoted string ends in a backslash"));
                            self.i += 2;
                        }
                        Some(b'"') => {
                            self.i += 1;
                            return Val::Str(s);
                        }
                        Some(&ch) => {
                            s.push(ch);
                            self.i += 1;
                        }
                        None => panic!("unterminated quoted string in {:?}", lossy_head(b)),
                    }
                }
            }
            b'{' => {
                let close = b[self.i..].iter().position(|&x| x == b'}').expect("literal without }") + self.i;
                let digits = std::str::from_utf8(&b[self.i + 1..close]).expect("literal length is ASCII");
                let n: usize = digits.trim_end_matches('+').parse().expect("literal length is a number");
                let mut start = close + 1;
                if b[start..].starts_with(b"\r\n") {
                    start += 2;
                } else if b[start..].starts_with(b"\n") {
                    start += 1;
                }
                assert!(start + n <= b.len(), "literal of {n} bytes runs past the response");
                self.i = start + n;
                Val::Str(b[start..start + n].to_vec())
            }
            _ => {
                let start = self.i;
                let mut depth = 0usize;
                while let Some(&ch) = b.get(self.i) {
                    match ch {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b'\r' | b'\n' => break,
                        b' ' | b'(' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                let a = String::from_utf8_lossy(&b[start..self.i]).into_owned();
                if a.eq_ignore_ascii_case("NIL") { Val::Nil } else { Val::Atom(a) }
            }
        }
    }
}

/// An astring argument: quoted when printable ASCII, else a literal.
enum AString {
    Quoted(String),
    Literal(Vec<u8>),
}

impl AString {
    fn parts(&self) -> Vec<Part<'_>> {
        match self {
            AString::Quoted(q) => vec![Part::Text(q)],
            AString::Literal(b) => vec![Part::Literal(b)],
        }
    }
}

fn astring(b: &[u8]) -> AString {
    if b.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        AString::Quoted(quoted(std::str::from_utf8(b).expect("ASCII is UTF-8")))
    } else {
        AString::Literal(b.to_vec())
    }
}

/// `"text"` with `\` and `"` escaped; panics on CR/LF/8-bit (those need a literal).
pub fn quoted(s: &str) -> String {
    assert!(s.bytes().all(|c| (0x20..0x7f).contains(&c)), "cannot send {s:?} as a quoted string");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A UTF-8 folder name as a quoted modified-UTF-7 mailbox argument.
pub fn mailbox_arg(folder: &str) -> String {
    quoted(&mutf7_encode(folder))
}

const MB64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// UTF-8 to IMAP modified UTF-7 (RFC 3501 §5.1.3): printable ASCII as is (`&` as `&-`), the rest as
/// UTF-16BE in base64 with `,` for `/`, no padding, between `&` and `-`.
pub fn mutf7_encode(s: &str) -> String {
    fn flush(units: &mut Vec<u16>, out: &mut String) {
        if units.is_empty() {
            return;
        }
        let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(MB64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        units.clear();
    }
    let mut out = String::new();
    let mut units = Vec::new();
    for ch in s.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut units, &mut out);
            if ch == '&' { out.push_str("&-") } else { out.push(ch) }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut units, &mut out);
    out
}

/// IMAP modified UTF-7 to UTF-8; `Err` names what is malformed.
pub fn mutf7_decode(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        let plain = &rest[..amp];
        if let Some(bad) = plain.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(format!("{bad:?} outside a shifted sequence"));
        }
        out.push_str(plain);
        let after = &rest[amp + 1..];
        let dash = after.find('-').ok_or_else(|| format!("unterminated '&' sequence in {s:?}"))?;
        let enc = &after[..dash];
        if enc.is_empty() {
            out.push('&');
        } else {
            let mut bits: u32 = 0;
            let mut nbits = 0;
            let mut bytes = Vec::new();
            for c in enc.bytes() {
                let v = MB64.iter().position(|&m| m == c).ok_or_else(|| format!("{:?} in base64 of {s:?}", c as char))?;
                bits = (bits << 6) | v as u32;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    bytes.push((bits >> nbits) as u8);
                    bits &= (1 << nbits) - 1;
                }
            }
            if bytes.len() % 2 != 0 {
                return Err(format!("odd number of UTF-16 bytes in {s:?}"));
            }
            let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            out.push_str(&String::from_utf16(&units).map_err(|e| format!("bad UTF-16 in {s:?}: {e}"))?);
        }
        rest = &after[dash + 1..];
    }
    if let Some(bad) = rest.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!("{bad:?} outside a shifted sequence"));
    }
    out.push_str(rest);
    Ok(out)
}

/// Seconds since the Unix epoch of an IMAP date-time (`"01-Jan-2001 04:30:00 +0000"`, day may be
/// space-padded), or `None` if it does not parse.
pub fn parse_internal_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.trim_start().split_once(' ')?;
    let mut d = date.split('-');
    let day: i64 = d.next()?.trim().parse().ok()?;
    let mon = d.next()?;
    let year: i64 = d.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as i64 + 1;
    let mut t = time.split(':').map(|x| x.parse::<i64>());
    let (h, mi, se) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let z: i64 = zone.get(1..5)?.parse().ok()?;
    let offset = sign * ((z / 100) * 3600 + (z % 100) * 60);
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
