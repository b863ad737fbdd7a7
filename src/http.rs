//! The HTTP side of the appliance: the status page (compiled in from `web/`) and the JSON API of
//! docs/api.md, answered on tiny_http behind the front door (`front_door/`), which owns the public
//! socket, reads every request whole and decides who is asking. Here each route checks that role,
//! turns every error into a JSON object with a sentence a person can act on, and hands the work to the
//! appliance; it never talks IMAP and never returns a secret.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::appliance::{self, Appliance};
use crate::front_door::{self, Role, parse_query};
use crate::store::RunMark;

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// Requests answered at once. The front door hands over only complete requests, so a slow client
/// never holds one of these.
const WORKERS: usize = 4;

/// An error with the HTTP status it deserves.
struct ApiError {
    status: u16,
    message: String,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        // A finished migration refusing a change is the caller's conflict, not the server's failure.
        let status = if e.chain().any(|c| c.is::<crate::store::Finished>()) { 409 } else { 500 };
        ApiError::new(status, format!("{e:#}"))
    }
}

type Reply = std::result::Result<Response<std::io::Cursor<Vec<u8>>>, ApiError>;

/// Serves the page and the API on `listen` until the appliance shuts down. Returns an error if any
/// part of the web side stops for another reason, so that the service manager restarts the process.
pub fn serve(app: Arc<Appliance>, listen: &str, public_names: &[String]) -> Result<()> {
    let public = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow!("cannot listen on {listen}: {e} (is another postflytt running? choose another with --listen ADDR:PORT)"))?;
    let listen_address = public.local_addr()?;
    let (server, backend) = handlers_socket(&app.dir)?;
    let server = Arc::new(server);
    let door = front_door::Door {
        operator_token: app.operator_token.clone(),
        viewer_code: front_door::normalize_viewer_code(&app.viewer_code),
        names: front_door::Names::new(&listen_address, public_names),
        backend,
        door_secret: crate::imap::hex(&crate::appliance::random_bytes::<16>()?),
        uploads: Arc::default(),
    };
    let door_secret = door.door_secret.clone();
    let uploads = Arc::clone(&door.uploads);
    let door_thread = std::thread::Builder::new().name("http-door".into()).spawn(move || front_door::run(public, &door))?;
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let server = Arc::clone(&server);
        let app = Arc::clone(&app);
        let door_secret = door_secret.clone();
        let uploads = Arc::clone(&uploads);
        workers.push(std::thread::Builder::new().name(format!("http-{i}")).spawn(move || -> Result<()> {
            while !appliance::shutting_down() {
                match server.recv_timeout(Duration::from_millis(500)) {
                    Ok(Some(request)) => {
                        // A bug in one handler costs its request, not this thread.
                        let answered =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&app, &door_secret, &uploads, request)));
                        if answered.is_err() {
                            log::error!("http: a request failed inside the appliance (a bug); it was answered 500");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return Err(anyhow!("the web server's request queue ended: {e}")),
                }
            }
            Ok(())
        })?);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if appliance::shutting_down() {
            return Ok(());
        }
        if door_thread.is_finished() {
            let why = match door_thread.join() {
                Ok(Err(e)) => format!("{e:#}"),
                Ok(Ok(())) => "it ended".into(),
                Err(_) => "it panicked".into(),
            };
            bail!("the web server stopped accepting connections: {why}");
        }
        if let Some(i) = workers.iter().position(|w| w.is_finished()) {
            let why = match workers.swap_remove(i).join() {
                Ok(Err(e)) => format!("{e:#}"),
                Ok(Ok(())) => "it ended".into(),
                Err(_) => "it panicked".into(),
            };
            bail!("a web server thread stopped: {why}");
        }
    }
}

/// tiny_http on a socket only the front door uses: a Unix socket in the data directory (0700), or a
/// loopback port when the directory's path is too long for a socket address.
fn handlers_socket(dir: &std::path::Path) -> Result<(Server, front_door::Backend)> {
    let path = dir.join("http.sock");
    // sun_path holds 108 bytes with its final NUL.
    if path.as_os_str().len() < 100 {
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| anyhow!("cannot make the web server's socket {}: {e}", path.display()))?;
        let server = Server::from_listener(listener, None).map_err(|e| anyhow!("the web server: {e}"))?;
        return Ok((server, front_door::Backend::Unix(path)));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let server = Server::from_listener(listener, None).map_err(|e| anyhow!("the web server: {e}"))?;
    Ok((server, front_door::Backend::Tcp(address)))
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

fn handle(app: &Arc<Appliance>, door_secret: &str, uploads: &front_door::Uploads, mut request: Request) {
    // Only the front door reaches this socket; a request without its proof is answered nothing useful.
    if !header(&request, front_door::DOOR_HEADER).is_some_and(|proof| front_door::same(proof, door_secret)) {
        let _ = request.respond(json_response(403, &json!({"error": {"status": 403, "message": "not through the front door"}})));
        return;
    }
    let role = front_door::Role::parse(header(&request, front_door::ROLE_HEADER).unwrap_or_default());
    let (path, query) = parse_query(request.url());
    let method = request.method().clone();
    let mut upload = header(&request, front_door::UPLOAD_HEADER).and_then(|id| id.parse().ok()).and_then(|id| uploads.take(id));
    let swedish = header(&request, "Accept-Language") == Some("sv");
    let reply = route(app, &mut request, &method, &path, &query, role, &mut upload);
    if let Some(unused) = upload {
        crate::secret::wipe(unused.body);
    }
    if method == Method::Post {
        // An import, a setup, a started job: the next status shows it at once.
        app.forget_status();
    }
    let response = match reply {
        Ok(r) => r,
        // The Swedish page gets its sentences in Swedish where the catalog knows them.
        Err(e) => {
            let message = if swedish { crate::swedish::lines(&e.message) } else { e.message };
            json_response(e.status, &json!({"error": {"status": e.status, "message": message}}))
        }
    };
    let _ = request.respond(response);
}

fn json_response(status: u16, value: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    with_type(Response::from_data(body).with_status_code(status), "application/json; charset=utf-8")
}

fn with_type(response: Response<std::io::Cursor<Vec<u8>>>, content_type: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut r = response;
    for (k, v) in [
        ("Content-Type", content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"),
    ] {
        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            r.add_header(h);
        }
    }
    r
}

/// Marks a response as a download with the given file name.
fn attachment(mut response: Response<std::io::Cursor<Vec<u8>>>, file_name: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    if let Ok(h) = Header::from_bytes(&b"Content-Disposition"[..], format!("attachment; filename=\"{file_name}\"").as_bytes()) {
        response.add_header(h);
    }
    response
}

fn need(role: Role, wanted: Role) -> std::result::Result<(), ApiError> {
    if role >= wanted {
        return Ok(());
    }
    Err(match role {
        Role::Nobody => ApiError::new(
            401,
            match wanted {
                Role::Operator => {
                    "this needs the operator token: send it as 'Authorization: Bearer TOKEN' (it is in the data directory's operator-token file)"
                }
                _ => "this needs the viewer code (header X-Viewer-Code) or the operator token",
            },
        ),
        Role::Viewer => ApiError::new(403, "the viewer code only shows the status; this action needs the operator token"),
        Role::Wrong | Role::Operator => ApiError::new(403, "wrong code or token"),
    })
}

fn read_body(request: &mut Request, limit: u64) -> std::result::Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    request
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::new(400, format!("could not read the request body: {e}")))?;
    if body.len() as u64 > limit {
        return Err(ApiError::new(413, format!("the body is larger than {limit} bytes")));
    }
    Ok(body)
}

/// The request's JSON body. The raw bytes are wiped once parsed: a body may carry a password (setup's
/// client and relay secrets, an account's new passwords), whose parsed strings are sealed and wiped
/// by the handlers.
fn read_json(request: &mut Request) -> std::result::Result<Value, ApiError> {
    let body = read_body(request, front_door::MAX_JSON)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        crate::secret::wipe(body);
        return Ok(json!({}));
    }
    let parsed = serde_json::from_slice(&body).map_err(|e| ApiError::new(400, format!("the body is not valid JSON: {e}")));
    crate::secret::wipe(body);
    parsed
}

fn route(
    app: &Arc<Appliance>,
    request: &mut Request,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    role: Role,
    upload: &mut Option<front_door::Upload>,
) -> Reply {
    // A finished migration is read-only: every action that would change it gets the one sentence.
    const CHANGES: [&str; 8] = [
        "/api/setup",
        "/api/accounts",
        "/api/check",
        "/api/passes/start",
        "/api/passes/interval",
        "/api/finish",
        "/api/repair",
        "/api/switched",
    ];
    let account_action = path.starts_with("/api/accounts/") && matches!(method, Method::Post | Method::Delete);
    if role == Role::Operator && ((*method == Method::Post && CHANGES.contains(&path)) || account_action) {
        app.store()?.ensure_not_finished()?;
        // While finish runs, nothing may change under it: an account imported after it took its list
        // would be neither copied nor verified, and a password stored after its purge would stay.
        if app.runtime().finish_running && path != "/api/finish" {
            return Err(ApiError::new(
                409,
                "the migration is finishing: wait until it is finished (the status shows it), then read the report",
            ));
        }
    }
    match (method, path) {
        (Method::Get, "/") | (Method::Get, "/index.html") => {
            Ok(with_type(Response::from_data(INDEX_HTML.as_bytes().to_vec()), "text/html; charset=utf-8"))
        }
        (Method::Get, "/app.js") => Ok(with_type(Response::from_data(APP_JS.as_bytes().to_vec()), "text/javascript; charset=utf-8")),
        (Method::Get, "/style.css") => Ok(with_type(Response::from_data(STYLE_CSS.as_bytes().to_vec()), "text/css; charset=utf-8")),
        (Method::Get, "/api/status") => {
            need(role, Role::Viewer)?;
            let mut status = appliance::status(app)?;
            status["role"] = json!(if role == Role::Operator { "operator" } else { "viewer" });
            if role != Role::Operator {
                crate::setup::hide_details(&mut status);
            }
            Ok(json_response(200, &status))
        }
        (Method::Post, "/api/setup") => {
            need(role, Role::Operator)?;
            let body = read_json(request)?;
            Ok(json_response(200, &setup(app, &body)?))
        }
        (Method::Post, "/api/accounts") => {
            need(role, Role::Operator)?;
            let name = query.get("name").cloned().unwrap_or_else(|| "accounts".into());
            // The door hands the list, and a locked zip's password, over in memory (never through a socket).
            let (body, zip_password) = upload.take().map(|u| (u.body, u.zip_password)).unwrap_or_default();
            // The upload holds every password of the list: wiped once parsed, whatever the outcome.
            let swedish = header(request, "Accept-Language") == Some("sv");
            let result = import_accounts(app, &name, &body, swedish, zip_password.as_ref());
            crate::secret::wipe(body);
            Ok(json_response(200, &result?))
        }
        (Method::Post, "/api/check") => {
            need(role, Role::Operator)?;
            let body = read_json(request)?;
            let only: Vec<String> = body
                .get("accounts")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            app.start_check(only).map_err(|e| ApiError::new(409, format!("{e:#}")))?;
            Ok(json_response(202, &json!({"ok": true, "message": "check started"})))
        }
        (Method::Get, "/api/check") => {
            need(role, Role::Viewer)?;
            check_results(app, query.get("format").map(String::as_str))
        }
        (Method::Post, "/api/passes/start") => {
            need(role, Role::Operator)?;
            let store = app.store()?;
            if store.mark(RunMark::FinishedAt)?.is_some() {
                return Err(ApiError::new(409, "the migration is finished; nothing more to copy"));
            }
            store.change_settings(|s| s.passes_enabled = true)?;
            // Start at once, not after a whole interval.
            store.clear_mark(RunMark::PassFinishedAt)?;
            Ok(json_response(200, &json!({"ok": true})))
        }
        (Method::Post, "/api/passes/stop") => {
            need(role, Role::Operator)?;
            app.store()?.change_settings(|s| s.passes_enabled = false)?;
            Ok(json_response(200, &json!({"ok": true, "message": "no new pass will start; a running pass finishes"})))
        }
        (Method::Post, "/api/passes/interval") => {
            need(role, Role::Operator)?;
            let body = read_json(request)?;
            let seconds = body
                .get("seconds")
                .and_then(Value::as_i64)
                .filter(|s| (1..=7 * 86_400).contains(s))
                .ok_or_else(|| ApiError::new(400, "give {\"seconds\": N} with N between 1 and 604800"))?;
            app.store()?.change_settings(|s| s.pass_interval_seconds = seconds)?;
            Ok(json_response(200, &json!({"ok": true})))
        }
        (Method::Post, "/api/finish") => {
            need(role, Role::Operator)?;
            let body = read_json(request)?;
            if body.get("confirm") != Some(&Value::Bool(true)) {
                return Err(ApiError::new(400, "finishing purges passwords and staged mail; send {\"confirm\": true} to go ahead"));
            }
            appliance::start_finish(app).map_err(|e| ApiError::new(409, format!("{e:#}")))?;
            Ok(json_response(202, &json!({"ok": true, "message": "finish started: last pass, verification, report, purge"})))
        }
        (Method::Post, "/api/repair") => {
            need(role, Role::Operator)?;
            let asked = appliance::start_repair(app).map_err(|e| ApiError::new(409, format!("{e:#}")))?;
            let missing: u64 = asked.iter().map(|(_, n)| n).sum();
            Ok(json_response(
                202,
                &json!({"ok": true, "message": format!("repair started: {missing} messages missing on the target in {} accounts are copied again", asked.len()),
                        "accounts": asked.iter().map(|(login, n)| json!({"login": login, "missing_messages": n})).collect::<Vec<_>>()}),
            ))
        }
        (Method::Get, "/api/report") | (Method::Get, "/report") => {
            need(role, Role::Viewer)?;
            let store = app.store()?;
            let report = crate::report::build(&store)?;
            if path == "/report" {
                let lang =
                    if query.get("lang").map(String::as_str) == Some("en") { crate::report::Lang::En } else { crate::report::Lang::Sv };
                return Ok(with_type(Response::from_data(report.html(lang).into_bytes()), "text/html; charset=utf-8"));
            }
            if query.get("format").map(String::as_str) == Some("csv") {
                return Ok(attachment(with_type(Response::from_data(report.csv()?), "text/csv; charset=utf-8"), "postflytt-report.csv"));
            }
            Ok(json_response(200, &serde_json::to_value(&report).map_err(|e| anyhow!(e))?))
        }
        (Method::Post, "/api/notify/test") => {
            need(role, Role::Operator)?;
            let store = app.store()?;
            if crate::notify::Config::load(&store)?.is_none() {
                return Err(ApiError::new(409, crate::notify::summary(&store)?));
            }
            // One test notice at a time: the SMTP exchange holds this HTTP worker (up to its timeouts),
            // and the page's status needs the others.
            static SENDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _sending = match SENDING.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(ApiError::new(409, "a test notice is being sent now; wait for its answer"));
                }
            };
            let sent = crate::notify::send_test(&store).map_err(|e| ApiError::new(502, format!("{e:#}")))?;
            Ok(json_response(200, &json!({"ok": true, "message": sent})))
        }
        (Method::Post, "/api/switched") => {
            need(role, Role::Operator)?;
            switched(app, &read_json(request)?)
        }
        (Method::Get, "/api/template") => {
            need(role, Role::Viewer)?;
            let (bytes, kind, name) = match query.get("format").map(String::as_str) {
                Some("csv") => (crate::template::template_csv(), "text/csv; charset=utf-8", "postflytt-konton.csv"),
                _ => (
                    crate::template::template_xlsx(),
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "postflytt-konton.xlsx",
                ),
            };
            Ok(attachment(with_type(Response::from_data(bytes), kind), name))
        }
        (Method::Get, p) if p.starts_with("/api/accounts/") && p.ends_with("/folders") => {
            need(role, Role::Operator)?;
            account_folders(app, p)
        }
        (_, p) if p.starts_with("/api/accounts/") => {
            need(role, Role::Operator)?;
            one_account(app, request, method, p)
        }
        (_, p) if p.starts_with("/api/") => Err(ApiError::new(404, format!("no such API: {} {p} (see docs/api.md)", method))),
        _ => Err(ApiError::new(404, "not found")),
    }
}

/// `POST /api/setup`, whose checks and tests are `crate::setup`'s (the CLI's `setup` uses the same).
fn setup(app: &Appliance, body: &Value) -> std::result::Result<Value, ApiError> {
    let store = app.store()?;
    // E-mail notices: checked whole, and stored only when all of it is right (docs/api.md, notify);
    // they are a part of their own, applied before the rest of the request.
    if let Some(notify) = body.get("notify") {
        let change = crate::notify::Change::from_json(notify).map_err(|e| ApiError::new(400, format!("{e:#}")))?;
        crate::notify::change(&store, change).map_err(|e| ApiError::new(400, format!("{e:#}")))?;
    }
    crate::setup::apply_json(&store, body).map_err(|e| match e {
        crate::setup::ApiFailure::Refused(text) => ApiError::new(400, text),
        crate::setup::ApiFailure::Internal(e) => ApiError::from(e),
    })
}

fn import_accounts(
    app: &Appliance,
    name: &str,
    body: &[u8],
    swedish: bool,
    zip_password: Option<&crate::secret::Secret>,
) -> std::result::Result<Value, ApiError> {
    let store = app.store()?;
    let auth = crate::admin_login::source_auth(&store)?;
    let line = |p: &crate::import::Problem| if swedish { p.in_swedish() } else { p.to_string() };
    let import = crate::import::import_locked(name, body, auth, zip_password)
        .map_err(|e| ApiError::new(400, e.problems.iter().map(line).collect::<Vec<_>>().join("\n")))?;
    let saved = crate::import::save(&store, &import.accounts)?;
    let mut warnings: Vec<String> = import.warnings.iter().map(line).collect();
    warnings.extend(saved.kept_folder_choice.iter().cloned());
    Ok(json!({"added": saved.added, "updated": saved.updated, "not_in_file": saved.not_in_file, "warnings": warnings}))
}

fn check_results(app: &Appliance, format: Option<&str>) -> Reply {
    let store = app.store()?;
    let details = store.check_details_by_login()?;
    let results: Vec<crate::check::CheckResult> = details.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    if format == Some("xlsx") {
        return Ok(attachment(
            with_type(
                Response::from_data(crate::check::xlsx(&results)?),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            "postflytt-check.xlsx",
        ));
    }
    if format == Some("csv") {
        return Ok(attachment(
            with_type(Response::from_data(crate::check::csv(&results)?), "text/csv; charset=utf-8"),
            "postflytt-check.csv",
        ));
    }
    let package = crate::check::PackageFit::of(&results, store.settings()?.quota_total, store.accounts(&[])?.len());
    let mut answer = json!({"accounts": results, "package": package});
    crate::folder_view::annotate_check(&mut answer["accounts"]);
    Ok(json_response(200, &answer))
}

/// `GET /api/accounts/LOGIN/folders`: the account's folders as the last check or pass recorded them,
/// each left-out one with its reason (`crate::folder_view`).
fn account_folders(app: &Appliance, path: &str) -> Reply {
    let login = path.trim_start_matches("/api/accounts/").trim_end_matches("/folders");
    let login = front_door::parse_query(&format!("?l={}", login.replace('+', "%2B"))).1.remove("l").unwrap_or_default();
    match crate::folder_view::account_folders(&app.store()?, &login)? {
        Some(answer) => Ok(json_response(200, &answer)),
        None => Err(ApiError::new(404, format!("no account {login:?}: see the account list (postflytt status)"))),
    }
}

/// `POST /api/switched`: `{"accounts": [LOGIN, ...]}` or `{"all": true}` (`crate::switching`); the
/// answer names each account's result.
fn switched(app: &Appliance, body: &Value) -> Reply {
    let wrong = || ApiError::new(400, "give {\"accounts\": [\"login\", ...]} or {\"all\": true}");
    let all = match body.get("all") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or_else(wrong)?,
    };
    let logins: Vec<String> = match body.get("accounts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<_>>().ok_or_else(wrong)?,
        Some(_) => return Err(wrong()),
    };
    if body.as_object().is_some_and(|o| o.keys().any(|k| k != "all" && k != "accounts")) {
        return Err(wrong());
    }
    let refused = |e: anyhow::Error| match e.downcast_ref::<crate::accounts_admin::Refused>() {
        Some(r) => ApiError::new(r.status(), r.to_string()),
        None => ApiError::from(e),
    };
    let which = crate::switching::Which::of(logins, all, "{\"all\": true}").map_err(refused)?;
    let outcomes = crate::switching::mark_by_operator(&app.store()?, &which).map_err(refused)?;
    let message = outcomes.iter().map(|o| o.message.as_str()).collect::<Vec<_>>().join("\n");
    Ok(json_response(200, &json!({"ok": true, "message": message, "accounts": outcomes})))
}

/// `/api/accounts/LOGIN` and `/api/accounts/LOGIN/ACTION`: one account at a time (`accounts_admin`).
/// The login is percent-decoded as a path segment (a `+` stays a `+`, as in `a+b@x.se`).
fn one_account(app: &Arc<Appliance>, request: &mut Request, method: &Method, path: &str) -> Reply {
    let rest = path.trim_start_matches("/api/accounts/");
    let (login, action) = rest.split_once('/').unwrap_or((rest, ""));
    let login = front_door::parse_query(&format!("?l={}", login.replace('+', "%2B"))).1.remove("l").unwrap_or_default();
    let refused = |e: anyhow::Error| match e.downcast_ref::<crate::accounts_admin::Refused>() {
        Some(r) => ApiError::new(r.status(), r.to_string()),
        None => ApiError::from(e),
    };
    let pass_running = app.runtime().pass_active;
    let store = app.store()?;
    let answer = match (method, action) {
        (Method::Delete, "") => {
            json!({"ok": true, "message": crate::accounts_admin::remove(&store, &login, pass_running).map_err(refused)?})
        }
        (Method::Post, "pause") | (Method::Post, "resume") => {
            json!({"ok": true, "message": crate::accounts_admin::pause(&store, &login, action == "pause", pass_running).map_err(refused)?})
        }
        (Method::Post, "sync") => {
            let account = crate::accounts_admin::for_sync_now(&store, &login).map_err(refused)?;
            json!({"ok": true, "message": app.sync_now(&account.source_login)})
        }
        (Method::Post, "passwords") => {
            let mut body = read_json(request)?;
            let mut take = |key: &str| -> std::result::Result<Option<crate::secret::Secret>, ApiError> {
                match body.get_mut(key).map(Value::take) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(crate::secret::Secret::from(s))),
                    Some(_) => Err(ApiError::new(400, format!("{key} must be a string"))),
                }
            };
            let new = crate::accounts_admin::NewPasswords { source: take("source_password")?, target: take("target_password")? };
            let (message, warnings) = crate::accounts_admin::set_passwords(&store, &login, &new).map_err(refused)?;
            json!({"ok": true, "message": message, "warnings": warnings})
        }
        _ => {
            return Err(ApiError::new(
                404,
                format!("no such API: {method} {path} (DELETE /api/accounts/LOGIN, or POST .../pause, /resume, /sync, /passwords)"),
            ));
        }
    };
    app.forget_status();
    Ok(json_response(200, &answer))
}
