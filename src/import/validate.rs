//! From a `Grid` to validated accounts: finding the header row, matching the customer's column names
//! (Swedish, English, bilingual, annotated) to the five fields, and checking every row and the rows
//! against each other (logins, addresses, aliases, passwords, duplicates, the template's example row),
//! each problem naming sheet, row and column.

use std::collections::BTreeMap;

use crate::secret::Secret;

use super::{AccountRow, CellKind, EMPTY_SOURCE_PASSWORD, Grid, GridRow, HEADER_SEARCH_ROWS, Import, ImportError, Problem, column_letter};

/// Longest excerpt of a cell quoted back in a message.
const SHOWN_CHARS: usize = 60;
/// Domains reserved for examples (RFC 2606), plus the one the template uses. A row whose login is at one
/// of them is the template's example left in, not an account.
const EXAMPLE_DOMAINS: [&str; 4] = ["example.se", "example.com", "example.org", "example.net"];

/// The five columns of the account list, in the order problems are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Field {
    SourceLogin,
    SourcePassword,
    TargetLogin,
    TargetPassword,
    Aliases,
    /// Folder patterns left out of this account (issue 18; `folder_choice`), optional.
    ExcludeFolders,
    /// The account's own logins on the DAV servers (issue 19), optional: empty means the mail login
    /// and password of the same side.
    SourceDavLogin,
    SourceDavPassword,
    TargetDavLogin,
    TargetDavPassword,
}

const FIELDS: [Field; 10] = [
    Field::SourceLogin,
    Field::SourcePassword,
    Field::TargetLogin,
    Field::TargetPassword,
    Field::Aliases,
    Field::ExcludeFolders,
    Field::SourceDavLogin,
    Field::SourceDavPassword,
    Field::TargetDavLogin,
    Field::TargetDavPassword,
];

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Field::SourceLogin => "the login on the old server",
            Field::SourcePassword => "the password on the old server",
            Field::TargetLogin => "the login on the new server",
            Field::TargetPassword => "the password on the new server",
            Field::Aliases => "the aliases",
            Field::ExcludeFolders => "the folders to leave out",
            Field::SourceDavLogin => "the calendar and contacts login on the old server",
            Field::SourceDavPassword => "the calendar and contacts password on the old server",
            Field::TargetDavLogin => "the calendar and contacts login on the new server",
            Field::TargetDavPassword => "the calendar and contacts password on the new server",
        }
    }

    /// Header names accepted for the field, matched by `normalize_header`, so case, spaces, dashes and
    /// underscores do not matter ("e-post", "E post", "EPOST" all match "E-post").
    fn names(self) -> &'static [&'static str] {
        match self {
            Field::SourceLogin => &[
                "E-post",
                "E-postadress",
                "E-mail",
                "Email address",
                "Användarnamn",
                "Användare",
                "Username",
                "User",
                "Login",
                "Inloggning",
                "Source login",
                "Source username",
                "Gammal inloggning",
                "Gammalt användarnamn",
                "Old login",
                "Konto",
                "Account",
            ],
            Field::SourcePassword => {
                &["Lösenord", "Password", "Source password", "Gammalt lösenord", "Old password", "Nuvarande lösenord", "Current password"]
            }
            Field::TargetLogin => {
                &["Ny inloggning", "Nytt användarnamn", "Ny e-postadress", "Target login", "Target username", "New login", "New username"]
            }
            Field::TargetPassword => &["Nytt lösenord", "Target password", "New password"],
            Field::Aliases => &["Alias", "Aliases", "Aliasadresser", "Aliasadress", "Alias addresses"],
            Field::ExcludeFolders => &["Exkludera mappar", "Exclude folders", "Uteslut mappar", "Mappar att utesluta", "Excluded folders"],
            // "Source"/"Källans" and "Target"/"Målets" like the mail columns' names; "Gammal"/"Ny" and
            // "Old"/"New" as the mail columns also take.
            Field::SourceDavLogin => &["Källans DAV-inloggning", "Source DAV login", "Gammal DAV-inloggning", "Old DAV login"],
            Field::SourceDavPassword => &["Källans DAV-lösenord", "Source DAV password", "Gammalt DAV-lösenord", "Old DAV password"],
            Field::TargetDavLogin => &["Målets DAV-inloggning", "Target DAV login", "Ny DAV-inloggning", "New DAV login"],
            Field::TargetDavPassword => &["Målets DAV-lösenord", "Target DAV password", "Nytt DAV-lösenord", "New DAV password"],
        }
    }
}

/// Lowercase letters and digits only. Text from a Mac may spell å, ä, ö as a letter plus a combining
/// mark; those are folded back so "Lösenord" still matches.
fn normalize_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let folded = match (out.chars().last(), c) {
            (Some('a'), '\u{030A}') => Some('å'),
            (Some('a'), '\u{0308}') => Some('ä'),
            (Some('o'), '\u{0308}') => Some('ö'),
            _ => None,
        };
        if let Some(letter) = folded {
            out.pop();
            out.push(letter);
        } else if c.is_alphanumeric() {
            out.push(c);
        }
    }
    out
}

/// The field a header cell names. Besides the plain names, a cell may give several names for one field,
/// split by `/`, `|` or parentheses, as the template's bilingual "Lösenord / Password" does; every part
/// must then name the same field, so "Lösenord (nytt)" is not taken for the old password.
pub(super) fn field_for_header(text: &str) -> Option<Field> {
    if let Some(field) = field_for_name(text) {
        return Some(field);
    }
    let mut parts = text.split(['/', '|', '(', ')', '\n']).filter(|part| !normalize_header(part).is_empty());
    let first = field_for_name(parts.next()?)?;
    parts.all(|part| field_for_name(part) == Some(first)).then_some(first)
}

fn field_for_name(text: &str) -> Option<Field> {
    let wanted = normalize_header(text);
    if wanted.is_empty() {
        return None;
    }
    FIELDS.into_iter().find(|field| field.names().iter().any(|name| normalize_header(name) == wanted))
}

/// Where each field is in the grid, and the header text to name it by.
struct Columns {
    header_row: usize,
    found: BTreeMap<Field, (usize, String)>,
}

impl Columns {
    fn index(&self, field: Field) -> Option<usize> {
        self.found.get(&field).map(|(index, _)| *index)
    }

    fn name(&self, field: Field) -> String {
        self.found.get(&field).map_or_else(|| field.describe().to_string(), |(_, header)| header.clone())
    }
}

/// Finds the header row (the first of the top rows naming any known column) and maps its columns.
fn find_columns(grid: &Grid, problems: &mut Vec<Problem>, warnings: &mut Vec<Problem>, no_password: &mut Vec<Problem>) -> Option<Columns> {
    let sheet = grid.sheet();
    let Some(first) = grid.rows.first() else {
        problems.push(Problem {
            sheet: sheet.to_string(),
            row: None,
            column: None,
            message: "the file has no rows; fill in the template and import it again".to_string(),
        });
        return None;
    };
    let header = grid
        .rows
        .iter()
        .take(HEADER_SEARCH_ROWS)
        .find(|row| row.cells.iter().any(|cell| field_for_header(cell).is_some()))
        .unwrap_or(first);
    for row in grid.rows.iter().take_while(|row| row.number < header.number) {
        warnings.push(Problem {
            sheet: sheet.to_string(),
            row: Some(row.number),
            column: None,
            message: "above the header row; ignored".to_string(),
        });
    }
    let mut columns = Columns { header_row: header.number, found: BTreeMap::new() };
    let problem = |column: Option<String>, message: String| Problem { sheet: sheet.to_string(), row: Some(header.number), column, message };
    let before = problems.len();
    for (index, cell) in header.cells.iter().enumerate() {
        let text = cell.trim();
        match field_for_header(text) {
            Some(field) => {
                if let Some((other, other_text)) = columns.found.get(&field) {
                    problems.push(problem(
                        Some(text.to_string()),
                        format!(
                            "both column {} (\"{other_text}\") and column {} (\"{text}\") look like {}; \
                             rename or delete one",
                            column_letter(*other),
                            column_letter(index),
                            field.describe()
                        ),
                    ));
                } else {
                    columns.found.insert(field, (index, text.to_string()));
                }
            }
            None if !text.is_empty() => warnings.push(problem(Some(text.to_string()), "not a column postflytt knows; ignored".to_string())),
            None => {}
        }
    }
    for field in [Field::SourceLogin, Field::SourcePassword] {
        if !columns.found.contains_key(&field) {
            let missing =
                problem(None, format!("no column for {}; name one of the header cells {}", field.describe(), quoted_list(field.names())));
            // Without source passwords a source with an app or admin login still has its list.
            if field == Field::SourcePassword { no_password.push(missing) } else { problems.push(missing) }
        }
    }
    (problems.len() == before).then_some(columns)
}

fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

// ---------------------------------------------------------------------------------------------------
// Rows

/// Validates a grid into accounts. All problems are collected, not only the first, so the customer can
/// fix the whole list in one go.
pub fn accounts_from_grid(mut grid: Grid) -> Result<Import, ImportError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut empty_source_passwords = Vec::new();
    let Some(columns) = find_columns(&grid, &mut problems, &mut warnings, &mut empty_source_passwords) else {
        problems.append(&mut empty_source_passwords);
        return Err(ImportError { problems });
    };
    let sheet = grid.sheet.clone();
    let mut accounts = Vec::new();
    let header_row = columns.header_row;
    for row in grid.rows.iter_mut().filter(|row| row.number > header_row) {
        if let Some(account) = check_row(&sheet, &columns, row, &mut problems, &mut warnings, &mut empty_source_passwords) {
            accounts.push(account);
        }
    }
    check_across_rows(&sheet, &columns, &mut accounts, &mut problems, &mut warnings);
    // Row order reads top to bottom like the sheet; the sort is stable, so one row's problems keep the
    // order they were found in.
    if problems.is_empty() {
        warnings.sort_by_key(|problem| problem.row);
        Ok(Import { accounts, warnings, empty_source_passwords })
    } else {
        // The file is wrong anyway: list the empty passwords with the rest, in row order.
        problems.append(&mut empty_source_passwords);
        problems.sort_by_key(|problem| problem.row);
        Err(ImportError { problems })
    }
}

/// Checks one row on its own. Returns the account even when a cell is wrong, so that checks across rows
/// (duplicates) still see it; the import fails anyway if any problem was found.
fn check_row(
    sheet: &str,
    columns: &Columns,
    row: &mut GridRow,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
    empty_source_passwords: &mut Vec<Problem>,
) -> Option<AccountRow> {
    let number = row.number;
    let problem =
        |field: Field, message: String| Problem { sheet: sheet.to_string(), row: Some(number), column: Some(columns.name(field)), message };
    let cell = |field: Field| -> &str { columns.index(field).and_then(|index| row.cells.get(index)).map_or("", |cell| cell.as_str()) };
    if FIELDS.iter().all(|&field| cell(field).trim().is_empty()) {
        // A notes line or a sum below the list: not an account, but say so in case it was meant as one.
        warnings.push(Problem {
            sheet: sheet.to_string(),
            row: Some(number),
            column: None,
            message: "has no login, password or alias; ignored".to_string(),
        });
        return None;
    }
    if is_example_login(cell(Field::SourceLogin)) {
        warnings.push(problem(
            Field::SourceLogin,
            "an example row like the template's (the domain is reserved for examples); ignored. \
             Replace it with a real account or delete it"
                .to_string(),
        ));
        return None;
    }
    check_cell_kinds(columns, row, &mut |field, message, is_problem| {
        if is_problem {
            problems.push(problem(field, message));
        } else {
            warnings.push(problem(field, message));
        }
    });

    let source_login = cell(Field::SourceLogin).trim().to_string();
    if source_login.is_empty() {
        problems.push(problem(Field::SourceLogin, "empty login".to_string()));
    } else if let Some(message) = login_problem(&source_login) {
        problems.push(problem(Field::SourceLogin, message));
    }

    let target_login = match cell(Field::TargetLogin).trim() {
        "" => source_login.clone(),
        given => {
            if let Some(message) = login_problem(given) {
                problems.push(problem(Field::TargetLogin, message));
            }
            given.to_string()
        }
    };

    let mut aliases: Vec<String> = Vec::new();
    for alias in split_aliases(cell(Field::Aliases)) {
        if let Some(reason) = address_problem(&alias) {
            problems.push(problem(Field::Aliases, format!("alias \"{}\" {reason}", shown(&alias))));
        } else if !aliases.contains(&alias) {
            aliases.push(alias);
        }
    }

    // Several patterns a cell, split on ';', ',' or line breaks; None when the list has no such column,
    // so an older list imported again keeps what was set.
    let exclude_folders = columns.index(Field::ExcludeFolders).map(|_| crate::folder_choice::split_cell(cell(Field::ExcludeFolders)));
    if let Some(Err(e)) = exclude_folders.as_ref().map(|list| crate::folder_choice::parse_patterns(list)) {
        problems.push(problem(Field::ExcludeFolders, e.to_string()));
    }

    // The DAV logins (issue 19): a login is checked like the mail ones; an empty cell is None.
    let mut dav_login = |field: Field| -> Option<String> {
        let login = cell(field).trim();
        if let Some(message) = (!login.is_empty()).then(|| login_problem(login)).flatten() {
            problems.push(problem(field, message));
        }
        (!login.is_empty()).then(|| login.to_string())
    };
    let (source_dav_login, target_dav_login) = (dav_login(Field::SourceDavLogin), dav_login(Field::TargetDavLogin));
    // Passwords are taken out of the grid, not copied, so the `Secret` owns (and later wipes) the only
    // buffer; none of the messages below quote them.
    let password_cell = |row: &mut GridRow, field: Field| -> String {
        columns.index(field).and_then(|index| row.cells.get_mut(index)).map(std::mem::take).unwrap_or_default()
    };
    let source_password = Secret::from(password_cell(row, Field::SourcePassword));
    if source_password.expose().trim().is_empty() {
        // Without the column, its one problem says so (`find_columns`), not one per row.
        if columns.index(Field::SourcePassword).is_some() {
            empty_source_passwords.push(problem(Field::SourcePassword, EMPTY_SOURCE_PASSWORD.to_string()));
        }
    } else if has_outer_space(source_password.expose()) {
        warnings
            .push(problem(Field::SourcePassword, "the password begins or ends with a space; it is used exactly as written".to_string()));
    }
    let target_password = Secret::from(password_cell(row, Field::TargetPassword));
    let target_password = if target_password.expose().trim().is_empty() {
        None
    } else {
        if has_outer_space(target_password.expose()) {
            warnings.push(problem(
                Field::TargetPassword,
                "the password begins or ends with a space; it is used exactly as written".to_string(),
            ));
        }
        Some(target_password)
    };

    // The DAV passwords (issue 19), taken out of the grid like the mail ones; an empty cell is None.
    let mut dav_password = |row: &mut GridRow, field: Field| -> Option<Secret> {
        let password = Secret::from(password_cell(row, field));
        if password.expose().trim().is_empty() {
            return None;
        }
        if has_outer_space(password.expose()) {
            warnings.push(problem(field, "the password begins or ends with a space; it is used exactly as written".to_string()));
        }
        Some(password)
    };
    let dav = crate::store::DavLogins {
        source_login: source_dav_login,
        source_password: dav_password(row, Field::SourceDavPassword),
        target_login: target_dav_login,
        target_password: dav_password(row, Field::TargetDavPassword),
    };

    Some(AccountRow { row: number, source_login, source_password, target_login, target_password, aliases, exclude_folders, dav })
}

fn is_example_login(login: &str) -> bool {
    let login = login.trim().to_lowercase();
    login.rsplit_once('@').is_some_and(|(_, domain)| EXAMPLE_DOMAINS.contains(&domain))
}

/// Reports the known columns' cells that were not text in the workbook: a formula error is a problem
/// (its code would otherwise become a login or password), a password that was a number or date a
/// warning, since what Excel stored may not be what was typed. `report` takes the field, the message,
/// and whether it is a problem.
fn check_cell_kinds(columns: &Columns, row: &GridRow, report: &mut impl FnMut(Field, String, bool)) {
    for field in FIELDS {
        let Some(index) = columns.index(field) else {
            continue;
        };
        let Some(&(_, kind)) = row.kinds.iter().find(|(column, _)| *column == index) else {
            continue;
        };
        match kind {
            CellKind::Error => {
                let code = row.cells.get(index).map_or("", String::as_str);
                report(field, format!("the cell shows the formula error {}; type the value in instead", shown(code)), true);
            }
            CellKind::NotText
                if matches!(field, Field::SourcePassword | Field::TargetPassword | Field::SourceDavPassword | Field::TargetDavPassword) =>
            {
                report(
                    field,
                    "the password is a number or date in the sheet, not text; it is used as \
                     postflytt reads it, which can differ from what was typed (Excel drops leading \
                     zeros and turns 1/2 into a date). If the login fails, format the column as Text \
                     and type the password again"
                        .to_string(),
                    false,
                );
            }
            CellKind::NotText => {}
        }
    }
}

fn has_outer_space(text: &str) -> bool {
    text.trim() != text
}

/// Checks across rows: the same login twice, an alias that is some account's login, one alias on two
/// accounts. Each message names the other row too, so the customer sees both.
fn check_across_rows(
    sheet: &str,
    columns: &Columns,
    accounts: &mut [AccountRow],
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let problem = |row: usize, field: Field, message: String| Problem {
        sheet: sheet.to_string(),
        row: Some(row),
        column: Some(columns.name(field)),
        message,
    };

    let mut source_logins: BTreeMap<String, usize> = BTreeMap::new();
    let mut target_logins: BTreeMap<String, usize> = BTreeMap::new();
    for account in accounts.iter() {
        if !account.source_login.is_empty() {
            let key = account.source_login.to_lowercase();
            match source_logins.get(&key) {
                Some(&first) => problems.push(problem(
                    account.row,
                    Field::SourceLogin,
                    format!("login \"{}\" is also on row {first}", shown(&account.source_login)),
                )),
                None => {
                    source_logins.insert(key, account.row);
                }
            }
        }
        if !account.target_login.is_empty() {
            let key = account.target_login.to_lowercase();
            match target_logins.get(&key) {
                // Two old accounts into one new mailbox can be meant (merging a shared box), so this only
                // warns; the folders of both end up side by side.
                Some(&first) => warnings.push(problem(
                    account.row,
                    Field::TargetLogin,
                    format!(
                        "the new login \"{}\" is also the new login on row {first}; both accounts will be \
                         copied into the same mailbox",
                        shown(&account.target_login)
                    ),
                )),
                None => {
                    target_logins.insert(key, account.row);
                }
            }
        }
    }

    let mut alias_rows: BTreeMap<String, usize> = BTreeMap::new();
    for account in accounts.iter_mut() {
        let own = [account.source_login.to_lowercase(), account.target_login.to_lowercase()];
        let mut kept = Vec::with_capacity(account.aliases.len());
        for alias in std::mem::take(&mut account.aliases) {
            if own.contains(&alias) {
                warnings.push(problem(
                    account.row,
                    Field::Aliases,
                    format!("alias \"{}\" is this account's own login; left out", shown(&alias)),
                ));
                continue;
            }
            let login_row = source_logins.get(&alias).or_else(|| target_logins.get(&alias));
            if let Some(&other) = login_row {
                problems.push(problem(
                    account.row,
                    Field::Aliases,
                    format!("alias \"{}\" is the login of the account on row {other}", shown(&alias)),
                ));
            } else if let Some(&other) = alias_rows.get(&alias) {
                problems.push(problem(account.row, Field::Aliases, format!("alias \"{}\" is also an alias on row {other}", shown(&alias))));
            } else {
                alias_rows.insert(alias.clone(), account.row);
            }
            kept.push(alias);
        }
        account.aliases = kept;
    }
}

/// Splits an alias cell on commas, semicolons and line breaks (and on blanks, which no address
/// contains), trimmed, lowercased, empty parts dropped.
fn split_aliases(cell: &str) -> Vec<String> {
    cell.split(|c: char| matches!(c, ',' | ';' | '\n' | '\r') || c.is_whitespace())
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A login may be a plain user name ("anna"), but one with an `@` must be an address, and none may hold
/// a line break or control character (a cell pasted with one).
fn login_problem(login: &str) -> Option<String> {
    if login.chars().any(char::is_control) {
        return Some(format!("login \"{}\" contains a line break or control character", shown(login)));
    }
    if login.contains('@') {
        return address_problem(login).map(|reason| format!("login \"{}\" {reason}", shown(login)));
    }
    None
}

/// A plain local@domain.tld check: enough to catch typos and cells in the wrong column, not RFC 5322.
/// Returns the reason as the end of a sentence.
fn address_problem(address: &str) -> Option<&'static str> {
    const EXPECTED: &str = "is not an e-mail address of the form name@domain.se";
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains a space or line break");
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Some(EXPECTED);
    };
    if domain.contains('@') {
        return Some("contains more than one @");
    }
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local.chars().any(|c| "\"(),:;<>[]\\".contains(c))
    {
        return Some(EXPECTED);
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let tld_ok =
        labels.last().is_some_and(|tld| (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)) || tld.starts_with("xn--"));
    if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
        return Some(EXPECTED);
    }
    None
}

/// A cell's text for a message, cut short so a runaway cell cannot flood the page.
pub(super) fn shown(text: &str) -> String {
    if text.chars().count() <= SHOWN_CHARS {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(SHOWN_CHARS).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::*;

    #[test]
    fn english_comma_csv_in_any_order_and_case() {
        let text = "notes , PASSWORD,  Target Login ,email,new_password,aliases\n\
                    boss,Sommar2024!,,anna@x.se,,\"a@x.se;b@x.se\"\n\
                    ,Vinter#99,bo.new@y.se,bo@x.se,Pw3,\n";
        let import = import("accounts.csv", text).unwrap();
        let rows = import.accounts;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].source_login, "anna@x.se");
        assert_eq!(rows[0].target_login, "anna@x.se");
        assert_eq!(rows[0].aliases, ["a@x.se", "b@x.se"]);
        assert_eq!(rows[1].target_login, "bo.new@y.se");
        assert_eq!(rows[1].target_password.as_ref().map(Secret::expose), Some("Pw3"));
        // The unknown column is ignored, and said to be.
        let warnings: Vec<String> = import.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings, ["accounts.csv row 1, column \"notes\": not a column postflytt knows; ignored"]);
    }

    #[test]
    fn title_row_above_the_header_is_skipped() {
        let text = "Konton för Företag AB, Stockholm\n\nE-post;Lösenord\nanna@x.se;Sommar2024!\n";
        let import = import("accounts.csv", text).unwrap();
        assert_eq!(import.accounts.len(), 1);
        assert_eq!(import.accounts[0].row, 4);
        assert_eq!(import.warnings[0].to_string(), "accounts.csv row 1: above the header row; ignored");
    }

    #[test]
    fn mac_decomposed_header_matches() {
        let text = "Anv\u{61}\u{308}ndarnamn;Lo\u{308}senord\nanna;Sommar2024!\n";
        assert_eq!(accounts("a.csv", text)[0].source_login, "anna");
    }

    #[test]
    fn empty_rows_are_skipped_and_note_rows_warned() {
        let text = "E-post;Lösenord;Kommentar\n;;\n  ; ;\nanna@x.se;Sommar2024!;\n;;summa 1 konto\n";
        let import = import("accounts.csv", text).unwrap();
        assert_eq!(import.accounts.len(), 1);
        let warnings: Vec<String> = import.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "accounts.csv row 1, column \"Kommentar\": not a column postflytt knows; ignored",
                "accounts.csv row 5: has no login, password or alias; ignored",
            ]
        );
    }

    #[test]
    fn missing_required_columns() {
        let err = problems("E-post;Namn\nanna@x.se;Anna\n");
        assert_eq!(err.problems.len(), 1);
        let line = err.to_string();
        assert!(
            line.starts_with(
                "accounts.csv row 1: no column for the password on the old server; name one of the header cells \"Lösenord\", \"Password\""
            ),
            "{line}"
        );
        let err = problems("Namn;Telefon\nAnna;123\n");
        assert_eq!(err.problems.len(), 2);
        assert!(err.problems[0].message.contains("login on the old server"));
        assert!(err.problems[1].message.contains("password on the old server"));
    }

    #[test]
    fn two_columns_for_one_field() {
        let err = problems("E-post;Lösenord;Användarnamn\nanna@x.se;Sommar2024!;anna\n");
        assert_error(
            &err,
            "accounts.csv row 1, column \"Användarnamn\": both column A (\"E-post\") and column C \
             (\"Användarnamn\") look like the login on the old server; rename or delete one",
        );
    }

    #[test]
    fn empty_file() {
        let err = problems("");
        assert_eq!(err.to_string(), "accounts.csv: the file has no rows; fill in the template and import it again");
        let err = problems("\u{FEFF}\r\n;;;\r\n");
        assert!(err.to_string().contains("has no rows"));
    }

    #[test]
    fn every_row_problem_is_reported_with_row_and_column() {
        let text = "E-post;Lösenord;Ny inloggning;Nytt lösenord;Alias\n\
                    ;Sommar2024!;;;\n\
                    anna@x.se;;;Vinter#99;\n\
                    anna@x;Pw3;;;\n\
                    bo@x.se;Pw4;bo @y.se;;\"info@x.se;fel@;ok@x.se\"\n\
                    cilla;Pw5;;;x@@x.se\n";
        let err = problems(text);
        let expected = [
            "accounts.csv row 2, column \"E-post\": empty login",
            "accounts.csv row 3, column \"Lösenord\": empty password",
            "accounts.csv row 4, column \"E-post\": login \"anna@x\" is not an e-mail address of the form name@domain.se",
            "accounts.csv row 5, column \"Ny inloggning\": login \"bo @y.se\" contains a space or line break",
            "accounts.csv row 5, column \"Alias\": alias \"fel@\" is not an e-mail address of the form name@domain.se",
            "accounts.csv row 6, column \"Alias\": alias \"x@@x.se\" contains more than one @",
        ];
        for line in expected {
            assert_error(&err, line);
        }
        assert_eq!(err.problems.len(), expected.len(), "{err}");
        // Problems come in sheet order.
        let rows: Vec<_> = err.problems.iter().map(|p| p.row).collect();
        let mut sorted = rows.clone();
        sorted.sort();
        assert_eq!(rows, sorted);
    }

    #[test]
    fn whitespace_password_is_empty_and_spaces_are_warned() {
        let err = problems("E-post;Lösenord\nanna@x.se;   \n");
        assert_error(&err, "accounts.csv row 2, column \"Lösenord\": empty password");
        let import = import("a.csv", "E-post;Lösenord\nanna@x.se; Sommar2024! \n").unwrap();
        assert_eq!(import.accounts[0].source_password.expose(), " Sommar2024! ");
        let warning = import.warnings[0].to_string();
        assert!(warning.starts_with("a.csv row 2, column \"Lösenord\": the password begins or ends"), "{warning}");
        assert!(!warning.contains("Sommar"));
    }

    #[test]
    fn duplicate_logins_name_both_rows() {
        let text = "E-post;Lösenord\nanna@x.se;Sommar2024!\nbo@x.se;Vinter#99\nAnna@X.se;Pw3\n";
        let err = problems(text);
        assert_eq!(err.problems.len(), 1);
        assert_error(&err, "accounts.csv row 4, column \"E-post\": login \"Anna@X.se\" is also on row 2");
    }

    #[test]
    fn shared_target_login_only_warns() {
        let text = "E-post;Lösenord;Ny inloggning\nanna@x.se;Sommar2024!;info@y.se\nbo@x.se;Vinter#99;INFO@y.se\n";
        let import = import("a.csv", text).unwrap();
        assert_eq!(import.accounts.len(), 2);
        assert!(
            import.warnings[0]
                .to_string()
                .starts_with("a.csv row 3, column \"Ny inloggning\": the new login \"INFO@y.se\" is also the new login on row 2")
        );
    }

    #[test]
    fn alias_conflicts() {
        let text = "E-post;Lösenord;Alias\n\
                    anna@x.se;Sommar2024!;info@x.se\n\
                    bo@x.se;Vinter#99;INFO@x.se, Anna@x.se\n\
                    cilla@x.se;Pw3;cilla@x.se\n";
        let err = problems(text);
        assert_error(&err, "accounts.csv row 3, column \"Alias\": alias \"info@x.se\" is also an alias on row 2");
        assert_error(&err, "accounts.csv row 3, column \"Alias\": alias \"anna@x.se\" is the login of the account on row 2");
        assert_eq!(err.problems.len(), 2, "{err}");
        // An account listing its own address as an alias is harmless: dropped with a warning.
        let import = import("a.csv", "E-post;Lösenord;Alias\ncilla@x.se;Pw3;\"Cilla@x.se;c@x.se\"\n").unwrap();
        assert_eq!(import.accounts[0].aliases, ["c@x.se"]);
        assert!(import.warnings[0].message.contains("own login"));
    }

    #[test]
    fn aliases_split_trim_lowercase_and_dedupe() {
        assert_eq!(
            split_aliases(" A@x.se, b@x.se;c@x.se\r\nd@x.se\n\n,, e@x.se f@x.se ;"),
            ["a@x.se", "b@x.se", "c@x.se", "d@x.se", "e@x.se", "f@x.se"]
        );
        assert!(split_aliases(" ; , \n").is_empty());
        let rows = accounts("a.csv", "E-post;Lösenord;Aliasadresser\nanna@x.se;Pw;\"a@x.se\nA@X.SE,b@x.se\"\n");
        assert_eq!(rows[0].aliases, ["a@x.se", "b@x.se"]);
    }

    #[test]
    fn address_check() {
        for good in ["anna@x.se", "anna.berg+tag@mail.foretag.se", "åsa@företag.se", "a@xn--fretag-wxa.se", "a_b@x-y.com"] {
            assert_eq!(address_problem(good), None, "{good}");
        }
        for bad in [
            "anna",
            "anna@",
            "@x.se",
            "anna@x",
            "anna@x.",
            "anna@.se",
            "anna@x..se",
            "an na@x.se",
            "anna@x.s",
            "anna@-x.se",
            "anna@x.s3",
            ".anna@x.se",
            "an..na@x.se",
            "anna@x.se;",
            "a<b@x.se",
            "anna@x_y.se",
        ] {
            assert!(address_problem(bad).is_some(), "{bad}");
        }
        // A login without @ is a user name and only needs to be one line.
        assert_eq!(login_problem("anna.berg"), None);
        assert!(login_problem("anna\nberg").is_some());
    }

    #[test]
    fn header_names_are_unambiguous() {
        let mut seen = BTreeMap::new();
        for field in FIELDS {
            for name in field.names() {
                let key = normalize_header(name);
                assert!(seen.insert(key.clone(), field).is_none(), "{name} is listed twice");
                assert_eq!(field_for_header(&format!("  {} ", name.to_uppercase())), Some(field), "{name}");
            }
        }
        // The synonyms the customer-facing docs promise.
        for (name, field) in [
            ("E-post", Field::SourceLogin),
            ("E-postadress", Field::SourceLogin),
            ("E-mail", Field::SourceLogin),
            ("Email", Field::SourceLogin),
            ("Användarnamn", Field::SourceLogin),
            ("Username", Field::SourceLogin),
            ("Login", Field::SourceLogin),
            ("Source login", Field::SourceLogin),
            ("Gammal inloggning", Field::SourceLogin),
            ("Konto", Field::SourceLogin),
            ("Account", Field::SourceLogin),
            ("Lösenord", Field::SourcePassword),
            ("Password", Field::SourcePassword),
            ("Source password", Field::SourcePassword),
            ("Gammalt lösenord", Field::SourcePassword),
            ("Ny inloggning", Field::TargetLogin),
            ("Target login", Field::TargetLogin),
            ("Nytt användarnamn", Field::TargetLogin),
            ("New login", Field::TargetLogin),
            ("Nytt lösenord", Field::TargetPassword),
            ("Target password", Field::TargetPassword),
            ("New password", Field::TargetPassword),
            ("Alias", Field::Aliases),
            ("Aliases", Field::Aliases),
            ("Aliasadresser", Field::Aliases),
        ] {
            assert_eq!(field_for_header(name), Some(field), "{name}");
        }
    }

    #[test]
    fn bilingual_and_annotated_headers() {
        for (header, field) in [
            ("E-post / Username", Some(Field::SourceLogin)),
            ("Lösenord / Password", Some(Field::SourcePassword)),
            ("Ny inloggning / Target login", Some(Field::TargetLogin)),
            ("Nytt lösenord / Target password", Some(Field::TargetPassword)),
            ("Alias / Aliases", Some(Field::Aliases)),
            ("Lösenord (Password)", Some(Field::SourcePassword)),
            ("E-post|Email", Some(Field::SourceLogin)),
            ("E-post\nEmail", Some(Field::SourceLogin)),
            ("Lösenord (nytt)", None),
            ("Användarnamn / Lösenord", None),
            ("/", None),
        ] {
            assert_eq!(field_for_header(header), field, "{header}");
        }
    }

    #[test]
    fn example_rows_are_skipped_with_a_warning() {
        let text = "E-post;Lösenord\nanna.andersson@Example.se;Sommar2024!\nbo@x.se;Pw3\n\
                    test@example.com;;\n";
        let import = import("konton.csv", text).unwrap();
        assert_eq!(import.accounts.len(), 1);
        assert_eq!(import.accounts[0].source_login, "bo@x.se");
        let warnings = strings(&import.warnings);
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].starts_with(
                "konton.csv row 2, column \"E-post\": an example row like the template's (the domain is reserved for examples); ignored"
            ),
            "{warnings:?}"
        );
        assert!(warnings[1].starts_with("konton.csv row 4, column \"E-post\""));
        assert!(!is_example_login("anna@example.se.foretag.se"));
        assert!(!is_example_login("anna@myexample.se"));
    }
}
