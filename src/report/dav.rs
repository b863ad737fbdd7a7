//! Calendars and contacts in the report and the status line (issue 19, `docs/dav.md` §6): the counts in
//! words in both languages with singular and plural right, the account's section (each collection, its
//! items copied, what could not be moved and why) and the checklist's `calendars_contacts` sentence,
//! which says what happened instead of "move them by hand" once DAV servers were set up.

use anyhow::Result;
use serde::Serialize;

use super::{ChecklistItem, Lang, escape_html, format_time, group};
use crate::store::dav::DavCounts;
use crate::store::{DavCollectionStats, DavSkip, Store};

/// An account's calendars and contacts as the report shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DavSection {
    pub counts: DavCounts,
    pub collections: Vec<DavCollectionStats>,
    /// Items and collections not moved, with the reason (the skip ledger's entries about them).
    pub not_moved: Vec<DavSkip>,
}

/// Reads an account's section from the store.
pub(super) fn section(store: &Store, account_id: i64) -> Result<DavSection> {
    let collections = store.dav_collection_stats(account_id)?;
    let mut counts = DavCounts::default();
    for c in &collections {
        if c.skipped {
            counts.skipped_collections += 1;
            continue;
        }
        if c.kind == "calendar" {
            counts.calendars += 1;
        } else {
            counts.address_books += 1;
        }
        counts.items += c.items;
        counts.copied += c.copied;
        counts.refused += c.refused;
    }
    Ok(DavSection { counts, collections, not_moved: store.dav_skips(account_id)? })
}

/// "2 calendars, 1 address book, 767 of 767 items copied", then what could not be moved and the
/// collections left out, when there are any.
pub fn counts_words(c: &DavCounts, lang: Lang) -> String {
    let calendars = match (lang, c.calendars) {
        (Lang::Sv, 1) => "1 kalender".to_string(),
        (Lang::Sv, n) => format!("{} kalendrar", group(n, lang)),
        (Lang::En, 1) => "1 calendar".to_string(),
        (Lang::En, n) => format!("{} calendars", group(n, lang)),
    };
    let books = match (lang, c.address_books) {
        (Lang::Sv, 1) => "1 adressbok".to_string(),
        (Lang::Sv, n) => format!("{} adressböcker", group(n, lang)),
        (Lang::En, 1) => "1 address book".to_string(),
        (Lang::En, n) => format!("{} address books", group(n, lang)),
    };
    let (copied, items) = (group(c.copied, lang), group(c.items, lang));
    let mut line = match lang {
        Lang::Sv => format!("{calendars}, {books}, {copied} av {items} objekt kopierade"),
        Lang::En if c.items == 1 => format!("{calendars}, {books}, {copied} of 1 item copied"),
        Lang::En => format!("{calendars}, {books}, {copied} of {items} items copied"),
    };
    if c.refused > 0 {
        line.push_str(&match lang {
            Lang::Sv => format!(", {} kunde inte flyttas", group(c.refused, lang)),
            Lang::En => format!(", {} could not be moved", group(c.refused, lang)),
        });
    }
    if c.skipped_collections > 0 {
        line.push_str(&match (lang, c.skipped_collections) {
            (Lang::Sv, n) => format!(", {} lämnades kvar (delade eller prenumererade)", group(n, lang)),
            (Lang::En, n) => format!(", {} left out (shared or subscribed)", group(n, lang)),
        });
    }
    line
}

/// The checklist's item about calendars and contacts: today's "move them by hand" without DAV,
/// else what was moved (`sections` holds each account's, None where DAV is not set up).
pub(super) fn checklist_item(sections: Option<Vec<&DavSection>>) -> ChecklistItem {
    let Some(sections) = sections else {
        return ChecklistItem {
            id: "calendars_contacts",
            sv: "Flytta kalendrar och kontakter om ni har några hos den gamla leverantören: flytten omfattar bara e-post.".into(),
            en: "Move calendars and contacts if you have any at the old provider: this migration moved e-mail only.".into(),
        };
    };
    let copied: u64 = sections.iter().map(|s| s.counts.copied).sum();
    let some_not_moved = sections.iter().any(|s| !s.not_moved.is_empty() || s.counts.refused > 0 || s.counts.skipped_collections > 0);
    let mut sv = format!(
        "Kalendrar och kontakter har flyttats ({} objekt). Delade kalendrar, prenumerationer och delegeringar har inte flyttats: lägg till dem igen i den nya tjänsten.",
        group(copied, Lang::Sv)
    );
    let mut en = format!(
        "Calendars and contacts were moved ({} {}). Shared calendars, subscriptions and delegations were not: add them again on the new service.",
        group(copied, Lang::En),
        if copied == 1 { "item" } else { "items" }
    );
    if some_not_moved {
        sv.push_str(" Se listan över det som inte flyttades.");
        en.push_str(" See the list of what was not moved.");
    }
    ChecklistItem { id: "calendars_contacts", sv, en }
}

/// The account's section of the HTML page.
pub(super) fn html(h: &mut String, section: &DavSection, lang: Lang) {
    let t = |sv: &'static str, en: &'static str| lang.pick(sv, en);
    let e = escape_html;
    h.push_str(&format!("<h3>{}</h3>\n", t("Kalendrar och kontakter", "Calendars and contacts")));
    h.push_str(&format!("<p class=\"dav-counts\">{}</p>\n", e(&counts_words(&section.counts, lang))));
    if !section.collections.is_empty() {
        h.push_str(&format!(
            "<table class=\"dav\">\n<tr><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>\n",
            t("Namn", "Name"),
            t("Slag", "Kind"),
            t("Objekt", "Items"),
            t("Kopierade", "Copied"),
            t("Kunde inte flyttas", "Could not be moved")
        ));
        for c in &section.collections {
            let kind = if c.kind == "calendar" { t("kalender", "calendar") } else { t("adressbok", "address book") };
            if c.skipped {
                let why = c.skip_reason.as_deref().unwrap_or("");
                h.push_str(&format!(
                    "<tr class=\"left-out\"><td>{}</td><td>{kind}</td><td class=\"muted\" colspan=\"3\">{} <code>{}</code></td></tr>\n",
                    e(&c.name),
                    t("lämnades kvar:", "left out:"),
                    e(why)
                ));
                continue;
            }
            h.push_str(&format!(
                "<tr><td>{}</td><td>{kind}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
                e(&c.name),
                group(c.items, lang),
                group(c.copied, lang),
                group(c.refused, lang)
            ));
        }
        h.push_str("</table>\n");
    }
    if !section.not_moved.is_empty() {
        h.push_str(&format!(
            "<table class=\"dav-not-moved\">\n<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>\n",
            t("Samling", "Collection"),
            t("Orsak", "Reason"),
            t("Serverns svar", "The server said"),
            t("Tid", "Time")
        ));
        for s in &section.not_moved {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                e(&s.collection),
                e(&s.reason),
                e(s.server_says.as_deref().unwrap_or("")),
                e(&format_time(s.at, lang))
            ));
        }
        h.push_str("</table>\n");
    }
}

/// The CSV's four columns: calendars, address books, items copied, items refused (empty without DAV).
pub(super) fn csv_cells(section: Option<&DavSection>) -> [String; 4] {
    match section {
        Some(s) => [s.counts.calendars, s.counts.address_books, s.counts.copied, s.counts.refused].map(|n| n.to_string()),
        None => Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(calendars: u64, address_books: u64, items: u64, copied: u64, refused: u64) -> DavCounts {
        DavCounts { calendars, address_books, skipped_collections: 0, items, copied, refused }
    }

    #[test]
    fn counts_read_right_in_both_languages() {
        let many = counts(3, 2, 767, 767, 0);
        assert_eq!(counts_words(&many, Lang::En), "3 calendars, 2 address books, 767 of 767 items copied");
        assert_eq!(counts_words(&many, Lang::Sv), "3 kalendrar, 2 adressböcker, 767 av 767 objekt kopierade");
        let one = counts(1, 1, 1, 1, 0);
        assert_eq!(counts_words(&one, Lang::En), "1 calendar, 1 address book, 1 of 1 item copied");
        assert_eq!(counts_words(&one, Lang::Sv), "1 kalender, 1 adressbok, 1 av 1 objekt kopierade");
        let none = counts(0, 0, 0, 0, 0);
        assert_eq!(counts_words(&none, Lang::En), "0 calendars, 0 address books, 0 of 0 items copied");
        let refused = DavCounts { skipped_collections: 1, ..counts(2, 1, 1200, 1198, 2) };
        assert_eq!(
            counts_words(&refused, Lang::En),
            "2 calendars, 1 address book, 1,198 of 1,200 items copied, 2 could not be moved, 1 left out (shared or subscribed)"
        );
        assert_eq!(
            counts_words(&refused, Lang::Sv),
            "2 kalendrar, 1 adressbok, 1\u{a0}198 av 1\u{a0}200 objekt kopierade, 2 kunde inte flyttas, 1 lämnades kvar (delade eller prenumererade)"
        );
    }

    #[test]
    fn the_checklist_says_what_happened() {
        let by_hand = checklist_item(None);
        assert!(by_hand.en.contains("moved e-mail only"), "{}", by_hand.en);
        let all = DavSection { counts: counts(1, 1, 12, 12, 0), collections: vec![], not_moved: vec![] };
        let item = checklist_item(Some(vec![&all]));
        assert_eq!(
            item.en,
            "Calendars and contacts were moved (12 items). Shared calendars, subscriptions and delegations were not: add them again on the new service."
        );
        assert!(item.sv.starts_with("Kalendrar och kontakter har flyttats (12 objekt)."), "{}", item.sv);
        assert!(!item.sv.contains("Se listan"));
        let some = DavSection { counts: counts(1, 0, 2, 1, 1), ..all.clone() };
        let item = checklist_item(Some(vec![&all, &some]));
        assert!(item.en.contains("(13 items)") && item.en.ends_with("See the list of what was not moved."), "{}", item.en);
        assert!(item.sv.ends_with("Se listan över det som inte flyttades."), "{}", item.sv);
    }
}
