//! Hrefs as DAV servers write them, made comparable (quirk `dav_href_forms`, docs/dav.md §5: servers
//! give an href as a full URL or as a path, and percent-encode differently between a listing and a
//! request, per Net::DAVTalk's notes), and the names we give what we create on the target: an item's
//! last path segment (§3, chosen before its PUT so a crash leaves a known place to look) and a new
//! collection's segment from its display name.

use sha2::{Digest, Sha256};

/// The longest item name taken over from the source as it is (design §3).
const ITEM_NAME_MAX: usize = 120;
/// The longest collection segment made from a display name.
const SLUG_MAX: usize = 64;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters kept as they are in a path besides the unreserved ones (RFC 3986 §3.3 pchar and '/').
fn path_char(b: u8) -> bool {
    unreserved(b) || matches!(b, b'/' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@')
}

/// `scheme://authority` lowercased with a default port left out, and the rest (the path).
fn split_url(url: &str) -> Option<(String, &str)> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", &url[8..])
    } else if lower.starts_with("http://") {
        ("http", &url[7..])
    } else {
        return None;
    };
    let slash = rest.find('/').unwrap_or(rest.len());
    let mut authority = rest[..slash].to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    if authority.ends_with(default) {
        authority.truncate(authority.len() - default.len());
    }
    Some((format!("{scheme}://{authority}"), &rest[slash..]))
}

/// Quirk `xandikos_escaped_url_href` (xandikos 0.2.8): in the multistatus of a refused PUT it writes the
/// request's href as a full URL with its colons percent-encoded (`http%3A//127.0.0.1%3A25233/...`).
fn unescape_url_colons(href: &str) -> Option<String> {
    let lower = href.get(..10).unwrap_or(href).to_ascii_lowercase();
    if !(lower.starts_with("http%3a//") || lower.starts_with("https%3a//")) {
        return None;
    }
    let scheme_end = href.find('%')?;
    let rest = &href[scheme_end + 3..];
    let slash = rest.get(2..).and_then(|r| r.find('/')).map(|i| i + 2).unwrap_or(rest.len());
    let authority = rest[..slash].replace("%3A", ":").replace("%3a", ":");
    Some(format!("{}:{}{}", &href[..scheme_end], authority, &rest[slash..]))
}

/// A path in one form: unreserved characters percent-decoded, other escapes with upper-case hex,
/// characters a path may not hold raw (spaces, non-ASCII) encoded. None for a malformed escape or a
/// `.`/`..` segment.
fn normalise_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if unreserved(v) {
                out.push(v as char);
            } else {
                out.push_str(&format!("%{v:02X}"));
            }
            i += 3;
            continue;
        }
        if path_char(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    if out.split('/').any(|seg| seg == "." || seg == "..") {
        return None;
    }
    Some(out)
}

/// An href as a path on the server at `origin` (`http://127.0.0.1:5232`): a full URL of that origin
/// becomes its path, one of another origin None (we never follow a member elsewhere), a path stays.
/// Percent-decodes only unreserved characters and upper-cases the remaining escapes; `..` is refused
/// (None), not resolved; a relative href (no leading `/`) is None.
pub fn normalise(href: &str, origin: &str) -> Option<String> {
    let href = href.trim();
    let unescaped = unescape_url_colons(href);
    let href = unescaped.as_deref().unwrap_or(href);
    let path = match split_url(href) {
        Some((their_origin, path)) => {
            let (ours, _) = split_url(origin.trim_end_matches('/'))?;
            if their_origin != ours {
                return None;
            }
            if path.is_empty() { "/" } else { path }
        }
        None => href,
    };
    if !path.starts_with('/') {
        return None;
    }
    // A query or fragment is no part of a resource's name in a listing.
    let path = path.split(['?', '#']).next().unwrap_or(path);
    normalise_path(path)
}

/// Whether two hrefs name the same resource: equal after normalising, ignoring one trailing slash. Full
/// URLs are compared by origin too when both are URLs; a URL and a path by path.
pub fn same(a: &str, b: &str) -> bool {
    let form = |h: &str| -> Option<(Option<String>, String)> {
        let h = h.trim();
        let unescaped = unescape_url_colons(h);
        let h = unescaped.as_deref().unwrap_or(h);
        match split_url(h) {
            Some((origin, _)) => Some((Some(origin.clone()), normalise(h, &origin)?)),
            None => Some((None, normalise(h, "http://localhost")?)),
        }
    };
    let (Some((oa, pa)), Some((ob, pb))) = (form(a), form(b)) else { return false };
    if let (Some(oa), Some(ob)) = (&oa, &ob)
        && oa != ob
    {
        return false;
    }
    let trim = |p: &str| -> Vec<u8> { decoded_for_comparing(p.strip_suffix('/').filter(|s| !s.is_empty()).unwrap_or(p)) };
    trim(&pa) == trim(&pb)
}

/// A key naming a resource whatever form of its href a server wrote (`dav_href_forms`): normalised, one
/// trailing slash dropped, every escape but `%2F` decoded. For comparing and matching only: never sent.
pub fn canonical(href: &str) -> String {
    let path = normalise(href, "http://localhost").unwrap_or_else(|| href.to_string());
    let path = path.strip_suffix('/').filter(|s| !s.is_empty()).unwrap_or(&path);
    String::from_utf8_lossy(&decoded_for_comparing(path)).into_owned()
}

/// A path with every escape decoded but `%2F` (an escaped slash is part of a name, not a level): servers
/// echo `@` as `%40` or `+` as `%2B` in one answer and not in another (`dav_href_forms`), and both
/// name the same resource.
fn decoded_for_comparing(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten()
            .filter(|&b| b != b'/');
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The href with exactly one trailing `/`.
pub fn as_collection(href: &str) -> String {
    format!("{}/", href.trim_end_matches('/'))
}

/// The last path segment: `abc.ics` of `/u/cal/abc.ics`, `cal` of `/u/cal/`.
pub fn last_segment(href: &str) -> &str {
    let trimmed = href.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// An item's name in its target collection (design §3): the source's last segment when it is safe
/// (unreserved characters only, at most 120 bytes, ends in `extension` such as ".ics", does not begin
/// with `.`, which Radicale refuses as a file name), else the first 32 hex digits of SHA-256 of the UID
/// plus the extension.
pub fn item_name(source_href: &str, uid: &str, extension: &str) -> String {
    let seg = last_segment(source_href);
    let safe = seg.len() <= ITEM_NAME_MAX
        && seg.len() > extension.len()
        && seg.ends_with(extension)
        && !seg.starts_with('.')
        && seg.bytes().all(unreserved);
    if safe {
        return seg.to_string();
    }
    let digest = Sha256::digest(uid.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{extension}", &hex[..32])
}

/// The ASCII letters a Latin letter with a mark (or a ligature) is written with in a URL segment.
fn ascii_of(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' | 'ľ' | 'ĺ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' | 'ŕ' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'ť' | 'ţ' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// A collection's target path segment from its display name: lowercase ASCII letters, digits and
/// single `-` (å, ä → a, ö → o, é → e, ...), at most 64 bytes. "" when nothing is left (a name of only
/// symbols or another script): the caller chooses a name then.
pub fn slug(displayname: &str) -> String {
    let mut out = String::new();
    for c in displayname.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if let Some(s) = ascii_of(c) {
            out.push_str(s);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= SLUG_MAX {
            break;
        }
    }
    out.truncate(SLUG_MAX);
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dav_href_forms_compare_escaped_and_plain_alike_but_not_an_escaped_slash() {
        assert!(same("/anna%40gammal.se/jobb/a.ics", "/anna@gammal.se/jobb/a.ics"));
        assert!(same("/u/c/a%2Bb.vcf", "/u/c/a+b.vcf"));
        assert!(same("/u/%C3%A5r/", "/u/år"));
        assert!(!same("/u/a%2Fb.ics", "/u/a/b.ics"));
        assert!(!same("/u/a.ics", "/u/b.ics"));
    }

    const ORIGIN: &str = "http://127.0.0.1:5232";

    #[test]
    fn dav_href_forms_normalise() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            // A path stays a path.
            ("paths stay", "/anna/jobb/a.ics", Some("/anna/jobb/a.ics")),
            // Full URL of the server's own origin: its path (Net::DAVTalk: "some servers give hrefs" as URLs).
            ("own url", "http://127.0.0.1:5232/anna/jobb/", Some("/anna/jobb/")),
            ("own url, scheme and host case", "HTTP://127.0.0.1:5232/anna/", Some("/anna/")),
            ("own url, no path", "http://127.0.0.1:5232", Some("/")),
            ("default port", "https://dav.example.com:443/x/", None),
            ("other origin", "http://example.com/anna/jobb/", None),
            ("other port", "http://127.0.0.1:5233/anna/", None),
            // Percent-encoding differs between servers: unreserved decoded, the rest upper-case hex.
            ("unreserved decoded", "/anna/%6a%6Fbb/%7Ea%2Db.ics", Some("/anna/jobb/~a-b.ics")),
            ("reserved kept, hex upper", "/anna/a%2fb%c3%a5.ics", Some("/anna/a%2Fb%C3%A5.ics")),
            ("raw non-ASCII and space encoded", "/anna/Åsa kalender/", Some("/anna/%C3%85sa%20kalender/")),
            ("sub-delims kept", "/anna/a@b+c,d.ics", Some("/anna/a@b+c,d.ics")),
            ("query dropped", "/anna/a.ics?x=1", Some("/anna/a.ics")),
            // Refused: dot segments (even encoded), malformed escapes, relative hrefs.
            ("dot dot", "/anna/../bertil/", None),
            ("encoded dot dot", "/anna/%2e%2e/bertil/", None),
            ("single dot", "/anna/./x", None),
            ("bad escape", "/anna/%zz.ics", None),
            ("short escape", "/anna/%4", None),
            ("relative", "jobb/a.ics", None),
            ("empty", "", None),
            // Quirk xandikos_escaped_url_href: recorded from xandikos 0.2.8's refused PUT.
            (
                "xandikos escaped colons",
                "http%3A//127.0.0.1%3A5232/anna/calendars/jobb/annat-namn.ics",
                Some("/anna/calendars/jobb/annat-namn.ics"),
            ),
            ("xandikos escaped, other origin", "http%3A//127.0.0.1%3A9/anna/", None),
        ];
        for (what, href, want) in cases {
            assert_eq!(normalise(href, ORIGIN).as_deref(), *want, "{what}: {href}");
        }
        assert_eq!(normalise("https://dav.example.com:443/x/", "https://dav.example.com").as_deref(), Some("/x/"));
        assert_eq!(normalise("https://dav.example.com/x/", "https://dav.example.com:443/").as_deref(), Some("/x/"));
    }

    #[test]
    fn dav_href_forms_same() {
        assert!(same("/anna/jobb/", "/anna/jobb"));
        assert!(same("/anna/jobb/", "http://127.0.0.1:5232/anna/%6Aobb/"));
        assert!(same("/anna/%c3%a5/", "/anna/å"));
        assert!(same("/", "/"));
        assert!(!same("/anna/jobb/", "/anna/jobb//"), "only one trailing slash is ignored");
        assert!(!same("http://a.example/x/", "http://b.example/x/"));
        assert!(!same("/anna/jobb/", "/anna/jobb2/"));
        assert!(!same("/anna/../x", "/x"), "refused hrefs are never the same");
    }

    #[test]
    fn segments_and_parents() {
        assert_eq!(as_collection("/anna/jobb"), "/anna/jobb/");
        assert_eq!(as_collection("/anna/jobb//"), "/anna/jobb/");
        assert_eq!(last_segment("/u/cal/abc.ics"), "abc.ics");
        assert_eq!(last_segment("/u/cal/"), "cal");
    }

    #[test]
    fn item_names() {
        assert_eq!(item_name("/anna/jobb/veckomote.ics", "u", ".ics"), "veckomote.ics");
        assert_eq!(item_name("/anna/kontakter/asa-oberg.vcf", "u", ".vcf"), "asa-oberg.vcf");
        let hashed = item_name("/anna/jobb/m%C3%B6te.ics", "veckomote-7f3a@postflytt.test", ".ics");
        assert_eq!(hashed.len(), 36, "{hashed}");
        assert!(hashed.ends_with(".ics") && hashed[..32].bytes().all(|b| b.is_ascii_hexdigit()), "{hashed}");
        // Same UID, same name: the name is chosen again the same way after a crash.
        assert_eq!(hashed, item_name("/other/x y.ics", "veckomote-7f3a@postflytt.test", ".ics"));
        for unsafe_href in ["/a/b.ICS", "/a/b.vcf", "/a/.hidden.ics", "/a/.ics", "/a/b@c.ics", "/a/"] {
            assert_ne!(item_name(unsafe_href, "u", ".ics"), last_segment(unsafe_href), "{unsafe_href}");
        }
        let long = format!("/a/{}.ics", "x".repeat(116));
        assert_eq!(item_name(&long, "u", ".ics").len(), 120, "120 bytes is taken");
        let longer = format!("/a/{}.ics", "x".repeat(117));
        assert_eq!(item_name(&longer, "u", ".ics").len(), 36);
    }

    #[test]
    fn slugs() {
        let cases = [
            ("Jobb", "jobb"),
            ("Jobb & fritid", "jobb-fritid"),
            ("Ängelholms Bygg AB", "angelholms-bygg-ab"),
            ("Åsa Öberg", "asa-oberg"),
            ("Café Ærø Straße", "cafe-aero-strasse"),
            ("  --Möten 2027!! ", "moten-2027"),
            ("日本語", ""),
            ("", ""),
        ];
        for (name, want) in cases {
            assert_eq!(slug(name), want, "{name}");
        }
        assert_eq!(slug(&"a".repeat(200)).len(), SLUG_MAX);
    }
}
