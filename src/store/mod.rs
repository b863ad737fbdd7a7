//! The staging store: one SQLite database in the data directory that holds the configuration, the
//! accounts (passwords sealed with the key file), every source folder and message, the staged bytes,
//! where each message landed on the target, and the skip ledger. It is the single source of truth: a
//! pass can be killed at any point and the next one reads from here what was done and what was only
//! intended. This module owns opening, the schema and its numbered migrations, endpoints and sealed
//! secrets; `settings` the operator's configuration, `accounts` the account rows, `folders` what
//! discovery records, `passes` pass rows and the run-state marks, `verification` what the check and
//! verify record, `stats` what the page counts, `staging` what the source side writes (source folders pulled,
//! message rows and flags, body chunks and hashes, identities), `journal` the push's APPEND journal.
//! No SQL lives outside these modules; a write is a closure given to `Store::write`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OptionalExtension, params};

mod accounts;
pub mod dav;
mod dav_settings;
mod dav_stats;
mod folder_choice;
mod folders;
mod holds;
mod journal;
mod left_out;
mod mirror;
mod notify;
mod passes;
mod repair;
mod settings;
mod space;
mod spares;
mod spool;
mod staging;
mod stats;
mod switch;
#[cfg(test)]
mod test_rows;
mod verification;

pub use accounts::{Account, AccountState, DavLogins};
pub use dav_settings::DavSetting;
pub use dav_stats::{DavCollectionStats, DavSkip};
pub use folder_choice::EXCLUDED_REASON;
pub use folders::{PresentFolder, SourceFolderRecord};
pub use journal::{PendingAppend, TargetCopy, TargetFolderRow};
pub use left_out::LEFT_OUT_REASON;
pub use mirror::{AbsentFolder, GoneCopy, MovePair};
pub use notify::NotifyRows;
pub use passes::{Finished, PassTotals, RunMark};
pub use settings::{PASS_INTERVAL_SECONDS, QUIET_PERIOD_SECONDS, Settings, check_seconds, check_staging_limit, parse_staging_limit};
pub use space::{DEFAULT_STAGING_LIMIT, free_disk};
pub use spool::{DamagedBody, StagedBody, StagedPlace};
pub use staging::{BodyWrite, ListedMessage, SourceFolderRow, UnstagedMessage};
pub use stats::{AccountProgress, MirrorProgress, SkipEntry};
pub use switch::{Switched, SwitchedBy};
pub use verification::FolderToVerify;

use crate::imap::{Endpoint, TlsMode};
pub use crate::quirks::ServerKind;
use crate::secret::{Secret, SecretKey};
pub use crate::units::now;

/// The schema a fresh database starts from (version 1).
const SCHEMA: &str = include_str!("schema.sql");

/// Numbered migrations after version 1, applied in order, each in its own transaction. Index 0
/// brings a database from version 1 to 2, and so on.
const MIGRATIONS: &[&str] = &[
    // 2: the pre-flight check's verdict per account, with its details as JSON for the page and exports.
    "CREATE TABLE check_result (
        account_id INTEGER PRIMARY KEY REFERENCES account(id) ON DELETE CASCADE,
        checked_at INTEGER NOT NULL,
        verdict    TEXT NOT NULL,
        detail     TEXT NOT NULL
    ) STRICT;",
    // 3: the push loop takes pending rows in UID order (quadratic without this on a 300,000-message
    // folder), and the look-up of recorded target UIDs goes by target folder.
    "DROP INDEX message_push;
     CREATE INDEX message_push ON message (folder_id, push_state, uid);
     CREATE INDEX message_target ON message (target_folder_id, target_uidvalidity, target_uid);",
    // 4: a message's identity (Message-ID, or Date/From/Subject) for targets that re-render what we
    // append (Exchange Online), where size and SHA-256 cannot find our copy again. Filled in lazily.
    // Also: how often a pass was asked to slow down (quirk `exchange_throttled`), for the status; and how
    // often the source hung up instead of sending this message (quirk
    // `dovecot_bye_on_fetch_failure`), so an unreadable message is found and skipped, not retried forever.
    "ALTER TABLE message ADD COLUMN identity TEXT;
     CREATE INDEX message_identity ON message (folder_id, identity);
     ALTER TABLE message ADD COLUMN fetch_failures INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE pass ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0;",
    // 5: staged bodies move out of the database into spool files (`spool`); the row says where its
    // bytes are (segment, offset, bytes). Bodies staged by an older version are not carried over: a row
    // still to be appended is fetched again; one journalled keeps its hash for the look-up on the target.
    "ALTER TABLE message ADD COLUMN spool_file INTEGER;
     ALTER TABLE message ADD COLUMN spool_offset INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE message ADD COLUMN spool_bytes INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX message_spooled ON message (spool_file) WHERE spool_bytes > 0;
     UPDATE message SET sha256 = NULL WHERE push_state = 'pending' AND EXISTS (SELECT 1 FROM body_chunk WHERE message_id = message.id);
     DROP TABLE body_chunk;",
    // 6: the operator's hand on one account (`holds`): paused (passes skip it) or removed (out of the
    // migration, its passwords wiped, its counts kept for the report); a re-import clears both.
    "ALTER TABLE account ADD COLUMN paused_at INTEGER;
     ALTER TABLE account ADD COLUMN removed_at INTEGER;",
    // 7: mirroring the users' own moves and deletions until they switch (`mirror`). `switched_at`: when
    // the account's users switched to the new host (its domain's first MX flip, or the operator's
    // word), `switched_by` which of the two; from then on nothing is moved or removed on the target.
    // `origin`: how a pushed row's target copy came to be ours ('appended' by us, or 'found' there, e.g.
    // another tool's copy, which is never touched); NULL for rows pushed before this version, which
    // are left alone too. `gone_at`: the source no longer has the message (a short-lived mark during a
    // pass: the row goes once its copy is moved or removed). `mirror`: the journal of that follow-up,
    // 'moving' or 'expunging' committed before the command goes out. `moved_from`: the gone row whose
    // target copy this row's MOVE takes over. `renaming_from`: the journal of a folder RENAME on the
    // target (the absent source folder whose target folder becomes this one's). `absent_listings`: how
    // many listings in a row left the folder out (a folder counts as deleted on a server that does not
    // say NONEXISTENT only after two). `mirror_modseq`, `mirror_uidnext`: the folder's STATUS when it
    // was last looked through for gone mail (a pass's own reading may be later, so it cannot say).
    // Partial indexes keep the look-ups of gone rows free when there
    // are none. Counts per pass for the page and the report.
    "ALTER TABLE account ADD COLUMN switched_at INTEGER;
     ALTER TABLE account ADD COLUMN switched_by TEXT;
     ALTER TABLE message ADD COLUMN origin TEXT;
     ALTER TABLE message ADD COLUMN gone_at INTEGER;
     ALTER TABLE message ADD COLUMN mirror TEXT;
     ALTER TABLE message ADD COLUMN moved_from INTEGER;
     CREATE INDEX message_gone ON message (size, sha256) WHERE gone_at IS NOT NULL;
     CREATE INDEX message_gone_rows ON message (folder_id, push_state) WHERE gone_at IS NOT NULL;
     CREATE INDEX message_moved_from ON message (moved_from) WHERE moved_from IS NOT NULL;
     ALTER TABLE source_folder ADD COLUMN renaming_from INTEGER;
     ALTER TABLE source_folder ADD COLUMN absent_listings INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE source_folder ADD COLUMN mirror_modseq INTEGER;
     ALTER TABLE source_folder ADD COLUMN mirror_uidnext INTEGER;
     ALTER TABLE pass ADD COLUMN moved INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE pass ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;",
    // 8: what the operator decides (issue 18). `exclude_folders`: the spreadsheet's per-account
    // folder exclusions (glob patterns, one per line), besides the setting for every account.
    // `left_out`: 1 when the operator's message filter (older/newer than, larger than) left the
    // message out; such a row is 'refused' with a skip that says so, and goes back to 'pending' when
    // a changed filter takes it in. `filter_applied`: the filter the account's rows were last weighed
    // against, so a pass re-weighs them only after a change.
    "ALTER TABLE account ADD COLUMN exclude_folders TEXT NOT NULL DEFAULT '';
     ALTER TABLE account ADD COLUMN filter_applied TEXT;
     ALTER TABLE message ADD COLUMN left_out INTEGER;
     CREATE INDEX message_left_out ON message (folder_id) WHERE left_out IS NOT NULL;",
    // 9: calendars and contacts (issue 19; docs/dav.md §2 is the contract, `dav` its queries). The
    // account's own DAV logins per side (NULL: the mail login and password), the passwords sealed
    // like the mail ones; `dav_checked` the DAV part of the check. `dav_collection`: each calendar or
    // address book of the source and where it went; `dav_item`: each event, task or card, its staged
    // body and its PUT journal (`push_state`), the mirror marks as for mail. Counts per pass, and a
    // skip may name an item.
    "ALTER TABLE account ADD COLUMN source_dav_login TEXT;
     ALTER TABLE account ADD COLUMN source_dav_password BLOB;   -- sealed
     ALTER TABLE account ADD COLUMN target_dav_login TEXT;
     ALTER TABLE account ADD COLUMN target_dav_password BLOB;   -- sealed
     ALTER TABLE account ADD COLUMN dav_checked TEXT;           -- JSON of the DAV part of the check
     CREATE TABLE dav_collection (
         id            INTEGER PRIMARY KEY,
         account_id    INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
         kind          TEXT NOT NULL CHECK (kind IN ('calendar', 'addressbook')),
         components    TEXT NOT NULL DEFAULT '',   -- 'VEVENT,VTODO' as the source says
         source_href   TEXT NOT NULL,              -- path, percent-encoded as the server wrote it, normalised (§5)
         target_href   TEXT,                       -- NULL until made or adopted
         displayname   TEXT NOT NULL DEFAULT '',
         colour        TEXT,
         description   TEXT,
         sync_token    TEXT,                       -- RFC 6578 token, else NULL
         ctag          TEXT,                       -- getctag: unchanged means nothing to list
         state         TEXT NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'creating', 'present', 'skipped', 'gone', 'deleting')),
         skip_reason   TEXT,                       -- 'shared_by_other_owner', 'subscription', ...
         origin        TEXT,                       -- 'created' by us, or 'found' (never deleted by mirroring)
         absent_listings INTEGER NOT NULL DEFAULT 0,
         UNIQUE (account_id, source_href)
     ) STRICT;
     CREATE TABLE dav_item (
         id            INTEGER PRIMARY KEY,
         collection_id INTEGER NOT NULL REFERENCES dav_collection(id) ON DELETE CASCADE,
         uid           TEXT,                       -- UID of the VEVENT/VTODO/VCARD; NULL until the body is read
         source_href   TEXT NOT NULL,
         source_etag   TEXT,
         target_href   TEXT,                       -- chosen by us before the PUT (see §3)
         target_etag   TEXT,                       -- NULL when the server gave none (it rewrote the item)
         size          INTEGER NOT NULL DEFAULT 0,
         sha256        BLOB,                       -- of the bytes as fetched
         content_hash  BLOB,                       -- of the normalised content (§5, rewrite quirk)
         body          BLOB,                       -- staged bytes, NULL once the target confirmed
         push_state    TEXT NOT NULL DEFAULT 'pending'
                       CHECK (push_state IN ('pending', 'putting', 'pushed', 'replacing', 'refused')),
         origin        TEXT,                       -- 'put' by us, or 'found' on the target (never touched)
         gone_at       INTEGER,                    -- the source no longer has it (mirroring, short-lived)
         mirror        TEXT CHECK (mirror IN ('deleting')),
         changed_at    INTEGER,                    -- the source changed it after it was pushed
         missed_passes INTEGER NOT NULL DEFAULT 0,  -- passes the source did not send the item when asked
         UNIQUE (collection_id, source_href)
     ) STRICT;
     CREATE INDEX dav_item_push ON dav_item (collection_id, push_state);
     CREATE INDEX dav_item_uid ON dav_item (collection_id, uid);
     CREATE INDEX dav_item_target ON dav_item (collection_id, target_href);
     CREATE INDEX dav_item_gone ON dav_item (collection_id) WHERE gone_at IS NOT NULL OR mirror IS NOT NULL;
     ALTER TABLE pass ADD COLUMN dav_put INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE pass ADD COLUMN dav_replaced INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE pass ADD COLUMN dav_removed INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE skip ADD COLUMN dav_item_id INTEGER REFERENCES dav_item(id) ON DELETE SET NULL;
     -- 1 for an entry about calendars and contacts (an item's, or a collection's), so the mail's list
     -- and the calendar section each show their own, also after the item's row is gone.
     ALTER TABLE skip ADD COLUMN calendar INTEGER NOT NULL DEFAULT 0;",
    // 10: the look-up of a staged copy by size and SHA-256 goes by (folder, size) alone: few rows
    // share a size, and an index holding the hash had an entry rewritten, at a random place, each
    // time a message was staged (a page of the write-ahead log per message, measured in make bench).
    "DROP INDEX message_hash;
     CREATE INDEX message_size ON message (folder_id, size);",
];

/// Runs SQL through the connection's cache of prepared statements, so a statement that runs per
/// message is parsed and planned once, not each time (`Connection::execute` and `query_row` prepare
/// anew on every call: 6 % of the full migration's CPU in make bench went to SQLite's parser).
pub(crate) trait Cached {
    /// `Connection::execute`, cached.
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// `Connection::query_row`, cached.
    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Prepared statements a connection keeps (`Cached`). A pass runs some sixty different statements in
/// its loops; with rusqlite's default of 16 they pushed each other out and were parsed again and again.
const STATEMENT_CACHE: usize = 96;

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;

/// Slice size for staged bodies: the pull hands a body to the spool in pieces of at most this, so
/// memory stays flat whatever the message size; each is one write to the spool file (16 KiB when
/// bodies lived in SQLite; 64 KiB saved no CPU measurably and cost memory, see `BODY_BATCH_BYTES`).
pub const CHUNK_SIZE: usize = 32 * 1024;

pub struct Store {
    conn: Connection,
    key: SecretKey,
    spool: spool::Spool,
    /// Commits not yet known to be on the disk (`write_unsynced`) and the spool segments they emptied.
    unsynced: std::cell::RefCell<Unsynced>,
}

/// What `write_unsynced` committed since the last commit that waited for the disk. A segment its
/// commits emptied is removed only once they are on the disk: removed before, a power cut could leave
/// a row `appending` whose bytes are gone with nothing recorded, and a target looked up by identity
/// (Exchange) might not find the copy of a row that has none.
#[derive(Default)]
struct Unsynced {
    any: bool,
    emptied: std::collections::BTreeSet<i64>,
}

/// Restores `synchronous = FULL` when `write_unsynced` is left by a panic.
struct BackToFull<'c>(Option<&'c Connection>);

impl Drop for BackToFull<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0
            && let Err(e) = conn.execute_batch("PRAGMA synchronous = FULL")
        {
            log::error!("cannot set the database back to waiting for the disk: {e}");
        }
    }
}

/// Where a staged message stands in the APPEND journal (`message.push_state`): `Pending` until the
/// push marks it `Appending` in a committed transaction before the APPEND goes out, `Pushed` once the
/// target's UID (or the copy found there) is recorded, `Refused` when the target refused it or the
/// source cannot give it (the skip ledger says why). A resumed pass finds an `Appending` row and looks
/// on the target before it appends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    Pending,
    Appending,
    Pushed,
    Refused,
}

impl PushState {
    /// The text the database holds (schema.sql's CHECK lists the same four).
    pub fn as_str(self) -> &'static str {
        match self {
            PushState::Pending => "pending",
            PushState::Appending => "appending",
            PushState::Pushed => "pushed",
            PushState::Refused => "refused",
        }
    }
}

impl rusqlite::ToSql for PushState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for PushState {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<PushState> {
        match value.as_str()? {
            "pending" => Ok(PushState::Pending),
            "appending" => Ok(PushState::Appending),
            "pushed" => Ok(PushState::Pushed),
            "refused" => Ok(PushState::Refused),
            other => Err(rusqlite::types::FromSqlError::Other(format!("unknown push state {other:?}").into())),
        }
    }
}

/// One open write transaction, handed to the closure of `Store::write`. Its connection is private to
/// the store's modules, which give it the methods that write (and read inside the same snapshot); the
/// caller composes them and cannot run SQL of its own.
pub struct Tx<'a> {
    conn: &'a Connection,
    spool: &'a spool::Spool,
    /// Spool segments this transaction released bytes in or closed, removed once it commits if empty.
    emptied: spool::EmptiedSegments,
}

impl Tx<'_> {
    /// The connection inside the transaction, for the store's own modules.
    fn conn(&self) -> &Connection {
        self.conn
    }

    /// Commits. BEGIN, COMMIT and ROLLBACK go through the statement cache: a pass commits thousands
    /// of short transactions, and `rusqlite::Transaction` parses each of its three anew every time.
    fn commit(self) -> rusqlite::Result<()> {
        self.conn.run("COMMIT", [])?;
        Ok(())
    }
}

impl Drop for Tx<'_> {
    /// Rolls back a transaction that was not committed (its closure failed or panicked, or COMMIT
    /// failed). One SQLite already ended (it rolls back by itself on some errors) is left alone.
    fn drop(&mut self) {
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.run("ROLLBACK", [])
        {
            log::error!("a failed write could not be rolled back: {e}");
        }
    }
}

impl Store {
    /// A short transaction that writes: it takes the write lock at BEGIN (IMMEDIATE). A deferred one
    /// that reads first and then writes would fail at once with "database is locked" when another
    /// connection writes meanwhile, because SQLite runs the busy handler only for a connection that
    /// holds no read snapshot yet. None of these stays open across an await.
    fn write_transaction(&self) -> rusqlite::Result<Tx<'_>> {
        self.conn.run("BEGIN IMMEDIATE", [])?;
        Ok(Tx { conn: &self.conn, spool: &self.spool, emptied: Default::default() })
    }

    /// Runs `work` in one short write transaction (IMMEDIATE, see `write_transaction`): commits when it
    /// returns `Ok`, rolls back when it returns an error or panics. The closure is synchronous, so no
    /// transaction can stay open across an `.await`: network code gathers a bounded batch first, then
    /// makes one call here. Commit and rollback live only here.
    pub fn write<T>(&self, work: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.write_waiting(work, true)
    }

    /// `write`; `synced` says whether the connection waits for the disk at this commit (FULL), which
    /// makes every commit before it durable too, in order.
    fn write_waiting<T>(&self, work: impl FnOnce(&Tx<'_>) -> Result<T>, synced: bool) -> Result<T> {
        let changes_before = self.conn.total_changes();
        let tx = self.write_transaction()?;
        let value = work(&tx)?;
        let mut emptied = tx.emptied.take();
        tx.commit()?;
        {
            let mut unsynced = self.unsynced.borrow_mut();
            if !synced {
                unsynced.any = true;
                unsynced.emptied.append(&mut emptied);
            } else if self.conn.total_changes() > changes_before || !unsynced.any {
                // A commit that wrote something waited for the disk: so did everything before it.
                unsynced.any = false;
                emptied.append(&mut unsynced.emptied);
            }
        }
        if !emptied.is_empty() {
            crate::fault::point("spool: bytes released, segment not yet removed");
            self.spool.remove_emptied(&self.conn, emptied);
        }
        Ok(value)
    }

    /// `write` for what staging records from the source (listings, body batches): committed without
    /// waiting for the disk (`synchronous=NORMAL` for this commit). A power cut may lose the last few
    /// of these, which costs a re-fetch and nothing else: every journal entry before a side effect on
    /// the target is a `write` (FULL), and its sync makes everything committed before it durable too,
    /// in order. Measured in make bench: one fsync per 64 KiB body batch cost a third of the full
    /// migration's time.
    pub fn write_unsynced<T>(&self, work: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        // Prepared once per connection (a batch of bodies comes every 128 KiB).
        self.conn.prepare_cached("PRAGMA synchronous = NORMAL")?.execute([])?;
        // The accounts of a pass share this connection and a panicking one is caught while the
        // others go on: even then the next journal entry must wait for the disk.
        let mut back_to_full = BackToFull(Some(&self.conn));
        let value = self.write_waiting(work, false);
        back_to_full.0 = None;
        // Back to FULL whatever became of the write, so the next journal entry waits for the disk.
        self.conn.prepare_cached("PRAGMA synchronous = FULL")?.execute([])?;
        value
    }

    /// Puts on the disk what this store committed without waiting for it: a sync of our own descriptor
    /// of the write-ahead log syncs the pages SQLite wrote there through its own.
    fn sync_unsynced(&self) -> Result<()> {
        let Some(path) = self.conn.path().filter(|p| !p.is_empty()) else { return Ok(()) };
        match fs::File::open(format!("{path}-wal")) {
            Ok(log) => Ok(log.sync_data()?),
            // No log: a checkpoint moved everything into the database, and synced it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `dir` holds a migration (its database), without opening or creating anything.
    pub fn holds_migration(dir: &Path) -> bool {
        dir.join("postflytt.sqlite").is_file()
    }

    /// Opens the migration in `dir` without making one: for the verbs that read or continue a
    /// migration (status, report, sync...), so a missing or mistyped `--data` is said, not turned into
    /// a new empty data directory.
    pub fn open_existing(dir: &Path) -> Result<Store> {
        if !dir.is_dir() {
            bail!("no data directory at {}; give --data DIR (the one postflytt setup and import used)", dir.display());
        }
        if !Store::holds_migration(dir) {
            bail!("no migration in {}: run postflytt setup and import there first, or give --data DIR", dir.display());
        }
        Store::open(dir)
    }

    /// Opens (or creates) the data directory, its key file and database.
    pub fn open(dir: &Path) -> Result<Store> {
        if !dir.exists() {
            fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {} (choose another with --data)", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        let key = SecretKey::load_or_create(&dir.join("key"))?;
        let path = dir.join("postflytt.sqlite");
        let conn = Connection::open(&path).with_context(|| format!("cannot open the database {}", path.display()))?;
        // Another connection's write lock is always a short transaction (see `workers`): wait for it.
        conn.busy_timeout(crate::workers::BUSY_LIMIT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // FULL, not NORMAL: a committed 'appending' mark must survive a power cut, or a resumed
        // pass could APPEND a message twice. Staging's own batches opt out (`write_unsynced`).
        // The write-ahead log counts against the staging limit: with bodies in the spool it holds only
        // rows, so it is checkpointed at 1 MiB (256 pages, not SQLite's 1,000) and cut back to 1 MiB
        // whenever a checkpoint empties it (journal_size_limit), so one burst does not leave a log the
        // size of the burst on the disk staging is bounded by. Measured in migrate's staging-limit test:
        // the log was 4.1 of the data directory's 35.3 MB peak with 4 MiB.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-512;
             PRAGMA wal_autocheckpoint=256; PRAGMA journal_size_limit=1048576;",
        )
        .context("cannot configure the database")?;
        let spool = spool::Spool::open(dir)?;
        let store = Store { conn, key, spool, unsynced: Default::default() };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let version: i64 = self.conn.row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            self.conn
                .execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;"))
                .context("cannot create the database schema")?;
        } else if version > SCHEMA_VERSION {
            bail!(
                "the database is schema version {version}, newer than this postflytt understands ({SCHEMA_VERSION}); \
                 run the newer postflytt that wrote it"
            );
        }
        let mut version: i64 = self.conn.row("PRAGMA user_version", [], |r| r.get(0))?;
        while version < SCHEMA_VERSION {
            let step = MIGRATIONS[(version - 1) as usize];
            self.conn
                .execute_batch(&format!("BEGIN; {step} PRAGMA user_version = {}; COMMIT;", version + 1))
                .with_context(|| format!("database migration {} -> {} failed", version, version + 1))?;
            version += 1;
        }
        Ok(())
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.row("SELECT value FROM setting WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    pub fn remove_setting(&self, key: &str) -> Result<()> {
        self.conn.run("DELETE FROM setting WHERE key = ?1", [key])?;
        Ok(())
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn.run(
            "INSERT INTO setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn set_endpoint(&self, side: &str, endpoint: &Endpoint) -> Result<()> {
        self.set_setting(&format!("{side}.host"), &endpoint.host)?;
        self.set_setting(&format!("{side}.port"), &endpoint.port.to_string())?;
        self.set_setting(&format!("{side}.tls"), endpoint.tls.as_str())?;
        match &endpoint.pin_sha256 {
            Some(pin) => self.set_setting(&format!("{side}.pin"), pin)?,
            None => {
                self.conn.run("DELETE FROM setting WHERE key = ?1", [format!("{side}.pin")])?;
            }
        }
        Ok(())
    }

    /// The configured server for "source" or "target", or an error saying how to configure it.
    pub fn endpoint(&self, side: &str) -> Result<Endpoint> {
        let host = self
            .setting(&format!("{side}.host"))?
            .ok_or_else(|| anyhow!("no {side} server is configured yet: run `postflytt setup --{side} HOST:PORT`"))?;
        let port = self
            .setting(&format!("{side}.port"))?
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("the {side} port setting is damaged: run `postflytt setup` again"))?;
        let tls = TlsMode::parse(&self.setting(&format!("{side}.tls"))?.unwrap_or_else(|| "implicit".into()))?;
        let pin_sha256 = self.setting(&format!("{side}.pin"))?;
        Ok(Endpoint { host, port, tls, pin_sha256 })
    }

    pub fn target_kind(&self) -> Result<ServerKind> {
        self.kind("target")
    }

    fn kind(&self, side: &str) -> Result<ServerKind> {
        Ok(self.setting(&format!("{side}.kind"))?.as_deref().and_then(ServerKind::parse).unwrap_or(ServerKind::Imap))
    }

    /// Sets a side's kind. A Microsoft 365 side with no server yet gets Exchange Online's, which is
    /// returned so the caller can say so.
    pub fn set_kind(&self, side: &str, kind: ServerKind) -> Result<Option<Endpoint>> {
        self.set_setting(&format!("{side}.kind"), kind.as_str())?;
        if kind == ServerKind::Microsoft365 && self.endpoint(side).is_err() {
            let endpoint = Endpoint { host: "outlook.office365.com".into(), port: 993, tls: TlsMode::Implicit, pin_sha256: None };
            self.set_endpoint(side, &endpoint)?;
            return Ok(Some(endpoint));
        }
        Ok(None)
    }

    /// Stores a secret setting sealed with the key file (the setting's name is the associated data).
    pub fn set_secret_setting(&self, key: &str, value: &Secret) -> Result<()> {
        let sealed = self.seal(value, key)?;
        self.set_setting(&format!("secret.{key}"), &crate::imap::hex(&sealed))
    }

    /// Whether a sealed setting is stored, without opening it (for a status that only says so).
    pub fn has_secret_setting(&self, key: &str) -> Result<bool> {
        Ok(self.setting(&format!("secret.{key}"))?.is_some())
    }

    pub fn secret_setting(&self, key: &str) -> Result<Option<Secret>> {
        let Some(hex) = self.setting(&format!("secret.{key}"))? else { return Ok(None) };
        let bytes: Option<Vec<u8>> =
            (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
        let bytes = bytes.ok_or_else(|| anyhow!("the stored {key} is damaged; set it again"))?;
        Ok(Some(self.key.open(&bytes, key.as_bytes())?))
    }

    /// How the source logs in: `Imap` with each account's password, `Microsoft365` with an app token
    /// (moving from one Microsoft 365 tenant to another host).
    pub fn source_kind(&self) -> Result<ServerKind> {
        self.kind("source")
    }

    /// The setting-name prefix and the `setup` flag prefix of a side's Microsoft 365 app. The target's
    /// settings keep the names they had before a source could be Microsoft 365 too.
    pub fn m365_prefixes(side: &str) -> (&'static str, &'static str) {
        if side == "source" { ("source.m365.", "--source-m365-") } else { ("m365.", "--m365-") }
    }

    /// The Microsoft 365 app registration a side (`source` or `target`) logs in with.
    pub fn m365_app(&self, side: &str) -> Result<crate::oauth::App> {
        let (key, flag) = Self::m365_prefixes(side);
        let tenant = self
            .setting(&format!("{key}tenant"))?
            .ok_or_else(|| anyhow!("no Microsoft 365 tenant id is set for the {side}: postflytt setup {flag}tenant ID"))?;
        let client_id = self
            .setting(&format!("{key}client_id"))?
            .ok_or_else(|| anyhow!("no Microsoft 365 client id is set for the {side}: postflytt setup {flag}client-id ID"))?;
        let client_secret = self.secret_setting(&format!("{key}client_secret"))?.ok_or_else(|| {
            anyhow!("no Microsoft 365 client secret is stored for the {side} (purged, or never set: postflytt setup {flag}client-secret-file FILE)")
        })?;
        let token_url = self
            .setting(&format!("{key}token_url"))?
            .unwrap_or_else(|| crate::oauth::DEFAULT_TOKEN_URL.to_string())
            .replace("{tenant}", &tenant);
        Ok(crate::oauth::App { tenant, client_id, client_secret, token_url })
    }

    fn seal(&self, password: &Secret, aad: &str) -> Result<Vec<u8>> {
        self.key.seal(password.expose(), aad.as_bytes())
    }

    /// The end of a migration: passwords and staged mail are deleted and the file is rewritten, so
    /// nothing of them is left in the database, its WAL or free pages. Counts, skips and the report's
    /// data stay.
    pub fn purge(&self) -> Result<()> {
        self.conn.execute_batch(
            "PRAGMA secure_delete = ON;
             BEGIN;
             UPDATE account SET source_password = NULL, target_password = NULL, source_dav_password = NULL, target_dav_password = NULL;
             UPDATE message SET spool_bytes = 0 WHERE spool_bytes != 0;
             UPDATE dav_item SET body = NULL WHERE body IS NOT NULL;
             DELETE FROM setting WHERE key LIKE 'secret.%';
             COMMIT;
             VACUUM;",
        )?;
        self.conn.row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.spool.purge()
    }

    /// Writes one entry of the skip ledger in a transaction of its own (`Tx::record_skip` inside one).
    pub fn record_skip(
        &self,
        account_id: i64,
        message_id: Option<i64>,
        folder: &str,
        reason: &str,
        server_says: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| tx.record_skip(account_id, message_id, folder, reason, server_says))
    }
}

impl Tx<'_> {
    /// One entry of the skip ledger: what was left out, where, why, and the server's words. Written in
    /// the same transaction as the state it explains, so a refused message always has its reason.
    pub fn record_skip(
        &self,
        account_id: i64,
        message_id: Option<i64>,
        folder: &str,
        reason: &str,
        server_says: Option<&str>,
    ) -> Result<()> {
        self.conn().run(
            "INSERT INTO skip (account_id, message_id, folder, reason, server_says, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![account_id, message_id, folder, reason, server_says, now()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("postflytt-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn fresh_database_and_accounts() {
        let dir = temp_dir("fresh");
        let store = Store::open(&dir).unwrap();
        let v: i64 = store.conn.row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert!(store.upsert_account("a@x.se", &Secret::new("pw1"), "a@y.se", None, &["b@x.se".into()]).unwrap());
        assert!(!store.upsert_account("a@x.se", &Secret::new("pw2"), "a@y.se", None, &[]).unwrap());
        let accounts = store.accounts(&[]).unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].source_password.as_ref().unwrap().expose(), "pw2");
        // The password is not stored in the clear.
        let raw: Vec<u8> = store.conn.row("SELECT source_password FROM account", [], |r| r.get(0)).unwrap();
        assert!(!raw.windows(3).any(|w| w == b"pw2"));
        assert!(store.accounts(&["nobody".into()]).is_err());
        drop(store);
        // Reopening keeps everything.
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.accounts(&[]).unwrap().len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn progress_and_skips_for_the_status() {
        let dir = temp_dir("progress");
        let store = Store::open(&dir).unwrap();
        store.upsert_account("b@x.se", &Secret::new("pw"), "b@y.se", None, &[]).unwrap();
        store.upsert_account("a@x.se", &Secret::new("pw"), "a@y.se", None, &[]).unwrap();
        let progress = store.account_progress().unwrap();
        let logins: Vec<&str> = progress.iter().map(|p| p.source_login.as_str()).collect();
        assert_eq!(logins, ["a@x.se", "b@x.se"]);
        assert_eq!((progress[0].messages, progress[0].pushed, progress[0].bytes, progress[0].throttled_last_pass), (0, 0, 0, 0));
        assert_eq!(progress[0].last_error, None);
        let b = store.accounts(&["b@x.se".into()]).unwrap()[0].id;
        store.record_skip(b, None, "INBOX", "too large", Some("NO [LIMIT]")).unwrap();
        store.record_skip(b, None, "Sent", "unreadable", None).unwrap();
        let described: Vec<(String, String, String, Option<String>)> =
            store.all_skips().unwrap().into_iter().map(|s| (s.source_login, s.folder, s.reason, s.server_says)).collect();
        assert_eq!(
            described,
            [
                ("b@x.se".into(), "INBOX".into(), "too large".into(), Some("NO [LIMIT]".into())),
                ("b@x.se".into(), "Sent".into(), "unreadable".into(), None),
            ]
        );
        let recent: Vec<String> = store.recent_skips(b, 1).unwrap().into_iter().map(|s| s.folder).collect();
        assert_eq!(recent, ["Sent"], "newest first, at most the limit");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn migrates_a_version_1_database() {
        let dir = temp_dir("v1");
        fs::create_dir_all(&dir).unwrap();
        {
            // A database exactly as version 1 made it, with an account in it.
            let conn = Connection::open(dir.join("postflytt.sqlite")).unwrap();
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;")).unwrap();
            conn.run("INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se')", []).unwrap();
            // Bodies staged in the database (before version 5): one still to be appended, one journalled.
            conn.run("INSERT INTO source_folder (account_id, name, wire_name) VALUES (1, 'INBOX', 'INBOX')", []).unwrap();
            for (uid, state) in [(1, "pending"), (2, "appending")] {
                conn.run(
                    "INSERT INTO message (folder_id, uidvalidity, uid, size, sha256, push_state) VALUES (1, 1, ?1, 3, x'0102', ?2)",
                    params![uid, state],
                )
                .unwrap();
                conn.run("INSERT INTO body_chunk VALUES (?1, 0, x'414243')", [uid]).unwrap();
            }
        }
        let store = Store::open(&dir).unwrap();
        let v: i64 = store.conn.row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = store.conn.row("SELECT count(*) FROM account", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        store.conn.run("INSERT INTO check_result VALUES (1, 0, 'ready', '{}')", []).unwrap();
        // Version 5: the pending row is fetched again, the journalled one keeps its hash for the look-up.
        let hashes: Vec<Option<Vec<u8>>> = store
            .conn
            .prepare_cached("SELECT sha256 FROM message ORDER BY uid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|h| h.unwrap())
            .collect();
        assert_eq!(hashes, [None, Some(vec![1, 2])]);
        assert!(store.conn.row("SELECT count(*) FROM body_chunk", [], |r| r.get::<_, i64>(0)).is_err(), "body_chunk is gone");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = temp_dir("newer");
        let store = Store::open(&dir).unwrap();
        store.conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(store);
        let err = Store::open(&dir).err().unwrap().to_string();
        assert!(err.contains("newer"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
