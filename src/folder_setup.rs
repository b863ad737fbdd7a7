//! Changing the operator's folder choice (`folder_choice`), the same for `postflytt setup`
//! (`--exclude-folder`, `--include-folder`, `--map-folder`, `--no-folder-choice`) and `POST
//! /api/setup` (`exclude_folders`, `include_folders`, `map_folders`): every pattern checked before
//! anything is stored, and the change refused with a sentence once any account's passes have copied
//! mail, because changing which folders move mid-migration would leave half-copied folders (a folder
//! left out after its mail was copied would keep a partial copy; one taken in late would start from
//! scratch while its neighbours are done). Sending the stored lists again is no change.

use anyhow::{Result, anyhow, bail};

use crate::folder_choice::{parse_overrides, parse_patterns};
use crate::store::Store;

/// The lists to set; None leaves one as it is, an empty list clears it.
#[derive(Debug, Clone, Default)]
pub struct FolderChange {
    pub exclude: Option<Vec<String>>,
    pub include: Option<Vec<String>>,
    pub map: Option<Vec<String>>,
}

impl FolderChange {
    pub fn is_empty(&self) -> bool {
        self.exclude.is_none() && self.include.is_none() && self.map.is_none()
    }

    /// Checks every pattern, refused with a sentence naming `keys` (the flags' or the API's names).
    pub fn check(&self, keys: [&str; 3]) -> Result<()> {
        if let Some(list) = &self.exclude {
            parse_patterns(list).map_err(|e| anyhow!("{}: {e}", keys[0]))?;
        }
        if let Some(list) = &self.include {
            parse_patterns(list).map_err(|e| anyhow!("{}: {e}", keys[1]))?;
        }
        if let Some(list) = &self.map {
            parse_overrides(list).map_err(|e| anyhow!("{}: {e}", keys[2]))?;
        }
        Ok(())
    }
}

fn normal(list: &[String]) -> Vec<String> {
    list.iter().map(|t| t.trim().trim_matches('/').to_string()).collect()
}

impl FolderChange {
    /// Refused with a sentence when the change would change the stored choice once an account has
    /// copies; read-only, so a setup checks it with everything else before it stores anything.
    pub fn check_against(&self, store: &Store) -> Result<()> {
        let settings = store.settings()?;
        let differs = self.exclude.as_ref().is_some_and(|l| normal(l) != settings.exclude_folders)
            || self.include.as_ref().is_some_and(|l| normal(l) != settings.include_folders)
            || self.map.as_ref().is_some_and(|l| l.iter().map(|t| t.trim().to_string()).collect::<Vec<_>>() != settings.map_folders);
        if differs {
            let copied = store.accounts_with_copies(None)?;
            if let Some(first) = copied.first() {
                bail!(
                    "the folder choice cannot change now: {first}{} already had mail copied, and changing which folders move in \
                     the middle of a migration would leave half-copied folders; it can change before an account's first pass \
                     copies anything",
                    if copied.len() > 1 { format!(" and {} more accounts", copied.len() - 1) } else { String::new() }
                );
            }
        }
        Ok(())
    }
}

/// Stores the change (checked with `check` first), refused once an account has copies
/// (`check_against`); answers the line the CLI prints.
pub fn apply(store: &Store, change: &FolderChange) -> Result<String> {
    change.check_against(store)?;
    let saved = store.change_settings(|s| {
        if let Some(l) = &change.exclude {
            s.exclude_folders = normal(l);
        }
        if let Some(l) = &change.include {
            s.include_folders = normal(l);
        }
        if let Some(l) = &change.map {
            s.map_folders = l.iter().map(|t| t.trim().to_string()).collect();
        }
    })?;
    Ok(describe(&saved))
}

/// One line for the CLI: the stored lists.
pub fn describe(s: &crate::store::Settings) -> String {
    let list = |l: &[String]| if l.is_empty() { "none".to_string() } else { l.join(", ") };
    format!(
        "folders: left out {}; taken back {}; mapped {} (and by default: other users' and shared folders, and on a Microsoft 365, \
         Exchange, Kerio Connect or Zimbra source calendars, contacts, tasks, notes and outboxes)",
        list(&s.exclude_folders),
        list(&s.include_folders),
        list(&s.map_folders)
    )
}

/// A JSON list of strings from the API, refused with a sentence naming `key` otherwise.
pub fn strings(key: &str, value: &serde_json::Value) -> Result<Option<Vec<String>>> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| anyhow!("{key} must be a list of strings, e.g. [\"Kalender\", \"Arkiv/*\"]"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        _ => bail!("{key} must be a list of strings, e.g. [\"Kalender\", \"Arkiv/*\"] ([] clears it)"),
    }
}
