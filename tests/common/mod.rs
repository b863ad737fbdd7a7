//! Shared harness for postflytt's integration tests: throwaway Dovecot servers in the three layouts the
//! product meets (`dovecot`), an IMAP reader of our own that checks results independently of postflytt's
//! client (`reader`), the hard-case fixture mail and the folder-by-folder comparison (`fixture`), a TCP
//! proxy that cuts connections after N bytes (`proxy`), one that stalls a connection mid-body
//! (`stall_proxy`), an HTTP client (`web`), dnsmasq for MX answers (`dnsmasq`), Radicale and xandikos with a DAV reader/writer and the
//! calendar/contact fixture (`dav`), and small helpers (free ports, base64, a seeded PRNG, the path of the postflytt
//! binary). Std only (the one dev-dependency, tungstenite, is for the journey's browser client in
//! tests/cdp). Each test binary uses only part of this, hence the `dead_code` allowance.

#![allow(dead_code, unused_imports)]

pub mod chromium;
pub mod dav;
pub mod dav_proxy;
pub mod dnsmasq;
pub mod dovecot;
pub mod fixture;
pub mod proxy;
pub mod quirk_proxy;
pub mod reader;
pub mod stall_proxy;
pub mod web;

pub use dnsmasq::Dnsmasq;
pub use dovecot::{Dovecot, DovecotOptions, Layout};
pub use fixture::{FixtureMsg, SnapMsg, Snapshot};
pub use proxy::{CutProxy, Direction};
pub use reader::{ImapReader, ListEntry, Msg, Status};

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// postflytt's partial-fetch size (`SLICE` in src/pull/mod.rs): messages above a quarter of it are
/// fetched in slices of this size, so tests that want several slices per message size them by it.
pub const SLICE: usize = 256 * 1024;

/// `sh -c WATCHDOG NAME LOG PROGRAM ARGS...`: runs the program in its own process group with its
/// output appended to LOG, prints its pid, and ends the whole group (TERM, then KILL after 2 s) when
/// the script's stdin closes: when the test drops the child or the test process dies in any way, so
/// no server outlives the tests. Shared by the throwaway servers (Dovecot, the DAV servers, the
/// bench's IMAP servers).
pub const WATCHDOG: &str = r#"
log=$1; shift
setsid "$@" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid"
trap '' INT HUP
read -r _ || true
kill -TERM "-$pid" 2>/dev/null
i=0
while kill -0 "-$pid" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then kill -KILL "-$pid" 2>/dev/null; break; fi
  sleep 0.02
done
wait "$pid" 2>/dev/null
"#;

/// Ports handed out by [`free_port`] in this process, so two parallel tests never get the same one.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close). Never returns
/// the same port twice within one test process; another process may still take it, so callers that
/// bind late (Dovecot) retry on "address in use".
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
        let port = listener.local_addr().expect("local_addr of a bound listener").port();
        drop(listener);
        if HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("free_port: no fresh port after 100 tries");
}

/// Path of the postflytt binary that cargo built for these integration tests. Cargo sets
/// `CARGO_BIN_EXE_postflytt` only when compiling the postflytt crate's own tests; elsewhere (the harness's
/// scratch crate) the env var `POSTFLYTT_BIN` may name it at run time.
pub fn postflytt_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_postflytt") {
        return PathBuf::from(p);
    }
    match std::env::var_os("POSTFLYTT_BIN") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "postflytt_bin: CARGO_BIN_EXE_postflytt is only set for the postflytt crate's integration \
             tests; set POSTFLYTT_BIN to use the harness elsewhere"
        ),
    }
}

/// A fresh, empty directory under /tmp named `/tmp/{prefix}-{pid}-{n}-{nanos}`. The caller removes it.
pub fn fresh_dir(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = PathBuf::from(format!("/tmp/{prefix}-{}-{n}-{nanos:x}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("fresh_dir: cannot create {}: {e}", dir.display()),
        }
    }
    panic!("fresh_dir: no unused name for /tmp/{prefix}-* after 100 tries");
}

/// xorshift64* pseudo-random generator: deterministic fixture content from a seed, no crates.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // Mix the seed so that small seeds (0, 1, 2) give unrelated streams; never zero.
        let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
        s = (s ^ (s >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        s = (s ^ (s >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        s ^= s >> 31;
        XorShift(if s == 0 { 1 } else { s })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..=hi` (modulo bias is irrelevant for fixtures).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "XorShift::range: empty range {lo}..={hi}");
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), for SASL, passwd-file and MIME attachments.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// FNV-1a 64-bit: a stable, dependency-free content hash for sorting and reporting (not for security).
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether this process runs as root (uid 0), read from /proc without libc.
pub fn running_as_root() -> bool {
    current_ids().0 == 0
}

/// (uid, gid) of this process, from /proc/self/status.
pub fn current_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| -> u32 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} line in /proc/self/status"))
    };
    (field("Uid:"), field("Gid:"))
}

/// Every file below `dir`, recursively (for looking through a data directory or a maildir).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { todo.push(path) } else { out.push(path) }
        }
    }
    out
}
