//! The journey: a whole migration driven through the page in a real browser, as the people who live it
//! see it. Two throwaway Dovecots on loopback (the old host with mail, the new host empty), dnsmasq
//! answering the customer domain's MX query, and `postflytt --data DIR serve` on a free port. Headless
//! Chromium, driven over the DevTools protocol (tests/cdp), has two tabs that share nothing: the
//! OPERATOR (operator token, English, desktop) does every step with the page's own buttons and forms:
//! fills in the setup (source and target on loopback, unencrypted; the new host's MX name, the DNS
//! server, the pass interval and a quiet period of 0.001 h), uploads the account list with the file
//! input, runs the check, starts the passes, waits until every row is up to date, then (after the test
//! switches the MX record in dnsmasq, as the customer's DNS provider would) sees it is safe to finish,
//! finishes through the confirmation dialog and opens the report. The CUSTOMER (viewer code, Swedish,
//! phone) watches the same migration in the other tab and must see no operator action at any step.
//! At each step both tabs must show the sentences the page's dictionary (web/app.js, read by key; the
//! keys are in one table below) has for that step, and both take a screenshot, kept in target/journey/
//! as STEP-LANG-DEVICE.png for a person to look at. Finally every message is read back from the new
//! host with the test's own IMAP reader (tests/common/reader.rs).
//!
//! One setting has no field on the page and is set through the API: the MX watch's interval (1 s instead
//! of 5 min); everything else goes through the form, the quiet period too (0.001 h, about 4 s). The page
//! is asked to poll at once (a `visibilitychange`, as when a person comes back to the tab) instead of
//! waiting its 5 s. A sentence that is missing is collected, not fatal at once: the test goes on to the
//! end and then fails listing every missing sentence. Keys in `SOFT` (features other work is adding) are
//! only reported. The step while the first copy runs ("wait_sync") is not asserted: with this little
//! mail it lasts about a second. Without Chromium the test prints a notice and passes, unless
//! POSTFLYTT_REQUIRE_CHROMIUM is set (CI sets it).

mod cdp;
mod common;

use cdp::{Browser, Device, Tab, normalize};
use common::fixture;
use common::{Dovecot, Layout};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------------
// The words each step must show, by dictionary key (web/app.js). One table, so renaming a key is one
// line here.
// ---------------------------------------------------------------------------------------------------

// Where the migration is: the current step's name on a desktop, "Step n of 6: name" on a phone.
const STEP_NOW: &str = "steps.now";
// 1. Setup.
const PHASE_SETUP: &str = "phase.setup";
const NEXT_SETUP: &str = "next.set_up_servers";
const NEXT_SETUP_OP: &str = "next.set_up_servers.op";
const SAVE: &str = "op.save";
const MORE_SETTINGS: &str = "op.more";
const SAVED: &str = "op.saved";
// 2. The account list.
const NEXT_IMPORT: &str = "next.import_accounts";
const NEXT_IMPORT_OP: &str = "next.import_accounts.op";
const UPLOAD: &str = "op.upload";
const IMPORTED: &str = "op.imported_counts";
// 3. The check.
const PHASE_CHECK: &str = "phase.check";
const NEXT_CHECK: &str = "next.run_check";
const NEXT_CHECK_OP: &str = "next.run_check.op";
const RUN_CHECK: &str = "op.run_check";
const CHECK_STARTED: &str = "op.check_started";
const VERDICT_READY: &str = "verdict.ready";
const ROW_READY: &str = "status.ready";
const NEXT_START: &str = "next.start_passes";
const NEXT_START_OP: &str = "next.start_passes.op";
// 4. Copying.
const START: &str = "op.start";
const STARTED: &str = "op.started";
const PHASE_SYNCING: &str = "phase.syncing";
const ROW_UP_TO_DATE: &str = "status.up_to_date";
const NEXT_SWITCH: &str = "next.switch_mx";
const NEXT_SWITCH_OP: &str = "next.switch_mx.op";
const MX_NOT_YET: &str = "no";
// 5. Cut-over and the quiet period.
const MX_SWITCHED: &str = "yes";
const PHASE_DRAINING: &str = "phase.draining";
const SAFE: &str = "safe.title";
const NEXT_FINISH: &str = "next.finish";
const NEXT_FINISH_OP: &str = "next.finish.op";
const FINISH_SAFE: &str = "op.finish_safe";
// 6. Finish.
const FINISH_BUTTON: &str = "op.finish_btn";
const DIALOG_TITLE: &str = "dlg.title";
const DIALOG_CONFIRM: &str = "dlg.confirm";
const FINISHING: &str = "op.finishing";
const FINISHED: &str = "finished.title";
const NEXT_DONE: &str = "next.done";
const REPORT_LINK: &str = "finished.report";
const PHASE_FINISHED: &str = "phase.finished";

/// What the operator no longer gets once finished (issue 16: finished means finished).
const HIDDEN_AFTER_FINISH: &[&str] = &[SAVE, UPLOAD, RUN_CHECK, START];
/// Stands for HIDDEN_AFTER_FINISH in `SOFT`.
const FINISHED_HIDES_ACTIONS: &str = "finished hides the actions";

/// Keys of features still being built: a miss is reported, not failed. Take a key out of here once its
/// feature has landed (empty: every feature this test walks through is in).
const SOFT: &[&str] = &[];

/// Buttons a customer may see: the language switch, sign out and the report. Any other control in the
/// customer's tab is an operator action leaking out.
const CUSTOMER_CONTROLS: &[&str] = &["lang.sv", "lang.en", "signout", "finished.report", "finished.report_csv"];

/// The report's words (src/report.rs, not the page's dictionary): (Swedish, English).
const REPORT_WORDS: &[(&str, &str)] = &[
    ("Rapport: flytt av e-post", "Report: e-mail migration"),
    ("Sammanfattning", "Summary"),
    ("verifierade konton: 2 / 2", "accounts verified: 2 / 2"),
    ("Det här behöver ni göra nu", "What you need to do now"),
];

const PEOPLE: [(&str, &str, &str); 2] =
    [("alice@kund.se", "gammalt-Lösen1", "nytt-Lösen1"), ("bo@kund.se", "gammalt-Lösen2", "nytt-Lösen2")];

// ---------------------------------------------------------------------------------------------------
// The dictionary in app.js: `  en: {` ... `  },`, one `"key": "text",` per line (as tests/page.rs reads it).
// ---------------------------------------------------------------------------------------------------

const APP_JS: &str = include_str!("../web/app.js");

fn dictionary(lang: &str) -> BTreeMap<String, String> {
    let open = format!("\n  {lang}: {{\n");
    let start = APP_JS.find(&open).unwrap_or_else(|| panic!("app.js has no `{lang}: {{` dictionary block")) + open.len();
    let end = start + APP_JS[start..].find("\n  },").expect("dictionary block ends with `  },`");
    let mut out = BTreeMap::new();
    for line in APP_JS[start..end].lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let (key, value) = line.split_once("\": ").unwrap_or_else(|| panic!("{lang} dictionary: not `\"key\": \"text\",`: {line:?}"));
        let value = value.strip_suffix(',').unwrap_or(value);
        let value: String = serde_json::from_str(value).unwrap_or_else(|e| panic!("{lang} dictionary: {key}: {e}"));
        out.insert(key.trim_start_matches('"').to_string(), value);
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// The people, their tabs, and what they must read.
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Operator token, English, desktop.
    Operator,
    /// Viewer code, Swedish, phone.
    Customer,
}

struct Journey {
    browser: Browser,
    operator: Tab,
    customer: Tab,
    en: BTreeMap<String, String>,
    sv: BTreeMap<String, String>,
    shots: PathBuf,
    /// Sentences that were not shown: the test fails with these at the end.
    misses: Vec<String>,
    /// Soft misses and other things a person should know.
    notes: Vec<String>,
    step: String,
    started: Instant,
}

impl Journey {
    fn tab(&mut self, who: Who) -> &mut Tab {
        match who {
            Who::Operator => &mut self.operator,
            Who::Customer => &mut self.customer,
        }
    }

    fn lang(who: Who) -> &'static str {
        match who {
            Who::Operator => "en",
            Who::Customer => "sv",
        }
    }

    /// The words for `key` in `who`'s language with `{name}` placeholders filled; None (and a miss or a
    /// note) when the dictionary has no such key.
    fn words(&mut self, who: Who, key: &str, vars: &[(&str, &str)]) -> Option<String> {
        let dict = if who == Who::Operator { &self.en } else { &self.sv };
        let Some(text) = dict.get(key) else {
            self.miss(key, format!("the dictionary has no key {key:?} ({})", Self::lang(who)));
            return None;
        };
        let mut text = text.clone();
        for (name, value) in vars {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        Some(text)
    }

    fn miss(&mut self, key: &str, what: String) {
        let line = format!("[{} {:.0?}] {what}", self.step, self.started.elapsed());
        if SOFT.contains(&key) {
            eprintln!("NOTE (soft key {key}): {line}");
            self.notes.push(format!("{key}: {line}"));
        } else {
            eprintln!("MISS: {line}");
            self.misses.push(line);
        }
    }

    /// `who` must read the words of `key` in `scope` (or anywhere) within `wait`.
    fn expect(&mut self, who: Who, key: &str, vars: &[(&str, &str)], scope: Option<&str>, wait: Duration) -> bool {
        let Some(words) = self.words(who, key, vars) else { return false };
        match self.tab(who).wait_for_text(scope, &words, wait) {
            Ok(_) => true,
            Err(text) => {
                let lang = Self::lang(who);
                let seen: String = normalize(&text).chars().take(600).collect();
                self.miss(
                    key,
                    format!(
                        "{lang}: {key} = {words:?} not shown in {} within {wait:?}; the page said: {seen}",
                        scope.unwrap_or("the page")
                    ),
                );
                false
            }
        }
    }

    /// The phase indicator shows `phase` (the `n`th of six) as the current step: its name marked current
    /// on a desktop, the sentence "Step n of 6: name" on a phone (where the names are hidden).
    fn expect_phase(&mut self, who: Who, phase: &str, n: usize, wait: Duration) -> bool {
        match self.tab(who).device() {
            Device::Desktop => self.expect(who, phase, &[], Some("#steps [aria-current=step]"), wait),
            Device::Phone => {
                let Some(name) = self.words(who, phase, &[]) else { return false };
                self.expect(who, STEP_NOW, &[("n", &n.to_string()), ("total", "6"), ("name", &name)], Some("#step-now"), wait)
            }
        }
    }

    /// `who` must read the words of `key` `n` times in `scope` (one per account row, say).
    fn expect_times(&mut self, who: Who, key: &str, n: usize, scope: &str, wait: Duration) -> bool {
        let Some(words) = self.words(who, key, &[]) else { return false };
        let want = normalize(&words);
        match self.tab(who).wait_for(Some(scope), wait, |text| text.matches(&want).count() >= n) {
            Ok(_) => true,
            Err(text) => {
                let seen: String = normalize(&text).chars().take(600).collect();
                self.miss(
                    key,
                    format!("{}: {key} = {words:?} not shown {n} times in {scope} within {wait:?}; it said: {seen}", Self::lang(who)),
                );
                false
            }
        }
    }

    /// Clicks the button whose words are `key`'s.
    fn click(&mut self, who: Who, key: &str) -> bool {
        let Some(words) = self.words(who, key, &[]) else { return false };
        match self.tab(who).click_text(&words) {
            Ok(()) => true,
            Err(e) => {
                self.miss(key, e);
                false
            }
        }
    }

    /// `STEP[-moment]-LANG-DEVICE.png` in target/journey/.
    fn screenshot(&mut self, who: Who, moment: &str) {
        let device = self.tab(who).device();
        let moment = if moment.is_empty() { String::new() } else { format!("-{moment}") };
        let name = format!("{}{moment}-{}-{}.png", self.step, Self::lang(who), device.name());
        let file = self.shots.join(&name);
        self.tab(who).screenshot(&file);
    }

    /// Both screenshots of this step, and the customer's tab checked for operator actions.
    fn end_step(&mut self) {
        self.screenshot(Who::Operator, "");
        self.screenshot(Who::Customer, "");
        self.customer_sees_no_operator_action();
        eprintln!("journey: step {} done at {:.1?}", self.step, self.started.elapsed());
    }

    fn customer_sees_no_operator_action(&mut self) {
        let allowed: Vec<String> = CUSTOMER_CONTROLS.iter().filter_map(|k| self.sv.get(*k)).map(|w| normalize(w)).collect();
        let controls = self.customer.eval(
            "Array.from(document.querySelectorAll('button, input:not([type=checkbox]), select, textarea, summary, a.btn'))
               .filter((e) => e.getClientRects().length > 0 && !e.closest('#login'))
               .map((e) => (e.innerText || e.value || e.id || e.tagName).trim())",
        );
        let leaked: Vec<String> = controls
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|c| !allowed.contains(&normalize(c)))
            .map(str::to_string)
            .collect();
        if !leaked.is_empty() {
            self.miss("", format!("the customer sees controls that are not theirs: {leaked:?}"));
        }
        let hidden = self
            .customer
            .eval("(() => { const o = document.getElementById('operator'); return !o || o.getClientRects().length === 0; })()");
        if hidden != true {
            self.miss("", "the customer sees the operator section".to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The servers around the appliance.
// ---------------------------------------------------------------------------------------------------

use common::Dnsmasq;

/// `postflytt --data DIR serve` on a free port; killed and its directory removed on drop.
struct Serve {
    child: Child,
    port: u16,
    root: PathBuf,
    token: String,
    code: String,
}

impl Serve {
    fn start() -> Serve {
        let root = common::fresh_dir("pf-journey");
        let data = root.join("data");
        let port = common::free_port();
        let child = Command::new(common::postflytt_bin())
            .arg("--data")
            .arg(&data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("serve.log")).expect("log file"))
            .spawn()
            .expect("start postflytt serve");
        let mut serve = Serve { child, port, root, token: String::new(), code: String::new() };
        let started = Instant::now();
        loop {
            let code = std::fs::read_to_string(data.join("viewer-code")).unwrap_or_default().trim().to_string();
            let token = std::fs::read_to_string(data.join("operator-token")).unwrap_or_default().trim().to_string();
            if !code.is_empty() && !token.is_empty() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                serve.code = code;
                serve.token = token;
                return serve;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "serve did not start; its log:\n{}", serve.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.root.join("serve.log")).unwrap_or_default();
        text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// An API request with the operator token (plain HTTP/1.1 of the test's own).
    fn op(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        stream.write_all(req.as_bytes()).expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, serde_json::from_str(body.trim()).unwrap_or(Value::Null))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("postflytt serve's log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ---------------------------------------------------------------------------------------------------
// The journey.
// ---------------------------------------------------------------------------------------------------

#[test]
fn the_whole_migration_through_the_page_as_operator_and_customer() {
    let Some(chromium) = cdp::find_chromium() else {
        assert!(
            std::env::var_os("POSTFLYTT_REQUIRE_CHROMIUM").is_none(),
            "POSTFLYTT_REQUIRE_CHROMIUM is set but there is no Chromium: `apt-get install chromium` (Debian), or set POSTFLYTT_CHROMIUM"
        );
        eprintln!("NOTICE: skipping the journey test: no Chromium (`apt-get install chromium`, or POSTFLYTT_CHROMIUM=path)");
        return;
    };
    let started = Instant::now();
    const WAIT: Duration = Duration::from_secs(20);
    const GLANCE: Duration = Duration::from_secs(3);

    // The old host with mail in two folders per account, the new host empty.
    let source = Dovecot::start(Layout::OldHost, &PEOPLE.map(|(l, old, _)| (l, old)));
    let target = Dovecot::start(Layout::Target, &PEOPLE.map(|(l, _, new)| (l, new)));
    for (i, (login, _, _)) in PEOPLE.iter().enumerate() {
        let mut r = source.reader(login);
        fixture::load(&mut r, &fixture::bulk("INBOX", 10 + i * 3, 10 + i as u64, 800..4000));
        fixture::load(&mut r, &fixture::bulk("INBOX.Kunder", 4, 20 + i as u64, 800..4000));
    }
    let dns_port = common::free_port();
    let mut dns = Some(Dnsmasq::start(dns_port, &[("kund.se", "mx.gammal.example")]));
    let serve = Serve::start();
    let base = format!("http://127.0.0.1:{}/", serve.port);
    let work = common::fresh_dir("pf-journey-files");
    let shots =
        PathBuf::from(env!("CARGO_BIN_EXE_postflytt")).parent().and_then(Path::parent).map(|t| t.join("journey")).expect("target dir");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("create target/journey");

    let mut browser = Browser::start(&chromium, work.join("profile"));
    let mut operator = browser.new_tab("operator");
    operator.set_device(Device::Desktop);
    operator.navigate(&format!("{base}#token={}&lang=en", serve.token));
    let mut customer = browser.new_tab("customer");
    customer.set_device(Device::Phone);
    // The customer's tab is open on the sign-in form when the link with the code arrives and is pasted
    // into it: the browser does not reload for a new fragment, so the page must take it (issue 16 #11).
    customer.navigate(&base);
    customer.eval(&format!("location.hash = {}; true", json!(format!("#code={}&lang=sv", serve.code))));
    let mut j = Journey {
        browser,
        operator,
        customer,
        en: dictionary("en"),
        sv: dictionary("sv"),
        shots: shots.clone(),
        misses: Vec::new(),
        notes: Vec::new(),
        step: "0-open".into(),
        started,
    };
    use Who::{Customer, Operator};

    // 1. Setup: the operator fills in both servers and the switch-over and saves.
    j.step = "1-setup".into();
    j.expect_phase(Operator, PHASE_SETUP, 1, WAIT);
    j.expect_phase(Customer, PHASE_SETUP, 1, WAIT);
    j.expect(Operator, NEXT_SETUP_OP, &[], Some("#next-text"), WAIT);
    j.expect(Customer, NEXT_SETUP, &[], Some("#next-text"), WAIT);
    let o = &mut j.operator;
    o.fill("#src-host", "127.0.0.1");
    o.fill("#src-tls", "plain");
    o.fill("#src-port", &source.port().to_string());
    o.fill("#tgt-host", "127.0.0.1");
    o.fill("#tgt-tls", "plain");
    o.fill("#tgt-port", &target.port().to_string());
    o.fill("#target-mx", "mx.ny.example");
    o.fill("#setup-interval", "1");
    o.fill("#setup-quiet", "0.001");
    j.click(Operator, MORE_SETTINGS);
    j.operator.fill("#setup-resolver", &format!("127.0.0.1:{dns_port}"));
    // Compression on although the servers are near: the whole journey runs over a compressed target.
    j.operator.fill("#setup-compress", "on");
    j.screenshot(Operator, "form");
    j.click(Operator, SAVE);
    j.expect(Operator, SAVED, &[], Some("#setup-msg"), WAIT);
    let (status, answer) = serve.op("GET", "/api/status", &Value::Null);
    assert_eq!((status, answer["compress"].as_str()), (200, Some("on")), "the page saved the compression setting: {answer}");
    // The one setting the page has no field for: the MX watch looks every second, not every 5 minutes.
    let (status, answer) = serve.op("POST", "/api/setup", &json!({"mx_interval_seconds": 1}));
    assert_eq!(status, 200, "{answer}");
    j.expect(Operator, NEXT_IMPORT_OP, &[], Some("#next-text"), WAIT);
    j.expect(Customer, NEXT_IMPORT, &[], Some("#next-text"), WAIT);
    j.end_step();

    // 2. The account list, as Swedish Excel saves a CSV, chosen with the file input.
    j.step = "2-import".into();
    let list = work.join("konton.csv");
    let mut csv = String::from("\u{feff}E-post;Lösenord;Nytt lösenord\r\n");
    for (login, old, new) in PEOPLE {
        csv.push_str(&format!("{login};{old};{new}\r\n"));
    }
    std::fs::write(&list, csv).expect("write the account list");
    j.operator.set_files("#import-file", &[&list]);
    j.operator
        .wait_for_text(Some("#import-file-name"), "konton.csv", WAIT)
        .unwrap_or_else(|t| panic!("the page did not take the file: {t}"));
    j.click(Operator, UPLOAD);
    j.expect(Operator, IMPORTED, &[("added", "2"), ("updated", "0")], Some("#import-msg"), WAIT);
    j.expect(Operator, NEXT_CHECK_OP, &[], Some("#next-text"), WAIT);
    j.expect_phase(Operator, PHASE_CHECK, 2, GLANCE);
    j.expect_phase(Customer, PHASE_CHECK, 2, WAIT);
    j.expect(Customer, NEXT_CHECK, &[], Some("#next-text"), WAIT);
    for (login, _, _) in PEOPLE {
        j.customer.wait_for_text(Some("#accounts-table"), login, WAIT).unwrap_or_else(|t| panic!("the customer does not see {login}: {t}"));
    }
    j.end_step();

    // 3. The check: every account ready.
    j.step = "3-check".into();
    j.click(Operator, RUN_CHECK);
    j.expect(Operator, CHECK_STARTED, &[], Some("#check-msg"), WAIT);
    j.expect_times(Operator, VERDICT_READY, PEOPLE.len(), "#check-body", Duration::from_secs(40));
    j.expect(Operator, NEXT_START_OP, &[], Some("#next-text"), WAIT);
    j.expect(Customer, NEXT_START, &[], Some("#next-text"), WAIT);
    j.expect_times(Operator, ROW_READY, PEOPLE.len(), "#accounts-table", GLANCE);
    j.expect_times(Customer, ROW_READY, PEOPLE.len(), "#accounts-table", GLANCE);
    j.end_step();

    // 4. Copying: passes started; every row comes up to date.
    j.step = "4-copy".into();
    // The passes card shows the interval the setup form saved (it kept showing 15 minutes).
    let interval = j.operator.eval("document.getElementById('interval-min').value");
    if interval != json!("1") {
        j.miss("passes interval", format!("the passes card says {interval} minutes between passes; the setup saved 1"));
    }
    j.click(Operator, START);
    j.expect(Operator, STARTED, &[], Some("#passes-msg"), WAIT);
    j.expect_phase(Operator, PHASE_SYNCING, 3, WAIT);
    j.expect_times(Operator, ROW_UP_TO_DATE, PEOPLE.len(), "#accounts-table", Duration::from_secs(60));
    j.expect_times(Customer, ROW_UP_TO_DATE, PEOPLE.len(), "#accounts-table", WAIT);
    j.expect_phase(Customer, PHASE_SYNCING, 3, WAIT);
    j.expect(Operator, NEXT_SWITCH_OP, &[], Some("#next-text"), WAIT);
    j.expect(Customer, NEXT_SWITCH, &[], Some("#next-text"), WAIT);
    j.expect(Operator, MX_NOT_YET, &[], Some("#domains-body .badge"), WAIT);
    j.expect(Customer, MX_NOT_YET, &[], Some("#domains-body .badge"), WAIT);
    j.end_step();

    // 5. The customer's DNS provider switches the MX record; after the quiet period it is safe to finish.
    j.step = "5-cutover".into();
    drop(dns.take());
    dns = Some(Dnsmasq::start(dns_port, &[("kund.se", "mx.ny.example")]));
    j.expect(Operator, MX_SWITCHED, &[], Some("#domains-body .badge"), WAIT);
    j.expect(Customer, MX_SWITCHED, &[], Some("#domains-body .badge"), WAIT);
    j.expect_phase(Operator, PHASE_DRAINING, 5, WAIT);
    j.expect_phase(Customer, PHASE_DRAINING, 5, WAIT);
    j.expect(Operator, NEXT_FINISH_OP, &[], Some("#next-text"), WAIT);
    j.expect(Operator, SAFE, &[], Some("#safe"), WAIT);
    j.expect(Operator, FINISH_SAFE, &[], Some("#finish-state"), WAIT);
    j.expect(Customer, NEXT_FINISH, &[], Some("#next-text"), WAIT);
    j.expect(Customer, SAFE, &[], Some("#safe"), WAIT);
    j.end_step();

    // 6. Finish, through the confirmation dialog.
    j.step = "6-finish".into();
    if j.click(Operator, FINISH_BUTTON) {
        j.expect(Operator, DIALOG_TITLE, &[], None, WAIT);
        j.screenshot(Operator, "dialog");
        j.click(Operator, DIALOG_CONFIRM);
    }
    j.expect(Operator, FINISHING, &[], Some("#finish-msg"), WAIT);
    j.expect(Operator, FINISHED, &[], Some("#finished"), Duration::from_secs(60));
    j.expect_phase(Operator, PHASE_FINISHED, 6, GLANCE);
    j.expect_phase(Customer, PHASE_FINISHED, 6, WAIT);
    j.expect(Operator, NEXT_DONE, &[], Some("#next-text"), WAIT);
    j.expect(Operator, REPORT_LINK, &[], Some("#finished"), WAIT);
    j.expect(Customer, FINISHED, &[], Some("#finished"), WAIT);
    j.expect(Customer, NEXT_DONE, &[], Some("#next-text"), WAIT);
    j.expect(Customer, REPORT_LINK, &[], Some("#finished"), WAIT);
    for key in HIDDEN_AFTER_FINISH {
        if let Some(words) = j.words(Operator, key, &[])
            && j.operator.sees_control(&words)
        {
            j.miss(FINISHED_HIDES_ACTIONS, format!("after finish the operator is still offered {key} = {words:?}"));
        }
    }
    j.end_step();

    // 7. The report, opened from the page's link (a blob: URL of the page's own) in a new tab.
    j.step = "7-report".into();
    for who in [Operator, Customer] {
        let href = j.tab(who).eval("document.getElementById('report-link').href");
        let href = href.as_str().unwrap_or_default().to_string();
        if !href.starts_with("blob:") {
            j.miss(REPORT_LINK, format!("{}: the report link goes to {href:?}, not to the fetched report", Journey::lang(who)));
            continue;
        }
        let name = format!("report-{}", Journey::lang(who));
        let sibling = match who {
            Operator => &j.operator,
            Customer => &j.customer,
        };
        let mut report = j.browser.tab_beside(sibling, &name, &href);
        report.set_device(if who == Operator { Device::Desktop } else { Device::Phone });
        let text = report.text(None);
        let read = normalize(&text);
        for (sv, en) in REPORT_WORDS {
            let want = if who == Operator { en } else { sv };
            if !read.contains(&normalize(want)) {
                j.miss(
                    "",
                    format!(
                        "the {} report does not say {want:?}; it says: {}",
                        Journey::lang(who),
                        read.chars().take(400).collect::<String>()
                    ),
                );
            }
        }
        for (login, _, _) in PEOPLE {
            assert!(text.contains(login), "the report names {login}");
        }
        let width = report.eval("document.documentElement.scrollWidth").as_f64().unwrap_or(0.0);
        // Issue 16 #11: the report was 796 px wide on a 390 px phone; its tables now scroll in their box.
        if report.device().name() == "phone" {
            assert!(width <= 400.0, "the report is {width} px wide on a 390 px phone");
        }
        report.screenshot(&shots.join(format!("{}-{}-{}.png", j.step, Journey::lang(who), report.device().name())));
    }
    j.customer_sees_no_operator_action();
    eprintln!("journey: step {} done at {:.1?}", j.step, started.elapsed());

    // 8. Every message is on the new host, read with the test's own IMAP client.
    for (login, _, _) in PEOPLE {
        let from = fixture::mailbox_snapshot(&mut source.reader(login));
        let to = fixture::mailbox_snapshot(&mut target.reader(login));
        let map = fixture::name_map(Layout::OldHost, Layout::Target, from.keys(), "_");
        fixture::assert_same_mail(&from, &to, &map);
    }

    let elapsed = started.elapsed();
    eprintln!("journey: {:.1?} in all; screenshots in {}", elapsed, shots.display());
    for note in &j.notes {
        eprintln!("journey note: {note}");
    }
    let misses = std::mem::take(&mut j.misses);
    drop(j);
    drop(dns);
    let _ = std::fs::remove_dir_all(&work);
    assert!(misses.is_empty(), "the page did not say what each step should ({} misses):\n  {}", misses.len(), misses.join("\n  "));
}
