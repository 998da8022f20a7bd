//! Encryption of key shares at rest, and the key that authenticates the
//! rows they are stored in.
//!
//! Shares are sealed with XChaCha20-Poly1305 under the node's 256-bit
//! key-encryption key (KEK). The associated data binds the sealed blob to
//! its key id, node id and epoch, so a blob copied to another row, node or
//! epoch fails to open. A random 192-bit nonce per seal makes nonce reuse
//! negligible without a counter.
//!
//! The rest of a share's row — scheme, status, threshold, participants,
//! public key and public key package — is not in the sealed blob. It is
//! authenticated by the row's tag, HMAC-SHA256 under a second key derived
//! from the KEK with HKDF-SHA256 ([`RowAuthenticator`]); the share store
//! checks it on every read ([`crate::store`] explains what it covers).
//!
//! The KEK is read from a file the operator provides: a node never creates
//! one ([`Kek::load`]); only local-cluster tooling does
//! ([`Kek::load_or_create`]). PKCS#11 and cloud KMS sources slot in behind
//! [`Kek`] later.

use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

const NONCE_LEN: usize = 24;
const VERSION: u8 = 1;
/// HKDF `info` of the share-row authentication key.
const ROW_KEY_INFO: &[u8] = b"sigil/v1/share-row-tag";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key-encryption key file {path}: {reason}")]
    KekFile { path: String, reason: String },
    /// The key-encryption key file does not exist.
    #[error("key-encryption key file {path} does not exist")]
    KekMissing { path: String },
    #[error("sealed share is malformed")]
    Malformed,
    #[error("sealed share does not open under this node's key-encryption key and binding")]
    Open,
    #[error("encryption failed")]
    Seal,
}

/// What a sealed share is bound to.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub key_id: &'a str,
    pub node_id: u16,
    pub epoch: u64,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"sigil/v1/share-at-rest".to_vec();
        aad.extend_from_slice(&(self.key_id.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.key_id.as_bytes());
        aad.extend_from_slice(&self.node_id.to_be_bytes());
        aad.extend_from_slice(&self.epoch.to_be_bytes());
        aad
    }
}

/// The node's key-encryption key.
pub struct Kek {
    cipher: XChaCha20Poly1305,
    /// HKDF-SHA256 of the KEK for share-row tags ([`RowAuthenticator`]).
    row_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

/// HKDF-SHA256-Expand (RFC 5869) of 32 bytes under `info`. The KEK is a
/// uniformly random key, so it serves as the PRK without an extract step
/// (RFC 5869, section 3.3).
fn hkdf_expand_32(prk: &[u8; 32], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::from_prk(prk)
        .and_then(|h| {
            h.expand(info, out.as_mut())
                .map_err(|_| hkdf::InvalidPrkLength)
        })
        .expect("a 32-byte PRK and a 32-byte output are within HKDF-SHA256's bounds");
    out
}

impl Kek {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            row_key: hkdf_expand_32(bytes, ROW_KEY_INFO),
        }
    }

    /// Reads a hex-encoded 32-byte key. Refuses files readable by others; a
    /// missing file is [`SealError::KekMissing`]. Never creates one.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let err = |reason: String| SealError::KekFile {
            path: path.display().to_string(),
            reason,
        };
        let io_err = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SealError::KekMissing {
                    path: path.display().to_string(),
                }
            } else {
                err(e.to_string())
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(io_err)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "permissions {:o} are too open; use 0600",
                    mode & 0o777
                )));
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err)?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), bytes.as_mut())
            .map_err(|_| err("expected 64 hex characters".into()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Creates a new random key file (mode 0600) unless one exists, then
    /// loads it. For local-cluster tooling only (`sigil up`, the test
    /// harness, recovery drills' throwaway nodes): a node never creates its
    /// KEK, it refuses to start without one.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        if !path.exists() {
            let err = |e: std::io::Error| SealError::KekFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let key = XChaCha20Poly1305::generate_key(&mut OsRng);
            let mut hexed = hex::encode(&key[..]);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let result = opts
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, hexed.as_bytes()));
            hexed.zeroize();
            result.map_err(err)?;
        }
        Self::load(path)
    }

    /// The authenticator of node `node_id`'s share rows.
    pub fn row_authenticator(&self, node_id: u16) -> RowAuthenticator {
        RowAuthenticator {
            key: self.row_key.clone(),
            node_id,
        }
    }

    /// Seals `plaintext` bound to `binding`: `version ‖ nonce ‖ ciphertext`.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &binding.aad(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a sealed blob; fails unless it was sealed under this KEK with the same binding.
    pub fn open(
        &self,
        binding: Binding<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
        if *version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: &binding.aad(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

/// Computes and checks the tags of one node's share rows: HMAC-SHA256,
/// keyed with HKDF-SHA256(KEK, `"sigil/v1/share-row-tag"`), over the node
/// id and the row's fields as [`crate::store`] encodes them.
#[derive(Clone)]
pub struct RowAuthenticator {
    key: Zeroizing<[u8; 32]>,
    node_id: u16,
}

impl std::fmt::Debug for RowAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowAuthenticator")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl RowAuthenticator {
    /// The node whose rows this authenticates.
    pub fn node_id(&self) -> u16 {
        self.node_id
    }

    fn mac(&self, fields: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()).expect("any key length");
        mac.update(b"sigil/v1/share-row");
        mac.update(&self.node_id.to_be_bytes());
        mac.update(fields);
        mac
    }

    /// The tag of a row whose fields encode to `fields`.
    pub fn tag(&self, fields: &[u8]) -> Vec<u8> {
        self.mac(fields).finalize().into_bytes().to_vec()
    }

    /// Whether `tag` is the tag of `fields` (constant-time comparison).
    pub fn verify(&self, fields: &[u8], tag: &[u8]) -> bool {
        self.mac(fields).verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(key_id: &str, node_id: u16, epoch: u64) -> Binding<'_> {
        Binding {
            key_id,
            node_id,
            epoch,
        }
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let kek = Kek::from_bytes(&[7; 32]);
        let sealed = kek.seal(b("k1", 1, 0), b"secret share").expect("seal");
        assert_eq!(
            kek.open(b("k1", 1, 0), &sealed).expect("open").as_slice(),
            b"secret share"
        );
        // Any change of binding, key or bytes fails.
        assert!(matches!(
            kek.open(b("k2", 1, 0), &sealed),
            Err(SealError::Open)
        ));
        assert!(matches!(
            kek.open(b("k1", 2, 0), &sealed),
            Err(SealError::Open)
        ));
        assert!(matches!(
            kek.open(b("k1", 1, 1), &sealed),
            Err(SealError::Open)
        ));
        assert!(matches!(
            Kek::from_bytes(&[8; 32]).open(b("k1", 1, 0), &sealed),
            Err(SealError::Open)
        ));
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(matches!(
            kek.open(b("k1", 1, 0), &flipped),
            Err(SealError::Open)
        ));
        assert!(matches!(
            kek.open(b("k1", 1, 0), &sealed[..10]),
            Err(SealError::Malformed)
        ));
        // The plaintext does not appear in the sealed form.
        assert!(!sealed.windows(12).any(|w| w == b"secret share"));
    }

    #[test]
    fn row_tags_depend_on_kek_node_and_fields() {
        let kek = Kek::from_bytes(&[7; 32]);
        let auth = kek.row_authenticator(1);
        let tag = auth.tag(b"fields");
        assert_eq!(tag.len(), 32);
        assert!(auth.verify(b"fields", &tag));
        assert!(!auth.verify(b"fieldz", &tag));
        assert!(!auth.verify(b"fields", &tag[..31]));
        assert!(!kek.row_authenticator(2).verify(b"fields", &tag));
        assert!(
            !Kek::from_bytes(&[8; 32])
                .row_authenticator(1)
                .verify(b"fields", &tag)
        );
        // The row key is derived, not the KEK itself.
        let mut raw = <Hmac<Sha256> as Mac>::new_from_slice(&[7; 32]).expect("key");
        raw.update(b"sigil/v1/share-row");
        raw.update(&1u16.to_be_bytes());
        raw.update(b"fields");
        assert_ne!(raw.finalize().into_bytes().to_vec(), tag);
    }

    #[test]
    fn a_missing_kek_file_is_not_created_by_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/kek.hex");
        assert!(matches!(
            Kek::load(&path),
            Err(SealError::KekMissing { path: p }) if p.contains("kek.hex")
        ));
        assert!(!path.exists());
    }

    #[test]
    fn kek_file_is_created_private_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/kek.hex");
        let a = Kek::load_or_create(&path).expect("create");
        let sealed = a.seal(b("k", 1, 0), b"x").expect("seal");
        let b2 = Kek::load_or_create(&path).expect("reload");
        assert_eq!(
            b2.open(b("k", 1, 0), &sealed).expect("open").as_slice(),
            b"x"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(matches!(Kek::load(&path), Err(SealError::KekFile { .. })));
        }
    }
}
