//! Setting up calendars and contacts (issue 19) as staff do it: the DAV servers through `POST
//! /api/setup` and `postflytt setup`, shown by the status, `postflytt status` and `setup`'s own lines, a
//! wrong address refused with its sentence and nothing of the request stored; and the account list's
//! four DAV login columns uploaded through the API, their passwords nowhere in the data directory in
//! the clear. No DAV server is needed: the side's reachability test is the engine's (not here yet).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::web::{Response as Reply, http};
use serde_json::{Value, json};

/// `postflytt serve` on a free loopback port (the same shape as tests/appliance.rs's).
struct Serve {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Serve {
    fn start(data: &Path) -> Serve {
        let port = common::free_port();
        // No MX watch is wanted: the resolver is a port nothing answers on.
        let dns_port = common::free_port();
        let child = Command::new(common::postflytt_bin())
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("POSTFLYTT_RESOLVER", format!("127.0.0.1:{dns_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Serve { child, port, data: data.to_path_buf() }
    }

    fn op(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let token = std::fs::read_to_string(self.data.join("operator-token")).expect("token");
        let auth = format!("Bearer {}", token.trim());
        http(self.port, method, path, &[("Authorization", &auth)], body)
    }

    fn status(&self) -> Value {
        let r = self.op("GET", "/api/status", b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn postflytt(data: &Path, args: &[&str]) -> Output {
    Command::new(common::postflytt_bin()).arg("--data").arg(data).args(args).output().expect("run postflytt")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

const PIN: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

#[test]
fn dav_servers_are_set_up_through_the_api_shown_by_the_status_and_a_wrong_address_is_refused_whole() {
    let data = common::fresh_dir("pf-dav-setup-api");
    let serve = Serve::start(&data);
    assert_eq!(serve.status()["dav"], json!({"source": null, "target": null}), "no DAV server until one is set up");

    // A wrong address is refused with DavUrl's sentence after the key, and nothing of the request is kept.
    for (body, says) in [
        (
            json!({"source_dav": "dav.gammal.example", "target_dav": "http://dav.ny.example/", "mirror": "off"}),
            "target_dav: http:// (without TLS) is allowed only to a server on this machine",
        ),
        (
            json!({"source_dav": "https://anna:hemligt@dav.gammal.example/"}),
            "source_dav: the DAV address must not hold a login or password",
        ),
        (
            json!({"source_dav": "https://dav.gammal.example/cal?user=anna"}),
            "source_dav: the DAV address must not hold a query (?) or fragment (#)",
        ),
        (json!({"target_dav": ["dav.ny.example"]}), "target_dav must be the DAV server's address as a string"),
        (json!({"source_dav_pin": PIN}), "source_dav_pin: no source DAV server is set up yet"),
        (json!({"source_dav": "dav.gammal.example", "source_dav_pin": "abc"}), "not a SHA-256 fingerprint"),
        (json!({"source_dav": "dav.gammal.example", "source_dav_pinn": PIN}), "unknown field `source_dav_pinn`"),
    ] {
        let r = serve.op("POST", "/api/setup", body.to_string().as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(says), "{body}: {message}");
    }
    let status = serve.status();
    assert_eq!(status["dav"], json!({"source": null, "target": null}), "{status:#}");
    assert_eq!(status["mirror"], "on", "the refused request's other keys were not stored either");

    let body = json!({"source_dav": "localhost:1", "source_dav_pin": PIN, "target_dav": "https://127.0.0.1:1/remote.php/dav/"});
    let r = serve.op("POST", "/api/setup", body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    // Each saved side is tested at once (closed loopback ports here, so the test stays on this
    // machine): not reachable, said, and stored all the same.
    assert_eq!(r.json()["source_dav_test"]["reachable"], false, "{}", r.text());
    assert_eq!(serve.status()["dav"]["target"]["test"]["reachable"], false);
    let expected = json!({
        "source": {"url": "localhost:1", "pinned": true},
        "target": {"url": "https://127.0.0.1:1/remote.php/dav/", "pinned": false},
    });
    assert_eq!(untested(serve.status()["dav"].clone()), expected);
    // The customer's view shows the same (addresses, like the IMAP servers'; never a password).
    let code = std::fs::read_to_string(data.join("viewer-code")).expect("code");
    let viewer = http(serve.port, "GET", "/api/status", &[("X-Viewer-Code", code.trim())], b"");
    assert_eq!(untested(viewer.json()["dav"].clone()), expected, "{}", viewer.text());

    // null removes a side; the other stays.
    let r = serve.op("POST", "/api/setup", br#"{"target_dav": null}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(untested(serve.status()["dav"].clone()), json!({"source": {"url": "localhost:1", "pinned": true}, "target": null}));

    // The account list's DAV columns through the API: the passwords are sealed, nowhere in clear.
    let list = "E-post;Lösenord;Källans DAV-inloggning;Källans DAV-lösenord;Målets DAV-lösenord\r\n\
                anna@kund.se;Sommar2024!;anna.kalender;KalGammal-7;KalNy-8\r\n\
                bo@kund.se;Vinter2025#;;;\r\n";
    let r = serve.op("POST", "/api/accounts?name=konton.csv", list.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    drop(serve);
    for password in ["KalGammal-7", "KalNy-8"] {
        for file in common::files_under(&data) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(!bytes.windows(password.len()).any(|w| w == password.as_bytes()), "{password} is readable in {}", file.display());
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn dav_servers_from_the_command_line_are_said_back_by_setup_and_status() {
    let data = common::fresh_dir("pf-dav-setup-cli");
    let out = postflytt(&data, &["setup", "--source-dav", "https://localhost:1/dav/", "--target-dav", "http://127.0.0.1:1/"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("source calendars and contacts (CalDAV/CardDAV): https://localhost:1/dav/"), "{said}");
    assert!(said.contains("target calendars and contacts (CalDAV/CardDAV): http://127.0.0.1:1/"), "{said}");
    assert!(said.contains("target calendar server at http://127.0.0.1:1/: NOT reachable: "), "{said}");

    // Refused with the sentence, exit 1, and nothing of it stored (the pin with it neither).
    let out = postflytt(&data, &["setup", "--target-dav", "ftp://dav.ny.example/", "--source-dav-pin", PIN]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--target-dav: the DAV address must begin with https://"), "{}", text(&out));

    // A pin alone changes only the pin; off removes a side.
    let out = postflytt(&data, &["setup", "--source-dav-pin", PIN, "--target-dav", "off"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("https://localhost:1/dav/, pinned abcdef0123456789"), "{said}");
    assert!(said.contains("target calendars and contacts (CalDAV/CardDAV): none set up; they are moved by hand"), "{said}");
    let status = text(&postflytt(&data, &["status"]));
    assert!(status.contains("source calendars and contacts (CalDAV/CardDAV): https://localhost:1/dav/, pinned"), "{status}");
    assert!(status.contains("target calendars and contacts (CalDAV/CardDAV): none set up"), "{status}");
    let _ = std::fs::remove_dir_all(&data);
}

/// The DAV status without each side's last side test (tested on its own).
fn untested(mut dav: serde_json::Value) -> serde_json::Value {
    for side in ["source", "target"] {
        if let Some(side) = dav.get_mut(side).and_then(serde_json::Value::as_object_mut) {
            side.remove("test");
        }
    }
    dav
}
