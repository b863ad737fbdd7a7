//! Headless Chromium for the tests that read the page as a person sees it (`page.rs`, `dav_show.rs`):
//! the browser found on the PATH (or `POSTFLYTT_CHROMIUM`), run on a URL with its own profile, its
//! output read within 90 s.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("POSTFLYTT_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(dir) = std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|d| d.join(name).is_file())) {
            return dir.join(name);
        }
    }
    panic!("the page test needs headless Chromium: `apt-get install chromium` (Debian), or set POSTFLYTT_CHROMIUM");
}

/// Runs headless Chromium on `url` with the given extra flags; returns its stdout.
pub fn run_chromium(url: &str, extra: &[String]) -> String {
    let profile = super::fresh_dir("postflytt-page-chromium");
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=8000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// The page's DOM as headless Chromium leaves it after its virtual time, in the browser language given.
pub fn dump_dom(url: &str, accept_lang: &str) -> String {
    let dom = run_chromium(url, &["--dump-dom".to_string(), format!("--accept-lang={accept_lang}")]);
    assert!(dom.contains("<html"), "chromium printed no DOM for {url}");
    dom
}
