//! Streamed UID FETCH of message bodies. imap-next decodes an answer only once it holds all of it, and
//! then keeps its buffer at that size for the rest of the connection; for bodies that would put every
//! message (or every slice of a large one) in memory twice per worker. Here the commands are written by
//! us and the `* n FETCH (...)` answers are read by us: a body literal goes from the socket to a
//! `BodySink` in the pieces it arrives in, so a worker holds one read buffer whatever it fetches. Any
//! other answer (tagged OK/NO, EXISTS, BYE...) is handed whole to imap-next, so codes, throttling and
//! BYE reasons are read the same way as everywhere else.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use imap_next::client::Event;
use imap_next::imap_types::core::Tag;
use imap_next::{Interrupt, Io, State};
use smol::io::AsyncReadExt;

use super::{Answer, Session, with_timeout};

/// Where streamed bodies go. For each body in an answer: `begin`, then `bytes` any number of times (the
/// pieces add up to `len`), then `end`. `nil` is a body the server has but will not give.
pub trait BodySink {
    /// A body of message `uid` (or the part of it starting at octet `origin`) of `len` bytes begins.
    fn begin(&mut self, uid: u32, origin: u32, len: u32) -> Result<()>;
    fn bytes(&mut self, piece: &[u8]) -> Result<()>;
    fn end(&mut self) -> Result<()>;
    fn nil(&mut self, uid: u32) -> Result<()>;
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
                continue;
            }
            for answer in answers {
                if !answer.is_ok() {
                    bail!("{}: FETCH failed: {}", self.label, answer.words());
                }
            }
            return Ok(());
        }
    }

    async fn fetch_bodies_once(&mut self, requests: &[BodyRequest], sink: &mut dyn BodySink) -> Result<Vec<Answer>> {
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
            self.next_body_answer(&tags, &mut answers, sink).await.map_err(|e| {
                if crate::sync::is_connection_loss(&e) {
                    e
                } else {
                    // The rest of the answer is still on its way: this connection cannot be reused.
                    e.context(format!("{}: the connection was left in the middle of a command", self.label))
                }
            })?;
        }
        Ok(tags.iter().filter_map(|t| answers.remove(t.inner())).collect())
    }

    /// Reads one answer: a FETCH is parsed here and its bodies streamed; anything else goes to imap-next.
    async fn next_body_answer(
        &mut self,
        tags: &[Tag<'static>],
        answers: &mut BTreeMap<String, Answer>,
        sink: &mut dyn BodySink,
    ) -> Result<()> {
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
            return self.read_fetch(sink).await;
        }
        let raw = self.rest_of_answer(head).await?;
        self.client.enqueue_input(&raw);
        loop {
            match self.client.next() {
                Ok(Event::ContinuationRequestReceived { .. }) => {}
                Ok(event) => self.on_event(event, tags, answers, &mut |_| Ok(()))?,
                Err(Interrupt::Io(Io::NeedMoreInput)) => return Ok(()),
                Err(Interrupt::Io(Io::Output(bytes))) => self.write_all(&bytes).await?,
                Err(Interrupt::Error(error)) => bail!("{}: unreadable response from the server: {error}", self.label),
            }
        }
    }

    /// The rest of an answer that is not a FETCH, raw, literals included, after `head`.
    async fn rest_of_answer(&mut self, mut raw: Vec<u8>) -> Result<Vec<u8>> {
        let mut line_done = raw.last() == Some(&b'\n');
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
            let Some(n) = trailing_literal(&raw) else { return Ok(raw) };
            if raw.len() + n > TOKEN_LIMIT {
                bail!("{}: an answer longer than {TOKEN_LIMIT} bytes during a FETCH", self.label);
            }
            for _ in 0..n {
                let b = self.in_byte().await?;
                raw.push(b);
            }
            line_done = false;
        }
    }

    /// The items of a FETCH answer, after "* n FETCH ": UID and bodies to the sink, the rest skipped.
    async fn read_fetch(&mut self, sink: &mut dyn BodySink) -> Result<()> {
        self.in_expect(b'(').await?;
        let mut uid: Option<u32> = None;
        // A body that came before the UID: (origin, bytes), or None for NIL.
        let mut held: Option<(u32, Option<Vec<u8>>)> = None;
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
                    sink.begin(uid, origin, len)?;
                    self.stream_literal(len as usize, sink).await?;
                    sink.end()?;
                }
                (b'{' | b'~', None) => {
                    let len = self.literal_length().await? as usize;
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
                b'{' | b'~' => {
                    let len = self.literal_length().await?;
                    self.stream_literal(len as usize, &mut Discard).await?;
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
                b' ' | b'(' | b')' | b'{' | b'"' | b'\r' | b'\n' => break,
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

    async fn in_byte(&mut self) -> Result<u8> {
        let b = self.in_peek().await?;
        self.read_start += 1;
        Ok(b)
    }

    /// Reads more from the socket into the (empty) read buffer.
    pub(super) async fn fill_read_buf(&mut self) -> Result<()> {
        let label = self.label.clone();
        let n = with_timeout(&format!("{label}: reading from the server"), self.stream.read(&mut self.read_buf))
            .await
            .context("reading a FETCH answer")?;
        if n == 0 {
            bail!("{label}: the server closed the connection");
        }
        self.read_start = 0;
        self.read_end = n;
        Ok(())
    }
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

/// The origin of a body item's name ("BODY[]" 0, "BODY[]<4096>" 4096; RFC822 and BINARY[] too), or
/// None for any other item (a header section, FLAGS...).
fn body_origin(name: &str) -> Option<u32> {
    let rest = ["BODY[]", "BINARY[]", "RFC822"].iter().find_map(|p| name.strip_prefix(p))?;
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix('<')?.strip_suffix('>')?.parse().ok()
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
    fn begin(&mut self, _: u32, _: u32, _: u32) -> Result<()> {
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
    fn begin(&mut self, _: u32, _: u32, _: u32) -> Result<()> {
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
mod tests {
    use super::*;

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
        assert_eq!(body_origin("BODY[]"), Some(0));
        assert_eq!(body_origin("BODY[]<65536>"), Some(65536));
        assert_eq!(body_origin("RFC822"), Some(0));
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
}
