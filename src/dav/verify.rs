//! The calendar and contact part of finish's verification: for every calendar and address book the
//! source holds now, each item it lists is on the target (its recorded copy listed in the target
//! collection) or skipped with a reason in the ledger. The source and the target are both read again,
//! by PROPFIND only; what the store recorded is only the map between them. An item the source has that
//! no pass has seen yet is missing, so finish runs a last pass first.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::discover::{self, DavSide};
use super::{href, url::DavUrl, xml};
use crate::store::{Account, Store};

/// Items named per collection in the notes; the count is exact.
const NAMED_MAX: usize = 20;

/// One source collection checked against the target.
#[derive(Debug, Clone, Default)]
pub struct CollectionCheck {
    /// "calendar Jobb" / "address book Kontakter".
    pub name: String,
    pub target_href: String,
    pub source_items: u64,
    pub on_target: u64,
    pub skipped: u64,
    pub missing: u64,
    /// Items in the target collection now, and the copies we recorded there.
    pub target_items: u64,
    pub recorded: u64,
    /// Which item is missing and why (capped).
    pub notes: Vec<String>,
}

/// Verifies the account's calendars and contacts; None when no DAV servers are set up.
pub async fn verify_account(store: &Store, account: &Account) -> Result<Option<Vec<CollectionCheck>>> {
    let (Some(source), Some(target)) = (store.dav_server("source")?, store.dav_server("target")?) else {
        return Ok(None);
    };
    let mut sides = Vec::new();
    for (side, setting) in [("source", &source), ("target", &target)] {
        let url = DavUrl::parse(&setting.url, setting.pin_sha256.clone())?;
        let (login, password) = super::login_for(account, side);
        let password = password.ok_or_else(|| anyhow::anyhow!("no {side} password for calendars and contacts"))?;
        sides.push(discover::open_side(side, &url, login, password).await?);
    }
    let (Some(mut target_side), Some(mut source_side)) = (sides.pop(), sides.pop()) else { return Ok(Some(Vec::new())) };
    let rows = store.dav_collections(account.id)?;
    let mut checks = Vec::new();
    let found_now = discover::collections(&mut source_side).await?;
    let copied = rows.iter().filter(|r| r.state == "present").count();
    if copied > 0 && found_now.iter().all(|f| f.skip_reason.is_some()) {
        // Every calendar gone at once is far likelier a server answering half-way than a user deleting
        // them all: not a verification that passes.
        anyhow::bail!(
            "the old calendar server lists no calendars or address books now, though {copied} were copied: check it, then verify again"
        );
    }
    for found in found_now {
        if found.skip_reason.is_some() {
            continue;
        }
        let kind = if found.kind == "calendar" { "calendar" } else { "address book" };
        let name = found.member.props.displayname.clone().unwrap_or_else(|| href::last_segment(&found.href).to_string());
        let mut check = CollectionCheck { name: format!("{kind} {name}"), ..CollectionCheck::default() };
        let source_items = members(&mut source_side, &found.href).await?;
        check.source_items = source_items.len() as u64;
        let row = rows.iter().find(|r| href::same(&r.source_href, &found.href));
        let items = match row {
            Some(row) => store.dav_item_copies(row.id)?,
            None => BTreeMap::new(),
        };
        let on_target = match row.and_then(|r| r.target_href.clone()) {
            Some(target_href) => {
                check.target_href = target_href.clone();
                members(&mut target_side, &target_href).await?
            }
            None => BTreeSet::new(),
        };
        check.target_items = on_target.len() as u64;
        // Distinct copies: two source items with one UID share the copy the target let in.
        let copies: BTreeSet<&String> = items.values().filter(|(state, _)| state == "pushed").filter_map(|(_, t)| t.as_ref()).collect();
        check.recorded = copies.len() as u64;
        for item in &source_items {
            let copy = items.iter().find(|(source_href, _)| href::same(source_href, item)).map(|(_, v)| v);
            let why = match copy {
                Some((state, _)) if state == "refused" => {
                    check.skipped += 1;
                    continue;
                }
                Some((state, Some(target))) if state == "pushed" => {
                    if on_target.iter().any(|t| href::same(t, target)) {
                        check.on_target += 1;
                        continue;
                    }
                    format!("its copy {target} is no longer on the new server")
                }
                Some(_) => "not copied yet".to_string(),
                None => "new on the old server since the last pass".to_string(),
            };
            check.missing += 1;
            if check.notes.len() < NAMED_MAX {
                check.notes.push(format!("{}: {} is missing: {why}", check.name, href::last_segment(item)));
            }
        }
        checks.push(check);
    }
    Ok(Some(checks))
}

/// The item hrefs of a collection (PROPFIND Depth 1), the collection itself and sub-collections left out.
async fn members(side: &mut DavSide, collection: &str) -> Result<BTreeSet<String>> {
    let listing = side.propfind_multistatus(collection, "1", &xml::propfind_members(), "the list of items").await?;
    let cut = listing.responses.iter().any(|m| m.status == Some(507) && side.path_of(&m.href).is_some_and(|h| href::same(&h, collection)));
    if cut {
        anyhow::bail!("the {} server cut its list of {collection} short (507): not a list to verify against", side.side);
    }
    Ok(listing
        .responses
        .iter()
        .filter(|m| !m.props.is_collection && m.status.is_none_or(|s| s == 200))
        .filter_map(|m| side.path_of(&m.href))
        .filter(|h| !href::same(h, collection))
        .collect())
}
