//! One account's calendars and address books copied from the source's DAV server to the target's:
//! each collection made on the target (MKCALENDAR or extended MKCOL), its members listed by ETag,
//! fetched by multiget in bounded batches into the staging store, and sent with `If-None-Match: *`;
//! a changed item replaced with `If-Match`; until the users switch, an item or collection the source
//! lost for two listings deleted on the target when the copy is ours. Every PUT and DELETE is journalled
//! in `store::dav` before it goes out, and a pass first resolves what an earlier one left mid-way by
//! looking at the one href the journal names (`docs/dav.md` §3 and §4). Where each collection goes on
//! the target is `collections.rs`; the deletions, `deletions.rs`.

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use super::collections::TargetCollection;
use super::deletions::Gone;
use super::discover::{self, DavSide, FoundCollection};
use super::http::{DAV_ITEM_MAX, MULTISTATUS_MAX, Request, Response};
use super::{DavError, content, href, xml};
use crate::fault;
use crate::store::dav::{DavCollection, DavItem, ListedCollection, ListedItem, StagedItem};
use crate::store::{Account, Store};

/// Hrefs asked for in one multiget (RFC 4791 §7.9): a few hundred KB of typical items.
const MULTIGET_HREFS: usize = 100;
/// Expected bytes asked for in one multiget, by the listing's sizes: the batch is held in memory whole.
const MULTIGET_BYTES: u64 = 4 << 20;
/// Pages of one sync-collection answer followed before the collection fails for the pass: 10,000
/// pages of Google's 230 items are 2.3 million, more than any calendar.
const SYNC_PAGES_MAX: usize = 10_000;
/// Passes in which the source did not send an item it lists before the item is skipped (a broken item
/// on the old server must not keep finish from ever verifying).
const MISSED_PASSES_MAX: i64 = 3;
/// 5xx answers to PUTs in a row after which the target is taken to be failing, not the items.
const FAILED_IN_A_ROW_MAX: u32 = 3;
/// The longest server answer kept in a skip ledger entry.
const SERVER_SAYS_MAX: usize = 300;

/// What the phase did for one account in one pass.
#[derive(Debug, Clone, Default)]
pub struct DavStats {
    pub collections: u64,
    pub skipped_collections: u64,
    pub created: u64,
    pub staged: u64,
    pub put: u64,
    pub replaced: u64,
    pub removed: u64,
    pub refused: u64,
    /// Changes on the target kept over a change on the source, and deletions not made because a user
    /// changed the copy there.
    pub kept: u64,
    /// Collections whose work stopped for this pass, with the reason.
    pub errors: Vec<String>,
}

impl DavStats {
    pub fn line(&self) -> String {
        let mut line = format!(
            "calendars and contacts: {} collections, {} items copied, {} replaced, {} removed, {} refused",
            self.collections, self.put, self.replaced, self.removed, self.refused
        );
        if self.skipped_collections > 0 {
            line.push_str(&format!(", {} collections skipped", self.skipped_collections));
        }
        for error in &self.errors {
            line.push_str(&format!("; {error}"));
        }
        line
    }
}

/// Copies every collection of one account.
pub async fn copy_account(store: &Store, account: &Account, source: &mut DavSide, target: &mut DavSide) -> Result<DavStats> {
    let mut stats = DavStats::default();
    let found = discover::collections(source).await?;
    // A listing that found no home or nothing at all is not taken as every collection gone: a server
    // answering half-way (a home set missing for a moment) must not get our calendars deleted.
    let has_homes = !source.calendar_homes.is_empty() || !source.addressbook_homes.is_empty();
    let trust_absences = has_homes && !found.is_empty();
    store.write(|tx| {
        let mut seen = Vec::with_capacity(found.len());
        for collection in &found {
            seen.push(tx.record_dav_collection(account.id, &listed_collection(collection))?);
        }
        if trust_absences { tx.mark_dav_collections_absent(account.id, &seen) } else { Ok(()) }
    })?;
    fault::point("dav: collections discovered");
    let mut target_hrefs: Option<Vec<TargetCollection>> = None;
    for collection in store.dav_collections(account.id)? {
        if collection.state == "skipped" {
            stats.skipped_collections += 1;
            continue;
        }
        let listed = found.iter().find(|f| href::same(&f.href, &collection.source_href));
        let mut work = CollectionWork {
            store,
            account,
            source: &mut *source,
            target: &mut *target,
            collection: &collection,
            stats: &mut stats,
            incomplete: false,
            missed: Default::default(),
            server_failed: Vec::new(),
            failed_in_a_row: 0,
            target_took_some: false,
        };
        let result = match (collection.state.as_str(), listed) {
            ("deleting", _) => work.delete_collection().await,
            (_, None) if collection.absent_listings >= 2 => work.source_lost_collection().await,
            (_, None) => Ok(()),
            (_, Some(listed)) => work.copy_collection(listed, &mut target_hrefs).await,
        };
        if let Err(e) = result {
            if ends_the_phase(&e) {
                return Err(e);
            }
            stats.errors.push(format!("{}: {e:#}", collection.displayname));
        }
    }
    Ok(stats)
}

/// Whether an error stops the account's whole DAV phase for this pass (a refused login, a server that
/// went away: the next collection would fail the same way) rather than one collection's work (a
/// server's refusal, an answer too large or not XML, a shutdown asked for).
fn ends_the_phase(error: &anyhow::Error) -> bool {
    use super::http::HttpError;
    if fault::shutting_down() {
        return true;
    }
    match (super::kind_of(error), super::http::kind_of(error)) {
        (Some(DavError::LoginRefused { .. } | DavError::NotDav { .. }), _) => true,
        (Some(DavError::Server { .. }), _) => false,
        (None, Some(HttpError::Unreachable(_) | HttpError::Tls(_) | HttpError::ConnectionLost(_) | HttpError::TimedOut(_))) => true,
        _ => false,
    }
}

fn listed_collection(found: &FoundCollection) -> ListedCollection {
    let props = &found.member.props;
    let description = if found.kind == "calendar" { &props.calendar_description } else { &props.addressbook_description };
    ListedCollection {
        kind: found.kind,
        source_href: found.href.clone(),
        displayname: props.displayname.clone().unwrap_or_default(),
        colour: props.calendar_color.clone(),
        description: description.clone(),
        components: props.components.join(","),
        skip_reason: found.skip_reason.map(str::to_string),
    }
}

fn staged_item(id: i64, etag: Option<String>, body: Vec<u8>) -> StagedItem {
    StagedItem {
        id,
        etag,
        uid: content::uid_of(&body),
        sha256: Sha256::digest(&body).to_vec(),
        content_hash: content::content_hash(&body).to_vec(),
        body,
    }
}

/// The extension and media type of an item in a collection of `kind`.
pub(super) fn item_type(kind: &str) -> (&'static str, &'static str) {
    if kind == "calendar" { (".ics", "text/calendar; charset=utf-8") } else { (".vcf", "text/vcard; charset=utf-8") }
}

/// A server's answer, short, for the skip ledger.
pub(super) fn server_says(response: &Response) -> String {
    let text = String::from_utf8_lossy(&response.body);
    let mut said = format!("{} {}", response.status, text.split_whitespace().collect::<Vec<_>>().join(" "));
    // A server that echoes the request back would put our login into the skip ledger: cut it there.
    if let Some(at) = said.to_ascii_lowercase().find("authorization") {
        said.truncate(at);
        said.push('…');
    }
    if said.len() > SERVER_SAYS_MAX {
        let mut end = SERVER_SAYS_MAX;
        while !said.is_char_boundary(end) {
            end -= 1;
        }
        said.truncate(end);
    }
    said
}

pub(super) struct CollectionWork<'a> {
    pub(super) store: &'a Store,
    pub(super) account: &'a Account,
    pub(super) source: &'a mut DavSide,
    pub(super) target: &'a mut DavSide,
    pub(super) collection: &'a DavCollection,
    pub(super) stats: &'a mut DavStats,
    /// Some item asked for did not come: the listing's change marks are not recorded, so the next pass
    /// lists again.
    pub(super) incomplete: bool,
    /// Items asked for in this pass that did not come: not asked again until the next.
    pub(super) missed: std::collections::HashSet<i64>,
    /// Items the target failed on with a 5xx in this pass: (id, passes it failed in, what it said).
    pub(super) server_failed: Vec<(i64, i64, String)>,
    pub(super) failed_in_a_row: u32,
    /// The target stored some item of this collection in this pass: it works, so an item it keeps
    /// failing on is that item's problem.
    pub(super) target_took_some: bool,
}

impl CollectionWork<'_> {
    pub(super) fn server_error(&self, side: &'static str, response: &Response, what: &str) -> anyhow::Error {
        anyhow::Error::new(DavError::Server { side, status: response.status, what: what.to_string() })
    }

    pub(super) async fn send(&mut self, on_target: bool, request: &Request<'_>) -> Result<Response> {
        let side = if on_target { &mut *self.target } else { &mut *self.source };
        let response = side.client.send(request).await?;
        discover::refuse_login_failure(side.side, &response)?;
        Ok(response)
    }

    /// GET of a target href: (status, ETag, bytes).
    pub(super) async fn get_target(&mut self, path: &str) -> Result<Response> {
        let request = Request { method: "GET", path, headers: &[], body: &[], max_body: DAV_ITEM_MAX, point_after_send: None };
        self.send(true, &request).await
    }

    async fn copy_collection(&mut self, listed: &FoundCollection, target_hrefs: &mut Option<Vec<TargetCollection>>) -> Result<()> {
        self.stats.collections += 1;
        let Some(target_href) = self.ensure_target_collection(target_hrefs).await? else { return Ok(()) };
        self.resolve_unfinished(&target_href).await?;
        let props = &listed.member.props;
        // Unchanged marks mean nothing to list, unless an item left out of the last listing waits for a
        // second one to be counted gone (the mirror rule acts only on two listings in a row).
        let unchanged = self.collection.ctag.is_some()
            && self.collection.ctag == props.ctag
            && self.collection.sync_token == props.sync_token
            && !self.store.dav_has_absent_items(self.collection.id)?;
        let mut new_token = props.sync_token.clone();
        if !unchanged {
            // sync-collection (RFC 6578) from the token of the last pass when the collection offers it;
            // a first listing, or a token the server no longer knows, lists every member by ETag.
            let offers_sync = props.supports_sync_collection || props.sync_token.is_some();
            let synced = match self.collection.sync_token.clone() {
                Some(token) if offers_sync => self.sync_changes(&token).await?,
                _ => None,
            };
            let gone = match synced {
                // A sync answer proves only the deletions it reports; an absence from an earlier listing
                // is confirmed by asking the source for that one item.
                Some((token, reported_gone)) => {
                    new_token = token;
                    let mut gone = reported_gone;
                    gone.extend(self.confirm_absences(&gone).await?);
                    Gone::Only(gone)
                }
                None => {
                    let (members, whole) = self.list_source().await?;
                    let members = self.as_recorded(members)?;
                    if whole {
                        let changes = self.store.write(|tx| tx.record_dav_listing(self.collection.id, &members))?;
                        Gone::AllBut(changes.first_absent)
                    } else {
                        self.incomplete = true;
                        self.store.write(|tx| tx.record_dav_changes(self.collection.id, &members, &[]))?;
                        Gone::Only(Vec::new())
                    }
                }
            };
            fault::point("dav: changes listed");
            self.follow_deletions(&gone).await?;
        }
        loop {
            let fetched = self.fetch_batch().await?;
            let pushed = self.push_staged(&target_href).await?;
            if fetched == 0 && pushed == 0 {
                break;
            }
        }
        // An item the target failed on in `MISSED_PASSES_MAX` passes while it stored others is skipped
        // with what it said, so neither the collection nor finish waits for it forever.
        let failed = std::mem::take(&mut self.server_failed);
        let target_works =
            self.target_took_some || (!failed.is_empty() && !self.store.dav_our_target_hrefs(self.collection.id)?.is_empty());
        for (id, passes, said) in failed {
            if target_works && passes >= MISSED_PASSES_MAX {
                let reason = format!("the new server failed on this item in {MISSED_PASSES_MAX} passes");
                self.store.write(|tx| tx.refuse_dav_item(self.account.id, id, &self.collection.displayname, &reason, Some(&said)))?;
                self.stats.refused += 1;
            } else {
                self.incomplete = true;
            }
        }
        if !unchanged && !self.incomplete {
            self.store.write(|tx| tx.record_dav_change_marks(self.collection.id, props.ctag.as_deref(), new_token.as_deref()))?;
            fault::point("dav: sync token recorded");
        }
        Ok(())
    }

    /// `dav_href_forms`: listed hrefs as the rows already hold them when they name the same resource
    /// in another form (`%40` for `@`), so one item never becomes two rows.
    fn as_recorded(&self, listed: Vec<ListedItem>) -> Result<Vec<ListedItem>> {
        let recorded: std::collections::HashMap<String, String> =
            self.store.dav_item_source_hrefs(self.collection.id)?.into_iter().map(|h| (href::canonical(&h), h)).collect();
        let mut seen = std::collections::HashSet::new();
        Ok(listed
            .into_iter()
            .filter_map(|mut item| {
                let key = href::canonical(&item.href);
                if let Some(stored) = recorded.get(&key) {
                    item.href = stored.clone();
                }
                seen.insert(key).then_some(item)
            })
            .collect())
    }

    /// Items an earlier whole listing left out that a sync answer did not mention: each asked for by
    /// GET on the source; gone (404/410) joins the deletions, there after all clears the mark.
    async fn confirm_absences(&mut self, reported: &[i64]) -> Result<Vec<i64>> {
        let mut confirmed = Vec::new();
        for item in self.store.dav_items_gone(self.collection.id)? {
            if reported.contains(&item.id) {
                continue;
            }
            let request =
                Request { method: "GET", path: &item.source_href, headers: &[], body: &[], max_body: DAV_ITEM_MAX, point_after_send: None };
            let response = self.send(false, &request).await?;
            match response.status {
                404 | 410 => confirmed.push(item.id),
                200..=299 => self.store.write(|tx| tx.clear_dav_gone(item.id))?,
                _ => self.incomplete = true,
            }
        }
        Ok(confirmed)
    }

    /// The source collection's members by ETag (PROPFIND Depth 1).
    /// Also whether the listing is whole: a member named on another server, or a 507 for the
    /// collection (the server cut its answer), means absences in it prove nothing.
    async fn list_source(&mut self) -> Result<(Vec<ListedItem>, bool)> {
        let path = self.collection.source_href.clone();
        let listing = self.source.propfind_multistatus(&path, "1", &xml::propfind_members(), "the list of items").await?;
        let mut members: Vec<ListedItem> = Vec::with_capacity(listing.responses.len());
        let mut whole = true;
        let mut seen = std::collections::HashSet::new();
        for member in listing.responses {
            let Some(item) = self.source.path_of(&member.href) else {
                whole = false;
                continue;
            };
            // `dav_collection_in_members`: the collection itself (and any sub-collection) is never an item.
            if href::same(&item, &path) {
                whole &= member.status != Some(507);
                continue;
            }
            if member.props.is_collection || member.status.is_some_and(|s| s != 200) || !seen.insert(href::canonical(&item)) {
                continue;
            }
            members.push(ListedItem { href: item, etag: member.props.etag.clone(), size: member.props.content_length });
        }
        Ok((members, whole))
    }

    /// The changes since `token` by sync-collection, following `dav_paged_507` (Google pages at about
    /// 230 items; RFC 6578 §3.6): an answer holding a 507 for the collection itself is one page, and the
    /// next is asked with the token it gave, until one comes without. Returns (new or changed members,
    /// gone hrefs, the last token), or None when the server no longer knows the token: 403/409
    /// `valid-sync-token` (RFC 6578 §3.2), or a 500 (`xandikos_sync_token_500`: xandikos 0.2.8
    /// answers an unknown token with a plain-text 500). Then the caller lists every member.
    ///
    /// Each page is recorded as it comes (its token only at the end of the collection's work, so a
    /// kill re-asks from the old one), so memory holds one page whatever the number of changes.
    async fn sync_changes(&mut self, token: &str) -> Result<Option<(Option<String>, Vec<i64>)>> {
        let path = self.collection.source_href.clone();
        let mut token = token.to_string();
        let mut gone_ids = Vec::new();
        for _page in 0..SYNC_PAGES_MAX {
            let body = xml::sync_collection(Some(&token));
            let headers = [("Depth", "0"), ("Content-Type", "application/xml; charset=utf-8")];
            let request = Request {
                method: "REPORT",
                path: &path,
                headers: &headers,
                body: &body,
                max_body: MULTISTATUS_MAX,
                point_after_send: None,
            };
            let response = self.send(false, &request).await?;
            match response.status {
                207 => {}
                403 | 409 | 500 => {
                    log::info!(
                        "{}: the old server no longer knows the sync token of {path} ({}): listing it whole",
                        self.account.source_login,
                        response.status
                    );
                    return Ok(None);
                }
                _ => return Err(self.server_error("source", &response, &format!("a sync-collection report on {path}"))),
            }
            let answer = xml::parse_multistatus(&response.body)?;
            drop(response);
            let mut truncated = false;
            // href -> the member (None: gone), the later in the page winning.
            let mut members: std::collections::BTreeMap<String, Option<ListedItem>> = std::collections::BTreeMap::new();
            for member in answer.responses {
                let Some(href) = self.source.path_of(&member.href) else { continue };
                if href::same(&href, &path) {
                    truncated |= member.status == Some(507);
                    continue;
                }
                if member.props.is_collection {
                    continue;
                }
                match member.status {
                    Some(404) => {
                        members.insert(href, None);
                    }
                    Some(status) if status != 200 => {}
                    _ => {
                        let item = ListedItem { href: href.clone(), etag: member.props.etag.clone(), size: member.props.content_length };
                        members.insert(href, Some(item));
                    }
                }
            }
            let (mut changed, mut removed) = (Vec::new(), Vec::new());
            for (href, member) in members {
                match member {
                    Some(item) => changed.push(item),
                    None => removed.push(href),
                }
            }
            let changed = self.as_recorded(changed)?;
            let removed: Vec<String> = self
                .as_recorded(removed.into_iter().map(|href| ListedItem { href, etag: None, size: None }).collect())?
                .into_iter()
                .map(|i| i.href)
                .collect();
            let page = self.store.write(|tx| tx.record_dav_changes(self.collection.id, &changed, &removed))?;
            gone_ids.extend(page.gone);
            let Some(next) = answer.sync_token else {
                bail!(DavError::Server { side: "source", status: 207, what: format!("a sync-collection report on {path} (no new token)") });
            };
            if truncated && next == token {
                bail!(DavError::Server {
                    side: "source",
                    status: 507,
                    what: format!("a sync-collection report on {path} (paged without moving on)")
                });
            }
            token = next;
            if !truncated {
                return Ok(Some((Some(token), gone_ids)));
            }
        }
        Err(anyhow::Error::new(DavError::Server {
            side: "source",
            status: 507,
            what: format!("{SYNC_PAGES_MAX} pages of changes of {path}"),
        }))
    }

    /// Fetches one batch of items into staging by multiget; returns how many were staged.
    async fn fetch_batch(&mut self) -> Result<usize> {
        let candidates = self.store.dav_items_to_fetch(self.collection.id, MULTIGET_HREFS + self.missed.len())?;
        let mut batch = Vec::new();
        let mut expected = 0;
        for item in candidates.into_iter().filter(|i| !self.missed.contains(&i.id)) {
            if batch.len() == MULTIGET_HREFS {
                break;
            }
            if item.size > DAV_ITEM_MAX as u64 {
                let reason = format!("item larger than {}", crate::units::human_bytes(DAV_ITEM_MAX as u64));
                let said = format!("{} bytes", item.size);
                self.store.write(|tx| tx.refuse_dav_item(self.account.id, item.id, &self.collection.displayname, &reason, Some(&said)))?;
                self.stats.refused += 1;
                continue;
            }
            if !batch.is_empty() && expected + item.size > MULTIGET_BYTES {
                break;
            }
            expected += item.size;
            batch.push(item);
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let kind = if self.collection.kind == "calendar" { xml::CollectionKind::Calendar } else { xml::CollectionKind::Addressbook };
        let hrefs: Vec<&str> = batch.iter().map(|i| i.source_href.as_str()).collect();
        let body = xml::multiget(kind, &hrefs);
        let headers = [("Depth", "1"), ("Content-Type", "application/xml; charset=utf-8")];
        let path = self.collection.source_href.clone();
        let request =
            Request { method: "REPORT", path: &path, headers: &headers, body: &body, max_body: MULTISTATUS_MAX, point_after_send: None };
        let mut staged = Vec::new();
        let multiget = match self.send(false, &request).await {
            Ok(response) if response.status == 207 => xml::parse_multistatus(&response.body).ok(),
            Ok(_) => None,
            Err(e) if ends_the_phase(&e) => return Err(e),
            // An answer too large for memory (items listed without sizes): one at a time below.
            Err(_) => None,
        };
        match multiget {
            Some(listing) => {
                for member in listing.responses {
                    let Some(href) = self.source.path_of(&member.href) else { continue };
                    let Some(item) = batch.iter().find(|i| href::same(&i.source_href, &href)) else { continue };
                    // Gone since the listing (a 404 member) or no data: the next listing says what became of it.
                    let Some(body) = member.props.data else { continue };
                    staged.push(staged_item(item.id, member.props.etag, body));
                }
            }
            // A server that fails the multiget (one broken item can make it answer 500 for all): each
            // item by GET, so the broken one costs only itself.
            None => {
                for item in &batch {
                    if let Some(one) = self.fetch_one(item.id, &item.source_href).await? {
                        staged.push(one);
                    }
                }
            }
        }
        let count = staged.len();
        for item in &batch {
            if !staged.iter().any(|s| s.id == item.id) {
                // Not sent: asked again at the next pass (the next listing says whether it still exists),
                // not again in this one, so the collection's other items go on; after
                // `MISSED_PASSES_MAX` passes it is skipped with the reason, so finish can end.
                self.missed.insert(item.id);
                if self.store.write(|tx| tx.count_dav_miss(item.id))? >= MISSED_PASSES_MAX {
                    let reason = format!("the old server did not send this item when asked, in {MISSED_PASSES_MAX} passes");
                    self.store.write(|tx| tx.refuse_dav_item(self.account.id, item.id, &self.collection.displayname, &reason, None))?;
                    self.stats.refused += 1;
                } else {
                    self.incomplete = true;
                }
            }
        }
        // Staging from the source, like the mail's: a power cut costs a fetch again, nothing more.
        self.store.write_unsynced(|tx| staged.iter().try_for_each(|item| tx.stage_dav_item(item)))?;
        self.stats.staged += count as u64;
        fault::point_once("dav: items staged");
        if count < batch.len() {
            log::warn!("{}: the old calendar server sent {count} of {} items asked for in {path}", self.account.source_login, batch.len());
        }
        Ok(batch.len())
    }

    /// One item by GET: its bytes, or None when the server will not give it now (refused for size
    /// when it is over `DAV_ITEM_MAX`).
    async fn fetch_one(&mut self, id: i64, source_href: &str) -> Result<Option<StagedItem>> {
        let request = Request { method: "GET", path: source_href, headers: &[], body: &[], max_body: DAV_ITEM_MAX, point_after_send: None };
        match self.send(false, &request).await {
            Ok(response) if response.status == 200 => {
                let etag = response.etag();
                Ok(Some(staged_item(id, etag, response.body)))
            }
            Ok(_) => Ok(None),
            Err(e) if matches!(super::http::kind_of(&e), Some(super::http::HttpError::TooLarge { .. })) => {
                let reason = format!("item larger than {}", crate::units::human_bytes(DAV_ITEM_MAX as u64));
                self.store.write(|tx| tx.refuse_dav_item(self.account.id, id, &self.collection.displayname, &reason, None))?;
                self.stats.refused += 1;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends what is staged; returns how many items were dealt with.
    async fn push_staged(&mut self, target_collection: &str) -> Result<usize> {
        let items = self.store.dav_items_to_push(self.collection.id, MULTIGET_HREFS)?;
        let count = items.len();
        for mut item in items {
            if fault::shutting_down() {
                bail!("stopping: the service is shutting down");
            }
            // Read here, one at a time: a batch of rows holds no bodies (each may be up to 16 MiB).
            item.body = self.store.dav_item_body(item.id)?;
            if item.push_state == "pending" {
                self.put_new(&item, target_collection).await?;
            } else {
                self.replace(&item).await?;
            }
        }
        Ok(count)
    }

    /// The target href for a new item: the source's name when safe, else one made from the UID.
    fn target_href_for(&self, item: &DavItem, target_collection: &str) -> Result<String> {
        let (extension, _) = item_type(&self.collection.kind);
        let uid = item.uid.clone().unwrap_or_else(|| item.source_href.clone());
        let mut href = format!("{target_collection}{}", href::item_name(&item.source_href, &uid, extension));
        if self.store.dav_target_href_taken(self.collection.id, &href, item.id)? {
            // Two source items with one UID, or a name clash: the source href makes it unique.
            href = format!("{target_collection}{}", href::item_name("", &format!("{uid}\n{}", item.source_href), extension));
        }
        Ok(href)
    }

    async fn put_new(&mut self, item: &DavItem, target_collection: &str) -> Result<()> {
        let Some(body) = item.body.as_deref() else { return Ok(()) };
        let target_href = self.target_href_for(item, target_collection)?;
        self.store.write(|tx| tx.mark_dav_putting(item.id, &target_href))?;
        fault::point("dav: put journalled");
        let (_, media_type) = item_type(&self.collection.kind);
        let headers = [("Content-Type", media_type), ("If-None-Match", "*")];
        let request = Request {
            method: "PUT",
            path: &target_href,
            headers: &headers,
            body,
            max_body: MULTISTATUS_MAX,
            point_after_send: Some("dav: put sent, answer not read"),
        };
        let response = self.send(true, &request).await?;
        let hash = content::content_hash(body);
        let error = xml::parse_error(&response.body);
        let uid_taken = error.conditions.iter().any(|c| c == "no-uid-conflict");
        // `xandikos_put_multistatus` (xandikos 0.2.8): a refused PUT answered 207 with the real status
        // (412 and `no-uid-conflict`) inside: never a success.
        let inner = (response.status == 207)
            .then(|| xml::parse_multistatus(&response.body).ok())
            .flatten()
            .and_then(|answer| answer.responses.iter().find_map(|m| m.status));
        match (response.status, inner) {
            (200 | 201 | 204, _) => {
                // Not waited for on disk: lost in a power cut, the row is still `putting` and one GET
                // finds the copy; the next journal entry's sync makes it durable anyway.
                self.store.write_unsynced(|tx| tx.record_dav_pushed(item.id, &target_href, response.etag().as_deref(), &hash, "put"))?;
                fault::point("dav: put recorded");
                self.stats.put += 1;
                self.failed_in_a_row = 0;
                self.target_took_some = true;
            }
            _ if uid_taken => self.uid_conflict(item, error.href.as_deref(), &response, target_collection).await?,
            // Something is at our href already: an earlier attempt of ours whose answer was lost, or not ours.
            (412, _) | (207, Some(412)) => self.resolve_put(item, &target_href, true).await?,
            // Worth a try at the next pass: busy, locked, throttled, or the collection not there now.
            (404 | 408 | 409 | 423 | 429, _) | (207, _) => {
                return Err(self.server_error("target", &response, &format!("PUT {target_href}")));
            }
            // The server failed on this item: the next ones are tried (the journal's `putting` is
            // resolved at the next pass), unless several fail in a row, which is the server, not the item.
            (500..=599, _) => {
                self.failed_in_a_row += 1;
                let passes = self.store.write(|tx| tx.count_dav_miss(item.id))?;
                self.server_failed.push((item.id, passes, server_says(&response)));
                if self.failed_in_a_row >= FAILED_IN_A_ROW_MAX {
                    return Err(self.server_error(
                        "target",
                        &response,
                        &format!("PUT {target_href} and the {FAILED_IN_A_ROW_MAX} before it"),
                    ));
                }
                return Ok(());
            }
            _ => self.refuse(item, "the new server refused this item", &response)?,
        }
        Ok(())
    }

    pub(super) fn refuse(&mut self, item: &DavItem, reason: &str, response: &Response) -> Result<()> {
        let said = server_says(response);
        self.store.write(|tx| tx.refuse_dav_item(self.account.id, item.id, &self.collection.displayname, reason, Some(&said)))?;
        self.stats.refused += 1;
        Ok(())
    }

    /// A journalled PUT whose outcome is unknown: the one href it names is looked at.
    /// `after_412`: the server just said something is there, so a 404 now is not taken as "send again"
    /// (which would go round forever), but as this collection's problem for the pass.
    async fn resolve_put(&mut self, item: &DavItem, target_href: &str, after_412: bool) -> Result<()> {
        let response = self.get_target(target_href).await?;
        match response.status {
            200 if Self::is_same_content(item, &response.body) => {
                let hash = item.content_hash.clone().unwrap_or_else(|| content::content_hash(&response.body).to_vec());
                self.store.write(|tx| tx.record_dav_pushed(item.id, target_href, response.etag().as_deref(), &hash, "put"))?;
                self.stats.put += 1;
            }
            // Our UID at the name we chose, other content: ours rewritten beyond what the content hash
            // evens out, or someone's copy. Taken as found (never deleted by mirroring), with what it holds.
            200 if item.uid.is_some() && content::uid_of(&response.body) == item.uid => {
                let hash = content::content_hash(&response.body);
                self.store.write(|tx| tx.record_dav_pushed(item.id, target_href, response.etag().as_deref(), &hash, "found"))?;
            }
            200 => self.refuse(item, "the new server already has a different item at this name", &response)?,
            404 | 410 if !after_412 => self.store.write(|tx| tx.mark_dav_pending(item.id))?,
            _ => return Err(self.server_error("target", &response, &format!("GET {target_href}"))),
        }
        Ok(())
    }

    /// `no-uid-conflict` (RFC 4791 §5.3.2.1, RFC 6352 §6.3.2.1): the UID is already in the collection.
    /// The same content there is taken as the copy (`found`: mirroring never deletes it); other content
    /// is left alone and the item skipped with the reason.
    async fn uid_conflict(&mut self, item: &DavItem, conflict_href: Option<&str>, refusal: &Response, collection: &str) -> Result<()> {
        let found = match conflict_href.and_then(|h| self.target.path_of(h)) {
            Some(href) => Some(href),
            // `dav_no_uid_conflict_href` (Radicale 3.1.8, xandikos 0.2.8): the precondition names no href.
            None => self.find_by_uid(item, collection).await?,
        };
        if let Some(href) = found {
            let response = self.get_target(&href).await?;
            if response.status == 200 && Self::is_same_content(item, &response.body) {
                let hash = content::content_hash(&response.body);
                // Our own copy of an item the source now has under another href (renamed there, or a
                // twin): the new row takes it over, so the old row's deletion cannot remove it.
                let ours = self.store.dav_gone_copy_at(self.collection.id, &href)?;
                self.store.write(|tx| {
                    if let Some(old) = ours {
                        tx.forget_dav_item(old)?;
                    }
                    tx.record_dav_pushed(item.id, &href, response.etag().as_deref(), &hash, if ours.is_some() { "put" } else { "found" })
                })?;
                return Ok(());
            }
        }
        self.refuse(item, "the new server already has this UID with other content", refusal)
    }

    /// The same bytes, or the same content after a server's rewriting: not only the same UID, since the
    /// copy is someone else's.
    pub(super) fn is_same_content(item: &DavItem, served: &[u8]) -> bool {
        let served_hash = content::content_hash(served);
        // The staged bytes' hash: from the body, or before the first PUT the column holds it.
        let staged = match item.body.as_deref() {
            Some(body) => Some(content::content_hash(body).to_vec()),
            None if item.push_state != "pushed" => item.content_hash.clone(),
            None => None,
        };
        item.sha256.as_deref() == Some(Sha256::digest(served).as_slice()) || staged.as_deref() == Some(served_hash.as_slice())
    }

    /// The href of the target item carrying this item's UID in the collection: by a UID query (RFC 4791
    /// §7.8, RFC 6352 §8.6), else by reading the collection (`xandikos_addressbook_query_500`: xandikos
    /// 0.2.8 fails every addressbook-query). Asked only after a `no-uid-conflict`, never per item.
    async fn find_by_uid(&mut self, item: &DavItem, collection: &str) -> Result<Option<String>> {
        let Some(uid) = item.uid.clone() else { return Ok(None) };
        let (kind, component) = if self.collection.kind == "calendar" {
            let component = item.body.as_deref().and_then(content::component_of).unwrap_or_else(|| "VEVENT".into());
            (xml::CollectionKind::Calendar, component)
        } else {
            (xml::CollectionKind::Addressbook, String::new())
        };
        let body = xml::uid_query(kind, &component, &uid);
        let headers = [("Depth", "1"), ("Content-Type", "application/xml; charset=utf-8")];
        let request = Request {
            method: "REPORT",
            path: collection,
            headers: &headers,
            body: &body,
            max_body: MULTISTATUS_MAX,
            point_after_send: None,
        };
        let response = self.send(true, &request).await?;
        let candidates: Vec<String> = if response.status == 207 {
            xml::parse_multistatus(&response.body)?.responses.iter().filter_map(|m| self.target.path_of(&m.href)).collect()
        } else {
            let listing = self.target.propfind_multistatus(collection, "1", &xml::propfind_members(), "a collection's items").await?;
            listing.responses.iter().filter(|m| !m.props.is_collection).filter_map(|m| self.target.path_of(&m.href)).collect()
        };
        for href in candidates.into_iter().filter(|h| !href::same(h, collection)) {
            let response = self.get_target(&href).await?;
            if response.status == 200 && content::uid_of(&response.body).as_deref() == Some(uid.as_str()) {
                return Ok(Some(href));
            }
        }
        Ok(None)
    }

    /// A copy the source changed: replaced with `If-Match`, unless a user changed it on the target.
    async fn replace(&mut self, item: &DavItem) -> Result<()> {
        let (Some(body), Some(target_href)) = (item.body.as_deref(), item.target_href.clone()) else { return Ok(()) };
        let new_hash = content::content_hash(body);
        let mut etag = item.target_etag.clone();
        if etag.is_none() {
            // The server gave no ETag when it stored our copy (it rewrote it, RFC 4791 §5.3.4): ask now.
            let response = self.get_target(&target_href).await?;
            if !self.still_ours(item, &response, &new_hash)? {
                return Ok(());
            }
            etag = response.etag();
        }
        self.store.write(|tx| tx.mark_dav_replacing(item.id))?;
        fault::point("dav: replace journalled");
        for _attempt in 0..2 {
            let (_, media_type) = item_type(&self.collection.kind);
            let mut headers = vec![("Content-Type", media_type)];
            if let Some(etag) = etag.as_deref() {
                headers.push(("If-Match", etag));
            }
            let request = Request {
                method: "PUT",
                path: &target_href,
                headers: &headers,
                body,
                max_body: MULTISTATUS_MAX,
                point_after_send: Some("dav: replaced, not recorded"),
            };
            let response = self.send(true, &request).await?;
            match response.status {
                200..=299 => {
                    let origin = item.origin.as_deref().unwrap_or("put");
                    self.store.write(|tx| tx.record_dav_pushed(item.id, &target_href, response.etag().as_deref(), &new_hash, origin))?;
                    self.stats.replaced += 1;
                    return Ok(());
                }
                412 | 404 => {
                    let current = self.get_target(&target_href).await?;
                    if !self.still_ours(item, &current, &new_hash)? {
                        return Ok(());
                    }
                    etag = current.etag();
                }
                _ => return Err(self.server_error("target", &response, &format!("PUT {target_href}"))),
            }
        }
        Err(anyhow::Error::new(DavError::Server {
            side: "target",
            status: 412,
            what: format!("PUT {target_href} (its ETag keeps changing)"),
        }))
    }

    /// Before a replacement: whether the target still holds what we last wrote (then the change may
    /// go). When it already holds the change, it is recorded; when a user changed or deleted it there,
    /// the target's is kept and said so.
    fn still_ours(&mut self, item: &DavItem, current: &Response, new_hash: &[u8; 32]) -> Result<bool> {
        let target_href = item.target_href.clone().unwrap_or_default();
        if !matches!(current.status, 200 | 404 | 410) {
            // Busy, throttled, broken for a moment: no decision about the user's copy on that.
            return Err(self.server_error("target", current, &format!("GET {target_href}")));
        }
        if current.status == 200 {
            let served = content::content_hash(&current.body);
            if served == *new_hash {
                let origin = item.origin.as_deref().unwrap_or("put");
                self.store.write(|tx| tx.record_dav_pushed(item.id, &target_href, current.etag().as_deref(), new_hash, origin))?;
                self.stats.replaced += 1;
                return Ok(false);
            }
            if item.content_hash.as_deref() == Some(served.as_slice()) {
                return Ok(true);
            }
        }
        let reason = if current.status == 200 {
            "changed on both servers; the new server's version kept"
        } else {
            "deleted on the new server after it was copied; not copied again"
        };
        self.store.write(|tx| {
            tx.keep_dav_target_copy(item.id)?;
            tx.note_dav_skip(self.account.id, &self.collection.displayname, reason, Some(&server_says(current)))
        })?;
        self.stats.kept += 1;
        Ok(false)
    }

    /// What an earlier pass left mid-way, resolved before new work by looking at the href it names.
    async fn resolve_unfinished(&mut self, target_collection: &str) -> Result<()> {
        for item in self.store.dav_items_unresolved(self.collection.id)? {
            if item.mirror.is_some() {
                self.delete_item(&item).await?;
            } else if item.push_state == "putting" {
                match item.target_href.clone() {
                    Some(href) => self.resolve_put(&item, &href, false).await?,
                    None => self.store.write(|tx| tx.mark_dav_pending(item.id))?,
                }
            } else if item.push_state == "replacing" {
                let href = item.target_href.clone().unwrap_or_else(|| target_collection.to_string());
                let current = self.get_target(&href).await?;
                let arrived = current.status == 200
                    && item.body.as_deref().is_some_and(|b| content::content_hash(b) == content::content_hash(&current.body));
                if arrived {
                    let hash = content::content_hash(&current.body);
                    let origin = item.origin.as_deref().unwrap_or("put");
                    self.store.write(|tx| tx.record_dav_pushed(item.id, &href, current.etag().as_deref(), &hash, origin))?;
                    self.stats.replaced += 1;
                } else {
                    self.store.write(|tx| tx.undo_dav_replacing(item.id))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_server_answer_is_cut_at_a_character() {
        let response = Response { status: 403, headers: vec![], body: "å".repeat(400).into_bytes() };
        let said = server_says(&response);
        assert!(said.len() <= SERVER_SAYS_MAX && said.starts_with("403 å"));
    }
}
