//! What the source side writes into staging, and reads back to decide what to fetch: the source
//! folders a pass pulls and what it last saw of them (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, the highest
//! UID listed), the message rows a listing finds and their flags, the staged bodies (bytes into the
//! spool, then hash, true size and identity), the messages the source will not give (refused, with a skip) or no longer
//! has (deleted), and the re-matching of a folder's rows after a UIDVALIDITY change. The pull and
//! `identity` gather a bounded batch from the network and then make one call here: reads are methods on
//! `Store`, writes are methods on `Tx` composed inside one `Store::write`.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::Cached;
use super::{PushState, Store, Tx};

/// A source folder as the pull reads it: where to find it on the wire and what the last pass saw.
#[derive(Debug, Clone)]
pub struct SourceFolderRow {
    pub id: i64,
    pub wire_name: String,
    pub name: String,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<u64>,
    pub last_uid: u32,
}

/// A message the source's listing named that staging does not have yet.
#[derive(Debug, Clone)]
pub struct ListedMessage {
    pub uid: u32,
    pub size: u32,
    /// Sorted and space separated, as `message.flags` holds them.
    pub flags: String,
    pub internal_date: Option<String>,
    pub modseq: Option<i64>,
    /// Why the operator's message filter leaves the message out, if it does: the row is
    /// then refused with `left_out` and a skip ledger entry, and its bytes are never fetched.
    pub left_out: Option<String>,
}

/// A message row still waiting for its bytes.
#[derive(Debug, Clone)]
pub struct UnstagedMessage {
    pub id: i64,
    pub uid: u32,
    pub size: u64,
    /// Times the source hung up while this message was asked for and had not arrived.
    pub fetch_failures: i64,
}

/// One mark of a body being staged, gathered by the pull and written in a batch (`Tx::write_bodies`),
/// in the order they came. The bytes themselves went to the spool already (`Store::stage_bytes`).
pub enum BodyWrite {
    /// The message starts over: whatever an interrupted pass (or an earlier copy in this fetch) staged
    /// of it goes, and it is not staged until its hash is written again. Its copy in this process was
    /// set aside when it started over (`Store::restart_staging`), before its new bytes were written.
    Restarted(i64),
    /// Bytes of the message went to the spool: where they are goes on its row.
    Written(i64),
    /// The message is whole: its hash, true size and identity.
    Staged { id: i64, hash: Vec<u8>, size: u64, identity: Option<String> },
    /// Tests' shorthand: a start-over inside the transaction, the copy so far given back at once.
    #[cfg(test)]
    Restart(i64),
    /// Tests' shorthand: bytes written and recorded inside the transaction.
    #[cfg(test)]
    Chunk { id: i64, offset: u64, data: Vec<u8> },
}

impl BodyWrite {
    /// The message whose place in the spool this mark records on its row (bytes written, or the
    /// message whole: `Tx::spool_finish` records it), if it records one.
    fn records_place_of(&self) -> Option<i64> {
        match self {
            BodyWrite::Written(id) | BodyWrite::Staged { id, .. } => Some(*id),
            #[cfg(test)]
            BodyWrite::Chunk { id, .. } => Some(*id),
            _ => None,
        }
    }
}

impl Store {
    /// The folders of `account_id` a pass pulls (and mirroring looks through): listed by the source last
    /// time, selectable, and not left out by the operator's folder choice (`folder_choice`).
    pub fn source_folders_to_pull(&self, account_id: i64) -> Result<Vec<SourceFolderRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, wire_name, name, uidvalidity, uidnext, highest_modseq, last_uid FROM source_folder
             WHERE account_id = ?1 AND present = 1 AND selectable = 1 AND coalesce(map_reason, '') != 'excluded' ORDER BY name",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(SourceFolderRow {
                id: r.get(0)?,
                wire_name: r.get(1)?,
                name: r.get(2)?,
                uidvalidity: r.get(3)?,
                uidnext: r.get(4)?,
                highest_modseq: r.get(5)?,
                last_uid: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many rows of the folder still wait for their bytes.
    pub fn unstaged_count(&self, folder_id: i64) -> Result<i64> {
        Ok(self.conn.row(
            "SELECT count(*) FROM message WHERE folder_id = ?1 AND sha256 IS NULL AND push_state = ?2",
            params![folder_id, PushState::Pending],
            |r| r.get(0),
        )?)
    }

    /// Up to `limit` rows of the folder (at `uidvalidity`) that wait for their bytes, in UID order
    /// from above `after_uid`: a window, so memory does not grow with the folder.
    pub fn unstaged_window(&self, folder_id: i64, uidvalidity: u32, after_uid: u32, limit: usize) -> Result<Vec<UnstagedMessage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, uid, size, fetch_failures FROM message WHERE folder_id = ?1 AND uidvalidity = ?2 AND sha256 IS NULL
             AND push_state = ?5 AND uid > ?3 ORDER BY uid LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![folder_id, uidvalidity, after_uid, limit as i64, PushState::Pending], |r| {
            Ok(UnstagedMessage { id: r.get(0)?, uid: r.get(1)?, size: r.get(2)?, fetch_failures: r.get(3)? })
        })?;
        let mut window = Vec::with_capacity(limit);
        for row in rows {
            window.push(row?);
        }
        Ok(window)
    }

    /// Whether row `id` still waits for its bytes: not staged, and not refused (a NIL body) or gone.
    pub fn still_unstaged(&self, id: i64) -> Result<bool> {
        still_unstaged(&self.conn, id)
    }

    /// Whether the folder still has rows from another UIDVALIDITY, not yet matched to their new UIDs
    /// (`merge_uidvalidity_orphans`): until they are, its new rows must not be appended.
    pub fn has_uidvalidity_orphans(&self, folder_id: i64, uidvalidity: u32) -> Result<bool> {
        Ok(self.conn.row(
            "SELECT EXISTS (SELECT 1 FROM message WHERE folder_id = ?1 AND uidvalidity != ?2)",
            params![folder_id, uidvalidity],
            |r| r.get(0),
        )?)
    }

    /// After a UIDVALIDITY change the folder's messages come back under new UIDs. Each new row whose
    /// bytes equal an old row that was already copied takes over the old row's place on the target
    /// (its journal state, target UID, synced flags and skips), so it is not appended a second time.
    /// Old rows never copied are dropped (their new twins will be).
    pub fn merge_uidvalidity_orphans(&self, folder_id: i64, uidvalidity: u32) -> Result<()> {
        let orphans: i64 = self.conn.row(
            "SELECT count(*) FROM message WHERE folder_id = ?1 AND uidvalidity != ?2",
            params![folder_id, uidvalidity],
            |r| r.get(0),
        )?;
        if orphans == 0 {
            return Ok(());
        }
        // The pairs are read inside the write: a row still `pending` when read is still `pending` when
        // it takes its twin's journal, never one a push marked `appending` in between.
        self.write(|tx| {
            let conn = tx.conn();
            let pairs: Vec<(i64, i64)> = {
                let mut stmt = conn.prepare_cached(
                    "SELECT n.id, o.id FROM message n JOIN message o
                       ON o.folder_id = n.folder_id AND o.uidvalidity != n.uidvalidity AND o.size = n.size AND o.sha256 = n.sha256
                     WHERE n.folder_id = ?1 AND n.uidvalidity = ?2 AND n.push_state = ?3 AND n.sha256 IS NOT NULL
                       AND o.push_state IN (?4, ?5, ?6) AND o.gone_at IS NULL
                     ORDER BY n.uid, o.uid",
                )?;
                let rows = stmt.query_map(
                    params![folder_id, uidvalidity, PushState::Pending, PushState::Pushed, PushState::Appending, PushState::Refused],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                rows.collect::<Result<_, _>>()?
            };
            let mut used_new = std::collections::BTreeSet::new();
            let mut used_old = std::collections::BTreeSet::new();
            for (new_id, old_id) in pairs {
                if used_new.contains(&new_id) || used_old.contains(&old_id) {
                    continue;
                }
                used_new.insert(new_id);
                used_old.insert(old_id);
                conn.run(
                    "UPDATE message SET (push_state, target_folder_id, target_uidvalidity, target_uid, synced_flags, attempts, origin) =
                       (SELECT push_state, target_folder_id, target_uidvalidity, target_uid, synced_flags, attempts, origin FROM message WHERE id = ?2)
                     WHERE id = ?1",
                    params![new_id, old_id],
                )?;
                // A twin the target already holds (or refused) keeps no bytes in staging, as a pushed row.
                let held: bool = conn.row("SELECT push_state IN ('pushed', 'refused') FROM message WHERE id = ?1", [new_id], |r| r.get(0))?;
                if held {
                    tx.release_spooled(new_id)?;
                }
                conn.run("UPDATE skip SET message_id = ?1 WHERE message_id = ?2", params![new_id, old_id])?;
                tx.forget_message(old_id)?;
            }
            // Old rows the operator's filter left out come back under new UIDs, weighed again (their
            // ledger entries go with them).
            let left_out: Vec<i64> = {
                let mut stmt = conn.prepare_cached("SELECT id FROM message WHERE folder_id = ?1 AND uidvalidity != ?2 AND left_out IS NOT NULL")?;
                let rows = stmt.query_map(params![folder_id, uidvalidity], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for id in left_out {
                tx.forget_message(id)?;
            }
            // Old rows that were never on the target are replaced by their new-UID twins.
            let replaced: Vec<i64> = {
                let mut stmt =
                    conn.prepare_cached("SELECT id FROM message WHERE folder_id = ?1 AND uidvalidity != ?2 AND push_state = ?3 AND spool_bytes > 0")?;
                let rows = stmt.query_map(params![folder_id, uidvalidity, PushState::Pending], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for id in replaced {
                tx.release_spooled(id)?;
            }
            conn.run(
                "DELETE FROM message WHERE folder_id = ?1 AND uidvalidity != ?2 AND push_state = ?3",
                params![folder_id, uidvalidity, PushState::Pending],
            )?;
            Ok(())
        })
    }

    /// The fully staged rows of `folder_id` in push state `state` that have no identity yet (staged
    /// before schema version 4, or for a target that did not need it).
    /// (Rows whose bytes left staging are not among them: with nothing to read, they keep no identity
    /// rather than a permanent "nothing to go by".)
    pub fn staged_without_identity(&self, folder_id: i64, state: PushState) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM message WHERE folder_id = ?1 AND identity IS NULL AND sha256 IS NOT NULL AND push_state = ?2
                   AND spool_bytes > 0",
        )?;
        let rows = stmt.query_map(params![folder_id, state], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Tx<'_> {
    /// Adds a message the listing found; one staging has already (same UIDVALIDITY and UID) is left as
    /// it is. One the operator's filter leaves out is added refused, with its skip ledger entry
    /// (`account_id`, `folder_name`). Returns the rows added (0 or 1).
    pub fn insert_listed_message(
        &self,
        account_id: i64,
        folder_id: i64,
        folder_name: &str,
        uidvalidity: u32,
        message: &ListedMessage,
    ) -> Result<usize> {
        let mut insert = self.conn().prepare_cached(
            "INSERT INTO message (folder_id, uidvalidity, uid, size, internal_date, flags, modseq, push_state, left_out)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
        )?;
        let (state, left_out) = if message.left_out.is_some() { (PushState::Refused, Some(1)) } else { (PushState::Pending, None) };
        let added = insert.execute(params![
            folder_id,
            uidvalidity,
            message.uid,
            message.size,
            message.internal_date,
            message.flags,
            message.modseq,
            state,
            left_out
        ])?;
        if let (1, Some(reason)) = (added, &message.left_out) {
            self.record_skip(account_id, Some(self.conn().last_insert_rowid()), folder_name, reason, None)?;
        }
        Ok(added)
    }

    /// Sets a known message's source flags. Returns the rows changed: 0 when they were already so.
    pub fn set_source_flags(&self, folder_id: i64, uidvalidity: u32, uid: u32, flags: &str) -> Result<usize> {
        let mut update = self
            .conn()
            .prepare_cached("UPDATE message SET flags = ?4 WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3 AND flags != ?4")?;
        Ok(update.execute(params![folder_id, uidvalidity, uid, flags])?)
    }

    /// The listing of new messages is complete up to `last_uid` under `uidvalidity`.
    pub fn set_listed_up_to(&self, folder_id: i64, uidvalidity: u32, last_uid: u32) -> Result<()> {
        self.conn()
            .run("UPDATE source_folder SET uidvalidity = ?2, last_uid = ?3 WHERE id = ?1", params![folder_id, uidvalidity, last_uid])?;
        Ok(())
    }

    /// What the pull of a folder saw, once it is done: the next pass compares its STATUS with these.
    /// `last_uid` never moves back.
    pub fn record_folder_pulled(
        &self,
        folder_id: i64,
        uidvalidity: u32,
        uidnext: Option<u32>,
        highest_modseq: Option<u64>,
        last_uid: u32,
    ) -> Result<()> {
        self.conn().run(
            "UPDATE source_folder SET uidvalidity = ?2, uidnext = ?3, highest_modseq = ?4, last_uid = max(last_uid, ?5) WHERE id = ?1",
            params![folder_id, uidvalidity, uidnext, highest_modseq.map(|m| m as i64), last_uid],
        )?;
        Ok(())
    }

    /// Writes a batch of body writes in order: bytes into the spool, and onto each message's row where
    /// they are (once per run of chunks), so staging's use is known while a large body arrives.
    pub fn write_bodies(&self, writes: impl IntoIterator<Item = BodyWrite>) -> Result<()> {
        let conn = self.conn();
        // The message whose chunks came last, not yet recorded on its row.
        let mut unrecorded: Option<i64> = None;
        for write in writes {
            if let Some(id) = unrecorded.take_if(|id| write.records_place_of() != Some(*id)) {
                self.spool_record(id)?;
            }
            match write {
                #[cfg(test)]
                BodyWrite::Restart(id) => {
                    self.spool_restart(id)?;
                    conn.prepare_cached("UPDATE message SET sha256 = NULL WHERE id = ?1 AND sha256 IS NOT NULL")?.execute([id])?;
                }
                BodyWrite::Restarted(id) => {
                    self.spool_restarted(id)?;
                    conn.prepare_cached("UPDATE message SET sha256 = NULL WHERE id = ?1 AND sha256 IS NOT NULL")?.execute([id])?;
                }
                #[cfg(test)]
                BodyWrite::Chunk { id, offset, data } => {
                    self.spool_write(id, offset, &data)?;
                    unrecorded = Some(id);
                }
                BodyWrite::Written(id) => unrecorded = Some(id),
                BodyWrite::Staged { id, hash, size, identity } => {
                    // Records the place too: the run of chunks before it is not recorded again.
                    unrecorded.take_if(|unrecorded| *unrecorded == id);
                    self.spool_finish(id, size)?;
                    // Only the columns that change: naming an indexed column in SET rewrites its index
                    // entry even when the value stays, and each such entry is a page in the
                    // write-ahead log (the size is the listed one nearly always; a missing identity
                    // means this target needs none).
                    conn.prepare_cached("UPDATE message SET sha256 = ?2, staged_bytes = ?3 WHERE id = ?1")?.execute(params![
                        id,
                        hash,
                        size as i64
                    ])?;
                    conn.prepare_cached("UPDATE message SET size = ?2 WHERE id = ?1 AND size != ?2")?.execute(params![id, size as i64])?;
                    if let Some(identity) = identity {
                        conn.prepare_cached("UPDATE message SET identity = ?2 WHERE id = ?1")?.execute(params![id, identity])?;
                    }
                }
            }
        }
        if let Some(id) = unrecorded {
            self.spool_record(id)?;
        }
        crate::fault::point_once("spool: bytes written, not yet committed");
        Ok(())
    }

    /// A message the source will not give: refused, with a skip in the server's words, and without
    /// whatever was staged of it (a refused row holds no bytes).
    pub fn refuse_message(&self, account_id: i64, folder_name: &str, id: i64, server_says: &str) -> Result<()> {
        self.release_spooled(id)?;
        self.conn().run("UPDATE message SET push_state = ?2, sha256 = NULL WHERE id = ?1", params![id, PushState::Refused])?;
        self.record_skip(account_id, Some(id), folder_name, "the old server could not give this message", Some(server_says))
    }

    /// Counts a hang-up of the source against row `id` if it has not arrived; returns its count then,
    /// or None for a row that is staged or gone.
    pub fn count_fetch_failure(&self, id: i64) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "UPDATE message SET fetch_failures = fetch_failures + 1 WHERE id = ?1 AND sha256 IS NULL RETURNING fetch_failures",
                [id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Removes a message the source no longer has (its bytes leave the spool with it, its skips keep
    /// no link). Released before the row goes: the release reads the row to find its segment.
    pub fn forget_message(&self, id: i64) -> Result<()> {
        self.release_spooled(id)?;
        // A message the operator's filter left out and the source no longer has was not left out
        // of anything: its ledger entry goes with it (a target's refusal stays, as history).
        self.conn()
            .run("DELETE FROM skip WHERE message_id = ?1 AND substr(reason, 1, length(?2)) = ?2", params![id, super::LEFT_OUT_REASON])?;
        self.conn().run("DELETE FROM message WHERE id = ?1", [id])?;
        Ok(())
    }

    /// `Store::still_unstaged`, inside this transaction.
    pub fn still_unstaged(&self, id: i64) -> Result<bool> {
        still_unstaged(self.conn(), id)
    }

    /// Sets a staged message's identity ('' for "looked, nothing to go by").
    pub fn set_identity(&self, id: i64, identity: &str) -> Result<()> {
        self.conn().run("UPDATE message SET identity = ?2 WHERE id = ?1", params![id, identity])?;
        Ok(())
    }
}

fn still_unstaged(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn
        .row("SELECT sha256 IS NULL AND push_state = ?2 FROM message WHERE id = ?1", params![id, PushState::Pending], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// For the pull's tests, which build a folder by hand and look at what staging holds.
#[cfg(test)]
impl Store {
    /// An account `a@x.se` with its INBOX (folder id 1), and one message row at UIDVALIDITY 1 per
    /// (UID, listed size); returns the rows' ids.
    pub fn staging_fixture(&self, messages: &[(u32, i64)]) -> Vec<i64> {
        self.conn.run("INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se')", []).unwrap();
        self.conn.run("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        let mut ids = Vec::new();
        for &(uid, size) in messages {
            self.conn
                .run("INSERT INTO message (folder_id, uidvalidity, uid, size, flags) VALUES (1, 1, ?1, ?2, '')", params![uid, size])
                .unwrap();
            ids.push(self.conn.last_insert_rowid());
        }
        ids
    }

    /// A message's staged bytes (its spool file) and its hash.
    pub fn staged_copy(&self, id: i64) -> (Vec<u8>, Option<Vec<u8>>) {
        let bytes = self.write(|tx| tx.staged_start(id, usize::MAX)).unwrap();
        let hash = self.conn.row("SELECT sha256 FROM message WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        (bytes, hash)
    }

    /// A message's push state, hash and the bytes its row counts in the spool.
    pub fn staged_state(&self, id: i64) -> (PushState, Option<Vec<u8>>, i64) {
        self.conn
            .row("SELECT push_state, sha256, spool_bytes FROM message WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
    }

    /// The server's words recorded with the skip of message `id`.
    pub fn skip_server_says(&self, id: i64) -> String {
        self.conn.row("SELECT server_says FROM skip WHERE message_id = ?1", [id], |r| r.get(0)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_states_round_trip_through_sqlite_and_unknown_text_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for state in [PushState::Pending, PushState::Appending, PushState::Pushed, PushState::Refused] {
            let back: PushState = conn.row("SELECT ?1", [state], |r| r.get(0)).unwrap();
            assert_eq!(back, state);
        }
        assert!(conn.row("SELECT 'sent'", [], |r| r.get::<_, PushState>(0)).is_err());
    }
}
