//! A small Chrome DevTools Protocol client for the journey test: Debian's headless Chromium started with
//! `--remote-debugging-port=0` in a throwaway profile (the port is read from `DevToolsActivePort` in
//! that profile), one WebSocket per tab (tungstenite, sync, no TLS: the browser is on loopback) and
//! JSON (serde_json). Each [`Tab`] lives in its own browser context, so two tabs share no
//! localStorage (the page keeps the credential and the language there): the operator's tab and the
//! customer's tab are two people. What a tab can do is what a person does: open a URL, read the text
//! on the screen (`innerText`, which leaves out what is hidden), click a button by the words on it,
//! type into a field, choose a file, and take a screenshot. A JavaScript dialog (`confirm`) is
//! accepted as soon as it opens, so a click that asks never hangs the test.

use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// How long one DevTools command may take before the test gives up on the browser.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Phone and desktop, as the page is read on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// 390 x 844 CSS pixels, touch, mobile viewport: a common phone.
    Phone,
    /// 1280 x 900: a laptop.
    Desktop,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Phone => "phone",
            Device::Desktop => "desktop",
        }
    }
}

/// The path of Chromium: `$POSTFLYTT_CHROMIUM`, else `chromium`, `chromium-browser` or `google-chrome`
/// on the PATH; None when there is none.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("POSTFLYTT_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(dir) = std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|d| d.join(name).is_file())) {
            return Some(dir.join(name));
        }
    }
    None
}

/// One WebSocket to the browser or to a tab: commands with ids; events that arrive meanwhile are
/// looked at (a dialog is answered) and dropped.
struct Conn {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    what: String,
}

impl Conn {
    fn open(port: u16, path: &str, what: &str) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to Chromium's DevTools port {port}: {e}"));
        stream.set_read_timeout(Some(Duration::from_millis(500))).expect("set_read_timeout");
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tungstenite::client(url.as_str(), stream).unwrap_or_else(|e| panic!("WebSocket handshake with {url}: {e}"));
        Conn { ws, next_id: 1, what: what.to_string() }
    }

    /// Reads one message if one arrives within the socket's read timeout.
    fn read_one(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(text)) => {
                Some(serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("{}: DevTools sent no JSON ({e}): {text}", self.what)))
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => None,
            Err(e) => panic!("{}: the DevTools connection broke: {e}", self.what),
        }
    }

    /// Sends a command and waits for its answer; Err with DevTools' message when it refused.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::Text(msg.to_string().into())).unwrap_or_else(|e| panic!("{}: send {method}: {e}", self.what));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "{}: no answer to {method} within {COMMAND_TIMEOUT:?}", self.what);
            let Some(v) = self.read_one() else { continue };
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
            if v.get("method").is_some() {
                self.on_event(v);
            }
        }
    }

    /// A `confirm()` or `alert()` blocks the page until someone answers; answer yes at once.
    fn on_event(&mut self, v: Value) {
        if v["method"] == "Page.javascriptDialogOpening" {
            eprintln!("[{}] answering yes to a dialog: {}", self.what, v["params"]["message"]);
            let id = self.next_id;
            self.next_id += 1;
            let msg = json!({"id": id, "method": "Page.handleJavaScriptDialog", "params": {"accept": true}});
            self.ws.send(Message::Text(msg.to_string().into())).unwrap_or_else(|e| panic!("{}: answer a dialog: {e}", self.what));
        }
    }
}

/// A running headless Chromium with its own profile; killed and the profile removed on drop.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    port: u16,
    conn: Conn,
}

impl Browser {
    pub fn start(chromium: &Path, profile: PathBuf) -> Browser {
        let child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--mute-audio",
                // A tab in the background still polls at the page's pace.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromium.display()));
        // DevToolsActivePort: the port on the first line, the browser's WebSocket path on the second.
        let file = profile.join("DevToolsActivePort");
        let started = Instant::now();
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next().and_then(|p| p.trim().parse::<u16>().ok()), lines.next()) {
                    break (port, path.trim().to_string());
                }
            }
            assert!(started.elapsed() < Duration::from_secs(30), "Chromium wrote no {} within 30 s", file.display());
            std::thread::sleep(Duration::from_millis(50));
        };
        let conn = Conn::open(port, &path, "browser");
        Browser { child, profile, port, conn }
    }

    /// A new tab in a new browser context (its own cookies and localStorage), showing about:blank.
    pub fn new_tab(&mut self, name: &str) -> Tab {
        let context = self.conn.call("Target.createBrowserContext", json!({})).expect("Target.createBrowserContext")["browserContextId"]
            .as_str()
            .expect("browserContextId")
            .to_string();
        self.tab_in(name, &context, "about:blank")
    }

    /// A new tab in the same browser context as `sibling` (its blob: URLs and storage), showing `url`.
    pub fn tab_beside(&mut self, sibling: &Tab, name: &str, url: &str) -> Tab {
        let context = sibling.context.clone();
        self.tab_in(name, &context, url)
    }

    fn tab_in(&mut self, name: &str, context: &str, url: &str) -> Tab {
        let target = self.conn.call("Target.createTarget", json!({"url": url, "browserContextId": context})).expect("Target.createTarget")
            ["targetId"]
            .as_str()
            .expect("targetId")
            .to_string();
        let mut conn = Conn::open(self.port, &format!("/devtools/page/{target}"), name);
        conn.call("Page.enable", json!({})).expect("Page.enable");
        conn.call("Runtime.enable", json!({})).expect("Runtime.enable");
        let mut tab = Tab { conn, name: name.to_string(), context: context.to_string(), device: Device::Desktop };
        tab.wait_loaded(url);
        tab
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One tab: a person looking at one page.
pub struct Tab {
    conn: Conn,
    name: String,
    context: String,
    device: Device,
}

impl Tab {
    /// Evaluates `js` (an expression; a promise is awaited) and returns its value as JSON.
    pub fn eval(&mut self, js: &str) -> Value {
        self.try_eval(js).unwrap_or_else(|e| panic!("[{}] {e}", self.name))
    }

    /// As [`Tab::eval`], Err instead of a panic (the document may be being replaced by a navigation).
    fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let r = self
            .conn
            .call("Runtime.evaluate", json!({"expression": js, "awaitPromise": true, "returnByValue": true, "userGesture": true}))?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!("the page threw on {js}: {ex}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Sizes the viewport as a phone or a desktop.
    pub fn set_device(&mut self, device: Device) {
        let (w, h, mobile) = match device {
            Device::Phone => (390, 844, true),
            Device::Desktop => (1280, 900, false),
        };
        self.conn
            .call("Emulation.setDeviceMetricsOverride", json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile}))
            .unwrap_or_else(|e| panic!("[{}] {e}", self.name));
        if mobile {
            let _ = self.conn.call("Emulation.setTouchEmulationEnabled", json!({"enabled": true, "maxTouchPoints": 5}));
        }
        self.device = device;
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Opens `url` and waits until its document (not the one before) has loaded.
    pub fn navigate(&mut self, url: &str) {
        let r = self.conn.call("Page.navigate", json!({"url": url})).unwrap_or_else(|e| panic!("[{}] {e}", self.name));
        if let Some(err) = r.get("errorText").and_then(Value::as_str) {
            panic!("[{}] navigating to {url} failed: {err}", self.name);
        }
        self.wait_loaded(url);
    }

    /// Waits until the tab shows `url` (the fragment aside: the page removes it) and has loaded it. An
    /// evaluation that fails meanwhile is a document being replaced, and is tried again.
    fn wait_loaded(&mut self, url: &str) {
        let want = url.split('#').next().unwrap_or(url).to_string();
        let js = format!("location.href.split('#')[0] === {} && document.readyState === 'complete'", json!(want));
        let started = Instant::now();
        loop {
            let last = match self.try_eval(&js) {
                Ok(Value::Bool(true)) => return,
                Ok(v) => v.to_string(),
                Err(e) => e,
            };
            assert!(started.elapsed() < Duration::from_secs(30), "[{}] {url} did not load within 30 s: {last}", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What a person reads: `innerText` of the element `selector` matches, or of the whole body.
    pub fn text(&mut self, selector: Option<&str>) -> String {
        let js = match selector {
            Some(sel) => format!("(() => {{ const e = document.querySelector({}); return e ? e.innerText : ''; }})()", json!(sel)),
            None => "document.body ? document.body.innerText : ''".to_string(),
        };
        self.eval(&js).as_str().unwrap_or_default().to_string()
    }

    /// Tells the page the tab became visible again, which makes it ask the server at once instead of on
    /// its next 5 s poll (what a person switching back to the tab would see).
    pub fn poll_now(&mut self) {
        self.eval("document.dispatchEvent(new Event('visibilitychange')), true");
    }

    /// Waits until `check` holds for the text of `selector` (or the whole body), asking the page to
    /// poll about once a second; Err with the last text read when `timeout` passes first.
    pub fn wait_for(&mut self, selector: Option<&str>, timeout: Duration, check: impl Fn(&str) -> bool) -> Result<String, String> {
        let started = Instant::now();
        let mut last_poll = Instant::now();
        loop {
            let text = self.text(selector);
            if check(&normalize(&text)) {
                return Ok(text);
            }
            if started.elapsed() > timeout {
                return Err(text);
            }
            if last_poll.elapsed() > Duration::from_millis(1000) {
                self.poll_now();
                last_poll = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits until the text of `selector` (or the whole body) contains `words` (compared with spaces
    /// collapsed and case folded, as CSS may change both).
    pub fn wait_for_text(&mut self, selector: Option<&str>, words: &str, timeout: Duration) -> Result<String, String> {
        let want = normalize(words);
        self.wait_for(selector, timeout, |text| text.contains(&want))
    }

    /// Clicks the element `selector` matches (for a control without words; the journey clicks by words).
    #[allow(dead_code)]
    pub fn click(&mut self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return 'missing'; if (e.disabled) return 'disabled';
                e.scrollIntoView({{block: 'center'}}); e.click(); return 'ok'; }})()",
            json!(selector)
        );
        let r = self.eval(&js);
        assert_eq!(r, "ok", "[{}] click {selector}: {r}", self.name);
    }

    /// Clicks the visible button, link or summary whose words are `words`; Err when there is none.
    pub fn click_text(&mut self, words: &str) -> Result<(), String> {
        let js = format!(
            "(() => {{ const want = {}.replace(/\\s+/g, ' ').trim().toLowerCase();
                const all = Array.from(document.querySelectorAll('button, a, summary, [role=button], input[type=submit]'));
                const seen = all.filter((e) => e.offsetParent !== null || e.getClientRects().length > 0);
                const e = seen.find((e) => (e.innerText || e.value || '').replace(/\\s+/g, ' ').trim().toLowerCase() === want);
                const words = seen.map((e) => (e.innerText || e.value || '').trim()).filter(Boolean);
                if (!e) return 'no visible button says so; visible ones: ' + words.join(' | ');
                if (e.disabled) return 'disabled';
                e.scrollIntoView({{block: 'center'}}); e.click(); return 'ok'; }})()",
            json!(words)
        );
        match self.eval(&js).as_str() {
            Some("ok") => Ok(()),
            other => Err(format!("[{}] click {words:?}: {}", self.name, other.unwrap_or("?"))),
        }
    }

    /// Whether a button, link or summary whose words are `words` is on the screen.
    pub fn sees_control(&mut self, words: &str) -> bool {
        let js = format!(
            "(() => {{ const want = {}.replace(/\\s+/g, ' ').trim().toLowerCase();
                return Array.from(document.querySelectorAll('button, a, summary, [role=button], input[type=submit]'))
                  .filter((e) => e.getClientRects().length > 0)
                  .some((e) => (e.innerText || e.value || '').replace(/\\s+/g, ' ').trim().toLowerCase() === want); }})()",
            json!(words)
        );
        self.eval(&js) == true
    }

    /// Types `value` into the field `selector` (an input, textarea or select), as input and change events.
    pub fn fill(&mut self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return 'missing'; e.focus(); e.value = {};
                e.dispatchEvent(new Event('input', {{bubbles: true}}));
                e.dispatchEvent(new Event('change', {{bubbles: true}})); return 'ok'; }})()",
            json!(selector),
            json!(value)
        );
        let r = self.eval(&js);
        assert_eq!(r, "ok", "[{}] fill {selector}: {r}", self.name);
    }

    /// Chooses `files` in the file input `selector`, as the file picker would (the page gets its change event).
    pub fn set_files(&mut self, selector: &str, files: &[&Path]) {
        let root = self.conn.call("DOM.getDocument", json!({"depth": 0})).unwrap_or_else(|e| panic!("[{}] {e}", self.name));
        let node = self
            .conn
            .call("DOM.querySelector", json!({"nodeId": root["root"]["nodeId"], "selector": selector}))
            .unwrap_or_else(|e| panic!("[{}] {e}", self.name))["nodeId"]
            .clone();
        assert!(node.as_u64().is_some_and(|n| n > 0), "[{}] no {selector} to choose a file in", self.name);
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.conn
            .call("DOM.setFileInputFiles", json!({"files": files, "nodeId": node}))
            .unwrap_or_else(|e| panic!("[{}] DOM.setFileInputFiles: {e}", self.name));
    }

    /// Saves the whole page (not only the viewport) as a PNG.
    pub fn screenshot(&mut self, file: &Path) {
        let metrics = self.conn.call("Page.getLayoutMetrics", json!({})).unwrap_or_else(|e| panic!("[{}] {e}", self.name));
        let size = &metrics["cssContentSize"];
        let (w, h) = (size["width"].as_f64().unwrap_or(1280.0), size["height"].as_f64().unwrap_or(900.0).min(12_000.0));
        let shot = self
            .conn
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true, "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
            )
            .unwrap_or_else(|e| panic!("[{}] {e}", self.name));
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "[{}] the screenshot is not a PNG", self.name);
        std::fs::write(file, png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }
}

/// Spaces collapsed (a no-break space is a space) and lower case: how text is compared.
pub fn normalize(text: &str) -> String {
    text.replace('\u{a0}', " ").split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, d)| n | (d << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}
