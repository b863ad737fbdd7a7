//! The customer's account list: turning the file the customer sent into validated `AccountRow`s, or into a
//! list of every problem in it, each naming sheet, row and column the way the customer's spreadsheet
//! program shows them. Reading is split in two so that every file format feeds one validator: a reader
//! (CSV, an .xlsx or .ods workbook, or a .zip holding one of them; the type is judged by the bytes, not
//! the name) produces a `Grid` of text cells with their spreadsheet row numbers, and
//! `accounts_from_grid` finds the header row, maps the columns and checks every row. Passwords move from
//! the grid straight into `Secret`s and never appear in a message. Files are treated as hostile: sizes,
//! entry counts and sheet areas are checked before anything is unpacked or expanded. This file holds the
//! public API, the row and problem types and the `Grid`; the readers are `csv`, `archive` (zip) and
//! `workbook` (xlsx and ods, with the `ods_scan` that runs first), and the validator is `validate`.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::secret::{Secret, wipe};

mod archive;
mod csv;
mod ods_scan;
#[cfg(test)]
mod test_support;
mod validate;
mod workbook;

use self::archive::read_archive;
pub use self::csv::csv_grid;
pub use self::validate::accounts_from_grid;
use self::validate::field_for_header;

/// Most spreadsheet rows (header included) a list may have. A customer has hundreds of accounts at most;
/// the limit only keeps a hostile or broken file from using up the box's memory.
pub const MAX_ROWS: usize = 100_000;
/// Most columns a row may use (trailing empty cells do not count).
pub const MAX_COLUMNS: usize = 256;
/// Most cells one grid holds. Rows times columns alone would allow 25 million cells, far more than a
/// 1 GB box can keep as strings.
pub const MAX_CELLS: usize = 2_000_000;
/// Largest file accepted, checked before it is read.
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// How far down the header row is looked for, so a title line or two above it is tolerated.
const HEADER_SEARCH_ROWS: usize = 10;
/// Most bytes a zip archive (a .zip the customer sent, or the archive an .xlsx or .ods workbook is) may
/// unpack to, by the sizes it declares; the zip crate fails a member that grows past its declared size.
pub const MAX_UNZIPPED_BYTES: u64 = 64 << 20;
/// Most entries of a .zip the customer sent: a list, perhaps a readme and the Mac's `__MACOSX` shadows.
pub const MAX_ZIP_ENTRIES: usize = 100;
/// Most parts of a workbook. Excel writes about a dozen; pictures and many sheets add some.
const MAX_WORKBOOK_PARTS: usize = 1000;
/// Start of every OLE compound file: Excel 97-2003 .xls, and any password-protected Office file.
const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0";

/// One account as the customer listed it.
#[derive(Debug, Clone)]
pub struct AccountRow {
    /// Spreadsheet row number, 1-based, counting the header row, as the customer's program shows it.
    pub row: usize,
    pub source_login: String,
    pub source_password: Secret,
    /// The source login when the list gave none.
    pub target_login: String,
    /// `None` when the cell was empty, as it is for Microsoft 365, whose login is by app token.
    pub target_password: Option<Secret>,
    /// Lowercased, trimmed, without duplicates, in the order given.
    pub aliases: Vec<String>,
    /// The folder patterns of the "Exkludera mappar" column (`folder_choice`); None without the column.
    pub exclude_folders: Option<Vec<String>>,
    /// The account's own DAV logins (issue 19), each None when its cell is empty or the list has no
    /// such column: the engine then uses the mail login and password.
    pub dav: crate::store::DavLogins,
}

/// A successful import: the accounts, and what was noticed but did not stop it.
#[derive(Debug, Clone)]
pub struct Import {
    pub accounts: Vec<AccountRow>,
    /// Ignored columns, ignored rows, and oddities the operator may want to look at.
    pub warnings: Vec<Problem>,
    /// Rows whose source password is empty, or the list's missing source password column. A problem
    /// when the source logs in with passwords (the strict entry points turn them into an error); fine
    /// for a Microsoft 365 source, which logs in with the app's token, or one with an admin login.
    pub empty_source_passwords: Vec<Problem>,
}

/// The problem text of an empty source password (only the source's password can be a problem when
/// empty), by which a Microsoft 365 source's import drops them.
const EMPTY_SOURCE_PASSWORD: &str = "empty password";
/// How the problem of a list without a source password column begins; like an empty source password,
/// no problem for a source that logs in otherwise.
const NO_SOURCE_PASSWORD_COLUMN: &str = "no column for the password on the old server";

/// How the source logs in, which decides whether the source password column must be filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceAuth {
    /// Each account's own password (an IMAP source).
    Password,
    /// The app registration's token (a Microsoft 365 source): the column may stay empty.
    App,
    /// The account's own password where the list gives one, else the source's admin login
    /// (`admin_login`): the column may stay empty, or be left out.
    Admin,
}

impl SourceAuth {
    pub fn of(source_kind: crate::store::ServerKind) -> SourceAuth {
        match source_kind {
            crate::store::ServerKind::Imap => SourceAuth::Password,
            crate::store::ServerKind::Microsoft365 => SourceAuth::App,
        }
    }
}

/// One thing wrong with (or, as a warning, worth noting about) the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name for CSV, the sheet name for a workbook.
    pub sheet: String,
    /// Spreadsheet row number; `None` for a problem with the whole file.
    pub row: Option<usize>,
    /// Header text as the customer wrote it, or a column letter when there is no header to name.
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", OneLine(&self.sheet))?;
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, "{} column \"{}\"", if self.row.is_some() { "," } else { "" }, OneLine(column))?;
        }
        write!(f, ": {}", OneLine(&self.message))
    }
}

impl Problem {
    /// The problem as the Swedish page shows it: where, in Swedish, and what, in Swedish where
    /// `swedish`'s catalog knows the sentence.
    pub fn in_swedish(&self) -> String {
        let mut out = OneLine(&self.sheet).to_string();
        if let Some(row) = self.row {
            out.push_str(&format!(" rad {row}"));
        }
        if let Some(column) = &self.column {
            out.push_str(&format!("{} kolumn \"{}\"", if self.row.is_some() { "," } else { "" }, OneLine(column)));
        }
        out.push_str(": ");
        out.push_str(&crate::swedish::sentence(&OneLine(&self.message).to_string()));
        out
    }
}

/// Shows control characters as escapes (`\n`), so a cell or header holding a line break cannot split
/// a problem over two lines of the report.
struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Every problem found in the list; the import is all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// In row order, file-wide problems first.
    pub problems: Vec<Problem>,
}

impl ImportError {
    fn file(sheet: &str, message: impl Into<String>) -> ImportError {
        ImportError { problems: vec![Problem { sheet: sheet.to_string(), row: None, column: None, message: message.into() }] }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportError {}

/// Reads and validates the account list at `path`.
#[cfg(test)] // the strict form; the program asks for the source's kind
pub fn read_accounts(path: &Path) -> Result<Vec<AccountRow>, ImportError> {
    read_import(path).map(|import| import.accounts)
}

/// Like `read_accounts`, keeping the warnings.
#[cfg(test)] // the strict form; the program asks for the source's kind
pub fn read_import(path: &Path) -> Result<Import, ImportError> {
    read_import_for(path, SourceAuth::Password, None)
}

/// What saving an account list did: accounts added and updated, and the logins already stored that the
/// list no longer holds (kept, as a re-import never removes an account).
pub struct Saved {
    pub added: usize,
    pub updated: usize,
    pub not_in_file: Vec<String>,
    /// Accounts whose folders to leave out the list changed after mail was copied: kept, one sentence each.
    pub kept_folder_choice: Vec<String>,
}

/// Stores a validated list's accounts: every password sealed first, then all rows in one short write
/// transaction (an import is all or nothing). The CLI's `import` and `POST /api/accounts` both save here.
pub fn save(store: &crate::store::Store, accounts: &[AccountRow]) -> anyhow::Result<Saved> {
    let known: Vec<String> = store.accounts(&[])?.into_iter().map(|a| a.source_login).collect();
    let sealed = accounts
        .iter()
        .map(|row| {
            let sealed = store.seal_account(
                &row.source_login,
                &row.source_password,
                &row.target_login,
                row.target_password.as_ref(),
                &row.aliases,
            )?;
            store.seal_dav_logins(sealed, &row.dav)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut kept_folder_choice = Vec::new();
    let (added, updated) = store.write(|tx| {
        let (mut added, mut updated) = (0, 0);
        for (account, row) in sealed.iter().zip(accounts) {
            // Read before the upsert: a new target login resets the copies it counts.
            let before = tx.account_exclusions_and_copies(&row.source_login)?;
            if tx.upsert_account(account)? {
                added += 1;
            } else {
                updated += 1;
            }
            let Some(patterns) = &row.exclude_folders else { continue };
            let patterns = patterns.join("\n");
            match before {
                Some((stored, true)) if stored != patterns => kept_folder_choice.push(format!(
                    "{}: the folders to leave out were kept as they were ({}): mail has been copied, and changing which folders \
                     move in the middle of a migration would leave half-copied folders",
                    row.source_login,
                    if stored.is_empty() { "none".to_string() } else { stored.replace('\n', ", ") }
                )),
                _ => tx.set_account_exclude_folders(&row.source_login, &patterns)?,
            }
        }
        Ok((added, updated))
    })?;
    let not_in_file = known.into_iter().filter(|k| !accounts.iter().any(|r| r.source_login.eq_ignore_ascii_case(k))).collect();
    Ok(Saved { added, updated, not_in_file, kept_folder_choice })
}

/// Like `read_import`, for a source that logs in as `auth` says; `zip_password` opens a
/// password-protected .zip (AES, or the old ZipCrypto).
pub fn read_import_for(path: &Path, auth: SourceAuth, zip_password: Option<&Secret>) -> Result<Import, ImportError> {
    let sheet = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
    let cannot = |err: std::io::Error| ImportError::file(&sheet, format!("cannot read the file: {err}"));
    let file = File::open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(&sheet));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` bounds the read even if the file grows after the size check.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        wipe(bytes);
        return Err(too_large(&sheet));
    }
    let result = import_locked(&sheet, &bytes, auth, zip_password);
    // The file holds every password in clear; do not leave a copy of it in freed memory.
    wipe(bytes);
    result
}

fn too_large(sheet: &str) -> ImportError {
    ImportError::file(sheet, format!("the file is larger than {} MB; an account list is much smaller", MAX_FILE_BYTES >> 20))
}

/// Validates an account list given as bytes (an upload). The type is judged by the bytes (zip, OLE
/// compound file, text) and then by the archive's contents; `file_name` only names the file in messages
/// and, inside a .zip, picks the member.
#[cfg(test)] // the strict form; the program asks for the source's kind
pub fn import_bytes(file_name: &str, bytes: &[u8]) -> Result<Import, ImportError> {
    import_bytes_for(file_name, bytes, SourceAuth::Password)
}

/// Like `import_bytes`, for a source that logs in as `auth` says.
#[cfg(test)]
pub fn import_bytes_for(file_name: &str, bytes: &[u8], auth: SourceAuth) -> Result<Import, ImportError> {
    import_locked(file_name, bytes, auth, None)
}

/// Like `import_bytes_for`; `zip_password` opens a password-protected .zip.
pub fn import_locked(file_name: &str, bytes: &[u8], auth: SourceAuth, zip_password: Option<&Secret>) -> Result<Import, ImportError> {
    let mut import = match read_document(file_name, bytes, false, zip_password) {
        Ok(import) => import,
        // A file with other problems lists its empty source passwords with them; for a source that
        // logs in with an app they are not problems, so they would only hide the real ones.
        Err(mut e) if auth != SourceAuth::Password => {
            e.problems.retain(|p| p.message != EMPTY_SOURCE_PASSWORD && !p.message.starts_with(NO_SOURCE_PASSWORD_COLUMN));
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if auth == SourceAuth::Password && !import.empty_source_passwords.is_empty() {
        return Err(ImportError { problems: std::mem::take(&mut import.empty_source_passwords) });
    }
    Ok(import)
}

/// Reads one file: `in_zip` when it came out of a .zip, which may not hold another .zip.
fn read_document(name: &str, bytes: &[u8], in_zip: bool, zip_password: Option<&Secret>) -> Result<Import, ImportError> {
    if bytes.starts_with(OLE_MAGIC) {
        return Err(ImportError::file(
            name,
            "this is an Excel 97-2003 workbook (.xls) or a password-protected workbook, which \
             postflytt does not read; open it in Excel, remove any password, and save it as \
             \"Excel Workbook (.xlsx)\" or \"CSV UTF-8\", then import that file",
        ));
    }
    // A local file header, or the end record alone (an empty archive).
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return read_archive(name, bytes, in_zip, zip_password);
    }
    if let Some(message) = not_a_list(name, bytes) {
        return Err(ImportError::file(name, message));
    }
    let extension = extension(name);
    let result = csv_grid(name, bytes).and_then(accounts_from_grid);
    match result {
        // A text list under a workbook's name is read (some tools do that), but when it does not
        // read as a list either, say first what is wrong with the file itself.
        Err(mut e) if matches!(extension.as_str(), "xlsx" | "xlsm" | "ods" | "zip") => {
            let lead = ImportError::file(
                name,
                format!(
                    "the file is named .{extension} but is not one (a real .{extension} file is a zip archive): it may be \
                     damaged or renamed; open it in the spreadsheet program and save it again as .xlsx or \"CSV UTF-8\". \
                     Read as text, it gives:"
                ),
            );
            let mut problems = lead.problems;
            problems.append(&mut e.problems);
            e.problems = problems;
            Err(e)
        }
        other => other,
    }
}

/// Recognises files that are neither a workbook nor text, which the CSV reader would otherwise turn
/// into a confusing "no column for the login".
fn not_a_list(name: &str, bytes: &[u8]) -> Option<String> {
    let extension = extension(name);
    if bytes.starts_with(b"%PDF") {
        return Some(
            "this is a PDF document, not a spreadsheet; send the Excel or CSV file the list was \
             made in"
                .to_string(),
        );
    }
    if bytes.starts_with(b"Rar!") || bytes.starts_with(b"7z\xBC\xAF\x27\x1C") {
        return Some(
            "this is a RAR or 7-Zip archive, which postflytt does not unpack; send the list itself \
             or a .zip"
                .to_string(),
        );
    }
    let utf16 = bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF");
    if !utf16 && bytes.contains(&0) {
        let message = if matches!(extension.as_str(), "xlsx" | "xlsm" | "ods" | "zip") {
            format!(
                "the file is named .{extension} but is not one; it may be damaged or only partly \
                 downloaded. Save or send it again"
            )
        } else {
            "the file is neither a spreadsheet nor text; save the list as .xlsx or \"CSV UTF-8\"".to_string()
        };
        return Some(message);
    }
    // Web applications often export an HTML table or Excel 2003 XML under an .xls name.
    let start = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if start.trim_ascii_start().starts_with(b"<") {
        return Some(
            "this is a web page or XML file, not a spreadsheet Excel saved; open it in Excel and \
             save it as \"Excel Workbook (.xlsx)\" or \"CSV UTF-8\""
                .to_string(),
        );
    }
    None
}

/// Lowercased extension of a file name, empty without one.
fn extension(name: &str) -> String {
    Path::new(name).extension().map(|ext| ext.to_string_lossy().to_lowercase()).unwrap_or_default()
}

/// A sheet of text cells with their spreadsheet row numbers: what every file reader produces and the
/// validator consumes. It enforces the size limits as rows go in, so no reader can exceed them.
#[derive(Debug, Default)]
pub struct Grid {
    sheet: String,
    rows: Vec<GridRow>,
    cells: usize,
}

#[derive(Debug)]
struct GridRow {
    number: usize,
    cells: Vec<String>,
    /// Cells that were not text in the workbook, by 0-based column; empty for CSV.
    kinds: Vec<(usize, CellKind)>,
}

/// What a workbook cell was before it became the text in the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// A number, date, time or truth value: the text is how postflytt spells it, which may differ from
    /// what was typed (Excel drops leading zeros and turns "1/2" into a date).
    NotText,
    /// A formula's error value such as `#N/A`; the text is that code.
    Error,
}

impl Grid {
    pub fn new(sheet: impl Into<String>) -> Grid {
        Grid { sheet: sheet.into(), rows: Vec::new(), cells: 0 }
    }

    pub fn sheet(&self) -> &str {
        &self.sheet
    }

    /// Rows kept so far; rows with only empty cells are not kept.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds spreadsheet row `number` (1-based, increasing). Trailing empty cells are dropped and a row of
    /// nothing but empty cells is skipped, so a sheet whose used range runs far past the data costs
    /// nothing.
    pub fn push_row(&mut self, number: usize, cells: Vec<String>) -> Result<(), ImportError> {
        self.push_cells(number, cells, Vec::new())
    }

    /// `push_row` for a workbook row, with the columns whose cells were not text.
    pub fn push_cells(&mut self, number: usize, mut cells: Vec<String>, kinds: Vec<(usize, CellKind)>) -> Result<(), ImportError> {
        while cells.last().is_some_and(|cell| cell.trim().is_empty()) {
            cells.pop();
        }
        if cells.is_empty() {
            return Ok(());
        }
        let problem = |column: Option<String>, message: String| ImportError {
            problems: vec![Problem { sheet: self.sheet.clone(), row: Some(number), column, message }],
        };
        if number > MAX_ROWS {
            cells.into_iter().for_each(|cell| wipe(cell.into_bytes()));
            return Err(problem(None, format!("the list has more than {MAX_ROWS} rows; is this the right file?")));
        }
        if cells.len() > MAX_COLUMNS {
            cells.into_iter().for_each(|cell| wipe(cell.into_bytes()));
            return Err(problem(
                Some(column_letter(MAX_COLUMNS)),
                format!("the row uses more than {MAX_COLUMNS} columns; is this the right file?"),
            ));
        }
        self.cells += cells.len();
        if self.cells > MAX_CELLS {
            cells.into_iter().for_each(|cell| wipe(cell.into_bytes()));
            return Err(problem(None, format!("the list has more than {MAX_CELLS} cells; is this the right file?")));
        }
        self.rows.push(GridRow { number, cells, kinds });
        Ok(())
    }

    /// Whether one of the rows the header is looked for in names a known column.
    fn has_header(&self) -> bool {
        self.rows.iter().take(HEADER_SEARCH_ROWS).any(|row| row.cells.iter().any(|cell| field_for_header(cell).is_some()))
    }
}

impl Drop for Grid {
    // The grid holds the passwords of every row, including rows that fail validation and never become a
    // `Secret`; wipe them all.
    fn drop(&mut self) {
        for row in self.rows.drain(..) {
            row.cells.into_iter().for_each(|cell| wipe(cell.into_bytes()));
        }
    }
}

/// Spreadsheet column name for a 0-based index: 0 is "A", 25 "Z", 26 "AA".
pub fn column_letter(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::*;

    /// Every byte of the data directory's database files, to look for a password in the clear.
    fn database_bytes(dir: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        for name in ["postflytt.sqlite", "postflytt.sqlite-wal"] {
            bytes.extend(std::fs::read(dir.join(name)).unwrap_or_default());
        }
        bytes
    }

    fn holds(bytes: &[u8], text: &str) -> bool {
        bytes.windows(text.len()).any(|w| w == text.as_bytes())
    }

    #[test]
    fn dav_logins_in_english_and_swedish_are_sealed_and_wiped_with_the_mail_passwords() {
        // English and Swedish headers, in any order, with the mail columns' spellings.
        let english = "Email address;Password;Source DAV login;Source DAV password;Target DAV login;target dav password\n\
                       anna@x.se;Sommar2024!;anna.cal;DavGammal-1;;DavNy-2\n\
                       bo@x.se;Vinter#99;;;;\n";
        let swedish = "E-post;Lösenord;Målets DAV-lösenord;Källans DAV-inloggning;Källans DAV-lösenord;Målets DAV-inloggning\n\
                       anna@x.se;Sommar2024!;DavNy-2;anna.cal;DavGammal-1;\n";
        for text in [english, swedish] {
            let rows = accounts("accounts.csv", text);
            let dav = &rows[0].dav;
            assert_eq!((dav.source_login.as_deref(), dav.target_login.as_deref()), (Some("anna.cal"), None), "{text}");
            assert_eq!(dav.source_password.as_ref().map(Secret::expose), Some("DavGammal-1"));
            assert_eq!(dav.target_password.as_ref().map(Secret::expose), Some("DavNy-2"));
        }
        let bad = problems("E-post;Lösenord;Källans DAV-inloggning\nanna@x.se;Sommar2024!;anna cal@x.se\n");
        assert!(bad.to_string().contains("Källans DAV-inloggning"), "a DAV login is checked like a mail login: {bad}");

        let dir = std::env::temp_dir().join(format!("postflytt-import-dav-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::store::Store::open(&dir).unwrap();
        save(&store, &accounts("accounts.csv", english)).unwrap();
        let all = store.accounts(&[]).unwrap();
        let (anna, bo) = (&all[0], &all[1]);
        assert_eq!((anna.source_dav_login.as_deref(), anna.target_dav_login.as_deref()), (Some("anna.cal"), None));
        assert_eq!(anna.source_dav_password.as_ref().map(Secret::expose), Some("DavGammal-1"));
        assert_eq!(anna.target_dav_password.as_ref().map(Secret::expose), Some("DavNy-2"));
        assert!(bo.source_dav_login.is_none() && bo.source_dav_password.is_none() && bo.target_dav_password.is_none(), "empty is None");
        let bytes = database_bytes(&dir);
        assert!(holds(&bytes, "anna.cal"), "the login is in the clear, as the mail logins are");
        assert!(!holds(&bytes, "DavGammal-1") && !holds(&bytes, "DavNy-2"), "the DAV passwords are sealed");
        // A re-import sets them as the list has them now, like the mail passwords.
        save(&store, &accounts("accounts.csv", "E-post;Lösenord;Målets DAV-lösenord\nanna@x.se;Sommar2024!;Bytt-3\n")).unwrap();
        let anna = store.accounts(&["anna@x.se".into()]).unwrap().remove(0);
        assert_eq!((anna.source_dav_login, anna.source_dav_password.is_none()), (None, true));
        assert_eq!(anna.target_dav_password.as_ref().map(Secret::expose), Some("Bytt-3"));
        // The finish's purge wipes them with the mail passwords.
        store.purge().unwrap();
        let anna = store.accounts(&["anna@x.se".into()]).unwrap().remove(0);
        assert!(anna.target_dav_password.is_none() && anna.source_password.is_none());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn limits() {
        let mut grid = Grid::new("big.csv");
        let err = grid.push_row(MAX_ROWS + 1, vec!["x".to_string()]).unwrap_err();
        assert_eq!(err.to_string(), "big.csv row 100001: the list has more than 100000 rows; is this the right file?");
        // Trailing empty cells do not count against the column limit, and an empty row is free.
        assert!(grid.push_row(MAX_ROWS + 2, vec![String::new(); 1000]).is_ok());
        let mut cells = vec![String::new(); MAX_COLUMNS + 10];
        cells[0] = "x".to_string();
        assert!(grid.push_row(2, cells).is_ok());
        let err = grid.push_row(3, vec!["x".to_string(); MAX_COLUMNS + 1]).unwrap_err();
        assert_eq!(err.to_string(), "big.csv row 3, column \"IW\": the row uses more than 256 columns; is this the right file?");

        let mut text = String::from("E-post;Lösenord\n");
        for i in 0..MAX_ROWS {
            text.push_str(&format!("u{i};p\n"));
        }
        let err = problems(&text);
        assert!(err.to_string().contains("more than 100000 rows"), "{err}");
    }

    #[test]
    fn cell_limit() {
        let mut grid = Grid::new("big.csv");
        let row = vec!["x".to_string(); MAX_COLUMNS];
        let mut result = Ok(());
        for number in 1..=MAX_ROWS {
            result = grid.push_row(number, row.clone());
            if result.is_err() {
                break;
            }
        }
        let err = result.unwrap_err();
        assert!(err.to_string().contains("more than 2000000 cells"), "{err}");
    }

    #[test]
    fn column_letters() {
        let letters: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 255, 701, 702].into_iter().map(column_letter).collect();
        assert_eq!(letters, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "IV", "ZZ", "AAA"]);
    }

    #[test]
    fn old_excel_and_other_files_are_refused_with_advice() {
        let ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0\0\0";
        for name in ["konton.xls", "konton.xlsx", "konton.csv"] {
            let err = failure(name, ole);
            assert!(
                err.to_string().starts_with(&format!("{name}: this is an Excel 97-2003 workbook (.xls) or a password-protected workbook")),
                "{err}"
            );
        }
        let err = failure("k.zip", &zip(&[("konton.xls", ole)]));
        assert!(err.to_string().starts_with("k.zip/konton.xls: this is an Excel 97-2003"), "{err}");
        for (name, bytes, expected) in [
            ("konton.pdf", &b"%PDF-1.7\n"[..], "this is a PDF document"),
            ("konton.xlsx", b"\x12\x00\x99garbage", "the file is named .xlsx but is not one"),
            ("konton.dat", b"\x12\x00\x99garbage", "the file is neither a spreadsheet nor text"),
            ("konton.xls", b"\xEF\xBB\xBF <html><table>", "this is a web page or XML file"),
            ("konton.rar", b"Rar!\x1A\x07\x00", "this is a RAR or 7-Zip archive"),
            ("konton.xlsx", b"PK\x03\x04truncated", "cannot be opened as a zip archive"),
        ] {
            let err = failure(name, bytes);
            assert!(err.to_string().starts_with(&format!("{name}: {expected}")), "{err}");
        }
        let word = zip(&[("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w/>")]);
        assert!(failure("k.docx", &word).to_string().contains("Word or PowerPoint"));
        let xlsb = zip(&[("[Content_Types].xml", b"<Types/>"), ("xl/workbook.bin", b"")]);
        assert!(failure("k.xlsb", &xlsb).to_string().contains("(.xlsb)"));
    }

    #[test]
    fn the_type_is_judged_by_content_not_name() {
        let workbook = xlsx(&[sheet("Blad1", &[&["E-post", "Lösenord"], &["anna@x.se", "Pw3"]])]);
        assert_eq!(success("konton.csv", &workbook).accounts[0].source_login, "anna@x.se");
        let csv = "E-post;Lösenord\nanna@x.se;Pw3\n".as_bytes();
        assert_eq!(success("konton.xlsx", csv).accounts[0].source_login, "anna@x.se");
        assert_eq!(success("konton", &zip(&[("k.csv", csv)])).accounts.len(), 1);
    }

    #[test]
    fn read_accounts_from_a_file() {
        let dir = std::env::temp_dir().join(format!("postflytt-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("Konton 2024.csv");
        std::fs::write(&path, windows_1252("Konto;Lösenord\r\nanna@x.se;Sommar2024!\r\nbo@x.se;\r\n")).unwrap();
        let err = read_accounts(&path).unwrap_err();
        assert_error(&err, "Konton 2024.csv row 3, column \"Lösenord\": empty password");
        std::fs::write(&path, "Konto;Lösenord\nanna@x.se;Sommar2024!\n").unwrap();
        let rows = read_accounts(&path).unwrap();
        assert_eq!(rows[0].source_password.expose(), "Sommar2024!");
        // Debug output of an account never shows its password.
        assert!(!format!("{rows:?}").contains("Sommar2024!"));
        let err = read_accounts(&dir.join("missing.csv")).unwrap_err();
        assert!(err.to_string().starts_with("missing.csv: cannot read the file:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod source_auth_tests {
    use super::*;

    #[test]
    fn an_app_source_needs_no_passwords_and_is_not_told_about_them() {
        let list = "E-post;Lösenord;Ny inloggning\r\nanna@kund.se;;anna@ny.se\r\nbo@kund.se;;bo@ny.se\r\n";
        let err = import_bytes_for("konton.csv", list.as_bytes(), SourceAuth::Password).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        let import = import_bytes_for("konton.csv", list.as_bytes(), SourceAuth::App).unwrap();
        assert_eq!(import.accounts.len(), 2);
        // Another problem in the file: only that one is shown for an app source.
        let broken = "E-post;Lösenord;Ny inloggning\r\nanna@kund.se;;anna@ny.se\r\nanna@kund.se;;bo@ny.se\r\n";
        let err = import_bytes_for("konton.csv", broken.as_bytes(), SourceAuth::App).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].row, Some(3), "{err}");
        let err = import_bytes_for("konton.csv", broken.as_bytes(), SourceAuth::Password).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn with_a_source_admin_login_the_source_password_column_may_be_left_out() {
        let list = "E-post;Ny inloggning\r\nanna@kund.se;anna@ny.se\r\nbo@kund.se;bo@ny.se\r\n";
        let err = import_bytes_for("konton.csv", list.as_bytes(), SourceAuth::Password).unwrap_err();
        assert_eq!(err.problems.len(), 1, "one problem for the column, none per row: {err}");
        assert!(err.problems[0].message.starts_with(NO_SOURCE_PASSWORD_COLUMN), "{err}");
        let import = import_bytes_for("konton.csv", list.as_bytes(), SourceAuth::Admin).unwrap();
        assert_eq!(import.accounts.len(), 2);
        assert!(import.accounts.iter().all(|a| a.source_password.is_empty()));
        // A row with its own password keeps it; the others use the admin.
        let mixed = "E-post;Lösenord\r\nanna@kund.se;eget\r\nbo@kund.se;\r\n";
        let import = import_bytes_for("konton.csv", mixed.as_bytes(), SourceAuth::Admin).unwrap();
        assert_eq!(import.accounts[0].source_password.expose(), "eget");
        // Other problems are still shown, without the column's.
        let broken = "E-post;Ny inloggning\r\nanna@kund.se;a@ny.se\r\nanna@kund.se;b@ny.se\r\n";
        let err = import_bytes_for("konton.csv", broken.as_bytes(), SourceAuth::Admin).unwrap_err();
        assert!(err.problems.iter().all(|p| !p.message.starts_with(NO_SOURCE_PASSWORD_COLUMN)) && !err.problems.is_empty(), "{err}");
    }
}
