//! Until an account's users switch to the new host, the target follows what they do on the old
//! server to the mail postflytt put there: a message that left a source folder is removed from the
//! target folder it was appended to; one that shows up in another source folder with the same bytes
//! (size and SHA-256) is moved there on the target instead of appended again; a renamed source folder
//! is renamed on the target (matched by UIDVALIDITY and its messages), and a deleted one goes too
//! when our messages were all it held. Only copies we appended are touched (`message.origin`); mail
//! that reached the target another way never is. After the switch (`store::switch`), or with the
//! setting off, nothing here runs except finishing what was journalled before.
//!
//! A pass calls `before_copy` (renames, then which rows the source no longer has: absent folders,
//! and folders whose counts say something went), `move_in` from the push before it appends (a MOVE
//! instead of an APPEND), and `after_copy` (the rest of the gone copies removed, emptied folders
//! deleted). Every MOVE, EXPUNGE and RENAME is journalled in the store (`store::mirror`) and committed
//! before the command goes out; a crash or a cut between the command and its record is resolved by
//! the next pass: a moved row is looked up by content like a lost APPEND, an expunge is repeated
//! (harmless: only our UIDs, by UID), a rename is recorded from what the target's folders show.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use crate::fault;
use crate::imap::{FolderStatus, ImapError, Session, in_ranges};
use crate::pull::uid_set;
use crate::store::{AbsentFolder, GoneCopy, MovePair, Store, TargetCopy, TargetFolderRow, now};
use crate::utf7;

/// At most this many messages per MOVE or EXPUNGE command (one journal entry each).
const BATCH: usize = 200;

/// What mirroring did in one pass, for the pass's line, the page and the report.
#[derive(Debug, Default, Clone)]
pub struct MirrorStats {
    /// Messages the source no longer had where we last saw them.
    pub gone: u64,
    pub moved: u64,
    pub removed: u64,
    pub renamed_folders: u64,
    pub deleted_folders: u64,
}

impl MirrorStats {
    pub fn is_empty(&self) -> bool {
        self.moved + self.removed + self.renamed_folders + self.deleted_folders == 0
    }

    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if self.moved > 0 {
            parts.push(format!("{} moved", self.moved));
        }
        if self.removed > 0 {
            parts.push(format!("{} removed", self.removed));
        }
        if self.renamed_folders > 0 {
            parts.push(format!("{} folders renamed", self.renamed_folders));
        }
        if self.deleted_folders > 0 {
            parts.push(format!("{} folders deleted", self.deleted_folders));
        }
        format!("followed the old server: {}", parts.join(", "))
    }
}

/// The target's folders as the pass knows them: wire names, and the special-use ones (never deleted).
pub struct TargetFolders<'a> {
    pub existing: &'a mut BTreeSet<String>,
    pub special: &'a BTreeSet<String>,
    /// The target's hierarchy delimiter: what makes one folder another's child.
    pub delimiter: char,
}

/// A failure that concerns one folder (a tagged NO to its EXAMINE or STATUS): logged, and the folder
/// is looked at again next pass while the account goes on; one that ends the account's pass is returned.
fn folder_only(e: anyhow::Error, label: &str, folder: &str) -> Result<()> {
    if crate::failure::policy(&e).0 >= crate::failure::Scope::Account {
        return Err(e);
    }
    log::warn!("{label}: {folder}: {e:#}; looked at again next pass");
    Ok(())
}

/// Whether a refused STATUS says the folder does not exist: RFC 5530's `[NONEXISTENT]`, or quirk
/// `status_missing_without_code`: Dovecot 2.3.19 answers STATUS of a folder deleted meanwhile with a
/// plain `NO Mailbox doesn't exist: NAME` (seen December 2026; its SELECT carries the code), as do
/// servers that predate RFC 5530. Only a NO without any response code and with those words counts; a
/// server in trouble says `[UNAVAILABLE]`, `[INUSE]` or `[SERVERBUG]`, which count as "ask again".
fn says_missing(answer: &crate::imap::Answer) -> bool {
    if answer.has_code("NONEXISTENT") {
        return true;
    }
    let words = answer.text.to_ascii_lowercase();
    answer.code.is_none()
        && answer.kind == imap_next::imap_types::response::StatusKind::No
        && ["doesn't exist", "does not exist", "no such mailbox", "no such folder", "mailbox not found", "folder not found"]
            .iter()
            .any(|w| words.contains(w))
}

/// Whether a refusal says the server is in trouble rather than that the folder is gone: never taken
/// for a deletion, however often the folder is not listed.
fn in_trouble(answer: &crate::imap::Answer) -> bool {
    ["UNAVAILABLE", "INUSE", "SERVERBUG", "LIMIT", "EXPUNGEISSUED"].iter().any(|code| answer.has_code(code))
}

/// The STATUS of every listed, selectable folder the folder choice leaves out (from the listing's,
/// else asked; one that cannot be asked is skipped): only asked when a folder with rows is no longer
/// listed. (Listed, so it exists: its STATUS is no `status_no_echoes_utf8_name` refusal.)
async fn excluded_statuses(
    store: &Store,
    account_id: i64,
    source: &mut Session,
    statuses: &BTreeMap<String, FolderStatus>,
) -> Result<Vec<(String, FolderStatus)>> {
    let mut found = Vec::new();
    for wire_name in store.excluded_listed_folders(account_id)? {
        let status = match statuses.get(&wire_name) {
            Some(status) => status.clone(),
            None => match source.status(&wire_name, false).await {
                Ok(status) => status,
                Err(e) => {
                    folder_only(e, source.label(), &wire_name)?;
                    continue;
                }
            },
        };
        found.push((wire_name, status));
    }
    Ok(found)
}

/// Quirk `status_no_echoes_utf8_name` (Dovecot 2.3.19, seen 2026-12 in the folder choice's review):
/// STATUS of a mailbox that no longer exists is refused with `NO Mailbox doesn't exist: Kunder/Åre`,
/// the name decoded to raw UTF-8 in the text, which IMAP's grammar does not allow and the parser
/// refuses as a malformed answer, costing the connection (so the account's pass, every pass). A
/// folder whose name is not plain ASCII is therefore not asked: it counts as deleted once two
/// listings in a row left it out. Test: `tests/mirror.rs` deletes `Kunder/Åre` on Dovecot.
fn may_ask_status(wire_name: &str) -> bool {
    // Modified UTF-7 writes every non-ASCII name with '&'; a literal '&' is "&-".
    !wire_name.replace("&-", "").contains('&') && wire_name.is_ascii()
}

/// Whether `name` is `parent`'s child (or deeper) under `delimiter`.
fn is_under(name: &str, parent: &str, delimiter: char) -> bool {
    name.strip_prefix(parent).is_some_and(|rest| rest.starts_with(delimiter))
}

/// Renames, then the rows the source no longer has. `statuses` (the source's STATUS by wire name, as
/// the listing brought them) gains those asked here, for the reader to use.
#[allow(clippy::too_many_arguments)]
pub async fn before_copy(
    store: &Store,
    account_id: i64,
    source: &mut Session,
    target: &mut Session,
    mut folders: TargetFolders<'_>,
    statuses: &mut BTreeMap<String, FolderStatus>,
    condstore: bool,
    stats: &mut MirrorStats,
) -> Result<()> {
    if !target.can_remove_by_uid() {
        log::warn!(
            "{}: the target offers no UID EXPUNGE (UIDPLUS); moves and deletions on the old server are not followed",
            target.label()
        );
        return Ok(());
    }
    renames(store, account_id, source, target, &mut folders, statuses, stats).await?;
    let at = now();
    // Folders the listing no longer shows: asked once more, so a listing that left one out by mistake
    // cannot empty its target folder. Deleted is what the server says (`says_missing`), or any refusal
    // after two listings in a row left the folder out.
    let mut excluded: Option<Vec<(String, FolderStatus)>> = None;
    for folder in store.absent_folders(account_id)? {
        if folder.rows == 0 {
            continue;
        }
        // Renamed into a part of the tree the operator's folder choice leaves out: the mail is still
        // on the old server, only no longer moved. The folder is parked: its rows and its copies on
        // the target stay as they are, and should it come back (under its old name or another),
        // it is read on, or renamed, not copied again.
        let excluded = match &mut excluded {
            Some(known) => known,
            None => excluded.insert(excluded_statuses(store, account_id, source, statuses).await?),
        };
        if let Some((into, _)) = excluded.iter().find(|(_, s)| {
            folder.uidvalidity.is_some()
                && s.uidvalidity == folder.uidvalidity
                && i64::from(s.messages) == folder.rows
                && (folder.uidnext.is_none() || s.uidnext == folder.uidnext)
        }) {
            log::info!(
                "{}: folder {} was renamed to {}, which the folder choice leaves out; its copies stay on the target as they are",
                source.label(),
                folder.name,
                crate::utf7::decode_or_raw(into)
            );
            continue;
        }
        if !may_ask_status(&folder.wire_name) {
            if folder.absent_listings >= 2 {
                store.write(|tx| tx.mark_folder_gone(folder.id, at))?;
                stats.gone += folder.rows as u64;
            }
            continue;
        }
        match source.status(&folder.wire_name, false).await {
            Ok(_) => log::info!("{}: folder {} was not listed but is there; left as it is", source.label(), folder.name),
            Err(e) => match crate::imap::kind_of(&e) {
                Some(ImapError::Refused { answer, .. }) if says_missing(answer) || (folder.absent_listings >= 2 && !in_trouble(answer)) => {
                    store.write(|tx| tx.mark_folder_gone(folder.id, at))?;
                    stats.gone += folder.rows as u64;
                }
                Some(ImapError::Refused { .. }) => {
                    log::info!("{}: folder {} is not listed; asked again next pass", source.label(), folder.name)
                }
                _ => return Err(e),
            },
        }
    }
    // Folders whose counts say a message went: their UIDs compared with ours.
    let rows = store.source_folders_to_pull(account_id)?;
    let missing: Vec<String> = rows
        .iter()
        .filter(|row| row.uidvalidity.is_some() && !statuses.contains_key(&row.wire_name))
        .map(|row| row.wire_name.clone())
        .collect();
    statuses.extend(source.statuses(&missing, condstore).await?);
    let mut seen: Vec<(i64, Option<u64>, Option<u32>)> = Vec::new();
    for row in rows {
        let Some(uidvalidity) = row.uidvalidity else { continue };
        let Some(status) = statuses.get(&row.wire_name).cloned() else { continue };
        let (seen_modseq, seen_uidnext) = store.mirror_seen(row.id)?;
        if status.uidvalidity != Some(uidvalidity) {
            if seen_modseq.is_some() || seen_uidnext.is_some() {
                seen.push((row.id, None, None));
            }
            continue;
        }
        // Untouched since it was last looked through (an expunge raises the mod-sequence): no count
        // needed. Compared with what that look saw, not with what the pull read later: mail moved
        // between the two would otherwise never be looked for.
        let seen_now = (status.highest_modseq, status.uidnext);
        if condstore && status.highest_modseq.is_some() && (seen_modseq, seen_uidnext) == seen_now {
            continue;
        }
        let (known, highest_known) = store.known_present(row.id, uidvalidity)?;
        if known == 0 {
            seen.push((row.id, seen_now.0, seen_now.1));
            continue;
        }
        let highest = highest_known.max(row.last_uid);
        // With nothing gone, the folder holds every known message plus at most every UID issued since
        // the last pass read it (UIDs issued before that and never seen went before we looked).
        let first_new = row.uidnext.unwrap_or(0).max(highest.saturating_add(1));
        let could_be_new = status.uidnext.map(|next| next.saturating_sub(first_new) as u64);
        if could_be_new.is_some_and(|new| u64::from(status.messages) >= known + new) {
            seen.push((row.id, seen_now.0, seen_now.1));
            continue;
        }
        let look = Look { uidvalidity, known, highest, first_new, since: seen_modseq };
        let gone = match scan_folder(store, source, &row, &look, condstore).await {
            Ok(Some(gone)) => gone,
            // Changed while we looked: looked at again next pass.
            Ok(None) => continue,
            Err(e) => {
                folder_only(e, source.label(), &row.name)?;
                continue;
            }
        };
        stats.gone += gone.len() as u64;
        if !gone.is_empty() {
            store.write(|tx| tx.mark_gone(&gone, at))?;
        }
        seen.push((row.id, seen_now.0, seen_now.1));
    }
    // What each folder looked like when looked through, in one short write for all of them (a pass
    // that dies before it looks again next time, which is harmless).
    if !seen.is_empty() {
        store.write_unsynced(|tx| seen.iter().try_for_each(|&(id, modseq, uidnext)| tx.set_mirror_seen(id, modseq, uidnext)))?;
    }
    fault::point("mirror: gone marked");
    // What needs nothing on the target (never copied, or not ours) goes at once.
    store.write(|tx| tx.settle_gone(account_id))?;
    Ok(())
}

/// What a look through one folder for gone mail starts from.
struct Look {
    uidvalidity: u32,
    /// Our rows of the folder not gone, and the highest UID we know of.
    known: u64,
    highest: u32,
    /// The lowest UID a message we have not listed can have.
    first_new: u32,
    /// The mod-sequence of the last complete look, if any.
    since: Option<u64>,
}

/// The rows of one source folder the source no longer has: from EXAMINE's VANISHED where QRESYNC is
/// on and the folder was looked through before, else (or when that does not account for every
/// missing message) from all of its UIDs. None when the folder changed while we looked.
async fn scan_folder(
    store: &Store,
    source: &mut Session,
    row: &crate::store::SourceFolderRow,
    look: &Look,
    condstore: bool,
) -> Result<Option<Vec<i64>>> {
    let uidvalidity = look.uidvalidity;
    let mut gone = Vec::new();
    let mut settled = false;
    // Where QRESYNC is on, EXAMINE names what went since the last look (one round trip). It is
    // taken as the whole story only when our rows left, plus every UID issued since that did not
    // vanish too, are no more than the folder holds; else all UIDs are read.
    if let (true, Some(modseq)) = (source.qresync(), look.since) {
        let (selected, vanished) = source.examine_vanished(&row.wire_name, uidvalidity, modseq).await?;
        if selected.uidvalidity != Some(uidvalidity) {
            return Ok(None);
        }
        store.each_present_row(row.id, uidvalidity, &mut |id, uid| {
            if in_ranges(&vanished, uid) {
                gone.push(id);
            }
        })?;
        let issued = selected.uidnext.map(|next| u64::from(next.saturating_sub(look.first_new)));
        let vanished_new: u64 = vanished
            .iter()
            .map(|&(low, high)| {
                let (low, high) = (low.max(look.first_new), high.min(selected.uidnext.unwrap_or(0).saturating_sub(1)));
                if high >= low { u64::from(high - low) + 1 } else { 0 }
            })
            .sum();
        settled =
            issued.is_some_and(|issued| look.known - gone.len() as u64 + issued.saturating_sub(vanished_new) <= u64::from(selected.exists));
        if !settled {
            gone.clear();
        }
    }
    if !settled {
        let selected = source.select(&row.wire_name, true, condstore).await?;
        if selected.uidvalidity != Some(uidvalidity) {
            return Ok(None);
        }
        let highest = look.highest;
        let (present, count) = source.uids_present(highest).await?;
        if count != u64::from(selected.exists) {
            // Mail came or went while we looked: the next pass looks again.
            log::info!("{}: {} changed while its UIDs were read; looked at again next pass", source.label(), row.name);
            return Ok(None);
        }
        store.each_present_row(row.id, uidvalidity, &mut |id, uid| {
            if uid <= highest && !in_ranges(&present, uid) {
                gone.push(id);
            }
        })?;
    }
    Ok(Some(gone))
}

/// A renamed source folder: a folder listed for the first time with the UIDVALIDITY, message count
/// and UIDNEXT of one no longer listed, whose target folder holds only our copies, is renamed on the
/// target and takes over the old folder's rows; nothing is copied again.
async fn renames(
    store: &Store,
    account_id: i64,
    source: &mut Session,
    target: &mut Session,
    folders: &mut TargetFolders<'_>,
    statuses: &mut BTreeMap<String, FolderStatus>,
    stats: &mut MirrorStats,
) -> Result<()> {
    let mut absent: Vec<AbsentFolder> =
        store.absent_folders(account_id)?.into_iter().filter(|f| f.rows > 0 && f.uidvalidity.is_some()).collect();
    if absent.is_empty() {
        return Ok(());
    }
    for new in store.unread_folders(account_id)? {
        let Some(target_name) = new.target_name.clone() else { continue };
        let new_wire = utf7::encode(&target_name);
        let status = match statuses.get(&new.wire_name) {
            Some(status) => status.clone(),
            None => match source.status(&new.wire_name, false).await {
                Ok(status) => {
                    statuses.insert(new.wire_name.clone(), status.clone());
                    status
                }
                Err(e) => {
                    folder_only(e, source.label(), &new.wire_name)?;
                    continue;
                }
            },
        };
        let journalled = new.renaming_from;
        let Some(index) = absent.iter().position(|old| match journalled {
            Some(id) => old.id == id,
            None => {
                old.uidvalidity == status.uidvalidity
                    && i64::from(status.messages) == old.rows
                    && (old.uidnext.is_none() || old.uidnext == status.uidnext)
            }
        }) else {
            if journalled.is_some() {
                store.write(|tx| tx.clear_rename(new.id))?;
            }
            continue;
        };
        let old = absent[index].clone();
        if journalled.is_none() {
            match same_messages(store, source, &new.wire_name, &old).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    folder_only(e, source.label(), &new.wire_name)?;
                    continue;
                }
            }
        }
        let Some(home) = store.target_home(old.id)? else { continue };
        // Every row of the old folder is ours on the target, the target folder holds nothing else, and
        // it is no folder the target gives a role (INBOX, Sent...): those are never renamed away.
        let special = home.wire_name.eq_ignore_ascii_case("INBOX") || folders.special.contains(&home.wire_name);
        if home.ours != old.rows || home.recorded != home.ours || special {
            if journalled.is_some() {
                store.write(|tx| tx.clear_rename(new.id))?;
            }
            continue;
        }
        let old_there = folders.existing.contains(&home.wire_name);
        let new_there = folders.existing.contains(&new_wire);
        let adopt = if home.wire_name == new_wire {
            true
        } else if old_there && !new_there {
            let held = match target.status(&home.wire_name, false).await {
                Ok(held) => held,
                Err(e) => {
                    folder_only(e, target.label(), &home.wire_name)?;
                    continue;
                }
            };
            if i64::from(held.messages) != home.recorded || held.uidvalidity != home.uidvalidity {
                if journalled.is_some() {
                    store.write(|tx| tx.clear_rename(new.id))?;
                }
                continue;
            }
            let journalled = store.write(|tx| {
                if !tx.still_mirrors(account_id)? {
                    return Ok(false);
                }
                tx.journal_rename(new.id, old.id)?;
                Ok(true)
            })?;
            if !journalled {
                return Ok(());
            }
            fault::point("mirror: rename journalled");
            let answer = target.rename(&home.wire_name, &new_wire).await?;
            if !answer.is_ok() {
                log::warn!("{}: could not rename {} to {}: {}", target.label(), home.wire_name, new_wire, answer.words());
                store.write(|tx| tx.clear_rename(new.id))?;
                continue;
            }
            fault::point("mirror: renamed, not recorded");
            rename_in(folders.existing, &home.wire_name, &new_wire, folders.delimiter);
            true
        } else if !old_there && new_there {
            // Renamed already: with its parent, or by a RENAME whose record a crash cut off. The folder
            // under the new name must be the one we filled (same UIDVALIDITY).
            match target.status(&new_wire, false).await {
                Ok(held) => held.uidvalidity.is_some() && held.uidvalidity == home.uidvalidity,
                Err(e) => {
                    folder_only(e, target.label(), &new_wire)?;
                    false
                }
            }
        } else {
            false
        };
        if adopt {
            store.write(|tx| tx.adopt_renamed_folder(new.id, &old, home.target_folder_id, &target_name, &new_wire, folders.delimiter))?;
            stats.renamed_folders += 1;
            log::info!("{}: folder {} renamed to {} on the target, as on the old server", target.label(), home.wire_name, new_wire);
            absent.remove(index);
        } else if journalled.is_some() {
            store.write(|tx| tx.clear_rename(new.id))?;
        }
    }
    Ok(())
}

/// Whether the source's folder `wire_name` holds exactly the UIDs and sizes we recorded for `old`
/// (one EXAMINE and one UID FETCH; compared as a digest, so memory does not grow with the folder).
async fn same_messages(store: &Store, source: &mut Session, wire_name: &str, old: &AbsentFolder) -> Result<bool> {
    use sha2::{Digest, Sha256};
    let Some(uidvalidity) = old.uidvalidity else { return Ok(false) };
    let selected = source.select(wire_name, true, false).await?;
    if selected.uidvalidity != Some(uidvalidity) {
        return Ok(false);
    }
    let mut digest = Sha256::new();
    let mut last = 0u32;
    let mut in_order = true;
    source
        .uid_fetch(&["1:*".to_string()], &[crate::imap::FetchItem::Uid, crate::imap::FetchItem::Size], None, &mut |meta| {
            in_order &= meta.uid > last;
            last = meta.uid;
            digest.update(format!("{} {}\n", meta.uid, meta.size.unwrap_or(0)).as_bytes());
            Ok(())
        })
        .await?;
    let source_digest: [u8; 32] = digest.finalize().into();
    Ok(in_order && source_digest == store.uid_size_digest(old.id, uidvalidity)?)
}

/// The target's folder names after `from` was renamed to `to`: its children went with it.
fn rename_in(existing: &mut BTreeSet<String>, from: &str, to: &str, delimiter: char) {
    let renamed: Vec<String> = existing.iter().filter(|name| name.as_str() == from || is_under(name, from, delimiter)).cloned().collect();
    for name in renamed {
        existing.remove(&name);
        existing.insert(format!("{to}{}", &name[from.len()..]));
    }
}

/// Before the push appends a folder's staged messages: those whose bytes equal a gone row's copy of
/// ours are moved to `target` instead (a copy already in `target` is kept as it is). Returns how many.
pub async fn move_in(
    store: &Store,
    account_id: i64,
    session: &mut Session,
    source_folder_id: i64,
    target: &TargetFolderRow,
) -> Result<u64> {
    if !store.has_movable_gone(account_id)? || !store.mirrors(account_id)? {
        return Ok(0);
    }
    let mut used_new = BTreeSet::new();
    let mut used_old = BTreeSet::new();
    let mut by_folder: BTreeMap<(i64, String, u32), Vec<MovePair>> = BTreeMap::new();
    let mut kept = Vec::new();
    for pair in store.move_candidates(account_id, source_folder_id)? {
        if used_new.contains(&pair.new_id) || used_old.contains(&pair.old_id) {
            continue;
        }
        used_new.insert(pair.new_id);
        used_old.insert(pair.old_id);
        if pair.from_folder_id == target.id && Some(pair.from_uidvalidity) == target.uidvalidity {
            kept.push(pair);
        } else {
            by_folder.entry((pair.from_folder_id, pair.from_wire.clone(), pair.from_uidvalidity)).or_default().push(pair);
        }
    }
    let mut moved = 0u64;
    if !kept.is_empty() {
        // Gone and back in the same folder: the copy there is the new row's.
        store.write(|tx| {
            for pair in &kept {
                tx.record_moved(
                    pair.new_id,
                    pair.old_id,
                    TargetCopy { folder_id: target.id, uidvalidity: pair.from_uidvalidity, uid: pair.uid },
                )?;
            }
            Ok(())
        })?;
        moved += kept.len() as u64;
    }
    for ((_, from_wire, from_uidvalidity), pairs) in by_folder {
        for batch in pairs.chunks(BATCH) {
            // Switched (or turned off) since the pass began: nothing more is moved.
            let journalled = store.write(|tx| {
                if !tx.still_mirrors(account_id)? {
                    return Ok(false);
                }
                tx.journal_moves(batch, target.id)?;
                Ok(true)
            })?;
            if !journalled {
                return Ok(moved);
            }
            fault::point("mirror: move journalled");
            let selected = session.select(&from_wire, false, false).await;
            let addressable = match selected {
                Ok(selected) => selected.uidvalidity == Some(from_uidvalidity),
                Err(e) if matches!(crate::imap::kind_of(&e), Some(ImapError::Refused { .. })) => false,
                Err(e) => return Err(e),
            };
            if !addressable {
                // The folder our copies were in is gone or was re-created: nothing to move from.
                store.write(|tx| batch.iter().try_for_each(|pair| tx.move_not_made(pair.new_id, pair.old_id)))?;
                continue;
            }
            let mut uids: Vec<u32> = batch.iter().map(|pair| pair.uid).collect();
            uids.sort_unstable();
            let answer = session.uid_move(&uid_set(uids), &target.wire_name).await?;
            if !answer.answer.is_ok() {
                log::warn!("{}: could not move from {from_wire} to {}: {}", session.label(), target.wire_name, answer.answer.words());
                store.write(|tx| batch.iter().try_for_each(|pair| tx.move_not_made(pair.new_id, pair.old_id)))?;
                continue;
            }
            fault::point("mirror: moved, not recorded");
            let Some(uidvalidity) = answer.uidvalidity else { continue };
            let recorded = store.write(|tx| {
                let mut recorded = 0u64;
                for pair in batch {
                    if let Some(&uid) = answer.landed.get(&pair.uid) {
                        let copy = TargetCopy { folder_id: target.id, uidvalidity, uid };
                        if answer.originals_left {
                            // The original stays until the end of the pass removes it.
                            tx.record_copied(pair.new_id, pair.old_id, copy)?;
                        } else {
                            tx.record_moved(pair.new_id, pair.old_id, copy)?;
                            recorded += 1;
                        }
                    }
                }
                Ok(recorded)
            })?;
            moved += recorded;
        }
    }
    Ok(moved)
}

/// After the folders moved: the gone rows' copies of ours still on the target are removed (all of
/// them while the account mirrors; only those whose removal was journalled once it has switched),
/// and target folders of deleted source folders that held only our mail are deleted.
pub async fn after_copy(
    store: &Store,
    account_id: i64,
    target: &mut Session,
    folders: TargetFolders<'_>,
    renewed: &[(i64, u32)],
    stats: &mut MirrorStats,
) -> Result<()> {
    let mirroring = store.mirrors(account_id)? && target.can_remove_by_uid();
    if mirroring && !renewed.is_empty() {
        // Folders whose UIDVALIDITY changed this pass (deleted and made again, rebuilt): what matched
        // none of their messages now is gone.
        let at = now();
        store.write(|tx| {
            renewed.iter().try_for_each(|&(folder_id, uidvalidity)| tx.mark_stale_uidvalidity_gone(folder_id, uidvalidity, at))
        })?;
        store.write(|tx| tx.settle_gone(account_id))?;
    }
    let mut groups: BTreeMap<(i64, String, u32), Vec<GoneCopy>> = BTreeMap::new();
    let mut left_alone = Vec::new();
    for copy in store.gone_copies(account_id)? {
        if mirroring || copy.journalled {
            groups.entry((copy.target_folder_id, copy.wire_name.clone(), copy.uidvalidity)).or_default().push(copy);
        } else {
            left_alone.push(copy.id);
        }
    }
    if !left_alone.is_empty() {
        // Switched meanwhile: the copies stay on the target; the rows go.
        store.write(|tx| tx.forget_messages(&left_alone))?;
    }
    for ((_, wire_name, uidvalidity), copies) in groups {
        for batch in copies.chunks(BATCH) {
            // Switched (or turned off) since the pass began: only what was journalled before goes.
            let ids: Vec<i64> = store.write(|tx| {
                if tx.still_mirrors(account_id)? {
                    let ids: Vec<i64> = batch.iter().map(|c| c.id).collect();
                    tx.journal_expunge(&ids)?;
                    return Ok(ids);
                }
                let fresh: Vec<i64> = batch.iter().filter(|c| !c.journalled).map(|c| c.id).collect();
                tx.forget_messages(&fresh)?;
                Ok(batch.iter().filter(|c| c.journalled).map(|c| c.id).collect())
            })?;
            if ids.is_empty() {
                continue;
            }
            let batch: Vec<&GoneCopy> = batch.iter().filter(|c| ids.contains(&c.id)).collect();
            fault::point("mirror: expunge journalled");
            let addressable = match target.select(&wire_name, false, false).await {
                Ok(selected) => selected.uidvalidity == Some(uidvalidity),
                Err(e) if matches!(crate::imap::kind_of(&e), Some(ImapError::Refused { .. })) => false,
                Err(e) => return Err(e),
            };
            if addressable {
                let mut uids: Vec<u32> = batch.iter().map(|c| c.uid).collect();
                uids.sort_unstable();
                let answer = target.uid_expunge(&uid_set(uids)).await?;
                if !answer.is_ok() {
                    log::warn!("{}: could not remove from {wire_name}: {}", target.label(), answer.words());
                    continue;
                }
                fault::point("mirror: expunged, not recorded");
            }
            store.write(|tx| tx.forget_messages(&ids))?;
            let moved = batch.iter().filter(|c| c.moving).count() as u64;
            stats.moved += moved;
            stats.removed += batch.len() as u64 - moved;
        }
    }
    if mirroring {
        stats.deleted_folders += delete_emptied_folders(store, account_id, target, folders).await?;
    }
    store.write(|tx| tx.reset_emptied_absent_folders(account_id))?;
    Ok(())
}

/// Target folders of source folders the users deleted: deleted too once none of our copies is left
/// in them and nothing else is (deepest first, so children go before their parent). INBOX, special
/// folders, folders another source folder still maps to and folders we never copied into stay.
async fn delete_emptied_folders(store: &Store, account_id: i64, target: &mut Session, folders: TargetFolders<'_>) -> Result<u64> {
    let mut deleted = 0;
    let mut absent = store.absent_folders(account_id)?;
    absent.sort_by(|a, b| b.name.cmp(&a.name));
    for folder in absent {
        if folder.rows > 0 {
            continue;
        }
        let Some(target_name) = folder.target_name.as_deref() else {
            store.write(|tx| tx.forget_source_folder(folder.id))?;
            continue;
        };
        let wire = utf7::encode(target_name);
        let keep = wire.eq_ignore_ascii_case("INBOX")
            || folders.special.contains(&wire)
            || store.folders_mapped_to(account_id, target_name)? > 0
            || !store.copied_into(account_id, &wire)?;
        if keep || !folders.existing.contains(&wire) {
            store.write(|tx| tx.forget_source_folder(folder.id))?;
            continue;
        }
        let has_children = folders.existing.iter().any(|name| is_under(name, &wire, folders.delimiter));
        let status = match target.status(&wire, false).await {
            Ok(status) => status,
            Err(e) => {
                folder_only(e, target.label(), &wire)?;
                continue;
            }
        };
        if status.messages > 0 || has_children {
            // Mail that is not ours, or folders under it: it stays.
            store.write(|tx| tx.forget_source_folder(folder.id))?;
            continue;
        }
        if !store.mirrors(account_id)? {
            return Ok(deleted);
        }
        let answer = target.delete(&wire).await?;
        if answer.is_ok() {
            fault::point("mirror: folder deleted, not recorded");
            folders.existing.remove(&wire);
            deleted += 1;
            log::info!("{}: folder {wire} deleted on the target, as on the old server", target.label());
        } else {
            log::warn!("{}: could not delete folder {wire}: {}", target.label(), answer.words());
        }
        store.write(|tx| tx.forget_source_folder(folder.id))?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::Answer;
    use imap_next::imap_types::response::{Code, StatusKind};

    #[test]
    fn a_folder_with_a_name_that_is_not_ascii_is_not_asked_status() {
        assert!(may_ask_status("INBOX.Kunder"));
        assert!(may_ask_status("Kunder &- Leverant&-rer"));
        assert!(!may_ask_status("Kunder/&AMU-re"));
        assert!(!may_ask_status("Kunder/Åre"));
    }

    #[test]
    fn a_missing_folder_is_told_by_its_code_or_by_plain_words_only() {
        let answer = |kind, code, text: &str| Answer { kind, code, text: text.to_string() };
        assert!(says_missing(&answer(StatusKind::No, None, "Mailbox doesn't exist: Gammalt (0.001 + 0.000 secs).")));
        assert!(says_missing(&answer(StatusKind::No, None, "Mailbox does not exist")));
        let coded = Code::Other(imap_next::imap_types::response::CodeOther::unvalidated(b"NONEXISTENT".as_ref()));
        assert!(says_missing(&answer(StatusKind::No, Some(coded), "Unknown Mailbox")));
        let busy = Code::Other(imap_next::imap_types::response::CodeOther::unvalidated(b"UNAVAILABLE".as_ref()));
        assert!(!says_missing(&answer(StatusKind::No, Some(busy), "Mailbox doesn't exist right now")));
        assert!(!says_missing(&answer(StatusKind::No, None, "Internal error occurred. Refer to server log for more information.")));
        assert!(!says_missing(&answer(StatusKind::Bad, None, "Mailbox doesn't exist")));
    }

    #[test]
    fn a_rename_takes_the_children_along() {
        let mut existing: BTreeSet<String> =
            ["INBOX", "Projekt", "Projekt/A", "Projekt/A/B", "Projekter", "Other"].into_iter().map(String::from).collect();
        existing.insert("Projekt.old".to_string());
        rename_in(&mut existing, "Projekt", "Arkiv/2026", '/');
        let names: Vec<&str> = existing.iter().map(String::as_str).collect();
        assert_eq!(names, ["Arkiv/2026", "Arkiv/2026/A", "Arkiv/2026/A/B", "INBOX", "Other", "Projekt.old", "Projekter"]);
    }
}
