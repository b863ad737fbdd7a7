//! The APPEND journal: what the push phase reads and writes in the store. A staged message is marked
//! `appending` (committed on its own) before its APPEND goes out, and `pushed` with the target UID once
//! the answer arrives; a copy found on the target by content or identity is claimed the same way; a
//! refusal returns it to `pending` or ends at `refused`; flags synced are recorded per message. It
//! also keeps each target folder's UIDVALIDITY and how far its UIDs have been looked through
//! (`indexed_uidnext`). Reads are `Store` methods; writes are `Tx` methods, composed by the push phase
//! inside `Store::write`, so where one transaction ends (and a crash may fall) is decided there.

use std::collections::BTreeSet;

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{PushState, StagedPlace, Store, Tx};

/// A target folder as we know it.
pub struct TargetFolderRow {
    pub id: i64,
    pub wire_name: String,
    pub uidvalidity: Option<u32>,
    pub indexed_uidnext: u32,
}

/// A staged message waiting for its APPEND, with what the APPEND command carries.
#[derive(Debug, Clone)]
pub struct PendingAppend {
    pub id: i64,
    pub size: u64,
    /// Space separated, as staged.
    pub flags: String,
    pub internal_date: Option<String>,
    pub state: PushState,
    /// Its staged copy, read with it (`Store::open_staged`).
    pub place: StagedPlace,
}

/// Where a copy of a staged message is on the target.
#[derive(Debug, Clone, Copy)]
pub struct TargetCopy {
    pub folder_id: i64,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// A pushed message whose source flags changed since they were last carried to the target.
#[derive(Debug, Clone)]
pub struct FlagsToSync {
    pub id: i64,
    pub target_uid: u32,
    /// The source's flags now, and as last carried over ('' if never): the three-way merge's two sides.
    pub flags: String,
    pub synced_flags: String,
}

impl Store {
    /// How many staged messages of a source folder the push has something to do for: not yet on the
    /// target, flags not carried over, or recorded in another target folder or UIDVALIDITY than
    /// `target_folder_id` at `target_uidvalidity`.
    pub fn push_work(&self, source_folder_id: i64, target_folder_id: i64, target_uidvalidity: Option<u32>) -> Result<i64> {
        Ok(self.conn.row(
            "SELECT count(*) FROM message WHERE folder_id = ?1 AND sha256 IS NOT NULL
               AND (push_state IN ('pending', 'appending')
                    OR (push_state = 'pushed' AND (synced_flags IS NULL OR synced_flags != flags))
                    OR (push_state = 'pushed' AND (target_folder_id IS NOT ?2 OR target_uidvalidity IS NOT ?3)))",
            params![source_folder_id, target_folder_id, target_uidvalidity],
            |r| r.get(0),
        )?)
    }

    /// Whether any message of a source folder is recorded as on the target.
    pub fn has_pushed(&self, source_folder_id: i64) -> Result<bool> {
        Ok(self.conn.row(
            "SELECT EXISTS (SELECT 1 FROM message WHERE folder_id = ?1 AND push_state = 'pushed')",
            [source_folder_id],
            |r| r.get(0),
        )?)
    }

    /// Staged messages of a source folder not known to be on the target (pending or appending).
    pub fn unplaced_count(&self, source_folder_id: i64) -> Result<i64> {
        Ok(self.conn.row(
            "SELECT count(*) FROM message WHERE folder_id = ?1 AND sha256 IS NOT NULL AND push_state IN ('pending', 'appending')",
            [source_folder_id],
            |r| r.get(0),
        )?)
    }

    /// Messages of a source folder whose APPEND was journalled but whose result was not recorded.
    pub fn appending_count(&self, source_folder_id: i64) -> Result<i64> {
        Ok(self
            .conn
            .row("SELECT count(*) FROM message WHERE folder_id = ?1 AND push_state = 'appending'", [source_folder_id], |r| r.get(0))?)
    }

    /// Of `appending_count`, those with no identity to be looked up by ('' after `fill_staged`).
    pub fn appending_without_identity(&self, source_folder_id: i64) -> Result<i64> {
        Ok(self.conn.row(
            "SELECT count(*) FROM message WHERE folder_id = ?1 AND push_state = 'appending' AND identity = ''",
            [source_folder_id],
            |r| r.get(0),
        )?)
    }

    /// Id and size of the pending staged messages of a source folder larger than `limit` bytes.
    pub fn oversized_pending(&self, source_folder_id: i64, limit: u64) -> Result<Vec<(i64, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, size FROM message WHERE folder_id = ?1 AND push_state = 'pending' AND sha256 IS NOT NULL AND size > ?2",
        )?;
        let rows = stmt.query_map(params![source_folder_id, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The target UIDs in a target folder at `uidvalidity` that staged messages are recorded at.
    pub fn pushed_target_uids(&self, target_folder_id: i64, uidvalidity: u32) -> Result<BTreeSet<u32>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT target_uid FROM message WHERE target_folder_id = ?1 AND target_uidvalidity = ?2 AND push_state = 'pushed'",
        )?;
        let rows = stmt.query_map(params![target_folder_id, uidvalidity], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sizes of a source folder's staged messages not known to be on the target.
    pub fn unplaced_sizes(&self, source_folder_id: i64) -> Result<BTreeSet<u64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT size FROM message WHERE folder_id = ?1 AND sha256 IS NOT NULL AND push_state IN ('pending', 'appending')",
        )?;
        let rows = stmt.query_map([source_folder_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A staged message not known to be on the target with exactly this size and SHA-256, one we were
    /// appending first (it is most likely the one that landed), then the lowest source UID.
    pub fn unplaced_by_content(&self, source_folder_id: i64, size: u64, sha256: &[u8]) -> Result<Option<i64>> {
        Ok(self
            .conn
            .row(
                "SELECT id FROM message WHERE folder_id = ?1 AND size = ?2 AND sha256 = ?3 AND push_state IN ('pending', 'appending')
                 ORDER BY push_state = 'appending' DESC, uid LIMIT 1",
                params![source_folder_id, size as i64, sha256],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether a staged message is recorded at this target UID. Asked once per target message while
    /// a FETCH streams, hence the cached statement.
    pub fn target_uid_claimed(&self, copy: TargetCopy) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM message WHERE target_folder_id = ?1 AND target_uidvalidity = ?2 AND target_uid = ?3
                   AND push_state = 'pushed'",
            )?
            .exists(params![copy.folder_id, copy.uidvalidity, copy.uid])?)
    }

    /// The message of a source folder we were appending with either identity key, lowest source UID
    /// first. Asked once per target message while a FETCH streams, hence the cached statement.
    pub fn appending_by_identity(
        &self,
        source_folder_id: i64,
        message_id_key: Option<&str>,
        headers_key: Option<&str>,
    ) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id FROM message WHERE folder_id = ?1 AND identity IN (?2, ?3) AND push_state = 'appending'
                 ORDER BY uid LIMIT 1",
            )?
            .query_row(params![source_folder_id, message_id_key, headers_key], |r| r.get(0))
            .optional()?)
    }

    /// What the APPEND of a message being streamed announces before its bytes (`stream_append`): its
    /// flags (space separated, as staged) and internal date, as the listing recorded them.
    pub fn append_head(&self, message_id: i64) -> Result<Option<(String, Option<String>)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT flags, internal_date FROM message WHERE id = ?1")?
            .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// The next pending staged messages of a source folder in source UID order, at most `limit`.
    pub fn pending_appends(&self, source_folder_id: i64, limit: usize) -> Result<Vec<PendingAppend>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, size, flags, internal_date, push_state, {} FROM message
             WHERE folder_id = ?1 AND push_state = 'pending' AND sha256 IS NOT NULL ORDER BY uid LIMIT ?2",
            StagedPlace::COLUMNS
        ))?;
        let rows = stmt.query_map(params![source_folder_id, limit as i64], |r| {
            Ok(PendingAppend {
                id: r.get(0)?,
                size: r.get(1)?,
                flags: r.get(2)?,
                internal_date: r.get(3)?,
                state: r.get(4)?,
                place: StagedPlace::from_row(r, 5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many times a message's APPEND was journalled (a throttled one gives its attempt back).
    pub fn append_attempts(&self, message_id: i64) -> Result<i64> {
        Ok(self.conn.row("SELECT attempts FROM message WHERE id = ?1", [message_id], |r| r.get(0))?)
    }

    /// The pushed messages of a source folder recorded in this target folder and UIDVALIDITY whose
    /// flags changed since they were last carried over (or were never).
    pub fn flags_to_sync(&self, source_folder_id: i64, target_folder_id: i64, uidvalidity: u32) -> Result<Vec<FlagsToSync>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, target_uid, flags, coalesce(synced_flags, '') FROM message WHERE folder_id = ?1 AND push_state = 'pushed'
               AND target_folder_id = ?2 AND target_uidvalidity = ?3 AND (synced_flags IS NULL OR synced_flags != flags)",
        )?;
        let rows = stmt.query_map(params![source_folder_id, target_folder_id, uidvalidity], |r| {
            Ok(FlagsToSync { id: r.get(0)?, target_uid: r.get(1)?, flags: r.get(2)?, synced_flags: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// The journal entry before an APPEND: the message goes out now to `target_folder_id`, one attempt
    /// more. Commit this before a byte of the APPEND is written.
    pub fn mark_appending(&self, message_id: i64, target_folder_id: i64) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE message SET push_state = ?3, attempts = attempts + 1, target_folder_id = ?2, origin = 'appended' WHERE id = ?1",
            )?
            .execute(params![message_id, target_folder_id, PushState::Appending])?;
        Ok(())
    }

    /// The APPEND's result: the message is at `copy` (from APPENDUID). Its flags count as carried over,
    /// except \Flagged when `flagged_dropped` (the target drops it on APPEND, so the flag step sets it).
    pub fn record_appended(&self, message_id: i64, copy: TargetCopy, flagged_dropped: bool) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE message SET push_state = ?6, target_folder_id = ?2, target_uidvalidity = ?3, target_uid = ?4, origin = 'appended',
               synced_flags = CASE WHEN ?5 THEN trim(replace(' ' || flags || ' ', ' \\Flagged ', ' ')) ELSE flags END
             WHERE id = ?1",
            )?
            .execute(params![message_id, copy.folder_id, copy.uidvalidity, copy.uid, flagged_dropped, PushState::Pushed])?;
        self.release_body(message_id)
    }

    /// The target holds the message now (or never will): its bytes leave staging. Size, SHA-256 and
    /// identity stay on the row for verification and for finding the copy again; should the target
    /// lose it, `requeue_unfound_appends` sends the row back to the source for its bytes.
    fn release_body(&self, message_id: i64) -> Result<()> {
        self.release_spooled(message_id)
    }

    /// A copy found on the target is this staged message's: it is `pushed` at `copy`, with the target's
    /// flags (space separated) as the three-way base unless it has one already. Found for a row whose
    /// APPEND or MOVE was journalled (`origin` set then), the copy is ours; found for one we never sent,
    /// or one recorded before this version knew, it came another way and mirroring never touches it.
    pub fn claim_target_copy(&self, message_id: i64, copy: TargetCopy, target_flags: &str) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE message SET push_state = ?6, target_folder_id = ?2, target_uidvalidity = ?3, target_uid = ?4,
               origin = coalesce(origin, 'found'), moved_from = NULL,
               synced_flags = coalesce(synced_flags, ?5) WHERE id = ?1",
            )?
            .execute(params![message_id, copy.folder_id, copy.uidvalidity, copy.uid, target_flags, PushState::Pushed])?;
        self.release_body(message_id)
    }

    /// A refused APPEND stored nothing: the message is `pending` again. A throttled one (the target
    /// asked us to wait) also gets its attempt back.
    pub fn return_to_pending(&self, message_id: i64, give_back_attempt: bool) -> Result<()> {
        let sql = if give_back_attempt {
            "UPDATE message SET push_state = ?2, origin = NULL, attempts = max(attempts - 1, 0) WHERE id = ?1"
        } else {
            "UPDATE message SET push_state = ?2, origin = NULL WHERE id = ?1"
        };
        self.conn().prepare_cached(sql)?.execute(params![message_id, PushState::Pending])?;
        Ok(())
    }

    /// The message is not copied (the target refused it, or it is over the target's size limit).
    pub fn mark_refused(&self, message_id: i64) -> Result<()> {
        self.conn().run("UPDATE message SET push_state = ?2 WHERE id = ?1", params![message_id, PushState::Refused])?;
        self.release_body(message_id)
    }

    /// Every message of a source folder still `appending` after the look-up was not found on the
    /// target: it never arrived, so it is `pending` again. One whose bytes already left staging (it had
    /// been pushed to a target folder since deleted or re-created) loses its hash too, so staging
    /// fetches it from the source again before it is appended. Returns how many need that.
    pub fn requeue_unfound_appends(&self, source_folder_id: i64) -> Result<u64> {
        // Rows the source no longer has (gone while their APPEND was in doubt) are not sent again.
        let gone: Vec<i64> = self
            .conn()
            .prepare_cached("SELECT id FROM message WHERE folder_id = ?1 AND push_state = 'appending' AND gone_at IS NOT NULL")?
            .query_map([source_folder_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in gone {
            self.forget_message(id)?;
        }
        let refetch = self.conn().run(
            "UPDATE message SET sha256 = NULL WHERE folder_id = ?1 AND push_state = 'appending' AND size > 0
               AND spool_bytes = 0",
            [source_folder_id],
        )?;
        self.conn().run(
            "UPDATE message SET push_state = ?2, moved_from = NULL, origin = NULL WHERE folder_id = ?1 AND push_state = 'appending'",
            params![source_folder_id, PushState::Pending],
        )?;
        Ok(refetch as u64)
    }

    /// Messages of a source folder recorded as pushed anywhere but `target_folder_id` at `uidvalidity`
    /// are no longer addressable by UID: back to `appending` (maybe there, maybe not), to be looked up.
    pub fn reopen_pushes_elsewhere(&self, source_folder_id: i64, target_folder_id: i64, uidvalidity: u32) -> Result<()> {
        self.conn().run(
            "UPDATE message SET push_state = ?4, origin = NULL WHERE folder_id = ?1 AND push_state = 'pushed'
               AND (target_folder_id IS NOT ?2 OR target_uidvalidity IS NOT ?3)",
            params![source_folder_id, target_folder_id, uidvalidity, PushState::Appending],
        )?;
        Ok(())
    }

    /// A target folder seen with a new UIDVALIDITY (or for the first time): nothing of it is looked
    /// through yet.
    pub fn set_target_uidvalidity(&self, target_folder_id: i64, uidvalidity: u32) -> Result<()> {
        self.conn()
            .run("UPDATE target_folder SET uidvalidity = ?2, indexed_uidnext = 1 WHERE id = ?1", params![target_folder_id, uidvalidity])?;
        Ok(())
    }

    /// Target messages below `uidnext` have been looked through for copies of staged messages.
    pub fn set_indexed_uidnext(&self, target_folder_id: i64, uidnext: u32) -> Result<()> {
        self.conn().run("UPDATE target_folder SET indexed_uidnext = ?2 WHERE id = ?1", params![target_folder_id, uidnext])?;
        Ok(())
    }

    /// Our APPEND landed at the UIDs `first` up to `next` (exclusive), each recorded: when the folder
    /// was looked through up to exactly `first`, it now is up to `next`. Anything else that came in
    /// between (new mail, another tool) took a UID of its own, so the range would not start there,
    /// and the look-through stays where it was.
    pub fn extend_indexed_uidnext(&self, target_folder_id: i64, first: u32, next: u32) -> Result<()> {
        self.conn().run(
            "UPDATE target_folder SET indexed_uidnext = ?3 WHERE id = ?1 AND indexed_uidnext = ?2",
            params![target_folder_id, first, next],
        )?;
        Ok(())
    }

    /// Copies landed at UIDs we do not know: the next look-up goes through the whole target folder.
    pub fn forget_indexed_uids(&self, target_folder_id: i64) -> Result<()> {
        self.conn().run("UPDATE target_folder SET indexed_uidnext = min(indexed_uidnext, 1) WHERE id = ?1", [target_folder_id])?;
        Ok(())
    }

    /// The message's flags as they are now are on the target.
    pub fn mark_flags_synced(&self, message_id: i64) -> Result<()> {
        self.conn().prepare_cached("UPDATE message SET synced_flags = flags WHERE id = ?1")?.execute([message_id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    /// A store with one account, source folder 1 and target folder 1, and staged messages with these
    /// source UIDs, sizes and flags (all hashed, all pending).
    fn store_with(name: &str, messages: &[(u32, u64, &str)]) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("postflytt-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.upsert_account("a@x.se", &Secret::new("pw"), "a@y.se", None, &[]).unwrap();
        store.conn.run("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        store.conn.run("INSERT INTO target_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        for &(uid, size, flags) in messages {
            store
                .conn
                .run(
                    "INSERT INTO message (folder_id, uidvalidity, uid, size, flags, sha256) VALUES (1, 1, ?1, ?2, ?3, ?4)",
                    params![uid, size as i64, flags, vec![uid as u8; 32]],
                )
                .unwrap();
        }
        (store, dir)
    }

    fn state_and_attempts(store: &Store, id: i64) -> (PushState, i64) {
        store.conn.row("SELECT push_state, attempts FROM message WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
    }

    #[test]
    fn an_append_is_journalled_then_recorded_and_a_failed_write_leaves_no_trace() {
        let (store, dir) = store_with("append", &[(9, 10, "\\Flagged \\Seen"), (3, 20, "\\Seen")]);
        let batch = store.pending_appends(1, 10).unwrap();
        let order: Vec<(i64, u64, PushState)> = batch.iter().map(|m| (m.id, m.size, m.state)).collect();
        assert_eq!(order, [(2, 20, PushState::Pending), (1, 10, PushState::Pending)], "source UID order");
        assert_eq!(store.pending_appends(1, 1).unwrap().len(), 1);

        // A closure that fails after marking rolls the mark back.
        let failed: Result<()> = store.write(|tx| {
            tx.mark_appending(1, 1)?;
            anyhow::bail!("the network step never happened")
        });
        assert!(failed.is_err());
        assert_eq!(state_and_attempts(&store, 1), (PushState::Pending, 0));

        store.write(|tx| batch.iter().try_for_each(|m| tx.mark_appending(m.id, 1))).unwrap();
        assert_eq!(state_and_attempts(&store, 1), (PushState::Appending, 1));
        assert_eq!((store.appending_count(1).unwrap(), store.unplaced_count(1).unwrap()), (2, 2));
        assert_eq!(store.append_attempts(1).unwrap(), 1);

        store
            .write(|tx| {
                tx.record_appended(1, TargetCopy { folder_id: 1, uidvalidity: 5, uid: 100 }, true)?;
                tx.record_appended(2, TargetCopy { folder_id: 1, uidvalidity: 5, uid: 101 }, false)
            })
            .unwrap();
        assert_eq!(state_and_attempts(&store, 1).0, PushState::Pushed);
        assert_eq!(store.pushed_target_uids(1, 5).unwrap().into_iter().collect::<Vec<_>>(), [100, 101]);
        assert!(store.target_uid_claimed(TargetCopy { folder_id: 1, uidvalidity: 5, uid: 101 }).unwrap());
        assert!(!store.target_uid_claimed(TargetCopy { folder_id: 1, uidvalidity: 6, uid: 101 }).unwrap());
        // A target that drops \Flagged on APPEND: the flag step still owes it; the other row owes nothing.
        let owed: Vec<(i64, u32, String, String)> =
            store.flags_to_sync(1, 1, 5).unwrap().into_iter().map(|f| (f.id, f.target_uid, f.flags, f.synced_flags)).collect();
        assert_eq!(owed, [(1, 100, "\\Flagged \\Seen".to_string(), "\\Seen".to_string())]);
        store.write(|tx| tx.mark_flags_synced(1)).unwrap();
        assert!(store.flags_to_sync(1, 1, 5).unwrap().is_empty());
        assert_eq!(store.push_work(1, 1, Some(5)).unwrap(), 0);
        assert!(store.push_work(1, 1, Some(6)).unwrap() > 0, "recorded under another UIDVALIDITY");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refusals_requeues_and_claims() {
        let (store, dir) = store_with("refusals", &[(1, 10, ""), (2, 20, "\\Seen"), (3, 99, "")]);
        assert_eq!(store.oversized_pending(1, 50).unwrap(), [(3, 99)]);
        store.write(|tx| tx.mark_refused(3)).unwrap();
        assert_eq!(state_and_attempts(&store, 3).0, PushState::Refused);
        assert!(store.oversized_pending(1, 50).unwrap().is_empty());

        // Throttled: back to pending with the attempt given back (never below 0); refused: kept.
        store.write(|tx| [1, 2].into_iter().try_for_each(|id| tx.mark_appending(id, 1))).unwrap();
        store.write(|tx| tx.return_to_pending(1, true)).unwrap();
        store.write(|tx| tx.return_to_pending(1, true)).unwrap();
        store.write(|tx| tx.return_to_pending(2, false)).unwrap();
        assert_eq!(state_and_attempts(&store, 1), (PushState::Pending, 0));
        assert_eq!(state_and_attempts(&store, 2), (PushState::Pending, 1));

        // A look-up by content prefers the row we were appending; what it did not find goes again.
        store.conn.run("UPDATE message SET sha256 = ?1, size = 10 WHERE id IN (1, 2)", [vec![7u8; 32]]).unwrap();
        store.write(|tx| tx.mark_appending(2, 1)).unwrap();
        assert_eq!(store.unplaced_sizes(1).unwrap().into_iter().collect::<Vec<_>>(), [10]);
        assert_eq!(store.unplaced_by_content(1, 10, &[7u8; 32]).unwrap(), Some(2));
        assert_eq!(store.unplaced_by_content(1, 11, &[7u8; 32]).unwrap(), None);
        store.write(|tx| tx.requeue_unfound_appends(1)).unwrap();
        assert_eq!(store.appending_count(1).unwrap(), 0);

        // By identity, only rows we were appending claim anything.
        store.conn.run("UPDATE message SET identity = 'mid:<a@x>' WHERE id = 1", []).unwrap();
        assert_eq!(store.appending_by_identity(1, Some("mid:<a@x>"), None).unwrap(), None);
        store.write(|tx| tx.mark_appending(1, 1)).unwrap();
        assert_eq!(store.appending_by_identity(1, Some("mid:<b@x>"), Some("mid:<a@x>")).unwrap(), Some(1));
        assert_eq!(store.appending_without_identity(1).unwrap(), 0);

        // A claim keeps a three-way base the row already has.
        store.conn.run("UPDATE message SET synced_flags = '\\Seen' WHERE id = 1", []).unwrap();
        let copy = TargetCopy { folder_id: 1, uidvalidity: 5, uid: 40 };
        store.write(|tx| tx.claim_target_copy(1, copy, "$Target")).unwrap();
        let base: String = store.conn.row("SELECT synced_flags FROM message WHERE id = 1", [], |r| r.get(0)).unwrap();
        assert_eq!((state_and_attempts(&store, 1).0, base.as_str()), (PushState::Pushed, "\\Seen"));
        assert!(store.has_pushed(1).unwrap());

        // The target folder re-created: its recorded copies go back to being looked up.
        store
            .write(|tx| {
                tx.reopen_pushes_elsewhere(1, 1, 6)?;
                tx.set_target_uidvalidity(1, 6)
            })
            .unwrap();
        assert_eq!(state_and_attempts(&store, 1).0, PushState::Appending);
        let mark = || -> (Option<u32>, u32) {
            store
                .conn
                .row("SELECT uidvalidity, indexed_uidnext FROM target_folder WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
        };
        assert_eq!(mark(), (Some(6), 1));
        store.write(|tx| tx.set_indexed_uidnext(1, 41)).unwrap();
        assert_eq!(mark(), (Some(6), 41));
        store.write(|tx| tx.forget_indexed_uids(1)).unwrap();
        assert_eq!(mark(), (Some(6), 1));
        // Our own APPEND right after what was looked through extends it; one that starts elsewhere
        // (something else took the UIDs in between) does not.
        store.write(|tx| tx.extend_indexed_uidnext(1, 1, 5)).unwrap();
        assert_eq!(mark(), (Some(6), 5));
        store.write(|tx| tx.extend_indexed_uidnext(1, 6, 9)).unwrap();
        assert_eq!(mark(), (Some(6), 5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
