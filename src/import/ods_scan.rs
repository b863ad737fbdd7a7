//! The pre-scan of an .ods file's `content.xml` that runs before calamine does: calamine expands
//! repeated rows, columns and space runs into full rectangles, so a few hundred bytes of XML could ask
//! for gigabytes. This walks the tags, estimates what calamine would build and refuses the file first
//! if a sheet has data beyond the grid's limits or the expansion would not fit in memory.

use super::{ImportError, MAX_CELLS, MAX_COLUMNS, MAX_ROWS, Problem, column_letter};

/// What calamine may build from an .ods file, estimated by `check_ods_content` before it runs.
const MAX_ODS_BYTES: u64 = 256 << 20;

/// Bounds what calamine will build from an .ods file before it is let loose on it. calamine 0.38 reads
/// every sheet of an .ods at once into full rectangles of cells, expanding `number-columns-repeated`
/// and `number-rows-repeated` (how LibreOffice stores blank and formatted areas) and `text:c` space
/// runs; its own cap (100 million cells) is far beyond a 1 GB box, and a few hundred bytes of XML can
/// ask for gigabytes. This walks the tags of `content.xml` the way calamine's reader does, and refuses
/// the file if a sheet has data beyond the grid's limits or the expansion would outgrow
/// `MAX_ODS_BYTES`. It over-estimates where unsure: any cell with content or a value counts as data.
pub(super) fn check_ods_content(xml: &[u8], label: &dyn Fn(&str) -> String) -> Result<(), ImportError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::*;

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
}
