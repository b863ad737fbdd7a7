//! The status page (web/index.html, app.js, style.css) in a real browser against the real binary:
//! `postflytt --data DIR serve --listen 127.0.0.1:PORT` is started on a free port, an account is
//! imported through the API with the operator token, and Debian's headless Chromium renders the page
//! (`--dump-dom` after a virtual time budget) as the customer (viewer code from the URL fragment, in
//! Swedish and in English), as the operator, and with a wrong code. The DOM is checked for the phase
//! indicator, the account row, progress bars, the domains section and the language; screenshots go to
//! target/page/ for a person to look at. Two checks need no browser and no server: every dictionary key
//! exists in both languages, and the page loads nothing from outside the box and never puts text into
//! innerHTML.
//!
//! Until `serve` works (it arrives with issue 5) the browser test prints a notice and passes; with
//! POSTFLYTT_REQUIRE_SERVE=1 it fails instead.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// The values the API may send (docs/api.md); the page must have words for each. Phases, next steps
/// and row statuses are read from the server's own source, so a value added there without words on the
/// page fails this test.
const APPLIANCE_RS: &str = include_str!("../src/appliance.rs");
const ROW_STATUS_RS: &str = include_str!("../src/row_status.rs");

/// The strings of `Enum::Variant => "text"` arms in `source`'s `fn as_str` bodies (the API's words).
fn enum_texts(source: &str, enum_name: &str) -> Vec<String> {
    let arm = format!("{enum_name}::");
    let bodies: String = source.split("fn as_str(").skip(1).map(|rest| rest.split("\n    }\n").next().unwrap_or_default()).collect();
    let texts: Vec<String> = bodies
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix(&arm)?;
            let (_, text) = rest.split_once("=> \"")?;
            Some(text.split('"').next()?.to_string())
        })
        .collect();
    assert!(!texts.is_empty(), "no `{enum_name}::X => \"text\"` arms found");
    texts
}

fn phases() -> Vec<String> {
    enum_texts(APPLIANCE_RS, "Phase")
}

fn next_steps() -> Vec<String> {
    enum_texts(APPLIANCE_RS, "NextStep")
}

fn row_statuses() -> Vec<String> {
    enum_texts(ROW_STATUS_RS, "RowStatus")
}

const VERDICTS: &[&str] =
    &["ready", "source_login_failed", "target_login_failed", "will_not_fit", "over_size_limit", "source_certificate", "target_certificate"];
/// `source_test` / `target_test`: the outcome, why a server was not reached, what is wrong with a certificate.
const TEST_OUTCOMES: &[&str] = &["ok", "unreachable", "certificate", "tls_failed", "not_imap"];
const UNREACHABLE: &[&str] = &["dns", "refused", "timeout", "other"];
const CERTIFICATE_PROBLEMS: &[&str] = &["self_signed", "expired", "wrong_name", "untrusted", "pin_mismatch", "other"];
const TLS_MODES: &[&str] = &["implicit", "starttls", "plain"];

// ---------------------------------------------------------------------------------------------------
// The dictionary in app.js: `  en: {` ... `  },` with one `"key": "text",` per line.
// ---------------------------------------------------------------------------------------------------

fn dictionary(lang: &str) -> BTreeMap<String, String> {
    let open = format!("\n  {lang}: {{\n");
    let start = APP_JS.find(&open).unwrap_or_else(|| panic!("app.js has no `{lang}: {{` dictionary block")) + open.len();
    let end = start + APP_JS[start..].find("\n  },").expect("dictionary block ends with `  },`");
    let mut out = BTreeMap::new();
    for (n, line) in APP_JS[start..end].lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let (key, value) = line
            .split_once("\": ")
            .unwrap_or_else(|| panic!("{lang} dictionary line {}: expected `\"key\": \"text\",`, got {line:?}", n + 1));
        let key = key.strip_prefix('"').expect("key in quotes").to_string();
        let value = value.strip_suffix(',').unwrap_or(value);
        let value: String = serde_json::from_str(value)
            .unwrap_or_else(|e| panic!("{lang} dictionary, key {key:?}: the text is not one JSON string ({e}): {value}"));
        assert!(!value.trim().is_empty(), "{lang} dictionary: {key:?} is empty");
        assert!(out.insert(key.clone(), value).is_none(), "{lang} dictionary: {key:?} appears twice");
    }
    out
}

/// Keys the page uses: data-i18n attributes, t("…") calls with a literal key, and the keys built from
/// API values (phase, next step, state, verdict, TLS mode).
fn keys_used() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for chunk in INDEX_HTML.split("data-i18n=\"").skip(1) {
        keys.insert(chunk[..chunk.find('"').expect("closing quote")].to_string());
    }
    for chunk in INDEX_HTML.split("data-i18n-attr=\"").skip(1) {
        for pair in chunk[..chunk.find('"').expect("closing quote")].split(';') {
            keys.insert(pair.split_once(':').expect("attr:key").1.to_string());
        }
    }
    for (at, call) in APP_JS.match_indices("t(\"").chain(APP_JS.match_indices("tn(\"")) {
        // Only calls of t and tn themselves, not get("…") or $("…").
        if APP_JS[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '.') {
            continue;
        }
        let chunk = &APP_JS[at + call.len()..];
        let key = &chunk[..chunk.find('"').expect("closing quote")];
        // t("phase." + p) and the like are covered by the API values below.
        if !key.ends_with('.') {
            keys.insert(key.to_string());
        }
    }
    for p in phases() {
        keys.insert(format!("phase.{p}"));
    }
    for s in next_steps() {
        keys.insert(format!("next.{s}"));
    }
    for s in row_statuses() {
        keys.insert(format!("status.{s}"));
    }
    for v in VERDICTS {
        keys.insert(format!("verdict.{v}"));
    }
    for o in TEST_OUTCOMES {
        keys.insert(format!("test.outcome.{o}"));
    }
    for u in UNREACHABLE {
        keys.insert(format!("test.unreachable.{u}"));
    }
    for p in CERTIFICATE_PROBLEMS {
        keys.insert(format!("certproblem.{p}"));
    }
    for side in ["source", "target"] {
        for k in ["cert.viewer", "cert.title", "test.title"] {
            keys.insert(format!("{k}.{side}"));
        }
    }
    for r in ["source_login_failed", "target_login_failed", "source_certificate", "target_certificate", "pass_failed"] {
        assert!(ROW_STATUS_RS.contains(&format!("Some(\"{r}\")")), "row_status.rs no longer gives the reason {r}");
        keys.insert(format!("reason.{r}"));
    }
    for m in TLS_MODES {
        keys.insert(format!("tls.{m}"));
        keys.insert(format!("tlsshort.{m}"));
    }
    keys
}

#[test]
fn dictionary_has_every_key_in_swedish_and_english() {
    let en = dictionary("en");
    let sv = dictionary("sv");
    let en_keys: BTreeSet<_> = en.keys().cloned().collect();
    let sv_keys: BTreeSet<_> = sv.keys().cloned().collect();
    assert_eq!(
        en_keys.difference(&sv_keys).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys in the English dictionary but not in the Swedish one"
    );
    assert_eq!(
        sv_keys.difference(&en_keys).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys in the Swedish dictionary but not in the English one"
    );
    let missing: Vec<_> = keys_used().into_iter().filter(|k| !en.contains_key(k)).collect();
    assert!(missing.is_empty(), "the page uses keys that no dictionary has: {missing:?}");
    // Placeholders must match, or one language would show a raw {name}.
    for (key, text) in &en {
        let holes =
            |s: &str| -> BTreeSet<String> { s.split('{').skip(1).filter_map(|c| c.split_once('}').map(|(h, _)| h.to_string())).collect() };
        assert_eq!(holes(text), holes(&sv[key]), "placeholders differ between en and sv for {key:?}");
    }
}

#[test]
fn page_loads_nothing_from_outside_and_puts_no_text_into_html() {
    for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("style.css", STYLE_CSS)] {
        for banned in ["http://", "https://", "src=\"//", "href=\"//", "@import", "@font-face", "url("] {
            assert!(!text.contains(banned), "web/{name} contains {banned:?}: the box may have no internet, keep every asset local");
        }
    }
    for banned in [".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
        assert!(!APP_JS.contains(banned), "web/app.js uses {banned}: text from the API must go through textContent");
    }
    assert!(!INDEX_HTML.contains("<script>"), "no inline script (a Content-Security-Policy of 'self' must work)");
    assert!(!INDEX_HTML.contains(" style=\""), "no inline style attributes");
    assert!(INDEX_HTML.contains("name=\"viewport\""), "the page needs a viewport meta tag for phones");
}

// ---------------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------------

/// A running `postflytt serve`; killed and its directory removed on drop.
struct Server {
    child: Child,
    port: u16,
    root: PathBuf,
    viewer_code: String,
    operator_token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

fn fresh_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Starts the appliance. `None` (after a notice) when this build has no `serve` verb yet.
fn start_server() -> Option<Server> {
    start_server_in(fresh_dir("postflytt-page"))
}

/// `start_server` on `root/data`, which may hold a migration already.
fn start_server_in(root: PathBuf) -> Option<Server> {
    // POSTFLYTT_PAGE_BIN: another program with the same command line, e.g. a stand-in API while
    // working on the page's design.
    let bin = std::env::var_os("POSTFLYTT_PAGE_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_postflytt")));
    let bin = bin.as_path();
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("create the data dir");
    let log = root.join("serve.log");
    let port = free_port();
    let child = Command::new(bin)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(root.join("serve.out")).expect("log file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the postflytt binary");
    let mut server = Server { child, port, root: root.clone(), viewer_code: String::new(), operator_token: String::new() };
    let required = std::env::var_os("POSTFLYTT_REQUIRE_SERVE").is_some();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exited = server.child.try_wait().ok().flatten();
        let listening = exited.is_none() && TcpStream::connect(("127.0.0.1", port)).is_ok();
        let code = std::fs::read_to_string(data.join("viewer-code")).unwrap_or_default().trim().to_string();
        let token = std::fs::read_to_string(data.join("operator-token")).unwrap_or_default().trim().to_string();
        if listening && !code.is_empty() && !token.is_empty() {
            server.viewer_code = code;
            server.operator_token = token;
            return Some(server);
        }
        if exited.is_some() || Instant::now() > deadline {
            let why = match exited {
                Some(status) => format!("it exited ({status})"),
                None => "it did not listen and write viewer-code and operator-token within 10 s".to_string(),
            };
            if required {
                panic!("`postflytt serve` did not start: {why}; its log:\n{}", tail(&log));
            }
            eprintln!(
                "NOTICE: skipping the page test: `postflytt serve` did not start ({why}); set \
                 POSTFLYTT_REQUIRE_SERVE=1 to make this a failure. Its log:\n{}",
                tail(&log)
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

use common::chromium::{dump_dom, run_chromium};
use common::web::http;

// ---------------------------------------------------------------------------------------------------
// The browser.
// ---------------------------------------------------------------------------------------------------

fn screenshot(url: &str, file: &Path, size: &str) {
    let _ = std::fs::remove_file(file);
    run_chromium(url, &[format!("--screenshot={}", file.display()), format!("--window-size={size}"), "--accept-lang=sv-SE,sv".to_string()]);
    assert!(file.is_file(), "chromium wrote no screenshot to {}", file.display());
}

/// The opening tag of the element with this id, e.g. `<section id="login" … hidden="">`.
fn open_tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!(" id=\"{id}\"")).unwrap_or_else(|| panic!("no element with id {id:?} in the DOM"));
    let start = dom[..at].rfind('<').expect("tag start");
    let end = at + dom[at..].find('>').expect("tag end");
    &dom[start..=end]
}

/// The text right after the opening tag of the element with this id, up to the next tag.
fn inner_text<'a>(dom: &'a str, id: &str) -> &'a str {
    let tag = open_tag(dom, id);
    let start = dom.find(tag).expect("tag is in the DOM") + tag.len();
    &dom[start..start + dom[start..].find('<').unwrap_or(0)]
}

fn is_hidden(dom: &str, id: &str) -> bool {
    open_tag(dom, id).contains(" hidden")
}

/// The text the page shows for `key` in `lang`, as Chromium serializes it (&, <, > and nbsp escaped).
fn shown(dict: &BTreeMap<String, String>, key: &str) -> String {
    dict[key].replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
}

#[test]
fn status_page_in_headless_chromium() {
    let Some(server) = start_server() else { return };
    let port = server.port;
    let code = server.viewer_code.clone();
    let token = server.operator_token.clone();
    let bearer = format!("Bearer {token}");

    // The three assets, byte for byte as in web/, with their types.
    for (path, body, kind) in [("/", INDEX_HTML, "text/html"), ("/app.js", APP_JS, "javascript"), ("/style.css", STYLE_CSS, "text/css")] {
        let r = http(port, "GET", path, &[], b"");
        assert_eq!(r.status, 200, "GET {path}");
        let ctype = r.headers.get("content-type").cloned().unwrap_or_default();
        assert!(ctype.contains(kind), "GET {path}: Content-Type {ctype:?} should contain {kind:?}");
        assert!(r.text() == body, "GET {path} does not serve web/{} as compiled in", path.trim_start_matches('/'));
    }

    // What the page relies on: 401 without a credential (with a message), the viewer code opens the
    // status, a viewer code may not act.
    let r = http(port, "GET", "/api/status", &[], b"");
    assert_eq!(r.status, 401, "GET /api/status without a credential");
    assert!(r.json()["error"]["message"].is_string(), "errors carry error.message: {}", r.text());
    let r = http(port, "POST", "/api/accounts?name=a.csv", &[("X-Viewer-Code", &code)], b"E-post;L\xc3\xb6senord\nmallory@kund.se;pw\n");
    assert_eq!(r.status, 403, "a viewer code may not import: {}", r.text());

    // Seed one account with the operator token.
    let csv = "E-post;Lösenord\nalice@kund.se;pw\n";
    let r = http(port, "POST", "/api/accounts?name=a.csv", &[("Authorization", &bearer), ("Content-Type", "text/csv")], csv.as_bytes());
    assert!((200..300).contains(&r.status), "POST /api/accounts: {} {}", r.status, r.text());
    // A Microsoft 365 target, set up as the page's form sends it.
    let app_secret = "Page~Secret.Never_Shown-0123456789abcdef";
    let setup = format!(
        r#"{{"target_kind": "m365", "target_m365": {{"tenant": "t-1", "client_id": "c-1", "client_secret": "{app_secret}"}}, "staging_limit": "32M"}}"#
    );
    let r = http(port, "POST", "/api/setup", &[("Authorization", &bearer), ("Content-Type", "application/json")], setup.as_bytes());
    assert_eq!(r.status, 200, "POST /api/setup: {}", r.text());
    let r = http(port, "GET", "/api/status", &[("X-Viewer-Code", &code)], b"");
    assert_eq!(r.status, 200, "GET /api/status with the viewer code: {}", r.text());
    let status = r.json();
    let phase = status["phase"].as_str().expect("status.phase").to_string();
    assert!(phases().contains(&phase), "unknown phase {phase:?}");
    let accounts = status["accounts"].as_array().expect("status.accounts");
    assert!(accounts.iter().any(|a| a["login"] == "alice@kund.se"), "the imported account is in the status: {status}");
    assert!(!r.text().contains("\"pw\""), "the status must not contain the password");
    let domains: Vec<String> =
        status["domains"].as_array().map(|d| d.iter().filter_map(|x| x["domain"].as_str().map(String::from)).collect()).unwrap_or_default();

    let en = dictionary("en");
    let sv = dictionary("sv");
    let base = format!("http://127.0.0.1:{port}/");
    let target =
        PathBuf::from(env!("CARGO_BIN_EXE_postflytt")).parent().and_then(Path::parent).map(|t| t.join("page")).expect("target dir");
    std::fs::create_dir_all(&target).expect("create target/page");

    // Run the browsers side by side: each is a few seconds of wall time.
    let urls = [
        ("default-sv", format!("{base}#code={code}"), "sv-SE,sv"),
        ("default-en", format!("{base}#code={code}"), "de-DE,de"),
        ("en", format!("{base}#code={code}&lang=en"), "sv-SE,sv"),
        ("sv", format!("{base}#code={code}&lang=sv"), "en-US,en"),
        ("operator", format!("{base}#token={token}&lang=en"), "en-US,en"),
        ("wrong", format!("{base}#code=not-the-code&lang=en"), "en-US,en"),
    ];
    let shots = [
        ("phone-sv.png", format!("{base}#code={code}&lang=sv"), "390,844"),
        ("phone-en.png", format!("{base}#code={code}&lang=en"), "390,844"),
        ("phone-operator.png", format!("{base}#token={token}&lang=sv"), "390,844"),
        ("desktop-sv.png", format!("{base}#code={code}&lang=sv"), "1280,1100"),
    ];
    let doms: BTreeMap<&str, String> = std::thread::scope(|scope| {
        let jobs: Vec<_> = urls.iter().map(|(name, url, lang)| (*name, scope.spawn(move || dump_dom(url, lang)))).collect();
        let shot_jobs: Vec<_> = shots
            .iter()
            .map(|(file, url, size)| {
                let file = target.join(file);
                scope.spawn(move || screenshot(url, &file, size))
            })
            .collect();
        for j in shot_jobs {
            j.join().expect("screenshot thread");
        }
        jobs.into_iter().map(|(name, j)| (name, j.join().expect("chromium thread"))).collect()
    });

    for (name, dict, lang) in
        [("default-sv", &sv, "sv"), ("default-en", &en, "en"), ("en", &en, "en"), ("sv", &sv, "sv"), ("operator", &en, "en")]
    {
        let dom = &doms[name];
        let ctx = format!("[{name}]");
        assert!(
            !dom.contains('⟦'),
            "{ctx} a dictionary key is missing: {}",
            dom.split('⟦').nth(1).unwrap_or("").split('⟧').next().unwrap_or("")
        );
        assert!(dom.contains(&format!("<html lang=\"{lang}\"")), "{ctx} the page should be in {lang}");
        assert!(is_hidden(dom, "login"), "{ctx} the sign-in form should be hidden once the code works");
        assert!(!is_hidden(dom, "app"), "{ctx} the status should show");
        // The phase indicator: six steps, the current one marked and named.
        assert_eq!(dom.matches("class=\"step ").count(), phases().len(), "{ctx} six steps");
        assert!(dom.contains(&format!("data-phase=\"{phase}\" aria-current=\"step\"")), "{ctx} the step {phase:?} is the current one");
        assert!(
            dom.contains(&format!("<span class=\"step-label\">{}</span>", shown(dict, &format!("phase.{phase}")))),
            "{ctx} the phase's name"
        );
        // What to do next: some text from the dictionary.
        assert!(!inner_text(dom, "next-text").trim().is_empty(), "{ctx} the next step has words");
        // The account row with its progress bar.
        assert!(dom.contains("<span class=\"acct-name\">alice@kund.se</span>"), "{ctx} the account row");
        assert!(dom.matches("role=\"progressbar\"").count() >= 2, "{ctx} a progress bar for the totals and for the account");
        // One status per row: imported, not checked, no pass (issue 16: rows said "Not checked" beside
        // a check that said ready; that case is the appliance test's).
        assert!(dom.contains(&format!(">{}<", shown(dict, "status.not_checked"))), "{ctx} the row says it is not checked yet");
        // The domains section.
        assert!(!is_hidden(dom, "domains"), "{ctx} the domains section");
        for d in &domains {
            assert!(dom.contains(&format!("data-label=\"{}\">{d}</th>", shown(dict, "col.domain"))), "{ctx} the domain {d}");
        }
        if domains.is_empty() {
            assert!(!is_hidden(dom, "domains-empty"), "{ctx} no domains: says so");
        }
        // Language: the section titles in this language, not in the other one.
        let other = if lang == "sv" { &en } else { &sv };
        for key in ["totals.title", "accounts.title", "domains.title", "next.title"] {
            assert!(dom.contains(&format!(">{}<", shown(dict, key))), "{ctx} {key} in {lang}");
            if dict[key] != other[key] {
                assert!(!dom.contains(&format!(">{}<", shown(other, key))), "{ctx} {key} must not be in the other language");
            }
        }
        assert!(dom.contains(&format!("aria-pressed=\"true\" data-i18n=\"lang.{lang}\"")), "{ctx} the language switch shows {lang}");
        // Staging against the limit set above: "Mellanlager: 200,7 kB av 32,0 MB", "Staging: 200.7 KB of 32.0 MB".
        assert!(dom.contains(&format!("<dt>{}</dt>", shown(dict, "staging.title"))), "{ctx} the staging fact's name");
        let (of, limit) = if lang == "sv" { (" av ", "32,0&nbsp;MB") } else { (" of ", "32.0&nbsp;MB") };
        let staging = inner_text(dom, "staging-used");
        assert!(staging.ends_with(&format!("{of}{limit}")), "{ctx} staging used against the limit: {staging:?}");
        let used = staging.split(of).next().unwrap_or_default();
        assert!(
            used.contains(if lang == "sv" { ',' } else { '.' }) && used.contains("&nbsp;"),
            "{ctx} used, in {lang}'s numbers: {used:?}"
        );
    }
    // Where the limit comes from is for the operator only.
    for name in ["default-sv", "en", "sv"] {
        assert!(!doms[name].contains("id=\"staging-why\""), "[{name}] a viewer is not told where the staging limit comes from");
    }

    // Accounts one at a time: each row has the operator's actions; a viewer's rows have none showing.
    let op_dom = &doms["operator"];
    for key in ["acct.pause", "acct.sync", "acct.password", "acct.remove"] {
        assert!(op_dom.contains(&format!(">{}</button>", shown(&en, key))), "[operator] the row's {key} action");
    }
    assert!(op_dom.contains("<div class=\"acc-actions\">"), "[operator] the row's actions show");
    for name in ["default-sv", "en", "sv"] {
        assert!(doms[name].contains("<div class=\"acc-actions\" hidden=\"\">"), "[{name}] a viewer gets no account actions");
    }

    // The customer sees no operator controls; the operator does.
    for name in ["default-sv", "en", "sv"] {
        assert!(is_hidden(&doms[name], "operator"), "[{name}] a viewer gets no operator section");
    }
    let op = &doms["operator"];
    assert!(!is_hidden(op, "operator"), "[operator] the operator section shows");
    for id in ["setup-form", "import-form", "check-run", "passes-start", "passes-stop", "interval-form", "finish-open", "finish-dialog"] {
        assert!(op.contains(&format!(" id=\"{id}\"")), "[operator] has #{id}");
    }
    assert!(op.contains(&format!(">{}<", shown(&en, "role.operator"))), "[operator] says it is the operator view");
    // E-mail notices are not set up here: the setup card says so (tests/notify.rs sets them up).
    assert_eq!(inner_text(op, "notify-summary"), shown(&en, "notify.off"), "[operator] says e-mail notices are off");
    assert_eq!(inner_text(op, "staging-why"), shown(&en, "staging.operator"), "[operator] the staging limit is the operator's");
    assert!(
        op.contains(&format!("<label for=\"setup-staging\" data-i18n=\"f.staging\">{}</label>", shown(&en, "f.staging"))),
        "[operator] the setup form's staging field"
    );
    // Calendars and contacts (issue 19): an optional address under each server.
    for id in ["src-dav", "tgt-dav"] {
        assert!(
            op.contains(&format!("<label for=\"{id}\" data-i18n=\"f.dav\">{}</label>", shown(&en, "f.dav"))),
            "[operator] the setup form's calendar field #{id}"
        );
    }
    // The setup form shows the Microsoft 365 app fields for the target only, and never the secret.
    assert!(!is_hidden(op, "tgt-m365"), "[operator] the target's app registration fields show for a Microsoft 365 target");
    assert!(is_hidden(op, "src-m365"), "[operator] the source's app fields stay hidden for an IMAP source");
    for (name, dom) in &doms {
        assert!(!dom.contains(app_secret), "[{name}] the client secret reached the page");
    }

    // A wrong code: back to the sign-in form with a clear message.
    let wrong = &doms["wrong"];
    assert!(!is_hidden(wrong, "login"), "[wrong] the sign-in form shows");
    assert!(is_hidden(wrong, "app"), "[wrong] no status");
    assert!(!is_hidden(wrong, "login-msg"), "[wrong] a message says why");
    assert!(wrong.contains(&shown(&en, "login.rejected")), "[wrong] the message says the code was not accepted");

    for (file, _, _) in &shots {
        eprintln!("screenshot: {}", target.join(file).display());
    }
}

/// Issue 16 #4: the old server's self-signed certificate (a real Dovecot's) is one setup problem on the
/// page. The customer reads one sentence in their language and no certificate details or OpenSSL words;
/// the operator reads what is wrong, the subject, the fingerprint (as `openssl x509` computes it), the
/// "Trust this certificate" button and the command line that does the same.
#[test]
fn a_certificate_problem_is_one_setup_problem_on_the_page() {
    let Some(server) = start_server() else { return };
    let source = common::Dovecot::start(common::Layout::OldHost, &[("alice@kund.se", "pw")]);
    let bearer = format!("Bearer {}", server.operator_token);
    let setup = serde_json::json!({"source": {"host": "127.0.0.1", "port": source.tls_port(), "tls": "implicit"}}).to_string();
    let r = http(server.port, "POST", "/api/setup", &[("Authorization", &bearer), ("Content-Type", "application/json")], setup.as_bytes());
    assert_eq!(r.status, 200, "POST /api/setup: {}", r.text());
    let fingerprint = source.cert_sha256_fingerprint().replace(':', "").to_ascii_lowercase();
    let base = format!("http://127.0.0.1:{}/", server.port);
    let (viewer, operator) = std::thread::scope(|scope| {
        let viewer = scope.spawn(|| dump_dom(&format!("{base}#code={}&lang=sv", server.viewer_code), "sv-SE,sv"));
        let operator = scope.spawn(|| dump_dom(&format!("{base}#token={}&lang=en", server.operator_token), "en-US,en"));
        (viewer.join().expect("chromium"), operator.join().expect("chromium"))
    });
    // For a person to look at, beside the other screenshots in target/page/.
    let shots = PathBuf::from(env!("CARGO_BIN_EXE_postflytt")).parent().and_then(Path::parent).map(|t| t.join("page")).expect("target dir");
    std::fs::create_dir_all(&shots).expect("create target/page");
    screenshot(&format!("{base}#token={}&lang=sv", server.operator_token), &shots.join("certificate-operator-sv.png"), "1280,1100");
    let (sv, en) = (dictionary("sv"), dictionary("en"));
    assert!(viewer.contains(&shown(&sv, "cert.viewer.source")), "[viewer] the sentence in Swedish:\n{viewer}");
    // (The operator's setup form, hidden from the customer, has a pin field with similar words.)
    for detail in [fingerprint.as_str(), "CN=localhost", "self-signed certificate", &format!(">{}<", shown(&sv, "cert.trust"))] {
        let at = viewer.find(detail).unwrap_or(0);
        assert!(
            !viewer.contains(detail),
            "[viewer] the customer sees no {detail:?}: {}",
            &viewer[at.saturating_sub(600)..(at + 200).min(viewer.len())]
        );
    }
    for want in [
        shown(&en, "cert.title.source"),
        shown(&en, "cert.why").replace("{why}", &shown(&en, "certproblem.self_signed")),
        "CN=localhost".to_string(),
        fingerprint.clone(),
        format!(">{}<", shown(&en, "cert.trust")),
        format!("postflytt setup --source-pin {fingerprint}"),
    ] {
        assert!(operator.contains(&want), "[operator] shows {want:?}");
    }
}

/// Issue 16 #5 and #6 on the page: an account whose verification found a message missing is flagged
/// on its row in both languages and the operator is offered the repair; once the migration is finished
/// (here by force, with the message still missing) the flag stays and every action that would change
/// the migration is gone from the page. The migration runs through the CLI against real Dovecot.
#[test]
fn a_missing_message_is_flagged_and_repair_offered_and_a_finished_page_offers_no_changes() {
    let source = common::Dovecot::start(common::Layout::OldHost, &[("p@kund.se", "pw1")]);
    let target = common::Dovecot::start(common::Layout::Target, &[("p@kund.se", "pw2")]);
    common::fixture::load(&mut source.reader("p@kund.se"), &common::fixture::bulk("INBOX", 3, 61, 500..900));
    let root = fresh_dir("postflytt-page-repair");
    let data = root.join("data");
    let cli = |args: &[&str]| -> std::process::Output {
        let out = Command::new(env!("CARGO_BIN_EXE_postflytt")).arg("--data").arg(&data).args(args).output().expect("run postflytt");
        assert!(out.status.success() || args == ["verify"], "postflytt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let (s, t) = (format!("127.0.0.1:{}", source.port()), format!("127.0.0.1:{}", target.port()));
    cli(&["setup", "--source", &s, "--source-tls", "plain", "--target", &t, "--target-tls", "plain"]);
    let list = root.join("konton.csv");
    std::fs::write(&list, "E-post;Lösenord;Nytt lösenord\np@kund.se;pw1;pw2\n").expect("write the list");
    cli(&["import", &list.to_string_lossy()]);
    cli(&["sync"]);
    let mut tr = target.reader("p@kund.se");
    let uid = tr.fetch_all("INBOX")[0].uid;
    tr.expunge_uid("INBOX", uid);
    drop(tr);
    assert_eq!(cli(&["verify"]).status.code(), Some(2));

    let Some(server) = start_server_in(root.clone()) else { return };
    let base = format!("http://127.0.0.1:{}/", server.port);
    let (code, token) = (server.viewer_code.clone(), server.operator_token.clone());
    let changes = ["op-setup", "op-import", "op-check", "op-passes", "op-finish"];

    let dom = dump_dom(&format!("{base}#token={token}&lang=en"), "en-US,en");
    assert!(dom.contains("Not verified: 1 missing"), "the row says so: {dom}");
    assert!(!is_hidden(&dom, "op-repair"), "repair is offered");
    assert!(inner_text(&dom, "repair-state").starts_with("Verification found 1 messages missing"), "{dom}");
    for id in changes {
        assert!(!is_hidden(&dom, id), "{id} is there before finish");
    }
    let dom = dump_dom(&format!("{base}#code={code}&lang=sv"), "sv-SE,sv");
    assert!(dom.contains("Inte verifierat: 1 saknas"), "{dom}");

    cli(&["finish", "--force"]);
    let dom = dump_dom(&format!("{base}#token={token}&lang=en"), "en-US,en");
    assert!(dom.contains("Not verified: 1 missing"), "still flagged after a forced finish: {dom}");
    assert!(!is_hidden(&dom, "finished-forced"), "the finished card says it was forced");
    assert!(
        inner_text(&dom, "finished-forced").starts_with("Finished although verification found problems: 1 messages in 1 accounts"),
        "{dom}"
    );
    for id in changes.iter().chain(&["op-repair"]) {
        assert!(is_hidden(&dom, id), "{id} is gone once finished");
    }
    let dom = dump_dom(&format!("{base}#code={code}&lang=sv"), "sv-SE,sv");
    assert!(dom.contains("Inte verifierat: 1 saknas"), "{dom}");
    assert!(!dom.contains(&shown(&dictionary("sv"), "accounts.summary_ok.one")), "not \"needs no attention\": {dom}");
    assert!(inner_text(&dom, "finished-forced").starts_with("Avslutad trots att verifieringen hittade problem: 1 meddelanden"), "{dom}");
}

/// Issue 17: each account row says whether the new host still follows the users on the old server or
/// when they switched and who said so, in both languages; the operator gets "Users have switched" on a
/// row that has not switched, and not on one that has, and the setting in the setup card.
#[test]
fn account_rows_say_who_mirrors_and_who_switched() {
    let root = fresh_dir("postflytt-page-switched");
    let data = root.join("data");
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_postflytt")).arg("--data").arg(&data).args(args).output().expect("run postflytt");
        assert!(out.status.success(), "postflytt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::create_dir_all(&data).expect("data dir");
    let list = root.join("konton.csv");
    std::fs::write(&list, "E-post;Lösenord;Nytt lösenord\nm@kund.se;pw1;pw2\nn@kund.se;pw1;pw2\n").expect("write the list");
    cli(&["import", &list.to_string_lossy()]);
    cli(&["switched", "m@kund.se"]);

    let Some(server) = start_server_in(root.clone()) else { return };
    let base = format!("http://127.0.0.1:{}/", server.port);
    let (code, token) = (server.viewer_code.clone(), server.operator_token.clone());
    for (lang, accept) in [("en", "en-US,en"), ("sv", "sv-SE,sv")] {
        let dict = dictionary(lang);
        let dom = dump_dom(&format!("{base}#token={token}&lang={lang}"), accept);
        assert_eq!(dom.matches(&shown(&dict, "mirror.mirroring")).count(), 1, "n@kund.se follows the old server ({lang}): {dom}");
        let switched = shown(&dict, "mirror.switched_operator");
        let (before, after) = switched.split_once("{when}").expect("a time in the words");
        let at = dom.find(before).unwrap_or_else(|| panic!("m@kund.se's row says it switched ({lang}): {dom}"));
        assert!(dom[at..].split('<').next().is_some_and(|line| line.ends_with(after)), "{lang}: {}", &dom[at..at + 80]);
        let button = shown(&dict, "acct.switched");
        let buttons: Vec<&str> =
            dom.match_indices(&format!(">{button}</button>")).map(|(i, _)| &dom[dom[..i].rfind('<').expect("tag")..i]).collect();
        assert_eq!(buttons.len(), 2, "{lang}: {dom}");
        assert_eq!(
            buttons.iter().filter(|tag| tag.contains(" hidden")).count(),
            1,
            "only the row not switched offers it ({lang}): {buttons:?}"
        );
        assert!(
            dom.contains(&shown(&dict, "f.mirror")) && dom.contains(&shown(&dict, "f.mirror_off")),
            "the setting in the setup card ({lang})"
        );
        assert!(
            dom.contains(&shown(&dict, "f.compress")) && dom.contains(&shown(&dict, "f.compress_auto")),
            "the compression setting in the setup card ({lang})"
        );
        let viewer = dump_dom(&format!("{base}#code={code}&lang={lang}"), accept);
        assert!(viewer.contains(before) && viewer.contains(&shown(&dict, "mirror.mirroring")), "the customer sees it too ({lang})");
    }
}

/// Issue 18 on the page: after a check with the operator's filter and the package's total set, the
/// check card says in both languages whether all accounts together fit the package, and each row
/// how much the filter leaves out; the setup card has the filter's and the total's fields, and the
/// import form a field for a locked zip's password. The migration is set up and checked through the
/// CLI against real Dovecot.
#[test]
fn the_check_card_says_whether_the_package_fits_and_what_the_filter_leaves_out() {
    let source = common::Dovecot::start(common::Layout::OldHost, &[("f@kund.se", "pw1")]);
    let target = common::Dovecot::start(common::Layout::Target, &[("f@kund.se", "pw2")]);
    let mut msgs = common::fixture::bulk("INBOX", 4, 81, 500..900);
    for (i, m) in msgs.iter_mut().enumerate() {
        m.internal_date = if i < 3 { "15-Jun-2024 12:00:00 +0000" } else { "15-Jun-2018 12:00:00 +0000" }.to_string();
    }
    common::fixture::load(&mut source.reader("f@kund.se"), &msgs);
    let root = fresh_dir("postflytt-page-package");
    let data = root.join("data");
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_postflytt")).arg("--data").arg(&data).args(args).output().expect("run postflytt");
        assert!(out.status.success(), "postflytt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (s, t) = (format!("127.0.0.1:{}", source.port()), format!("127.0.0.1:{}", target.port()));
    cli(&["setup", "--source", &s, "--source-tls", "plain", "--target", &t, "--target-tls", "plain"]);
    cli(&["setup", "--newer-than", "2020-01-01", "--quota-total", "1M"]);
    let list = root.join("konton.csv");
    std::fs::write(&list, "E-post;Lösenord;Nytt lösenord\nf@kund.se;pw1;pw2\n").expect("write the list");
    cli(&["import", &list.to_string_lossy()]);
    cli(&["check"]);
    cli(&["sync"]);

    let Some(server) = start_server_in(root.clone()) else { return };
    let base = format!("http://127.0.0.1:{}/", server.port);
    let token = server.operator_token.clone();
    for (lang, accept, fits, left_out) in
        [("en", "en-US,en", "It fits, with ", "1 messages ("), ("sv", "sv-SE,sv", "Det ryms, med ", "1 meddelanden (")]
    {
        let dict = dictionary(lang);
        let dom = dump_dom(&format!("{base}#token={token}&lang={lang}"), accept);
        let package = inner_text(&dom, "check-package");
        let (start, _) =
            shown(&dict, "check.package_fits").split_once("{need}").map(|(a, b)| (a.to_string(), b.to_string())).expect("words");
        assert!(!is_hidden(&dom, "check-package") && package.contains(&start) && package.contains(fits), "{lang}: {package:?}\n{dom}");
        assert!(
            dom.contains(left_out) && dom.contains(shown(&dict, "check.left_out").split("{size}").nth(1).unwrap_or("?")),
            "{lang}: {dom}"
        );
        // The account row counts what the filter left out, as a note, not as skipped items to fix.
        let note = shown(&dict, "acc.left_out");
        let (before, after) = note.split_once("{size}").expect("words");
        assert!(dom.contains(&before.replace("{n}", "1")) && dom.contains(after), "{lang}: the row's note: {dom}");
        assert!(!dom.contains(&shown(&dict, "acc.skipped_one")), "{lang}: a left-out message is no skipped item to fix");
        for key in ["f.newer", "f.older", "f.maxsize", "f.total", "op.zip_password"] {
            assert!(dom.contains(&shown(&dict, key)), "{lang}: no {key} on the page");
        }
    }
}

/// Issue 18's folder choice on the page: after a check (through the CLI, against real Dovecot) the
/// Folders card holds the operator's lists and shows the account's folders, each left-out one with why
/// in the page's words (the operator's pattern, the account list's, not mail by default), the mapped
/// one with its new name; the check card's row lists the left-out folders with what they hold. Both
/// languages. After a pass has copied mail, the lists are closed and the card says why.
#[test]
fn the_folders_card_shows_what_is_left_out_and_why_and_closes_once_mail_is_copied() {
    // Greeting as Exchange does, which shows calendars as folders (quirk `shows_groupware_folders`).
    let opts = common::DovecotOptions {
        extra_config: "login_greeting = The Microsoft Exchange IMAP4 service is ready.".into(),
        ..common::DovecotOptions::default()
    };
    let source = common::Dovecot::start_with(common::Layout::Modern, &[("g@kund.se", "pw1")], opts);
    let target = common::Dovecot::start(common::Layout::Target, &[("g@kund.se", "pw2")]);
    let mut r = source.reader("g@kund.se");
    common::fixture::ensure_folders(&mut r, &["Arkiv", "Calendar", "Privat", "Projekt"]);
    for (seed, folder) in [(1, "INBOX"), (2, "Arkiv"), (3, "Calendar"), (4, "Privat"), (5, "Projekt")] {
        common::fixture::load(&mut r, &common::fixture::bulk(folder, 1, seed, 500..900));
    }
    drop(r);
    let root = fresh_dir("postflytt-page-folders");
    let data = root.join("data");
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_postflytt")).arg("--data").arg(&data).args(args).output().expect("run postflytt");
        assert!(out.status.success(), "postflytt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (s, t) = (format!("127.0.0.1:{}", source.port()), format!("127.0.0.1:{}", target.port()));
    cli(&["setup", "--source", &s, "--source-tls", "plain", "--target", &t, "--target-tls", "plain"]);
    cli(&["setup", "--exclude-folder", "Arkiv", "--map-folder", "Projekt=Sparat/Projekt"]);
    let list = root.join("konton.csv");
    std::fs::write(&list, "E-post;Lösenord;Nytt lösenord;Exkludera mappar\ng@kund.se;pw1;pw2;Privat\n").expect("write the list");
    cli(&["import", &list.to_string_lossy()]);
    cli(&["check"]);

    let words = |dict: &BTreeMap<String, String>, key: &str, fill: &[(&str, &str)]| {
        let mut text = dict[key].clone();
        for (name, value) in fill {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
    };
    let Some(server) = start_server_in(root.clone()) else { return };
    let base = format!("http://127.0.0.1:{}/", server.port);
    let token = server.operator_token.clone();
    for (lang, accept) in [("en", "en-US,en"), ("sv", "sv-SE,sv")] {
        let dict = dictionary(lang);
        let dom = dump_dom(&format!("{base}#token={token}&lang={lang}"), accept);
        assert_eq!(inner_text(&dom, "folders-exclude"), "Arkiv", "{lang}: the operator's list in the card");
        assert_eq!(inner_text(&dom, "folders-map"), "Projekt=Sparat/Projekt", "{lang}");
        assert!(!open_tag(&dom, "folders-exclude").contains("disabled") && is_hidden(&dom, "folders-locked"), "{lang}: open before a copy");
        for key in ["fold.title", "fold.exclude", "fold.include", "fold.map", "fold.save"] {
            assert!(dom.contains(&shown(&dict, key)), "{lang}: no {key} on the page");
        }
        // The account's folders: INBOX and Projekt move (Projekt under its new name), three stay.
        assert!(dom.contains(&words(&dict, "fold.summary", &[("moves", "2"), ("left", "3")])), "{lang}: {dom}");
        assert!(dom.contains(">Sparat/Projekt<") && dom.contains(&shown(&dict, "fold.mapped")), "{lang}: {dom}");
        let why_operator = dict["fold.why.operator"].replace("{detail}", "Arkiv");
        let why_list = dict["fold.why.account_list"].replace("{detail}", "Privat");
        let why_default = dict["fold.why.not_mail"].clone();
        for why in [&why_operator, &why_list, &why_default] {
            let row = words(&dict, "fold.left_out", &[("why", why)]);
            assert!(dom.contains(&row), "{lang}: {row:?} is not on the page:\n{dom}");
        }
        // The check card's row: each left-out folder with what it holds.
        assert!(dom.contains(&words(&dict, "check.folders_left_out", &[("n", "3")])), "{lang}: {dom}");
        let calendar = words(&dict, "check.folder_left_out.one", &[("name", "Calendar"), ("why", &why_default)]);
        let (before_size, _) = calendar.split_once("{size}").expect("a size in the words");
        assert!(dom.contains(before_size), "{lang}: {before_size:?} is not in the check card:\n{dom}");
    }
    // For a person to look at, beside the other screenshots in target/page/.
    let shots = PathBuf::from(env!("CARGO_BIN_EXE_postflytt")).parent().and_then(Path::parent).map(|t| t.join("page")).expect("target dir");
    std::fs::create_dir_all(&shots).expect("create target/page");
    screenshot(&format!("{base}#token={token}&lang=sv"), &shots.join("folders-operator-sv.png"), "1280,4200");
    // Stopped, not dropped: dropping removes the data directory.
    let mut first = server;
    let _ = first.child.kill();
    let _ = first.child.wait();

    // A pass copies mail: the lists close, and the card says why.
    cli(&["sync"]);
    let Some(server) = start_server_in(root.clone()) else { return };
    let base = format!("http://127.0.0.1:{}/", server.port);
    let token = server.operator_token.clone();
    for (lang, accept) in [("en", "en-US,en"), ("sv", "sv-SE,sv")] {
        let dict = dictionary(lang);
        let dom = dump_dom(&format!("{base}#token={token}&lang={lang}"), accept);
        assert!(open_tag(&dom, "folders-exclude").contains("disabled") && open_tag(&dom, "folders-save").contains("disabled"), "{lang}");
        assert!(!is_hidden(&dom, "folders-locked") && inner_text(&dom, "folders-locked") == shown(&dict, "fold.locked"), "{lang}: {dom}");
    }
}
