//! The operator's message filter: which messages move by their received date (the IMAP internal
//! date) and size (`setup --older-than`, `--newer-than`, `--max-message-size`). A message the filter
//! leaves out is never fetched: the listing records it as refused with `left_out` and an entry in the
//! skip ledger saying why ("left out by the operator's filter: ..."), so the status, verify and the
//! report account for it. A changed filter re-weighs, at the next pass, the account's rows the target
//! does not hold yet: newly left-out rows are refused (their staged bytes released), rows the filter
//! now takes in go back to pending and their ledger entries go. Copies already on the target stay.

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, NaiveDate};

use crate::store::{Settings, Store};
use crate::units::{human_bytes, parse_optional_size};

/// The start of every skip ledger entry the filter writes (the report groups by it).
pub use crate::store::LEFT_OUT_REASON;

/// Rows weighed per write transaction when a changed filter re-weighs an account.
const REWEIGH_BATCH: usize = 500;

/// What moves: received before `older_than` (midnight UTC), from `newer_than` on (midnight UTC), at
/// most `max_size` bytes. Empty: everything moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub older_than: Option<NaiveDate>,
    pub newer_than: Option<NaiveDate>,
    pub max_size: Option<u64>,
    /// Sizes of copies on the target whose source row is gone (moved by the users) or stale (the
    /// folder's UIDVALIDITY changed): a message of such a size may be that copy's twin, so it is
    /// never left out but fetched, to be paired by its bytes (a MOVE, or taking the copy over). The
    /// filter only ever decides about mail not yet on the target. Not part of the fingerprint.
    pub spared_sizes: std::collections::BTreeSet<u64>,
}

impl MessageFilter {
    pub fn from_settings(settings: &Settings) -> MessageFilter {
        MessageFilter {
            older_than: settings.older_than,
            newer_than: settings.newer_than,
            max_size: settings.max_message_size,
            spared_sizes: Default::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.older_than.is_none() && self.newer_than.is_none() && self.max_size.is_none()
    }

    /// The filter as one short text, stored per account when its rows were weighed against it.
    pub fn fingerprint(&self) -> String {
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        format!(
            "older<{};newer>={};max={}",
            date(self.older_than),
            date(self.newer_than),
            self.max_size.map(|n| n.to_string()).unwrap_or_default()
        )
    }

    /// Why the filter leaves a message of `size` bytes received at `internal_date` (IMAP's
    /// "dd-Mon-yyyy hh:mm:ss +zzzz") out, or None when it moves. A message whose date is missing or
    /// unreadable is weighed by its size only: leaving mail out on a guess would lose it silently.
    pub fn leaves_out(&self, size: u64, internal_date: Option<&str>) -> Option<String> {
        if self.is_empty() || self.spared_sizes.contains(&size) {
            return None;
        }
        if let Some(max) = self.max_size.filter(|&max| size > max) {
            // The size itself is on the ledger's row; one wording per rule lets the report count them.
            return Some(format!("{LEFT_OUT_REASON}: larger than {}", human_bytes(max)));
        }
        let received = internal_date.and_then(parse_internal_date)?;
        if let Some(before) = self.older_than.filter(|d| received >= midnight(*d)) {
            return Some(format!("{LEFT_OUT_REASON}: received on or after {before}"));
        }
        if let Some(from) = self.newer_than.filter(|d| received < midnight(*d)) {
            return Some(format!("{LEFT_OUT_REASON}: received before {from}"));
        }
        None
    }

    /// What moves, in one sentence for `setup`, `status` and the check.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "Messages that move: all (no filter)".to_string();
        }
        let mut parts: Vec<String> = Vec::new();
        match (self.newer_than, self.older_than) {
            (Some(from), Some(before)) => parts.push(format!("received from {from} up to {before}")),
            (Some(from), None) => parts.push(format!("received from {from} on")),
            (None, Some(before)) => parts.push(format!("received before {before}")),
            (None, None) => {}
        }
        if let Some(max) = self.max_size {
            parts.push(format!("at most {}", human_bytes(max)));
        }
        format!("Messages that move: {} (the rest are left out and listed as skipped)", parts.join(", "))
    }

    /// Refuses a filter no message could pass.
    pub fn check(&self) -> Result<()> {
        if let (Some(from), Some(before)) = (self.newer_than, self.older_than)
            && from >= before
        {
            bail!(
                "--newer-than {from} and --older-than {before} leave no day between them, so no message would move; \
                 --newer-than must be the earlier date"
            );
        }
        Ok(())
    }
}

/// Midnight UTC at the start of `date`, in seconds since the epoch.
fn midnight(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(i64::MIN)
}

/// IMAP's internal date ("dd-Mon-yyyy hh:mm:ss +zzzz", the day maybe space-padded) in seconds since
/// the epoch.
pub fn parse_internal_date(text: &str) -> Option<i64> {
    DateTime::parse_from_str(text.trim(), "%d-%b-%Y %H:%M:%S %z").ok().map(|d| d.timestamp())
}

/// A date as the operator writes it for `--older-than` / `--newer-than` (and the API): YYYY-MM-DD;
/// "off" (or "none", or empty) removes that side of the filter (None).
pub fn parse_filter_date(flag: &str, text: &str) -> Result<Option<NaiveDate>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| anyhow!("{flag} {text:?} is not a date: write it as YYYY-MM-DD, e.g. 2020-01-01 (or off to remove it)"))?;
    if !(1970..=9999).contains(&chrono::Datelike::year(&date)) {
        bail!("{flag} {text:?}: give a year from 1970 on (mail has no earlier dates)");
    }
    Ok(Some(date))
}

/// A change of the filter as `setup` or `POST /api/setup` gives it: each side None when not given,
/// Some(None) when removed.
#[derive(Debug, Clone, Default)]
pub struct FilterChange {
    pub older_than: Option<Option<NaiveDate>>,
    pub newer_than: Option<Option<NaiveDate>>,
    pub max_size: Option<Option<u64>>,
}

impl FilterChange {
    /// Reads the three values as written (each maybe absent), naming each by `names` (the CLI's flags
    /// or the API's keys) in a refusal.
    pub fn parse(values: [Option<&str>; 3], names: [&str; 3]) -> Result<FilterChange> {
        let [older, newer, max] = values;
        Ok(FilterChange {
            older_than: older.map(|t| parse_filter_date(names[0], t)).transpose()?,
            newer_than: newer.map(|t| parse_filter_date(names[1], t)).transpose()?,
            max_size: max.map(|t| parse_optional_size(names[2], t)).transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.older_than.is_none() && self.newer_than.is_none() && self.max_size.is_none()
    }

    pub fn apply(&self, settings: &mut Settings) {
        if let Some(d) = self.older_than {
            settings.older_than = d;
        }
        if let Some(d) = self.newer_than {
            settings.newer_than = d;
        }
        if let Some(n) = self.max_size {
            settings.max_message_size = n;
        }
    }

    /// Refuses the change when the filter it makes of `current` would let no message through.
    pub fn check_against(&self, current: &Settings) -> Result<()> {
        let mut after = current.clone();
        self.apply(&mut after);
        MessageFilter::from_settings(&after).check()
    }
}

/// Left-out rows that may be the twin of a copy on the target whose row is gone (`spared_sizes`):
/// taken back every pass, whatever the filter's fingerprint says, so they are fetched and paired by
/// their bytes (a MOVE) instead of the copy being removed. (A message the users moved while a pass
/// ran is listed, left out, before its old row is found gone: this catches it at the next pass.)
/// Returns how many.
pub fn take_back_twins(store: &Store, account_id: i64, filter: &MessageFilter) -> Result<u64> {
    if filter.spared_sizes.is_empty() {
        return Ok(0);
    }
    let rows = store.left_out_rows_of_sizes(account_id, &filter.spared_sizes)?;
    if rows.is_empty() {
        return Ok(0);
    }
    store.write(|tx| {
        let mut folders = std::collections::BTreeSet::new();
        for (id, folder_id) in &rows {
            tx.take_back(*id)?;
            if folders.insert(*folder_id) {
                tx.look_through_target_again(*folder_id)?;
            }
        }
        Ok(())
    })?;
    Ok(rows.len() as u64)
}

/// Weighs the account's rows the target does not hold yet against `filter` when it changed since
/// they last were (the listing weighs new rows as they come): left-out rows the filter now takes in
/// go back to pending, pending rows it leaves out are refused with a skip. Returns (left out, taken
/// back). Runs at the start of the account's pass, before its reader and writer, so no row it
/// touches is in flight.
pub fn reweigh(store: &Store, account_id: i64, filter: &MessageFilter) -> Result<(u64, u64)> {
    let fingerprint = filter.fingerprint();
    let applied = store.filter_applied(account_id)?;
    // An account never weighed has only rows the listing weighed with no filter: nothing to re-weigh
    // unless there is a filter now.
    if applied.as_deref() == Some(fingerprint.as_str()) || (applied.is_none() && filter.is_empty()) {
        if applied.is_none() {
            store.write(|tx| tx.set_filter_applied(account_id, &fingerprint))?;
        }
        return Ok((0, 0));
    }
    let (mut left_out, mut taken_back) = (0u64, 0u64);
    let mut after = 0i64;
    loop {
        let rows = store.weighable_rows(account_id, after, REWEIGH_BATCH)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        store.write(|tx| {
            let mut looked_through = std::collections::BTreeSet::new();
            for row in &rows {
                match (filter.leaves_out(row.size, row.internal_date.as_deref()), row.left_out) {
                    (Some(reason), false) => {
                        tx.leave_out(account_id, row.id, &row.folder, &reason)?;
                        left_out += 1;
                    }
                    (None, true) => {
                        tx.take_back(row.id)?;
                        taken_back += 1;
                        // The target folder may hold copies of these already (another tool, or the
                        // customer, moved them before the filter was set): the next push looks the
                        // whole folder through before it appends them.
                        if looked_through.insert(row.folder_id) {
                            tx.look_through_target_again(row.folder_id)?;
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        })?;
    }
    store.write(|tx| tx.set_filter_applied(account_id, &fingerprint))?;
    if left_out + taken_back > 0 {
        log::info!("account {account_id}: the changed filter left out {left_out} more messages and took back {taken_back}");
    }
    Ok((left_out, taken_back))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Option<NaiveDate> {
        text.parse().ok()
    }

    #[test]
    fn internal_dates_are_read_with_their_zone_and_a_padded_day() {
        assert_eq!(parse_internal_date(" 1-Jan-2020 00:30:00 +0100"), Some(1_577_835_000));
        assert_eq!(parse_internal_date("01-Jan-2020 00:30:00 +0100"), Some(1_577_835_000));
        assert_eq!(parse_internal_date("31-Dec-2019 23:30:00 +0000"), Some(1_577_835_000));
        assert_eq!(parse_internal_date("yesterday"), None);
    }

    #[test]
    fn the_filter_leaves_out_by_date_and_size_and_keeps_undated_mail() {
        let filter =
            MessageFilter { older_than: date("2024-01-01"), newer_than: date("2020-01-01"), max_size: Some(1 << 20), ..Default::default() };
        filter.check().unwrap();
        let cases = [
            (100, Some("15-Jun-2022 12:00:00 +0000"), None),
            (100, Some("31-Dec-2019 23:59:59 +0000"), Some("received before 2020-01-01")),
            // 00:30 on 1 January in Stockholm is still 2019 in UTC.
            (100, Some(" 1-Jan-2020 00:30:00 +0100"), Some("received before 2020-01-01")),
            (100, Some(" 1-Jan-2020 00:00:00 +0000"), None),
            (100, Some(" 1-Jan-2024 00:00:00 +0000"), Some("received on or after 2024-01-01")),
            (100, None, None),
            (100, Some("garbage"), None),
            ((1 << 20) + 1, None, Some("larger than 1.0 MB")),
            (1 << 20, Some("15-Jun-2022 12:00:00 +0000"), None),
        ];
        for (size, received, want) in cases {
            let got = filter.leaves_out(size, received);
            match want {
                None => assert_eq!(got, None, "{size} {received:?}"),
                Some(words) => {
                    let got = got.unwrap_or_default();
                    assert!(got.starts_with(LEFT_OUT_REASON) && got.ends_with(words), "{got:?} {words:?}");
                }
            }
        }
        assert_eq!(MessageFilter::default().leaves_out(u64::MAX, Some("31-Dec-1999 23:59:59 +0000")), None);
        // A size of a copy whose row is gone or stale is never left out: it may be that copy's twin.
        let spared = MessageFilter { spared_sizes: [100].into(), ..filter.clone() };
        assert_eq!(spared.leaves_out(100, Some("31-Dec-2019 23:59:59 +0000")), None);
        assert!(spared.leaves_out(101, Some("31-Dec-2019 23:59:59 +0000")).is_some());
    }

    #[test]
    fn dates_and_sizes_are_refused_with_a_sentence() {
        assert_eq!(parse_filter_date("--older-than", "2020-01-01").unwrap(), date("2020-01-01"));
        assert_eq!(parse_filter_date("--older-than", "off").unwrap(), None);
        for (text, says) in [
            ("3y", "is not a date: write it as YYYY-MM-DD"),
            ("2020-13-01", "is not a date"),
            ("01/02/2020", "is not a date"),
            ("1900-01-01", "give a year from 1970 on"),
        ] {
            let e = parse_filter_date("--newer-than", text).unwrap_err().to_string();
            assert!(e.contains(says) && e.starts_with("--newer-than"), "{text}: {e}");
        }
        assert_eq!(parse_optional_size("--max-message-size", "25M").unwrap(), Some(25 << 20));
        assert_eq!(parse_optional_size("--max-message-size", "off").unwrap(), None);
        assert!(parse_optional_size("--max-message-size", "0").unwrap_err().to_string().contains("would allow nothing"));
        assert!(parse_optional_size("--max-message-size", "lots").unwrap_err().to_string().contains("is not a size"));
        let empty = MessageFilter { older_than: date("2020-01-01"), newer_than: date("2020-01-01"), max_size: None, ..Default::default() };
        assert!(empty.check().unwrap_err().to_string().contains("no message would move"));
    }

    #[test]
    fn the_description_says_what_moves() {
        assert_eq!(MessageFilter::default().describe(), "Messages that move: all (no filter)");
        let f = MessageFilter { older_than: None, newer_than: date("2023-01-01"), max_size: Some(25 << 20), ..Default::default() };
        assert_eq!(
            f.describe(),
            "Messages that move: received from 2023-01-01 on, at most 25.0 MB (the rest are left out and listed as skipped)"
        );
        assert_ne!(f.fingerprint(), MessageFilter::default().fingerprint());
    }
}
