//! What the calendar and contact copy (the `dav` module) records: an account's collections on the old
//! server and where each went on the new (`dav_collection`), and per item its source href and ETag, the
//! bytes staged until the target confirms them, and the journal of every PUT and DELETE on the target
//! (`dav_item.push_state`, `dav_item.mirror`), each committed before the request goes out. An item's
//! target href is chosen and committed with its `putting` mark, so a pass after a crash looks in exactly
//! one place for a copy that may or may not have arrived. The design is `docs/dav.md` §2 and §3.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{Store, Tx};
use crate::units::now;

/// A collection as a source listing shows it, for `Tx::record_dav_collection`.
#[derive(Debug, Clone, Default)]
pub struct ListedCollection {
    /// `calendar` or `addressbook`.
    pub kind: &'static str,
    pub source_href: String,
    pub displayname: String,
    pub colour: Option<String>,
    pub description: Option<String>,
    /// `VEVENT,VTODO` as the source says; empty when it did not say.
    pub components: String,
    /// Why it is not copied (`shared_by_other_owner`, ...), or None.
    pub skip_reason: Option<String>,
}

/// A collection row as the copy works with it.
#[derive(Debug, Clone)]
pub struct DavCollection {
    pub id: i64,
    pub kind: String,
    pub source_href: String,
    pub target_href: Option<String>,
    pub displayname: String,
    pub colour: Option<String>,
    pub description: Option<String>,
    pub components: String,
    pub ctag: Option<String>,
    pub sync_token: Option<String>,
    pub state: String,
    pub origin: Option<String>,
    pub absent_listings: i64,
}

/// A member of a source collection as its listing shows it.
#[derive(Debug, Clone)]
pub struct ListedItem {
    pub href: String,
    pub etag: Option<String>,
    pub size: Option<u64>,
}

/// What one listing changed in the rows: for the pass's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingChanges {
    pub new: u64,
    pub changed: u64,
    /// Rows the listing left out for the first time (marked `gone_at`): only a second listing without
    /// them lets the mirror rule act.
    pub first_absent: Vec<i64>,
    /// Rows a sync answer reported deleted (marked `gone_at` now, or already).
    pub gone: Vec<i64>,
}

/// An item whose body the reader is to fetch.
#[derive(Debug, Clone)]
pub struct ItemToFetch {
    pub id: i64,
    pub source_href: String,
    pub size: u64,
}

/// Bytes fetched from the source for one item, for `Tx::stage_dav_item`.
#[derive(Debug, Clone)]
pub struct StagedItem {
    pub id: i64,
    pub etag: Option<String>,
    pub uid: Option<String>,
    pub sha256: Vec<u8>,
    pub content_hash: Vec<u8>,
    pub body: Vec<u8>,
}

/// An item row with what the writer needs to send it, or to resolve its journal state.
#[derive(Debug, Clone)]
pub struct DavItem {
    pub id: i64,
    pub uid: Option<String>,
    pub source_href: String,
    pub target_href: Option<String>,
    pub target_etag: Option<String>,
    pub sha256: Option<Vec<u8>>,
    /// The normalised content last written to the target (or, before the first PUT, of the staged bytes).
    pub content_hash: Option<Vec<u8>>,
    pub body: Option<Vec<u8>>,
    pub push_state: String,
    pub origin: Option<String>,
    pub mirror: Option<String>,
}

const COLLECTION_COLUMNS: &str = "id, kind, source_href, target_href, displayname, colour, description, components, ctag, \
     sync_token, state, origin, absent_listings";

fn collection_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<DavCollection> {
    Ok(DavCollection {
        id: row.get(0)?,
        kind: row.get(1)?,
        source_href: row.get(2)?,
        target_href: row.get(3)?,
        displayname: row.get(4)?,
        colour: row.get(5)?,
        description: row.get(6)?,
        components: row.get(7)?,
        ctag: row.get(8)?,
        sync_token: row.get(9)?,
        state: row.get(10)?,
        origin: row.get(11)?,
        absent_listings: row.get(12)?,
    })
}

const ITEM_COLUMNS: &str = "id, uid, source_href, target_href, target_etag, sha256, content_hash, body, push_state, origin, mirror";

fn item_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<DavItem> {
    let body: Option<Vec<u8>> = row.get(7)?;
    // For a copy the source changed, `content_hash` stays what the target holds until the replacement
    // arrives; the staged bytes' own hash is computed from `body` when they are sent.
    let content_hash: Option<Vec<u8>> = row.get(6)?;
    Ok(DavItem {
        id: row.get(0)?,
        uid: row.get(1)?,
        source_href: row.get(2)?,
        target_href: row.get(3)?,
        target_etag: row.get(4)?,
        sha256: row.get(5)?,
        content_hash,
        body,
        push_state: row.get(8)?,
        origin: row.get(9)?,
        mirror: row.get(10)?,
    })
}

impl Store {
    /// The account's collections, in the order they were first listed.
    pub fn dav_collections(&self, account_id: i64) -> Result<Vec<DavCollection>> {
        let mut statement =
            self.conn.prepare_cached(&format!("SELECT {COLLECTION_COLUMNS} FROM dav_collection WHERE account_id = ?1 ORDER BY id"))?;
        let rows = statement.query_map([account_id], collection_of)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Up to `limit` items whose bytes are to be fetched: new ones not staged yet, and copied ones the
    /// source changed since.
    pub fn dav_items_to_fetch(&self, collection_id: i64, limit: usize) -> Result<Vec<ItemToFetch>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, source_href, size FROM dav_item WHERE collection_id = ?1 AND body IS NULL AND mirror IS NULL \
             AND gone_at IS NULL AND (push_state = 'pending' OR (push_state = 'pushed' AND changed_at IS NOT NULL)) \
             ORDER BY id LIMIT ?2",
        )?;
        let rows = statement
            .query_map(params![collection_id, limit as i64], |r| {
                Ok(ItemToFetch { id: r.get(0)?, source_href: r.get(1)?, size: r.get::<_, i64>(2)?.max(0) as u64 })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Up to `limit` staged items waiting to be sent: new ones (`pending`) and changes to copies (`pushed`
    /// with `changed_at`).
    pub fn dav_items_to_push(&self, collection_id: i64, limit: usize) -> Result<Vec<DavItem>> {
        // The bodies stay in the database: the writer reads each when it sends it (`dav_item_body`).
        let columns = ITEM_COLUMNS.replace("body,", "NULL,");
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {columns} FROM dav_item WHERE collection_id = ?1 AND body IS NOT NULL AND mirror IS NULL \
             AND (push_state = 'pending' OR (push_state = 'pushed' AND changed_at IS NOT NULL)) ORDER BY id LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![collection_id, limit as i64], item_of)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Items a pass left in the middle of a PUT or a DELETE: resolved before anything new is sent.
    pub fn dav_items_unresolved(&self, collection_id: i64) -> Result<Vec<DavItem>> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM dav_item WHERE collection_id = ?1 \
             AND (push_state IN ('putting', 'replacing') OR mirror IS NOT NULL) ORDER BY id"
        ))?;
        let rows = statement.query_map([collection_id], item_of)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Items a listing left out (`gone_at`); the caller leaves out the ones the latest listing marked
    /// for the first time, so the mirror rule acts on a second listing without them.
    pub fn dav_items_gone(&self, collection_id: i64) -> Result<Vec<DavItem>> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM dav_item WHERE collection_id = ?1 AND gone_at IS NOT NULL AND mirror IS NULL ORDER BY id"
        ))?;
        let rows = statement.query_map([collection_id], item_of)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every item row of a collection as source href -> (push state, target href), for verification.
    pub fn dav_item_copies(&self, collection_id: i64) -> Result<std::collections::BTreeMap<String, (String, Option<String>)>> {
        let mut statement =
            self.conn.prepare_cached("SELECT source_href, push_state, target_href FROM dav_item WHERE collection_id = ?1")?;
        let rows = statement
            .query_map([collection_id], |r| Ok((r.get::<_, String>(0)?, (r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every source href of a collection's rows, as recorded.
    pub fn dav_item_source_hrefs(&self, collection_id: i64) -> Result<Vec<String>> {
        let mut statement = self.conn.prepare_cached("SELECT source_href FROM dav_item WHERE collection_id = ?1")?;
        let rows = statement.query_map([collection_id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// An item's staged bytes, read one at a time by the writer.
    pub fn dav_item_body(&self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(self.conn.row("SELECT body FROM dav_item WHERE id = ?1", [id], |r| r.get(0)).optional()?.flatten())
    }

    /// A row of ours the source no longer lists whose copy is at this target href, if any.
    pub fn dav_gone_copy_at(&self, collection_id: i64, target_href: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .row(
                "SELECT id FROM dav_item WHERE collection_id = ?1 AND target_href = ?2 AND gone_at IS NOT NULL AND origin = 'put' \
                 AND push_state = 'pushed' AND mirror IS NULL",
                params![collection_id, target_href],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether another row the source still lists holds the same target copy, or the same UID: then a
    /// gone row's copy is not deleted (it is that row's now, or its twin's).
    pub fn dav_copy_still_wanted(&self, collection_id: i64, id: i64, target_href: &str, uid: Option<&str>) -> Result<bool> {
        Ok(self
            .conn
            .row(
                "SELECT 1 FROM dav_item WHERE collection_id = ?1 AND id != ?2 AND gone_at IS NULL \
                 AND (target_href = ?3 OR (?4 IS NOT NULL AND uid = ?4)) LIMIT 1",
                params![collection_id, id, target_href, uid],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Whether a listing left out some item of the collection that no second listing has confirmed gone.
    pub fn dav_has_absent_items(&self, collection_id: i64) -> Result<bool> {
        Ok(self
            .conn
            .row("SELECT 1 FROM dav_item WHERE collection_id = ?1 AND gone_at IS NOT NULL LIMIT 1", [collection_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The target hrefs of the items we put into a collection, for deciding whether it holds only ours.
    pub fn dav_our_target_hrefs(&self, collection_id: i64) -> Result<Vec<String>> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT target_href FROM dav_item WHERE collection_id = ?1 AND origin = 'put' AND target_href IS NOT NULL")?;
        let rows = statement.query_map([collection_id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// Whether a target href is already taken by another item of the collection.
    pub fn dav_target_href_taken(&self, collection_id: i64, target_href: &str, except_id: i64) -> Result<bool> {
        Ok(self
            .conn
            .row(
                "SELECT 1 FROM dav_item WHERE collection_id = ?1 AND target_href = ?2 AND id != ?3",
                params![collection_id, target_href, except_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Counts for the status, the page and the report.
    pub fn dav_counts(&self, account_id: i64) -> Result<DavCounts> {
        let mut counts = DavCounts::default();
        let mut statement = self.conn.prepare_cached(
            "SELECT c.kind, c.state, COUNT(i.id), COALESCE(SUM(i.push_state = 'pushed'), 0), \
             COALESCE(SUM(i.push_state = 'refused'), 0) \
             FROM dav_collection c LEFT JOIN dav_item i ON i.collection_id = c.id WHERE c.account_id = ?1 GROUP BY c.id",
        )?;
        let rows = statement.query_map([account_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))
        })?;
        for row in rows {
            let (kind, state, items, copied, refused) = row?;
            if state == "skipped" {
                counts.skipped_collections += 1;
                continue;
            }
            if kind == "calendar" {
                counts.calendars += 1;
            } else {
                counts.address_books += 1;
            }
            counts.items += items as u64;
            counts.copied += copied as u64;
            counts.refused += refused as u64;
        }
        Ok(counts)
    }
}

/// An account's calendars and contacts in numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DavCounts {
    pub calendars: u64,
    pub address_books: u64,
    pub skipped_collections: u64,
    pub items: u64,
    pub copied: u64,
    pub refused: u64,
}

impl Tx<'_> {
    /// Records a collection the source listed (new, or its name, colour and description as they are
    /// now), and that it was seen: its absence count starts again. Whether it is skipped (shared by
    /// another owner, a subscription) follows the listing until something of it is copied. Returns its id.
    pub fn record_dav_collection(&self, account_id: i64, listed: &ListedCollection) -> Result<i64> {
        let conn = self.conn();
        conn.run(
            "INSERT INTO dav_collection (account_id, kind, components, source_href, displayname, colour, description, state, skip_reason) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?8 IS NULL THEN 'pending' ELSE 'skipped' END, ?8) \
             ON CONFLICT (account_id, source_href) DO UPDATE SET displayname = excluded.displayname, colour = excluded.colour, \
             description = excluded.description, components = excluded.components, absent_listings = 0, \
             state = CASE WHEN state = 'pending' AND excluded.skip_reason IS NOT NULL THEN 'skipped' \
                          WHEN state = 'skipped' AND excluded.skip_reason IS NULL THEN 'pending' ELSE state END, \
             skip_reason = CASE WHEN state IN ('pending', 'skipped') THEN excluded.skip_reason ELSE skip_reason END",
            params![
                account_id,
                listed.kind,
                listed.components,
                listed.source_href,
                listed.displayname,
                listed.colour,
                listed.description,
                listed.skip_reason
            ],
        )?;
        Ok(conn.row(
            "SELECT id FROM dav_collection WHERE account_id = ?1 AND source_href = ?2",
            params![account_id, listed.source_href],
            |r| r.get(0),
        )?)
    }

    /// Counts one more listing without each of the account's collections not in `seen`.
    pub fn mark_dav_collections_absent(&self, account_id: i64, seen: &[i64]) -> Result<()> {
        let mut statement = self.conn().prepare_cached("SELECT id FROM dav_collection WHERE account_id = ?1")?;
        let ids = statement.query_map([account_id], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        for id in ids.into_iter().filter(|id| !seen.contains(id)) {
            self.conn().run("UPDATE dav_collection SET absent_listings = absent_listings + 1 WHERE id = ?1", [id])?;
        }
        Ok(())
    }

    /// The journal of a new collection on the target: its href chosen and committed before MKCALENDAR.
    pub fn mark_dav_collection_creating(&self, id: i64, target_href: &str) -> Result<()> {
        self.conn().run("UPDATE dav_collection SET state = 'creating', target_href = ?2 WHERE id = ?1", params![id, target_href])?;
        Ok(())
    }

    /// The collection is on the target, made by us (`created`) or found there.
    pub fn mark_dav_collection_present(&self, id: i64, origin: &str) -> Result<()> {
        self.conn().run("UPDATE dav_collection SET state = 'present', origin = ?2 WHERE id = ?1", params![id, origin])?;
        Ok(())
    }

    /// The journal of a collection's deletion on the target.
    pub fn mark_dav_collection_deleting(&self, id: i64) -> Result<()> {
        self.conn().run("UPDATE dav_collection SET state = 'deleting' WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Forgets a collection and its items (gone from the source and dealt with).
    pub fn forget_dav_collection(&self, id: i64) -> Result<()> {
        self.conn().run("DELETE FROM dav_collection WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The collection's change marks as of a listing whose changes are all recorded.
    pub fn record_dav_change_marks(&self, id: i64, ctag: Option<&str>, sync_token: Option<&str>) -> Result<()> {
        self.conn().run("UPDATE dav_collection SET ctag = ?2, sync_token = ?3 WHERE id = ?1", params![id, ctag, sync_token])?;
        Ok(())
    }

    /// Records a complete listing of a source collection: new members as `pending` rows, changed ETags
    /// marked for a new fetch, members left out marked `gone_at` (the second time, the mirror rule acts),
    /// and members back again unmarked.
    pub fn record_dav_listing(&self, collection_id: i64, listed: &[ListedItem]) -> Result<ListingChanges> {
        let conn = self.conn();
        let mut changes = ListingChanges::default();
        let mut known = std::collections::HashMap::new();
        {
            let mut statement =
                conn.prepare_cached("SELECT id, source_href, source_etag, push_state, gone_at FROM dav_item WHERE collection_id = ?1")?;
            let rows = statement.query_map([collection_id], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    (r.get::<_, i64>(0)?, r.get::<_, Option<String>>(2)?, r.get::<_, String>(3)?, r.get::<_, Option<i64>>(4)?),
                ))
            })?;
            for row in rows {
                let (href, rest) = row?;
                known.insert(href, rest);
            }
        }
        let now = now();
        for item in listed {
            self.record_listed_item(collection_id, item, known.remove(&item.href), &mut changes)?;
        }
        for (_, (id, _, _, gone_at)) in known {
            if gone_at.is_none() {
                conn.run("UPDATE dav_item SET gone_at = ?2 WHERE id = ?1", params![id, now])?;
                changes.first_absent.push(id);
            }
        }
        Ok(changes)
    }

    /// Records what a sync-collection report (RFC 6578) said changed since the collection's token:
    /// members new or changed, and members gone. A member it reports gone (404) is gone for sure, so the
    /// mirror rule acts at once (nothing in `first_absent`).
    pub fn record_dav_changes(&self, collection_id: i64, changed: &[ListedItem], removed: &[String]) -> Result<ListingChanges> {
        let mut changes = ListingChanges::default();
        let mut statement = self
            .conn()
            .prepare_cached("SELECT id, source_etag, push_state, gone_at FROM dav_item WHERE collection_id = ?1 AND source_href = ?2")?;
        for item in changed {
            let known =
                statement.query_row(params![collection_id, item.href], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional()?;
            self.record_listed_item(collection_id, item, known, &mut changes)?;
        }
        for href in removed {
            let id: Option<i64> = self
                .conn()
                .row("SELECT id FROM dav_item WHERE collection_id = ?1 AND source_href = ?2", params![collection_id, href], |r| r.get(0))
                .optional()?;
            if let Some(id) = id {
                self.conn().run("UPDATE dav_item SET gone_at = COALESCE(gone_at, ?2) WHERE id = ?1", params![id, now()])?;
                changes.gone.push(id);
            }
        }
        Ok(changes)
    }

    /// One member of a listing against its row (id, source ETag, push state, gone_at), if it has one.
    fn record_listed_item(
        &self,
        collection_id: i64,
        item: &ListedItem,
        known: Option<(i64, Option<String>, String, Option<i64>)>,
        changes: &mut ListingChanges,
    ) -> Result<()> {
        let conn = self.conn();
        let Some((id, etag, state, gone_at)) = known else {
            conn.run(
                "INSERT INTO dav_item (collection_id, source_href, source_etag, size) VALUES (?1, ?2, NULL, ?3)",
                params![collection_id, item.href, item.size.unwrap_or(0) as i64],
            )?;
            changes.new += 1;
            return Ok(());
        };
        if gone_at.is_some() {
            conn.run("UPDATE dav_item SET gone_at = NULL WHERE id = ?1", [id])?;
        }
        let changed = item.etag.is_none() || etag.is_none() || item.etag != etag;
        if changed && state == "pushed" {
            conn.run("UPDATE dav_item SET changed_at = ?2 WHERE id = ?1 AND changed_at IS NULL", params![id, now()])?;
            changes.changed += 1;
        } else if changed && state == "refused" && etag.is_some() && item.etag != etag {
            // A refused item the user changed is tried again.
            conn.run("UPDATE dav_item SET push_state = 'pending', body = NULL WHERE id = ?1", [id])?;
            changes.changed += 1;
        }
        Ok(())
    }

    /// Records the bytes fetched for an item. For a copy the source changed, the new bytes wait beside
    /// the old content's hash; when their content is what the target holds already, nothing is to send.
    pub fn stage_dav_item(&self, staged: &StagedItem) -> Result<()> {
        let conn = self.conn();
        let (state, content_hash): (String, Option<Vec<u8>>) =
            conn.row("SELECT push_state, content_hash FROM dav_item WHERE id = ?1", [staged.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if state == "pushed" {
            if content_hash.as_deref() == Some(staged.content_hash.as_slice()) {
                conn.run("UPDATE dav_item SET source_etag = ?2, changed_at = NULL WHERE id = ?1", params![staged.id, staged.etag])?;
                return Ok(());
            }
            conn.run(
                "UPDATE dav_item SET source_etag = ?2, uid = COALESCE(?3, uid), sha256 = ?4, body = ?5, size = ?6 WHERE id = ?1",
                params![staged.id, staged.etag, staged.uid, staged.sha256, staged.body, staged.body.len() as i64],
            )?;
            return Ok(());
        }
        conn.run(
            "UPDATE dav_item SET source_etag = ?2, uid = ?3, sha256 = ?4, content_hash = ?5, body = ?6, size = ?7, missed_passes = 0 \
             WHERE id = ?1",
            params![staged.id, staged.etag, staged.uid, staged.sha256, staged.content_hash, staged.body, staged.body.len() as i64],
        )?;
        Ok(())
    }

    /// The journal of a PUT of a new item: its target href, committed before the request.
    pub fn mark_dav_putting(&self, id: i64, target_href: &str) -> Result<()> {
        self.conn().run("UPDATE dav_item SET push_state = 'putting', target_href = ?2 WHERE id = ?1", params![id, target_href])?;
        Ok(())
    }

    /// The journal of a replacing PUT (`If-Match`).
    pub fn mark_dav_replacing(&self, id: i64) -> Result<()> {
        self.conn().run("UPDATE dav_item SET push_state = 'replacing' WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The target holds the item: its href, ETag (None when the server gave none) and the content hash
    /// of what it holds; the staged bytes are released.
    pub fn record_dav_pushed(
        &self,
        id: i64,
        target_href: &str,
        target_etag: Option<&str>,
        content_hash: &[u8],
        origin: &str,
    ) -> Result<()> {
        self.conn().run(
            "UPDATE dav_item SET push_state = 'pushed', target_href = ?2, target_etag = ?3, content_hash = ?4, origin = ?5, \
             body = NULL, changed_at = NULL WHERE id = ?1",
            params![id, target_href, target_etag, content_hash, origin],
        )?;
        Ok(())
    }

    /// A change the target's copy could not take (a user changed it there): the target's is kept, the
    /// staged bytes released, and the source's ETag remembered so the same change is not tried again.
    pub fn keep_dav_target_copy(&self, id: i64) -> Result<()> {
        self.conn().run("UPDATE dav_item SET push_state = 'pushed', body = NULL, changed_at = NULL WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The source did not send this item when asked in this pass; returns in how many passes so far.
    pub fn count_dav_miss(&self, id: i64) -> Result<i64> {
        self.conn().run("UPDATE dav_item SET missed_passes = missed_passes + 1 WHERE id = ?1", [id])?;
        Ok(self.conn().row("SELECT missed_passes FROM dav_item WHERE id = ?1", [id], |r| r.get(0))?)
    }

    /// An item a listing left out that the source still has after all (a GET found it).
    pub fn clear_dav_gone(&self, id: i64) -> Result<()> {
        self.conn().run("UPDATE dav_item SET gone_at = NULL WHERE id = ?1", [id])?;
        Ok(())
    }

    /// A journalled replacement found not to have arrived: the change is sent again from its staged bytes.
    pub fn undo_dav_replacing(&self, id: i64) -> Result<()> {
        self.conn().run("UPDATE dav_item SET push_state = 'pushed' WHERE id = ?1", [id])?;
        Ok(())
    }

    /// A journalled PUT that did not arrive: sent again from the staged bytes, or fetched again first
    /// when they were released.
    pub fn mark_dav_pending(&self, id: i64) -> Result<()> {
        self.conn().run("UPDATE dav_item SET push_state = 'pending' WHERE id = ?1", [id])?;
        Ok(())
    }

    /// An item the target will not take, with its skip ledger entry in the same transaction.
    pub fn refuse_dav_item(&self, account_id: i64, id: i64, collection: &str, reason: &str, server_says: Option<&str>) -> Result<()> {
        self.conn().run("UPDATE dav_item SET push_state = 'refused', body = NULL WHERE id = ?1", [id])?;
        self.conn().run(
            "INSERT INTO skip (account_id, folder, reason, server_says, at, dav_item_id, calendar) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            params![account_id, collection, reason, server_says, now(), id],
        )?;
        Ok(())
    }

    /// The journal of a DELETE of our copy on the target.
    pub fn mark_dav_deleting(&self, id: i64) -> Result<()> {
        self.conn().run("UPDATE dav_item SET mirror = 'deleting' WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Forgets an item row (its copy deleted, or nothing to do for it).
    pub fn forget_dav_item(&self, id: i64) -> Result<()> {
        self.conn().run("DELETE FROM dav_item WHERE id = ?1", [id])?;
        Ok(())
    }

    /// A skip ledger entry about a collection or an item, without a state change.
    pub fn note_dav_skip(&self, account_id: i64, collection: &str, reason: &str, server_says: Option<&str>) -> Result<()> {
        self.conn().run(
            "INSERT INTO skip (account_id, folder, reason, server_says, at, calendar) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            params![account_id, collection, reason, server_says, now()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collections_skip_follows_the_listing_until_something_of_it_is_copied() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-dav-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.conn.run("INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se')", []).unwrap();
        let listed = |skip: Option<&str>| ListedCollection {
            kind: "calendar",
            source_href: "/a/jobb/".into(),
            displayname: "Jobb".into(),
            skip_reason: skip.map(str::to_string),
            ..ListedCollection::default()
        };
        let state = |store: &Store| store.dav_collections(1).unwrap()[0].state.clone();
        let id = store.write(|tx| tx.record_dav_collection(1, &listed(Some("shared_by_other_owner")))).unwrap();
        assert_eq!(state(&store), "skipped");
        store.write(|tx| tx.record_dav_collection(1, &listed(None))).unwrap();
        assert_eq!(state(&store), "pending", "the owner is the user's after all");
        store.write(|tx| tx.mark_dav_collection_present(id, "created")).unwrap();
        store.write(|tx| tx.record_dav_collection(1, &listed(Some("shared_by_other_owner")))).unwrap();
        assert_eq!(state(&store), "present", "copied once, it stays");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
