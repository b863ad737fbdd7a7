//! The calendar and contact part of the pre-flight check (`postflytt check`): the DAV login on each
//! side, the source's calendars and address books with their items counted and sized, the ones that
//! will not move and why, and whether the target has a place for each kind. Nothing changes on either
//! server: only PROPFIND.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::discover::{self, DavSide};
use super::{href, url::DavUrl, xml};
use crate::store::{Account, Store};

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
            return format!("calendars and contacts: {side} login failed: {}", self.problem);
        }
        if !self.problem.is_empty() {
            return format!("calendars and contacts: {}", self.problem);
        }
        let skipped = self.collections.iter().filter(|c| c.skipped.is_some()).count();
        let mut line = format!(
            "calendars and contacts: {} calendars, {} address books, {} items",
            self.calendars(),
            self.address_books(),
            self.items()
        );
        if skipped > 0 {
            line.push_str(&format!(", {skipped} shared or subscribed left out"));
        }
        line
    }
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
                check.login_failed = Some(side.to_string());
                check.problem = format!("{e:#}");
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
