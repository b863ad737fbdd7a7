//! Drives the real `postflytt` binary the way an operator does: a data directory, `setup` pointing at
//! throwaway Dovecot instances, an account list written as the customer's CSV, and `sync` passes whose
//! output and exit code the tests read. Also the folder-name map that postflytt's documented rules give
//! for the hard-case fixture, written out by hand so the tests do not borrow postflytt's own mapping.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{self, Dovecot, Layout};

/// How postflytt reaches a server in a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Plain,
    /// Implicit TLS on the TLS port, certificate pinned by fingerprint.
    Tls,
    /// STARTTLS on the plain port, certificate pinned.
    StartTls,
}

pub struct Migration {
    pub data: PathBuf,
}

pub fn postflytt(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::postflytt_bin());
    cmd.arg("--data").arg(data).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("POSTFLYTT_KILL_AT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run postflytt")
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

impl Migration {
    /// A fresh data directory set up for `source` -> `target` with the given accounts
    /// (source login, source password, target login, target password).
    pub fn new(source: &Dovecot, source_via: Via, target: &Dovecot, target_via: Via, accounts: &[(&str, &str, &str, &str)]) -> Migration {
        Migration::with_ports(source, source_via, None, target, target_via, None, accounts)
    }

    /// Like `new`, with the plain ports replaced (to go through a cutting proxy).
    pub fn with_ports(
        source: &Dovecot,
        source_via: Via,
        source_port: Option<u16>,
        target: &Dovecot,
        target_via: Via,
        target_port: Option<u16>,
        accounts: &[(&str, &str, &str, &str)],
    ) -> Migration {
        let data = common::fresh_dir("pf-data");
        let m = Migration { data };
        let mut args: Vec<String> = vec!["setup".into()];
        for (side, server, via, port) in [("source", source, source_via, source_port), ("target", target, target_via, target_port)] {
            let (port, tls) = match via {
                Via::Plain => (port.unwrap_or(server.port()), "plain"),
                Via::Tls => (port.unwrap_or(server.tls_port()), "implicit"),
                Via::StartTls => (port.unwrap_or(server.port()), "starttls"),
            };
            args.push(format!("--{side}"));
            args.push(format!("127.0.0.1:{port}"));
            args.push(format!("--{side}-tls"));
            args.push(tls.into());
            if via != Via::Plain {
                args.push(format!("--{side}-pin"));
                args.push(server.cert_sha256_fingerprint());
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        m.ok(&refs);
        m.import(accounts);
        m
    }

    /// Plain IMAP on both sides, by port: for a source that is not one of the tests' Dovecots (the
    /// bench's Cyrus and Courier).
    pub fn plain_ports(source_port: u16, target_port: u16, accounts: &[(&str, &str, &str, &str)]) -> Migration {
        let m = Migration { data: common::fresh_dir("pf-data") };
        let (source, target) = (format!("127.0.0.1:{source_port}"), format!("127.0.0.1:{target_port}"));
        m.ok(&["setup", "--source", &source, "--source-tls", "plain", "--target", &target, "--target-tls", "plain"]);
        m.import(accounts);
        m
    }

    /// Writes the account list as Swedish Excel does (`;`, UTF-8 BOM, Swedish headers) and imports it.
    pub fn import(&self, accounts: &[(&str, &str, &str, &str)]) -> String {
        let mut csv = String::from("\u{feff}E-post;Lösenord;Ny inloggning;Nytt lösenord\r\n");
        for (sl, sp, tl, tp) in accounts {
            csv.push_str(&format!("{sl};{};{tl};{}\r\n", quote(sp), quote(tp)));
        }
        let path = self.data.join("accounts.csv");
        std::fs::create_dir_all(&self.data).expect("data dir");
        std::fs::write(&path, csv).expect("write csv");
        let p = path.to_string_lossy().to_string();
        self.ok(&["import", &p])
    }

    pub fn run(&self, args: &[&str]) -> Output {
        postflytt(&self.data, args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        postflytt(&self.data, args, env)
    }

    /// Runs and expects exit 0; returns stdout + stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let t = text(&out);
        assert!(out.status.success(), "postflytt {args:?} failed ({:?}):\n{t}", out.status);
        t
    }

    pub fn sync(&self) -> String {
        self.ok(&["sync"])
    }
}

impl Drop for Migration {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_DOVECOT").is_none() {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

fn quote(s: &str) -> String {
    if s.contains(';') || s.contains('"') { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Reads "N appended" from a sync summary.
pub fn appended(output: &str) -> u64 {
    let line = output.lines().find(|l| l.starts_with("pass done:")).unwrap_or_else(|| panic!("no summary in:\n{output}"));
    let before = line.split(" messages (").next().unwrap_or("");
    before.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("cannot read appended count in {line:?}"))
}

/// The target names postflytt's documented rules give the hard-case fixture's folders: separator and
/// prefix converted, Swedish special folders to the target's English ones, the target separator inside
/// a name replaced by its look-alike.
pub fn hard_case_name_map(from: Layout, names: &[String]) -> BTreeMap<String, String> {
    let specials = [("Skickat", "Sent"), ("Utkast", "Drafts"), ("Papperskorg", "Trash"), ("Skräppost", "Junk")];
    names
        .iter()
        .map(|n| {
            let path = from.split(n);
            let mut parts: Vec<String> = path.iter().map(|c| c.replace('/', "\u{2215}")).collect();
            if let Some((_, to)) = specials.iter().find(|(s, _)| parts.len() == 1 && parts[0] == *s) {
                parts[0] = to.to_string();
            }
            (n.clone(), Layout::Target.join(&parts))
        })
        .collect()
}
