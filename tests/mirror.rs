//! Users keep working on the old server while passes run (issue 17). Until their account is switched,
//! the target follows what they do to the mail postflytt put there: a message filed into another
//! folder is moved on the target (the same copy: Dovecot's GUID proves it was not appended again), a
//! deleted one is removed, a renamed folder is renamed (its UIDVALIDITY and UIDs kept), a deleted
//! folder goes unless the target folder also holds other mail. Mail that reached the target another
//! way is never touched, even when an identical message is deleted or moved on the old server. After
//! `postflytt switched` or with `setup --mirror off`, nothing is moved or removed on the target any more.
//! Every scenario runs old-host Dovecot to target Dovecot, read back with the tests' own IMAP reader.

mod common;
mod driver;

use std::collections::{BTreeMap, BTreeSet};

use common::fixture::{self, FixtureMsg, SnapMsg, Snapshot};
use common::{Dovecot, DovecotOptions, ImapReader, Layout};
use driver::{Migration, Via, appended, hard_case_name_map};

fn src_login(name: &str) -> String {
    format!("{name}@gammal.se")
}

fn tgt_login(name: &str) -> String {
    format!("{name}@ny.se")
}

fn password(name: &str) -> String {
    format!("pw-{name}")
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect()
}

/// An old host and a target with the named users, and one migration of them all.
struct Setup {
    source: Dovecot,
    target: Dovecot,
    m: Migration,
}

fn start(names: &[&str]) -> Setup {
    start_with(names, DovecotOptions::default(), DovecotOptions::default())
}

fn start_with(names: &[&str], source_opts: DovecotOptions, target_opts: DovecotOptions) -> Setup {
    let side = |login: fn(&str) -> String| -> Vec<(String, String)> { names.iter().map(|n| (login(n), password(n))).collect() };
    let (src_users, tgt_users) = (side(src_login), side(tgt_login));
    let source = Dovecot::start_with(Layout::OldHost, &refs(&src_users), source_opts);
    let target = Dovecot::start_with(Layout::Target, &refs(&tgt_users), target_opts);
    let accounts: Vec<(&str, &str, &str, &str)> =
        src_users.iter().zip(&tgt_users).map(|((sl, sp), (tl, tp))| (sl.as_str(), sp.as_str(), tl.as_str(), tp.as_str())).collect();
    let m = Migration::new(&source, Via::Plain, &target, Via::Plain, &accounts);
    Setup { source, target, m }
}

impl Setup {
    fn src(&self, name: &str) -> ImapReader {
        self.source.reader(&src_login(name))
    }

    fn tgt(&self, name: &str) -> ImapReader {
        self.target.reader(&tgt_login(name))
    }

    /// Creates the folders (parents first) and loads the messages on the source.
    fn load(&self, name: &str, folders: &[&str], msgs: &[Vec<FixtureMsg>]) {
        let mut r = self.src(name);
        fixture::ensure_folders(&mut r, folders);
        fixture::load(&mut r, &msgs.concat());
    }
}

fn snapshot(server: &Dovecot, user: &str) -> Snapshot {
    fixture::mailbox_snapshot(&mut server.reader(user))
}

/// Where INBOX.Arkiv goes on the target.
const ARCHIVE: &str = "Archive";

/// The source's mail under the target names postflytt gives its folders.
fn source_as_target(s: &Setup, name: &str) -> Snapshot {
    let src = snapshot(&s.source, &src_login(name));
    let names: Vec<String> = src.keys().cloned().collect();
    let mut map = hard_case_name_map(Layout::OldHost, &names);
    // The target declares `\Archive` on Archive, and Arkiv is one of its names in postflytt's rules.
    if let Some(archive) = map.get_mut("INBOX.Arkiv") {
        *archive = ARCHIVE.to_string();
    }
    src.into_iter().map(|(folder, msgs)| (map[&folder].clone(), msgs)).collect()
}

/// What differs between the target and `expected` (target folder names): folder by folder the
/// messages, bodies, flags and dates, no copy too many; and no folder on the target that `expected`
/// lacks.
fn differences(s: &Setup, name: &str, expected: &Snapshot) -> Vec<String> {
    let tgt = snapshot(&s.target, &tgt_login(name));
    let mut problems = fixture::diff_mail(expected, &tgt, &BTreeMap::new());
    for folder in tgt.keys().filter(|f| !expected.contains_key(*f)) {
        problems.push(format!("folder {folder:?}: on the target, not on the source"));
    }
    problems
}

/// The target equals the source exactly, plus `foreign` (target folder to the messages that reached
/// the target another way).
fn assert_mirrored(s: &Setup, name: &str, foreign: &Snapshot, when: &str) {
    let mut expected = source_as_target(s, name);
    for (folder, msgs) in foreign {
        expected.entry(folder.clone()).or_default().extend(msgs.iter().cloned());
    }
    let problems = differences(s, name, &expected);
    assert!(problems.is_empty(), "{name}'s target {when} is not the source's mail exactly:\n  {}", problems.join("\n  "));
}

/// The Message-ID the bulk fixture gives message `i` of `seed`.
fn bulk_id(seed: u64, i: usize) -> String {
    format!("<bulk-{seed}-{i}@postflytt.test>")
}

/// UIDs in `folder` of the messages with these Message-IDs, in the order of `ids`.
fn uids_of(r: &mut ImapReader, folder: &str, ids: &[String]) -> Vec<u32> {
    let msgs = r.fetch_all(folder);
    ids.iter()
        .map(|id| {
            msgs.iter()
                .find(|m| fixture::header_value(&m.body, "Message-ID").as_deref() == Some(id))
                .unwrap_or_else(|| panic!("no {id} in {folder}"))
                .uid
        })
        .collect()
}

/// The line a pass prints for one account.
fn account_line<'a>(out: &'a str, name: &str) -> &'a str {
    let head = format!("{}: ", src_login(name));
    out.lines().find(|l| l.starts_with(&head) && l.contains(" appended")).unwrap_or_else(|| panic!("no line for {name} in:\n{out}"))
}

/// A message put on the target by someone else (the test), read back as the target serves it.
fn put_on_target(tr: &mut ImapReader, folder: &str, flags: &BTreeSet<String>, date: &str, body: &[u8]) -> (u32, SnapMsg) {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let uid = tr.append(folder, &flags, Some(date), body);
    let m = tr.fetch_uid(folder, uid).expect("the appended message is there");
    (uid, SnapMsg { flags: m.flags, internal_date: m.internal_date, body: m.body })
}

/// Dovecot's GUID of every message in `folder` by body: a copy MOVEd keeps it, one appended anew does not.
fn guids_by_body(tr: &mut ImapReader, folder: &str) -> BTreeMap<Vec<u8>, String> {
    let guids = tr.guids(folder);
    tr.fetch_all(folder).into_iter().map(|m| (m.body, guids[&m.uid].clone())).collect()
}

/// UIDVALIDITY and UIDs of a target folder: a renamed folder keeps both, a copy of one does not.
fn identity(tr: &mut ImapReader, folder: &str) -> (u32, Vec<u32>) {
    let uidvalidity = tr.status(folder).uidvalidity;
    (uidvalidity, tr.fetch_all(folder).into_iter().map(|m| m.uid).collect())
}

/// The commands of the sessions that began after `before` (Dovecot's rawlog), once each has logged
/// out: the imap process may still be writing its log when postflytt has exited.
fn sessions_since(server: &Dovecot, before: &BTreeSet<String>) -> Vec<Vec<String>> {
    let started = std::time::Instant::now();
    loop {
        let sessions: Vec<Vec<String>> =
            server.imap_commands().into_iter().filter(|(name, _)| !before.contains(name)).map(|(_, c)| c).collect();
        let ended = sessions.iter().all(|commands| commands.iter().any(|c| c.ends_with(" LOGOUT")));
        if (ended && !sessions.is_empty()) || started.elapsed() > std::time::Duration::from_secs(5) {
            return sessions;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn two_accounts_file_and_delete_mail_and_the_next_pass_follows_them() {
    // The measurement: 10 messages filed INBOX -> Arkiv and 5 deleted in Kunder per account.
    let names = ["anna", "bertil"];
    let s = start_with(&names, DovecotOptions { rawlog: true, ..DovecotOptions::default() }, DovecotOptions::default());
    for (k, name) in names.iter().enumerate() {
        let seed = 100 + 10 * k as u64;
        s.load(
            name,
            &["INBOX.Kunder", "INBOX.Arkiv"],
            &[
                fixture::bulk("INBOX", 25, seed, 300..4_000),
                fixture::bulk("INBOX.Kunder", 15, seed + 1, 300..4_000),
                fixture::bulk("INBOX.Arkiv", 3, seed + 2, 300..4_000),
            ],
        );
    }
    let out = s.m.sync();
    assert_eq!(appended(&out), 2 * 43, "{out}");
    for name in names {
        assert_mirrored(&s, name, &Snapshot::new(), "after the first pass");
    }

    // The target's INBOX copies by body with their Dovecot GUIDs, before the users file their mail.
    let mut inbox_guids: BTreeMap<&str, BTreeMap<Vec<u8>, String>> = BTreeMap::new();
    for name in names {
        let mut tr = s.tgt(name);
        let guids = tr.guids("INBOX");
        inbox_guids.insert(name, tr.fetch_all("INBOX").into_iter().map(|m| (m.body, guids[&m.uid].clone())).collect());
        let mut r = s.src(name);
        let inbox = r.fetch_all("INBOX");
        let filed: Vec<u32> = inbox[..10].iter().map(|m| m.uid).collect();
        let before = r.guids("INBOX");
        let pairs = r.move_uids("INBOX", &filed, "INBOX.Arkiv");
        // The premise of the GUID check below: a MOVE within one Dovecot keeps the message's GUID.
        let after = r.guids("INBOX.Arkiv");
        for (old, new) in &pairs {
            assert_eq!(before[old], after[new], "Dovecot gave a moved message a new GUID");
        }
        let kunder = r.fetch_all("INBOX.Kunder");
        let deleted: Vec<u32> = [0, 3, 6, 9, 12].iter().map(|&i| kunder[i].uid).collect();
        r.expunge_uids("INBOX.Kunder", &deleted);
    }

    let out = s.m.sync();
    assert_eq!(appended(&out), 0, "filed mail is moved on the target, not appended again:\n{out}");
    for name in names {
        let line = account_line(&out, name);
        assert!(line.contains("10 moved, 5 removed"), "{line}");
        assert_mirrored(&s, name, &Snapshot::new(), "after the users filed and deleted mail");
        // The ten copies in Arkiv are the very ones that were in INBOX (moved, not appended and expunged).
        let mut tr = s.tgt(name);
        let guids = tr.guids(ARCHIVE);
        let same: usize = tr
            .fetch_all(ARCHIVE)
            .iter()
            .filter(|m| {
                inbox_guids[name]
                    .get(&m.body)
                    .inspect(|g| assert_eq!(*g, &guids[&m.uid], "{name}: a copy in Arkiv was appended anew"))
                    .is_some()
            })
            .count();
        assert_eq!(same, 10, "{name}: the filed messages in Arkiv");
    }

    // Nothing changed since: nothing appended, moved or removed, and the old server is asked no more
    // than before mirroring (the one LIST brings every folder's counts: no folder opened or asked).
    let before: BTreeSet<String> = s.source.imap_commands().into_keys().collect();
    let out = s.m.sync();
    assert_eq!(appended(&out), 0, "{out}");
    assert!(!out.contains("followed the old server"), "{out}");
    let sessions = sessions_since(&s.source, &before);
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    let opened: Vec<&String> = sessions
        .iter()
        .flatten()
        .filter(|c| c.split(' ').nth(1).is_some_and(|v| ["SELECT", "EXAMINE", "STATUS"].contains(&v.to_ascii_uppercase().as_str())))
        .collect();
    assert!(opened.is_empty(), "an unchanged pass opened or asked folders: {opened:#?}");
    for name in names {
        assert_mirrored(&s, name, &Snapshot::new(), "after an unchanged pass");
    }
}

#[test]
fn a_renamed_folder_and_its_subfolder_are_renamed_on_the_target_with_their_uids() {
    let s = start(&["cecilia"]);
    s.load(
        "cecilia",
        &["INBOX.Projekt", "INBOX.Projekt.Norr", "INBOX.Kunder"],
        &[
            fixture::bulk("INBOX", 3, 200, 300..3_000),
            fixture::bulk("INBOX.Projekt", 6, 201, 300..3_000),
            fixture::bulk("INBOX.Projekt.Norr", 4, 202, 300..3_000),
            fixture::bulk("INBOX.Kunder", 3, 203, 300..3_000),
        ],
    );
    s.m.sync();
    assert_mirrored(&s, "cecilia", &Snapshot::new(), "after the first pass");
    let mut tr = s.tgt("cecilia");
    let (projekt, norr) = (identity(&mut tr, "Projekt"), identity(&mut tr, "Projekt/Norr"));
    drop(tr);

    // The user renames the folder; Dovecot keeps its UIDVALIDITY, and the subfolder goes with it.
    let mut r = s.src("cecilia");
    let uidvalidity = r.status("INBOX.Projekt").uidvalidity;
    r.rename("INBOX.Projekt", "INBOX.Avslutade projekt");
    assert_eq!(r.status("INBOX.Avslutade projekt").uidvalidity, uidvalidity);
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended_in_all(&out), 0, "{out}");
    assert!(account_line(&out, "cecilia").contains("renamed"), "{out}");
    let mut tr = s.tgt("cecilia");
    assert_eq!(identity(&mut tr, "Avslutade projekt"), projekt, "renamed, so UIDVALIDITY and UIDs are the old folder's");
    assert_eq!(identity(&mut tr, "Avslutade projekt/Norr"), norr, "the subfolder went with its parent");
    let left: Vec<String> = tr.list().into_iter().map(|e| e.name).filter(|n| n == "Projekt" || n.starts_with("Projekt/")).collect();
    assert!(left.is_empty(), "the old names are gone on the target: {left:?}");
    drop(tr);
    assert_mirrored(&s, "cecilia", &Snapshot::new(), "after the rename");

    // The subfolder alone, one level up.
    s.src("cecilia").rename("INBOX.Avslutade projekt.Norr", "INBOX.Norr");
    let out = s.m.sync();
    assert_eq!(appended_in_all(&out), 0, "{out}");
    assert_eq!(identity(&mut s.tgt("cecilia"), "Norr"), norr, "renamed again, still the same folder");
    assert_mirrored(&s, "cecilia", &Snapshot::new(), "after the subfolder's rename");
}

/// A renamed folder whose subfolder also lost a message meanwhile: the parent is renamed (the
/// subfolder goes along on the target), the subfolder does not match its old self any more, and still
/// its copies stay where the rename put them, only the deleted one leaves (found by the cold review:
/// the subfolder's target folder record kept its old name, so its copies could not be reached).
#[test]
fn a_renamed_folder_whose_subfolder_changed_meanwhile_keeps_the_subfolders_copies() {
    let s = start(&["cornelia"]);
    s.load(
        "cornelia",
        &["INBOX.Projekt", "INBOX.Projekt.Norr"],
        &[fixture::bulk("INBOX.Projekt", 4, 260, 300..3_000), fixture::bulk("INBOX.Projekt.Norr", 5, 261, 300..3_000)],
    );
    s.m.sync();
    let mut tr = s.tgt("cornelia");
    let (_, norr_uids) = identity(&mut tr, "Projekt/Norr");
    let norr_guids = guids_by_body(&mut tr, "Projekt/Norr");
    drop(tr);

    let mut r = s.src("cornelia");
    let first = r.fetch_all("INBOX.Projekt.Norr")[0].uid;
    r.expunge_uid("INBOX.Projekt.Norr", first);
    r.rename("INBOX.Projekt", "INBOX.Klart");
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended_in_all(&out), 0, "{out}");
    assert_mirrored(&s, "cornelia", &Snapshot::new(), "after the rename");
    let mut tr = s.tgt("cornelia");
    let (_, uids) = identity(&mut tr, "Klart/Norr");
    assert_eq!(uids, norr_uids[1..].to_vec(), "the subfolder's other copies are the ones the first pass made");
    let guids = guids_by_body(&mut tr, "Klart/Norr");
    assert!(guids.iter().all(|(body, guid)| norr_guids.get(body) == Some(guid)), "no copy was made again");
}

/// Messages appended in every pass whose output is in `out`.
fn appended_in_all(out: &str) -> u64 {
    out.lines().filter(|l| l.starts_with("pass done:")).map(appended).sum()
}

/// (UID, Message-ID) of each message in a target folder.
fn uids_and_ids(tr: &mut ImapReader, folder: &str) -> Vec<(u32, Option<String>)> {
    tr.fetch_all(folder).into_iter().map(|m| (m.uid, fixture::header_value(&m.body, "Message-ID"))).collect()
}

#[test]
fn a_renamed_folder_whose_target_folder_holds_other_mail_leaves_that_mail_where_it_is() {
    let s = start(&["cilla"]);
    s.load(
        "cilla",
        &["INBOX.Offerter"],
        &[fixture::bulk("INBOX", 2, 250, 300..3_000), fixture::bulk("INBOX.Offerter", 5, 251, 300..3_000)],
    );
    s.m.sync();
    let note = &fixture::bulk("Offerter", 1, 259, 500..2_000)[0];
    let (note_uid, note_copy) = put_on_target(&mut s.tgt("cilla"), "Offerter", &note.flags, &note.internal_date, &note.body);
    s.src("cilla").rename("INBOX.Offerter", "INBOX.Offerter 2026");
    let out = s.m.sync();
    // Whatever way the source's mail reaches "Offerter 2026", the other message keeps its folder and UID.
    let kept = uids_and_ids(&mut s.tgt("cilla"), "Offerter");
    assert_eq!(kept, [(note_uid, note_copy.header("Message-ID"))], "{out}");
    assert_mirrored(&s, "cilla", &[("Offerter".to_string(), vec![note_copy])].into(), "after the rename");
}

#[test]
fn a_deleted_folder_goes_on_the_target_unless_it_holds_other_mail() {
    let s = start(&["david"]);
    s.load(
        "david",
        &["INBOX.Gammalt", "INBOX.Nyhetsbrev"],
        &[
            fixture::bulk("INBOX", 2, 300, 300..3_000),
            fixture::bulk("INBOX.Gammalt", 4, 301, 300..3_000),
            fixture::bulk("INBOX.Nyhetsbrev", 3, 302, 300..3_000),
        ],
    );
    s.m.sync();
    assert_mirrored(&s, "david", &Snapshot::new(), "after the first pass");
    // A newsletter that reached the target's Nyhetsbrev another way.
    let letter = &fixture::bulk("Nyhetsbrev", 1, 309, 500..2_000)[0];
    let (letter_uid, letter_copy) = put_on_target(&mut s.tgt("david"), "Nyhetsbrev", &letter.flags, &letter.internal_date, &letter.body);

    let mut r = s.src("david");
    r.delete("INBOX.Gammalt");
    r.delete("INBOX.Nyhetsbrev");
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended_in_all(&out), 0, "{out}");
    assert!(out.contains("1 folders deleted") || out.contains("1 folder deleted"), "{out}");
    let mut tr = s.tgt("david");
    let folders: Vec<String> = tr.list().into_iter().map(|e| e.name).collect();
    assert!(!folders.contains(&"Gammalt".to_string()), "a folder of only our mail goes with the source's: {folders:?}\n{out}");
    let kept = uids_and_ids(&mut tr, "Nyhetsbrev");
    assert_eq!(kept, [(letter_uid, letter_copy.header("Message-ID"))], "Nyhetsbrev keeps only the message that came another way");
    drop(tr);
    assert_mirrored(&s, "david", &[("Nyhetsbrev".to_string(), vec![letter_copy])].into(), "after the folders were deleted");
}

#[test]
fn mail_taken_out_of_a_folder_before_it_is_deleted_is_moved_not_appended_again() {
    let s = start(&["dora"]);
    s.load("dora", &["INBOX.Gammalt"], &[fixture::bulk("INBOX", 2, 350, 300..3_000), fixture::bulk("INBOX.Gammalt", 4, 351, 300..3_000)]);
    s.m.sync();
    let gammalt = guids_by_body(&mut s.tgt("dora"), "Gammalt");
    // The user takes two messages out of Gammalt into INBOX, then deletes Gammalt.
    let mut r = s.src("dora");
    let taken: Vec<u32> = r.fetch_all("INBOX.Gammalt")[..2].iter().map(|m| m.uid).collect();
    r.move_uids("INBOX.Gammalt", &taken, "INBOX");
    r.delete("INBOX.Gammalt");
    drop(r);
    let out = s.m.sync();
    assert_mirrored(&s, "dora", &Snapshot::new(), "after the folder was deleted");
    let inbox = guids_by_body(&mut s.tgt("dora"), "INBOX");
    let moved = gammalt.iter().filter(|(body, guid)| inbox.get(*body) == Some(guid)).count();
    assert_eq!((moved, appended_in_all(&out)), (2, 0), "the two taken out are moved on the target, not appended again:\n{out}");
}

#[test]
fn moves_deletions_new_mail_and_flags_mixed_over_three_passes() {
    let s = start(&["eva"]);
    s.load(
        "eva",
        &["INBOX.Kunder", "INBOX.Arkiv"],
        &[
            fixture::bulk("INBOX", 12, 400, 300..3_000),
            fixture::bulk("INBOX.Kunder", 8, 401, 300..3_000),
            fixture::bulk("INBOX.Arkiv", 2, 402, 300..3_000),
        ],
    );
    s.m.sync();
    assert_mirrored(&s, "eva", &Snapshot::new(), "after the first pass");
    let first_copies = guids_by_body(&mut s.tgt("eva"), "INBOX");
    let (a, b, c, g, f, h) = (bulk_id(400, 0), bulk_id(400, 1), bulk_id(400, 2), bulk_id(400, 3), bulk_id(400, 4), bulk_id(400, 5));
    let (d, k) = (bulk_id(401, 0), bulk_id(401, 1));
    let new_mail = fixture::bulk("INBOX", 2, 403, 300..3_000);
    let n0 = bulk_id(403, 0);

    // Before the second pass: two filed into Kunder, one flagged, one deleted, new mail, one filed
    // into Arkiv and marked answered there.
    let mut r = s.src("eva");
    let ab = uids_of(&mut r, "INBOX", &[a.clone(), b.clone()]);
    r.move_uids("INBOX", &ab, "INBOX.Kunder");
    let cu = uids_of(&mut r, "INBOX", std::slice::from_ref(&c))[0];
    r.store_flags("INBOX", cu, "+FLAGS", &["\\Flagged", "$Viktigt"]);
    let du = uids_of(&mut r, "INBOX.Kunder", std::slice::from_ref(&d));
    r.expunge_uids("INBOX.Kunder", &du);
    fixture::load(&mut r, &new_mail);
    let gu = uids_of(&mut r, "INBOX", std::slice::from_ref(&g));
    let moved = r.move_uids("INBOX", &gu, "INBOX.Arkiv");
    r.store_flags("INBOX.Arkiv", moved[0].1, "+FLAGS", &["\\Answered"]);
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended(&out), 2, "only the new mail is appended:\n{out}");
    assert_mirrored(&s, "eva", &Snapshot::new(), "after the second pass");

    // Before the third: the filed one filed again, the other filed one deleted, last pass's new mail
    // filed, one filed into Arkiv and taken back, one from Kunder to INBOX, a flag taken off, new mail
    // straight into Arkiv, one filed into a folder made for it.
    let mut r = s.src("eva");
    r.create("INBOX.Leverantörer");
    let hu = uids_of(&mut r, "INBOX", std::slice::from_ref(&h));
    r.move_uids("INBOX", &hu, "INBOX.Leverantörer");
    let au = uids_of(&mut r, "INBOX.Kunder", std::slice::from_ref(&a));
    r.move_uids("INBOX.Kunder", &au, "INBOX.Arkiv");
    let bu = uids_of(&mut r, "INBOX.Kunder", std::slice::from_ref(&b));
    r.expunge_uids("INBOX.Kunder", &bu);
    let nu = uids_of(&mut r, "INBOX", std::slice::from_ref(&n0));
    r.move_uids("INBOX", &nu, "INBOX.Kunder");
    let fu = uids_of(&mut r, "INBOX", std::slice::from_ref(&f));
    let there = r.move_uids("INBOX", &fu, "INBOX.Arkiv");
    r.move_uids("INBOX.Arkiv", &[there[0].1], "INBOX");
    let ku = uids_of(&mut r, "INBOX.Kunder", std::slice::from_ref(&k));
    r.move_uids("INBOX.Kunder", &ku, "INBOX");
    let cu = uids_of(&mut r, "INBOX", std::slice::from_ref(&c))[0];
    r.store_flags("INBOX", cu, "-FLAGS", &["\\Flagged"]);
    fixture::load(&mut r, &fixture::bulk("INBOX.Arkiv", 1, 404, 300..3_000));
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended(&out), 1, "only the new mail is appended:\n{out}");
    assert_mirrored(&s, "eva", &Snapshot::new(), "after the third pass");
    // The copy filed twice and the one filed into the new folder are still the first pass's copies.
    let mut tr = s.tgt("eva");
    for (folder, id) in [(ARCHIVE, &a), ("Leverantörer", &h)] {
        let msgs = tr.fetch_all(folder);
        let body = &msgs.iter().find(|m| fixture::header_value(&m.body, "Message-ID").as_ref() == Some(id)).expect("filed message").body;
        assert_eq!(guids_by_body(&mut tr, folder).get(body), first_copies.get(body), "{id} in {folder}: moved, not appended anew");
    }
    drop(tr);

    let out = s.m.sync();
    assert_eq!(appended(&out), 0, "{out}");
    assert!(!out.contains("followed the old server"), "{out}");
    assert_mirrored(&s, "eva", &Snapshot::new(), "after an unchanged fourth pass");
}

#[test]
fn a_copy_that_reached_the_target_another_way_is_never_touched() {
    let s = start(&["fredrik"]);
    let kunder = fixture::bulk("INBOX.Kunder", 6, 501, 300..3_000);
    s.load("fredrik", &["INBOX.Kunder"], &[fixture::bulk("INBOX", 4, 500, 300..3_000), kunder.clone()]);
    let served = |i: usize| fixture::dovecot_served_form(&kunder[i].body);
    // Before the first pass another tool already put Kunder's third message on the target.
    let mut tr = s.tgt("fredrik");
    tr.create("Kunder");
    let (uid2, copy2) = put_on_target(&mut tr, "Kunder", &kunder[2].flags, &kunder[2].internal_date, &served(2));
    drop(tr);
    let out = s.m.sync();
    assert_eq!(appended(&out), 9, "the copy already there is found, not appended:\n{out}");
    assert_mirrored(&s, "fredrik", &Snapshot::new(), "after the first pass");

    // After it, byte-identical copies of the first two arrive on the target another way.
    let mut tr = s.tgt("fredrik");
    let (uid0, copy0) = put_on_target(&mut tr, "Kunder", &kunder[0].flags, &kunder[0].internal_date, &served(0));
    let (uid1, copy1) = put_on_target(&mut tr, "Kunder", &kunder[1].flags, &kunder[1].internal_date, &served(1));
    drop(tr);
    // The user deletes the first and the third, and files the second into INBOX.
    let mut r = s.src("fredrik");
    let ids: Vec<String> = [0, 1, 2].iter().map(|&i| bulk_id(501, i)).collect();
    let uids = uids_of(&mut r, "INBOX.Kunder", &ids);
    r.expunge_uids("INBOX.Kunder", &[uids[0], uids[2]]);
    r.move_uids("INBOX.Kunder", &[uids[1]], "INBOX");
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended(&out), 0, "{out}");

    let mut tr = s.tgt("fredrik");
    let now: BTreeMap<u32, Vec<u8>> = tr.fetch_all("Kunder").into_iter().map(|m| (m.uid, m.body)).collect();
    for (uid, copy) in [(uid0, &copy0), (uid1, &copy1), (uid2, &copy2)] {
        assert_eq!(now.get(&uid), Some(&copy.body), "the copy that came another way (UID {uid}) is still in Kunder, untouched");
    }
    drop(tr);
    assert_mirrored(&s, "fredrik", &[("Kunder".to_string(), vec![copy0, copy1, copy2])].into(), "after the deletions and the move");
}

/// Options for a Dovecot of `layout` that records its clients' commands and does not offer `left_out`
/// (its capabilities after login, read from a probe instance, set as `imap_capability` without them).
fn without(layout: Layout, left_out: &[&str]) -> DovecotOptions {
    let probe = Dovecot::start(layout, &[("probe@test", "pw")]);
    let caps = probe.reader("probe@test").capabilities();
    for cap in left_out {
        assert!(caps.contains(*cap), "{layout:?} Dovecot does not offer {cap} to begin with: {caps:?}");
    }
    let kept: Vec<&str> = caps.iter().map(String::as_str).filter(|c| !left_out.contains(c)).collect();
    DovecotOptions { rawlog: true, extra_config: format!("imap_capability = {}\n", kept.join(" ")), ..DovecotOptions::default() }
}

#[test]
fn without_move_on_the_target_and_qresync_on_the_source_the_same_is_followed() {
    // The target offers no MOVE (COPY, STORE \Deleted, UID EXPUNGE instead); the source no CONDSTORE
    // or QRESYNC (what went is found from its UIDs).
    let s = start_with(&["ingrid"], without(Layout::OldHost, &["CONDSTORE", "QRESYNC"]), without(Layout::Target, &["MOVE"]));
    assert!(!s.tgt("ingrid").capabilities().contains("MOVE"));
    s.load(
        "ingrid",
        &["INBOX.Kunder", "INBOX.Arkiv"],
        &[
            fixture::bulk("INBOX", 15, 700, 300..3_000),
            fixture::bulk("INBOX.Kunder", 10, 701, 300..3_000),
            fixture::bulk("INBOX.Arkiv", 2, 702, 300..3_000),
        ],
    );
    s.m.sync();
    assert_mirrored(&s, "ingrid", &Snapshot::new(), "after the first pass");
    let first = guids_by_body(&mut s.tgt("ingrid"), "INBOX");

    let mut r = s.src("ingrid");
    let inbox = r.fetch_all("INBOX");
    r.move_uids("INBOX", &inbox[..6].iter().map(|m| m.uid).collect::<Vec<_>>(), "INBOX.Arkiv");
    let kunder = r.fetch_all("INBOX.Kunder");
    r.expunge_uids("INBOX.Kunder", &[kunder[2].uid, kunder[4].uid, kunder[9].uid]);
    fixture::load(&mut r, &fixture::bulk("INBOX", 2, 703, 300..3_000));
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended(&out), 2, "only the new mail is appended:\n{out}");
    assert!(account_line(&out, "ingrid").contains("6 moved, 3 removed"), "{out}");
    assert_mirrored(&s, "ingrid", &Snapshot::new(), "after the filing and deleting");
    let archive = guids_by_body(&mut s.tgt("ingrid"), ARCHIVE);
    assert_eq!(first.iter().filter(|(body, guid)| archive.get(*body) == Some(guid)).count(), 6, "copied, not appended anew");

    let sent = |server: &Dovecot| -> Vec<String> { server.imap_commands().into_values().flatten().collect() };
    let target_sent = sent(&s.target);
    assert!(!target_sent.iter().any(|c| c.to_ascii_uppercase().contains(" MOVE ")), "MOVE sent to a target without it: {target_sent:#?}");
    assert!(target_sent.iter().any(|c| c.to_ascii_uppercase().contains("UID COPY ")), "{target_sent:#?}");
    let source_sent = sent(&s.source);
    let asked = |word: &str| source_sent.iter().any(|c| c.to_ascii_uppercase().contains(word));
    assert!(!asked("QRESYNC") && !asked("CONDSTORE") && !asked("CHANGEDSINCE"), "{source_sent:#?}");
}

#[test]
fn byte_identical_copies_are_followed_one_by_one() {
    // Real mailboxes hold the same bytes more than once: twice in INBOX and once in Kunder here.
    let s = start(&["jonas"]);
    let mut twin = fixture::bulk("INBOX", 1, 800, 500..2_000).remove(0);
    let mut third = twin.clone();
    third.folder = "INBOX.Kunder".to_string();
    twin.flags.clear();
    s.load(
        "jonas",
        &["INBOX.Kunder", "INBOX.Arkiv"],
        &[
            vec![twin.clone(), twin.clone(), third],
            fixture::bulk("INBOX", 3, 801, 300..3_000),
            fixture::bulk("INBOX.Kunder", 3, 802, 300..3_000),
        ],
    );
    s.m.sync();
    assert_mirrored(&s, "jonas", &Snapshot::new(), "after the first pass");

    // One of the INBOX twins filed into Arkiv, the Kunder copy deleted.
    let id = fixture::header_value(&twin.body, "Message-ID").expect("bulk mail has a Message-ID");
    let mut r = s.src("jonas");
    let twins: Vec<u32> =
        r.fetch_all("INBOX").iter().filter(|m| fixture::header_value(&m.body, "Message-ID").as_ref() == Some(&id)).map(|m| m.uid).collect();
    assert_eq!(twins.len(), 2);
    r.move_uids("INBOX", &twins[1..], "INBOX.Arkiv");
    let in_kunder = uids_of(&mut r, "INBOX.Kunder", std::slice::from_ref(&id));
    r.expunge_uids("INBOX.Kunder", &in_kunder);
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended(&out), 0, "{out}");
    assert_mirrored(&s, "jonas", &Snapshot::new(), "after one twin was filed and the third copy deleted");

    // The other twin filed too, then the one in Arkiv deleted.
    let mut r = s.src("jonas");
    r.move_uids("INBOX", &twins[..1], "INBOX.Arkiv");
    let in_arkiv = uids_of(&mut r, "INBOX.Arkiv", std::slice::from_ref(&id));
    r.expunge_uids("INBOX.Arkiv", &in_arkiv);
    drop(r);
    s.m.sync();
    assert_mirrored(&s, "jonas", &Snapshot::new(), "after the second twin was filed and deleted");
}

#[test]
fn a_target_without_uidplus_is_never_emptied_and_the_pass_says_so() {
    let s = start_with(&["karin"], DovecotOptions::default(), without(Layout::Target, &["UIDPLUS"]));
    s.load("karin", &["INBOX.Kunder"], &[fixture::bulk("INBOX", 5, 900, 300..3_000), fixture::bulk("INBOX.Kunder", 4, 901, 300..3_000)]);
    let out = s.m.sync();
    assert_eq!(appended(&out), 9, "{out}");
    let before = snapshot(&s.target, &tgt_login("karin"));
    let mut r = s.src("karin");
    let kunder = r.fetch_all("INBOX.Kunder");
    r.expunge_uids("INBOX.Kunder", &[kunder[0].uid]);
    r.move_uids("INBOX.Kunder", &[kunder[1].uid], "INBOX");
    drop(r);
    let out = s.m.sync();
    assert!(out.contains("no UID EXPUNGE"), "the pass says why it does not follow:\n{out}");
    assert!(!out.contains("followed the old server"), "{out}");
    let expected = nothing_taken_away(&before, &source_as_target(&s, "karin"));
    let problems = differences(&s, "karin", &expected);
    assert!(problems.is_empty(), "nothing is removed from a target without UIDPLUS:\n  {}", problems.join("\n  "));
}

#[test]
fn a_folder_renamed_while_mail_is_filed_into_and_deleted_from_it_keeps_every_copy() {
    // Renamed and changed in the same interval: whether the target renames the folder or moves its
    // messages one by one, every copy there is the first pass's (same GUID) and nothing is appended.
    let s = start(&["lars"]);
    s.load("lars", &["INBOX.Projekt"], &[fixture::bulk("INBOX", 4, 950, 300..3_000), fixture::bulk("INBOX.Projekt", 6, 951, 300..3_000)]);
    s.m.sync();
    let mut tr = s.tgt("lars");
    let mut first = guids_by_body(&mut tr, "Projekt");
    first.extend(guids_by_body(&mut tr, "INBOX"));
    drop(tr);
    let mut r = s.src("lars");
    r.rename("INBOX.Projekt", "INBOX.Klart");
    let inbox = r.fetch_all("INBOX");
    r.move_uids("INBOX", &[inbox[0].uid], "INBOX.Klart");
    let klart = r.fetch_all("INBOX.Klart");
    r.expunge_uids("INBOX.Klart", &[klart[2].uid]);
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended(&out), 0, "{out}");
    assert_mirrored(&s, "lars", &Snapshot::new(), "after the rename, filing and deleting");
    let klart = guids_by_body(&mut s.tgt("lars"), "Klart");
    let same = klart.iter().filter(|(body, guid)| first.get(*body) == Some(guid)).count();
    assert_eq!(same, klart.len(), "every copy in Klart is the first pass's:\n{out}");
}

#[test]
fn hundreds_of_moves_and_deletions_at_once() {
    let s = start(&["maja"]);
    s.load("maja", &["INBOX.Arkiv"], &[fixture::bulk("INBOX", 320, 960, 250..700)]);
    assert_eq!(appended(&s.m.sync()), 320);
    let mut r = s.src("maja");
    let uids: Vec<u32> = r.fetch_all("INBOX").iter().map(|m| m.uid).collect();
    // 210 filed in many short ranges (more than postflytt's 200 per MOVE), the last 60 deleted.
    let filed: Vec<u32> = uids[..250].iter().copied().filter(|u| u % 5 != 0).chain(uids[250..260].iter().copied()).collect();
    r.move_uids("INBOX", &filed, "INBOX.Arkiv");
    r.expunge_uids("INBOX", &uids[260..]);
    drop(r);
    let out = s.m.sync();
    assert_eq!(appended(&out), 0, "{out}");
    assert!(account_line(&out, "maja").contains(&format!("{} moved, 60 removed", filed.len())), "{out}");
    assert_mirrored(&s, "maja", &Snapshot::new(), "after the mass filing");
}

/// What the users do on the old server before the switch: file two, delete one.
fn first_round(r: &mut ImapReader) {
    let inbox = r.fetch_all("INBOX");
    r.move_uids("INBOX", &[inbox[0].uid, inbox[1].uid], "INBOX.Arkiv");
    let kunder = r.fetch_all("INBOX.Kunder");
    r.expunge_uids("INBOX.Kunder", &[kunder[0].uid]);
}

/// What they do after: file, delete, file between folders, rename a folder, delete a folder, get mail.
fn second_round(r: &mut ImapReader) {
    let inbox = r.fetch_all("INBOX");
    r.move_uids("INBOX", &[inbox[0].uid, inbox[1].uid, inbox[2].uid], "INBOX.Arkiv");
    let kunder = r.fetch_all("INBOX.Kunder");
    r.expunge_uids("INBOX.Kunder", &[kunder[0].uid, kunder[1].uid]);
    r.move_uids("INBOX.Kunder", &[kunder[2].uid], "INBOX.Arkiv");
    r.rename("INBOX.Projekt", "INBOX.Klart");
    r.delete("INBOX.Gammalt");
    fixture::load(r, &fixture::bulk("INBOX", 1, 609, 300..3_000));
}

/// `before` with every source message it lacks added, folder by folder (counted by body): what the
/// target holds when nothing is removed or moved there, only copied.
fn nothing_taken_away(before: &Snapshot, source: &Snapshot) -> Snapshot {
    let mut out = before.clone();
    for (folder, msgs) in source {
        let have = out.entry(folder.clone()).or_default();
        let mut counts: BTreeMap<&[u8], isize> = BTreeMap::new();
        for m in before.get(folder).into_iter().flatten() {
            *counts.entry(&m.body).or_default() += 1;
        }
        for m in msgs {
            let left = counts.entry(&m.body).or_default();
            if *left > 0 {
                *left -= 1;
            } else {
                have.push(m.clone());
            }
        }
    }
    out
}

/// Mirrored before; then `stop` (the switch or the setting), and from then on the target only grows.
fn followed_until(name: &str, stop: impl Fn(&Migration) -> String) {
    let s = start(&[name]);
    s.load(
        name,
        &["INBOX.Kunder", "INBOX.Arkiv", "INBOX.Projekt", "INBOX.Gammalt"],
        &[
            fixture::bulk("INBOX", 12, 600, 300..3_000),
            fixture::bulk("INBOX.Kunder", 8, 601, 300..3_000),
            fixture::bulk("INBOX.Arkiv", 2, 602, 300..3_000),
            fixture::bulk("INBOX.Projekt", 3, 603, 300..3_000),
            fixture::bulk("INBOX.Gammalt", 3, 604, 300..3_000),
        ],
    );
    s.m.sync();
    first_round(&mut s.src(name));
    let out = s.m.sync();
    assert!(account_line(&out, name).contains("2 moved, 1 removed"), "{out}");
    assert_mirrored(&s, name, &Snapshot::new(), "before the switch");

    let said = stop(&s.m);
    let before = snapshot(&s.target, &tgt_login(name));
    let mut tr = s.tgt(name);
    let uids: BTreeMap<String, BTreeMap<u32, Vec<u8>>> =
        before.keys().map(|f| (f.clone(), tr.fetch_all(f).into_iter().map(|m| (m.uid, m.body)).collect())).collect();
    drop(tr);
    second_round(&mut s.src(name));
    let out = s.m.sync();
    assert!(!out.contains("followed the old server"), "after {said:?}:\n{out}");
    let mut tr = s.tgt(name);
    for (folder, copies) in &uids {
        let now: BTreeMap<u32, Vec<u8>> = tr.fetch_all(folder).into_iter().map(|m| (m.uid, m.body)).collect();
        for (uid, body) in copies {
            assert_eq!(now.get(uid), Some(body), "{folder} UID {uid} was moved or removed on the target after {said:?}");
        }
    }
    drop(tr);
    let expected = nothing_taken_away(&before, &source_as_target(&s, name));
    let problems = differences(&s, name, &expected);
    assert!(problems.is_empty(), "after {said:?} the target is not the old copies plus the new:\n  {}", problems.join("\n  "));
}

#[test]
fn after_the_switch_nothing_is_moved_or_removed_on_the_target() {
    followed_until("gun", |m| m.ok(&["switched", &src_login("gun")]));
}

#[test]
fn with_mirroring_off_nothing_is_moved_or_removed_on_the_target() {
    followed_until("hans", |m| m.ok(&["setup", "--mirror", "off"]));
}

/// Quirk `status_no_echoes_utf8_name` (Dovecot 2.3.19): STATUS of a deleted folder named `Åre` is
/// refused with the name in raw UTF-8, which the IMAP parser refuses as malformed. Such a folder is
/// not asked: the passes go through, and its target folder goes once two listings left it out.
#[test]
fn a_deleted_folder_with_a_swedish_name_costs_no_pass_and_goes_after_two_listings() {
    let s = start(&["erik"]);
    s.load(
        "erik",
        &["INBOX.Kunder", "INBOX.Kunder.Åre"],
        &[fixture::bulk("INBOX", 2, 700, 300..2_000), fixture::bulk("INBOX.Kunder.Åre", 3, 701, 300..2_000)],
    );
    s.m.sync();
    assert_mirrored(&s, "erik", &Snapshot::new(), "after the first pass");
    s.src("erik").delete("INBOX.Kunder.Åre");
    let first = s.m.sync();
    assert!(first.contains(" 0 failed,"), "the pass went through: {first}");
    let second = s.m.sync();
    assert!(second.contains(" 0 failed,"), "the pass went through: {second}");
    assert!(second.contains("1 folders deleted") || second.contains("1 folder deleted"), "{second}");
    assert_mirrored(&s, "erik", &Snapshot::new(), "after the folder was deleted");
}
