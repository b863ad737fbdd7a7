//! A stand-in for Microsoft's identity platform, for the Microsoft 365 tests: one tiny_http server on a
//! free 127.0.0.1 port (plain HTTP, which postflytt allows only to loopback) with two endpoints.
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: the v2 client-credentials grant as Entra ID serves it. It checks
//!   the form (`grant_type=client_credentials`, the client id, the client secret, the scope
//!   `https://outlook.office365.com/.default`) and answers `{"token_type":"Bearer","expires_in":N,
//!   "access_token":"m365tok-<n>-<nonce>"}`, or Entra's error documents (`invalid_client` with
//!   AADSTS7000215 for a wrong secret or when switched to refuse, `invalid_scope`, `unauthorized_client`,
//!   `invalid_request` with AADSTS90002 for an unknown tenant). Requests are counted.
//! - `POST /introspect`: what Dovecot's `oauth2` passdb asks (`introspection_mode = post`, form
//!   `token=...`). Only tokens this server issued, not expired and not revoked, are
//!   `{"active": true, "username": "<app>@<tenant domain>"}`; anything else is `{"active": false}`.
//!   An app token is good for every mailbox of the tenant, which Dovecot is told by comparing only the
//!   domain part (`username_format = %Ld` in the passdb's args file, see [`Idp::dovecot_oauth2_conf`]).
//!   Tokens can be revoked, all at once or automatically after N successful introspections.
//!
//! Whatever a client does wrong at the protocol level (wrong method, content type, unknown path) is
//! answered as Entra would and also noted in `complaints`, which the tests expect to stay empty.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The scope an app asks for IMAP access to Exchange Online.
pub const SCOPE: &str = "https://outlook.office365.com/.default";

struct Issued {
    expires: Instant,
    revoked: bool,
    uses: u32,
}

struct State {
    tenant: String,
    client_id: String,
    secret: String,
    domain: String,
    /// Refuse every token request with invalid_client (the secret was deleted in the portal).
    refuse: bool,
    /// `expires_in` of new tokens, in seconds.
    lifetime: u64,
    /// Revoke a token after this many successful introspections.
    revoke_after_uses: Option<u32>,
    /// Every token is inactive (the app lost its mailbox permission).
    deny_all: bool,
    issued: BTreeMap<String, Issued>,
    token_requests: u64,
    tokens_issued: u64,
    refused_requests: u64,
    introspections: u64,
    introspections_active: u64,
    complaints: Vec<String>,
}

/// The running stand-in. See the module docs. Stops on drop.
pub struct Idp {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Idp {
    /// Starts a stand-in for `tenant` whose one app registration is `client_id` / `secret`, with
    /// mailboxes in `domain`. Tokens live an hour unless changed with [`Idp::set_lifetime`].
    pub fn start(tenant: &str, client_id: &str, secret: &str, domain: &str) -> Idp {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("Idp: bind 127.0.0.1:0");
        let port = server.server_addr().to_ip().expect("Idp: an IP listener").port();
        let state = Arc::new(Mutex::new(State {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            secret: secret.to_string(),
            domain: domain.to_string(),
            refuse: false,
            lifetime: 3600,
            revoke_after_uses: None,
            deny_all: false,
            issued: BTreeMap::new(),
            token_requests: 0,
            tokens_issued: 0,
            refused_requests: 0,
            introspections: 0,
            introspections_active: 0,
            complaints: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("idp-{port}"))
                .spawn(move || serve(server, state, stop))
                .expect("Idp: spawn server thread")
        };
        Idp { port, state, stop, thread: Some(thread) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The tenant's token endpoint, as `setup --m365-token-url` takes it.
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/{}/oauth2/v2.0/token", self.port, self.state().tenant)
    }

    pub fn introspection_url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }

    /// The args file of Dovecot's `oauth2` passdb pointing at this stand-in (Dovecot 2.3 option names,
    /// as in Debian's /usr/share/dovecot/dovecot-oauth2.conf.ext).
    pub fn dovecot_oauth2_conf(&self) -> String {
        format!(
            "# Written by tests/m365/idp.rs: Dovecot asks the test's stand-in whether a token is good.\n\
             introspection_mode = post\n\
             introspection_url = {}\n\
             force_introspection = yes\n\
             username_attribute = username\n\
             # An app token is good for every mailbox of the tenant: compare only the domain.\n\
             username_format = %Ld\n\
             active_attribute = active\n\
             active_value = true\n\
             timeout_msecs = 5000\n",
            self.introspection_url()
        )
    }

    /// Refuse (or stop refusing) every token request with `invalid_client`.
    pub fn set_refuse(&self, refuse: bool) {
        self.state().refuse = refuse;
    }

    /// `expires_in` (seconds) of tokens issued from now on; the introspection endpoint honours it.
    pub fn set_lifetime(&self, seconds: u64) {
        self.state().lifetime = seconds;
    }

    /// Revokes every token after `uses` successful introspections (`None`: never).
    pub fn revoke_after_uses(&self, uses: Option<u32>) {
        self.state().revoke_after_uses = uses;
    }

    /// Makes every token, old or new, inactive at introspection (`true`), or normal again.
    pub fn deny_all(&self, deny: bool) {
        self.state().deny_all = deny;
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        for t in self.state().issued.values_mut() {
            t.revoked = true;
        }
    }

    /// Token requests received (good or refused).
    pub fn token_requests(&self) -> u64 {
        self.state().token_requests
    }

    pub fn tokens_issued(&self) -> u64 {
        self.state().tokens_issued
    }

    pub fn refused_requests(&self) -> u64 {
        self.state().refused_requests
    }

    /// Introspections (Dovecot logins with a token), and how many of them found the token good.
    pub fn introspections(&self) -> (u64, u64) {
        let s = self.state();
        (s.introspections, s.introspections_active)
    }

    /// Protocol mistakes a client made, one line each.
    pub fn complaints(&self) -> Vec<String> {
        self.state().complaints.clone()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: tiny_http::Server, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let mut request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => break,
        };
        let mut body = Vec::new();
        let _ = request.as_reader().take(1 << 20).read_to_end(&mut body);
        let content_type = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_ascii_lowercase())
            .unwrap_or_default();
        let method = request.method().as_str().to_string();
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let (status, json) = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            answer(&mut st, &method, &path, &content_type, &body)
        };
        let response = tiny_http::Response::from_string(json.to_string()).with_status_code(status).with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json; charset=utf-8"[..]).expect("static header"),
        );
        let _ = request.respond(response);
    }
}

fn error(code: &str, description: &str) -> serde_json::Value {
    serde_json::json!({
        "error": code,
        "error_description": format!("{description}\r\nTrace ID: 0d3b4c1e-test\r\nCorrelation ID: 7f2a-test\r\nTimestamp: 2026-01-01 00:00:00Z"),
        "error_codes": [description.split(':').next().unwrap_or("").trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)],
        "trace_id": "0d3b4c1e-test",
        "correlation_id": "7f2a-test",
    })
}

fn answer(st: &mut State, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
    if method != "POST" {
        st.complaints.push(format!("{method} {path} (only POST is served)"));
        return (405, error("invalid_request", "AADSTS900561: The endpoint only accepts POST requests."));
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        st.complaints.push(format!("POST {path} with Content-Type {content_type:?}"));
        return (400, error("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'."));
    }
    let form = parse_form(body);
    if path == "/introspect" {
        return introspect(st, &form);
    }
    let Some(tenant) = path.strip_suffix("/oauth2/v2.0/token").and_then(|p| p.strip_prefix('/')) else {
        st.complaints.push(format!("POST to unknown path {path}"));
        return (404, error("invalid_request", "AADSTS900561: unknown endpoint."));
    };
    st.token_requests += 1;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if tenant != st.tenant {
        st.refused_requests += 1;
        return (400, error("invalid_request", &format!("AADSTS90002: Tenant '{tenant}' not found.")));
    }
    if field("grant_type") != "client_credentials" {
        st.complaints.push(format!("grant_type {:?}", field("grant_type")));
        st.refused_requests += 1;
        return (400, error("unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type."));
    }
    if field("client_id") != st.client_id {
        st.refused_requests += 1;
        return (
            400,
            error(
                "unauthorized_client",
                &format!("AADSTS700016: Application with identifier '{}' was not found in the directory.", field("client_id")),
            ),
        );
    }
    if st.refuse || field("client_secret") != st.secret {
        st.refused_requests += 1;
        return (
            401,
            error(
                "invalid_client",
                &format!(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    st.client_id
                ),
            ),
        );
    }
    if field("scope") != SCOPE {
        st.refused_requests += 1;
        return (400, error("invalid_scope", &format!("AADSTS1002012: The provided value for scope {} is not valid.", field("scope"))));
    }
    st.tokens_issued += 1;
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let token = format!("m365tok-{}-{nonce:08x}", st.tokens_issued);
    let lifetime = st.lifetime;
    st.issued.insert(token.clone(), Issued { expires: Instant::now() + Duration::from_secs(lifetime), revoked: false, uses: 0 });
    (200, serde_json::json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}))
}

fn introspect(st: &mut State, form: &BTreeMap<String, String>) -> (u16, serde_json::Value) {
    st.introspections += 1;
    let token = form.get("token").cloned().unwrap_or_default();
    let revoke_after = st.revoke_after_uses;
    let domain = st.domain.clone();
    let client_id = st.client_id.clone();
    let deny_all = st.deny_all;
    let active = match st.issued.get_mut(&token) {
        Some(_) if deny_all => false,
        Some(t) if !t.revoked && Instant::now() < t.expires => {
            t.uses += 1;
            if revoke_after.is_some_and(|n| t.uses >= n) {
                t.revoked = true;
            }
            true
        }
        _ => false,
    };
    if active {
        st.introspections_active += 1;
        (200, serde_json::json!({"active": true, "username": format!("app-{client_id}@{domain}"), "scope": SCOPE}))
    } else {
        (200, serde_json::json!({"active": false}))
    }
}

/// `application/x-www-form-urlencoded` into a map (`+` is a space, `%XX` a byte).
pub fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &[u8]| -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (decode(&pair[..eq]), decode(&pair[eq + 1..])),
            None => (decode(pair), String::new()),
        })
        .collect()
}
