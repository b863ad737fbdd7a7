//! Streamed UID FETCH of message bodies. imap-next decodes an answer only once it holds all of it, and
//! then keeps its buffer at that size for the rest of the connection; for bodies that would put every
//! message (or every slice of a large one) in memory twice per worker. Here the commands are written by
//! us and the `* n FETCH (...)` answers are read by us: a body literal goes from the socket to a
//! `BodySink` in the pieces it arrives in, so a worker holds one read buffer whatever it fetches. Any
//! other answer (tagged OK/NO, EXISTS, BYE...) is handed whole to imap-next, so codes, throttling and
//! BYE reasons are read the same way as everywhere else.
//!
//! A `* BYE` in the middle of these answers that says the server could not read a message is
//! `ImapError::HungUpOnMessage` (quirk `dovecot_bye_on_fetch_failure`), decided here from its reason.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use imap_next::client::Event;
use imap_next::imap_types::core::Tag;
use imap_next::{Interrupt, Io, State};

use super::{Answer, Answers, ImapError, LINE_LIMIT, RESPONSE_LIMIT, Session, kind_of};

/// Where streamed bodies go. For each body in an answer: `begin`, then `bytes` any number of times (the
/// pieces add up to `len`), then `end`. `nil` is a body the server has but will not give.
pub trait BodySink {
    /// A body of message `uid` of `len` bytes begins: the part starting at octet `origin` when the
    /// answer says (`BODY[]<4096>`), None when it does not (`BODY[]`: a whole body, or a server that
    /// leaves the origin out of a partial answer).
    fn begin(&mut self, uid: u32, origin: Option<u32>, len: u32) -> Result<()>;
    fn bytes(&mut self, piece: &[u8]) -> Result<()>;
    fn end(&mut self) -> Result<()>;
    fn nil(&mut self, uid: u32) -> Result<()>;
    /// The commands are sent again (the server asked us to wait): every body may come a second time.
    fn again(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One UID FETCH of bodies: the UIDs, and the whole body or `(offset, length)` of it.
#[derive(Debug, Clone)]
pub struct BodyRequest {
    pub uid_set: String,
    pub range: Option<(u32, u32)>,
}

/// The longest word, number, quoted string or non-FETCH answer accepted; anything longer is not an
/// answer to these commands. Literals are exempt: they are streamed.
const TOKEN_LIMIT: usize = 64 * 1024;
/// A body that arrives before its UID (no server we know does this; Dovecot and Exchange put UID
/// first) has to be held until the UID says whose it is. The requests ask for at most a slice or a
/// small message, so this only stops a server that sends something else entirely.
const HELD_LIMIT: usize = 8 * 1024 * 1024;

impl Session {
    /// Sends the requests pipelined and streams every body of their answers to `sink`. A tagged NO is
    /// an error with the server's words; throttling answers are waited out and the commands sent again
    /// (a sink sees those bodies twice and must take a repeat as a replacement).
    pub async fn uid_fetch_bodies(&mut self, requests: &[BodyRequest], sink: &mut dyn BodySink) -> Result<()> {
        let mut attempt = 0;
        loop {
            let answers = self.fetch_bodies_once(requests, sink).await?;
            if self.wait_if_throttled(&answers, &mut attempt).await {
                sink.again()?;
                continue;
            }
            for answer in answers {
                if !answer.is_ok() {
                    return Err(self.refused("UID FETCH", format!("FETCH failed: {}", answer.words()), &answer));
                }
            }
            return Ok(());
        }
    }

    async fn fetch_bodies_once(&mut self, requests: &[BodyRequest], sink: &mut dyn BodySink) -> Result<Vec<Answer>> {
        self.begin_command("UID FETCH", Answers::Streamed)?;
        // A part asked for by range may not be longer than the range; a whole body has no bound here
        // but the sink's (and the command's deadline), since its size is what the server says it is.
        let max_body = requests
            .iter()
            .map(|r| r.range.map(|(_, length)| length.max(1)))
            .collect::<Option<Vec<u32>>>()
            .and_then(|v| v.into_iter().max());
        let mut tags = Vec::new();
        let mut commands = String::new();
        for request in requests {
            // The set is digits, ':' ',' and '*' from our own code; anything else would break the line.
            if request.uid_set.is_empty() || !request.uid_set.bytes().all(|b| b.is_ascii_digit() || b":,*".contains(&b)) {
                bail!("bad UID set {}", request.uid_set);
            }
            let tag = self.tag();
            let item = match request.range {
                Some((offset, length)) => format!("BODY.PEEK[]<{offset}.{}>", length.max(1)),
                None => "BODY.PEEK[]".to_string(),
            };
            commands.push_str(&format!("{} UID FETCH {} (UID {item})\r\n", tag.inner(), request.uid_set));
            tags.push(tag);
        }
        self.write_all(commands.as_bytes()).await?;
        self.flush().await?;
        let mut answers: BTreeMap<String, Answer> = BTreeMap::new();
        while answers.len() < tags.len() {
            self.next_body_answer(&tags, &mut answers, sink, max_body).await.map_err(|e| self.left_mid_command(e))?;
        }
        Ok(tags.iter().filter_map(|t| answers.remove(t.inner())).collect())
    }

    /// Reads one answer: a FETCH is parsed here and its bodies streamed; anything else goes to imap-next.
    async fn next_body_answer(
        &mut self,
        tags: &[Tag<'static>],
        answers: &mut BTreeMap<String, Answer>,
        sink: &mut dyn BodySink,
        max_body: Option<u32>,
    ) -> Result<()> {
        if let Some(what) = self.budget.count(1, 0) {
            return Err(self.misbehaved(what));
        }
        self.fetch_line = 0;
        // "* <number> FETCH " is at most a few dozen bytes; read up to the third space or the line end.
        let mut head = Vec::new();
        let mut spaces = 0;
        while spaces < 3 && head.len() < 40 {
            let b = self.in_byte().await?;
            head.push(b);
            match b {
                b' ' => spaces += 1,
                b'\n' => break,
                _ => {}
            }
        }
        if is_fetch_head(&head) {
            return self.read_fetch(sink, max_body).await;
        }
        let raw = self.rest_of_answer(head).await?;
        // Counted once as an answer above; `feed_client` counts it again when it ends, which only
        // makes the bound a little stricter for non-FETCH answers.
        self.feed_client(&raw)?;
        loop {
            match self.client.next() {
                Ok(Event::ContinuationRequestReceived { .. }) => {}
                Ok(event) => self.on_event(event, tags, answers, &mut |_| Ok(())).map_err(hung_up_on_a_message)?,
                Err(Interrupt::Io(Io::NeedMoreInput)) => return Ok(()),
                Err(Interrupt::Io(Io::Output(bytes))) => self.write_all(&bytes).await?,
                Err(Interrupt::Error(error)) => bail!("{}: unreadable response from the server: {error}", self.label),
            }
        }
    }

    /// The rest of an answer that is not a FETCH, raw, literals included, after `head`.
    async fn rest_of_answer(&mut self, mut raw: Vec<u8>) -> Result<Vec<u8>> {
        let mut line_done = raw.last() == Some(&b'\n');
        // Where the line being read starts. Only that line can announce a literal: the bytes of one
        // already read may end in "{n}" too (a folder named "{3}"), and are not an announcement.
        let mut line_start = 0;
        loop {
            while !line_done {
                let b = self.in_byte().await?;
                raw.push(b);
                line_done = b == b'\n';
                if raw.len() > TOKEN_LIMIT {
                    bail!("{}: an answer longer than {TOKEN_LIMIT} bytes during a FETCH", self.label);
                }
            }
            // A line ending in "{n}" (or "{n+}") is followed by n literal bytes and more of the answer.
            let Some(n) = trailing_literal(&raw[line_start..]) else { return Ok(raw) };
            if raw.len() + n > TOKEN_LIMIT {
                bail!("{}: an answer longer than {TOKEN_LIMIT} bytes during a FETCH", self.label);
            }
            for _ in 0..n {
                let b = self.in_byte().await?;
                raw.push(b);
            }
            line_start = raw.len();
            line_done = false;
        }
    }

    /// The items of a FETCH answer, after "* n FETCH ": UID and bodies to the sink, the rest skipped.
    async fn read_fetch(&mut self, sink: &mut dyn BodySink, max_body: Option<u32>) -> Result<()> {
        self.in_expect(b'(').await?;
        let mut uid: Option<u32> = None;
        // A body that came before the UID: (origin, bytes), or None for NIL.
        let mut held: Option<(Option<u32>, Option<Vec<u8>>)> = None;
        loop {
            self.skip_spaces().await?;
            if self.in_peek().await? == b')' {
                self.in_byte().await?;
                break;
            }
            let name = self.item_name().await?;
            self.skip_spaces().await?;
            if name == "UID" {
                let n = self.in_atom().await?;
                uid = Some(n.parse().map_err(|_| anyhow!("{}: a FETCH answer with UID {n:?}", self.label))?);
                continue;
            }
            let Some(origin) = body_origin(&name) else {
                self.skip_value().await?;
                continue;
            };

            match (self.in_peek().await?, uid) {
                (b'{' | b'~', Some(uid)) => {
                    let len = self.literal_length().await?;
                    self.check_body_length(len, max_body, &name)?;
                    sink.begin(uid, origin, len)?;
                    self.stream_literal(len as usize, sink).await?;
                    sink.end()?;
                }
                (b'{' | b'~', None) => {
                    let len = self.literal_length().await?;
                    self.check_body_length(len, max_body, &name)?;
                    let len = len as usize;
                    if len > HELD_LIMIT {
                        bail!("{}: a body of {len} bytes came before its UID", self.label);
                    }
                    let mut bytes = Vec::with_capacity(len);
                    self.stream_literal(len, &mut Collect(&mut bytes)).await?;
                    held = Some((origin, Some(bytes)));
                }
                (b'"', _) => {
                    let bytes = self.in_quoted().await?;
                    match uid {
                        Some(uid) => {
                            sink.begin(uid, origin, bytes.len() as u32)?;
                            sink.bytes(&bytes)?;
                            sink.end()?;
                        }
                        None => held = Some((origin, Some(bytes))),
                    }
                }
                _ => {
                    let word = self.in_atom().await?;
                    if !word.eq_ignore_ascii_case("NIL") {
                        bail!("{}: a FETCH body given as {word:?}", self.label);
                    }
                    match uid {
                        Some(uid) => sink.nil(uid)?,
                        None => held = Some((origin, None)),
                    }
                }
            }
        }
        self.line_end().await?;
        match (held, uid) {
            (Some((origin, Some(bytes))), Some(uid)) => {
                sink.begin(uid, origin, bytes.len() as u32)?;
                sink.bytes(&bytes)?;
                sink.end()?;
            }
            (Some((_, None)), Some(uid)) => sink.nil(uid)?,
            // No UID at all: not an answer to UID FETCH (an unsolicited one); nothing to attribute.
            _ => {}
        }
        Ok(())
    }

    /// Refuses a body literal longer than the longest range asked for (`max_body`), before reading it.
    fn check_body_length(&mut self, len: u32, max_body: Option<u32>, name: &str) -> Result<()> {
        match max_body {
            Some(max) if len > max => Err(self.misbehaved(format!(
                "the server announced a body part of {len} bytes ({name}) in answer to a request for at most {max}; \
                 stopped reading it"
            ))),
            _ => Ok(()),
        }
    }

    /// A FETCH item's name, upper-cased, with its section and origin: "UID", "BODY[]<0>", "FLAGS".
    async fn item_name(&mut self) -> Result<String> {
        let mut name = Vec::new();
        let mut depth = 0u32;
        loop {
            let b = self.in_peek().await?;
            match b {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' | b'(' | b')' | b'{' | b'"' | b'\r' | b'\n' if depth == 0 => break,
                b'\r' | b'\n' => bail!("{}: a FETCH item name broken by a line end", self.label),
                _ => {}
            }
            self.in_byte().await?;
            name.push(b.to_ascii_uppercase());
            if name.len() > TOKEN_LIMIT {
                bail!("{}: a FETCH item name longer than {TOKEN_LIMIT} bytes", self.label);
            }
        }
        if name.is_empty() {
            bail!("{}: an empty FETCH item name", self.label);
        }
        Ok(String::from_utf8_lossy(&name).into_owned())
    }

    /// Skips one value: an atom or number, a quoted string, a literal, or a parenthesised list.
    async fn skip_value(&mut self) -> Result<()> {
        let mut depth = 0u32;
        loop {
            match self.in_peek().await? {
                b'(' => {
                    self.in_byte().await?;
                    depth += 1;
                }
                b')' if depth > 0 => {
                    self.in_byte().await?;
                    depth -= 1;
                }
                b'"' => {
                    self.in_quoted().await?;
                }
                b'{' => {
                    let len = self.literal_length().await?;
                    self.check_other_literal(len)?;
                    self.stream_literal(len as usize, &mut Discard).await?;
                }
                b'~' => {
                    // "~{n}" is a literal8, but '~' may also begin an atom: "~draft" is a valid
                    // keyword, and FLAGS can come in an unsolicited FETCH in the middle of ours.
                    self.in_byte().await?;
                    match self.in_peek().await? {
                        b'{' => {
                            let len = self.literal_length().await?;
                            self.check_other_literal(len)?;
                            self.stream_literal(len as usize, &mut Discard).await?;
                        }
                        b if is_atom_end(b) => {}
                        _ => {
                            self.in_atom().await?;
                        }
                    }
                }
                b' ' if depth > 0 => {
                    self.in_byte().await?;
                }
                b'\r' | b'\n' => bail!("{}: a FETCH answer ended inside a value", self.label),
                _ => {
                    self.in_atom().await?;
                }
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    /// Refuses a literal of an item that is not a body (not asked for; skipped) beyond what an answer
    /// through imap-next may hold.
    fn check_other_literal(&mut self, len: u32) -> Result<()> {
        if len > RESPONSE_LIMIT {
            return Err(self.misbehaved(format!(
                "the server announced a literal of {len} bytes for a FETCH item that is not a body, more than the {} MiB \
                 an answer may hold; stopped reading it",
                RESPONSE_LIMIT >> 20
            )));
        }
        Ok(())
    }

    /// "{n}" or "~{n}" (literal8) and the line end after it; returns n.
    async fn literal_length(&mut self) -> Result<u32> {
        if self.in_peek().await? == b'~' {
            self.in_byte().await?;
        }
        self.in_expect(b'{').await?;
        let mut digits = String::new();
        loop {
            match self.in_byte().await? {
                b'}' => break,
                // "{n+}" is the client's LITERAL+; tolerated in case a server echoes it.
                b'+' => {}
                b if b.is_ascii_digit() && digits.len() < 10 => digits.push(b as char),
                b => bail!("{}: a literal length with {:?} in it", self.label, b as char),
            }
        }
        self.line_end().await?;
        // The literal ends the line; what follows it is a new one.
        self.fetch_line = 0;
        digits.parse().map_err(|_| anyhow!("{}: a literal length of {digits:?}", self.label))
    }

    /// Passes the next `len` bytes to `sink` in the pieces the read buffer holds.
    async fn stream_literal(&mut self, mut len: usize, sink: &mut dyn BodySink) -> Result<()> {
        while len > 0 {
            if self.read_start == self.read_end {
                self.fill_read_buf().await?;
            }
            let n = len.min(self.read_end - self.read_start);
            sink.bytes(&self.read_buf[self.read_start..self.read_start + n])?;
            self.read_start += n;
            len -= n;
        }
        Ok(())
    }

    /// A quoted string's content, escapes undone.
    async fn in_quoted(&mut self) -> Result<Vec<u8>> {
        self.in_expect(b'"').await?;
        let mut out = Vec::new();
        loop {
            match self.in_byte().await? {
                b'"' => return Ok(out),
                b'\\' => out.push(self.in_byte().await?),
                b'\r' | b'\n' => bail!("{}: a quoted string broken by a line end", self.label),
                b => out.push(b),
            }
            if out.len() > TOKEN_LIMIT {
                bail!("{}: a quoted string longer than {TOKEN_LIMIT} bytes", self.label);
            }
        }
    }

    /// An atom or number, up to the next delimiter.
    async fn in_atom(&mut self) -> Result<String> {
        let mut out = Vec::new();
        loop {
            match self.in_peek().await? {
                b if is_atom_end(b) => break,
                b => {
                    self.in_byte().await?;
                    out.push(b);
                }
            }
            if out.len() > TOKEN_LIMIT {
                bail!("{}: a word longer than {TOKEN_LIMIT} bytes", self.label);
            }
        }
        if out.is_empty() {
            bail!("{}: a FETCH answer with a value missing", self.label);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    async fn skip_spaces(&mut self) -> Result<()> {
        while self.in_peek().await? == b' ' {
            self.in_byte().await?;
        }
        Ok(())
    }

    /// CRLF, or LF alone (quirk `bare_lf_lines`, as imap-next is told to accept in `client_options`).
    async fn line_end(&mut self) -> Result<()> {
        self.skip_spaces().await?;
        if self.in_peek().await? == b'\r' {
            self.in_byte().await?;
        }
        self.in_expect(b'\n').await
    }

    async fn in_expect(&mut self, wanted: u8) -> Result<()> {
        let b = self.in_byte().await?;
        if b != wanted {
            bail!("{}: unreadable FETCH answer: {:?} where {:?} belongs", self.label, b as char, wanted as char);
        }
        Ok(())
    }

    async fn in_peek(&mut self) -> Result<u8> {
        if self.read_start == self.read_end {
            self.fill_read_buf().await?;
        }
        Ok(self.read_buf[self.read_start])
    }

    /// The next byte of protocol (not of a literal), counted against `LINE_LIMIT`: a FETCH answer is
    /// a line, broken only by its literals, and a server may otherwise send spaces or digits for ever.
    async fn in_byte(&mut self) -> Result<u8> {
        let b = self.in_peek().await?;
        self.read_start += 1;
        self.fetch_line += 1;
        if self.fetch_line > LINE_LIMIT {
            return Err(self.misbehaved(format!(
                "the server sent a line of more than {} MiB without its line end in answer to UID FETCH; stopped reading it",
                LINE_LIMIT >> 20
            )));
        }
        Ok(b)
    }

    /// Reads more from the socket into the (empty) read buffer.
    pub(super) async fn fill_read_buf(&mut self) -> Result<()> {
        let n = self.read_some().await.context("reading a FETCH answer")?;
        self.read_start = 0;
        self.read_end = n;
        Ok(())
    }
}

/// Quirk `dovecot_bye_on_fetch_failure` (Dovecot; seen with a message file it cannot read): a message
/// the server cannot read is not refused with a tagged NO but with `* BYE FETCH failed: Internal error
/// occurred` and a closed connection, taking the rest of the batch with it. Such a BYE in the middle of
/// a body FETCH is `HungUpOnMessage`; a BYE for a reason of the server's own (shutting down, a session
/// limit) says nothing about any message and stays a lost connection.
fn hung_up_on_a_message(e: anyhow::Error) -> anyhow::Error {
    if let Some(ImapError::ConnectionLost { label, bye: Some(reason), .. }) = kind_of(&e) {
        let lower = reason.to_ascii_lowercase();
        if lower.contains("fetch failed") || lower.contains("internal error") {
            return ImapError::HungUpOnMessage { label: label.clone(), reason: reason.clone() }.into();
        }
    }
    e
}

/// Whether `b` ends an atom or number in a FETCH answer.
fn is_atom_end(b: u8) -> bool {
    matches!(b, b' ' | b'(' | b')' | b'{' | b'"' | b'\r' | b'\n')
}

/// Whether `head` is "* <digits> FETCH " (any case).
fn is_fetch_head(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut words = text.split(' ');
    matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some("*"), Some(n), Some(f), Some("")) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && f.eq_ignore_ascii_case("FETCH")
    )
}

/// The origin of a body item's name ("BODY[]" Some(None), "BODY[]<4096>" Some(Some(4096)); RFC822 and
/// BINARY[] too), or None for any other item (a header section, FLAGS...).
fn body_origin(name: &str) -> Option<Option<u32>> {
    let rest = ["BODY[]", "BINARY[]", "RFC822"].iter().find_map(|p| name.strip_prefix(p))?;
    if rest.is_empty() {
        return Some(None);
    }
    rest.strip_prefix('<')?.strip_suffix('>')?.parse().ok().map(Some)
}

/// The literal length a raw line announces at its end ("... {12}\r\n" or "{12+}"), if any.
fn trailing_literal(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// A sink that keeps a held body's bytes.
struct Collect<'a>(&'a mut Vec<u8>);

impl BodySink for Collect<'_> {
    fn begin(&mut self, _: u32, _: Option<u32>, _: u32) -> Result<()> {
        Ok(())
    }
    fn bytes(&mut self, piece: &[u8]) -> Result<()> {
        self.0.extend_from_slice(piece);
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
    fn nil(&mut self, _: u32) -> Result<()> {
        Ok(())
    }
}

/// A sink for literals that are not bodies.
struct Discard;

impl BodySink for Discard {
    fn begin(&mut self, _: u32, _: Option<u32>, _: u32) -> Result<()> {
        Ok(())
    }
    fn bytes(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
    fn nil(&mut self, _: u32) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::thread::JoinHandle;
    use std::time::Duration;

    use super::*;
    use crate::imap::{Endpoint, TlsMode, bye_reason};

    #[test]
    fn fetch_heads() {
        assert!(is_fetch_head(b"* 12 FETCH "));
        assert!(is_fetch_head(b"* 1 fetch "));
        assert!(!is_fetch_head(b"* 12 EXISTS\r\n"));
        assert!(!is_fetch_head(b"* OK [UIDNEXT 4] x"));
        assert!(!is_fetch_head(b"P3 OK FETCH "));
        assert!(!is_fetch_head(b"* BYE FETCH failed"));
    }

    #[test]
    fn body_origins() {
        assert_eq!(body_origin("BODY[]"), Some(None));
        assert_eq!(body_origin("BODY[]<65536>"), Some(Some(65536)));
        assert_eq!(body_origin("RFC822"), Some(None));
        assert_eq!(body_origin("RFC822.SIZE"), None);
        assert_eq!(body_origin("BODY[HEADER]"), None);
        assert_eq!(body_origin("FLAGS"), None);
    }

    #[test]
    fn trailing_literals() {
        assert_eq!(trailing_literal(b"* LIST () \"/\" {5}\r\n"), Some(5));
        assert_eq!(trailing_literal(b"* LIST () \"/\" {5+}\n"), Some(5));
        assert_eq!(trailing_literal(b"* 3 EXISTS\r\n"), None);
        assert_eq!(trailing_literal(b"P1 OK done {x}\r\n"), None);
    }

    // The tests below drive the real `Session::uid_fetch_bodies` against a scripted server on
    // 127.0.0.1, because the answer shapes they need cannot be got from Dovecot: UID after the body,
    // literal8 and quoted bodies, NIL, unsolicited answers between ours, bare LF line ends, a BYE or
    // a throttling NO at a chosen point, and every answer arriving one byte at a time.

    /// How the scripted server writes its answers.
    #[derive(Clone, Copy, PartialEq)]
    pub(crate) enum Pace {
        /// Each answer in one write.
        Whole,
        /// One byte per write, sent at once (TCP_NODELAY); and the client's read buffer shrunk to one
        /// byte, so every read returns a single byte whatever the timing and every split is met.
        ByteByByte,
    }

    /// A scripted IMAP server for one connection: sends a greeting, then for each step reads that many
    /// command lines and writes the answer. Returns its port and a handle that yields the command lines
    /// it read, once the client has hung up.
    pub(crate) fn scripted_server(steps: Vec<(usize, Vec<u8>)>, pace: Pace) -> (u16, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            let mut out = stream.try_clone().expect("clone");
            let mut input = BufReader::new(stream);
            let mut write = |bytes: &[u8]| match pace {
                Pace::Whole => out.write_all(bytes).and_then(|()| out.flush()).expect("write"),
                Pace::ByteByByte => {
                    for b in bytes {
                        out.write_all(std::slice::from_ref(b)).and_then(|()| out.flush()).expect("write");
                    }
                }
            };
            write(b"* OK ready\r\n");
            let mut commands = Vec::new();
            for (lines, answer) in steps {
                for _ in 0..lines {
                    let mut line = Vec::new();
                    input.read_until(b'\n', &mut line).expect("read a command");
                    commands.push(String::from_utf8_lossy(&line).into_owned());
                }
                write(&answer);
            }
            // Stay connected until the client hangs up, so it never sees a close it did not cause.
            let _ = input.read_to_end(&mut Vec::new());
            commands
        });
        (port, handle)
    }

    pub(crate) async fn connect(port: u16, pace: Pace) -> Session {
        let endpoint = Endpoint { host: "127.0.0.1".into(), port, tls: TlsMode::Plain, pin_sha256: None };
        let mut session = Session::connect(&endpoint, "source scripted", crate::quirks::ServerKind::Imap).await.expect("connect");
        if pace == Pace::ByteByByte {
            session.read_buf = vec![0; 1];
        }
        session
    }

    /// Runs a test's async part, failing it instead of hanging on a parser that waits for bytes.
    pub(crate) fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
        smol::block_on(smol::future::or(async { Some(fut.await) }, async {
            smol::Timer::after(Duration::from_secs(20)).await;
            None
        }))
        .expect("the test took more than 20 s")
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Got {
        Body { uid: u32, origin: u32, bytes: Vec<u8> },
        Nil(u32),
    }

    /// Records what a fetch gives, checking the sink contract as it goes.
    #[derive(Default)]
    struct Recorder {
        got: Vec<Got>,
        /// (uid, origin, announced length, bytes so far) of the body being received.
        open: Option<(u32, u32, u32, Vec<u8>)>,
        /// Pieces each body arrived in, in order.
        pieces: Vec<usize>,
    }

    impl BodySink for Recorder {
        fn begin(&mut self, uid: u32, origin: Option<u32>, len: u32) -> Result<()> {
            assert!(self.open.is_none(), "begin inside a body");
            self.open = Some((uid, origin.unwrap_or(0), len, Vec::new()));
            self.pieces.push(0);
            Ok(())
        }
        fn bytes(&mut self, piece: &[u8]) -> Result<()> {
            let open = self.open.as_mut().expect("bytes outside a body");
            open.3.extend_from_slice(piece);
            assert!(open.3.len() <= open.2 as usize, "more bytes than announced");
            *self.pieces.last_mut().expect("a body") += 1;
            Ok(())
        }
        fn end(&mut self) -> Result<()> {
            let (uid, origin, len, bytes) = self.open.take().expect("end outside a body");
            assert_eq!(bytes.len(), len as usize, "uid {uid}: the pieces do not add up to the length");
            self.got.push(Got::Body { uid, origin, bytes });
            Ok(())
        }
        fn nil(&mut self, uid: u32) -> Result<()> {
            assert!(self.open.is_none(), "nil inside a body");
            self.got.push(Got::Nil(uid));
            Ok(())
        }
    }

    /// A message body with what a parser could mistake for protocol: line ends of both kinds, parens,
    /// quotes, literal announcements, an answer head, NUL and 8-bit bytes. Larger than the read buffer.
    fn tricky_body(seed: u8, len: usize) -> Vec<u8> {
        let mut body = b"Subject: (tricky) \"quoted\" {3}\r\n\r\n* 9 FETCH (UID 1 BODY[] {5}\r\nP1 OK done\n)\r\n".to_vec();
        let mut i = 0usize;
        while body.len() < len {
            body.push(match i % 97 {
                0 => b'\r',
                1 => b'\n',
                7 => 0,
                13 => 0xff,
                21 => b')',
                _ => b'a' + ((i as u8).wrapping_add(seed) % 26),
            });
            i += 1;
        }
        body.truncate(len);
        body
    }

    /// `* n FETCH (<before>` a literal of `body` `<after>)` in the given line end.
    fn fetch_literal(n: u32, before: &str, literal8: bool, body: &[u8], after: &str, eol: &str) -> Vec<u8> {
        let mut out = format!("* {n} FETCH ({before}{}{{{}}}{eol}", if literal8 { "~" } else { "" }, body.len()).into_bytes();
        out.extend_from_slice(body);
        out.extend_from_slice(format!("{after}){eol}").as_bytes());
        out
    }

    /// Two pipelined UID FETCHes answered in every shape the parser must take, unsolicited answers
    /// among them, then a CAPABILITY through imap-next on the same connection; with `eol` "\n" the
    /// server has quirk `bare_lf_lines` (old Courier).
    fn streamed_fetch_then_a_normal_command(pace: Pace, eol: &str) {
        let body5 = tricky_body(1, 20_000);
        let body6 = tricky_body(2, 3_000);
        let body9 = tricky_body(3, 1_500);
        let body10 = tricky_body(4, 9_000);
        let mut answer = Vec::new();
        answer.extend(fetch_literal(1, "UID 5 BODY[] ", false, &body5, "", eol));
        // Other items around the body: FLAGS with a keyword that starts like a literal8, a quoted
        // date, a header section with parens and quotes in its name and a literal of its own.
        answer.extend(
            format!(
                "* 2 FETCH (FLAGS (\\Seen ~draft $Etikett) UID 6 RFC822.SIZE 3000 INTERNALDATE \"01-Jan-2020 10:00:00 +0100\" \
                 BODY[HEADER.FIELDS (SUBJECT \"X-Y\")] {{12}}{eol}Subject: x\r\n "
            )
            .into_bytes(),
        );
        answer.extend(fetch_literal(2, "BODY[] ", true, &body6, "", eol).split_off(b"* 2 FETCH (".len()));
        // Unsolicited: a flag change and even a body without UID; neither is an answer to UID FETCH.
        answer.extend(format!("* 3 FETCH (FLAGS (\\Seen)){eol}* 4 FETCH (BODY[] {{4}}{eol}nope){eol}").into_bytes());
        answer.extend(format!("* 4 EXISTS{eol}* OK [ALERT] almost there{eol}").into_bytes());
        // An untagged answer with a literal whose own bytes end like an announcement.
        answer.extend(format!("* LIST () \"/\" {{3}}{eol}{{3}}{eol}").into_bytes());
        answer.extend(format!("* 5 FETCH (UID 7 BODY[] NIL){eol}").into_bytes());
        answer.extend(format!("* 6 FETCH (UID 8 BODY[] \"a \\\"quoted\\\" body \\\\ (here)\"){eol}").into_bytes());
        // UID after the body (held until it comes), whole and partial.
        answer.extend(fetch_literal(7, "BODY[] ", false, &body9, " UID 9", eol));
        answer.extend(format!("P1 OK Fetch completed.{eol}").into_bytes());
        answer.extend(fetch_literal(8, "BODY[]<65536> ", false, &body10, " FLAGS () UID 10", eol));
        // The tagged OK and, in the same write, an unsolicited EXISTS: left for imap-next.
        answer.extend(format!("P2 OK Fetch completed.{eol}* 11 EXISTS{eol}").into_bytes());
        let capability = format!("* CAPABILITY IMAP4rev1 XSCRIPTED{eol}P3 OK done{eol}").into_bytes();
        let (port, server) = scripted_server(vec![(2, answer), (1, capability)], pace);

        let mut sink = Recorder::default();
        let exists = run(async {
            let mut session = connect(port, pace).await;
            let requests =
                [BodyRequest { uid_set: "5:9".into(), range: None }, BodyRequest { uid_set: "10".into(), range: Some((65536, 65536)) }];
            session.uid_fetch_bodies(&requests, &mut sink).await.unwrap_or_else(|e| panic!("{e:#}"));
            session.refresh_capabilities().await.expect("a normal command after the streamed fetch");
            assert!(session.has("XSCRIPTED"), "the CAPABILITY answer was read");
            session.exists
        });
        assert_eq!(exists, 11, "the EXISTS left after the tagged OK reached imap-next");
        let commands = server.join().expect("server");
        assert_eq!(
            commands,
            ["P1 UID FETCH 5:9 (UID BODY.PEEK[])\r\n", "P2 UID FETCH 10 (UID BODY.PEEK[]<65536.65536>)\r\n", "P3 CAPABILITY\r\n",]
        );
        let want = vec![
            Got::Body { uid: 5, origin: 0, bytes: body5 },
            Got::Body { uid: 6, origin: 0, bytes: body6 },
            Got::Nil(7),
            Got::Body { uid: 8, origin: 0, bytes: b"a \"quoted\" body \\ (here)".to_vec() },
            Got::Body { uid: 9, origin: 0, bytes: body9 },
            Got::Body { uid: 10, origin: 65536, bytes: body10 },
        ];
        assert!(sink.got == want, "got {:?}", sink.got.iter().map(short).collect::<Vec<_>>());
        if pace == Pace::ByteByByte {
            // Every read was one byte, so the first body came a byte at a time.
            assert_eq!(sink.pieces[0], 20_000, "one piece per byte");
        }
    }

    fn short(got: &Got) -> String {
        match got {
            Got::Body { uid, origin, bytes } => format!("uid {uid} <{origin}> {} bytes", bytes.len()),
            Got::Nil(uid) => format!("uid {uid} NIL"),
        }
    }

    #[test]
    fn streamed_fetch_in_whole_writes() {
        streamed_fetch_then_a_normal_command(Pace::Whole, "\r\n");
    }

    #[test]
    fn streamed_fetch_one_byte_at_a_time() {
        streamed_fetch_then_a_normal_command(Pace::ByteByByte, "\r\n");
    }

    #[test]
    fn streamed_fetch_one_byte_at_a_time_with_bare_lf_lines() {
        streamed_fetch_then_a_normal_command(Pace::ByteByByte, "\n");
    }

    #[test]
    fn tagged_no_and_bad_are_errors_with_the_servers_words_and_the_connection_goes_on() {
        let mut first = fetch_literal(1, "UID 5 BODY[] ", false, b"abc", "", "\r\n");
        first.extend_from_slice(b"P1 OK done\r\nP2 NO [UNAVAILABLE] Message not available\r\n");
        let steps = vec![
            (2, first),
            (1, b"P3 BAD Error in IMAP command UID FETCH: Invalid arguments\r\n".to_vec()),
            (1, b"* CAPABILITY IMAP4rev1 XSCRIPTED\r\nP4 OK done\r\n".to_vec()),
        ];
        let (port, server) = scripted_server(steps, Pace::ByteByByte);
        let mut sink = Recorder::default();
        run(async {
            let mut session = connect(port, Pace::ByteByByte).await;
            let requests = [BodyRequest { uid_set: "5".into(), range: None }, BodyRequest { uid_set: "6".into(), range: None }];
            let e = session.uid_fetch_bodies(&requests, &mut sink).await.expect_err("a NO");
            assert!(format!("{e:#}").contains("FETCH failed: NO [UNAVAILABLE] Message not available"), "{e:#}");
            assert!(
                matches!(kind_of(&e), Some(ImapError::Refused { command: "UID FETCH", answer, .. }) if answer.text == "Message not available"),
                "a NO is typed where it arrives, and leaves the connection usable: {e:#}"
            );
            let e = session.uid_fetch_bodies(&requests[..1], &mut sink).await.expect_err("a BAD");
            assert!(format!("{e:#}").contains("FETCH failed: BAD Error in IMAP command"), "{e:#}");
            assert!(matches!(kind_of(&e), Some(ImapError::Refused { .. })), "{e:#}");
            session.refresh_capabilities().await.expect("the connection goes on");
            assert!(session.has("XSCRIPTED"));
        });
        assert_eq!(sink.got, [Got::Body { uid: 5, origin: 0, bytes: b"abc".to_vec() }]);
        assert_eq!(server.join().expect("server").len(), 4);
    }

    /// Quirk `dovecot_bye_on_fetch_failure` (Dovecot 2.3: a message it cannot read ends the
    /// connection with `* BYE` in the middle of a FETCH): the error is the BYE, with its reason.
    #[test]
    fn bye_in_the_middle_of_a_fetch_is_the_servers_bye() {
        let mut answer = fetch_literal(1, "UID 5 BODY[] ", false, b"abc", "", "\r\n");
        answer.extend_from_slice(b"* BYE Internal error occurred. Refer to server log for more information.\r\n");
        let (port, server) = scripted_server(vec![(1, answer)], Pace::ByteByByte);
        let mut sink = Recorder::default();
        let e = run(async {
            let mut session = connect(port, Pace::ByteByByte).await;
            session.uid_fetch_bodies(&[BodyRequest { uid_set: "5:6".into(), range: None }], &mut sink).await.expect_err("BYE")
        });
        assert!(matches!(kind_of(&e), Some(ImapError::HungUpOnMessage { .. })), "{e:#}");
        assert_eq!(bye_reason(&e), Some("Internal error occurred. Refer to server log for more information."));
        assert_eq!(sink.got, [Got::Body { uid: 5, origin: 0, bytes: b"abc".to_vec() }]);
        server.join().expect("server");
    }

    /// Quirk `exchange_throttled` (Microsoft 365): the NO says to wait; the commands go again.
    #[test]
    fn throttled_fetch_waits_and_sends_the_commands_again() {
        let steps = vec![
            (1, b"P1 NO Request is throttled. Suggested Backoff Time: 100 milliseconds.\r\n".to_vec()),
            (1, [fetch_literal(1, "UID 5 BODY[]<0> ", false, b"abc", "", "\r\n"), b"P2 OK done\r\n".to_vec()].concat()),
        ];
        let (port, server) = scripted_server(steps, Pace::Whole);
        let mut sink = Recorder::default();
        let throttled = run(async {
            let mut session = connect(port, Pace::Whole).await;
            let request = BodyRequest { uid_set: "5".into(), range: Some((0, 65536)) };
            session.uid_fetch_bodies(&[request], &mut sink).await.expect("after the wait");
            session.throttled
        });
        assert_eq!(throttled, 1);
        assert_eq!(sink.got, [Got::Body { uid: 5, origin: 0, bytes: b"abc".to_vec() }]);
        assert_eq!(
            server.join().expect("server"),
            ["P1 UID FETCH 5 (UID BODY.PEEK[]<0.65536>)\r\n", "P2 UID FETCH 5 (UID BODY.PEEK[]<0.65536>)\r\n"]
        );
    }

    /// A part asked for by range may not be longer than the range: refused at its announcement, the
    /// error typed, and the connection refuses every later command instead of reading mid-answer.
    #[test]
    fn a_body_part_longer_than_its_range_is_refused_and_the_connection_is_not_used_again() {
        let answer = b"* 1 FETCH (UID 5 BODY[]<0> {65537}\r\n".to_vec();
        let (port, server) = scripted_server(vec![(1, answer)], Pace::Whole);
        let (first, second) = run(async {
            let mut session = connect(port, Pace::Whole).await;
            let request = BodyRequest { uid_set: "5".into(), range: Some((0, 65536)) };
            let first = session.uid_fetch_bodies(&[request], &mut Recorder::default()).await.expect_err("too long");
            let second = session.refresh_capabilities().await.expect_err("not used again");
            (first, second)
        });
        assert!(crate::imap::is_misbehaving(&first), "{first:#}");
        assert!(
            format!("{first:#}").contains(
                "source scripted: the server announced a body part of 65537 bytes (BODY[]<0>) in answer to a request for at most 65536"
            ),
            "{first:#}"
        );
        assert_eq!(
            crate::failure::policy(&first),
            (crate::failure::Scope::Account, crate::failure::Retry::NextPass),
            "the pass stops using the connection, and does not reconnect at once: {first:#}"
        );
        assert!(crate::imap::is_misbehaving(&second) && format!("{second:#}").contains("not used again"), "{second:#}");
        // Only the FETCH went out.
        assert_eq!(server.join().expect("server").len(), 1);
    }

    /// Our own FETCH parser stops a line that never ends (here: spaces between items, for ever)
    /// after `LINE_LIMIT` bytes, not at the end of the stream.
    #[test]
    fn an_endless_fetch_line_stops_at_the_line_limit() {
        let mut answer = b"* 1 FETCH (UID 5 ".to_vec();
        answer.resize(answer.len() + LINE_LIMIT + 64 * 1024, b' ');
        let (port, server) = scripted_server(vec![(1, answer)], Pace::Whole);
        let e = run(async {
            let mut session = connect(port, Pace::Whole).await;
            session
                .uid_fetch_bodies(&[BodyRequest { uid_set: "5".into(), range: None }], &mut Recorder::default())
                .await
                .expect_err("endless")
        });
        assert!(crate::imap::is_misbehaving(&e), "{e:#}");
        assert!(format!("{e:#}").contains("a line of more than 4 MiB without its line end in answer to UID FETCH"), "{e:#}");
        server.join().expect("server");
    }

    /// A body before its UID is held; one larger than `HELD_LIMIT` is refused before it is read.
    #[test]
    fn a_body_before_its_uid_is_held_only_up_to_the_limit() {
        let answer = format!("* 1 FETCH (BODY[] {{{}}}\r\n", HELD_LIMIT + 1).into_bytes();
        let (port, server) = scripted_server(vec![(1, answer)], Pace::Whole);
        let e = run(async {
            let mut session = connect(port, Pace::Whole).await;
            session
                .uid_fetch_bodies(&[BodyRequest { uid_set: "5".into(), range: None }], &mut Recorder::default())
                .await
                .expect_err("too big")
        });
        assert!(format!("{e:#}").contains("came before its UID"), "{e:#}");
        assert!(matches!(kind_of(&e), Some(ImapError::ConnectionLost { .. })), "the connection cannot be reused: {e:#}");
        server.join().expect("server");
    }

    /// A BYE for a reason of the server's own is a lost connection with its reason, not a message's
    /// fault; the end of the stream without a word is a lost connection too.
    #[test]
    fn a_bye_of_the_servers_own_and_the_end_of_the_stream_are_lost_connections() {
        let answer = b"* BYE Server shutting down.\r\n".to_vec();
        let (port, server) = scripted_server(vec![(1, answer)], Pace::Whole);
        let e = run(async {
            let mut session = connect(port, Pace::Whole).await;
            session.uid_fetch_bodies(&[BodyRequest { uid_set: "5".into(), range: None }], &mut Recorder::default()).await.expect_err("BYE")
        });
        assert!(
            matches!(kind_of(&e), Some(ImapError::ConnectionLost { bye: Some(reason), .. }) if reason == "Server shutting down."),
            "{e:#}"
        );
        server.join().expect("server");

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream.write_all(b"* OK ready\r\n").expect("greeting");
            let mut line = Vec::new();
            BufReader::new(stream.try_clone().expect("clone")).read_until(b'\n', &mut line).expect("command");
            // Hangs up without a word, in the middle of the command.
        });
        let e = run(async {
            let mut session = connect(port, Pace::Whole).await;
            session.uid_fetch_bodies(&[BodyRequest { uid_set: "5".into(), range: None }], &mut Recorder::default()).await.expect_err("EOF")
        });
        assert!(matches!(kind_of(&e), Some(ImapError::ConnectionLost { bye: None, .. })), "{e:#}");
        assert!(format!("{e:#}").contains("source scripted: the server closed the connection"), "{e:#}");
        server.join().expect("server");
    }

    /// Quirk `exchange_throttled`, a server that never stops: after the waits the answer is `Throttled`
    /// with the wait it suggested, not a refusal of the messages.
    #[test]
    fn throttling_that_does_not_stop_is_throttled() {
        let no = b"P{} NO Request is throttled. Suggested Backoff Time: 100 milliseconds.\r\n";
        let steps: Vec<(usize, Vec<u8>)> =
            (1..=7).map(|tag| (1, String::from_utf8_lossy(no).replace("{}", &tag.to_string()).into_bytes())).collect();
        let (port, server) = scripted_server(steps, Pace::Whole);
        let e = run(async {
            let mut session = connect(port, Pace::Whole).await;
            let request = BodyRequest { uid_set: "5".into(), range: Some((0, 65536)) };
            session.uid_fetch_bodies(&[request], &mut Recorder::default()).await.expect_err("throttled")
        });
        assert!(matches!(kind_of(&e), Some(ImapError::Throttled { delay, .. }) if *delay == Duration::from_millis(100)), "{e:#}");
        assert_eq!(crate::failure::policy(&e), (crate::failure::Scope::Folder, crate::failure::Retry::NextPass));
        assert_eq!(server.join().expect("server").len(), 7);
    }
}
