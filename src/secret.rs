//! Secrets at rest and in memory: the `Secret` type that every password and token travels in (it prints
//! as `«redacted»` and wipes its bytes when dropped), and the appliance's `SecretKey`, a 32-byte key file
//! made with mode 0600 at first start that seals secrets with XChaCha20-Poly1305 before they go into the
//! store and opens them again when a worker needs to log in. This module owns the key file format and the
//! sealed-blob format; nothing else reads or writes either.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, compiler_fence};

use anyhow::{Context, anyhow, bail};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

/// What `Debug` and `Display` print instead of a secret.
pub const REDACTED: &str = "«redacted»";

/// A password, token or client secret. Formatting never shows it; `expose` is the one door out, so a
/// grep for `expose(` finds every place a secret leaves the type.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // `into_bytes` hands over the String's own allocation without copying, so the safe code below
        // overwrites the very bytes that held the secret, spare capacity included. Copies made before the
        // value became a `Secret` (a parser's buffer, say) are out of reach; this is hygiene, not a proof.
        wipe(std::mem::take(&mut self.0).into_bytes());
    }
}

/// Overwrites a buffer's whole allocation with zeros before it is freed. For buffers that held secrets
/// before they could be wrapped in a `Secret`, such as an uploaded account list.
pub fn wipe(mut bytes: Vec<u8>) {
    let capacity = bytes.capacity();
    bytes.iter_mut().for_each(|b| *b = 0);
    // Zero the spare capacity too: a String that grew may have left part of the secret past `len`.
    // `resize` within capacity never reallocates.
    bytes.resize(capacity, 0);
    // The buffer is freed right after this, so the optimizer may treat the zeroing as dead stores;
    // `black_box` makes it count as observed, and the fence keeps it before the free.
    std::hint::black_box(&mut bytes);
    compiler_fence(Ordering::SeqCst);
}

/// Length of the key in the key file: the file holds exactly these raw bytes and nothing else.
pub const KEY_LEN: usize = 32;

/// First byte of every sealed blob. A later format (another cipher, a key id) takes a new number, so old
/// rows stay readable and a newer blob is refused by name instead of failing as "wrong key".
const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// The appliance's encryption key for secrets in the store.
pub struct SecretKey {
    // The cipher keeps its own copy of the key and zeroizes it on drop, so this holds no raw bytes.
    cipher: XChaCha20Poly1305,
    // Where the key came from, for error messages that say which file does not match.
    origin: Option<PathBuf>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").field("key", &REDACTED).field("origin", &self.origin).finish()
    }
}

impl SecretKey {
    /// Reads the key file at `path`, or creates it with a fresh random key when there is none.
    ///
    /// An existing file is never replaced: with a new key every password already in the store would be
    /// unreadable, so a damaged or too-open file is an error that says what to do.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SecretKey> {
        match File::open(path) {
            Ok(file) => Self::load(file, path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Self::create(path),
            Err(err) => Err(err).with_context(|| format!("cannot open key file {}", path.display())),
        }
    }

    /// A key that lives only in memory, for tests and for callers that keep no secrets across runs.
    #[cfg(test)]
    pub fn generate() -> anyhow::Result<SecretKey> {
        let mut bytes = random_key()?;
        let key = Self::from_bytes(&bytes, None);
        bytes.iter_mut().for_each(|b| *b = 0);
        compiler_fence(Ordering::SeqCst);
        Ok(key)
    }

    fn from_bytes(bytes: &[u8; KEY_LEN], origin: Option<PathBuf>) -> SecretKey {
        SecretKey { cipher: XChaCha20Poly1305::new(bytes.into()), origin }
    }

    fn load(file: File, path: &Path) -> anyhow::Result<SecretKey> {
        // Check the handle we read from, not the path, so the file cannot be swapped in between.
        let meta = file.metadata().with_context(|| format!("cannot read key file {}", path.display()))?;
        if !meta.is_file() {
            bail!("key file {} is not a regular file; move it away so a new key can be made", path.display());
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "key file {} has mode {mode:04o}, so users other than its owner can read or change it; \
                 run `chmod 600 {}` and start again",
                path.display(),
                path.display()
            );
        }
        if meta.len() != KEY_LEN as u64 {
            bail!(
                "key file {} is {} bytes long, but a postflytt key is exactly {KEY_LEN}; it is damaged or \
                 not a key file. Restore it from a backup: a new key cannot read the passwords already \
                 stored. Only if the store holds no accounts yet, delete the file and a new one is made",
                path.display(),
                meta.len()
            );
        }
        let mut bytes = [0u8; KEY_LEN];
        // Read at most one byte more than a key, so a file that grew after the length check is caught
        // without reading an unbounded amount.
        let mut reader = file.take(KEY_LEN as u64 + 1);
        let read = read_full(&mut reader, &mut bytes).with_context(|| format!("cannot read key file {}", path.display()))?;
        let mut extra = [0u8; 1];
        let more = reader.read(&mut extra).with_context(|| format!("cannot read key file {}", path.display()))?;
        if read != KEY_LEN || more != 0 {
            bail!("key file {} changed size while it was read; is another program writing it?", path.display());
        }
        let key = Self::from_bytes(&bytes, Some(path.to_path_buf()));
        bytes.iter_mut().for_each(|b| *b = 0);
        compiler_fence(Ordering::SeqCst);
        Ok(key)
    }

    fn create(path: &Path) -> anyhow::Result<SecretKey> {
        let mut bytes = random_key()?;
        let result = write_new_key_file(path, &bytes);
        let key = match result {
            Ok(()) => Ok(Self::from_bytes(&bytes, Some(path.to_path_buf()))),
            // Another process made the key between our open and our link: use its key, not ours.
            Err(err) if is_already_exists(&err) => match File::open(path) {
                Ok(file) => Self::load(file, path),
                Err(err) => Err(err).with_context(|| format!("cannot open key file {}", path.display())),
            },
            Err(err) => Err(err),
        };
        bytes.iter_mut().for_each(|b| *b = 0);
        compiler_fence(Ordering::SeqCst);
        key
    }

    /// Encrypts `plaintext`, bound to `aad` (the account id, say, so a sealed password cannot be moved to
    /// another row). Layout: version byte, 24-byte random nonce, ciphertext, 16-byte tag.
    pub fn seal(&self, plaintext: &str, aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|err| anyhow!("cannot get random bytes for a nonce: {err}"))?;
        // Sized up front so the buffer never reallocates and leaves a plaintext copy in freed memory.
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext.as_bytes());
        let aad = versioned_aad(aad);
        let tag = self.cipher.encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut out[HEADER_LEN..]);
        match tag {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Err(_) => {
                // Only a message too long for the cipher gets here; the buffer may still hold plaintext.
                wipe(out);
                bail!("cannot encrypt a secret of {} bytes", plaintext.len())
            }
        }
    }

    /// Decrypts a blob made by `seal` with the same `aad`. Errors never carry the blob, the plaintext or
    /// the key.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Secret> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            bail!("a stored secret is damaged: {} bytes is too short to be a sealed secret", sealed.len());
        }
        if sealed[0] != SEALED_VERSION {
            bail!(
                "a stored secret has format version {}, which this postflytt does not know; was the \
                 database written by a newer version?",
                sealed[0]
            );
        }
        let nonce = XNonce::from_slice(&sealed[1..HEADER_LEN]);
        let (body, tag) = sealed[HEADER_LEN..].split_at(sealed.len() - HEADER_LEN - TAG_LEN);
        let mut buffer = body.to_vec();
        let aad = versioned_aad(aad);
        // The cipher checks the tag before it decrypts, so on failure `buffer` still holds ciphertext.
        if self.cipher.decrypt_in_place_detached(nonce, &aad, &mut buffer, Tag::from_slice(tag)).is_err() {
            let which = match &self.origin {
                Some(path) => format!("the key file {}", path.display()),
                None => "the key in use".to_string(),
            };
            bail!(
                "cannot decrypt a stored secret: {which} does not match the database (the key file was \
                 replaced, or the database came from another appliance), or the stored value is damaged"
            );
        }
        match String::from_utf8(buffer) {
            Ok(text) => Ok(Secret(text)),
            Err(err) => {
                wipe(err.into_bytes());
                bail!("a stored secret decrypted to bytes that are not UTF-8; the database is damaged")
            }
        }
    }
}

/// The caller's associated data with the format version in front, so the version byte is authenticated
/// along with the rest.
fn versioned_aad(aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + aad.len());
    out.push(SEALED_VERSION);
    out.extend_from_slice(aad);
    out
}

fn random_key() -> anyhow::Result<[u8; KEY_LEN]> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::getrandom(&mut bytes).map_err(|err| anyhow!("cannot get random bytes for a new key: {err}"))?;
    Ok(bytes)
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

fn is_already_exists(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>().is_some_and(|err| err.kind() == io::ErrorKind::AlreadyExists)
}

/// Writes the key to a private temporary file in the same directory, flushes it, then hard-links it to
/// `path`. The link either appears with the whole key or not at all: a crash midway can never leave a
/// short key file that would later be refused, and `link` fails rather than replace a key another process
/// made meanwhile. Returns an `io::Error` of kind `AlreadyExists` (inside the anyhow error) in that case.
fn write_new_key_file(path: &Path, key: &[u8; KEY_LEN]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| anyhow!("key file path {} does not name a file", path.display()))?;
    let mut tag = [0u8; 8];
    getrandom::getrandom(&mut tag).map_err(|err| anyhow!("cannot get random bytes: {err}"))?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".new-{tag}"));
    let tmp = dir.join(tmp_name);

    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(key)?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    // The temporary name is only a staging step; whether the link worked or not it must go.
    let removed = fs::remove_file(&tmp);
    match written {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(err.into()),
        Err(err) => {
            return Err(err).with_context(|| {
                format!("cannot create key file {} (does the directory {} exist and is it writable?)", path.display(), dir.display())
            });
        }
    }
    removed.with_context(|| format!("cannot remove temporary key file {}", tmp.display()))?;
    // Make the new directory entry durable too: a key that vanishes after a power cut would orphan every
    // password sealed with it.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot flush directory {} after creating the key file", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::SeqCst);
            let dir = std::env::temp_dir().join(format!("postflytt-secret-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip() {
        let key = SecretKey::generate().unwrap();
        for text in ["", "hemligt", "lösenord med å ä ö och \"citat\"", &"x".repeat(10_000)] {
            let sealed = key.seal(text, b"account:7").unwrap();
            assert_eq!(sealed[0], SEALED_VERSION);
            assert_eq!(sealed.len(), HEADER_LEN + text.len() + TAG_LEN);
            assert_eq!(key.open(&sealed, b"account:7").unwrap().expose(), text);
        }
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let key = SecretKey::generate().unwrap();
        assert_ne!(key.seal("hemligt", b"a").unwrap(), key.seal("hemligt", b"a").unwrap());
    }

    #[test]
    fn wrong_aad_fails() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal("hemligt", b"account:7").unwrap();
        let err = key.open(&sealed, b"account:8").unwrap_err().to_string();
        assert!(err.contains("does not match the database"), "{err}");
        assert!(key.open(&sealed, b"").is_err());
    }

    #[test]
    fn wrong_key_fails_and_names_the_key_file() {
        let dir = TempDir::new();
        let a = SecretKey::load_or_create(&dir.path("a.key")).unwrap();
        let b = SecretKey::load_or_create(&dir.path("b.key")).unwrap();
        let sealed = a.seal("Sommar2024!", b"1").unwrap();
        let err = format!("{:#}", b.open(&sealed, b"1").unwrap_err());
        assert!(err.contains("does not match the database"), "{err}");
        assert!(err.contains("b.key"), "{err}");
        assert!(!err.contains("Sommar2024!"), "{err}");
    }

    #[test]
    fn tampering_with_any_byte_fails() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal("hemligt", b"1").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(key.open(&bad, b"1").is_err(), "flipped byte {i} was accepted");
        }
    }

    #[test]
    fn truncated_and_unknown_version_fail_clearly() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal("hemligt", b"1").unwrap();
        for len in 0..HEADER_LEN + TAG_LEN {
            let err = key.open(&sealed[..len], b"1").unwrap_err().to_string();
            assert!(err.contains("too short"), "{err}");
        }
        // Dropping the last byte keeps the length plausible and must still fail.
        assert!(key.open(&sealed[..sealed.len() - 1], b"1").is_err());
        let mut newer = sealed.clone();
        newer[0] = 2;
        let err = key.open(&newer, b"1").unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
    }

    #[test]
    fn debug_and_display_redact() {
        let secret = Secret::new("Sommar2024!");
        assert_eq!(format!("{secret}"), "«redacted»");
        assert_eq!(format!("{secret:?}"), "«redacted»");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(«redacted»)");
        assert_eq!(secret.clone().expose(), "Sommar2024!");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Row {
            password: Secret,
        }
        let shown = format!("{:?}", Row { password: secret });
        assert!(!shown.contains("Sommar"), "{shown}");
        let key = SecretKey::generate().unwrap();
        assert!(format!("{key:?}").contains("«redacted»"));
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = TempDir::new();
        let path = dir.path("postflytt.key");
        let first = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::metadata(&path).unwrap().len(), KEY_LEN as u64);
        // No staging file is left beside the key.
        let names: Vec<_> = fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("postflytt.key")]);
        let sealed = first.seal("hemligt", b"1").unwrap();
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, b"1").unwrap().expose(), "hemligt");
    }

    #[test]
    fn refuses_key_file_readable_by_others() {
        let dir = TempDir::new();
        let path = dir.path("postflytt.key");
        SecretKey::load_or_create(&path).unwrap();
        let before = fs::read(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("chmod 600 {}", path.display())), "{err}");
        assert!(err.contains("0644"), "{err}");
        // The refusal must not replace the key.
        assert_eq!(fs::read(&path).unwrap(), before);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(SecretKey::load_or_create(&path).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(SecretKey::load_or_create(&path).is_ok());
    }

    #[test]
    fn refuses_key_file_of_wrong_length() {
        let dir = TempDir::new();
        for len in [0usize, 31, 33, 64] {
            let path = dir.path(&format!("k{len}"));
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
            file.write_all(&vec![7u8; len]).unwrap();
            drop(file);
            let err = SecretKey::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains(&format!("is {len} bytes long")), "{err}");
            assert!(err.contains("exactly 32"), "{err}");
            assert_eq!(fs::metadata(&path).unwrap().len(), len as u64, "the file must be left alone");
        }
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let dir = TempDir::new();
        let path = dir.path("no/such/dir/postflytt.key");
        let err = format!("{:#}", SecretKey::load_or_create(&path).unwrap_err());
        assert!(err.contains("cannot create key file"), "{err}");
    }

    #[test]
    fn concurrent_creation_agrees_on_one_key() {
        let dir = TempDir::new();
        let path = dir.path("postflytt.key");
        let keys: Vec<SecretKey> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| SecretKey::load_or_create(&path).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let sealed = keys[0].seal("hemligt", b"1").unwrap();
        for key in &keys {
            assert_eq!(key.open(&sealed, b"1").unwrap().expose(), "hemligt");
        }
    }
}
