-- postflytt staging database, schema version 1. Later changes are numbered migrations in store.rs.

-- Configuration: source and target servers, options. Values are text; secrets never live here.
CREATE TABLE setting (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One row per mailbox to move. Passwords are sealed with the key file (XChaCha20-Poly1305, the
-- account's source login as associated data) and set to NULL by the purge.
CREATE TABLE account (
    id               INTEGER PRIMARY KEY,
    source_login     TEXT NOT NULL UNIQUE,
    source_password  BLOB,
    target_login     TEXT NOT NULL,
    target_password  BLOB,
    aliases          TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL DEFAULT 'new',
    last_error       TEXT,
    last_pass_at     INTEGER,
    last_new_mail_at INTEGER
) STRICT;

-- Every folder the source listed, with what the last pass saw of it.
CREATE TABLE source_folder (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,            -- decoded UTF-8 name
    wire_name      TEXT NOT NULL,            -- exactly as the server lists it
    delimiter      TEXT,
    attributes     TEXT NOT NULL DEFAULT '',
    selectable     INTEGER NOT NULL DEFAULT 1,
    subscribed     INTEGER NOT NULL DEFAULT 0,
    present        INTEGER NOT NULL DEFAULT 1,  -- 0 once the source no longer lists it
    uidvalidity    INTEGER,
    uidnext        INTEGER,
    highest_modseq INTEGER,
    last_uid       INTEGER NOT NULL DEFAULT 0,  -- highest UID whose metadata is staged
    target_name    TEXT,                     -- mapped target name (UTF-8)
    map_reason     TEXT,
    map_note       TEXT,
    UNIQUE (account_id, wire_name)
) STRICT;

-- Target folders we created or found, with the UIDVALIDITY our recorded target UIDs belong to.
CREATE TABLE target_folder (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    wire_name   TEXT NOT NULL,
    uidvalidity INTEGER,
    -- Highest target UID that existed before our first push and has been compared with staged mail.
    indexed_uidnext INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, wire_name)
) STRICT;

-- One row per source message (folder, UIDVALIDITY, UID). push_state is the journal of the APPEND:
-- 'pending' -> 'appending' (committed before a byte is sent) -> 'pushed' (target UID known)
-- or 'refused' (the target said no for this message; see skip).
CREATE TABLE message (
    id                 INTEGER PRIMARY KEY,
    folder_id          INTEGER NOT NULL REFERENCES source_folder(id) ON DELETE CASCADE,
    uidvalidity        INTEGER NOT NULL,
    uid                INTEGER NOT NULL,
    size               INTEGER NOT NULL,
    internal_date      TEXT,
    flags              TEXT NOT NULL DEFAULT '',   -- source flags now, space separated, sorted
    modseq             INTEGER,
    sha256             BLOB,                       -- of the staged bytes, set when fully staged
    staged_bytes       INTEGER NOT NULL DEFAULT 0,
    push_state         TEXT NOT NULL DEFAULT 'pending'
                       CHECK (push_state IN ('pending', 'appending', 'pushed', 'refused')),
    target_folder_id   INTEGER REFERENCES target_folder(id),
    target_uidvalidity INTEGER,
    target_uid         INTEGER,
    synced_flags       TEXT,                       -- flags as last written to the target
    attempts           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (folder_id, uidvalidity, uid)
) STRICT;
CREATE INDEX message_push ON message (folder_id, push_state);
CREATE INDEX message_hash ON message (folder_id, size, sha256);

-- Staged bytes in slices, so no message is ever held whole in memory.
CREATE TABLE body_chunk (
    message_id INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (message_id, seq)
) STRICT, WITHOUT ROWID;

-- What was not copied, and why, in the server's own words.
CREATE TABLE skip (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    message_id  INTEGER REFERENCES message(id) ON DELETE SET NULL,
    folder      TEXT,
    reason      TEXT NOT NULL,
    server_says TEXT,
    at          INTEGER NOT NULL
) STRICT;

-- One row per account per pass, for the summary, the page and the report.
CREATE TABLE pass (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    staged        INTEGER NOT NULL DEFAULT 0,
    staged_bytes  INTEGER NOT NULL DEFAULT 0,
    appended      INTEGER NOT NULL DEFAULT 0,
    matched       INTEGER NOT NULL DEFAULT 0,
    flag_updates  INTEGER NOT NULL DEFAULT 0,
    refused       INTEGER NOT NULL DEFAULT 0,
    error         TEXT
) STRICT;
