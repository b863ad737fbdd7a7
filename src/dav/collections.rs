//! A source collection's place on the target (issue 19, `docs/dav.md` §3): the host's own collection
//! of the same kind and name adopted when it is the user's, else a new one made under the target's home
//! (MKCALENDAR, or extended MKCOL for an address book) at an href chosen and journalled first, then its
//! colour set; a journalled creation whose answer was lost is found by PROPFIND.

use anyhow::{Result, bail};

use super::copy::CollectionWork;
use super::discover;
use super::http::{MULTISTATUS_MAX, Request};
use super::{DavError, href, xml};
use crate::fault;

/// A collection on the target as a pass sees it before making one: its href is taken, and it may be
/// adopted when it is the user's own (not shared with them by another owner, which would put our items
/// into a colleague's calendar).
pub(super) struct TargetCollection {
    pub(super) href: String,
    pub(super) kind: &'static str,
    pub(super) name: String,
    pub(super) adoptable: bool,
}

impl CollectionWork<'_> {
    /// The collection on the target: made now (journalled first), or resolved from an earlier pass. None
    /// when the target has nowhere to put it.
    pub(super) async fn ensure_target_collection(&mut self, target_hrefs: &mut Option<Vec<TargetCollection>>) -> Result<Option<String>> {
        let collection = self.collection;
        match (collection.state.as_str(), &collection.target_href) {
            ("present", Some(href)) => return Ok(Some(href.clone())),
            ("creating", Some(href)) => {
                let href = href.clone();
                if self.target_collection_exists(&href).await? {
                    self.set_colour(&href).await?;
                    self.store.write(|tx| tx.mark_dav_collection_present(collection.id, "created"))?;
                    return Ok(Some(href));
                }
                return self.create_collection(href).await.map(Some);
            }
            _ => {}
        }
        let homes = if collection.kind == "calendar" { &self.target.calendar_homes } else { &self.target.addressbook_homes };
        let Some(home) = homes.first().cloned() else {
            bail!(DavError::Server {
                side: "target",
                status: 404,
                what: format!("a place for the {} {:?} (the new server names no home for them)", collection.kind, collection.displayname),
            });
        };
        if target_hrefs.is_none() {
            let found = discover::collections(self.target).await?;
            *target_hrefs = Some(
                found
                    .into_iter()
                    .map(|f| TargetCollection {
                        adoptable: f.skip_reason.is_none(),
                        name: f.member.props.displayname.unwrap_or_default(),
                        href: f.href,
                        kind: f.kind,
                    })
                    .collect(),
            );
        }
        let existing = target_hrefs.get_or_insert_with(Vec::new);
        let in_use: Vec<String> = self.store.dav_collections(self.account.id)?.into_iter().filter_map(|c| c.target_href).collect();
        // A collection of the same kind and name the new host already has (its default "Calendar" or
        // "Contacts", made when the user was) is where the users expect their items: adopted, never
        // deleted by mirroring (`found`). Each target collection takes one source collection.
        let adoptable = existing.iter().find(|TargetCollection { href, kind, name, adoptable }| {
            *adoptable
                && *kind == collection.kind
                && !collection.displayname.is_empty()
                && name.trim().eq_ignore_ascii_case(collection.displayname.trim())
                && !in_use.iter().any(|u| href::same(u, href))
        });
        if let Some(TargetCollection { href, .. }) = adoptable {
            let href = href.clone();
            self.store.write(|tx| {
                tx.mark_dav_collection_creating(collection.id, &href)?;
                tx.mark_dav_collection_present(collection.id, "found")
            })?;
            return Ok(Some(href));
        }
        let mut slug = href::slug(&collection.displayname);
        if slug.is_empty() {
            slug = href::slug(href::last_segment(&collection.source_href));
        }
        if slug.is_empty() {
            slug = if collection.kind == "calendar" { "calendar".into() } else { "contacts".into() };
        }
        let mut candidate = format!("{home}{slug}/");
        let mut n = 2;
        while existing.iter().any(|t| href::same(&t.href, &candidate)) || in_use.iter().any(|t| href::same(t, &candidate)) {
            candidate = format!("{home}{slug}-{n}/");
            n += 1;
        }
        let kind = if collection.kind == "calendar" { "calendar" } else { "addressbook" };
        existing.push(TargetCollection { href: candidate.clone(), kind, name: collection.displayname.clone(), adoptable: false });
        self.store.write(|tx| tx.mark_dav_collection_creating(collection.id, &candidate))?;
        fault::point("dav: collection create journalled");
        self.create_collection(candidate).await.map(Some)
    }

    pub(super) async fn create_collection(&mut self, href: String) -> Result<String> {
        let collection = self.collection;
        let (method, body) = if collection.kind == "calendar" {
            let components: Vec<String> = collection.components.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect();
            let body =
                xml::mkcalendar(&collection.displayname, collection.colour.as_deref(), collection.description.as_deref(), &components);
            ("MKCALENDAR", body)
        } else {
            ("MKCOL", xml::mkcol_addressbook(&collection.displayname, collection.description.as_deref()))
        };
        let headers = [("Content-Type", "application/xml; charset=utf-8")];
        let request = Request {
            method,
            path: &href,
            headers: &headers,
            body: &body,
            max_body: MULTISTATUS_MAX,
            point_after_send: Some("dav: collection created, not recorded"),
        };
        let response = self.send(true, &request).await?;
        // 405 (MKCOL on an existing resource, RFC 4918 §9.3.1) or 403 resource-must-be-null (RFC 4791
        // §5.3.1.1): an earlier attempt of ours arrived; the href was fresh when it was journalled.
        let exists_already = matches!(response.status, 403 | 405) && self.target_collection_exists(&href).await?;
        if !response.is_success() && !exists_already {
            return Err(self.server_error("target", &response, &format!("{method} {href}")));
        }
        self.set_colour(&href).await?;
        self.store.write(|tx| tx.mark_dav_collection_present(collection.id, "created"))?;
        self.stats.created += 1;
        Ok(href)
    }

    /// `xandikos_mkcalendar_drops_color` (xandikos 0.2.8): MKCALENDAR answers 201 without storing the
    /// colour, so the colour is also set by PROPPATCH (idempotent, one request per new calendar).
    pub(super) async fn set_colour(&mut self, href: &str) -> Result<()> {
        let Some(colour) = self.collection.colour.as_deref().filter(|c| !c.is_empty()) else { return Ok(()) };
        let body = xml::proppatch(None, Some(colour));
        let headers = [("Content-Type", "application/xml; charset=utf-8")];
        let request =
            Request { method: "PROPPATCH", path: href, headers: &headers, body: &body, max_body: MULTISTATUS_MAX, point_after_send: None };
        let response = self.send(true, &request).await?;
        if !response.is_success() {
            log::warn!(
                "{}: the new server did not take the colour of {:?} ({})",
                self.account.source_login,
                self.collection.displayname,
                response.status
            );
        }
        Ok(())
    }

    pub(super) async fn target_collection_exists(&mut self, href: &str) -> Result<bool> {
        let response = self.target.propfind(href, "0", &xml::propfind_collections()).await?;
        if response.status != 207 {
            return Ok(false);
        }
        let listing = xml::parse_multistatus(&response.body)?;
        Ok(listing.responses.iter().any(|m| m.props.is_calendar || m.props.is_addressbook))
    }
}
