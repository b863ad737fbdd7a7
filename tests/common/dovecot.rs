//! Throwaway Dovecot 2.3 servers for the integration tests, one per [`Dovecot`] value: each has its own
//! directory under /tmp (config, passwd-file users, maildirs, log, base_dir), free ports on 127.0.0.1 for
//! plain IMAP (with STARTTLS) and implicit TLS, and a self-signed certificate made once per test process.
//! Three layouts stand for the servers postflytt meets: the old provider (`INBOX.` prefix, `.`
//! separator, `LAYOUT=index` so names may hold `/`), a modern source (`/`, SPECIAL-USE declared), and the
//! target (modern plus quota and APPENDLIMIT). The mail is owned by the unprivileged system user `pftest`
//! (created on first use when running as root, which is how CI runs; as non-root every service runs as
//! the caller). Dropping the value stops the server and removes its directory unless `KEEP_DOVECOT=1`
//! (its log tail is printed when a test panics). A `sh` watchdog ends the server even when the test
//! process is killed. For speed the servers do not fsync (`mail_fsync = never`) and refuse bad logins at
//! once (`auth_failure_delay = 0`, no anvil auth penalty); `DovecotOptions::extra_config` can set the
//! first two back (a later setting wins). With `DovecotOptions::rawlog` an instance records the commands
//! its clients send (`imap_commands`), so a test can count what postflytt asked of a real server.

use super::{current_ids, fresh_dir, running_as_root};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which kind of server an instance imitates. Folder names below are as sent on the wire (decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    /// The old provider: namespace prefix `INBOX.`, separator `.`, `maildir:~/Maildir:LAYOUT=index` so a
    /// folder name may contain `/` ("INBOX.Offert 2024/25"). No SPECIAL-USE. Serves internal dates in
    /// Europe/Stockholm time (+0100/+0200), like an old Swedish host, when tzdata is installed.
    OldHost,
    /// A modern source: separator `/`, no prefix, `\Sent \Drafts \Trash \Junk \Archive` declared on
    /// Sent/Drafts/Trash/Junk/Archive but none auto-created; `LAYOUT=fs` so a name may contain `.`
    /// ("Rapporter v.1.2"; Maildir++ would refuse it).
    Modern,
    /// The target: like `Modern`, plus the quota plugin (`count`, storage=1G by default, GETQUOTAROOT),
    /// COMPRESS=DEFLATE, an advertised `APPENDLIMIT=` (25 MiB by default) enforced through
    /// `quota_max_mail_size` (over-size APPEND gets `NO [LIMIT]`).
    Target,
}

impl Layout {
    pub fn separator(self) -> char {
        match self {
            Layout::OldHost => '.',
            Layout::Modern | Layout::Target => '/',
        }
    }

    /// Personal namespace prefix: `"INBOX."` on the old host, empty elsewhere.
    pub fn prefix(self) -> &'static str {
        match self {
            Layout::OldHost => "INBOX.",
            Layout::Modern | Layout::Target => "",
        }
    }

    /// Full folder name from path components relative to the personal namespace: `["INBOX"]` is the
    /// inbox on every layout, `["Kunder", "Åre"]` is `INBOX.Kunder.Åre` on the old host and `Kunder/Åre`
    /// elsewhere. Panics if a component contains this layout's separator (the name would be ambiguous).
    pub fn join<S: AsRef<str>>(self, path: &[S]) -> String {
        assert!(!path.is_empty(), "Layout::join: empty path");
        if path.len() == 1 && path[0].as_ref().eq_ignore_ascii_case("INBOX") {
            return "INBOX".to_string();
        }
        let sep = self.separator();
        for c in path {
            assert!(!c.as_ref().contains(sep), "Layout::join({self:?}): component {:?} contains the separator {sep:?}", c.as_ref());
        }
        let parts: Vec<&str> = path.iter().map(|c| c.as_ref()).collect();
        format!("{}{}", self.prefix(), parts.join(&sep.to_string()))
    }

    /// Inverse of [`Layout::join`]: `"INBOX.Kunder.Åre"` on the old host gives `["Kunder", "Åre"]`.
    pub fn split(self, name: &str) -> Vec<String> {
        if name.eq_ignore_ascii_case("INBOX") {
            return vec!["INBOX".to_string()];
        }
        let rest = name.strip_prefix(self.prefix()).unwrap_or(name);
        rest.split(self.separator()).map(str::to_string).collect()
    }

    fn tag(self) -> &'static str {
        match self {
            Layout::OldHost => "old",
            Layout::Modern => "modern",
            Layout::Target => "target",
        }
    }
}

/// Knobs for one instance; `Default` gives the layout's defaults.
#[derive(Clone, Debug, Default)]
pub struct DovecotOptions {
    /// Target only: quota storage limit in Dovecot syntax ("1G", "10M"). Default "1G".
    pub quota_storage: Option<String>,
    /// Target only: advertised `APPENDLIMIT=` and enforced `quota_max_mail_size`, in bytes.
    /// Default 25 MiB.
    pub append_limit: Option<u64>,
    /// `TZ` of the server processes, which decides the offset in served INTERNALDATEs.
    /// Default: "Europe/Stockholm" for the old host (when tzdata has it), "UTC" otherwise.
    pub tz: Option<String>,
    /// Appended verbatim to the generated dovecot.conf (remember: no one-line `{ ... }` blocks).
    pub extra_config: String,
    /// Records what every IMAP client sends after login (Dovecot's `rawlog_dir`), for `imap_commands`.
    pub rawlog: bool,
    /// Master users `(login, password)` (Dovecot's master passdb, `auth_master_user_separator = *`):
    /// each may log in as any existing user, as `user*master` or by AUTHENTICATE PLAIN with the user
    /// as authorization identity. None by default.
    pub master_users: Vec<(String, String)>,
}

/// Default APPENDLIMIT of a `Target` instance.
pub const DEFAULT_APPEND_LIMIT: u64 = 25 * 1024 * 1024;

/// The watchdog shell and the Dovecot master it started.
struct Running {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    master_pid: u32,
}

/// A running throwaway Dovecot. See the module docs.
pub struct Dovecot {
    layout: Layout,
    opts: DovecotOptions,
    dir: PathBuf,
    instance_name: String,
    port: u16,
    tls_port: u16,
    users: Vec<(String, String)>,
    running: Option<Running>,
    /// uid and gid owning the mail.
    owner: (u32, u32),
}

impl Dovecot {
    /// Starts an instance with the layout's defaults; panics (with the server's log) if it will not come up.
    /// `users` are `(login, password)`; passwords may hold any characters (stored base64 if needed).
    pub fn start(layout: Layout, users: &[(&str, &str)]) -> Dovecot {
        Dovecot::start_with(layout, users, DovecotOptions::default())
    }

    pub fn start_with(layout: Layout, users: &[(&str, &str)], opts: DovecotOptions) -> Dovecot {
        let (cert, key) = cert_pems();
        let owner = mail_owner();
        let dir = fresh_dir(&format!("pf-dovecot-{}", layout.tag()));
        let instance_name = dir.file_name().and_then(|n| n.to_str()).expect("fresh_dir gives a UTF-8 name").to_string();
        std::fs::write(dir.join("cert.pem"), cert).expect("write cert.pem");
        std::fs::write(dir.join("key.pem"), key).expect("write key.pem");
        let home = dir.join("home");
        std::fs::create_dir(&home).expect("create home dir");
        std::os::unix::fs::chown(&home, Some(owner.uid), Some(owner.gid))
            .unwrap_or_else(|e| panic!("chown {} to {}:{}: {e}", home.display(), owner.uid, owner.gid));
        if opts.rawlog {
            // The imap processes run as the mail's owner and write their rawlogs here.
            let rawlog = dir.join("rawlog");
            std::fs::create_dir(&rawlog).expect("create rawlog dir");
            std::os::unix::fs::chown(&rawlog, Some(owner.uid), Some(owner.gid)).expect("chown rawlog dir");
        }
        for (user, _) in users {
            check_login_name(user);
        }
        let mut d = Dovecot {
            layout,
            opts,
            dir,
            instance_name,
            port: 0,
            tls_port: 0,
            users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
            running: None,
            owner: (owner.uid, owner.gid),
        };
        d.write_users();
        if !d.opts.master_users.is_empty() {
            let text: String = d.opts.master_users.iter().map(|(user, pass)| format!("{user}:{}\n", passwd_field(pass))).collect();
            std::fs::write(d.dir.join("masters"), text).expect("write masters file");
            set_mode(&d.dir.join("masters"), 0o644);
        }
        let mut last_err = String::new();
        for _attempt in 0..5 {
            d.port = super::free_port();
            d.tls_port = super::free_port();
            std::fs::write(d.conf_path(), d.config_text(&owner)).expect("write dovecot.conf");
            match d.spawn_and_wait(Duration::from_secs(20)) {
                Ok(()) => return d,
                Err(e) if e.contains("Address already in use") => last_err = e,
                Err(e) => panic!("Dovecot {:?} in {} did not start: {e}", layout, d.dir.display()),
            }
        }
        panic!("Dovecot {:?} in {}: ports kept being taken: {last_err}", layout, d.dir.display());
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Plain IMAP port on 127.0.0.1 (STARTTLS offered, LOGIN allowed without TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Implicit-TLS IMAP port on 127.0.0.1 (self-signed certificate for CN=localhost).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("dovecot.conf")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dovecot.log")
    }

    /// Dovecot's log so far (empty if none yet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// What each IMAP session sent after its login, by session (Dovecot's rawlog file name, which
    /// sorts by the second the session began), one command line per entry without Dovecot's time
    /// stamp. Needs `DovecotOptions::rawlog`; empty without it. Dovecot records nothing before login,
    /// so no password shows here.
    pub fn imap_commands(&self) -> BTreeMap<String, Vec<String>> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("rawlog")) else { return BTreeMap::new() };
        let mut sessions = BTreeMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(session) = name.strip_suffix(".in") else { continue };
            let text = std::fs::read(entry.path()).unwrap_or_default();
            let lines = String::from_utf8_lossy(&text)
                .lines()
                .map(|line| line.split_once(' ').map_or(line, |(_stamp, command)| command).to_string())
                .collect();
            sessions.insert(session.to_string(), lines);
        }
        sessions
    }

    pub fn instance_name(&self) -> &str {
        &self.instance_name
    }

    /// Home directory of `user` (its mail is in `Maildir/` below it).
    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.join("home").join(user)
    }

    /// Password given for `user` at start.
    pub fn password(&self, user: &str) -> &str {
        self.users.iter().find(|(u, _)| u == user).map(|(_, p)| p.as_str()).unwrap_or_else(|| panic!("no user {user:?} on this Dovecot"))
    }

    /// Adds `user`, or changes its password, while the server runs. Dovecot re-reads a changed
    /// passwd-file (there is no auth cache) but looks at it at most once per wall-clock second, so this
    /// waits for the next second to begin (0.5 s on average).
    pub fn set_password(&mut self, user: &str, pass: &str) {
        check_login_name(user);
        match self.users.iter_mut().find(|(u, _)| u == user) {
            Some(entry) => entry.1 = pass.to_string(),
            None => self.users.push((user.to_string(), pass.to_string())),
        }
        self.write_users();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(1010 - u64::from(now.subsec_millis())));
    }

    /// Writes the passwd-file from `self.users` and moves its mtime on by a second each time, so
    /// Dovecot sees the change even within one second and at the same size.
    fn write_users(&self) {
        let mut text = String::new();
        for (user, pass) in &self.users {
            let _ = writeln!(text, "{user}:{}:{}:{}::{}", passwd_field(pass), self.owner.0, self.owner.1, self.home(user).display());
        }
        let path = self.dir.join("users");
        let old_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        std::fs::write(&path, text).expect("write users file");
        // The auth process runs as the `dovecot` user and must read it.
        set_mode(&path, 0o644);
        if let Some(t) = old_mtime {
            let file = std::fs::File::options().write(true).open(&path).expect("open users file");
            file.set_modified(t.max(std::time::SystemTime::now()) + Duration::from_secs(1)).expect("set mtime of users file");
        }
    }

    /// An [`super::ImapReader`] logged in as `user` over the plain port.
    pub fn reader(&self, user: &str) -> super::ImapReader {
        super::ImapReader::login(self.port, user, self.password(user))
    }

    /// SHA-256 fingerprint of the certificate as `openssl x509 -fingerprint` prints it
    /// (`AB:CD:...`), for tests of certificate pinning.
    pub fn cert_sha256_fingerprint(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(self.cert_path())
            .output()
            .expect("run openssl x509");
        assert!(out.status.success(), "openssl x509 failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().rsplit('=').next().expect("fingerprint line").to_string()
    }

    /// Runs `doveadm -c <conf> <args>` and returns its output, whatever the exit status.
    pub fn doveadm(&self, args: &[&str]) -> Output {
        Command::new("doveadm").arg("-c").arg(self.conf_path()).args(args).stdin(Stdio::null()).output().expect("run doveadm")
    }

    /// Like [`Dovecot::doveadm`] but panics unless it succeeds; returns stdout.
    pub fn doveadm_ok(&self, args: &[&str]) -> String {
        let out = self.doveadm(args);
        assert!(
            out.status.success(),
            "doveadm {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the master process is alive.
    pub fn is_running(&self) -> bool {
        self.running.as_ref().is_some_and(|r| pid_alive(r.master_pid))
    }

    /// Stops the server: SIGTERM to its whole process group (master and children at once: a SIGTERM to
    /// the master alone takes 1 to 6 s, waiting on children), SIGKILL to what is left after 0.5 s (an
    /// `imap-login` forked at that very moment can hang on for 5 s otherwise), and waits until every
    /// process is gone. Mail and config stay; [`Dovecot::restart`] brings it back on the same ports.
    pub fn stop(&mut self) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        // Closing the watchdog's stdin is the stop signal; it signals the group and waits for it.
        drop(r.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match r.watchdog.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", r.master_pid)]).status();
                    let _ = r.watchdog.kill();
                    let _ = r.watchdog.wait();
                    break;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && port_accepts(self.port) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops (if running) and starts again with the same config, ports, users and mail.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.spawn_and_wait(Duration::from_secs(15)) {
                Ok(()) => return,
                Err(e) if e.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("Dovecot restart in {} failed: {e}", self.dir.display()),
            }
        }
    }

    /// Starts `dovecot -F` under a small `sh` watchdog: Dovecot runs in its own session (so a
    /// Ctrl-C to the tests does not hit it half-way), and the watchdog signals its process group when its
    /// stdin closes, which happens in [`Dovecot::stop`] or when the test process dies in any way, so no
    /// server outlives the tests.
    fn spawn_and_wait(&mut self, timeout: Duration) -> Result<(), String> {
        let stderr_path = self.dir.join("stderr.log");
        std::fs::File::create(&stderr_path).expect("create stderr.log");
        let tz = self.opts.tz.clone().unwrap_or_else(|| default_tz(self.layout));
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(super::WATCHDOG)
            .arg("pf-dovecot-watchdog")
            .arg(&stderr_path)
            .args(["dovecot", "-c"])
            .arg(self.conf_path())
            .arg("-F")
            .env("TZ", tz)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let mut line = String::new();
        let stdout = watchdog.stdout.take().expect("watchdog stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let master_pid: u32 = line.trim().parse().map_err(|_| {
            let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            format!("watchdog gave no pid ({line:?}); is dovecot-imapd installed? {text}")
        })?;
        self.running = Some(Running { stdin: watchdog.stdin.take(), watchdog, master_pid });
        let deadline = Instant::now() + timeout;
        loop {
            if !pid_alive(master_pid) {
                self.stop();
                let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err(format!("dovecot exited: {text}\nlog:\n{}", self.log()));
            }
            if greeting_ok(self.port) && port_accepts(self.tls_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("no IMAP greeting on port {} within {timeout:?}; log:\n{}", self.port, self.log()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn config_text(&self, owner: &MailOwner) -> String {
        let d = self.dir.display();
        let mut c = String::new();
        let _ = write!(
            c,
            "# Generated by tests/common/dovecot.rs for a {layout:?} test server.\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             instance_name = {name}\n\
             log_path = {d}/dovecot.log\n\
             ssl = yes\n\
             ssl_cert = <{d}/cert.pem\n\
             ssl_key = <{d}/key.pem\n\
             ssl_dh = </usr/share/dovecot/dh.pem\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             first_valid_uid = 1\n\
             mail_max_userip_connections = 50\n\
             # Refused logins answer at once (default: 2 s), so wrong-password tests stay fast.\n\
             auth_failure_delay = 0\n\
             # No fsync per saved message (10 ms each here): throwaway servers, stopped gracefully.\n\
             mail_fsync = never\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n}}\n",
            layout = self.layout,
            name = self.instance_name,
        );
        if let Some((user, group)) = &owner.run_as {
            // Not root: every service runs as us, and nothing can chroot.
            let _ = write!(
                c,
                "default_internal_user = {user}\ndefault_internal_group = {group}\n\
                 default_login_user = {user}\n\
                 service imap-login {{\n  chroot =\n}}\n"
            );
        }
        // No growing delay (2, 4, 8, 15 s) after failed logins from 127.0.0.1: that penalty also
        // delays the *next good* login, which would make wrong-password tests slow and order-dependent.
        c.push_str("service anvil {\n");
        if owner.run_as.is_some() {
            c.push_str("  chroot =\n");
        }
        c.push_str("  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n");
        match self.layout {
            Layout::OldHost => {
                c.push_str(
                    "mail_location = maildir:~/Maildir:LAYOUT=index\n\
                     namespace inbox {\n  inbox = yes\n  prefix = INBOX.\n  separator = .\n}\n",
                );
            }
            Layout::Modern | Layout::Target => {
                c.push_str(
                    "mail_location = maildir:~/Maildir:LAYOUT=fs\n\
                     namespace inbox {\n  inbox = yes\n  separator = /\n",
                );
                for (name, use_) in [("Sent", "Sent"), ("Drafts", "Drafts"), ("Trash", "Trash"), ("Junk", "Junk"), ("Archive", "Archive")] {
                    let _ = write!(c, "  mailbox {name} {{\n    special_use = \\{use_}\n  }}\n");
                }
                c.push_str("}\n");
            }
        }
        if self.layout == Layout::Target {
            let storage = self.opts.quota_storage.as_deref().unwrap_or("1G");
            let limit = self.opts.append_limit.unwrap_or(DEFAULT_APPEND_LIMIT);
            let _ = write!(
                c,
                "mail_plugins = $mail_plugins quota zlib\n\
                 protocol imap {{\n  mail_plugins = $mail_plugins imap_quota imap_zlib\n}}\n\
                 # Dovecot 2.3 has no APPENDLIMIT of its own: advertise it, enforce it by quota.\n\
                 imap_capability = +APPENDLIMIT={limit}\n\
                 plugin {{\n  quota = count:User quota\n  quota_rule = *:storage={storage}\n  \
                 quota_vsizes = yes\n  quota_max_mail_size = {limit}\n}}\n"
            );
        }
        let _ = write!(
            c,
            "service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {}\n  }}\n  \
             inet_listener imaps {{\n    address = 127.0.0.1\n    port = {}\n    ssl = yes\n  }}\n}}\n",
            self.port, self.tls_port
        );
        if self.opts.rawlog {
            // A second `protocol imap` block for the target: Dovecot merges them.
            let _ = write!(c, "protocol imap {{\n  rawlog_dir = {d}/rawlog\n}}\n");
        }
        if !self.opts.master_users.is_empty() {
            // A master user's login only counts for a user the normal passdb knows (result_success).
            let _ = write!(
                c,
                "auth_master_user_separator = *\n\
                 passdb {{\n  driver = passwd-file\n  master = yes\n  result_success = continue\n  \
                 args = scheme=PLAIN username_format=%u {d}/masters\n}}\n"
            );
        }
        if !self.opts.extra_config.is_empty() {
            c.push_str(&self.opts.extra_config);
            c.push('\n');
        }
        c
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!(
                "--- last lines of {} ({:?}) ---\n{}",
                self.log_path().display(),
                self.layout,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if std::env::var_os("KEEP_DOVECOT").is_some_and(|v| v == "1") {
            eprintln!("KEEP_DOVECOT=1: keeping {:?} Dovecot dir {}", self.layout, self.dir.display());
            return;
        }
        if std::fs::remove_dir_all(&self.dir).is_err() {
            // A child may still have been writing; once more after it is surely gone.
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn check_login_name(user: &str) {
    assert!(!user.is_empty() && !user.contains([':', '/', ' ', '\t', '\n', '\r']), "Dovecot: unusable login name {user:?}");
}

fn default_tz(layout: Layout) -> String {
    if layout == Layout::OldHost && Path::new("/usr/share/zoneinfo/Europe/Stockholm").exists() {
        "Europe/Stockholm".to_string()
    } else {
        "UTC".to_string()
    }
}

/// passwd-file password field: `{PLAIN}pw` when the text is safe in that file's `:`-separated line,
/// else `{PLAIN.b64}` of its bytes (same scheme, base64 encoded).
fn passwd_field(pass: &str) -> String {
    let safe = !pass.is_empty() && pass.bytes().all(|b| b.is_ascii_graphic() && b != b':') && !pass.starts_with('{');
    if safe { format!("{{PLAIN}}{pass}") } else { format!("{{PLAIN.b64}}{}", super::base64(pass.as_bytes())) }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// True while `pid` exists and is not a zombie (read from /proc, no libc).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True once the plain port answers with an IMAP `* OK` greeting.
fn greeting_ok(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let ok = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("* OK");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    ok
}

/// Who owns the mail: `pftest` when we are root, else ourselves (then `run_as` names us for the config).
struct MailOwner {
    uid: u32,
    gid: u32,
    run_as: Option<(String, String)>,
}

/// The uid and gid owning the tests' mail: the system user `pftest` (made on first use) when running
/// as root, else the caller. For other servers the tests start (the bench's Courier).
pub fn mail_owner_ids() -> (u32, u32) {
    let owner = mail_owner();
    (owner.uid, owner.gid)
}

fn mail_owner() -> MailOwner {
    type Owner = (u32, u32, Option<(String, String)>);
    static OWNER: OnceLock<Owner> = OnceLock::new();
    let (uid, gid, run_as) = OWNER
        .get_or_init(|| {
            if running_as_root() {
                let (uid, gid) = ensure_system_user("pftest");
                (uid, gid, None)
            } else {
                let (uid, gid) = current_ids();
                let user = cmd_stdout("id", &["-un"]).unwrap_or_else(|| panic!("`id -un` failed"));
                let group = cmd_stdout("id", &["-gn"]).unwrap_or_else(|| panic!("`id -gn` failed"));
                (uid, gid, Some((user, group)))
            }
        })
        .clone();
    MailOwner { uid, gid, run_as }
}

fn ensure_system_user(name: &str) -> (u32, u32) {
    let lookup = || -> Option<(u32, u32)> {
        let uid = cmd_stdout("id", &["-u", name])?.parse().ok()?;
        let gid = cmd_stdout("id", &["-g", name])?.parse().ok()?;
        Some((uid, gid))
    };
    if let Some(ids) = lookup() {
        return ids;
    }
    // Another test process may create it at the same moment; look again whatever useradd says.
    let out = Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]).output();
    lookup().unwrap_or_else(|| {
        panic!(
            "test mail owner {name:?} is missing and `useradd --system {name}` failed ({out:?}); \
             create it by hand: useradd --system --no-create-home {name}"
        )
    })
}

fn cmd_stdout(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The self-signed certificate and key (PEM), made once per test process with openssl.
fn cert_pems() -> (&'static str, &'static str) {
    static PEMS: OnceLock<(String, String)> = OnceLock::new();
    let (c, k) = PEMS.get_or_init(|| {
        let dir = fresh_dir("pf-cert");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "2"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stdin(Stdio::null())
            .output()
            .expect("run openssl req (is openssl installed?)");
        assert!(out.status.success(), "openssl req failed: {}", String::from_utf8_lossy(&out.stderr));
        let cert = std::fs::read_to_string(dir.join("cert.pem")).expect("read generated cert.pem");
        let key = std::fs::read_to_string(dir.join("key.pem")).expect("read generated key.pem");
        let _ = std::fs::remove_dir_all(&dir);
        (cert, key)
    });
    (c.as_str(), k.as_str())
}
