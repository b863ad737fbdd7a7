//! What repair reads and writes: the operator's request to copy again what verification found
//! missing (the setting `repair.<account id>`: the source UIDs to look at per source folder), the
//! copies recorded in a target folder, and the journal step that sends lost copies back. The request
//! is durable, so a crash before the next pass acts on it loses nothing; acting on it is one
//! transaction that reopens the lost copies and withdraws the request together.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{PushState, Store, Tx};

/// The setting that holds an account's repair request.
fn request_key(account_id: i64) -> String {
    format!("repair.{account_id}")
}

impl Store {
    /// Asks the account's next pass to look again at these source UIDs' copies on the target, per
    /// source folder (by name). Adds to a request not acted on yet.
    pub fn request_repair(&self, account_id: i64, folders: &[(String, Vec<u32>)]) -> Result<()> {
        let mut request = self.repair_request(account_id)?;
        for (folder, uids) in folders {
            let entry = request.entry(folder.clone()).or_default();
            entry.extend(uids.iter().copied());
        }
        let text: Vec<String> = request
            .iter()
            .map(|(folder, uids)| format!("{}\t{}", uids.iter().map(u32::to_string).collect::<Vec<_>>().join(","), folder))
            .collect();
        self.set_setting(&request_key(account_id), &text.join("\n"))
    }

    /// The source UIDs per source folder (by name) a repair of the account was asked for; empty when
    /// none. A line is "UID,UID,...<tab>folder name" (a name may hold a comma, not a tab or newline).
    pub fn repair_request(&self, account_id: i64) -> Result<BTreeMap<String, BTreeSet<u32>>> {
        let text = self.setting(&request_key(account_id))?.unwrap_or_default();
        let mut request: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for line in text.lines() {
            let Some((uids, folder)) = line.split_once('\t') else { continue };
            request.entry(folder.to_string()).or_default().extend(uids.split(',').filter_map(|u| u.parse::<u32>().ok()));
        }
        Ok(request)
    }

    /// The account's target folder with this wire name as recorded: its id and UIDVALIDITY.
    pub fn recorded_target_folder(&self, account_id: i64, wire_name: &str) -> Result<Option<(i64, Option<u32>)>> {
        Ok(self
            .conn
            .row(
                "SELECT id, uidvalidity FROM target_folder WHERE account_id = ?1 AND wire_name = ?2",
                params![account_id, wire_name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The messages of a source folder's UIDVALIDITY recorded as pushed into this target folder and
    /// UIDVALIDITY: (row id, source UID, target UID).
    pub fn pushed_copies(
        &self,
        source_folder_id: i64,
        source_uidvalidity: u32,
        target_folder_id: i64,
        uidvalidity: u32,
    ) -> Result<Vec<(i64, u32, u32)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, uid, target_uid FROM message WHERE folder_id = ?1 AND uidvalidity = ?4 AND push_state = 'pushed'
               AND target_folder_id = ?2 AND target_uidvalidity = ?3 AND target_uid IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![source_folder_id, target_folder_id, uidvalidity, source_uidvalidity], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Tx<'_> {
    /// Copies recorded as pushed whose target UID the target no longer has: back to `appending`
    /// (maybe somewhere in the folder, maybe not), so the push looks them up by content or identity
    /// before anything is appended, and sends what it does not find to be appended again (fetched from
    /// the source again when the bytes left staging). The same way back as a re-created target folder.
    pub fn reopen_lost_copies(&self, message_ids: &[i64]) -> Result<u64> {
        let mut stmt =
            self.conn().prepare_cached("UPDATE message SET push_state = ?2, origin = NULL WHERE id = ?1 AND push_state = 'pushed'")?;
        let mut reopened = 0;
        for id in message_ids {
            reopened += stmt.execute(params![id, PushState::Appending])? as u64;
        }
        Ok(reopened)
    }

    /// The account's repair request was acted on.
    pub fn clear_repair_request(&self, account_id: i64) -> Result<()> {
        self.conn().run("DELETE FROM setting WHERE key = ?1", [request_key(account_id)])?;
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
        store.request_repair(1, &[("INBOX".into(), vec![2, 1])]).unwrap();
        store.request_repair(1, &[("INBOX".into(), vec![3]), ("Kunder, gamla".into(), vec![9])]).unwrap();
        let asked: Vec<(String, Vec<u32>)> =
            store.repair_request(1).unwrap().into_iter().map(|(f, u)| (f, u.into_iter().collect())).collect();
        assert_eq!(asked, [("INBOX".to_string(), vec![1, 2, 3]), ("Kunder, gamla".to_string(), vec![9])]);

        store.conn.run("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
        store.conn.run("INSERT INTO target_folder (account_id, name, wire_name, uidvalidity) VALUES (1, 'INBOX', 'INBOX', 7)", []).unwrap();
        for (uid, state) in [(1, "pushed"), (2, "pushed"), (3, "pending")] {
            store
                .conn
                .run(
                    "INSERT INTO message (folder_id, uidvalidity, uid, size, flags, push_state, target_folder_id, target_uidvalidity, target_uid)
                     VALUES (1, 1, ?1, 10, '', ?2, 1, 7, ?1 + 100)",
                    params![uid, state],
                )
                .unwrap();
        }
        assert_eq!(store.recorded_target_folder(1, "INBOX").unwrap(), Some((1, Some(7))));
        assert_eq!(store.pushed_copies(1, 1, 1, 7).unwrap(), [(1, 1, 101), (2, 2, 102)]);
        assert!(store.pushed_copies(1, 1, 1, 8).unwrap().is_empty());
        assert!(store.pushed_copies(1, 2, 1, 7).unwrap().is_empty(), "another source UIDVALIDITY");
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
