//! The names the appliance answers to, for the Host check at the front door.

use std::net::{IpAddr, SocketAddr};

/// The names the appliance answers to. A request naming any other host gets 421: a web page an
/// office user opens elsewhere could otherwise reach the appliance by DNS rebinding (the browser sends
/// that page's own name), and be same-origin with it.
#[derive(Debug, Clone)]
pub struct Names {
    names: Vec<String>,
    /// Listening on 0.0.0.0 or [::]: any address of the box may be typed. An address in the Host
    /// header is always one a person typed (rebinding needs a name), so any address is accepted then.
    any_address: bool,
    listen_address: Option<IpAddr>,
}

impl Names {
    /// The listen address's, `localhost`, this machine's host name and `extra` (the operator's).
    pub fn new(listen: &SocketAddr, extra: &[String]) -> Names {
        let mut names = vec!["localhost".to_string()];
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            names.push(host.trim().to_ascii_lowercase());
        }
        names.extend(extra.iter().map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()));
        names.retain(|n| !n.is_empty());
        names.sort();
        names.dedup();
        let any_address = listen.ip().is_unspecified();
        Names { names, any_address, listen_address: (!any_address).then_some(listen.ip()) }
    }

    /// Whether a request with this Host header is answered. No Host at all (an HTTP/1.0 script) is:
    /// browsers always send one.
    pub fn allows(&self, host_header: Option<&str>) -> bool {
        let Some(host) = host_header else { return true };
        let host = host.trim();
        let name = if let Some(rest) = host.strip_prefix('[') {
            match rest.split_once(']') {
                Some((inside, _)) => inside,
                None => return false,
            }
        } else {
            match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            }
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(address) = name.parse::<IpAddr>() {
            return self.any_address || address.is_loopback() || Some(address) == self.listen_address;
        }
        self.names.contains(&name)
    }

    pub fn listed(&self) -> String {
        self.names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let on_all = Names::new(&"0.0.0.0:8025".parse().unwrap(), &["Box.Kund.se.".to_string()]);
        let on_one = Names::new(&"192.168.1.10:8025".parse().unwrap(), &[]);
        for (names, host, allowed) in [
            (&on_all, None, true),
            (&on_all, Some("box.kund.se"), true),
            (&on_all, Some("BOX.KUND.SE:8025"), true),
            (&on_all, Some("box.kund.se.:8025"), true),
            (&on_all, Some("localhost:8025"), true),
            (&on_all, Some("192.168.7.3:8025"), true),
            (&on_all, Some("[fe80::1]:8025"), true),
            (&on_all, Some("evil.example:8025"), false),
            (&on_all, Some("box.kund.se.evil.example"), false),
            (&on_all, Some("[fe80::1"), false),
            (&on_one, Some("192.168.1.10:8025"), true),
            (&on_one, Some("127.0.0.1:8025"), true),
            (&on_one, Some("192.168.1.11:8025"), false),
            (&on_one, Some("box.kund.se"), false),
            (&on_one, Some(""), false),
        ] {
            assert_eq!(names.allows(host), allowed, "{host:?}");
        }
    }
}
