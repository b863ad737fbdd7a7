//! Rows that tests elsewhere need and that no production path writes the way they need them (a folder
//! already gone from the source, a message in a given journal state with a staged body, a renamed
//! folder), so those tests hold no SQL of their own. Compiled for tests only.

use rusqlite::params;

use super::Cached;
use super::{PushState, Store};

impl Store {
    /// A source folder of the account with its target name, whether the source still lists it, and
    /// its UIDVALIDITY; returns its id.
    pub fn insert_folder_for_tests(&self, account_id: i64, name: &str, target_name: &str, present: bool, uidvalidity: u32) -> i64 {
        self.conn
            .run(
                "INSERT INTO source_folder (account_id, name, wire_name, target_name, present, uidvalidity) VALUES (?1, ?2, ?2, ?3, ?4, ?5)",
                params![account_id, name, target_name, present, uidvalidity],
            )
            .unwrap();
        self.conn.last_insert_rowid()
    }

    /// A message in the folder's UIDVALIDITY `uidvalidity`, in journal state `state`, with a one-byte
    /// staged body; returns its id.
    pub fn insert_message_for_tests(&self, folder_id: i64, uidvalidity: u32, uid: u32, size: i64, state: PushState) -> i64 {
        self.conn
            .run(
                "INSERT INTO message (folder_id, uidvalidity, uid, size, push_state, internal_date)
                 VALUES (?1, ?2, ?3, ?4, ?5, ' 1-Jan-2020 10:00:00 +0100')",
                params![folder_id, uidvalidity, uid, size, state],
            )
            .unwrap();
        let id = self.conn.last_insert_rowid();
        self.write(|tx| tx.write_bodies([super::BodyWrite::Chunk { id, offset: 0, data: vec![0] }])).unwrap();
        id
    }

    /// Renames source folders named `from` (a name the source could send that discovery has not).
    pub fn rename_folder_for_tests(&self, from: &str, to: &str) {
        self.conn.run("UPDATE source_folder SET name = ?2 WHERE name = ?1", [from, to]).unwrap();
    }

    /// How many staged bodies the spool holds (files, and rows that count bytes there).
    pub fn spooled_for_tests(&self) -> (usize, i64) {
        let rows = self.conn.row("SELECT count(*) FROM message WHERE spool_bytes > 0", [], |r| r.get(0)).unwrap();
        (self.spool.segments().unwrap().len(), rows)
    }
}
