//! An account's folders as a pass finds and maps them: the source folders discovery lists (with the
//! target name the `folders` module chose and why), which of them the source still lists, and the
//! target folders the push fills. What pull and push record inside a folder (UIDs, UIDVALIDITY, how
//! far they got) is theirs; this module holds what discovery and the pass loop read and write.

use anyhow::{Result, anyhow};
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{Store, TargetFolderRow, Tx};

/// One source folder as discovery lists and maps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFolderRecord {
    /// The name in UTF-8 and as the server spells it (modified UTF-7).
    pub name: String,
    pub wire_name: String,
    pub delimiter: Option<char>,
    /// The LIST attributes, space-separated.
    pub attributes: String,
    pub selectable: bool,
    pub subscribed: bool,
    /// The mapping: the target folder's name, why that name, and a note for the operator.
    pub target_name: Option<String>,
    pub map_reason: Option<String>,
    pub map_note: Option<String>,
}

/// A source folder the source still lists, as the pass walks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentFolder {
    pub id: i64,
    pub name: String,
    pub wire_name: String,
    pub target_name: Option<String>,
    pub selectable: bool,
    pub subscribed: bool,
}

impl Store {
    /// The account's folders the source still lists, in target-name order (so parents come before
    /// children when they are created).
    pub fn present_folders(&self, account_id: i64) -> Result<Vec<PresentFolder>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, name, wire_name, target_name, selectable, subscribed FROM source_folder
             WHERE account_id = ?1 AND present = 1 ORDER BY target_name",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(PresentFolder {
                id: r.get(0)?,
                name: r.get(1)?,
                wire_name: r.get(2)?,
                target_name: r.get(3)?,
                selectable: r.get(4)?,
                subscribed: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The account's folders the source listed at the last discovery (a check's, a pass's or
    /// `folders`'), with their mapping as recorded then, by name: what the page shows before a pass.
    pub fn recorded_folders(&self, account_id: i64) -> Result<Vec<SourceFolderRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, wire_name, delimiter, attributes, selectable, subscribed, target_name, map_reason, map_note
             FROM source_folder WHERE account_id = ?1 AND present = 1 ORDER BY name",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(SourceFolderRecord {
                name: r.get(0)?,
                wire_name: r.get(1)?,
                delimiter: r.get::<_, Option<String>>(2)?.and_then(|d| d.chars().next()),
                attributes: r.get(3)?,
                selectable: r.get(4)?,
                subscribed: r.get(5)?,
                target_name: r.get(6)?,
                map_reason: r.get(7)?,
                map_note: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Tx<'_> {
    /// Marks every source folder of the account as no longer listed; `record_source_folder` marks
    /// again those the source lists now.
    pub fn mark_source_folders_absent(&self, account_id: i64) -> Result<()> {
        self.conn()
            .run("UPDATE source_folder SET present = 0, absent_listings = absent_listings + 1 WHERE account_id = ?1", [account_id])?;
        Ok(())
    }

    /// Records a source folder the source lists, with its mapping (inserted, or updated by wire name).
    pub fn record_source_folder(&self, account_id: i64, folder: &SourceFolderRecord) -> Result<()> {
        self.conn().run(
            "INSERT INTO source_folder (account_id, name, wire_name, delimiter, attributes, selectable, subscribed, present,
                                        target_name, map_reason, map_note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?10)
             ON CONFLICT (account_id, wire_name) DO UPDATE SET name = excluded.name, delimiter = excluded.delimiter,
                 attributes = excluded.attributes, selectable = excluded.selectable, subscribed = excluded.subscribed,
                 present = 1, absent_listings = 0, target_name = excluded.target_name, map_reason = excluded.map_reason, map_note = excluded.map_note",
            params![
                account_id,
                folder.name,
                folder.wire_name,
                folder.delimiter.map(|d| d.to_string()),
                folder.attributes,
                folder.selectable,
                folder.subscribed,
                folder.target_name,
                folder.map_reason,
                folder.map_note,
            ],
        )?;
        Ok(())
    }

    /// Forgets what was recorded of a target folder's contents (its UIDVALIDITY and how far it was
    /// indexed), for a folder that had to be created again: what was recorded there is gone.
    pub fn forget_target_folder_contents(&self, account_id: i64, wire_name: &str) -> Result<()> {
        self.conn().run(
            "UPDATE target_folder SET uidvalidity = NULL, indexed_uidnext = 0 WHERE account_id = ?1 AND wire_name = ?2",
            params![account_id, wire_name],
        )?;
        Ok(())
    }

    /// The target folder's row, made when there is none yet.
    pub fn target_folder(&self, account_id: i64, name: &str, wire_name: &str) -> Result<TargetFolderRow> {
        self.conn().run(
            "INSERT INTO target_folder (account_id, name, wire_name) VALUES (?1, ?2, ?3) ON CONFLICT (account_id, wire_name) DO NOTHING",
            params![account_id, name, wire_name],
        )?;
        self.conn()
            .row(
                "SELECT id, wire_name, uidvalidity, indexed_uidnext FROM target_folder WHERE account_id = ?1 AND wire_name = ?2",
                params![account_id, wire_name],
                |r| Ok(TargetFolderRow { id: r.get(0)?, wire_name: r.get(1)?, uidvalidity: r.get(2)?, indexed_uidnext: r.get(3)? }),
            )
            .optional()?
            .ok_or_else(|| anyhow!("target folder row vanished"))
    }
}
