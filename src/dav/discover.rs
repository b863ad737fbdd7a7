//! Finding an account's calendars and address books on one DAV server: the context path (the
//! operator's URL, or `/.well-known/caldav` and `/.well-known/carddav` for a bare host name, RFC 6764
//! §5, redirects followed within the same server), the user's principal (`current-user-principal`,
//! RFC 5397), its home sets (RFC 4791 §6.2.1, RFC 6352 §7.1.1) and the collections in them. What is not
//! a calendar or an address book of the user's own is left, with its reason: the schedule inbox and
//! outbox, subscriptions, and collections another owner shared (`dav_shared_under_home`).

use anyhow::{Result, anyhow, bail};

use super::http::{HttpClient, MULTISTATUS_MAX, Request, Response};
use super::url::DavUrl;
use super::xml::{self, Member};
use super::{DavError, href};

/// Redirects followed from a well-known address or a context path (RFC 6764 §5 expects one or two).
const REDIRECTS_MAX: usize = 5;

/// The reason stored for a collection another owner shared into the user's home.
pub const SHARED_BY_OTHER_OWNER: &str = "shared_by_other_owner";

/// One side's server as a pass uses it: the connection, and where the user's collections live.
pub struct DavSide {
    pub client: HttpClient,
    pub url: DavUrl,
    pub principal: String,
    pub calendar_homes: Vec<String>,
    pub addressbook_homes: Vec<String>,
    /// `source` or `target`, for errors.
    pub side: &'static str,
}

/// A collection found under a home set.
#[derive(Debug)]
pub struct FoundCollection {
    pub kind: &'static str,
    pub href: String,
    pub member: Member,
    /// Why it is not the user's own calendar or address book, or None.
    pub skip_reason: Option<&'static str>,
}

impl DavSide {
    /// PROPFIND on `path` with `body`.
    pub async fn propfind(&mut self, path: &str, depth: &str, body: &[u8]) -> Result<Response> {
        let headers = [("Depth", depth), ("Content-Type", "application/xml; charset=utf-8")];
        let request = Request { method: "PROPFIND", path, headers: &headers, body, max_body: MULTISTATUS_MAX, point_after_send: None };
        let response = self.client.send(&request).await?;
        refuse_login_failure(self.side, &response)?;
        Ok(response)
    }

    /// A PROPFIND answered with a multistatus, parsed; any other answer is an error naming `what`.
    pub async fn propfind_multistatus(&mut self, path: &str, depth: &str, body: &[u8], what: &str) -> Result<xml::Multistatus> {
        let response = self.propfind(path, depth, body).await?;
        if response.status != 207 {
            bail!(DavError::Server { side: self.side, status: response.status, what: format!("{what} ({path})") });
        }
        xml::parse_multistatus(&response.body)
    }

    /// A server-given href as a path on this server, or None when it points elsewhere.
    pub fn path_of(&self, raw: &str) -> Option<String> {
        href::normalise(raw, &self.url.origin())
    }
}

/// A 401 or 403 on a login's first request is the login refused, in the server's terms.
pub fn refuse_login_failure(side: &'static str, response: &Response) -> Result<()> {
    if response.status == 401 {
        let digest_only = !response.offers_basic() && response.header("WWW-Authenticate").is_some();
        bail!(DavError::LoginRefused { side, digest_only });
    }
    Ok(())
}

/// Logs in to one side and finds the user's principal and home sets.
pub async fn open_side(side: &'static str, url: &DavUrl, login: &str, password: &crate::secret::Secret) -> Result<DavSide> {
    let client = HttpClient::new(url, login, password);
    let mut dav = DavSide { client, url: url.clone(), principal: String::new(), calendar_homes: vec![], addressbook_homes: vec![], side };
    let contexts: Vec<String> =
        if url.bare_host { vec!["/.well-known/caldav".into(), "/.well-known/carddav".into(), "/".into()] } else { vec![url.path.clone()] };
    let mut principal = None;
    let mut context_used = None;
    for context in &contexts {
        let Some((path, members)) = propfind_following(&mut dav, context, &xml::propfind_principal()).await? else { continue };
        context_used.get_or_insert(path.clone());
        if let Some(found) = members.iter().find_map(|m| m.props.current_user_principal.clone()) {
            principal = dav.path_of(&found);
            if principal.is_some() {
                break;
            }
        }
    }
    let Some(context) = context_used else {
        bail!(DavError::NotDav { side, url: url.to_string() });
    };
    // A server that names no principal (old cpdavd was reported to) is asked at the context itself.
    dav.principal = principal.unwrap_or(context);
    let homes = dav.propfind_multistatus(&dav.principal.clone(), "0", &xml::propfind_homes(), "the principal's home sets").await?;
    for member in &homes.responses {
        for home in &member.props.calendar_home_set {
            if let Some(path) = dav.path_of(home).map(|p| href::as_collection(&p)) {
                push_unique(&mut dav.calendar_homes, path);
            }
        }
        for home in &member.props.addressbook_home_set {
            if let Some(path) = dav.path_of(home).map(|p| href::as_collection(&p)) {
                push_unique(&mut dav.addressbook_homes, path);
            }
        }
    }
    Ok(dav)
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// PROPFIND Depth 0 at `start`, following redirects within the same server. None when nothing DAV is
/// there (404, 405, or an answer that is not a multistatus); else the path answered and its members.
async fn propfind_following(dav: &mut DavSide, start: &str, body: &[u8]) -> Result<Option<(String, Vec<Member>)>> {
    let mut path = start.to_string();
    for _ in 0..=REDIRECTS_MAX {
        let response = dav.propfind(&path, "0", body).await?;
        match response.status {
            207 => return Ok(Some((path, xml::parse_multistatus(&response.body)?.responses))),
            301 | 302 | 303 | 307 | 308 => {
                let location = response.location().ok_or_else(|| anyhow!("{} redirected {path} without saying where", dav.side))?;
                path = dav.path_of(location).ok_or_else(|| {
                    anyhow!(
                        "the {} DAV server redirected {path} to another server ({location}): not followed; give that address instead",
                        dav.side
                    )
                })?;
            }
            _ => return Ok(None),
        }
    }
    bail!("the {} DAV server redirected {start} more than {REDIRECTS_MAX} times", dav.side)
}

/// The calendars and address books under the side's home sets, each once.
pub async fn collections(dav: &mut DavSide) -> Result<Vec<FoundCollection>> {
    let mut found: Vec<FoundCollection> = Vec::new();
    let homes: Vec<String> = dav.calendar_homes.iter().chain(dav.addressbook_homes.iter()).cloned().collect();
    for home in homes {
        if found.iter().any(|f| href::same(&f.href, &home)) {
            continue;
        }
        let listing = dav.propfind_multistatus(&home, "1", &xml::propfind_collections(), "the list of calendars and address books").await?;
        for member in listing.responses {
            let Some(path) = dav.path_of(&member.href).map(|p| href::as_collection(&p)) else { continue };
            // `dav_collection_in_members`: PROPFIND Depth 1 lists the home itself first (RFC 4918 §9.1).
            if href::same(&path, &home) || found.iter().any(|f| href::same(&f.href, &path)) {
                continue;
            }
            let props = &member.props;
            let kind = if props.is_calendar {
                "calendar"
            } else if props.is_addressbook {
                "addressbook"
            } else {
                continue;
            };
            let skip_reason = if props.is_schedule_inbox || props.is_schedule_outbox {
                continue;
            } else if props.is_subscribed {
                Some("subscription")
            } else if props.shared_with(&dav.principal) {
                Some(SHARED_BY_OTHER_OWNER)
            } else {
                None
            };
            found.push(FoundCollection { kind, href: path, member, skip_reason });
        }
    }
    Ok(found)
}
