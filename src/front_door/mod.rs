//! The front door: the one socket the office network reaches, and everything decided before a request
//! may take one of the few threads that answer it. It accepts connections itself, reads each request's
//! head and body with a size cap and a deadline, checks the Host header against the names the appliance
//! answers to, decides who is asking (operator token, viewer code, or nobody) under one guessing limit
//! for all addresses together, and only then hands the complete request to tiny_http over a private
//! socket (`http.rs` answers it there). Each connection serves one request and is closed.
//!
//! Why tiny_http does not face the network itself (each measured on 0.12): its accept loop ends for
//! good at the first accept error, so running out of file descriptors stopped the page while the
//! process lived on; it offers no deadline on a socket, so four stalled request bodies held every
//! handler; and a request dropped with its body unread is drained into one allocation of the size the
//! client claimed (`Content-Length: 100000000000` aborted the process). Here a connection is a small
//! task on one thread, its memory is capped, and a stalled one costs only itself.

mod credentials;
mod head;
mod names;

pub use credentials::{CODE_LENGTH, Limiter, decide_role, is_current_viewer_code, new_viewer_code, normalize_viewer_code, same};
use head::head_end;
pub use head::{Head, Refusal, parse_head, parse_query, refusal_response};
pub use names::Names;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::{LocalExecutor, Timer};

/// Longest request head (request line and headers) accepted; the page's are under 1 KiB.
const MAX_HEAD: usize = 16 * 1024;
/// Largest JSON body an action takes.
pub const MAX_JSON: u64 = 64 * 1024;
/// Largest account-list upload (a spreadsheet of a few hundred rows is kilobytes; a zipped workbook
/// with pictures a few MB). Only the operator may send one, and one at a time.
pub const MAX_UPLOAD: u64 = 32 * 1024 * 1024;
/// Largest answer taken back from the handlers (a report for hundreds of accounts is a few MB).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// A client has this long from connecting to sending its whole head.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// Bodies and answers get this long plus one second per `SLOWEST_LINE` bytes: a 32 MB upload over a
/// slow office uplink still arrives, a client that stops sending is dropped.
const TRANSFER_GRACE: Duration = Duration::from_secs(10);
const SLOWEST_LINE: u64 = 64 * 1024;
/// How long a handler may take to answer (a report over hundreds of accounts takes seconds).
const HANDLER_DEADLINE: Duration = Duration::from_secs(300);
/// How long a complete request may wait for its turn with the handlers.
const QUEUE_DEADLINE: Duration = Duration::from_secs(30);
/// Connections open at once, in all and from one address. Past either, the connection that has waited
/// longest for its request to arrive makes room (a stalled client loses its place to a live one); with
/// no such connection the new one is answered 503. The total is also kept to a quarter of the open
/// files allowed, so the databases, the IMAP connections and the handlers' socket always get theirs.
const MAX_CONNECTIONS: usize = 512;
const MAX_PER_ADDRESS: usize = 64;
/// Requests handed to the handlers at once (tiny_http gives each a thread; the handlers are 4).
const MAX_FORWARDED: usize = 8;

/// Who is asking, as decided here from the credential a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// No credential at all.
    Nobody,
    /// A credential that was wrong: 403 where one is needed, rather than 401.
    Wrong,
    Viewer,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Nobody => "nobody",
            Role::Wrong => "wrong",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Role {
        match text {
            "operator" => Role::Operator,
            "viewer" => Role::Viewer,
            "wrong" => Role::Wrong,
            _ => Role::Nobody,
        }
    }
}

/// The header carrying the decided role to the handlers, and the one proving it came from here. Any
/// copy a client sends is dropped with every other header it sent.
pub const ROLE_HEADER: &str = "X-Postflytt-Role";
pub const DOOR_HEADER: &str = "X-Postflytt-Door";
pub const PEER_HEADER: &str = "X-Postflytt-Peer";
/// Names the account list handed over in memory (`Uploads`) instead of in the forwarded body.
pub const UPLOAD_HEADER: &str = "X-Postflytt-Upload";

/// Account lists on their way from the door to the handler, in memory. An upload holds every
/// password of the list; handed over here it never passes through a socket or tiny_http's buffers,
/// and every copy of it can be wiped: the handler wipes what it takes once parsed, the door wipes
/// what the handler did not take.
#[derive(Default)]
pub struct Uploads {
    waiting: std::sync::Mutex<BTreeMap<u64, Upload>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// One account list on its way, with the password of a password-protected .zip when the client
/// sent one (header `X-Zip-Password`): it travels here too, never through the socket.
pub struct Upload {
    pub body: Vec<u8>,
    pub zip_password: Option<crate::secret::Secret>,
}

impl Uploads {
    fn put(&self, body: Vec<u8>, zip_password: Option<crate::secret::Secret>) -> u64 {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Upload { body, zip_password });
        id
    }

    /// The upload the door put here, once.
    pub fn take(&self, id: u64) -> Option<Upload> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id)
    }

    fn discard(&self, id: u64) {
        if let Some(upload) = self.take(id) {
            crate::secret::wipe(upload.body);
        }
    }
}

/// What the door knows to decide: the credentials, the names, the handlers' socket and proof.
pub struct Door {
    pub operator_token: String,
    /// Normalized (letters and digits, upper case).
    pub viewer_code: String,
    pub names: Names,
    pub backend: Backend,
    /// Sent with every forwarded request: the handlers answer nothing without it.
    pub door_secret: String,
    pub uploads: std::sync::Arc<Uploads>,
}

/// Where the handlers listen: a Unix socket in the data directory (0700), or, when its path is too
/// long for one, a loopback port.
#[derive(Debug, Clone)]
pub enum Backend {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// The largest body the door reads for this request, or None when it should not read one at all
/// (the handlers will refuse the request for its credential, so the body is never needed).
fn body_allowance(head: &Head, role: Role) -> Option<u64> {
    if role != Role::Operator {
        return None;
    }
    Some(if is_upload(head) { MAX_UPLOAD } else { MAX_JSON })
}

/// An account list: its body goes to the handler through `Uploads`.
fn is_upload(head: &Head) -> bool {
    head.method == "POST" && head.target.split('?').next() == Some("/api/accounts")
}

/// The whole request as the handlers get it: only the headers they read, ours set by the door.
fn forwarded(door: &Door, head: &Head, role: Role, peer: IpAddr, body: &[u8], upload: Option<u64>) -> Vec<u8> {
    // The client's own version: tiny_http answers an HTTP/1.0 client without chunked encoding.
    let mut out = format!(
        "{} {} {}\r\nHost: postflytt\r\nConnection: close\r\nContent-Length: {}\r\n{DOOR_HEADER}: {}\r\n{ROLE_HEADER}: {}\r\n{PEER_HEADER}: {peer}\r\n",
        head.method,
        head.target,
        head.version,
        body.len(),
        door.door_secret,
        role.as_str(),
    );
    if let Some(kind) = head.header("content-type") {
        out.push_str(&format!("Content-Type: {kind}\r\n"));
    }
    if let Some(id) = upload {
        out.push_str(&format!("{UPLOAD_HEADER}: {id}\r\n"));
    }
    // The language of the answer's sentences: Swedish when the client asks for it first (the page sends
    // the language it shows); only that fact passes, never the client's text.
    if head.header("accept-language").is_some_and(|l| l.trim_start().get(..2).is_some_and(|p| p.eq_ignore_ascii_case("sv"))) {
        out.push_str("Accept-Language: sv\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The state shared by the connections: all on the door's one thread.
struct Shared<'d> {
    door: &'d Door,
    limiter: RefCell<Limiter>,
    open: RefCell<Registry>,
    forward_slots: smol::lock::Semaphore,
    /// One account-list upload in memory at a time.
    uploading: Cell<bool>,
    max_connections: usize,
    reserve: Reserve,
}

/// Descriptors held open (on /dev/null) so that the handlers' side never runs out: two for each
/// request that may be handed over at once. Given back just before a hand-over, taken again after.
struct Reserve {
    files: RefCell<Vec<std::fs::File>>,
}

impl Reserve {
    fn new() -> Reserve {
        let reserve = Reserve { files: RefCell::new(Vec::new()) };
        reserve.refill();
        reserve
    }

    fn release(&self, count: usize) {
        let mut files = self.files.borrow_mut();
        let keep = files.len().saturating_sub(count);
        files.truncate(keep);
    }

    fn refill(&self) {
        let mut files = self.files.borrow_mut();
        while files.len() < 2 * MAX_FORWARDED {
            match std::fs::File::open("/dev/null") {
                Ok(file) => files.push(file),
                Err(_) => break,
            }
        }
    }
}

/// The connections open now, for the caps and for making room.
#[derive(Default)]
struct Registry {
    next_id: u64,
    slots: BTreeMap<u64, Slot>,
}

struct Slot {
    address: IpAddr,
    since: Instant,
    /// Still waiting for the client's request; may be closed to make room.
    waiting: Rc<Cell<bool>>,
    /// Dropping it ends the connection's task.
    _cancel: smol::channel::Sender<()>,
}

impl Registry {
    /// Closes the connection (from `address`, or any) that has waited longest for its request.
    fn close_longest_waiting(&mut self, address: Option<IpAddr>) -> bool {
        let victim = self
            .slots
            .iter()
            .filter(|(_, s)| s.waiting.get() && address.is_none_or(|a| s.address == a))
            .min_by_key(|(_, s)| s.since)
            .map(|(id, _)| *id);
        victim.is_some_and(|id| self.slots.remove(&id).is_some())
    }

    fn count_from(&self, address: IpAddr) -> usize {
        self.slots.values().filter(|s| s.address == address).count()
    }
}

/// Removes a connection from the registry however its task ends.
struct Registered<'a> {
    open: &'a RefCell<Registry>,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.open.borrow_mut().slots.remove(&self.id);
    }
}

/// Raises the soft limit of open files to the hard one (at most 65,536), and returns the limit now in
/// force. The unit sets `LimitNOFILE` itself (its system call filter refuses this call).
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let wanted = limit.maximum.unwrap_or(65_536).min(65_536);
    if limit.current.is_some_and(|current| current < wanted) {
        let old = limit.current;
        limit.current = Some(wanted);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = old;
        }
    }
    limit.current.unwrap_or(65_536)
}

fn connection_cap(open_files: u64) -> usize {
    usize::try_from(open_files / 4).unwrap_or(MAX_CONNECTIONS).clamp(4, MAX_CONNECTIONS)
}

/// Runs the door on the calling thread until the listener fails for good (it never does on its own:
/// running out of descriptors only slows accepting down).
pub fn run(listener: std::net::TcpListener, door: &Door) -> Result<()> {
    listener.set_nonblocking(true).context("the listening socket")?;
    let listener = smol::net::TcpListener::try_from(listener).context("the listening socket")?;
    let shared = Shared {
        door,
        limiter: RefCell::new(Limiter::new(Instant::now())),
        open: RefCell::new(Registry::default()),
        forward_slots: smol::lock::Semaphore::new(MAX_FORWARDED),
        uploading: Cell::new(false),
        max_connections: connection_cap(raise_open_files_limit()),
        reserve: Reserve::new(),
    };
    // Made after `shared`, so dropped before it: its tasks borrow it.
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(accept_loop(&executor, &listener, &shared)))
}

async fn accept_loop<'a>(executor: &LocalExecutor<'a>, listener: &smol::net::TcpListener, shared: &'a Shared<'a>) -> Result<()> {
    let mut last_warning: Option<Instant> = None;
    let mut accepted = 0u32;
    let refusing = Rc::new(Cell::new(0usize));
    loop {
        // A full backlog makes accept ready at once, every time: let the connections run too.
        accepted = accepted.wrapping_add(1);
        if accepted.is_multiple_of(16) {
            smol::future::yield_now().await;
        }
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (or memory): make room by closing the connection that has waited
                // longest, then try again shortly. Never give up: the page must come back.
                let made_room = shared.open.borrow_mut().close_longest_waiting(None);
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    log::warn!("http: cannot accept a connection ({e}); {} open", shared.open.borrow().slots.len());
                    last_warning = Some(Instant::now());
                }
                Timer::after(if made_room { Duration::from_millis(10) } else { Duration::from_millis(250) }).await;
                continue;
            }
        };
        let address = peer.ip();
        let admitted = {
            let mut open = shared.open.borrow_mut();
            let room_here = open.count_from(address) < MAX_PER_ADDRESS || open.close_longest_waiting(Some(address));
            room_here && (open.slots.len() < shared.max_connections || open.close_longest_waiting(None))
        };
        if !admitted {
            // A few are told why; past that a refused connection is simply closed.
            if refusing.get() < 64 {
                refusing.set(refusing.get() + 1);
                let refusing = Rc::clone(&refusing);
                let busy = Refusal::new(503, "the appliance is answering too many connections; try again in a moment");
                executor
                    .spawn(async move {
                        answer_and_close(stream, refusal_response(&busy)).await;
                        refusing.set(refusing.get() - 1);
                    })
                    .detach();
            }
            continue;
        }
        let (cancel, cancelled) = smol::channel::bounded::<()>(1);
        let waiting = Rc::new(Cell::new(true));
        let id = {
            let mut open = shared.open.borrow_mut();
            open.next_id += 1;
            let id = open.next_id;
            open.slots.insert(id, Slot { address, since: Instant::now(), waiting: Rc::clone(&waiting), _cancel: cancel });
            id
        };
        executor
            .spawn(async move {
                let _registered = Registered { open: &shared.open, id };
                let served = serve_connection(stream, peer, shared, &waiting);
                // The registry dropping the sender (to make room) ends the connection here.
                smol::future::or(served, async {
                    let _ = cancelled.recv().await;
                })
                .await;
            })
            .detach();
    }
}

async fn answer_and_close(mut stream: smol::net::TcpStream, response: Vec<u8>) {
    let _ = with_deadline(Instant::now() + TRANSFER_GRACE, stream.write_all(&response)).await;
    let _ = stream.close().await;
}

/// Runs `work` until `deadline`; None when the deadline came first.
async fn with_deadline<T>(deadline: Instant, work: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(work.await) }, async {
        Timer::at(deadline).await;
        None
    })
    .await
}

fn transfer_deadline(bytes: u64) -> Instant {
    Instant::now() + TRANSFER_GRACE + Duration::from_secs(bytes / SLOWEST_LINE)
}

/// One connection: its request read, decided, forwarded and answered; then closed.
async fn serve_connection(mut stream: smol::net::TcpStream, peer: SocketAddr, shared: &Shared<'_>, waiting: &Cell<bool>) {
    let response = match take_request(&mut stream, peer, shared, waiting).await {
        Ok(response) => closing(response),
        Err(Some(refusal)) => refusal_response(&refusal),
        Err(None) => return,
    };
    let _ = with_deadline(transfer_deadline(response.len() as u64), stream.write_all(&response)).await;
    // Answered: from here on the connection may make room for another.
    waiting.set(true);
    // Half-close, then read briefly what the client may still be sending (a body not read because its
    // request was refused), so the kernel does not reset the connection before the answer is read.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = with_deadline(Instant::now() + Duration::from_secs(2), async {
        let mut drained = 0usize;
        while drained < 256 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The handlers' answer with `Connection: close` (tiny_http leaves it out), so that a client does not
/// send a second request on a connection that serves one.
fn closing(mut answer: Vec<u8>) -> Vec<u8> {
    if let Some(line_end) = answer.windows(2).position(|w| w == b"\r\n") {
        let head_end = head_end(&answer).unwrap_or(answer.len());
        let says_close = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase().contains("\r\nconnection: close");
        if !says_close {
            answer.splice(line_end + 2..line_end + 2, b"Connection: close\r\n".iter().copied());
        }
    }
    answer
}

/// A buffer that may hold secrets (a request's head and body), wiped however the request ends.
struct Scrubbed(Vec<u8>);

impl Drop for Scrubbed {
    fn drop(&mut self) {
        crate::secret::wipe(std::mem::take(&mut self.0));
    }
}

/// Reads and decides one request and returns the answer to send. `Err(None)`: the client went away
/// or was too slow to be worth an answer.
async fn take_request(
    stream: &mut smol::net::TcpStream,
    peer: SocketAddr,
    shared: &Shared<'_>,
    waiting: &Cell<bool>,
) -> Result<Vec<u8>, Option<Refusal>> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut buffer = Scrubbed(Vec::with_capacity(MAX_HEAD + 2048));
    let buffer = &mut buffer.0;
    let mut piece = Scrubbed(vec![0u8; 2048]);
    let end = loop {
        if let Some(end) = head_end(buffer) {
            break end;
        }
        if buffer.len() > MAX_HEAD {
            return Err(Some(Refusal::new(431, format!("the request head is longer than {MAX_HEAD} bytes"))));
        }
        match with_deadline(deadline, stream.read(&mut piece.0)).await {
            Some(Ok(0)) | Some(Err(_)) => return Err(None),
            Some(Ok(n)) => buffer.extend_from_slice(&piece.0[..n]),
            None => return Err(Some(Refusal::new(408, "the request did not arrive in time"))),
        }
    };
    if end > MAX_HEAD {
        return Err(Some(Refusal::new(431, format!("the request head is longer than {MAX_HEAD} bytes"))));
    }
    let head = parse_head(&buffer[..end]).map_err(Some)?;
    if !shared.door.names.allows(head.header("host")) {
        return Err(Some(Refusal::new(
            421,
            format!(
                "this appliance does not answer to the name {:?}; open it by its address, or add the name with 'postflytt serve --public-name NAME' (names now: {})",
                head.header("host").unwrap_or_default(),
                shared.door.names.listed()
            ),
        )));
    }
    let length = head.content_length().map_err(Some)?;
    let role = decide_role(shared.door, &head, peer.ip(), &mut shared.limiter.borrow_mut(), Instant::now()).map_err(Some)?;
    if role == Role::Operator {
        // Staff sending a large upload over a slow line are not "waiting" to be closed for room.
        waiting.set(false);
    }
    let mut body = Scrubbed(Vec::new());
    let mut _upload = None;
    if let Some(allowance) = body_allowance(&head, role).filter(|_| length > 0) {
        if length > allowance {
            return Err(Some(Refusal::new(413, format!("the body is larger than {allowance} bytes"))));
        }
        if length > MAX_JSON {
            if shared.uploading.replace(true) {
                return Err(Some(Refusal::new(503, "another account list is being uploaded; try again when it is done")));
            }
            _upload = Some(UploadTurn(&shared.uploading));
        }
        if head.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
            let _ = with_deadline(Instant::now() + TRANSFER_GRACE, stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")).await;
        }
        // `length` is at most MAX_UPLOAD here, so it fits in memory and in usize.
        let wanted = usize::try_from(length).unwrap_or(usize::MAX);
        body.0 = Vec::with_capacity(wanted);
        body.0.extend_from_slice(&buffer[end..buffer.len().min(end + wanted)]);
        let deadline = transfer_deadline(length);
        let mut piece = Scrubbed(vec![0u8; 16 * 1024]);
        while body.0.len() < wanted {
            let room = (wanted - body.0.len()).min(piece.0.len());
            match with_deadline(deadline, stream.read(&mut piece.0[..room])).await {
                Some(Ok(0)) | Some(Err(_)) => return Err(None),
                Some(Ok(n)) => body.0.extend_from_slice(&piece.0[..n]),
                None => return Err(Some(Refusal::new(408, "the request body did not arrive in time"))),
            }
        }
    }
    waiting.set(false);
    let upload = (role == Role::Operator && is_upload(&head)).then(|| {
        // Percent-encoded UTF-8 (the page's encodeURIComponent: a header cannot carry å, ä, ö as they are).
        let zip_password = head.header("x-zip-password").map(|p| crate::secret::Secret::new(self::head::percent_decode(p, false)));
        HandedOver { uploads: &shared.door.uploads, id: shared.door.uploads.put(std::mem::take(&mut body.0), zip_password) }
    });
    let request = Scrubbed(forwarded(shared.door, &head, role, peer.ip(), &body.0, upload.as_ref().map(|u| u.id)));
    forward(shared, &request.0).await.map_err(Some)
}

/// An upload handed to the handlers in memory; what they did not take is wiped however the request ends.
struct HandedOver<'a> {
    uploads: &'a Uploads,
    id: u64,
}

impl Drop for HandedOver<'_> {
    fn drop(&mut self) {
        self.uploads.discard(self.id);
    }
}

/// Gives the upload turn back however the request ends.
struct UploadTurn<'a>(&'a Cell<bool>);

impl Drop for UploadTurn<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Hands a request to the handlers and takes their whole answer.
async fn forward(shared: &Shared<'_>, request: &[u8]) -> Result<Vec<u8>, Refusal> {
    let timed_out = || Refusal::new(504, "the appliance took too long to answer; try again");
    let _slot = with_deadline(Instant::now() + QUEUE_DEADLINE, shared.forward_slots.acquire()).await.ok_or_else(timed_out)?;
    let deadline = Instant::now() + HANDLER_DEADLINE;
    let unreachable = |e: std::io::Error| {
        log::error!("http: the handlers cannot be reached: {e}");
        Refusal::new(502, "the appliance could not answer this request; try again")
    };
    // Out of descriptors, the connections still waiting for their request make room (the handlers'
    // side needs one for each end of the connection).
    let mut tries = 0;
    // Two descriptors set aside for this exchange are given back first: one for our end, one for
    // tiny_http's accept, which would end its accept loop (and so the web side) if it found none.
    shared.reserve.release(2);
    let answer = loop {
        let connected = match &shared.door.backend {
            Backend::Unix(path) => match smol::net::unix::UnixStream::connect(path).await {
                Ok(stream) => Ok(with_deadline(deadline, exchange(stream, request)).await),
                Err(e) => Err(e),
            },
            Backend::Tcp(address) => match smol::net::TcpStream::connect(*address).await {
                Ok(stream) => Ok(with_deadline(deadline, exchange(stream, request)).await),
                Err(e) => Err(e),
            },
        };
        match connected {
            Ok(answer) => break answer,
            Err(e) if tries < 20 && out_of_descriptors(&e) => {
                tries += 1;
                {
                    let mut open = shared.open.borrow_mut();
                    open.close_longest_waiting(None);
                    open.close_longest_waiting(None);
                }
                Timer::after(Duration::from_millis(10)).await;
            }
            Err(e) => {
                shared.reserve.refill();
                return Err(unreachable(e));
            }
        }
    };
    shared.reserve.refill();
    answer.ok_or_else(timed_out)?.map_err(unreachable)
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::EMFILE || code == libc::ENFILE)
}

/// Writes the request while reading the answer to its end (the answer may start before a large
/// request is all written; neither side then waits on the other).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Clone>(stream: S, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut writer = stream.clone();
    let mut reader = stream;
    let write = async {
        writer.write_all(request).await?;
        writer.flush().await
    };
    let read = async {
        let mut answer = Vec::new();
        let mut piece = vec![0u8; 16 * 1024];
        loop {
            let n = reader.read(&mut piece).await?;
            if n == 0 {
                return Ok(answer);
            }
            if answer.len() + n > MAX_RESPONSE {
                return Err(std::io::Error::other("the handlers' answer is too large"));
            }
            answer.extend_from_slice(&piece[..n]);
        }
    };
    let (written, answer) = smol::future::zip(write, read).await;
    // A handler may answer (and close) before reading a whole body it refuses; the answer counts.
    match (written, answer) {
        (_, Ok(answer)) if !answer.is_empty() => Ok(answer),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(()), Ok(_)) => Err(std::io::Error::other("the handlers closed without an answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip_password_comes_percent_encoded_or_as_it_is() {
        let percent_decoded = |p| head::percent_decode(p, false);
        assert_eq!(percent_decoded("Kund-L%C3%B6sen%202026!"), "Kund-Lösen 2026!");
        assert_eq!(percent_decoded("plain-ascii"), "plain-ascii");
        assert_eq!(percent_decoded("50%off%"), "50%off%");
        assert_eq!(percent_decoded("%FF"), "\u{FFFD}");
        assert_eq!(percent_decoded("a+b"), "a+b", "a header's + is itself");
    }

    #[test]
    fn answers_say_the_connection_closes() {
        let answer = closing(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec());
        assert_eq!(answer, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        let already = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        assert_eq!(closing(already.clone()), already);
    }

    #[test]
    fn connections_leave_room_for_the_rest() {
        assert_eq!(connection_cap(1024), 256);
        assert_eq!(connection_cap(65_536), MAX_CONNECTIONS);
        assert_eq!(connection_cap(64), 16);
        assert_eq!(connection_cap(3), 4);
    }
}
