//! Request heads as the front door reads them (strictly: tokens, visible ASCII, one Content-Length),
//! its target's path and query (`parse_query`, for the door and the handlers behind it), and the
//! answers the door gives itself: a refusal with its status and a sentence, as JSON.

use std::collections::BTreeMap;

/// A request's head as the door reads it: header names in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

/// A request refused here, with the status it deserves and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub(super) fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into(), retry_after: None }
    }
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body's length: Content-Length, or 0. Chunked bodies are refused (no client of this API
    /// sends one), as are lengths that disagree or do not parse.
    pub fn content_length(&self) -> Result<u64, Refusal> {
        if self.header("transfer-encoding").is_some() {
            return Err(Refusal::new(411, "send the body with a Content-Length (chunked bodies are not accepted)"));
        }
        let mut lengths = self.headers.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.trim());
        let Some(first) = lengths.next() else { return Ok(0) };
        if lengths.any(|other| other != first) {
            return Err(Refusal::new(400, "the request has two different Content-Length headers"));
        }
        if first.is_empty() || first.len() > 20 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refusal::new(400, "the Content-Length header is not a number"));
        }
        first.parse().map_err(|_| Refusal::new(400, "the Content-Length header is not a number"))
    }
}

/// Where the head ends in `buffer`: the index just past its blank line.
pub(super) fn head_end(buffer: &[u8]) -> Option<usize> {
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads a request head (without its blank line). Strict where tiny_http would be lenient: only
/// visible ASCII in the target, tokens for method and header names, no folded headers.
pub fn parse_head(raw: &[u8]) -> Result<Head, Refusal> {
    let bad = |what: &str| Refusal::new(400, format!("the request is not HTTP/1.1 this appliance understands: {what}"));
    let text = std::str::from_utf8(raw).map_err(|_| bad("bytes that are not text in the head"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("the request line"));
    };
    if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("the method"));
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the path"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Refusal::new(505, "only HTTP/1.0 and HTTP/1.1 are spoken here"));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| bad("a header line without a colon"))?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(bad("a header name"));
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad("a header value"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    if headers.len() > 100 {
        return Err(Refusal::new(431, "the request has too many headers"));
    }
    Ok(Head { method: method.to_string(), target: target.to_string(), version: version.to_string(), headers })
}

/// An answer made by the door itself: the JSON error object every API error is.
pub fn refusal_response(refusal: &Refusal) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(&serde_json::json!({"error": {"status": refusal.status, "message": refusal.message}}))
        .unwrap_or_default();
    let reason = match refusal.status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        refusal.status,
        body.len()
    );
    if let Some(seconds) = refusal.retry_after {
        head.push_str(&format!("Retry-After: {seconds}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// A request target split into its path and its query parameters, percent-decoded (`+` is a space);
/// a later repeat of a name wins.
pub fn parse_query(url: &str) -> (String, BTreeMap<String, String>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let map = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect();
    (path.to_string(), map)
}

/// `%XX` as the byte XX (a `%` without two hex digits stays itself), as UTF-8 (invalid bytes become
/// U+FFFD); `form`: a query string's `+` is a space (not in a header's value, where `+` is itself).
pub(super) fn percent_decode(s: &str, form: bool) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if form => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let (p, q) = parse_query("/api/accounts?name=Konton%20%C3%A5r.xlsx&x");
        assert_eq!(p, "/api/accounts");
        assert_eq!(q["name"], "Konton år.xlsx");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
    }

    fn head(text: &str) -> Result<Head, Refusal> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads() {
        let h = head("POST /api/accounts?name=a.xlsx HTTP/1.1\r\nHost: 127.0.0.1:8025\r\nContent-Length: 12\r\nX-Viewer-Code:  abc \r\n")
            .unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/api/accounts?name=a.xlsx");
        assert_eq!(h.header("host"), Some("127.0.0.1:8025"));
        assert_eq!(h.header("x-viewer-code"), Some("abc"));
        assert_eq!(h.content_length(), Ok(12));
        for (text, status) in [
            ("GET / HTTP/1.1\r\nContent-Length: 100000000000\r\n", None),
            ("GET / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n", None),
            ("GET / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nContent-Length: -1\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n", Some(400)),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", Some(411)),
        ] {
            assert_eq!(head(text).unwrap().content_length().err().map(|r| r.status), status, "{text}");
        }
        for (text, status) in [
            ("GET /\r\n", 400),
            ("get / HTTP/1.1\r\n", 400),
            ("GET http://x/ HTTP/1.1\r\n", 400),
            ("GET / HTTP/2.0\r\n", 505),
            ("GET / HTTP/1.1\r\nNo colon\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n", 400),
            ("GET / HTTP/1.1\r\nX: a\u{1}b\r\n", 400),
            ("GET /a b HTTP/1.1\r\n", 400),
        ] {
            assert_eq!(head(text).err().map(|r| r.status), Some(status), "{text:?}");
        }
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn refusals_are_json() {
        let text = String::from_utf8(refusal_response(&Refusal { status: 429, message: "wait".into(), retry_after: Some(7) })).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{text}");
        assert!(text.contains("Retry-After: 7\r\n"));
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["error"]["status"], 429);
    }
}
