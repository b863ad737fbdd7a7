//! What repair reads and writes: the operator's request to copy again what verification found
//! missing (the setting `repair.<account id>`, the source folders to look at, one per line), the
//! copies recorded in a target folder, and the journal step that sends lost copies back. The request
//! is durable, so a crash before the next pass acts on it loses nothing; acting on it is one
//! transaction that reopens the lost copies and withdraws the request together.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{PushState, Store, Tx};

/// The setting that holds an account's repair request.
fn request_key(account_id: i64) -> String {
    format!("repair.{account_id}")
}

impl Store {
    /// Asks the account's next pass to look again at these source folders' copies on the target.
    /// Adds to a request not acted on yet.
    pub fn request_repair(&self, account_id: i64, source_folders: &[String]) -> Result<()> {
        let mut folders = self.repair_request(account_id)?;
        for f in source_folders {
            if !folders.contains(f) {
                folders.push(f.clone());
            }
        }
        self.set_setting(&request_key(account_id), &folders.join("\n"))
    }

    /// The source folders (by name) a repair of the account was asked for; empty when none.
    pub fn repair_request(&self, account_id: i64) -> Result<Vec<String>> {
        let text = self.setting(&request_key(account_id))?.unwrap_or_default();
        Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
    }

    /// The account's target folder with this wire name as recorded: its id and UIDVALIDITY.
    pub fn recorded_target_folder(&self, account_id: i64, wire_name: &str) -> Result<Option<(i64, Option<u32>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, uidvalidity FROM target_folder WHERE account_id = ?1 AND wire_name = ?2",
                params![account_id, wire_name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The messages of a source folder recorded as pushed into this target folder and UIDVALIDITY:
    /// (row id, target UID).
    pub fn pushed_copies(&self, source_folder_id: i64, target_folder_id: i64, uidvalidity: u32) -> Result<Vec<(i64, u32)>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, target_uid FROM message WHERE folder_id = ?1 AND push_state = 'pushed'
               AND target_folder_id = ?2 AND target_uidvalidity = ?3 AND target_uid IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![source_folder_id, target_folder_id, uidvalidity], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Tx<'_> {
    /// Copies recorded as pushed whose target UID the target no longer has: back to `appending`
    /// (maybe somewhere in the folder, maybe not), so the push looks them up by content or identity
    /// before anything is appended, and sends what it does not find to be appended again (fetched from
    /// the source again when the bytes left staging). The same way back as a re-created target folder.
    pub fn reopen_lost_copies(&self, message_ids: &[i64]) -> Result<u64> {
        let mut stmt = self.conn().prepare_cached("UPDATE message SET push_state = ?2 WHERE id = ?1 AND push_state = 'pushed'")?;
        let mut reopened = 0;
        for id in message_ids {
            reopened += stmt.execute(params![id, PushState::Appending])? as u64;
        }
        Ok(reopened)
    }

    /// The account's repair request was acted on.
    pub fn clear_repair_request(&self, account_id: i64) -> Result<()> {
        self.conn().execute("DELETE FROM setting WHERE key = ?1", [request_key(account_id)])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_request_adds_up_until_cleared_and_only_pushed_rows_are_reopened() {
        let dir = std::env::temp_dir().join(format!("postflytt-store-repair-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.upsert_account("a@x.se", &Secret::new("pw"), "a@y.se", None, &[]).unwrap();
        store.request_repair(1, &["INBOX".into()]).unwrap();
        store.request_repair(1, &["INBOX".into(), "Sent".into()]).unwrap();
        assert_eq!(store.repair_request(1).unwrap(), ["INBOX", "Sent"]);

        store.conn.execute("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        store
            .conn
            .execute("INSERT INTO target_folder (account_id, name, wire_name, uidvalidity) VALUES (1, 'INBOX', 'INBOX', 7)", [])
            .unwrap();
        for (uid, state) in [(1, "pushed"), (2, "pushed"), (3, "pending")] {
            store
                .conn
                .execute(
                    "INSERT INTO message (folder_id, uidvalidity, uid, size, flags, push_state, target_folder_id, target_uidvalidity, target_uid)
                     VALUES (1, 1, ?1, 10, '', ?2, 1, 7, ?1 + 100)",
                    params![uid, state],
                )
                .unwrap();
        }
        assert_eq!(store.recorded_target_folder(1, "INBOX").unwrap(), Some((1, Some(7))));
        assert_eq!(store.pushed_copies(1, 1, 7).unwrap(), [(1, 101), (2, 102)]);
        assert!(store.pushed_copies(1, 1, 8).unwrap().is_empty());
        let reopened = store
            .write(|tx| {
                let n = tx.reopen_lost_copies(&[2, 3])?;
                tx.clear_repair_request(1)?;
                Ok(n)
            })
            .unwrap();
        assert_eq!(reopened, 1, "the pending row stays pending");
        assert_eq!(store.appending_count(1).unwrap(), 1);
        assert!(store.repair_request(1).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
