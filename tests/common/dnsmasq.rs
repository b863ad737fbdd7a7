//! dnsmasq (package dnsmasq-base) answering MX queries on 127.0.0.1 for the MX watch's tests: the
//! appliance's, the journey's and the notices'. tests/mx.rs has its own, with more (silent, dead).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// dnsmasq on 127.0.0.1:`port` with one MX record per (domain, host); killed on drop.
pub struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    pub fn start(port: u16, mx: &[(&str, &str)]) -> Dnsmasq {
        let mut cmd = Command::new("dnsmasq");
        cmd.args(["--no-daemon", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null"])
            .arg(format!("--port={port}"));
        if super::running_as_root() {
            cmd.arg("--user=root");
        }
        for (domain, host) in mx {
            cmd.arg(format!("--mx-host={domain},{host},10"));
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("dnsmasq (package dnsmasq-base)");
        std::thread::sleep(Duration::from_millis(300));
        Dnsmasq { child }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
