//! One letter out through the relay, with lettre's blocking SMTP client (STARTTLS or TLS through
//! native-tls, the TLS library the IMAP side links too; AUTH PLAIN or LOGIN when a login is set) and
//! a timeout on every step. Certificates are verified, except for a relay on loopback: plain SMTP is
//! allowed there anyway, so a self-signed certificate on the machine's own relay is no weaker than no
//! TLS at all, and such relays rarely have another. The password goes to lettre only for the send.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message, SmtpTransport, Transport};

use super::{Config, Letter, Security, is_loopback};

/// Each step of the conversation with the relay (connect, every command, the data) may take this
/// long; a relay that stops answering costs a notice, never a stuck thread.
const TIMEOUT: Duration = Duration::from_secs(30);

pub fn check_address(text: &str) -> Result<()> {
    Address::from_str(text).map(|_| ()).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn send(config: &Config, to: &[String], letter: &Letter) -> Result<()> {
    let message = build(config, to, letter)?;
    let tls = || {
        TlsParameters::builder(config.host.clone())
            .dangerous_accept_invalid_certs(is_loopback(&config.host))
            .build_native()
            .context("cannot set up TLS for the relay")
    };
    let mut transport = SmtpTransport::builder_dangerous(config.host.as_str())
        .port(config.port)
        .timeout(Some(TIMEOUT))
        .hello_name(ClientId::Domain(hostname()))
        .tls(match config.security {
            Security::StartTls => Tls::Required(tls()?),
            Security::Tls => Tls::Wrapper(tls()?),
            Security::Plain => Tls::None,
        });
    if let Some(login) = &config.login {
        let password = config.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default();
        transport =
            transport.credentials(Credentials::new(login.clone(), password)).authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    transport
        .build()
        .send(&message)
        .with_context(|| format!("the relay {}:{} ({}) did not take it", config.host, config.port, config.security.as_str()))?;
    Ok(())
}

fn build(config: &Config, to: &[String], letter: &Letter) -> Result<Message> {
    let mailbox = |a: &str| -> Result<Mailbox> { Ok(Mailbox::new(None, Address::from_str(a).with_context(|| format!("{a:?}"))?)) };
    let mut message =
        Message::builder().from(Mailbox::new(Some("postflytt".into()), Address::from_str(&config.from)?)).subject(&letter.subject);
    for address in to {
        message = message.to(mailbox(address)?);
    }
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(letter.body.clone());
    Ok(match &letter.attachment {
        None => message.singlepart(text)?,
        Some((name, html)) => message.multipart(
            MultiPart::mixed().singlepart(text).singlepart(Attachment::new(name.clone()).body(html.clone(), ContentType::TEXT_HTML)),
        )?,
    })
}

/// The machine's name for EHLO (lettre says "[127.0.0.1]" without it, which some relays refuse).
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    if name.is_empty() || name.contains(char::is_whitespace) { "localhost".to_string() } else { name }
}
