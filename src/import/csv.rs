//! CSV and other delimited text into a `Grid`: the text's encoding (UTF-8 with or without a byte order
//! mark, UTF-16, Windows-1252) and its delimiter (`;`, tab or `,`, or the one an Excel `sep=` line
//! names) are judged from the bytes, quoted fields may hold delimiters and line breaks, and every row
//! keeps the line number the customer's spreadsheet program shows for it.

use crate::secret::{Secret, wipe};

use super::validate::field_for_header;
use super::{Grid, HEADER_SEARCH_ROWS, ImportError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::import_bytes;
    use crate::import::test_support::*;

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
    fn broken_unicode_is_refused_with_a_line() {
        let err = import_bytes("a.csv", b"\xEF\xBB\xBFE-post;L\xC3\xB6senord\nanna;\xFF\n").unwrap_err();
        assert_eq!(err.to_string(), "a.csv: the file says it is UTF-8 but is not, on line 2; save it again as \"CSV UTF-8\"");
        let err = import_bytes("a.csv", b"\xFF\xFEa\x00\x00\xD8b\x00").unwrap_err();
        assert!(err.to_string().contains("says it is UTF-16 but is not, on line 1"), "{err}");
    }
}
