//! Verification, the proof step of "Finish": every message the source holds now is on the target. For
//! each present, selectable source folder it lists the source's UIDs and sizes (EXAMINE, so nothing on
//! the source changes), checks that each has a staged row that was pushed (or refused by the target,
//! which counts as skipped with a reason, not as missing), then asks the target folder for the recorded
//! target UIDs and checks that each is there with the size we appended. It also compares the target
//! folder's message count with the number of rows pushed into it.
//!
//! What it does not check: duplicates on the target (a target folder holding more messages than we
//! pushed is fine, users get new mail there after the MX switch), flags, and content beyond the size.
//! A target that re-renders messages (Microsoft 365, quirk `exchange_rewrites_messages`) serves other
//! sizes for the same mail, so there each copy is compared by its identity (Message-ID, see
//! `identity`) instead: a copy with another identity is reported as "differs".
//!
//! Memory stays flat whatever the folder size: the source's UID list streams into a TEMP table on the
//! account's own connection, and is then compared in windows of `WINDOW` UIDs, one target FETCH each.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::imap::{FetchItem, ListedFolder, Session};
use crate::pull::uid_set;
use crate::store::{Account, FolderToVerify, PushState, Store, now};
use crate::sync;
use crate::units::human_bytes;
use crate::utf7;

/// Source UIDs compared per step (and target UIDs per FETCH): bounds memory and command length.
const WINDOW: usize = 1000;
/// At most this many UIDs are listed per folder and kind; the counts stay exact. Keeps the stored
/// JSON small when, say, a whole folder was never copied.
const MAX_LISTED: usize = 1000;
/// At most this many explanatory lines per folder.
const MAX_NOTES: usize = 20;

/// The verification of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// The account's source login.
    pub account: String,
    /// True when every folder checked out and nothing failed.
    pub ok: bool,
    /// When the verification ran (Unix seconds).
    #[serde(default)]
    pub checked_at: i64,
    pub folders: Vec<FolderCheck>,
    /// Why the verification could not run or was cut short (login, lost connection...).
    pub error: Option<String>,
}

/// The verification of one source folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FolderCheck {
    /// Source folder name (UTF-8).
    pub source: String,
    /// Target folder name (UTF-8); empty when the folder has no mapping.
    pub target: String,
    /// Messages in the source folder now.
    pub source_messages: u64,
    /// Of those, found on the target with the right size.
    pub on_target: u64,
    /// Of those, refused by the target (see the skip ledger for the reason).
    pub skipped: u64,
    /// Source UIDs not on the target (first `MAX_LISTED`; `missing_count` is exact).
    pub missing: Vec<u32>,
    pub missing_count: u64,
    /// Source bytes of the missing messages.
    pub missing_bytes: u64,
    /// Source UIDs whose target copy is not the same message: another size, or on a re-rendering target
    /// another identity (first `MAX_LISTED`; `differs_count` is exact).
    pub differs: Vec<u32>,
    pub differs_count: u64,
    /// Messages in the target folder now, and rows we recorded as pushed into it (from any source
    /// folder). Fewer messages than pushed rows means something on the target was lost.
    pub target_messages: u64,
    pub pushed_rows: u64,
    /// Human-readable lines: which message is missing and why, count mismatches (capped).
    pub notes: Vec<String>,
    /// Why this folder could not be (fully) checked.
    pub error: Option<String>,
    /// A calendar or address book (`dav::verify`), not a mail folder: `sync --repair` does not reopen
    /// its copies, and the report says items, not messages.
    pub dav: bool,
}

impl FolderCheck {
    fn new(source: &str, target: &str) -> FolderCheck {
        FolderCheck { source: source.to_string(), target: target.to_string(), ..FolderCheck::default() }
    }

    /// Every source message accounted for, the target count plausible, no error.
    pub fn ok(&self) -> bool {
        self.missing_count == 0 && self.differs_count == 0 && self.count_ok() && self.error.is_none()
    }

    /// The target folder holds at least as many messages as we put there.
    pub fn count_ok(&self) -> bool {
        self.target_messages >= self.pushed_rows
    }

    fn note(&mut self, line: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(line);
        } else if self.notes.len() == MAX_NOTES {
            self.notes.push("… (more not listed)".to_string());
        }
    }

    fn add_missing(&mut self, uid: u32, size: u64, why: &str) {
        self.missing_count += 1;
        self.missing_bytes += size;
        if self.missing.len() < MAX_LISTED {
            self.missing.push(uid);
        }
        self.note(format!("{}: UID {uid} ({}) is missing: {why}", self.source, human_bytes(size)));
    }

    fn add_differs(&mut self, uid: u32, why: String) {
        self.differs_count += 1;
        if self.differs.len() < MAX_LISTED {
            self.differs.push(uid);
        }
        self.note(format!("{}: UID {uid} {why}", self.source));
    }
}

impl VerifyResult {
    /// The result for an account whose verification could not even start (e.g. no database).
    pub fn failed(account: &Account, error: &str) -> VerifyResult {
        VerifyResult {
            account: account.source_login.clone(),
            ok: false,
            checked_at: now(),
            folders: Vec::new(),
            error: Some(error.to_string()),
        }
    }

    /// A short sentence: all well, or how much is missing where.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("verification failed: {e}");
        }
        let messages: u64 = self.folders.iter().filter(|f| !f.dav).map(|f| f.source_messages).sum();
        let items: u64 = self.folders.iter().filter(|f| f.dav).map(|f| f.source_messages).sum();
        let skipped: u64 = self.folders.iter().map(|f| f.skipped).sum();
        if self.ok {
            let calendars =
                if self.folders.iter().any(|f| f.dav) { format!(" and {items} calendar and contact items") } else { String::new() };
            return format!(
                "all {messages} messages{calendars} accounted for ({skipped} skipped, each in the skip ledger with the reason)"
            );
        }
        let problems: Vec<String> = self
            .folders
            .iter()
            .filter(|f| !f.ok())
            .map(|f| {
                let mut words = Vec::new();
                if f.missing_count > 0 {
                    words.push(format!("{} missing", f.missing_count));
                }
                if f.differs_count > 0 {
                    words.push(format!("{} differ from their target copy", f.differs_count));
                }
                if !f.count_ok() {
                    words.push(format!("target holds {} of {} copied", f.target_messages, f.pushed_rows));
                }
                if let Some(e) = &f.error {
                    words.push(e.clone());
                }
                format!("{}: {}", f.source, words.join(", "))
            })
            .collect();
        problems.join("; ")
    }

    /// One line per account for the CLI and the log, with the problem folders after it.
    pub fn line(&self) -> String {
        let (mail, dav): (Vec<&FolderCheck>, Vec<&FolderCheck>) = self.folders.iter().partition(|f| !f.dav);
        let messages: u64 = mail.iter().map(|f| f.source_messages).sum();
        let on_target: u64 = mail.iter().map(|f| f.on_target).sum();
        let skipped: u64 = self.folders.iter().map(|f| f.skipped).sum();
        let mut line = format!(
            "{}: {} — {on_target} of {messages} messages on the target, {skipped} skipped, {} folders",
            self.account,
            if self.ok { "verified" } else { "NOT verified" },
            mail.len()
        );
        if !dav.is_empty() {
            let items: u64 = dav.iter().map(|f| f.source_messages).sum();
            let on_target: u64 = dav.iter().map(|f| f.on_target).sum();
            line.push_str(&format!("; {on_target} of {items} calendar and contact items in {} collections", dav.len()));
        }
        for f in self.folders.iter().filter(|f| !f.ok()) {
            line.push_str(&format!(
                "\n    {} -> {}: {} missing, {} differ, target holds {} of {} copied",
                f.source, f.target, f.missing_count, f.differs_count, f.target_messages, f.pushed_rows
            ));
            if let Some(e) = &f.error {
                line.push_str(&format!(" ({e})"));
            }
            // A calendar's missing items by name (a mail folder's are listed by `postflytt verify`).
            for note in f.notes.iter().filter(|_| f.dav) {
                line.push_str(&format!("\n      {note}"));
            }
        }
        if let Some(e) = &self.error {
            line.push_str(&format!("\n    FAILED: {e}"));
        }
        line
    }
}

/// Where a staged row stands, as far as verification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowState {
    /// Not appended yet, or appended but the answer never arrived (`appending`).
    NotCopied,
    Pushed,
    Refused,
}

impl RowState {
    fn of(state: PushState) -> RowState {
        match state {
            PushState::Pushed => RowState::Pushed,
            PushState::Refused => RowState::Refused,
            PushState::Pending | PushState::Appending => RowState::NotCopied,
        }
    }
}

/// A staged row of one source UID.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowView {
    /// Bytes we staged and appended.
    size: u64,
    state: RowState,
    /// The target UID, only when it belongs to the target folder and UIDVALIDITY being checked; a
    /// pushed row pointing elsewhere is not where the mapping says it should be.
    target_uid: Option<u32>,
    /// The staged message's identity ('' when it has none to go by).
    identity: String,
}

/// What the target holds under one recorded UID.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TargetCopy {
    size: u64,
    /// Only fetched when comparing by identity.
    identity: crate::identity::Keys,
}

/// How a target copy is recognised as the message we appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Likeness {
    /// The same size (the target keeps our bytes).
    Size,
    /// The same identity (the target re-renders: quirk `exchange_rewrites_messages`).
    Identity,
}

/// Compares one window of source messages with their staged rows and the target's answer, adding
/// the outcome to `check`. `source` is (UID, size) as the source reports it now, `rows` the staged
/// rows by source UID, `target` what the target holds under the target UIDs the rows named.
fn compare(
    check: &mut FolderCheck,
    source: &[(u32, u64)],
    rows: &BTreeMap<u32, RowView>,
    target: &BTreeMap<u32, TargetCopy>,
    likeness: Likeness,
) {
    for &(uid, size) in source {
        check.source_messages += 1;
        let Some(row) = rows.get(&uid) else {
            check.add_missing(uid, size, "no pass has seen it (new since the last pass?)");
            continue;
        };
        match (row.state, row.target_uid) {
            (RowState::Refused, _) => check.skipped += 1,
            (RowState::NotCopied, _) => check.add_missing(uid, size, "not copied yet"),
            (RowState::Pushed, None) => check.add_missing(uid, size, "recorded in another target folder or an older UIDVALIDITY of it"),
            (RowState::Pushed, Some(target_uid)) => match target.get(&target_uid) {
                None => check.add_missing(uid, size, &format!("target UID {target_uid} is no longer in {}", check.target)),
                Some(copy) => match likeness {
                    // Our bytes are the staged ones; a source whose RFC822.SIZE disagrees with the bytes
                    // it serves (bare-LF stores count CRLF) is not a difference on the target.
                    Likeness::Size if copy.size == row.size || copy.size == size => check.on_target += 1,
                    Likeness::Size => check.add_differs(
                        uid,
                        format!("is {size} bytes on the source but target UID {target_uid} in {} is {} bytes", check.target, copy.size),
                    ),
                    Likeness::Identity => match &copy.identity {
                        theirs if !row.identity.is_empty() && !theirs.is_empty() && !theirs.contains(&row.identity) => check.add_differs(
                            uid,
                            format!(
                                "is another message than target UID {target_uid} in {} (Message-ID or Date/From/Subject differ)",
                                check.target
                            ),
                        ),
                        // Same identity, or nothing to compare by: the UID we recorded is there.
                        _ => check.on_target += 1,
                    },
                },
            },
        }
    }
}

/// Connects to both sides and verifies every folder of the account. Never fails: problems are in the
/// result.
pub async fn verify_account(store: &Store, account: &Account) -> VerifyResult {
    let mut result = VerifyResult { account: account.source_login.clone(), ok: false, checked_at: now(), folders: Vec::new(), error: None };
    if let Err(e) = verify_inner(store, account, &mut result).await {
        result.error = Some(format!("{e:#}"));
    }
    result.ok = result.error.is_none() && result.folders.iter().all(FolderCheck::ok);
    result
}

fn selectable(folder: &ListedFolder) -> bool {
    !folder.has_attribute("\\Noselect") && !folder.has_attribute("\\NonExistent")
}

/// Errors after which later folders would fail the same way: the connection is unusable
/// (`failure::policy` scope Account).
fn stops_verification(e: &anyhow::Error) -> bool {
    crate::failure::policy(e).0 >= crate::failure::Scope::Account
}

async fn verify_inner(store: &Store, account: &Account, result: &mut VerifyResult) -> Result<()> {
    let mut both = sync::connect_both(store, account).await?;
    let likeness = if both.target.quirks().exchange_rewrites_messages { Likeness::Identity } else { Likeness::Size };
    let folders = store.folders_to_verify(account.id)?;
    // Rows pushed per target folder and UIDVALIDITY, from any source folder.
    let pushed_counts = store.pushed_counts(account.id)?;

    // A folder made on the source after the last pass is unknown to the store; its mail is missing.
    let listed = both.source.list().await?;
    // Folders the operator's folder choice leaves out are neither new nor to be verified.
    let excluded = store.excluded_wire_names(account.id)?;
    let known: BTreeSet<&str> = folders.iter().map(|f| f.wire_name.as_str()).chain(excluded.iter().map(String::as_str)).collect();
    for folder in listed.iter().filter(|f| selectable(f) && !known.contains(f.wire_name.as_str())) {
        let name = utf7::decode_or_raw(&folder.wire_name);
        let mut check = FolderCheck::new(&name, "");
        match both.source.status(&folder.wire_name, false).await {
            Ok(status) => {
                check.source_messages = u64::from(status.messages);
                check.missing_count = u64::from(status.messages);
            }
            Err(e) => check.note(format!("cannot count its messages: {e:#}")),
        }
        check.error = Some("the folder is new on the source since the last pass: run a pass, then verify again".into());
        result.folders.push(check);
    }
    let listed_names: BTreeSet<&str> = listed.iter().map(|f| f.wire_name.as_str()).collect();

    for folder in &folders {
        if !listed_names.contains(folder.wire_name.as_str()) {
            // Deleted on the source since the last pass: nothing there to be missing.
            log::info!("{}: folder {} is gone from the source; not verified", account.source_login, folder.name);
            continue;
        }
        let target_name = folder.target_name.clone().unwrap_or_default();
        let mut check = FolderCheck::new(&folder.name, &target_name);
        let outcome =
            verify_folder(store, account.id, &mut both.source, &mut both.target, folder, &pushed_counts, likeness, &mut check).await;
        let fatal = match outcome {
            Ok(()) => None,
            Err(e) => {
                check.error = Some(format!("{e:#}"));
                stops_verification(&e).then_some(e)
            }
        };
        result.folders.push(check);
        if let Some(e) = fatal {
            return Err(e.context(format!("verification stopped in folder {}", folder.name)));
        }
    }
    result.folders.sort_by(|a, b| a.source.cmp(&b.source));
    both.source.logout().await;
    both.target.logout().await;
    verify_calendars_and_contacts(store, account, result).await
}

/// Calendars and contacts, when DAV servers are set up: each collection a line like a folder's.
async fn verify_calendars_and_contacts(store: &Store, account: &Account, result: &mut VerifyResult) -> Result<()> {
    let checks = match crate::dav::verify::verify_account(store, account).await {
        Ok(Some(checks)) => checks,
        Ok(None) => return Ok(()),
        Err(e) => {
            let mut check = FolderCheck::new("calendars and contacts", "");
            check.error = Some(format!("{e:#}"));
            result.folders.push(check);
            return Ok(());
        }
    };
    for c in checks {
        let mut check = FolderCheck::new(&c.name, &c.target_href);
        check.dav = true;
        check.source_messages = c.source_items;
        check.on_target = c.on_target;
        check.skipped = c.skipped;
        check.missing_count = c.missing;
        check.target_messages = c.target_items;
        check.pushed_rows = c.recorded;
        for note in c.notes {
            check.note(note);
        }
        result.folders.push(check);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // the folder on both sides and the pass's settings (issue 14)
async fn verify_folder(
    store: &Store,
    account_id: i64,
    source: &mut Session,
    target: &mut Session,
    folder: &FolderToVerify,
    pushed_counts: &BTreeMap<(i64, u32), u64>,
    likeness: Likeness,
    check: &mut FolderCheck,
) -> Result<()> {
    let Some(target_name) = &folder.target_name else {
        return Err(anyhow!("the folder has no target folder mapped: run a pass so it is mapped and copied"));
    };
    let selected = source.select(&folder.wire_name, true, false).await?;
    let uidvalidity = selected.uidvalidity.ok_or_else(|| anyhow!("{}: folder {} has no UIDVALIDITY", source.label(), folder.name))?;
    if folder.uidvalidity != Some(uidvalidity) {
        check.note(format!(
            "the source folder's UIDVALIDITY is now {uidvalidity} (a pass saw {:?}): run a pass to re-match it",
            folder.uidvalidity
        ));
    }
    stream_source_uids(store, source, folder.id, selected.exists)
        .await
        .with_context(|| format!("listing {} on the source", folder.name))?;

    // The target side: the folder's UIDVALIDITY, its count, and the rows recorded as pushed into it.
    let target_wire = utf7::encode(target_name);
    let target_row = store.target_folder_id(account_id, &target_wire)?;
    let target_selected = match target.select(&target_wire, true, false).await {
        Ok(s) => Some(s),
        Err(e) if !stops_verification(&e) => {
            check.error = Some(format!("cannot open the target folder: {e:#}"));
            None
        }
        Err(e) => return Err(e),
    };
    let target_validity = target_selected.as_ref().and_then(|s| s.uidvalidity);
    check.target_messages = target_selected.as_ref().map(|s| u64::from(s.exists)).unwrap_or(0);
    if let (Some(tf), Some(tv)) = (target_row, target_validity) {
        check.pushed_rows = pushed_counts.get(&(tf, tv)).copied().unwrap_or(0);
    }
    if !check.count_ok() {
        check
            .note(format!("the target folder holds {} messages, fewer than the {} copied there", check.target_messages, check.pushed_rows));
    }

    if likeness == Likeness::Identity {
        crate::identity::fill_staged(store, folder.id, crate::store::PushState::Pushed)?;
    }

    // Window by window over the source UIDs.
    let mut after: i64 = 0;
    loop {
        let window = store.listed_source_uids_after(folder.id, after, WINDOW)?;
        let (Some(&(first, _)), Some(&(last, _))) = (window.first(), window.last()) else { break };
        after = i64::from(last);
        let rows: BTreeMap<u32, RowView> = store
            .staged_rows_between(folder.id, uidvalidity, first, last)?
            .into_iter()
            .map(|row| {
                let (tf, tv) = (row.target_folder_id, row.target_uidvalidity);
                let here = tf.is_some() && tf == target_row && tv.is_some() && tv == target_validity;
                let view = RowView {
                    size: row.size,
                    state: RowState::of(row.push_state),
                    target_uid: row.target_uid.filter(|_| here),
                    identity: row.identity,
                };
                (row.uid, view)
            })
            .collect();
        let wanted: BTreeSet<u32> = rows.values().filter(|r| r.state == RowState::Pushed).filter_map(|r| r.target_uid).collect();
        let mut on_target: BTreeMap<u32, TargetCopy> = BTreeMap::new();
        if !wanted.is_empty() && target_selected.is_some() {
            let mut items = vec![FetchItem::Uid, FetchItem::Size];
            if likeness == Likeness::Identity {
                items.push(FetchItem::HeaderFields(crate::identity::HEADER_FIELDS));
            }
            target
                .uid_fetch(&[uid_set(wanted.iter().copied())], &items, None, &mut |meta| {
                    // `N:*`-style sets are never sent, but a server may still answer UIDs not asked for.
                    if wanted.contains(&meta.uid) {
                        let identity = crate::identity::keys_of_header(meta.header.as_deref().unwrap_or_default());
                        on_target.insert(meta.uid, TargetCopy { size: meta.size.map(u64::from).unwrap_or(0), identity });
                    }
                    Ok(())
                })
                .await
                .with_context(|| format!("reading {target_name} on the target"))?;
        }
        compare(check, &window, &rows, &on_target, likeness);
    }
    // A listing left by an error goes at the folder's next listing, or with the connection.
    store.end_source_listing(folder.id)
}

/// Lists the selected source folder's UIDs and sizes into `temp.verify_source`, streaming, so a folder
/// of any size costs the same memory: `WINDOW` UIDs at a time are gathered in memory and written in
/// one short transaction, never one left open while the listing waits for the network (it would hold
/// a read snapshot of the main database all that time, keeping the WAL from being checkpointed). The
/// TEMP table belongs to this connection only, one listing per folder (the accounts verified at once
/// share the connection); the transaction is deferred, so it never takes the main database's write lock.
async fn stream_source_uids(store: &Store, source: &mut Session, folder_id: i64, exists: u32) -> Result<()> {
    store.start_source_listing(folder_id)?;
    // Some servers answer `UID FETCH 1:*` on an empty folder with BAD; there is nothing to list anyway.
    if exists == 0 {
        return Ok(());
    }
    let mut listed: Vec<(u32, u32)> = Vec::new();
    source
        .uid_fetch(&["1:*".to_string()], &[FetchItem::Uid, FetchItem::Size], None, &mut |meta| {
            listed.push((meta.uid, meta.size.unwrap_or(0)));
            if listed.len() >= WINDOW {
                store.add_listed_source_uids(folder_id, &mut listed)?;
            }
            Ok(())
        })
        .await?;
    store.add_listed_source_uids(folder_id, &mut listed)
}

/// Stores the result (as JSON, `Store::set_verification`) for the report and the page; the
/// account is found by the result's source login.
pub fn record(store: &Store, result: &VerifyResult) -> Result<()> {
    let account_id = store
        .account_id(&result.account)?
        .ok_or_else(|| anyhow!("cannot record the verification of {}: no such account", result.account))?;
    let json = serde_json::to_string(result).context("encoding the verification result")?;
    store.set_verification(account_id, &json)
}

/// Asks the next pass of each account whose last verification found messages missing to copy them
/// again (see `repair`). Returns (account, messages missing) for each account asked.
pub fn request_repair(store: &Store, accounts: &[Account]) -> Result<Vec<(String, u64)>> {
    let mut asked = Vec::new();
    for account in accounts {
        let Some(result) = load(store, account.id)? else { continue };
        // Calendars and contacts are not repaired this way (their copies are not reopened): left out.
        let short: Vec<&FolderCheck> = result.folders.iter().filter(|f| f.missing_count > 0 && !f.dav).collect();
        if short.is_empty() {
            continue;
        }
        // The listed UIDs (at most `MAX_LISTED` a folder; a bigger loss takes another verify and repair).
        store.request_repair(account.id, &short.iter().map(|f| (f.source.clone(), f.missing.clone())).collect::<Vec<_>>())?;
        asked.push((account.source_login.clone(), short.iter().map(|f| f.missing_count).sum()));
    }
    Ok(asked)
}

/// The last stored verification of an account, if any.
pub fn load(store: &Store, account_id: i64) -> Result<Option<VerifyResult>> {
    match store.verification(account_id)? {
        None => Ok(None),
        Some(json) => {
            Ok(Some(serde_json::from_str(&json).with_context(|| format!("the stored verification of account {account_id} is damaged"))?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn pushed(size: u64, target_uid: u32) -> RowView {
        RowView { size, state: RowState::Pushed, target_uid: Some(target_uid), identity: String::new() }
    }

    fn copies(target: &[(u32, u64)]) -> BTreeMap<u32, TargetCopy> {
        target.iter().map(|&(uid, size)| (uid, TargetCopy { size, identity: Default::default() })).collect()
    }

    fn run(source: &[(u32, u64)], rows: &[(u32, RowView)], target: &[(u32, u64)]) -> FolderCheck {
        let mut check = FolderCheck::new("INBOX", "INBOX");
        compare(&mut check, source, &rows.iter().cloned().collect(), &copies(target), Likeness::Size);
        check
    }

    #[test]
    fn compare_table() {
        let not_copied = RowView { size: 10, state: RowState::NotCopied, target_uid: None, identity: String::new() };
        let refused = RowView { size: 10, state: RowState::Refused, target_uid: None, identity: String::new() };
        let elsewhere = RowView { size: 10, state: RowState::Pushed, target_uid: None, identity: String::new() };
        // (source, rows, target) -> (on_target, skipped, missing, differs)
        type Case = (&'static str, Vec<(u32, u64)>, Vec<(u32, RowView)>, Vec<(u32, u64)>, (u64, u64, Vec<u32>, Vec<u32>));
        let cases: Vec<Case> = vec![
            (
                "all there",
                vec![(1, 10), (2, 20)],
                vec![(1, pushed(10, 5)), (2, pushed(20, 6))],
                vec![(5, 10), (6, 20)],
                (2, 0, vec![], vec![]),
            ),
            ("no row", vec![(1, 10), (2, 20)], vec![(1, pushed(10, 5))], vec![(5, 10)], (1, 0, vec![2], vec![])),
            ("pending row", vec![(3, 10)], vec![(3, not_copied.clone())], vec![], (0, 0, vec![3], vec![])),
            ("refused is skipped", vec![(4, 10)], vec![(4, refused)], vec![], (0, 1, vec![], vec![])),
            ("target uid gone", vec![(1, 10)], vec![(1, pushed(10, 5))], vec![], (0, 0, vec![1], vec![])),
            ("size differs", vec![(1, 10)], vec![(1, pushed(10, 5))], vec![(5, 11)], (0, 0, vec![], vec![1])),
            ("pushed elsewhere", vec![(1, 10)], vec![(1, elsewhere)], vec![(5, 10)], (0, 0, vec![1], vec![])),
            // The source's RFC822.SIZE disagrees with the bytes staged (bare-LF store): the staged size counts.
            ("staged size wins", vec![(1, 12)], vec![(1, pushed(10, 5))], vec![(5, 10)], (1, 0, vec![], vec![])),
            ("empty folder", vec![], vec![], vec![], (0, 0, vec![], vec![])),
            // A row for a message no longer on the source is not looked at.
            ("deleted on source", vec![], vec![(9, pushed(10, 5))], vec![], (0, 0, vec![], vec![])),
        ];
        for (name, source, rows, target, (on_target, skipped, missing, differs)) in cases {
            let check = run(&source, &rows, &target);
            assert_eq!(check.source_messages, source.len() as u64, "{name}");
            assert_eq!(check.on_target, on_target, "{name}");
            assert_eq!(check.skipped, skipped, "{name}");
            assert_eq!(check.missing, missing, "{name}");
            assert_eq!(check.missing_count, missing.len() as u64, "{name}");
            assert_eq!(check.differs, differs, "{name}");
            assert_eq!(check.ok(), missing.is_empty() && differs.is_empty(), "{name}");
        }
    }

    #[test]
    fn missing_bytes_and_notes() {
        let check = run(&[(7, 2048)], &[], &[]);
        assert_eq!(check.missing_bytes, 2048);
        assert!(check.notes[0].contains("UID 7") && check.notes[0].contains("2.0 KB"), "{:?}", check.notes);
    }

    #[test]
    fn lists_are_capped_counts_are_not() {
        let source: Vec<(u32, u64)> = (1..=(MAX_LISTED as u32 + 500)).map(|u| (u, 1)).collect();
        let check = run(&source, &[], &[]);
        assert_eq!(check.missing.len(), MAX_LISTED);
        assert_eq!(check.missing_count, MAX_LISTED as u64 + 500);
        assert_eq!(check.notes.len(), MAX_NOTES + 1);
    }

    #[test]
    fn windows_add_up() {
        // Comparing in two windows gives the same as one.
        let rows: BTreeMap<u32, RowView> = [(1, pushed(10, 5)), (2, pushed(10, 6))].into_iter().collect();
        let target = copies(&[(5, 10)]);
        let mut check = FolderCheck::new("a", "b");
        compare(&mut check, &[(1, 10)], &rows, &target, Likeness::Size);
        compare(&mut check, &[(2, 10)], &rows, &target, Likeness::Size);
        assert_eq!((check.source_messages, check.on_target, check.missing.clone()), (2, 1, vec![2]));
    }

    #[test]
    fn re_rendering_target_is_compared_by_identity() {
        let with_id = |size, target_uid, id: &str| RowView { identity: id.to_string(), ..pushed(size, target_uid) };
        let rows: BTreeMap<u32, RowView> =
            [(1, with_id(10, 5, "mid:a")), (2, with_id(10, 6, "mid:b")), (3, with_id(10, 7, ""))].into_iter().collect();
        // Every copy has another size (re-rendered); 6 holds another message; 7 has nothing to go by.
        let mid = |id: &str| crate::identity::Keys { message_id: Some(id.to_string()), headers: None };
        let target: BTreeMap<u32, TargetCopy> = [
            (5, TargetCopy { size: 14, identity: mid("mid:a") }),
            (6, TargetCopy { size: 14, identity: mid("mid:x") }),
            (7, TargetCopy { size: 14, identity: Default::default() }),
        ]
        .into_iter()
        .collect();
        let mut check = FolderCheck::new("a", "b");
        compare(&mut check, &[(1, 10), (2, 10), (3, 10)], &rows, &target, Likeness::Identity);
        assert_eq!((check.on_target, check.differs.clone()), (2, vec![2]));
        assert!(check.notes[0].contains("another message than target UID 6"), "{:?}", check.notes);
        let mut by_size = FolderCheck::new("a", "b");
        compare(&mut by_size, &[(1, 10)], &rows, &target, Likeness::Size);
        assert_eq!(by_size.differs, vec![1]);
    }

    #[test]
    fn count_check() {
        let mut check = FolderCheck::new("a", "b");
        check.pushed_rows = 3;
        check.target_messages = 2;
        assert!(!check.ok());
        check.target_messages = 5; // mail delivered on the target after the switch is fine
        assert!(check.ok());
        check.error = Some("x".into());
        assert!(!check.ok());
    }

    #[test]
    fn record_and_load() {
        let dir = std::env::temp_dir().join(format!("postflytt-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.upsert_account("a@x.se", &Secret::new("pw"), "a@y.se", None, &[]).unwrap();
        let id = store.accounts(&[]).unwrap()[0].id;
        assert_eq!(load(&store, id).unwrap(), None);
        let mut folder = run(&[(1, 10), (2, 10)], &[(1, pushed(10, 5))], &[(5, 10)]);
        folder.target = "Inkorg".into();
        let result = VerifyResult { account: "a@x.se".into(), ok: false, checked_at: 42, folders: vec![folder], error: None };
        record(&store, &result).unwrap();
        assert_eq!(load(&store, id).unwrap(), Some(result.clone()));
        assert!(result.line().contains("1 of 2 messages"), "{}", result.line());
        assert_eq!(result.summary(), "INBOX: 1 missing");
        let account = store.accounts(&[]).unwrap().remove(0);
        let failed = VerifyResult::failed(&account, "no database");
        assert!(!failed.ok && failed.summary().contains("no database"));
        store.set_verification(id, "{not json").unwrap();
        assert!(load(&store, id).is_err());
        let stranger = VerifyResult { account: "nobody@x.se".into(), ..result };
        assert!(record(&store, &stranger).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn temp_table_window_query() {
        // The TEMP table the I/O path fills is created and read back in UID order by window.
        let dir = std::env::temp_dir().join(format!("postflytt-verify-temp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.start_source_listing(1).unwrap();
        store.add_listed_source_uids(1, &mut vec![(3, 30), (1, 10), (2, 20)]).unwrap();
        let got = store.listed_source_uids_after(1, 1, 5).unwrap();
        assert_eq!(got, vec![(2, 20), (3, 30)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A throwaway Dovecot (plain IMAP on loopback), stopped and removed when dropped.
    struct Dovecot {
        child: std::process::Child,
        dir: std::path::PathBuf,
        port: u16,
    }

    impl Dovecot {
        /// None when Dovecot is not installed or we are not root (the mail must belong to a user
        /// other than root); the end-to-end test is then skipped with a note.
        fn start(name: &str, old_host: bool) -> Option<Dovecot> {
            if !std::path::Path::new("/usr/sbin/dovecot").exists()
                || std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").ok()?) != 0
            {
                return None;
            }
            let dir = std::env::temp_dir().join(format!("postflytt-verify-dovecot-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("home/alice")).unwrap();
            // The mail belongs to nobody (65534), never to root, as Dovecot requires.
            std::os::unix::fs::chown(dir.join("home"), Some(65534), Some(65534)).unwrap();
            std::os::unix::fs::chown(dir.join("home/alice"), Some(65534), Some(65534)).unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let d = dir.display();
            let namespace = if old_host {
                "mail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n  prefix = INBOX.\n  separator = .\n}\n"
            } else {
                "mail_location = maildir:~/Maildir:LAYOUT=fs\nnamespace inbox {\n  inbox = yes\n  separator = /\n}\n"
            };
            let config = format!(
                "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = pfv-{name}-{pid}\n\
                 log_path = {d}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\n\
                 first_valid_uid = 1\nmail_fsync = never\nauth_failure_delay = 0\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n}}\n{namespace}\
                 service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
                 inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
                pid = std::process::id()
            );
            std::fs::write(dir.join("dovecot.conf"), config).unwrap();
            std::fs::write(dir.join("users"), format!("alice:{{PLAIN}}pw-{name}:65534:65534::{d}/home/alice\n")).unwrap();
            let child = std::process::Command::new("/usr/sbin/dovecot")
                .arg("-c")
                .arg(dir.join("dovecot.conf"))
                .arg("-F")
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let server = Dovecot { child, dir, port };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "dovecot did not start: {:?}",
                    std::fs::read_to_string(server.dir.join("dovecot.log"))
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Some(server)
        }

        fn doveadm(&self, args: &[&str], stdin: Option<&str>) {
            use std::io::Write;
            let mut child = std::process::Command::new("doveadm")
                .arg("-c")
                .arg(self.dir.join("dovecot.conf"))
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
            drop(input);
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "doveadm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }

        fn save(&self, mailbox: &str, subject: &str, body_len: usize) {
            let mail = format!(
                "From: a@kund.se\r\nTo: alice@kund.se\r\nSubject: {subject}\r\nMessage-ID: <{subject}@kund.se>\r\n\
                 Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n\r\n{}\r\n",
                "x".repeat(body_len)
            );
            self.doveadm(&["save", "-u", "alice", "-m", mailbox], Some(&mail));
        }

        fn endpoint(&self) -> crate::imap::Endpoint {
            crate::imap::Endpoint { host: "127.0.0.1".into(), port: self.port, tls: crate::imap::TlsMode::Plain, pin_sha256: None }
        }
    }

    impl Drop for Dovecot {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn folder<'a>(result: &'a VerifyResult, source: &str) -> &'a FolderCheck {
        result.folders.iter().find(|f| f.source == source).unwrap_or_else(|| panic!("no folder {source} in {result:#?}"))
    }

    /// Against real servers: a migrated account verifies; a message lost on the target, a message and
    /// a folder new on the source since the last pass are each reported.
    #[test]
    fn end_to_end_with_dovecot() {
        let (Some(source), Some(target)) = (Dovecot::start("src", true), Dovecot::start("dst", false)) else {
            eprintln!("skipped: needs root and Debian's dovecot-imapd");
            return;
        };
        source.doveadm(&["mailbox", "create", "-u", "alice", "INBOX.Kunder.Åre"], None);
        for (i, size) in [10, 2000, 70_000].iter().enumerate() {
            source.save("INBOX", &format!("m{i}"), *size);
        }
        source.save("INBOX.Kunder.Åre", "kund", 500);

        let dir = std::env::temp_dir().join(format!("postflytt-verify-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.set_endpoint("source", &source.endpoint()).unwrap();
        store.set_endpoint("target", &target.endpoint()).unwrap();
        store.upsert_account("alice", &Secret::new("pw-src"), "alice", Some(&Secret::new("pw-dst")), &[]).unwrap();
        let account = store.accounts(&[]).unwrap().remove(0);
        let pass = smol::block_on(sync::pass_account(&store, &account, sync::PassKind::Incremental));
        assert!(pass.error.is_none() && pass.folder_errors.is_empty(), "{}", pass.line());

        let result = smol::block_on(verify_account(&store, &account));
        assert!(result.ok, "{result:#?}");
        let inbox = folder(&result, "INBOX");
        assert_eq!((inbox.source_messages, inbox.on_target, inbox.target_messages, inbox.pushed_rows), (3, 3, 3, 3));
        let kunder = folder(&result, "INBOX.Kunder.Åre");
        assert_eq!((kunder.source_messages, kunder.on_target), (1, 1), "{result:#?}");
        record(&store, &result).unwrap();
        assert_eq!(load(&store, account.id).unwrap(), Some(result));

        // Lose a message on the target, add mail and a folder on the source without a pass.
        target.doveadm(&["expunge", "-u", "alice", "mailbox", "INBOX", "uid", "2"], None);
        source.save("INBOX.Kunder.Åre", "late", 100);
        source.doveadm(&["mailbox", "create", "-u", "alice", "INBOX.Nytt"], None);
        source.save("INBOX.Nytt", "new", 100);
        let result = smol::block_on(verify_account(&store, &account));
        assert!(!result.ok && result.error.is_none(), "{result:#?}");
        let inbox = folder(&result, "INBOX");
        assert_eq!((inbox.on_target, inbox.missing.clone(), inbox.target_messages, inbox.pushed_rows), (2, vec![2], 2, 3), "{result:#?}");
        assert!(inbox.notes.iter().any(|n| n.contains("no longer in INBOX")), "{:?}", inbox.notes);
        let kunder = folder(&result, "INBOX.Kunder.Åre");
        assert_eq!((kunder.on_target, kunder.missing.clone()), (1, vec![2]), "{result:#?}");
        let new = folder(&result, "INBOX.Nytt");
        assert_eq!(new.missing_count, 1);
        assert!(new.error.as_deref().unwrap_or("").contains("new on the source"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
