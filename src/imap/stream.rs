//! The bytes between the socket and imap-next, under the bounds on what one server may cost: every
//! read within the per-read timeout and the command's deadline (`Budget`, `COMMAND_MIN_RATE`), the
//! thread's other accounts let run every few reads, every line and answer bounded in size while it
//! arrives (`Framing`, `LINE_LIMIT`, `RESPONSE_LIMIT`), and every command in its untagged answers
//! (`UNTAGGED_LIMIT`). A broken bound is a `ServerMisbehaved` and marks the session so no command goes
//! out on it again.

use std::time::Duration;

use anyhow::Result;
use imap_next::State;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use super::connection::{io_timeout, with_timeout};
use super::{ImapError, ServerMisbehaved, Session};

/// Bytes read from the socket at a time; with streamed bodies this is all a connection holds of them.
pub(super) const READ_BUF: usize = 8 * 1024;

// Bounds on what one server may cost. A broken or hostile server (issue 13) must cost only its own
// account: every answer is bounded in size, every command in answers and in time, and a read loop
// lets the other accounts on the thread run (`workers`). Breaking a bound is a `ServerMisbehaved`.

/// Longest protocol line accepted, its line end included (literals are not part of a line). The
/// longest honest lines are a `* SEARCH` listing every UID of a big folder (about 7 bytes a UID, so
/// 4 MiB is half a million) and a CAPABILITY or FLAGS list of a few KiB; imap-next would read a line
/// without an end for ever (it reports an over-long answer only once the line ends).
pub const LINE_LIMIT: usize = 4 * 1024 * 1024;

/// Largest answer (lines and literals) imap-next is asked to hold, its `max_response_size`. Bodies
/// never pass through imap-next (`body_fetch` streams them), so its answers are metadata: a SEARCH
/// line (`LINE_LIMIT`), a FETCH with a few header fields, a LIST line. A literal announced beyond
/// this is refused at its announcement, before a byte of it is read.
pub const RESPONSE_LIMIT: u32 = 8 * 1024 * 1024;

/// Most untagged answers one command may bring when they are kept until it ends (LIST, LSUB, STATUS,
/// NAMESPACE, SELECT's codes...): a LIST of 100,000 folders is far beyond any mailbox we will meet.
/// A streamed metadata FETCH may bring this many more than twice the folder's message count.
pub const UNTAGGED_LIMIT: u64 = 100_000;

/// Most bytes of untagged answers one command may bring when they are kept until it ends: 100,000
/// LIST lines of 160 bytes. Parsed, they take two to three times this in memory.
pub const UNTAGGED_BYTES_LIMIT: u64 = 16 * 1024 * 1024;

/// Untagged response codes kept from one command for the next (SELECT reads UIDVALIDITY, UIDNEXT and
/// HIGHESTMODSEQ from them); others (ALERT, PERMANENTFLAGS...) are not kept at all, and beyond this
/// many the oldest go.
pub const PENDING_CODES_LIMIT: usize = 32;

/// A command's deadline: `command_grace()` of waiting for the server, plus one second for every this
/// many bytes moved for it (read or written). An honest command either ends or keeps moving bytes, and a
/// line of even 8 kbit/s moves a kilobyte a second, so a command is never cut for being long; a
/// server that drips a byte now and then, each in time for the per-read timeout, or keeps a command
/// open without end, fails after `command_grace()` (two minutes) plus next to nothing. A fixed
/// deadline per command would have to be hours for a 100 MB message over an office ADSL line.
pub const COMMAND_MIN_RATE: u64 = 1024;

/// Reads from the socket between two yields to the other tasks of the thread. A socket that always
/// has data never makes a read wait, so without a yield a flooding server would keep every other
/// account on the thread from running (`workers` runs them as tasks on one thread): 16 reads are at
/// most 128 KiB.
const READS_PER_YIELD: u32 = 16;

/// The part of a command's deadline that does not depend on its bytes (see `COMMAND_MIN_RATE`): twice
/// the per-read timeout, so a command may wait for its first answer as long as any read may.
pub fn command_grace() -> Duration {
    io_timeout() * 2
}

/// Whether a command's untagged answers are kept until it ends (so they count against
/// `UNTAGGED_LIMIT` and `UNTAGGED_BYTES_LIMIT`) or handed on one by one as they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    Kept,
    /// Handed on as they come (a metadata FETCH): memory does not grow with them, so only their
    /// count is bounded, by the folder's size.
    Streamed,
}

/// What the command in progress has cost so far, against its bounds.
pub(super) struct Budget {
    /// The command's name, for the error sentence ("LIST", "UID FETCH").
    what: &'static str,
    /// Time spent waiting for the server's bytes. Only the waits count, not the time our side takes
    /// between reads (a sink waiting for SQLite's write lock while another account commits), so a
    /// slow database is never blamed on the server.
    waited: Duration,
    /// Bytes read and written for it.
    moved: u64,
    /// Answers completed (untagged ones and the few tagged), and the bytes of all answers.
    answers: u64,
    answer_bytes: u64,
    max_answers: u64,
    /// None when the answers are not kept.
    max_answer_bytes: Option<u64>,
    /// Reads since the command began, for `READS_PER_YIELD`.
    reads: u32,
}

impl Budget {
    /// Whether this is the budget of the command named `what` (as `CommandBody::name` says it).
    pub(super) fn is_for(&self, what: &str) -> bool {
        self.what == what
    }

    pub(super) fn new(what: &'static str, answers: Answers, exists: u32) -> Budget {
        let (max_answers, max_answer_bytes) = match answers {
            Answers::Kept => (UNTAGGED_LIMIT, Some(UNTAGGED_BYTES_LIMIT)),
            // One answer a message (flags changed meanwhile may add one more), whatever the server
            // said EXISTS was; capped so a server claiming billions gains nothing.
            // (5 million messages, over ten times the largest folder we plan for.)
            Answers::Streamed => (UNTAGGED_LIMIT + 2 * u64::from(exists.min(5_000_000)), None),
        };
        Budget { what, waited: Duration::ZERO, moved: 0, answers: 0, answer_bytes: 0, max_answers, max_answer_bytes, reads: 0 }
    }

    /// How long the command may still take (see `COMMAND_MIN_RATE`); None once it is over.
    fn time_left(&self) -> Option<Duration> {
        let allowed = command_grace() + Duration::from_secs_f64(self.moved as f64 / COMMAND_MIN_RATE as f64);
        allowed.checked_sub(self.waited).filter(|left| !left.is_zero())
    }

    /// Counts answers completed and bytes of answers; the bound broken, if one is.
    pub(super) fn count(&mut self, answers: u64, bytes: u64) -> Option<String> {
        self.answers += answers;
        self.answer_bytes += bytes;
        if self.answers > self.max_answers {
            return Some(format!(
                "the server sent more than {} untagged answers to one {}; stopped reading it",
                self.max_answers, self.what
            ));
        }
        match self.max_answer_bytes {
            Some(max) if self.answer_bytes > max => {
                Some(format!("the server sent more than {} MiB of untagged answers to one {}; stopped reading it", max >> 20, self.what))
            }
            _ => None,
        }
    }
}

/// Follows the bytes handed to imap-next the way its fragmentizer splits them (lines; a literal when a
/// line ends in `{n}`), so that a line without an end or an answer too large is stopped while it
/// arrives: imap-next checks its `max_response_size` only when a line ends, and reads a line that
/// never ends for ever.
#[derive(Debug, Default)]
pub(super) struct Framing {
    /// Bytes of the current line so far (0 inside a literal).
    line: usize,
    /// The last bytes of the current line, enough for "{4294967295+}\r\n".
    tail: Vec<u8>,
    /// Bytes of the current answer so far, lines and literals.
    answer: u64,
    /// Literal bytes still to come.
    literal: u64,
}

/// How the bytes fed to `Framing` broke a bound.
#[derive(Debug, PartialEq, Eq)]
enum FramingBreak {
    /// A line passed `LINE_LIMIT` without its end.
    Line,
    /// An answer passed `RESPONSE_LIMIT`, or announced a literal of this many bytes that would.
    Answer(u64),
}

impl Framing {
    const TAIL: usize = 16;

    /// Takes the next bytes; returns how many answers ended in them.
    fn feed(&mut self, mut bytes: &[u8]) -> std::result::Result<u64, FramingBreak> {
        let mut ended = 0;
        while !bytes.is_empty() {
            if self.literal > 0 {
                let n = self.literal.min(bytes.len() as u64);
                self.literal -= n;
                self.answer += n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let (part, line_ends) = match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => (&bytes[..=end], true),
                None => (bytes, false),
            };
            bytes = &bytes[part.len()..];
            self.line += part.len();
            self.answer += part.len() as u64;
            if self.line > LINE_LIMIT {
                return Err(FramingBreak::Line);
            }
            if self.answer > u64::from(RESPONSE_LIMIT) {
                return Err(FramingBreak::Answer(0));
            }
            self.tail.extend_from_slice(&part[part.len().saturating_sub(Self::TAIL)..]);
            if self.tail.len() > Self::TAIL {
                self.tail.drain(..self.tail.len() - Self::TAIL);
            }
            if !line_ends {
                continue;
            }
            let announced = announced_literal(&self.tail);
            self.line = 0;
            self.tail.clear();
            match announced {
                Some(n) if self.answer + u64::from(n) > u64::from(RESPONSE_LIMIT) => {
                    return Err(FramingBreak::Answer(u64::from(n)));
                }
                Some(n) => self.literal = u64::from(n),
                None => {
                    ended += 1;
                    self.answer = 0;
                }
            }
        }
        Ok(ended)
    }
}

/// The literal a line announces at its end, exactly as imap-codec's fragmentizer reads it: `{n}` or
/// `{n+}` right before the line end (CRLF or LF), n a decimal that fits 32 bits.
fn announced_literal(line: &[u8]) -> Option<u32> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || line.len() == digits || line[line.len() - digits - 1] != b'{' {
        return None;
    }
    std::str::from_utf8(&line[line.len() - digits..]).ok()?.parse().ok()
}

impl Session {
    /// Starts the bounds of a command (see `Budget`); refuses one on a connection whose server broke a
    /// bound, which is in the middle of an answer.
    pub(super) fn begin_command(&mut self, what: &'static str, answers: Answers) -> Result<()> {
        if let Some(broken) = &self.broken {
            return Err(anyhow::Error::new(ImapError::Misbehaved(broken.clone())).context("this connection is not used again"));
        }
        self.budget = Budget::new(what, answers, self.exists);
        Ok(())
    }

    /// The error for a bound the server broke, and the mark that keeps this connection from being
    /// used again.
    pub(crate) fn misbehaved(&mut self, what: String) -> anyhow::Error {
        let error = ServerMisbehaved { label: self.label.clone(), what };
        self.broken = Some(error.clone());
        anyhow::Error::new(ImapError::Misbehaved(error))
    }

    fn too_slow(&mut self) -> anyhow::Error {
        let what = format!(
            "the server took more than {} s over one {} and sent only {} bytes in that time; stopped waiting for it",
            self.budget.waited.as_secs(),
            self.budget.what,
            self.budget.moved
        );
        self.misbehaved(what)
    }

    /// Reads what the server has into `read_buf`, returning how much: within the per-read timeout
    /// (`io_timeout`) and the command's deadline (`COMMAND_MIN_RATE`), and letting the other tasks of
    /// the thread run every `READS_PER_YIELD` reads.
    pub(crate) async fn read_some(&mut self) -> Result<usize> {
        self.budget.reads = self.budget.reads.wrapping_add(1);
        if self.budget.reads.is_multiple_of(READS_PER_YIELD) {
            smol::future::yield_now().await;
        }
        let Some(left) = self.budget.time_left() else { return Err(self.too_slow()) };
        let per_read = io_timeout();
        let label = self.label.clone();
        let read = self.stream.read(&mut self.read_buf);
        let timer = async {
            smol::Timer::after(left.min(per_read)).await;
            None
        };
        let waiting = std::time::Instant::now();
        let outcome = smol::future::or(async { Some(read.await) }, timer).await;
        self.budget.waited += waiting.elapsed();
        match outcome {
            Some(Ok(0)) => Err(ImapError::lost(&label, "the server closed the connection").into()),
            Some(Ok(n)) => {
                self.budget.moved += n as u64;
                Ok(n)
            }
            Some(Err(e)) => Err(anyhow::Error::new(e).context(ImapError::lost(&label, "reading from the server"))),
            None if left < per_read => Err(self.too_slow()),
            None => Err(anyhow::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", per_read.as_secs_f64()),
            ))
            .context(ImapError::lost(&label, "reading from the server"))),
        }
    }

    /// Hands `read_buf[start..end]` to imap-next (see `feed_client`).
    pub(super) fn feed_client_from_buf(&mut self, start: usize, end: usize) -> Result<()> {
        let buf = std::mem::take(&mut self.read_buf);
        let fed = self.feed_client(&buf[start..end]);
        self.read_buf = buf;
        fed
    }

    /// Hands bytes to imap-next, counting them against the bounds of the answer and the command first.
    pub(crate) fn feed_client(&mut self, bytes: &[u8]) -> Result<()> {
        let what = self.budget.what;
        let ended = match self.framing.feed(bytes) {
            Ok(ended) => ended,
            Err(FramingBreak::Line) => {
                return Err(self.misbehaved(format!(
                    "the server sent a line of more than {} MiB without its line end in answer to {what}; stopped reading it",
                    LINE_LIMIT >> 20
                )));
            }
            Err(FramingBreak::Answer(0)) => {
                return Err(self.misbehaved(format!(
                    "the server sent one answer of more than {} MiB to {what}; stopped reading it",
                    RESPONSE_LIMIT >> 20
                )));
            }
            Err(FramingBreak::Answer(literal)) => {
                return Err(self.misbehaved(format!(
                    "the server announced a literal of {literal} bytes in an answer to {what}, more than the {} MiB \
                     an answer may hold; stopped reading it",
                    RESPONSE_LIMIT >> 20
                )));
            }
        };
        if let Some(what) = self.budget.count(ended, bytes.len() as u64) {
            return Err(self.misbehaved(what));
        }
        self.client.enqueue_input(bytes);
        Ok(())
    }

    pub(super) async fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.budget.moved += bytes.len() as u64;
        let label = self.label.clone();
        with_timeout(&label, "writing to the server", true, self.stream.write_all(bytes)).await?;
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> Result<()> {
        let label = self.label.clone();
        with_timeout(&label, "writing to the server", true, self.stream.flush()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements_as_the_fragmentizer_reads_them() {
        assert_eq!(announced_literal(b"* LIST () \"/\" {5}\r\n"), Some(5));
        assert_eq!(announced_literal(b"{5+}\n"), Some(5));
        assert_eq!(announced_literal(b"x ~{0}\r\n"), Some(0));
        assert_eq!(announced_literal(b"{4294967295}\r\n"), Some(u32::MAX));
        assert_eq!(announced_literal(b"{4294967296}\r\n"), None);
        assert_eq!(announced_literal(b"{+5}\r\n"), None);
        assert_eq!(announced_literal(b"{}\r\n"), None);
        assert_eq!(announced_literal(b"5}\r\n"), None);
        assert_eq!(announced_literal(b"{5}\r\r\n"), None);
        assert_eq!(announced_literal(b"{5} \r\n"), None);
        assert_eq!(announced_literal(b"* 3 EXISTS\r\n"), None);
    }

    #[test]
    fn framing_counts_answers_across_reads_and_literals() {
        let mut framing = Framing::default();
        // An answer with a literal whose bytes hold a line end and a fake announcement, split anywhere.
        let stream = b"* LIST () \"/\" {7}\r\na\r\n{99}\r\n* 2 EXISTS\nP1 OK done\r\n";
        for split in 0..stream.len() {
            let mut framing = Framing::default();
            let ended = framing.feed(&stream[..split]).unwrap() + framing.feed(&stream[split..]).unwrap();
            assert_eq!(ended, 3, "split at {split}");
            assert_eq!((framing.line, framing.literal, framing.answer), (0, 0, 0));
        }
        assert_eq!(framing.feed(b"* OK [ALERT] par"), Ok(0));
        assert_eq!(framing.feed(b"tial\r\n"), Ok(1));
    }

    #[test]
    fn framing_stops_a_line_without_end_and_a_literal_too_large() {
        let mut framing = Framing::default();
        let chunk = vec![b'x'; READ_BUF];
        let mut fed = 0;
        let broke = loop {
            match framing.feed(&chunk) {
                Ok(_) => fed += chunk.len(),
                Err(broke) => break broke,
            }
            assert!(fed <= LINE_LIMIT, "read past the line limit");
        };
        assert_eq!(broke, FramingBreak::Line);
        let mut framing = Framing::default();
        let announced = format!("* LIST () \"/\" {{{}}}\r\n", RESPONSE_LIMIT);
        assert_eq!(framing.feed(announced.as_bytes()), Err(FramingBreak::Answer(u64::from(RESPONSE_LIMIT))));
        // Many lines of one answer, each below the line limit, add up to the answer limit.
        let mut framing = Framing::default();
        let line = format!("* LIST () \"/\" {{{}}}\r\n", LINE_LIMIT / 2);
        let literal = vec![b'a'; LINE_LIMIT / 2];
        let broke = (0..100).find_map(|_| framing.feed(line.as_bytes()).and_then(|_| framing.feed(&literal)).err());
        assert!(matches!(broke, Some(FramingBreak::Answer(_))), "{broke:?}");
    }

    #[test]
    fn a_command_has_its_grace_then_a_second_per_kibibyte_moved() {
        let mut budget = Budget::new("LIST", Answers::Kept, 0);
        budget.waited = command_grace() + Duration::from_secs(5);
        assert_eq!(budget.time_left(), None, "a silent command is over after its grace");
        budget.moved = 10 * COMMAND_MIN_RATE;
        assert!(budget.time_left().is_some_and(|left| left <= Duration::from_secs(5)), "10 KiB buy 10 s");
        let mut budget = Budget::new("LIST", Answers::Kept, 0);
        assert_eq!(budget.count(UNTAGGED_LIMIT, 100), None);
        let over = budget.count(1, 0).expect("one answer too many");
        assert_eq!(over, "the server sent more than 100000 untagged answers to one LIST; stopped reading it");
        let mut streamed = Budget::new("UID FETCH", Answers::Streamed, 1_000_000);
        assert_eq!(streamed.count(2_000_000 + UNTAGGED_LIMIT, u64::MAX / 2), None, "a folder's worth of FETCH answers");
        assert!(streamed.count(1, 0).is_some());
        let mut claims_billions = Budget::new("UID FETCH", Answers::Streamed, u32::MAX);
        assert!(claims_billions.count(10_000_000 + UNTAGGED_LIMIT + 1, 0).is_some());
    }
}
