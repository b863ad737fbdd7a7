//! The commands on an authenticated session, each turned into the shape its caller needs: ENABLE,
//! NAMESPACE, LIST/LSUB, STATUS (alone, pipelined, or inside LIST where LIST-STATUS is offered),
//! SELECT/EXAMINE, UID FETCH of metadata, UID SEARCH, CREATE, SUBSCRIBE, UID STORE, GETQUOTAROOT and
//! APPEND. APPEND writes its own line and streams each body from the caller slice by slice (imap-next
//! would hold a whole message), and LIST with RETURN options is written by us too (imap-codec has no
//! form for it); body FETCH is `body_fetch`.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;

use anyhow::{Result, anyhow, bail};
use imap_next::State;
use imap_next::client::Event;
use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::command::{CommandBody, FetchModifier, SelectParameter};
use imap_next::imap_types::core::{AString, Tag, Vec1};
use imap_next::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Code, Data, StatusKind};
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::response::{attribute_name, meta_of};
use super::{Answer, Answers, AppendAnswer, FolderStatus, ImapError, ListedFolder, Listing, MessageMeta, Selected, Session, mailbox_wire};

/// One message to APPEND: flags, date, size, and a source of its bytes in order.
pub struct AppendItem<'a> {
    pub flags: &'a [String],
    pub internal_date: Option<&'a str>,
    pub size: u64,
    /// Called repeatedly; returns the next slice of the body, or an empty Vec at the end.
    pub body: &'a mut dyn FnMut() -> Result<Vec<u8>>,
}

/// An APPEND begun with `Session::begin_append` whose literal is not all sent yet.
pub struct AppendUnderWay {
    tag: Tag<'static>,
    size: u64,
    written: u64,
}

/// What to FETCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchItem {
    Uid,
    Flags,
    InternalDate,
    Size,
    ModSeq,
    /// BODY.PEEK[HEADER.FIELDS (...)]: a few header fields, e.g. Subject and Date for a report.
    HeaderFields(&'static [&'static str]),
}

impl FetchItem {
    fn name(&self) -> MessageDataItemName<'static> {
        match *self {
            FetchItem::Uid => MessageDataItemName::Uid,
            FetchItem::Flags => MessageDataItemName::Flags,
            FetchItem::InternalDate => MessageDataItemName::InternalDate,
            FetchItem::Size => MessageDataItemName::Rfc822Size,
            FetchItem::ModSeq => MessageDataItemName::ModSeq,
            FetchItem::HeaderFields(fields) => {
                let names: Vec<AString<'static>> = fields.iter().filter_map(|f| AString::try_from(*f).ok()).collect();
                let section = Vec1::try_from(names).map(|names| Section::HeaderFields(None, names)).unwrap_or(Section::Header(None));
                MessageDataItemName::BodyExt { section: Some(section), partial: None, peek: true }
            }
        }
    }
}

impl Session {
    /// ENABLE CONDSTORE (and QRESYNC) when offered, so SELECT reports HIGHESTMODSEQ and FETCH takes
    /// CHANGEDSINCE. Returns whether mod-sequences are available.
    pub async fn enable_condstore(&mut self) -> Result<bool> {
        if !self.has("CONDSTORE") && !self.has("QRESYNC") {
            return Ok(false);
        }
        if self.has("ENABLE") {
            use imap_next::imap_types::extensions::enable::CapabilityEnable;
            let mut caps = vec![CapabilityEnable::CondStore];
            // QRESYNC in the same command (no round trip more): mirroring asks EXAMINE for the UIDs
            // expunged since the last pass instead of listing every UID (`examine_vanished`).
            let qresync = self.has("QRESYNC");
            if qresync {
                caps.push(CapabilityEnable::try_from("QRESYNC").map_err(|_| anyhow!("QRESYNC is no capability"))?);
            }
            let body = CommandBody::Enable { capabilities: Vec1::try_from(caps).map_err(|_| anyhow!("empty ENABLE"))? };
            let answer = self.simple(body).await?;
            self.qresync = qresync && answer.is_ok();
            return Ok(answer.is_ok());
        }
        Ok(true)
    }

    /// The personal namespace: prefix and delimiter ("INBOX." and '.' on old hosts).
    pub async fn personal_namespace(&mut self) -> Result<Option<(String, Option<char>)>> {
        if !self.has("NAMESPACE") {
            return Ok(None);
        }
        let data = self.ok(CommandBody::Namespace, "NAMESPACE").await?;
        for item in data {
            if let Data::Namespace { personal, .. } = item
                && let Some(first) = personal.first()
            {
                let prefix = String::from_utf8_lossy(first.prefix.as_ref()).into_owned();
                return Ok(Some((prefix, first.delimiter.as_ref().map(|d| d.inner()))));
            }
        }
        Ok(None)
    }

    /// NAMESPACE's three parts: the personal namespace (as `personal_namespace` gives it), and the
    /// prefixes (as the server spells them) of other users' and of shared folders, which the folder
    /// choice leaves out (`folder_choice`). A server without NAMESPACE has only a personal one.
    pub async fn namespaces(&mut self) -> Result<(Option<(String, Option<char>)>, Vec<String>, Vec<String>)> {
        if !self.has("NAMESPACE") {
            return Ok((None, Vec::new(), Vec::new()));
        }
        let data = self.ok(CommandBody::Namespace, "NAMESPACE").await?;
        for item in data {
            if let Data::Namespace { personal, other, shared } = item {
                let prefixes = |list: &[imap_next::imap_types::extensions::namespace::Namespace<'_>]| -> Vec<String> {
                    list.iter().map(|n| String::from_utf8_lossy(n.prefix.as_ref()).into_owned()).filter(|p| !p.is_empty()).collect()
                };
                let first = personal.first().map(|first| {
                    (String::from_utf8_lossy(first.prefix.as_ref()).into_owned(), first.delimiter.as_ref().map(|d| d.inner()))
                });
                return Ok((first, prefixes(&other), prefixes(&shared)));
            }
        }
        Ok((None, Vec::new(), Vec::new()))
    }

    /// LIST "" "*": every folder with its attributes (special-use ones included, as Dovecot and most
    /// servers send them on a plain LIST).
    pub async fn list(&mut self) -> Result<Vec<ListedFolder>> {
        self.list_kind(false).await
    }

    /// LSUB "" "*": the subscribed folders.
    pub async fn lsub(&mut self) -> Result<Vec<ListedFolder>> {
        self.list_kind(true).await
    }

    async fn list_kind(&mut self, lsub: bool) -> Result<Vec<ListedFolder>> {
        let reference = Mailbox::try_from("").map_err(|_| anyhow!("empty reference"))?;
        let pattern = ListMailbox::try_from("*").map_err(|_| anyhow!("bad pattern"))?;
        let body = if lsub {
            CommandBody::Lsub { reference, mailbox_wildcard: pattern }
        } else {
            CommandBody::List { reference, mailbox_wildcard: pattern }
        };
        let data = self.ok(body, if lsub { "LSUB" } else { "LIST" }).await?;
        let mut out: Vec<ListedFolder> = data.into_iter().filter_map(listed_folder).collect();
        out.sort_by(|a, b| a.wire_name.cmp(&b.wire_name));
        Ok(out)
    }

    /// LIST "" "*" and, where the server offers LIST-STATUS (RFC 5819), every selectable folder's
    /// STATUS in the same answer: `LIST "" "*" RETURN (CHILDREN SPECIAL-USE STATUS (...))`, one round
    /// trip for the whole tree instead of a LIST and then `statuses`. CHILDREN and SPECIAL-USE (when
    /// offered) ask for what a plain LIST brings anyway: an extended LIST leaves out what it is not
    /// asked for (Dovecot 2.3 then sends neither `\HasChildren` nor `\Sent`). Without LIST-STATUS,
    /// or when the server refuses the extended command, this is `list` and no status.
    ///
    /// A folder may come without its STATUS: `\Noselect` and `\NonExistent` ones get none (RFC 5819
    /// section 2), and a server may leave one out that it cannot open (Dovecot 2.3 sends an untagged
    /// `NO [SERVERBUG]` in its place); the caller asks for those with `statuses`. A STATUS for a name
    /// the answer did not list is dropped.
    pub async fn list_with_status(&mut self, condstore: bool) -> Result<Listing> {
        if !self.has("LIST-STATUS") {
            return Ok(Listing { folders: self.list().await?, statuses: BTreeMap::new() });
        }
        let mut options: Vec<&str> = Vec::new();
        if self.has("LIST-EXTENDED") || self.has("CHILDREN") {
            options.push("CHILDREN");
        }
        if self.has("SPECIAL-USE") {
            options.push("SPECIAL-USE");
        }
        options.push("STATUS");
        let text = format!("LIST \"\" \"*\" RETURN ({} ({}))", options.join(" "), status_words(condstore));
        let mut folders = Vec::new();
        let mut statuses = BTreeMap::new();
        let answer = self
            .run_raw("LIST", &text, &mut |data| {
                match data {
                    Data::Status { mailbox, items } => {
                        statuses.insert(mailbox_wire(&mailbox), status_of(items.iter()));
                    }
                    other => folders.extend(listed_folder(other)),
                }
                Ok(())
            })
            .await?;
        if !answer.is_ok() {
            log::info!("{}: the server offers LIST-STATUS but refused it ({}); listing without", self.label, answer.words());
            return Ok(Listing { folders: self.list().await?, statuses: BTreeMap::new() });
        }
        folders.sort_by(|a: &ListedFolder, b| a.wire_name.cmp(&b.wire_name));
        let listed: BTreeSet<&str> = folders.iter().map(|f| f.wire_name.as_str()).collect();
        statuses.retain(|name, _| listed.contains(name.as_str()));
        Ok(Listing { folders, statuses })
    }

    pub async fn status(&mut self, wire_name: &str, condstore: bool) -> Result<FolderStatus> {
        let body = CommandBody::Status { mailbox: mailbox_of(wire_name)?, item_names: status_items(condstore).into() };
        let data = self.ok(body, &format!("STATUS {wire_name}")).await?;
        let mut status = FolderStatus::default();
        for item in data {
            if let Data::Status { items, .. } = item {
                status = status_of(items.iter());
            }
        }
        Ok(status)
    }

    /// How many messages a folder holds and, where the server offers STATUS=SIZE (RFC 8438), their
    /// total size, by one STATUS without opening it (the check's left-out folders).
    pub async fn messages_and_size(&mut self, wire_name: &str) -> Result<(u32, Option<u64>)> {
        let size = self.has("STATUS=SIZE");
        let mut items = vec![StatusDataItemName::Messages];
        if size {
            items.push(StatusDataItemName::Size);
        }
        let body = CommandBody::Status { mailbox: mailbox_of(wire_name)?, item_names: items.into() };
        let data = self.ok(body, &format!("STATUS {wire_name}")).await?;
        let (mut messages, mut bytes) = (0, None);
        for item in data {
            if let Data::Status { items, .. } = item {
                for item in items.iter() {
                    match item {
                        StatusDataItem::Messages(n) => messages = *n,
                        StatusDataItem::Size(n) if size => bytes = Some(*n),
                        _ => {}
                    }
                }
            }
        }
        Ok((messages, bytes))
    }

    /// STATUS of many folders in few round trips: the commands go pipelined, `STATUS_PIPELINE` at a
    /// time, so a pass over an unchanged account costs one round trip per that many folders instead
    /// of one per folder. A folder the server refuses is left out (its own `status` says why later).
    pub async fn statuses(&mut self, wire_names: &[String], condstore: bool) -> Result<BTreeMap<String, FolderStatus>> {
        let mut found = BTreeMap::new();
        for group in wire_names.chunks(STATUS_PIPELINE) {
            let mut bodies = Vec::with_capacity(group.len());
            for wire_name in group {
                bodies.push(CommandBody::Status { mailbox: mailbox_of(wire_name)?, item_names: status_items(condstore).into() });
            }
            let wanted: BTreeSet<&str> = group.iter().map(String::as_str).collect();
            let mut answered = BTreeMap::new();
            self.run_many(bodies, Answers::Kept, &mut |data| {
                if let Data::Status { mailbox, items } = data {
                    let wire = mailbox_wire(&mailbox);
                    // INBOX is INBOX in any case; other names come back as they were asked.
                    let key = if wire.eq_ignore_ascii_case("INBOX") {
                        group.iter().find(|n| n.eq_ignore_ascii_case("INBOX")).cloned().unwrap_or(wire)
                    } else {
                        wire
                    };
                    if wanted.contains(key.as_str()) {
                        answered.insert(key, status_of(items.iter()));
                    }
                }
                Ok(())
            })
            .await?;
            found.extend(answered);
        }
        Ok(found)
    }

    /// SELECT (read-write) or EXAMINE (read-only, used on the source so nothing there changes).
    pub async fn select(&mut self, wire_name: &str, read_only: bool, condstore: bool) -> Result<Selected> {
        self.pending_codes.clear();
        self.exists = 0;
        let mailbox = mailbox_of(wire_name)?;
        let parameters = if condstore { vec![SelectParameter::CondStore] } else { vec![] };
        let body = if read_only { CommandBody::Examine { mailbox, parameters } } else { CommandBody::Select { mailbox, parameters } };
        let (answer, _) = self.run(body).await?;
        if !answer.is_ok() {
            let command = if read_only { "EXAMINE" } else { "SELECT" };
            return Err(self.refused(command, format!("cannot open folder {wire_name}: {}", answer.words()), &answer));
        }
        Ok(self.opened(answer.code))
    }

    /// What SELECT or EXAMINE told about the folder just opened: EXISTS, and the codes of its untagged
    /// OKs and of its tagged answer (`answer_code`).
    pub(super) fn opened(&mut self, answer_code: Option<Code<'static>>) -> Selected {
        let mut selected = Selected { exists: self.exists, ..Selected::default() };
        for code in self.pending_codes.drain(..).chain(answer_code) {
            match code {
                Code::UidValidity(v) => selected.uidvalidity = Some(v.get()),
                Code::UidNext(v) => selected.uidnext = Some(v.get()),
                Code::HighestModSeq(v) => selected.highest_modseq = Some(v.get()),
                _ => {}
            }
        }
        selected
    }

    /// UID FETCH with the given items over a UID set; each message's answer goes to `on_message` as it
    /// arrives. `changed_since` adds the CONDSTORE modifier.
    pub async fn uid_fetch(
        &mut self,
        uid_sets: &[String],
        items: &[FetchItem],
        changed_since: Option<u64>,
        on_message: &mut dyn FnMut(MessageMeta) -> Result<()>,
    ) -> Result<()> {
        let requests: Vec<(&str, &[FetchItem])> = uid_sets.iter().map(|set| (set.as_str(), items)).collect();
        self.uid_fetch_each(&requests, changed_since, on_message).await
    }

    /// Like `uid_fetch`, but each pipelined command has its own UID set and items: the partial ranges
    /// of one large message go out together, so a message in many small slices costs one round trip
    /// per pipeline rather than one per slice.
    pub async fn uid_fetch_each(
        &mut self,
        requests: &[(&str, &[FetchItem])],
        changed_since: Option<u64>,
        on_message: &mut dyn FnMut(MessageMeta) -> Result<()>,
    ) -> Result<()> {
        let mut bodies = Vec::new();
        for &(set, items) in requests {
            let sequence_set = SequenceSet::try_from(set).map_err(|_| anyhow!("bad UID set {set}"))?;
            let names: Vec<MessageDataItemName<'static>> = items.iter().map(FetchItem::name).collect();
            let modifiers = changed_since.and_then(NonZeroU64::new).map(|m| vec![FetchModifier::ChangedSince(m)]).unwrap_or_default();
            bodies.push(CommandBody::Fetch {
                sequence_set,
                macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
                uid: true,
                modifiers,
            });
        }
        let answers = self
            .run_many(bodies, Answers::Streamed, &mut |data| {
                if let Data::Fetch { items, .. } = data {
                    let meta = meta_of(items.into_inner());
                    if meta.uid != 0 {
                        on_message(meta)?;
                    }
                }
                Ok(())
            })
            .await?;
        for answer in answers {
            if !answer.is_ok() {
                return Err(self.refused("FETCH", format!("FETCH failed: {}", answer.words()), &answer));
            }
        }
        Ok(())
    }

    /// UID SEARCH ALL: every UID in the selected folder. (Passes use UID FETCH ranges instead, which
    /// also bring sizes; this stays for tools and diagnostics that need only the UIDs.)
    #[allow(dead_code)]
    pub async fn uid_search_all(&mut self) -> Result<Vec<u32>> {
        let body = CommandBody::search(None, Vec1::from(imap_next::imap_types::search::SearchKey::All), true);
        let data = self.ok(body, "UID SEARCH").await?;
        let mut uids = Vec::new();
        for item in data {
            if let Data::Search(found, ..) = item {
                uids.extend(found.iter().map(|u| u.get()));
            }
        }
        uids.sort_unstable();
        Ok(uids)
    }

    /// CREATE for each folder, pipelined (the server takes them in order, so a parent listed before
    /// its child is made first): one round trip per `STATUS_PIPELINE` folders, not one per folder.
    /// One answer per name, in order.
    pub async fn create_all(&mut self, wire_names: &[String]) -> Result<Vec<Answer>> {
        self.folder_commands(wire_names, |mailbox| CommandBody::Create { mailbox }).await
    }

    /// SUBSCRIBE for each folder, pipelined like `create_all`; one answer per name, in order.
    pub async fn subscribe_all(&mut self, wire_names: &[String]) -> Result<Vec<Answer>> {
        self.folder_commands(wire_names, |mailbox| CommandBody::Subscribe { mailbox }).await
    }

    async fn folder_commands(
        &mut self,
        wire_names: &[String],
        command: impl Fn(Mailbox<'static>) -> CommandBody<'static>,
    ) -> Result<Vec<Answer>> {
        let mut answers = Vec::with_capacity(wire_names.len());
        for names in wire_names.chunks(STATUS_PIPELINE) {
            let bodies = names.iter().map(|n| mailbox_of(n).map(&command)).collect::<Result<Vec<_>>>()?;
            answers.extend(self.run_many(bodies, Answers::Kept, &mut |_| Ok(())).await?);
        }
        if answers.len() != wire_names.len() {
            bail!("{}: {} answers to {} folder commands", self.label, answers.len(), wire_names.len());
        }
        Ok(answers)
    }

    /// UID STORE +FLAGS/-FLAGS .SILENT on a UID set.
    pub async fn uid_store_set(&mut self, uid_set: &str, add: bool, flags: &[String]) -> Result<Answer> {
        let flags: Vec<Flag<'static>> = flags.iter().filter_map(|f| Flag::try_from(f.as_str()).ok().map(|f| f.into_static())).collect();
        if flags.is_empty() {
            return Ok(Answer { kind: StatusKind::Ok, code: None, text: String::new() });
        }
        let body = CommandBody::Store {
            sequence_set: SequenceSet::try_from(uid_set).map_err(|_| anyhow!("bad UID set {uid_set}"))?,
            kind: if add { StoreType::Add } else { StoreType::Remove },
            response: StoreResponse::Silent,
            flags,
            uid: true,
            modifiers: vec![],
        };
        self.simple(body).await
    }

    pub fn supports_multiappend(&self) -> bool {
        self.has("MULTIAPPEND")
    }

    /// APPENDs messages to one folder. With MULTIAPPEND (RFC 3502) several go in one command and one
    /// server transaction; otherwise one command each. The body is streamed from `item.body` slice by
    /// slice with LITERAL+ when offered, else after the server's continuation. Returns one answer per
    /// command sent, and calls `after_literal` once the last literal byte is written but before the
    /// answer is read (a journal point for tests).
    pub async fn append(
        &mut self,
        wire_name: &str,
        items: &mut [AppendItem<'_>],
        after_literal: &mut dyn FnMut() -> Result<()>,
    ) -> Result<AppendAnswer> {
        self.begin_command("APPEND", Answers::Kept)?;
        let tag = self.tag();
        self.pending_codes.clear();
        for (index, item) in items.iter_mut().enumerate() {
            let head = if index == 0 { format!("{} APPEND {}", tag.inner(), quote_mailbox(wire_name)) } else { String::new() };
            if let Some(refusal) = self.announce_literal(&tag, head, item.flags, item.internal_date, item.size).await? {
                return Ok(AppendAnswer { answer: refusal });
            }
            let mut open = AppendUnderWay { tag: tag.clone(), size: item.size, written: 0 };
            loop {
                let chunk = (item.body)().map_err(|e| self.left_mid_append(e))?;
                if chunk.is_empty() {
                    break;
                }
                self.append_more(&mut open, &chunk).await?;
            }
            if open.written != item.size {
                return Err(self.left_mid_append(anyhow!("staged body is {} bytes, recorded size {}", open.written, item.size)));
            }
        }
        self.end_append(tag, after_literal).await
    }

    /// Begins an APPEND of one message whose bytes are still coming (`stream_append`): the command and
    /// the literal's announcement go now, the bytes with `append_more`, and `finish_append` sends the
    /// last ones and reads the answer. Until then the server holds an unfinished command, which it
    /// drops with the connection: nothing is stored. The inner Err is the server's refusal of the
    /// literal (a synchronizing one, without LITERAL+).
    pub async fn begin_append(
        &mut self,
        wire_name: &str,
        flags: &[String],
        internal_date: Option<&str>,
        size: u64,
    ) -> Result<std::result::Result<AppendUnderWay, AppendAnswer>> {
        self.begin_command("APPEND", Answers::Kept)?;
        let tag = self.tag();
        self.pending_codes.clear();
        let head = format!("{} APPEND {}", tag.inner(), quote_mailbox(wire_name));
        if let Some(refusal) = self.announce_literal(&tag, head, flags, internal_date, size).await? {
            return Ok(Err(AppendAnswer { answer: refusal }));
        }
        Ok(Ok(AppendUnderWay { tag, size, written: 0 }))
    }

    /// Sends more of an APPEND's literal; never past its announced size.
    pub async fn append_more(&mut self, open: &mut AppendUnderWay, bytes: &[u8]) -> Result<()> {
        open.written += bytes.len() as u64;
        if open.written > open.size {
            return Err(self.left_mid_append(anyhow!("the body is longer than its announced size of {} bytes", open.size)));
        }
        self.write_all(bytes).await
    }

    /// Sends what was written so far (a compressing connection flushes its deflate stream).
    pub async fn flush_writes(&mut self) -> Result<()> {
        self.flush().await
    }

    /// Sends the last bytes of an APPEND begun with `begin_append`, ends the command and reads its
    /// answer; `after_literal` as for `append`.
    pub async fn finish_append(
        &mut self,
        mut open: AppendUnderWay,
        last: &[u8],
        after_literal: &mut dyn FnMut() -> Result<()>,
    ) -> Result<AppendAnswer> {
        self.append_more(&mut open, last).await?;
        if open.written != open.size {
            return Err(self.left_mid_append(anyhow!("the body is {} bytes, announced {}", open.written, open.size)));
        }
        self.end_append(open.tag, after_literal).await
    }

    /// Sends one message's flags, date and literal announcement (after `head`, the command's start for
    /// the first message); without LITERAL+ waits for the continuation, whose refusal is returned.
    async fn announce_literal(
        &mut self,
        tag: &Tag<'static>,
        mut line: String,
        flags: &[String],
        internal_date: Option<&str>,
        size: u64,
    ) -> Result<Option<Answer>> {
        let literal_plus = self.has("LITERAL+");
        line.push_str(" (");
        line.push_str(&flags.iter().filter(|f| !f.eq_ignore_ascii_case("\\Recent")).cloned().collect::<Vec<_>>().join(" "));
        line.push(')');
        if let Some(date) = internal_date {
            line.push_str(&format!(" \"{date}\""));
        }
        line.push_str(&format!(" {{{}{}}}\r\n", size, if literal_plus { "+" } else { "" }));
        self.write_all(line.as_bytes()).await?;
        if !literal_plus {
            self.flush().await?;
            return self.wait_continuation(tag).await;
        }
        Ok(None)
    }

    /// Ends an APPEND command after its last literal and reads its answer.
    async fn end_append(&mut self, tag: Tag<'static>, after_literal: &mut dyn FnMut() -> Result<()>) -> Result<AppendAnswer> {
        self.write_all(b"\r\n").await?;
        self.flush().await?;
        after_literal()?;
        let tags = vec![tag.clone()];
        let mut answers = BTreeMap::new();
        while answers.is_empty() {
            match self.client.next() {
                Ok(Event::ContinuationRequestReceived { .. }) => {}
                Ok(event) => self.on_event(event, &tags, &mut answers, &mut |_| Ok(())).map_err(|e| self.left_mid_command(e))?,
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
        let answer = answers.remove(tag.inner()).ok_or_else(|| anyhow!("no answer to APPEND"))?;
        Ok(AppendAnswer { answer })
    }

    /// A failure in the middle of an APPEND's literal: the connection cannot be used again.
    fn left_mid_append(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(ImapError::lost(&self.label, "the connection was left in the middle of an APPEND"))
    }

    /// Waits for "+" after a synchronizing literal; a tagged NO/BAD instead ends the command.
    async fn wait_continuation(&mut self, tag: &Tag<'static>) -> Result<Option<Answer>> {
        let tags = vec![tag.clone()];
        let mut answers = BTreeMap::new();
        loop {
            match self.client.next() {
                Ok(Event::ContinuationRequestReceived { .. }) => return Ok(None),
                Ok(event) => {
                    self.on_event(event, &tags, &mut answers, &mut |_| Ok(())).map_err(|e| self.left_mid_command(e))?;
                    if let Some(answer) = answers.remove(tag.inner()) {
                        return Ok(Some(answer));
                    }
                }
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
    }

    /// GETQUOTAROOT on INBOX: (used KiB, limit KiB) of the tightest STORAGE root.
    pub async fn storage_quota(&mut self) -> Result<Option<(u64, u64)>> {
        if !self.has("QUOTA") {
            return Ok(None);
        }
        let body = CommandBody::GetQuotaRoot { mailbox: Mailbox::Inbox };
        let (answer, data) = self.run(body).await?;
        if !answer.is_ok() {
            return Ok(None);
        }
        let mut best: Option<(u64, u64)> = None;
        for item in data {
            if let Data::Quota { quotas, .. } = item {
                for q in quotas.as_ref() {
                    if matches!(q.resource, imap_next::imap_types::extensions::quota::Resource::Storage) {
                        let free = q.limit.saturating_sub(q.usage);
                        if best.map(|(u, l)| l.saturating_sub(u) > free).unwrap_or(true) {
                            best = Some((q.usage, q.limit));
                        }
                    }
                }
            }
        }
        Ok(best)
    }

    /// The APPENDLIMIT capability value, if the server announces a global one.
    pub fn append_limit(&self) -> Option<u64> {
        self.capabilities.iter().find_map(|c| c.strip_prefix("APPENDLIMIT=").and_then(|v| v.parse().ok()))
    }

    /// The largest message this server takes: its APPENDLIMIT, else the operator's setting, else its
    /// kind's default (quirk `exchange_message_size_limit`: Exchange Online takes 35 MB unless the
    /// tenant raised it, up to 150 MB, which the operator sets with --message-size-limit).
    pub fn message_size_limit(&self, operator_limit: Option<u64>) -> Option<u64> {
        self.quirks().message_size_limit(self.append_limit(), operator_limit)
    }
}

/// Folder commands sent in one round trip: STATUS by `statuses`, CREATE and SUBSCRIBE by `create_all`
/// and `subscribe_all`.
const STATUS_PIPELINE: usize = 64;

/// The STATUS items a pass reads: enough to tell an unchanged folder (HIGHESTMODSEQ with CONDSTORE).
fn status_items(condstore: bool) -> Vec<StatusDataItemName> {
    let mut names = vec![StatusDataItemName::Messages, StatusDataItemName::UidNext, StatusDataItemName::UidValidity];
    if condstore {
        names.push(StatusDataItemName::HighestModSeq);
    }
    names
}

/// `status_items` as the words of a command we write ourselves (`list_with_status`).
fn status_words(condstore: bool) -> &'static str {
    if condstore { "MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ" } else { "MESSAGES UIDNEXT UIDVALIDITY" }
}

/// A LIST or LSUB answer as a `ListedFolder`; None for any other data.
fn listed_folder(data: Data<'static>) -> Option<ListedFolder> {
    let (items, delimiter, mailbox) = match data {
        Data::List { items, delimiter, mailbox } | Data::Lsub { items, delimiter, mailbox } => (items, delimiter, mailbox),
        _ => return None,
    };
    Some(ListedFolder {
        wire_name: mailbox_wire(&mailbox),
        delimiter: delimiter.map(|d| d.inner()),
        attributes: items.iter().map(attribute_name).collect(),
    })
}

/// A STATUS answer's items as a `FolderStatus`.
fn status_of<'a>(items: impl Iterator<Item = &'a StatusDataItem>) -> FolderStatus {
    let mut status = FolderStatus::default();
    for item in items {
        match item {
            StatusDataItem::Messages(n) => status.messages = *n,
            StatusDataItem::UidNext(n) => status.uidnext = Some(n.get()),
            StatusDataItem::UidValidity(n) => status.uidvalidity = Some(n.get()),
            StatusDataItem::HighestModSeq(n) => status.highest_modseq = Some(*n),
            _ => {}
        }
    }
    status
}

pub(super) fn mailbox_of(wire_name: &str) -> Result<Mailbox<'static>> {
    let astring = AString::try_from(wire_name.to_string()).map_err(|_| anyhow!("folder name {wire_name:?} cannot be sent to IMAP"))?;
    Ok(Mailbox::from(astring))
}

/// A mailbox name as an IMAP quoted string, for the APPEND line we write ourselves.
fn quote_mailbox(wire_name: &str) -> String {
    let mut out = String::with_capacity(wire_name.len() + 2);
    out.push('"');
    for c in wire_name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_mailbox("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
