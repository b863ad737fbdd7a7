//! A session with one server: connecting (through `connection`), the greeting and STARTTLS, tags,
//! the command loop around imap-next (pipelined commands, their tagged answers, untagged data handed
//! on as it comes, `* BYE`), throttling waited out, capabilities, and login by AUTHENTICATE PLAIN,
//! XOAUTH2 or LOGIN, or as a user by an admin's AUTHENTICATE PLAIN with an authorization identity.
//! The commands themselves are `commands` and `body_fetch`; the bounds every read runs under are
//! `stream`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::response::{Code, Data, Status};
use imap_next::{Interrupt, Io, State};

use super::compress::Wire;
use super::connection::{Conn, Trust, connect_tls, is_loopback, tcp_connect};
use super::error::BYE_WITH_REASON;
use super::response::{answer_has_caps, answer_of};
use super::stream::{Budget, Framing, READ_BUF};
use super::{
    Answer, Answers, Endpoint, ImapError, PENDING_CODES_LIMIT, RESPONSE_LIMIT, ServerMisbehaved, TlsMode, kind_of, throttle_delay,
};
use crate::quirks::Quirks;
use crate::quirks::ServerKind;
use crate::secret::Secret;

/// A connection in the authenticated state (or later).
pub struct Session {
    pub(super) stream: Wire,
    pub(super) client: Client,
    pub(super) next_tag: u32,
    pub(super) capabilities: BTreeSet<String>,
    /// Bytes read from the socket; `read_start..read_end` of it not yet parsed. Outside a streamed
    /// body fetch (`body_fetch`) everything read has been handed to imap-next and the range is empty.
    pub(super) read_buf: Vec<u8>,
    pub(super) read_start: usize,
    pub(super) read_end: usize,
    /// Untagged OK codes seen since the last command that SELECT reads (at most `PENDING_CODES_LIMIT`).
    pub(super) pending_codes: Vec<Code<'static>>,
    pub(super) exists: u32,
    /// Who we are, for error messages: "source alice@example.se".
    pub(super) label: String,
    /// Times this server asked us to back off (throttling answers obeyed).
    pub throttled: u64,
    /// The command in progress: its deadline and what its answers cost so far.
    pub(super) budget: Budget,
    /// Where the bytes handed to imap-next are: in a line, in a literal.
    pub(super) framing: Framing,
    /// Bytes of the FETCH answer line `body_fetch` is reading (literals not counted).
    pub(crate) fetch_line: usize,
    /// Set when the server broke a bound: the connection is mid-answer and no command goes out on it again.
    pub(super) broken: Option<ServerMisbehaved>,
    /// What the operator said this server is, and the text of its greeting: with the capabilities
    /// after login, what `quirks` is computed from.
    pub(super) kind: ServerKind,
    pub(super) greeting: String,
    /// This server's quirks, computed once at login (none before).
    pub(super) quirks: Quirks,
    /// QRESYNC is enabled (with CONDSTORE): EXAMINE can ask for the UIDs expunged since a mod-sequence.
    pub(super) qresync: bool,
    /// How long the last batch of commands took from sending to its last answer (the login's, for
    /// `measure_beyond_lan`).
    pub(super) last_round_trip: Option<Duration>,
    /// The line's round trip, measured once after login (`measure_beyond_lan`).
    pub(super) line_round_trip: Option<Duration>,
}

impl Session {
    /// Connects, negotiates TLS and reads the greeting; not yet logged in. `kind` is what the operator
    /// said this server is; with the greeting and the capabilities it decides `quirks` at login.
    pub async fn connect(endpoint: &Endpoint, label: &str, kind: ServerKind) -> Result<Session> {
        Session::connect_trusting(endpoint, label, kind, Trust::AsConfigured).await
    }

    /// `connect` with the certificate trusted as `trust` says (`InspectOnly` for the setup test).
    pub(super) async fn connect_trusting(endpoint: &Endpoint, label: &str, kind: ServerKind, trust: Trust) -> Result<Session> {
        if endpoint.tls == TlsMode::Plain && !is_loopback(&endpoint.host) {
            bail!(
                "plain IMAP to {} would send passwords unprotected; plain is allowed only on loopback — use implicit or starttls",
                endpoint.host
            );
        }
        let tcp = tcp_connect(endpoint).await?;
        let stream = match endpoint.tls {
            TlsMode::Implicit => connect_tls(tcp, endpoint, trust).await?,
            TlsMode::Plain | TlsMode::StartTls => Conn::Plain(tcp),
        };
        let mut session = Session::fresh(stream, false, 1, label, kind);
        session.read_greeting().await?;
        if endpoint.tls == TlsMode::StartTls {
            let answer = session.simple(CommandBody::StartTLS).await?;
            if !answer.is_ok() {
                return Err(session.refused("STARTTLS", format!("the server refused STARTTLS: {}", answer.words()), &answer));
            }
            // Anything buffered after the OK would be a plain-text injection; there must be nothing.
            let Conn::Plain(tcp) = session.stream.socket else {
                bail!("internal: STARTTLS on a connection that is already TLS");
            };
            let tls = connect_tls(tcp, endpoint, trust).await?;
            let greeting = std::mem::take(&mut session.greeting);
            // Everything learned before TLS is forgotten (RFC 3207): a new client state and no
            // capabilities; only the greeting is kept, for the quirks.
            session = Session::fresh(tls, true, 100, label, kind);
            session.greeting = greeting;
        }
        Ok(session)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The DER of the server's certificate (None on a plain connection).
    pub(super) fn peer_certificate_der(&self) -> Option<Vec<u8>> {
        self.stream.socket.peer_certificate_der()
    }

    async fn read_greeting(&mut self) -> Result<()> {
        loop {
            match self.client.next() {
                Ok(Event::GreetingReceived { greeting }) => {
                    if let Some(Code::Capability(caps)) = &greeting.code {
                        self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                    }
                    self.greeting = greeting.text.to_string();
                    if greeting.kind == imap_next::imap_types::response::GreetingKind::Bye {
                        bail!("{}: the server said BYE at once: {}", self.label, greeting.text);
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
    }

    pub(super) async fn handle_interrupt(&mut self, interrupt: Interrupt<imap_next::client::Error>) -> Result<()> {
        match interrupt {
            Interrupt::Io(Io::NeedMoreInput) if self.read_start < self.read_end => {
                // What a streamed body fetch read past its last answer belongs to imap-next now.
                let (start, end) = (self.read_start, self.read_end);
                self.read_start = 0;
                self.read_end = 0;
                self.feed_client_from_buf(start, end)
            }
            Interrupt::Io(Io::NeedMoreInput) => {
                let n = self.read_some().await?;
                self.feed_client_from_buf(0, n)
            }
            Interrupt::Io(Io::Output(bytes)) => self.write_all(&bytes).await,
            // The rest of that answer is still on its way: the connection is never used again.
            Interrupt::Error(error) => Err(self.misbehaved(format!("the server sent a response that could not be read ({error})"))),
        }
    }

    /// The error for a tagged NO or BAD to `command` that the caller cannot go on from; `what` is the
    /// sentence, with the server's words. An answer that still asks us to wait after we did
    /// (`wait_if_throttled`) is `Throttled`.
    pub(crate) fn refused(&self, command: &'static str, what: String, answer: &Answer) -> anyhow::Error {
        let label = self.label.clone();
        anyhow::Error::new(match throttle_delay(answer) {
            Some(delay) => ImapError::Throttled { label, what, delay },
            None => ImapError::Refused { label, what, command, answer: answer.clone() },
        })
    }

    /// An error that arrived while an answer was being read: unless it already ended the connection,
    /// the rest of the answer is still on its way and the connection cannot be used again.
    pub(crate) fn left_mid_command(&self, e: anyhow::Error) -> anyhow::Error {
        if kind_of(&e).is_some_and(ImapError::ends_connection) {
            e
        } else {
            e.context(ImapError::lost(&self.label, "the connection was left in the middle of a command"))
        }
    }

    /// A session over `stream` that has read nothing yet: tags from `first_tag`, no capabilities, and
    /// the quirks its kind alone implies until the login shows the capabilities (see `quirks`).
    fn fresh(stream: Conn, after_starttls: bool, first_tag: u32, label: &str, kind: ServerKind) -> Session {
        Session {
            stream: Wire::new(stream),
            client: Client::new(client_options(after_starttls)),
            next_tag: first_tag,
            capabilities: BTreeSet::new(),
            read_buf: vec![0; READ_BUF],
            read_start: 0,
            read_end: 0,
            pending_codes: Vec::new(),
            exists: 0,
            label: label.to_string(),
            throttled: 0,
            budget: Budget::new("greeting", Answers::Kept, 0),
            framing: Framing::default(),
            fetch_line: 0,
            broken: None,
            kind,
            greeting: String::new(),
            quirks: Quirks::of_kind(kind),
            qresync: false,
            last_round_trip: None,
            line_round_trip: None,
        }
    }

    pub(super) fn tag(&mut self) -> Tag<'static> {
        let text = format!("P{}", self.next_tag);
        self.next_tag += 1;
        // "P" followed by digits is always a valid tag.
        Tag::try_from(text).unwrap_or_else(|_| Tag::unvalidated("P0"))
    }

    /// Sends commands in one go (pipelined) and waits for all their tagged answers. Untagged data goes
    /// to `on_data` as it arrives, so a large FETCH is never collected in memory.
    pub async fn run_many(
        &mut self,
        bodies: Vec<CommandBody<'static>>,
        kept: Answers,
        on_data: &mut dyn FnMut(Data<'static>) -> Result<()>,
    ) -> Result<Vec<Answer>> {
        let mut attempt = 0;
        loop {
            let answers = self.run_many_once(bodies.clone(), kept, on_data).await?;
            if !self.wait_if_throttled(&answers, &mut attempt).await {
                return Ok(answers);
            }
        }
    }

    /// Quirk `exchange_throttled` (Microsoft 365 / Exchange Online): "NO ... Request is throttled.
    /// Suggested Backoff Time: N milliseconds". The commands did nothing; waits as told and says to send
    /// them again, a few times, before the answers count as a failure.
    pub(super) async fn wait_if_throttled(&mut self, answers: &[Answer], attempt: &mut u32) -> bool {
        let Some(wait) = answers.iter().filter_map(throttle_delay).max() else { return false };
        if *attempt >= 6 {
            return false;
        }
        *attempt += 1;
        self.throttled += 1;
        log::warn!("{}: the server is throttling; waiting {} ms as it asks", self.label, wait.as_millis());
        smol::Timer::after(wait).await;
        true
    }

    async fn run_many_once(
        &mut self,
        bodies: Vec<CommandBody<'static>>,
        kept: Answers,
        on_data: &mut dyn FnMut(Data<'static>) -> Result<()>,
    ) -> Result<Vec<Answer>> {
        self.begin_command(bodies.first().map_or("command", CommandBody::name), kept)?;
        let started = std::time::Instant::now();
        let mut tags = Vec::new();
        for body in bodies {
            let tag = self.tag();
            tags.push(tag.clone());
            self.client.enqueue_command(Command { tag, body });
        }
        let mut answers: BTreeMap<String, Answer> = BTreeMap::new();
        while answers.len() < tags.len() {
            match self.client.next() {
                Ok(event) => self.on_event(event, &tags, &mut answers, on_data).map_err(|e| self.left_mid_command(e))?,
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
        self.flush().await?;
        self.last_round_trip = Some(started.elapsed());
        Ok(tags.iter().filter_map(|t| answers.remove(t.inner())).collect())
    }

    pub(super) fn on_event(
        &mut self,
        event: Event,
        tags: &[Tag<'static>],
        answers: &mut BTreeMap<String, Answer>,
        on_data: &mut dyn FnMut(Data<'static>) -> Result<()>,
    ) -> Result<()> {
        match event {
            Event::DataReceived { data } => {
                match &data {
                    Data::Capability(caps) => {
                        self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                    }
                    Data::Exists(n) => self.exists = *n,
                    _ => {}
                }
                on_data(data)?;
            }
            Event::StatusReceived { status } => match status {
                Status::Tagged(tagged) => {
                    if tags.iter().any(|t| t == &tagged.tag) {
                        if let Some(Code::Capability(caps)) = &tagged.body.code {
                            self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                        }
                        answers.insert(tagged.tag.inner().to_string(), answer_of(tagged.body));
                    }
                }
                Status::Untagged(body) => {
                    // Only what SELECT reads (and MOVE's COPYUID) is kept, and only the latest few.
                    if let Some(code @ (Code::UidValidity(_) | Code::UidNext(_) | Code::HighestModSeq(_) | Code::CopyUid { .. })) =
                        body.code
                    {
                        if self.pending_codes.len() >= PENDING_CODES_LIMIT {
                            self.pending_codes.remove(0);
                        }
                        self.pending_codes.push(code);
                    }
                }
                // LOGOUT is answered with BYE and then its tagged OK (RFC 3501 6.1.3): an expected BYE,
                // not a lost connection. Making it an error cost a backtrace where RUST_BACKTRACE is set,
                // which pages in unwind tables (about 0.5 MiB of peak RSS at the end of every pass).
                Status::Bye(_) if self.budget.is_for("LOGOUT") => {}
                Status::Bye(bye) => {
                    let reason = bye.text.to_string();
                    return Err(ImapError::ConnectionLost {
                        label: self.label.clone(),
                        what: format!("{BYE_WITH_REASON}{reason}"),
                        bye: Some(reason),
                    }
                    .into());
                }
            },
            Event::CommandRejected { status, .. } => {
                // A synchronizing literal was refused: the command is over, report the words.
                if let Status::Tagged(tagged) = status {
                    answers.insert(tagged.tag.inner().to_string(), answer_of(tagged.body));
                } else {
                    return Err(self.misbehaved("the server refused a literal without saying which command it ended".into()));
                }
            }
            Event::AuthenticateStatusReceived { status: Status::Tagged(tagged), .. } => {
                if let Some(Code::Capability(caps)) = &tagged.body.code {
                    self.capabilities = caps.as_ref().iter().map(|c| c.to_string().to_ascii_uppercase()).collect();
                }
                answers.insert(tagged.tag.inner().to_string(), answer_of(tagged.body));
            }
            Event::AuthenticateContinuationRequestReceived { .. } => {
                // We always send the initial response with the command (SASL-IR) or as the single
                // continuation below; a second challenge means the server did not accept it.
                self.client
                    .set_authenticate_data(imap_next::imap_types::auth::AuthenticateData::Cancel)
                    .map_err(|_| anyhow!("{}: the server asked for more login data", self.label))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// One command whose untagged data we keep (small answers: LIST, STATUS, NAMESPACE...).
    pub async fn run(&mut self, body: CommandBody<'static>) -> Result<(Answer, Vec<Data<'static>>)> {
        let mut data = Vec::new();
        let mut answers = self
            .run_many(vec![body], Answers::Kept, &mut |d| {
                data.push(d);
                Ok(())
            })
            .await?;
        let answer = answers.pop().ok_or_else(|| anyhow!("{}: no answer to a command", self.label))?;
        Ok((answer, data))
    }

    /// One command imap-codec cannot express, written by us as `text` after a fresh tag (the caller
    /// makes `text` safe to send: no line end, names quoted); its answers are read by imap-next as
    /// any other's, under the same bounds (`begin_command`), untagged data handed to `on_data`.
    pub(super) async fn run_raw(
        &mut self,
        what: &'static str,
        text: &str,
        on_data: &mut dyn FnMut(Data<'static>) -> Result<()>,
    ) -> Result<Answer> {
        if text.contains(['\r', '\n']) {
            bail!("internal: a line end inside the {what} command");
        }
        self.begin_command(what, Answers::Kept)?;
        let tag = self.tag();
        self.write_all(format!("{} {text}\r\n", tag.inner()).as_bytes()).await?;
        self.flush().await?;
        let tags = vec![tag.clone()];
        let mut answers = BTreeMap::new();
        while answers.is_empty() {
            match self.client.next() {
                Ok(event) => self.on_event(event, &tags, &mut answers, on_data).map_err(|e| self.left_mid_command(e))?,
                Err(interrupt) => self.handle_interrupt(interrupt).await?,
            }
        }
        answers.remove(tag.inner()).ok_or_else(|| anyhow!("{}: no answer to {what}", self.label))
    }

    pub(super) async fn simple(&mut self, body: CommandBody<'static>) -> Result<Answer> {
        Ok(self.run(body).await?.0)
    }

    pub(super) async fn ok(&mut self, body: CommandBody<'static>, what: &str) -> Result<Vec<Data<'static>>> {
        let command = body.name();
        let (answer, data) = self.run(body).await?;
        if !answer.is_ok() {
            return Err(self.refused(command, format!("{what} failed: {}", answer.words()), &answer));
        }
        Ok(data)
    }

    /// This server's quirks, as computed when it logged us in (before that, what its kind alone says,
    /// so a Microsoft 365 session is never taken for Dovecot).
    pub fn quirks(&self) -> Quirks {
        self.quirks
    }

    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.contains(&capability.to_ascii_uppercase())
    }

    pub async fn refresh_capabilities(&mut self) -> Result<()> {
        self.ok(CommandBody::Capability, "CAPABILITY").await?;
        Ok(())
    }

    /// Logs in with AUTHENTICATE PLAIN when offered (one round trip with SASL-IR), else LOGIN. The
    /// error names the side and quotes the server, never the password.
    pub async fn login(&mut self, user: &str, password: &Secret) -> Result<()> {
        if self.capabilities.is_empty() {
            self.refresh_capabilities().await?;
        }
        if self.has("LOGINDISABLED") {
            bail!("{}: the server does not allow login on an unencrypted connection; use implicit or starttls", self.label);
        }
        let answer = if self.has("AUTH=PLAIN") {
            self.run_auth(plain_authenticate("", user, password)).await?
        } else {
            let body = CommandBody::login(user.to_string(), password.expose().to_string())
                .map_err(|_| anyhow!("{}: the login name or password has characters IMAP LOGIN cannot carry", self.label))?;
            self.simple(body).await?
        };
        if !answer.is_ok() {
            return Err(self.refused("LOGIN", format!("login as {user} was refused: {}", answer.words()), &answer));
        }
        if !answer_has_caps(&answer) {
            self.refresh_capabilities().await?;
        }
        self.quirks = Quirks::of(self.kind, &self.capabilities, &self.greeting);
        Ok(())
    }

    /// Logs in as `user` with another login's password: AUTHENTICATE PLAIN with `user` as the
    /// authorization identity and `admin` as the authentication identity (RFC 4616), as an admin or
    /// master user does. Needs AUTH=PLAIN (the caller says what to set instead when it is missing).
    /// The error names both logins and quotes the server, never the password.
    pub async fn login_as(&mut self, user: &str, admin: &str, password: &Secret) -> Result<()> {
        if self.capabilities.is_empty() {
            self.refresh_capabilities().await?;
        }
        if self.has("LOGINDISABLED") {
            bail!("{}: the server does not allow login on an unencrypted connection; use implicit or starttls", self.label);
        }
        if !self.has("AUTH=PLAIN") {
            bail!("{}: the server does not offer AUTHENTICATE PLAIN, which a login as {user} by {admin} needs", self.label);
        }
        let answer = self.run_auth(plain_authenticate(user, admin, password)).await?;
        if !answer.is_ok() {
            let what = format!("login as {user} by the admin login {admin} was refused: {}", answer.words());
            return Err(self.refused("AUTHENTICATE", what, &answer));
        }
        if !answer_has_caps(&answer) {
            self.refresh_capabilities().await?;
        }
        self.quirks = Quirks::of(self.kind, &self.capabilities, &self.greeting);
        Ok(())
    }

    /// Logs in with AUTHENTICATE XOAUTH2 (an OAuth2 access token, e.g. Microsoft 365's). The error says
    /// what to check in the app registration, never the token.
    pub async fn login_xoauth2(&mut self, user: &str, token: &Secret) -> Result<()> {
        if self.capabilities.is_empty() {
            self.refresh_capabilities().await?;
        }
        if !self.has("AUTH=XOAUTH2") {
            bail!("{}: the server does not offer AUTHENTICATE XOAUTH2", self.label);
        }
        let body = CommandBody::authenticate_with_ir(imap_next::imap_types::auth::AuthMechanism::XOAuth2, xoauth2(user, token));
        let answer = self.run_auth(body).await?;
        if !answer.is_ok() {
            let what = format!(
                "the OAuth2 login as {user} was refused ({}); check that the app has the IMAP.AccessAsApp \
                 permission with admin consent, and that its service principal has FullAccess to this mailbox \
                 (Add-MailboxPermission)",
                answer.words()
            );
            return Err(self.refused("AUTHENTICATE", what, &answer));
        }
        if !answer_has_caps(&answer) {
            self.refresh_capabilities().await?;
        }
        self.quirks = Quirks::of(self.kind, &self.capabilities, &self.greeting);
        Ok(())
    }

    async fn run_auth(&mut self, body: CommandBody<'static>) -> Result<Answer> {
        let with_ir = self.has("SASL-IR");
        let body = if with_ir {
            body
        } else {
            match body {
                CommandBody::Authenticate { mechanism, initial_response } => {
                    // Without SASL-IR the initial response goes as the first continuation answer.
                    self.begin_command("AUTHENTICATE", Answers::Kept)?;
                    let tag = self.tag();
                    self.client.enqueue_command(Command {
                        tag: tag.clone(),
                        body: CommandBody::Authenticate { mechanism, initial_response: None },
                    });
                    let mut answers = BTreeMap::new();
                    let tags = vec![tag.clone()];
                    let mut sent_ir = false;
                    while answers.is_empty() {
                        match self.client.next() {
                            Ok(Event::AuthenticateContinuationRequestReceived { .. }) if !sent_ir => {
                                sent_ir = true;
                                let data = initial_response.as_ref().map(|s| s.declassify().to_vec()).unwrap_or_default();
                                self.client
                                    .set_authenticate_data(imap_next::imap_types::auth::AuthenticateData::r#continue(data))
                                    .map_err(|_| anyhow!("{}: login data out of order", self.label))?;
                            }
                            Ok(event) => {
                                self.on_event(event, &tags, &mut answers, &mut |_| Ok(())).map_err(|e| self.left_mid_command(e))?
                            }
                            Err(interrupt) => self.handle_interrupt(interrupt).await?,
                        }
                    }
                    self.flush().await?;
                    return answers.remove(tag.inner()).ok_or_else(|| anyhow!("no answer to AUTHENTICATE"));
                }
                other => other,
            }
        };
        self.simple(body).await
    }

    pub async fn logout(mut self) {
        let _ = smol::future::or(
            async {
                let _ = self.simple(CommandBody::Logout).await;
            },
            async {
                smol::Timer::after(Duration::from_secs(2)).await;
            },
        )
        .await;
        if let Some((sent, sent_wire, received, received_wire)) = self.compression_totals() {
            log::info!(
                "{}: compressed, sent {} as {}, received {} as {}",
                self.label,
                crate::units::human_bytes(sent),
                crate::units::human_bytes(sent_wire),
                crate::units::human_bytes(received),
                crate::units::human_bytes(received_wire)
            );
        }
    }
}

fn client_options(discard_greeting: bool) -> Options {
    let mut options = Options::default();
    // Bodies never come through imap-next (see `RESPONSE_LIMIT`); `Framing` stops a larger answer early.
    options.max_response_size = RESPONSE_LIMIT;
    options.discard_greeting = discard_greeting;
    // Quirk `bare_lf_lines` (seen on old Courier and some appliances): lines ending in LF alone.
    options.crlf_relaxed = true;
    options
}

/// AUTHENTICATE PLAIN with its initial response `authzid NUL authcid NUL password` (RFC 4616); an
/// empty `authzid` logs in as `authcid` itself. The bytes go to imap-next, which sends them base64'd
/// and never logs them.
fn plain_authenticate(authzid: &str, authcid: &str, password: &Secret) -> CommandBody<'static> {
    let mut initial = Vec::with_capacity(authzid.len() + authcid.len() + password.expose().len() + 2);
    initial.extend_from_slice(authzid.as_bytes());
    initial.push(0);
    initial.extend_from_slice(authcid.as_bytes());
    initial.push(0);
    initial.extend_from_slice(password.expose().as_bytes());
    CommandBody::authenticate_with_ir(imap_next::imap_types::auth::AuthMechanism::Plain, initial)
}

/// The SASL XOAUTH2 initial response: `user=LOGIN^Aauth=Bearer TOKEN^A^A`.
fn xoauth2(user: &str, token: &Secret) -> Vec<u8> {
    format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_string() {
        assert_eq!(xoauth2("a@b.se", &Secret::new("T")), b"user=a@b.se\x01auth=Bearer T\x01\x01".to_vec());
    }
}
