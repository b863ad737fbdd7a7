//! The customer report, the last thing a migration leaves behind: per account the folders and how
//! many messages and bytes were copied where, what was skipped and why (in the server's own words),
//! the verification result, and the checklist of what the customer must still do. It is built from
//! the store alone — counts, the skip ledger and stored verification results — so it still works after
//! the purge has removed passwords and staged mail. It renders as JSON (the API), a self-contained
//! printable HTML page in Swedish or English, and a `;`-separated CSV that Excel opens as it is.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::store::{RunMark, Store, now};
use crate::units::human_bytes;
use crate::verify::{self, VerifyResult};

mod dav;
pub use dav::{DavSection, counts_words as dav_counts_words};

/// The language of the HTML page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Sv,
    En,
}

impl Lang {
    fn pick(self, sv: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }
}

/// Message and byte counts, for a folder, an account or the whole migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Messages staged from the source, and their bytes.
    pub messages: u64,
    pub bytes: u64,
    /// Of those, on the target.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Refused by the target (listed under skipped, with the reason).
    pub refused: u64,
    pub refused_bytes: u64,
    /// Neither copied nor refused (yet).
    pub not_copied: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.copied += other.copied;
        self.copied_bytes += other.copied_bytes;
        self.refused += other.refused;
        self.refused_bytes += other.refused_bytes;
        self.not_copied += other.not_copied;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderReport {
    pub source: String,
    /// The target folder's name; None when the folder was never mapped.
    pub target: Option<String>,
    /// False once the source no longer lists the folder (its copied mail is still counted).
    pub present: bool,
    #[serde(flatten)]
    pub totals: Totals,
    /// From the stored verification: None when this folder was not verified.
    pub verified: Option<bool>,
    /// Why the operator's folder choice leaves the folder out ("left out by the operator's folder
    /// choice: …"), when it does: such a folder is neither copied nor verified, and not a shortcoming.
    pub left_out: Option<String>,
    /// Discovery's note the words come from (for the Swedish page).
    #[serde(skip)]
    pub left_out_note: Option<String>,
}

/// One entry of the skip ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkipItem {
    pub folder: Option<String>,
    pub reason: String,
    pub server_says: Option<String>,
    /// Unix seconds.
    pub at: i64,
    /// The skipped message's size and date, when the entry is about one message (for the operator's
    /// filter: the bytes of all it left out in the folder by that rule, and no date).
    pub size: Option<u64>,
    pub date: Option<String>,
    /// Messages the entry stands for: 1, or those the operator's filter left out of the folder by
    /// one rule (counted into one entry, so a filter that leaves out 50,000 messages is one line).
    pub messages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountReport {
    pub source_login: String,
    pub target_login: String,
    pub aliases: Vec<String>,
    pub state: String,
    pub last_error: Option<String>,
    pub last_pass_at: Option<i64>,
    pub last_new_mail_at: Option<i64>,
    pub folders: Vec<FolderReport>,
    pub totals: Totals,
    pub skipped: Vec<SkipItem>,
    pub verification: Option<VerifyResult>,
    /// When the operator removed the account from the migration (`postflytt remove`), if they did.
    pub removed_at: Option<i64>,
    /// When the account's users switched to the new host, and who said so ("mx" or "operator");
    /// until then the new host followed their moves and deletions on the old server.
    pub switched_at: Option<i64>,
    pub switched_by: Option<&'static str>,
    /// Target copies that following moved to another folder, and removed.
    pub mirror_moved: u64,
    pub mirror_removed: u64,
    /// Calendars and contacts, when DAV servers were set up on both sides.
    pub dav: Option<DavSection>,
}

impl AccountReport {
    /// None when never verified.
    pub fn verified(&self) -> Option<bool> {
        self.verification.as_ref().map(|v| v.ok)
    }
}

/// One thing the customer must still do, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecklistItem {
    pub id: &'static str,
    pub sv: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Unix seconds.
    pub generated_at: i64,
    pub finished_at: Option<i64>,
    /// Built before the migration finished: its numbers still change.
    pub preliminary: bool,
    pub source_host: Option<String>,
    pub target_host: Option<String>,
    /// Customer domains, from the account addresses and aliases.
    pub domains: Vec<String>,
    pub accounts: Vec<AccountReport>,
    pub totals: Totals,
    pub skipped_items: u64,
    pub accounts_verified: u64,
    /// Accounts whose last verification found problems, first thing the report says.
    pub not_verified: Vec<NotVerified>,
    /// Finished although an account did not verify (only `finish --force` does that).
    pub finished_by_force: bool,
    pub checklist: Vec<ChecklistItem>,
}

/// An account whose verification failed: how many of its messages are missing on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotVerified {
    pub account: String,
    pub missing_messages: u64,
    /// The verification's own sentence: what is missing or differs where.
    pub summary: String,
}

/// Builds the report from the store only: no password, no connection, no staged body is needed.
pub fn build(store: &Store) -> Result<Report> {
    let source_host = store.setting("source.host")?;
    let target_host = store.setting("target.host")?;
    let finished_at = store.mark_number(RunMark::FinishedAt)?;
    let rows = store.account_summaries()?;
    let mirroring = store.mirror_progress()?;
    let dav_on = store.dav_set_up()?;

    let mut accounts = Vec::new();
    let mut domains = BTreeSet::new();
    for row in rows {
        let aliases: Vec<String> = row.aliases.split([',', ';']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
        for address in std::iter::once(&row.source_login).chain(aliases.iter()) {
            if let Some((_, domain)) = address.rsplit_once('@') {
                domains.insert(domain.to_ascii_lowercase());
            }
        }
        // A damaged stored verification must not take the whole report down; it reads as "not verified".
        let verification = match verify::load(store, row.id) {
            Ok(v) => v,
            Err(e) => {
                log::warn!("{}: {e:#}", row.source_login);
                None
            }
        };
        let folders =
            folders_of(store, row.id, verification.as_ref()).with_context(|| format!("reading the folders of {}", row.source_login))?;
        let mut totals = Totals::default();
        for f in &folders {
            totals.add(&f.totals);
        }
        let mirror = mirroring.get(&row.id).copied().unwrap_or_default();
        accounts.push(AccountReport {
            switched_at: mirror.switched.map(|s| s.at),
            switched_by: mirror.switched.map(|s| s.by.as_str()),
            mirror_moved: mirror.moved.max(0) as u64,
            mirror_removed: mirror.removed.max(0) as u64,
            dav: if dav_on { Some(dav::section(store, row.id)?) } else { None },
            skipped: skips_of(store, row.id)?,
            source_login: row.source_login,
            target_login: row.target_login,
            aliases,
            state: row.state.as_str().to_string(),
            last_error: row.last_error,
            removed_at: row.removed_at,
            last_pass_at: row.last_pass_at,
            last_new_mail_at: row.last_new_mail_at,
            folders,
            totals,
            verification,
        });
    }

    let mut totals = Totals::default();
    for a in &accounts {
        totals.add(&a.totals);
    }
    let domains: Vec<String> = domains.into_iter().collect();
    let not_verified: Vec<NotVerified> = accounts
        .iter()
        .filter_map(|a| a.verification.as_ref().filter(|v| !v.ok).map(|v| (a, v)))
        .map(|(a, v)| NotVerified {
            account: a.source_login.clone(),
            missing_messages: v.folders.iter().map(|f| f.missing_count).sum(),
            summary: v.summary(),
        })
        .collect();
    Ok(Report {
        finished_by_force: finished_at.is_some() && !not_verified.is_empty(),
        not_verified,
        generated_at: now(),
        preliminary: finished_at.is_none(),
        finished_at,
        checklist: checklist(
            source_host.as_deref(),
            &domains,
            dav::checklist_item(dav_on.then(|| accounts.iter().filter_map(|a| a.dav.as_ref()).collect())),
        ),
        source_host,
        target_host,
        domains,
        skipped_items: accounts.iter().flat_map(|a| &a.skipped).map(|s| s.messages).sum(),
        accounts_verified: accounts.iter().filter(|a| a.verified() == Some(true)).count() as u64,
        totals,
        accounts,
    })
}

/// Folders the source lists now, and folders it no longer lists whose mail we still hold counts of.
fn folders_of(store: &Store, account_id: i64, verification: Option<&VerifyResult>) -> Result<Vec<FolderReport>> {
    let verified: BTreeMap<&str, bool> =
        verification.map(|v| v.folders.iter().map(|f| (f.source.as_str(), f.ok())).collect()).unwrap_or_default();
    let rows = store.folder_counts(account_id)?.into_iter().map(|f| {
        let totals = Totals {
            messages: f.messages as u64,
            bytes: f.bytes as u64,
            copied: f.copied as u64,
            copied_bytes: f.copied_bytes as u64,
            refused: f.refused as u64,
            refused_bytes: f.refused_bytes as u64,
            not_copied: (f.messages - f.copied - f.refused).max(0) as u64,
        };
        (f.source, f.target, f.present, totals, f.left_out)
    });
    let mut out = Vec::new();
    for (source, target, present, totals, note) in rows {
        let verified = verified.get(source.as_str()).copied();
        let left_out = note.as_deref().map(|n| crate::folder_view::report_words(n, false));
        out.push(FolderReport { source, target, present, totals, verified, left_out, left_out_note: note });
    }
    Ok(out)
}

fn skips_of(store: &Store, account_id: i64) -> Result<Vec<SkipItem>> {
    let mut items = Vec::new();
    let mut left_out: BTreeMap<(Option<String>, String), SkipItem> = BTreeMap::new();
    for s in store.skips_with_messages(account_id)? {
        let item = SkipItem {
            folder: s.folder,
            reason: s.reason,
            server_says: s.server_says,
            at: s.at,
            size: s.size.map(|n| n as u64),
            date: s.internal_date,
            messages: 1,
        };
        if !item.reason.starts_with(crate::store::LEFT_OUT_REASON) {
            items.push(item);
            continue;
        }
        let entry = left_out.entry((item.folder.clone(), item.reason.clone())).or_insert(SkipItem {
            messages: 0,
            size: Some(0),
            date: None,
            ..item.clone()
        });
        entry.messages += 1;
        entry.size = Some(entry.size.unwrap_or(0) + item.size.unwrap_or(0));
        entry.at = entry.at.max(item.at);
    }
    items.extend(left_out.into_values());
    Ok(items)
}

/// What the customer must still do after the mail has moved; names the old host and the domains
/// where we know them, so the list is concrete.
fn checklist(source_host: Option<&str>, domains: &[String], calendars_contacts: ChecklistItem) -> Vec<ChecklistItem> {
    let old_sv = source_host.map(|h| format!(" ({h})")).unwrap_or_default();
    let old_en = old_sv.clone();
    let domains_text = if domains.is_empty() { String::new() } else { format!(": {}", domains.join(", ")) };
    vec![
        ChecklistItem {
            id: "delete_old_accounts",
            sv: format!(
                "Radera de gamla e-postkontona och domänen hos den gamla leverantören{old_sv}, när ni har sett att all e-post finns på den nya servern."
            ),
            en: format!(
                "Delete the old mail accounts and the domain at the old provider{old_en}, once you have seen that all mail is on the new server."
            ),
        },
        ChecklistItem {
            id: "cancel_contract",
            sv: "Säg upp avtalet med den gamla leverantören.".into(),
            en: "Cancel the contract with the old provider.".into(),
        },
        calendars_contacts,
        ChecklistItem {
            id: "dns_records",
            sv: format!(
                "Ändra de DNS-poster som fortfarande pekar på den gamla leverantören (SPF i TXT-posten, autodiscover/autoconfig, DKIM){domains_text}."
            ),
            en: format!(
                "Change the DNS records that still point at the old provider (SPF in the TXT record, autodiscover/autoconfig, DKIM){domains_text}."
            ),
        },
        ChecklistItem {
            id: "readd_on_phones",
            sv: "Be användarna ta bort och lägga till kontot på nytt i mobiler, surfplattor och e-postprogram, med den nya serverns inställningar.".into(),
            en: "Tell users to remove and re-add the account on phones, tablets and mail apps, with the new server's settings.".into(),
        },
    ]
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A Unix time as a person reads it (the report, the e-mail notices), in the appliance's local time zone: "6 december 2026 kl. 18:05" or
/// "6 December 2026, 18:05", then the zone as "UTC" or "UTC+1" (never a bare "+00:00"), so a reader
/// elsewhere is not misled.
pub fn format_time(secs: i64, lang: Lang) -> String {
    let Some(utc) = chrono::DateTime::from_timestamp(secs, 0) else {
        return secs.to_string();
    };
    let local = utc.with_timezone(&chrono::Local);
    human_time(&local, local.offset().local_minus_utc(), lang)
}

fn human_time<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>, offset_seconds: i32, lang: Lang) -> String {
    use chrono::{Datelike, Timelike};
    const MONTHS_SV: [&str; 12] =
        ["januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"];
    const MONTHS_EN: [&str; 12] =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    let month = t.month0() as usize % 12;
    let zone = match offset_seconds {
        0 => "UTC".to_string(),
        o if o % 3600 == 0 => format!("UTC{:+}", o / 3600),
        o => format!("UTC{}{}:{:02}", if o < 0 { '-' } else { '+' }, o.abs() / 3600, o.abs() % 3600 / 60),
    };
    match lang {
        Lang::Sv => format!("{} {} {} kl. {:02}:{:02} {zone}", t.day(), MONTHS_SV[month], t.year(), t.hour(), t.minute()),
        Lang::En => format!("{} {} {}, {:02}:{:02} {zone}", t.day(), MONTHS_EN[month], t.year(), t.hour(), t.minute()),
    }
}

/// A count with thousands grouped the way each language writes it (12 345 / 12,345).
fn group(n: u64, lang: Lang) -> String {
    let digits = n.to_string();
    let sep = lang.pick("\u{a0}", ",");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

fn verified_word(verified: Option<bool>, lang: Lang) -> &'static str {
    match verified {
        Some(true) => lang.pick("ja", "yes"),
        Some(false) => lang.pick("nej", "no"),
        None => "–",
    }
}

const CSS: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1b1b1b; margin: 2em auto; max-width: 60em; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { text-align: left; padding: 0.25em 0.5em; border-bottom: 1px solid #e2e2e2; vertical-align: top; }
th { background: #f3f3f3; }
td.n, th.n { text-align: right; white-space: nowrap; }
.ok { color: #17692b; font-weight: 600; }
.bad { color: #a3161b; font-weight: 600; }
.attention { border: 2px solid #a3161b; padding: 0 1em; margin: 1em 0; }
.muted { color: #666; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; margin: 0.5em 0; }
dt { color: #555; }
dd { margin: 0; }
ol.todo li { margin-bottom: 0.4em; }
section.account { page-break-inside: avoid; break-inside: avoid; }
code { font-size: 0.9em; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
td, dd { overflow-wrap: anywhere; }
.preliminary { background: #fff4d6; border: 1px solid #e0b84c; padding: 0.6em 0.8em; border-radius: 4px; }
@media (max-width: 40em) { body { margin: 1em auto; padding: 0 0.6em; } dl { grid-template-columns: 1fr; } dd { margin-bottom: 0.3em; } }
@media print { body { margin: 0; max-width: none; } h2 { page-break-after: avoid; } a { color: inherit; text-decoration: none; } }
";

impl Report {
    /// A complete, self-contained HTML page (inline CSS, no scripts), printable as it is.
    pub fn html(&self, lang: Lang) -> String {
        let t = |sv: &'static str, en: &'static str| lang.pick(sv, en);
        let e = escape_html;
        let mut h = String::new();
        let title = t("Rapport: flytt av e-post", "Report: e-mail migration");
        h.push_str(&format!(
            "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
            t("sv", "en")
        ));
        h.push_str(&format!("<h1>{title}</h1>\n<p class=\"meta\">"));
        h.push_str(&format!("{} {}", t("Skapad", "Generated"), e(&format_time(self.generated_at, lang))));
        if let Some(f) = self.finished_at {
            h.push_str(&format!(" · {} {}", t("Flytten avslutad", "Migration finished"), e(&format_time(f, lang))));
        }
        h.push_str("<br>");
        h.push_str(&format!(
            "{} <strong>{}</strong> → {} <strong>{}</strong>",
            t("Från", "From"),
            e(self.source_host.as_deref().unwrap_or("?")),
            t("till", "to"),
            e(self.target_host.as_deref().unwrap_or("?"))
        ));
        if !self.domains.is_empty() {
            h.push_str(&format!("<br>{} {}", t("Domäner:", "Domains:"), e(&self.domains.join(", "))));
        }
        h.push_str("</p>\n");
        if self.finished_at.is_none() {
            h.push_str(&format!(
                "<p class=\"preliminary\" id=\"preliminary\"><strong>{}</strong> {}</p>\n",
                t("Preliminär rapport.", "Preliminary report."),
                t(
                    "Flytten är inte avslutad än: siffrorna ändras tills den är klar, och den slutliga rapporten finns när den är avslutad.",
                    "The migration is not finished yet: the numbers change until it is, and the final report is here once it is finished."
                )
            ));
        }

        // Summary.
        h.push_str(&format!("<h2>{}</h2>\n", t("Sammanfattning", "Summary")));
        h.push_str(&format!(
            "<p>{} {} · {} {} ({}) · {} {} · {} {} / {}</p>\n",
            t("Konton:", "Accounts:"),
            self.accounts.len(),
            t("kopierade meddelanden:", "messages copied:"),
            group(self.totals.copied, lang),
            e(&human_bytes(self.totals.copied_bytes)),
            t("överhoppade poster:", "skipped items:"),
            group(self.skipped_items, lang),
            t("verifierade konton:", "accounts verified:"),
            self.accounts_verified,
            self.accounts.len()
        ));
        self.not_verified_html(&mut h, lang);
        h.push_str(&format!(
            "<table>\n<tr><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{}</th></tr>\n",
            t("Konto", "Account"),
            t("Nytt konto", "New account"),
            t("Meddelanden", "Messages"),
            t("Storlek", "Size"),
            t("Överhoppade", "Skipped"),
            t("Verifierat", "Verified")
        ));
        for a in &self.accounts {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td></tr>\n",
                e(&a.source_login),
                e(&a.target_login),
                group(a.totals.copied, lang),
                e(&human_bytes(a.totals.copied_bytes)),
                group(a.skipped.iter().map(|s| s.messages).sum(), lang),
                verified_class(a.verified()),
                verified_word(a.verified(), lang)
            ));
        }
        h.push_str("</table>\n");

        // What the customer must still do: early on the page, it is what they act on.
        h.push_str(&format!("<h2>{}</h2>\n<ol class=\"todo\">\n", t("Det här behöver ni göra nu", "What you need to do now")));
        for item in &self.checklist {
            h.push_str(&format!(
                "<li>{}</li>\n",
                e(match lang {
                    Lang::Sv => &item.sv,
                    Lang::En => &item.en,
                })
            ));
        }
        h.push_str("</ol>\n");

        for a in &self.accounts {
            self.account_html(&mut h, a, lang);
        }
        h.push_str("</body>\n</html>\n");
        // Wide tables scroll inside their box on a phone instead of widening the whole page.
        h.replace("<table", "<div class=\"scroll\"><table").replace("</table>", "</table></div>")
    }

    /// Accounts that did not verify, named with what is missing, before anything else is listed: a
    /// report must never read as all well when mail is missing.
    fn not_verified_html(&self, h: &mut String, lang: Lang) {
        if self.not_verified.is_empty() {
            return;
        }
        let t = |sv: &'static str, en: &'static str| lang.pick(sv, en);
        h.push_str(&format!("<div class=\"attention\">\n<h2>{}</h2>\n", t("Behöver åtgärdas", "Needs attention")));
        if self.finished_by_force {
            h.push_str(&format!(
                "<p>{}</p>\n",
                t(
                    "Flytten avslutades med tvång trots att verifieringen hittade problem: e-post saknas på den nya servern.",
                    "The migration was finished by force although verification found problems: mail is missing on the new server."
                )
            ));
        }
        h.push_str("<ul>\n");
        for a in &self.not_verified {
            h.push_str(&format!(
                "<li><strong>{}</strong>: {} {} <span class=\"muted\">({})</span></li>\n",
                escape_html(&a.account),
                t("inte verifierat,", "not verified,"),
                match (lang, a.missing_messages) {
                    (Lang::Sv, 1) => "1 meddelande saknas på den nya servern".to_string(),
                    (Lang::Sv, n) => format!("{} meddelanden saknas på den nya servern", group(n, lang)),
                    (Lang::En, 1) => "1 message missing on the new server".to_string(),
                    (Lang::En, n) => format!("{} messages missing on the new server", group(n, lang)),
                },
                escape_html(&a.summary)
            ));
        }
        h.push_str("</ul>\n</div>\n");
    }

    fn account_html(&self, h: &mut String, a: &AccountReport, lang: Lang) {
        let t = |sv: &'static str, en: &'static str| lang.pick(sv, en);
        let e = escape_html;
        h.push_str(&format!("<section class=\"account\">\n<h2>{}</h2>\n<dl>\n", e(&a.source_login)));
        h.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", t("Nytt konto", "New account"), e(&a.target_login)));
        if let Some(at) = a.removed_at {
            let when = e(&format_time(at, lang));
            h.push_str(&format!(
                "<dt>{}</dt><dd class=\"bad\">{}</dd>\n",
                t("Borttaget", "Removed"),
                match lang {
                    Lang::Sv => format!("Togs bort ur flytten av administratören {when}; det som hann kopieras dessförinnan räknas nedan."),
                    Lang::En =>
                        format!("Removed from the migration by the operator on {when}; what had been copied by then is counted below."),
                }
            ));
        }
        if !a.aliases.is_empty() {
            h.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", t("Alias", "Aliases"), e(&a.aliases.join(", "))));
        }
        h.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>\n",
            t("Senaste kopiering", "Last pass"),
            a.last_pass_at.map(|s| e(&format_time(s, lang))).unwrap_or_else(|| "–".into())
        ));
        h.push_str(&format!(
            "<dt>{}</dt><dd>{} ({})</dd>\n",
            t("Kopierat", "Copied"),
            group(a.totals.copied, lang),
            e(&human_bytes(a.totals.copied_bytes))
        ));
        if a.totals.not_copied > 0 {
            h.push_str(&format!(
                "<dt>{}</dt><dd class=\"bad\">{}</dd>\n",
                t("Ej kopierat", "Not copied"),
                group(a.totals.not_copied, lang)
            ));
        }
        if let Some(err) = &a.last_error {
            h.push_str(&format!("<dt>{}</dt><dd class=\"bad\">{}</dd>\n", t("Senaste fel", "Last error"), e(err)));
        }
        switch_html(h, a, lang);
        h.push_str("</dl>\n");

        h.push_str(&format!("<h3>{}</h3>\n", t("Mappar", "Folders")));
        if a.folders.is_empty() {
            h.push_str(&format!("<p class=\"muted\">{}</p>\n", t("Inga mappar lästes.", "No folders were read.")));
        } else {
            h.push_str(&format!(
                "<table>\n<tr><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{}</th></tr>\n",
                t("Mapp", "Folder"),
                t("Ny mapp", "New folder"),
                t("Meddelanden", "Messages"),
                t("Storlek", "Size"),
                t("Kopierade", "Copied"),
                t("Överhoppade", "Skipped"),
                t("Verifierad", "Verified")
            ));
            for f in &a.folders {
                let gone = if f.present { "" } else { t(" (borttagen i den gamla)", " (deleted on the old server)") };
                if let (Some(why), Some(note)) = (&f.left_out, &f.left_out_note) {
                    // Left out by the operator's choice: said so, with why, rather than "not verified".
                    let why = if lang == Lang::Sv { crate::folder_view::report_words(note, true) } else { why.clone() };
                    h.push_str(&format!(
                        "<tr class=\"left-out\"><td>{}</td><td class=\"muted\" colspan=\"5\">{}</td><td class=\"muted\">{}</td></tr>\n",
                        e(&f.source),
                        e(&why),
                        t("lämnades kvar", "left out")
                    ));
                    continue;
                }
                h.push_str(&format!(
                    "<tr><td>{}{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td></tr>\n",
                    e(&f.source),
                    gone,
                    e(f.target.as_deref().unwrap_or("–")),
                    group(f.totals.messages, lang),
                    e(&human_bytes(f.totals.bytes)),
                    group(f.totals.copied, lang),
                    group(f.totals.refused, lang),
                    verified_class(f.verified),
                    verified_word(f.verified, lang)
                ));
            }
            h.push_str("</table>\n");
        }

        h.push_str(&format!("<h3>{}</h3>\n", t("Överhoppat", "Skipped")));
        if a.skipped.is_empty() {
            h.push_str(&format!("<p class=\"muted\">{}</p>\n", t("Inget hoppades över.", "Nothing was skipped.")));
        } else {
            h.push_str(&format!(
                "<table>\n<tr><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th><th>{}</th></tr>\n",
                t("Mapp", "Folder"),
                t("Orsak", "Reason"),
                t("Serverns svar", "The server said"),
                t("Storlek", "Size"),
                t("Tid", "Time")
            ));
            for s in &a.skipped {
                let what = match &s.date {
                    Some(d) => format!("{} <span class=\"muted\">({} {})</span>", e(&s.reason), t("daterat", "dated"), e(d.trim())),
                    None if s.messages != 1 => {
                        format!(
                            "{} <span class=\"muted\">({} {})</span>",
                            e(&s.reason),
                            group(s.messages, lang),
                            t("meddelanden", "messages")
                        )
                    }
                    None => e(&s.reason),
                };
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{what}</td><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td></tr>\n",
                    e(s.folder.as_deref().unwrap_or("–")),
                    e(s.server_says.as_deref().unwrap_or("")),
                    s.size.map(|n| e(&human_bytes(n))).unwrap_or_default(),
                    e(&format_time(s.at, lang))
                ));
            }
            h.push_str("</table>\n");
        }

        if let Some(section) = &a.dav {
            dav::html(h, section, lang);
        }
        h.push_str(&format!("<h3>{}</h3>\n", t("Verifiering", "Verification")));
        match &a.verification {
            None => h.push_str(&format!("<p class=\"muted\">{}</p>\n", t("Inte verifierat.", "Not verified."))),
            Some(v) => verification_html(h, v, lang),
        }
        h.push_str("</section>\n");
    }

    /// One row per account and folder (an account without folders gets one row, so none is
    /// dropped), in the format of `export::csv`.
    pub fn csv(&self) -> Result<Vec<u8>> {
        let word = |v: Option<bool>| match v {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        let mut rows = vec![
            [
                "account",
                "folder",
                "target folder",
                "messages",
                "bytes",
                "skipped",
                "verified",
                "switched at",
                "switched by",
                "moved",
                "removed",
                "left out",
                "calendars",
                "address books",
                "items copied",
                "items refused",
            ]
            .map(String::from),
        ];
        for a in &self.accounts {
            // The account's switch and what following the old server did, on each of its rows.
            let switched_at = a
                .switched_at
                .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
                .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            let switch = [switched_at, a.switched_by.unwrap_or_default().into(), a.mirror_moved.to_string(), a.mirror_removed.to_string()];
            if a.folders.is_empty() {
                let [at, by, moved, removed] = switch.clone();
                let [calendars, books, copied, refused] = dav::csv_cells(a.dav.as_ref());
                rows.push([
                    a.source_login.clone(),
                    String::new(),
                    String::new(),
                    "0".into(),
                    "0".into(),
                    a.skipped.iter().map(|s| s.messages).sum::<u64>().to_string(),
                    word(a.verified()).into(),
                    at,
                    by,
                    moved,
                    removed,
                    String::new(),
                    calendars,
                    books,
                    copied,
                    refused,
                ]);
            }
            for f in &a.folders {
                let [at, by, moved, removed] = switch.clone();
                let [calendars, books, copied, refused] = dav::csv_cells(a.dav.as_ref());
                rows.push([
                    a.source_login.clone(),
                    f.source.clone(),
                    f.target.clone().unwrap_or_default(),
                    f.totals.messages.to_string(),
                    f.totals.bytes.to_string(),
                    f.totals.refused.to_string(),
                    word(f.verified).into(),
                    at,
                    by,
                    moved,
                    removed,
                    f.left_out.clone().unwrap_or_default(),
                    calendars,
                    books,
                    copied,
                    refused,
                ]);
            }
        }
        crate::export::csv::write(rows)
    }
}

/// Whether and when the account's users switched to the new host, and what following them on the old
/// server until then moved and removed on the new host.
fn switch_html(h: &mut String, a: &AccountReport, lang: Lang) {
    let t = |sv: &'static str, en: &'static str| lang.pick(sv, en);
    let switched = match (a.switched_at, a.switched_by) {
        (Some(at), by) => format!(
            "{} {}",
            escape_html(&format_time(at, lang)),
            if by == Some("mx") {
                t("(domänens MX-post pekade om till den nya servern)", "(the domain's MX record pointed at the new host)")
            } else {
                t("(enligt operatören)", "(the operator's word)")
            }
        ),
        (None, _) => t("Nej", "No").to_string(),
    };
    h.push_str(&format!("<dt>{}</dt><dd>{switched}</dd>\n", t("Gick över till den nya servern", "Switched to the new host")));
    h.push_str(&format!(
        "<dt>{}</dt><dd>{}</dd>\n",
        t("Följde den gamla servern", "Followed the old server"),
        match lang {
            Lang::Sv => format!(
                "{} flyttade och {} raderade på den nya servern, i takt med att användarna flyttade och raderade dem på den gamla servern",
                group(a.mirror_moved, lang),
                group(a.mirror_removed, lang)
            ),
            Lang::En => format!(
                "{} moved and {} removed on the new host, as the users moved and deleted them on the old server",
                group(a.mirror_moved, lang),
                group(a.mirror_removed, lang)
            ),
        }
    ));
}

fn verified_class(verified: Option<bool>) -> &'static str {
    match verified {
        Some(true) => "ok",
        Some(false) => "bad",
        None => "muted",
    }
}

/// The verification of one account in words: all well, or what is missing where.
fn verification_html(h: &mut String, v: &VerifyResult, lang: Lang) {
    let t = |sv: &'static str, en: &'static str| lang.pick(sv, en);
    let e = escape_html;
    let messages: u64 = v.folders.iter().map(|f| f.source_messages).sum();
    let on_target: u64 = v.folders.iter().map(|f| f.on_target).sum();
    let skipped: u64 = v.folders.iter().map(|f| f.skipped).sum();
    let when = e(&format_time(v.checked_at, lang));
    if v.ok {
        h.push_str(&format!(
            "<p class=\"ok\">{} {when}: {} {} {}</p>\n",
            t("Verifierat", "Verified"),
            group(on_target, lang),
            t("av", "of"),
            match lang {
                Lang::Sv => format!(
                    "{} meddelanden finns på den nya servern ({} överhoppade, se ovan).",
                    group(messages, lang),
                    group(skipped, lang)
                ),
                Lang::En =>
                    format!("{} messages are on the new server ({} skipped, see above).", group(messages, lang), group(skipped, lang)),
            }
        ));
        return;
    }
    h.push_str(&format!(
        "<p class=\"bad\">{} {when}: {} {} {} {}</p>\n",
        t("Verifieringen", "The verification of"),
        t("hittade avvikelser —", "found differences —"),
        group(on_target, lang),
        t("av", "of"),
        match lang {
            Lang::Sv => format!("{} meddelanden hittades på den nya servern.", group(messages, lang)),
            Lang::En => format!("{} messages were found on the new server.", group(messages, lang)),
        }
    ));
    if let Some(err) = &v.error {
        h.push_str(&format!("<p>{} <code>{}</code></p>\n", t("Fel:", "Error:"), e(err)));
    }
    let bad: Vec<_> = v.folders.iter().filter(|f| !f.ok()).collect();
    if bad.is_empty() {
        return;
    }
    h.push_str("<ul>\n");
    for f in bad {
        let mut parts = Vec::new();
        if f.missing_count > 0 {
            let uids: Vec<String> = f.missing.iter().take(20).map(u32::to_string).collect();
            parts.push(format!(
                "{} {} ({}; UID {}{})",
                group(f.missing_count, lang),
                t("saknas", "missing"),
                human_bytes(f.missing_bytes),
                uids.join(", "),
                if f.missing_count > 20 { " …" } else { "" }
            ));
        }
        if f.differs_count > 0 {
            let uids: Vec<String> = f.differs.iter().take(20).map(u32::to_string).collect();
            parts.push(format!(
                "{} {} (UID {}{})",
                group(f.differs_count, lang),
                t("skiljer sig från kopian på nya servern", "differ from the copy on the new server"),
                uids.join(", "),
                if f.differs_count > 20 { " …" } else { "" }
            ));
        }
        if !f.count_ok() {
            parts.push(match lang {
                Lang::Sv => format!("den nya mappen har {} meddelanden men {} kopierades dit", f.target_messages, f.pushed_rows),
                Lang::En => format!("the new folder holds {} messages but {} were copied there", f.target_messages, f.pushed_rows),
            });
        }
        if let Some(err) = &f.error {
            parts.push(err.clone());
        }
        h.push_str(&format!("<li><strong>{}</strong> → {}: {}</li>\n", e(&f.source), e(&f.target), e(&parts.join("; "))));
    }
    h.push_str("</ul>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::{AccountState, PushState};
    use crate::verify::FolderCheck;

    fn temp_store(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("postflytt-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir).unwrap(), dir)
    }

    /// Two accounts: alice with INBOX (3 pushed, 1 refused), a folder whose name is a script tag, and
    /// a folder gone from the source; bob with no folders (login never worked).
    fn fixture(store: &Store) -> i64 {
        store.set_setting("source.host", "imap.old.example").unwrap();
        store.set_setting("target.host", "mail.new.example").unwrap();
        store
            .upsert_account(
                "alice@kund.se",
                &Secret::new("pw"),
                "alice@ny.se",
                Some(&Secret::new("pw2")),
                &["info@kund.se".into(), "sales@kund2.se".into()],
            )
            .unwrap();
        store.upsert_account("bob@kund.se", &Secret::new("pw"), "bob@kund.se", None, &[]).unwrap();
        let alice = store.account_id("alice@kund.se").unwrap().unwrap();
        store.write(|tx| tx.record_account_pass(alice, 1700000000, None, false)).unwrap();
        assert_eq!(store.account_summaries().unwrap()[0].state, AccountState::Synced);
        let folder = |name: &str, target: &str, present: bool| store.insert_folder_for_tests(alice, name, target, present, 7);
        let inbox = folder("INBOX", "INBOX", true);
        let evil = folder("<script>alert(1)</script>", "Kunder/Åre", true);
        let gone = folder("Old", "Old", false);
        let message = |folder: i64, uid: u32, size: i64, state: PushState| store.insert_message_for_tests(folder, 7, uid, size, state);
        message(inbox, 1, 100, PushState::Pushed);
        message(inbox, 2, 200, PushState::Pushed);
        message(inbox, 3, 300, PushState::Pushed);
        let big = message(inbox, 4, 50_000_000, PushState::Refused);
        message(evil, 1, 1000, PushState::Pushed);
        message(evil, 2, 1000, PushState::Pending);
        message(gone, 1, 10, PushState::Pushed);
        store.record_skip(alice, Some(big), "INBOX", "the target refused the message", Some("NO [TOOBIG] message too large")).unwrap();
        store.record_skip(alice, None, "Trasig", "folder could not be copied", Some("NO <b>bad</b>")).unwrap();
        alice
    }

    #[test]
    fn numbers_in_json() {
        let (store, dir) = temp_store("json");
        fixture(&store);
        let report = build(&store).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["source_host"], "imap.old.example");
        assert_eq!(json["target_host"], "mail.new.example");
        assert_eq!(json["domains"], serde_json::json!(["kund.se", "kund2.se"]));
        assert_eq!(json["accounts"].as_array().unwrap().len(), 2);
        let alice = &json["accounts"][0];
        assert_eq!(alice["source_login"], "alice@kund.se");
        assert_eq!(alice["aliases"], serde_json::json!(["info@kund.se", "sales@kund2.se"]));
        assert_eq!(alice["last_pass_at"], 1700000000);
        assert_eq!(alice["totals"]["messages"], 7);
        assert_eq!(alice["totals"]["copied"], 5);
        assert_eq!(alice["totals"]["copied_bytes"], 100 + 200 + 300 + 1000 + 10);
        assert_eq!(alice["totals"]["refused"], 1);
        assert_eq!(alice["totals"]["not_copied"], 1);
        let folders = alice["folders"].as_array().unwrap();
        let names: Vec<&str> = folders.iter().map(|f| f["source"].as_str().unwrap()).collect();
        assert_eq!(names, ["<script>alert(1)</script>", "INBOX", "Old"]);
        let inbox = &folders[1];
        assert_eq!(inbox["target"], "INBOX");
        assert_eq!(inbox["messages"], 4);
        assert_eq!(inbox["bytes"], 600 + 50_000_000);
        assert_eq!(inbox["copied"], 3);
        assert_eq!(inbox["refused"], 1);
        assert_eq!(inbox["refused_bytes"], 50_000_000);
        assert_eq!(folders[2]["present"], false);
        let skipped = alice["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0]["server_says"], "NO [TOOBIG] message too large");
        assert_eq!(skipped[0]["size"], 50_000_000);
        assert_eq!(skipped[1]["size"], serde_json::Value::Null);
        assert_eq!(json["accounts"][1]["folders"].as_array().unwrap().len(), 0);
        assert_eq!(json["totals"]["copied"], 5);
        assert_eq!(json["skipped_items"], 2);
        assert_eq!(json["accounts_verified"], 0);
        assert_eq!(json["checklist"].as_array().unwrap().len(), 5);
        assert!(json["checklist"][3]["sv"].as_str().unwrap().contains("kund.se, kund2.se"));
        assert!(json["checklist"][0]["en"].as_str().unwrap().contains("imap.old.example"));
        // Nothing secret in the JSON.
        assert!(!serde_json::to_string(&report).unwrap().contains("password"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn verification_is_included() {
        let (store, dir) = temp_store("verified");
        fixture(&store);
        let inbox = FolderCheck {
            source: "INBOX".into(),
            target: "INBOX".into(),
            source_messages: 4,
            on_target: 3,
            skipped: 1,
            ..FolderCheck::default()
        };
        let evil = FolderCheck {
            source: "<script>alert(1)</script>".into(),
            target: "Kunder/Åre".into(),
            source_messages: 2,
            on_target: 1,
            missing: vec![2],
            missing_count: 1,
            missing_bytes: 1000,
            ..FolderCheck::default()
        };
        let result =
            VerifyResult { account: "alice@kund.se".into(), ok: false, checked_at: 1700000100, folders: vec![inbox, evil], error: None };
        verify::record(&store, &result).unwrap();
        let report = build(&store).unwrap();
        let alice = &report.accounts[0];
        assert_eq!(alice.verified(), Some(false));
        assert_eq!(alice.folders[1].verified, Some(true));
        assert_eq!(alice.folders[0].verified, Some(false));
        assert_eq!(alice.folders[2].verified, None);
        let html = report.html(Lang::En);
        assert!(html.contains("1 missing"), "{html}");
        assert!(html.contains("found differences"));
        // Not verified is said first, with the count, and not as finished by force before finish.
        assert_eq!(report.not_verified, [NotVerified { account: "alice@kund.se".into(), missing_messages: 1, summary: result.summary() }]);
        assert!(!report.finished_by_force);
        assert!(html.contains("Needs attention") && html.contains("not verified, 1 message missing on the new server"), "{html}");
        store.stamp(RunMark::FinishedAt).unwrap();
        let forced = build(&store).unwrap();
        assert!(forced.finished_by_force);
        assert!(forced.html(Lang::Sv).contains("Flytten avslutades med tvång"));
        assert!(forced.html(Lang::En).contains("finished by force"));
        let csv = String::from_utf8(report.csv().unwrap()).unwrap();
        assert!(csv.contains("alice@kund.se;INBOX;INBOX;4;50000600;1;yes;;;0;0;;;;;\r\n"), "{csv}");
        assert!(csv.contains(";no;;;0;0;;;;;\r\n"), "{csv}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn times_read_as_words_with_their_zone_never_a_bare_offset() {
        let t = chrono::DateTime::from_timestamp(1_765_040_700, 0).expect("time"); // 2025-12-06 17:05 UTC
        assert_eq!(human_time(&t, 0, Lang::Sv), "6 december 2025 kl. 17:05 UTC");
        assert_eq!(human_time(&t, 0, Lang::En), "6 December 2025, 17:05 UTC");
        let stockholm = t.with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset"));
        assert_eq!(human_time(&stockholm, 3600, Lang::Sv), "6 december 2025 kl. 18:05 UTC+1");
        let kolkata = t.with_timezone(&chrono::FixedOffset::east_opt(19_800).expect("offset"));
        assert_eq!(human_time(&kolkata, 19_800, Lang::En), "6 December 2025, 22:35 UTC+5:30");
        assert!(!format_time(1_765_040_700, Lang::En).contains("+00:00"));
    }

    #[test]
    fn html_escapes_and_is_complete() {
        let (store, dir) = temp_store("html");
        fixture(&store);
        let report = build(&store).unwrap();
        for lang in [Lang::Sv, Lang::En] {
            let html = report.html(lang);
            assert!(html.starts_with("<!DOCTYPE html>"));
            assert!(html.trim_end().ends_with("</html>"));
            assert!(!html.contains("<script>"), "unescaped folder name");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
            assert!(html.contains("NO &lt;b&gt;bad&lt;/b&gt;"));
            assert!(html.contains("Kunder/Åre"));
            assert!(html.contains("<style>"));
            assert!(!html.contains("<link") && !html.contains("src="), "self-contained");
            assert!(html.contains("imap.old.example"));
        }
        let sv = report.html(Lang::Sv);
        assert!(sv.contains("Säg upp avtalet") && sv.contains("lang=\"sv\""));
        assert!(sv.contains("Inte verifierat."));
        let en = report.html(Lang::En);
        assert!(en.contains("Cancel the contract") && en.contains("lang=\"en\""));
        // Not finished: said at the top, in words and in the JSON.
        assert!(report.preliminary && en.contains("Preliminary report.") && sv.contains("Preliminär rapport."));
        // Every table scrolls inside its box on a phone.
        assert_eq!(en.matches("<table").count(), en.matches("<div class=\"scroll\"><table").count());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn csv_rows() {
        let (store, dir) = temp_store("csv");
        fixture(&store);
        let bytes = build(&store).unwrap().csv().unwrap();
        assert!(bytes.starts_with(&[0xef, 0xbb, 0xbf]));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "account;folder;target folder;messages;bytes;skipped;verified;switched at;switched by;moved;removed;left out;calendars;address books;items copied;items refused"
        );
        assert_eq!(lines.len(), 1 + 3 + 1, "{text}");
        assert_eq!(lines[1], "alice@kund.se;<script>alert(1)</script>;Kunder/Åre;2;2000;0;;;;0;0;;;;;");
        assert_eq!(lines[2], "alice@kund.se;INBOX;INBOX;4;50000600;1;;;;0;0;;;;;");
        assert_eq!(lines[3], "alice@kund.se;Old;Old;1;10;0;;;;0;0;;;;;");
        assert_eq!(lines[4], "bob@kund.se;;;0;0;0;;;;0;0;;;;;");
        // A folder name with the separator is quoted, not split.
        store.rename_folder_for_tests("Old", "a;b");
        let text = String::from_utf8(build(&store).unwrap().csv().unwrap()).unwrap();
        assert!(text.contains("alice@kund.se;\"a;b\";Old;1;10;0;;"), "{text}");
        // A folder name that a spreadsheet would run as a formula is written as text.
        store.rename_folder_for_tests("a;b", "=HYPERLINK(\"http://x\",\"y\")");
        let text = String::from_utf8(build(&store).unwrap().csv().unwrap()).unwrap();
        assert!(text.contains("alice@kund.se;\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\";Old;"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 17: whether and when each account switched, who said so, and what following the old
    /// server moved and removed, in the JSON, both languages' HTML and the CSV.
    #[test]
    fn the_switch_and_what_mirroring_did_per_account() {
        let (store, dir) = temp_store("switched");
        let alice = fixture(&store);
        let pass = store.write(|tx| tx.start_pass(alice)).unwrap();
        let counts = crate::store::PassTotals { moved: 10, removed: 5, ..Default::default() };
        store.write(|tx| tx.finish_pass(pass, &counts)).unwrap();
        store.write(|tx| tx.mark_switched(alice, 1_765_040_700, crate::store::SwitchedBy::Mx)).unwrap();
        let report = build(&store).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            (json["accounts"][0]["switched_at"].as_i64(), json["accounts"][0]["switched_by"].as_str()),
            (Some(1_765_040_700), Some("mx"))
        );
        assert_eq!((json["accounts"][0]["mirror_moved"].as_u64(), json["accounts"][0]["mirror_removed"].as_u64()), (Some(10), Some(5)));
        assert_eq!(json["accounts"][1]["switched_at"], serde_json::Value::Null);
        let en = report.html(Lang::En);
        let when = format_time(1_765_040_700, Lang::En);
        assert!(
            en.contains(&format!("<dt>Switched to the new host</dt><dd>{when} (the domain's MX record pointed at the new host)</dd>")),
            "{en}"
        );
        assert!(
            en.contains("<dd>10 moved and 5 removed on the new host, as the users moved and deleted them on the old server</dd>"),
            "{en}"
        );
        assert!(en.contains("<dt>Switched to the new host</dt><dd>No</dd>"), "bob did not switch: {en}");
        let sv = report.html(Lang::Sv);
        let when = format_time(1_765_040_700, Lang::Sv);
        assert!(sv.contains(&format!("<dt>Gick över till den nya servern</dt><dd>{when} (domänens MX-post pekade om")), "{sv}");
        assert!(sv.contains("<dd>10 flyttade och 5 raderade på den nya servern"), "{sv}");
        let csv = String::from_utf8(report.csv().unwrap()).unwrap();
        assert!(csv.contains("alice@kund.se;INBOX;INBOX;4;50000600;1;;2025-12-06 17:05 UTC;mx;10;5;;;;;\r\n"), "{csv}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn works_after_purge() {
        let (store, dir) = temp_store("purged");
        fixture(&store);
        let before = build(&store).unwrap();
        store.purge().unwrap();
        assert_eq!(store.spooled_for_tests(), (0, 0));
        assert!(store.accounts(&[]).unwrap().iter().all(|a| a.source_password.is_none() && a.target_password.is_none()));
        let after = build(&store).unwrap();
        assert_eq!(after.accounts, before.accounts);
        assert_eq!(after.totals, before.totals);
        assert!(after.html(Lang::Sv).contains("alice@kund.se"));
        assert!(!after.csv().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_verification_reads_as_unverified() {
        let (store, dir) = temp_store("damaged");
        let alice = fixture(&store);
        store.set_verification(alice, "{oops").unwrap();
        assert_eq!(build(&store).unwrap().accounts[0].verification, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn escaping_and_grouping() {
        assert_eq!(escape_html("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(escape_html("Åre"), "Åre");
        assert_eq!(group(1234567, Lang::En), "1,234,567");
        assert_eq!(group(1234, Lang::Sv), "1\u{a0}234");
        assert_eq!(group(999, Lang::Sv), "999");
        assert_eq!(group(0, Lang::En), "0");
    }
}
