//! Running the tools the benchmark compares: each command under GNU time (`/usr/bin/time -v`, the
//! child's rusage), several at once when a tool runs one process per account (CPU and peak RSS summed
//! over them), optionally pinned to one core (`taskset -c 0`); postflytt's `sync` with its data
//! directory sampled every 100 ms for the staging disk's peak; mbsync's config (one channel per
//! account) and its two ways of running (`-a` sequential, one process per channel in parallel); and the
//! diagnostic wrappers (`BENCH_PF_WRAP`, `BENCH_MBSYNC_WRAP`, `BENCH_POSTFLYTT`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Acct;
use crate::common;
use crate::driver::{self, Migration};

#[derive(Clone, Debug, Default)]
pub struct Measure {
    pub wall: f64,
    /// User + system seconds, summed over the processes of the run.
    pub cpu: f64,
    /// Peak RSS, summed over the processes of the run (they run at the same time, so this is what a
    /// box must hold at worst; their peaks need not coincide).
    pub rss_kib: u64,
    pub success: bool,
    pub output: String,
    /// postflytt runs: the largest size of the data directory seen while it ran (bytes on disk).
    pub staging_peak: Option<u64>,
}

/// A program and its arguments.
pub type Cmd = (PathBuf, Vec<String>);

pub fn timed(program: &Path, args: &[String]) -> Measure {
    timed_all(vec![(program.to_path_buf(), args.to_vec())])
}

/// Runs every command at once, each under GNU time; wall time until the last ends.
pub fn timed_all(cmds: Vec<Cmd>) -> Measure {
    let dir = common::fresh_dir("pf-bench-time");
    let start = Instant::now();
    let children: Vec<_> = cmds
        .iter()
        .enumerate()
        .map(|(i, (program, args))| {
            Command::new("/usr/bin/time")
                .arg("-v")
                .arg("-o")
                .arg(dir.join(format!("time-{i}.txt")))
                .arg(program)
                .args(args)
                .env_remove("POSTFLYTT_KILL_AT")
                // postflytt's own peak memory line (`self_peak`), printed only when asked.
                .env("POSTFLYTT_MEMORY_REPORT", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("run /usr/bin/time {}: {e} (apt-get install time)", program.display()))
        })
        .collect();
    // Each child's output is read by its own wait, in a thread each, so no pipe fills up.
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let waits: Vec<_> = children.into_iter().map(|c| s.spawn(move || c.wait_with_output().expect("wait for the tool"))).collect();
        waits.into_iter().map(|w| w.join().expect("wait thread")).collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut m = Measure { wall, success: true, ..Measure::default() };
    for (i, out) in outs.iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(format!("time-{i}.txt"))).unwrap_or_default();
        let field = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name:?} in GNU time's report:\n{text}"))
        };
        m.cpu += field("User time (seconds):") + field("System time (seconds):");
        m.rss_kib += field("Maximum resident set size (kbytes):") as u64;
        m.success &= out.status.success();
        m.output.push_str(&driver::text(out));
    }
    let _ = std::fs::remove_dir_all(&dir);
    m
}

/// `cmd` pinned to the first CPU with `taskset -c 0` when `one_core` (the one-core mode), else as is.
pub fn pinned(cmd: Cmd, one_core: bool) -> Cmd {
    if !one_core {
        return cmd;
    }
    let mut args = vec!["-c".to_string(), "0".to_string(), cmd.0.to_string_lossy().into_owned()];
    args.extend(cmd.1);
    (PathBuf::from("taskset"), args)
}

pub fn pf_bin() -> PathBuf {
    std::env::var_os("BENCH_POSTFLYTT").map(PathBuf::from).unwrap_or_else(common::postflytt_bin)
}

pub fn pf_sync(m: &Migration, parallel: usize) -> Measure {
    pf_sync_on(m, parallel, false)
}

/// One `postflytt sync` pass, the size of its data directory sampled while it runs; panics if it fails.
pub fn pf_sync_on(m: &Migration, parallel: usize, one_core: bool) -> Measure {
    let r = pf_sync_unchecked(m, parallel, one_core);
    assert!(r.success, "postflytt sync failed:\n{}", r.output);
    r
}

/// Like [`pf_sync_on`], a failed pass left to the caller to report (the other source servers' rows).
pub fn pf_sync_unchecked(m: &Migration, parallel: usize, one_core: bool) -> Measure {
    let args: Vec<String> =
        vec!["--data".into(), m.data.to_string_lossy().into_owned(), "sync".into(), "--parallel".into(), parallel.to_string()];
    let bin = pf_bin();
    let cmd = wrapped("BENCH_PF_WRAP", &bin, &args).unwrap_or((bin, args));
    let sampler = DirSampler::start(&m.data);
    let mut r = timed_all(vec![pinned(cmd, one_core)]);
    r.staging_peak = Some(sampler.peak());
    r
}

/// Samples the size on disk of a directory's files (postflytt's data directory: the database, its
/// -wal and -shm, the key and the account list) every 100 ms on a thread of its own, until `peak`.
pub struct DirSampler {
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub thread: std::thread::JoinHandle<u64>,
}

impl DirSampler {
    pub fn start(dir: &Path) -> DirSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, dir) = (stop.clone(), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            let mut peak = dir_size(&dir);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                peak = peak.max(dir_size(&dir));
            }
            peak.max(dir_size(&dir))
        });
        DirSampler { stop, thread }
    }

    /// Stops sampling; the largest size seen, in bytes.
    pub fn peak(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}

/// Bytes allocated on disk (not apparent sizes: a sparse or preallocated file counts what it holds)
/// by the files under `dir`, its subdirectories (postflytt's spool) included.
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok().map(|m| (e.path(), m)))
        .map(|(path, m)| {
            if m.is_dir() {
                dir_size(&path)
            } else if m.is_file() {
                m.blocks() * 512
            } else {
                0
            }
        })
        .sum()
}

/// Diagnosis only (changes the numbers): the env var `var` holds a command to run the tool under, e.g.
/// `BENCH_MBSYNC_WRAP="strace -f -tt -o /tmp/mb{n}.trace"` or
/// `BENCH_PF_WRAP="valgrind --tool=massif --massif-out-file=/tmp/pf{n}.massif"`; `{n}` counts runs.
/// `BENCH_POSTFLYTT` names another postflytt binary (e.g. one built with debug info).
pub fn wrapped(var: &str, program: &Path, args: &[String]) -> Option<(PathBuf, Vec<String>)> {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let wrap = std::env::var(var).ok()?;
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut w: Vec<String> = wrap.split_whitespace().map(|a| a.replace("{n}", &n.to_string())).collect();
    w.push(program.to_string_lossy().into_owned());
    w.extend(args.iter().cloned());
    let program = PathBuf::from(w.remove(0));
    Some((program, w))
}

/// postflytt's own peak (VmHWM) from its log line, MiB.
pub fn self_peak(output: &str) -> Option<f64> {
    output.lines().find_map(|l| l.split("peak memory (VmHWM): ").nth(1)).and_then(|v| v.trim().trim_end_matches(" MiB").parse().ok())
}

pub struct MbsyncSetup {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub channels: usize,
}

/// An mbsync config with one IMAP-to-IMAP channel per account: far = source, near = target, pull only,
/// create folders on the target, keep internal dates, state files in a temp dir.
pub fn mbsync_setup(src_port: u16, tgt_port: u16, accts: &[Acct]) -> MbsyncSetup {
    let dir = common::fresh_dir("pf-bench-mbsync");
    let mut c = String::new();
    for (i, a) in accts.iter().enumerate() {
        let state = dir.join(format!("state-{i}"));
        std::fs::create_dir_all(&state).expect("mbsync state dir");
        for (side, port, user, pw) in [("far", src_port, &a.src, &a.src_pw), ("near", tgt_port, &a.tgt, &a.tgt_pw)] {
            let _ = write!(
                c,
                "IMAPAccount {side}{i}\nHost 127.0.0.1\nPort {port}\nUser \"{user}\"\nPass \"{pw}\"\n\
                 SSLType None\nAuthMechs LOGIN\n\nIMAPStore {side}{i}\nAccount {side}{i}\n\n"
            );
        }
        let _ = write!(
            c,
            "Channel ch{i}\nFar :far{i}:\nNear :near{i}:\nPatterns *\nCreate Near\nSync Pull\n\
             Expunge None\nCopyArrivalDate yes\nSyncState {}/\n\n",
            state.display()
        );
    }
    let conf = dir.join("mbsyncrc");
    std::fs::write(&conf, c).expect("write mbsyncrc");
    MbsyncSetup { dir, conf, channels: accts.len() }
}

/// mbsync as `-a`: one process taking the accounts one after another.
pub fn mbsync_run(s: &MbsyncSetup) -> Measure {
    let args = vec!["-c".to_string(), s.conf.to_string_lossy().into_owned(), "-a".to_string()];
    let bin = Path::new("/usr/bin/mbsync");
    match wrapped("BENCH_MBSYNC_WRAP", bin, &args) {
        Some((program, wargs)) => timed(&program, &wargs),
        None => timed(bin, &args),
    }
}

/// mbsync at its best: one process per account (channel), all at once, as an operator would script
/// it; CPU and peak RSS summed over the processes.
pub fn mbsync_each(s: &MbsyncSetup, one_core: bool) -> Measure {
    let bin = Path::new("/usr/bin/mbsync");
    let cmds = (0..s.channels)
        .map(|i| {
            let args = vec!["-c".to_string(), s.conf.to_string_lossy().into_owned(), format!("ch{i}")];
            let cmd = wrapped("BENCH_MBSYNC_WRAP", bin, &args).unwrap_or((bin.to_path_buf(), args));
            pinned(cmd, one_core)
        })
        .collect();
    timed_all(cmds)
}

impl Drop for MbsyncSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
