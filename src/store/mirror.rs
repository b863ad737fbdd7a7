//! What mirroring (the `mirror` module) reads and writes: which rows the source no longer has (`gone_at`),
//! the journal of a MOVE (the new row `appending` with `moved_from`, the old one `mirror = 'moving'`)
//! and of an EXPUNGE (`mirror = 'expunging'`), committed before the command goes out; the journal of a
//! folder RENAME (`source_folder.renaming_from`); and the adoption of a renamed folder's rows. A gone
//! row lives only until its target copy is moved or removed (or it needs nothing: not ours, never
//! copied), then it is deleted, so the rest of the store keeps seeing only what the source holds.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{PushState, Store, TargetCopy, Tx};

/// A source folder the last listing did not show, with what we know of it.
#[derive(Debug, Clone)]
pub struct AbsentFolder {
    pub id: i64,
    pub name: String,
    pub wire_name: String,
    pub target_name: Option<String>,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    /// Rows not yet gone.
    pub rows: i64,
    /// Listings in a row that left it out.
    pub absent_listings: i64,
}

/// A listed folder nothing has been read from yet (a candidate for the new name of a renamed one).
#[derive(Debug, Clone)]
pub struct NewFolder {
    pub id: i64,
    pub wire_name: String,
    pub target_name: Option<String>,
    /// The absent folder whose target folder a journalled RENAME gives it.
    pub renaming_from: Option<i64>,
}

/// The target folder our rows of one source folder were appended to, and what else it holds.
#[derive(Debug, Clone)]
pub struct TargetHome {
    pub target_folder_id: i64,
    pub wire_name: String,
    pub uidvalidity: Option<u32>,
    /// Rows of this source folder whose copies there are ours, and rows of any folder recorded there.
    pub ours: i64,
    pub recorded: i64,
}

/// A staged message to move on the target instead of appending: its row (`new_id`), and the gone
/// row whose copy of the same bytes is ours in `from` at `uid`.
#[derive(Debug, Clone)]
pub struct MovePair {
    pub new_id: i64,
    pub old_id: i64,
    pub from_folder_id: i64,
    pub from_wire: String,
    pub from_uidvalidity: u32,
    pub uid: u32,
}

/// A gone row's copy on the target, to remove.
#[derive(Debug, Clone)]
pub struct GoneCopy {
    pub id: i64,
    pub target_folder_id: i64,
    pub wire_name: String,
    pub uidvalidity: u32,
    pub uid: u32,
    /// A MOVE was journalled for it (counted as moved, not removed).
    pub moving: bool,
    /// Its MOVE or EXPUNGE was journalled (begun before a switch, so finished after it too).
    pub journalled: bool,
}

impl Store {
    /// Rows of a source folder at `uidvalidity` the source had when last looked: how many, and the
    /// highest UID among them and `last_uid`.
    pub fn known_present(&self, folder_id: i64, uidvalidity: u32) -> Result<(u64, u32)> {
        Ok(self.conn.row(
            "SELECT count(*), coalesce(max(uid), 0) FROM message WHERE folder_id = ?1 AND uidvalidity = ?2 AND gone_at IS NULL",
            params![folder_id, uidvalidity],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )?)
    }

    /// Calls `each(id, uid)` for the rows of a folder at `uidvalidity` not yet gone, in UID order,
    /// without holding them all.
    pub fn each_present_row(&self, folder_id: i64, uidvalidity: u32, each: &mut dyn FnMut(i64, u32)) -> Result<()> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, uid FROM message WHERE folder_id = ?1 AND uidvalidity = ?2 AND gone_at IS NULL")?;
        let mut rows = stmt.query(params![folder_id, uidvalidity])?;
        while let Some(row) = rows.next()? {
            each(row.get(0)?, row.get(1)?);
        }
        Ok(())
    }

    /// The listed folders the folder choice leaves out, by wire name.
    pub fn excluded_listed_folders(&self, account_id: i64) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT wire_name FROM source_folder WHERE account_id = ?1 AND present = 1 AND selectable = 1 AND map_reason = 'excluded'",
        )?;
        let rows = stmt.query_map([account_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The account's source folders the last listing did not show.
    pub fn absent_folders(&self, account_id: i64) -> Result<Vec<AbsentFolder>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.id, f.name, f.wire_name, f.target_name, f.uidvalidity, f.uidnext,
                    (SELECT count(*) FROM message m WHERE m.folder_id = f.id AND m.gone_at IS NULL), f.absent_listings
             FROM source_folder f WHERE f.account_id = ?1 AND f.present = 0 ORDER BY f.name",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(AbsentFolder {
                id: r.get(0)?,
                name: r.get(1)?,
                wire_name: r.get(2)?,
                target_name: r.get(3)?,
                uidvalidity: r.get(4)?,
                uidnext: r.get(5)?,
                rows: r.get(6)?,
                absent_listings: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The account's listed, selectable folders nothing has been read from yet.
    pub fn unread_folders(&self, account_id: i64) -> Result<Vec<NewFolder>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.id, f.wire_name, f.target_name, f.renaming_from FROM source_folder f
             WHERE f.account_id = ?1 AND f.present = 1 AND f.selectable = 1 AND f.uidvalidity IS NULL AND f.last_uid = 0
               AND NOT EXISTS (SELECT 1 FROM message m WHERE m.folder_id = f.id) ORDER BY f.name",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(NewFolder { id: r.get(0)?, wire_name: r.get(1)?, target_name: r.get(2)?, renaming_from: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Where a source folder's rows are on the target: the target folder most of them were recorded
    /// in, with how many of this folder's rows are ours there and how many rows of any folder are.
    pub fn target_home(&self, source_folder_id: i64) -> Result<Option<TargetHome>> {
        Ok(self
            .conn
            .row(
                "SELECT t.id, t.wire_name, t.uidvalidity,
                        (SELECT count(*) FROM message m WHERE m.folder_id = ?1 AND m.target_folder_id = t.id AND m.push_state = 'pushed'
                           AND m.origin = 'appended' AND m.gone_at IS NULL),
                        (SELECT count(*) FROM message m WHERE m.target_folder_id = t.id AND m.push_state IN ('pushed', 'appending'))
                 FROM target_folder t WHERE t.id = (SELECT target_folder_id FROM message WHERE folder_id = ?1 AND target_folder_id IS NOT NULL
                                                    GROUP BY target_folder_id ORDER BY count(*) DESC LIMIT 1)",
                [source_folder_id],
                |r| Ok(TargetHome { target_folder_id: r.get(0)?, wire_name: r.get(1)?, uidvalidity: r.get(2)?, ours: r.get(3)?, recorded: r.get(4)? }),
            )
            .optional()?)
    }

    /// Whether the account has gone rows whose target copy may still be moved.
    pub fn has_movable_gone(&self, account_id: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM message m JOIN source_folder f ON f.id = m.folder_id
                   WHERE f.account_id = ?1 AND m.gone_at IS NOT NULL AND m.mirror IS NULL AND m.push_state = 'pushed')",
            )?
            .query_row([account_id], |r| r.get(0))?)
    }

    /// Staged, pending rows of `source_folder_id` with the same size and SHA-256 as a gone row of the
    /// account whose target copy is ours and still waits: candidates, paired one to one by the caller.
    pub fn move_candidates(&self, account_id: i64, source_folder_id: i64) -> Result<Vec<MovePair>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT n.id, o.id, o.target_folder_id, t.wire_name, o.target_uidvalidity, o.target_uid
             FROM message n
             JOIN message o ON o.size = n.size AND o.sha256 = n.sha256 AND o.gone_at IS NOT NULL
             JOIN source_folder f ON f.id = o.folder_id
             JOIN target_folder t ON t.id = o.target_folder_id
             WHERE n.folder_id = ?2 AND n.push_state = 'pending' AND n.sha256 IS NOT NULL AND n.gone_at IS NULL
               AND f.account_id = ?1 AND o.push_state = 'pushed' AND o.origin = 'appended' AND o.mirror IS NULL
               AND o.target_uidvalidity IS NOT NULL AND o.target_uid IS NOT NULL
             ORDER BY n.uid, o.id",
        )?;
        let rows = stmt.query_map(params![account_id, source_folder_id], |r| {
            Ok(MovePair {
                new_id: r.get(0)?,
                old_id: r.get(1)?,
                from_folder_id: r.get(2)?,
                from_wire: r.get(3)?,
                from_uidvalidity: r.get(4)?,
                uid: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The account's gone rows whose target copy is ours and is to be removed now: not waiting for a
    /// MOVE still being looked up (a row `appending` with `moved_from` naming it).
    pub fn gone_copies(&self, account_id: i64) -> Result<Vec<GoneCopy>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.id, o.target_folder_id, t.wire_name, o.target_uidvalidity, o.target_uid, o.mirror = 'moving',
                    o.mirror IN ('moving', 'expunging')
             FROM message o JOIN source_folder f ON f.id = o.folder_id JOIN target_folder t ON t.id = o.target_folder_id
             WHERE f.account_id = ?1 AND o.gone_at IS NOT NULL AND o.push_state = 'pushed' AND o.origin = 'appended'
               AND o.target_uidvalidity IS NOT NULL AND o.target_uid IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM message n WHERE n.moved_from = o.id AND n.push_state = 'appending')
             ORDER BY o.target_folder_id, o.target_uid",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(GoneCopy {
                id: r.get(0)?,
                target_folder_id: r.get(1)?,
                wire_name: r.get(2)?,
                uidvalidity: r.get(3)?,
                uid: r.get(4)?,
                moving: r.get::<_, Option<bool>>(5)?.unwrap_or(false),
                journalled: r.get::<_, Option<bool>>(6)?.unwrap_or(false),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// SHA-256 over the UIDs and sizes of a folder's rows at `uidvalidity` in UID order ("uid size\n"
    /// each): what the source's folder under a new name must show to be taken for this one renamed.
    pub fn uid_size_digest(&self, folder_id: i64, uidvalidity: u32) -> Result<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT uid, size FROM message WHERE folder_id = ?1 AND uidvalidity = ?2 AND gone_at IS NULL ORDER BY uid")?;
        let mut rows = stmt.query(params![folder_id, uidvalidity])?;
        while let Some(row) = rows.next()? {
            digest.update(format!("{} {}\n", row.get::<_, u32>(0)?, row.get::<_, i64>(1)?).as_bytes());
        }
        Ok(digest.finalize().into())
    }

    /// Present source folders mapped to this target name (a target folder another folder still uses
    /// is never deleted).
    pub fn folders_mapped_to(&self, account_id: i64, target_name: &str) -> Result<i64> {
        Ok(self.conn.row(
            "SELECT count(*) FROM source_folder WHERE account_id = ?1 AND present = 1 AND target_name = ?2",
            params![account_id, target_name],
            |r| r.get(0),
        )?)
    }

    /// The folder's STATUS (mod-sequence, UIDNEXT) when it was last looked through for gone mail.
    pub fn mirror_seen(&self, folder_id: i64) -> Result<(Option<u64>, Option<u32>)> {
        Ok(self
            .conn
            .row("SELECT mirror_modseq, mirror_uidnext FROM source_folder WHERE id = ?1", [folder_id], |r| {
                Ok((r.get::<_, Option<i64>>(0)?.map(|m| m as u64), r.get(1)?))
            })
            .optional()?
            .unwrap_or((None, None)))
    }

    /// Whether we recorded a target folder of this wire name for the account (we copied into it).
    pub fn copied_into(&self, account_id: i64, wire_name: &str) -> Result<bool> {
        Ok(self.conn.row(
            "SELECT EXISTS (SELECT 1 FROM target_folder WHERE account_id = ?1 AND wire_name = ?2)",
            params![account_id, wire_name],
            |r| r.get(0),
        )?)
    }
}

impl Tx<'_> {
    /// The source no longer has these rows (`at`: now).
    pub fn mark_gone(&self, ids: &[i64], at: i64) -> Result<()> {
        let mut stmt = self.conn().prepare_cached("UPDATE message SET gone_at = ?2 WHERE id = ?1 AND gone_at IS NULL")?;
        for id in ids {
            stmt.execute(params![id, at])?;
        }
        Ok(())
    }

    /// Every row of an absent folder is gone.
    pub fn mark_folder_gone(&self, folder_id: i64, at: i64) -> Result<()> {
        self.conn().run("UPDATE message SET gone_at = ?2 WHERE folder_id = ?1 AND gone_at IS NULL", params![folder_id, at])?;
        Ok(())
    }

    /// Deletes the account's gone rows that ask nothing of the target: never copied (pending, refused),
    /// or whose copy is not ours (found there, or recorded before this version knew). Returns how many.
    pub fn settle_gone(&self, account_id: i64) -> Result<u64> {
        let ids: Vec<i64> = {
            let mut stmt = self.conn().prepare_cached(
                "SELECT m.id FROM message m JOIN source_folder f ON f.id = m.folder_id
                 WHERE f.account_id = ?1 AND m.gone_at IS NOT NULL AND m.mirror IS NULL
                   AND (m.push_state IN ('pending', 'refused') OR (m.push_state = 'pushed' AND m.origin IS NOT 'appended'))",
            )?;
            stmt.query_map([account_id], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for id in &ids {
            self.forget_message(*id)?;
        }
        Ok(ids.len() as u64)
    }

    /// The journal entry before a MOVE: each new row goes out to `target_folder_id` (as an APPEND's
    /// would), naming the gone row whose copy it takes; each gone row is `moving`. Commit before the
    /// command is sent.
    pub fn journal_moves(&self, pairs: &[MovePair], target_folder_id: i64) -> Result<()> {
        for pair in pairs {
            self.conn().run(
                "UPDATE message SET push_state = ?3, attempts = attempts + 1, target_folder_id = ?2, moved_from = ?4, origin = 'appended'
                 WHERE id = ?1",
                params![pair.new_id, target_folder_id, PushState::Appending, pair.old_id],
            )?;
            self.conn().run("UPDATE message SET mirror = 'moving' WHERE id = ?1", [pair.old_id])?;
        }
        Ok(())
    }

    /// A MOVE's result: the new row is pushed at `copy` (ours, with the flags the moved copy had as
    /// the three-way base) and the gone row is deleted.
    pub fn record_moved(&self, new_id: i64, old_id: i64, copy: TargetCopy) -> Result<()> {
        self.record_taken_over(new_id, old_id, copy)?;
        self.forget_message(old_id)
    }

    /// The new row is pushed at `copy`, ours, with the gone row's flags as the three-way base (the
    /// copy carries the flags it had); its bytes leave staging.
    fn record_taken_over(&self, new_id: i64, old_id: i64, copy: TargetCopy) -> Result<()> {
        self.conn().run(
            "UPDATE message SET push_state = ?5, target_folder_id = ?2, target_uidvalidity = ?3, target_uid = ?4, origin = 'appended',
               moved_from = NULL, synced_flags = (SELECT synced_flags FROM message WHERE id = ?6) WHERE id = ?1",
            params![new_id, copy.folder_id, copy.uidvalidity, copy.uid, PushState::Pushed, old_id],
        )?;
        self.release_spooled(new_id)
    }

    /// A MOVE the target refused (or whose source copy was not where we recorded it): the new row is
    /// appended as usual, and the gone row's copy is removed at the end of the pass.
    pub fn move_not_made(&self, new_id: i64, old_id: i64) -> Result<()> {
        self.conn().run(
            "UPDATE message SET push_state = ?2, moved_from = NULL, origin = NULL, attempts = max(attempts - 1, 0) WHERE id = ?1",
            params![new_id, PushState::Pending],
        )?;
        self.conn().run("UPDATE message SET mirror = 'no_move' WHERE id = ?1", [old_id])?;
        Ok(())
    }

    /// The journal entry before an EXPUNGE of these rows' target copies. Commit before the command.
    pub fn journal_expunge(&self, ids: &[i64]) -> Result<()> {
        let mut stmt = self.conn().prepare_cached("UPDATE message SET mirror = 'expunging' WHERE id = ?1")?;
        for id in ids {
            stmt.execute([id])?;
        }
        Ok(())
    }

    /// Rows whose target copies are removed (or were not addressable): deleted.
    pub fn forget_messages(&self, ids: &[i64]) -> Result<()> {
        for id in ids {
            self.forget_message(*id)?;
        }
        Ok(())
    }

    /// The journal entry before a RENAME on the target: `new_id`'s folder takes over `old_id`'s.
    pub fn journal_rename(&self, new_id: i64, old_id: i64) -> Result<()> {
        self.conn().run("UPDATE source_folder SET renaming_from = ?2 WHERE id = ?1", params![new_id, old_id])?;
        Ok(())
    }

    /// A RENAME given up (the target is not as the journal expects): the folders go the per-message way.
    pub fn clear_rename(&self, new_id: i64) -> Result<()> {
        self.conn().run("UPDATE source_folder SET renaming_from = NULL WHERE id = ?1", [new_id])?;
        Ok(())
    }

    /// A renamed folder's record: the new source folder takes the old one's rows and what was read of
    /// it (UIDVALIDITY, UIDNEXT, mod-sequence, last UID, the last look for gone mail), the target folder
    /// row and the rows of its children (which the RENAME took along, `delimiter` apart) their new
    /// names, and the old source folder goes. A stale unused row already bearing a new name is dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn adopt_renamed_folder(
        &self,
        new_id: i64,
        old: &AbsentFolder,
        target_folder_id: i64,
        target_name: &str,
        target_wire: &str,
        delimiter: char,
    ) -> Result<()> {
        let conn = self.conn();
        let account_id: i64 = conn.row("SELECT account_id FROM source_folder WHERE id = ?1", [new_id], |r| r.get(0))?;
        let (old_name, old_wire): (String, String) =
            conn.row("SELECT name, wire_name FROM target_folder WHERE id = ?1", [target_folder_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut renames: Vec<(i64, String, String)> = vec![(target_folder_id, target_name.to_string(), target_wire.to_string())];
        {
            let mut stmt = conn.prepare_cached("SELECT id, name, wire_name FROM target_folder WHERE account_id = ?1 AND id != ?2")?;
            let rows = stmt.query_map(params![account_id, target_folder_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?;
            for row in rows {
                let (id, name, wire) = row?;
                let (Some(wire_rest), Some(name_rest)) = (wire.strip_prefix(old_wire.as_str()), name.strip_prefix(old_name.as_str()))
                else {
                    continue;
                };
                if wire_rest.starts_with(delimiter) && name_rest.starts_with(delimiter) {
                    renames.push((id, format!("{target_name}{name_rest}"), format!("{target_wire}{wire_rest}")));
                }
            }
        }
        for (id, name, wire) in &renames {
            conn.run(
                "DELETE FROM target_folder WHERE account_id = ?1 AND wire_name = ?2 AND id != ?3
                   AND NOT EXISTS (SELECT 1 FROM message WHERE target_folder_id = target_folder.id)",
                params![account_id, wire, id],
            )?;
            conn.run("UPDATE target_folder SET name = ?2, wire_name = ?3 WHERE id = ?1", params![id, name, wire])?;
        }
        conn.run("UPDATE message SET folder_id = ?1 WHERE folder_id = ?2", params![new_id, old.id])?;
        conn.run(
            "UPDATE source_folder SET (uidvalidity, uidnext, highest_modseq, last_uid, mirror_modseq, mirror_uidnext) =
               (SELECT uidvalidity, uidnext, highest_modseq, last_uid, mirror_modseq, mirror_uidnext FROM source_folder WHERE id = ?2),
               renaming_from = NULL WHERE id = ?1",
            params![new_id, old.id],
        )?;
        conn.run("DELETE FROM source_folder WHERE id = ?1", [old.id])?;
        Ok(())
    }

    /// Rows of a source folder left from before its UIDVALIDITY changed that matched no message under
    /// the new one (`merge_uidvalidity_orphans` took the others): the source no longer has them.
    /// Not while a message under the new one is refused or not staged: it may be the twin of an old
    /// row whose copy is good, and the match could not be made. (A message the operator's filter left
    /// out is no such twin: the filter spares every size of the old copies, `stale_copy_sizes`.)
    pub fn mark_stale_uidvalidity_gone(&self, folder_id: i64, uidvalidity: u32, at: i64) -> Result<()> {
        self.conn().run(
            "UPDATE message SET gone_at = ?3 WHERE folder_id = ?1 AND uidvalidity != ?2 AND push_state = 'pushed' AND gone_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM message n WHERE n.folder_id = ?1 AND n.uidvalidity = ?2
                                 AND (n.push_state = 'refused' OR n.sha256 IS NULL) AND n.left_out IS NULL)",
            params![folder_id, uidvalidity, at],
        )?;
        Ok(())
    }

    /// The folder was looked through for gone mail at this STATUS.
    pub fn set_mirror_seen(&self, folder_id: i64, modseq: Option<u64>, uidnext: Option<u32>) -> Result<()> {
        self.conn().run(
            "UPDATE source_folder SET mirror_modseq = ?2, mirror_uidnext = ?3 WHERE id = ?1",
            params![folder_id, modseq.map(|m| m as i64), uidnext],
        )?;
        Ok(())
    }

    /// Whether the account still mirrors, read inside this transaction, so a switch or the setting
    /// turned off meanwhile stops a MOVE, EXPUNGE or RENAME before its journal entry is written.
    pub fn still_mirrors(&self, account_id: i64) -> Result<bool> {
        Ok(self.conn().row(
            "SELECT (SELECT switched_at IS NULL FROM account WHERE id = ?1)
                    AND coalesce((SELECT value FROM setting WHERE key = 'mirror'), 'on') != 'off'",
            [account_id],
            |r| Ok(r.get::<_, Option<bool>>(0)?.unwrap_or(false)),
        )?)
    }

    /// A COPY made but its originals not removed (MOVE's fallback, the EXPUNGE refused): the new row is
    /// pushed at `copy`, and the gone row stays, to be removed at the end of the pass.
    pub fn record_copied(&self, new_id: i64, old_id: i64, copy: TargetCopy) -> Result<()> {
        self.record_taken_over(new_id, old_id, copy)?;
        self.conn().run("UPDATE message SET mirror = 'no_move' WHERE id = ?1", [old_id])?;
        Ok(())
    }

    /// Absent source folders none of whose rows is left forget what was read of them, so one that is
    /// listed again (a listing that left it out by mistake, a folder re-created) is read from the start.
    pub fn reset_emptied_absent_folders(&self, account_id: i64) -> Result<()> {
        self.conn().run(
            "UPDATE source_folder SET uidvalidity = NULL, uidnext = NULL, highest_modseq = NULL, last_uid = 0
             WHERE account_id = ?1 AND present = 0 AND NOT EXISTS (SELECT 1 FROM message WHERE folder_id = source_folder.id)",
            [account_id],
        )?;
        Ok(())
    }

    /// An absent source folder with nothing left to follow: its record goes.
    pub fn forget_source_folder(&self, folder_id: i64) -> Result<()> {
        self.conn()
            .run("DELETE FROM source_folder WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM message WHERE folder_id = ?1)", [folder_id])?;
        Ok(())
    }
}
