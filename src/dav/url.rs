//! A DAV server's address as the operator writes it (`setup --source-dav`, `source_dav` in the API):
//! `https://host[:port]/path`, `http://` only to loopback (tests, an SSH tunnel), or a bare host name,
//! which means `https://HOST/` and discovery through `/.well-known/` (RFC 6764). Parsed once into the
//! IMAP side's `Endpoint` (so TLS, pins and the loopback rule are the same code) and a path.

use anyhow::{Result, bail};

use crate::imap::{Endpoint, TlsMode};

/// The longest address taken: far more than any real one, short enough for a log line.
const URL_MAX: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavUrl {
    pub endpoint: Endpoint,
    /// The path, beginning with `/`, percent-encoded as given.
    pub path: String,
    /// Given as a bare host: the path is `/` and discovery starts at `/.well-known/`.
    pub bare_host: bool,
}

impl DavUrl {
    /// Parses an address. Credentials in it (`user:pass@`), queries and fragments are refused: logins
    /// come from the account list, and a password in a URL would end up in the settings in clear.
    pub fn parse(text: &str, pin_sha256: Option<String>) -> Result<DavUrl> {
        let text = text.trim();
        if text.is_empty() {
            bail!("the DAV address is empty: give e.g. https://dav.example.com/ or a host name");
        }
        if text.len() > URL_MAX || text.chars().any(|c| c.is_control() || c == ' ') {
            bail!("the DAV address is not a URL: give e.g. https://dav.example.com/");
        }
        let (tls, rest, bare_host) = if let Some(rest) = strip_prefix_ignore_case(text, "https://") {
            (TlsMode::Implicit, rest, false)
        } else if let Some(rest) = strip_prefix_ignore_case(text, "http://") {
            (TlsMode::Plain, rest, false)
        } else if text.contains("://") {
            bail!("the DAV address must begin with https:// (or http:// to a server on this machine)");
        } else {
            (TlsMode::Implicit, text, true)
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            bail!("the DAV address must not hold a login or password: the account list gives them");
        }
        if path.contains('?') || path.contains('#') {
            bail!("the DAV address must not hold a query (?) or fragment (#)");
        }
        if bare_host && path != "/" {
            bail!("the DAV address has a path but no https://: write https://{text}");
        }
        let (host, port) = split_host_port(authority, if tls == TlsMode::Plain { 80 } else { 443 })?;
        if tls == TlsMode::Plain && !crate::imap::plain_allowed(&host) {
            bail!("http:// (without TLS) is allowed only to a server on this machine; use https://{authority}{path}");
        }
        let endpoint = Endpoint { host, port, tls, pin_sha256 };
        Ok(DavUrl { endpoint, path: path.to_string(), bare_host })
    }

    /// `host:port` as the `Host` header carries it (the port left out when it is the scheme's own).
    pub fn authority(&self) -> String {
        let default = if self.endpoint.tls == TlsMode::Plain { 80 } else { 443 };
        let host = if self.endpoint.host.contains(':') { format!("[{}]", self.endpoint.host) } else { self.endpoint.host.clone() };
        if self.endpoint.port == default { host } else { format!("{host}:{}", self.endpoint.port) }
    }

    /// `https://host[:port]`: what an absolute href from this server begins with.
    pub fn origin(&self) -> String {
        let scheme = if self.endpoint.tls == TlsMode::Plain { "http" } else { "https" };
        format!("{scheme}://{}", self.authority())
    }
}

impl std::fmt::Display for DavUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    if text.len() >= prefix.len() && text.is_char_boundary(prefix.len()) && text[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&text[prefix.len()..])
    } else {
        None
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some(end) = rest.find(']') else { bail!("the DAV address has an unclosed [ in its host") };
        let port = rest[end + 1..].strip_prefix(':');
        (rest[..end].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')) {
        bail!("the DAV address has no valid host name");
    }
    let port = match port {
        None => default_port,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => bail!("the DAV address has a port that is not a number from 1 to 65535: {text:?}"),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_operators_write_them() {
        let url = DavUrl::parse("https://dav.Example.com/remote.php/dav/", None).unwrap();
        assert_eq!((url.endpoint.host.as_str(), url.endpoint.port, url.path.as_str()), ("dav.example.com", 443, "/remote.php/dav/"));
        assert_eq!(url.to_string(), "https://dav.example.com/remote.php/dav/");
        let url = DavUrl::parse("http://127.0.0.1:5232/", None).unwrap();
        assert_eq!((url.endpoint.tls, url.endpoint.port, url.authority()), (TlsMode::Plain, 5232, "127.0.0.1:5232".to_string()));
        let url = DavUrl::parse("mail.example.se", None).unwrap();
        assert!(url.bare_host);
        assert_eq!(url.to_string(), "https://mail.example.se/");
        let url = DavUrl::parse("https://[::1]:8443/dav", None).unwrap();
        assert_eq!((url.endpoint.host.as_str(), url.origin()), ("::1", "https://[::1]:8443".to_string()));
    }

    #[test]
    fn refuses_what_would_leak_or_mislead() {
        for (text, words) in [
            ("http://dav.example.com/", "only to a server on this machine"),
            ("https://kalle:hemligt@dav.example.com/", "must not hold a login"),
            ("ftp://dav.example.com/", "must begin with https://"),
            ("https://dav.example.com/?x=1", "query"),
            ("https://dav.example.com:0/", "port"),
            ("https://dav.example.com:99999/", "port"),
            ("dav.example.com/dav", "no https://"),
            ("", "empty"),
            ("https:///", "host"),
        ] {
            let error = DavUrl::parse(text, None).unwrap_err().to_string();
            assert!(error.contains(words), "{text}: {error}");
        }
    }
}
