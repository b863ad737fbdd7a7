//! What the import tests share: short ways to import a text or bytes and get the accounts or the
//! problems, and builders for the workbooks, zips and .ods files the tests feed in.

use super::*;

pub(crate) const PASSWORDS: [&str; 6] = ["Sommar2024!", "Vinter#99", "hemligt;med\nradbrytning", "Pw3", "Pw4", "Pw5"];

pub(crate) fn import(name: &str, text: &str) -> Result<Import, ImportError> {
    import_bytes(name, text.as_bytes())
}

pub(crate) fn accounts(name: &str, text: &str) -> Vec<AccountRow> {
    match import(name, text) {
        Ok(import) => import.accounts,
        Err(err) => panic!("import failed:\n{err}"),
    }
}

pub(crate) fn problems(text: &str) -> ImportError {
    match import("accounts.csv", text) {
        Ok(import) => panic!("import should fail, got {:?}", import.accounts),
        Err(err) => err,
    }
}

/// The error must mention every fragment, and no password from the list.
pub(crate) fn assert_error(err: &ImportError, line: &str) {
    let text = err.to_string();
    assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
    for password in PASSWORDS {
        assert!(!text.contains(password), "password {password:?} leaked into:\n{text}");
    }
}

pub(crate) fn windows_1252(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            '’' => 0x92,
            c if (c as u32) < 0x100 => c as u32 as u8,
            c => panic!("{c} not in test encoder"),
        })
        .collect()
}

pub(crate) use crate::export::xlsx::{Cell, Sheet, parts, write_xlsx, zip_files};

pub(crate) fn xlsx(sheets: &[Sheet]) -> Vec<u8> {
    write_xlsx(sheets).unwrap()
}

pub(crate) fn sheet(name: &str, rows: &[&[&str]]) -> Sheet {
    Sheet::text(name, rows, false)
}

pub(crate) fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    zip_files(files).unwrap()
}

/// A one-sheet workbook ("Blad1") whose sheet XML is `sheet_data` inside `<worksheet>`, and whose
/// styles are `styles` if given.
pub(crate) fn raw_xlsx(sheet_data: &str, styles: Option<&str>) -> Vec<u8> {
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

pub(crate) fn failure(name: &str, bytes: &[u8]) -> ImportError {
    match import_bytes(name, bytes) {
        Ok(import) => panic!("{name} should fail, got {:?}", import.accounts),
        Err(err) => err,
    }
}

pub(crate) fn success(name: &str, bytes: &[u8]) -> Import {
    match import_bytes(name, bytes) {
        Ok(import) => import,
        Err(err) => panic!("{name} should import:\n{err}"),
    }
}

/// The positions of every local and central header in a zip the tests wrote (no comment, no
/// data descriptors), with whether it is a central one.
pub(crate) fn zip_headers(zip: &[u8]) -> Vec<(usize, bool)> {
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
pub(crate) fn declare_size(zip: &mut [u8], size: u32) {
    for (at, central) in zip_headers(zip) {
        let field = at + if central { 24 } else { 22 };
        zip[field..field + 4].copy_from_slice(&size.to_le_bytes());
    }
}

pub(crate) fn strings(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

pub(crate) const ODS_MANIFEST: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
    <manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" \
    manifest:version=\"1.2\"><manifest:file-entry manifest:full-path=\"/\" \
    manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/>\
    <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
    </manifest:manifest>";

pub(crate) fn ods_content(tables: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-content \
         xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
         xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
         xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" office:version=\"1.2\">\
         <office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>\
         </office:document-content>"
    )
}

pub(crate) fn ods(tables: &str) -> Vec<u8> {
    zip(&[
        ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", ODS_MANIFEST),
        ("content.xml", ods_content(tables).as_bytes()),
    ])
}

pub(crate) fn ods_text(text: &str) -> String {
    format!("<table:table-cell office:value-type=\"string\"><text:p>{text}</text:p></table:table-cell>")
}

/// A LibreOffice-style sheet: the data, then the rest of the sheet as repeated blank cells and rows.
pub(crate) fn ods_sheet(name: &str, rows: &[String]) -> String {
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

/// Runs an import on its own thread and fails the test if it has not finished in 20 seconds.
pub(crate) fn import_in_time(name: &'static str, bytes: Vec<u8>) -> Result<Import, ImportError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(import_bytes(name, &bytes)));
    match receiver.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(result) => result,
        Err(_) => panic!("importing {name} hangs"),
    }
}
