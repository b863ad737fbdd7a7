//! The bench's source servers of other makes (issue 15): a throwaway Cyrus IMAP 3.6 and a throwaway
//! Courier-IMAP 5.0, each on a free loopback port in its own directory under /tmp with its own config,
//! started and stopped by the bench (no system service, nothing of the system's config read or
//! changed), so postflytt and mbsync can migrate the same mail from them into the bench's Dovecot target.
//!
//! Debian lets one IMAP server package be installed at a time (dovecot-imapd, cyrus-imapd and
//! courier-imap all Provide and Conflict `imap-server`; installing one removes the others), and the
//! tests need dovecot-imapd. So `make bench` installs what the two need around their IMAP daemon
//! (cyrus-common: `master`, `ctl_cyrusdb`, the `cyrus` user; courier-base: `couriertcpd`, authdaemond,
//! userdb) and unpacks the packages cyrus-imapd and courier-imap, without installing them, into
//! `target/bench/servers` (`BENCH_SERVERS` names another place). An installed package is used when
//! there is one.
//!
//! Cyrus: `master -C imapd.conf -M cyrus.conf` serving only imap; the traditional namespace (`INBOX.`
//! and `.`, like the bench's old host: `altnamespace: no`, `unixhierarchysep: no`), logins
//! `name@domain` (`virtdomains: userid`), passwords not checked (`sasl_pwcheck_method: alwaystrue`:
//! no sasldb to keep), each INBOX made at first login, and COMPRESS=DEFLATE not announced (isync 1.4
//! compresses whenever a server offers it, most of its CPU on loopback: the bench's targets do not
//! offer it either). It runs as the `cyrus` user and logs to syslog only.
//!
//! Courier: authlib has its paths compiled in (/etc/courier/authdaemonrc, /etc/courier/userdb.dat,
//! /run/courier/authdaemon/socket), so `authdaemond` and `couriertcpd` (running `imaplogin`, then
//! `imapd`) run in a private mount namespace (`unshare --mount`) where the instance's directory is
//! bound over /etc/courier and a tmpfs over /run. Users come from a userdb (`makeuserdb`) with
//! MD5-crypt passwords; the mail is Maildir++ owned by the tests' mail user.
//!
//! Both need root (the namespace; Cyrus's master drops to `cyrus` from root). A server that cannot run
//! says why in `Err`, for the bench to print. Dropping a [`Server`] stops its processes by the same kind
//! of `sh` watchdog as the tests' Dovecot (closing its stdin ends the process group) and removes its
//! directory unless `KEEP_DOVECOT=1`.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Acct;
use crate::common::{self, ImapReader};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Make {
    Cyrus,
    Courier,
}

impl Make {
    /// Short name for notes and targets.
    pub fn name(self) -> &'static str {
        match self {
            Make::Cyrus => "cyrus",
            Make::Courier => "courier",
        }
    }
}

/// A running source server of another make.
pub struct Server {
    pub make: Make,
    /// Its version line, from the greeting (Cyrus) or the package (Courier).
    pub version: String,
    dir: PathBuf,
    port: u16,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    leader: u32,
}

/// Where the unpacked server packages are: `BENCH_SERVERS`, else `target/bench/servers`.
fn unpacked_root() -> PathBuf {
    std::env::var_os("BENCH_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("bench").join("servers"))
}

/// `rel` (a path inside a package, without the leading `/`) from the unpacked packages, else installed.
fn packaged(rel: &str) -> Option<PathBuf> {
    [unpacked_root().join(rel), Path::new("/").join(rel)].into_iter().find(|p| p.is_file())
}

fn need(rel: &str, package: &str) -> Result<PathBuf, String> {
    packaged(rel).ok_or_else(|| {
        format!("/{rel} not found (package {package}; `make bench` installs or unpacks it into {})", unpacked_root().display())
    })
}

fn run_ok(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(text) } else { Err(format!("{cmd:?} failed ({}): {}", out.status, text.trim())) }
}

fn package_version(package: &str) -> String {
    let installed = Command::new("dpkg-query").args(["-W", "-f=${Status} ${Version}", package]).output();
    if let Some(v) =
        installed.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).strip_prefix("install ok installed ").map(str::to_string))
    {
        return v;
    }
    // Unpacked: `make bench` leaves a stamp named after the version it unpacked.
    std::fs::read_dir(unpacked_root())
        .ok()
        .and_then(|d| {
            d.filter_map(Result::ok).find_map(|e| e.file_name().to_str()?.strip_prefix(&format!(".{package}_")).map(str::to_string))
        })
        .unwrap_or_else(|| "version unknown".into())
}

impl Server {
    /// Starts a server of `make` with `accts`' source logins (passwords as given), empty mailboxes.
    pub fn start(make: Make, accts: &[Acct]) -> Result<Server, String> {
        if !common::running_as_root() {
            return Err("needs root (a private mount namespace for Courier's authlib; Cyrus's master drops to `cyrus` from root)".into());
        }
        match make {
            Make::Cyrus => start_cyrus(),
            Make::Courier => start_courier(accts),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn reader(&self, user: &str, pass: &str) -> ImapReader {
        ImapReader::login(self.port, user, pass)
    }

    /// The instance's own log (the processes' stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.watchdog.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if matches!(self.watchdog.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.leader)]).status();
            let _ = self.watchdog.kill();
            let _ = self.watchdog.wait();
        }
        if std::env::var_os("KEEP_DOVECOT").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `program args` in a session of its own under a `sh` watchdog that signals the session's
/// process group when its stdin closes (the `Server` dropped, or the bench gone in any way); output to
/// `dir/server.log`. Then waits for an IMAP greeting on `port`.
fn spawn(make: Make, version: String, dir: PathBuf, port: u16, program: &Path, args: &[String]) -> Result<Server, String> {
    let log = dir.join("server.log");
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(crate::common::WATCHDOG)
        .arg(format!("pf-bench-{}-watchdog", make.name()))
        .arg(&log)
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let mut line = String::new();
    let _ = BufReader::new(watchdog.stdout.take().ok_or("no watchdog stdout")?).read_line(&mut line);
    let leader: u32 = line.trim().parse().map_err(|_| format!("the watchdog gave no pid ({line:?})"))?;
    let server = Server { make, version, dir, port, stdin: watchdog.stdin.take(), watchdog, leader };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(greeting) = greeting(port) {
            if greeting.starts_with("* OK") {
                let mut server = server;
                if server.make == Make::Cyrus {
                    // "* OK [CAPABILITY ...] host Cyrus IMAP 3.6.1-Debian-3.6.1-4+deb12u5 server ready"
                    if let Some(v) = greeting.split_whitespace().skip_while(|w| *w != "IMAP").nth(1) {
                        server.version = format!("Cyrus IMAP {v}");
                    }
                }
                return Ok(server);
            }
            return Err(format!("{} greeted with {greeting:?}", make.name()));
        }
        let alive = Command::new("kill").args(["-0", &leader.to_string()]).status().is_ok_and(|s| s.success());
        if !alive || Instant::now() > deadline {
            let log = server.log();
            let why = if alive { "no IMAP greeting within 30 s" } else { "its process exited" };
            let hint = if make == Make::Cyrus { " (Cyrus logs to syslog only)" } else { "" };
            return Err(format!("{why}; its output{hint}: {:?}", log.trim()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first line a server sends on `port`, if it accepts a connection.
fn greeting(port: u16) -> Option<String> {
    let s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut line = String::new();
    BufReader::new(s.take(4096)).read_line(&mut line).ok()?;
    Some(line.trim_end().to_string())
}

fn start_cyrus() -> Result<Server, String> {
    let imapd = need("usr/lib/cyrus/bin/imapd", "cyrus-imapd")?;
    let master = need("usr/lib/cyrus/bin/master", "cyrus-common")?;
    let ctl = need("usr/lib/cyrus/bin/ctl_cyrusdb", "cyrus-common")?;
    run_ok(Command::new("id").args(["-u", "cyrus"])).map_err(|_| "no `cyrus` user (package cyrus-common makes it)".to_string())?;
    let dir = common::fresh_dir("pf-bench-cyrus");
    let conf = dir.join("conf");
    for sub in ["db", "socket", "proc", "log", "msg", "user", "quota", "sieve", "lock", "ptclient"] {
        std::fs::create_dir_all(conf.join(sub)).map_err(|e| format!("create {}: {e}", conf.display()))?;
    }
    std::fs::create_dir_all(dir.join("spool")).map_err(|e| format!("create spool: {e}"))?;
    let port = common::free_port();
    let d = dir.display();
    let imapd_conf = format!(
        "# Generated by tests/bench/servers.rs: a throwaway Cyrus for make bench.\n\
         configdirectory: {d}/conf\n\
         defaultpartition: default\n\
         partition-default: {d}/spool\n\
         servername: cyrus.bench\n\
         syslog_prefix: pf-bench-cyrus\n\
         admins: cyrus\n\
         sasl_pwcheck_method: alwaystrue\n\
         sasl_mech_list: PLAIN LOGIN\n\
         allowplaintext: yes\n\
         altnamespace: no\n\
         unixhierarchysep: no\n\
         virtdomains: userid\n\
         defaultdomain: gammal.se\n\
         autocreate_quota: 0\n\
         suppress_capabilities: COMPRESS=DEFLATE\n\
         lmtpsocket: {d}/conf/socket/lmtp\n\
         idlesocket: {d}/conf/socket/idle\n\
         notifysocket: {d}/conf/socket/notify\n"
    );
    std::fs::write(dir.join("imapd.conf"), imapd_conf).map_err(|e| format!("write imapd.conf: {e}"))?;
    let cyrus_conf = format!(
        "START {{\n  recover cmd=\"{ctl} -C {d}/imapd.conf -r\"\n}}\n\
         SERVICES {{\n  imap cmd=\"{imapd} -C {d}/imapd.conf\" listen=\"127.0.0.1:{port}\" prefork=1\n}}\n\
         EVENTS {{\n}}\nDAEMON {{\n}}\n",
        ctl = ctl.display(),
        imapd = imapd.display()
    );
    std::fs::write(dir.join("cyrus.conf"), cyrus_conf).map_err(|e| format!("write cyrus.conf: {e}"))?;
    run_ok(Command::new("chown").args(["-R", "cyrus"]).arg(&dir))?;
    let args: Vec<String> = vec![
        "-C".into(),
        format!("{d}/imapd.conf"),
        "-M".into(),
        format!("{d}/cyrus.conf"),
        "-p".into(),
        format!("{d}/master.pid"),
        "-D".into(),
    ];
    spawn(Make::Cyrus, format!("Cyrus IMAP {}", package_version("cyrus-imapd")), dir, port, &master, &args)
}

/// The start script run inside the private mount namespace: authlib's compiled-in paths bound to the
/// instance, the userdb compiled, authdaemond started, then couriertcpd in its place. Environment as
/// Debian's /etc/courier/imapd sets it, without TLS.
const COURIER_START: &str = r#"set -e
dir=$1; port=$2; imaplogin=$3; imapd=$4
mount --bind "$dir/etc" /etc/courier
mount -t tmpfs -o mode=0755 pf-bench-courier /run
mkdir -p /run/courier/authdaemon
/usr/sbin/makeuserdb
/usr/lib/courier/courier-authlib/authdaemond &
i=0
while [ ! -S /run/courier/authdaemon/socket ]; do
  i=$((i + 1)); [ "$i" -gt 100 ] && { echo "authdaemond made no socket"; exit 1; }
  sleep 0.05
done
exec env -i PATH=/usr/bin:/bin \
  IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE" \
  IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_IDLE_TIMEOUT=60 IMAP_MAILBOX_SANITY_CHECK=1 IMAP_USELOCKS=1 IMAP_UMASK=022 \
  IMAP_TLS_REQUIRED=0 IMAP_TRASHFOLDERNAME=Trash IMAP_EMPTYTRASH=Trash:7 \
  /usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup -maxprocs=40 -maxperip=40 "$port" \
  "$imaplogin" "$imapd" Maildir
"#;

fn start_courier(accts: &[Acct]) -> Result<Server, String> {
    let imaplogin = need("usr/lib/courier/courier/imaplogin", "courier-imap")?;
    let imapd = need("usr/bin/imapd", "courier-imap")?;
    for (path, package) in [
        ("/usr/sbin/couriertcpd", "courier-base"),
        ("/usr/lib/courier/courier-authlib/authdaemond", "courier-authdaemon"),
        ("/usr/sbin/makeuserdb", "courier-authlib-userdb"),
        ("/usr/lib/courier-authlib/libauthuserdb.so.0", "courier-authlib-userdb"),
        ("/usr/bin/unshare", "util-linux"),
        ("/usr/bin/openssl", "openssl"),
    ] {
        if !Path::new(path).exists() {
            return Err(format!("{path} not found (package {package})"));
        }
    }
    if !Path::new("/etc/courier").is_dir() {
        return Err("/etc/courier is missing (package courier-authdaemon), the mount point for the instance's config".into());
    }
    let (uid, gid) = common::dovecot::mail_owner_ids();
    let dir = common::fresh_dir("pf-bench-courier");
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).map_err(|e| format!("create {}: {e}", etc.display()))?;
    std::fs::write(
        etc.join("authdaemonrc"),
        "authmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=5\n\
         authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
    )
    .map_err(|e| format!("write authdaemonrc: {e}"))?;
    let mut userdb = String::new();
    for (i, a) in accts.iter().enumerate() {
        let home = dir.join("home").join(i.to_string());
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(home.join("Maildir").join(sub)).map_err(|e| format!("create maildir: {e}"))?;
        }
        let hash = run_ok(Command::new("openssl").args(["passwd", "-1", &a.src_pw]))?;
        let h = home.display();
        userdb.push_str(&format!("{}\tuid={uid}|gid={gid}|home={h}|mail={h}/Maildir|systempw={}\n", a.src, hash.trim()));
    }
    std::fs::write(etc.join("userdb"), userdb).map_err(|e| format!("write userdb: {e}"))?;
    run_ok(Command::new("chmod").args(["600"]).arg(etc.join("userdb")))?;
    run_ok(Command::new("chown").args(["-R", &format!("{uid}:{gid}")]).arg(dir.join("home")))?;
    let script = dir.join("start.sh");
    std::fs::write(&script, COURIER_START).map_err(|e| format!("write start.sh: {e}"))?;
    let port = common::free_port();
    let args: Vec<String> = vec![
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        script.to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
        port.to_string(),
        imaplogin.to_string_lossy().into_owned(),
        imapd.to_string_lossy().into_owned(),
    ];
    spawn(Make::Courier, format!("Courier-IMAP {}", package_version("courier-imap")), dir, port, Path::new("/usr/bin/unshare"), &args)
}
