//! Values kept secret at rest (Secrets Manager secrets, SecureString
//! parameters): sealed with XChaCha20-Poly1305 under a key that lives outside
//! the store's files, bound to the record they belong to so a sealed value
//! copied into another record does not open.
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io::Write;
use std::path::Path;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A key made now and kept nowhere (unit tests, in-memory servers).
    pub fn ephemeral() -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng)),
        }
    }

    /// The key in `path` (32 raw bytes), made with mode 0600 when absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<Sealer> {
        if !path.exists() {
            write_new(path, &XChaCha20Poly1305::generate_key(&mut OsRng))?;
        }
        // Another process may have made it first: the file's key is the one.
        Sealer::from_bytes(&std::fs::read(path)?).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a {KEY_BYTES}-byte key", path.display()),
            )
        })
    }

    fn from_bytes(bytes: &[u8]) -> Option<Sealer> {
        (bytes.len() == KEY_BYTES).then(|| Sealer {
            cipher: XChaCha20Poly1305::new(bytes.into()),
        })
    }

    /// `value` sealed and bound to `context`, as base64 text for a JSON record.
    pub fn seal(&self, value: &[u8], context: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: value,
            aad: context.as_bytes(),
        };
        // Encryption fails only for messages beyond 256 GiB.
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// The value `seal` was given, if `sealed` was sealed under this key for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if bytes.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: body,
            aad: context.as_bytes(),
        };
        self.cipher.decrypt(XNonce::from_slice(nonce), payload).ok()
    }
}

/// Writes a new key file readable by its owner only; an existing file is kept.
fn write_new(path: &Path, key: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut f) => {
            f.write_all(key)?;
            f.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_own_context_and_key() {
        let s = Sealer::ephemeral();
        let sealed = s.seal(b"hunter2", "secret/a/v1");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            s.open(&sealed, "secret/a/v1").as_deref(),
            Some(&b"hunter2"[..])
        );
        assert_eq!(s.open(&sealed, "secret/b/v1"), None);
        assert_eq!(Sealer::ephemeral().open(&sealed, "secret/a/v1"), None);
        // Two seals of one value differ (fresh nonces).
        assert_ne!(s.seal(b"hunter2", "secret/a/v1"), sealed);
    }

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let first = Sealer::load_or_create(&path).unwrap();
        let sealed = first.seal(b"v", "c");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "c").as_deref(), Some(&b"v"[..]));
        std::fs::write(&path, b"short").unwrap();
        assert!(Sealer::load_or_create(&path).is_err());
    }
}
