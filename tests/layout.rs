//! The house's shape, checked on every `make test` (ARCHITECTURE.md): no dependency cycle between
//! top-level modules, nothing imports from `main`, SQL only under `src/store/`, and no file over 900
//! lines of code outside its tests. It reads the sources as text, so it needs no server and runs in
//! milliseconds; a failure names the modules or files to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Most lines of code a file may have before its tests (comments and blank lines not counted).
const MOST_LINES_OF_CODE: usize = 900;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text before its unit tests: cut at the first `#[cfg(test)]` that opens a module or a
/// file of tests (`mod tests`, `mod transcript_tests`, ...), and a file that is all tests is empty.
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let name = path.file_stem().unwrap().to_string_lossy();
    if name.ends_with("tests") || name == "test_support" || name == "test_rows" {
        return String::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]" && lines.get(i + 1).is_some_and(|next| next.contains("mod ") && next.trim_end().ends_with('{')) {
            end = i;
            break;
        }
    }
    lines[..end].join("\n")
}

/// Top-level module of each file under src/: `src/x.rs` and everything under `src/x/` are `x`.
fn top_level_modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(source_dir()).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs").to_string();
        modules.entry(module).or_default().push(file);
    }
    modules
}

/// The top-level modules a piece of code names as `crate::x` or inside `use crate::{x, ...}`.
fn modules_named(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let identifier = |text: &str| text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find(';').unwrap_or(group.len())];
            for part in group.split(|c: char| c == ',' || c == '{' || c.is_whitespace()) {
                let name = identifier(part.trim_start_matches('}'));
                if known.contains(&name) {
                    named.insert(name);
                }
            }
        } else {
            let name = identifier(rest);
            if known.contains(&name) {
                named.insert(name);
            }
        }
    }
    named
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let modules = top_level_modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, files)| {
            let mut uses = BTreeSet::new();
            for file in files {
                uses.extend(modules_named(&code_of(file), &known));
            }
            uses.remove(module);
            (module.clone(), uses)
        })
        .collect()
}

/// One cycle through `start`, if the graph has one (depth-first search for a path back to it).
fn cycle_through(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        node: &str,
        start: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(node).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(start, start, graph, &mut path, &mut BTreeSet::new()).then(|| {
        path.push(start.to_string());
        path
    })
}

#[test]
fn no_cycle_between_top_level_modules_and_nothing_imports_from_main() {
    let graph = dependencies();
    let cycles: Vec<String> = graph.keys().filter_map(|m| cycle_through(m, &graph)).map(|path| path.join(" -> ")).collect();
    assert!(cycles.is_empty(), "modules that import each other (move the shared piece down a layer):\n{}", cycles.join("\n"));
    let from_main: Vec<&String> = graph.iter().filter(|(_, uses)| uses.contains("main")).map(|(m, _)| m).collect();
    assert!(from_main.is_empty(), "modules importing from main: {from_main:?}");
}

#[test]
fn sql_lives_only_in_the_store() {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let store = source_dir().join("store");
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&store)) {
        let code = code_of(file);
        for needle in [".conn.", "write_transaction(", ".execute(", ".query_row(", ".prepare(", ".prepare_cached(", "execute_batch("] {
            if code.contains(needle) {
                offenders.push(format!("{}: {needle}", file.strip_prefix(source_dir()).unwrap().display()));
            }
        }
    }
    assert!(offenders.is_empty(), "SQL outside src/store/ (give it a named Store or Tx method):\n{}", offenders.join("\n"));
}

#[test]
fn no_file_is_over_900_lines_of_code() {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let mut too_long = Vec::new();
    for file in &files {
        let lines = code_of(file).lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")).count();
        if lines > MOST_LINES_OF_CODE {
            too_long.push(format!("{}: {lines}", file.strip_prefix(source_dir()).unwrap().display()));
        }
    }
    assert!(too_long.is_empty(), "files over {MOST_LINES_OF_CODE} lines of code (split by what they own):\n{}", too_long.join("\n"));
}

#[test]
fn the_checks_see_what_they_look_for() {
    // The text scan itself: a use group, a path, a module that does not exist, and a cycle.
    let known: BTreeSet<String> = ["store", "imap", "pull"].iter().map(|s| s.to_string()).collect();
    let named = modules_named("use crate::{imap::Session, store::{Store, Tx}};\nlet x = crate::pull::run();\ncrate::nothing::x();", &known);
    assert_eq!(named, known);
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(cycle_through("a", &graph).unwrap().join(" -> "), "a -> b -> c -> a");
    assert!(cycle_through("d", &graph).is_none());
}
