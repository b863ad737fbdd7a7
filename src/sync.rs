//! One pass over one account, and a pass over many accounts in parallel: log in on both sides, read
//! both folder trees, map them (the `folders` module decides names), then for each folder pull new
//! mail and flag changes into staging and push what the target lacks. Accounts run as tasks on one
//! thread (`workers`), sharing one database connection, each with its connections to both servers, at
//! most `parallel` at once; one account's failure is reported and the others go on. What a failure stops
//! and whether the pass reconnects is `failure::policy`'s answer, by the error's kind.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::failure::{self, Retry, Scope};
use crate::filters::MessageFilter;
use crate::folders::{self, FolderMap, SourceFolder, SourceLayout, SpecialUse, TargetFolder, TargetLayout};
use crate::imap::{Compression, FolderStatus, ImapError, ListedFolder, Listing, Session};
use crate::lanes::{self, Lane, Readers, folder_failed, push_lane, stop_if_requested, write_folders};
use crate::pipe::Pipe;
use crate::pull::{self, PullStats};
use crate::push::PushStats;
use crate::store::{Account, PassTotals, PresentFolder, ServerKind, SourceFolderRecord, Store, now};
use crate::units::human_bytes;
use crate::utf7;

/// Both sides of one account, logged in.
pub struct Connected {
    pub source: Session,
    pub target: Session,
}

/// Both sides logged in, each compressing where the operator's `compress` setting says it pays.
pub async fn connect_both(store: &Store, account: &Account) -> Result<Connected> {
    let compress = store.settings()?.compress;
    // Both at once: over a WAN a connection and its login are several round trips each.
    let (source, target) = smol::future::zip(
        async {
            let mut source = open_source(store, account).await?;
            // How far the source is decides how many accounts may stage at once (`memory`).
            source.measure_beyond_lan().await?;
            source.compress_if_worthwhile(compress).await?;
            anyhow::Ok(source)
        },
        open_target_compressing(store, account, compress),
    )
    .await;
    Ok(Connected { source: source?, target: target? })
}

/// The target logged in, compressing where `compress` says it pays: the writer's connection, and the
/// stream's (`stream_append`).
async fn open_target_compressing(store: &Store, account: &Account, compress: Compression) -> Result<Session> {
    let mut target = open_target(store, account).await?;
    target.compress_if_worthwhile(compress).await?;
    Ok(target)
}

/// Connects to the source and logs in as the account: with its password, else the source's admin
/// login, or for a Microsoft 365 source with the source app's OAuth2 token.
pub async fn open_source(store: &Store, account: &Account) -> Result<Session> {
    let endpoint = store.endpoint("source")?;
    let label = format!("source {}", account.source_login);
    let kind = store.source_kind()?;
    match kind {
        ServerKind::Imap => {
            // The account's own password, else the source's admin login (`admin_login`).
            let credential = crate::admin_login::credential(store, "source", &account.source_login, account.source_password.as_ref())?;
            let mut source = Session::connect(&endpoint, &label, kind).await?;
            crate::admin_login::log_in(&mut source, "source", &account.source_login, &credential).await?;
            Ok(source)
        }
        ServerKind::Microsoft365 => login_with_app(&endpoint, &label, kind, &account.source_login, &store.m365_app("source")?).await,
    }
}

/// A second connection to the source, for reading folders beside the first (`lanes::READERS_BEYOND_LAN`):
/// logged in, compressing as the operator's setting says and with CONDSTORE as the first has it. A
/// source that refuses it (a limit on connections per user, say) costs nothing: the reason goes to
/// the log, and one connection reads the folders as on the LAN.
async fn open_second_reader(store: &Store, account: &Account, condstore: bool) -> Option<Session> {
    let opened = async {
        let compress = store.settings()?.compress;
        let mut source = open_source(store, account).await?;
        source.measure_beyond_lan().await?;
        source.compress_if_worthwhile(compress).await?;
        if source.enable_condstore().await? != condstore {
            bail!("it answered ENABLE CONDSTORE unlike the first connection");
        }
        anyhow::Ok(source)
    };
    match opened.await {
        Ok(source) => {
            log::info!("{}: a second connection reads folders beside the first (the old server is beyond the LAN)", account.source_login);
            Some(source)
        }
        Err(e) => {
            log::warn!("{}: a second connection to the old server failed ({e:#}); one connection reads the folders", account.source_login);
            None
        }
    }
}

/// Logs in with `AUTHENTICATE XOAUTH2` and the app's token; a refused token is dropped from the cache
/// and a fresh one tried once, on a new connection (the server may close the refused one).
async fn login_with_app(
    endpoint: &crate::imap::Endpoint,
    label: &str,
    kind: ServerKind,
    login: &str,
    app: &crate::oauth::App,
) -> Result<Session> {
    let mut session = Session::connect(endpoint, label, kind).await?;
    let token = crate::oauth::token(app).await?;
    match session.login_xoauth2(login, &token).await {
        Ok(()) => Ok(session),
        Err(first) => {
            crate::oauth::forget(app);
            let mut session = Session::connect(endpoint, label, kind).await?;
            let token = crate::oauth::token(app).await?;
            session.login_xoauth2(login, &token).await.map_err(|_| first)?;
            Ok(session)
        }
    }
}

/// Connects to the target and logs in: with the account's password, else the target's admin login,
/// or for Microsoft 365 with the app's OAuth2 token (a refused token is dropped and a fresh one tried
/// once, on a new connection).
pub async fn open_target(store: &Store, account: &Account) -> Result<Session> {
    let endpoint = store.endpoint("target")?;
    let label = format!("target {}", account.target_login);
    let kind = store.target_kind()?;
    match kind {
        ServerKind::Imap => {
            // The account's own password, else the target's admin login (`admin_login`).
            let credential = crate::admin_login::credential(store, "target", &account.source_login, account.target_password.as_ref())?;
            let mut target = Session::connect(&endpoint, &label, kind).await?;
            crate::admin_login::log_in(&mut target, "target", &account.target_login, &credential).await?;
            Ok(target)
        }
        ServerKind::Microsoft365 => login_with_app(&endpoint, &label, kind, &account.target_login, &store.m365_app("target")?).await,
    }
}

/// What discovery found on both sides.
pub struct Discovery {
    pub maps: Vec<FolderMap>,
    pub target_existing: BTreeSet<String>,
    pub target_subscribed: BTreeSet<String>,
    /// Source folders' STATUS by wire name, as the source's listing brought them (LIST-STATUS);
    /// empty when none was asked for or the server does not offer it.
    pub source_statuses: BTreeMap<String, FolderStatus>,
    /// The target's special-use folders (wire names): mirroring never deletes or renames one.
    pub target_special: BTreeSet<String>,
    /// The target's hierarchy delimiter.
    pub target_delimiter: char,
    /// Source folders the operator's folder choice leaves out, by decoded name, with the reason
    /// (`folder_choice`): recorded but never read, copied, mirrored or measured.
    pub excluded: Vec<(String, crate::folder_choice::Exclusion)>,
}

fn special_use_of(folder: &ListedFolder) -> Option<SpecialUse> {
    folder.attributes.iter().find_map(|a| SpecialUse::from_attribute(a))
}

fn selectable(folder: &ListedFolder) -> bool {
    !folder.has_attribute("\\Noselect") && !folder.has_attribute("\\NonExistent")
}

/// Lists both sides, computes the mapping and records it with the source folders. `status_for`
/// `Some(condstore)` asks the source's listing for every folder's STATUS too (a pass: one round trip
/// for the tree where the server offers LIST-STATUS); None lists only (the check, `folders`).
pub async fn discover(
    store: &Store,
    account: &Account,
    source: &mut Session,
    target: &mut Session,
    status_for: Option<bool>,
) -> Result<Discovery> {
    // Both trees at once: over a WAN each listing is a few round trips.
    let source_side = async {
        let namespaces = source.namespaces().await?;
        let listing = match status_for {
            Some(condstore) => source.list_with_status(condstore).await?,
            None => Listing { folders: source.list().await?, statuses: BTreeMap::new() },
        };
        let subscribed: BTreeSet<String> = source.lsub().await?.into_iter().map(|f| f.wire_name).collect();
        anyhow::Ok((namespaces, listing, subscribed))
    };
    let target_side = async {
        let namespace = target.personal_namespace().await?;
        let listed = target.list().await?;
        let subscribed: BTreeSet<String> = target.lsub().await?.into_iter().map(|f| f.wire_name).collect();
        anyhow::Ok((namespace, listed, subscribed))
    };
    let (source_side, target_side) = smol::future::zip(source_side, target_side).await;
    let ((source_ns, other_users, shared), Listing { folders: listed, statuses: source_statuses }, subscribed) = source_side?;
    let (target_ns, target_listed, target_subscribed) = target_side?;
    let layout = SourceLayout {
        prefix: source_ns.as_ref().map(|(p, _)| utf7::decode_or_raw(p)).unwrap_or_default(),
        delimiter: source_ns.as_ref().and_then(|(_, d)| *d).or_else(|| listed.iter().find_map(|f| f.delimiter)),
    };
    let choice = folder_choice_of(store, account)?;
    let namespaces = crate::folder_choice::SourceNamespaces {
        personal: layout.prefix.clone(),
        delimiter: layout.delimiter,
        other_users: other_users.iter().map(|p| utf7::decode_or_raw(p)).collect(),
        shared: shared.iter().map(|p| utf7::decode_or_raw(p)).collect(),
        shows_groupware_folders: source.quirks().shows_groupware_folders,
    };
    // Folders already copied keep moving whatever the defaults say now (`FolderChoice::exclusion`).
    let copied = store.folders_with_copies(account.id)?;
    // Each listed name decoded once; exclusions looked up by name (LIST may bring 100,000 folders).
    let names: Vec<String> = listed.iter().map(|f| utf7::decode_or_raw(&f.wire_name)).collect();
    let mut left_out: BTreeMap<&str, crate::folder_choice::Exclusion> = BTreeMap::new();
    let mut overrides = BTreeMap::new();
    for (f, name) in listed.iter().zip(&names) {
        if let Some(why) = choice.exclusion(&namespaces, name, f.delimiter, copied.contains(name)) {
            left_out.insert(name, why);
        } else if let Some(o) = choice.override_for(&namespaces, name, f.delimiter) {
            overrides.insert(name.clone(), o.target.clone());
        }
    }
    let source_folders: Vec<SourceFolder> = listed
        .iter()
        .zip(&names)
        .filter(|(_, name)| !left_out.contains_key(name.as_str()))
        .map(|(f, name)| SourceFolder {
            name: name.clone(),
            delimiter: f.delimiter,
            special_use: special_use_of(f),
            selectable: selectable(f),
        })
        .collect();

    let quirks = target.quirks();
    let target_layout = TargetLayout {
        prefix: target_ns.as_ref().map(|(p, _)| utf7::decode_or_raw(p)).unwrap_or_default(),
        delimiter: target_ns.as_ref().and_then(|(_, d)| *d).or_else(|| target_listed.iter().find_map(|f| f.delimiter)).unwrap_or('/'),
        existing: target_listed
            .iter()
            .map(|f| TargetFolder { name: utf7::decode_or_raw(&f.wire_name), special_use: special_use_of(f) })
            .collect(),
        case_insensitive: quirks.exchange_case_insensitive_names,
        reserved: quirks.reserved_folder_names(),
    };
    let target_delimiter = target_layout.delimiter;
    let maps = folders::map_folders_with(&layout, &source_folders, &target_layout, &overrides);
    let by_source: BTreeMap<&str, &FolderMap> = maps.iter().map(|m| (m.source.as_str(), m)).collect();

    store.write(|tx| {
        tx.mark_source_folders_absent(account.id)?;
        for (f, name) in listed.iter().zip(&names) {
            let map = by_source.get(name.as_str());
            let (map_reason, map_note) = match left_out.get(name.as_str()).map(ToString::to_string) {
                Some(why) => (Some(crate::store::EXCLUDED_REASON.to_string()), Some(why)),
                None => (map.map(|m| m.reason.to_string()), map.and_then(|m| m.note.clone())),
            };
            tx.record_source_folder(
                account.id,
                &SourceFolderRecord {
                    name: name.clone(),
                    wire_name: f.wire_name.clone(),
                    delimiter: f.delimiter,
                    attributes: f.attributes.join(" "),
                    selectable: selectable(f),
                    subscribed: subscribed.contains(&f.wire_name),
                    target_name: map.map(|m| m.target.clone()),
                    map_reason,
                    map_note,
                },
            )?;
        }
        Ok(())
    })?;
    crate::fault::point("discover: folders recorded");
    let target_special = target_listed.iter().filter(|f| special_use_of(f).is_some()).map(|f| f.wire_name.clone()).collect();
    Ok(Discovery {
        maps,
        target_existing: target_listed.into_iter().map(|f| f.wire_name).collect(),
        target_subscribed,
        source_statuses,
        target_special,
        target_delimiter,
        excluded: left_out.into_iter().map(|(name, why)| (name.to_string(), why)).collect(),
    })
}

/// The operator's folder choice for the account: the settings' patterns and overrides, and the
/// account list's patterns for this account.
pub fn folder_choice_of(store: &Store, account: &Account) -> Result<crate::folder_choice::FolderChoice> {
    let settings = store.settings()?;
    let account_list = store.account_exclude_folders(account.id)?;
    Ok(crate::folder_choice::FolderChoice::from_stored(
        &settings.exclude_folders,
        &account_list,
        &settings.include_folders,
        &settings.map_folders,
    ))
}

/// Totals of one account's pass.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub account: String,
    pub folders: usize,
    pub pull: PullStats,
    pub push: PushStats,
    pub folder_errors: Vec<String>,
    /// Times either server asked us to back off, and we did.
    pub throttled: u64,
    /// Copies the target had lost that this pass sent back to be copied again (`repair`).
    pub repaired: u64,
    /// The users' moves and deletions on the old server followed on the target (`mirror`).
    pub mirror: crate::mirror::MirrorStats,
    /// Calendars and contacts, when DAV servers are set up (`dav`).
    pub dav: Option<crate::dav::DavStats>,
    pub error: Option<String>,
    pub seconds: f64,
    /// The operator paused or removed the account before or during its pass (`accounts_admin`): the
    /// pass did not start, or stopped at a folder boundary.
    pub held: Option<crate::store::AccountState>,
}

impl PassReport {
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}: {} folders, {} staged ({}), {} appended, {} already on target, {} flag updates, {} refused",
            self.account,
            self.folders,
            self.pull.staged,
            human_bytes(self.pull.staged_bytes),
            self.push.appended,
            self.push.matched,
            self.push.flag_updates,
            self.push.refused,
        );
        if self.push.streamed > 0 {
            line.push_str(&format!(", {} large sent while still being fetched", self.push.streamed));
        }
        if self.throttled > 0 {
            line.push_str(&format!(", throttled {} times (waited as asked)", self.throttled));
        }
        if self.repaired > 0 {
            line.push_str(&format!(", {} missing on the target copied again", self.repaired));
        }
        if !self.mirror.is_empty() {
            line.push_str(&format!(", {}", self.mirror.line()));
        }
        line.push_str(&format!(" in {:.1} s", self.seconds));
        if let Some(dav) = &self.dav {
            line.push_str(&format!("\n    {}", dav.line()));
        }
        for e in &self.folder_errors {
            line.push_str(&format!("\n    folder error: {e}"));
        }
        if let Some(e) = &self.error {
            line.push_str(&format!("\n    FAILED: {e}"));
        }
        if let Some(held) = self.held {
            line.push_str(&format!("; {held} by the operator, so its pass stopped (or did not start)"));
        }
        line
    }
}

/// How much of the target a pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// A target folder is opened only when there is mail to copy or a flag to set: the cheap passes
    /// that run while the MX records switch.
    Incremental,
    /// Every target folder we copied into is opened, so one whose UIDVALIDITY changed (the mailbox was
    /// moved or rebuilt on the target) is re-matched before verification looks: the last pass of finish.
    Final,
}

/// Runs one pass over one account.
pub async fn pass_account(store: &Store, account: &Account, kind: PassKind) -> PassReport {
    let started = Instant::now();
    let mut report = PassReport { account: account.source_login.clone(), ..PassReport::default() };
    // Paused or removed after the pass took its list of accounts: left alone, no pass recorded.
    if let Ok(Some(held)) = store.account_hold(account.id) {
        report.held = Some(held);
        return report;
    }
    let pass_id = store.write(|tx| tx.start_pass(account.id)).ok();
    // A dropped connection (a flaky old server; Exchange closing after repeated errors) is reopened
    // with backoff, twice; everything done before the drop is journalled, so the retry resumes.
    let mut attempt = 0;
    let mut hang_ups = 0;
    loop {
        match pass_inner(store, account, kind, &mut report).await {
            Ok(()) => break,
            // Each such hang-up narrows down or skips an unreadable message, so it does not use up
            // the retries for lost connections; the cap only guards against a server that never stops.
            Err(e)
                if matches!(crate::imap::kind_of(&e), Some(ImapError::HungUpOnMessage { .. }))
                    && hang_ups < 30
                    && !crate::fault::shutting_down() =>
            {
                hang_ups += 1;
                log::warn!("{}: {e:#}; reconnecting to find the message", account.source_login);
                smol::Timer::after(crate::fault::reconnect_base() / 4).await;
            }
            // A server that broke a bound (`imap::ServerMisbehaved`) would do it again at once: the
            // account fails for this pass and is tried on the next, without costing more now (the
            // policy says NextPass).
            Err(e) if attempt < 2 && failure::policy(&e).1 == Retry::Now && !crate::fault::shutting_down() => {
                attempt += 1;
                let wait = crate::fault::reconnect_base() * (1 << (attempt - 1));
                log::warn!("{}: {e:#}; reconnecting in {:.1} s", account.source_login, wait.as_secs_f64());
                smol::Timer::after(wait).await;
            }
            Err(e) => {
                report.error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    // Calendars and contacts after the mail (it is what the customer waits for), with their own
    // connections; their failure fails the account's pass but never undoes or stops its mail.
    if report.held.is_none() && store.account_hold(account.id).ok().flatten().is_none() && !crate::fault::shutting_down() {
        match crate::dav::pass_account(store, account).await {
            Ok(stats) => {
                // A collection that could not be copied this pass is said like a mail folder that could not.
                for error in stats.iter().flat_map(|s| &s.errors) {
                    log::warn!("{}: calendars and contacts: {error}", account.source_login);
                    report.folder_errors.push(format!("calendars and contacts: {error}"));
                }
                report.dav = stats;
            }
            Err(e) => {
                let failed = format!("calendars and contacts: {e:#}");
                report.error = Some(match report.error.take() {
                    Some(mail) => format!("{mail}; {failed}"),
                    None => failed,
                });
            }
        }
    }
    // APPENDs the target asked to wait (counted by the push, across reconnects) with the other commands.
    report.throttled += report.push.throttled;
    report.seconds = started.elapsed().as_secs_f64();
    report.held = store.account_hold(account.id).ok().flatten();
    if let Some(id) = pass_id {
        let totals = PassTotals {
            staged: report.pull.staged as i64,
            staged_bytes: report.pull.staged_bytes as i64,
            appended: report.push.appended as i64,
            matched: report.push.matched as i64,
            flag_updates: report.push.flag_updates as i64,
            refused: report.push.refused as i64,
            error: report.error.clone(),
            throttled: report.throttled as i64,
            moved: report.mirror.moved as i64,
            removed: report.mirror.removed as i64,
            dav_put: report.dav.as_ref().map_or(0, |d| d.put as i64),
            dav_replaced: report.dav.as_ref().map_or(0, |d| d.replaced as i64),
            dav_removed: report.dav.as_ref().map_or(0, |d| d.removed as i64),
        };
        let _ = store.write(|tx| tx.finish_pass(id, &totals));
    }
    // A pass the operator's hold stopped at a folder boundary did not see every folder: it is not the
    // account's last pass, or its row would read up to date with folders unread.
    if report.held.is_none() || report.error.is_some() {
        let _ = store.write(|tx| tx.record_account_pass(account.id, now(), report.error.as_deref(), report.pull.new_mail));
    }
    report
}

async fn pass_inner(store: &Store, account: &Account, pass_kind: PassKind, report: &mut PassReport) -> Result<()> {
    let mut both = connect_both(store, account).await?;
    let result = pass_connected(store, account, pass_kind, &mut both, report).await;
    // Counted however the pass ended: the worst-throttled passes are the ones that fail.
    report.throttled += both.source.throttled + both.target.throttled;
    if result.is_ok() {
        both.source.logout().await;
        both.target.logout().await;
    }
    result
}

async fn pass_connected(
    store: &Store,
    account: &Account,
    pass_kind: PassKind,
    both: &mut Connected,
    report: &mut PassReport,
) -> Result<()> {
    // CONDSTORE first, so the source's listing can bring each folder's HIGHESTMODSEQ.
    let condstore = both.source.enable_condstore().await?;
    let mut discovery = discover(store, account, &mut both.source, &mut both.target, Some(condstore)).await?;
    // What the operator asked to repair goes back to being looked up before the folders move.
    report.repaired += crate::repair::reopen_requested(store, account, &mut both.target).await?;
    // Until the users switch, their renames and deletions on the old server are found first, so the
    // writer can move a message the users moved instead of appending it again.
    let mut listed_statuses = std::mem::take(&mut discovery.source_statuses);
    if store.mirrors(account.id)? {
        let folders = crate::mirror::TargetFolders {
            existing: &mut discovery.target_existing,
            special: &discovery.target_special,
            delimiter: discovery.target_delimiter,
        };
        crate::mirror::before_copy(
            store,
            account.id,
            &mut both.source,
            &mut both.target,
            folders,
            &mut listed_statuses,
            condstore,
            &mut report.mirror,
        )
        .await?;
    }
    let settings = store.settings()?;
    let size_limit = both.target.message_size_limit(settings.message_size_limit);
    // The operator's filter, weighed again over the rows not yet on the target if it changed.
    let mut filter = MessageFilter::from_settings(&settings);
    if !filter.is_empty() {
        filter.spared_sizes = store.gone_copy_sizes(account.id)?;
    }
    crate::filters::reweigh(store, account.id, &filter)?;
    crate::filters::take_back_twins(store, account.id, &filter)?;
    let mut target_existing = discovery.target_existing.clone();
    let mut target_subscribed = discovery.target_subscribed.clone();

    // Folders in name order, so parents are created before children; each gets its target folder
    // (created, subscribed) first, then the reader and the writer move the mail together.
    let folders = store.present_folders(account.id)?;
    report.folders = folders.len();
    let pull_rows: BTreeMap<i64, pull::FolderRow> = pull::folder_rows(store, account.id)?.into_iter().map(|f| (f.id, f)).collect();
    let lanes =
        prepare_target_folders(store, account, &mut both.target, folders, &mut target_existing, &mut target_subscribed, report).await?;

    let pipe = Pipe::new(store.staging_limit()?);
    pipe.streams.allow(both.source.beyond_lan(), size_limit);
    let folder_errors = RefCell::new(Vec::new());
    let refetch = RefCell::new(BTreeSet::new());
    let Connected { source, target } = both;
    let (pull_stats, push_stats) = (&mut report.pull, &mut report.push);
    let readers = Readers {
        store,
        account,
        lanes: &lanes,
        pull_rows: &pull_rows,
        condstore,
        pipe: &pipe,
        filter: &filter,
        folder_errors: &folder_errors,
        next: Cell::new(0),
        statuses: RefCell::new(listed_statuses),
    };
    // Beyond the LAN a second connection reads folders beside the first, once there is mail to move:
    // an unchanged pass stays a handful of round trips on one connection.
    let wants_second = source.beyond_lan() && lanes.len() > 1 && lanes::READERS_BEYOND_LAN > 1;
    let mut second_stats = PullStats::default();
    let mut second_throttled = 0;
    let reader = async {
        let first = readers.read(source, pull_stats, true);
        let second = async {
            if !wants_second || !readers.wait_for_mail().await {
                return Ok(());
            }
            let Some(mut session) = open_second_reader(store, account, condstore).await else { return Ok(()) };
            let read = readers.read(&mut session, &mut second_stats, false).await;
            second_throttled = session.throttled;
            // Its folders are read: the connection goes now, not when the pass ends, so it holds no
            // slot of a server that limits connections per user while other accounts log in.
            if read.is_ok() {
                session.logout().await;
            }
            read
        };
        let (first, second) = smol::future::zip(first, second).await;
        first.and(second)
    };
    let writer = async {
        let result = write_folders(
            store,
            account,
            target,
            &lanes,
            pass_kind == PassKind::Final,
            size_limit,
            &pipe,
            push_stats,
            &folder_errors,
            &refetch,
        )
        .await;
        if result.is_err() {
            pipe.stop();
        }
        // Whatever the reader does from here (the rest of its folders, the refetch round), it does
        // not wait for room the writer would make, and no message streams.
        pipe.writer_finished();
        pipe.streams.end();
        result
    };
    // A large message goes up while it still comes down, on a target connection of its own.
    let target_wires: BTreeMap<i64, String> = lanes.iter().map(|lane| (lane.folder_id, lane.target_wire.clone())).collect();
    let compress = settings.compress;
    let stream_lane = crate::stream_append::carry(&pipe.streams, store, &account.source_login, &target_wires, || {
        open_target_compressing(store, account, compress)
    });
    let ((read, written), stream_throttled) = smol::future::zip(smol::future::zip(reader, writer), stream_lane).await;
    report.pull.absorb(second_stats);
    report.throttled += second_throttled + stream_throttled;
    report.folder_errors.extend(folder_errors.into_inner());
    read?;
    written?;

    // A push that found its earlier copies gone from the target (the folder deleted or re-created
    // there) sent their rows back for bytes that left staging when the target first took them: one
    // more round for those folders fetches and appends them in this same pass.
    let refetch = refetch.into_inner();
    // The folders' rows as the reader left them (their UIDVALIDITY and last UID of this pass).
    let fresh_rows = if refetch.is_empty() { Vec::new() } else { pull::folder_rows(store, account.id)? };
    for lane in lanes.iter().filter(|lane| refetch.contains(&lane.folder_id)) {
        stop_if_requested()?;
        if store.account_hold(account.id)?.is_some() {
            break;
        }
        let round: Result<()> = async {
            if let Some(row) = fresh_rows.iter().find(|row| row.id == lane.folder_id) {
                pull::pull_folder(store, account.id, source, row, condstore, None, &pipe, &filter, &mut report.pull)
                    .await
                    .with_context(|| format!("reading {} on the source", lane.name))?;
            }
            push_lane(store, account, target, lane, true, true, false, size_limit, None, &mut report.push).await.map(|_| ())
        }
        .await;
        if let Err(e) = round {
            folder_failed(store, account, &lane.name, e, &mut report.folder_errors)?;
        }
    }
    // What the users deleted on the old server (and the rest of what they moved) leaves the target.
    report.mirror.moved += report.push.moved;
    let folders = crate::mirror::TargetFolders {
        existing: &mut target_existing,
        special: &discovery.target_special,
        delimiter: discovery.target_delimiter,
    };
    crate::mirror::after_copy(store, account.id, target, folders, &report.pull.renewed, &mut report.mirror).await
}

/// Makes and subscribes the target folders this pass needs, and returns the lanes of the selectable
/// ones. Every CREATE goes in one pipelined round trip, then every SUBSCRIBE in another (parents
/// before children: the server takes commands in order), not two round trips per folder before the
/// first message moves: over an office line's 40 ms that was most of a second of idle line per
/// account. A folder the target refuses is that folder's failure; the others go on.
async fn prepare_target_folders(
    store: &Store,
    account: &Account,
    target: &mut Session,
    folders: Vec<PresentFolder>,
    target_existing: &mut BTreeSet<String>,
    target_subscribed: &mut BTreeSet<String>,
    report: &mut PassReport,
) -> Result<Vec<Lane>> {
    let wanted: Vec<(PresentFolder, String, String)> = folders
        .into_iter()
        .filter_map(|f| {
            let target_name = f.target_name.clone()?;
            let wire = utf7::encode(&target_name);
            Some((f, target_name, wire))
        })
        .collect();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    // In the listing's order (parents first), each name once; a set, not a scan, for 100,000 folders.
    let mut queued = BTreeSet::new();
    let to_create: Vec<String> = wanted
        .iter()
        .map(|(_, _, wire)| wire)
        .filter(|wire| !target_existing.contains(*wire) && !wire.eq_ignore_ascii_case("INBOX") && queued.insert(*wire))
        .cloned()
        .collect();
    if !to_create.is_empty() {
        // A folder we had filled before and must create again (someone deleted it on the target):
        // what we recorded there is gone. Forgotten before the CREATE, which is true whatever it
        // answers, so a kill between the CREATE and a record cannot leave old copies believed there.
        let forgotten = store.write(|tx| to_create.iter().try_for_each(|wire| tx.forget_target_folder_contents(account.id, wire)));
        let answers = match forgotten {
            Ok(()) => target.create_all(&to_create).await,
            // A database error costs these folders, as it would cost a folder's copy.
            Err(e) => Err(e),
        };
        let created = settle_folder_answers(
            &to_create,
            answers,
            |answer| answer.is_ok() || answer.has_code("ALREADYEXISTS"),
            |wire, answer| format!("cannot create target folder {}: {}", utf7::decode_or_raw(wire), answer.words()),
            "creating the target folder",
            &mut failed,
        )?;
        for wire in created {
            target_existing.insert(wire);
            crate::fault::point("push: target folder created");
        }
    }
    let mut queued = BTreeSet::new();
    let to_subscribe: Vec<String> = wanted
        .iter()
        .filter(|(f, _, wire)| f.subscribed && !target_subscribed.contains(wire) && !failed.contains_key(wire) && queued.insert(wire))
        .map(|(_, _, wire)| wire.clone())
        .collect();
    if !to_subscribe.is_empty() {
        let answers = target.subscribe_all(&to_subscribe).await;
        let subscribed = settle_folder_answers(
            &to_subscribe,
            answers,
            |answer| answer.is_ok(),
            |wire, answer| format!("SUBSCRIBE {wire} failed: {}", answer.words()),
            "subscribing the target folder",
            &mut failed,
        )?;
        target_subscribed.extend(subscribed);
    }
    let mut lanes = Vec::new();
    for (PresentFolder { id: folder_id, name, selectable: is_selectable, .. }, target_name, target_wire) in wanted {
        match failed.get(&target_wire) {
            Some(why) => folder_failed(store, account, &name, anyhow::anyhow!("{why}"), &mut report.folder_errors)?,
            None if is_selectable => lanes.push(Lane { folder_id, name, target_name, target_wire }),
            None => {}
        }
    }
    Ok(lanes)
}

/// Sorts the answers to a pipelined folder command: returns the names it `took`, and puts the reason
/// for each other one in `failed` (`refused` words it). An error that ends the account ends it; a
/// lesser one (`what` went wrong) costs every folder of the batch.
fn settle_folder_answers(
    wires: &[String],
    answers: Result<Vec<crate::imap::Answer>>,
    took: impl Fn(&crate::imap::Answer) -> bool,
    refused: impl Fn(&str, &crate::imap::Answer) -> String,
    what: &str,
    failed: &mut BTreeMap<String, String>,
) -> Result<Vec<String>> {
    match answers {
        Ok(answers) => {
            let mut taken = Vec::new();
            for (wire, answer) in wires.iter().zip(answers) {
                if took(&answer) {
                    taken.push(wire.clone());
                } else {
                    failed.insert(wire.clone(), refused(wire, &answer));
                }
            }
            Ok(taken)
        }
        Err(e) if failure::policy(&e).0 >= Scope::Account => Err(e),
        Err(e) => {
            let text = format!("{e:#}");
            failed.extend(wires.iter().map(|wire| (wire.clone(), format!("{what}: {text}"))));
            Ok(Vec::new())
        }
    }
}

/// Runs `work` for each account, at most `parallel` at once: `parallel` workers as tasks on this
/// thread (see `workers`), sharing one store. One connection for all of them, because on their own
/// connections every commit of one account emptied the page caches of the others (a WAL connection
/// drops its cache whenever another has written since it last read): at `--parallel 4` a quarter of
/// SQLite's time went to reading pages back and spilling half-done transactions, and the full
/// migration cost 1.65 to 1.79 CPU s against 1.46 to 1.53 shared (make bench BENCH_ONLY=full). Sharing
/// is sound because a write is a synchronous closure: no transaction spans an `.await`, so the
/// workers' transactions never interleave. `on_done` sees each result as it finishes; `failed` makes
/// the result for every account when the store cannot even be opened, so no account is silently left
/// out.
pub fn for_each_account<T>(
    dir: &Path,
    accounts: Vec<Account>,
    parallel: usize,
    work: &impl AsyncFn(&Store, &Account) -> T,
    failed: &dyn Fn(&Account, &anyhow::Error) -> T,
    on_done: &dyn Fn(&T),
) -> Vec<T> {
    let queue = RefCell::new(accounts.into_iter().collect::<std::collections::VecDeque<_>>());
    let results = RefCell::new(Vec::new());
    let next = || queue.borrow_mut().pop_front();
    let finish = |result: T| {
        on_done(&result);
        results.borrow_mut().push(result);
    };
    let shared = Store::open(dir);
    let worker = || async {
        match &shared {
            Ok(store) => {
                while let Some(account) = next() {
                    finish(work(store, &account).await);
                }
            }
            Err(e) => {
                while let Some(account) = next() {
                    finish(failed(&account, e));
                }
            }
        }
    };
    crate::workers::run_together((0..parallel.max(1)).map(|_| Box::pin(worker()) as crate::workers::Worker<'_>).collect());
    results.into_inner()
}

/// A pass over many accounts; reports sorted by account. One pass at a time per data directory
/// (`pass.lock`, held until it returns; another process's pass makes this an error), and the spool
/// is swept of what a crash left before it starts.
pub fn pass_many(
    dir: &Path,
    accounts: Vec<Account>,
    parallel: usize,
    kind: PassKind,
    on_done: &dyn Fn(&PassReport),
) -> Result<Vec<PassReport>> {
    let lock_path = dir.join("pass.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!("another pass is running on {} (only one at a time per data directory)", dir.display());
    }
    let store = Store::open(dir)?;
    let released = store.release_removed_accounts()?;
    if released > 0 {
        log::info!("staging: removed accounts' {released} staged messages released");
    }
    let (orphans, damaged) = store.sweep_spool()?;
    drop(store);
    if orphans + damaged > 0 {
        log::info!("staging: removed {orphans} spool files no message holds; {damaged} staged copies were not whole and are fetched again");
    }
    let parallel = parallel.max(1);
    let gate = ConnectionGate::new(ConnectionGate::remembered(parallel));
    let mut reports = for_each_account(
        dir,
        accounts,
        parallel,
        &async |store: &Store, account: &Account| {
            let slot = gate.enter().await;
            let report = pass_account(store, account, kind).await;
            drop(slot);
            if report.throttled > 0
                && let Some(limit) = gate.throttled()
            {
                log::warn!(
                    "{}: the servers asked us to slow down {} times; from now on at most {limit} account{} at once",
                    account.source_login,
                    report.throttled,
                    if limit == 1 { "" } else { "s" }
                );
            }
            report
        },
        &|account, e| PassReport { account: account.source_login.clone(), error: Some(format!("{e:#}")), ..PassReport::default() },
        on_done,
    );
    gate.remember(parallel);
    reports.sort_by(|a, b| a.account.cmp(&b.account));
    drop(lock);
    Ok(reports)
}

/// Quirk `exchange_throttled`, its second half: a server that throttles gets fewer connections, not
/// only waits. Each account pass holds a slot of this gate for its connections; an account that was
/// throttled halves the slots (down to one) for the rest of the pass, so accounts not started yet
/// wait for one another instead of adding to the load. Exchange Online throttles per tenant, so the
/// limit is for all accounts, and the process remembers it for its next pass: a pass that was throttled
/// leaves the limit where it got to, a pass that was not gives one slot back.
pub struct ConnectionGate {
    state: Mutex<GateState>,
}

struct GateState {
    in_use: usize,
    limit: usize,
    halved: bool,
    /// Accounts waiting for a slot, woken when one is freed.
    waiting: Vec<std::task::Waker>,
}

/// The limit the last throttled pass of this process left, until passes without throttling give the
/// slots back.
static REMEMBERED_LIMIT: Mutex<Option<usize>> = Mutex::new(None);

/// A held slot; dropping it lets a waiting account start.
pub struct GateSlot<'a>(&'a ConnectionGate);

impl ConnectionGate {
    pub fn new(limit: usize) -> ConnectionGate {
        ConnectionGate { state: Mutex::new(GateState { in_use: 0, limit: limit.max(1), halved: false, waiting: Vec::new() }) }
    }

    /// The limit to start a pass with: `parallel`, or less after throttled passes.
    pub fn remembered(parallel: usize) -> usize {
        REMEMBERED_LIMIT.lock().unwrap_or_else(|p| p.into_inner()).map_or(parallel, |l| l.min(parallel))
    }

    /// Keeps this pass's outcome for the next: the reduced limit if it was halved, else one slot more.
    pub fn remember(&self, parallel: usize) {
        let state = self.state();
        let mut remembered = REMEMBERED_LIMIT.lock().unwrap_or_else(|p| p.into_inner());
        *remembered = if state.halved { Some(state.limit) } else { remembered.map(|l| l + 1).filter(|&l| l < parallel) };
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a free slot.
    pub async fn enter(&self) -> GateSlot<'_> {
        std::future::poll_fn(|cx| {
            let mut state = self.state();
            if state.in_use < state.limit {
                state.in_use += 1;
                std::task::Poll::Ready(GateSlot(self))
            } else {
                // Once per waiting account, however often it is polled meanwhile.
                if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    state.waiting.push(cx.waker().clone());
                }
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// Halves the slots after a throttled account; the new limit when it went down.
    pub fn throttled(&self) -> Option<usize> {
        let mut state = self.state();
        let halved = (state.limit / 2).max(1);
        (halved < state.limit).then(|| {
            state.limit = halved;
            state.halved = true;
            halved
        })
    }
}

impl Drop for GateSlot<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_use -= 1;
        for waiting in state.waiting.drain(..) {
            waiting.wake();
        }
    }
}

#[cfg(test)]
mod gate_tests {
    use super::ConnectionGate;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_next_pass_starts_where_a_throttled_one_left_and_recovers_a_slot_a_pass() {
        // The only test touching the process's remembered limit.
        let parallel = 8;
        let first = ConnectionGate::new(ConnectionGate::remembered(parallel));
        assert_eq!(first.throttled(), Some(4));
        assert_eq!(first.throttled(), Some(2));
        first.remember(parallel);
        assert_eq!(ConnectionGate::remembered(parallel), 2);
        for expected in [3, 4, 5, 6, 7, 8, 8] {
            ConnectionGate::new(ConnectionGate::remembered(parallel)).remember(parallel);
            assert_eq!(ConnectionGate::remembered(parallel), expected);
        }
    }

    #[test]
    fn throttling_halves_the_accounts_at_once_down_to_one() {
        let gate = ConnectionGate::new(4);
        assert_eq!(gate.throttled(), Some(2));
        assert_eq!(gate.throttled(), Some(1));
        assert_eq!(gate.throttled(), None);
        // With one slot left, eight workers never overlap.
        let (live, peak, finished) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
        let worker = || async {
            let _slot = gate.enter().await;
            let now = live.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            smol::Timer::after(std::time::Duration::from_millis(5)).await;
            live.fetch_sub(1, Ordering::SeqCst);
            finished.fetch_add(1, Ordering::SeqCst);
        };
        crate::workers::run_together((0..8).map(|_| Box::pin(worker()) as crate::workers::Worker<'_>).collect());
        assert_eq!(peak.load(Ordering::SeqCst), 1);
        assert_eq!(finished.load(Ordering::SeqCst), 8);
    }
}
