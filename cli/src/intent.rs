//! Signing what Sigil's nodes verify, with a client identity's own
//! certificate key: a payment service's intents, an approver's approvals
//! and a security officer's signature over a policy document.
//!
//! The signed bytes are exactly the serialized protobuf (or document) that
//! travels, under the domain prefixes of [`sigil_policy::domain`]; see
//! `docs/policy.md`. The CLI, the load generator and the test harness all
//! sign through [`Signer`], so what they send is what any client in any
//! language would send.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::engine::Encoding;
use sigil_tls::signing::IdentityKey;
use sigil_tls::{ReloadableTls, TlsError, TlsFiles, TrustDomain};

/// The default validity of an intent (well inside the nodes' 10-minute window).
pub const DEFAULT_INTENT_TTL: Duration = Duration::from_secs(300);

/// A client identity that signs intents, approvals or policy documents.
#[derive(Debug, Clone)]
pub struct Signer {
    key: Arc<IdentityKey>,
    uri: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Signer {
    /// Loads the certificate and key of a client identity.
    pub fn load(files: &TlsFiles, domain: &TrustDomain) -> Result<Self, TlsError> {
        sigil_tls::install_crypto_provider();
        let tls = ReloadableTls::load(files.clone(), domain.clone())?;
        Self::from_tls(&tls)
    }

    /// The identity of already loaded TLS material.
    pub fn from_tls(tls: &ReloadableTls) -> Result<Self, TlsError> {
        let uri = tls.identity().to_uri(tls.domain());
        Ok(Self {
            key: tls.identity_key()?,
            uri,
        })
    }

    /// `spiffe://<domain>/client/<name>`.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn chain(&self) -> Vec<Vec<u8>> {
        self.key
            .chain()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    }

    /// Signs an intent exactly as given (its `requester` should be [`Self::uri`]).
    pub fn sign_intent(&self, intent: &pb::Intent) -> Result<pb::SignedIntent, TlsError> {
        let bytes = intent.encode_to_vec();
        let signature = self.key.sign(&sigil_policy::intent_signing_bytes(&bytes))?;
        Ok(pb::SignedIntent {
            intent: bytes,
            signature,
            certificate_chain: self.chain(),
            approvals: Vec::new(),
        })
    }

    /// Builds and signs an intent for `payload`, valid for `ttl`, with a fresh intent id.
    pub fn intent(
        &self,
        key_id: &str,
        derivation_path: &str,
        payload: pb::payload::Kind,
        idempotency_key: &str,
        ttl: Duration,
    ) -> Result<pb::SignedIntent, TlsError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.sign_intent(&pb::Intent {
            intent_id: uuid::Uuid::new_v4().to_string(),
            requester: self.uri.clone(),
            key_id: key_id.to_owned(),
            derivation_path: derivation_path.to_owned(),
            payload: Some(pb::Payload {
                kind: Some(payload),
            }),
            idempotency_key: idempotency_key.to_owned(),
            not_after_unix_ms: now_ms().saturating_add(ttl_ms),
        })
    }

    /// A sign request carrying only a signed intent (what is signed comes from it).
    pub fn sign_request(
        &self,
        key_id: &str,
        derivation_path: &str,
        payload: pb::payload::Kind,
        idempotency_key: &str,
    ) -> Result<pb::SignRequest, TlsError> {
        Ok(pb::SignRequest {
            intent: Some(self.intent(
                key_id,
                derivation_path,
                payload,
                idempotency_key,
                DEFAULT_INTENT_TTL,
            )?),
            ..Default::default()
        })
    }

    /// An approval of the intent `signed`.
    pub fn approve(&self, signed: &pb::SignedIntent) -> Result<pb::Approval, TlsError> {
        let sha = sigil_policy::intent_sha256(&signed.intent);
        Ok(pb::Approval {
            signature: self.key.sign(&sigil_policy::approval_signing_bytes(&sha))?,
            certificate_chain: self.chain(),
        })
    }

    /// An officer's signature over a key operation document's bytes.
    pub fn sign_operation(&self, document: &[u8]) -> Result<pb::OfficerSignature, TlsError> {
        Ok(pb::OfficerSignature {
            signature: self
                .key
                .sign(&sigil_policy::operation_signing_bytes(document))?,
            certificate_chain: self.chain(),
        })
    }

    /// An officer's signature over a policy document's bytes.
    pub fn sign_policy(&self, document: &[u8]) -> Result<pb::OfficerSignature, TlsError> {
        Ok(pb::OfficerSignature {
            signature: self
                .key
                .sign(&sigil_policy::policy_signing_bytes(document))?,
            certificate_chain: self.chain(),
        })
    }
}

/// The payload of an opaque message as the pre-intent API expressed it:
/// FROST signs `message` raw; ECDSA signs a 32-byte digest (`Raw`) or hashes
/// `message` with `encoding`.
pub fn raw_payload(scheme: Scheme, message: &[u8], encoding: Encoding) -> pb::payload::Kind {
    match (scheme, encoding) {
        (Scheme::EcdsaSecp256k1, Encoding::Raw) => pb::payload::Kind::RawDigest(message.to_vec()),
        _ => pb::payload::Kind::RawMessage(pb::RawMessage {
            message: message.to_vec(),
            encoding: sigil_proto::convert::encoding_to_wire(encoding) as i32,
        }),
    }
}

/// How long an officer authorization written by the CLI stays valid.
pub const OPERATION_TTL: Duration = Duration::from_secs(600);

/// A key operation of `kind` on `key` at its current epoch, for the new
/// `participants` and `threshold`, valid for [`OPERATION_TTL`], with a fresh nonce.
pub fn key_operation(
    kind: sigil_policy::OperationKind,
    key: &pb::KeyInfo,
    participants: Vec<u16>,
    threshold: u16,
) -> sigil_policy::KeyOperation {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sigil_policy::KeyOperation {
        operation: kind,
        key_id: key.key_id.clone(),
        from_epoch: key.epoch,
        new_participants: participants,
        new_threshold: threshold,
        not_after: now + OPERATION_TTL.as_secs(),
        nonce: hex::encode(rand::random::<[u8; 16]>()),
    }
}

/// Why the officers' signatures could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError {
    #[error("officer identity {officer}: {source}")]
    Identity {
        officer: String,
        source: crate::local::LocalError,
    },
    #[error("signing as {officer}: {source}")]
    Sign { officer: String, source: TlsError },
}

/// `op`'s document signed by each of `officers` (client identities in `data_dir`).
pub fn sign_key_operation(
    data_dir: &std::path::Path,
    op: &sigil_policy::KeyOperation,
    officers: &[impl AsRef<str>],
) -> Result<pb::SignedOperation, AuthorizationError> {
    sign_key_operation_with(op, officers, |officer| {
        crate::connect::ClientContext::load(data_dir, officer)
    })
}

/// `op`'s document signed by each of `officers`, whose identities `load`
/// finds by name.
pub fn sign_key_operation_with(
    op: &sigil_policy::KeyOperation,
    officers: &[impl AsRef<str>],
    load: impl Fn(&str) -> Result<crate::connect::ClientContext, crate::local::LocalError>,
) -> Result<pb::SignedOperation, AuthorizationError> {
    let document = op.to_document_bytes();
    let signatures = officers
        .iter()
        .map(|officer| {
            let officer = officer.as_ref();
            let client = load(officer).map_err(|source| AuthorizationError::Identity {
                officer: officer.to_owned(),
                source,
            })?;
            Signer::from_tls(&client.tls)
                .and_then(|s| s.sign_operation(&document))
                .map_err(|source| AuthorizationError::Sign {
                    officer: officer.to_owned(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pb::SignedOperation {
        document,
        signatures,
    })
}
