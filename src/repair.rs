//! Repair: copies again what verification found missing on the target. The operator's request is
//! stored per account (the source UIDs verification listed as missing, per folder,
//! `Store::request_repair`); the account's next pass acts on it here, before anything moves: for each
//! such folder it asks the target which UIDs its folder holds now, and sends each of those messages
//! whose copy is recorded at a UID the target no longer has back to `appending`, in one transaction
//! that also withdraws the request. From there the pass does what it does after a lost APPEND answer
//! or a re-created target folder: it looks the folder through by content (or identity) from its first
//! UID, claims a copy it finds, and appends the rest again, from staging or fetched from the source
//! again when their bytes had left staging. So repair stays exactly once: only a copy the target itself
//! says is gone is reopened, the journal records each APPEND before it goes out as usual, and a crash
//! anywhere resumes from the journal (the request survives until it is acted on).
//!
//! A target folder whose UIDVALIDITY changed is not repair's to handle: the push reopens its copies
//! anyway. A folder never recorded has no copies to lose.

use anyhow::{Result, bail};

use crate::imap::{FetchItem, Session};
use crate::store::{Account, Store};
use crate::utf7;

/// Acts on the account's repair request, if there is one: returns how many copies were sent back to
/// be looked up and appended again.
pub async fn reopen_requested(store: &Store, account: &Account, target: &mut Session) -> Result<u64> {
    let wanted = store.repair_request(account.id)?;
    if wanted.is_empty() {
        return Ok(0);
    }
    let mut lost = Vec::new();
    let mut looked_through = Vec::new();
    for folder in store.folders_to_verify(account.id)? {
        let (Some(uids), Some(source_uidvalidity)) = (wanted.get(&folder.name), folder.uidvalidity) else { continue };
        let Some(target_name) = folder.target_name else { continue };
        let wire = utf7::encode(&target_name);
        let Some((target_id, Some(uidvalidity))) = store.recorded_target_folder(account.id, &wire)? else { continue };
        // Only the messages verification named: one the source no longer has (or a user deleted on
        // the target after its source copy went) is not brought back.
        let recorded: Vec<(i64, u32)> = store
            .pushed_copies(folder.id, source_uidvalidity, target_id, uidvalidity)?
            .into_iter()
            .filter(|(_, uid, _)| uids.contains(uid))
            .map(|(id, _, target_uid)| (id, target_uid))
            .collect();
        if recorded.is_empty() {
            continue;
        }
        let selected = target.select(&wire, true, false).await?;
        if selected.uidvalidity != Some(uidvalidity) {
            continue;
        }
        let mut present = Vec::new();
        if selected.exists > 0 {
            target
                .uid_fetch(&["1:*".to_string()], &[FetchItem::Uid], None, &mut |meta| {
                    present.push(meta.uid);
                    Ok(())
                })
                .await?;
        }
        if (present.len() as u64) < u64::from(selected.exists) {
            // An answer cut short would make present copies look lost, and appending those again
            // would duplicate them.
            bail!(
                "{}: the target listed {} of {} messages in {target_name}; repair not started",
                target.label(),
                present.len(),
                selected.exists
            );
        }
        present.sort_unstable();
        let gone: Vec<i64> = recorded.iter().filter(|(_, uid)| present.binary_search(uid).is_err()).map(|&(id, _)| id).collect();
        if !gone.is_empty() {
            log::info!(
                "{}: {} of {} copies in {target_name} are no longer on the target; copying them again",
                account.source_login,
                gone.len(),
                recorded.len()
            );
            lost.extend(gone);
            looked_through.push(target_id);
        }
    }
    let reopened = store.write(|tx| {
        let n = tx.reopen_lost_copies(&lost)?;
        // The look-up goes through the whole folder: a copy may sit below where it looked last.
        for &target_id in &looked_through {
            tx.forget_indexed_uids(target_id)?;
        }
        tx.clear_repair_request(account.id)?;
        Ok(n)
    })?;
    crate::fault::point("repair: lost copies reopened");
    Ok(reopened)
}
