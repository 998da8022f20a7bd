//! Backups of key shares, sealed to an offline key, and the checks a
//! restore makes before a backed-up share is used again.
//!
//! A node exports each of its current shares sealed with HPKE (RFC 9180,
//! base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
//! ChaCha20-Poly1305) to the *backup recipient* of its configuration: an
//! X25519 public key whose secret the security officers hold offline. The
//! HPKE `info` is [`BACKUP_INFO`]; the associated data ([`entry_aad`])
//! binds every public field of the entry — key id, epoch, node id, scheme,
//! group key, the node's verifying share and the SHA-256 of the public key
//! package, each of fixed width or length-prefixed — so a backup
//! re-labelled with another epoch or node, or altered anywhere, does not
//! open. The plaintext is the share's sealed-at-rest encoding
//! (`engine::KeyShare::to_bytes`): the share and nothing else. Nonces,
//! presignatures and session state exist only in a node's memory and are
//! never in a backup.
//!
//! [`restore_share`] is what a restore checks, in this order:
//!
//! | check | refusal |
//! |---|---|
//! | the entry is of the key and node asked for | [`BackupError::Mismatch`] |
//! | its epoch is the key's current epoch (an older epoch's shares were retired) | [`BackupError::Epoch`] |
//! | it opens under the backup secret key with its own associated data | [`BackupError::Open`] |
//! | its (now authenticated) scheme, group key and package are the key's current ones | [`BackupError::Mismatch`] |
//! | the plaintext decodes as this node's share of that scheme; `s·G` is the entry's verifying share and the package's | [`BackupError::Share`] |
//!
//! [`BackupFile`] is the JSON form `sigil backup` writes (bytes in hex).
//! Pure: randomness comes from the caller, nothing is read or written here.

use std::fmt;

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_chacha::rand_core::SeedableRng as _;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigil_proto::convert::{scheme_from_wire, scheme_to_wire};
use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::engine::KeyShare;
use zeroize::Zeroizing;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// HPKE `info` of every backup entry.
pub const BACKUP_INFO: &[u8] = b"sigil.v1.Backup";
/// The `format` of a [`BackupFile`].
pub const BACKUP_FORMAT: &str = "sigil.v1.NodeBackup";
/// Version of the associated-data layout ([`entry_aad`]).
const AAD_VERSION: u8 = 1;

/// Why a backup could not be made, read or restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("malformed backup: {0}")]
    Malformed(String),
    #[error("invalid backup key: {0}")]
    Key(String),
    #[error("sealing failed: {0}")]
    Seal(String),
    #[error(
        "the backup of key {key_id} (node {node_id}, epoch {epoch}) does not open under this backup key: it was sealed to another key, or its ciphertext or an authenticated field (key id, epoch, node, scheme, public key, verifying share, public key package) was altered"
    )]
    Open {
        key_id: String,
        node_id: u16,
        epoch: u64,
    },
    #[error("backup of epoch {backup}, key {key_id} is at epoch {current}{}", if backup < current { " (an older epoch: its shares were retired; take a new backup)" } else { "" })]
    Epoch {
        key_id: String,
        backup: u64,
        current: u64,
    },
    #[error("the backup does not match key {key_id}: {what}")]
    Mismatch { key_id: String, what: String },
    #[error("the restored share of key {key_id} is not the node's share: {what}")]
    Share { key_id: String, what: String },
}

/// The backup recipient: an X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackupPublicKey([u8; 32]);

impl fmt::Debug for BackupPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupPublicKey({})", self.to_hex())
    }
}

impl BackupPublicKey {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, BackupError> {
        let key = <[u8; 32]>::try_from(bytes).map_err(|_| {
            BackupError::Key(format!(
                "an X25519 public key is 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        let public = <Kem as hpke::Kem>::PublicKey::from_bytes(&key)
            .map_err(|e| BackupError::Key(format!("not an X25519 public key: {e}")))?;
        // A low-order point (all zeros, …) takes no encryption: refuse it now,
        // not at the first backup.
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([0; 32]);
        hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
            &OpModeS::Base,
            &public,
            BACKUP_INFO,
            &[],
            &[],
            &mut rng,
        )
        .map_err(|_| BackupError::Key("not a usable X25519 public key".into()))?;
        Ok(Self(key))
    }

    /// 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, BackupError> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| BackupError::Key("expected 64 hex characters".into()))?;
        Self::from_slice(&bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes of its SHA-256, in hex: how logs name the key.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }
}

/// The backup secret key (held offline). Zeroized on drop, never printed.
#[derive(Clone)]
pub struct BackupSecretKey {
    secret: Zeroizing<[u8; 32]>,
    public: BackupPublicKey,
}

impl fmt::Debug for BackupSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupSecretKey")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl BackupSecretKey {
    /// A fresh keypair.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        let (secret, _) = Kem::derive_keypair(ikm.as_ref());
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&secret.to_bytes());
        Self::from_array(bytes).unwrap_or_else(|_| unreachable!("a derived X25519 key is valid"))
    }

    fn from_array(secret: Zeroizing<[u8; 32]>) -> Result<Self, BackupError> {
        let key = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.as_ref())
            .map_err(|e| BackupError::Key(format!("not an X25519 secret key: {e}")))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(&Kem::sk_to_pk(&key).to_bytes());
        Ok(Self {
            secret,
            public: BackupPublicKey(public),
        })
    }

    /// 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, BackupError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), bytes.as_mut())
            .map_err(|_| BackupError::Key("expected 64 hex characters".into()))?;
        Self::from_array(bytes)
    }

    /// The secret in hex, for its file (mode 0600, offline).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.secret[..]))
    }

    pub fn public_key(&self) -> BackupPublicKey {
        self.public
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The HPKE associated data of `entry`: a version byte, then key id
/// (length-prefixed), epoch (u64 BE), node id (u16 BE), scheme name,
/// group key and verifying share (each length-prefixed), and the SHA-256 of
/// the public key package (32 bytes). `encapped_key` and `ciphertext` are
/// not part of it.
pub fn entry_aad(entry: &pb::BackupEntry) -> Result<Vec<u8>, BackupError> {
    let scheme = scheme_from_wire(entry.scheme)
        .map_err(|_| BackupError::Malformed(format!("unknown scheme {}", entry.scheme)))?;
    let node_id = u16::try_from(entry.node_id)
        .map_err(|_| BackupError::Malformed(format!("node id {} out of range", entry.node_id)))?;
    let mut aad = vec![AAD_VERSION];
    put(&mut aad, entry.key_id.as_bytes());
    aad.extend_from_slice(&entry.epoch.to_be_bytes());
    aad.extend_from_slice(&node_id.to_be_bytes());
    put(&mut aad, scheme.name().as_bytes());
    put(&mut aad, &entry.public_key);
    put(&mut aad, &entry.verifying_share);
    aad.extend_from_slice(&Sha256::digest(&entry.public_key_package));
    Ok(aad)
}

/// Seals `share` (a share's `to_bytes`) to `recipient`, bound to the public
/// fields of `label` (its `encapped_key` and `ciphertext` are replaced).
pub fn seal_entry<R: RngCore + CryptoRng>(
    recipient: &BackupPublicKey,
    mut label: pb::BackupEntry,
    share: &[u8],
    rng: &mut R,
) -> Result<pb::BackupEntry, BackupError> {
    let aad = entry_aad(&label)?;
    let key = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes())
        .map_err(|e| BackupError::Key(e.to_string()))?;
    // hpke takes an RNG of its own rand_core version: seed one from `rng`.
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    let mut hpke_rng = rand_chacha::ChaCha20Rng::from_seed(*seed);
    let (enc, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
        &OpModeS::Base,
        &key,
        BACKUP_INFO,
        share,
        &aad,
        &mut hpke_rng,
    )
    .map_err(|e| BackupError::Seal(e.to_string()))?;
    label.encapped_key = enc.to_bytes().to_vec();
    label.ciphertext = ciphertext;
    Ok(label)
}

/// Opens `entry` with `secret`: the share bytes, or [`BackupError::Open`]
/// if anything about the entry is not what was sealed.
pub fn open_entry(
    secret: &BackupSecretKey,
    entry: &pb::BackupEntry,
) -> Result<Zeroizing<Vec<u8>>, BackupError> {
    let aad = entry_aad(entry)?;
    let refused = || BackupError::Open {
        key_id: entry.key_id.clone(),
        node_id: u16::try_from(entry.node_id).unwrap_or(u16::MAX),
        epoch: entry.epoch,
    };
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&entry.encapped_key).map_err(|_| refused())?;
    let key = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.secret.as_ref())
        .map_err(|e| BackupError::Key(e.to_string()))?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        &key,
        &enc,
        BACKUP_INFO,
        &entry.ciphertext,
        &aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| refused())
}

/// The key a backup is restored against, as the coordinator describes it now.
#[derive(Clone, Copy, Debug)]
pub struct CurrentKey<'a> {
    pub key_id: &'a str,
    pub scheme: Scheme,
    pub epoch: u64,
    pub public_key: &'a [u8],
    pub public_key_package: &'a [u8],
    pub participants: &'a [u16],
}

/// Opens node `node_id`'s backup `entry` of `key` and checks it is that
/// node's current share (see the module docs for the checks, in order).
pub fn restore_share(
    secret: &BackupSecretKey,
    entry: &pb::BackupEntry,
    node_id: u16,
    key: &CurrentKey<'_>,
) -> Result<KeyShare, BackupError> {
    let mismatch = |what: String| BackupError::Mismatch {
        key_id: key.key_id.to_owned(),
        what,
    };
    if entry.key_id != key.key_id {
        return Err(mismatch(format!("the backup is of key {}", entry.key_id)));
    }
    if entry.node_id != u32::from(node_id) {
        return Err(mismatch(format!(
            "the backup is node {}'s, not node {node_id}'s",
            entry.node_id
        )));
    }
    if !key.participants.contains(&node_id) {
        return Err(mismatch(format!(
            "node {node_id} is not a current participant {:?}",
            key.participants
        )));
    }
    if entry.epoch != key.epoch {
        return Err(BackupError::Epoch {
            key_id: key.key_id.to_owned(),
            backup: entry.epoch,
            current: key.epoch,
        });
    }
    let plaintext = open_entry(secret, entry)?;
    // Authenticated from here on.
    if entry.scheme != scheme_to_wire(key.scheme) as i32 {
        return Err(mismatch("the backup is of another scheme".into()));
    }
    if entry.public_key != key.public_key {
        return Err(mismatch("the backup is of another public key".into()));
    }
    if entry.public_key_package != key.public_key_package {
        return Err(mismatch(format!(
            "the backup's public key package differs from epoch {}'s",
            key.epoch
        )));
    }
    let share_error = |what: String| BackupError::Share {
        key_id: key.key_id.to_owned(),
        what,
    };
    let share = KeyShare::from_bytes(key.scheme, &plaintext)
        .map_err(|e| share_error(format!("it does not decode: {e}")))?;
    if share.public_key_package() != key.public_key_package {
        return Err(share_error(
            "it belongs to another public key package".into(),
        ));
    }
    // s·G, checked against the package's verifying share of the share's node.
    let verifying_share = share
        .verifying_share()
        .map_err(|e| share_error(e.to_string()))?;
    if verifying_share != entry.verifying_share {
        return Err(share_error(
            "its verifying share differs from the one the backup names".into(),
        ));
    }
    let share_node = match &share {
        KeyShare::Frost(s) => s.node_id(),
        KeyShare::Ecdsa(s) => s.node_id(),
    };
    if share_node.get() != node_id {
        return Err(share_error(format!(
            "it is node {share_node}'s share, not node {node_id}'s"
        )));
    }
    Ok(share)
}

/// The JSON file of one node's backup (`node-<n>.json`), bytes in hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// Always [`BACKUP_FORMAT`].
    pub format: String,
    pub node_id: u16,
    /// The recipient public key the entries are sealed to.
    pub recipient: String,
    pub created_at: String,
    pub entries: Vec<BackupFileEntry>,
}

/// One [`pb::BackupEntry`] in a [`BackupFile`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFileEntry {
    pub key_id: String,
    pub epoch: u64,
    pub node_id: u16,
    /// The scheme's name (`frost-secp256k1`, …).
    pub scheme: String,
    pub public_key: String,
    pub public_key_package: String,
    pub verifying_share: String,
    pub encapped_key: String,
    pub ciphertext: String,
}

impl BackupFile {
    /// The file form of a node's backup as the node returned it.
    pub fn from_wire(backup: &pb::NodeBackup) -> Result<Self, BackupError> {
        let node =
            |n: u32| u16::try_from(n).map_err(|_| BackupError::Malformed(format!("node id {n}")));
        Ok(Self {
            format: BACKUP_FORMAT.to_owned(),
            node_id: node(backup.node_id)?,
            recipient: hex::encode(&backup.recipient),
            created_at: backup.created_at.clone(),
            entries: backup
                .entries
                .iter()
                .map(|e| {
                    Ok(BackupFileEntry {
                        key_id: e.key_id.clone(),
                        epoch: e.epoch,
                        node_id: node(e.node_id)?,
                        scheme: scheme_from_wire(e.scheme)
                            .map_err(|_| {
                                BackupError::Malformed(format!("unknown scheme {}", e.scheme))
                            })?
                            .name()
                            .to_owned(),
                        public_key: hex::encode(&e.public_key),
                        public_key_package: hex::encode(&e.public_key_package),
                        verifying_share: hex::encode(&e.verifying_share),
                        encapped_key: hex::encode(&e.encapped_key),
                        ciphertext: hex::encode(&e.ciphertext),
                    })
                })
                .collect::<Result<_, BackupError>>()?,
        })
    }

    /// Back to the wire form (what [`restore_share`] takes).
    pub fn to_wire(&self) -> Result<pb::NodeBackup, BackupError> {
        if self.format != BACKUP_FORMAT {
            return Err(BackupError::Malformed(format!(
                "format {:?}, expected {BACKUP_FORMAT:?}",
                self.format
            )));
        }
        let bytes = |what: &str, text: &str| {
            hex::decode(text).map_err(|_| BackupError::Malformed(format!("{what} is not hex")))
        };
        Ok(pb::NodeBackup {
            node_id: u32::from(self.node_id),
            recipient: bytes("recipient", &self.recipient)?,
            created_at: self.created_at.clone(),
            entries: self
                .entries
                .iter()
                .map(|e| {
                    let scheme: Scheme = e.scheme.parse().map_err(|_| {
                        BackupError::Malformed(format!("unknown scheme {:?}", e.scheme))
                    })?;
                    Ok(pb::BackupEntry {
                        key_id: e.key_id.clone(),
                        epoch: e.epoch,
                        node_id: u32::from(e.node_id),
                        scheme: scheme_to_wire(scheme) as i32,
                        public_key: bytes("public_key", &e.public_key)?,
                        public_key_package: bytes("public_key_package", &e.public_key_package)?,
                        verifying_share: bytes("verifying_share", &e.verifying_share)?,
                        encapped_key: bytes("encapped_key", &e.encapped_key)?,
                        ciphertext: bytes("ciphertext", &e.ciphertext)?,
                    })
                })
                .collect::<Result<_, BackupError>>()?,
        })
    }

    /// The entry of `key_id`, if this file has one.
    pub fn entry(&self, key_id: &str) -> Option<&BackupFileEntry> {
        self.entries.iter().find(|e| e.key_id == key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn label() -> pb::BackupEntry {
        pb::BackupEntry {
            key_id: "key-a".into(),
            epoch: 3,
            node_id: 2,
            scheme: pb::Scheme::FrostSecp256k1 as i32,
            public_key: vec![2; 33],
            public_key_package: vec![5; 90],
            verifying_share: vec![3; 33],
            ..Default::default()
        }
    }

    #[test]
    fn a_sealed_entry_opens_only_with_its_secret_key() {
        let mut rng = rng();
        let secret = BackupSecretKey::generate(&mut rng);
        let entry =
            seal_entry(&secret.public_key(), label(), b"share bytes", &mut rng).expect("seal");
        assert_eq!(entry.encapped_key.len(), 32);
        assert!(!entry.ciphertext.windows(11).any(|w| w == b"share bytes"));
        assert_eq!(
            open_entry(&secret, &entry).expect("open").as_slice(),
            b"share bytes"
        );
        let other = BackupSecretKey::generate(&mut rng);
        assert!(matches!(
            open_entry(&other, &entry),
            Err(BackupError::Open {
                node_id: 2,
                epoch: 3,
                ..
            })
        ));
        // Keys round-trip through hex; the secret is never printed.
        let again = BackupSecretKey::from_hex(&secret.to_hex()).expect("hex");
        assert_eq!(again.public_key(), secret.public_key());
        assert_eq!(
            BackupPublicKey::from_hex(&format!(" {} \n", secret.public_key().to_hex())),
            Ok(secret.public_key())
        );
        assert!(!format!("{secret:?}").contains(secret.to_hex().as_str()));
        assert!(BackupPublicKey::from_hex("abcd").is_err());
        assert!(BackupPublicKey::from_hex(&"00".repeat(32)).is_err());
        assert!(BackupSecretKey::from_hex("zz").is_err());
    }

    #[test]
    fn every_authenticated_field_and_the_ciphertext_are_bound() {
        let mut rng = rng();
        let secret = BackupSecretKey::generate(&mut rng);
        let entry = seal_entry(&secret.public_key(), label(), b"share", &mut rng).expect("seal");
        type Change = fn(&mut pb::BackupEntry);
        let tampered: Vec<(&str, Change)> = vec![
            ("key id", |e| e.key_id = "key-b".into()),
            ("epoch", |e| e.epoch = 4),
            ("node id", |e| e.node_id = 3),
            ("scheme", |e| e.scheme = pb::Scheme::FrostTaproot as i32),
            ("public key", |e| e.public_key[5] ^= 1),
            ("verifying share", |e| e.verifying_share[0] ^= 1),
            ("package", |e| e.public_key_package[89] ^= 1),
            ("ciphertext", |e| e.ciphertext[0] ^= 1),
            ("encapped key", |e| e.encapped_key[0] ^= 1),
            ("truncated", |e| e.ciphertext.truncate(3)),
        ];
        for (what, change) in tampered {
            let mut altered = entry.clone();
            change(&mut altered);
            assert!(
                matches!(open_entry(&secret, &altered), Err(BackupError::Open { .. })),
                "{what}"
            );
        }
        // An unknown scheme is malformed, not merely unopenable.
        let mut altered = entry.clone();
        altered.scheme = 99;
        assert!(matches!(
            open_entry(&secret, &altered),
            Err(BackupError::Malformed(_))
        ));
    }

    #[test]
    fn the_associated_data_is_unambiguous() {
        // Moving bytes between length-prefixed fields changes the AAD.
        let a = label();
        let mut b = label();
        b.key_id = "key-".into();
        b.public_key.insert(0, b'a');
        assert_ne!(entry_aad(&a), entry_aad(&b));
        let aad = entry_aad(&a).expect("aad");
        assert_eq!(aad[0], AAD_VERSION);
        assert_eq!(&aad[1..5], &5u32.to_be_bytes());
        assert!(aad.ends_with(&Sha256::digest(&a.public_key_package)));
    }

    #[test]
    fn a_restore_refuses_another_key_node_or_epoch_before_opening() {
        let mut rng = rng();
        let secret = BackupSecretKey::generate(&mut rng);
        let entry = seal_entry(&secret.public_key(), label(), b"share", &mut rng).expect("seal");
        let key = CurrentKey {
            key_id: "key-a",
            scheme: Scheme::FrostSecp256k1,
            epoch: 4,
            public_key: &[2; 33],
            public_key_package: &[5; 90],
            participants: &[1, 2, 3],
        };
        assert_eq!(
            restore_share(&secret, &entry, 2, &key)
                .expect_err("older")
                .to_string(),
            "backup of epoch 3, key key-a is at epoch 4 (an older epoch: its shares were retired; take a new backup)"
        );
        assert!(matches!(
            restore_share(&secret, &entry, 1, &key),
            Err(BackupError::Mismatch { .. })
        ));
        let current = CurrentKey { epoch: 3, ..key };
        // The label matches; the plaintext is no share.
        assert!(matches!(
            restore_share(&secret, &entry, 2, &current),
            Err(BackupError::Share { .. })
        ));
        let other_package = CurrentKey {
            epoch: 3,
            public_key_package: &[6; 90],
            ..key
        };
        assert!(matches!(
            restore_share(&secret, &entry, 2, &other_package),
            Err(BackupError::Mismatch { .. })
        ));
    }

    #[test]
    fn the_file_form_round_trips() {
        let mut rng = rng();
        let secret = BackupSecretKey::generate(&mut rng);
        let entry = seal_entry(&secret.public_key(), label(), b"share", &mut rng).expect("seal");
        let backup = pb::NodeBackup {
            node_id: 2,
            recipient: secret.public_key().as_bytes().to_vec(),
            created_at: "2026-01-01T00:00:00Z".into(),
            entries: vec![entry],
        };
        let file = BackupFile::from_wire(&backup).expect("file");
        assert_eq!(file.entries[0].scheme, "frost-secp256k1");
        let json = serde_json::to_string(&file).expect("json");
        let back: BackupFile = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.to_wire().expect("wire"), backup);
        assert!(back.entry("key-a").is_some());
        let mut wrong = back.clone();
        wrong.format = "other".into();
        assert!(matches!(wrong.to_wire(), Err(BackupError::Malformed(_))));
    }
}
