//! The customer's account list: turning the file the customer sent into validated `AccountRow`s, or into a
//! list of every problem in it, each naming sheet, row and column the way the customer's spreadsheet
//! program shows them. Reading is split in two so that every file format feeds one validator: a reader
//! (CSV, an .xlsx or .ods workbook, or a .zip holding one of them; the type is judged by the bytes, not
//! the name) produces a `Grid` of text cells with their spreadsheet row numbers, and
//! `accounts_from_grid` finds the header row, maps the columns and checks every row. Passwords move from
//! the grid straight into `Secret`s and never appear in a message. Files are treated as hostile: sizes,
//! entry counts and sheet areas are checked before anything is unpacked or expanded.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use calamine::{CellErrorType, Data, DataRef, Dimensions, ExcelDateTime, Ods, OdsError, Reader, SheetType, SheetVisible, Xlsx, XlsxError};
use zip::ZipArchive;

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
/// Most bytes a zip archive (a .zip the customer sent, or the archive an .xlsx or .ods workbook is) may
/// unpack to, by the sizes it declares; the zip crate fails a member that grows past its declared size.
pub const MAX_UNZIPPED_BYTES: u64 = 64 << 20;
/// Most entries of a .zip the customer sent: a list, perhaps a readme and the Mac's `__MACOSX` shadows.
pub const MAX_ZIP_ENTRIES: usize = 100;
/// Most parts of a workbook. Excel writes about a dozen; pictures and many sheets add some.
const MAX_WORKBOOK_PARTS: usize = 1000;
/// What calamine may build from an .ods file, estimated by `check_ods_content` before it runs.
const MAX_ODS_BYTES: u64 = 256 << 20;
/// Start of every OLE compound file: Excel 97-2003 .xls, and any password-protected Office file.
const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0";
/// Domains reserved for examples (RFC 2606), plus the one the template uses. A row whose login is at one
/// of them is the template's example left in, not an account.
const EXAMPLE_DOMAINS: [&str; 4] = ["example.se", "example.com", "example.org", "example.net"];

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
    /// Rows whose source password is empty. A problem when the source logs in with passwords (the
    /// strict entry points turn them into an error); fine for a Microsoft 365 source, which logs in
    /// with the app's token.
    pub empty_source_passwords: Vec<Problem>,
}

/// The problem text of an empty source password (only the source's password can be a problem when
/// empty), by which a Microsoft 365 source's import drops them.
const EMPTY_SOURCE_PASSWORD: &str = "empty password";

/// How the source logs in, which decides whether the source password column must be filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceAuth {
    /// Each account's own password (an IMAP source).
    Password,
    /// The app registration's token (a Microsoft 365 source): the column may stay empty.
    App,
}

impl SourceAuth {
    pub fn of(source_kind: crate::store::TargetKind) -> SourceAuth {
        match source_kind {
            crate::store::TargetKind::Imap => SourceAuth::Password,
            crate::store::TargetKind::Microsoft365 => SourceAuth::App,
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
    read_import_for(path, SourceAuth::Password)
}

/// Like `read_import`, for a source that logs in as `auth` says.
pub fn read_import_for(path: &Path, auth: SourceAuth) -> Result<Import, ImportError> {
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
    let result = import_bytes_for(&sheet, &bytes, auth);
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
pub fn import_bytes_for(file_name: &str, bytes: &[u8], auth: SourceAuth) -> Result<Import, ImportError> {
    let mut import = match read_document(file_name, bytes, false) {
        Ok(import) => import,
        // A file with other problems lists its empty source passwords with them; for a source that
        // logs in with an app they are not problems, so they would only hide the real ones.
        Err(mut e) if auth == SourceAuth::App => {
            e.problems.retain(|p| p.message != EMPTY_SOURCE_PASSWORD);
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
fn read_document(name: &str, bytes: &[u8], in_zip: bool) -> Result<Import, ImportError> {
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
        return read_archive(name, bytes, in_zip);
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

// ---------------------------------------------------------------------------------------------------
// CSV

/// Reads CSV as spreadsheet programs write it: Excel in a Swedish locale writes `;`-separated
/// Windows-1252 ("CSV (semikolonavgränsad)") or UTF-8 with a BOM ("CSV UTF-8"); "Unicode text" is UTF-16
/// with tabs; other tools write `,`. Quoted fields may hold separators and line breaks.
pub fn csv_grid(sheet: &str, bytes: &[u8]) -> Result<Grid, ImportError> {
    // Wrapped in a `Secret` so the decoded copy of every password is wiped when parsing is done.
    let text = Secret::from(decode_text(bytes).map_err(|message| ImportError::file(sheet, message))?);
    let (body, declared, first_row) = split_sep_line(text.expose());
    let delimiter = match declared {
        Some(delimiter) => delimiter,
        None => sniff_delimiter(body),
    };
    let mut grid = Grid::new(sheet);
    read_csv_rows(body, delimiter, first_row, |number, cells| grid.push_row(number, cells)).map_err(|err| match err {
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
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(text.as_bytes());
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
    let declared = line.strip_prefix("sep=").filter(|sep| sep.len() == 1 && sep.is_ascii()).and_then(|sep| sep.bytes().next());
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
    let first_line = text.lines().find(|line| !line.trim().is_empty()).unwrap_or("");
    let mut best: Option<((usize, usize), u8)> = None;
    for delimiter in DELIMITERS {
        let mut known = 0;
        let _ = read_csv_rows(text, delimiter, 1, |number, cells| {
            known = known.max(cells.iter().filter(|cell| field_for_header(cell).is_some()).count());
            cells.into_iter().for_each(|cell| wipe(cell.into_bytes()));
            // Stop after the rows the header may be among; the error only ends the scan.
            if number >= HEADER_SEARCH_ROWS { Err(ImportError { problems: Vec::new() }) } else { Ok(()) }
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
    bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, String> {
    if !bytes.len().is_multiple_of(2) {
        return Err("the file says it is UTF-16 but has an odd number of bytes; save it again as \
                    \"CSV UTF-8\""
            .to_string());
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
                return Err(format!("the file says it is UTF-16 but is not, on line {line}; save it again as \"CSV UTF-8\""));
            }
        }
    }
    Ok(text)
}

/// Windows-1252 for 0x80..=0x9F; the five bytes it leaves undefined map to the C1 controls, as browsers
/// do. Every other byte is the Latin-1 code point of the same number.
const WINDOWS_1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}',
    '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}',
    '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
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
// Zip archives

/// What a zip archive holds, judged by its entries.
enum ZipContent {
    /// An Excel workbook (.xlsx, .xlsm).
    Xlsx,
    /// An OpenDocument spreadsheet (.ods).
    Ods,
    /// A file postflytt recognises but does not read; the message says what to do.
    Refused(&'static str),
    /// Any other archive: the customer's .zip holding the list.
    Archive,
}

/// Reads a zip archive: a workbook, or a .zip holding the list.
fn read_archive(name: &str, bytes: &[u8], in_zip: bool) -> Result<Import, ImportError> {
    // The zip crate allocates for every entry the end record claims before anything else can be
    // checked; refuse an absurd count first.
    if declared_entries(bytes).is_some_and(|entries| entries > MAX_WORKBOOK_PARTS as u64) {
        return Err(ImportError::file(
            name,
            format!("the zip archive has more than {MAX_WORKBOOK_PARTS} entries; is this the right file?"),
        ));
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|err| {
        ImportError::file(
            name,
            format!(
                "cannot be opened as a zip archive ({err}); it may be damaged or only partly \
                 downloaded. Save or send it again"
            ),
        )
    })?;
    match zip_content(&mut archive) {
        ZipContent::Xlsx => {
            check_unzipped_size(name, &archive, MAX_WORKBOOK_PARTS)?;
            read_workbook(name, in_zip, |notes| xlsx_grid(name, bytes, in_zip, notes))
        }
        ZipContent::Ods => {
            check_unzipped_size(name, &archive, MAX_WORKBOOK_PARTS)?;
            let content = read_member(&mut archive, name, "content.xml", MAX_UNZIPPED_BYTES)?;
            let checked = check_ods_content(&content, &|sheet| sheet_label(name, sheet, in_zip));
            wipe(content);
            checked?;
            read_workbook(name, in_zip, |notes| ods_grid(name, bytes, in_zip, notes))
        }
        ZipContent::Refused(message) => Err(ImportError::file(name, message)),
        ZipContent::Archive if in_zip => {
            Err(ImportError::file(name, "a zip inside the zip; put the list itself in the zip, or send it without one"))
        }
        ZipContent::Archive => read_zip(name, archive),
    }
}

fn zip_content<R: Read + Seek>(archive: &mut ZipArchive<R>) -> ZipContent {
    let has = |archive: &ZipArchive<R>, prefix: &str| archive.file_names().any(|name| name.is_ok_and(|name| name.starts_with(prefix)));
    if archive.index_for_name("[Content_Types].xml").is_some() {
        if archive.index_for_name("xl/workbook.bin").is_some() {
            return ZipContent::Refused(
                "this is an Excel binary workbook (.xlsb), which postflytt does not read; open it \
                 in Excel and save it as \"Excel Workbook (.xlsx)\" or \"CSV UTF-8\"",
            );
        }
        if has(archive, "xl/") {
            return ZipContent::Xlsx;
        }
        if has(archive, "word/") || has(archive, "ppt/") {
            return ZipContent::Refused(
                "this is a Word or PowerPoint document, not a spreadsheet; send the Excel or CSV \
                 file with the account list",
            );
        }
    }
    if archive.index_for_name("mimetype").is_some() {
        // An OpenDocument file names its kind in its first member.
        let mut mime = Vec::new();
        let read = archive.by_name("mimetype").and_then(|member| Ok(member.take(100).read_to_end(&mut mime)?));
        if read.is_ok() {
            if mime.trim_ascii() == b"application/vnd.oasis.opendocument.spreadsheet" {
                return ZipContent::Ods;
            }
            if mime.starts_with(b"application/vnd.oasis.opendocument.") {
                return ZipContent::Refused(
                    "this is an OpenDocument file that is not a spreadsheet; send the .ods, .xlsx \
                     or CSV file with the account list",
                );
            }
        }
    }
    if has(archive, "Index/Document.iwa") {
        return ZipContent::Refused(
            "this is an Apple Numbers document, which postflytt does not read; in Numbers choose \
             File > Export To > Excel, then import that file",
        );
    }
    ZipContent::Archive
}

/// The entry count the archive's end record declares (following the zip64 locator when the 16-bit
/// count is maxed out), or `None` when no end record is found.
fn declared_entries(bytes: &[u8]) -> Option<u64> {
    const END: &[u8] = b"PK\x05\x06";
    // The end record is 22 bytes plus a comment of at most 65535.
    let tail_start = bytes.len().saturating_sub(22 + 0xFFFF);
    let at = tail_start + bytes[tail_start..].windows(4).rposition(|w| w == END)?;
    let record = bytes.get(at..at + 22)?;
    let entries = u16::from_le_bytes([record[10], record[11]]);
    if entries != u16::MAX {
        return Some(u64::from(entries));
    }
    // Zip64: a 20-byte locator just before the end record gives the offset of the zip64 end record,
    // whose entry count is at byte 32.
    let locator = bytes.get(at.checked_sub(20)?..at)?;
    if !locator.starts_with(b"PK\x06\x07") {
        return Some(u64::from(entries));
    }
    let offset = usize::try_from(u64::from_le_bytes(locator[8..16].try_into().ok()?)).ok()?;
    let record = bytes.get(offset..offset.checked_add(40)?)?;
    if !record.starts_with(b"PK\x06\x06") {
        return Some(u64::from(entries));
    }
    Some(u64::from_le_bytes(record[32..40].try_into().ok()?))
}

/// Refuses an archive with too many entries, or whose members declare more than
/// `MAX_UNZIPPED_BYTES` together: a small file that would unpack to gigabytes.
fn check_unzipped_size<R: Read + Seek>(name: &str, archive: &ZipArchive<R>, max_entries: usize) -> Result<(), ImportError> {
    if archive.len() > max_entries {
        return Err(ImportError::file(
            name,
            format!(
                "the zip archive has {} entries, more than the {max_entries} an account list needs; \
                 is this the right file?",
                archive.len()
            ),
        ));
    }
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let size = archive.by_index_data(index).map_or(u64::MAX, |entry| entry.size());
        total = total.saturating_add(size);
    }
    if total > MAX_UNZIPPED_BYTES {
        return Err(ImportError::file(
            name,
            format!(
                "the zip archive would unpack to more than {} MB; an account list is much smaller. \
                 Is this the right file?",
                MAX_UNZIPPED_BYTES >> 20
            ),
        ));
    }
    Ok(())
}

/// One member's bytes, read through `take` so a member that lies about its size still stops at `limit`.
fn read_member<R: Read + Seek>(archive: &mut ZipArchive<R>, name: &str, member: &str, limit: u64) -> Result<Vec<u8>, ImportError> {
    let cannot =
        |err: String| ImportError::file(name, format!("cannot unpack {member} ({err}); the file may be damaged. Save or send it again"));
    let index = archive.index_for_name(member).ok_or_else(|| cannot("it is missing".to_string()))?;
    read_member_at(archive, index, limit).map_err(cannot)
}

fn read_member_at<R: Read + Seek>(archive: &mut ZipArchive<R>, index: usize, limit: u64) -> Result<Vec<u8>, String> {
    let member = archive.by_index(index).map_err(|err| err.to_string())?;
    let mut bytes = Vec::new();
    let read = member.take(limit + 1).read_to_end(&mut bytes);
    if let Err(err) = read {
        wipe(bytes);
        return Err(err.to_string());
    }
    if bytes.len() as u64 > limit {
        wipe(bytes);
        return Err(format!("it is larger than {} MB", limit >> 20));
    }
    Ok(bytes)
}

/// Extensions of the members a customer's .zip may hold the list in; .xls is included so that an old
/// workbook is refused with advice instead of "no list in the zip".
const LIST_EXTENSIONS: [&str; 7] = ["xlsx", "xlsm", "ods", "csv", "tsv", "txt", "xls"];

/// Reads the one list in a customer's .zip. Problems then name "file.zip/member.xlsx sheet X".
fn read_zip(name: &str, mut archive: ZipArchive<Cursor<&[u8]>>) -> Result<Import, ImportError> {
    check_unzipped_size(name, &archive, MAX_ZIP_ENTRIES)?;
    let mut lists = Vec::new();
    let mut others = Vec::new();
    for index in 0..archive.len() {
        let Ok(entry) = archive.by_index_data(index) else {
            continue;
        };
        // `name` decodes the IBM 437 names Windows' own zip tool writes; raw bytes are the fallback.
        let member = entry.name().map_or_else(|_| String::from_utf8_lossy(entry.name_raw()).into_owned(), |name| name.into_owned());
        if entry.is_dir() || is_clutter(&member) {
            continue;
        }
        let base = member.rsplit('/').next().unwrap_or(&member);
        if LIST_EXTENSIONS.contains(&extension(base).as_str()) {
            lists.push((index, member, entry.encrypted(), entry.size()));
        } else {
            others.push(member);
        }
    }
    // A readme.txt beside the workbook is not a second list; text files count only without another.
    if lists.iter().any(|(_, member, _, _)| extension(member) != "txt") {
        lists.retain(|(_, member, _, _)| extension(member) != "txt");
    }
    let (index, member, encrypted, size) = match lists.len() {
        1 => lists.remove(0),
        0 => {
            let shown_names: Vec<String> = others.iter().take(5).map(|m| format!("\"{}\"", shown(m))).collect();
            return Err(ImportError::file(
                name,
                if shown_names.is_empty() {
                    "the zip archive is empty; put the account list (.xlsx, .ods or .csv) in it".to_string()
                } else {
                    format!(
                        "the zip archive holds no .xlsx, .ods or .csv file, only {}{}; put the \
                         account list in it",
                        shown_names.join(", "),
                        if others.len() > 5 { " and more" } else { "" }
                    )
                },
            ));
        }
        _ => {
            let names: Vec<String> = lists.iter().map(|(_, m, _, _)| format!("\"{}\"", shown(m))).collect();
            return Err(ImportError::file(
                name,
                format!(
                    "the zip archive holds {} spreadsheets ({}); postflytt reads one list. Send a \
                     zip with only the account list, or that file alone",
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
    };
    let label = format!("{name}/{member}");
    if encrypted {
        return Err(ImportError::file(
            &label,
            "the zip archive is password-protected; send it without a password (the account list \
             is kept encrypted on the appliance)",
        ));
    }
    if size > MAX_FILE_BYTES {
        return Err(too_large(&label));
    }
    let bytes = read_member_at(&mut archive, index, MAX_FILE_BYTES).map_err(|err| {
        ImportError::file(&label, format!("cannot unpack it from the zip ({err}); the zip may be damaged. Send it again"))
    })?;
    let result = read_document(&label, &bytes, true);
    wipe(bytes);
    result
}

/// Files a zip tool adds on its own: the Mac's resource forks under `__MACOSX/`, hidden files such
/// as `.DS_Store`, and the `~$` owner files Office leaves beside an open document.
fn is_clutter(member: &str) -> bool {
    member.starts_with("__MACOSX/") || member.split('/').any(|part| part.starts_with('.') || part.starts_with("~$"))
}

// ---------------------------------------------------------------------------------------------------
// Workbooks

/// Names a sheet in messages: its tab name alone for a workbook the customer sent directly, prefixed
/// with the path when it came out of a .zip ("konton.zip/Konton.xlsx sheet Blad1").
fn sheet_label(file: &str, sheet: &str, in_zip: bool) -> String {
    if in_zip { format!("{file} sheet {sheet}") } else { sheet.to_string() }
}

/// Runs a workbook reader and validates its grid. calamine is given files from customers; should it
/// panic on one (a subtraction overflows in 0.38 for a dimension such as `B2:A1`), that becomes an
/// error for this file instead of taking the process down. `notes` collects warnings about the
/// workbook as a whole.
fn read_workbook(
    name: &str,
    in_zip: bool,
    read: impl FnOnce(&mut Vec<Problem>) -> Result<Grid, ImportError>,
) -> Result<Import, ImportError> {
    let mut notes = Vec::new();
    let grid = catch_unwind(AssertUnwindSafe(|| read(&mut notes))).unwrap_or_else(|_| {
        Err(ImportError::file(
            name,
            format!(
                "the {} could not be read; open it in Excel or LibreOffice, save it again and \
                 import that file, or save the list as \"CSV UTF-8\"",
                if in_zip { "workbook in the zip" } else { "workbook" }
            ),
        ))
    })?;
    let mut import = accounts_from_grid(grid)?;
    notes.append(&mut import.warnings);
    import.warnings = notes;
    Ok(import)
}

/// A sheet's name and whether it is a visible worksheet.
struct SheetEntry {
    name: String,
    visible: bool,
}

fn worksheets(sheets: &[calamine::Sheet]) -> Vec<SheetEntry> {
    sheets
        .iter()
        .filter(|sheet| sheet.typ == SheetType::WorkSheet)
        .map(|sheet| SheetEntry { name: sheet.name.clone(), visible: sheet.visible == SheetVisible::Visible })
        .collect()
}

/// Chooses the sheet the list is on and reads it: the first with a recognisable header row, visible
/// sheets before hidden ones, else the first sheet with anything in it (whose problems then explain
/// what is missing). `read(sheet, stop_after)` reads a sheet, or only its first non-empty rows. Other
/// sheets with data are named in a warning, so nothing on them is dropped unnoticed.
fn pick_sheet(
    file: &str,
    label: &impl Fn(&str) -> String,
    sheets: &[SheetEntry],
    notes: &mut Vec<Problem>,
    mut read: impl FnMut(&str, Option<usize>) -> Result<Grid, ImportError>,
) -> Result<Grid, ImportError> {
    let order: Vec<&SheetEntry> = sheets.iter().filter(|sheet| sheet.visible).chain(sheets.iter().filter(|sheet| !sheet.visible)).collect();
    let mut chosen = None;
    let mut fallback = None;
    for sheet in &order {
        match read(&sheet.name, Some(HEADER_SEARCH_ROWS)) {
            Ok(grid) if grid.has_header() => {
                chosen = Some(sheet.name.as_str());
                break;
            }
            Ok(grid) if grid.is_empty() => {}
            // Unreadable or headerless: shown only if no sheet has a header.
            _ => {
                fallback = fallback.or(Some(sheet.name.as_str()));
            }
        }
    }
    let Some(chosen) = chosen.or(fallback) else {
        return Err(ImportError::file(file, "the workbook has no rows; fill in the template and import it again"));
    };
    let grid = read(chosen, None)?;
    let unread: Vec<String> = order
        .iter()
        .filter(|sheet| sheet.name != chosen)
        .filter(|sheet| read(&sheet.name, Some(1)).is_ok_and(|grid| !grid.is_empty()))
        .map(|sheet| format!("\"{}\"", shown(&sheet.name)))
        .collect();
    if !unread.is_empty() {
        notes.push(Problem {
            sheet: label(chosen),
            row: None,
            column: None,
            message: format!(
                "the list was read from this sheet; the workbook's other sheets with data ({}) were \
                 not read",
                unread.join(", ")
            ),
        });
    }
    Ok(grid)
}

fn xlsx_grid(file: &str, bytes: &[u8], in_zip: bool, notes: &mut Vec<Problem>) -> Result<Grid, ImportError> {
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|err| {
        ImportError::file(
            file,
            format!("cannot read the workbook ({}); open it in Excel, save it again and import that file", xlsx_error(&err)),
        )
    })?;
    let sheets = worksheets(workbook.sheets_metadata());
    let label = |sheet: &str| sheet_label(file, sheet, in_zip);
    pick_sheet(file, &label, &sheets, notes, |sheet, stop_after| read_xlsx_sheet(&mut workbook, sheet, &label(sheet), stop_after))
}

/// Streams a sheet's cells into a grid, so that no more is held than the grid keeps: calamine's own
/// `worksheet_range` would first build the full rectangle the sheet's cells span.
fn read_xlsx_sheet<RS: Read + Seek>(
    workbook: &mut Xlsx<RS>,
    sheet: &str,
    label: &str,
    stop_after: Option<usize>,
) -> Result<Grid, ImportError> {
    let fail = |err: XlsxError| {
        ImportError::file(
            label,
            format!(
                "cannot read the sheet ({}); open the file in Excel, save it again and import that \
                 file",
                xlsx_error(&err)
            ),
        )
    };
    let mut cells = workbook.worksheet_cells_reader(sheet).map_err(fail)?;
    if stop_after.is_none() {
        check_used_area(label, cells.dimensions())?;
    }
    let mut rows = RowAssembler::new(label, stop_after);
    while let Some(cell) = cells.next_cell().map_err(fail)? {
        let (row, column) = cell.get_position();
        let (text, kind) = data_ref_text(cell.get_value());
        if !rows.put(row, column, text, kind)? {
            break;
        }
    }
    rows.finish()
}

/// The sheet's declared used area ("A1:E40") is checked before the cells are read, so that a sheet
/// claiming a million rows is refused with advice rather than read for minutes. The cells are checked
/// again as they come, since the declaration may lie.
fn check_used_area(label: &str, area: Dimensions) -> Result<(), ImportError> {
    let rows = u64::from(area.end.0) + 1;
    let columns = u64::from(area.end.1) + 1;
    if rows > MAX_ROWS as u64 || columns > MAX_COLUMNS as u64 || rows.saturating_mul(columns) > MAX_CELLS as u64 {
        return Err(ImportError::file(
            label,
            format!(
                "the sheet's used area reaches row {rows} and column {}, more than the {MAX_ROWS} \
                 rows, {MAX_COLUMNS} columns and {MAX_CELLS} cells postflytt reads; delete the empty \
                 rows below the list and columns right of it (or copy the list into a new workbook), \
                 save, and import again",
                column_letter(area.end.1 as usize)
            ),
        ));
    }
    Ok(())
}

fn ods_grid(file: &str, bytes: &[u8], in_zip: bool, notes: &mut Vec<Problem>) -> Result<Grid, ImportError> {
    let mut workbook: Ods<_> = Ods::new(Cursor::new(bytes)).map_err(|err| {
        ImportError::file(
            file,
            format!(
                "cannot read the spreadsheet ({}); open it in LibreOffice, save it again and import \
                 that file",
                ods_error(&err)
            ),
        )
    })?;
    let sheets = worksheets(workbook.sheets_metadata());
    let label = |sheet: &str| sheet_label(file, sheet, in_zip);
    pick_sheet(file, &label, &sheets, notes, |sheet, stop_after| {
        let label = label(sheet);
        // `check_ods_content` has bounded the size of every sheet's range before calamine built them.
        let range = workbook
            .worksheet_range(sheet)
            .map_err(|err| ImportError::file(&label, format!("cannot read the sheet ({})", ods_error(&err))))?;
        let mut rows = RowAssembler::new(&label, stop_after);
        let (top, left) = range.start().unwrap_or((0, 0));
        'rows: for (r, row) in range.rows().enumerate() {
            for (c, value) in row.iter().enumerate() {
                let (text, kind) = data_text(value);
                let at_row = top.saturating_add(u32::try_from(r).unwrap_or(u32::MAX));
                let at_column = left.saturating_add(u32::try_from(c).unwrap_or(u32::MAX));
                if !rows.put(at_row, at_column, text, kind)? {
                    break 'rows;
                }
            }
        }
        rows.finish()
    })
}

/// calamine's messages, without the variants that can quote cell contents (XML errors may quote the
/// text they choke on, and an unknown error code is the cell's text): those become a generic phrase.
fn xlsx_error(err: &XlsxError) -> String {
    match err {
        XlsxError::Io(_)
        | XlsxError::Zip(_)
        | XlsxError::Password
        | XlsxError::FileNotFound(_)
        | XlsxError::RelationshipNotFound
        | XlsxError::XmlEof(_)
        | XlsxError::UnexpectedNode(_)
        | XlsxError::DimensionCount(_)
        | XlsxError::RowNumberOverflow
        | XlsxError::ColumnNumberOverflow
        | XlsxError::NotAWorksheet(_) => err.to_string(),
        _ => "a part of it is malformed".to_string(),
    }
}

fn ods_error(err: &OdsError) -> String {
    match err {
        OdsError::Io(_)
        | OdsError::Zip(_)
        | OdsError::Password
        | OdsError::FileNotFound(_)
        | OdsError::Eof(_)
        | OdsError::CellLimitExceeded { .. } => err.to_string(),
        _ => "a part of it is malformed".to_string(),
    }
}

/// Collects workbook cells, which arrive row by row, into grid rows.
struct RowAssembler {
    grid: Grid,
    /// Spreadsheet row being assembled, 1-based; 0 before the first cell.
    number: usize,
    cells: Vec<String>,
    kinds: Vec<(usize, CellKind)>,
    stop_after: Option<usize>,
}

impl RowAssembler {
    fn new(label: &str, stop_after: Option<usize>) -> RowAssembler {
        RowAssembler { grid: Grid::new(label), number: 0, cells: Vec::new(), kinds: Vec::new(), stop_after }
    }

    /// Adds the cell at 0-based `row` and `column`. Returns false once `stop_after` non-empty rows are
    /// complete. Blank cells are dropped before any limit is checked, so formatting far outside the
    /// list costs nothing.
    fn put(&mut self, row: u32, column: u32, text: String, kind: Option<CellKind>) -> Result<bool, ImportError> {
        if text.trim().is_empty() {
            wipe(text.into_bytes());
            return Ok(true);
        }
        let number = row as usize + 1;
        let column = column as usize;
        if number != self.number {
            if number < self.number {
                wipe(text.into_bytes());
                return Err(self.problem(
                    number,
                    None,
                    "the sheet's rows are stored out of order; open the file in Excel, save it \
                     again and import that file",
                ));
            }
            self.flush()?;
            if self.stop_after.is_some_and(|rows| self.grid.len() >= rows) {
                wipe(text.into_bytes());
                return Ok(false);
            }
            self.number = number;
        }
        if number > MAX_ROWS {
            wipe(text.into_bytes());
            return Err(self.problem(number, None, &format!("the list has more than {MAX_ROWS} rows; is this the right file?")));
        }
        if column >= MAX_COLUMNS {
            wipe(text.into_bytes());
            return Err(self.problem(
                number,
                Some(column_letter(column)),
                &format!("the row uses more than {MAX_COLUMNS} columns; is this the right file?"),
            ));
        }
        if self.cells.len() <= column {
            self.cells.resize(column + 1, String::new());
        }
        let old = std::mem::replace(&mut self.cells[column], text);
        wipe(old.into_bytes());
        self.kinds.retain(|(at, _)| *at != column);
        if let Some(kind) = kind {
            self.kinds.push((column, kind));
        }
        Ok(true)
    }

    fn problem(&self, row: usize, column: Option<String>, message: &str) -> ImportError {
        ImportError {
            problems: vec![Problem { sheet: self.grid.sheet().to_string(), row: Some(row), column, message: message.to_string() }],
        }
    }

    fn flush(&mut self) -> Result<(), ImportError> {
        if self.number > 0 {
            let cells = std::mem::take(&mut self.cells);
            let kinds = std::mem::take(&mut self.kinds);
            self.grid.push_cells(self.number, cells, kinds)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Grid, ImportError> {
        self.flush()?;
        Ok(std::mem::take(&mut self.grid))
    }
}

impl Drop for RowAssembler {
    // A row cut short by an error still holds passwords.
    fn drop(&mut self) {
        std::mem::take(&mut self.cells).into_iter().for_each(|cell| wipe(cell.into_bytes()));
    }
}

/// A workbook cell as the text the customer sees, and whether it was something other than text.
/// Whole numbers have no ".0" (a password 123456 stored as a number is "123456"), dates are ISO as
/// Swedish Excel shows them, truth values TRUE and FALSE, errors their code.
fn data_ref_text(value: &DataRef<'_>) -> (String, Option<CellKind>) {
    match value {
        DataRef::Empty => (String::new(), None),
        DataRef::String(text) => (text.clone(), None),
        DataRef::SharedString(text) => (text.to_string(), None),
        DataRef::Int(n) => (n.to_string(), Some(CellKind::NotText)),
        DataRef::Float(n) => (number_text(*n), Some(CellKind::NotText)),
        DataRef::Bool(b) => (bool_text(*b), Some(CellKind::NotText)),
        DataRef::DateTime(date) => (excel_date_text(date), Some(CellKind::NotText)),
        DataRef::DateTimeIso(text) => (text.replace('T', " "), Some(CellKind::NotText)),
        DataRef::DurationIso(text) => (text.clone(), Some(CellKind::NotText)),
        DataRef::Error(err) => (error_text(err), Some(CellKind::Error)),
    }
}

/// `data_ref_text` for the owned cells of an .ods sheet.
fn data_text(value: &Data) -> (String, Option<CellKind>) {
    match value {
        Data::Empty => (String::new(), None),
        Data::String(text) => (text.clone(), None),
        Data::Int(n) => (n.to_string(), Some(CellKind::NotText)),
        Data::Float(n) => (number_text(*n), Some(CellKind::NotText)),
        Data::Bool(b) => (bool_text(*b), Some(CellKind::NotText)),
        Data::DateTime(date) => (excel_date_text(date), Some(CellKind::NotText)),
        Data::DateTimeIso(text) => (text.replace('T', " "), Some(CellKind::NotText)),
        Data::DurationIso(text) => (text.clone(), Some(CellKind::NotText)),
        Data::Error(err) => (error_text(err), Some(CellKind::Error)),
    }
}

/// Rust prints a float's shortest exact form without exponent, and a whole one without ".0".
fn number_text(n: f64) -> String {
    format!("{n}")
}

fn bool_text(b: bool) -> String {
    if b { "TRUE" } else { "FALSE" }.to_string()
}

fn error_text(err: &CellErrorType) -> String {
    err.to_string()
}

/// "2024-05-31", "2024-05-31 08:30:00", a time of day alone as "08:30:00", a duration as hours
/// "36:00:00".
fn excel_date_text(date: &ExcelDateTime) -> String {
    let serial = date.as_f64();
    if date.is_duration() {
        let seconds = (serial * 86_400.0).round() as i64;
        let sign = if seconds < 0 { "-" } else { "" };
        let seconds = seconds.unsigned_abs();
        return format!("{sign}{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    }
    let (year, month, day, hour, minute, second, _) = date.to_ymd_hms_milli();
    let time = format!("{hour:02}:{minute:02}:{second:02}");
    if (0.0..1.0).contains(&serial) {
        time
    } else if (hour, minute, second) == (0, 0, 0) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {time}")
    }
}

// ---------------------------------------------------------------------------------------------------
// OpenDocument size check

/// Bounds what calamine will build from an .ods file before it is let loose on it. calamine 0.38 reads
/// every sheet of an .ods at once into full rectangles of cells, expanding `number-columns-repeated`
/// and `number-rows-repeated` (how LibreOffice stores blank and formatted areas) and `text:c` space
/// runs; its own cap (100 million cells) is far beyond a 1 GB box, and a few hundred bytes of XML can
/// ask for gigabytes. This walks the tags of `content.xml` the way calamine's reader does, and refuses
/// the file if a sheet has data beyond the grid's limits or the expansion would outgrow
/// `MAX_ODS_BYTES`. It over-estimates where unsure: any cell with content or a value counts as data.
fn check_ods_content(xml: &[u8], label: &dyn Fn(&str) -> String) -> Result<(), ImportError> {
    // calamine keeps each cell as a 32-byte value plus a 24-byte formula string.
    const CELL_BYTES: u64 = 56;
    // calamine's own cap on the cells of one row.
    const ROW_CELLS: u64 = 16_384;
    let mut scan = OdsScan::default();
    let mut at = 0;
    while let Some(offset) = xml[at..].iter().position(|&b| b == b'<') {
        let start = at + offset;
        scan.content(offset as u64);
        let rest = &xml[start..];
        // Comments, CDATA and declarations are skipped whole; CDATA counts as cell text.
        let skip = [(&b"<!--"[..], &b"-->"[..]), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"), (b"<!", b">")]
            .into_iter()
            .find(|(open, _)| rest.starts_with(open));
        if let Some((_, close)) = skip {
            let end = find(rest, close).map_or(xml.len(), |end| start + end + close.len());
            scan.content((end - start) as u64);
            at = end;
            continue;
        }
        let Some(length) = tag_length(rest) else {
            break;
        };
        at = start + length;
        let tag = &rest[1..length - 1];
        scan.content(length as u64);
        let (closing, tag) = match tag.strip_prefix(b"/") {
            Some(tag) => (true, tag),
            None => (false, tag),
        };
        let self_closing = tag.ends_with(b"/");
        let name_end = tag.iter().position(|&b| b.is_ascii_whitespace() || b == b'/').unwrap_or(tag.len());
        let name = &tag[..name_end];
        let attrs = &tag[name_end..];
        match (name, closing) {
            (b"office:annotation", closing) if !self_closing => scan.unclosed_annotation = !closing,
            (b"table:table", false) => {
                if scan.tables == 0 {
                    scan.sheet = SheetScan {
                        name: attr(attrs, b"table:name").map(|v| unescape(&String::from_utf8_lossy(v))).unwrap_or_default(),
                        ..SheetScan::default()
                    };
                }
                if !self_closing {
                    scan.tables += 1;
                    scan.unclosed_table = true;
                }
            }
            (b"table:table", true) => {
                scan.unclosed_table = false;
                scan.tables = scan.tables.saturating_sub(1);
                if scan.tables == 0 {
                    scan.finish_sheet(CELL_BYTES, label)?;
                }
            }
            (b"table:table-row", false) if scan.cell.is_none() => {
                scan.row = RowScan { repeat: count(attr(attrs, b"table:number-rows-repeated")), ..RowScan::default() };
                if self_closing {
                    scan.finish_row(CELL_BYTES);
                }
            }
            (b"table:table-row", true) if scan.cell.is_none() => scan.finish_row(CELL_BYTES),
            (b"table:table-cell" | b"table:covered-table-cell", false) => {
                if let Some(cell) = &mut scan.cell {
                    // A cell inside a cell (a sub-table) is only more text of the outer one.
                    cell.depth += !self_closing as u32;
                    continue;
                }
                let repeat = count(attr(attrs, b"table:number-columns-repeated"));
                let valued = [
                    &b"office:value"[..],
                    b"office:string-value",
                    b"office:date-value",
                    b"office:time-value",
                    b"office:boolean-value",
                    b"office:value-type",
                    b"table:formula",
                    b"calcext:value-type",
                ]
                .iter()
                .any(|name| attr(attrs, name).is_some());
                let cell = CellScan { repeat, valued: valued || !self_closing, bytes: length as u64, depth: 1 };
                if self_closing {
                    scan.finish_cell(cell, ROW_CELLS, label)?;
                } else {
                    scan.cell = Some(cell);
                }
            }
            (b"table:table-cell" | b"table:covered-table-cell", true) => {
                if let Some(mut cell) = scan.cell.take() {
                    cell.depth -= 1;
                    if cell.depth == 0 {
                        scan.finish_cell(cell, ROW_CELLS, label)?;
                    } else {
                        scan.cell = Some(cell);
                    }
                }
            }
            (b"text:s", false) => scan.content(count(attr(attrs, b"text:c"))),
            _ => {}
        }
        if scan.estimate > MAX_ODS_BYTES {
            return Err(scan.too_large(label));
        }
    }
    // calamine 0.38 reads a sheet until `</table:table>` and a cell's note until
    // `</office:annotation>`, ignoring the end of the file: without them it loops forever.
    if scan.unclosed_table || scan.unclosed_annotation {
        return Err(ImportError::file(
            &label(&scan.sheet.name),
            "the spreadsheet ends in the middle of a sheet; it is damaged or was only partly \
             saved. Save or send it again",
        ));
    }
    Ok(())
}

#[derive(Default)]
struct OdsScan {
    /// Depth of `table:table` elements; sheets are the outermost.
    tables: u32,
    sheet: SheetScan,
    row: RowScan,
    cell: Option<CellScan>,
    /// Bytes calamine would hold for the workbook so far.
    estimate: u64,
    /// Whether the last sheet, or the last cell note, begun is still open.
    unclosed_table: bool,
    unclosed_annotation: bool,
}

#[derive(Default)]
struct SheetScan {
    name: String,
    /// Rows so far, with repeats, 0-based index of the next row.
    rows: u64,
    /// First and one-past-last row holding data.
    first_data_row: Option<u64>,
    end_data_row: u64,
    /// One past the rightmost column holding data.
    end_data_column: u64,
}

#[derive(Default)]
struct RowScan {
    repeat: u64,
    /// Cells calamine stores for one copy of the row, and their text bytes.
    cells: u64,
    pending_blank: u64,
    text_bytes: u64,
    has_data: bool,
}

struct CellScan {
    repeat: u64,
    valued: bool,
    bytes: u64,
    depth: u32,
}

impl OdsScan {
    /// Text (or markup) inside a cell adds to that cell's size.
    fn content(&mut self, bytes: u64) {
        if let Some(cell) = &mut self.cell {
            cell.bytes = cell.bytes.saturating_add(bytes);
        }
    }

    /// calamine stores a run of blank cells only when a cell with data follows it in the row; a
    /// cell's text is copied for every column it repeats over.
    fn finish_cell(&mut self, cell: CellScan, row_cells: u64, label: &dyn Fn(&str) -> String) -> Result<(), ImportError> {
        let row = &mut self.row;
        let column = row.cells.saturating_add(row.pending_blank);
        row.cells = column.min(row_cells);
        row.pending_blank = 0;
        if !cell.valued {
            row.pending_blank = cell.repeat;
            return Ok(());
        }
        let end = column.saturating_add(cell.repeat);
        if end > MAX_COLUMNS as u64 {
            return Err(ImportError {
                problems: vec![Problem {
                    sheet: label(&self.sheet.name),
                    row: Some(self.sheet.rows.saturating_add(1) as usize),
                    column: Some(column_letter(MAX_COLUMNS)),
                    message: format!("the row uses more than {MAX_COLUMNS} columns; is this the right file?"),
                }],
            });
        }
        row.has_data = true;
        row.cells = end.min(row_cells);
        row.text_bytes = row.text_bytes.saturating_add(cell.bytes.saturating_mul(cell.repeat));
        self.sheet.end_data_column = self.sheet.end_data_column.max(end);
        Ok(())
    }

    /// A row with data is stored once per repeat; a blank one once, and only its stored cells count.
    fn finish_row(&mut self, cell_bytes: u64) {
        if let Some(cell) = self.cell.take() {
            // A row ended inside a cell: malformed, calamine will refuse it; count what was seen.
            self.row.text_bytes = self.row.text_bytes.saturating_add(cell.bytes);
        }
        let row = std::mem::take(&mut self.row);
        let once = row.cells.saturating_mul(cell_bytes).saturating_add(row.text_bytes);
        let sheet = &mut self.sheet;
        if row.has_data {
            sheet.first_data_row.get_or_insert(sheet.rows);
            self.estimate = self.estimate.saturating_add(once.saturating_mul(row.repeat));
            sheet.end_data_row = sheet.rows.saturating_add(row.repeat);
        } else {
            self.estimate = self.estimate.saturating_add(once);
        }
        sheet.rows = sheet.rows.saturating_add(row.repeat);
    }

    /// The sheet's rectangle from its first to its last row with data is filled in full, blank rows
    /// between included.
    fn finish_sheet(&mut self, cell_bytes: u64, label: &dyn Fn(&str) -> String) -> Result<(), ImportError> {
        let sheet = std::mem::take(&mut self.sheet);
        let Some(first) = sheet.first_data_row else {
            return Ok(());
        };
        let problem = |row: Option<u64>, message: String| ImportError {
            problems: vec![Problem { sheet: label(&sheet.name), row: row.map(|row| row as usize), column: None, message }],
        };
        if sheet.end_data_row > MAX_ROWS as u64 {
            return Err(problem(
                Some((MAX_ROWS + 1) as u64),
                format!(
                    "the sheet has data in row {}, more than the {MAX_ROWS} rows postflytt reads; \
                     delete the rows below the list, save, and import again",
                    sheet.end_data_row
                ),
            ));
        }
        let height = sheet.end_data_row.saturating_sub(first);
        let area = height.saturating_mul(sheet.end_data_column);
        if area > MAX_CELLS as u64 {
            return Err(problem(
                None,
                format!(
                    "the sheet's data spans {height} rows and {} columns, more than the {MAX_CELLS} \
                     cells postflytt reads; is this the right file?",
                    sheet.end_data_column
                ),
            ));
        }
        self.estimate = self.estimate.saturating_add(area.saturating_mul(cell_bytes));
        Ok(())
    }

    fn too_large(&self, label: &dyn Fn(&str) -> String) -> ImportError {
        ImportError::file(
            &label(&self.sheet.name),
            format!(
                "the sheet repeats cells or spaces so often that reading it would take more than {} \
                 MB; is this the right file?",
                MAX_ODS_BYTES >> 20
            ),
        )
    }
}

/// Length of the tag at the start of `text` (which begins with `<`), through its `>`; quoted attribute
/// values may contain `>`.
fn tag_length(text: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in text.iter().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The value of attribute `name` in a tag's attribute text, quotes removed.
fn attr<'a>(attrs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = attrs;
    loop {
        rest = rest.trim_ascii_start();
        let eq = rest.iter().position(|&b| b == b'=')?;
        let key = rest[..eq].trim_ascii();
        let value = rest[eq + 1..].trim_ascii_start();
        let quote = *value.first()?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let end = value[1..].iter().position(|&b| b == quote)? + 1;
        if key == name {
            return Some(&value[1..end]);
        }
        rest = &value[end + 1..];
    }
}

/// A repeat or space count: 1 when absent or unreadable (calamine then refuses the file itself), and
/// saturating, so an absurd number stays absurd instead of wrapping.
fn count(value: Option<&[u8]>) -> u64 {
    let Some(value) = value else {
        return 1;
    };
    let digits = value.trim_ascii();
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return 1;
    }
    digits.iter().fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0')))
}

/// The five predefined XML entities, enough for a sheet name in a message.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
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

const FIELDS: [Field; 5] = [Field::SourceLogin, Field::SourcePassword, Field::TargetLogin, Field::TargetPassword, Field::Aliases];

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
            Field::SourcePassword => {
                &["Lösenord", "Password", "Source password", "Gammalt lösenord", "Old password", "Nuvarande lösenord", "Current password"]
            }
            Field::TargetLogin => {
                &["Ny inloggning", "Nytt användarnamn", "Ny e-postadress", "Target login", "Target username", "New login", "New username"]
            }
            Field::TargetPassword => &["Nytt lösenord", "Target password", "New password"],
            Field::Aliases => &["Alias", "Aliases", "Aliasadresser", "Aliasadress", "Alias addresses"],
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
fn field_for_header(text: &str) -> Option<Field> {
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
fn find_columns(grid: &Grid, problems: &mut Vec<Problem>, warnings: &mut Vec<Problem>) -> Option<Columns> {
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
            problems.push(problem(
                None,
                format!("no column for {}; name one of the header cells {}", field.describe(), quoted_list(field.names())),
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
    let mut empty_source_passwords = Vec::new();
    let Some(columns) = find_columns(&grid, &mut problems, &mut warnings) else {
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

    // Passwords are taken out of the grid, not copied, so the `Secret` owns (and later wipes) the only
    // buffer; none of the messages below quote them.
    let password_cell = |row: &mut GridRow, field: Field| -> String {
        columns.index(field).and_then(|index| row.cells.get_mut(index)).map(std::mem::take).unwrap_or_default()
    };
    let source_password = Secret::from(password_cell(row, Field::SourcePassword));
    if source_password.expose().trim().is_empty() {
        empty_source_passwords.push(problem(Field::SourcePassword, EMPTY_SOURCE_PASSWORD.to_string()));
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

    Some(AccountRow { row: number, source_login, source_password, target_login, target_password, aliases })
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
            CellKind::NotText if matches!(field, Field::SourcePassword | Field::TargetPassword) => {
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

    const PASSWORDS: [&str; 6] = ["Sommar2024!", "Vinter#99", "hemligt;med\nradbrytning", "Pw3", "Pw4", "Pw5"];

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
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
        for password in PASSWORDS {
            assert!(!text.contains(password), "password {password:?} leaked into:\n{text}");
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
        assert_eq!(rows[0].target_password.as_ref().map(Secret::expose), Some("Ny1"));
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
        assert_eq!(decoded, "\u{20AC}\u{0081}\u{0160}\u{2013}\u{0178}\u{00A0}å\u{00FF}");
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
        assert_eq!(rows[1].target_password.as_ref().map(Secret::expose), Some("Pw3"));
        // The unknown column is ignored, and said to be.
        let warnings: Vec<String> = import.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings, ["accounts.csv row 1, column \"notes\": not a column postflytt knows; ignored"]);
    }

    #[test]
    fn quoted_fields_hold_separators_and_line_breaks() {
        let text = "E-post;Lösenord;Alias\n\
                    anna@x.se;\"hemligt;med\nradbrytning\";\"a@x.se\nb@x.se;\"\"c\"\"@x.se\"\n\
                    bo@x.se;;\n";
        let err = problems(text);
        // The quoted line break makes row 2 span two lines; bo is still on spreadsheet row 3.
        assert_error(&err, "accounts.csv row 3, column \"Lösenord\": empty password");
        assert_error(
            &err,
            "accounts.csv row 2, column \"Alias\": alias \"\"c\"@x.se\" is not an e-mail address of the form name@domain.se",
        );
        let fixed = text.replace(";\"\"c\"\"@x.se", "").replace("bo@x.se;;", "bo@x.se;Pw3;");
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
        assert_error(&err, "accounts.csv row 6, column \"Lösenord\": empty password");
        // The same with Windows line ends, leading blank lines, and a quoted line break before the gap.
        let text = "\r\n\r\nE-post;Lösenord\r\n\"an\r\nna\";Sommar2024!\r\n\r\nbo@x.se;\r\n";
        let err = problems(text);
        assert_error(&err, "accounts.csv row 6, column \"Lösenord\": empty password");
        assert_error(&err, "accounts.csv row 4, column \"E-post\": login \"an\\r\\nna\" contains a line break or control character");
        let mut grid = csv_grid("a.csv", b"\n\nx\n\"y\ny\"\n\nz").unwrap();
        let numbers: Vec<usize> = grid.rows.iter().map(|row| row.number).collect();
        assert_eq!(numbers, [3, 4, 6]);
        grid.rows.clear();
    }

    #[test]
    fn sep_line_names_the_separator() {
        let text = "sep=,\nE-post,Lösenord\nanna@x.se,\"Sommar2024!\"\nbo@x.se,\n";
        let err = problems(text);
        assert_error(&err, "accounts.csv row 3, column \"Lösenord\": empty password");
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
    fn delimiter_sniffing() {
        assert_eq!(sniff_delimiter("E-post;Lösenord\n"), b';');
        assert_eq!(sniff_delimiter("E-post,Lösenord\n"), b',');
        assert_eq!(sniff_delimiter("E-post\tLösenord\n"), b'\t');
        // A comma in a title line above a semicolon header does not win.
        assert_eq!(sniff_delimiter("Konton, Företag AB, Sthlm\nE-post;Lösenord\n"), b';');
        // Separators inside quotes do not count.
        assert_eq!(sniff_delimiter("\"a;b;c\",x,y\n"), b',');
        assert_eq!(sniff_delimiter(""), b';');
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

    // -----------------------------------------------------------------------------------------------
    // Workbooks, zips and file types

    use crate::export::xlsx::{Cell, Sheet, parts, write_xlsx, zip_files};

    fn xlsx(sheets: &[Sheet]) -> Vec<u8> {
        write_xlsx(sheets).unwrap()
    }

    fn sheet(name: &str, rows: &[&[&str]]) -> Sheet {
        Sheet::text(name, rows, false)
    }

    fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        zip_files(files).unwrap()
    }

    /// A one-sheet workbook ("Blad1") whose sheet XML is `sheet_data` inside `<worksheet>`, and whose
    /// styles are `styles` if given.
    fn raw_xlsx(sheet_data: &str, styles: Option<&str>) -> Vec<u8> {
        let mut parts = parts(&[sheet("Blad1", &[])]).unwrap();
        for (name, xml) in &mut parts {
            if name == "xl/worksheets/sheet1.xml" {
                *xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><worksheet \
                     xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">{sheet_data}</worksheet>"
                );
            }
            if let (true, Some(styles)) = (name == "xl/styles.xml", styles) {
                *xml = styles.to_string();
            }
        }
        let files: Vec<(&str, &[u8])> = parts.iter().map(|(name, xml)| (name.as_str(), xml.as_bytes())).collect();
        zip(&files)
    }

    fn failure(name: &str, bytes: &[u8]) -> ImportError {
        match import_bytes(name, bytes) {
            Ok(import) => panic!("{name} should fail, got {:?}", import.accounts),
            Err(err) => err,
        }
    }

    fn success(name: &str, bytes: &[u8]) -> Import {
        match import_bytes(name, bytes) {
            Ok(import) => import,
            Err(err) => panic!("{name} should import:\n{err}"),
        }
    }

    /// The positions of every local and central header in a zip the tests wrote (no comment, no
    /// data descriptors), with whether it is a central one.
    fn zip_headers(zip: &[u8]) -> Vec<(usize, bool)> {
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([zip[at], zip[at + 1]]));
        let u32_at = |at: usize| u32::from_le_bytes(zip[at..at + 4].try_into().unwrap()) as usize;
        let mut headers = Vec::new();
        let mut at = 0;
        while zip[at..].starts_with(b"PK\x03\x04") {
            headers.push((at, false));
            at += 30 + u16_at(at + 26) + u16_at(at + 28) + u32_at(at + 18);
        }
        let mut at = u32_at(zip.len() - 22 + 16);
        while zip[at..].starts_with(b"PK\x01\x02") {
            headers.push((at, true));
            at += 46 + u16_at(at + 28) + u16_at(at + 30) + u16_at(at + 32);
        }
        headers
    }

    /// Sets the uncompressed size every member declares, in local and central headers.
    fn declare_size(zip: &mut [u8], size: u32) {
        for (at, central) in zip_headers(zip) {
            let field = at + if central { 24 } else { 22 };
            zip[field..field + 4].copy_from_slice(&size.to_le_bytes());
        }
    }

    fn strings(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn swedish_xlsx_with_a_numeric_password() {
        let workbook = xlsx(&[Sheet {
            name: "Konton".to_string(),
            rows: vec![
                vec!["E-post".into(), "Lösenord".into(), "Nytt lösenord".into(), "Alias".into()],
                vec!["anna@foretag.se".into(), Cell::Number(123456.0), Cell::Number(0.5), "info@foretag.se; kontakt@foretag.se".into()],
                vec![Cell::Empty, Cell::Empty],
                vec!["bo@foretag.se".into(), " Vinter#99".into()],
            ],
            header: true,
        }]);
        let import = success("konton.xlsx", &workbook);
        let rows = import.accounts;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[0].source_login, "anna@foretag.se");
        assert_eq!(rows[0].source_password.expose(), "123456");
        assert_eq!(rows[0].target_password.as_ref().map(Secret::expose), Some("0.5"));
        assert_eq!(rows[0].aliases, ["info@foretag.se", "kontakt@foretag.se"]);
        assert_eq!(rows[1].row, 4);
        assert_eq!(rows[1].source_password.expose(), " Vinter#99");
        let warnings = strings(&import.warnings);
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        assert!(warnings[0].starts_with("Konton row 2, column \"Lösenord\": the password is a number or date in the sheet"));
        assert!(warnings[1].starts_with("Konton row 2, column \"Nytt lösenord\": the password is a number"));
        assert!(warnings[2].starts_with("Konton row 4, column \"Lösenord\": the password begins or ends"));
        assert!(!warnings.concat().contains("123456"));
    }

    #[test]
    fn workbook_problems_name_sheet_row_and_column() {
        let workbook = xlsx(&[sheet(
            "Blad 1",
            &[
                &["Konton för Företag AB"],
                &[],
                &["Användarnamn", "Lösenord", "Ny inloggning"],
                &["anna@x.se", "Sommar2024!", "anna @y.se"],
                &["bo@x.se", ""],
            ],
        )]);
        let err = failure("konton.xlsx", &workbook);
        assert_error(&err, "Blad 1 row 4, column \"Ny inloggning\": login \"anna @y.se\" contains a space or line break");
        assert_error(&err, "Blad 1 row 5, column \"Lösenord\": empty password");
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn the_sheet_with_a_header_is_read_and_others_named() {
        let workbook = xlsx(&[
            sheet("Instruktioner", &[&["Fyll i kontona på nästa flik"]]),
            sheet("Tom", &[]),
            sheet("Konton", &[&["E-post", "Lösenord"], &["anna@x.se", "Sommar2024!"]]),
            sheet("Gamla", &[&["E-post", "Lösenord"], &["old@x.se", "Pw3"]]),
        ]);
        let import = success("konton.xlsx", &workbook);
        assert_eq!(import.accounts.len(), 1);
        assert_eq!(import.accounts[0].source_login, "anna@x.se");
        assert_eq!(
            strings(&import.warnings),
            ["Konton: the list was read from this sheet; the workbook's other sheets with data \
              (\"Instruktioner\", \"Gamla\") were not read"]
        );
        // Without any header, the first sheet with data is read and its problems explain.
        let workbook = xlsx(&[sheet("Tom", &[]), sheet("Data", &[&["anna@x.se", "Pw3"]])]);
        let err = failure("konton.xlsx", &workbook);
        assert!(err.to_string().starts_with("Data row 1: no column for the login"), "{err}");
        let err = failure("konton.xlsx", &xlsx(&[sheet("Tom", &[])]));
        assert_eq!(err.to_string(), "konton.xlsx: the workbook has no rows; fill in the template and import it again");
    }

    #[test]
    fn formula_errors_dates_and_shared_strings() {
        // Excel's own form: shared strings, a style with a date format (14), an error cell.
        let styles = "<?xml version=\"1.0\"?><styleSheet \
            xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\
            <cellXfs count=\"2\"><xf numFmtId=\"0\"/><xf numFmtId=\"14\" applyNumberFormat=\"1\"/></cellXfs>\
            </styleSheet>";
        let data = "<dimension ref=\"A1:C4\"/><sheetData>\
            <row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>E-post</t></is></c>\
            <c r=\"B1\" t=\"inlineStr\"><is><t>Lösenord</t></is></c></row>\
            <row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>anna@x.se</t></is></c>\
            <c r=\"B2\" s=\"1\"><v>45323</v></c></row>\
            <row r=\"3\"><c r=\"A3\" t=\"e\"><f>VLOOKUP(X1,Y:Z,2)</f><v>#N/A</v></c>\
            <c r=\"B3\" t=\"b\"><v>1</v></c></row>\
            <row r=\"4\"><c r=\"A4\" t=\"inlineStr\"><is><t>bo@x.se</t></is></c>\
            <c r=\"B4\" t=\"e\"><v>#REF!</v></c></row>\
            </sheetData>";
        let err = failure("konton.xlsx", &raw_xlsx(data, Some(styles)));
        assert_error(&err, "Blad1 row 3, column \"E-post\": the cell shows the formula error #N/A; type the value in instead");
        assert_error(&err, "Blad1 row 4, column \"Lösenord\": the cell shows the formula error #REF!; type the value in instead");
        assert_eq!(err.problems.len(), 2, "{err}");
        let fixed = data
            .replace("<c r=\"A3\" t=\"e\"><f>VLOOKUP(X1,Y:Z,2)</f><v>#N/A</v></c>", "")
            .replace("<c r=\"B3\" t=\"b\"><v>1</v></c>", "")
            .replace("<c r=\"B4\" t=\"e\"><v>#REF!</v></c>", "<c r=\"B4\"><v>7</v></c>");
        let import = success("konton.xlsx", &raw_xlsx(&fixed, Some(styles)));
        assert_eq!(import.accounts[0].source_password.expose(), "2024-02-01");
        assert_eq!(import.accounts[1].source_password.expose(), "7");
    }

    #[test]
    fn cell_values_become_the_text_the_customer_sees() {
        use calamine::ExcelDateTimeType::{DateTime, TimeDelta};
        let not_text = Some(CellKind::NotText);
        let cases = [
            (DataRef::Float(123456.0), "123456", not_text),
            (DataRef::Float(-0.0), "-0", not_text),
            (DataRef::Float(0.1), "0.1", not_text),
            (DataRef::Float(1e20), "100000000000000000000", not_text),
            (DataRef::Int(7), "7", not_text),
            (DataRef::Bool(true), "TRUE", not_text),
            (DataRef::SharedString("Sommar2024!"), "Sommar2024!", None),
            (DataRef::Empty, "", None),
            (DataRef::DateTime(ExcelDateTime::new(45323.0, DateTime, false)), "2024-02-01", not_text),
            (DataRef::DateTime(ExcelDateTime::new(45323.75, DateTime, false)), "2024-02-01 18:00:00", not_text),
            (DataRef::DateTime(ExcelDateTime::new(0.3125, DateTime, false)), "07:30:00", not_text),
            (DataRef::DateTime(ExcelDateTime::new(1.5, TimeDelta, false)), "36:00:00", not_text),
            (DataRef::DateTimeIso("2024-02-01T08:00:00".to_string()), "2024-02-01 08:00:00", not_text),
            (DataRef::Error(CellErrorType::NA), "#N/A", Some(CellKind::Error)),
        ];
        for (value, text, kind) in cases {
            assert_eq!(data_ref_text(&value), (text.to_string(), kind), "{value:?}");
        }
        assert_eq!(data_text(&Data::Float(123456.0)).0, "123456");
        assert_eq!(data_text(&Data::String("x".into())), ("x".to_string(), None));
    }

    #[test]
    fn oversize_dimension_is_refused_before_reading() {
        let data = "<dimension ref=\"A1:XFD1048576\"/><sheetData>\
            <row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>E-post</t></is></c></row></sheetData>";
        let started = std::time::Instant::now();
        let err = failure("konton.xlsx", &raw_xlsx(data, None));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].sheet, "Blad1");
        assert!(err.problems[0].message.starts_with("the sheet's used area reaches row 1048576 and column XFD"), "{err}");
        // Rows or columns alone within limits, but an area that is not.
        let data = data.replace("XFD1048576", "IV99999");
        assert!(failure("konton.xlsx", &raw_xlsx(&data, None)).to_string().contains("used area"));
    }

    #[test]
    fn cells_are_checked_as_they_come() {
        let header = "<row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>E-post</t></is></c>\
                      <c r=\"B1\" t=\"inlineStr\"><is><t>Lösenord</t></is></c></row>\
                      <row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>anna@x.se</t></is></c>\
                      <c r=\"B2\" t=\"inlineStr\"><is><t>Sommar2024!</t></is></c></row>";
        let sheet = |extra: &str| raw_xlsx(&format!("<dimension ref=\"A1:B2\"/><sheetData>{header}{extra}</sheetData>"), None);
        // The declared area lies; the far cell is caught when it arrives.
        let err = failure("a.xlsx", &sheet("<row r=\"200000\"><c r=\"A200000\"><v>1</v></c></row>"));
        assert_eq!(err.to_string(), "Blad1 row 200000: the list has more than 100000 rows; is this the right file?");
        let err = failure("a.xlsx", &sheet("<row r=\"3\"><c r=\"JA3\"><v>1</v></c></row>"));
        assert_eq!(err.to_string(), "Blad1 row 3, column \"JA\": the row uses more than 256 columns; is this the right file?");
        let err = failure("a.xlsx", &sheet("<row r=\"5\"><c r=\"A5\"><v>1</v></c></row><row r=\"3\"><c r=\"A3\"><v>1</v></c></row>"));
        assert!(err.to_string().contains("row 3: the sheet's rows are stored out of order"), "{err}");
        // A blank, formatted cell far away costs nothing and is no error.
        let import = success("a.xlsx", &sheet("<row r=\"1048576\"><c r=\"XFD1048576\" s=\"1\"/></row>"));
        assert_eq!(import.accounts.len(), 1);
    }

    #[test]
    fn a_reversed_dimension_does_not_take_the_process_down() {
        // calamine 0.38 subtracts the corners of `B2:A1` unchecked; with overflow checks (debug builds)
        // that panics inside calamine, which must come back as an error for this file.
        let data = "<dimension ref=\"B2:A1\"/><sheetData>\
            <row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>E-post</t></is></c>\
            <c r=\"B1\" t=\"inlineStr\"><is><t>Lösenord</t></is></c></row>\
            <row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>anna@x.se</t></is></c>\
            <c r=\"B2\" t=\"inlineStr\"><is><t>Sommar2024!</t></is></c></row></sheetData>";
        match import_bytes("konton.xlsx", &raw_xlsx(data, None)) {
            Ok(import) => assert_eq!(import.accounts.len(), 1),
            Err(err) => assert_eq!(
                err.to_string(),
                "konton.xlsx: the workbook could not be read; open it in Excel or LibreOffice, save \
                 it again and import that file, or save the list as \"CSV UTF-8\""
            ),
        }
    }

    #[test]
    fn zip_holding_an_xlsx() {
        let workbook = xlsx(&[sheet("Blad1", &[&["E-post", "Lösenord"], &["anna@x.se", "Sommar2024!"], &["bo@x.se"]])]);
        let archive = zip(&[
            ("__MACOSX/Konton/._konton.xlsx", b"mac resource fork"),
            ("Konton/.DS_Store", b"\0\0\0\x01Bud1"),
            ("Konton/~$konton.xlsx", b"owner"),
            ("Konton/konton.xlsx", &workbook),
        ]);
        let err = failure("från kund.zip", &archive);
        assert_error(&err, "från kund.zip/Konton/konton.xlsx sheet Blad1 row 3, column \"Lösenord\": empty password");
        let fixed = xlsx(&[sheet("Blad1", &[&["E-post", "Lösenord"], &["anna@x.se", "Sommar2024!"]])]);
        let import = success("k.zip", &zip(&[("konton.xlsx", &fixed)]));
        assert_eq!(import.accounts[0].source_password.expose(), "Sommar2024!");
    }

    #[test]
    fn zip_holding_a_csv() {
        let archive = zip(&[
            ("LÄS MIG.txt", b"Kontolista fr\xc3\xa5n kunden"),
            ("konton.csv", "E-post;Lösenord\r\nanna@x.se;Sommar2024!\r\nbo@x.se;\r\n".as_bytes()),
        ]);
        let err = failure("konton.zip", &archive);
        assert_eq!(err.to_string(), "konton.zip/konton.csv row 3, column \"Lösenord\": empty password");
        // A .txt alone is the list.
        let archive = zip(&[("konton.txt", b"E-post\tL\xc3\xb6senord\nanna@x.se\tPw3\n")]);
        assert_eq!(success("k.zip", &archive).accounts.len(), 1);
    }

    #[test]
    fn zips_that_do_not_hold_exactly_one_list() {
        let csv = "E-post;Lösenord\nanna@x.se;Pw3\n".as_bytes();
        let workbook = xlsx(&[sheet("Blad1", &[&["E-post", "Lösenord"], &["anna@x.se", "Pw3"]])]);
        let err = failure("k.zip", &zip(&[("konton.csv", csv), ("gamla/konton.xlsx", &workbook)]));
        assert_eq!(
            err.to_string(),
            "k.zip: the zip archive holds 2 spreadsheets (\"konton.csv\", \"gamla/konton.xlsx\"); \
             postflytt reads one list. Send a zip with only the account list, or that file alone"
        );
        let err = failure("k.zip", &zip(&[("bild.png", b"\x89PNG"), ("avtal.pdf", b"%PDF")]));
        assert!(
            err.to_string().starts_with("k.zip: the zip archive holds no .xlsx, .ods or .csv file, only \"bild.png\", \"avtal.pdf\""),
            "{err}"
        );
        let err = failure("k.zip", &zip(&[]));
        assert!(err.to_string().contains("the zip archive is empty"), "{err}");
        let err = failure("k.zip", &zip(&[("inre.zip", &zip(&[("konton.csv", csv)]))]));
        assert!(err.to_string().contains("holds no .xlsx"), "{err}");
        let err = failure("k.zip", &zip(&[("konton.xlsx", &zip(&[("konton.csv", csv)]))]));
        assert!(err.to_string().starts_with("k.zip/konton.xlsx: a zip inside the zip"), "{err}");
        let names: Vec<String> = (0..=MAX_ZIP_ENTRIES).map(|i| format!("f{i}.png")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let err = failure("k.zip", &zip(&files));
        assert!(err.to_string().contains("has 101 entries, more than the 100"), "{err}");
    }

    #[test]
    fn zip_bombs_are_refused() {
        let csv = "E-post;Lösenord\nanna@x.se;Pw3\n".as_bytes();
        // Declared sizes over the limit: refused before anything is unpacked.
        let mut archive = zip(&[("konton.csv", csv)]);
        declare_size(&mut archive, 0x7FFF_FFFF);
        let err = failure("k.zip", &archive);
        assert_eq!(
            err.to_string(),
            "k.zip: the zip archive would unpack to more than 64 MB; an account list is much \
             smaller. Is this the right file?"
        );
        // A member that unpacks to more than it declared stops at the declaration.
        let mut archive = zip(&[("konton.csv", csv)]);
        declare_size(&mut archive, 10);
        let err = failure("k.zip", &archive);
        assert!(err.to_string().starts_with("k.zip/konton.csv: cannot unpack it from the zip"), "{err}");
        // The same for the parts of a workbook.
        let mut workbook = xlsx(&[sheet("Blad1", &[&["E-post", "Lösenord"]])]);
        declare_size(&mut workbook, 0x1000_0000);
        assert!(failure("k.xlsx", &workbook).to_string().contains("more than 64 MB"));
        // An end record claiming a huge number of entries is refused before the zip crate reads it.
        let mut archive = zip(&[("konton.csv", csv)]);
        let end = archive.len() - 22;
        assert_eq!(declared_entries(&archive), Some(1));
        archive[end + 8..end + 12].copy_from_slice(&[0xFE, 0xFF, 0xFE, 0xFF]);
        assert_eq!(declared_entries(&archive), Some(0xFFFE));
        assert!(failure("k.zip", &archive).to_string().contains("more than 1000 entries"));
        assert_eq!(declared_entries(b"no zip here"), None);
    }

    #[test]
    fn encrypted_zip_is_refused() {
        let mut archive = zip(&[("konton.csv", b"E-post;L\xc3\xb6senord\nanna@x.se;Pw3\n")]);
        for (at, central) in zip_headers(&archive) {
            archive[at + if central { 8 } else { 6 }] |= 1;
        }
        assert_eq!(
            failure("k.zip", &archive).to_string(),
            "k.zip/konton.csv: the zip archive is password-protected; send it without a password \
             (the account list is kept encrypted on the appliance)"
        );
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

    const ODS_MANIFEST: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" \
        manifest:version=\"1.2\"><manifest:file-entry manifest:full-path=\"/\" \
        manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/>\
        <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
        </manifest:manifest>";

    fn ods_content(tables: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-content \
             xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
             xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
             xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" office:version=\"1.2\">\
             <office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>\
             </office:document-content>"
        )
    }

    fn ods(tables: &str) -> Vec<u8> {
        zip(&[
            ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
            ("META-INF/manifest.xml", ODS_MANIFEST),
            ("content.xml", ods_content(tables).as_bytes()),
        ])
    }

    fn ods_text(text: &str) -> String {
        format!("<table:table-cell office:value-type=\"string\"><text:p>{text}</text:p></table:table-cell>")
    }

    /// A LibreOffice-style sheet: the data, then the rest of the sheet as repeated blank cells and rows.
    fn ods_sheet(name: &str, rows: &[String]) -> String {
        let mut xml = format!("<table:table table:name=\"{name}\"><table:table-column table:number-columns-repeated=\"1024\"/>");
        for row in rows {
            xml.push_str(&format!("<table:table-row>{row}<table:table-cell table:number-columns-repeated=\"1020\"/></table:table-row>"));
        }
        xml.push_str(
            "<table:table-row table:number-rows-repeated=\"1048570\">\
             <table:table-cell table:number-columns-repeated=\"1024\"/></table:table-row></table:table>",
        );
        xml
    }

    #[test]
    fn ods_is_read() {
        let header = format!("{}{}", ods_text("E-post"), ods_text("Lösenord"));
        let anna = format!(
            "{}<table:table-cell office:value-type=\"float\" office:value=\"123456\">\
             <text:p>123456</text:p></table:table-cell>",
            ods_text("anna@x.se")
        );
        let bo = format!("{}<table:table-cell table:number-columns-repeated=\"2\"/>{}", ods_text("bo@x.se"), ods_text("ignored"));
        let tables = format!("{}{}", ods_sheet("Anteckningar", &[ods_text("Se nästa flik")]), ods_sheet("Konton", &[header, anna, bo]));
        let err = failure("konton.ods", &ods(&tables));
        assert_error(&err, "Konton row 3, column \"Lösenord\": empty password");
        let fixed = tables.replace("<table:table-cell table:number-columns-repeated=\"2\"/>", &ods_text("Pw3"));
        let import = success("konton.ods", &ods(&fixed));
        assert_eq!(import.accounts.len(), 2);
        assert_eq!(import.accounts[0].source_password.expose(), "123456");
        assert_eq!(import.accounts[1].source_password.expose(), "Pw3");
        let warnings = strings(&import.warnings);
        assert!(warnings[0].contains("other sheets with data (\"Anteckningar\")"), "{warnings:?}");
        assert!(warnings[1].starts_with("Konton row 2, column \"Lösenord\": the password is a number"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let zipped = zip(&[("konton.ods", &ods(&fixed))]);
        assert_eq!(success("k.zip", &zipped).accounts.len(), 2);
    }

    #[test]
    fn ods_expansion_bombs_are_refused() {
        let header = format!("{}{}", ods_text("E-post"), ods_text("Lösenord"));
        let scan = |tables: &str| check_ods_content(ods_content(tables).as_bytes(), &|s| s.to_string());
        // The LibreOffice layout of an ordinary list passes.
        assert!(scan(&ods_sheet("Konton", std::slice::from_ref(&header))).is_ok());
        // A row of data repeated far down.
        let tables = format!(
            "<table:table table:name=\"Bomb\"><table:table-row>{header}</table:table-row>\
             <table:table-row table:number-rows-repeated=\"1000000\">{}</table:table-row></table:table>",
            ods_text("x")
        );
        let err = scan(&tables).unwrap_err();
        assert!(err.to_string().starts_with("Bomb row 100001: the sheet has data in row 1000001"), "{err}");
        assert!(failure("b.ods", &ods(&tables)).to_string().contains("data in row 1000001"));
        // A cell with data repeated across columns.
        let tables = "<table:table table:name=\"Bomb\"><table:table-row>\
            <table:table-cell table:number-columns-repeated=\"16384\" office:value-type=\"string\">\
            <text:p>x</text:p></table:table-cell></table:table-row></table:table>";
        assert_eq!(
            scan(tables).unwrap_err().to_string(),
            "Bomb row 1, column \"IW\": the row uses more than 256 columns; is this the right file?"
        );
        // Within rows and columns, but blank rows between two rows of data that would all be filled in.
        let wide = "<table:table-row><table:table-cell table:number-columns-repeated=\"25\" \
                    office:value-type=\"float\" office:value=\"1\"/></table:table-row>";
        let tables = format!(
            "<table:table table:name=\"Bomb\">{wide}<table:table-row table:number-rows-repeated=\"99000\">\
             <table:table-cell table:number-columns-repeated=\"1024\"/></table:table-row>{wide}</table:table>"
        );
        assert!(scan(&tables).unwrap_err().to_string().contains("more than the 2000000 cells"));
        // A space run of a billion in one cell.
        let tables = "<table:table table:name=\"Bomb\"><table:table-row>\
            <table:table-cell office:value-type=\"string\"><text:p>a<text:s text:c=\"1000000000\"/>b\
            </text:p></table:table-cell></table:table-row></table:table>";
        assert!(scan(tables).unwrap_err().to_string().contains("more than 256 MB"));
        // Modest text repeated over many rows adds up too.
        let tables = format!(
            "<table:table table:name=\"Bomb\"><table:table-row table:number-rows-repeated=\"99000\">\
             <table:table-cell table:number-columns-repeated=\"20\" office:value-type=\"string\">\
             <text:p>{}</text:p></table:table-cell></table:table-row></table:table>",
            "x".repeat(200)
        );
        assert!(scan(&tables).unwrap_err().to_string().contains("more than 256 MB"));
    }

    /// Runs an import on its own thread and fails the test if it has not finished in 20 seconds.
    fn import_in_time(name: &'static str, bytes: Vec<u8>) -> Result<Import, ImportError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || sender.send(import_bytes(name, &bytes)));
        match receiver.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(result) => result,
            Err(_) => panic!("importing {name} hangs"),
        }
    }

    #[test]
    fn truncated_ods_is_refused_instead_of_hanging() {
        // calamine 0.38 loops forever on a content.xml that ends inside a sheet or a cell note.
        let full = ods_content(&ods_sheet(
            "Konton",
            &[format!(
                "<table:table-cell office:value-type=\"string\"><office:annotation><text:p>anteckning\
                 </text:p></office:annotation><text:p>E-post</text:p></table:table-cell>{}",
                ods_text("Lösenord")
            )],
        ));
        let open_sheet = &full.as_bytes()[..full.find("<table:table-row").unwrap()];
        let err = check_ods_content(open_sheet, &|s| s.to_string()).unwrap_err();
        assert!(err.to_string().starts_with("Konton: the spreadsheet ends in the middle of a sheet"));
        for cut in (0..full.len()).step_by(7) {
            let bytes = zip(&[
                ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
                ("META-INF/manifest.xml", ODS_MANIFEST),
                ("content.xml", &full.as_bytes()[..cut]),
            ]);
            assert!(import_in_time("cut.ods", bytes).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn truncated_xlsx_parts_give_errors() {
        let sheets = [sheet("Blad1", &[&["E-post", "Lösenord"], &["anna@x.se", "Sommar2024!"]])];
        let parts = parts(&sheets).unwrap();
        for (i, (part, xml)) in parts.iter().enumerate() {
            for cut in (0..xml.len()).step_by(11) {
                let files: Vec<(&str, &[u8])> = parts
                    .iter()
                    .enumerate()
                    .map(|(j, (name, text))| {
                        let text = text.as_bytes();
                        (name.as_str(), if i == j { &text[..cut] } else { text })
                    })
                    .collect();
                if let Ok(import) = import_in_time("cut.xlsx", zip(&files)) {
                    // Some cuts only lose a style or the relationships' tail; never the account.
                    assert_eq!(import.accounts.len(), 1, "{part} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn tag_scanning_helpers() {
        assert_eq!(tag_length(b"<a b=\"x>y\" c='>'/>rest"), Some(18));
        assert_eq!(tag_length(b"<a"), None);
        let attrs = b" table:name=\"A &amp; B\" table:number-rows-repeated = '12' x=y";
        assert_eq!(attr(attrs, b"table:name"), Some(&b"A &amp; B"[..]));
        assert_eq!(attr(attrs, b"table:number-rows-repeated"), Some(&b"12"[..]));
        assert_eq!(attr(attrs, b"missing"), None);
        assert_eq!(count(Some(b"12")), 12);
        assert_eq!(count(Some(b"99999999999999999999999")), u64::MAX);
        assert_eq!(count(Some(b"x")), 1);
        assert_eq!(count(None), 1);
        assert_eq!(unescape("A &amp;lt; &lt;B&gt;"), "A &lt; <B>");
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

    #[test]
    fn broken_unicode_is_refused_with_a_line() {
        let err = import_bytes("a.csv", b"\xEF\xBB\xBFE-post;L\xC3\xB6senord\nanna;\xFF\n").unwrap_err();
        assert_eq!(err.to_string(), "a.csv: the file says it is UTF-8 but is not, on line 2; save it again as \"CSV UTF-8\"");
        let err = import_bytes("a.csv", b"\xFF\xFEa\x00\x00\xD8b\x00").unwrap_err();
        assert!(err.to_string().contains("says it is UTF-16 but is not, on line 1"), "{err}");
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
}
