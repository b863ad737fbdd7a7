//! The MX watcher for cutover and drain: which customer domains to watch (from account logins and
//! aliases), what their MX records say right now (asked over DNS with rsdns, from the configured
//! nameserver or the ones in /etc/resolv.conf, since rsdns reads no system configuration), whether
//! those records point at the new mail host, and a small state machine per domain that remembers
//! when that flipped, so the page can show "flipped at" and the drain phase can wait for every domain.
//! Pure parts (resolv.conf parsing, target matching, the flip tracker, IDN encoding) are plain
//! functions with table tests; only [`Resolver::mx`] does I/O.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rsdns::clients::smol::Client;
use rsdns::clients::{ClientConfig, ProtocolStrategy};
use rsdns::message::RCode;
use rsdns::records::Class;
use rsdns::records::data::Mx;
use serde::{Deserialize, Serialize};

/// Where the system's nameservers are listed. rsdns does not read it, so we do.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Upper bound on one nameserver's answer, UDP resends and TCP fallback included. Short, because a
/// nameserver that has not answered in 3 s on the customer's LAN is down, and the page should say so
/// rather than hang a status poll; the next round of checks asks again anyway.
const QUERY_LIFETIME: Duration = Duration::from_millis(3000);

/// An unanswered UDP query is sent once more after this long (one retry within [`QUERY_LIFETIME`]),
/// because a single lost datagram is common on busy office networks and should not show as an error.
const RESEND_AFTER: Duration = Duration::from_millis(1500);

/// The nameservers to ask about MX records, tried in order until one gives an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolver {
    nameservers: Vec<SocketAddr>,
}

/// What a nameserver said about a domain's MX records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MxStatus {
    /// The domain has MX records (`hosts` is not empty).
    Found,
    /// The domain exists but has no MX records (mail then goes to its A/AAAA address).
    NoMx,
    /// The nameserver says the domain does not exist (NXDOMAIN): often a typo in the account list.
    NoSuchDomain,
}

/// A domain's MX records, sorted by (preference, host); hosts lowercased without the trailing dot.
/// A "null MX" (RFC 7505: `MX 0 .`, the domain takes no mail) appears as the host ".".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MxAnswer {
    pub hosts: Vec<(u16, String)>,
    pub status: MxStatus,
}

impl MxAnswer {
    /// An answer with these (preference, host) records, normalized and sorted as [`Resolver::mx`] does.
    pub fn found(records: impl IntoIterator<Item = (u16, String)>) -> MxAnswer {
        let mut hosts: Vec<(u16, String)> = records.into_iter().map(|(p, h)| (p, normalize_host(&h))).collect();
        hosts.sort();
        hosts.dedup();
        let status = if hosts.is_empty() { MxStatus::NoMx } else { MxStatus::Found };
        MxAnswer { hosts, status }
    }

    fn empty(status: MxStatus) -> MxAnswer {
        MxAnswer { hosts: Vec::new(), status }
    }

    /// The answer in one line, e.g. "MX mx1.example (10), mx2.example (20)" or "no MX".
    pub fn describe(&self) -> String {
        match self.status {
            MxStatus::NoMx => "no MX".to_string(),
            MxStatus::NoSuchDomain => "no such domain".to_string(),
            MxStatus::Found => {
                let list: Vec<String> = self.hosts.iter().map(|(p, h)| format!("{h} ({p})")).collect();
                format!("MX {}", list.join(", "))
            }
        }
    }
}

impl Resolver {
    /// From a configured "IP" or "IP:PORT" (port 53 when left out; IPv6 as "2001:db8::53" or
    /// "[2001:db8::53]:5353"), or `None` for the nameservers in /etc/resolv.conf.
    pub fn new(configured: Option<&str>) -> Result<Resolver> {
        match configured {
            Some(text) => Ok(Resolver { nameservers: vec![parse_nameserver(text)?] }),
            None => {
                let text = std::fs::read_to_string(RESOLV_CONF)
                    .with_context(|| format!("cannot read {RESOLV_CONF} to find a nameserver for MX lookups: {HOW_TO_CONFIGURE}"))?;
                Resolver::from_resolv_conf(&text).context(RESOLV_CONF)
            }
        }
    }

    /// The `nameserver` lines of a resolv.conf text, IPv4 and IPv6, in file order. Comments (`#` or
    /// `;`) and every other option are ignored: search domains do not apply to the fully qualified
    /// customer domains we ask about.
    pub fn from_resolv_conf(text: &str) -> Result<Resolver> {
        let mut nameservers = Vec::new();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                continue;
            }
            let Some(addr) = words.next() else { continue };
            match parse_resolv_conf_address(addr) {
                Some(ns) if !nameservers.contains(&ns) => nameservers.push(ns),
                Some(_) => {}
                // glibc skips what it cannot parse too; say so, since it may be the only line.
                None => log::warn!("{RESOLV_CONF}: ignoring nameserver {addr:?}: not an IP address"),
            }
        }
        if nameservers.is_empty() {
            bail!("no usable `nameserver` line, so MX records cannot be looked up: {HOW_TO_CONFIGURE}");
        }
        Ok(Resolver { nameservers })
    }

    /// The nameservers in the order they are asked.
    #[cfg(test)]
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// The MX records of `domain` (an internationalized name is asked in its xn-- form). A domain
    /// without MX records or one that does not exist is an answer, not an error; an error means no
    /// nameserver answered (timeout, refused, SERVFAIL), and its message names the domain and every
    /// nameserver with what went wrong there.
    pub async fn mx(&self, domain: &str) -> Result<MxAnswer> {
        let name = normalize_host(domain);
        if name.is_empty() || name == "." {
            bail!("MX lookup: the domain name is empty");
        }
        let qname = ascii_domain(&name).ok_or_else(|| anyhow!("MX lookup for {domain}: {domain:?} is not a valid domain name"))?;
        let mut failures = Vec::new();
        for &ns in &self.nameservers {
            match query_mx(ns, &qname).await {
                Ok(answer) => {
                    if !failures.is_empty() {
                        log::warn!("MX lookup for {name}: answered by {ns} after {}", failures.join("; "));
                    }
                    return Ok(answer);
                }
                Err(why) => failures.push(format!("nameserver {ns}: {why}")),
            }
        }
        Err(anyhow!("MX lookup for {name} failed: {}", failures.join("; ")))
    }

    /// [`Resolver::mx`] for every domain at once, results in the given order: a watcher with a dead
    /// nameserver then takes one timeout per round, not one per domain.
    pub async fn mx_all(&self, domains: &[String]) -> Vec<Result<MxAnswer>> {
        let executor = smol::LocalExecutor::new();
        executor
            .run(async {
                let tasks: Vec<_> = domains.iter().map(|d| executor.spawn(self.mx(d))).collect();
                let mut results = Vec::with_capacity(tasks.len());
                for task in tasks {
                    results.push(task.await);
                }
                results
            })
            .await
    }
}

const HOW_TO_CONFIGURE: &str = "give the MX watcher a nameserver with --resolver IP[:PORT] \
     (e.g. --resolver 192.0.2.53), or add a line `nameserver IP` to /etc/resolv.conf";

fn parse_nameserver(text: &str) -> Result<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // A bare IPv6 address has colons too, so only after "IP:PORT" failed is it read as an address.
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(anyhow!(
            "resolver {text:?}: write the nameserver as an IP address with an optional port, e.g. \
             192.0.2.53, 192.0.2.53:5353, 2001:db8::53 or [2001:db8::53]:5353 (a host name would need \
             DNS to find DNS)"
        )),
    }
}

/// One address of a `nameserver` line: IPv4 or IPv6, always port 53. A link-local IPv6 address may
/// carry a zone ("fe80::1%2"); only a numeric zone can be kept, since turning an interface name into
/// an index needs a system call std does not offer.
fn parse_resolv_conf_address(text: &str) -> Option<SocketAddr> {
    let (ip, zone) = match text.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (text, None),
    };
    match (ip.parse::<IpAddr>().ok()?, zone) {
        (ip, None) => Some(SocketAddr::new(ip, 53)),
        (IpAddr::V6(v6), Some(zone)) => Some(SocketAddr::V6(SocketAddrV6::new(v6, 53, 0, zone.parse().ok()?))),
        (IpAddr::V4(_), Some(_)) => None,
    }
}

/// Asks one nameserver. The error text is for people: it is shown after the nameserver's address.
async fn query_mx(nameserver: SocketAddr, qname: &str) -> std::result::Result<MxAnswer, String> {
    let config = ClientConfig::with_nameserver(nameserver)
        .set_query_lifetime(QUERY_LIFETIME)
        .set_query_timeout(Some(RESEND_AFTER))
        // UDP first and TCP when the answer comes back truncated: a domain with many MX records (or a
        // nameserver that caps UDP at 512 bytes) would otherwise give a cut list.
        .set_protocol_strategy(ProtocolStrategy::Udp);
    let mut client = Client::new(config).await.map_err(dns_error_words)?;
    match client.query_rrset::<Mx>(qname, Class::IN).await {
        Ok(set) => Ok(MxAnswer::found(set.rdata.into_iter().map(|mx| (mx.preference, mx.exchange.as_str().to_string())))),
        // NOERROR without MX records in the answer (NODATA): the domain exists, mail goes to its A/AAAA.
        Err(rsdns::Error::NoAnswer) => Ok(MxAnswer::empty(MxStatus::NoMx)),
        Err(rsdns::Error::BadResponseCode(code)) if code == RCode::NXDOMAIN => Ok(MxAnswer::empty(MxStatus::NoSuchDomain)),
        Err(e) => Err(dns_error_words(e)),
    }
}

fn dns_error_words(e: rsdns::Error) -> String {
    match e {
        rsdns::Error::Timeout => format!("no answer within {} s", QUERY_LIFETIME.as_secs_f32()),
        // rsdns's own text for this is just "io error"; the OS error (e.g. connection refused: nothing
        // listens on that port) is the useful part.
        rsdns::Error::IoError(io) => io.to_string(),
        rsdns::Error::BadResponseCode(code) => format!("the nameserver answered {code}"),
        other => other.to_string(),
    }
}

/// Lowercase, surrounding space and the trailing root dot removed; the root itself stays ".", so a
/// null MX does not turn into an empty host.
fn normalize_host(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed == "." {
        return ".".to_string();
    }
    trimmed.trim_end_matches('.').to_lowercase()
}

/// Whether the answer points at the new mail host: every MX host of the most preferred (lowest)
/// preference matches one of the `target_mx` patterns. Backups at higher preferences do not count,
/// since mail only goes there when the preferred hosts are down; but all hosts that share the lowest
/// preference must match, since senders spread mail over them and an old one among them would still
/// receive part of it. Patterns are exact hosts ("mx.new.example") or, starting with "*." or ".",
/// any host strictly below that suffix ("*.mail.protection.outlook.com"); case does not matter, and
/// internationalized names match their xn-- form.
pub fn points_at(answer: &MxAnswer, target_mx: &[String]) -> bool {
    let Some(best) = answer.hosts.iter().map(|(p, _)| *p).min() else { return false };
    let patterns: Vec<Pattern> = target_mx.iter().filter_map(|p| Pattern::parse(p)).collect();
    answer.hosts.iter().filter(|(p, _)| *p == best).all(|(_, host)| {
        let host = ascii_domain(&normalize_host(host)).unwrap_or_default();
        !host.is_empty() && host != "." && patterns.iter().any(|pattern| pattern.matches(&host))
    })
}

enum Pattern {
    Exact(String),
    /// Stored with its leading dot, so "x.example" does not match the suffix ".ample".
    Below(String),
}

impl Pattern {
    /// `None` for patterns that would match everything ("*", ".", "*.") or nothing sensible, so a
    /// slip in the setting cannot make every domain look flipped.
    fn parse(text: &str) -> Option<Pattern> {
        let text = text.trim();
        let (below, rest) = if let Some(rest) = text.strip_prefix("*.") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix('.') {
            (true, rest)
        } else {
            (false, text)
        };
        let name = ascii_domain(&normalize_host(rest))?;
        if name.is_empty() || name == "." || name.contains('*') {
            return None;
        }
        Some(if below { Pattern::Below(format!(".{name}")) } else { Pattern::Exact(name) })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Pattern::Exact(name) => host == name,
            Pattern::Below(suffix) => host.ends_with(suffix.as_str()),
        }
    }
}

/// The domains to watch: the part after the last '@' of every login and alias, lowercased, without
/// a trailing dot, each once, sorted. Entries without '@' (a login that is just a user name) carry
/// no domain and are skipped.
pub fn domains<'a>(addresses: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    addresses
        .into_iter()
        .filter_map(|address| address.trim().rsplit_once('@'))
        .map(|(_, domain)| normalize_host(domain))
        .filter(|domain| !domain.is_empty() && domain != ".")
        .collect()
}

/// The domains the MX watch looks at: those of the logins and aliases (`domains`) and the ones the
/// operator added (`setup --watch-domain`, `watch_domains` in the API), for logins that are user
/// names rather than addresses.
pub fn watched_domains<'a>(addresses: impl IntoIterator<Item = &'a str>, added: &[String]) -> BTreeSet<String> {
    let mut all = domains(addresses);
    all.extend(added.iter().map(|d| normalize_host(d)).filter(|d| !d.is_empty() && d != "."));
    all
}

/// The last states of the watched domains, with a fresh (not yet looked up) one for each watched
/// domain the watch has not reached yet, so the status lists an added domain at once and it holds
/// `safe_to_finish` back until it is seen pointing at the target. States of domains no longer
/// watched are left out.
pub fn listed(states: Vec<DomainState>, watched: &BTreeSet<String>) -> Vec<DomainState> {
    let mut by_domain: std::collections::BTreeMap<String, DomainState> =
        states.into_iter().filter(|s| watched.contains(&s.domain)).map(|s| (s.domain.clone(), s)).collect();
    for domain in watched {
        by_domain.entry(domain.clone()).or_insert_with(|| DomainState::new(domain));
    }
    by_domain.into_values().collect()
}

/// A domain the operator asks to watch, as stored (lowercase, no trailing dot), or a sentence
/// saying why it is not one: a host name of at least two labels, letters, digits and hyphens (or
/// letters beyond ASCII, as in "företag.se"), each label 1 to 63 characters not starting or ending
/// with a hyphen, 253 at most in all. An address is refused with a hint, since its domain is meant.
pub fn check_domain(text: &str) -> std::result::Result<String, String> {
    let name = normalize_host(text);
    if let Some((_, domain)) = name.rsplit_once('@') {
        return Err(format!("{text:?} is an address; give its domain ({domain:?})"));
    }
    let ascii = ascii_domain(&name).filter(|a| !a.is_empty());
    let ok = ascii.as_deref().is_some_and(|a| {
        let labels: Vec<&str> = a.split('.').collect();
        a.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
    });
    if ok { Ok(name) } else { Err(format!("{text:?} is not a domain name: write it like kund.se or företag.se")) }
}

/// One domain on the cutover page: its MX hosts as last seen, whether they point at the target,
/// since when, and the last lookup error if the latest check failed. Times are Unix seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainState {
    pub domain: String,
    /// Host names in preference order (the preferences themselves are in the answer, not kept here).
    pub hosts: Vec<String>,
    pub points_at_target: bool,
    /// When `points_at_target` last went from false to true; `None` while it is false.
    pub flipped_at: Option<i64>,
    /// When `hosts` and `points_at_target` were last answered. A failed lookup does not move it, so the
    /// page can say how old the shown hosts are.
    pub checked_at: Option<i64>,
    /// Why the latest lookup failed; cleared by the next answer.
    pub error: Option<String>,
}

impl DomainState {
    pub fn new(domain: &str) -> DomainState {
        DomainState { domain: domain.to_string(), ..DomainState::default() }
    }

    /// Feeds one lookup result in. An answer replaces hosts and flag, sets `flipped_at` to `now` when
    /// the flag goes from false to true (a domain first seen already pointing at the target counts as
    /// flipping now: the appliance cannot know earlier), keeps it while the flag stays true, and
    /// clears it when the flag goes back to false (a DNS change undone, so the quiet period restarts).
    /// An error keeps everything the last answer said and only records the error: one failed lookup
    /// says nothing about the records, and must not restart the drain clock.
    pub fn observe(&mut self, answer: std::result::Result<&MxAnswer, &str>, target_mx: &[String], now: i64) {
        match answer {
            Ok(answer) => {
                let pointed = points_at(answer, target_mx);
                self.flipped_at = match (self.points_at_target, pointed) {
                    (_, false) => None,
                    (false, true) => Some(now),
                    // Still true: keep the flip time (a state from before flipped_at existed gets one now).
                    (true, true) => self.flipped_at.or(Some(now)),
                };
                self.points_at_target = pointed;
                self.hosts = answer.hosts.iter().map(|(_, h)| h.clone()).collect();
                self.checked_at = Some(now);
                self.error = None;
            }
            Err(error) => self.error = Some(error.to_string()),
        }
    }
}

/// `postflytt mx`: looks up each domain once and returns one line per domain, in the given order:
/// `DOMAIN: MX host1 (10), host2 (20) -> points at target: yes|no` (the arrow part only when target
/// patterns were given), `DOMAIN: no MX`, `DOMAIN: no such domain` or `DOMAIN: error: ...`. A failed
/// lookup is a line, not an error; only an unusable resolver setting or no domains is.
pub fn cli(resolver: Option<&str>, target_mx: &[String], domains: &[String]) -> Result<String> {
    if domains.is_empty() {
        bail!("name at least one domain, e.g. postflytt mx example.se");
    }
    let resolver = Resolver::new(resolver)?;
    let results = smol::block_on(resolver.mx_all(domains));
    let mut text = String::new();
    for (domain, result) in domains.iter().zip(results) {
        let name = normalize_host(domain);
        let line = match result {
            Ok(answer) if answer.status == MxStatus::Found && !target_mx.is_empty() => {
                let yes = if points_at(&answer, target_mx) { "yes" } else { "no" };
                format!("{name}: {} -> points at target: {yes}", answer.describe())
            }
            Ok(answer) => format!("{name}: {}", answer.describe()),
            Err(e) => format!("{name}: error: {e:#}"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// The ASCII (xn--) form of a domain name for the DNS query: each label with characters beyond ASCII
/// is Punycode-encoded (RFC 3492) behind "xn--". Swedish customers do have domains like
/// "företag.se", which rsdns would refuse as is. Labels are lowercased, not NFC-normalized: account
/// lists are typed or exported text, and composed å/ä/ö is what they hold. `None` if a label cannot
/// be encoded.
fn ascii_domain(name: &str) -> Option<String> {
    if name.is_ascii() {
        return Some(name.to_string());
    }
    let labels: Option<Vec<String>> = name
        .split('.')
        .map(|label| if label.is_ascii() { Some(label.to_string()) } else { punycode(label).map(|p| format!("xn--{p}")) })
        .collect();
    labels.map(|l| l.join("."))
}

/// RFC 3492 section 6.3, the encoder, with its parameters for IDNA (section 5).
fn punycode(label: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    let code_points: Vec<u32> = label.chars().map(u32::from).collect();
    let mut output: String = label.chars().filter(char::is_ascii).collect();
    let basic = output.len() as u32;
    let mut handled = basic;
    if basic > 0 {
        output.push('-');
    }
    let mut n: u32 = 128;
    let mut delta: u32 = 0;
    let mut bias: u32 = 72;
    let total = code_points.len() as u32;
    while handled < total {
        let next = code_points.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((next - n).checked_mul(handled + 1)?)?;
        n = next;
        for &c in &code_points {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    output.push(punycode_digit(t + (q - t) % (BASE - t))?);
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                output.push(punycode_digit(q)?);
                bias = punycode_adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(output)
}

fn punycode_digit(d: u32) -> Option<char> {
    match d {
        0..=25 => char::from_u32(u32::from(b'a') + d),
        26..=35 => char::from_u32(u32::from(b'0') + d - 26),
        _ => None,
    }
}

fn punycode_adapt(delta: u32, points: u32, first: bool) -> u32 {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    let mut delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((BASE - TMIN) * TMAX) / 2 {
        delta /= BASE - TMIN;
        k += BASE;
    }
    k + (BASE - TMIN + 1) * delta / (delta + SKEW)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(patterns: &[&str]) -> Vec<String> {
        patterns.iter().map(|p| p.to_string()).collect()
    }

    fn answer(records: &[(u16, &str)]) -> MxAnswer {
        MxAnswer::found(records.iter().map(|(p, h)| (*p, h.to_string())))
    }

    #[test]
    fn resolv_conf_takes_nameserver_lines_in_order_ipv4_and_ipv6() {
        let text = "# generated by NetworkManager\n\
                    search kontor.lan\n\
                    nameserver 192.168.1.1\n\
                    ;nameserver 10.9.9.9\n\
                    #nameserver 10.8.8.8\n\
                    \tnameserver   2001:db8::53   # the ISP's\n\
                    nameserver fe80::1%3\n\
                    nameserver fe80::2%eth0\n\
                    nameserver 192.168.1.1\n\
                    nameserver\n\
                    nameserver dns.example\n\
                    options edns0 timeout:1\n";
        let r = Resolver::from_resolv_conf(text).expect("has nameservers");
        let got: Vec<String> = r.nameservers().iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["192.168.1.1:53", "[2001:db8::53]:53", "[fe80::1%3]:53"]);
    }

    #[test]
    fn resolv_conf_without_nameserver_says_how_to_configure_one() {
        for text in ["", "# nothing\nsearch example.se\n", "; nameserver 1.1.1.1\n", "nameserver localhost\n"] {
            let e = Resolver::from_resolv_conf(text).expect_err(text);
            let msg = format!("{e:#}");
            assert!(msg.contains("--resolver") && msg.contains("nameserver IP"), "{msg}");
        }
    }

    #[test]
    fn configured_resolver_ip_or_ip_port() {
        let cases = [
            ("192.0.2.53", "192.0.2.53:53"),
            (" 127.0.0.1:5353 ", "127.0.0.1:5353"),
            ("2001:db8::53", "[2001:db8::53]:53"),
            ("[2001:db8::53]", "[2001:db8::53]:53"),
            ("[2001:db8::53]:5353", "[2001:db8::53]:5353"),
        ];
        for (text, want) in cases {
            let r = Resolver::new(Some(text)).expect(text);
            assert_eq!(r.nameservers().iter().map(|a| a.to_string()).collect::<Vec<_>>(), [want], "{text}");
        }
        for bad in ["dns.example", "192.0.2.53:dns", "", "1.2.3.4:99999"] {
            let e = Resolver::new(Some(bad)).expect_err(bad);
            assert!(format!("{e}").contains("192.0.2.53:5353"), "{e}");
        }
    }

    #[test]
    fn answers_are_sorted_lowercased_without_trailing_dot() {
        let a = answer(&[(20, "MX2.Old.Example."), (10, "mx1.old.example."), (10, "a.old.example"), (10, "mx1.old.example")]);
        assert_eq!(a.hosts, [(10, "a.old.example".to_string()), (10, "mx1.old.example".to_string()), (20, "mx2.old.example".to_string())]);
        assert_eq!(a.status, MxStatus::Found);
        assert_eq!(a.describe(), "MX a.old.example (10), mx1.old.example (10), mx2.old.example (20)");
        // RFC 7505 null MX keeps a visible host.
        assert_eq!(answer(&[(0, ".")]).hosts, [(0, ".".to_string())]);
        assert_eq!(answer(&[]).status, MxStatus::NoMx);
    }

    #[test]
    fn points_at_patterns() {
        let m365 = targets(&["*.mail.protection.outlook.com"]);
        let exact = targets(&["MX.New.Example."]);
        let dot = targets(&[".new.example"]);
        // (records, patterns, points at target)
        type Case<'a> = (&'a [(u16, &'a str)], &'a [String], bool);
        let cases: &[Case] = &[
            (&[(0, "kund-se.mail.protection.outlook.com.")], &m365, true),
            (&[(0, "KUND-SE.Mail.Protection.Outlook.com")], &m365, true),
            // The suffix itself is not below the suffix.
            (&[(0, "mail.protection.outlook.com")], &m365, false),
            // Only whole labels: "xmail.protection..." is not below "mail.protection...".
            (&[(0, "kund.xmail.protection.outlook.com")], &m365, false),
            (&[(10, "mx.new.example")], &exact, true),
            (&[(10, "mx2.new.example")], &exact, false),
            (&[(10, "a.mx.new.example")], &exact, false),
            (&[(10, "mx.new.example")], &dot, true),
            (&[(10, "new.example")], &dot, false),
            (&[(10, "mx.new.example.evil")], &dot, false),
            // Backups do not count; the most preferred host decides.
            (&[(10, "mx.new.example"), (20, "mx.old.example")], &exact, true),
            (&[(10, "mx.old.example"), (20, "mx.new.example")], &exact, false),
            // Equal preference: senders spread mail, so every one of them must be the target.
            (&[(10, "mx.new.example"), (10, "mx.old.example")], &exact, false),
            (&[(10, "a.new.example"), (10, "b.new.example"), (30, "mx.old.example")], &dot, true),
            (&[], &exact, false),
            (&[(0, ".")], &dot, false),
            (&[(10, "mx.new.example")], &[], false),
        ];
        for (records, patterns, want) in cases {
            assert_eq!(points_at(&answer(records), patterns), *want, "{records:?} vs {patterns:?}");
        }
    }

    #[test]
    fn points_at_ignores_patterns_that_would_match_everything() {
        let a = answer(&[(10, "mx.old.example")]);
        for p in ["*", "*.", ".", "", "  ", "*.*", "*.example.*"] {
            assert!(!points_at(&a, &targets(&[p])), "{p:?} matched");
        }
        assert!(points_at(&a, &targets(&["*", "mx.old.example"])));
    }

    #[test]
    fn points_at_matches_internationalized_patterns_by_their_xn_form() {
        let a = answer(&[(10, "mx.xn--fretag-wxa.se")]);
        assert!(points_at(&a, &targets(&["*.företag.se"])));
        assert!(points_at(&a, &targets(&["mx.FÖRETAG.se"])));
    }

    #[test]
    fn added_domains_join_the_derived_ones_and_show_before_their_first_lookup() {
        let watched = watched_domains(["justauser", "bob@kund.se"], &["Annat.SE.".to_string(), "kund.se".to_string()]);
        assert_eq!(watched.iter().map(String::as_str).collect::<Vec<_>>(), ["annat.se", "kund.se"]);
        let mut seen = DomainState::new("kund.se");
        seen.observe(Ok(&answer(&[(10, "mx.new.example")])), &targets(&["mx.new.example"]), 100);
        let gone = DomainState::new("borta.se");
        let list = listed(vec![seen.clone(), gone], &watched);
        assert_eq!(list, vec![DomainState::new("annat.se"), seen]);
    }

    #[test]
    fn watched_domain_names_are_checked() {
        for (text, stored) in
            [("kund.se", "kund.se"), (" Kund.SE. ", "kund.se"), ("Företag.se", "företag.se"), ("a-b.c.example", "a-b.c.example")]
        {
            assert_eq!(check_domain(text).as_deref(), Ok(stored), "{text:?}");
        }
        for (text, says) in [
            ("alice@kund.se", "is an address; give its domain (\"kund.se\")"),
            ("kund", "is not a domain name: write it like kund.se"),
            ("", "is not a domain name"),
            ("kund..se", "is not a domain name"),
            ("-kund.se", "is not a domain name"),
            ("kund_se.se", "is not a domain name"),
            ("*.kund.se", "is not a domain name"),
            ("kund.se/x", "is not a domain name"),
            ("10.0.0.1", "is not a domain name"),
            (&"a".repeat(64), "is not a domain name"),
        ] {
            let err = check_domain(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn domains_from_logins_and_aliases() {
        let addresses = [
            "alice@Kund.se",
            " bob@kund.se ",
            "info@KUND.SE.",
            "kontakt@dotter.kund.se",
            "\"odd@local\"@annat.se",
            "justauser",
            "trailing@",
            "säljare@Företag.se",
        ];
        let got: Vec<String> = domains(addresses).into_iter().collect();
        assert_eq!(got, ["annat.se", "dotter.kund.se", "företag.se", "kund.se"]);
        assert!(domains([]).is_empty());
    }

    #[test]
    fn flip_tracker() {
        let target = targets(&["mx.new.example"]);
        let old = answer(&[(10, "mx.old.example")]);
        let new = answer(&[(10, "mx.new.example"), (20, "mx.old.example")]);
        let mut s = DomainState::new("kund.se");

        s.observe(Ok(&old), &target, 100);
        assert_eq!((s.points_at_target, s.flipped_at, s.checked_at), (false, None, Some(100)));
        assert_eq!(s.hosts, ["mx.old.example"]);

        // false -> true: flipped now.
        s.observe(Ok(&new), &target, 200);
        assert_eq!((s.points_at_target, s.flipped_at, s.checked_at), (true, Some(200), Some(200)));
        assert_eq!(s.hosts, ["mx.new.example", "mx.old.example"]);

        // Stays true: the flip time stays.
        s.observe(Ok(&new), &target, 300);
        assert_eq!((s.points_at_target, s.flipped_at, s.checked_at), (true, Some(200), Some(300)));

        // An error keeps hosts, flag, flip and check time; it is recorded.
        s.observe(Err("MX lookup for kund.se failed: nameserver 127.0.0.1:53: no answer within 3 s"), &target, 400);
        assert_eq!((s.points_at_target, s.flipped_at, s.checked_at), (true, Some(200), Some(300)));
        assert_eq!(s.hosts, ["mx.new.example", "mx.old.example"]);
        assert!(s.error.as_deref().is_some_and(|e| e.contains("kund.se")));

        // The next answer clears the error; still true, still the same flip.
        s.observe(Ok(&new), &target, 500);
        assert_eq!((s.flipped_at, s.error.as_deref()), (Some(200), None));

        // true -> false (change undone): cleared.
        s.observe(Ok(&old), &target, 600);
        assert_eq!((s.points_at_target, s.flipped_at), (false, None));

        // Flips again later: the new time.
        s.observe(Ok(&new), &target, 700);
        assert_eq!((s.points_at_target, s.flipped_at), (true, Some(700)));

        // No MX at all, or no such domain, is "not at the target".
        s.observe(Ok(&MxAnswer::empty(MxStatus::NoSuchDomain)), &target, 800);
        assert_eq!((s.points_at_target, s.flipped_at, s.hosts.len()), (false, None, 0));
    }

    #[test]
    fn flip_tracker_first_seen_pointing_counts_as_flipped_now() {
        let target = targets(&["mx.new.example"]);
        let mut s = DomainState::new("kund.se");
        s.observe(Ok(&answer(&[(5, "mx.new.example")])), &target, 42);
        assert_eq!((s.points_at_target, s.flipped_at), (true, Some(42)));

        // An error before any answer: nothing known, the error shown.
        let mut t = DomainState::new("annat.se");
        t.observe(Err("boom"), &target, 1);
        assert_eq!((t.points_at_target, t.flipped_at, t.checked_at, t.error.as_deref()), (false, None, None, Some("boom")));

        // A stored state that says true but lacks a flip time gets one at the next answer.
        let mut u = DomainState { domain: "x.se".into(), points_at_target: true, ..DomainState::default() };
        u.observe(Ok(&answer(&[(5, "mx.new.example")])), &target, 9);
        assert_eq!(u.flipped_at, Some(9));
    }

    #[test]
    fn domain_state_round_trips_through_json() {
        let mut s = DomainState::new("kund.se");
        s.observe(Ok(&answer(&[(10, "mx.new.example")])), &targets(&["mx.new.example"]), 1_700_000_000);
        let json = serde_json::to_string(&s).expect("serialize");
        let back: DomainState = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
    }

    #[test]
    fn punycode_rfc3492_and_swedish_vectors() {
        let cases = [
            ("bücher", "bcher-kva"),
            ("münchen", "mnchen-3ya"),
            ("räksmörgås", "rksmrgs-5wao1o"),
            ("åre", "re-xia"),
            // RFC 3492 7.1 (L), Japanese, all non-ASCII.
            ("\u{3072}\u{3068}\u{3064}\u{5c4b}\u{6839}\u{306e}\u{4e0b}2", "2-u9tlzr9756bt3uc0v"),
            // RFC 3492 7.1 (A), Arabic (Egyptian).
            (
                "\u{0644}\u{064A}\u{0647}\u{0645}\u{0627}\u{0628}\u{062A}\u{0643}\u{0644}\u{0645}\u{0648}\u{0634}\u{0639}\u{0631}\u{0628}\u{064A}\u{061F}",
                "egbpdaj6bu4bxfgehfvwxn",
            ),
        ];
        for (label, want) in cases {
            assert_eq!(punycode(label).as_deref(), Some(want), "{label}");
        }
        assert_eq!(ascii_domain("mx.företag.se").as_deref(), Some("mx.xn--fretag-wxa.se"));
        assert_eq!(ascii_domain("kund.se").as_deref(), Some("kund.se"));
    }

    #[test]
    fn cli_refuses_no_domains_and_bad_resolver_before_asking() {
        let e = cli(Some("127.0.0.1:53"), &[], &[]).expect_err("no domains");
        assert!(format!("{e}").contains("at least one domain"));
        let e = cli(Some("not-an-ip"), &[], &["kund.se".to_string()]).expect_err("bad resolver");
        assert!(format!("{e}").contains("resolver \"not-an-ip\""), "{e}");
    }
}
