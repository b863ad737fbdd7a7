//! The customer's account list: turning the file the customer sent into validated `AccountRow`s, or into a
//! list of every problem in it, each naming sheet, row and column the way the customer's spreadsheet
//! program shows them. Reading is split in two so that every file format feeds one validator: a reader
//! (CSV here; xlsx and zip later) produces a `Grid` of text cells with their spreadsheet row numbers, and
//! `accounts_from_grid` finds the header row, maps the columns and checks every row. Passwords move from
//! the grid straight into `Secret`s and never appear in a message.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::secret::{Secret, wipe};

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
/// Longest excerpt of a cell quoted back in a message.
const SHOWN_CHARS: usize = 60;

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
}

/// A successful import: the accounts, and what was noticed but did not stop it.
#[derive(Debug, Clone)]
pub struct Import {
    pub accounts: Vec<AccountRow>,
    /// Ignored columns, ignored rows, and oddities the operator may want to look at.
    pub warnings: Vec<Problem>,
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
            write!(
                f,
                "{} column \"{}\"",
                if self.row.is_some() { "," } else { "" },
                OneLine(column)
            )?;
        }
        write!(f, ": {}", OneLine(&self.message))
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
        ImportError {
            problems: vec![Problem {
                sheet: sheet.to_string(),
                row: None,
                column: None,
                message: message.into(),
            }],
        }
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
pub fn read_accounts(path: &Path) -> Result<Vec<AccountRow>, ImportError> {
    read_import(path).map(|import| import.accounts)
}

/// Like `read_accounts`, keeping the warnings.
pub fn read_import(path: &Path) -> Result<Import, ImportError> {
    let sheet = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let cannot =
        |err: std::io::Error| ImportError::file(&sheet, format!("cannot read the file: {err}"));
    let file = File::open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(&sheet));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` bounds the read even if the file grows after the size check.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        wipe(bytes);
        return Err(too_large(&sheet));
    }
    let result = import_bytes(&sheet, &bytes);
    // The file holds every password in clear; do not leave a copy of it in freed memory.
    wipe(bytes);
    result
}

fn too_large(sheet: &str) -> ImportError {
    ImportError::file(
        sheet,
        format!(
            "the file is larger than {} MB; an account list is much smaller",
            MAX_FILE_BYTES >> 20
        ),
    )
}

/// Validates an account list given as bytes (an upload), choosing the reader by `file_name`'s extension
/// and the bytes' first few.
pub fn import_bytes(file_name: &str, bytes: &[u8]) -> Result<Import, ImportError> {
    let extension = Path::new(file_name)
        .extension()
        .map(|ext| ext.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    // An xlsx file is a zip archive; catch one that was renamed to .csv as well.
    let is_zip = bytes.starts_with(b"PK\x03\x04");
    // Excel 97-2003 .xls is an OLE compound file.
    let is_ole = bytes.starts_with(b"\xD0\xCF\x11\xE0");
    if is_zip || is_ole || matches!(extension.as_str(), "xlsx" | "xlsm" | "xls" | "ods" | "zip") {
        return Err(ImportError::file(
            file_name,
            "Excel and zip files cannot be read yet; open the list in Excel and save it as \
             \"CSV UTF-8\", then import that file",
        ));
    }
    accounts_from_grid(csv_grid(file_name, bytes)?)
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
}

impl Grid {
    pub fn new(sheet: impl Into<String>) -> Grid {
        Grid {
            sheet: sheet.into(),
            rows: Vec::new(),
            cells: 0,
        }
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
    pub fn push_row(&mut self, number: usize, mut cells: Vec<String>) -> Result<(), ImportError> {
        while cells.last().is_some_and(|cell| cell.trim().is_empty()) {
            cells.pop();
        }
        if cells.is_empty() {
            return Ok(());
        }
        let problem = |column: Option<String>, message: String| ImportError {
            problems: vec![Problem {
                sheet: self.sheet.clone(),
                row: Some(number),
                column,
                message,
            }],
        };
        if number > MAX_ROWS {
            return Err(problem(
                None,
                format!("the list has more than {MAX_ROWS} rows; is this the right file?"),
            ));
        }
        if cells.len() > MAX_COLUMNS {
            return Err(problem(
                Some(column_letter(MAX_COLUMNS)),
                format!("the row uses more than {MAX_COLUMNS} columns; is this the right file?"),
            ));
        }
        self.cells += cells.len();
        if self.cells > MAX_CELLS {
            return Err(problem(
                None,
                format!("the list has more than {MAX_CELLS} cells; is this the right file?"),
            ));
        }
        self.rows.push(GridRow { number, cells });
        Ok(())
    }
}

impl Drop for Grid {
    // The grid holds the passwords of every row, including rows that fail validation and never become a
    // `Secret`; wipe them all.
    fn drop(&mut self) {
        for row in self.rows.drain(..) {
            row.cells
                .into_iter()
                .for_each(|cell| wipe(cell.into_bytes()));
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

// ---------------------------------------------------------------------------------------------------
// CSV

/// Reads CSV as spreadsheet programs write it: Excel in a Swedish locale writes `;`-separated
/// Windows-1252 ("CSV (semikolonavgränsad)") or UTF-8 with a BOM ("CSV UTF-8"); "Unicode text" is UTF-16
/// with tabs; other tools write `,`. Quoted fields may hold separators and line breaks.
pub fn csv_grid(sheet: &str, bytes: &[u8]) -> Result<Grid, ImportError> {
    // Wrapped in a `Secret` so the decoded copy of every password is wiped when parsing is done.
    let text =
        Secret::from(decode_text(bytes).map_err(|message| ImportError::file(sheet, message))?);
    let (body, declared, first_row) = split_sep_line(text.expose());
    let delimiter = match declared {
        Some(delimiter) => delimiter,
        None => sniff_delimiter(body),
    };
    let mut grid = Grid::new(sheet);
    read_csv_rows(body, delimiter, first_row, |number, cells| {
        grid.push_row(number, cells)
    })
    .map_err(|err| match err {
        CsvStop::Grid(err) => err,
        CsvStop::Parse(message) => ImportError::file(sheet, message),
    })?;
    Ok(grid)
}

enum CsvStop {
    Grid(ImportError),
    Parse(String),
}

/// Feeds each CSV record to `row` with its spreadsheet row number. The csv crate skips blank lines,
/// which a spreadsheet shows as empty rows, so they are counted back in; otherwise every error below a
/// blank line would name the wrong row.
fn read_csv_rows(
    text: &str,
    delimiter: u8,
    first_row: usize,
    mut row: impl FnMut(usize, Vec<String>) -> Result<(), ImportError>,
) -> Result<(), CsvStop> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut next_row = first_row;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let start = record.position().map_or(0, |pos| pos.byte()) as usize;
                let number = next_row + blank_lines_at(text.as_bytes(), start);
                next_row = number + 1;
                row(number, record.iter().map(str::to_string).collect()).map_err(CsvStop::Grid)?;
            }
            // The crate's messages give a position, never field contents.
            Err(err) => return Err(CsvStop::Parse(format!("cannot read the CSV: {err}"))),
        }
    }
}

/// Blank lines at `start`, where the csv crate says a record begins: it reports the byte just after the
/// previous record's terminator (or after the CR of a CRLF one), before the blank lines it skips.
fn blank_lines_at(text: &[u8], start: usize) -> usize {
    let mut i = start;
    // The LF that completes the previous record's CRLF is not a line of its own.
    if i > 0 && text.get(i - 1) == Some(&b'\r') && text.get(i) == Some(&b'\n') {
        i += 1;
    }
    let mut blank = 0;
    loop {
        match text.get(i) {
            Some(b'\r') => {
                blank += 1;
                i += 1;
                if text.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            Some(b'\n') => {
                blank += 1;
                i += 1;
            }
            _ => return blank,
        }
    }
}

/// Excel honours a first line `sep=;` naming the separator, and does not show it as a row. Returns the
/// rest of the text, the separator, and the spreadsheet row number of the rest's first line.
fn split_sep_line(text: &str) -> (&str, Option<u8>, usize) {
    let (line, rest) = match text.find('\n') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    };
    let line = line.trim_end_matches('\r');
    let declared = line
        .strip_prefix("sep=")
        .filter(|sep| sep.len() == 1 && sep.is_ascii())
        .and_then(|sep| sep.bytes().next());
    match declared {
        Some(sep) => (rest, Some(sep), 1),
        None => (text, None, 1),
    }
}

const DELIMITERS: [u8; 3] = [b';', b'\t', b','];

/// Chooses the separator that makes the most cells of the first rows read as known column names; a
/// title line such as "Konton, Företag AB" above the header cannot fool it the way counting commas in
/// the first line would. Without any known name, the most frequent separator of the first line wins;
/// ties go to `;`, the Swedish Excel default.
fn sniff_delimiter(text: &str) -> u8 {
    let first_line = text
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("");
    let mut best: Option<((usize, usize), u8)> = None;
    for delimiter in DELIMITERS {
        let mut known = 0;
        let _ = read_csv_rows(text, delimiter, 1, |number, cells| {
            known = known.max(
                cells
                    .iter()
                    .filter(|cell| field_for_header(cell).is_some())
                    .count(),
            );
            cells.into_iter().for_each(|cell| wipe(cell.into_bytes()));
            // Stop after the rows the header may be among; the error only ends the scan.
            if number >= HEADER_SEARCH_ROWS {
                Err(ImportError {
                    problems: Vec::new(),
                })
            } else {
                Ok(())
            }
        });
        let score = (known, count_outside_quotes(first_line, delimiter));
        // Strictly better only, so ties keep the earlier candidate in `DELIMITERS`.
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, delimiter));
        }
    }
    best.map_or(DELIMITERS[0], |(_, delimiter)| delimiter)
}

fn count_outside_quotes(line: &str, delimiter: u8) -> usize {
    let mut quoted = false;
    let mut count = 0;
    for byte in line.bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if byte == delimiter && !quoted {
            count += 1;
        }
    }
    count
}

/// Text of a CSV file: UTF-8 with or without BOM, UTF-16 with BOM, or else Windows-1252, which is what
/// Excel writes for "CSV" in Western European locales. Every byte string is valid Windows-1252, so only a
/// file that declares itself Unicode and then breaks that promise is an error.
fn decode_text(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return match std::str::from_utf8(rest) {
            Ok(text) => Ok(text.to_string()),
            Err(err) => Err(format!(
                "the file says it is UTF-8 but is not, on line {}; save it again as \"CSV UTF-8\"",
                line_of(rest, err.valid_up_to())
            )),
        };
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return decode_utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return decode_utf16(rest, u16::from_be_bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(_) => Ok(decode_windows_1252(bytes)),
    }
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, String> {
    if !bytes.len().is_multiple_of(2) {
        return Err(
            "the file says it is UTF-16 but has an odd number of bytes; save it again as \
                    \"CSV UTF-8\""
                .to_string(),
        );
    }
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    let mut text = String::with_capacity(bytes.len() / 2);
    let mut line = 1;
    for decoded in char::decode_utf16(units) {
        match decoded {
            Ok(c) => {
                if c == '\n' {
                    line += 1;
                }
                text.push(c);
            }
            Err(_) => {
                wipe(text.into_bytes());
                return Err(format!(
                    "the file says it is UTF-16 but is not, on line {line}; save it again as \"CSV UTF-8\""
                ));
            }
        }
    }
    Ok(text)
}

/// Windows-1252 for 0x80..=0x9F; the five bytes it leaves undefined map to the C1 controls, as browsers
/// do. Every other byte is the Latin-1 code point of the same number.
const WINDOWS_1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

fn decode_windows_1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => WINDOWS_1252_HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Columns

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    SourceLogin,
    SourcePassword,
    TargetLogin,
    TargetPassword,
    Aliases,
}

const FIELDS: [Field; 5] = [
    Field::SourceLogin,
    Field::SourcePassword,
    Field::TargetLogin,
    Field::TargetPassword,
    Field::Aliases,
];

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Field::SourceLogin => "the login on the old server",
            Field::SourcePassword => "the password on the old server",
            Field::TargetLogin => "the login on the new server",
            Field::TargetPassword => "the password on the new server",
            Field::Aliases => "the aliases",
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
            Field::SourcePassword => &[
                "Lösenord",
                "Password",
                "Source password",
                "Gammalt lösenord",
                "Old password",
                "Nuvarande lösenord",
                "Current password",
            ],
            Field::TargetLogin => &[
                "Ny inloggning",
                "Nytt användarnamn",
                "Ny e-postadress",
                "Target login",
                "Target username",
                "New login",
                "New username",
            ],
            Field::TargetPassword => &["Nytt lösenord", "Target password", "New password"],
            Field::Aliases => &[
                "Alias",
                "Aliases",
                "Aliasadresser",
                "Aliasadress",
                "Alias addresses",
            ],
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

fn field_for_header(text: &str) -> Option<Field> {
    let wanted = normalize_header(text);
    if wanted.is_empty() {
        return None;
    }
    FIELDS.into_iter().find(|field| {
        field
            .names()
            .iter()
            .any(|name| normalize_header(name) == wanted)
    })
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
        self.found.get(&field).map_or_else(
            || field.describe().to_string(),
            |(_, header)| header.clone(),
        )
    }
}

/// Finds the header row (the first of the top rows naming any known column) and maps its columns.
fn find_columns(
    grid: &Grid,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Option<Columns> {
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
        .find(|row| {
            row.cells
                .iter()
                .any(|cell| field_for_header(cell).is_some())
        })
        .unwrap_or(first);
    for row in grid
        .rows
        .iter()
        .take_while(|row| row.number < header.number)
    {
        warnings.push(Problem {
            sheet: sheet.to_string(),
            row: Some(row.number),
            column: None,
            message: "above the header row; ignored".to_string(),
        });
    }
    let mut columns = Columns {
        header_row: header.number,
        found: BTreeMap::new(),
    };
    let problem = |column: Option<String>, message: String| Problem {
        sheet: sheet.to_string(),
        row: Some(header.number),
        column,
        message,
    };
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
            None if !text.is_empty() => warnings.push(problem(
                Some(text.to_string()),
                "not a column postflytt knows; ignored".to_string(),
            )),
            None => {}
        }
    }
    for field in [Field::SourceLogin, Field::SourcePassword] {
        if !columns.found.contains_key(&field) {
            problems.push(problem(
                None,
                format!(
                    "no column for {}; name one of the header cells {}",
                    field.describe(),
                    quoted_list(field.names())
                ),
            ));
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
    let Some(columns) = find_columns(&grid, &mut problems, &mut warnings) else {
        return Err(ImportError { problems });
    };
    let sheet = grid.sheet.clone();
    let mut accounts = Vec::new();
    let header_row = columns.header_row;
    for row in grid.rows.iter_mut().filter(|row| row.number > header_row) {
        if let Some(account) = check_row(&sheet, &columns, row, &mut problems, &mut warnings) {
            accounts.push(account);
        }
    }
    check_across_rows(
        &sheet,
        &columns,
        &mut accounts,
        &mut problems,
        &mut warnings,
    );
    // Row order reads top to bottom like the sheet; the sort is stable, so one row's problems keep the
    // order they were found in.
    problems.sort_by_key(|problem| problem.row);
    warnings.sort_by_key(|problem| problem.row);
    if problems.is_empty() {
        Ok(Import { accounts, warnings })
    } else {
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
) -> Option<AccountRow> {
    let number = row.number;
    let problem = |field: Field, message: String| Problem {
        sheet: sheet.to_string(),
        row: Some(number),
        column: Some(columns.name(field)),
        message,
    };
    let cell = |field: Field| -> &str {
        columns
            .index(field)
            .and_then(|index| row.cells.get(index))
            .map_or("", |cell| cell.as_str())
    };
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
            problems.push(problem(
                Field::Aliases,
                format!("alias \"{}\" {reason}", shown(&alias)),
            ));
        } else if !aliases.contains(&alias) {
            aliases.push(alias);
        }
    }

    // Passwords are taken out of the grid, not copied, so the `Secret` owns (and later wipes) the only
    // buffer; none of the messages below quote them.
    let password_cell = |row: &mut GridRow, field: Field| -> String {
        columns
            .index(field)
            .and_then(|index| row.cells.get_mut(index))
            .map(std::mem::take)
            .unwrap_or_default()
    };
    let source_password = Secret::from(password_cell(row, Field::SourcePassword));
    if source_password.expose().trim().is_empty() {
        problems.push(problem(Field::SourcePassword, "empty password".to_string()));
    } else if has_outer_space(source_password.expose()) {
        warnings.push(problem(
            Field::SourcePassword,
            "the password begins or ends with a space; it is used exactly as written".to_string(),
        ));
    }
    let target_password = Secret::from(password_cell(row, Field::TargetPassword));
    let target_password = if target_password.expose().trim().is_empty() {
        None
    } else {
        if has_outer_space(target_password.expose()) {
            warnings.push(problem(
                Field::TargetPassword,
                "the password begins or ends with a space; it is used exactly as written"
                    .to_string(),
            ));
        }
        Some(target_password)
    };

    Some(AccountRow {
        row: number,
        source_login,
        source_password,
        target_login,
        target_password,
        aliases,
    })
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
                    format!(
                        "login \"{}\" is also on row {first}",
                        shown(&account.source_login)
                    ),
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
        let own = [
            account.source_login.to_lowercase(),
            account.target_login.to_lowercase(),
        ];
        let mut kept = Vec::with_capacity(account.aliases.len());
        for alias in std::mem::take(&mut account.aliases) {
            if own.contains(&alias) {
                warnings.push(problem(
                    account.row,
                    Field::Aliases,
                    format!(
                        "alias \"{}\" is this account's own login; left out",
                        shown(&alias)
                    ),
                ));
                continue;
            }
            let login_row = source_logins
                .get(&alias)
                .or_else(|| target_logins.get(&alias));
            if let Some(&other) = login_row {
                problems.push(problem(
                    account.row,
                    Field::Aliases,
                    format!(
                        "alias \"{}\" is the login of the account on row {other}",
                        shown(&alias)
                    ),
                ));
            } else if let Some(&other) = alias_rows.get(&alias) {
                problems.push(problem(
                    account.row,
                    Field::Aliases,
                    format!(
                        "alias \"{}\" is also an alias on row {other}",
                        shown(&alias)
                    ),
                ));
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
        return Some(format!(
            "login \"{}\" contains a line break or control character",
            shown(login)
        ));
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
    let tld_ok = labels.last().is_some_and(|tld| {
        (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
            || tld.starts_with("xn--")
    });
    if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
        return Some(EXPECTED);
    }
    None
}

/// A cell's text for a message, cut short so a runaway cell cannot flood the page.
fn shown(text: &str) -> String {
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

    const PASSWORDS: [&str; 6] = [
        "Sommar2024!",
        "Vinter#99",
        "hemligt;med\nradbrytning",
        "Pw3",
        "Pw4",
        "Pw5",
    ];

    fn import(name: &str, text: &str) -> Result<Import, ImportError> {
        import_bytes(name, text.as_bytes())
    }

    fn accounts(name: &str, text: &str) -> Vec<AccountRow> {
        match import(name, text) {
            Ok(import) => import.accounts,
            Err(err) => panic!("import failed:\n{err}"),
        }
    }

    fn problems(text: &str) -> ImportError {
        match import("accounts.csv", text) {
            Ok(import) => panic!("import should fail, got {:?}", import.accounts),
            Err(err) => err,
        }
    }

    /// The error must mention every fragment, and no password from the list.
    fn assert_error(err: &ImportError, line: &str) {
        let text = err.to_string();
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
        for password in PASSWORDS {
            assert!(
                !text.contains(password),
                "password {password:?} leaked into:\n{text}"
            );
        }
    }

    fn windows_1252(text: &str) -> Vec<u8> {
        text.chars()
            .map(|c| match c {
                '€' => 0x80,
                '’' => 0x92,
                c if (c as u32) < 0x100 => c as u32 as u8,
                c => panic!("{c} not in test encoder"),
            })
            .collect()
    }

    #[test]
    fn swedish_semicolon_csv_with_bom() {
        let text = "\u{FEFF}E-post;Lösenord;Nytt lösenord;Alias\r\n\
                    anna@foretag.se;Sommar2024!;Ny1;info@foretag.se, kontakt@foretag.se\r\n\
                    bo@foretag.se;Vinter#99;;\r\n";
        let rows = accounts("konton.csv", text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[0].source_login, "anna@foretag.se");
        assert_eq!(rows[0].source_password.expose(), "Sommar2024!");
        assert_eq!(rows[0].target_login, "anna@foretag.se");
        assert_eq!(
            rows[0].target_password.as_ref().map(Secret::expose),
            Some("Ny1")
        );
        assert_eq!(rows[0].aliases, ["info@foretag.se", "kontakt@foretag.se"]);
        assert_eq!(rows[1].row, 3);
        assert!(rows[1].target_password.is_none());
        assert!(rows[1].aliases.is_empty());
    }

    #[test]
    fn windows_1252_file() {
        let text = "Användarnamn;Lösenord;Ny inloggning\r\nåsa;Lösen€’;åsa@nytt.se\r\n";
        let bytes = windows_1252(text);
        assert!(std::str::from_utf8(&bytes).is_err());
        let rows = import_bytes("konton.csv", &bytes).unwrap().accounts;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].source_login, "åsa");
        assert_eq!(rows[0].source_password.expose(), "Lösen€’");
        assert_eq!(rows[0].target_login, "åsa@nytt.se");
    }

    #[test]
    fn windows_1252_table_matches_the_standard() {
        // Spot checks against the published table, including an undefined byte.
        let decoded = decode_windows_1252(&[0x80, 0x81, 0x8A, 0x96, 0x9F, 0xA0, 0xE5, 0xFF]);
        assert_eq!(
            decoded,
            "\u{20AC}\u{0081}\u{0160}\u{2013}\u{0178}\u{00A0}å\u{00FF}"
        );
    }

    #[test]
    fn utf16_text_with_tabs() {
        let text = "Username\tPassword\nanna@x.se\tSommar2024!\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let rows = import_bytes("list.txt", &bytes).unwrap().accounts;
        assert_eq!(rows[0].source_login, "anna@x.se");
        assert_eq!(rows[0].source_password.expose(), "Sommar2024!");
    }

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
        assert_eq!(
            rows[1].target_password.as_ref().map(Secret::expose),
            Some("Pw3")
        );
        // The unknown column is ignored, and said to be.
        let warnings: Vec<String> = import.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            ["accounts.csv row 1, column \"notes\": not a column postflytt knows; ignored"]
        );
    }

    #[test]
    fn quoted_fields_hold_separators_and_line_breaks() {
        let text = "E-post;Lösenord;Alias\n\
                    anna@x.se;\"hemligt;med\nradbrytning\";\"a@x.se\nb@x.se;\"\"c\"\"@x.se\"\n\
                    bo@x.se;;\n";
        let err = problems(text);
        // The quoted line break makes row 2 span two lines; bo is still on spreadsheet row 3.
        assert_error(
            &err,
            "accounts.csv row 3, column \"Lösenord\": empty password",
        );
        assert_error(
            &err,
            "accounts.csv row 2, column \"Alias\": alias \"\"c\"@x.se\" is not an e-mail address of the form name@domain.se",
        );
        let fixed = text
            .replace(";\"\"c\"\"@x.se", "")
            .replace("bo@x.se;;", "bo@x.se;Pw3;");
        let rows = accounts("accounts.csv", &fixed);
        assert_eq!(rows[0].source_password.expose(), "hemligt;med\nradbrytning");
        assert_eq!(rows[0].aliases, ["a@x.se", "b@x.se"]);
        assert_eq!(rows[1].row, 3);
    }

    #[test]
    fn blank_lines_keep_row_numbers() {
        let text = "E-post;Lösenord\n\nanna@x.se;Sommar2024!\n\n\nbo@x.se;\n";
        let err = problems(text);
        assert_eq!(err.problems.len(), 1);
        assert_error(
            &err,
            "accounts.csv row 6, column \"Lösenord\": empty password",
        );
        // The same with Windows line ends, leading blank lines, and a quoted line break before the gap.
        let text = "\r\n\r\nE-post;Lösenord\r\n\"an\r\nna\";Sommar2024!\r\n\r\nbo@x.se;\r\n";
        let err = problems(text);
        assert_error(
            &err,
            "accounts.csv row 6, column \"Lösenord\": empty password",
        );
        assert_error(
            &err,
            "accounts.csv row 4, column \"E-post\": login \"an\\r\\nna\" contains a line break or control character",
        );
        let mut grid = csv_grid("a.csv", b"\n\nx\n\"y\ny\"\n\nz").unwrap();
        let numbers: Vec<usize> = grid.rows.iter().map(|row| row.number).collect();
        assert_eq!(numbers, [3, 4, 6]);
        grid.rows.clear();
    }

    #[test]
    fn sep_line_names_the_separator() {
        let text = "sep=,\nE-post,Lösenord\nanna@x.se,\"Sommar2024!\"\nbo@x.se,\n";
        let err = problems(text);
        assert_error(
            &err,
            "accounts.csv row 3, column \"Lösenord\": empty password",
        );
    }

    #[test]
    fn title_row_above_the_header_is_skipped() {
        let text = "Konton för Företag AB, Stockholm\n\nE-post;Lösenord\nanna@x.se;Sommar2024!\n";
        let import = import("accounts.csv", text).unwrap();
        assert_eq!(import.accounts.len(), 1);
        assert_eq!(import.accounts[0].row, 4);
        assert_eq!(
            import.warnings[0].to_string(),
            "accounts.csv row 1: above the header row; ignored"
        );
    }

    #[test]
    fn mac_decomposed_header_matches() {
        let text = "Anv\u{61}\u{308}ndarnamn;Lo\u{308}senord\nanna;Sommar2024!\n";
        assert_eq!(accounts("a.csv", text)[0].source_login, "anna");
    }

    #[test]
    fn empty_rows_are_skipped_and_note_rows_warned() {
        let text =
            "E-post;Lösenord;Kommentar\n;;\n  ; ;\nanna@x.se;Sommar2024!;\n;;summa 1 konto\n";
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
        assert!(line.starts_with("accounts.csv row 1: no column for the password on the old server; name one of the header cells \"Lösenord\", \"Password\""), "{line}");
        let err = problems("Namn;Telefon\nAnna;123\n");
        assert_eq!(err.problems.len(), 2);
        assert!(err.problems[0].message.contains("login on the old server"));
        assert!(
            err.problems[1]
                .message
                .contains("password on the old server")
        );
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
        assert_eq!(
            err.to_string(),
            "accounts.csv: the file has no rows; fill in the template and import it again"
        );
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
        assert_error(
            &err,
            "accounts.csv row 2, column \"Lösenord\": empty password",
        );
        let import = import("a.csv", "E-post;Lösenord\nanna@x.se; Sommar2024! \n").unwrap();
        assert_eq!(import.accounts[0].source_password.expose(), " Sommar2024! ");
        let warning = import.warnings[0].to_string();
        assert!(
            warning.starts_with("a.csv row 2, column \"Lösenord\": the password begins or ends"),
            "{warning}"
        );
        assert!(!warning.contains("Sommar"));
    }

    #[test]
    fn duplicate_logins_name_both_rows() {
        let text = "E-post;Lösenord\nanna@x.se;Sommar2024!\nbo@x.se;Vinter#99\nAnna@X.se;Pw3\n";
        let err = problems(text);
        assert_eq!(err.problems.len(), 1);
        assert_error(
            &err,
            "accounts.csv row 4, column \"E-post\": login \"Anna@X.se\" is also on row 2",
        );
    }

    #[test]
    fn shared_target_login_only_warns() {
        let text = "E-post;Lösenord;Ny inloggning\nanna@x.se;Sommar2024!;info@y.se\nbo@x.se;Vinter#99;INFO@y.se\n";
        let import = import("a.csv", text).unwrap();
        assert_eq!(import.accounts.len(), 2);
        assert!(import.warnings[0].to_string().starts_with(
            "a.csv row 3, column \"Ny inloggning\": the new login \"INFO@y.se\" is also the new login on row 2"
        ));
    }

    #[test]
    fn alias_conflicts() {
        let text = "E-post;Lösenord;Alias\n\
                    anna@x.se;Sommar2024!;info@x.se\n\
                    bo@x.se;Vinter#99;INFO@x.se, Anna@x.se\n\
                    cilla@x.se;Pw3;cilla@x.se\n";
        let err = problems(text);
        assert_error(
            &err,
            "accounts.csv row 3, column \"Alias\": alias \"info@x.se\" is also an alias on row 2",
        );
        assert_error(
            &err,
            "accounts.csv row 3, column \"Alias\": alias \"anna@x.se\" is the login of the account on row 2",
        );
        assert_eq!(err.problems.len(), 2, "{err}");
        // An account listing its own address as an alias is harmless: dropped with a warning.
        let import = import(
            "a.csv",
            "E-post;Lösenord;Alias\ncilla@x.se;Pw3;\"Cilla@x.se;c@x.se\"\n",
        )
        .unwrap();
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
        let rows = accounts(
            "a.csv",
            "E-post;Lösenord;Aliasadresser\nanna@x.se;Pw;\"a@x.se\nA@X.SE,b@x.se\"\n",
        );
        assert_eq!(rows[0].aliases, ["a@x.se", "b@x.se"]);
    }

    #[test]
    fn address_check() {
        for good in [
            "anna@x.se",
            "anna.berg+tag@mail.foretag.se",
            "åsa@företag.se",
            "a@xn--fretag-wxa.se",
            "a_b@x-y.com",
        ] {
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
                assert!(
                    seen.insert(key.clone(), field).is_none(),
                    "{name} is listed twice"
                );
                assert_eq!(
                    field_for_header(&format!("  {} ", name.to_uppercase())),
                    Some(field),
                    "{name}"
                );
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
    fn delimiter_sniffing() {
        assert_eq!(sniff_delimiter("E-post;Lösenord\n"), b';');
        assert_eq!(sniff_delimiter("E-post,Lösenord\n"), b',');
        assert_eq!(sniff_delimiter("E-post\tLösenord\n"), b'\t');
        // A comma in a title line above a semicolon header does not win.
        assert_eq!(
            sniff_delimiter("Konton, Företag AB, Sthlm\nE-post;Lösenord\n"),
            b';'
        );
        // Separators inside quotes do not count.
        assert_eq!(sniff_delimiter("\"a;b;c\",x,y\n"), b',');
        assert_eq!(sniff_delimiter(""), b';');
    }

    #[test]
    fn limits() {
        let mut grid = Grid::new("big.csv");
        let err = grid
            .push_row(MAX_ROWS + 1, vec!["x".to_string()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "big.csv row 100001: the list has more than 100000 rows; is this the right file?"
        );
        // Trailing empty cells do not count against the column limit, and an empty row is free.
        assert!(
            grid.push_row(MAX_ROWS + 2, vec![String::new(); 1000])
                .is_ok()
        );
        let mut cells = vec![String::new(); MAX_COLUMNS + 10];
        cells[0] = "x".to_string();
        assert!(grid.push_row(2, cells).is_ok());
        let err = grid
            .push_row(3, vec!["x".to_string(); MAX_COLUMNS + 1])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "big.csv row 3, column \"IW\": the row uses more than 256 columns; is this the right file?"
        );

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
        let letters: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 255, 701, 702]
            .into_iter()
            .map(column_letter)
            .collect();
        assert_eq!(
            letters,
            ["A", "B", "Z", "AA", "AB", "AZ", "BA", "IV", "ZZ", "AAA"]
        );
    }

    #[test]
    fn excel_files_are_refused_until_supported() {
        for (name, bytes) in [
            ("a.xlsx", &b"whatever"[..]),
            ("a.zip", b"x"),
            ("a.csv", b"PK\x03\x04rest"),
            ("a.csv", b"\xD0\xCF\x11\xE0\xA1\xB1"),
        ] {
            let err = import_bytes(name, bytes).unwrap_err();
            assert!(
                err.to_string().contains("save it as \"CSV UTF-8\""),
                "{err}"
            );
        }
    }

    #[test]
    fn broken_unicode_is_refused_with_a_line() {
        let err =
            import_bytes("a.csv", b"\xEF\xBB\xBFE-post;L\xC3\xB6senord\nanna;\xFF\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.csv: the file says it is UTF-8 but is not, on line 2; save it again as \"CSV UTF-8\""
        );
        let err = import_bytes("a.csv", b"\xFF\xFEa\x00\x00\xD8b\x00").unwrap_err();
        assert!(
            err.to_string()
                .contains("says it is UTF-16 but is not, on line 1"),
            "{err}"
        );
    }

    #[test]
    fn read_accounts_from_a_file() {
        let dir = std::env::temp_dir().join(format!("postflytt-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("Konton 2024.csv");
        std::fs::write(
            &path,
            windows_1252("Konto;Lösenord\r\nanna@x.se;Sommar2024!\r\nbo@x.se;\r\n"),
        )
        .unwrap();
        let err = read_accounts(&path).unwrap_err();
        assert_error(
            &err,
            "Konton 2024.csv row 3, column \"Lösenord\": empty password",
        );
        std::fs::write(&path, "Konto;Lösenord\nanna@x.se;Sommar2024!\n").unwrap();
        let rows = read_accounts(&path).unwrap();
        assert_eq!(rows[0].source_password.expose(), "Sommar2024!");
        // Debug output of an account never shows its password.
        assert!(!format!("{rows:?}").contains("Sommar2024!"));
        let err = read_accounts(&dir.join("missing.csv")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("missing.csv: cannot read the file:"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
