//! Zip archives: deciding what one is by its entries (an .xlsx or .ods workbook, a file postflytt
//! refuses with advice, or the customer's own .zip holding the list), checking its declared entry
//! count and unpacked size before anything is unpacked, and picking the one list out of a .zip.

use std::io::{Cursor, Read, Seek};

use zip::ZipArchive;

use crate::secret::{Secret, wipe};

use super::ods_scan::check_ods_content;
use super::validate::shown;
use super::workbook::{ods_grid, read_workbook, sheet_label, xlsx_grid};
use super::{
    Import, ImportError, MAX_FILE_BYTES, MAX_UNZIPPED_BYTES, MAX_WORKBOOK_PARTS, MAX_ZIP_ENTRIES, extension, read_document, too_large,
};

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
pub(super) fn read_archive(name: &str, bytes: &[u8], in_zip: bool, zip_password: Option<&Secret>) -> Result<Import, ImportError> {
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
        ZipContent::Archive => read_zip(name, archive, zip_password),
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
    read_bounded(member, limit)
}

/// A member's bytes through `take`, stopping at `limit` whatever its header says.
fn read_bounded(member: impl Read, limit: u64) -> Result<Vec<u8>, String> {
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
fn read_zip(name: &str, mut archive: ZipArchive<Cursor<&[u8]>>, zip_password: Option<&Secret>) -> Result<Import, ImportError> {
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
    if size > MAX_FILE_BYTES {
        return Err(too_large(&label));
    }
    let bytes = match (encrypted, zip_password) {
        (false, _) => read_member_at(&mut archive, index, MAX_FILE_BYTES).map_err(|err| {
            ImportError::file(&label, format!("cannot unpack it from the zip ({err}); the zip may be damaged. Send it again"))
        })?,
        (true, None) => {
            return Err(ImportError::file(
                &label,
                "the zip archive is password-protected; give its password with --zip-password-file FILE \
                 (the API: header X-Zip-Password), or send it without one (the list is kept encrypted on the appliance)",
            ));
        }
        (true, Some(password)) => read_locked(&mut archive, index, password).map_err(|why| ImportError::file(&label, why))?,
    };
    let result = read_document(&label, &bytes, true, None);
    wipe(bytes);
    result
}

/// A password-protected member's bytes (AES-256/192/128 as 7-Zip and WinZip write it, or the old
/// ZipCrypto), through the zip crate. A wrong password is said so: AES checks it before anything is
/// read (and its HMAC after); ZipCrypto lets about one wrong password in 256 through its check, and
/// then the unpacked bytes fail their CRC.
fn read_locked<R: Read + Seek>(archive: &mut ZipArchive<R>, index: usize, password: &Secret) -> Result<Vec<u8>, String> {
    let wrong = "the password does not open the zip archive; check --zip-password-file (or the X-Zip-Password header) \
                 against the password the customer sent";
    let member = match archive.by_index_decrypt(index, password.expose().as_bytes()) {
        Ok(member) => member,
        Err(zip::result::ZipError::InvalidPassword) => return Err(wrong.to_string()),
        Err(err) => return Err(format!("cannot unpack it from the zip ({err}); the zip may be damaged. Send it again")),
    };
    read_bounded(member, MAX_FILE_BYTES).map_err(|err| {
        if err.contains("Invalid checksum") || err.contains("checksum") || err.contains("authentication") || err.contains("corrupt") {
            wrong.to_string()
        } else {
            format!("cannot unpack it from the zip ({err}); the password may be wrong, or the zip damaged")
        }
    })
}

/// Files a zip tool adds on its own: the Mac's resource forks under `__MACOSX/`, hidden files such
/// as `.DS_Store`, and the `~$` owner files Office leaves beside an open document.
fn is_clutter(member: &str) -> bool {
    member.starts_with("__MACOSX/") || member.split('/').any(|part| part.starts_with('.') || part.starts_with("~$"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::*;

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
        assert!(
            failure("k.zip", &archive)
                .to_string()
                .starts_with("k.zip/konton.csv: the zip archive is password-protected; give its password with --zip-password-file FILE"),
        );
    }

    #[test]
    fn an_aes_zip_opens_with_its_password_only() {
        use std::io::Write;
        let csv = "E-post;Lösenord\r\nanna@x.se;Sommar2024!\r\n".as_bytes();
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().with_aes_encryption(zip::AesMode::Aes256, "rätt lösen");
        writer.start_file("konton.csv", options).unwrap();
        writer.write_all(csv).unwrap();
        let archive = writer.finish().unwrap().into_inner();
        let open = |password: Option<&str>| {
            let password = password.map(|p| Secret::new(p.to_string()));
            crate::import::import_locked("k.zip", &archive, crate::import::SourceAuth::Password, password.as_ref())
        };
        let import = open(Some("rätt lösen")).unwrap();
        assert_eq!(import.accounts[0].source_password.expose(), "Sommar2024!");
        let wrong = open(Some("fel lösen")).unwrap_err().to_string();
        assert!(wrong.starts_with("k.zip/konton.csv: the password does not open the zip archive"), "{wrong}");
        assert!(open(None).unwrap_err().to_string().contains("password-protected"));
    }
}
