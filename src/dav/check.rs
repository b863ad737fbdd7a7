//! The calendar and contact part of the pre-flight check (`postflytt check`): the DAV login on each
//! side, the source's calendars and address books with their items counted and sized, the ones that
//! will not move and why, and whether the target has a place for each kind. Nothing changes on either
//! server: only PROPFIND. Also the setup's side test of a DAV server (`reach`): one PROPFIND without a
//! login, where any HTTP answer means the server is there.

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::discover::{self, DavSide};
use super::http::{HttpClient, Request};
use super::{href, url::DavUrl, xml};
use crate::store::{Account, DavSetting, Store};

/// The longest the setup's side test waits for one read: a server that is up answers PROPFIND at once,
/// and the operator waits at the prompt.
const REACH_READ: Duration = Duration::from_secs(10);
/// The longest the whole side test takes, however the server trickles.
const REACH_DEADLINE: Duration = Duration::from_secs(20);

/// One source collection as the check saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckedCollection {
    /// `calendar` or `addressbook`.
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    pub items: u64,
    pub bytes: u64,
    /// Why it will not move (`shared_by_other_owner`, `subscription`), or None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The DAV part of one account's check.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DavCheck {
    /// What failed, in words an operator acts on (empty when both logins worked).
    pub problem: String,
    /// `source` or `target` when that side's DAV login failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_failed: Option<String>,
    pub collections: Vec<CheckedCollection>,
    /// The target names a home for calendars and for address books.
    pub target_has_calendars: bool,
    pub target_has_address_books: bool,
}

impl DavCheck {
    pub fn calendars(&self) -> usize {
        self.collections.iter().filter(|c| c.kind == "calendar" && c.skipped.is_none()).count()
    }

    pub fn address_books(&self) -> usize {
        self.collections.iter().filter(|c| c.kind == "addressbook" && c.skipped.is_none()).count()
    }

    pub fn items(&self) -> u64 {
        self.collections.iter().filter(|c| c.skipped.is_none()).map(|c| c.items).sum()
    }

    /// One line for `postflytt check`.
    pub fn line(&self) -> String {
        if let Some(side) = &self.login_failed {
            let server = if side == "source" { "old server" } else { "new server" };
            return format!("calendars and contacts: calendar login failed on the {server}: {}", self.problem);
        }
        if !self.problem.is_empty() {
            return format!("calendars and contacts: {}", self.problem);
        }
        let skipped = self.collections.iter().filter(|c| c.skipped.is_some()).count();
        let count = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = format!(
            "calendars and contacts: {}, {}, {}",
            count(self.calendars() as u64, "calendar", "calendars"),
            count(self.address_books() as u64, "address book", "address books"),
            count(self.items(), "item", "items")
        );
        if skipped > 0 {
            line.push_str(&format!(", {skipped} shared or subscribed left out"));
        }
        line
    }
}

/// Why a skipped collection stays behind, as `postflytt check` says it.
pub fn skip_words(reason: &str) -> &str {
    match reason {
        "shared_by_other_owner" => "shared with you by another user: moves with its owner's account",
        "subscription" => "a subscription",
        other => other,
    }
}

/// What the setup's side test found: the HTTP status the server answered (reachable), or why no
/// answer came. Kept per side for the status (`setup::dav_status_json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavReach {
    /// The address tested, as stored: a later setting's status never shows an earlier address's test.
    pub url: String,
    /// The status of the answer; None when none came.
    pub status: Option<u16>,
    /// Where a redirect pointed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why there was no answer (refused, TLS, timed out), empty when there was one.
    pub problem: String,
}

impl DavReach {
    pub fn reachable(&self) -> bool {
        self.status.is_some()
    }

    /// One line for `setup` and the status: "source calendar server at URL: reachable (HTTP 401, asks
    /// for a login)" or "...: NOT reachable: WHY".
    pub fn line(&self, side: &str) -> String {
        let Some(status) = self.status else {
            return format!("{side} calendar server at {}: NOT reachable: {}", self.url, self.problem);
        };
        let what = match status {
            207 => "answers as a DAV server".to_string(),
            401 => "asks for a login".to_string(),
            301 | 302 | 303 | 307 | 308 => format!("points on to {}", self.location.as_deref().unwrap_or("another address")),
            403 => "refuses without a login".to_string(),
            404 => "nothing at this path; the accounts' logins find their calendars if the server has them elsewhere".to_string(),
            405 | 501 => "does not take DAV requests at this path".to_string(),
            s if s >= 500 => "the server has a problem right now".to_string(),
            _ => "answers".to_string(),
        };
        format!("{side} calendar server at {}: reachable (HTTP {status}, {what})", self.url)
    }
}

/// The setup's side test of a DAV server: one PROPFIND Depth 0 without a login on its path (a bare
/// host: `/.well-known/caldav`). Any HTTP answer, even 401 or a redirect, means the server is there;
/// only no answer (refused, TLS, timeout) is a problem. Nothing is stored here.
pub async fn reach(setting: &DavSetting) -> DavReach {
    let mut found = DavReach { url: setting.url.clone(), status: None, location: None, problem: String::new() };
    let url = match DavUrl::parse(&setting.url, setting.pin_sha256.clone()) {
        Ok(url) => url,
        Err(e) => {
            found.problem = format!("{e:#}");
            return found;
        }
    };
    let path = if url.bare_host { "/.well-known/caldav".to_string() } else { url.path.clone() };
    let per_read = crate::imap::io_timeout().min(REACH_READ);
    // No login: an empty one, which a server answers with 401, as it would a browser.
    let mut client = HttpClient::new(&url, "", &crate::secret::Secret::new(String::new())).with_timeout(per_read);
    let body = xml::propfind_members();
    let request = Request {
        method: "PROPFIND",
        path: &path,
        headers: &[("Depth", "0"), ("Content-Type", "application/xml; charset=utf-8")],
        body: &body,
        max_body: 64 * 1024,
        point_after_send: None,
    };
    let late = async {
        smol::Timer::after(REACH_DEADLINE).await;
        Err(anyhow::anyhow!("no answer within {} s", REACH_DEADLINE.as_secs()))
    };
    match smol::future::or(client.send(&request), late).await {
        Ok(answer) => {
            found.status = Some(answer.status);
            found.location = answer.location().map(str::to_string);
        }
        Err(e) => found.problem = format!("{e:#}"),
    }
    found
}

/// The DAV check of one account; None when no DAV servers are set up.
pub async fn check_account(store: &Store, account: &Account) -> Result<Option<DavCheck>> {
    let (Some(source), Some(target)) = (store.dav_server("source")?, store.dav_server("target")?) else {
        return Ok(None);
    };
    let mut check = DavCheck::default();
    let source_url = DavUrl::parse(&source.url, source.pin_sha256.clone())?;
    let target_url = DavUrl::parse(&target.url, target.pin_sha256.clone())?;
    let mut sides = Vec::new();
    for (side, url) in [("source", &source_url), ("target", &target_url)] {
        let (login, password) = super::login_for(account, side);
        let opened = match password {
            Some(password) => discover::open_side(side, url, login, password).await,
            None => Err(anyhow::anyhow!("no {side} password for calendars and contacts")),
        };
        match opened {
            Ok(dav) => sides.push(dav),
            Err(e) => {
                // Only a refused login (or no password) is a login failure; a typo in the address, a
                // closed port or a certificate is the server's problem, said in its own words.
                let refused = matches!(super::kind_of(&e), Some(super::DavError::LoginRefused { .. })) || password.is_none();
                if refused {
                    check.login_failed = Some(side.to_string());
                }
                check.problem = format!("the {side} calendar server: {e:#}");
                return Ok(Some(check));
            }
        }
    }
    let (Some(target_side), Some(mut source_side)) = (sides.pop(), sides.pop()) else { return Ok(Some(check)) };
    check.target_has_calendars = !target_side.calendar_homes.is_empty();
    check.target_has_address_books = !target_side.addressbook_homes.is_empty();
    if let Err(e) = measure(&mut source_side, &mut check).await {
        check.problem = format!("could not count everything: {e:#}");
    }
    drop(target_side.client);
    Ok(Some(check))
}

async fn measure(source: &mut DavSide, check: &mut DavCheck) -> Result<()> {
    for found in discover::collections(source).await? {
        let props = &found.member.props;
        let mut checked = CheckedCollection {
            kind: found.kind.to_string(),
            name: props.displayname.clone().unwrap_or_else(|| href::last_segment(&found.href).to_string()),
            colour: props.calendar_color.clone(),
            items: 0,
            bytes: 0,
            skipped: found.skip_reason.map(str::to_string),
        };
        if checked.skipped.is_none() {
            let listing = source.propfind_multistatus(&found.href, "1", &xml::propfind_members(), "the list of items").await?;
            for member in &listing.responses {
                let is_item = source.path_of(&member.href).is_some_and(|p| !href::same(&p, &found.href)) && !member.props.is_collection;
                if is_item {
                    checked.items += 1;
                    checked.bytes += member.props.content_length.unwrap_or(0);
                }
            }
        }
        check.collections.push(checked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_test_says_any_answer_is_reachable_and_no_answer_why() {
        let reach = |status: Option<u16>, location: Option<&str>, problem: &str| DavReach {
            url: "https://dav.ny.se/".into(),
            status,
            location: location.map(str::to_string),
            problem: problem.into(),
        };
        assert_eq!(
            reach(Some(401), None, "").line("target"),
            "target calendar server at https://dav.ny.se/: reachable (HTTP 401, asks for a login)"
        );
        assert!(
            reach(Some(301), Some("https://dav.ny.se/dav/"), "")
                .line("source")
                .ends_with("(HTTP 301, points on to https://dav.ny.se/dav/)")
        );
        assert!(reach(Some(207), None, "").reachable());
        let down = reach(None, None, "connection refused");
        assert!(!down.reachable());
        assert_eq!(down.line("source"), "source calendar server at https://dav.ny.se/: NOT reachable: connection refused");
    }

    #[test]
    fn skipped_collections_and_failed_logins_in_words() {
        assert_eq!(skip_words("shared_by_other_owner"), "shared with you by another user: moves with its owner's account");
        assert_eq!(skip_words("subscription"), "a subscription");
        let failed = DavCheck { problem: "401".into(), login_failed: Some("target".into()), ..DavCheck::default() };
        assert_eq!(failed.line(), "calendars and contacts: calendar login failed on the new server: 401");
    }
}
