//! When an account's users switched to the new host: the first MX flip of its domain, or the
//! operator's word (`postflytt switched`, `POST /api/switched`). Until then the target follows the
//! users' moves and deletions on the old server (the `mirror` module); from then on nothing is moved or
//! removed on the target for that account, ever, so the mark is set once and never cleared (a
//! re-import keeps it too).

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{Store, Tx};

/// Who said an account's users switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchedBy {
    /// The MX watch saw the account's domain flip to the new host.
    Mx,
    /// The operator said so.
    Operator,
}

impl SwitchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchedBy::Mx => "mx",
            SwitchedBy::Operator => "operator",
        }
    }

    pub(super) fn parse(text: &str) -> SwitchedBy {
        if text == "mx" { SwitchedBy::Mx } else { SwitchedBy::Operator }
    }
}

/// When and by whom an account was marked switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    pub at: i64,
    pub by: SwitchedBy,
}

impl Store {
    /// When the account's users switched, if they have.
    pub fn switched(&self, account_id: i64) -> Result<Option<Switched>> {
        let row: Option<(Option<i64>, Option<String>)> = self
            .conn
            .row("SELECT switched_at, switched_by FROM account WHERE id = ?1", [account_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.and_then(|(at, by)| Some(Switched { at: at?, by: SwitchedBy::parse(by.as_deref().unwrap_or("operator")) })))
    }

    /// Whether a pass of this account follows the users' moves and deletions on the target: the
    /// setting is on and its users have not switched.
    pub fn mirrors(&self, account_id: i64) -> Result<bool> {
        Ok(self.settings()?.mirror && self.switched(account_id)?.is_none())
    }
}

impl Tx<'_> {
    /// Marks the account switched at `at` unless it already is (the first word counts); returns
    /// whether this call marked it.
    pub fn mark_switched(&self, account_id: i64, at: i64, by: SwitchedBy) -> Result<bool> {
        let changed = self.conn().run(
            "UPDATE account SET switched_at = ?2, switched_by = ?3 WHERE id = ?1 AND switched_at IS NULL",
            params![account_id, at, by.as_str()],
        )?;
        Ok(changed > 0)
    }
}
