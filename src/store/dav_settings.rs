//! The DAV servers as settings (issue 19): each side's calendar and contact server is the address the
//! operator gave (`source_dav.url`, `target_dav.url`) and its certificate pin (`source_dav.pin`), kept
//! as text. The address is checked by `dav::url::DavUrl::parse` in `setup` before it is stored, and
//! parsed again where it is used; the store does not know the DAV module (no cycle between them). No
//! row for a side means no DAV work on it: the mail migration is exactly as without DAV.

use anyhow::{Result, bail};

use super::Store;

/// One side's DAV server as stored: the address as the operator wrote it (trimmed) and the SHA-256 pin
/// of its certificate, lowercase hex, when the operator trusts one by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavSetting {
    pub url: String,
    pub pin_sha256: Option<String>,
}

/// The setting-name prefix of a side's DAV server; anything but the two sides is a bug of ours.
fn prefix(side: &str) -> Result<&'static str> {
    match side {
        "source" => Ok("source_dav"),
        "target" => Ok("target_dav"),
        other => bail!("no DAV side {other:?} (source or target)"),
    }
}

impl Store {
    /// The side's ("source" or "target") DAV server, None when none is set up.
    pub fn dav_server(&self, side: &str) -> Result<Option<DavSetting>> {
        let prefix = prefix(side)?;
        let Some(url) = self.setting(&format!("{prefix}.url"))? else { return Ok(None) };
        Ok(Some(DavSetting { url, pin_sha256: self.setting(&format!("{prefix}.pin"))? }))
    }

    /// Sets the side's DAV server, or removes it (and its pin) with None. A setting without a pin
    /// removes a stored one: the pin belongs to the server it was given for.
    pub fn set_dav_server(&self, side: &str, server: Option<&DavSetting>) -> Result<()> {
        let prefix = prefix(side)?;
        let (url_key, pin_key) = (format!("{prefix}.url"), format!("{prefix}.pin"));
        match server {
            Some(server) => {
                self.set_setting(&url_key, server.url.trim())?;
                match &server.pin_sha256 {
                    Some(pin) => self.set_setting(&pin_key, pin)?,
                    None => self.remove_setting(&pin_key)?,
                }
            }
            None => {
                self.remove_setting(&url_key)?;
                self.remove_setting(&pin_key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("postflytt-dav-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_side_is_set_read_back_and_removed_with_its_pin() {
        let dir = temp_dir("sides");
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.dav_server("source").unwrap(), None);
        let pinned = DavSetting { url: " https://dav.gammal.se/ ".into(), pin_sha256: Some("ab".repeat(32)) };
        store.set_dav_server("source", Some(&pinned)).unwrap();
        let read = store.dav_server("source").unwrap().unwrap();
        assert_eq!((read.url.as_str(), read.pin_sha256), ("https://dav.gammal.se/", Some("ab".repeat(32))));
        assert_eq!(store.dav_server("target").unwrap(), None, "the other side is its own");
        store.set_dav_server("source", Some(&DavSetting { url: "dav.ny.se".into(), pin_sha256: None })).unwrap();
        assert_eq!(store.dav_server("source").unwrap().unwrap().pin_sha256, None, "another server starts without the pin");
        store.set_dav_server("source", None).unwrap();
        assert_eq!(store.dav_server("source").unwrap(), None);
        assert!(store.dav_server("sideways").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn migrates_a_version_8_database() {
        let dir = temp_dir("v8");
        std::fs::create_dir_all(&dir).unwrap();
        {
            // A database as version 8 left it, with an account, a pass and a skip in it.
            let conn = Connection::open(dir.join("postflytt.sqlite")).unwrap();
            conn.execute_batch(&format!("BEGIN; {} PRAGMA user_version = 1; COMMIT;", super::super::SCHEMA)).unwrap();
            for (version, step) in super::super::MIGRATIONS.iter().enumerate().take(7) {
                conn.execute_batch(&format!("BEGIN; {step} PRAGMA user_version = {}; COMMIT;", version + 2)).unwrap();
            }
            assert_eq!(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), 8);
            conn.execute("INSERT INTO account (source_login, target_login) VALUES ('a@x.se', 'a@y.se')", []).unwrap();
            conn.execute("INSERT INTO skip (account_id, folder, reason, at) VALUES (1, 'INBOX', 'too large', 1)", []).unwrap();
        }
        let store = Store::open(&dir).unwrap();
        let conn = &store.conn;
        assert_eq!(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), super::super::SCHEMA_VERSION);
        // The account is there with no DAV logins (the mail ones are used).
        let logins: (Option<String>, Option<Vec<u8>>) =
            conn.query_row("SELECT source_dav_login, target_dav_password FROM account", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(logins, (None, None));
        // The new tables take a collection and an item, and keep their CHECKs.
        conn.execute("INSERT INTO dav_collection (account_id, kind, source_href) VALUES (1, 'calendar', '/cal/a/')", []).unwrap();
        conn.execute("INSERT INTO dav_item (collection_id, source_href) VALUES (1, '/cal/a/1.ics')", []).unwrap();
        assert!(conn.execute("INSERT INTO dav_collection (account_id, kind, source_href) VALUES (1, 'journal', '/j/')", []).is_err());
        assert!(conn.execute("UPDATE dav_item SET push_state = 'appending'", []).is_err());
        // The old skip stays, and a new one may name the item; its deletion leaves the skip.
        conn.execute("UPDATE skip SET dav_item_id = 1", []).unwrap();
        conn.execute("DELETE FROM dav_item", []).unwrap();
        let kept: (i64, Option<i64>) =
            conn.query_row("SELECT count(*), max(dav_item_id) FROM skip", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(kept, (1, None));
        let pass_counts: i64 =
            conn.query_row("SELECT count(*) FROM pragma_table_info('pass') WHERE name LIKE 'dav_%'", [], |r| r.get(0)).unwrap();
        assert_eq!(pass_counts, 3);
        // A removed account takes its collections with it.
        conn.execute("DELETE FROM account", []).unwrap();
        assert_eq!(conn.query_row("SELECT count(*) FROM dav_collection", [], |r| r.get::<_, i64>(0)).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
