//! Emptied spool segment files kept for reuse instead of removed and created again. Making a file is
//! the dear part of a segment's life: ext4 looks for a free inode past the recently deleted ones
//! (`find_inode_bit`, `recently_deleted`), which measured 4 % of the full migration's CPU in make
//! bench for some 200 segments, and the removal frees the inode again. A spare is the same inode,
//! truncated to nothing and renamed `spare-PID-N`; a new segment takes one by a hard link to its own
//! name, which fails when that name is taken, so a spare never replaces a segment.
//!
//! Spares belong to the spool that made them; their names are unique in the process (one counter for
//! all its spools) and carry its id, so no two spools ever hold one name. The sweep before a pass and
//! the purge at finish remove every spare name but the sweeping spool's own (`sweep_stale`): such a
//! name was left by a process that ended without removing it, or belongs to another spool still
//! open, whose link then fails and which makes a new file instead. A spare holds no bytes, so the
//! purge only removes its name.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Spare files a spool keeps (each an open descriptor of an empty file). A pass has as many segments
/// alive as its staging holds in flight (make bench: some 60 at its peak), so a few would not do.
const KEPT_SPARES: usize = 32;

const PREFIX: &str = "spare-";

pub(super) struct Spares {
    dir: PathBuf,
    files: RefCell<Vec<(PathBuf, File)>>,
}

/// Spare names made by this process so far, across its spools.
static MADE: AtomicU64 = AtomicU64::new(0);

impl Spares {
    pub(super) fn new(dir: &Path) -> Spares {
        Spares { dir: dir.to_path_buf(), files: RefCell::new(Vec::new()) }
    }

    /// Takes the emptied segment `file` at `path` (open for writing, no one else's) as a spare. Returns
    /// the file back when the spool keeps enough spares or a step fails: the caller removes it then.
    pub(super) fn keep(&self, path: &Path, file: File) -> Option<File> {
        if self.files.borrow().len() >= KEPT_SPARES {
            return Some(file);
        }
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let spare = self.dir.join(format!("{PREFIX}{}-{n}", std::process::id()));
        if file.set_len(0).is_err() || fs::rename(path, &spare).is_err() {
            return Some(file);
        }
        self.files.borrow_mut().push((spare, file));
        None
    }

    /// A spare as a new segment named `path`, open for reading and writing; `Ok(None)` when there is
    /// none to take. `AlreadyExists` when `path` is taken (the spare stays for the next name).
    pub(super) fn take(&self, path: &Path) -> std::io::Result<Option<File>> {
        let Some((spare, file)) = self.files.borrow_mut().pop() else { return Ok(None) };
        match fs::hard_link(&spare, path) {
            Ok(()) => {
                // Left behind by a failure here, the name is removed by a later sweep.
                let _ = fs::remove_file(&spare);
                Ok(Some(file))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                self.files.borrow_mut().push((spare, file));
                Err(e)
            }
            // The name went (another process's sweep): this spare is lost, a new file is made.
            Err(_) => {
                let _ = fs::remove_file(&spare);
                Ok(None)
            }
        }
    }

    /// Removes every spare of this spool (the spool closes, or the migration's purge).
    pub(super) fn remove_all(&self) {
        for (spare, _) in self.files.borrow_mut().drain(..) {
            let _ = fs::remove_file(spare);
        }
    }

    /// Removes the spare names in the spool directory that are not this spool's. Returns how many.
    pub(super) fn sweep_stale(&self) -> std::io::Result<u64> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if name.starts_with(PREFIX) && !self.files.borrow().iter().any(|(own, _)| *own == path) {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => removed += 1,
                }
            }
        }
        Ok(removed)
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.remove_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pf-spares-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn segment(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, File) {
        let path = dir.join(name);
        let mut file = fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
        file.write_all(bytes).unwrap();
        (path, file)
    }

    #[test]
    fn an_emptied_segment_comes_back_empty_under_its_new_name_and_never_replaces_one() {
        let dir = dir("reuse");
        let spares = Spares::new(&dir);
        let (old, file) = segment(&dir, "7", b"mail of message 7");
        assert!(spares.keep(&old, file).is_none());
        assert!(!old.exists());
        // A name that is taken keeps the spare and says so.
        let (taken, _) = segment(&dir, "8", b"mail of message 8");
        assert_eq!(spares.take(&taken).unwrap_err().kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&taken).unwrap(), b"mail of message 8");
        // A free name takes it: empty, writable, and the spare name is gone.
        let new = dir.join("9");
        let file = spares.take(&new).unwrap().expect("a spare");
        assert_eq!(fs::metadata(&new).unwrap().len(), 0);
        file.write_all_at(b"nine", 0).unwrap();
        assert_eq!(fs::read(&new).unwrap(), b"nine");
        let names: Vec<String> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(!names.iter().any(|n| n.starts_with(PREFIX)), "{names:?}");
        assert!(spares.take(&dir.join("10")).unwrap().is_none(), "no spare left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_pool_is_bounded_and_its_names_go_with_it_and_with_the_sweep() {
        let dir = dir("bounded");
        let spares = Spares::new(&dir);
        let mut returned = 0;
        for n in 0..KEPT_SPARES + 2 {
            let (path, file) = segment(&dir, &n.to_string(), b"x");
            if spares.keep(&path, file).is_some() {
                returned += 1;
            }
        }
        assert_eq!(returned, 2);
        // Another process's spare name (a crash left it) and another spool's go in the sweep; ours
        // stay, and the other spool then makes a new file instead.
        fs::write(dir.join("spare-0-0"), b"").unwrap();
        let other = Spares::new(&dir);
        let (path, file) = segment(&dir, "other", b"x");
        assert!(other.keep(&path, file).is_none());
        assert_eq!(spares.sweep_stale().unwrap(), 2);
        assert!(other.take(&dir.join("fresh")).unwrap().is_none());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), KEPT_SPARES + 2);
        drop(spares);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "only the two returned segments stay");
        fs::remove_dir_all(&dir).unwrap();
    }
}
