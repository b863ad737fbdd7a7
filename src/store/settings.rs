//! The operator's choices for the migration as one typed value: how often passes run and how many
//! accounts at once, the MX watch, the quiet period before finishing, and the package limits the
//! customer bought. Each is a row of the `setting` table; they are read together (a missing or
//! damaged row reads as its default) and changed together in one short write transaction. What the
//! appliance records as it runs (pass counts and times, MX state, when it finished) is not here.

use anyhow::{Result, bail};
use rusqlite::params;

use super::Store;
use crate::units::{human_bytes, parse_size};

/// The smallest staging limit `setup` takes: the reader waits while staging holds the limit, so it
/// must leave room for a window of messages while the target takes the ones before; below this the
/// pipe would mostly stand still.
pub const MIN_STAGING_LIMIT: u64 = 16 << 20;

/// The staging limit as the operator writes it (`setup --staging-limit`, `staging_limit` in the
/// API): a size ("32M", "2G"), or "auto" (also "default") for the default, which is None.
pub fn parse_staging_limit(text: &str) -> Result<Option<u64>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") || text.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    check_staging_limit(parse_size(text)?).map(Some)
}

/// A staging limit in bytes, refused with a sentence saying why when a window of messages would not fit.
pub fn check_staging_limit(bytes: u64) -> Result<u64> {
    if bytes == 0 {
        bail!(
            "a staging limit of 0 would let no message through: give at least {} (e.g. 32M or 2G), or auto for the default",
            human_bytes(MIN_STAGING_LIMIT)
        );
    }
    if bytes < MIN_STAGING_LIMIT {
        // Just below the minimum rounds to the same words; then the bytes say it.
        let given = if human_bytes(bytes) == human_bytes(MIN_STAGING_LIMIT) { format!("{bytes} bytes") } else { human_bytes(bytes) };
        bail!(
            "a staging limit of {} is too small: staging must hold at least {} so that a window of messages fits while the target \
             takes the ones before; give e.g. 32M or 2G, or auto for the default",
            given,
            human_bytes(MIN_STAGING_LIMIT)
        );
    }
    Ok(bytes)
}

/// Seconds between passes the operator may choose (`setup --pass-interval`, `pass_interval_seconds`):
/// from one second to a week.
pub const PASS_INTERVAL_SECONDS: std::ops::RangeInclusive<i64> = 1..=7 * 86_400;
/// The quiet period before finishing is safe: none at all to thirty days.
pub const QUIET_PERIOD_SECONDS: std::ops::RangeInclusive<i64> = 0..=30 * 86_400;

/// A number of seconds for the setting `name`, refused with a sentence outside `range`.
pub fn check_seconds(name: &str, seconds: i64, range: &std::ops::RangeInclusive<i64>) -> Result<i64> {
    if !range.contains(&seconds) {
        bail!("{name} must be from {} to {} seconds (got {seconds})", range.start(), range.end());
    }
    Ok(seconds)
}

/// Every setting the operator chooses, with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Passes run on their interval (kept across restarts).
    pub passes_enabled: bool,
    pub pass_interval_seconds: i64,
    /// Accounts copied at once.
    pub parallel: usize,
    pub mx_interval_seconds: i64,
    /// The DNS server the MX watch asks; None: $POSTFLYTT_RESOLVER or /etc/resolv.conf.
    pub mx_resolver: Option<String>,
    /// Host name patterns of the new host's MX records.
    pub mx_target: Vec<String>,
    /// Domains the MX watch looks at besides those of the logins and aliases (checked by
    /// `mx::check_domain` before they are stored).
    pub watch_domains: Vec<String>,
    /// No new mail on the old server for this long (after the last MX flip) before finishing is safe.
    pub quiet_period_seconds: i64,
    /// The package the customer bought, for a target that does not report a quota or a size limit.
    pub quota_per_account: Option<u64>,
    pub message_size_limit: Option<u64>,
    /// Most bytes the staging database may hold on disk; None: the smaller of 2 GiB and a quarter of
    /// the free disk when a pass starts (`Store::staging_limit`).
    pub staging_limit: Option<u64>,
    /// Until an account's users switch, the target follows their moves and deletions on the old
    /// server for the mail postflytt put there (`mirror`); `setup --mirror off` turns that off.
    pub mirror: bool,
    /// The operator's message filter (`setup --older-than`, `--newer-than`, `--max-message-size`):
    /// only messages received before `older_than` (midnight UTC), from `newer_than` on, and of at
    /// most `max_message_size` bytes move; the rest are left out, each in the skip ledger.
    pub older_than: Option<chrono::NaiveDate>,
    pub newer_than: Option<chrono::NaiveDate>,
    pub max_message_size: Option<u64>,
    /// The package's total size the customer bought for all accounts together (`setup --quota-total`):
    /// the check says whether everything fits, besides each account's own verdict.
    pub quota_total: Option<u64>,
    /// Folder patterns left out of every account (`setup --exclude-folder`; `folder_choice`).
    pub exclude_folders: Vec<String>,
    /// Folder patterns copied whatever would leave them out (`setup --include-folder`).
    pub include_folders: Vec<String>,
    /// Mapping overrides, `SOURCE=TARGET` (`setup --map-folder`).
    pub map_folders: Vec<String>,
    /// When the IMAP connections of a pass compress (`setup --compress`; `imap::compress`).
    pub compress: crate::imap::Compression,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            passes_enabled: false,
            pass_interval_seconds: 900,
            parallel: 4,
            mx_interval_seconds: 300,
            mx_resolver: None,
            mx_target: Vec::new(),
            watch_domains: Vec::new(),
            quiet_period_seconds: 86_400,
            quota_per_account: None,
            message_size_limit: None,
            staging_limit: None,
            mirror: true,
            older_than: None,
            newer_than: None,
            max_message_size: None,
            quota_total: None,
            exclude_folders: Vec::new(),
            include_folders: Vec::new(),
            map_folders: Vec::new(),
            compress: crate::imap::Compression::Auto,
        }
    }
}

const PASSES_ENABLED: &str = "passes.enabled";
const PASS_INTERVAL: &str = "passes.interval";
const PARALLEL: &str = "passes.parallel";
const MX_INTERVAL: &str = "mx.interval";
const MX_RESOLVER: &str = "mx.resolver";
const MX_TARGET: &str = "mx.target";
const WATCH_DOMAINS: &str = "mx.watch_domains";
const QUIET_PERIOD: &str = "quiet_period";
const QUOTA_PER_ACCOUNT: &str = "limit.quota_per_account";
const MESSAGE_SIZE_LIMIT: &str = "limit.message_size";
const STAGING_LIMIT: &str = "limit.staging";
const MIRROR: &str = "mirror";
const OLDER_THAN: &str = "filter.older_than";
const NEWER_THAN: &str = "filter.newer_than";
const MAX_MESSAGE_SIZE: &str = "filter.max_message_size";
const QUOTA_TOTAL: &str = "limit.quota_total";
// One pattern a line: a comma may be part of a folder name.
const EXCLUDE_FOLDERS: &str = "folders.exclude";
const INCLUDE_FOLDERS: &str = "folders.include";
const MAP_FOLDERS: &str = "folders.map";
const COMPRESS: &str = "imap.compress";

impl Settings {
    /// The rows as stored: a None value is no row.
    fn rows(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            (PASSES_ENABLED, Some(if self.passes_enabled { "1" } else { "0" }.to_string())),
            (PASS_INTERVAL, Some(self.pass_interval_seconds.to_string())),
            (PARALLEL, Some(self.parallel.to_string())),
            (MX_INTERVAL, Some(self.mx_interval_seconds.to_string())),
            (MX_RESOLVER, self.mx_resolver.clone().filter(|r| !r.is_empty())),
            (MX_TARGET, Some(self.mx_target.join(","))),
            (WATCH_DOMAINS, Some(self.watch_domains.join(","))),
            (QUIET_PERIOD, Some(self.quiet_period_seconds.to_string())),
            (QUOTA_PER_ACCOUNT, self.quota_per_account.map(|q| q.to_string())),
            (MESSAGE_SIZE_LIMIT, self.message_size_limit.map(|l| l.to_string())),
            (STAGING_LIMIT, self.staging_limit.map(|l| l.to_string())),
            (MIRROR, Some(if self.mirror { "on" } else { "off" }.to_string())),
            (OLDER_THAN, self.older_than.map(|d| d.to_string())),
            (NEWER_THAN, self.newer_than.map(|d| d.to_string())),
            (MAX_MESSAGE_SIZE, self.max_message_size.map(|n| n.to_string())),
            (QUOTA_TOTAL, self.quota_total.map(|n| n.to_string())),
            (EXCLUDE_FOLDERS, Some(self.exclude_folders.join("\n")).filter(|t| !t.is_empty())),
            (INCLUDE_FOLDERS, Some(self.include_folders.join("\n")).filter(|t| !t.is_empty())),
            (MAP_FOLDERS, Some(self.map_folders.join("\n")).filter(|t| !t.is_empty())),
            (COMPRESS, Some(self.compress.as_str().to_string())),
        ]
    }

    fn from_rows(get: impl Fn(&str) -> Option<String>) -> Settings {
        let default = Settings::default();
        let number = |key: &str| get(key).and_then(|v| v.trim().parse::<i64>().ok());
        let lines = |v: Option<String>| v.unwrap_or_default().lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
        Settings {
            passes_enabled: get(PASSES_ENABLED).as_deref() == Some("1"),
            pass_interval_seconds: number(PASS_INTERVAL).unwrap_or(default.pass_interval_seconds),
            parallel: number(PARALLEL).and_then(|n| usize::try_from(n).ok()).filter(|&n| n > 0).unwrap_or(default.parallel),
            mx_interval_seconds: number(MX_INTERVAL).unwrap_or(default.mx_interval_seconds).max(1),
            mx_resolver: get(MX_RESOLVER).filter(|r| !r.is_empty()),
            mx_target: get(MX_TARGET).unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            watch_domains: get(WATCH_DOMAINS).unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            quiet_period_seconds: number(QUIET_PERIOD).unwrap_or(default.quiet_period_seconds),
            quota_per_account: number(QUOTA_PER_ACCOUNT).and_then(|n| u64::try_from(n).ok()),
            message_size_limit: number(MESSAGE_SIZE_LIMIT).and_then(|n| u64::try_from(n).ok()),
            staging_limit: number(STAGING_LIMIT).and_then(|n| u64::try_from(n).ok()).filter(|&n| n > 0),
            mirror: get(MIRROR).as_deref() != Some("off"),
            older_than: get(OLDER_THAN).and_then(|d| d.parse().ok()),
            newer_than: get(NEWER_THAN).and_then(|d| d.parse().ok()),
            max_message_size: number(MAX_MESSAGE_SIZE).and_then(|n| u64::try_from(n).ok()).filter(|&n| n > 0),
            quota_total: number(QUOTA_TOTAL).and_then(|n| u64::try_from(n).ok()),
            exclude_folders: lines(get(EXCLUDE_FOLDERS)),
            include_folders: lines(get(INCLUDE_FOLDERS)),
            map_folders: lines(get(MAP_FOLDERS)),
            compress: get(COMPRESS).and_then(|v| crate::imap::Compression::parse(&v)).unwrap_or_default(),
        }
    }
}

impl Store {
    /// The operator's settings, each its default where none is stored.
    pub fn settings(&self) -> Result<Settings> {
        let mut values = std::collections::BTreeMap::new();
        // Every row: the table is a few dozen short rows, and a new setting needs no change here.
        let mut stmt = self.conn.prepare_cached("SELECT key, value FROM setting")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (key, value) = row?;
            values.insert(key, value);
        }
        Ok(Settings::from_rows(|key| values.get(key).cloned()))
    }

    /// Reads the settings, lets `change` change them and stores the result, all in one short write
    /// transaction (a change from the page and one from the CLI at once cannot undo each other).
    pub fn change_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<Settings> {
        self.write(|tx| {
            let mut settings = self.settings()?;
            change(&mut settings);
            for (key, value) in settings.rows() {
                match value {
                    Some(value) => tx.conn().execute(
                        "INSERT INTO setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![key, value],
                    )?,
                    None => tx.conn().execute("DELETE FROM setting WHERE key = ?1", [key])?,
                };
            }
            Ok(settings)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rows_read_back_and_damage_reads_as_the_default() {
        let changed = Settings {
            passes_enabled: true,
            pass_interval_seconds: 60,
            parallel: 2,
            mx_interval_seconds: 30,
            mx_resolver: Some("127.0.0.1:5353".into()),
            mx_target: vec!["mx.ny.example".into(), "*.ny.example".into()],
            watch_domains: vec!["kund.se".into(), "företag.se".into()],
            quiet_period_seconds: 0,
            quota_per_account: Some(1 << 30),
            message_size_limit: Some(35_000_000),
            staging_limit: Some(32 << 20),
            mirror: false,
            older_than: "2024-01-01".parse().ok(),
            newer_than: "2019-07-01".parse().ok(),
            max_message_size: Some(25 << 20),
            quota_total: Some(500 << 30),
            exclude_folders: vec!["Kalender".into(), "Arkiv/*".into()],
            include_folders: vec!["Kalender/Jobb".into()],
            map_folders: vec!["Gamla=Arkiv/Gamla".into()],
            compress: crate::imap::Compression::Off,
        };
        let rows: std::collections::BTreeMap<&str, Option<String>> = changed.rows().into_iter().collect();
        assert_eq!(Settings::from_rows(|k| rows.get(k).cloned().flatten()), changed);
        assert_eq!(Settings::from_rows(|_| None), Settings::default());
        let damaged = Settings::from_rows(|k| Some(if k == PARALLEL { "0".into() } else { "x".into() }));
        assert_eq!(damaged.parallel, 4);
        assert_eq!(damaged.pass_interval_seconds, 900);
        assert_eq!(damaged.mx_target, vec!["x".to_string()]);
        assert_eq!(damaged.compress, crate::imap::Compression::Auto, "an unknown word is the default");
    }

    #[test]
    fn staging_limits_are_read_and_too_small_ones_refused_with_a_reason() {
        for (text, limit) in [
            ("32M", Some(32 << 20)),
            ("16M", Some(MIN_STAGING_LIMIT)),
            (" 2G ", Some(2 << 30)),
            ("1.5g", Some(3 << 29)),
            ("16777216", Some(16 << 20)),
            ("auto", None),
            ("AUTO", None),
            ("default", None),
        ] {
            assert_eq!(parse_staging_limit(text).unwrap(), limit, "{text:?}");
        }
        for (text, says) in [
            ("0", "a staging limit of 0 would let no message through: give at least 16.0 MB"),
            ("0M", "would let no message through"),
            ("8M", "a staging limit of 8.0 MB is too small: staging must hold at least 16.0 MB so that a window of messages fits"),
            ("16777215", "a staging limit of 16777215 bytes is too small"),
            ("500k", "500.0 KB is too small"),
            ("lots", "\"lots\" is not a size: write e.g. 35M or 50G"),
            ("5X", "unknown unit"),
            ("", "is not a size"),
        ] {
            let err = parse_staging_limit(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        assert_eq!(check_staging_limit(64 << 20).unwrap(), 64 << 20);
        assert!(check_staging_limit(1).unwrap_err().to_string().contains("1 B is too small"));
    }
}
