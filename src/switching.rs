//! The switch: when an account's users stop using the old server and work on the new host. Until
//! then a pass makes the target follow their moves and deletions on the old server (the mirror module,
//! for the mail postflytt put there); from then on nothing is moved or removed on the target for that
//! account, ever. Two things say an account switched, whichever comes first: the operator
//! (`postflytt switched LOGIN...` or `--all`, `POST /api/switched`, the page's "Users have switched"),
//! and the MX watch, the first time a domain of the account points at the new host. The mark is set
//! once and never cleared (`store::switch`), so saying it again only tells when it was said. Shared by
//! the CLI, the API and the appliance's MX watch, and the words the status and `status` show for it.

use std::collections::BTreeSet;

use anyhow::Result;
use serde::Serialize;

use crate::accounts_admin::Refused;
use crate::report::{Lang, format_time};
use crate::store::{AccountState, MirrorProgress, Store, Switched, SwitchedBy, now};

/// Which accounts the operator says have switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    All,
    Logins(Vec<String>),
}

impl Which {
    /// The accounts named, or all of them; neither or both is refused with a sentence. `all_word` is
    /// how the caller's interface says "all" (`--all`, `{"all": true}`).
    pub fn of(logins: Vec<String>, all: bool, all_word: &str) -> Result<Which> {
        let logins: Vec<String> = logins.into_iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        match (logins.is_empty(), all) {
            (true, false) => Err(Refused::Invalid(format!(
                "say which accounts' users have switched to the new host: give their logins, or {all_word} for every account"
            ))
            .into()),
            (false, true) => Err(Refused::Invalid(format!("give either logins or {all_word}, not both")).into()),
            (true, true) => Ok(Which::All),
            (false, false) => Ok(Which::Logins(logins)),
        }
    }
}

/// What saying "switched" did for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub login: String,
    /// When the account's users switched (now, or when it was first said).
    pub switched_at: i64,
    /// "operator" or "mx": who said it first.
    pub switched_by: &'static str,
    /// Whether this call marked it (false: it had switched before).
    pub now: bool,
    /// The sentence for the person.
    pub message: String,
}

/// Marks the accounts switched by the operator's word (see the module). Every login is looked up
/// before anything is marked, so a mistyped one changes nothing; all of them are marked in one
/// transaction. `All` takes every account still in the migration (a removed one only when named).
pub fn mark_by_operator(store: &Store, which: &Which) -> Result<Vec<Outcome>> {
    store.ensure_not_finished()?;
    let accounts: Vec<(i64, String)> = match which {
        Which::All => {
            store.account_summaries()?.into_iter().filter(|a| a.state != AccountState::Removed).map(|a| (a.id, a.source_login)).collect()
        }
        Which::Logins(logins) => {
            let mut found = Vec::new();
            let mut unknown = Vec::new();
            for login in logins {
                match store.account_by_login(login)? {
                    Some((id, login, _)) if !found.iter().any(|(i, _)| *i == id) => found.push((id, login)),
                    Some(_) => {}
                    None => unknown.push(format!("no account {login:?}: see the account list (postflytt status)")),
                }
            }
            if !unknown.is_empty() {
                return Err(Refused::NotFound(unknown.join("\n")).into());
            }
            found
        }
    };
    if accounts.is_empty() {
        return Err(Refused::Conflict("there are no accounts in the migration yet: import the account list first".into()).into());
    }
    let at = now();
    let marked: Vec<bool> = store.write(|tx| accounts.iter().map(|(id, _)| tx.mark_switched(*id, at, SwitchedBy::Operator)).collect())?;
    let mut outcomes = Vec::new();
    for ((id, login), marked) in accounts.into_iter().zip(marked) {
        let switched = store.switched(id)?.unwrap_or(Switched { at, by: SwitchedBy::Operator });
        if marked {
            log::info!("{login}: the operator says its users have switched; nothing is moved or removed on the new host from now on");
        }
        let message = if marked {
            format!("{login}: switched now; nothing will be moved or removed on the new host from now on")
        } else {
            format!("{login}: already switched at {} ({})", format_time(switched.at, Lang::En), by_words(switched.by))
        };
        outcomes.push(Outcome { login, switched_at: switched.at, switched_by: switched.by.as_str(), now: marked, message });
    }
    Ok(outcomes)
}

/// "by the MX watch" / "by the operator".
fn by_words(by: SwitchedBy) -> &'static str {
    match by {
        SwitchedBy::Mx => "by the MX watch",
        SwitchedBy::Operator => "by the operator",
    }
}

/// Marks switched, by the MX watch, every account with an address whose mail the MX records carry
/// (its source login or an alias, the addresses the watch looks at) in a domain that points at the new
/// host, at the time it flipped (`flipped`: domain and flip time). The target login does not count:
/// `b@annan.se` moving to `b@kund.se` still gets its mail at the old server until annan.se flips. An
/// account whose source login is a user name goes with the domains the operator added to the watch for
/// that case (`added`) too. The earliest flip of an
/// account's domains counts. Safe to call every round: an account switched before stays as it was.
/// Returns the accounts this call marked, with the domain and time.
pub fn mark_by_mx(store: &Store, flipped: &[(String, i64)], added: &[String]) -> Result<Vec<(String, String, i64)>> {
    if flipped.is_empty() {
        return Ok(Vec::new());
    }
    let mut flipped = flipped.to_vec();
    flipped.sort_by_key(|(_, at)| *at);
    let added: BTreeSet<String> = crate::mx::watched_domains(std::iter::empty(), added);
    let mut wanted: Vec<(i64, String, String, i64)> = Vec::new();
    for a in store.account_summaries()? {
        let mut addresses = vec![a.source_login.as_str()];
        addresses.extend(a.aliases.split([',', ';']).map(str::trim).filter(|x| !x.is_empty()));
        let mut domains = crate::mx::domains(addresses.iter().copied());
        if !a.source_login.contains('@') {
            domains.extend(added.iter().cloned());
        }
        if let Some((domain, at)) = flipped.iter().find(|(d, _)| domains.contains(d)) {
            wanted.push((a.id, a.source_login, domain.clone(), *at));
        }
    }
    let marked: Vec<bool> = store.write(|tx| wanted.iter().map(|(id, _, _, at)| tx.mark_switched(*id, *at, SwitchedBy::Mx)).collect())?;
    let mut out = Vec::new();
    for ((_, login, domain, at), marked) in wanted.into_iter().zip(marked) {
        if marked {
            log::info!("{login}: switched: {domain} points at the new host; nothing is moved or removed on the new host from now on");
            out.push((login, domain, at));
        }
    }
    Ok(out)
}

/// The account's word for the status (`mirror`): "switched" once its users switched, else "off" when
/// the operator turned mirroring off (`setup --mirror off`), else "mirroring".
pub fn mirror_word(mirror_on: bool, progress: &MirrorProgress) -> &'static str {
    match (progress.switched, mirror_on) {
        (Some(_), _) => "switched",
        (None, false) => "off",
        (None, true) => "mirroring",
    }
}

/// The account's line in `postflytt status`.
pub fn status_line(mirror_on: bool, progress: &MirrorProgress) -> String {
    let counts = format!("{} moved and {} removed on the new host", progress.moved, progress.removed);
    match progress.switched {
        Some(s) => format!("switched {} ({}); {counts} before that", format_time(s.at, Lang::En), by_words(s.by)),
        None if mirror_on => format!("not switched yet: follows moves and deletions on the old server; {counts} so far"),
        None => format!("not switched yet; mirroring is off (setup --mirror on turns it on); {counts}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_needs_logins_or_all_but_not_both() {
        assert_eq!(Which::of(vec![], true, "--all").unwrap(), Which::All);
        assert_eq!(Which::of(vec![" a@x.se ".into()], false, "--all").unwrap(), Which::Logins(vec!["a@x.se".into()]));
        let neither = Which::of(vec![" ".into()], false, "--all").unwrap_err().to_string();
        assert!(neither.contains("give their logins, or --all for every account"), "{neither}");
        let both = Which::of(vec!["a@x.se".into()], true, "\"all\": true").unwrap_err().to_string();
        assert_eq!(both, "give either logins or \"all\": true, not both");
    }

    /// The MX watch's rule: the source login or an alias in a flipped domain (never the target login),
    /// the earliest flip first; a user-name login goes with the domains the operator added too;
    /// the operator's earlier word and an account of another domain are left as they are.
    #[test]
    fn a_flipped_domain_switches_the_accounts_with_an_address_in_it() {
        use crate::secret::Secret;
        let dir = std::env::temp_dir().join(format!("pf-switching-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let pw = Secret::new("pw");
        store.upsert_account("a@gammal.se", &pw, "a@ny.se", None, &[]).unwrap();
        store.upsert_account("b@annan.se", &pw, "b@annan.se", None, &["info@kund.se".into()]).unwrap();
        store.upsert_account("c@annan.se", &pw, "c@annan.se", None, &[]).unwrap();
        store.upsert_account("dora", &pw, "dora@kund.onmicrosoft.com", None, &[]).unwrap();
        store.upsert_account("f@annan.se", &pw, "f@kund.se", None, &[]).unwrap();
        store.upsert_account("e@kund.se", &pw, "e@kund.se", None, &[]).unwrap();
        let id = |login: &str| store.account_id(login).unwrap().unwrap();
        store.write(|tx| tx.mark_switched(id("e@kund.se"), 50, SwitchedBy::Operator)).unwrap();

        let flipped = [("kund.se".to_string(), 300), ("gammal.se".to_string(), 200), ("user-names.se".to_string(), 400)];
        let marked = mark_by_mx(&store, &flipped, &["User-Names.se".into()]).unwrap();
        assert_eq!(
            marked,
            [
                ("a@gammal.se".to_string(), "gammal.se".to_string(), 200),
                ("b@annan.se".into(), "kund.se".into(), 300),
                ("dora".into(), "user-names.se".into(), 400)
            ]
        );
        assert_eq!(store.switched(id("a@gammal.se")).unwrap(), Some(Switched { at: 200, by: SwitchedBy::Mx }));
        assert_eq!(store.switched(id("c@annan.se")).unwrap(), None, "another domain");
        assert_eq!(store.switched(id("f@annan.se")).unwrap(), None, "the target login's domain does not count");
        assert_eq!(store.switched(id("e@kund.se")).unwrap(), Some(Switched { at: 50, by: SwitchedBy::Operator }), "the first word stays");
        assert!(mark_by_mx(&store, &flipped, &[]).unwrap().is_empty(), "every round again marks nothing new");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_words_follow_the_switch_then_the_setting() {
        let switched = MirrorProgress { switched: Some(Switched { at: 0, by: SwitchedBy::Mx }), moved: 3, removed: 2 };
        assert_eq!(mirror_word(true, &switched), "switched");
        assert_eq!(mirror_word(false, &switched), "switched");
        assert_eq!(mirror_word(false, &MirrorProgress::default()), "off");
        assert_eq!(mirror_word(true, &MirrorProgress::default()), "mirroring");
        let line = status_line(true, &switched);
        assert!(line.contains("(by the MX watch); 3 moved and 2 removed on the new host before that"), "{line}");
    }
}
