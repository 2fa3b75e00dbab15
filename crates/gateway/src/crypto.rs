//! Secrets at rest (payment-processor credentials, later provider keys):
//! ChaCha20-Poly1305 with a key that never enters the database. The key comes
//! from `TOLLGATE_ENCRYPTION_KEY` (base64, 32 bytes), else from the file named
//! by `encryption_key_file`, else from `DATA_DIR/encryption.key`, created on
//! first start with mode 0600.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

pub const KEY_ENV: &str = "TOLLGATE_ENCRYPTION_KEY";
pub const DEFAULT_KEY_FILE: &str = "encryption.key";
/// What the key check seals: nothing secret, only proof of the key.
const KEY_CHECK_SAMPLE: &[u8] = b"tollgate key check";
const NONCE_LEN: usize = 12;

pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error)]
#[error("the secret cannot be decrypted with this gateway's encryption key")]
pub struct Unreadable;

fn decode_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("the encryption key is not base64")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the encryption key must be 32 bytes (44 base64 characters)"))
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Loads the key as described in the module docs.
    pub fn load(data_dir: &Path, key_file: Option<&Path>) -> anyhow::Result<Self> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return Ok(Self::from_key(decode_key(&text).context(KEY_ENV)?));
        }
        let path = key_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| data_dir.join(DEFAULT_KEY_FILE));
        if !path.exists() && key_file.is_none() {
            create_key_file(&path)?;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the encryption key {}", path.display()))?;
        Ok(Self::from_key(
            decode_key(&text).with_context(|| path.display().to_string())?,
        ))
    }

    /// A sample sealed with this key, as text (for [`SecretBox::opens`]).
    pub fn sample(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.seal(KEY_CHECK_SAMPLE))
    }

    /// Whether `sample` (from [`SecretBox::sample`]) was sealed with this key.
    pub fn opens(&self, sample: &str) -> bool {
        base64::engine::general_purpose::STANDARD
            .decode(sample)
            .ok()
            .and_then(|blob| self.open(&blob).ok())
            .is_some_and(|plain| plain == KEY_CHECK_SAMPLE)
    }

    /// `nonce || ciphertext`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("encryption cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn open(&self, blob: &[u8]) -> Result<Vec<u8>, Unreadable> {
        if blob.len() < NONCE_LEN {
            return Err(Unreadable);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| Unreadable)
    }
}

/// Writes a new random key at `path`, whole or not at all: it is written
/// beside, then linked into place only if no key is there yet (a process
/// starting at the same moment keeps the first key, never half of one).
fn create_key_file(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    file.write_all(
        base64::engine::general_purpose::STANDARD
            .encode(key)
            .as_bytes(),
    )?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    match linked {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "created an encryption key for secrets at rest; keep it apart from backups of the database");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_refuses_another_key() {
        let a = SecretBox::from_key([7; 32]);
        let sealed = a.seal(b"sk_live_secret");
        assert!(!sealed.windows(14).any(|w| w == b"sk_live_secret"));
        assert_eq!(a.open(&sealed).unwrap(), b"sk_live_secret");
        assert_ne!(a.seal(b"x"), a.seal(b"x"), "a fresh nonce each time");
        assert!(SecretBox::from_key([8; 32]).open(&sealed).is_err());
        assert!(a.open(b"short").is_err());
    }

    #[test]
    fn creates_a_private_key_file_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::load(dir.path(), None).unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let second = SecretBox::load(dir.path(), None).unwrap();
        assert_eq!(second.open(&first.seal(b"same key")).unwrap(), b"same key");
        assert!(SecretBox::load(dir.path(), Some(&dir.path().join("missing"))).is_err());
    }
}
