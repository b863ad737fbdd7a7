//! Calendars and contacts (issue 19): every calendar and address book of an account moved from the old
//! host's CalDAV/CardDAV server to the new host's, exactly once, in the same passes as the mail, and the
//! users' deletions followed until they switch. `docs/dav.md` is the design this follows: `discover`
//! finds the collections on each side, `copy` lists, stages and sends them under the journal of
//! `store::dav`, and this module runs the phase for one account and names its failures.

pub mod check;
mod collections;
pub mod content;
mod copy;
mod deletions;
mod discover;
pub mod href;
pub mod http;
pub mod url;
pub mod verify;
pub mod xml;

use anyhow::{Result, anyhow};

use crate::secret::Secret;
use crate::store::{Account, Store};

pub use copy::DavStats;

/// What can go wrong on a DAV server as the pass decides about it: a refused login or a server that is
/// not DAV ends the phase for the account (never its mail); a server's refusal of one request, that
/// collection's work for this pass.
#[derive(Debug)]
pub enum DavError {
    LoginRefused { side: &'static str, digest_only: bool },
    NotDav { side: &'static str, url: String },
    Server { side: &'static str, status: u16, what: String },
}

impl std::fmt::Display for DavError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DavError::LoginRefused { side, digest_only: true } => {
                write!(f, "the {side} calendar server wants Digest login, which is not supported (only Basic over TLS)")
            }
            DavError::LoginRefused { side, .. } => write!(f, "the {side} calendar server refused the login (401)"),
            DavError::NotDav { side, url } => {
                write!(f, "no calendar or contact server (CalDAV/CardDAV) answered at {url} ({side}): check the address")
            }
            DavError::Server { side, status, what } => write!(f, "the {side} calendar server answered {status} to {what}"),
        }
    }
}

impl std::error::Error for DavError {}

/// The DavError in an error's chain, if any.
pub fn kind_of(error: &anyhow::Error) -> Option<&DavError> {
    error.chain().find_map(|cause| cause.downcast_ref::<DavError>())
}

/// The login for one side (`source` or `target`) of one account: the account list's DAV login when
/// given, else the mail's; the DAV password when given, else the mail's.
pub fn login_for<'a>(account: &'a Account, side: &str) -> (&'a str, Option<&'a Secret>) {
    let (dav_login, dav_password, mail_login, mail_password) = if side == "source" {
        (&account.source_dav_login, &account.source_dav_password, &account.source_login, &account.source_password)
    } else {
        (&account.target_dav_login, &account.target_dav_password, &account.target_login, &account.target_password)
    };
    let login = dav_login.as_deref().filter(|l| !l.is_empty()).unwrap_or(mail_login);
    (login, dav_password.as_ref().or(mail_password.as_ref()))
}

/// The calendar and contact phase of one account's pass. None when no DAV server is set up (the mail
/// migration is then exactly as without this feature).
pub async fn pass_account(store: &Store, account: &Account) -> Result<Option<DavStats>> {
    let (Some(source), Some(target)) = (store.dav_server("source")?, store.dav_server("target")?) else {
        return Ok(None);
    };
    let source_url = url::DavUrl::parse(&source.url, source.pin_sha256.clone())?;
    let target_url = url::DavUrl::parse(&target.url, target.pin_sha256.clone())?;
    let (source_login, source_password) = login_for(account, "source");
    let (target_login, target_password) = login_for(account, "target");
    let source_password = source_password.ok_or_else(|| anyhow!("no source password for calendars and contacts"))?;
    let target_password = target_password.ok_or_else(|| anyhow!("no target password for calendars and contacts"))?;
    let mut source = discover::open_side("source", &source_url, source_login, source_password).await?;
    let mut target = discover::open_side("target", &target_url, target_login, target_password).await?;
    copy::copy_account(store, account, &mut source, &mut target).await.map(Some)
}
