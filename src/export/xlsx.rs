//! The minimal SpreadsheetML (OOXML) writer behind every .xlsx postflytt hands out: text and number
//! cells in inline form (no shared-string table), one style sheet with a bold text header. It produced
//! the compiled-in account-list template (`template`), writes the check's results as .xlsx (`check`),
//! and builds the workbooks the importer is tested against. The same input gives the same bytes.

use std::io::{self, Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// One cell to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::Text(text.to_string())
    }
}

/// One worksheet: its tab name and rows from A1 on. With `header`, the first row is bold and frozen
/// and the used columns are wide and formatted as Text.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub name: String,
    pub rows: Vec<Vec<Cell>>,
    pub header: bool,
}

impl Sheet {
    /// A sheet of text cells.
    #[cfg(test)]
    pub fn text(name: &str, rows: &[&[&str]], header: bool) -> Sheet {
        Sheet { name: name.to_string(), rows: rows.iter().map(|row| row.iter().map(|&cell| Cell::from(cell)).collect()).collect(), header }
    }
}

const MAIN_NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const PACKAGE_REL_NS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";

/// Style indexes into `cellXfs` of `styles.xml` below.
const STYLE_TEXT: u32 = 1;
const STYLE_HEADER: u32 = 2;
/// Column width, in characters, of header sheets: room for an address and the bilingual names.
const HEADER_COLUMN_WIDTH: u32 = 34;

/// The workbook's parts (path in the package, XML text) in the order they are zipped.
pub fn parts(sheets: &[Sheet]) -> io::Result<Vec<(String, String)>> {
    if sheets.is_empty() {
        return Err(invalid("a workbook needs at least one sheet"));
    }
    for (i, sheet) in sheets.iter().enumerate() {
        check_sheet_name(&sheet.name)?;
        if sheets[..i].iter().any(|other| other.name.to_lowercase() == sheet.name.to_lowercase()) {
            return Err(invalid("two sheets have the same name"));
        }
    }
    let mut parts = vec![
        ("[Content_Types].xml".to_string(), content_types(sheets.len())),
        ("_rels/.rels".to_string(), package_rels()),
        ("xl/workbook.xml".to_string(), workbook(sheets)),
        ("xl/_rels/workbook.xml.rels".to_string(), workbook_rels(sheets.len())),
        ("xl/styles.xml".to_string(), styles()),
    ];
    for (i, sheet) in sheets.iter().enumerate() {
        parts.push((format!("xl/worksheets/sheet{}.xml", i + 1), worksheet(sheet)));
    }
    Ok(parts)
}

/// The workbook as .xlsx bytes.
pub fn write_xlsx(sheets: &[Sheet]) -> io::Result<Vec<u8>> {
    let parts = parts(sheets)?;
    let files: Vec<(&str, &[u8])> = parts.iter().map(|(name, xml)| (name.as_str(), xml.as_bytes())).collect();
    zip_files(&files)
}

/// A zip of the given files, deflated, with a fixed timestamp so the same input gives the same bytes.
pub fn zip_files(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated).last_modified_time(DateTime::default());
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(*name, options).map_err(io::Error::other)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish().map_err(io::Error::other)?.into_inner())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Excel refuses to open a workbook whose sheet name breaks these rules.
fn check_sheet_name(name: &str) -> io::Result<()> {
    if name.is_empty()
        || name.chars().count() > 31
        || name.contains(['[', ']', ':', '*', '?', '/', '\\'])
        || name.starts_with('\'')
        || name.ends_with('\'')
    {
        return Err(invalid("a sheet name must be 1 to 31 characters without []:*?/\\ or outer '"));
    }
    Ok(())
}

fn content_types(sheets: usize) -> String {
    let mut xml = format!(
        "{XML_DECL}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
         <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
         <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
         <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
         <Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>"
    );
    for i in 1..=sheets {
        xml.push_str(&format!(
            "<Override PartName=\"/xl/worksheets/sheet{i}.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"
        ));
    }
    xml.push_str("</Types>");
    xml
}

fn package_rels() -> String {
    format!(
        "{XML_DECL}<Relationships xmlns=\"{PACKAGE_REL_NS}\">\
         <Relationship Id=\"rId1\" Type=\"{REL_NS}/officeDocument\" Target=\"xl/workbook.xml\"/>\
         </Relationships>"
    )
}

fn workbook(sheets: &[Sheet]) -> String {
    let mut xml = format!(
        "{XML_DECL}<workbook xmlns=\"{MAIN_NS}\" xmlns:r=\"{REL_NS}\">\
         <bookViews><workbookView/></bookViews><sheets>"
    );
    for (i, sheet) in sheets.iter().enumerate() {
        xml.push_str(&format!("<sheet name=\"{}\" sheetId=\"{}\" r:id=\"rId{}\"/>", escape(&sheet.name), i + 1, i + 1));
    }
    xml.push_str("</sheets></workbook>");
    xml
}

/// Worksheets are rId1..rIdN, the styles part comes after them.
fn workbook_rels(sheets: usize) -> String {
    let mut xml = format!("{XML_DECL}<Relationships xmlns=\"{PACKAGE_REL_NS}\">");
    for i in 1..=sheets {
        xml.push_str(&format!("<Relationship Id=\"rId{i}\" Type=\"{REL_NS}/worksheet\" Target=\"worksheets/sheet{i}.xml\"/>"));
    }
    xml.push_str(&format!("<Relationship Id=\"rId{}\" Type=\"{REL_NS}/styles\" Target=\"styles.xml\"/></Relationships>", sheets + 1));
    xml
}

/// Excel insists on the two default fills and on at least one font, border and cell style. Cell
/// formats: 0 default, 1 Text (number format 49, "@"), 2 Text in bold.
fn styles() -> String {
    format!(
        "{XML_DECL}<styleSheet xmlns=\"{MAIN_NS}\">\
         <fonts count=\"2\">\
         <font><sz val=\"11\"/><name val=\"Calibri\"/><family val=\"2\"/></font>\
         <font><b/><sz val=\"11\"/><name val=\"Calibri\"/><family val=\"2\"/></font>\
         </fonts>\
         <fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill>\
         <fill><patternFill patternType=\"gray125\"/></fill></fills>\
         <borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
         <cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>\
         <cellXfs count=\"3\">\
         <xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>\
         <xf numFmtId=\"49\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/>\
         <xf numFmtId=\"49\" fontId=\"1\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\" applyFont=\"1\"/>\
         </cellXfs>\
         <cellStyles count=\"1\"><cellStyle name=\"Normal\" xfId=\"0\" builtinId=\"0\"/></cellStyles>\
         </styleSheet>"
    )
}

/// The elements of a worksheet must come in the schema's order: dimension, sheetViews, cols,
/// sheetData; Excel reports a file as damaged otherwise.
fn worksheet(sheet: &Sheet) -> String {
    let columns = sheet.rows.iter().map(Vec::len).max().unwrap_or(0);
    let dimension = if columns == 0 || sheet.rows.is_empty() {
        "A1".to_string()
    } else {
        format!("A1:{}{}", column_name(columns - 1), sheet.rows.len())
    };
    let mut xml = format!("{XML_DECL}<worksheet xmlns=\"{MAIN_NS}\" xmlns:r=\"{REL_NS}\"><dimension ref=\"{dimension}\"/>");
    if sheet.header {
        xml.push_str(
            "<sheetViews><sheetView workbookViewId=\"0\">\
             <pane ySplit=\"1\" topLeftCell=\"A2\" activePane=\"bottomLeft\" state=\"frozen\"/>\
             </sheetView></sheetViews>",
        );
        if columns > 0 {
            xml.push_str(&format!(
                "<cols><col min=\"1\" max=\"{columns}\" width=\"{HEADER_COLUMN_WIDTH}\" style=\"{STYLE_TEXT}\" customWidth=\"1\"/></cols>"
            ));
        }
    } else {
        xml.push_str("<sheetViews><sheetView workbookViewId=\"0\"/></sheetViews>");
    }
    xml.push_str("<sheetData>");
    for (r, row) in sheet.rows.iter().enumerate() {
        xml.push_str(&format!("<row r=\"{}\">", r + 1));
        let style = match (sheet.header, r) {
            (true, 0) => Some(STYLE_HEADER),
            (true, _) => Some(STYLE_TEXT),
            (false, _) => None,
        };
        let style = style.map_or(String::new(), |s| format!(" s=\"{s}\""));
        for (c, cell) in row.iter().enumerate() {
            let at = format!("{}{}", column_name(c), r + 1);
            match cell {
                Cell::Empty => {}
                Cell::Number(n) if n.is_finite() => {
                    xml.push_str(&format!("<c r=\"{at}\"{style}><v>{n}</v></c>"));
                }
                // No XML number spells infinity or NaN; keep what the caller meant as text.
                Cell::Number(n) => xml.push_str(&inline_string(&at, &style, &n.to_string())),
                Cell::Text(text) => xml.push_str(&inline_string(&at, &style, text)),
            }
        }
        xml.push_str("</row>");
    }
    xml.push_str("</sheetData></worksheet>");
    xml
}

fn inline_string(at: &str, style: &str, text: &str) -> String {
    format!("<c r=\"{at}\"{style} t=\"inlineStr\"><is><t xml:space=\"preserve\">{}</t></is></c>", escape(text))
}

/// Escapes for both text and attribute values. Characters XML 1.0 forbids (most C0 controls) become
/// U+FFFD, as no parser would accept the file otherwise.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// 0 is "A", 25 "Z", 26 "AA".
fn column_name(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        letters.push(char::from(b'A' + ((n - 1) % 26) as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_names() {
        assert_eq!(escape("a<b>&\"c\"\u{1}\n"), "a&lt;b&gt;&amp;&quot;c&quot;\u{FFFD}\n");
        let names: Vec<String> = [0, 25, 26, 255].into_iter().map(column_name).collect();
        assert_eq!(names, ["A", "Z", "AA", "IV"]);
        assert!(check_sheet_name("Konton 2024").is_ok());
        for bad in ["", "a/b", "[x]", "'quoted'", &"x".repeat(32)] {
            assert!(check_sheet_name(bad).is_err(), "{bad}");
        }
        let twice = [Sheet::text("A", &[], false), Sheet::text("a", &[], false)];
        assert!(write_xlsx(&twice).is_err());
        assert!(write_xlsx(&[]).is_err());
    }

    #[test]
    fn sheet_xml_is_in_schema_order() {
        let sheet = Sheet {
            name: "S".to_string(),
            rows: vec![
                vec![Cell::from("E-post"), Cell::from("Lösenord")],
                vec![Cell::from("a&b@x.se"), Cell::Number(123456.0), Cell::Empty],
            ],
            header: true,
        };
        let xml = worksheet(&sheet);
        let order = ["<dimension ref=\"A1:C2\"/>", "<sheetViews>", "<cols>", "<sheetData>"];
        let positions: Vec<usize> = order.iter().map(|tag| xml.find(tag).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{xml}");
        assert!(xml.contains("<c r=\"B2\" s=\"1\"><v>123456</v></c>"), "{xml}");
        assert!(xml.contains("<t xml:space=\"preserve\">a&amp;b@x.se</t>"), "{xml}");
        assert!(!xml.contains("r=\"C2\""), "an empty cell is left out: {xml}");
    }
}
