//! Excel (.xlsx) and OpenDocument (.ods) workbooks into a `Grid`, through calamine: choosing the sheet
//! that holds the list, checking the used area before cells are read, turning every cell value into
//! the text the customer sees in the spreadsheet program, and keeping a calamine panic on a hostile
//! file to an error for that file.

use std::io::{Cursor, Read, Seek};
use std::panic::{AssertUnwindSafe, catch_unwind};

use calamine::{CellErrorType, Data, DataRef, Dimensions, ExcelDateTime, Ods, OdsError, Reader, SheetType, SheetVisible, Xlsx, XlsxError};

use crate::secret::wipe;

use super::validate::{accounts_from_grid, shown};
use super::{CellKind, Grid, HEADER_SEARCH_ROWS, Import, ImportError, MAX_CELLS, MAX_COLUMNS, MAX_ROWS, Problem, column_letter};

/// Names a sheet in messages: its tab name alone for a workbook the customer sent directly, prefixed
/// with the path when it came out of a .zip ("konton.zip/Konton.xlsx sheet Blad1").
pub(super) fn sheet_label(file: &str, sheet: &str, in_zip: bool) -> String {
    if in_zip { format!("{file} sheet {sheet}") } else { sheet.to_string() }
}

/// Runs a workbook reader and validates its grid. calamine is given files from customers; should it
/// panic on one (a subtraction overflows in 0.38 for a dimension such as `B2:A1`), that becomes an
/// error for this file instead of taking the process down. `notes` collects warnings about the
/// workbook as a whole.
pub(super) fn read_workbook(
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

pub(super) fn xlsx_grid(file: &str, bytes: &[u8], in_zip: bool, notes: &mut Vec<Problem>) -> Result<Grid, ImportError> {
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

pub(super) fn ods_grid(file: &str, bytes: &[u8], in_zip: bool, notes: &mut Vec<Problem>) -> Result<Grid, ImportError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::import_bytes;
    use crate::import::test_support::*;
    use crate::secret::Secret;

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
}
