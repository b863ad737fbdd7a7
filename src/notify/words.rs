//! What the notices say, in Swedish and English (the notice language, Swedish unless set to en, as
//! the report defaults to Swedish): a subject and a plain-text body per event. The server's own words
//! (a login refusal, a pass's error) are quoted as they came; everything around them is ours.

use super::Audience;
use crate::check::Verdict;
use crate::report::Lang;

/// One account of a finished check.
pub struct CheckRow {
    pub login: String,
    pub verdict: Verdict,
    pub problem: String,
}

fn pick(lang: Lang, sv: &str, en: &str) -> String {
    match lang {
        Lang::Sv => sv.to_string(),
        Lang::En => en.to_string(),
    }
}

fn verdict(lang: Lang, v: Verdict) -> &'static str {
    match lang {
        Lang::En => v.words(),
        Lang::Sv => match v {
            Verdict::Ready => "klart",
            Verdict::SourceLoginFailed => "inloggningen misslyckades (gamla servern)",
            Verdict::TargetLoginFailed => "inloggningen misslyckades (nya servern)",
            Verdict::WillNotFit => "får inte plats",
            Verdict::OverSizeLimit => "har meddelanden över den nya serverns storleksgräns",
            Verdict::SourceCertificate => "inte prövat: gamla serverns certifikat är inte betrott",
            Verdict::TargetCertificate => "inte prövat: nya serverns certifikat är inte betrott",
            Verdict::DavSourceLoginFailed => "kalenderinloggningen misslyckades på gamla servern",
            Verdict::DavTargetLoginFailed => "kalenderinloggningen misslyckades på nya servern",
        },
    }
}

/// A duration in whole hours or minutes ("24 timmar", "90 minutes").
fn duration(lang: Lang, seconds: i64) -> String {
    let (n, sv, en) = if seconds >= 7200 && seconds % 3600 == 0 {
        (seconds / 3600, "timmar", "hours")
    } else if seconds >= 120 {
        (seconds / 60, "minuter", "minutes")
    } else {
        (seconds, "sekunder", "seconds")
    };
    format!("{n} {}", pick(lang, sv, en))
}

const SIGNATURE_SV: &str = "\n-- \npostflytt (skickat automatiskt)\n";
const SIGNATURE_EN: &str = "\n-- \npostflytt (sent automatically)\n";

fn signed(lang: Lang, body: String) -> String {
    body + &pick(lang, SIGNATURE_SV, SIGNATURE_EN)
}

pub fn test(lang: Lang) -> (String, String) {
    (
        pick(lang, "postflytt: provmeddelande", "postflytt: test message"),
        signed(
            lang,
            pick(
                lang,
                "Det här är ett provmeddelande från postflytt. E-post om flytten kommer fram till den här adressen.\n",
                "This is a test message from postflytt. Notices about the migration reach this address.\n",
            ),
        ),
    )
}

pub fn check_done(lang: Lang, rows: &[CheckRow]) -> (String, String) {
    let to_fix: Vec<&CheckRow> = rows.iter().filter(|r| r.verdict != Verdict::Ready).collect();
    let (total, fix) = (rows.len(), to_fix.len());
    let subject = match (lang, fix) {
        (Lang::Sv, 0) => format!("postflytt: kontrollen är klar, alla {total} konton är klara"),
        (Lang::Sv, _) => format!("postflytt: kontrollen är klar, {fix} av {total} konton behöver åtgärdas"),
        (Lang::En, 0) => format!("postflytt: check done, all {total} accounts ready"),
        (Lang::En, _) => format!("postflytt: check done, {fix} of {total} accounts need fixing"),
    };
    let mut body = match lang {
        Lang::Sv => format!("Kontrollen av {total} konton är klar: {} klara, {fix} att åtgärda.\n", total - fix),
        Lang::En => format!("The check of {total} accounts is done: {} ready, {fix} to fix.\n", total - fix),
    };
    if fix > 0 {
        body += &pick(lang, "\nKonton att åtgärda:\n", "\nAccounts to fix:\n");
        for r in to_fix {
            body += &format!("- {}: {}", r.login, verdict(lang, r.verdict));
            if !r.problem.is_empty() {
                body += &format!(": {}", r.problem);
            }
            body.push('\n');
        }
        body += &pick(
            lang,
            "\nRätta dem (nytt lösenord i kontolistan, mer utrymme på den nya servern) och kör kontrollen igen.\n",
            "\nFix them (a new password in the account list, more room on the target) and run the check again.\n",
        );
    }
    (subject, signed(lang, body))
}

pub fn pass_failed(lang: Lang, login: &str, error: &str) -> (String, String) {
    match lang {
        Lang::Sv => (
            format!("postflytt: kopieringen misslyckades för {login}"),
            signed(
                lang,
                format!(
                    "Kopieringen av {login} misslyckades: {error}\n\nKörningarna fortsätter. Du får det här meddelandet igen först när kontot \
                     har kopierats utan fel och sedan misslyckas på nytt.\n"
                ),
            ),
        ),
        Lang::En => (
            format!("postflytt: copying failed for {login}"),
            signed(
                lang,
                format!(
                    "The pass for {login} failed: {error}\n\nPasses go on. You get this message again only after the account has had a good \
                     pass and then fails anew.\n"
                ),
            ),
        ),
    }
}

pub fn mx_flipped(lang: Lang, domain: &str, at: i64) -> (String, String) {
    let at = crate::report::format_time(at, lang);
    match lang {
        Lang::Sv => (
            format!("postflytt: MX för {domain} pekar nu på den nya servern"),
            signed(
                lang,
                format!(
                    "Sedan {at} går ny e-post till {domain} till den nya servern. postflytt fortsätter att kopiera det som ändå kommer \
                     till den gamla. När ingen ny e-post har kommit dit under väntetiden är det säkert att avsluta.\n"
                ),
            ),
        ),
        Lang::En => (
            format!("postflytt: the MX records of {domain} now point at the new server"),
            signed(
                lang,
                format!(
                    "Since {at}, new mail for {domain} goes to the new server. postflytt keeps copying what still arrives at the old one. \
                     When no new mail has arrived there for the quiet period, it is safe to finish.\n"
                ),
            ),
        ),
    }
}

pub fn safe_to_finish(lang: Lang, quiet_seconds: i64) -> (String, String) {
    let quiet = duration(lang, quiet_seconds);
    match lang {
        Lang::Sv => (
            "postflytt: det är säkert att avsluta flytten".to_string(),
            signed(
                lang,
                format!(
                    "Alla domäner pekar på den nya servern och ingen ny e-post har kommit till den gamla på {quiet}. Flytten kan avslutas nu: \
                     Avsluta på sidan, eller postflytt finish.\n"
                ),
            ),
        ),
        Lang::En => (
            "postflytt: safe to finish".to_string(),
            signed(
                lang,
                format!(
                    "Every domain points at the new server and no new mail has arrived at the old one for {quiet}. You can finish now: \
                     Finish on the page, or postflytt finish.\n"
                ),
            ),
        ),
    }
}

pub fn finished(lang: Lang, audience: Audience, problems: &[String]) -> (String, String) {
    let mut body = match (lang, audience) {
        (Lang::Sv, Audience::Customer) => "Flytten av er e-post är klar. Rapporten är bifogad: den visar varje konto, vad som kopierades \
                                           och vad ni själva behöver göra nu (till exempel säga upp kontona hos den gamla leverantören).\n"
            .to_string(),
        (Lang::En, Audience::Customer) => "Your e-mail has been moved. The report is attached: it shows every account, what was copied \
                                           and what you still need to do (such as closing the accounts at the old provider).\n"
            .to_string(),
        (Lang::Sv, Audience::Operator) => {
            "Flytten är avslutad: lösenord och mellanlagrad e-post är raderade. Kundens rapport är bifogad.\n".to_string()
        }
        (Lang::En, Audience::Operator) => {
            "The migration is finished: passwords and staged mail are purged. The customer's report is attached.\n".to_string()
        }
    };
    if !problems.is_empty() {
        body += &pick(lang, "\nVerifieringen hittade problem (se rapporten):\n", "\nVerification found problems (see the report):\n");
        for p in problems {
            body += &format!("- {p}\n");
        }
    }
    let subject = match (lang, problems.is_empty()) {
        (Lang::Sv, true) => "postflytt: flytten är klar".to_string(),
        (Lang::Sv, false) => "postflytt: flytten är avslutad, med problem".to_string(),
        (Lang::En, true) => "postflytt: the migration is finished".to_string(),
        (Lang::En, false) => "postflytt: the migration is finished, with problems".to_string(),
    };
    (subject, signed(lang, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_names_each_account_to_fix_and_why_in_both_languages() {
        let rows = [
            CheckRow { login: "alice@kund.se".into(), verdict: Verdict::Ready, problem: String::new() },
            CheckRow { login: "bo@kund.se".into(), verdict: Verdict::SourceLoginFailed, problem: "[AUTHENTICATIONFAILED] nej".into() },
        ];
        let (subject, body) = check_done(Lang::En, &rows);
        assert_eq!(subject, "postflytt: check done, 1 of 2 accounts need fixing");
        assert!(body.contains("- bo@kund.se: login failed (source): [AUTHENTICATIONFAILED] nej\n"), "{body}");
        assert!(!body.contains("alice"), "{body}");
        let (subject, body) = check_done(Lang::Sv, &rows);
        assert_eq!(subject, "postflytt: kontrollen är klar, 1 av 2 konton behöver åtgärdas");
        assert!(body.contains("- bo@kund.se: inloggningen misslyckades (gamla servern): [AUTHENTICATIONFAILED] nej"), "{body}");
        assert_eq!(check_done(Lang::Sv, &rows[..1]).0, "postflytt: kontrollen är klar, alla 1 konton är klara");
        assert_eq!(duration(Lang::Sv, 86_400), "24 timmar");
        assert_eq!(duration(Lang::En, 300), "5 minutes");
        assert_eq!(duration(Lang::En, 3), "3 seconds");
    }
}
