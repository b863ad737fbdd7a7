//! OAuth2 for Microsoft 365 targets: the client-credentials grant against the tenant's v2 token
//! endpoint (scope `https://outlook.office365.com/.default`), a per-process token cache that refreshes
//! a token five minutes before it expires, and the SASL XOAUTH2 string IMAP logs in with. Errors from
//! the token endpoint are translated into what to fix in the app registration. The endpoint is a
//! setting so tests point it at a local stand-in; a small HTTP/1.1 client of our own does the one POST
//! this needs (plain HTTP only to loopback, otherwise TLS through the same connector as IMAP).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::imap::{Endpoint, TlsMode};
use crate::secret::Secret;

/// Where Microsoft's tenants get tokens; `{tenant}` is replaced by the tenant id.
pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// The scope an app needs for IMAP access to Exchange Online mailboxes.
pub const SCOPE: &str = "https://outlook.office365.com/.default";
/// Refresh this long before the token expires, so no login races the expiry.
const REFRESH_MARGIN: i64 = 300;

/// An app registration's credentials.
#[derive(Debug, Clone)]
pub struct App {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The token endpoint URL (with `{tenant}` already replaced).
    pub token_url: String,
}

struct Cached {
    token: Secret,
    expires_at: i64,
}

static CACHE: Mutex<BTreeMap<String, Cached>> = Mutex::new(BTreeMap::new());
/// One token request at a time, so accounts starting together share one token instead of each
/// asking the tenant (which rate-limits token requests too).
static FETCHING: smol::lock::Mutex<()> = smol::lock::Mutex::new(());

/// A token for `app`: from the cache while it has five minutes left, else a fresh one.
pub async fn token(app: &App) -> Result<Secret> {
    let key = format!("{}|{}|{}", app.token_url, app.tenant, app.client_id);
    let cached = |key: &str| {
        let now = crate::units::now();
        CACHE.lock().unwrap_or_else(|p| p.into_inner()).get(key).filter(|c| c.expires_at - REFRESH_MARGIN > now).map(|c| c.token.clone())
    };
    if let Some(token) = cached(&key) {
        return Ok(token);
    }
    let _one_at_a_time = FETCHING.lock().await;
    if let Some(token) = cached(&key) {
        return Ok(token);
    }
    let now = crate::units::now();
    let (token, lifetime) = fetch_token(app).await?;
    CACHE.lock().unwrap_or_else(|p| p.into_inner()).insert(key, Cached { token: token.clone(), expires_at: now + lifetime });
    Ok(token)
}

/// Forgets a cached token (after the server refused it), so the next login fetches a new one.
pub fn forget(app: &App) {
    let key = format!("{}|{}|{}", app.token_url, app.tenant, app.client_id);
    CACHE.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

async fn fetch_token(app: &App) -> Result<(Secret, i64)> {
    let body = form_encode(&[
        ("client_id", &app.client_id),
        ("client_secret", app.client_secret.expose()),
        ("scope", SCOPE),
        ("grant_type", "client_credentials"),
    ]);
    let (status, response) =
        post_form(&app.token_url, &body).await.with_context(|| format!("cannot reach the token endpoint {}", app.token_url))?;
    let json: Value = serde_json::from_slice(&response).unwrap_or(Value::Null);
    if status != 200 {
        let code = json.get("error").and_then(Value::as_str).unwrap_or("");
        let description = json.get("error_description").and_then(Value::as_str).unwrap_or("").lines().next().unwrap_or("");
        let advice = match code {
            "invalid_client" => "the client secret is wrong or expired: make a new secret in the app registration and set it again",
            "unauthorized_client" => {
                "the app is not allowed this grant: check the client id and that the app registration exists in this tenant"
            }
            "invalid_request" if description.contains("AADSTS90002") => "the tenant id is wrong",
            "invalid_scope" => "the app lacks Office 365 Exchange Online permissions: add IMAP.AccessAsApp and grant admin consent",
            _ => "check the tenant id, client id and secret in the app registration",
        };
        bail!("Microsoft 365 refused the app's token request (HTTP {status}, {code}: {description}): {advice}");
    }
    let token =
        json.get("access_token").and_then(Value::as_str).ok_or_else(|| anyhow!("the token endpoint answered without an access_token"))?;
    let lifetime = json.get("expires_in").and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).unwrap_or(3600);
    Ok((Secret::new(token), lifetime.max(60)))
}

/// One HTTP/1.1 POST of a form; returns the status and body. Plain `http://` only to loopback.
async fn post_form(url: &str, body: &str) -> Result<(u16, Vec<u8>)> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| anyhow!("token URL {url:?} has no scheme"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.to_string(), p.parse().map_err(|_| anyhow!("bad port in {url}"))?)
        }
        _ => (authority.to_string(), if scheme == "https" { 443 } else { 80 }),
    };
    let tls = match scheme {
        "https" => TlsMode::Implicit,
        "http" => TlsMode::Plain,
        other => bail!("token URL scheme {other:?} is not http or https"),
    };
    let endpoint = Endpoint { host: host.clone(), port, tls, pin_sha256: None };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: postflytt/{}\r\n\r\n{body}",
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    let mut stream = crate::imap::raw_connect(&endpoint).await?;
    let io = async {
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut response = Vec::new();
        // A token answer is a few KB; more is not a token endpoint.
        (&mut stream).take(1 << 20).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let timeout = async {
        smol::Timer::after(Duration::from_secs(30)).await;
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 30 s"))
    };
    let response = smol::future::or(io, timeout).await?;
    parse_response(&response)
}

/// Status and body of an HTTP/1.1 response (Content-Length, chunked, or until close).
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow!("the token endpoint sent no complete HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("the token endpoint sent no HTTP status"))?;
    let headers: BTreeMap<String, String> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(len) = headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.truncate(len);
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow!("bad chunked body"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| anyhow!("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunked body");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(form_encode(&[("a b", "x/y&z")]), "a+b=x%2Fy%26z");
    }

    #[test]
    fn responses() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let (s, b) = parse_response(b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((s, b.as_slice()), (400, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
    }
}
