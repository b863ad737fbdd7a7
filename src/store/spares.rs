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
        // A link, not a rename: a rename would silently replace a spare name that exists (a process
        // with the same id in another PID namespace sharing the data directory).
        if file.set_len(0).is_err() || fs::hard_link(path, &spare).is_err() {
            return Some(file);
        }
        if fs::remove_file(path).is_err() {
            let _ = fs::remove_file(&spare);
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
            // The new name must be our file: had the spare name come to another one meanwhile, the
            // segment would be written through this descriptor and read through its name.
            Ok(()) if same_file(&file, path) => {
                // Left behind by a failure here, the name is removed by a later sweep.
                let _ = fs::remove_file(&spare);
                Ok(Some(file))
            }
            Ok(()) => {
                let _ = fs::remove_file(path);
                Ok(None)
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

/// Whether `path` names the file `file` is open on.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
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
    fn a_spare_name_that_came_to_another_file_is_not_taken() {
        // Another process with our id (another PID namespace) put its own file under our spare's
        // name: the new segment's name must not point at that file while we write through ours.
        let dir = dir("foreign");
        let spares = Spares::new(&dir);
        let (old, file) = segment(&dir, "7", b"x");
        assert!(spares.keep(&old, file).is_none());
        let spare = spares.files.borrow()[0].0.clone();
        fs::remove_file(&spare).unwrap();
        fs::write(&spare, b"someone else's").unwrap();
        let new = dir.join("9");
        assert!(spares.take(&new).unwrap().is_none());
        assert!(!new.exists(), "the name we linked is removed again");
        assert_eq!(fs::read(&spare).unwrap(), b"someone else's");
        // And keeping never replaces a name that exists.
        let (old, file) = segment(&dir, "8", b"y");
        // The next names (other tests of this process take some meanwhile) all exist already.
        let n = MADE.load(Ordering::Relaxed);
        for k in n..n + 4 * KEPT_SPARES as u64 {
            fs::write(dir.join(format!("{PREFIX}{}-{k}", std::process::id())), b"taken").unwrap();
        }
        assert!(spares.keep(&old, file).is_some());
        assert_eq!(fs::read(&old).unwrap(), b"", "truncated, for the caller to remove");
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
