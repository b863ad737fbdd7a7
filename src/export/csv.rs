//! The one CSV writer for every file postflytt hands out (the check, the report, the account-list
//! template): `;` between cells, a UTF-8 byte order mark and CRLF line ends, which is what Excel
//! with Swedish settings opens on a double click with å, ä, ö intact. Every cell is text from
//! somewhere else (a folder name on the old server, a login in the customer's spreadsheet), so a
//! cell that a spreadsheet program would take for a formula (starting with `=`, `+`, `-`, `@`, a tab
//! or a carriage return) is written with a leading `'`, which shows it as the text it is.

use std::borrow::Cow;

use anyhow::{Context, Result};

/// A cell as written: neutralised if a spreadsheet program would run it as a formula.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { Cow::Owned(format!("'{cell}")) } else { Cow::Borrowed(cell) }
}

/// The whole file: a header row and the data rows.
pub fn write<R, C>(rows: R) -> Result<Vec<u8>>
where
    R: IntoIterator<Item = C>,
    C: IntoIterator,
    C::Item: AsRef<str>,
{
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut writer = ::csv::WriterBuilder::new().delimiter(b';').terminator(::csv::Terminator::CRLF).from_writer(&mut out);
        for row in rows {
            let cells: Vec<String> = row.into_iter().map(|c| neutralize(c.as_ref()).into_owned()).collect();
            writer.write_record(&cells).context("writing a CSV row")?;
        }
        writer.flush().context("writing the CSV file")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_written_as_text() {
        for (cell, written) in [
            ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
            ("+SUM(1+1)", "'+SUM(1+1)"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("Kunder/Åre", "Kunder/Åre"),
            ("a=b", "a=b"),
            ("", ""),
            ("12", "12"),
        ] {
            assert_eq!(neutralize(cell), written);
        }
    }

    #[test]
    fn files_open_in_swedish_excel() {
        let bytes = write([vec!["konto", "mapp"], vec!["=1+1", "a;b \"c\""], vec!["alice@kund.se", "Kunder/Åre"]]).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text, "\u{feff}konto;mapp\r\n'=1+1;\"a;b \"\"c\"\"\"\r\nalice@kund.se;Kunder/Åre\r\n");
    }
}
