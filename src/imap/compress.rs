//! COMPRESS=DEFLATE (RFC 4978): the layer between a session and its socket once both sides compress,
//! and the choice of when a connection is worth compressing. Over an office line the mail, not the
//! CPU, is what waits: text mail shrinks to a third and base64 attachments to three quarters, so the
//! same line carries more of it. On a LAN or loopback the line is faster than deflate on a small box,
//! so compressing there would only spend CPU; `Compression::Auto` compresses only a connection whose
//! round trip shows it crosses a WAN.
//!
//! The layer is raw deflate in both directions (no zlib header, as the RFC says). What we write is
//! compressed at `LEVEL` (base64, an attachment's lines, by Huffman coding alone: `Coding`) and
//! sync-flushed before every read, so the server always has whole commands to answer; what we
//! read is inflated into the caller's buffer, so every bound the session keeps on answers counts the
//! inflated bytes and a small compressed stream cannot grow past them. COMPRESS is only sent after
//! login: the password never passes through the compressor, and what does (mail, folder names) is
//! held no longer than the socket's own buffers hold it (the deflate windows are not wiped, as the
//! session's read buffer is not). A stream of empty deflate blocks, valid and inflating to nothing,
//! gives the thread back after every `IN_BUF` compressed bytes, so the other accounts and the
//! command's deadline still run; the deadline counts inflated bytes, so such a server is stopped
//! like one that sends nothing.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::{Duration, Instant};

use anyhow::Result;
use flate2::{Compress, Compression as Level, Decompress, FlushCompress, FlushDecompress, Status};
use smol::io::{AsyncRead, AsyncWrite};
use zlib_rs::{DeflateConfig, DeflateFlush, Strategy};

use imap_next::imap_types::command::CommandBody;

use super::connection::Conn;
use super::error::BYE_WITH_REASON;
use super::{Answers, ImapError, Session};

/// When the IMAP connections of a pass compress (`setup --compress`), on a server that offers
/// COMPRESS=DEFLATE; one that does not is never asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Only a connection whose round trip takes at least `WAN_ROUND_TRIP`: a server beyond the LAN.
    #[default]
    Auto,
    /// Every connection to a server that offers it.
    On,
    /// Never.
    Off,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Auto => "auto",
            Compression::On => "on",
            Compression::Off => "off",
        }
    }

    /// The setting as `setup --compress` and `"compress"` of `POST /api/setup` write it.
    pub fn parse(text: &str) -> Option<Compression> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Compression::Auto),
            "on" => Some(Compression::On),
            "off" => Some(Compression::Off),
            _ => None,
        }
    }
}

/// The round trip from which `Compression::Auto` compresses. A LAN or a server in the same building
/// answers in well under a millisecond, Wi-Fi in one or two; a server across the internet takes 5 ms
/// or more, and there the line, not the CPU, bounds a migration.
pub const WAN_ROUND_TRIP: Duration = Duration::from_millis(4);

/// NOOPs `Session::measure_beyond_lan` times at most. One was too few: under the load of a full test
/// run, a loopback server's answer once took over 4 ms twice in a row (login and NOOP), and a pass
/// read a LAN server with two connections.
const ROUND_TRIP_SAMPLES: usize = 3;

/// The compression level of what we send. Measured with zlib-rs on this project's machine (2 cores),
/// 20 MB each: level 1 uses only fixed Huffman codes and leaves base64 attachments at 99.6 % and
/// random letters at 92 %; level 2 builds codes per block: base64 at 76 % (58 MB/s), Swedish
/// words at 28 % (197 MB/s). Levels 3 to 6 gain at most 7 points on text and nothing on base64, at
/// half the speed or less.
const LEVEL: u32 = 2;

/// How what we send is compressed; one deflate stream either way (`Deflate::code_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    /// Repeats (LZ77) and Huffman codes at `LEVEL`: text, headers, commands.
    Matching,
    /// Huffman codes alone, for base64: an attachment is mostly a compressed file already, so its
    /// letters hold no repeats to find and only their 6 bits in 8 are to be had. Measured with zlib-rs
    /// on the project's machine, 20 MB of base64 in 32 KiB pieces: 76.0 % at 192 MB/s, against 75.9 %
    /// at 49 MB/s with repeats sought at `LEVEL`. On the bench's office line, where the box's two cores
    /// are busy with both Dovecots as well, base64 was three quarters of postflytt's deflate time.
    HuffmanOnly,
}

/// A piece shorter than this is sent in the coding in use (command lines, headers, a literal's last
/// bytes): too short to tell by, and not worth ending a block for.
const CODING_PIECE_MIN: usize = 4 * 1024;

/// Whether `piece` reads as base64 (an attachment's lines): at most 1 % of the bytes looked at are
/// anything but base64 letters and line ends. Text fails at once by its spaces. Every seventh byte is
/// looked at (a base64 line is 78 bytes with its CRLF, so the look falls on every column in turn).
fn looks_like_base64(piece: &[u8]) -> bool {
    let (mut looked, mut other) = (0usize, 0usize);
    for &byte in piece.iter().step_by(7) {
        looked += 1;
        if !(byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=' | b'\r' | b'\n')) {
            other += 1;
        }
    }
    other * 100 <= looked
}

/// The Huffman-only compressor, made at the first base64 piece a connection sends (flate2 does not
/// let a compressor's strategy be chosen; zlib-rs, its backend here, does).
fn huffman_only() -> zlib_rs::Deflate {
    zlib_rs::Deflate::new_with_config(DeflateConfig {
        level: LEVEL as i32,
        window_bits: -15,
        strategy: Strategy::HuffmanOnly,
        ..DeflateConfig::default()
    })
}

/// Compressed bytes kept for the socket before a write waits for it: a few TCP segments, so a large
/// APPEND flows at the socket's pace without holding much in memory.
const OUT_HIGH: usize = 32 * 1024;
/// Room made for the compressor's output at each step.
const OUT_STEP: usize = 16 * 1024;
/// Compressed bytes read from the socket at a time.
const IN_BUF: usize = 16 * 1024;

/// The deflate state of one compressing connection, and the bytes moved through it.
pub(super) struct Deflate {
    /// The compressor for `Coding::Matching`, and the one for `Coding::HuffmanOnly` once needed.
    compress: Compress,
    huffman: Option<zlib_rs::Deflate>,
    coding: Coding,
    /// Bytes handed to us to send (the compressors' own counts start over with `Compress::reset`).
    plain_written: u64,
    decompress: Decompress,
    /// Compressed bytes for the socket; `out[out_sent..]` not yet written.
    out: Vec<u8>,
    out_sent: usize,
    /// Bytes were given to the compressor since its last sync flush.
    unflushed: bool,
    /// Compressed bytes from the socket; `inbuf[in_start..in_end]` not yet inflated.
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    /// Compressed bytes written to and read from the socket.
    pub(super) wire_written: u64,
    pub(super) wire_read: u64,
    /// The server ended its deflate stream; what came before it was handed on, nothing more will come.
    ended: bool,
}

impl Deflate {
    /// A layer whose first compressed bytes from the server, read together with the tagged OK to
    /// COMPRESS, are `already_read`.
    pub(super) fn new(already_read: &[u8]) -> Deflate {
        let mut inbuf = vec![0; IN_BUF.max(already_read.len())];
        inbuf[..already_read.len()].copy_from_slice(already_read);
        Deflate {
            compress: Compress::new(Level::new(LEVEL), false),
            huffman: None,
            coding: Coding::Matching,
            plain_written: 0,
            decompress: Decompress::new(false),
            out: Vec::with_capacity(OUT_HIGH + OUT_STEP),
            out_sent: 0,
            unflushed: false,
            inbuf,
            in_start: 0,
            in_end: already_read.len(),
            wire_written: 0,
            wire_read: already_read.len() as u64,
            ended: false,
        }
    }

    /// Bytes handed to us to send, and bytes inflated for the session.
    pub(super) fn plain_totals(&self) -> (u64, u64) {
        (self.plain_written, self.decompress.total_out())
    }

    fn waiting(&self) -> usize {
        self.out.len() - self.out_sent
    }

    /// Writes waiting compressed bytes to the socket until fewer than `keep` wait.
    fn poll_send(&mut self, conn: &mut Conn, cx: &mut TaskContext<'_>, keep: usize) -> Poll<std::io::Result<()>> {
        while self.waiting() > keep {
            let n = ready!(Pin::new(&mut *conn).poll_write(cx, &self.out[self.out_sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.out_sent += n;
            self.wire_written += n as u64;
        }
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        } else if self.out_sent >= OUT_HIGH {
            // A socket that keeps taking part of what waits must not make the buffer grow.
            self.out.drain(..self.out_sent);
            self.out_sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Ends what was compressed so far with a sync flush, so the server can inflate all of it now.
    fn sync_flush(&mut self) -> std::io::Result<()> {
        if !self.unflushed {
            return Ok(());
        }
        // Done when the compressor left room in the output: it had nothing more to say.
        while self.deflate_step(&[], true)?.1 {}
        self.unflushed = false;
        Ok(())
    }

    /// Compresses what it can of `input` into `out` (with a sync flush when `sync`), in the coding in
    /// use. Returns the input bytes taken and whether the output room made for it was filled (more
    /// may be waiting in the compressor).
    fn deflate_step(&mut self, input: &[u8], sync: bool) -> std::io::Result<(usize, bool)> {
        self.out.reserve(OUT_STEP);
        let start = self.out.len();
        let room = self.out.capacity() - start;
        let taken = match self.coding {
            Coding::Matching => {
                let before = self.compress.total_in();
                let flush = if sync { FlushCompress::Sync } else { FlushCompress::None };
                self.compress.compress_vec(input, &mut self.out, flush).map_err(std::io::Error::other)?;
                (self.compress.total_in() - before) as usize
            }
            Coding::HuffmanOnly => {
                let huffman = self.huffman.get_or_insert_with(huffman_only);
                self.out.resize(start + room, 0);
                let (before_in, before_out) = (huffman.total_in(), huffman.total_out());
                let flush = if sync { DeflateFlush::SyncFlush } else { DeflateFlush::NoFlush };
                let done = huffman.compress(input, &mut self.out[start..], flush);
                self.out.truncate(start + (huffman.total_out() - before_out) as usize);
                done.map_err(|e| std::io::Error::other(format!("deflate: {e:?}")))?;
                (huffman.total_in() - before_in) as usize
            }
        };
        self.plain_written += taken as u64;
        Ok((taken, self.out.len() - start == room))
    }

    /// Chooses the coding for `piece` (`Coding`). A change ends the blocks of one coding with a sync
    /// flush, at a byte boundary, and the other's begin there: the server reads one deflate stream.
    fn code_for(&mut self, piece: &[u8]) -> std::io::Result<()> {
        if piece.len() < CODING_PIECE_MIN {
            return Ok(());
        }
        let wanted = if looks_like_base64(piece) { Coding::HuffmanOnly } else { Coding::Matching };
        if wanted == self.coding {
            return Ok(());
        }
        self.sync_flush()?;
        if wanted == Coding::Matching {
            // Its window no longer ends where the server's does (the Huffman-coded bytes came in
            // between), so a repeat found in it would name the wrong bytes: it starts afresh.
            self.compress.reset();
        }
        self.coding = wanted;
        Ok(())
    }

    fn poll_write(&mut self, conn: &mut Conn, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.code_for(buf)?;
        loop {
            ready!(self.poll_send(conn, cx, OUT_HIGH - 1))?;
            let (taken, _) = self.deflate_step(buf, false)?;
            if taken > 0 {
                self.unflushed = true;
                return Poll::Ready(Ok(taken));
            }
            // The output was full before any input fit: send some and go on.
            ready!(self.poll_send(conn, cx, 0))?;
        }
    }

    fn poll_flush(&mut self, conn: &mut Conn, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        self.sync_flush()?;
        ready!(self.poll_send(conn, cx, 0))?;
        Pin::new(conn).poll_flush(cx)
    }

    fn poll_read(&mut self, conn: &mut Conn, cx: &mut TaskContext<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        // The server answers only what it has: whatever was written goes out before we wait for it.
        if self.unflushed || self.waiting() > 0 {
            ready!(self.poll_flush(conn, cx))?;
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.ended {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the server ended its compressed stream in the middle of the connection",
            )));
        }
        // Compressed bytes taken in this poll that gave nothing: valid deflate can be all empty blocks,
        // and a server sending only those must not keep the thread from its other accounts and timers.
        let mut taken_for_nothing = 0;
        loop {
            if self.in_start < self.in_end {
                let (before_in, before_out) = (self.decompress.total_in(), self.decompress.total_out());
                let status =
                    self.decompress.decompress(&self.inbuf[self.in_start..self.in_end], buf, FlushDecompress::None).map_err(|e| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("the server's compressed stream is damaged ({e})"))
                    })?;
                let taken = (self.decompress.total_in() - before_in) as usize;
                let made = (self.decompress.total_out() - before_out) as usize;
                self.in_start += taken;
                if status == Status::StreamEnd {
                    // What came with the end (a BYE and its reason) is still read; the next read fails.
                    self.ended = true;
                    if made == 0 {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "the server ended its compressed stream in the middle of the connection",
                        )));
                    }
                }
                if made > 0 {
                    return Poll::Ready(Ok(made));
                }
                if taken > 0 {
                    taken_for_nothing += taken;
                    if taken_for_nothing >= IN_BUF {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    continue;
                }
            }
            // The inflater needs more than is here: keep the rest and read after it.
            if self.in_start > 0 {
                self.inbuf.copy_within(self.in_start..self.in_end, 0);
                self.in_end -= self.in_start;
                self.in_start = 0;
            }
            if self.in_end == self.inbuf.len() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the server's compressed stream could not be read (the inflater took nothing)",
                )));
            }
            let n = ready!(Pin::new(&mut *conn).poll_read(cx, &mut self.inbuf[self.in_end..]))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            self.in_end += n;
            self.wire_read += n as u64;
        }
    }
}

/// A session's socket: the connection, and the deflate layer once COMPRESS is active.
pub struct Wire {
    pub(super) socket: Conn,
    pub(super) deflate: Option<Box<Deflate>>,
}

impl Wire {
    pub(super) fn new(conn: Conn) -> Wire {
        Wire { socket: conn, deflate: None }
    }
}

impl AsyncRead for Wire {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let wire = self.get_mut();
        match wire.deflate.as_mut() {
            Some(deflate) => deflate.poll_read(&mut wire.socket, cx, buf),
            None => Pin::new(&mut wire.socket).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let wire = self.get_mut();
        match wire.deflate.as_mut() {
            Some(deflate) => deflate.poll_write(&mut wire.socket, cx, buf),
            None => Pin::new(&mut wire.socket).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let wire = self.get_mut();
        match wire.deflate.as_mut() {
            Some(deflate) => deflate.poll_flush(&mut wire.socket, cx),
            None => Pin::new(&mut wire.socket).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let wire = self.get_mut();
        if let Some(deflate) = wire.deflate.as_mut() {
            ready!(deflate.poll_flush(&mut wire.socket, cx))?;
        }
        Pin::new(&mut wire.socket).poll_close(cx)
    }
}

/// Most bytes of untagged lines a server may send before its answer to COMPRESS.
const BEFORE_ANSWER_LIMIT: usize = 16 * 1024;

impl Session {
    /// Whether the server is beyond the local network: a round trip takes at least `WAN_ROUND_TRIP`.
    /// Measured once per connection, right after login, and kept (later commands carry mail, so their
    /// times say nothing about the line): a login answered faster than that says "LAN" without asking;
    /// otherwise NOOPs are timed, since a slow login may be the server's password hash or directory:
    /// up to `ROUND_TRIP_SAMPLES`, the fastest counting (a busy box can be slow to read one answer; it
    /// is never faster than the line), stopping at the first under the mark.
    pub async fn measure_beyond_lan(&mut self) -> Result<bool> {
        if let Some(round_trip) = self.line_round_trip {
            return Ok(round_trip >= WAN_ROUND_TRIP);
        }
        let mut round_trip = self.last_round_trip;
        for _ in 0..ROUND_TRIP_SAMPLES {
            if round_trip.is_some_and(|t| t < WAN_ROUND_TRIP) {
                break;
            }
            let started = Instant::now();
            match self.ok(CommandBody::Noop, "NOOP").await {
                Ok(_) => round_trip = Some(round_trip.map_or(started.elapsed(), |t| t.min(started.elapsed()))),
                // A server that refuses NOOP (or one still throttling) is taken to be near, the
                // cautious side: its connection goes on as it would have before this measurement.
                Err(e) if e.downcast_ref::<ImapError>().is_some_and(|e| !e.ends_connection()) => {
                    log::info!("{}: NOOP refused ({e:#}); the server is taken to be on the LAN", self.label);
                    round_trip = Some(Duration::ZERO);
                }
                Err(e) => return Err(e),
            }
        }
        let round_trip = round_trip.unwrap_or_default();
        self.line_round_trip = Some(round_trip);
        Ok(round_trip >= WAN_ROUND_TRIP)
    }

    /// What `measure_beyond_lan` found; false for a connection never measured.
    pub fn beyond_lan(&self) -> bool {
        self.line_round_trip.is_some_and(|t| t >= WAN_ROUND_TRIP)
    }

    /// Starts COMPRESS=DEFLATE on this logged-in connection when `policy` says it pays: always for
    /// `On`; for `Auto` only when the server is beyond the LAN (`measure_beyond_lan`). True when the
    /// connection now compresses. A server that refuses is left uncompressed and said so in the log.
    pub async fn compress_if_worthwhile(&mut self, policy: Compression) -> Result<bool> {
        if policy == Compression::Off || self.stream.deflate.is_some() || !self.has("COMPRESS=DEFLATE") {
            return Ok(false);
        }
        if policy == Compression::Auto && !self.measure_beyond_lan().await? {
            return Ok(false);
        }
        let round_trip = self.line_round_trip;
        let started = self.start_compression().await?;
        if started {
            let how = match round_trip {
                Some(t) if policy == Compression::Auto => format!("a round trip takes {:.1} ms", t.as_secs_f64() * 1000.0),
                _ => "compression is on".to_string(),
            };
            log::info!("{}: compressing the connection (COMPRESS=DEFLATE; {how})", self.label);
        }
        Ok(started)
    }

    /// Sends COMPRESS DEFLATE and reads its answer ourselves, not through imap-next: whatever the
    /// server sends after its OK in the same read is already compressed, and is handed to the layer.
    async fn start_compression(&mut self) -> Result<bool> {
        self.begin_command("COMPRESS", Answers::Kept)?;
        let tag = self.tag();
        let tagged = format!("{} ", tag.inner());
        self.write_all(format!("{}COMPRESS DEFLATE\r\n", tagged).as_bytes()).await?;
        self.flush().await?;
        let mut line: Vec<u8> = Vec::new();
        let mut before_answer = 0;
        loop {
            let n = self.read_some().await?;
            let mut at = 0;
            while at < n {
                let byte = self.read_buf[at];
                at += 1;
                line.push(byte);
                before_answer += 1;
                if before_answer > BEFORE_ANSWER_LIMIT {
                    return Err(self.misbehaved(format!(
                        "the server sent more than {} KiB without answering COMPRESS; stopped reading it",
                        BEFORE_ANSWER_LIMIT >> 10
                    )));
                }
                if byte != b'\n' {
                    continue;
                }
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                line.clear();
                if let Some(rest) = text.strip_prefix(&tagged) {
                    if rest.get(..2).is_some_and(|w| w.eq_ignore_ascii_case("OK")) {
                        self.stream.deflate = Some(Box::new(Deflate::new(&self.read_buf[at..n])));
                        return Ok(true);
                    }
                    // Refused: the connection goes on as it was; anything after the answer is plain.
                    log::info!("{}: the server refused COMPRESS DEFLATE ({rest}); going on uncompressed", self.label);
                    self.feed_client_from_buf(at, n)?;
                    return Ok(false);
                }
                // Untagged lines mean nothing to a logged-in connection with no folder open, except
                // that the server is leaving.
                if text.get(..5).is_some_and(|w| w.eq_ignore_ascii_case("* BYE")) {
                    return Err(ImapError::ConnectionLost {
                        label: self.label.clone(),
                        what: format!("{BYE_WITH_REASON}{}", text[5..].trim()),
                        bye: Some(text[5..].trim().to_string()),
                    }
                    .into());
                }
            }
        }
    }

    /// Bytes this connection sent and received before and after compression: (sent, sent over the
    /// wire, received, received over the wire); None while it does not compress.
    pub fn compression_totals(&self) -> Option<(u64, u64, u64, u64)> {
        let deflate = self.stream.deflate.as_ref()?;
        let (sent, received) = deflate.plain_totals();
        Some((sent, deflate.wire_written, received, deflate.wire_read))
    }
}

// The tests below drive the real session against a scripted server on 127.0.0.1 that compresses
// with flate2 itself, because the shapes they need cannot be got from Dovecot: compressed bytes in
// the same write as the OK, a damaged stream, a refusal. Dovecot's own COMPRESS is tested end to end
// in tests/compress.rs.
#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread::JoinHandle;

    use flate2::read::DeflateDecoder;

    use super::super::body_fetch::tests::{Pace, connect, run};
    use super::super::{AppendItem, ImapError, kind_of};
    use super::*;

    /// What the scripted server does after reading COMPRESS DEFLATE.
    enum Script {
        /// OK with `* OK [ALERT]` compressed in the same write; a LIST answer of `folders` lines; then
        /// one APPEND, answered OK. Returns the appended body as the server inflated it.
        Compressed { folders: usize },
        /// OK, then bytes that are no deflate stream.
        Damaged,
        /// NO; the connection goes on plain and a NOOP is answered.
        Refused,
    }

    /// The server's side of the compressed stream: one deflate state for the whole connection.
    struct ServerDeflate(Compress);

    impl ServerDeflate {
        /// `prefix` as it is, then `data` compressed and sync-flushed, in one write.
        fn send(&mut self, out: &mut TcpStream, prefix: &[u8], data: &[u8]) {
            let mut buf = prefix.to_vec();
            let mut rest = data;
            loop {
                buf.reserve(64 * 1024);
                let before = self.0.total_in();
                self.0.compress_vec(rest, &mut buf, FlushCompress::Sync).expect("compress");
                rest = &rest[(self.0.total_in() - before) as usize..];
                if rest.is_empty() && buf.len() < buf.capacity() {
                    break;
                }
            }
            out.write_all(&buf).expect("write");
        }
    }

    fn server(script: Script) -> (u16, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            let mut out = stream.try_clone().expect("clone");
            let mut input = BufReader::new(stream);
            out.write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ COMPRESS=DEFLATE] ready\r\n").expect("greeting");
            let mut line = String::new();
            input.read_line(&mut line).expect("COMPRESS");
            assert_eq!(line, "P1 COMPRESS DEFLATE\r\n");
            match script {
                Script::Refused => {
                    out.write_all(b"P1 NO [COMPRESSIONACTIVE] not now\r\n").expect("NO");
                    line.clear();
                    input.read_line(&mut line).expect("NOOP");
                    assert_eq!(line, "P2 NOOP\r\n", "after a refusal the client goes on plain");
                    out.write_all(b"P2 OK done\r\n").expect("OK");
                    let _ = input.read_to_end(&mut Vec::new());
                    Vec::new()
                }
                Script::Damaged => {
                    out.write_all(b"P1 OK compressing\r\n\xff\xfe\xfd\xfc this is not deflate\r\n").expect("garbage");
                    let _ = input.read_to_end(&mut Vec::new());
                    Vec::new()
                }
                Script::Compressed { folders } => {
                    let mut deflate = ServerDeflate(Compress::new(Level::default(), false));
                    deflate.send(&mut out, b"P1 OK go ahead\r\n", b"* OK [ALERT] compressed from here on\r\n");
                    assert!(input.buffer().is_empty(), "the client wrote before the OK");
                    let mut lines = BufReader::new(DeflateDecoder::new(input.into_inner()));
                    line.clear();
                    lines.read_line(&mut line).expect("LIST");
                    assert_eq!(line, "P2 LIST \"\" *\r\n");
                    let mut answer = String::new();
                    for i in 0..folders {
                        answer.push_str(&format!("* LIST (\\HasNoChildren) \"/\" \"Mapp {i:05} med ett langt namn\"\r\n"));
                    }
                    answer.push_str("P2 OK LIST done\r\n");
                    deflate.send(&mut out, b"", answer.as_bytes());
                    line.clear();
                    lines.read_line(&mut line).expect("APPEND");
                    let size: usize =
                        line.trim_end().rsplit_once('{').and_then(|(_, n)| n.trim_end_matches("+}").parse().ok()).expect("literal");
                    let mut body = vec![0; size];
                    lines.read_exact(&mut body).expect("the literal");
                    line.clear();
                    lines.read_line(&mut line).expect("the APPEND's end");
                    assert_eq!(line, "\r\n");
                    deflate.send(&mut out, b"", b"P3 OK [APPENDUID 7 1] done\r\n");
                    let _ = lines.read_to_end(&mut Vec::new());
                    body
                }
            }
        });
        (port, handle)
    }

    /// Random bytes as base64 lines, as an attachment (a compressed file) is sent.
    fn base64_lines(bytes: usize, mut seed: u64) -> Vec<u8> {
        const LETTERS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        for i in 0..bytes {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.push(LETTERS[(seed % 64) as usize]);
            if i % 76 == 75 {
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    /// Sends `piece` through the layer's compressor as `poll_write` does, without a socket.
    fn feed(deflate: &mut Deflate, piece: &[u8]) -> Coding {
        deflate.code_for(piece).expect("coding");
        let mut rest = piece;
        while !rest.is_empty() {
            let (taken, _) = deflate.deflate_step(rest, false).expect("deflate");
            deflate.unflushed |= taken > 0;
            rest = &rest[taken..];
        }
        deflate.coding
    }

    #[test]
    fn base64_is_huffman_coded_and_the_text_around_it_inflates_to_the_same_bytes() {
        let text =
            "Hej Lena! Protokollet från mötet i fredag ligger i bilagan, och kunderna i Åre har svarat.\r\n".repeat(300).into_bytes();
        let attachment = base64_lines(60_000, 7);
        let headers = b"--gr\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        // The same text again after the attachment: were the matching compressor's window not
        // started afresh, its repeats would name bytes the server's window does not hold there.
        let pieces: Vec<(&[u8], Coding)> = vec![
            (b"P3 APPEND INBOX {123456+}\r\n", Coding::Matching),
            (&text, Coding::Matching),
            (&headers, Coding::Matching),
            (&attachment[..32 * 1024], Coding::HuffmanOnly),
            (&attachment[32 * 1024..], Coding::HuffmanOnly),
            (b"\r\n--gr--\r\n", Coding::HuffmanOnly),
            (&text, Coding::Matching),
            (&attachment, Coding::HuffmanOnly),
            (&text[..20_000], Coding::Matching),
        ];
        let mut deflate = Deflate::new(&[]);
        let mut sent = Vec::new();
        for (piece, coding) in &pieces {
            assert_eq!(feed(&mut deflate, piece), *coding, "piece of {} bytes", piece.len());
            sent.extend_from_slice(piece);
        }
        deflate.sync_flush().expect("flush");
        assert_eq!(deflate.plain_totals().0, sent.len() as u64);
        // The server's side: one inflater for the whole connection (the stream never ends).
        let mut inflate = Decompress::new(false);
        let mut inflated = Vec::with_capacity(sent.len() + 1024);
        let status = inflate.decompress_vec(&deflate.out, &mut inflated, FlushDecompress::Sync).expect("one valid deflate stream");
        assert_eq!(status, Status::Ok);
        assert_eq!(inflate.total_in(), deflate.out.len() as u64, "all of it inflated");
        assert!(inflated == sent, "inflated {} bytes, sent {}", inflated.len(), sent.len());

        // Huffman codes alone keep base64 at about three quarters, as repeats sought at LEVEL do.
        let mut alone = Deflate::new(&[]);
        assert_eq!(feed(&mut alone, &attachment), Coding::HuffmanOnly);
        alone.sync_flush().expect("flush");
        let ratio = alone.out.len() as f64 / attachment.len() as f64;
        assert!((0.74..0.78).contains(&ratio), "base64 compressed to {ratio:.3}");
        // Text with its spaces is never taken for base64.
        assert!(!looks_like_base64(&text) && looks_like_base64(&attachment) && !looks_like_base64(&headers));
    }

    #[test]
    fn compressed_answers_and_a_compressed_append_including_bytes_that_came_with_the_ok() {
        for pace in [Pace::Whole, Pace::ByteByByte] {
            let (port, server) = server(Script::Compressed { folders: 3000 });
            // 600 KB that do not compress: the upload waits on the socket more than once.
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let body: Vec<u8> = (0..600_000)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let (folders, totals) = run(async {
                let mut session = connect(port, pace).await;
                assert!(session.compress_if_worthwhile(Compression::On).await.expect("COMPRESS"));
                let folders = session.list().await.expect("LIST");
                let mut sent = false;
                let mut next = || -> Result<Vec<u8>> {
                    let piece = if sent { Vec::new() } else { body.clone() };
                    sent = true;
                    Ok(piece)
                };
                let flags = vec!["\\Seen".to_string()];
                let mut items = [AppendItem { flags: &flags, internal_date: None, size: body.len() as u64, body: &mut next }];
                let answer = session.append("INBOX", &mut items, &mut || Ok(())).await.expect("APPEND");
                assert!(answer.answer.is_ok(), "{:?}", answer.answer);
                (folders, session.compression_totals().expect("compressing"))
            });
            assert_eq!(folders.len(), 3000);
            assert_eq!(folders[2999].wire_name, "Mapp 02999 med ett langt namn");
            assert_eq!(server.join().expect("server"), body, "the server inflated the body we sent");
            let (sent, sent_wire, received, received_wire) = totals;
            assert!(sent > 600_000 && sent_wire > 0, "{totals:?}");
            // 3,000 LIST lines of one shape shrink to a fraction over the wire.
            assert!(received > 150_000 && received_wire * 5 < received, "{totals:?}");
        }
    }

    #[test]
    fn a_damaged_stream_loses_the_connection_with_a_reason() {
        let (port, server) = server(Script::Damaged);
        let error = run(async {
            let mut session = connect(port, Pace::Whole).await;
            assert!(session.compress_if_worthwhile(Compression::On).await.expect("COMPRESS"));
            session.list().await.expect_err("nothing can be read")
        });
        assert!(matches!(kind_of(&error), Some(ImapError::ConnectionLost { .. })), "{error:#}");
        assert!(format!("{error:#}").contains("compressed stream is damaged"), "{error:#}");
        server.join().expect("server");
    }

    #[test]
    fn a_refusal_leaves_the_connection_plain() {
        let (port, server) = server(Script::Refused);
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            assert!(!session.compress_if_worthwhile(Compression::On).await.expect("COMPRESS refused"));
            assert!(session.compression_totals().is_none());
            session.ok(CommandBody::Noop, "NOOP").await.expect("NOOP goes plain");
        });
        server.join().expect("server");
    }

    #[test]
    fn auto_asks_nothing_of_a_server_that_answered_fast_and_off_never_compresses() {
        // The server would fail the test on any command: none may be sent.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream.write_all(b"* OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] ready\r\n").expect("greeting");
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            rest
        });
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            session.last_round_trip = Some(Duration::from_micros(300));
            assert!(!session.compress_if_worthwhile(Compression::Auto).await.expect("auto"));
            assert!(!session.compress_if_worthwhile(Compression::Off).await.expect("off"));
        });
        assert_eq!(server.join().expect("server"), b"", "the client sent a command");
    }

    /// A server that refuses NOOP after a slow login: the measurement takes it to be near (the cautious
    /// side), asks once, and the connection goes on; the answer is kept for the connection's life.
    #[test]
    fn a_refused_noop_counts_as_near_and_the_connection_goes_on() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            let mut out = stream.try_clone().expect("clone");
            let mut input = BufReader::new(stream);
            out.write_all(b"* OK [CAPABILITY IMAP4rev1] ready\r\n").expect("greeting");
            let mut lines = Vec::new();
            for answer in [&b"P1 NO not here\r\n"[..], b"P2 OK done\r\n"] {
                let mut line = String::new();
                input.read_line(&mut line).expect("command");
                lines.push(line);
                out.write_all(answer).expect("answer");
            }
            let _ = input.read_to_end(&mut Vec::new());
            lines
        });
        run(async {
            let mut session = connect(port, Pace::Whole).await;
            session.last_round_trip = Some(Duration::from_millis(30));
            assert!(!session.measure_beyond_lan().await.expect("a refusal is no failure"));
            assert!(!session.measure_beyond_lan().await.expect("kept"));
            assert!(!session.beyond_lan());
            session.ok(CommandBody::Noop, "NOOP").await.expect("the connection goes on");
        });
        assert_eq!(server.join().expect("server"), ["P1 NOOP\r\n", "P2 NOOP\r\n"]);
    }

    /// A loopback server busy for one answer and quick for the next is near: the fastest NOOP counts.
    /// One slow at every answer is far, after `ROUND_TRIP_SAMPLES` of them.
    #[test]
    fn the_fastest_of_a_few_noops_says_whether_the_server_is_near() {
        for (delays, far) in [(vec![30, 0], false), (vec![30; ROUND_TRIP_SAMPLES], true)] {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("local_addr").port();
            let answers = delays.len();
            let server = std::thread::spawn(move || {
                let (stream, _) = listener.accept().expect("accept");
                stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
                let mut out = stream.try_clone().expect("clone");
                let mut input = BufReader::new(stream);
                out.write_all(b"* OK [CAPABILITY IMAP4rev1] ready\r\n").expect("greeting");
                let mut asked = 0;
                for (n, delay) in delays.into_iter().enumerate() {
                    let mut line = String::new();
                    input.read_line(&mut line).expect("command");
                    assert_eq!(line, format!("P{} NOOP\r\n", n + 1));
                    std::thread::sleep(Duration::from_millis(delay));
                    out.write_all(format!("P{} OK done\r\n", n + 1).as_bytes()).expect("answer");
                    asked += 1;
                }
                let _ = input.read_to_end(&mut Vec::new());
                asked
            });
            run(async {
                let mut session = connect(port, Pace::Whole).await;
                session.last_round_trip = Some(Duration::from_millis(30));
                assert_eq!(session.measure_beyond_lan().await.expect("measured"), far);
                assert_eq!(session.beyond_lan(), far);
            });
            assert_eq!(server.join().expect("server"), answers);
        }
    }

    #[test]
    fn the_setting_reads_its_three_words() {
        for (text, want) in [("auto", Compression::Auto), (" ON ", Compression::On), ("off", Compression::Off)] {
            assert_eq!(Compression::parse(text), Some(want));
            assert_eq!(Compression::parse(want.as_str()), Some(want));
        }
        assert_eq!(Compression::parse("yes"), None);
    }

    /// A scripted server's first turn: accepts, greets offering COMPRESS=DEFLATE and reads the client's
    /// COMPRESS DEFLATE; the answer is the caller's.
    fn greeted_up_to_compress(listener: &TcpListener) -> (TcpStream, BufReader<TcpStream>) {
        let (stream, _) = listener.accept().expect("accept");
        let mut out = stream.try_clone().expect("clone");
        let mut input = BufReader::new(stream);
        out.write_all(b"* OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] ready\r\n").expect("greeting");
        let mut line = String::new();
        input.read_line(&mut line).expect("COMPRESS");
        assert_eq!(line, "P1 COMPRESS DEFLATE\r\n");
        (out, input)
    }

    #[test]
    fn a_bye_in_the_last_block_of_the_stream_is_read_with_its_reason() {
        // A server shutting down ends its deflate stream with the BYE inside the final block.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let server = std::thread::spawn(move || {
            let (mut out, mut input) = greeted_up_to_compress(&listener);
            let mut deflate = Compress::new(Level::default(), false);
            let mut last = b"P1 OK go ahead\r\n".to_vec();
            last.reserve(4096);
            deflate.compress_vec(b"* BYE the server is shutting down\r\n", &mut last, FlushCompress::Finish).expect("finish");
            out.write_all(&last).expect("the whole stream");
            let _ = input.read_to_end(&mut Vec::new());
        });
        let error = run(async {
            let mut session = connect(port, Pace::Whole).await;
            assert!(session.compress_if_worthwhile(Compression::On).await.expect("COMPRESS"));
            session.list().await.expect_err("the server left")
        });
        assert!(format!("{error:#}").contains("the server is shutting down"), "{error:#}");
        assert!(matches!(kind_of(&error), Some(ImapError::ConnectionLost { .. })), "{error:#}");
        server.join().expect("server");
    }

    #[test]
    fn a_server_streaming_empty_deflate_blocks_does_not_stall_the_thread() {
        // After its OK the server sends empty stored blocks (valid deflate that inflates to nothing)
        // as fast as the socket takes them. The layer loops inside one poll_read (made == 0, taken > 0)
        // as long as the socket has bytes, never returning Pending, so no other task of the thread
        // (the other accounts, the read timeout, READS_PER_YIELD) runs meanwhile.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        std::thread::spawn(move || {
            let (mut out, _input) = greeted_up_to_compress(&listener);
            out.write_all(b"P1 OK go ahead\r\n").expect("OK");
            let empty_blocks: Vec<u8> = [0u8, 0, 0, 0xff, 0xff].repeat(400_000);
            while out.write_all(&empty_blocks).is_ok() {}
        });
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = smol::block_on(async {
                let mut session = connect(port, Pace::Whole).await;
                assert!(session.compress_if_worthwhile(Compression::On).await.expect("COMPRESS"));
                smol::future::or(
                    async {
                        let _ = session.list().await;
                        "the LIST ended"
                    },
                    async {
                        smol::Timer::after(Duration::from_secs(2)).await;
                        "another task of the thread ran"
                    },
                )
                .await
            });
            let _ = done.send(outcome);
        });
        let started = Instant::now();
        let outcome = finished.recv_timeout(Duration::from_secs(30));
        let took = started.elapsed();
        // The other task's 2 s timer should end it at once; allow generous slack for a busy machine.
        assert!(
            outcome.is_ok() && took < Duration::from_secs(4),
            "the thread was stuck inside one read: {outcome:?} after {took:?} (the other task wanted to run after 2 s)"
        );
    }
}
