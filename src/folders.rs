//! The folder mapping: a pure function from the source account's folder tree (decoded names, hierarchy
//! delimiters, personal namespace prefix, special-use attributes) and the target's layout to the target
//! folder name of every source folder. It is shown to the operator before the first pass, so every
//! decision carries a reason and, where it is not obvious, a note. No I/O happens here.
//!
//! The rules, in the order they apply:
//!
//! 1. **INBOX.** A source folder named `INBOX` in any case maps to `INBOX`. Every other name loses the
//!    source's personal namespace prefix (e.g. `INBOX.`), is split into components at the source delimiter,
//!    and is rebuilt with the target delimiter under the target prefix: `INBOX.Kunder.Åre` on an old host
//!    becomes `Kunder/Åre` on a target without a prefix, and `Kunder/Åre` becomes `INBOX.Kunder.Åre` on a
//!    target whose prefix is `INBOX.`. A name outside the source prefix, or equal to the prefix itself, is
//!    rebuilt whole. A source folder that only looks like the inbox (`INBOX.INBOX`) is an ordinary folder;
//!    if its target name would be `INBOX` itself, rule 4 renames it (`INBOX (2)`).
//! 2. **Delimiters inside names.** A component that contains the target delimiter stays one folder: the
//!    delimiter inside it becomes a look-alike (`/` → `∕` U+2215 DIVISION SLASH, `.` → `․` U+2024 ONE DOT
//!    LEADER, anything else → `_`) and the note says so. An empty component (a doubled delimiter) becomes
//!    `_`. No folder is ever split, merged or dropped: every distinct source name gets exactly one line.
//! 3. **Special folders.** For each of Sent, Drafts, Trash, Junk and Archive at most one source folder
//!    becomes the target's special folder. A folder with the special-use attribute wins (the first by
//!    name if several have it); without one, the first name in the list below found directly under the
//!    source prefix (compared case-insensitively) is taken; selectable folders beat `\Noselect` ones.
//!    - Sent: Sent, Skickat, Skickade, Skickade objekt, Sent Items, Sent Messages, Sent Mail
//!    - Drafts: Drafts, Utkast, Draft
//!    - Trash: Trash, Papperskorg, Borttagna objekt, Borttaget, Deleted Items, Deleted Messages, Deleted
//!    - Junk: Junk, Spam, Skräppost, Junk E-mail, Junk Email, Bulk Mail
//!    - Archive: Archive, Arkiv, Archives
//!
//!    The target's special folder is the existing target folder with that attribute (first by name), else
//!    an existing target folder directly under the target prefix whose name is in the list (earlier list
//!    entries first, so the plain English name wins), else the English default (`Sent`, `Drafts`, `Trash`,
//!    `Junk`, `Archive`) under the target prefix. Quirk `exchange_special_folders` (Exchange Online): it
//!    announces no SPECIAL-USE, so its own "Sent Items", "Deleted Items", "Junk Email", "Drafts" and
//!    "Archive" are found by this name rule. Children of a special folder follow it
//!    (`INBOX.Skickat.2019` → `Sent/2019`). Other source folders that match a list or carry the same
//!    attribute keep their own names, with a note.
//! 4. **Collisions.** INBOX and the special folders claim their target names first; then the remaining
//!    folders are placed in source-name order. A folder whose target name is already claimed (compared
//!    case-insensitively when the target is, else exactly, with `INBOX` always case-insensitive) gets
//!    ` (2)`, ` (3)`, … appended to its last component and reason `Renamed`. Children follow a renamed
//!    parent, so a subtree stays together.
//! 5. **Non-selectable folders** (`\Noselect`, namespace placeholders) are mapped like the others so the
//!    tree exists on the target.
//!
//! 6. **The operator's overrides** (`setup --map-folder SOURCE=TARGET`, resolved by `folder_choice`
//!    to source names and target levels): claimed right after INBOX, before the special folders, under
//!    the target prefix with the target delimiter (rule 2 applies to each level); such a folder is never
//!    a special folder, and its children follow it unless mapped themselves. An override whose target
//!    is already claimed (by INBOX, the target's reserved names or an earlier override) is not used:
//!    the folder is mapped by the rules above and the note says why, since one target folder never
//!    takes two source folders.
//!
//! Output is sorted by source name (byte order of the UTF-8 name) and does not depend on input order.
//! Mapping onto a folder that already exists on the target is intended (re-runs, pre-created specials);
//! only two source folders landing on one target name count as a collision.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A special-use role (RFC 6154) that postflytt maps from source to target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    pub const ALL: [SpecialUse; 5] = [Self::Sent, Self::Drafts, Self::Trash, Self::Junk, Self::Archive];

    /// The LIST attribute spelling, e.g. `\Sent`; the inverse of `from_attribute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "\\Sent",
            Self::Drafts => "\\Drafts",
            Self::Trash => "\\Trash",
            Self::Junk => "\\Junk",
            Self::Archive => "\\Archive",
        }
    }

    /// Reads a LIST attribute such as `\Sent` (case-insensitive, as IMAP atoms are). Attributes that are
    /// not one of the five roles (`\All`, `\Flagged`, `\Noselect`, …) give `None`.
    pub fn from_attribute(attribute: &str) -> Option<Self> {
        let name = attribute.strip_prefix('\\')?;
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str()[1..].eq_ignore_ascii_case(name))
            // Gmail's pre-RFC 6154 XLIST marks its spam folder `\Spam`, and some servers that copied
            // XLIST still send it in LIST.
            .or_else(|| name.eq_ignore_ascii_case("Spam").then_some(Self::Junk))
    }

    /// The English name a target folder gets when the target has none for this role.
    pub fn default_name(self) -> &'static str {
        self.known_names()[0]
    }

    /// Names (Swedish and English) that mark a folder as this role when no attribute says so, in order of
    /// preference.
    pub fn known_names(self) -> &'static [&'static str] {
        match self {
            Self::Sent => &["Sent", "Skickat", "Skickade", "Skickade objekt", "Sent Items", "Sent Messages", "Sent Mail"],
            Self::Drafts => &["Drafts", "Utkast", "Draft"],
            Self::Trash => &["Trash", "Papperskorg", "Borttagna objekt", "Borttaget", "Deleted Items", "Deleted Messages", "Deleted"],
            Self::Junk => &["Junk", "Spam", "Skräppost", "Junk E-mail", "Junk Email", "Bulk Mail"],
            Self::Archive => &["Archive", "Arkiv", "Archives"],
        }
    }

    /// Position of `name` in `known_names`, compared case-insensitively.
    fn name_rank(self, name: &str) -> Option<usize> {
        let name = name.to_lowercase();
        self.known_names().iter().position(|known| known.to_lowercase() == name)
    }
}

impl fmt::Display for SpecialUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One folder as the source lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFolder {
    /// Full decoded UTF-8 name as the source lists it, e.g. `INBOX.Kunder.Åre`.
    pub name: String,
    /// The delimiter LIST gave for this folder; `None` (NIL) means a flat name.
    pub delimiter: Option<char>,
    pub special_use: Option<SpecialUse>,
    pub selectable: bool,
}

/// The source's personal namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLayout {
    /// Personal namespace prefix, e.g. `INBOX.` or empty.
    pub prefix: String,
    /// Used for folders whose own `delimiter` is `None`.
    pub delimiter: Option<char>,
}

/// A folder that already exists on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFolder {
    pub name: String,
    pub special_use: Option<SpecialUse>,
}

/// The target's personal namespace and what is already there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLayout {
    pub prefix: String,
    pub delimiter: char,
    pub existing: Vec<TargetFolder>,
    /// Folder names differing only in case are the same folder (Microsoft 365).
    pub case_insensitive: bool,
    /// Names the target keeps for itself (Microsoft 365: `Files`); a source folder of that name gets
    /// a suffix like any other collision.
    pub reserved: Vec<String>,
}

/// Why a source folder got its target name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapReason {
    Inbox,
    SpecialByAttribute(SpecialUse),
    SpecialByName(SpecialUse),
    /// The name converted by rules 1 and 2 (including following a moved parent).
    Name,
    /// A collision suffix was added.
    Renamed,
    /// The operator's `--map-folder` named the target.
    Operator,
}

impl fmt::Display for MapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inbox => f.write_str("inbox"),
            Self::SpecialByAttribute(kind) => write!(f, "{kind} by attribute"),
            Self::SpecialByName(kind) => write!(f, "{kind} by name"),
            Self::Name => f.write_str("name"),
            Self::Renamed => f.write_str("renamed"),
            Self::Operator => f.write_str("operator's mapping"),
        }
    }
}

/// Where one source folder goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderMap {
    pub source: String,
    pub target: String,
    pub reason: MapReason,
    /// What the operator should know, e.g. `'/' in a name became '∕' (U+2215)`.
    pub note: Option<String>,
}

/// Maps every distinct source folder name to a target name; see the module documentation for the rules.
#[cfg(test)]
pub fn map_folders(layout: &SourceLayout, folders: &[SourceFolder], target: &TargetLayout) -> Vec<FolderMap> {
    map_folders_with(layout, folders, target, &BTreeMap::new())
}

/// `map_folders` with the operator's overrides: source name to target levels (rule 6).
pub fn map_folders_with(
    layout: &SourceLayout,
    folders: &[SourceFolder],
    target: &TargetLayout,
    overrides: &BTreeMap<String, Vec<String>>,
) -> Vec<FolderMap> {
    let placed = place_sources(layout, folders);
    let target = Target::new(target);
    let mut refused: BTreeMap<&str, String> = BTreeMap::new();

    let mut claims = Claims::default();
    for name in &target.layout.reserved {
        let reserved = format!("{}{name}", target.layout.prefix);
        claims.owners.insert(target.collision_key(&reserved), "the target itself (reserved name)".to_string());
    }
    let mut done: BTreeMap<&str, Mapped> = BTreeMap::new();
    // Keyed by source name (INBOX folded to upper case) so children can find the folder they follow.
    let mut parents: BTreeMap<String, (String, bool)> = BTreeMap::new();

    // The target always has an INBOX, listed by the source or not.
    claims.claim(&target, "INBOX", "INBOX");
    for p in placed.values().filter(|p| p.inbox) {
        parents.insert(parent_key(&p.folder.name), ("INBOX".to_string(), false));
        done.insert(&p.folder.name, Mapped::new("INBOX".to_string(), MapReason::Inbox));
    }

    for (source, levels) in overrides {
        let Some(p) = placed.get(source.as_str()).filter(|p| !p.inbox) else {
            continue;
        };
        let name = target.plain_name(levels).0;
        if let Some(owner) = claims.owner(&target, &name) {
            refused.insert(&p.folder.name, format!("the operator's mapping to '{name}' is not used: '{owner}' already goes there"));
            continue;
        }
        claims.claim(&target, &name, &p.folder.name);
        parents.insert(parent_key(&p.folder.name), (name.clone(), true));
        done.insert(&p.folder.name, Mapped::new(name, MapReason::Operator));
    }
    let chosen = choose_specials(&placed, &done);

    for (kind, (source, by_attribute)) in &chosen {
        let Some(p) = placed.get(source.as_str()) else {
            continue;
        };
        let name = target.special_name(*kind);
        if claims.owner(&target, &name).is_some() {
            // Only a target that gives one folder two roles, or INBOX a role, gets here; the folder is then
            // placed by its own name below rather than merged.
            continue;
        }
        claims.claim(&target, &name, &p.folder.name);
        let moved = name != target.plain_name(&p.parts).0;
        parents.insert(parent_key(&p.folder.name), (name.clone(), moved));
        let reason = if *by_attribute { MapReason::SpecialByAttribute(*kind) } else { MapReason::SpecialByName(*kind) };
        done.insert(&p.folder.name, Mapped::new(name, reason));
    }

    // Sorted order puts every parent before its children, so the parent's final name is known.
    for p in placed.values() {
        if done.contains_key(p.folder.name.as_str()) {
            continue;
        }
        let mut notes = Vec::new();
        let (name, mut moved) = match p.nearest_parent(&parents) {
            Some((parent_source, parent_target, parent_moved, depth)) => {
                if parent_moved {
                    notes.push(format!("follows its parent '{parent_source}' to '{parent_target}'"));
                }
                let (rest, rest_notes) = target.convert(&p.parts[depth..]);
                notes.extend(rest_notes);
                (format!("{parent_target}{}{rest}", target.delimiter), parent_moved)
            }
            None => {
                let (name, plain_notes) = target.plain_name(&p.parts);
                notes.extend(plain_notes);
                (name, false)
            }
        };
        if !p.in_namespace && !layout.prefix.is_empty() {
            notes.push(format!("not under the source prefix '{}'; mapped by its full name", layout.prefix));
        }
        notes.extend(special_lookalike_note(p, &chosen));

        let mut reason = MapReason::Name;
        let mut final_name = name.clone();
        if let Some(owner) = claims.owner(&target, &name) {
            let owner = owner.to_string();
            let mut n = 2u32;
            while claims.owner(&target, &final_name).is_some() {
                final_name = format!("{name} ({n})");
                n += 1;
            }
            notes.push(format!("'{name}' is already taken by '{owner}'"));
            reason = MapReason::Renamed;
            moved = true;
        }
        claims.claim(&target, &final_name, &p.folder.name);
        parents.insert(parent_key(&p.folder.name), (final_name.clone(), moved));
        done.insert(&p.folder.name, Mapped { target: final_name, reason, notes });
    }

    for (source, note) in refused {
        if let Some(m) = done.get_mut(source) {
            m.notes.insert(0, note);
        }
    }
    done.into_iter()
        .map(|(source, m)| FolderMap {
            source: source.to_string(),
            target: m.target,
            reason: m.reason,
            note: (!m.notes.is_empty()).then(|| m.notes.join("; ")),
        })
        .collect()
}

/// A table for the CLI: one `source -> target  (reason / note)` line per folder, columns aligned.
pub fn describe(maps: &[FolderMap]) -> String {
    if maps.is_empty() {
        return "no folders\n".to_string();
    }
    let source_width = maps.iter().map(|m| m.source.chars().count()).max().unwrap_or(0);
    let target_width = maps.iter().map(|m| m.target.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for m in maps {
        let note = m.note.as_deref().map(|n| format!(" / {n}")).unwrap_or_default();
        out.push_str(&format!("{:<source_width$} -> {:<target_width$}  ({}{note})\n", m.source, m.target, m.reason));
    }
    out
}

struct Mapped {
    target: String,
    reason: MapReason,
    notes: Vec<String>,
}

impl Mapped {
    fn new(target: String, reason: MapReason) -> Self {
        Self { target, reason, notes: Vec::new() }
    }
}

/// A source folder with its path relative to the source prefix worked out.
struct Placed {
    folder: SourceFolder,
    inbox: bool,
    delimiter: Option<char>,
    /// The part of the name before `parts`: the prefix as this name spells it, or empty.
    base: String,
    parts: Vec<String>,
    /// The prefix was stripped (always true for an empty prefix).
    in_namespace: bool,
}

impl Placed {
    /// The closest listed ancestor that already has a target name: (source, target, moved, components
    /// of `parts` it covers).
    fn nearest_parent<'a>(&self, parents: &'a BTreeMap<String, (String, bool)>) -> Option<(String, &'a str, bool, usize)> {
        let delimiter = self.delimiter?;
        (1..self.parts.len()).rev().find_map(|depth| {
            let source = format!("{}{}", self.base, self.parts[..depth].join(&delimiter.to_string()));
            parents.get(&parent_key(&source)).map(|(target, moved)| (source, target.as_str(), *moved, depth))
        })
    }

    fn top_level(&self) -> bool {
        self.in_namespace && self.parts.len() == 1
    }
}

/// Deduplicates by exact name and splits each name into its path under the source prefix.
fn place_sources(layout: &SourceLayout, folders: &[SourceFolder]) -> BTreeMap<String, Placed> {
    let mut merged: BTreeMap<String, SourceFolder> = BTreeMap::new();
    for f in folders {
        merged
            .entry(f.name.clone())
            .and_modify(|m| {
                m.selectable |= f.selectable;
                m.special_use = m.special_use.or(f.special_use);
                m.delimiter = m.delimiter.or(f.delimiter);
            })
            .or_insert_with(|| f.clone());
    }
    merged.into_iter().map(|(name, folder)| (name, place(layout, folder))).collect()
}

fn place(layout: &SourceLayout, folder: SourceFolder) -> Placed {
    let delimiter = folder.delimiter.or(layout.delimiter);
    let inbox = folder.name.eq_ignore_ascii_case("INBOX");
    let prefix = with_trailing_delimiter(&layout.prefix, delimiter);
    let (base, rest, in_namespace) = match strip_prefix(&folder.name, &prefix) {
        Some((head, rest)) if !rest.is_empty() => (head.to_string(), rest.to_string(), true),
        _ => (String::new(), folder.name.clone(), prefix.is_empty()),
    };
    let parts = match delimiter {
        Some(d) => rest.split(d).map(str::to_string).collect(),
        None => vec![rest],
    };
    Placed { folder, inbox, delimiter, base, parts, in_namespace }
}

/// Splits `prefix` off `name`. The INBOX part of a prefix like `INBOX.` matches in any case, because
/// INBOX is case-insensitive on every server (RFC 3501 §5.1).
fn strip_prefix<'a>(name: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = name.get(..prefix.len())?;
    let matches = head == prefix || (starts_with_inbox(prefix) && head.eq_ignore_ascii_case(prefix));
    matches.then(|| (head, &name[prefix.len()..]))
}

fn starts_with_inbox(s: &str) -> bool {
    s.get(..5).is_some_and(|head| head.eq_ignore_ascii_case("INBOX"))
}

/// A prefix written without its delimiter (`INBOX`) still means "children of INBOX".
fn with_trailing_delimiter(prefix: &str, delimiter: Option<char>) -> String {
    match delimiter {
        Some(d) if !prefix.is_empty() && !prefix.ends_with(d) => format!("{prefix}{d}"),
        _ => prefix.to_string(),
    }
}

fn parent_key(source: &str) -> String {
    if source.eq_ignore_ascii_case("INBOX") { "INBOX".to_string() } else { source.to_string() }
}

/// Picks at most one source folder per role: (source name, chosen by attribute).
fn choose_specials(placed: &BTreeMap<String, Placed>, overridden: &BTreeMap<&str, Mapped>) -> BTreeMap<SpecialUse, (String, bool)> {
    let mut chosen = BTreeMap::new();
    // A folder the operator mapped is never a special folder.
    let mut used: BTreeSet<&str> = overridden.keys().copied().collect();
    for kind in SpecialUse::ALL {
        let candidates = placed.values().filter(|p| !p.inbox && !used.contains(p.folder.name.as_str()));
        let by_attribute =
            candidates.clone().filter(|p| p.folder.special_use == Some(kind)).min_by_key(|p| (!p.folder.selectable, &p.folder.name));
        let pick = match by_attribute {
            Some(p) => Some((p, true)),
            None => candidates
                .filter(|p| p.folder.special_use.is_none() && p.top_level())
                .filter_map(|p| kind.name_rank(&p.parts[0]).map(|rank| (p, rank)))
                .min_by_key(|(p, rank)| (!p.folder.selectable, *rank, &p.folder.name))
                .map(|(p, _)| (p, false)),
        };
        if let Some((p, by_attribute)) = pick {
            used.insert(&p.folder.name);
            chosen.insert(kind, (p.folder.name.clone(), by_attribute));
        }
    }
    chosen
}

/// Explains why a folder that looks special kept its own name.
fn special_lookalike_note(p: &Placed, chosen: &BTreeMap<SpecialUse, (String, bool)>) -> Option<String> {
    let (kind, how) = match p.folder.special_use {
        Some(kind) => (kind, "is marked"),
        None if p.top_level() => {
            let kind = SpecialUse::ALL.into_iter().find(|k| k.name_rank(&p.parts[0]).is_some())?;
            (kind, "looks like")
        }
        None => return None,
    };
    let other = match chosen.get(&kind) {
        Some((source, _)) if *source != p.folder.name => format!("'{source}' is the {kind} folder"),
        _ => format!("the target's {kind} folder name is taken"),
    };
    Some(format!("{how} {kind}, but {other}, so it keeps its own name"))
}

/// The target side, with its prefix normalised.
struct Target<'a> {
    layout: &'a TargetLayout,
    prefix: String,
    delimiter: char,
}

impl<'a> Target<'a> {
    fn new(layout: &'a TargetLayout) -> Self {
        let prefix = with_trailing_delimiter(&layout.prefix, Some(layout.delimiter));
        Self { layout, prefix, delimiter: layout.delimiter }
    }

    /// The target name for `parts` with no parent to follow.
    fn plain_name(&self, parts: &[String]) -> (String, Vec<String>) {
        let (path, notes) = self.convert(parts);
        (format!("{}{path}", self.prefix), notes)
    }

    /// Joins source components with the target delimiter, keeping each component one folder.
    fn convert(&self, parts: &[String]) -> (String, Vec<String>) {
        let lookalike = match self.delimiter {
            '/' => '\u{2215}',
            '.' => '\u{2024}',
            _ => '_',
        };
        let mut replaced = false;
        let mut emptied = false;
        let converted: Vec<String> = parts
            .iter()
            .map(|part| {
                if part.is_empty() {
                    emptied = true;
                    "_".to_string()
                } else if part.contains(self.delimiter) {
                    replaced = true;
                    part.replace(self.delimiter, &lookalike.to_string())
                } else {
                    part.clone()
                }
            })
            .collect();
        let mut notes = Vec::new();
        if replaced {
            notes.push(format!("'{}' in a name became '{lookalike}' (U+{:04X})", self.delimiter, u32::from(lookalike)));
        }
        if emptied {
            notes.push("an empty name part became '_'".to_string());
        }
        (converted.join(&self.delimiter.to_string()), notes)
    }

    /// The target folder that receives a source special folder of this role.
    fn special_name(&self, kind: SpecialUse) -> String {
        let mut existing: Vec<&TargetFolder> = self.layout.existing.iter().collect();
        existing.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(f) = existing.iter().find(|f| f.special_use == Some(kind)) {
            return f.name.clone();
        }
        let by_name = existing
            .iter()
            .filter(|f| f.special_use.is_none())
            .filter_map(|f| {
                let (_, rest) = strip_prefix(&f.name, &self.prefix)?;
                if rest.contains(self.delimiter) {
                    return None;
                }
                kind.name_rank(rest).map(|rank| (rank, f))
            })
            .min_by_key(|(rank, f)| (*rank, &f.name));
        match by_name {
            Some((_, f)) => f.name.clone(),
            None => format!("{}{}", self.prefix, kind.default_name()),
        }
    }

    /// What decides whether two target names are the same folder.
    fn collision_key(&self, name: &str) -> String {
        if self.layout.case_insensitive {
            return name.to_lowercase();
        }
        let inbox_rooted = starts_with_inbox(name) && name[5..].chars().next().is_none_or(|c| c == self.delimiter);
        if inbox_rooted { format!("INBOX{}", &name[5..]) } else { name.to_string() }
    }
}

/// Target names taken so far, and by which source folder.
#[derive(Default)]
struct Claims {
    owners: BTreeMap<String, String>,
}

impl Claims {
    fn owner(&self, target: &Target<'_>, name: &str) -> Option<&str> {
        self.owners.get(&target.collision_key(name)).map(String::as_str)
    }

    fn claim(&mut self, target: &Target<'_>, name: &str, source: &str) {
        self.owners.entry(target.collision_key(name)).or_insert_with(|| source.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SpecialUse::*;

    fn folder(name: &str, delimiter: char) -> SourceFolder {
        SourceFolder { name: name.to_string(), delimiter: Some(delimiter), special_use: None, selectable: true }
    }

    fn special(name: &str, delimiter: char, kind: SpecialUse) -> SourceFolder {
        SourceFolder { special_use: Some(kind), ..folder(name, delimiter) }
    }

    fn old_host() -> SourceLayout {
        SourceLayout { prefix: "INBOX.".to_string(), delimiter: Some('.') }
    }

    fn modern() -> SourceLayout {
        SourceLayout { prefix: String::new(), delimiter: Some('/') }
    }

    fn old_host_folders(names: &[&str]) -> Vec<SourceFolder> {
        names.iter().map(|n| folder(n, '.')).collect()
    }

    fn dovecot_target() -> TargetLayout {
        TargetLayout { prefix: String::new(), delimiter: '/', existing: Vec::new(), case_insensitive: false, reserved: vec![] }
    }

    fn microsoft_target() -> TargetLayout {
        let existing = [
            ("Archive", Some(Archive)),
            ("Deleted Items", Some(Trash)),
            ("Drafts", Some(Drafts)),
            ("INBOX", None),
            ("Junk Email", Some(Junk)),
            ("Sent Items", Some(Sent)),
        ];
        TargetLayout {
            prefix: String::new(),
            delimiter: '/',
            existing: existing.iter().map(|(n, s)| TargetFolder { name: n.to_string(), special_use: *s }).collect(),
            case_insensitive: true,
            reserved: vec![],
        }
    }

    /// (source, target, reason) triples, sorted as the output is.
    fn triples(maps: &[FolderMap]) -> Vec<(&str, &str, MapReason)> {
        maps.iter().map(|m| (m.source.as_str(), m.target.as_str(), m.reason.clone())).collect()
    }

    fn find<'a>(maps: &'a [FolderMap], source: &str) -> &'a FolderMap {
        maps.iter().find(|m| m.source == source).unwrap_or_else(|| panic!("{source} not mapped"))
    }

    #[test]
    fn old_host_layout_with_swedish_names() {
        let folders = old_host_folders(&[
            "INBOX",
            "INBOX.Skickat",
            "INBOX.Utkast",
            "INBOX.Papperskorg",
            "INBOX.Skräppost",
            "INBOX.Kunder",
            "INBOX.Kunder.Åre",
            "INBOX.Offert 2024/25",
            "INBOX.Tomt",
        ]);
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX.Kunder", "Kunder", MapReason::Name),
                ("INBOX.Kunder.Åre", "Kunder/Åre", MapReason::Name),
                ("INBOX.Offert 2024/25", "Offert 2024∕25", MapReason::Name),
                ("INBOX.Papperskorg", "Trash", MapReason::SpecialByName(Trash)),
                ("INBOX.Skickat", "Sent", MapReason::SpecialByName(Sent)),
                ("INBOX.Skräppost", "Junk", MapReason::SpecialByName(Junk)),
                ("INBOX.Tomt", "Tomt", MapReason::Name),
                ("INBOX.Utkast", "Drafts", MapReason::SpecialByName(Drafts)),
            ]
        );
        assert_eq!(find(&maps, "INBOX.Offert 2024/25").note.as_deref(), Some("'/' in a name became '∕' (U+2215)"));
        assert_eq!(find(&maps, "INBOX.Kunder.Åre").note, None);
    }

    #[test]
    fn children_follow_special_and_slashed_parents() {
        let folders = old_host_folders(&[
            "INBOX",
            "INBOX.Skickat",
            "INBOX.Skickat.2019",
            "INBOX.Skickat.2019.Q1",
            "INBOX.Offert 2024/25",
            "INBOX.Offert 2024/25.Svar",
        ]);
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX.Offert 2024/25", "Offert 2024∕25", MapReason::Name),
                ("INBOX.Offert 2024/25.Svar", "Offert 2024∕25/Svar", MapReason::Name),
                ("INBOX.Skickat", "Sent", MapReason::SpecialByName(Sent)),
                ("INBOX.Skickat.2019", "Sent/2019", MapReason::Name),
                ("INBOX.Skickat.2019.Q1", "Sent/2019/Q1", MapReason::Name),
            ]
        );
        assert_eq!(find(&maps, "INBOX.Skickat.2019").note.as_deref(), Some("follows its parent 'INBOX.Skickat' to 'Sent'"));
    }

    #[test]
    fn modern_layout_with_attributes() {
        let folders = vec![
            folder("INBOX", '/'),
            special("Sent Messages", '/', Sent),
            special("Drafts", '/', Drafts),
            special("Deleted Messages", '/', Trash),
            special("Junk", '/', Junk),
            special("Archive", '/', Archive),
            folder("Projects", '/'),
            folder("Projects/2024", '/'),
            folder("Projects/v1.2", '/'),
            folder("INBOX/Att göra", '/'),
        ];
        let maps = map_folders(&modern(), &folders, &dovecot_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("Archive", "Archive", MapReason::SpecialByAttribute(Archive)),
                ("Deleted Messages", "Trash", MapReason::SpecialByAttribute(Trash)),
                ("Drafts", "Drafts", MapReason::SpecialByAttribute(Drafts)),
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX/Att göra", "INBOX/Att göra", MapReason::Name),
                ("Junk", "Junk", MapReason::SpecialByAttribute(Junk)),
                ("Projects", "Projects", MapReason::Name),
                ("Projects/2024", "Projects/2024", MapReason::Name),
                ("Projects/v1.2", "Projects/v1.2", MapReason::Name),
                ("Sent Messages", "Sent", MapReason::SpecialByAttribute(Sent)),
            ]
        );
        assert!(maps.iter().all(|m| m.note.is_none()), "{maps:#?}");
    }

    #[test]
    fn sent_and_skickat_both_present() {
        let folders = old_host_folders(&["INBOX", "INBOX.Skickat", "INBOX.Sent"]);
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX.Sent", "Sent", MapReason::SpecialByName(Sent)),
                ("INBOX.Skickat", "Skickat", MapReason::Name),
            ]
        );
        assert_eq!(
            find(&maps, "INBOX.Skickat").note.as_deref(),
            Some("looks like \\Sent, but 'INBOX.Sent' is the \\Sent folder, so it keeps its own name")
        );
    }

    #[test]
    fn name_match_is_case_insensitive_and_top_level_only() {
        let folders = old_host_folders(&["INBOX", "INBOX.Kunder", "INBOX.Kunder.Sent", "INBOX.SKRÄPPOST"]);
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX.Kunder", "Kunder", MapReason::Name),
                ("INBOX.Kunder.Sent", "Kunder/Sent", MapReason::Name),
                ("INBOX.SKRÄPPOST", "Junk", MapReason::SpecialByName(Junk)),
            ]
        );
    }

    #[test]
    fn attribute_beats_name() {
        let folders = vec![
            folder("INBOX", '/'),
            folder("Sent", '/'),
            special("Skickade", '/', Sent),
            folder("Trash", '/'),
            special("Papperskorg", '/', Trash),
            special("Borttaget", '/', Trash),
        ];
        // On Microsoft 365 the specials have their own names, so nothing collides.
        let maps = map_folders(&modern(), &folders, &microsoft_target());
        assert_eq!(
            triples(&maps),
            vec![
                // Two folders marked \Trash: the first by name wins.
                ("Borttaget", "Deleted Items", MapReason::SpecialByAttribute(Trash)),
                ("INBOX", "INBOX", MapReason::Inbox),
                ("Papperskorg", "Papperskorg", MapReason::Name),
                ("Sent", "Sent", MapReason::Name),
                ("Skickade", "Sent Items", MapReason::SpecialByAttribute(Sent)),
                ("Trash", "Trash", MapReason::Name),
            ]
        );
        assert_eq!(
            find(&maps, "Papperskorg").note.as_deref(),
            Some("is marked \\Trash, but 'Borttaget' is the \\Trash folder, so it keeps its own name")
        );
        // On a target whose Sent folder is called Sent, the special folder claims the name first and the
        // plain folder of the same name moves aside, even though it sorts first.
        let maps = map_folders(&modern(), &folders, &dovecot_target());
        assert_eq!(find(&maps, "Skickade").target, "Sent");
        let plain = find(&maps, "Sent");
        assert_eq!((plain.target.as_str(), &plain.reason), ("Sent (2)", &MapReason::Renamed));
        assert!(plain.note.as_deref().is_some_and(|n| n.contains("'Sent' is already taken by 'Skickade'")));
    }

    #[test]
    fn exchange_names_without_special_use_attributes() {
        // Exchange Online lists its special folders without SPECIAL-USE: they are found by name.
        let mut target = microsoft_target();
        for f in &mut target.existing {
            f.special_use = None;
        }
        let maps = map_folders(
            &old_host(),
            &old_host_folders(&["INBOX", "INBOX.Skickat", "INBOX.Papperskorg", "INBOX.Skräppost", "INBOX.Utkast", "INBOX.Arkiv"]),
            &target,
        );
        let by: BTreeMap<&str, &str> = maps.iter().map(|m| (m.source.as_str(), m.target.as_str())).collect();
        assert_eq!(by["INBOX.Skickat"], "Sent Items");
        assert_eq!(by["INBOX.Papperskorg"], "Deleted Items");
        assert_eq!(by["INBOX.Skräppost"], "Junk Email");
        assert_eq!(by["INBOX.Utkast"], "Drafts");
        assert_eq!(by["INBOX.Arkiv"], "Archive");
    }

    #[test]
    fn reserved_target_name_gets_a_suffix() {
        let mut target = microsoft_target();
        target.reserved = vec!["Files".into()];
        let maps = map_folders(&old_host(), &[folder("INBOX", '.'), folder("INBOX.Files", '.'), folder("INBOX.Files.2020", '.')], &target);
        let by: BTreeMap<&str, &str> = maps.iter().map(|m| (m.source.as_str(), m.target.as_str())).collect();
        assert_eq!(by["INBOX.Files"], "Files (2)");
        assert_eq!(by["INBOX.Files.2020"], "Files (2)/2020");
    }

    #[test]
    fn case_collision_on_case_insensitive_target() {
        let folders = vec![
            folder("INBOX", '/'),
            folder("Kunder", '/'),
            folder("kunder", '/'),
            folder("kunder/Åre", '/'),
            folder("KUNDER", '/'),
            folder("inbox/a", '/'),
        ];
        let mut target = dovecot_target();
        target.case_insensitive = true;
        let maps = map_folders(&modern(), &folders, &target);
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("KUNDER", "KUNDER", MapReason::Name),
                ("Kunder", "Kunder (2)", MapReason::Renamed),
                ("inbox/a", "INBOX/a", MapReason::Name),
                ("kunder", "kunder (3)", MapReason::Renamed),
                ("kunder/Åre", "kunder (3)/Åre", MapReason::Name),
            ]
        );
        assert_eq!(find(&maps, "Kunder").note.as_deref(), Some("'Kunder' is already taken by 'KUNDER'"));
        assert_eq!(find(&maps, "kunder/Åre").note.as_deref(), Some("follows its parent 'kunder' to 'kunder (3)'"));
        // A case-sensitive target keeps all three.
        let maps = map_folders(&modern(), &folders, &dovecot_target());
        assert!(maps.iter().all(|m| m.reason != MapReason::Renamed), "{maps:#?}");
    }

    #[test]
    fn existing_microsoft_special_folders() {
        let folders = old_host_folders(&[
            "INBOX",
            "INBOX.Skickat",
            "INBOX.Skickat.2019",
            "INBOX.Utkast",
            "INBOX.Papperskorg",
            "INBOX.Skräppost",
            "INBOX.Arkiv",
            "INBOX.Kunder.Åre",
        ]);
        let maps = map_folders(&old_host(), &folders, &microsoft_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX.Arkiv", "Archive", MapReason::SpecialByName(Archive)),
                ("INBOX.Kunder.Åre", "Kunder/Åre", MapReason::Name),
                ("INBOX.Papperskorg", "Deleted Items", MapReason::SpecialByName(Trash)),
                ("INBOX.Skickat", "Sent Items", MapReason::SpecialByName(Sent)),
                ("INBOX.Skickat.2019", "Sent Items/2019", MapReason::Name),
                ("INBOX.Skräppost", "Junk Email", MapReason::SpecialByName(Junk)),
                ("INBOX.Utkast", "Drafts", MapReason::SpecialByName(Drafts)),
            ]
        );
    }

    #[test]
    fn existing_target_specials_found_by_name() {
        let mut target = dovecot_target();
        target.existing = ["INBOX", "Sent Items", "Sent", "Deleted Items", "Kunder/Spam"]
            .iter()
            .map(|n| TargetFolder { name: n.to_string(), special_use: None })
            .collect();
        let folders = old_host_folders(&["INBOX.Skickat", "INBOX.Papperskorg", "INBOX.Spam"]);
        let maps = map_folders(&old_host(), &folders, &target);
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX.Papperskorg", "Deleted Items", MapReason::SpecialByName(Trash)),
                ("INBOX.Skickat", "Sent", MapReason::SpecialByName(Sent)),
                // Kunder/Spam is not directly under the prefix, so the default is used.
                ("INBOX.Spam", "Junk", MapReason::SpecialByName(Junk)),
            ]
        );
    }

    #[test]
    fn target_with_inbox_prefix_and_dot_delimiter() {
        let target = TargetLayout {
            prefix: "INBOX.".to_string(),
            delimiter: '.',
            existing: vec![TargetFolder { name: "INBOX.Sent".to_string(), special_use: Some(Sent) }],
            case_insensitive: false,
            reserved: vec![],
        };
        let folders = vec![
            folder("INBOX", '/'),
            folder("INBOX/Sub", '/'),
            special("Sent Messages", '/', Sent),
            folder("Kunder/Åre", '/'),
            folder("Offert 2024.25", '/'),
            folder("Sub", '/'),
            folder("Trash", '/'),
        ];
        let maps = map_folders(&modern(), &folders, &target);
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX/Sub", "INBOX.Sub", MapReason::Name),
                ("Kunder/Åre", "INBOX.Kunder.Åre", MapReason::Name),
                ("Offert 2024.25", "INBOX.Offert 2024․25", MapReason::Name),
                ("Sent Messages", "INBOX.Sent", MapReason::SpecialByAttribute(Sent)),
                ("Sub", "INBOX.Sub (2)", MapReason::Renamed),
                ("Trash", "INBOX.Trash", MapReason::SpecialByName(Trash)),
            ]
        );
        assert_eq!(find(&maps, "Offert 2024.25").note.as_deref(), Some("'.' in a name became '․' (U+2024)"));
    }

    #[test]
    fn prefix_written_without_delimiter_is_normalised() {
        let layout = SourceLayout { prefix: "INBOX".to_string(), delimiter: Some('.') };
        let target = TargetLayout { prefix: "INBOX".to_string(), ..dovecot_target() };
        let maps = map_folders(&layout, &old_host_folders(&["INBOX.Kunder"]), &target);
        assert_eq!(triples(&maps), vec![("INBOX.Kunder", "INBOX/Kunder", MapReason::Name)]);
    }

    #[test]
    fn inbox_lookalikes_never_become_inbox() {
        let folders = old_host_folders(&["INBOX", "INBOX.INBOX", "INBOX.INBOX.x", "INBOX.inbox"]);
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX.INBOX", "INBOX (2)", MapReason::Renamed),
                ("INBOX.INBOX.x", "INBOX (2)/x", MapReason::Name),
                ("INBOX.inbox", "inbox (2)", MapReason::Renamed),
            ]
        );
        // Under a target prefix they are ordinary children and need no suffix.
        let target = TargetLayout { prefix: "INBOX.".to_string(), delimiter: '.', ..dovecot_target() };
        let maps = map_folders(&old_host(), &folders, &target);
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("INBOX.INBOX", "INBOX.INBOX", MapReason::Name),
                ("INBOX.INBOX.x", "INBOX.INBOX.x", MapReason::Name),
                ("INBOX.inbox", "INBOX.inbox", MapReason::Name),
            ]
        );
        // Even without the source listing INBOX, the target's INBOX is not given away.
        let maps = map_folders(&old_host(), &old_host_folders(&["INBOX.Inbox"]), &dovecot_target());
        assert_eq!(triples(&maps), vec![("INBOX.Inbox", "Inbox (2)", MapReason::Renamed)]);
    }

    #[test]
    fn non_selectable_folders_are_mapped() {
        let mut placeholder = folder("INBOX.Kunder", '.');
        placeholder.selectable = false;
        let folders = vec![placeholder, folder("INBOX.Kunder.Åre", '.')];
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(triples(&maps), vec![("INBOX.Kunder", "Kunder", MapReason::Name), ("INBOX.Kunder.Åre", "Kunder/Åre", MapReason::Name),]);
    }

    #[test]
    fn selectable_name_match_beats_noselect_placeholder() {
        let mut placeholder = folder("INBOX.Sent", '.');
        placeholder.selectable = false;
        let folders = vec![placeholder, folder("INBOX.Skickat", '.')];
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(find(&maps, "INBOX.Skickat").reason, MapReason::SpecialByName(Sent));
        assert_eq!(find(&maps, "INBOX.Sent").target, "Sent (2)");
    }

    #[test]
    fn namespace_root_and_outside_names_are_kept_whole() {
        let layout = SourceLayout { prefix: "Mail/".to_string(), delimiter: Some('/') };
        let folders = vec![folder("INBOX", '/'), folder("Mail", '/'), folder("Mail/Kunder", '/'), folder("Other/x", '/')];
        let maps = map_folders(&layout, &folders, &dovecot_target());
        assert_eq!(
            triples(&maps),
            vec![
                ("INBOX", "INBOX", MapReason::Inbox),
                ("Mail", "Mail", MapReason::Name),
                ("Mail/Kunder", "Kunder", MapReason::Name),
                ("Other/x", "Other/x", MapReason::Name),
            ]
        );
        assert!(find(&maps, "Other/x").note.as_deref().is_some_and(|n| n.contains("not under the source prefix")));
    }

    #[test]
    fn flat_names_and_odd_delimiters() {
        // A NIL delimiter: the whole name is one folder, whatever it contains.
        let flat = SourceFolder { delimiter: None, ..folder("a/b.c", '/') };
        let layout = SourceLayout { prefix: String::new(), delimiter: None };
        let maps = map_folders(&layout, &[flat], &dovecot_target());
        assert_eq!(triples(&maps), vec![("a/b.c", "a∕b.c", MapReason::Name)]);

        let target = TargetLayout { delimiter: '\\', ..dovecot_target() };
        let maps = map_folders(&modern(), &[folder("a\\b/c", '/'), folder("x//y", '/')], &target);
        assert_eq!(triples(&maps), vec![("a\\b/c", "a_b\\c", MapReason::Name), ("x//y", "x\\_\\y", MapReason::Name)]);
        assert_eq!(find(&maps, "a\\b/c").note.as_deref(), Some("'\\' in a name became '_' (U+005F)"));
        assert_eq!(find(&maps, "x//y").note.as_deref(), Some("an empty name part became '_'"));
    }

    #[test]
    fn lookalike_collision_is_renamed() {
        let folders = vec![folder("a/b", '.'), folder("a∕b", '.')];
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(triples(&maps), vec![("a/b", "a∕b", MapReason::Name), ("a∕b", "a∕b (2)", MapReason::Renamed)]);
    }

    #[test]
    fn output_is_deterministic_and_complete() {
        let mut folders = old_host_folders(&[
            "INBOX",
            "INBOX.Skickat",
            "INBOX.Sent",
            "INBOX.sent",
            "INBOX.Kunder",
            "INBOX.kunder",
            "INBOX.Kunder.Åre",
            "INBOX.a/b",
            "INBOX.a∕b",
            "INBOX.Papperskorg.2020",
            "INBOX.Kunder",
        ]);
        let mut target = microsoft_target();
        target.case_insensitive = true;
        let first = map_folders(&old_host(), &folders, &target);
        folders.reverse();
        let second = map_folders(&old_host(), &folders, &target);
        assert_eq!(first, second);
        let distinct: BTreeSet<&str> = folders.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(first.len(), distinct.len());
        let sources: Vec<&str> = first.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(sources, distinct.into_iter().collect::<Vec<_>>());
        let targets: BTreeSet<String> = first.iter().map(|m| m.target.to_lowercase()).collect();
        assert_eq!(targets.len(), first.len(), "two folders share a target: {first:#?}");
    }

    #[test]
    fn wire_names_from_an_old_host() {
        // What an old Courier-style server lists, in modified UTF-7, decoded before mapping.
        let wire = ["INBOX", "INBOX.Skr&AOQ-ppost", "INBOX.Kunder.&AMU-re", "INBOX.Skickat"];
        let folders: Vec<SourceFolder> = wire.iter().map(|w| folder(&crate::utf7::decode(w).unwrap(), '.')).collect();
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(find(&maps, "INBOX.Skräppost").target, "Junk");
        assert_eq!(find(&maps, "INBOX.Kunder.Åre").target, "Kunder/Åre");
        assert_eq!(crate::utf7::encode(&find(&maps, "INBOX.Kunder.Åre").target), "Kunder/&AMU-re");
    }

    #[test]
    fn special_use_attributes() {
        for kind in SpecialUse::ALL {
            assert_eq!(SpecialUse::from_attribute(kind.as_str()), Some(kind));
            assert_eq!(SpecialUse::from_attribute(&kind.as_str().to_uppercase()), Some(kind));
        }
        assert_eq!(SpecialUse::from_attribute("\\Sent"), Some(Sent));
        assert_eq!(SpecialUse::from_attribute("\\Spam"), Some(Junk));
        assert_eq!(SpecialUse::from_attribute("Sent"), None);
        assert_eq!(SpecialUse::from_attribute("\\All"), None);
        assert_eq!(SpecialUse::from_attribute("\\Noselect"), None);
        assert_eq!(SpecialUse::from_attribute("\\"), None);
        assert_eq!(Sent.default_name(), "Sent");
        assert_eq!(Archive.default_name(), "Archive");
    }

    #[test]
    fn describe_aligns_columns() {
        let folders = old_host_folders(&["INBOX", "INBOX.Skickat", "INBOX.Offert 2024/25"]);
        let maps = map_folders(&old_host(), &folders, &dovecot_target());
        assert_eq!(
            describe(&maps),
            "INBOX                -> INBOX           (inbox)\n\
             INBOX.Offert 2024/25 -> Offert 2024∕25  (name / '/' in a name became '∕' (U+2215))\n\
             INBOX.Skickat        -> Sent            (\\Sent by name)\n"
        );
        assert_eq!(describe(&[]), "no folders\n");
    }

    #[test]
    fn operator_overrides_take_their_children_and_never_two_sources_into_one() {
        let folders = old_host_folders(&["INBOX", "INBOX.Skickat", "INBOX.Gamla", "INBOX.Gamla.2019", "INBOX.Gamla.Egen", "INBOX.Arkiv"]);
        let overrides: BTreeMap<String, Vec<String>> = [
            ("INBOX.Gamla".to_string(), vec!["Arkiv".to_string(), "Gamla kunder".to_string()]),
            ("INBOX.Gamla.Egen".to_string(), vec!["Eget".to_string()]),
            ("INBOX.Skickat".to_string(), vec!["Skickat 2019".to_string()]),
            ("INBOX.Arkiv".to_string(), vec!["INBOX".to_string(), "x".to_string()]),
        ]
        .into_iter()
        .collect();
        let maps = map_folders_with(&old_host(), &folders, &dovecot_target(), &overrides);
        assert_eq!(find(&maps, "INBOX.Gamla").target, "Arkiv/Gamla kunder");
        assert_eq!(find(&maps, "INBOX.Gamla").reason, MapReason::Operator);
        assert_eq!(find(&maps, "INBOX.Gamla.2019").target, "Arkiv/Gamla kunder/2019");
        assert_eq!(find(&maps, "INBOX.Gamla.Egen").target, "Eget");
        // The operator's mapping makes Skickat an ordinary folder: no Sent is chosen by name then.
        assert_eq!(find(&maps, "INBOX.Skickat").target, "Skickat 2019");
        assert_eq!(find(&maps, "INBOX.Arkiv").target, "INBOX/x");

        // Onto a name INBOX holds: not used, said in the note.
        let clash: BTreeMap<String, Vec<String>> = [("INBOX.Arkiv".to_string(), vec!["inbox".to_string()])].into_iter().collect();
        let maps = map_folders_with(&old_host(), &folders, &dovecot_target(), &clash);
        let arkiv = find(&maps, "INBOX.Arkiv");
        assert_eq!(arkiv.target, "Archive");
        assert!(arkiv.note.as_deref().unwrap_or("").contains("is not used"), "{arkiv:?}");
    }
}
