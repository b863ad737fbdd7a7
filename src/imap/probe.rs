//! The setup test: can we reach a server as configured, before any account logs in? TCP (name
//! lookup, then connect), TLS (implicit or after STARTTLS, trusted as the endpoint says), the
//! greeting and CAPABILITY; no login. When the handshake fails on the certificate, a second
//! handshake accepts any certificate only to look at it, and OpenSSL is asked why it would not
//! verify: the operator then sees the certificate's subject, issuer, expiry and SHA-256 fingerprint
//! with one kind of problem (self-signed, expired, wrong name, untrusted) and can pin it. The whole
//! test runs under a short deadline, so saving a setup never hangs on a silent server.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Result, anyhow};
use openssl::x509::{X509, X509NameRef, X509StoreContext, X509VerifyResult, store::X509StoreBuilder, verify::X509VerifyParam};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::connection::{PinMismatch, Trust, hex, is_loopback};
use super::{Endpoint, Session, TlsFailed, TlsMode};
use crate::quirks::ServerKind;

/// How long the TCP connect may take, and the whole test after it: long enough for a slow link, short
/// enough that the operator waits for the answer of a setup.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// What the test found, as `source_test` / `target_test` of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Reached, TLS fine (or plain on loopback), greeting and CAPABILITY answered.
    Ok,
    /// No TCP connection: see `Unreachable`.
    Unreachable,
    /// The TLS handshake failed on the server's certificate: see `certificate`.
    Certificate,
    /// The TLS handshake failed for another reason (protocol versions, a cut).
    TlsFailed,
    /// Connected, but no IMAP greeting or answer (wrong port, not IMAP, STARTTLS refused, too slow).
    NotImap,
}

/// Why a server could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    /// The host name is not in DNS.
    Dns,
    /// The host answered that nothing listens on the port.
    Refused,
    /// No answer within the deadline (a firewall dropping, a wrong address).
    Timeout,
    Other,
}

/// Why a certificate was not trusted, from OpenSSL's verification code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateProblem {
    SelfSigned,
    Expired,
    WrongName,
    Untrusted,
    /// The endpoint has a pin and the server shows another certificate.
    PinMismatch,
    Other,
}

impl CertificateProblem {
    pub fn words(self) -> &'static str {
        match self {
            CertificateProblem::SelfSigned => "self-signed",
            CertificateProblem::Expired => "expired (or not yet valid)",
            CertificateProblem::WrongName => "made out to another name",
            CertificateProblem::Untrusted => "issued by an authority this machine does not trust",
            CertificateProblem::PinMismatch => "not the pinned certificate",
            CertificateProblem::Other => "not accepted",
        }
    }
}

/// The server's certificate as the operator needs it to decide whether to trust it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: Option<i64>,
    /// Lowercase hex, as `setup --source-pin` takes it.
    pub sha256: String,
    /// None when the certificate was trusted.
    pub problem: Option<CertificateProblem>,
    /// OpenSSL's words for the problem (for the operator only; never shown to the customer).
    pub error: Option<String>,
}

/// The result of testing one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideTest {
    /// "imap.example.se:993 (implicit)".
    pub server: String,
    pub tested_at: i64,
    pub outcome: Outcome,
    pub unreachable: Option<Unreachable>,
    pub certificate: Option<CertificateInfo>,
    pub capabilities: Vec<String>,
    /// What was found, in English words for the operator and the CLI.
    pub message: String,
}

impl SideTest {
    fn new(endpoint: &Endpoint, outcome: Outcome, message: String) -> SideTest {
        SideTest {
            server: endpoint.describe(),
            tested_at: chrono::Utc::now().timestamp(),
            outcome,
            unreachable: None,
            certificate: None,
            capabilities: Vec::new(),
            message,
        }
    }

    /// The certificate problem found, if that is what failed.
    pub fn certificate_problem(&self) -> Option<&CertificateInfo> {
        self.certificate.as_ref().filter(|_| self.outcome == Outcome::Certificate)
    }
}

/// Tests `endpoint` (see the module's doc). Never fails: what went wrong is the answer.
pub async fn test_endpoint(endpoint: &Endpoint, kind: ServerKind) -> SideTest {
    if let Err(test) = reach(endpoint).await {
        return *test;
    }
    let talk = async {
        match Session::connect(endpoint, "", kind).await {
            Ok(session) => Ok(greeted(endpoint, session).await),
            Err(e) => Err(e),
        }
    };
    match deadline(talk).await {
        None => SideTest::new(
            endpoint,
            Outcome::NotImap,
            format!("{} accepts connections but gave no IMAP answer within {} s", endpoint.describe(), TEST_DEADLINE.as_secs()),
        ),
        Some(Ok(test)) => test,
        Some(Err(e)) if e.downcast_ref::<TlsFailed>().is_some() || e.downcast_ref::<PinMismatch>().is_some() => {
            inspect(endpoint, kind, &e).await
        }
        Some(Err(e)) => {
            SideTest::new(endpoint, Outcome::NotImap, format!("{} does not answer as an IMAP server: {e:#}", endpoint.describe()))
        }
    }
}

async fn deadline<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(TEST_DEADLINE).await;
        None
    })
    .await
}

/// The name lookup and a TCP connection, each failure its own kind.
async fn reach(endpoint: &Endpoint) -> std::result::Result<(), Box<SideTest>> {
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = endpoint.port;
    let unreachable = |why: Unreachable, message: String| {
        let mut t = SideTest::new(endpoint, Outcome::Unreachable, message);
        t.unreachable = Some(why);
        Box::new(t)
    };
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let lookup = smol::unblock(move || (host.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
            match smol::future::or(async { Some(lookup.await) }, async {
                smol::Timer::after(CONNECT_DEADLINE).await;
                None
            })
            .await
            {
                Some(Ok(a)) if !a.is_empty() => a,
                Some(_) => return Err(unreachable(Unreachable::Dns, format!("{} is not in DNS (check the host name)", endpoint.host))),
                None => {
                    return Err(unreachable(
                        Unreachable::Dns,
                        format!("looking up {} took more than {} s", endpoint.host, CONNECT_DEADLINE.as_secs()),
                    ));
                }
            }
        }
    };
    let mut last = Unreachable::Other;
    let mut words = String::new();
    for addr in addrs {
        let connect = smol::future::or(async { Some(smol::net::TcpStream::connect(addr).await) }, async {
            smol::Timer::after(CONNECT_DEADLINE).await;
            None
        });
        match connect.await {
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Unreachable::Refused;
                words = format!("{addr} refused the connection (is the server up and the port right?)");
            }
            Some(Err(e)) => {
                last = Unreachable::Other;
                words = format!("cannot connect to {addr}: {e}");
            }
            None => {
                last = Unreachable::Timeout;
                words = format!("{addr} did not answer within {} s (a firewall, or the wrong address?)", CONNECT_DEADLINE.as_secs());
            }
        }
    }
    Err(unreachable(last, format!("cannot reach {}: {words}", endpoint.describe())))
}

/// After a greeting: CAPABILITY, and what the certificate is (for the record, when TLS was used).
async fn greeted(endpoint: &Endpoint, mut session: Session) -> SideTest {
    if let Err(e) = session.refresh_capabilities().await {
        return SideTest::new(endpoint, Outcome::NotImap, format!("{} greeted but did not answer CAPABILITY: {e:#}", endpoint.describe()));
    }
    let mut test = SideTest::new(endpoint, Outcome::Ok, String::new());
    test.capabilities = session.capabilities.iter().cloned().collect();
    test.certificate = session.peer_certificate_der().and_then(|der| describe(&der).ok());
    session.logout().await;
    test.message = match (&test.certificate, endpoint.tls) {
        (_, TlsMode::Plain) => format!("{} answers (plain IMAP on loopback)", endpoint.describe()),
        (Some(c), _) if endpoint.pin_sha256.is_some() => {
            format!("{} answers; TLS with the pinned certificate {}", endpoint.describe(), c.sha256)
        }
        _ => format!("{} answers; TLS fine", endpoint.describe()),
    };
    test
}

/// The handshake failed: connect again accepting any certificate, and say what it is and why it
/// was refused.
async fn inspect(endpoint: &Endpoint, kind: ServerKind, first: &anyhow::Error) -> SideTest {
    let seen = deadline(async {
        let session = Session::connect_trusting(endpoint, "", kind, Trust::InspectOnly).await?;
        let der = session.peer_certificate_der().ok_or_else(|| anyhow!("the server sent no certificate"));
        session.logout().await;
        der
    })
    .await;
    let der = match seen {
        Some(Ok(der)) => der,
        Some(Err(e)) => return SideTest::new(endpoint, Outcome::TlsFailed, format!("TLS with {} failed: {e:#}", endpoint.describe())),
        None => return SideTest::new(endpoint, Outcome::TlsFailed, format!("TLS with {} failed: {first:#}", endpoint.describe())),
    };
    let mut info = match describe(&der) {
        Ok(i) => i,
        Err(e) => {
            let mut t =
                SideTest::new(endpoint, Outcome::Certificate, format!("{}: the certificate cannot be read: {e:#}", endpoint.describe()));
            t.certificate = Some(CertificateInfo {
                subject: String::new(),
                issuer: String::new(),
                not_after: None,
                sha256: hex(&Sha256::digest(&der)),
                problem: Some(CertificateProblem::Other),
                error: Some(format!("{first:#}")),
            });
            return t;
        }
    };
    let (problem, error) = if first.downcast_ref::<PinMismatch>().is_some() {
        (CertificateProblem::PinMismatch, format!("{first:#}"))
    } else {
        verification_problem(&der, &endpoint.host).unwrap_or_else(|| (CertificateProblem::Other, format!("{first:#}")))
    };
    info.problem = Some(problem);
    info.error = Some(error);
    let message = format!(
        "the certificate of {} is {} (subject {}, issuer {}, SHA-256 {}); if this is the right server, trust it by its fingerprint",
        endpoint.describe(),
        problem.words(),
        info.subject,
        info.issuer,
        info.sha256
    );
    let mut test = SideTest::new(endpoint, Outcome::Certificate, message);
    test.certificate = Some(info);
    test
}

/// Subject, issuer, expiry and fingerprint of a DER certificate.
pub fn describe(der: &[u8]) -> Result<CertificateInfo> {
    let cert = X509::from_der(der)?;
    let epoch = openssl::asn1::Asn1Time::from_unix(0)?;
    let not_after = epoch.diff(cert.not_after()).ok().map(|d| i64::from(d.days) * 86_400 + i64::from(d.secs));
    Ok(CertificateInfo {
        subject: name(cert.subject_name()),
        issuer: name(cert.issuer_name()),
        not_after,
        sha256: hex(&Sha256::digest(der)),
        problem: None,
        error: None,
    })
}

/// "CN=mail.example.se, O=Example AB".
fn name(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why OpenSSL, with this machine's trusted authorities and `host` as the name, would not verify the
/// certificate alone: the kind from its typed code and its words. None when it would (then the
/// handshake failed on something else, e.g. a missing intermediate it sent wrongly).
fn verification_problem(der: &[u8], host: &str) -> Option<(CertificateProblem, String)> {
    verify_with(der, host, Vec::new())
}

/// `verification_problem` with `extra` authorities trusted besides this machine's (for the tests).
fn verify_with(der: &[u8], host: &str, extra: Vec<X509>) -> Option<(CertificateProblem, String)> {
    let cert = X509::from_der(der).ok()?;
    let result = (|| -> std::result::Result<(bool, X509VerifyResult), openssl::error::ErrorStack> {
        let mut store = X509StoreBuilder::new()?;
        store.set_default_paths()?;
        for authority in extra {
            store.add_cert(authority)?;
        }
        let mut param = X509VerifyParam::new()?;
        let bare = host.trim_matches(|c| c == '[' || c == ']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => param.set_ip(ip)?,
            Err(_) => param.set_host(bare)?,
        }
        store.set_param(&param)?;
        let store = store.build();
        let chain: openssl::stack::Stack<X509> = openssl::stack::Stack::new()?;
        let mut ctx = X509StoreContext::new()?;
        ctx.init(&store, &cert, &chain, |c| Ok((c.verify_cert()?, c.error())))
    })()
    .ok()?;
    match result {
        (true, _) => None,
        (false, code) => Some((classify(code.as_raw()), code.error_string().to_string())),
    }
}

/// OpenSSL's verification codes (x509_vfy.h) by the kind the operator acts on.
fn classify(code: i32) -> CertificateProblem {
    match code {
        // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        18 | 19 => CertificateProblem::SelfSigned,
        // X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
        9 | 10 => CertificateProblem::Expired,
        // X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        62 | 64 => CertificateProblem::WrongName,
        // unable to get the issuer (2, 20), to verify the leaf's signature (21); untrusted (27), rejected (28)
        2 | 20 | 21 | 27 | 28 => CertificateProblem::Untrusted,
        _ => CertificateProblem::Other,
    }
}

/// Whether plain IMAP may go to `host` (loopback only), for setup's validation.
pub fn plain_allowed(host: &str) -> bool {
    is_loopback(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder, extension::SubjectAlternativeName};

    /// A certificate for `cn`, valid from `from` to `until` days from now, signed by `issuer` (its
    /// certificate and key) or by itself.
    fn cert(
        cn: &str,
        from: i64,
        until: i64,
        issuer: Option<(&X509, &PKey<openssl::pkey::Private>)>,
    ) -> (X509, PKey<openssl::pkey::Private>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name())).unwrap();
        b.set_pubkey(&key).unwrap();
        let now = chrono::Utc::now().timestamp();
        b.set_not_before(&Asn1Time::from_unix(now + from * 86_400).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + until * 86_400).unwrap()).unwrap();
        if cn.ends_with(" CA") {
            b.append_extension(openssl::x509::extension::BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
            b.append_extension(openssl::x509::extension::KeyUsage::new().critical().key_cert_sign().build().unwrap()).unwrap();
        }
        let san = SubjectAlternativeName::new().dns(cn).build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None)).unwrap();
        b.append_extension(san).unwrap();
        b.sign(issuer.map_or(&key, |(_, k)| k), MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    #[test]
    fn certificate_problems_are_classified_by_openssl_code() {
        let (own, _) = cert("mail.example.se", -1, 30, None);
        let der = own.to_der().unwrap();
        assert_eq!(verification_problem(&der, "mail.example.se").map(|p| p.0), Some(CertificateProblem::SelfSigned));
        let (ca, ca_key) = cert("Example CA", -10, 300, None);
        let (expired, _) = cert("mail.example.se", -10, -1, Some((&ca, &ca_key)));
        // Not in this machine's trust store: OpenSSL says so before it looks at the dates.
        assert_eq!(verification_problem(&expired.to_der().unwrap(), "mail.example.se").map(|p| p.0), Some(CertificateProblem::Untrusted));
        // With the authority trusted: the dates, then the name.
        let trusting = |c: &X509, host: &str| verify_with(&c.to_der().unwrap(), host, vec![ca.clone()]).map(|p| p.0);
        let seen = verify_with(&expired.to_der().unwrap(), "mail.example.se", vec![ca.clone()]);
        assert_eq!(seen.as_ref().map(|p| p.0), Some(CertificateProblem::Expired), "{seen:?}");
        let (fine, _) = cert("mail.example.se", -1, 30, Some((&ca, &ca_key)));
        assert_eq!(trusting(&fine, "imap.other.se"), Some(CertificateProblem::WrongName));
        assert_eq!(trusting(&fine, "mail.example.se"), None);
        assert_eq!(classify(10), CertificateProblem::Expired);
        assert_eq!(classify(9), CertificateProblem::Expired);
        assert_eq!(classify(62), CertificateProblem::WrongName);
        assert_eq!(classify(18), CertificateProblem::SelfSigned);
        assert_eq!(classify(20), CertificateProblem::Untrusted);
        assert_eq!(classify(50), CertificateProblem::Other);
    }

    #[test]
    fn a_certificate_is_described_with_its_fingerprint_and_expiry() {
        let (own, _) = cert("mail.example.se", -1, 30, None);
        let der = own.to_der().unwrap();
        let info = describe(&der).unwrap();
        assert_eq!(info.subject, "CN=mail.example.se");
        assert_eq!(info.issuer, "CN=mail.example.se");
        assert_eq!(info.sha256, hex(&Sha256::digest(&der)));
        assert_eq!(info.sha256.len(), 64);
        let expected = chrono::Utc::now().timestamp() + 30 * 86_400;
        assert!(info.not_after.is_some_and(|t| (t - expected).abs() < 60), "{:?} vs {expected}", info.not_after);
    }

    #[test]
    fn a_closed_port_is_refused_and_an_unknown_name_is_dns() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ep = Endpoint { host: "127.0.0.1".into(), port, tls: TlsMode::Plain, pin_sha256: None };
        let t = smol::block_on(test_endpoint(&ep, ServerKind::Imap));
        assert_eq!((t.outcome, t.unreachable), (Outcome::Unreachable, Some(Unreachable::Refused)), "{t:?}");
        let ep = Endpoint { host: "no-such-host.invalid".into(), port: 993, tls: TlsMode::Implicit, pin_sha256: None };
        let t = smol::block_on(test_endpoint(&ep, ServerKind::Imap));
        assert_eq!((t.outcome, t.unreachable), (Outcome::Unreachable, Some(Unreachable::Dns)), "{t:?}");
    }
}
