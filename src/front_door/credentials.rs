//! Who is asking, decided at the front door: the operator token (only in `Authorization`), the
//! customer's viewer code (its alphabet, form and normalisation), and the one guessing limit for all
//! addresses together, under which no viewer code is even compared.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Door, Head, Refusal, Role};

/// Compares without stopping at the first difference, so timing does not leak the secret.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The viewer code's letters: no 0/O, 1/I/L, so one read aloud or from paper is typed right.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// 31^10 is about 8.2e14 codes: at the guessing limit below (one wrong guess a second for all
/// addresses together) a year of guessing finds it with a chance of about 4 in 100 million.
pub const CODE_LENGTH: usize = 10;

/// A new viewer code from `random` bytes (one per character), grouped for reading: `ABCDE-23456`.
pub fn new_viewer_code(random: &[u8; CODE_LENGTH * 2]) -> String {
    // Two bytes per character keep the modulo bias below 0.05 %.
    let letters: String = random
        .chunks(2)
        .map(|pair| CODE_ALPHABET[(usize::from(pair[0]) << 8 | usize::from(pair[1])) % CODE_ALPHABET.len()] as char)
        .collect();
    group_viewer_code(&letters)
}

/// `ABCDE23456` as it is shown and written: `ABCDE-23456`.
pub fn group_viewer_code(code: &str) -> String {
    let half = code.len() / 2;
    if code.len() == CODE_LENGTH && code.is_char_boundary(half) { format!("{}-{}", &code[..half], &code[half..]) } else { code.to_string() }
}

/// A viewer code as typed or pasted (`abcde 23456`, `ABCDE-23456`) in the form compared: letters and
/// digits only, upper case.
pub fn normalize_viewer_code(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

/// Whether a stored code is of the current kind (a six-digit one from before is replaced at start).
pub fn is_current_viewer_code(code: &str) -> bool {
    let code = normalize_viewer_code(code);
    code.len() == CODE_LENGTH && code.bytes().all(|b| CODE_ALPHABET.contains(&b))
}

/// A bucket of allowed wrong guesses that refills at a steady rate.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket { tokens: capacity, at: now }
    }

    fn refill(&mut self, capacity: f64, per_second: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
    }

    fn seconds_to_one(&self, per_second: f64) -> u64 {
        ((1.0 - self.tokens).max(0.0) / per_second).ceil() as u64
    }
}

/// Wrong credentials allowed: `ADDRESS_BURST` from one address, then one per `1/ADDRESS_RATE` s; and
/// `GLOBAL_BURST` from all addresses together, then `GLOBAL_RATE` a second. While either is used up,
/// a viewer code is not even compared (the 192-bit operator token still is: guessing it is hopeless,
/// and staff must be able to act while someone guesses). Addresses kept: at most `MAX_ADDRESSES`.
const ADDRESS_BURST: f64 = 20.0;
const ADDRESS_RATE: f64 = 1.0 / 6.0;
const GLOBAL_BURST: f64 = 60.0;
const GLOBAL_RATE: f64 = 1.0;
const MAX_ADDRESSES: usize = 4096;
/// Addresses that showed the right viewer code lately are still compared while the limit for all
/// addresses together is used up (under their own limit): otherwise anyone could keep every customer
/// off the page by guessing one code a second. At most `MAX_KNOWN` of them, for `KNOWN_FOR`.
const MAX_KNOWN: usize = 256;
const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub struct Limiter {
    global: Bucket,
    by_address: BTreeMap<IpAddr, Bucket>,
    known: BTreeMap<IpAddr, Instant>,
}

/// The address the limits count by: an IPv6 host picks its own address within its /64 at will.
fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & (u128::MAX << 64))),
        },
        v4 => v4,
    }
}

impl Limiter {
    pub fn new(now: Instant) -> Limiter {
        Limiter { global: Bucket::full(GLOBAL_BURST, now), by_address: BTreeMap::new(), known: BTreeMap::new() }
    }

    /// None while guesses are allowed from `address`; else the seconds until the next one is.
    pub fn limited(&mut self, address: IpAddr, now: Instant) -> Option<u64> {
        let address = counted_as(address);
        self.global.refill(GLOBAL_BURST, GLOBAL_RATE, now);
        let known = self.known.get(&address).is_some_and(|&at| now.saturating_duration_since(at) < KNOWN_FOR);
        let mut wait = if self.global.tokens < 1.0 && !known { self.global.seconds_to_one(GLOBAL_RATE) } else { 0 };
        if let Some(bucket) = self.by_address.get_mut(&address) {
            bucket.refill(ADDRESS_BURST, ADDRESS_RATE, now);
            if bucket.tokens < 1.0 {
                wait = wait.max(bucket.seconds_to_one(ADDRESS_RATE));
            }
        }
        (wait > 0).then_some(wait)
    }

    /// Remembers that `address` showed the right viewer code.
    pub fn succeeded(&mut self, address: IpAddr, now: Instant) {
        let address = counted_as(address);
        if !self.known.contains_key(&address) && self.known.len() >= MAX_KNOWN {
            self.known.retain(|_, &mut at| now.saturating_duration_since(at) < KNOWN_FOR);
            if self.known.len() >= MAX_KNOWN
                && let Some(oldest) = self.known.iter().min_by_key(|(_, at)| **at).map(|(a, _)| *a)
            {
                self.known.remove(&oldest);
            }
        }
        self.known.insert(address, now);
    }

    /// Counts one wrong credential from `address`.
    pub fn failed(&mut self, address: IpAddr, now: Instant) {
        let address = counted_as(address);
        self.global.refill(GLOBAL_BURST, GLOBAL_RATE, now);
        self.global.tokens = (self.global.tokens - 1.0).max(0.0);
        if !self.by_address.contains_key(&address) && self.by_address.len() >= MAX_ADDRESSES {
            self.forget_some(now);
        }
        let bucket = self.by_address.entry(address).or_insert_with(|| Bucket::full(ADDRESS_BURST, now));
        bucket.refill(ADDRESS_BURST, ADDRESS_RATE, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    /// Makes room in the table: an address whose bucket has refilled is the same as one never seen;
    /// if none has, the one quiet longest goes.
    fn forget_some(&mut self, now: Instant) {
        // Refilled on a copy: refilling moves `at` to now, and `at` says who was quiet longest.
        self.by_address.retain(|_, b| {
            let mut refilled = *b;
            refilled.refill(ADDRESS_BURST, ADDRESS_RATE, now);
            refilled.tokens < ADDRESS_BURST
        });
        if self.by_address.len() >= MAX_ADDRESSES
            && let Some(oldest) = self.by_address.iter().min_by_key(|(_, b)| b.at).map(|(a, _)| *a)
        {
            self.by_address.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.by_address.len()
    }
}

/// Who is asking: the role decided from the head, or a refusal (429 while guessing is limited).
pub fn decide_role(door: &Door, head: &Head, address: IpAddr, limiter: &mut Limiter, now: Instant) -> Result<Role, Refusal> {
    let bearer = head.header("authorization").map(|a| match a.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => a.trim(),
    });
    // A code in the query only for reading (`/report?code=` so that a plain link works); the
    // operator token only ever in the Authorization header.
    let from_query =
        if head.method == "GET" || head.method == "HEAD" { super::parse_query(&head.target).1.get("code").cloned() } else { None };
    let code = head.header("x-viewer-code").map(str::to_string).or(from_query);
    if bearer.is_none() && code.is_none() {
        return Ok(Role::Nobody);
    }
    if let Some(token) = bearer
        && same(token, &door.operator_token)
    {
        return Ok(Role::Operator);
    }
    if let Some(wait) = limiter.limited(address, now) {
        return Err(Refusal {
            status: 429,
            message: "too many wrong codes or tokens; wait a minute and try again".into(),
            retry_after: Some(wait.max(1)),
        });
    }
    // One candidate per request, so each comparison is counted: the code's own header (or the
    // query), else the bearer value.
    let candidate = code.as_deref().or(bearer).map(normalize_viewer_code).unwrap_or_default();
    if same(&candidate, &door.viewer_code) {
        limiter.succeeded(address, now);
        return Ok(Role::Viewer);
    }
    limiter.failed(address, now);
    log::warn!("http: wrong credential from {address} for {}", head.target.split('?').next().unwrap_or_default());
    Ok(Role::Wrong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front_door::{Backend, Names};

    #[test]
    fn viewer_codes() {
        let code = new_viewer_code(&[7u8; 20]);
        assert_eq!(code.len(), CODE_LENGTH + 1);
        assert_eq!(&code[5..6], "-");
        assert!(is_current_viewer_code(&code));
        assert_eq!(normalize_viewer_code(" abcde 23456\n"), "ABCDE23456");
        assert_eq!(normalize_viewer_code("ABCDE-23456"), "ABCDE23456");
        assert!(!is_current_viewer_code("123456"));
        assert!(!is_current_viewer_code("ABCDE-2345O"), "O is not in the alphabet");
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..=255u8 {
            let mut random = [0u8; 20];
            random.iter_mut().enumerate().for_each(|(j, b)| *b = i.wrapping_mul(31).wrapping_add((j as u8).wrapping_mul(17)));
            seen.insert(new_viewer_code(&random));
        }
        assert!(seen.len() > 250);
    }

    fn door() -> Door {
        Door {
            operator_token: "t".repeat(48),
            viewer_code: "ABCDE23456".into(),
            names: Names::new(&"127.0.0.1:8025".parse().unwrap(), &[]),
            backend: Backend::Tcp("127.0.0.1:1".parse().unwrap()),
            door_secret: "s".into(),
            uploads: Default::default(),
        }
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Head {
        Head {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn roles() {
        let door = door();
        let now = Instant::now();
        let mut limiter = Limiter::new(now);
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let token = format!("Bearer {}", "t".repeat(48));
        for (head, role) in [
            (request("GET", "/api/status", &[]), Role::Nobody),
            (request("GET", "/api/status", &[("authorization", &token)]), Role::Operator),
            (request("GET", "/api/status", &[("x-viewer-code", "abcde-23456")]), Role::Viewer),
            (request("GET", "/api/status", &[("authorization", "Bearer ABCDE23456")]), Role::Viewer),
            (request("GET", "/report?code=ABCDE-23456", &[]), Role::Viewer),
            // The operator token only in the header; a viewer code in the query only for reading.
            (request("GET", &format!("/api/status?code={}", "t".repeat(48)), &[]), Role::Wrong),
            (request("POST", "/api/check?code=ABCDE23456", &[]), Role::Nobody),
            (request("GET", "/api/status", &[("x-viewer-code", "ABCDE23457")]), Role::Wrong),
        ] {
            assert_eq!(decide_role(&door, &head, ip, &mut limiter, now), Ok(role), "{head:?}");
        }
    }

    #[test]
    fn guessing_is_limited_for_everyone_and_nothing_is_compared_meanwhile() {
        let door = door();
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        let guess = request("GET", "/api/status", &[("x-viewer-code", "ZZZZZ22222")]);
        let right = request("GET", "/api/status", &[("x-viewer-code", "ABCDE23456")]);
        let operator = request("GET", "/api/status", &[("authorization", &format!("Bearer {}", "t".repeat(48)))]);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..ADDRESS_BURST as usize {
            assert_eq!(decide_role(&door, &guess, one, &mut limiter, start), Ok(Role::Wrong));
        }
        // The address is limited: even the right code is not compared, and no right guess clears it.
        let refused = decide_role(&door, &right, one, &mut limiter, start).unwrap_err();
        assert_eq!(refused.status, 429);
        assert!(refused.retry_after.unwrap() >= 1);
        assert_eq!(decide_role(&door, &operator, one, &mut limiter, start), Ok(Role::Operator));
        // Many addresses together (an office behind one NAT, or a guesser with many) share one limit.
        let mut wrong = ADDRESS_BURST as usize;
        for i in 0..100u32 {
            let address = IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
            if decide_role(&door, &guess, address, &mut limiter, start).is_ok() {
                wrong += 1;
            }
        }
        assert_eq!(wrong, 60, "the global burst");
        let other: IpAddr = "10.9.9.9".parse().unwrap();
        assert_eq!(decide_role(&door, &right, other, &mut limiter, start).unwrap_err().status, 429);
        // A second later one more guess is allowed in all.
        let later = start + Duration::from_secs(1);
        let third: IpAddr = "10.9.9.10".parse().unwrap();
        assert_eq!(decide_role(&door, &guess, third, &mut limiter, later), Ok(Role::Wrong));
        assert_eq!(decide_role(&door, &right, third, &mut limiter, later).unwrap_err().status, 429);
        // Over a day, at most about one wrong guess a second gets compared.
        let mut compared = 0u64;
        let mut at = later;
        for _ in 0..86_400 * 4 {
            at += Duration::from_millis(250);
            if decide_role(&door, &guess, IpAddr::from([10, 2, 0, (compared % 200) as u8]), &mut limiter, at).is_ok() {
                compared += 1;
            }
        }
        assert!(compared <= 86_400 + 60, "{compared}");
    }

    #[test]
    fn customers_who_showed_the_code_are_not_locked_out_by_guessers_elsewhere() {
        let door = door();
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        let customer: IpAddr = "192.168.1.20".parse().unwrap();
        let right = request("GET", "/api/status", &[("x-viewer-code", "ABCDE23456")]);
        let guess = request("GET", "/api/status", &[("x-viewer-code", "ZZZZZ22222")]);
        assert_eq!(decide_role(&door, &right, customer, &mut limiter, start), Ok(Role::Viewer));
        for i in 0..200u32 {
            let _ = decide_role(&door, &guess, IpAddr::from([10, 3, (i >> 8) as u8, i as u8]), &mut limiter, start);
        }
        let stranger: IpAddr = "192.168.1.21".parse().unwrap();
        assert_eq!(decide_role(&door, &right, stranger, &mut limiter, start).unwrap_err().status, 429);
        assert_eq!(decide_role(&door, &right, customer, &mut limiter, start), Ok(Role::Viewer));
        // Two candidates in one request are one comparison: the code's own header wins.
        let both = request("GET", "/api/status", &[("x-viewer-code", "ZZZZZ22222"), ("authorization", "Bearer ABCDE23456")]);
        assert_eq!(decide_role(&door, &both, customer, &mut limiter, start), Ok(Role::Wrong));
        // The scheme is case-insensitive.
        let lower = request("GET", "/api/status", &[("authorization", &format!("bearer {}", "t".repeat(48)))]);
        assert_eq!(decide_role(&door, &lower, stranger, &mut limiter, start), Ok(Role::Operator));
    }

    #[test]
    fn ipv6_hosts_count_by_their_64() {
        assert_eq!(counted_as("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(counted_as("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(counted_as("10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_address_table_stays_bounded() {
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        for i in 0..(MAX_ADDRESSES as u32 * 3) {
            limiter.failed(IpAddr::from(i.to_be_bytes()), start + Duration::from_millis(u64::from(i)));
        }
        assert!(limiter.addresses() <= MAX_ADDRESSES);
    }
}
