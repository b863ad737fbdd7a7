//! The operator's folder choice as people read it: one account's mapping as the last discovery (a
//! check's, a pass's or `postflytt folders`') recorded it, for `GET /api/accounts/LOGIN/folders` and
//! the page's Folders card; and why a folder is left out as a kind and a detail (the pattern, the
//! folder or the namespace) that the page words in its own two languages and the report in its own.
//! Discovery records the reason as `folder_choice::Exclusion`'s English sentence in the folder's
//! `map_note`; `parse_reason` reads it back (a round trip the tests hold to every kind), so no
//! migration is needed and `postflytt folders`, the check and the store keep one wording.

use anyhow::Result;
use serde_json::{Value, json};

use crate::folder_choice::Exclusion;
use crate::store::{EXCLUDED_REASON, Store};

/// The end every default's sentence shares (`Exclusion`'s Display).
const TAKE_BACK: &str = "; --include-folder takes it back)";

/// The exclusion a note of discovery's says, or None for a note in words this version does not know.
pub fn parse_reason(note: &str) -> Option<Exclusion> {
    let between = |before: &str, after: &str| note.strip_prefix(before).and_then(|rest| rest.strip_suffix(after)).map(str::to_string);
    between("left out by the operator's pattern '", "'")
        .map(Exclusion::Operator)
        .or_else(|| between("left out by the account list's pattern '", "'").map(Exclusion::AccountList))
        .or_else(|| {
            between("not mail: '", "' holds calendar, contact, task or note items or the outbox (default; --include-folder takes it back)")
                .map(Exclusion::NotMail)
        })
        .or_else(|| between("another user's folder (namespace '", &format!("'{TAKE_BACK}")).map(Exclusion::OtherUsers))
        .or_else(|| between("a shared folder (namespace '", &format!("'{TAKE_BACK}")).map(Exclusion::Shared))
}

/// The kind's name in the API (`operator`, `account_list`, `not_mail`, `other_users`, `shared`) and
/// its detail: the pattern, the folder's top level or the namespace's prefix.
pub fn kind_and_detail(why: &Exclusion) -> (&'static str, &str) {
    match why {
        Exclusion::Operator(p) => ("operator", p),
        Exclusion::AccountList(p) => ("account_list", p),
        Exclusion::NotMail(name) => ("not_mail", name),
        Exclusion::OtherUsers(prefix) => ("other_users", prefix),
        Exclusion::Shared(prefix) => ("shared", prefix),
    }
}

/// The report's words for a left-out folder, from discovery's note: the customer reads that the
/// operator chose it, and why.
pub fn report_words(note: &str, swedish: bool) -> String {
    let Some(why) = parse_reason(note) else {
        let lead = if swedish { "lämnades kvar enligt operatörens val av mappar" } else { "left out by the operator's folder choice" };
        return format!("{lead}: {note}");
    };
    let (kind, detail) = kind_and_detail(&why);
    match (swedish, kind) {
        (false, "operator") => format!("left out by the operator's folder choice: the pattern '{detail}'"),
        (false, "account_list") => format!("left out by the operator's folder choice: the account list's pattern '{detail}'"),
        (false, "not_mail") => "left out by the operator's folder choice: not mail (calendar, contacts, tasks, notes or the outbox)".into(),
        (false, "other_users") => "left out by the operator's folder choice: another user's folder".into(),
        (false, _) => "left out by the operator's folder choice: a shared folder".into(),
        (true, "operator") => format!("lämnades kvar enligt operatörens val av mappar: mönstret '{detail}'"),
        (true, "account_list") => format!("lämnades kvar enligt operatörens val av mappar: kontolistans mönster '{detail}'"),
        (true, "not_mail") => {
            "lämnades kvar enligt operatörens val av mappar: inte e-post (kalender, kontakter, uppgifter, anteckningar eller utkorgen)"
                .into()
        }
        (true, "other_users") => "lämnades kvar enligt operatörens val av mappar: en annan användares mapp".into(),
        (true, _) => "lämnades kvar enligt operatörens val av mappar: en delad mapp".into(),
    }
}

/// One left-out folder in the API: its name, discovery's sentence, and the kind and detail.
fn left_out_json(source: &str, note: &str) -> Value {
    let why = parse_reason(note);
    let (kind, detail) = why.as_ref().map(kind_and_detail).unwrap_or(("other", ""));
    json!({"source": source, "reason": note, "kind": kind, "detail": detail})
}

/// `GET /api/accounts/LOGIN/folders`: the account's folders as the last discovery recorded them, or
/// None when no account has that login.
pub fn account_folders(store: &Store, login: &str) -> Result<Option<Value>> {
    let Some((id, login, _)) = store.account_by_login(login)? else {
        return Ok(None);
    };
    let recorded = store.recorded_folders(id)?;
    let mut folders = Vec::new();
    let mut left_out = Vec::new();
    for f in &recorded {
        let excluded = f.map_reason.as_deref() == Some(EXCLUDED_REASON);
        folders.push(json!({
            "source": f.name, "target": f.target_name, "reason": f.map_reason, "note": f.map_note, "excluded": excluded,
        }));
        if excluded {
            left_out.push(left_out_json(&f.name, f.map_note.as_deref().unwrap_or_default()));
        }
    }
    Ok(Some(json!({
        "login": login,
        "recorded": !recorded.is_empty(),
        "locked": !store.accounts_with_copies(Some(id))?.is_empty(),
        "folders": folders,
        "left_out": left_out,
    })))
}

/// Adds `kind` and `detail` to every left-out folder of `GET /api/check`'s results (each result's
/// `excluded`), so the page can say why in its own words.
pub fn annotate_check(results: &mut Value) {
    for result in results.as_array_mut().into_iter().flatten() {
        for folder in result.get_mut("excluded").and_then(Value::as_array_mut).into_iter().flatten() {
            let (Some(source), Some(reason)) = (folder["source"].as_str(), folder["reason"].as_str()) else {
                continue;
            };
            let annotated = left_out_json(source, reason);
            folder["kind"] = annotated["kind"].clone();
            folder["detail"] = annotated["detail"].clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_sentence() {
        for why in [
            Exclusion::Operator("Gamm*".into()),
            Exclusion::Operator("it's".into()),
            Exclusion::AccountList("Skräp/*".into()),
            Exclusion::NotMail("Kalender".into()),
            Exclusion::OtherUsers("Other Users/".into()),
            Exclusion::Shared("Public/".into()),
        ] {
            assert_eq!(parse_reason(&why.to_string()), Some(why.clone()), "{why}");
        }
        assert_eq!(parse_reason("something new"), None);
    }

    #[test]
    fn the_report_says_the_operator_chose_it_in_both_languages() {
        let note = Exclusion::Shared("Public/".into()).to_string();
        assert_eq!(report_words(&note, false), "left out by the operator's folder choice: a shared folder");
        assert_eq!(report_words(&note, true), "lämnades kvar enligt operatörens val av mappar: en delad mapp");
        let note = Exclusion::Operator("Gamm*".into()).to_string();
        assert!(report_words(&note, true).ends_with("mönstret 'Gamm*'"));
        assert_eq!(report_words("odd", false), "left out by the operator's folder choice: odd");
    }

    #[test]
    fn check_results_get_the_kind_of_each_left_out_folder() {
        let mut results =
            json!([{"account": "a", "excluded": [{"source": "Kalender", "reason": Exclusion::NotMail("Kalender".into()).to_string()}]}]);
        annotate_check(&mut results);
        assert_eq!(results[0]["excluded"][0]["kind"], "not_mail");
        assert_eq!(results[0]["excluded"][0]["detail"], "Kalender");
    }
}
