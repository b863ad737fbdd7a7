//! An account's folders as lanes through a pass, between the source and the target: the readers
//! take folders from the source into staging, the writer takes staged mail to the target from
//! whichever folder has some, earliest first, and the pipe (`pipe`) tells each side how far the
//! other is. A source on the LAN gets one
//! reader; a source beyond it gets two, on two connections, each taking the next folder not yet
//! taken, because one connection over a WAN idles a round trip at every folder's EXAMINE and
//! listing and at every pipelined group, and the writer waited for it (see `READERS_BEYOND_LAN`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};

use crate::failure::{self, Scope};
use crate::filters::MessageFilter;
use crate::imap::{FolderStatus, ImapError, Session};
use crate::pipe::{Flow, Pipe};
use crate::pull::{self, PullStats};
use crate::push::{self, LookUp, PushStats};
use crate::store::{Account, Store};
use crate::stream_append::Streams;

/// Source connections reading an account's folders at once when the source is beyond the LAN
/// (`Session::beyond_lan`). On the bench's office line (40 ms round trips, 100 Mbit/s each way, 4
/// accounts, servers compressing) one reader per account spent about a third of its time waiting
/// for answers to start, and each account's writer waited for its reader 2 to 5 s of a 16.4 s
/// migration; the account with the most mail finished alone, its one connection using a third of
/// the download. On the LAN an answer starts at once and a second connection would only cost the
/// server and our memory.
pub const READERS_BEYOND_LAN: usize = 2;

/// One selectable folder's way through a pass: its source row and its target folder.
pub struct Lane {
    pub folder_id: i64,
    pub name: String,
    pub target_name: String,
    pub target_wire: String,
}

/// What an account's readers share during a pass: the lanes in order and the next one no reader has
/// taken, the folders' STATUS answers asked for at the start, and where failures are recorded.
pub struct Readers<'a> {
    pub store: &'a Store,
    pub account: &'a Account,
    pub lanes: &'a [Lane],
    pub pull_rows: &'a BTreeMap<i64, pull::FolderRow>,
    pub condstore: bool,
    pub pipe: &'a Pipe,
    pub filter: &'a MessageFilter,
    pub folder_errors: &'a RefCell<Vec<String>>,
    /// Index in `lanes` of the next folder to read.
    pub next: Cell<usize>,
    /// STATUS answers by wire name, taken by the reader that reads the folder.
    pub statuses: RefCell<BTreeMap<String, FolderStatus>>,
}

impl Readers<'_> {
    /// One reader: takes the next folder no reader has taken, reads it from the source into staging
    /// and tells the writer how far it is, until no folder is left. The first reader (`ask_statuses`)
    /// first asks every folder's STATUS the source's listing did not bring, in a few pipelined round
    /// trips, so an account whose folders did not change costs no round trip here, or one, instead
    /// of one per folder. A failure that ends the account's pass stops the other reader and the
    /// writer at their next step.
    pub async fn read(&self, source: &mut Session, stats: &mut PullStats, ask_statuses: bool) -> Result<()> {
        let result = async {
            if ask_statuses {
                let missing: Vec<String> = self
                    .lanes
                    .iter()
                    .filter_map(|lane| self.pull_rows.get(&lane.folder_id))
                    .map(|row| row.wire_name.clone())
                    .filter(|wire_name| !self.statuses.borrow().contains_key(wire_name))
                    .collect();
                let found = source.statuses(&missing, self.condstore).await?;
                self.statuses.borrow_mut().extend(found);
            }
            self.read_lanes(source, stats).await
        }
        .await;
        if result.is_err() {
            self.pipe.stop();
        }
        result
    }

    /// Waits until a reader finds mail to move in some folder (true), or no folder is left to read or
    /// the pass stopped (false).
    pub async fn wait_for_mail(&self) -> bool {
        loop {
            if self.pipe.stopped() || self.next.get() >= self.lanes.len() {
                return false;
            }
            if self.pipe.any_streaming() {
                return true;
            }
            let news = self.pipe.news();
            self.pipe.news_after(news).await;
        }
    }

    async fn read_lanes(&self, source: &mut Session, stats: &mut PullStats) -> Result<()> {
        loop {
            stop_if_requested()?;
            // Paused or removed by the operator meanwhile: stop here, between folders; the writer stops too.
            if self.pipe.stopped() || self.store.account_hold(self.account.id)?.is_some() {
                self.pipe.stop();
                return Ok(());
            }
            let index = self.next.get();
            let Some(lane) = self.lanes.get(index) else { return Ok(()) };
            self.next.set(index + 1);
            let Some(row) = self.pull_rows.get(&lane.folder_id) else {
                self.pipe.set_flow(lane.folder_id, Flow::Done);
                continue;
            };
            let status = self.statuses.borrow_mut().remove(&row.wire_name);
            let pulled = pull::pull_folder(self.store, self.account.id, source, row, self.condstore, status, self.pipe, self.filter, stats)
                .await
                .with_context(|| format!("reading {} on the source", lane.name));
            match pulled {
                Ok(()) => self.pipe.set_flow(lane.folder_id, Flow::Done),
                Err(e) => {
                    self.pipe.set_flow(lane.folder_id, Flow::Failed);
                    folder_failed(self.store, self.account, &lane.name, e, &mut self.folder_errors.borrow_mut())?;
                }
            }
        }
    }
}

/// Where the writer is with one folder.
struct LaneWrite {
    /// The last pass looks at the target folder's UIDVALIDITY again at its first push.
    recheck: bool,
    /// The first push of a folder in a pass looks for copies already on the target; the ones after
    /// it in the same pass append what the readers staged since.
    first: bool,
    /// The look-up found mail on the target to compare with: the folder is pushed once it is whole.
    needs_whole: bool,
    /// Pushed after its reader finished it, or failed.
    finished: bool,
    /// The readers' news count when its last push began (against `Pipe::news_of`).
    pushed_at: Option<u64>,
}

/// The writer: every folder from staging to the target, appending what the readers staged as it
/// arrives, until each folder has been pushed once after its reader finished it (or the target
/// refused a message for a reason that may pass: that folder waits for the next pass, as
/// `push::LookUp::HeldUntilNextPass` says). It takes the first folder (in the lanes' order) with news
/// of its own since its last push, not the folders strictly one
/// after another: with two readers, the writer waited for one reader's folder while the other's sat
/// staged (make bench, office line: each writer idle 4 to 6 s of a 16 s migration).
#[allow(clippy::too_many_arguments)]
pub async fn write_folders(
    store: &Store,
    account: &Account,
    target: &mut Session,
    lanes: &[Lane],
    final_pass: bool,
    size_limit: Option<u64>,
    pipe: &Pipe,
    stats: &mut PushStats,
    folder_errors: &RefCell<Vec<String>>,
    refetch: &RefCell<BTreeSet<i64>>,
) -> Result<()> {
    let mut states: Vec<LaneWrite> = lanes
        .iter()
        .map(|_| LaneWrite { recheck: final_pass, first: true, needs_whole: false, finished: false, pushed_at: None })
        .collect();
    loop {
        let seen = pipe.seen();
        if pipe.stopped() {
            return Ok(());
        }
        let mut unfinished = false;
        let mut next = None;
        for (index, (lane, state)) in lanes.iter().zip(states.iter_mut()).enumerate() {
            if state.finished {
                continue;
            }
            let flow = pipe.flow(lane.folder_id);
            if flow == Flow::Failed {
                state.finished = true;
                pipe.streams.give_up_folder(lane.folder_id);
                continue;
            }
            unfinished = true;
            let ready = match flow {
                Flow::Done => true,
                Flow::Streaming => !state.needs_whole && state.pushed_at.is_none_or(|at| pipe.news_of(lane.folder_id) > at),
                Flow::Waiting | Flow::Failed => false,
            };
            if ready {
                next = Some((index, flow));
                break;
            }
        }
        if !unfinished {
            return Ok(());
        }
        let Some((index, flow)) = next else {
            // Idle until the readers' news: a reader waiting for room need not wait for us.
            pipe.freed();
            pipe.news_after(seen).await;
            continue;
        };
        let (lane, state) = (&lanes[index], &mut states[index]);
        state.pushed_at = Some(seen);
        let refetched_before = stats.refetched;
        let pushed = match stop_if_requested() {
            Ok(()) => {
                pipe.set_writer_busy(true);
                let pushed = push_lane(
                    store,
                    account,
                    target,
                    lane,
                    state.first,
                    flow == Flow::Done,
                    state.recheck,
                    size_limit,
                    Some(&pipe.streams),
                    stats,
                )
                .await;
                pipe.set_writer_busy(false);
                pipe.freed();
                pushed
            }
            Err(e) => Err(e),
        };
        match pushed {
            Ok(LookUp::HeldUntilNextPass) => {
                // Not pushed again this pass, the refetch round included (that would be the refused
                // message's second attempt within seconds), and its reader stops staging it: the rest
                // comes next pass, not into staging past its limit while nothing drains it.
                state.finished = true;
                refetch.borrow_mut().remove(&lane.folder_id);
                pipe.hold(lane.folder_id);
                if final_pass {
                    // The last pass before verification: the operator reads why the folder is short.
                    let why = anyhow::anyhow!("the target refused a message for a reason that may pass; the folder goes on next pass");
                    folder_failed(store, account, &lane.name, why, &mut folder_errors.borrow_mut())?;
                }
            }
            Ok(look_up) => {
                if stats.refetched > refetched_before {
                    refetch.borrow_mut().insert(lane.folder_id);
                }
                state.recheck = false;
                state.first &= look_up != LookUp::Done;
                state.needs_whole = look_up == LookUp::NeedsWholeFolder;
                state.finished = flow == Flow::Done;
            }
            Err(e) => {
                state.finished = true;
                folder_failed(store, account, &lane.name, e, &mut folder_errors.borrow_mut())?;
            }
        }
        // A stream of the folder's messages the writer did not complete will not be (a MOVE or the
        // look-up took its row, or the folder stopped): its connection and slot go now.
        if state.finished {
            pipe.streams.give_up_folder(lane.folder_id);
        }
    }
}

/// One push of a folder's staged messages to its target folder (`look_up`: see `push::push_folder`).
#[allow(clippy::too_many_arguments)]
pub async fn push_lane(
    store: &Store,
    account: &Account,
    target: &mut Session,
    lane: &Lane,
    look_up: bool,
    folder_whole: bool,
    recheck: bool,
    size_limit: Option<u64>,
    streams: Option<&Streams>,
    stats: &mut PushStats,
) -> Result<LookUp> {
    let target_row = store.write(|tx| tx.target_folder(account.id, &lane.target_name, &lane.target_wire))?;
    push::push_folder(
        store,
        account.id,
        target,
        lane.folder_id,
        &lane.name,
        &target_row,
        size_limit,
        look_up,
        folder_whole,
        recheck,
        streams,
        stats,
    )
    .await
    .with_context(|| format!("copying {} to {}", lane.name, lane.target_name))
}

/// Ends the pass when the service is asked to stop (SIGTERM): the next pass continues from the journal.
pub fn stop_if_requested() -> Result<()> {
    if crate::fault::shutting_down() {
        anyhow::bail!("stopped by request; the next pass continues where this one stopped");
    }
    Ok(())
}

/// A folder's failure: an account-wide one ends the account's pass (returned), any other is recorded
/// against the folder and the account goes on.
pub fn folder_failed(store: &Store, account: &Account, name: &str, e: anyhow::Error, folder_errors: &mut Vec<String>) -> Result<()> {
    if failure::policy(&e).0 >= Scope::Account {
        return Err(e);
    }
    let text = format!("{e:#}");
    log::warn!("{}: {text}", account.source_login);
    if let Some(ImapError::Throttled { delay, .. }) = crate::imap::kind_of(&e) {
        log::warn!("{}: the server still asked to wait {} ms; {name} goes on next pass", account.source_login, delay.as_millis());
    }
    store.record_skip(account.id, None, name, "folder could not be copied", Some(&text))?;
    folder_errors.push(text);
    Ok(())
}
