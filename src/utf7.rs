//! IMAP modified UTF-7 (RFC 3501 §5.1.3): the encoding mailbox names travel in on the wire. This module
//! owns the conversion between the wire form and the UTF-8 names the rest of postflytt stores, shows and
//! maps. `decode` is strict: it accepts exactly the strings `encode` produces, so a decoded name identifies
//! its wire name and `encode(decode(w)?) == w` always holds. `decode_or_raw` is the lenient entry for
//! servers that put raw UTF-8 (or other junk) into LIST responses.

use std::fmt;

/// The RFC 3501 variant of the base64 alphabet: `,` replaces `/` so that the hierarchy delimiter most
/// servers use can never appear inside an encoded run.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a UTF-8 mailbox name for the wire. Every string has an encoding, so this cannot fail.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + name.len() / 2);
    // Non-printable characters are gathered so a whole run becomes one `&...-` shift: the RFC wants the
    // shortest form, and `decode` rejects two shifts back to back.
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush_shift(&mut out, &mut pending);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_shift(&mut out, &mut pending);
    out
}

/// Decodes a wire mailbox name, rejecting anything `encode` would not have produced.
pub fn decode(wire: &str) -> Result<String, Utf7Error> {
    let bytes = wire.as_bytes();
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    // Where the last base64 shift ended; a new shift starting right there means the name was not written
    // as one run, which would give two wire names for one mailbox name.
    let mut last_shift_end = None;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'&' {
            let run_start = i + 1;
            let Some(len) = bytes[run_start..].iter().position(|&c| c == b'-') else {
                return Err(Utf7Error::new(wire, i, Utf7ErrorKind::Unterminated));
            };
            let run_end = run_start + len;
            if len == 0 {
                out.push('&');
            } else {
                if last_shift_end == Some(i) {
                    return Err(Utf7Error::new(wire, i, Utf7ErrorKind::AdjacentShifts));
                }
                decode_shift(wire, run_start, run_end, &mut out)?;
                last_shift_end = Some(run_end + 1);
            }
            i = run_end + 1;
        } else if b.is_ascii() && is_direct(char::from(b)) {
            out.push(char::from(b));
            i += 1;
        } else {
            return Err(Utf7Error::new(wire, i, Utf7ErrorKind::RawCharacter(char_at(wire, i))));
        }
    }
    Ok(out)
}

/// Decodes a wire name, or returns it unchanged when it is not modified UTF-7.
///
/// Some servers (and servers that took whatever an old client sent) list names in raw UTF-8 or with a
/// stray `&`; keeping such a name as it is loses nothing, whereas refusing it would hide a folder.
pub fn decode_or_raw(wire: &str) -> String {
    decode(wire).unwrap_or_else(|_| wire.to_string())
}

/// Why a wire name is not modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Utf7ErrorKind {
    /// A character outside printable US-ASCII appears unencoded (raw UTF-8, a control character, DEL).
    RawCharacter(char),
    /// An `&` opens a base64 run that no `-` closes.
    Unterminated,
    /// A character inside `&...-` is not in the modified base64 alphabet.
    BadBase64(char),
    /// The base64 run does not hold a whole number of UTF-16 code units.
    PartialUnit,
    /// The unused low bits of the last base64 character are not zero.
    NonZeroPadding,
    /// A UTF-16 surrogate without its partner.
    LoneSurrogate(u16),
    /// A printable US-ASCII character was base64-encoded, which RFC 3501 forbids.
    EncodedAscii(char),
    /// A base64 run starts right after another one ends instead of both being one run.
    AdjacentShifts,
}

impl fmt::Display for Utf7ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RawCharacter(c) => {
                write!(f, "unencoded character {c:?} (U+{:04X})", u32::from(*c))
            }
            Self::Unterminated => f.write_str("'&' without a closing '-'"),
            Self::BadBase64(c) => write!(f, "{c:?} is not a modified base64 character"),
            Self::PartialUnit => f.write_str("base64 run does not end on a whole UTF-16 unit"),
            Self::NonZeroPadding => f.write_str("base64 run ends with non-zero padding bits"),
            Self::LoneSurrogate(u) => write!(f, "unpaired UTF-16 surrogate 0x{u:04X}"),
            Self::EncodedAscii(c) => write!(f, "printable character {c:?} is base64-encoded"),
            Self::AdjacentShifts => f.write_str("two base64 runs back to back"),
        }
    }
}

/// A wire name that is not valid modified UTF-7, with the name itself so the message stands alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utf7Error {
    input: String,
    offset: usize,
    kind: Utf7ErrorKind,
}

impl Utf7Error {
    fn new(input: &str, offset: usize, kind: Utf7ErrorKind) -> Self {
        Self { input: input.to_string(), offset, kind }
    }

    /// The wire name as received.
    #[cfg(test)]
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Byte offset into `input` where the problem starts.
    #[cfg(test)]
    pub fn offset(&self) -> usize {
        self.offset
    }

    #[cfg(test)]
    pub fn kind(&self) -> &Utf7ErrorKind {
        &self.kind
    }
}

impl fmt::Display for Utf7Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mailbox name {:?} is not modified UTF-7: {} at byte {}", self.input, self.kind, self.offset)
    }
}

impl std::error::Error for Utf7Error {}

fn is_direct(c: char) -> bool {
    matches!(c, ' '..='~')
}

fn flush_shift(out: &mut String, pending: &mut Vec<u16>) {
    if pending.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for unit in pending.drain(..) {
        acc = (acc << 16) | u32::from(unit);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(sextet_char(acc >> bits));
        }
        // Only the bits not yet written are kept, so `acc` never holds more than 21 bits.
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(sextet_char(acc << (6 - bits)));
    }
    out.push('-');
}

fn sextet_char(value: u32) -> char {
    char::from(ALPHABET[(value & 0x3f) as usize])
}

fn sextet_value(b: u8) -> Option<u32> {
    let v = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes the base64 between `&` and `-` (byte range `start..end` of `wire`) and appends it to `out`.
fn decode_shift(wire: &str, start: usize, end: usize, out: &mut String) -> Result<(), Utf7Error> {
    let bytes = wire.as_bytes();
    let mut units: Vec<u16> = Vec::with_capacity((end - start) * 6 / 16);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for (pos, &b) in bytes.iter().enumerate().take(end).skip(start) {
        let Some(v) = sextet_value(b) else {
            return Err(Utf7Error::new(wire, pos, Utf7ErrorKind::BadBase64(char_at(wire, pos))));
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(((acc >> bits) & 0xffff) as u16);
            acc &= (1 << bits) - 1;
        }
    }
    // A whole unit leaves 0, 2 or 4 bits over; 6 or more means a partial unit (an odd byte count, or a
    // base64 character too many), which an encoder never writes.
    if bits >= 6 {
        return Err(Utf7Error::new(wire, start, Utf7ErrorKind::PartialUnit));
    }
    if acc != 0 {
        return Err(Utf7Error::new(wire, end - 1, Utf7ErrorKind::NonZeroPadding));
    }
    for decoded in char::decode_utf16(units) {
        let c = decoded.map_err(|e| Utf7Error::new(wire, start, Utf7ErrorKind::LoneSurrogate(e.unpaired_surrogate())))?;
        if is_direct(c) {
            return Err(Utf7Error::new(wire, start, Utf7ErrorKind::EncodedAscii(c)));
        }
        out.push(c);
    }
    Ok(())
}

/// The character starting at byte `pos`; callers only point at boundaries, `�` guards the rest.
fn char_at(s: &str, pos: usize) -> char {
    s.get(pos..).and_then(|rest| rest.chars().next()).unwrap_or(char::REPLACEMENT_CHARACTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[(&str, &str)] = &[
        ("", ""),
        ("INBOX", "INBOX"),
        ("Skickat", "Skickat"),
        ("Utkast", "Utkast"),
        ("Papperskorg", "Papperskorg"),
        ("Skräppost", "Skr&AOQ-ppost"),
        ("Kunder/Åre", "Kunder/&AMU-re"),
        ("INBOX.Kunder.Åre", "INBOX.Kunder.&AMU-re"),
        ("Borttagna objekt", "Borttagna objekt"),
        ("Göteborg", "G&APY-teborg"),
        ("åäö", "&AOUA5AD2-"),
        ("ÅÄÖ åäö", "&AMUAxADW- &AOUA5AD2-"),
        ("&", "&-"),
        ("&&", "&-&-"),
        ("R&D", "R&-D"),
        ("&ä", "&-&AOQ-"),
        ("ä&", "&AOQ-&-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("😀", "&2D3eAA-"),
        ("Mail 😀 ä", "Mail &2D3eAA- &AOQ-"),
        ("a\tb", "a&AAk-b"),
        ("del\u{7f}", "del&AH8-"),
        ("Offert 2024/25", "Offert 2024/25"),
        ("∕", "&IhU-"),
    ];

    #[test]
    fn encode_table() {
        for (name, wire) in TABLE {
            assert_eq!(encode(name), *wire, "encoding {name:?}");
        }
    }

    #[test]
    fn decode_table() {
        for (name, wire) in TABLE {
            assert_eq!(decode(wire).as_deref(), Ok(*name), "decoding {wire:?}");
        }
    }

    #[test]
    fn rfc_example_decodes_to_chinese_and_japanese() {
        let name = decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap();
        assert_eq!(name, "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}");
    }

    #[test]
    fn emoji_use_surrogate_pairs() {
        // U+1F600 is D83D DE00 in UTF-16: four bytes, six base64 characters.
        assert_eq!(encode("\u{1F600}"), "&2D3eAA-");
        assert_eq!(decode("&2D3eAA-").unwrap(), "\u{1F600}");
        let flags = "🇸🇪 Sverige 👨‍👩‍👧";
        assert_eq!(decode(&encode(flags)).unwrap(), flags);
    }

    #[test]
    fn round_trip_many_strings() {
        let mut samples: Vec<String> = TABLE.iter().map(|(n, _)| n.to_string()).collect();
        samples.extend(
            [
                "Skickade objekt",
                "Junk E-mail",
                "Kunder/Åre/Östersund",
                "a&b&c",
                "&-&",
                "-&-",
                "&AOQ-",
                "ä-ö",
                "\u{0}",
                "\u{ffff}",
                "\u{10ffff}",
                "\u{d7ff}\u{e000}",
                "Ελληνικά",
                "Русский",
                "עברית",
                "日本語のフォルダ",
                "x😀y😀😀z",
            ]
            .map(String::from),
        );
        // Every run length from 1 to 9 non-ASCII characters, so each base64 tail length occurs.
        for n in 1..10 {
            samples.push("é".repeat(n));
            samples.push(format!("a{}b", "😀".repeat(n)));
        }
        // Every BMP scalar value (surrogates excluded by `char`) and a sweep of the astral planes.
        let bmp: String = (0u32..0x1_0000).filter_map(char::from_u32).collect();
        samples.push(bmp);
        let astral: String = (0x1_0000u32..=0x10_ffff).step_by(97).filter_map(char::from_u32).collect();
        samples.push(astral);
        for s in &samples {
            let wire = encode(s);
            assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{wire:?} is not 7-bit");
            assert_eq!(decode(&wire).as_deref(), Ok(s.as_str()), "round trip of {s:?}");
            assert_eq!(encode(&decode(&wire).unwrap()), wire);
        }
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        use Utf7ErrorKind::*;
        let cases: &[(&str, Utf7ErrorKind, usize)] = &[
            ("&", Unterminated, 0),
            ("Skr&AOQ", Unterminated, 3),
            ("&AOQ-&AOQ", Unterminated, 5),
            ("&A-", PartialUnit, 1),
            ("&AO-", PartialUnit, 1),
            ("&AOQA-", PartialUnit, 1),
            ("&AOQAA-", PartialUnit, 1),
            ("&AOR-", NonZeroPadding, 3),
            ("&Ab/-", BadBase64('/'), 3),
            ("&AOQ=-", BadBase64('='), 4),
            ("&AO Q-", BadBase64(' '), 3),
            ("&AOä-", BadBase64('ä'), 3),
            ("&2D0-", LoneSurrogate(0xd83d), 1),
            ("&3gA-", LoneSurrogate(0xde00), 1),
            ("&3gDYPQ-", LoneSurrogate(0xde00), 1),
            ("&AGE-", EncodedAscii('a'), 1),
            ("&ACY-", EncodedAscii('&'), 1),
            ("&AOQ-&AOQ-", AdjacentShifts, 5),
            ("Skräppost", RawCharacter('ä'), 3),
            ("a\tb", RawCharacter('\t'), 1),
            ("del\u{7f}", RawCharacter('\u{7f}'), 3),
        ];
        for (wire, kind, offset) in cases {
            let err = decode(wire).expect_err(wire);
            assert_eq!(err.kind(), kind, "kind for {wire:?}");
            assert_eq!(err.offset(), *offset, "offset for {wire:?}");
            assert_eq!(err.input(), *wire);
        }
    }

    #[test]
    fn error_message_names_the_input() {
        let err = decode("Skr&AOQ").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"Skr&AOQ\""), "{text}");
        assert!(text.contains("closing '-'"), "{text}");
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert!(boxed.to_string().contains("Skr&AOQ"));
    }

    #[test]
    fn decode_or_raw_keeps_what_does_not_decode() {
        assert_eq!(decode_or_raw("Skr&AOQ-ppost"), "Skräppost");
        // Raw UTF-8, as some servers list it.
        assert_eq!(decode_or_raw("Skräppost"), "Skräppost");
        assert_eq!(decode_or_raw("Kund & Co"), "Kund & Co");
        assert_eq!(decode_or_raw("R&D-avdelningen"), "R&D-avdelningen");
        assert_eq!(decode_or_raw(""), "");
    }
}
