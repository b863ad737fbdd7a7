//! The customer's account list through `postflytt import`, from files a real spreadsheet program wrote
//! (kept in tests/fixtures: an .xlsx saved by LibreOffice Calc with a password stored as a number, the
//! same sheet saved as a Swedish-Excel style `;` CSV in Windows-1252, and a zip holding the .xlsx in a
//! folder), and broken files that must each get a clear error naming the row and column, never the
//! password, and change nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn postflytt(data: &Path, args: &[&str]) -> Output {
    std::process::Command::new(common::postflytt_bin()).arg("--data").arg(data).args(args).output().expect("run postflytt")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn files_from_real_spreadsheet_programs() {
    for name in ["konton-libreoffice.xlsx", "konton-excel-sv-1252.csv", "konton-zippat.zip"] {
        let data = common::fresh_dir("pf-import");
        let path = fixture(name);
        let out = postflytt(&data, &["import", path.to_str().expect("utf-8")]);
        let t = text(&out);
        assert!(out.status.success(), "{name}:\n{t}");
        assert!(t.contains("3 accounts added"), "{name}:\n{t}");
        let status = text(&postflytt(&data, &["status"]));
        for line in ["anna.ek@kund.se -> anna.ek@kund.se", "björn@kund.se -> bjorn@kund.se", "Åsa.Öberg@kund.se -> Åsa.Öberg@kund.se"]
        {
            assert!(status.contains(line), "{name}: {line:?} missing in:\n{status}");
        }
        for password in ["Sommar2024!", "Vinter2025#", "123456", "nytt-lösen"] {
            assert!(!t.contains(password) && !status.contains(password), "{name}: a password was shown:\n{t}\n{status}");
        }
        // Importing the same file again updates, never duplicates.
        let again = text(&postflytt(&data, &["import", path.to_str().expect("utf-8")]));
        assert!(again.contains("0 accounts added, 3 updated"), "{name}:\n{again}");
        let _ = std::fs::remove_dir_all(&data);
    }
}

#[test]
fn broken_files_get_clear_errors_and_change_nothing() {
    let dir = common::fresh_dir("pf-import-broken");
    let data = dir.join("data");
    let cases: [(&str, &[u8], &[&str]); 6] = [
        ("saknar-kolumn.csv", b"E-post;Alias\r\na@kund.se;b@kund.se\r\n", &["column", "Lösenord"]),
        ("tomma-celler.csv", "E-post;Lösenord\r\na@kund.se;\r\n;hemligt1\r\n".as_bytes(), &["row 2", "row 3", "empty"]),
        ("dubbletter.csv", "E-post;Lösenord\r\na@kund.se;hemligt1\r\nA@kund.se;hemligt2\r\n".as_bytes(), &["row 3", "row 2", "also on"]),
        ("skrap.csv", &[0u8, 159, 146, 150, 255, 254, 0, 1, 2, 3, 0, 0], &["skrap.csv"]),
        ("inte-en-zip.xlsx", b"this is not a zip at all, just text pretending to be a workbook", &["inte-en-zip.xlsx", "not one"]),
        ("fel-adress.csv", "E-post;Lösenord\r\nnot an address@;hemligt3\r\n".as_bytes(), &["row 2", "E-post"]),
    ];
    for (name, bytes, wanted) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let out = postflytt(&data, &["import", path.to_str().expect("utf-8")]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name} must be refused:\n{t}");
        assert!(!t.contains("panicked"), "{name}: a panic instead of an error:\n{t}");
        for w in wanted {
            assert!(t.contains(w), "{name}: the error should mention {w:?}:\n{t}");
        }
        for secret in ["hemligt1", "hemligt2", "hemligt3"] {
            assert!(!t.contains(secret), "{name}: a password was shown:\n{t}");
        }
    }
    // Nothing was imported by any of them.
    let status = text(&postflytt(&data, &["status"]));
    assert!(!status.contains("@kund.se"), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A password-protected zip as customers send it (issue 18): AES-256 written by 7-Zip 26.02
/// (`7zz a -tzip -mem=AES256`), and the old ZipCrypto written by Info-ZIP's `zip -P`, both holding
/// the LibreOffice workbook. The right password (from a file, spaces kept) imports the list; a wrong
/// one and none are refused with a sentence that names neither the password nor anything in the
/// list, and store nothing.
#[test]
fn password_protected_zips_open_with_the_password_file() {
    let password = "Kund-Losen 2026!";
    for name in ["konton-aes256.zip", "konton-zipcrypto.zip"] {
        let data = common::fresh_dir("pf-import-zip");
        std::fs::create_dir_all(&data).expect("data dir");
        let path = fixture(name);
        let list = path.to_str().expect("utf-8");

        let out = postflytt(&data, &["import", list]);
        assert!(!out.status.success(), "{name}: taken without its password");
        let t = text(&out);
        assert!(
            t.contains(&format!(
                "{name}/konton.xlsx: the zip archive is password-protected; give its password with --zip-password-file FILE"
            )),
            "{name}:\n{t}"
        );

        let wrong = data.join("wrong-password");
        std::fs::write(&wrong, "Kund-Losen 2025!\n").expect("write");
        let out = postflytt(&data, &["import", list, "--zip-password-file", wrong.to_str().expect("utf-8")]);
        let t = text(&out);
        assert!(!out.status.success(), "{name}: taken with a wrong password:\n{t}");
        assert!(t.contains("the password does not open the zip archive") || t.contains("the password may be wrong"), "{name}:\n{t}");
        assert!(!t.contains("Kund-Losen") && !t.contains("Sommar2024!"), "{name}: a secret was shown:\n{t}");
        assert!(!text(&postflytt(&data, &["status"])).contains("anna.ek@kund.se"), "{name}: a refused import stored accounts");

        let right = data.join("zip-password");
        std::fs::write(&right, format!("{password}\n")).expect("write");
        let out = postflytt(&data, &["import", list, "--zip-password-file", right.to_str().expect("utf-8")]);
        let t = text(&out);
        assert!(out.status.success() && t.contains("3 accounts added"), "{name}:\n{t}");
        assert!(!t.contains(password) && !t.contains("Sommar2024!"), "{name}: a secret was shown:\n{t}");
        let status = text(&postflytt(&data, &["status"]));
        assert!(status.contains("björn@kund.se -> bjorn@kund.se"), "{name}:\n{status}");
        let _ = std::fs::remove_dir_all(&data);
    }
}
