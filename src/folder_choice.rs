//! Which source folders move, and where the operator wants some of them: the operator's exclusion
//! patterns (`setup --exclude-folder`, the API's `exclude_folders`), the account list's own per
//! account ("Exkludera mappar" / "Exclude folders"), the default exclusions of folders that hold no
//! mail, patterns that take an exclusion back (`--include-folder`), and mapping overrides
//! (`--map-folder SOURCE=TARGET`). Pure: discovery (`sync::discover`) asks it about every listed
//! folder and records the answer, with its reason, beside the mapping; nothing here does I/O.
//!
//! How a pattern matches (documented for the operator in README.md):
//! - It is matched against the source folder's decoded UTF-8 name, level by level: `/` always
//!   separates levels in a pattern, and so does the source's own delimiter (`.` on old hosts), so
//!   `Kunder/Åre` and `Kunder.Åre` both name `INBOX.Kunder.Åre` there.
//! - It is matched against the name under the personal namespace prefix, so `Kunder` names
//!   `INBOX.Kunder` on a host whose prefix is `INBOX.`; a pattern whose first level is literally the
//!   prefix (`INBOX.Kunder`, `INBOX/Kunder`, `inbox/Kunder`) is matched against the whole name, and so
//!   is every pattern against a name outside the personal namespace. A wildcard never matches the
//!   prefix: `In*` or `*/2019` there do not name every folder or the top-level `INBOX.2019`.
//! - `*` is any run of characters and `?` one character, both within one level (`*` never crosses a
//!   separator); every other character stands for itself; ASCII letters match in either case.
//! - A pattern that names a folder names its children too: `Arkiv` leaves out `Arkiv/2019/Q1`.
//! - INBOX itself is always copied: no pattern, default or namespace rule leaves it out.
//!
//! An include pattern (`--include-folder`) takes back every exclusion of the folders it names (and
//! their children): the defaults, other users' and shared folders, and the patterns alike.
//!
//! The defaults (other users' and shared folders everywhere; `NOT_MAIL` only on a source that shows
//! non-mail folders, quirk `shows_groupware_folders`) never leave out a folder that already has mail
//! copied to the target: that would stop new mail in it moving in the middle of a migration (a
//! migration started before the defaults existed, or before the source's kind was known).

use std::fmt;

use anyhow::{Result, bail};

/// Most patterns of one kind (operator's, one account's, includes, overrides): a list longer than
/// this is a paste gone wrong, not a choice.
pub const MAX_PATTERNS: usize = 100;
/// Most characters in one pattern or mapped name: longer than any real folder path.
pub const MAX_PATTERN_CHARS: usize = 300;

/// Folders that hold no mail, by the names Exchange (Outlook's folders), Kerio Connect and Zimbra
/// show over IMAP, in English and as they localise them in Swedish: calendars, contacts, tasks,
/// journal, notes, the outbox and Outlook's synchronisation logs. Compared case-insensitively with
/// the top level of the folder's name under the personal prefix; their children go with them. Only
/// on a source that shows such folders (`SourceNamespaces::shows_groupware_folders`): on Dovecot or
/// cPanel a folder called Notes or Kontakter is the user's own mail.
pub const NOT_MAIL: &[&str] = &[
    "Calendar",
    "Contacts",
    "Tasks",
    "Journal",
    "Notes",
    "Outbox",
    "Sync Issues",
    // Zimbra's address book of auto-collected addresses, and Kerio's and Exchange's plural forms.
    "Emailed Contacts",
    "Calendars",
    // Swedish (Outlook and Exchange localise the folder names to the mailbox's language).
    "Kalender",
    "Kontakter",
    "Uppgifter",
    "Anteckningar",
    "Utkorgen",
    "Synkroniseringsproblem",
    "Dagbok",
];

/// One pattern as the operator wrote it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
}

/// Checks one pattern, refused with a sentence saying why (the caller names the flag or key).
pub fn parse_pattern(text: &str) -> Result<Pattern> {
    let text = text.trim();
    if text.is_empty() {
        bail!("a folder pattern is empty; write a folder name such as Kalender or Arkiv/2019, or a glob such as Arkiv/*");
    }
    if text.chars().count() > MAX_PATTERN_CHARS {
        bail!("the folder pattern {text:?} is longer than {MAX_PATTERN_CHARS} characters");
    }
    if text.chars().all(|c| c == '/' || c == '.') {
        bail!("the folder pattern {text:?} is only separators; name a folder, e.g. Arkiv or Arkiv/*");
    }
    if text.chars().any(char::is_control) {
        bail!("the folder pattern {text:?} holds a control character (a line break or tab?)");
    }
    if text.trim_matches('/').contains("//") {
        bail!("the folder pattern {text:?} has an empty level (\"//\"); write each level's name, or * for any");
    }
    if text.trim_matches('/').eq_ignore_ascii_case("INBOX") {
        bail!("INBOX is always copied, so the pattern {text:?} is refused; to leave out folders under it, name them (e.g. INBOX/Gammalt)");
    }
    Ok(Pattern { text: text.trim_matches('/').to_string() })
}

/// Checks a list of patterns (at most `MAX_PATTERNS`), each as `parse_pattern` does.
pub fn parse_patterns<S: AsRef<str>>(list: &[S]) -> Result<Vec<Pattern>> {
    if list.len() > MAX_PATTERNS {
        bail!(
            "{} folder patterns are more than the {MAX_PATTERNS} postflytt takes; a parent folder's name covers its children",
            list.len()
        );
    }
    let mut out: Vec<Pattern> = Vec::new();
    for text in list {
        let pattern = parse_pattern(text.as_ref())?;
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    Ok(out)
}

/// Several patterns in one spreadsheet cell: separated by `;`, `,` or line breaks (a comma is rare in
/// a folder name and customers write lists with it; a folder whose name holds one is named with `?`).
pub fn split_cell(cell: &str) -> Vec<String> {
    cell.split([';', ',', '\n', '\r']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

impl Pattern {
    /// The pattern's levels for a source whose delimiter is `delimiter`.
    fn levels(&self, delimiter: Option<char>) -> Vec<&str> {
        self.text.split(|c| c == '/' || Some(c) == delimiter).collect()
    }
}

/// Whether the pattern `levels` name the folder whose levels are `parts`, or (`children`) one of its
/// parents.
fn levels_match(levels: &[&str], parts: &[&str], children: bool) -> bool {
    let fits = if children { levels.len() <= parts.len() } else { levels.len() == parts.len() };
    fits && levels.iter().zip(parts).all(|(p, n)| glob(p, n))
}

/// One level's glob: `*` any run of characters, `?` one, the rest literal (ASCII case folded).
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let n: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    // The classic two-pointer match with backtracking to the last star: linear in practice.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A mapping override as the operator wrote it: `SOURCE=TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOverride {
    pub source: Pattern,
    /// The target folder's levels (the operator separates them with `/`).
    pub target: Vec<String>,
}

impl MapOverride {
    pub fn text(&self) -> String {
        format!("{}={}", self.source.text, self.target.join("/"))
    }
}

/// Checks `SOURCE=TARGET` overrides, refused with a sentence: a source is one folder's name (no
/// wildcards, not INBOX), a target a folder path whose levels are separated by `/` (not INBOX, no
/// empty level, no `*` or `%`, which IMAP servers refuse in names); no source twice, and no two
/// sources into one target folder (postflytt keeps one target folder per source folder).
pub fn parse_overrides<S: AsRef<str>>(list: &[S]) -> Result<Vec<MapOverride>> {
    if list.len() > MAX_PATTERNS {
        bail!("{} folder mappings are more than the {MAX_PATTERNS} postflytt takes; a folder's children follow it", list.len());
    }
    let mut out: Vec<MapOverride> = Vec::new();
    for text in list {
        let text = text.as_ref().trim();
        let Some((source, target)) = text.split_once('=') else {
            bail!("the folder mapping {text:?} has no '=': write SOURCE=TARGET, e.g. \"INBOX.Gamla kunder=Arkiv/Kunder\"");
        };
        let source = parse_pattern(source).map_err(|e| anyhow::anyhow!("the folder mapping {text:?}: {e}"))?;
        if source.text.contains(['*', '?']) {
            bail!("the folder mapping {text:?} names its source with a wildcard; name one folder (its children follow it)");
        }
        let target = target.trim().trim_matches('/');
        if target.is_empty() {
            bail!("the folder mapping {text:?} has no target name after '='");
        }
        if target.chars().count() > MAX_PATTERN_CHARS || target.chars().any(char::is_control) {
            bail!("the folder mapping {text:?} has a target name that is too long or holds a control character");
        }
        if target.contains(['*', '%']) {
            bail!("the folder mapping {text:?}: a target folder name cannot hold '*' or '%' (IMAP servers refuse them)");
        }
        let levels: Vec<String> = target.split('/').map(|l| l.trim().to_string()).collect();
        if levels.iter().any(String::is_empty) {
            bail!("the folder mapping {text:?} has an empty level in its target name (\"//\")");
        }
        if levels.len() == 1 && levels[0].eq_ignore_ascii_case("INBOX") {
            bail!("the folder mapping {text:?} would pour a folder into INBOX; postflytt keeps each folder its own target folder");
        }
        if let Some(other) = out.iter().find(|o| o.source.text.eq_ignore_ascii_case(&source.text)) {
            bail!("the folder {:?} is mapped twice ({} and {text})", source.text, other.text());
        }
        if let Some(other) = out.iter().find(|o| o.target.join("/").to_lowercase() == levels.join("/").to_lowercase()) {
            bail!(
                "the folder mappings {} and {text} would put two source folders into one target folder; postflytt keeps each \
                 folder its own target folder",
                other.text()
            );
        }
        out.push(MapOverride { source, target: levels });
    }
    Ok(out)
}

/// Why a folder is left out; shown beside it wherever the mapping is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// The operator's `--exclude-folder` pattern.
    Operator(String),
    /// The account list's pattern for this account.
    AccountList(String),
    /// A folder Exchange, Kerio or Zimbra keep calendars, contacts and the like in.
    NotMail(String),
    /// Under NAMESPACE's "other users" prefix.
    OtherUsers(String),
    /// Under NAMESPACE's "shared" prefix.
    Shared(String),
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator(p) => write!(f, "left out by the operator's pattern '{p}'"),
            Self::AccountList(p) => write!(f, "left out by the account list's pattern '{p}'"),
            Self::NotMail(name) => {
                write!(
                    f,
                    "not mail: '{name}' holds calendar, contact, task or note items or the outbox (default; --include-folder takes it back)"
                )
            }
            Self::OtherUsers(prefix) => write!(f, "another user's folder (namespace '{prefix}'; --include-folder takes it back)"),
            Self::Shared(prefix) => write!(f, "a shared folder (namespace '{prefix}'; --include-folder takes it back)"),
        }
    }
}

/// The source's namespaces as NAMESPACE gives them (prefixes decoded to UTF-8), and whether the
/// source shows non-mail folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceNamespaces {
    pub personal: String,
    pub delimiter: Option<char>,
    pub other_users: Vec<String>,
    pub shared: Vec<String>,
    /// The source's quirk `shows_groupware_folders` (Microsoft 365, Exchange, Kerio Connect,
    /// Zimbra): only then does `NOT_MAIL` leave folders out by default.
    pub shows_groupware_folders: bool,
}

/// Everything the operator chose about folders, for one account.
#[derive(Debug, Clone, Default)]
pub struct FolderChoice {
    pub operator: Vec<Pattern>,
    pub account_list: Vec<Pattern>,
    pub include: Vec<Pattern>,
    pub overrides: Vec<MapOverride>,
}

impl FolderChoice {
    /// Reads the stored texts; a pattern stored before a rule tightened is dropped rather than
    /// failing the account (every stored one was checked when it was given).
    pub fn from_stored(operator: &[String], account_list: &str, include: &[String], overrides: &[String]) -> FolderChoice {
        let keep = |list: &[String]| list.iter().filter_map(|t| parse_pattern(t).ok()).collect::<Vec<_>>();
        let account: Vec<String> = account_list.lines().map(str::to_string).collect();
        FolderChoice {
            operator: keep(operator),
            account_list: keep(&account),
            include: keep(include),
            overrides: overrides.iter().filter_map(|o| parse_overrides(&[o]).ok()).flatten().collect(),
        }
    }

    /// Why `name` (delimiter `delimiter`, as LIST gave it) is left out, or None when it moves.
    /// `copied`: the folder already has mail on the target, so no default leaves it out (the
    /// operator's and the list's patterns are fixed once mail is copied, so they still apply).
    pub fn exclusion(&self, ns: &SourceNamespaces, name: &str, delimiter: Option<char>, copied: bool) -> Option<Exclusion> {
        if name.eq_ignore_ascii_case("INBOX") {
            return None;
        }
        let delimiter = delimiter.or(ns.delimiter);
        let views = Views::of(ns, name, delimiter);
        if self.include.iter().any(|p| views.covers(p, delimiter)) {
            return None;
        }
        if let Some(p) = self.operator.iter().find(|p| views.covers(p, delimiter)) {
            return Some(Exclusion::Operator(p.text.clone()));
        }
        if let Some(p) = self.account_list.iter().find(|p| views.covers(p, delimiter)) {
            return Some(Exclusion::AccountList(p.text.clone()));
        }
        if copied {
            return None;
        }
        for prefix in &ns.other_users {
            if under_prefix(name, prefix, delimiter) {
                return Some(Exclusion::OtherUsers(prefix.clone()));
            }
        }
        for prefix in &ns.shared {
            if under_prefix(name, prefix, delimiter) {
                return Some(Exclusion::Shared(prefix.clone()));
            }
        }
        if !ns.shows_groupware_folders {
            return None;
        }
        let top = views.relative.as_ref().and_then(|parts| parts.first())?;
        NOT_MAIL.iter().find(|known| known.eq_ignore_ascii_case(top)).map(|_| Exclusion::NotMail(top.to_string()))
    }

    /// The target levels the operator chose for `name`, with the override's text, if one names it.
    pub fn override_for(&self, ns: &SourceNamespaces, name: &str, delimiter: Option<char>) -> Option<&MapOverride> {
        let delimiter = delimiter.or(ns.delimiter);
        let views = Views::of(ns, name, delimiter);
        self.overrides.iter().find(|o| views.names(&o.source, delimiter))
    }
}

/// A folder name's levels, whole and under the personal prefix, and the prefix's own levels.
struct Views<'a> {
    whole: Vec<&'a str>,
    relative: Option<Vec<&'a str>>,
    prefix: Vec<String>,
}

impl<'a> Views<'a> {
    fn of(ns: &SourceNamespaces, name: &'a str, delimiter: Option<char>) -> Views<'a> {
        let split = |s: &'a str| match delimiter {
            Some(d) => s.split(d).collect::<Vec<_>>(),
            None => vec![s],
        };
        let prefix = match delimiter {
            Some(d) if !ns.personal.is_empty() && !ns.personal.ends_with(d) => format!("{}{d}", ns.personal),
            _ => ns.personal.clone(),
        };
        let relative = if prefix.is_empty() {
            Some(split(name))
        } else {
            name.get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(&prefix))
                .map(|_| &name[prefix.len()..])
                .filter(|rest| !rest.is_empty())
                .map(split)
        };
        let bare = delimiter.map_or(ns.personal.as_str(), |d| ns.personal.trim_end_matches(d));
        let prefix = match delimiter {
            Some(d) if !bare.is_empty() => bare.split(d).map(str::to_string).collect(),
            _ if !bare.is_empty() => vec![bare.to_string()],
            _ => Vec::new(),
        };
        Views { whole: split(name), relative, prefix }
    }

    /// The levels a pattern's `levels` are matched against: the whole name when the name lies
    /// outside the personal namespace or the pattern starts with the prefix's levels literally
    /// (INBOX in any case), else the name under the prefix. So a wildcard never matches the prefix
    /// itself: `In*` does not name every folder under `INBOX.`.
    fn parts_for(&self, levels: &[&str]) -> &[&'a str] {
        let literal = |(p, l): (&String, &&str)| if p.eq_ignore_ascii_case("INBOX") { p.eq_ignore_ascii_case(l) } else { p == l };
        let names_prefix = !self.prefix.is_empty() && levels.len() > self.prefix.len() && self.prefix.iter().zip(levels).all(literal);
        match &self.relative {
            Some(relative) if !names_prefix => relative,
            _ => &self.whole,
        }
    }

    /// Whether `pattern` names the folder or one of its parents.
    fn covers(&self, pattern: &Pattern, delimiter: Option<char>) -> bool {
        let levels = pattern.levels(delimiter);
        levels_match(&levels, self.parts_for(&levels), true)
    }

    /// Whether `pattern` names exactly the folder.
    fn names(&self, pattern: &Pattern, delimiter: Option<char>) -> bool {
        let levels = pattern.levels(delimiter);
        levels_match(&levels, self.parts_for(&levels), false)
    }
}

/// Whether `name` lies in the namespace `prefix` (or is its placeholder, the prefix without its
/// trailing delimiter, which servers list as a `\Noselect` folder). The delimiter must follow the
/// prefix: a short prefix such as `~` or `#shared` does not take in `~Arkiv` or `#sharedx`.
fn under_prefix(name: &str, prefix: &str, delimiter: Option<char>) -> bool {
    let bare = delimiter.map_or(prefix, |d| prefix.trim_end_matches(d));
    if bare.is_empty() {
        return false;
    }
    name == prefix || name == bare || delimiter.is_some_and(|d| name.strip_prefix(bare).is_some_and(|rest| rest.starts_with(d)))
}

/// The excluded folders as the CLI prints them: `name  (reason)`, one a line.
pub fn describe_excluded(excluded: &[(String, Exclusion)]) -> String {
    if excluded.is_empty() {
        return String::new();
    }
    let width = excluded.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0);
    let mut out = format!("left out ({}):\n", excluded.len());
    for (name, why) in excluded {
        out.push_str(&format!("  {name:<width$}  ({why})\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(prefix: &str, delimiter: char) -> SourceNamespaces {
        SourceNamespaces { personal: prefix.into(), delimiter: Some(delimiter), ..SourceNamespaces::default() }
    }

    fn choice(operator: &[&str]) -> FolderChoice {
        FolderChoice { operator: parse_patterns(operator).unwrap(), ..FolderChoice::default() }
    }

    #[test]
    fn globs_match_one_level_in_either_case_for_ascii_only() {
        for (pattern, name, want) in [
            ("Arkiv", "arkiv", true),
            ("Ark*", "Arkiv", true),
            ("*iv", "Arkiv", true),
            ("A?kiv", "Arkiv", true),
            ("A?kiv", "Akiv", false),
            ("*", "", true),
            ("Å*", "åre", false),
            ("Å*", "Åre", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*.*", "a.b", true),
        ] {
            assert_eq!(glob(pattern, name), want, "{pattern} on {name}");
        }
    }

    #[test]
    fn a_pattern_names_a_folder_and_its_children_with_either_separator() {
        let old = ns("INBOX.", '.');
        let c = choice(&["Kunder/Åre"]);
        assert!(c.exclusion(&old, "INBOX.Kunder.Åre", Some('.'), false).is_some());
        assert!(c.exclusion(&old, "INBOX.Kunder.Åre.2019", Some('.'), false).is_some());
        assert!(c.exclusion(&old, "INBOX.Kunder", Some('.'), false).is_none());
        assert!(c.exclusion(&old, "INBOX.Kunder.Åresund", Some('.'), false).is_none());
        let c = choice(&["INBOX.Kunder.Åre"]);
        assert!(c.exclusion(&old, "INBOX.Kunder.Åre", Some('.'), false).is_some());
        // `*` never crosses a separator: it names the top level, which takes the children along.
        let modern = ns("", '/');
        let c = choice(&["Proj*"]);
        assert!(c.exclusion(&modern, "Projekt/A/B", Some('/'), false).is_some());
        let c = choice(&["*/2019"]);
        assert!(c.exclusion(&modern, "Arkiv/2019", Some('/'), false).is_some());
        assert!(c.exclusion(&modern, "Arkiv/x/2019", Some('/'), false).is_none());
        // On a '/' server a '.' is part of a name, not a separator.
        let c = choice(&["a.b"]);
        assert!(c.exclusion(&modern, "a.b", Some('/'), false).is_some());
        assert!(c.exclusion(&modern, "a/b", Some('/'), false).is_none());
    }

    #[test]
    fn inbox_always_moves_and_defaults_leave_out_what_is_not_mail() {
        let modern = ns("", '/');
        let c = choice(&["*"]);
        assert_eq!(c.exclusion(&modern, "INBOX", Some('/'), false), None);
        assert_eq!(c.exclusion(&modern, "Arkiv", Some('/'), false), Some(Exclusion::Operator("*".into())));
        let none = FolderChoice::default();
        let modern = SourceNamespaces { shows_groupware_folders: true, ..modern };
        for name in ["Calendar", "calendar/Birthdays", "Kontakter", "Sync Issues/Conflicts", "Utkorgen"] {
            assert!(matches!(none.exclusion(&modern, name, Some('/'), false), Some(Exclusion::NotMail(_))), "{name}");
        }
        for name in ["Arkiv/Calendar", "Kalendrar", "INBOX"] {
            assert_eq!(none.exclusion(&modern, name, Some('/'), false), None, "{name}");
        }
        let old = SourceNamespaces { shows_groupware_folders: true, ..ns("INBOX.", '.') };
        assert!(matches!(none.exclusion(&old, "INBOX.Contacts", Some('.'), false), Some(Exclusion::NotMail(_))));
        let back = FolderChoice { include: parse_patterns(&["Kalender"]).unwrap(), ..FolderChoice::default() };
        assert_eq!(back.exclusion(&modern, "Kalender/Jobb", Some('/'), false), None);
        assert!(back.exclusion(&modern, "Kontakter", Some('/'), false).is_some());
    }

    #[test]
    fn other_users_and_shared_namespaces_are_left_out() {
        let layout = SourceNamespaces {
            personal: String::new(),
            delimiter: Some('/'),
            other_users: vec!["Other Users/".into()],
            shared: vec!["Public/".into()],
            shows_groupware_folders: false,
        };
        let none = FolderChoice::default();
        assert_eq!(none.exclusion(&layout, "Other Users/bob/INBOX", Some('/'), false), Some(Exclusion::OtherUsers("Other Users/".into())));
        assert_eq!(none.exclusion(&layout, "Other Users", Some('/'), false), Some(Exclusion::OtherUsers("Other Users/".into())));
        assert_eq!(none.exclusion(&layout, "Public/Allmänt", Some('/'), false), Some(Exclusion::Shared("Public/".into())));
        assert_eq!(none.exclusion(&layout, "Publicity", Some('/'), false), None);
    }

    #[test]
    fn a_wildcard_never_matches_the_inbox_prefix_of_an_old_host() {
        let old = ns("INBOX.", '.');
        // Each of these used to match the prefix itself and leave out far more than meant.
        for (pattern, name) in
            [("In*", "INBOX.Kunder"), ("*/2019", "INBOX.2019"), ("?????/Kunder", "INBOX.Kunder"), ("*.Kunder", "INBOX.Kunder")]
        {
            assert_eq!(choice(&[pattern]).exclusion(&old, name, Some('.'), false), None, "{pattern} on {name}");
        }
        // What they do name under the prefix they still name.
        assert!(choice(&["In*"]).exclusion(&old, "INBOX.Inkorg gammal", Some('.'), false).is_some());
        assert!(choice(&["*/2019"]).exclusion(&old, "INBOX.Arkiv.2019", Some('.'), false).is_some());
        // The prefix written out, in any case, with either separator, or left off: all name INBOX.Kunder.
        for pattern in ["INBOX.Kunder", "INBOX/Kunder", "inbox/Kunder", "Kunder", "INBOX/K*"] {
            assert!(choice(&[pattern]).exclusion(&old, "INBOX.Kunder", Some('.'), false).is_some(), "{pattern}");
        }
        assert!(choice(&["INBOX/Kunder"]).exclusion(&old, "INBOX.Privat", Some('.'), false).is_none());
        // A name outside the personal namespace is matched whole.
        let shared = SourceNamespaces { shared: vec!["#shared.".into()], ..ns("INBOX.", '.') };
        assert_eq!(
            FolderChoice { include: parse_patterns(&["#shared/Allm*"]).unwrap(), ..FolderChoice::default() }.exclusion(
                &shared,
                "#shared.Allmänt",
                Some('.'),
                false
            ),
            None
        );
        let c = FolderChoice { overrides: parse_overrides(&["INBOX/Gamla=X", "Nya=Y"]).unwrap(), ..FolderChoice::default() };
        assert!(c.override_for(&old, "INBOX.Gamla", Some('.')).is_some());
        assert!(c.override_for(&old, "INBOX.Nya", Some('.')).is_some());
    }

    #[test]
    fn not_mail_only_where_the_source_shows_groupware_and_no_default_once_copied() {
        let none = FolderChoice::default();
        let dovecot = ns("", '/');
        for name in ["Kontakter", "Notes", "Calendar/Jobb", "Outbox"] {
            assert_eq!(none.exclusion(&dovecot, name, Some('/'), false), None, "{name}");
        }
        let exchange = SourceNamespaces { shows_groupware_folders: true, shared: vec!["Public/".into()], ..ns("", '/') };
        assert!(none.exclusion(&exchange, "Kontakter", Some('/'), false).is_some());
        // Already copied: neither the not-mail default nor the namespace rule takes it out now...
        assert_eq!(none.exclusion(&exchange, "Kontakter", Some('/'), true), None);
        assert_eq!(none.exclusion(&exchange, "Public/Allmänt", Some('/'), true), None);
        // ...but the operator's pattern (fixed once mail is copied) still does.
        assert!(choice(&["Kontakter"]).exclusion(&exchange, "Kontakter", Some('/'), true).is_some());
    }

    #[test]
    fn a_short_namespace_prefix_needs_the_delimiter_after_it() {
        for (prefix, name, want) in [
            ("~", "~Arkiv", false),
            ("~", "~", true),
            ("~", "~/bob/INBOX", true),
            ("#shared", "#sharedx", false),
            ("#shared", "#shared/Allmänt", true),
            ("#shared/", "#shared", true),
            ("#shared/", "#shared/Allmänt", true),
            ("Public/", "Publicity", false),
            ("", "Arkiv", false),
        ] {
            assert_eq!(under_prefix(name, prefix, Some('/')), want, "{prefix:?} {name:?}");
        }
        let layout = SourceNamespaces { other_users: vec!["~".into()], ..ns("", '/') };
        assert_eq!(FolderChoice::default().exclusion(&layout, "~Arkiv", Some('/'), false), None);
    }

    #[test]
    fn bad_patterns_are_refused_with_a_sentence() {
        for (text, words) in [
            ("", "empty"),
            ("  ", "empty"),
            ("//", "only separators"),
            ("..", "only separators"),
            ("a//b", "empty level"),
            ("inbox", "INBOX is always copied"),
            ("a\tb", "control character"),
        ] {
            let e = parse_pattern(text).unwrap_err().to_string();
            assert!(e.contains(words), "{text:?}: {e}");
        }
        assert!(parse_pattern(&"x".repeat(MAX_PATTERN_CHARS + 1)).unwrap_err().to_string().contains("longer than"));
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("f{i}")).collect();
        assert!(parse_patterns(&many).unwrap_err().to_string().contains("more than"));
        assert_eq!(parse_pattern(" /Arkiv/ ").unwrap().text, "Arkiv");
    }

    #[test]
    fn overrides_are_checked_and_found_by_either_separator() {
        let o = parse_overrides(&["INBOX.Gamla=Arkiv/Gamla"]).unwrap();
        assert_eq!(o[0].target, vec!["Arkiv", "Gamla"]);
        for (list, words) in [
            (vec!["Gamla"], "no '='"),
            (vec!["Gamla="], "no target"),
            (vec!["G*=X"], "wildcard"),
            (vec!["Gamla=INBOX"], "INBOX"),
            (vec!["Gamla=A//B"], "empty level"),
            (vec!["Gamla=A*"], "cannot hold"),
            (vec!["A=X", "B=x"], "one target folder"),
            (vec!["A=X", "a=Y"], "mapped twice"),
            (vec!["INBOX=X"], "INBOX is always"),
        ] {
            let e = parse_overrides(&list).unwrap_err().to_string();
            assert!(e.contains(words), "{list:?}: {e}");
        }
        let c = FolderChoice { overrides: o, ..FolderChoice::default() };
        let old = ns("INBOX.", '.');
        assert!(c.override_for(&old, "INBOX.Gamla", Some('.')).is_some());
        assert!(c.override_for(&old, "INBOX.Gamla.Barn", Some('.')).is_none());
        let c = FolderChoice { overrides: parse_overrides(&["Gamla/Barn=X"]).unwrap(), ..FolderChoice::default() };
        assert!(c.override_for(&old, "INBOX.Gamla.Barn", Some('.')).is_some());
    }

    #[test]
    fn a_cell_holds_several_patterns() {
        assert_eq!(split_cell("Kalender; Arkiv/*,Gammalt\nSkräp\r\n"), vec!["Kalender", "Arkiv/*", "Gammalt", "Skräp"]);
        assert!(split_cell(" ; ").is_empty());
    }
}
