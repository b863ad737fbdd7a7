//! Setting up the servers, for `postflytt setup` and `POST /api/setup` alike: what a side may be
//! set to (a pin is a SHA-256 fingerprint, plain IMAP only to loopback, a pin alone changes only the
//! stored side's pin), the API's request refused whole, with a sentence naming the key, when any key
//! is unknown or any value wrong (nothing of it stored), and the test of every side saved
//! (`imap::test_endpoint`), kept as the side's last test so the status shows it. A side is stored
//! even when its test fails: the operator may set up before the server is reachable. Also each side's
//! calendar and contact server (issue 19): its address checked by `dav::url::DavUrl::parse`, its pin
//! kept with the same host, and the lines and JSON the status shows it in.

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::imap::{Endpoint, SideTest, TlsMode, plain_allowed, test_endpoint};
use crate::store::{DavSetting, ServerKind, Store};

/// One side as the request gives it; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideRequest {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    /// A SHA-256 fingerprint; "" removes the pin.
    pub pin_sha256: Option<String>,
}

impl SideRequest {
    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.port.is_none() && self.tls.is_none() && self.pin_sha256.is_none()
    }
}

/// A Microsoft 365 app registration of the API (`source_m365`, `target_m365`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct M365Request {
    tenant: Option<Value>,
    client_id: Option<Value>,
    token_url: Option<Value>,
    client_secret: Option<Value>,
}

/// The body of `POST /api/setup` (docs/api.md). Values stay JSON here: each is checked below with
/// its own sentence; this type is what refuses keys nobody knows.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiRequest {
    source: Option<Value>,
    target: Option<Value>,
    source_kind: Option<Value>,
    target_kind: Option<Value>,
    source_m365: Option<Value>,
    target_m365: Option<Value>,
    target_mx: Option<Value>,
    quota_per_account: Option<Value>,
    message_size_limit: Option<Value>,
    /// Present as null means "back to the default", so absent and null differ.
    #[serde(default, deserialize_with = "present")]
    staging_limit: Option<Value>,
    pass_interval_seconds: Option<Value>,
    mx_interval_seconds: Option<Value>,
    parallel: Option<Value>,
    quiet_period_seconds: Option<Value>,
    resolver: Option<Value>,
    watch_domains: Option<Value>,
    mirror: Option<Value>,
    compress: Option<Value>,
    /// E-mail notices: known here so the key is not refused; the API's handler applies them with the
    /// notices' own module, which sits above this one (it reads the check's words).
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    notify: Option<Value>,
    /// The operator's message filter and the package's total (issue 18): a string, or null to
    /// remove; absent leaves it as it is.
    #[serde(default, deserialize_with = "present")]
    older_than: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    newer_than: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    max_message_size: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    quota_total: Option<Value>,
    /// The folder choice (`folder_setup`): lists of strings, [] clears.
    exclude_folders: Option<Value>,
    include_folders: Option<Value>,
    map_folders: Option<Value>,
    /// Admin logins (`admin_login`): null removes one, so absent and null differ.
    #[serde(default, deserialize_with = "present")]
    source_admin: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    target_admin: Option<Value>,
    /// The DAV servers (issue 19): an address, or null to remove; absent leaves it. The pins: a
    /// fingerprint, or "" or null to remove.
    #[serde(default, deserialize_with = "present")]
    source_dav: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    target_dav: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    source_dav_pin: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    target_dav_pin: Option<Value>,
}

/// A value of the filter or the package's total as text (`FilterChange::parse` reads it): null
/// removes ("off"), a number is bytes.
fn operator_text(key: &str, value: &Option<Value>) -> std::result::Result<Option<String>, Refused> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some("off".into())),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
        Some(_) => refuse(format!("{key} must be a string (a date YYYY-MM-DD or a size like \"25M\") or null")),
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A refused setup: the sentence for the operator (the API answers 400 with it).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse<T>(text: impl Into<String>) -> std::result::Result<T, Refused> {
    Err(Refused(text.into()))
}

/// A certificate pin as the operator writes it: a SHA-256 fingerprint, 64 hex digits, with colons or
/// spaces between them or not, either case (as `openssl x509 -fingerprint -sha256` prints it, or
/// the status shows it). Answers lowercase hex without separators.
pub fn parse_pin(text: &str) -> Result<String> {
    let text = text.trim();
    let text = text.strip_prefix("sha256 Fingerprint=").or_else(|| text.strip_prefix("SHA256 Fingerprint=")).unwrap_or(text);
    if let Some(bad) = text.chars().find(|c| !(c.is_ascii_hexdigit() || *c == ':' || c.is_whitespace())) {
        bail!(
            "{text:?} is not a SHA-256 fingerprint: {bad:?} is not a hex digit; give the 64 hex digits the status or \
             `openssl x509 -fingerprint -sha256` shows (colons allowed)"
        );
    }
    let digits: String = text.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_lowercase();
    if digits.len() != 64 {
        bail!(
            "{text:?} is not a SHA-256 fingerprint: it has {} hex digits, a SHA-256 fingerprint has 64 (a SHA-1 one has 40; \
             give the SHA-256 one)",
            digits.len()
        );
    }
    Ok(digits)
}

/// What `side` is to be after `request`, from what is stored: a host makes a new endpoint (TLS
/// implicit and port 993 unless given; the stored pin only if it is the same host and port); without
/// a host the given fields change the stored one (a pin alone changes only its pin). Refused with a
/// sentence when wrong.
pub fn endpoint_for(store: &Store, side: &str, request: &SideRequest) -> Result<Endpoint> {
    let tls = request.tls.as_deref().map(TlsMode::parse).transpose().map_err(|e| anyhow!("{side}.tls: {e}"))?;
    let pin = match request.pin_sha256.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(text) => Some(Some(parse_pin(text).map_err(|e| anyhow!("{side}.pin_sha256: {e}"))?)),
    };
    let mut endpoint = match request.host.as_deref().map(|h| h.trim().trim_matches(|c| c == '[' || c == ']')) {
        Some(host) => {
            if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
                bail!("{side}.host {host:?} is not a host name or address; write e.g. imap.example.se");
            }
            let tls = tls.unwrap_or(TlsMode::Implicit);
            let port = request.port.unwrap_or(if tls == TlsMode::Implicit { 993 } else { 143 });
            // A pin belongs to the server: saving the same host and port again (the page's form sends
            // them with every change) keeps the certificate trusted; another server starts without one.
            let kept = store.endpoint(side).ok().filter(|e| e.host.eq_ignore_ascii_case(host) && e.port == port).and_then(|e| e.pin_sha256);
            Endpoint { host: host.to_string(), port, tls, pin_sha256: kept }
        }
        None => {
            let mut stored = store.endpoint(side).map_err(|_| {
                anyhow!("no {side} server is set up yet, so there is nothing to change: give its host too (e.g. {side}.host or --{side} HOST:PORT)")
            })?;
            if let Some(tls) = tls {
                stored.tls = tls;
            }
            if let Some(port) = request.port {
                stored.port = port;
            }
            stored
        }
    };
    if let Some(pin) = pin {
        endpoint.pin_sha256 = pin;
    }
    if endpoint.port == 0 {
        bail!("{side}.port 0 is not a port");
    }
    if endpoint.tls == TlsMode::Plain && !plain_allowed(&endpoint.host) {
        bail!(
            "plain IMAP to {} would send every password unprotected; plain is allowed only to loopback (127.0.0.1, ::1, \
             localhost, e.g. an SSH tunnel): use implicit or starttls",
            endpoint.host
        );
    }
    Ok(endpoint)
}

/// The mirroring setting as `setup --mirror` and `"mirror"` of `POST /api/setup` write it: "on" or
/// "off" (either case); anything else is refused with a sentence.
pub fn parse_mirror(text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => bail!(
            "mirror must be on or off (got {:?}): on makes the new host follow the users' moves and deletions on the old server \
             until they switch, off leaves the new host alone",
            text.trim()
        ),
    }
}

/// The compression setting as `setup --compress` and `"compress"` of `POST /api/setup` write it:
/// auto, on or off (either case); anything else is refused with a sentence.
pub fn parse_compress(text: &str) -> Result<crate::imap::Compression> {
    crate::imap::Compression::parse(text).ok_or_else(|| {
        anyhow::anyhow!(
            "compress must be auto, on or off (got {:?}): auto compresses the IMAP connections to a server beyond the LAN \
             (a round trip of {} ms or more) that offers COMPRESS=DEFLATE, on compresses every connection to such a server, \
             off none",
            text.trim(),
            crate::imap::WAN_ROUND_TRIP.as_millis()
        )
    })
}

/// One side's DAV server change as `setup` and the API give it (issue 19). `url`: None leaves it,
/// `Some(None)` removes the side's DAV server; `pin`: None leaves it (or drops it with a new server),
/// `Some(None)` removes it.
#[derive(Debug, Clone, Default)]
pub struct DavChange {
    pub url: Option<Option<String>>,
    pub pin: Option<Option<String>>,
}

impl DavChange {
    /// The change of `setup`'s `--SIDE-dav URL|off` and `--SIDE-dav-pin SHA256|off`.
    pub fn from_args(url: Option<&str>, pin: Option<&str>) -> DavChange {
        let off = |text: &str| text.trim().eq_ignore_ascii_case("off") || text.trim().is_empty();
        DavChange {
            url: url.map(|u| (!u.trim().eq_ignore_ascii_case("off")).then(|| u.to_string())),
            pin: pin.map(|p| (!off(p)).then(|| p.to_string())),
        }
    }

    /// The change of the API's `SIDE_dav` (a string, or null to remove) and `SIDE_dav_pin` (a
    /// string; "" or null removes).
    fn from_json(side: &str, url: Option<&Value>, pin: Option<&Value>) -> std::result::Result<DavChange, Refused> {
        let url = match url {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => Some(Some(text.clone())),
            Some(_) => {
                return refuse(format!(
                    "{side}_dav must be the DAV server's address as a string (e.g. \"dav.example.com\"), or null to remove it"
                ));
            }
        };
        let pin = match pin {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => Some(Some(text.clone()).filter(|t| !t.trim().is_empty())),
            Some(_) => return refuse(format!("{side}_dav_pin must be a SHA-256 fingerprint as a string, or null to remove it")),
        };
        Ok(DavChange { url, pin })
    }

    fn is_empty(&self) -> bool {
        self.url.is_none() && self.pin.is_none()
    }
}

/// What the side's DAV server is to be after `change` (`Some(None)`: removed; None: no change),
/// checked with `DavUrl::parse` (its sentences, after the key or flag of `[address, pin]`) before
/// anything is stored. A pin stays with the same server (host and port) and goes with another, as for IMAP.
pub fn dav_plan(store: &Store, side: &str, change: &DavChange, [name, pin_name]: [&str; 2]) -> Result<Option<Option<DavSetting>>> {
    if change.is_empty() {
        return Ok(None);
    }
    let stored = store.dav_server(side)?;
    let url = match &change.url {
        Some(None) => {
            if matches!(change.pin, Some(Some(_))) {
                bail!("{pin_name}: a pin needs a DAV server; give its address too, not off");
            }
            return Ok(Some(None));
        }
        Some(Some(text)) => text.trim().to_string(),
        None => match &stored {
            Some(stored) => stored.url.clone(),
            None => bail!("{pin_name}: no {side} DAV server is set up yet, so there is nothing to pin: give its address too ({name})"),
        },
    };
    let parsed = crate::dav::url::DavUrl::parse(&url, None).map_err(|e| anyhow!("{name}: {e}"))?;
    let pin = match &change.pin {
        Some(Some(text)) => Some(parse_pin(text).map_err(|e| anyhow!("{pin_name}: {e}"))?),
        Some(None) => None,
        None => stored
            .filter(|s| {
                let before = crate::dav::url::DavUrl::parse(&s.url, None).ok();
                before
                    .is_some_and(|b| b.endpoint.host.eq_ignore_ascii_case(&parsed.endpoint.host) && b.endpoint.port == parsed.endpoint.port)
            })
            .and_then(|s| s.pin_sha256),
    };
    Ok(Some(Some(DavSetting { url, pin_sha256: pin })))
}

/// A side's DAV server as `setup` and `status` say it.
pub fn dav_line(side: &str, server: Option<&DavSetting>) -> String {
    match server {
        None => format!("{side} calendars and contacts (CalDAV/CardDAV): none set up; they are moved by hand"),
        Some(s) => format!(
            "{side} calendars and contacts (CalDAV/CardDAV): {}{}",
            s.url,
            s.pin_sha256.as_deref().map(|p| format!(", pinned {p}")).unwrap_or_default()
        ),
    }
}

/// The setting a side's DAV server's last side test is kept under.
fn dav_test_key(side: &str) -> String {
    format!("{side}.dav_test")
}

/// Tests a side's DAV server as just stored (`dav::check::reach`: any HTTP answer means it is there)
/// and keeps the result for the status. Never a reason to refuse the setting: the server may be down
/// today and up at the first pass.
pub fn test_dav_side(store: &Store, side: &str, setting: &DavSetting) -> Result<crate::dav::check::DavReach> {
    let reach = smol::block_on(crate::dav::check::reach(setting));
    store.set_setting(&dav_test_key(side), &serde_json::to_string(&reach)?)?;
    Ok(reach)
}

/// The DAV servers as the status shows them: `{"source": {"url", "pinned", "test"} | null, "target":
/// ...}`, `test` the last side test of this address (`{"reachable", "status", "words"}`) or null.
pub fn dav_status_json(store: &Store) -> Value {
    let side = |side: &str| match store.dav_server(side) {
        Ok(Some(s)) => {
            let test = store
                .setting(&dav_test_key(side))
                .ok()
                .flatten()
                .and_then(|t| serde_json::from_str::<crate::dav::check::DavReach>(&t).ok())
                .filter(|t| t.url == s.url)
                .map_or(Value::Null, |t| json!({"reachable": t.reachable(), "status": t.status, "words": t.line(side)}));
            json!({"url": s.url, "pinned": s.pin_sha256.is_some(), "test": test})
        }
        _ => Value::Null,
    };
    json!({"source": side("source"), "target": side("target")})
}

/// The setting a side's last test is kept under.
fn test_key(side: &str) -> String {
    format!("{side}.test")
}

/// Tests a side as it is now stored, and keeps the result for the status.
pub fn test_side(store: &Store, side: &str) -> Result<SideTest> {
    let endpoint = store.endpoint(side)?;
    let kind = if side == "source" { store.source_kind()? } else { store.target_kind()? };
    let test = smol::block_on(test_endpoint(&endpoint, kind));
    record_test(store, side, &test)?;
    Ok(test)
}

/// Keeps `test` as `side`'s last test.
pub fn record_test(store: &Store, side: &str, test: &SideTest) -> Result<()> {
    store.set_setting(&test_key(side), &serde_json::to_string(test)?)
}

/// `side`'s last test, if it is of the endpoint stored now (a test of an earlier setting is no answer).
pub fn last_test(store: &Store, side: &str) -> Option<SideTest> {
    let test: SideTest = serde_json::from_str(&store.setting(&test_key(side)).ok()??).ok()?;
    let endpoint = store.endpoint(side).ok()?;
    (test.server == endpoint.describe()).then_some(test)
}

/// The last test as the status shows it (`source_test`, `target_test`; null before any test).
pub fn test_json(test: Option<&SideTest>) -> Value {
    test.and_then(|t| serde_json::to_value(t).ok()).unwrap_or(Value::Null)
}

/// The status as a viewer (the customer) gets it: the sides' tests without the English and OpenSSL
/// words and the capabilities; the page says the problem in the viewer's language from the kinds.
pub fn hide_details(status: &mut Value) {
    // E-mail notices: whether they are on is the customer's business; the relay, its login and the
    // operator's addresses are not.
    if let Some(notify) = status.get_mut("notify").filter(|n| n.is_object()) {
        let configured = notify.get("configured").cloned().unwrap_or(Value::Bool(false));
        *notify = serde_json::json!({ "configured": configured });
    }
    // Which admin logins the operator uses on the servers is not the customer's business either.
    if let Some(map) = status.as_object_mut() {
        map.remove("source_admin");
        map.remove("target_admin");
    }
    for key in ["source_test", "target_test"] {
        if let Some(map) = status.get_mut(key).and_then(Value::as_object_mut) {
            map.remove("message");
            map.remove("capabilities");
            if let Some(cert) = map.get_mut("certificate").and_then(Value::as_object_mut) {
                cert.remove("error");
            }
        }
    }
    if let Some(accounts) = status.get_mut("accounts").and_then(Value::as_array_mut) {
        for account in accounts {
            let certificate = account.get("verdict").and_then(Value::as_str).is_some_and(|v| v.ends_with("_certificate"));
            if certificate {
                account["problem"] = Value::Null;
            }
        }
    }
}

/// What `POST /api/setup` stored and found: `{"ok": true, "source_test": ..., "target_test": ...}`
/// (a test only for a side the request changed).
pub fn apply_json(store: &Store, body: &Value) -> std::result::Result<Value, ApiFailure> {
    let request: ApiRequest = serde_json::from_value(body.clone()).map_err(|e| Refused(format!("the setup is refused: {e}")))?;
    // Everything is checked first; nothing is stored unless all of it is right.
    let mut sides = Vec::new();
    for (side, value) in [("source", &request.source), ("target", &request.target)] {
        let Some(value) = value.as_ref().filter(|v| !v.is_null()) else { continue };
        let side_request: SideRequest = serde_json::from_value(value.clone()).map_err(|e| Refused(format!("{side}: {e}")))?;
        let endpoint = endpoint_for(store, side, &side_request).map_err(|e| Refused(format!("{e:#}")))?;
        sides.push((side, endpoint));
    }
    let staging_limit = staging_limit_from(request.staging_limit.as_ref())?;
    let target_mx = match &request.target_mx {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|v| v.as_str().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| Refused("target_mx must be a list of host names, e.g. [\"*.mail.protection.outlook.com\"]".into()))?,
        ),
        Some(_) => return Err(Refused("target_mx must be a list of host names".into()).into()),
    };
    let size = |key: &str, v: &Option<Value>| -> std::result::Result<Option<u64>, Refused> {
        let Some(v) = v else { return Ok(None) };
        match v {
            Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| Refused(format!("{key} must be a size"))),
            Value::String(s) => crate::units::parse_size(s).map(Some).map_err(|e| Refused(format!("{key}: {e}"))),
            _ => refuse(format!("{key} must be a size like \"35M\"")),
        }
    };
    let (quota, size_limit) =
        (size("quota_per_account", &request.quota_per_account)?, size("message_size_limit", &request.message_size_limit)?);
    let number = |key: &str, v: &Option<Value>, lo: i64, hi: i64| -> std::result::Result<Option<i64>, Refused> {
        let Some(v) = v else { return Ok(None) };
        let n = v.as_i64().filter(|n| (lo..=hi).contains(n));
        n.map(Some).ok_or_else(|| Refused(format!("{key} must be a number from {lo} to {hi}")))
    };
    let (passes, quiet_range) = (crate::store::PASS_INTERVAL_SECONDS, crate::store::QUIET_PERIOD_SECONDS);
    let pass_interval = number("pass_interval_seconds", &request.pass_interval_seconds, *passes.start(), *passes.end())?;
    let mx_interval = number("mx_interval_seconds", &request.mx_interval_seconds, 1, 86_400)?;
    let parallel = number("parallel", &request.parallel, 1, 32)?;
    let quiet = number("quiet_period_seconds", &request.quiet_period_seconds, *quiet_range.start(), *quiet_range.end())?;
    let watch_domains = watch_domains_from(request.watch_domains.as_ref())?;
    let resolver = match &request.resolver {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.trim().to_string()),
        Some(_) => return Err(Refused("resolver must be an address like \"192.0.2.53\"".into()).into()),
    };
    let mirror = match &request.mirror {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(parse_mirror(text).map_err(|e| Refused(format!("{e:#}")))?),
        Some(_) => return Err(Refused("mirror must be \"on\" or \"off\"".into()).into()),
    };
    let compress = match &request.compress {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(parse_compress(text).map_err(|e| Refused(format!("{e:#}")))?),
        Some(_) => return Err(Refused("compress must be \"auto\", \"on\" or \"off\"".into()).into()),
    };
    let [older, newer, max, total] = [
        operator_text("older_than", &request.older_than)?,
        operator_text("newer_than", &request.newer_than)?,
        operator_text("max_message_size", &request.max_message_size)?,
        operator_text("quota_total", &request.quota_total)?,
    ];
    let filter = crate::filters::FilterChange::parse(
        [older.as_deref(), newer.as_deref(), max.as_deref()],
        ["older_than", "newer_than", "max_message_size"],
    )
    .and_then(|f| f.check_against(&store.settings()?).map(|()| f))
    .map_err(|e| Refused(format!("{e:#}")))?;
    let quota_total =
        total.map(|t| crate::units::parse_optional_size("quota_total", &t)).transpose().map_err(|e| Refused(format!("{e:#}")))?;
    let folder_change = folder_change_from(&request)?;
    let mut kinds = Vec::new();
    let mut m365 = Vec::new();
    for (side, kind, app) in
        [("source", &request.source_kind, &request.source_m365), ("target", &request.target_kind, &request.target_m365)]
    {
        if let Some(kind) = kind.as_ref().filter(|v| !v.is_null()) {
            let kind =
                kind.as_str().and_then(ServerKind::parse).ok_or_else(|| Refused(format!("{side}_kind must be \"imap\" or \"m365\"")))?;
            kinds.push((side, kind));
        }
        if let Some(app) = app.as_ref().filter(|v| !v.is_null()) {
            let app: M365Request = serde_json::from_value(app.clone()).map_err(|e| Refused(format!("{side}_m365: {e}")))?;
            let mut fields = Vec::new();
            for (field, value) in [
                ("tenant", &app.tenant),
                ("client_id", &app.client_id),
                ("token_url", &app.token_url),
                ("client_secret", &app.client_secret),
            ] {
                let Some(value) = value.as_ref().filter(|v| !v.is_null()) else { continue };
                let text = value.as_str().map(str::trim).filter(|t| !t.is_empty());
                let text = text.ok_or_else(|| Refused(format!("{side}_m365.{field} must be a non-empty string")))?;
                fields.push((field, text.to_string()));
            }
            m365.push((side, fields));
        }
    }
    let mut admins = Vec::new();
    for (side, value) in [("source", &request.source_admin), ("target", &request.target_admin)] {
        let refused = |e: anyhow::Error| Refused(format!("{e:#}"));
        let stored = if side == "source" { store.source_kind()? } else { store.target_kind()? };
        let kind = kinds.iter().find(|(s, _)| *s == side).map_or(stored, |(_, k)| *k);
        let change = value.as_ref().map(|v| crate::admin_login::change_from_json(side, v)).transpose().map_err(refused)?;
        let plan = crate::admin_login::plan(store, side, change.unwrap_or_default(), kind).map_err(refused)?;
        admins.extend(plan.map(|plan| (side, plan)));
    }
    let mut davs = Vec::new();
    for (side, url, pin) in
        [("source", &request.source_dav, &request.source_dav_pin), ("target", &request.target_dav, &request.target_dav_pin)]
    {
        let change = DavChange::from_json(side, url.as_ref(), pin.as_ref())?;
        let plan =
            dav_plan(store, side, &change, [&format!("{side}_dav"), &format!("{side}_dav_pin")]).map_err(|e| Refused(format!("{e:#}")))?;
        davs.extend(plan.map(|plan| (side, plan)));
    }

    if !folder_change.is_empty() {
        // Refused whole, before anything else is stored, once an account has copies.
        crate::folder_setup::apply(store, &folder_change).map_err(|e| Refused(format!("{e:#}")))?;
    }
    for (side, endpoint) in &sides {
        store.set_endpoint(side, endpoint)?;
    }
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
        if let Some(d) = watch_domains {
            s.watch_domains = d;
        }
        if let Some(m) = mirror {
            s.mirror = m;
        }
        if let Some(c) = compress {
            s.compress = c;
        }
        filter.apply(s);
        if let Some(t) = quota_total {
            s.quota_total = t;
        }
    })?;
    let mut tested: Vec<&str> = sides.iter().map(|(side, _)| *side).collect();
    for (side, kind) in kinds {
        if store.set_kind(side, kind)?.is_some() {
            tested.push(side);
        }
    }
    for (side, fields) in m365 {
        // The app registration of a Microsoft 365 side; the client secret is sealed and never returned.
        let (key, _) = Store::m365_prefixes(side);
        for (field, text) in fields {
            if field == "client_secret" {
                store.set_secret_setting(&format!("{key}client_secret"), &crate::secret::Secret::new(text))?;
            } else {
                store.set_setting(&format!("{key}{field}"), &text)?;
            }
        }
    }
    for (side, plan) in admins {
        crate::admin_login::apply(store, side, plan)?;
    }
    let mut dav_tested = Vec::new();
    for (side, setting) in davs {
        store.set_dav_server(side, setting.as_ref())?;
        dav_tested.extend(setting.map(|s| (side, s)));
    }
    let mut answer = json!({"ok": true});
    if tested.is_empty() && dav_tested.is_empty() {
        return Ok(answer);
    }
    // One connection test at a time: each holds the HTTP worker that took the request for up to its
    // deadlines (about 10 s a side against a server that accepts and never answers), and the page's
    // status needs the other workers. A save while another test runs is stored untested, and says so.
    let _testing = match API_TEST.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            answer["test_note"] = json!("saved; not tested now because another connection test is running: save again to test it");
            return Ok(answer);
        }
    };
    for side in tested {
        answer[format!("{side}_test")] = serde_json::to_value(test_side(store, side)?).map_err(|e| anyhow!(e))?;
    }
    for (side, setting) in dav_tested {
        let reach = test_dav_side(store, side, &setting)?;
        answer[format!("{side}_dav_test")] = json!({"reachable": reach.reachable(), "status": reach.status, "words": reach.line(side)});
    }
    Ok(answer)
}

/// The request's folder choice, each list checked (refused with a sentence naming its key).
fn folder_change_from(request: &ApiRequest) -> std::result::Result<crate::folder_setup::FolderChange, Refused> {
    let list = |key: &str, v: &Option<Value>| match v {
        None => Ok(None),
        Some(v) => crate::folder_setup::strings(key, v).map_err(|e| Refused(format!("{e:#}"))),
    };
    let change = crate::folder_setup::FolderChange {
        exclude: list("exclude_folders", &request.exclude_folders)?,
        include: list("include_folders", &request.include_folders)?,
        map: list("map_folders", &request.map_folders)?,
    };
    change.check(["exclude_folders", "include_folders", "map_folders"]).map_err(|e| Refused(format!("{e:#}")))?;
    Ok(change)
}

/// Held while `POST /api/setup` tests a side (see `apply_json`).
static API_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A setup that failed: refused (400, nothing stored) or our own failure (500).
#[derive(Debug)]
pub enum ApiFailure {
    Refused(String),
    Internal(anyhow::Error),
}

impl From<Refused> for ApiFailure {
    fn from(r: Refused) -> ApiFailure {
        ApiFailure::Refused(r.0)
    }
}

impl From<anyhow::Error> for ApiFailure {
    fn from(e: anyhow::Error) -> ApiFailure {
        ApiFailure::Internal(e)
    }
}

/// `watch_domains` of `POST /api/setup`: the whole list of domains added to the MX watch (replacing
/// the one before; `[]` empties it), each checked as `setup --watch-domain` checks it.
fn watch_domains_from(value: Option<&Value>) -> std::result::Result<Option<Vec<String>>, Refused> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let wrong = || Refused("watch_domains must be a list of domain names, like [\"kund.se\"]".into());
    let list = value.as_array().ok_or_else(wrong)?;
    let mut domains: Vec<String> = Vec::new();
    for item in list {
        let text = item.as_str().ok_or_else(wrong)?;
        let domain = crate::mx::check_domain(text).map_err(|e| Refused(format!("watch_domains: {e}")))?;
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    Ok(Some(domains))
}

/// `staging_limit` of `POST /api/setup`: absent changes nothing (None); `null` or "auto" goes back
/// to the default (Some(None)); bytes as a number or a size like "2G", at least `MIN_STAGING_LIMIT`.
fn staging_limit_from(value: Option<&Value>) -> std::result::Result<Option<Option<u64>>, Refused> {
    let refused = |e: anyhow::Error| Refused(format!("staging_limit: {e}"));
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) => crate::store::parse_staging_limit(text).map(Some).map_err(refused),
        Some(Value::Number(n)) => {
            let bytes = n.as_u64().ok_or_else(|| Refused(format!("staging_limit: {n} is not a number of bytes; write e.g. \"2G\"")))?;
            crate::store::check_staging_limit(bytes).map(|b| Some(Some(b))).map_err(refused)
        }
        Some(_) => refuse("staging_limit must be a size like \"2G\" or a number of bytes, or \"auto\" for the default"),
    }
}

/// A side's test in the words the CLI prints: one line, and what to do about a certificate.
pub fn test_words(side: &str, test: &SideTest) -> String {
    let mut out = format!("{side} test: {}", test.message);
    if let Some(cert) = test.certificate_problem() {
        let expiry = cert
            .not_after
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "unknown".into());
        out.push_str(&format!(
            "\n  subject: {}\n  issuer: {}\n  valid until: {expiry}\n  SHA-256: {}\n  OpenSSL says: {}\n  if this is the right server, trust this certificate: postflytt setup --{side}-pin {}",
            cert.subject,
            cert.issuer,
            cert.sha256,
            cert.error.as_deref().unwrap_or("-"),
            cert.sha256
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    #[test]
    fn pins_are_sha256_fingerprints_normalised() {
        let want = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(parse_pin(FP).unwrap(), want);
        assert_eq!(parse_pin(&FP.replace(':', " ")).unwrap(), want);
        assert_eq!(parse_pin(&format!("sha256 Fingerprint={FP}")).unwrap(), want);
        assert_eq!(parse_pin(want).unwrap(), want);
        let junk = parse_pin("abc").unwrap_err().to_string();
        assert!(junk.contains("has 3 hex digits, a SHA-256 fingerprint has 64"), "{junk}");
        let sha1 = parse_pin(&"ab:".repeat(20)).unwrap_err().to_string();
        assert!(sha1.contains("has 40 hex digits") && sha1.contains("SHA-1"), "{sha1}");
        let letters = parse_pin(&format!("{}zz", &want[..62])).unwrap_err().to_string();
        assert!(letters.contains("'z' is not a hex digit"), "{letters}");
    }

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("pf-setup-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (Store::open(&dir).unwrap(), dir)
    }

    #[test]
    fn a_side_is_made_from_what_is_given_and_what_is_stored() {
        let (store, dir) = store();
        let pin_only = SideRequest { pin_sha256: Some(FP.into()), ..SideRequest::default() };
        let e = endpoint_for(&store, "source", &pin_only).unwrap_err().to_string();
        assert!(e.contains("no source server is set up yet"), "{e}");
        let host = SideRequest { host: Some("imap.example.se".into()), ..SideRequest::default() };
        let ep = endpoint_for(&store, "source", &host).unwrap();
        assert_eq!((ep.port, ep.tls, ep.pin_sha256.as_deref()), (993, TlsMode::Implicit, None));
        store.set_endpoint("source", &Endpoint { port: 1993, ..ep }).unwrap();
        let ep = endpoint_for(&store, "source", &pin_only).unwrap();
        assert_eq!((ep.host.as_str(), ep.port), ("imap.example.se", 1993));
        assert_eq!(ep.pin_sha256.as_deref(), Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"));
        store.set_endpoint("source", &ep).unwrap();
        let same = SideRequest { host: Some("IMAP.example.se".into()), port: Some(1993), ..SideRequest::default() };
        assert!(endpoint_for(&store, "source", &same).unwrap().pin_sha256.is_some(), "the same server keeps its pin");
        let other = SideRequest { port: Some(993), ..same.clone() };
        assert!(endpoint_for(&store, "source", &other).unwrap().pin_sha256.is_none(), "another server starts without one");
        let removed = SideRequest { pin_sha256: Some(String::new()), ..same };
        assert!(endpoint_for(&store, "source", &removed).unwrap().pin_sha256.is_none(), "\"\" removes the pin");
        let plain = SideRequest { host: Some("imap.example.se".into()), port: Some(143), tls: Some("plain".into()), pin_sha256: None };
        let e = endpoint_for(&store, "source", &plain).unwrap_err().to_string();
        assert!(e.contains("plain is allowed only to loopback"), "{e}");
        for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            let plain = SideRequest { host: Some(host.into()), ..plain.clone() };
            assert!(endpoint_for(&store, "source", &plain).is_ok(), "{host}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_api_request_with_an_unknown_key_or_a_bad_value_stores_nothing() {
        let (store, dir) = store();
        let failed = |body: Value| match apply_json(&store, &body) {
            Err(ApiFailure::Refused(text)) => text,
            other => panic!("{body}: {other:?}"),
        };
        let e = failed(json!({"source": {"host": "127.0.0.1", "hots": "x"}}));
        assert!(e.contains("source: unknown field `hots`"), "{e}");
        let e = failed(json!({"source": {"host": "127.0.0.1"}, "pass_intervall_seconds": 5}));
        assert!(e.contains("unknown field `pass_intervall_seconds`"), "{e}");
        let e = failed(json!({"target_m365": {"tenant": "t", "secret": "s"}}));
        assert!(e.contains("target_m365: unknown field `secret`"), "{e}");
        let e = failed(json!({"source": {"host": "127.0.0.1", "pin_sha256": "abc"}}));
        assert!(e.contains("source.pin_sha256") && e.contains("not a SHA-256 fingerprint"), "{e}");
        let e = failed(json!({"mirror": "maybe"}));
        assert!(e.starts_with("mirror must be on or off (got \"maybe\")"), "{e}");
        let e = failed(json!({"compress": "always"}));
        assert!(e.starts_with("compress must be auto, on or off (got \"always\")"), "{e}");
        let e = failed(json!({"compress": false}));
        assert_eq!(e, "compress must be \"auto\", \"on\" or \"off\"");
        assert_eq!(store.settings().unwrap().compress, crate::imap::Compression::Auto, "nothing refused was stored");
        apply_json(&store, &json!({"compress": "OFF"})).unwrap();
        assert_eq!(store.settings().unwrap().compress, crate::imap::Compression::Off);
        let e = failed(json!({"mirror": true}));
        assert_eq!(e, "mirror must be \"on\" or \"off\"");
        failed(json!({"source": {"host": "127.0.0.1", "port": 1}, "parallel": 99}));
        assert!(store.endpoint("source").is_err(), "nothing of a refused setup is stored");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_dav_server_is_checked_before_it_is_stored_and_keeps_its_pin_with_its_host() {
        let (store, dir) = store();
        let failed = |body: Value| match apply_json(&store, &body) {
            Err(ApiFailure::Refused(text)) => text,
            other => panic!("{body}: {other:?}"),
        };
        // DavUrl::parse's sentences, after the key; nothing of the request stored.
        let e = failed(json!({"source_dav": "http://dav.gammal.se/", "target_dav": "dav.ny.se", "mirror": "off"}));
        assert!(e.starts_with("source_dav: http:// (without TLS) is allowed only to a server on this machine"), "{e}");
        let e = failed(json!({"target_dav": "https://anna:hemligt@dav.ny.se/"}));
        assert!(e.contains("target_dav: the DAV address must not hold a login or password"), "{e}");
        let sv = crate::swedish::sentence(&e);
        assert_eq!(
            sv, "target_dav: DAV-adressen får inte innehålla inloggning eller lösenord: de anges i kontolistan",
            "the Swedish page says it"
        );
        let e = failed(json!({"target_dav": 5}));
        assert!(e.starts_with("target_dav must be the DAV server's address as a string"), "{e}");
        let e = failed(json!({"source_dav_pin": FP}));
        assert!(e.starts_with("source_dav_pin: no source DAV server is set up yet"), "{e}");
        let e = failed(json!({"source_dav": "dav.gammal.se", "source_dav_pin": "abc"}));
        assert!(e.contains("source_dav_pin: ") && e.contains("not a SHA-256 fingerprint"), "{e}");
        assert_eq!((store.dav_server("source").unwrap(), store.dav_server("target").unwrap()), (None, None));
        assert!(store.settings().unwrap().mirror, "the refused request's mirror was not stored either");

        // Loopback addresses on closed ports: each saved side is tested at once (the side test), and a
        // test here must not leave the machine; the test says NOT reachable and the side is stored.
        let answer =
            apply_json(&store, &json!({"source_dav": " localhost:1 ", "source_dav_pin": FP, "target_dav": "http://127.0.0.1:1/"})).unwrap();
        assert_eq!(answer["source_dav_test"]["reachable"], false, "{answer}");
        assert!(
            answer["target_dav_test"]["words"]
                .as_str()
                .unwrap()
                .starts_with("target calendar server at http://127.0.0.1:1/: NOT reachable: ")
        );
        let source = store.dav_server("source").unwrap().unwrap();
        assert_eq!(source.url, "localhost:1");
        assert_eq!(source.pin_sha256.as_deref(), Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"));
        let status = dav_status_json(&store);
        assert_eq!((&status["source"]["url"], &status["source"]["pinned"]), (&json!("localhost:1"), &json!(true)));
        assert_eq!((&status["target"]["url"], &status["target"]["pinned"]), (&json!("http://127.0.0.1:1/"), &json!(false)));
        assert_eq!(status["target"]["test"]["reachable"], false);
        // The same host at a path keeps the pin; another host drops it; null removes the side.
        apply_json(&store, &json!({"source_dav": "https://LOCALHOST:1/dav/"})).unwrap();
        assert!(store.dav_server("source").unwrap().unwrap().pin_sha256.is_some());
        apply_json(&store, &json!({"source_dav": "https://127.0.0.1:1/"})).unwrap();
        assert_eq!(store.dav_server("source").unwrap().unwrap().pin_sha256, None);
        apply_json(&store, &json!({"target_dav": null})).unwrap();
        assert_eq!(store.dav_server("target").unwrap(), None);
        assert_eq!(dav_status_json(&store)["target"], Value::Null);
        // The command line's words: off removes, a pin alone changes only the pin.
        let change = DavChange::from_args(None, Some(FP));
        let plan = dav_plan(&store, "source", &change, ["--source-dav", "--source-dav-pin"]).unwrap().unwrap().unwrap();
        assert_eq!((plan.url.as_str(), plan.pin_sha256.is_some()), ("https://127.0.0.1:1/", true));
        let off = DavChange::from_args(Some("off"), None);
        assert_eq!(dav_plan(&store, "source", &off, ["--source-dav", "--source-dav-pin"]).unwrap(), Some(None));
        let e = dav_plan(&store, "source", &DavChange::from_args(Some("ftp://x/"), None), ["--source-dav", "--source-dav-pin"]);
        assert!(e.unwrap_err().to_string().starts_with("--source-dav: the DAV address must begin with https://"));
        assert_eq!(dav_line("source", None), "source calendars and contacts (CalDAV/CardDAV): none set up; they are moved by hand");
        let _ = std::fs::remove_dir_all(dir);
    }
}
