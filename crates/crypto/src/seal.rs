//! Sealing of secrets at rest (TS-0003 §6.2.5 secure storage: keys are stored encrypted).
//!
//! A [`Sealer`] holds a 32-byte master key kept in a file readable only by its owner and
//! encrypts secrets with AES-256-GCM. Sealed form: `version (1 byte) || nonce (12) ||
//! ciphertext || tag (16)`. The associated data binds a sealed value to its place (e.g. the
//! credential-ID and column it belongs to), so a sealed value copied elsewhere does not open.
//!
//! [`Sealer::load_or_create`] touches the file system and [`Sealer::seal`] draws a random nonce:
//! this module is an outer layer.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::error::ErrorStack;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

use crate::secret::SecretKey;

/// Format version byte of sealed values.
pub const SEAL_VERSION: u8 = 1;
/// Length of the master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Error from loading a master key or sealing/opening a value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The master key file could not be read or created.
    #[error("master key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The master key file can be read by group or others.
    #[error(
        "master key file {path} has mode {mode:o}, which lets group or others read it; \
         restrict it with `chmod 600 {path}`"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The master key file does not hold exactly 32 bytes.
    #[error("master key file {path} does not hold exactly {MASTER_KEY_LEN} bytes (read {len})")]
    KeyFileLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// A master key given directly has the wrong length.
    #[error("master key has {0} bytes, expected {MASTER_KEY_LEN}")]
    KeyLength(usize),
    /// The sealed value is shorter than version, nonce and tag.
    #[error("sealed value is truncated ({0} bytes)")]
    Truncated(usize),
    /// The sealed value has an unknown format version.
    #[error("sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    /// Authentication failed: wrong master key, wrong associated data, or tampering.
    #[error("sealed value does not authenticate (wrong key, wrong associated data or modified)")]
    Authentication,
    /// The cryptographic library failed.
    #[error("cipher failure: {0}")]
    Cipher(#[from] ErrorStack),
}

/// Encrypts and decrypts secrets with a master key (AES-256-GCM).
#[derive(Debug)]
pub struct Sealer {
    key: SecretKey,
}

impl Sealer {
    /// Uses `key` (32 bytes) as master key.
    pub fn from_key(key: SecretKey) -> Result<Self, SealError> {
        if key.len() != MASTER_KEY_LEN {
            return Err(SealError::KeyLength(key.len()));
        }
        Ok(Self { key })
    }

    /// Loads the master key from `path`, or creates the file with a fresh random key and mode
    /// 0600 when it does not exist. An existing file that group or others may read is refused.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::Io {
            path: path.to_owned(),
            source,
        };
        match fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SealError::Permissions {
                        path: path.to_owned(),
                        mode,
                    });
                }
                // Read at most one byte more than a key, into a buffer that never grows, so
                // no unzeroized copy of the key is left behind by a reallocation.
                let mut bytes = Vec::with_capacity(MASTER_KEY_LEN + 1);
                fs::File::open(path)
                    .and_then(|f| f.take(MASTER_KEY_LEN as u64 + 1).read_to_end(&mut bytes))
                    .map_err(io)?;
                let key = SecretKey::new(bytes);
                if key.len() != MASTER_KEY_LEN {
                    return Err(SealError::KeyFileLength {
                        path: path.to_owned(),
                        len: key.len(),
                    });
                }
                Ok(Self { key })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let mut bytes = vec![0u8; MASTER_KEY_LEN];
                openssl::rand::rand_bytes(&mut bytes)?;
                let key = SecretKey::new(bytes);
                // create_new: never overwrite a key that appeared in the meantime.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                file.write_all(key.expose_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io)?;
                Ok(Self { key })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext`, authenticating `aad` with it, under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;
        self.seal_with_nonce(plaintext, aad, &nonce)
    }

    /// [`Sealer::seal`] with a caller-chosen nonce. A nonce must never repeat under one key;
    /// this exists for deterministic tests.
    pub fn seal_with_nonce(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Vec<u8>, SealError> {
        let mut tag = [0u8; TAG_LEN];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.key.expose_bytes(),
            Some(nonce),
            aad,
            plaintext,
            &mut tag,
        )?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len() + TAG_LEN);
        out.push(SEAL_VERSION);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a value produced by [`Sealer::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretKey, SealError> {
        let (&version, rest) = sealed
            .split_first()
            .ok_or(SealError::Truncated(sealed.len()))?;
        if version != SEAL_VERSION {
            return Err(SealError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated(sealed.len()));
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            self.key.expose_bytes(),
            Some(nonce),
            aad,
            ct,
            tag,
        )
        .map(SecretKey::new)
        .map_err(|_| SealError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sealer(byte: u8) -> Sealer {
        Sealer::from_key(SecretKey::new(vec![byte; 32])).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = sealer(7);
        let sealed = s.seal(b"kpsa bytes", b"12-k@mef.example.com").unwrap();
        assert_eq!(sealed.len(), 1 + 12 + 10 + 16);
        assert_eq!(sealed[0], SEAL_VERSION);
        let opened = s.open(&sealed, b"12-k@mef.example.com").unwrap();
        assert_eq!(opened.expose_bytes(), b"kpsa bytes");
        // Fresh nonces: sealing twice differs.
        assert_ne!(
            sealed,
            s.seal(b"kpsa bytes", b"12-k@mef.example.com").unwrap()
        );
        // Empty plaintext works.
        let e = s.seal(b"", b"").unwrap();
        assert!(s.open(&e, b"").unwrap().is_empty());
    }

    #[test]
    fn failures_never_panic() {
        let s = sealer(7);
        let sealed = s.seal(b"secret", b"aad").unwrap();
        assert!(matches!(
            s.open(&sealed, b"other"),
            Err(SealError::Authentication)
        ));
        assert!(matches!(
            sealer(8).open(&sealed, b"aad"),
            Err(SealError::Authentication)
        ));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(s.open(&t, b"aad").is_err(), "flip at {i}");
        }
        for n in 0..29 {
            assert!(s.open(&sealed[..n], b"aad").is_err(), "prefix {n}");
        }
        assert!(matches!(s.open(&[], b"aad"), Err(SealError::Truncated(0))));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert!(matches!(
            s.open(&v2, b"aad"),
            Err(SealError::UnknownVersion(2))
        ));
        assert!(matches!(
            Sealer::from_key(SecretKey::new(vec![0; 16])),
            Err(SealError::KeyLength(16))
        ));
    }

    #[test]
    fn key_file_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = Sealer::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let sealed = a.seal(b"x", b"").unwrap();
        let b = Sealer::load_or_create(&path).unwrap();
        assert_eq!(b.open(&sealed, b"").unwrap().expose_bytes(), b"x");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Sealer::load_or_create(&path).unwrap_err();
        assert!(matches!(err, SealError::Permissions { mode: 0o644, .. }));
        assert!(err.to_string().contains("group or others"), "{err}");

        let short = dir.path().join("short.key");
        fs::write(&short, b"abc").unwrap();
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Sealer::load_or_create(&short),
            Err(SealError::KeyFileLength { len: 3, .. })
        ));

        let missing_dir = dir.path().join("nope/master.key");
        assert!(matches!(
            Sealer::load_or_create(&missing_dir),
            Err(SealError::Io { .. })
        ));
    }

    #[test]
    fn debug_does_not_leak() {
        assert_eq!(format!("{:?}", sealer(0x41)), "Sealer { key: <redacted> }");
    }
}
