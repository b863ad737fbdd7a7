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
use crate::imap::{Endpoint, TlsMode};
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
        ApiError::new(500, format!("{e:#}"))
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
    let reply = route(app, &mut request, &method, &path, &query, role, &mut upload);
    if let Some(unused) = upload {
        crate::secret::wipe(unused);
    }
    if method == Method::Post {
        // An import, a setup, a started job: the next status shows it at once.
        app.forget_status();
    }
    let response = match reply {
        Ok(r) => r,
        Err(e) => json_response(e.status, &json!({"error": {"status": e.status, "message": e.message}})),
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

fn read_json(request: &mut Request) -> std::result::Result<Value, ApiError> {
    let body = read_body(request, front_door::MAX_JSON)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::new(400, format!("the body is not valid JSON: {e}")))
}

fn route(
    app: &Arc<Appliance>,
    request: &mut Request,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    role: Role,
    upload: &mut Option<Vec<u8>>,
) -> Reply {
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
            Ok(json_response(200, &status))
        }
        (Method::Post, "/api/setup") => {
            need(role, Role::Operator)?;
            let body = read_json(request)?;
            setup(app, &body)?;
            Ok(json_response(200, &json!({"ok": true})))
        }
        (Method::Post, "/api/accounts") => {
            need(role, Role::Operator)?;
            let name = query.get("name").cloned().unwrap_or_else(|| "accounts".into());
            // The door hands the list over in memory (it never passes through a socket).
            let body = upload.take().unwrap_or_default();
            // The upload holds every password of the list: wiped once parsed, whatever the outcome.
            let result = import_accounts(app, &name, &body);
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
            let sent = crate::notify::send_test(&store).map_err(|e| ApiError::new(502, format!("{e:#}")))?;
            Ok(json_response(200, &json!({"ok": true, "message": sent})))
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
        (_, p) if p.starts_with("/api/") => Err(ApiError::new(404, format!("no such API: {} {p} (see docs/api.md)", method))),
        _ => Err(ApiError::new(404, "not found")),
    }
}

fn endpoint_from(value: &Value, side: &str) -> std::result::Result<Endpoint, ApiError> {
    let host = value
        .get("host")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::new(400, format!("{side}.host is missing")))?;
    let tls = TlsMode::parse(value.get("tls").and_then(Value::as_str).unwrap_or("implicit"))
        .map_err(|e| ApiError::new(400, format!("{side}.tls: {e}")))?;
    let port = value.get("port").and_then(Value::as_u64).unwrap_or(if tls == TlsMode::Implicit { 993 } else { 143 });
    let port = u16::try_from(port).map_err(|_| ApiError::new(400, format!("{side}.port {port} is not a port")))?;
    let pin_sha256 = value.get("pin_sha256").and_then(Value::as_str).filter(|p| !p.is_empty()).map(str::to_string);
    Ok(Endpoint { host: host.to_string(), port, tls, pin_sha256 })
}

fn setup(app: &Appliance, body: &Value) -> std::result::Result<(), ApiError> {
    // Refused before the endpoints below are stored, so a wrong limit changes nothing.
    let staging_limit = staging_limit_from(body.get("staging_limit"))?;
    let store = app.store()?;
    // E-mail notices: checked whole, and stored only when all of it is right (docs/api.md, notify).
    if let Some(notify) = body.get("notify") {
        let change = crate::notify::Change::from_json(notify).map_err(|e| ApiError::new(400, format!("{e:#}")))?;
        crate::notify::change(&store, change).map_err(|e| ApiError::new(400, format!("{e:#}")))?;
    }
    for side in ["source", "target"] {
        if let Some(v) = body.get(side).filter(|v| !v.is_null()) {
            store.set_endpoint(side, &endpoint_from(v, side)?)?;
        }
    }
    // Every value is checked before any is stored, then all are stored in one transaction.
    let target_mx: Option<Vec<String>> =
        body.get("target_mx").and_then(Value::as_array).map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect());
    let size = |key: &str| -> std::result::Result<Option<u64>, ApiError> {
        let Some(v) = body.get(key) else { return Ok(None) };
        let bytes = match v {
            Value::Number(n) => n.as_u64().ok_or_else(|| ApiError::new(400, format!("{key} must be a size")))?,
            Value::String(s) => crate::units::parse_size(s).map_err(|e| ApiError::new(400, format!("{key}: {e}")))?,
            _ => return Err(ApiError::new(400, format!("{key} must be a size like \"35M\""))),
        };
        Ok(Some(bytes))
    };
    let (quota, size_limit) = (size("quota_per_account")?, size("message_size_limit")?);
    let number = |key: &str, lo: i64, hi: i64| -> std::result::Result<Option<i64>, ApiError> {
        let Some(v) = body.get(key) else { return Ok(None) };
        let n = v.as_i64().filter(|n| (lo..=hi).contains(n));
        n.map(Some).ok_or_else(|| ApiError::new(400, format!("{key} must be a number from {lo} to {hi}")))
    };
    let pass_interval = number("pass_interval_seconds", 1, 7 * 86_400)?;
    let mx_interval = number("mx_interval_seconds", 1, 86_400)?;
    let parallel = number("parallel", 1, 32)?;
    let quiet = number("quiet_period_seconds", 0, 30 * 86_400)?;
    let resolver = body.get("resolver").and_then(Value::as_str).map(str::to_string);
    store.change_settings(|s| {
        if let Some(t) = target_mx {
            s.mx_target = t;
        }
        if quota.is_some() {
            s.quota_per_account = quota;
        }
        if size_limit.is_some() {
            s.message_size_limit = size_limit;
        }
        if let Some(limit) = staging_limit {
            s.staging_limit = limit;
        }
        if let Some(n) = pass_interval {
            s.pass_interval_seconds = n;
        }
        if let Some(n) = mx_interval {
            s.mx_interval_seconds = n;
        }
        if let Some(n) = parallel.and_then(|n| usize::try_from(n).ok()) {
            s.parallel = n;
        }
        if let Some(n) = quiet {
            s.quiet_period_seconds = n;
        }
        if let Some(r) = resolver {
            s.mx_resolver = Some(r);
        }
    })?;
    for side in ["source", "target"] {
        if let Some(kind) = body.get(format!("{side}_kind")).filter(|v| !v.is_null()) {
            let kind = kind
                .as_str()
                .and_then(crate::store::ServerKind::parse)
                .ok_or_else(|| ApiError::new(400, format!("{side}_kind must be \"imap\" or \"m365\"")))?;
            store.set_kind(side, kind)?;
        }
        // The app registration of a Microsoft 365 side; the client secret is sealed and never returned.
        if let Some(app) = body.get(format!("{side}_m365")).filter(|v| !v.is_null()) {
            let (key, _) = crate::store::Store::m365_prefixes(side);
            for (field, setting) in [("tenant", "tenant"), ("client_id", "client_id"), ("token_url", "token_url")] {
                if let Some(value) = app.get(field).filter(|v| !v.is_null()) {
                    let text = value.as_str().map(str::trim).filter(|t| !t.is_empty());
                    let text = text.ok_or_else(|| ApiError::new(400, format!("{side}_m365.{field} must be a non-empty string")))?;
                    store.set_setting(&format!("{key}{setting}"), text)?;
                }
            }
            if let Some(secret) = app.get("client_secret").filter(|v| !v.is_null()) {
                let secret = secret.as_str().map(str::trim).filter(|t| !t.is_empty());
                let secret = secret.ok_or_else(|| ApiError::new(400, format!("{side}_m365.client_secret must be a non-empty string")))?;
                store.set_secret_setting(&format!("{key}client_secret"), &crate::secret::Secret::new(secret.to_string()))?;
            }
        }
    }
    Ok(())
}

/// `staging_limit` of `POST /api/setup`: absent changes nothing (None); `null` or "auto" goes back
/// to the default (Some(None)); bytes as a number or a size like "2G", at least `MIN_STAGING_LIMIT`.
fn staging_limit_from(value: Option<&Value>) -> std::result::Result<Option<Option<u64>>, ApiError> {
    let refused = |e: anyhow::Error| ApiError::new(400, format!("staging_limit: {e}"));
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) => crate::store::parse_staging_limit(text).map(Some).map_err(refused),
        Some(Value::Number(n)) => {
            let bytes =
                n.as_u64().ok_or_else(|| ApiError::new(400, format!("staging_limit: {n} is not a number of bytes; write e.g. \"2G\"")))?;
            crate::store::check_staging_limit(bytes).map(|b| Some(Some(b))).map_err(refused)
        }
        Some(_) => Err(ApiError::new(400, "staging_limit must be a size like \"2G\" or a number of bytes, or \"auto\" for the default")),
    }
}

fn import_accounts(app: &Appliance, name: &str, body: &[u8]) -> std::result::Result<Value, ApiError> {
    let store = app.store()?;
    let auth = crate::import::SourceAuth::of(store.source_kind()?);
    let import = crate::import::import_bytes_for(name, body, auth).map_err(|e| ApiError::new(400, e.to_string()))?;
    let saved = crate::import::save(&store, &import.accounts)?;
    let warnings: Vec<String> = import.warnings.iter().map(|w| w.to_string()).collect();
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
    Ok(json_response(200, &json!({"accounts": results})))
}
