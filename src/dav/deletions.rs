//! Following the users' deletions on the old server (issue 19, `docs/dav.md` §4): an item or a
//! calendar the source no longer has is deleted on the target while the account mirrors (until its
//! users switch), only when the copy is ours, nobody changed it there, and no other row still holds it;
//! otherwise it is forgotten and the target keeps it. Each DELETE is journalled first, with the mirror
//! rule read again inside that transaction.

use anyhow::Result;

use super::copy::CollectionWork;
use super::{
    content, href,
    http::{MULTISTATUS_MAX, Request},
    xml,
};
use crate::fault;
use crate::store::dav::DavItem;

/// Which of the rows marked gone a listing proves gone.
pub(super) enum Gone {
    /// A sync answer: exactly the items it reported deleted (and those confirmed by GET).
    Only(Vec<i64>),
    /// A whole listing: every marked row but those it marked for the first time (two listings in a row).
    AllBut(Vec<i64>),
}

impl CollectionWork<'_> {
    /// Items the source no longer has (`gone` says which the latest listing proves): deleted on the
    /// target while the account mirrors and the copy is ours; forgotten otherwise.
    pub(super) async fn follow_deletions(&mut self, gone: &Gone) -> Result<()> {
        let mirrors = self.store.mirrors(self.account.id)?;
        for item in self.store.dav_items_gone(self.collection.id)? {
            let proven = match gone {
                Gone::Only(ids) => ids.contains(&item.id),
                Gone::AllBut(first_absent) => !first_absent.contains(&item.id),
            };
            if !proven {
                continue;
            }
            let ours = item.origin.as_deref() == Some("put") && item.push_state == "pushed";
            let wanted = match item.target_href.as_deref() {
                Some(href) => self.store.dav_copy_still_wanted(self.collection.id, item.id, href, item.uid.as_deref())?,
                None => false,
            };
            // The mirror rule read again inside the journal's transaction: a switch meanwhile stops it.
            let journalled = mirrors
                && ours
                && !wanted
                && item.target_href.is_some()
                && self.store.write(|tx| {
                    if !tx.still_mirrors(self.account.id)? {
                        return Ok(false);
                    }
                    tx.mark_dav_deleting(item.id)?;
                    Ok(true)
                })?;
            if journalled {
                fault::point("dav: delete journalled");
                self.delete_item(&item).await?;
            } else if item.push_state != "putting" && item.push_state != "replacing" {
                self.store.write(|tx| tx.forget_dav_item(item.id))?;
            }
        }
        Ok(())
    }

    /// DELETE of our copy with `If-Match`; a user's change on the target keeps it.
    pub(super) async fn delete_item(&mut self, item: &DavItem) -> Result<()> {
        let Some(target_href) = item.target_href.clone() else {
            self.store.write(|tx| tx.forget_dav_item(item.id))?;
            return Ok(());
        };
        let mut etag = item.target_etag.clone();
        if etag.is_none() {
            // The server gave no ETag for our copy (it rewrote it): look first, so a copy a user changed
            // there is kept, and delete with the ETag it has now.
            let current = self.get_target(&target_href).await?;
            match current.status {
                200 if item.content_hash.as_deref() == Some(content::content_hash(&current.body).as_slice()) => etag = current.etag(),
                200 => {
                    self.keep_changed_copy(item)?;
                    return Ok(());
                }
                404 | 410 => {
                    self.store.write(|tx| tx.forget_dav_item(item.id))?;
                    return Ok(());
                }
                _ => return Err(self.server_error("target", &current, &format!("GET {target_href}"))),
            }
        }
        let mut headers = Vec::new();
        if let Some(etag) = etag.as_deref() {
            headers.push(("If-Match", etag));
        }
        let request = Request {
            method: "DELETE",
            path: &target_href,
            headers: &headers,
            body: &[],
            max_body: MULTISTATUS_MAX,
            point_after_send: Some("dav: deleted, not recorded"),
        };
        let response = self.send(true, &request).await?;
        match response.status {
            200..=299 | 404 | 410 => {
                self.store.write(|tx| tx.forget_dav_item(item.id))?;
                self.stats.removed += 1;
            }
            412 => self.keep_changed_copy(item)?,
            _ => return Err(self.server_error("target", &response, &format!("DELETE {target_href}"))),
        }
        Ok(())
    }

    /// A copy the source deleted that a user changed on the target since: kept there, and said.
    pub(super) fn keep_changed_copy(&mut self, item: &DavItem) -> Result<()> {
        let reason = "deleted on the old server, but changed on the new one since it was copied: kept there";
        self.store.write(|tx| {
            tx.forget_dav_item(item.id)?;
            tx.note_dav_skip(self.account.id, &self.collection.displayname, reason, None)
        })?;
        self.stats.kept += 1;
        Ok(())
    }

    /// A collection the source left out of two listings: deleted on the target when we made it, it holds
    /// only our copies and the account mirrors; forgotten otherwise (the target keeps it).
    pub(super) async fn source_lost_collection(&mut self) -> Result<()> {
        let collection = self.collection;
        let ours = collection.origin.as_deref() == Some("created") && collection.state == "present";
        if ours
            && self.store.mirrors(self.account.id)?
            && let Some(target_href) = collection.target_href.clone()
        {
            {
                let listing = self.target.propfind_multistatus(&target_href, "1", &xml::propfind_members(), "a collection's items").await?;
                let our_hrefs = self.store.dav_our_target_hrefs(collection.id)?;
                let only_ours = listing.responses.iter().all(|member| match self.target.path_of(&member.href) {
                    Some(path) => href::same(&path, &target_href) || our_hrefs.iter().any(|o| href::same(o, &path)),
                    None => false,
                });
                let journalled = only_ours
                    && self.store.write(|tx| {
                        if !tx.still_mirrors(self.account.id)? {
                            return Ok(false);
                        }
                        tx.mark_dav_collection_deleting(collection.id)?;
                        Ok(true)
                    })?;
                if journalled {
                    fault::point("dav: collection delete journalled");
                    return self.delete_collection().await;
                }
                if !only_ours {
                    let reason = "deleted on the old server, but the new one holds items we did not copy in it: kept there";
                    self.store.write(|tx| tx.note_dav_skip(self.account.id, &collection.displayname, reason, None))?;
                }
            }
        }
        self.store.write(|tx| tx.forget_dav_collection(collection.id))?;
        Ok(())
    }

    pub(super) async fn delete_collection(&mut self) -> Result<()> {
        let collection = self.collection;
        if let Some(target_href) = collection.target_href.clone() {
            let request = Request {
                method: "DELETE",
                path: &target_href,
                headers: &[],
                body: &[],
                max_body: MULTISTATUS_MAX,
                point_after_send: Some("dav: collection deleted, not recorded"),
            };
            let response = self.send(true, &request).await?;
            if !(response.is_success() || matches!(response.status, 404 | 410)) {
                return Err(self.server_error("target", &response, &format!("DELETE {target_href}")));
            }
            self.stats.removed += 1;
        }
        self.store.write(|tx| tx.forget_dav_collection(collection.id))?;
        Ok(())
    }
}
