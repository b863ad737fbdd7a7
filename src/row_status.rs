//! One status per account row, as the page, `postflytt status` and the API show it: the check's
//! verdict, the account's last pass, a pass running now and how much of the account's mail is on the
//! target, folded into one word that never contradicts the others (an account the check found ready
//! is not "not checked"; one at 90 % is not "up to date"). Also what a row's percentage and time left
//! may honestly say: a percentage only against a total that is known, speed and time left only from
//! the pass running now, never the previous one's.

/// The one status of an account row (`accounts[].status` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// Imported; no check and no pass yet.
    NotChecked,
    /// The check is running and has not reached this account yet.
    Checking,
    /// The check found both logins working and the mail fitting; no pass has finished yet.
    Ready,
    /// A pass is working on the account now.
    Copying,
    /// The last pass ended without error and everything the source holds is on the target (or
    /// refused by it for good, which the row's details list).
    UpToDate,
    /// The last pass ended well but the source has mail it has not copied yet (new mail seen
    /// after it listed, or a folder it could not finish): the next pass copies it.
    WaitingForPass,
    /// A login failed at the check or the last pass failed; `reason` says which.
    Failed,
    /// The check found that the mail does not fit into the target's quota.
    WillNotFit,
    /// The migration is finished.
    Finished,
    /// The operator paused it: passes leave it alone until it is resumed.
    Paused,
    /// The operator removed it from the migration.
    Removed,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::NotChecked => "not_checked",
            RowStatus::Checking => "checking",
            RowStatus::Ready => "ready",
            RowStatus::Copying => "copying",
            RowStatus::UpToDate => "up_to_date",
            RowStatus::WaitingForPass => "waiting_for_pass",
            RowStatus::Failed => "failed",
            RowStatus::WillNotFit => "will_not_fit",
            RowStatus::Finished => "finished",
            RowStatus::Paused => "paused",
            RowStatus::Removed => "removed",
        }
    }
}

/// What the row's status is made of.
#[derive(Debug, Clone, Default)]
pub struct RowFacts<'a> {
    pub finished: bool,
    /// The check's verdict and when it was made, if the check has seen the account.
    pub verdict: Option<&'a str>,
    pub checked_at: Option<i64>,
    pub check_running: bool,
    /// A pass runs now and this account's latest pass has not ended.
    pub in_pass: bool,
    /// How the last pass ended: `Some(true)` without error, `Some(false)` failed, `None` no pass yet.
    pub last_pass_ok: Option<bool>,
    pub last_pass_at: Option<i64>,
    /// Mail the source is known to hold (messages and bytes) and what of it is done (on the target
    /// or refused for good).
    pub messages: i64,
    pub done_messages: i64,
}

/// The row's status and, when it is `Failed`, why (`source_login_failed`, `target_login_failed`,
/// `source_certificate`, `target_certificate`, `pass_failed`).
pub fn row_status(f: &RowFacts) -> (RowStatus, Option<&'static str>) {
    if f.finished {
        return (RowStatus::Finished, None);
    }
    if f.in_pass {
        return (RowStatus::Copying, None);
    }
    // The check speaks for the account until a pass has run after it; in the same second the pass
    // wins (it proves the logins the check tried).
    let check_is_newer = match (f.checked_at, f.last_pass_at) {
        (Some(c), Some(p)) => c > p,
        (Some(_), None) => true,
        _ => false,
    };
    if check_is_newer {
        match f.verdict {
            Some("source_login_failed") => return (RowStatus::Failed, Some("source_login_failed")),
            Some("target_login_failed") => return (RowStatus::Failed, Some("target_login_failed")),
            // Issue 16 #4: the account was not tried; the server's certificate is one setup problem.
            Some("source_certificate") => return (RowStatus::Failed, Some("source_certificate")),
            Some("target_certificate") => return (RowStatus::Failed, Some("target_certificate")),
            Some("will_not_fit") => return (RowStatus::WillNotFit, None),
            _ => {}
        }
    }
    match f.last_pass_ok {
        Some(false) => (RowStatus::Failed, Some("pass_failed")),
        Some(true) if f.done_messages >= f.messages => (RowStatus::UpToDate, None),
        Some(true) => (RowStatus::WaitingForPass, None),
        None if f.verdict.is_some() => (RowStatus::Ready, None),
        None if f.check_running => (RowStatus::Checking, None),
        None => (RowStatus::NotChecked, None),
    }
}

/// The row's status from the store's account progress and the check's verdict and time: what the
/// appliance's status and `postflytt status` both show.
pub fn of_account(
    p: &crate::store::AccountProgress,
    check: Option<(&str, i64)>,
    finished: bool,
    in_pass: bool,
    check_running: bool,
) -> (RowStatus, Option<&'static str>) {
    // The operator's hold speaks first: it is why nothing else happens to the account.
    match p.state {
        crate::store::AccountState::Removed => return (RowStatus::Removed, None),
        crate::store::AccountState::Paused if !finished => return (RowStatus::Paused, None),
        _ => {}
    }
    row_status(&RowFacts {
        finished,
        verdict: check.map(|(v, _)| v),
        checked_at: check.map(|(_, at)| at),
        check_running,
        in_pass,
        last_pass_ok: p.last_pass_at.map(|_| p.state != crate::store::AccountState::Failed),
        last_pass_at: p.last_pass_at,
        messages: p.messages,
        done_messages: p.pushed + p.refused,
    })
}

/// The status in English words, for the command line.
pub fn english(status: RowStatus, reason: Option<&str>) -> String {
    let why = match reason {
        Some("source_login_failed") => ": cannot log in on the old server",
        Some("target_login_failed") => ": cannot log in on the new host",
        Some("source_certificate") => ": not tried, the old server's certificate is not trusted",
        Some("target_certificate") => ": not tried, the new host's certificate is not trusted",
        Some("pass_failed") => ": the last pass stopped with an error",
        _ => "",
    };
    let word = match status {
        RowStatus::NotChecked => "not checked",
        RowStatus::Checking => "being checked",
        RowStatus::Ready => "ready",
        RowStatus::Copying => "copying",
        RowStatus::UpToDate => "up to date",
        RowStatus::WaitingForPass => "new mail waits for the next pass",
        RowStatus::Failed => "failed",
        RowStatus::WillNotFit => "will not fit",
        RowStatus::Finished => "moved",
        RowStatus::Paused => "paused",
        RowStatus::Removed => "removed",
    };
    format!("{word}{why}")
}

/// What the source holds for a row's percentage, and whether that total is known. Before the
/// account's first pass ended well, the total is the larger of the check's count and what the
/// pass has listed so far, known once the check has counted; after it, the pass's own listing,
/// known except while a later pass runs (it may be listing new mail the total does not hold yet).
pub fn known_total(check: Option<(i64, i64)>, listed: (i64, i64), had_good_pass: bool, in_pass: bool) -> Option<(i64, i64)> {
    if had_good_pass {
        return if in_pass { None } else { Some(listed) };
    }
    match check {
        Some((messages, bytes)) => Some((messages.max(listed.0), bytes.max(listed.1))),
        None if !in_pass && listed.0 > 0 => Some(listed),
        None => None,
    }
}

/// A pass's speed from what it has moved since it was first seen (bytes a second), once it has
/// run long enough to say: at least `MIN_SECONDS` and some bytes.
pub fn current_speed(first_seen: (f64, i64), now: (f64, i64)) -> Option<f64> {
    const MIN_SECONDS: f64 = 3.0;
    let (t0, b0) = first_seen;
    let (t1, b1) = now;
    let seconds = t1 - t0;
    if seconds < MIN_SECONDS || b1 <= b0 {
        return None;
    }
    Some((b1 - b0) as f64 / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_status_per_row_agrees_with_check_and_pass() {
        let base = RowFacts { messages: 100, done_messages: 0, ..RowFacts::default() };
        type Case<'a> = (&'a str, RowFacts<'a>, (RowStatus, Option<&'a str>));
        let cases: Vec<Case> = vec![
            ("imported only", base.clone(), (RowStatus::NotChecked, None)),
            ("check running", RowFacts { check_running: true, ..base.clone() }, (RowStatus::Checking, None)),
            (
                "checked ready, state still new",
                RowFacts { verdict: Some("ready"), checked_at: Some(10), ..base.clone() },
                (RowStatus::Ready, None),
            ),
            (
                "over size limit copies the rest",
                RowFacts { verdict: Some("over_size_limit"), checked_at: Some(10), ..base.clone() },
                (RowStatus::Ready, None),
            ),
            (
                "login failed at check",
                RowFacts { verdict: Some("source_login_failed"), checked_at: Some(10), ..base.clone() },
                (RowStatus::Failed, Some("source_login_failed")),
            ),
            (
                "certificate not trusted at check",
                RowFacts { verdict: Some("target_certificate"), checked_at: Some(10), ..base.clone() },
                (RowStatus::Failed, Some("target_certificate")),
            ),
            (
                "a pass after the failed check worked",
                RowFacts {
                    verdict: Some("target_login_failed"),
                    checked_at: Some(10),
                    last_pass_ok: Some(true),
                    last_pass_at: Some(20),
                    done_messages: 100,
                    ..base.clone()
                },
                (RowStatus::UpToDate, None),
            ),
            (
                "will not fit",
                RowFacts { verdict: Some("will_not_fit"), checked_at: Some(10), ..base.clone() },
                (RowStatus::WillNotFit, None),
            ),
            ("in a pass", RowFacts { in_pass: true, last_pass_ok: Some(true), ..base.clone() }, (RowStatus::Copying, None)),
            (
                "90 % is not up to date",
                RowFacts { last_pass_ok: Some(true), last_pass_at: Some(5), done_messages: 90, ..base.clone() },
                (RowStatus::WaitingForPass, None),
            ),
            (
                "last pass failed",
                RowFacts { last_pass_ok: Some(false), last_pass_at: Some(5), ..base.clone() },
                (RowStatus::Failed, Some("pass_failed")),
            ),
            ("finished", RowFacts { finished: true, in_pass: true, ..base.clone() }, (RowStatus::Finished, None)),
            (
                "an empty account is up to date",
                RowFacts { messages: 0, last_pass_ok: Some(true), last_pass_at: Some(5), ..RowFacts::default() },
                (RowStatus::UpToDate, None),
            ),
        ];
        for (name, facts, wanted) in cases {
            assert_eq!(row_status(&facts), wanted, "{name}");
        }
    }

    #[test]
    fn a_total_is_known_before_a_percentage_is_shown() {
        // First copy: the check's count, or what was listed if larger.
        assert_eq!(known_total(Some((100, 1000)), (40, 300), false, true), Some((100, 1000)));
        assert_eq!(known_total(Some((100, 1000)), (120, 900), false, true), Some((120, 1000)));
        // No check, first pass running: the listing is partial.
        assert_eq!(known_total(None, (40, 300), false, true), None);
        // A later pass may be listing new mail: no total while it runs.
        assert_eq!(known_total(Some((100, 1000)), (100, 1000), true, true), None);
        assert_eq!(known_total(Some((100, 1000)), (90, 950), true, false), Some((90, 950)));
    }

    #[test]
    fn speed_is_the_current_pass_once_it_has_run_a_while() {
        assert_eq!(current_speed((100.0, 1_000), (101.0, 5_000)), None, "too short to say");
        assert_eq!(current_speed((100.0, 1_000), (110.0, 1_000)), None, "nothing moved");
        assert_eq!(current_speed((100.0, 1_000), (110.0, 11_000)), Some(1_000.0));
    }
}
