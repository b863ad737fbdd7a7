//! The operator's folder choice against real Dovecot (issue 18): folders left out by `setup
//! --exclude-folder`, by the account list's "Exkludera mappar" column, by default on a source whose
//! greeting names Kerio Connect (Calendar, Kontakter: not mail; quirk `shows_groupware_folders`) and as
//! a shared namespace (a Dovecot public namespace, which NAMESPACE reports in its
//! shared part), one default taken back with `--include-folder`, a `--map-folder` override whose child
//! follows it; each left-out folder listed with its reason by `folders` and the check (and not counted
//! in the check's totals); the target read back with our own reader holding exactly the folders
//! expected; bad patterns refused with the CLI's sentence; the choice refused once mail is copied; and
//! a folder already copied never left out by a default afterwards. On a plain Dovecot old host with
//! the `INBOX.` prefix: its own Kontakter and Notes move, a wildcard never matches the prefix, a
//! left-out folder it cannot open costs the check nothing, and a refused setup changes no folder choice.

mod common;
mod driver;

use std::collections::BTreeSet;

use common::fixture;
use common::{Dovecot, DovecotOptions, Layout};
use driver::{Migration, Via};

#[test]
fn folders_left_out_mapped_and_listed_with_their_reasons() {
    let public = common::fresh_dir("pf-public");
    std::fs::create_dir_all(&public).expect("public dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o777)).expect("chmod public");
    }
    // A Dovecot that greets as Kerio Connect does, which shows calendars and contacts as folders.
    let extra = format!(
        "login_greeting = Kerio Connect 9.4.1 IMAP4rev1 server ready\nnamespace public {{\n  type = public\n  separator = /\n  prefix = Public/\n  location = maildir:{}:LAYOUT=fs\n  \
         list = yes\n  subscriptions = no\n}}\n",
        public.display()
    );
    let source = Dovecot::start_with(
        Layout::Modern,
        &[("anna@gammal.se", "pw")],
        DovecotOptions { extra_config: extra, ..DovecotOptions::default() },
    );
    let target = Dovecot::start(Layout::Target, &[("anna@ny.se", "pw")]);
    let mut r = source.reader("anna@gammal.se");
    let folders = [
        "Kunder",
        "Kunder/Åre",
        "Calendar",
        "Calendar/Födelsedagar",
        "Kontakter",
        "Notes",
        "Gammalt",
        "Gammalt/2019",
        "Privat",
        "Projekt",
        "Projekt/Alfa",
        "Public/Allmant",
    ];
    fixture::ensure_folders(&mut r, &folders);
    for (seed, folder) in (1..).zip(std::iter::once("INBOX").chain(folders)) {
        fixture::load(&mut r, &fixture::bulk(folder, 1, seed, 1000..2000));
    }
    drop(r);

    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[]);
    let list = m.data.join("konton.csv");
    std::fs::write(
        &list,
        "E-post;Lösenord;Ny inloggning;Nytt lösenord;Exkludera mappar\r\nanna@gammal.se;pw;anna@ny.se;pw;Privat, Skräp/*\r\n",
    )
    .expect("write the account list");
    m.ok(&["import", list.to_str().expect("utf-8 path")]);

    // Bad patterns: refused with a sentence, nothing stored.
    for (args, words) in [
        (vec!["--exclude-folder", ""], "--exclude-folder: a folder pattern is empty"),
        (vec!["--exclude-folder", "a//b"], "has an empty level"),
        (vec!["--exclude-folder", "/."], "is only separators"),
        (vec!["--map-folder", "Projekt"], "has no '='"),
        (vec!["--map-folder", "A=X", "--map-folder", "B=x"], "would put two source folders into one target folder"),
    ] {
        let out = m.run(&[vec!["setup"], args.clone()].concat());
        let text = driver::text(&out);
        assert!(!out.status.success() && text.contains(words), "{args:?}:\n{text}");
    }

    let set = m.ok(&["setup", "--exclude-folder", "Gamm*", "--include-folder", "Notes", "--map-folder", "Projekt=Arkiv/Projekt"]);
    assert!(set.contains("folders: left out Gamm*; taken back Notes; mapped Projekt=Arkiv/Projekt"), "{set}");

    let shown = m.ok(&["folders", "anna@gammal.se"]);
    for line in [
        "Projekt      -> Arkiv/Projekt",
        "(operator's mapping)",
        "Projekt/Alfa -> Arkiv/Projekt/Alfa",
        "left out (8):",
        "Calendar               (not mail: 'Calendar'",
        "Calendar/Födelsedagar  (not mail: 'Calendar'",
        "Kontakter              (not mail: 'Kontakter'",
        "Gammalt/2019           (left out by the operator's pattern 'Gamm*')",
        "Privat                 (left out by the account list's pattern 'Privat')",
        "Public/Allmant         (a shared folder (namespace 'Public/'",
    ] {
        assert!(shown.contains(line), "{line:?} is not in:\n{shown}");
    }
    assert!(shown.contains("Notes") && !shown.contains("Notes  (not mail"), "Notes is taken back:\n{shown}");

    // The check lists them with how much they hold, and counts only what moves (INBOX, Kunder,
    // Kunder/Åre, Notes, Projekt, Projekt/Alfa: 6 messages).
    let checked = m.ok(&["check"]);
    assert!(checked.contains("    6 messages,"), "{checked}");
    assert!(checked.contains("left out: Kontakter") && checked.contains("1 msgs"), "{checked}");
    assert!(checked.contains("(a shared folder (namespace 'Public/'"), "{checked}");

    m.sync();
    let mut t = target.reader("anna@ny.se");
    let on_target: BTreeSet<String> = t.folders().into_iter().collect();
    let want: BTreeSet<String> =
        ["INBOX", "Kunder", "Kunder/Åre", "Notes", "Arkiv/Projekt", "Arkiv/Projekt/Alfa"].iter().map(|s| s.to_string()).collect();
    assert_eq!(on_target.difference(&BTreeSet::from(["Arkiv".to_string()])).cloned().collect::<BTreeSet<_>>(), want);
    for folder in &want {
        assert_eq!(t.status(folder).messages, 1, "{folder}");
    }
    let all: Vec<String> = t.list().into_iter().map(|e| e.name).collect();
    for left_out in ["Calendar", "Kontakter", "Gammalt", "Privat", "Public", "Projekt"] {
        assert!(!all.iter().any(|n| n.starts_with(left_out)), "{left_out} is on the target: {all:?}");
    }
    drop(t);

    // After mail was copied the choice is fixed: refused with the reason, the list's change kept out.
    let out = m.run(&["setup", "--exclude-folder", "Kunder"]);
    let text = driver::text(&out);
    assert!(
        !out.status.success() && text.contains("the folder choice cannot change now: anna@gammal.se already had mail copied"),
        "{text}"
    );
    std::fs::write(&list, "E-post;Lösenord;Ny inloggning;Nytt lösenord;Exclude folders\r\nanna@gammal.se;pw;anna@ny.se;pw;Kunder\r\n")
        .expect("write the account list");
    let imported = m.ok(&["import", list.to_str().expect("utf-8 path")]);
    assert!(imported.contains("anna@gammal.se: the folders to leave out were kept as they were (Privat, Skräp/*)"), "{imported}");

    // A left-out folder deleted on the old server, and another changed there: mirroring does not
    // take them for anything, and a second pass leaves the target as it was.
    let mut r = source.reader("anna@gammal.se");
    r.delete("Kontakter");
    fixture::load(&mut r, &fixture::bulk("Privat", 1, 99, 1000..2000));
    drop(r);
    let again = m.sync();
    assert!(again.contains("0 appended") && !again.contains("removed"), "{again}");
    let mut t = target.reader("anna@ny.se");
    let after: BTreeSet<String> = t.folders().into_iter().collect();
    assert_eq!(after, on_target);
    for folder in &want {
        assert_eq!(t.status(folder).messages, 1, "{folder}");
    }

    drop(t);

    // A migration begun before Notes was left out by default (here: the include taken out behind
    // postflytt's back): Notes has copies, so no default leaves it out now and its new mail moves.
    let db = rusqlite::Connection::open(m.data.join("postflytt.sqlite")).expect("open the database");
    db.execute("DELETE FROM setting WHERE key = 'folders.include'", []).expect("forget the include");
    drop(db);
    let shown = m.ok(&["folders", "anna@gammal.se"]);
    assert!(!shown.lines().any(|l| l.trim_start().starts_with("Notes ") && l.contains("not mail")), "{shown}");
    let mut r = source.reader("anna@gammal.se");
    fixture::load(&mut r, &fixture::bulk("Notes", 1, 77, 1000..2000));
    drop(r);
    let third = m.sync();
    assert!(third.contains("1 appended"), "{third}");
    assert_eq!(target.reader("anna@ny.se").status("Notes").messages, 2);
}

#[test]
fn an_old_plain_dovecot_keeps_its_own_folders_and_wildcards_never_match_its_prefix() {
    let source = Dovecot::start(Layout::OldHost, &[("bo@gammal.se", "pw")]);
    let target = Dovecot::start(Layout::Target, &[("bo@ny.se", "pw")]);
    let mut r = source.reader("bo@gammal.se");
    let folders = ["INBOX.Kunder", "INBOX.2019", "INBOX.Arkiv", "INBOX.Arkiv.2019", "INBOX.Kontakter", "INBOX.Notes"];
    fixture::ensure_folders(&mut r, &folders);
    for (seed, folder) in (1..).zip(std::iter::once("INBOX").chain(folders)) {
        fixture::load(&mut r, &fixture::bulk(folder, 1, seed, 1000..2000));
    }
    drop(r);
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &[("bo@gammal.se", "pw", "bo@ny.se", "pw")]);

    // A setup refused for another reason (an admin login without its password) stores no folder choice.
    let out = m.run(&["setup", "--include-folder", "Kunder", "--source-admin", "admin", "--source-admin-password-file", "/nonexistent/pw"]);
    assert!(!out.status.success(), "{}", driver::text(&out));
    let set = m.ok(&["setup", "--exclude-folder", "In*", "--exclude-folder", "*/2019", "--exclude-folder", "INBOX/Arkiv"]);
    assert!(set.contains("folders: left out In*, */2019, INBOX/Arkiv; taken back none;"), "{set}");

    // `In*` and `*/2019` name no folder through the `INBOX.` prefix (only INBOX.Arkiv.2019 under it);
    // INBOX/Arkiv names INBOX.Arkiv. Kontakter and Notes are this user's mail: Dovecot shows no
    // calendars or contacts as folders.
    let shown = m.ok(&["folders", "bo@gammal.se"]);
    assert!(shown.contains("left out (2):"), "{shown}");
    assert!(shown.contains("INBOX.Arkiv       (left out by the operator's pattern 'INBOX/Arkiv')"), "{shown}");
    assert!(shown.contains("INBOX.Arkiv.2019  (left out by the operator's pattern"), "{shown}");

    // The left-out INBOX.Arkiv made unreadable (its maildir, named by the mailbox's GUID here): the
    // check counts it by STATUS or not at all, and the account's count stays whole.
    let guid = source.doveadm_ok(&["mailbox", "status", "-u", "bo@gammal.se", "guid", "INBOX.Arkiv"]);
    let guid = guid.split("guid=").nth(1).expect("doveadm names the GUID").trim().to_string();
    let arkiv = source.home("bo@gammal.se").join("Maildir").join(guid);
    let mode = |m| std::fs::set_permissions(&arkiv, std::os::unix::fs::PermissionsExt::from_mode(m)).expect("chmod");
    mode(0o000);
    let checked = m.ok(&["check"]);
    mode(0o700);
    assert!(checked.contains("    5 messages,") && !checked.contains("at least"), "{checked}");
    assert!(checked.contains("left out: INBOX.Arkiv "), "{checked}");
    // Dovecot 2.3 offers STATUS=SIZE, so the readable left-out folder's size is known.
    let line = checked.lines().find(|l| l.contains("left out: INBOX.Arkiv.2019")).unwrap_or_default();
    assert!(line.contains(" 1 msgs ") && line.contains("KB") && !line.contains("size unknown"), "{checked}");
    assert!(!checked.lines().any(|l| l.trim_start().starts_with("INBOX.Arkiv") && l.contains(" -> ")), "{checked}");

    m.sync();
    let mut t = target.reader("bo@ny.se");
    let on_target: BTreeSet<String> = t.folders().into_iter().collect();
    let want: BTreeSet<String> = ["INBOX", "Kunder", "2019", "Kontakter", "Notes"].iter().map(|s| s.to_string()).collect();
    assert_eq!(on_target, want);
    for folder in &want {
        assert_eq!(t.status(folder).messages, 1, "{folder}");
    }
}
