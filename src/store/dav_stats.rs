//! What the status, `status`, the page and the report read about calendars and contacts (issue 19,
//! `docs/dav.md` §6): whether DAV is set up on both sides, each collection with its items counted, and
//! the skip ledger's entries about them. Read-only; the copy's own bookkeeping is `dav.rs`.

use anyhow::Result;

use super::Store;

/// One collection as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DavCollectionStats {
    /// The display name on the old server (the source href's last segment when it has none).
    pub name: String,
    /// `calendar` or `addressbook`.
    pub kind: String,
    /// Left out on purpose (shared by another owner, a subscription, ...): `skip_reason` says why.
    pub skipped: bool,
    pub skip_reason: Option<String>,
    pub items: u64,
    pub copied: u64,
    pub refused: u64,
}

/// A skip ledger entry about a calendar or contact item or collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DavSkip {
    /// The collection's display name.
    pub collection: String,
    pub reason: String,
    pub server_says: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

impl Store {
    /// Whether calendars and contacts are moved at all: a DAV server on both sides. Without them the
    /// migration is mail only and nothing about DAV is shown.
    pub fn dav_set_up(&self) -> Result<bool> {
        Ok(self.dav_server("source")?.is_some() && self.dav_server("target")?.is_some())
    }

    /// An account's collections, calendars first then address books, each by name.
    pub fn dav_collection_stats(&self, account_id: i64) -> Result<Vec<DavCollectionStats>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT c.displayname, c.source_href, c.kind, c.state, c.skip_reason, COUNT(i.id), \
             COALESCE(SUM(i.push_state = 'pushed'), 0), COALESCE(SUM(i.push_state = 'refused'), 0) \
             FROM dav_collection c LEFT JOIN dav_item i ON i.collection_id = c.id WHERE c.account_id = ?1 \
             GROUP BY c.id ORDER BY c.kind DESC, c.displayname, c.source_href",
        )?;
        let rows = statement.query_map([account_id], |r| {
            let (name, href): (String, String) = (r.get(0)?, r.get(1)?);
            let state: String = r.get(3)?;
            Ok(DavCollectionStats {
                name: if name.is_empty() { href_name(&href) } else { name },
                kind: r.get(2)?,
                skipped: state == "skipped",
                skip_reason: r.get(4)?,
                items: r.get::<_, i64>(5)?.max(0) as u64,
                copied: r.get::<_, i64>(6)?.max(0) as u64,
                refused: r.get::<_, i64>(7)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The skip ledger's entries about an account's calendars and contacts (`skip.calendar`): an
    /// item's, or a collection's (its name as the folder).
    pub fn dav_skips(&self, account_id: i64) -> Result<Vec<DavSkip>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT coalesce(s.folder, ''), s.reason, s.server_says, s.at FROM skip s WHERE s.account_id = ?1 \
             AND s.calendar = 1 ORDER BY s.at, s.id",
        )?;
        let rows = statement
            .query_map([account_id], |r| Ok(DavSkip { collection: r.get(0)?, reason: r.get(1)?, server_says: r.get(2)?, at: r.get(3)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A collection's name from its href when it has no display name: the last path segment.
fn href_name(href: &str) -> String {
    href.trim_end_matches('/').rsplit('/').next().unwrap_or(href).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_are_counted_one_by_one() {
        let dir = std::env::temp_dir().join(format!("postflytt-dav-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se');
                 INSERT INTO dav_collection (account_id, kind, source_href, displayname) VALUES (1, 'addressbook', '/a/contacts/', '');
                 INSERT INTO dav_collection (account_id, kind, source_href, displayname) VALUES (1, 'calendar', '/a/work/', 'Arbete');
                 INSERT INTO dav_collection (account_id, kind, source_href, displayname, state, skip_reason)
                   VALUES (1, 'calendar', '/b/shared/', 'Delad', 'skipped', 'shared_by_other_owner');
                 INSERT INTO dav_item (collection_id, source_href, push_state) VALUES (2, '/a/work/1.ics', 'pushed');
                 INSERT INTO dav_item (collection_id, source_href, push_state) VALUES (2, '/a/work/2.ics', 'refused');
                 INSERT INTO dav_item (collection_id, source_href) VALUES (1, '/a/contacts/1.vcf');
                 INSERT INTO skip (account_id, folder, reason, at, dav_item_id, calendar) VALUES (1, 'Arbete', 'too big', 5, 2, 1);
                 INSERT INTO skip (account_id, folder, reason, at, calendar) VALUES (1, 'Delad', 'shared', 6, 1);
                 INSERT INTO skip (account_id, folder, reason, at) VALUES (1, 'INBOX', 'too large', 7);
                 INSERT INTO skip (account_id, folder, reason, at) VALUES (1, 'Arbete', 'a mail folder of the same name', 8);",
            )
            .unwrap();
        let stats = store.dav_collection_stats(1).unwrap();
        let seen: Vec<(&str, &str, bool, u64, u64, u64)> =
            stats.iter().map(|c| (c.name.as_str(), c.kind.as_str(), c.skipped, c.items, c.copied, c.refused)).collect();
        assert_eq!(
            seen,
            [("Arbete", "calendar", false, 2, 1, 1), ("Delad", "calendar", true, 0, 0, 0), ("contacts", "addressbook", false, 1, 0, 0),],
            "calendars first; no display name reads as the href's last segment"
        );
        let skips: Vec<(String, String)> = store.dav_skips(1).unwrap().into_iter().map(|s| (s.collection, s.reason)).collect();
        assert_eq!(skips, [("Arbete".to_string(), "too big".to_string()), ("Delad".into(), "shared".into())], "the mail's skip is not one");
        assert!(!store.dav_set_up().unwrap());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
