//! Verification of the signed objects of `sigil.v1` against a cluster's
//! trust anchors: intents (by their requester), approvals (by approvers)
//! and policy documents (by officers). Node and coordinator call the same
//! functions; the node decides on its own, the coordinator only to give an
//! early, clear error.
//!
//! Every object is verified over its bytes exactly as received (prefixed
//! with its domain, [`crate::domain`]); nothing is re-serialized. Each
//! signer's certificate chain must verify against the verifier's own CA
//! bundle and name a client identity of its trust domain.

use std::collections::BTreeSet;

use sigil_proto::v1 as pb;
use sigil_tls::signing::PeerKey;
use sigil_tls::{Identity, ReloadableTls};

use crate::intent::{IntentError, IntentLimits, check_intent, check_matches, decode_intent};
use crate::payload::{KeyView, Parsed, parse};

/// Why a signed object was refused, by the gRPC code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No valid signature by an allowed identity: `PERMISSION_DENIED`.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid, but not usable here and now (expired, another key): `FAILED_PRECONDITION`.
    #[error("{0}")]
    Refused(String),
    /// A policy rule refuses it: `FAILED_PRECONDITION`.
    #[error("{reason} (rule {rule})")]
    Denied { rule: String, reason: String },
    /// The payload is malformed or not what this key can sign: `INVALID_ARGUMENT`.
    #[error("{0}")]
    Invalid(String),
}

/// An intent whose requester signature, approvals and payload verified.
#[derive(Debug, Clone)]
pub struct VerifiedIntent {
    pub intent: pb::Intent,
    /// SHA-256 of the intent bytes (what approvals and receipts sign).
    pub sha256: [u8; 32],
    /// Client name of the requester.
    pub requester: String,
    /// Client names of the approvers whose approvals verified, deduplicated.
    pub approvers: Vec<String>,
    pub parsed: Parsed,
}

/// The client name and verified key of a chain whose leaf names a client.
pub fn client_of_chain(
    tls: &ReloadableTls,
    chain: &[Vec<u8>],
    what: &str,
) -> Result<(String, PeerKey), Refusal> {
    let leaf = chain
        .first()
        .ok_or_else(|| Refusal::Unauthorized(format!("{what}: no certificate chain")))?;
    let identity = Identity::from_certificate(leaf, tls.domain())
        .map_err(|e| Refusal::Unauthorized(format!("{what}: {e}")))?;
    let Identity::Client(name) = identity.clone() else {
        return Err(Refusal::Unauthorized(format!(
            "{what}: {identity} is not a client identity"
        )));
    };
    let key = tls.verify_peer_chain(chain, &identity).map_err(|e| {
        Refusal::Unauthorized(format!("{what} by {name}: certificate refused: {e}"))
    })?;
    Ok((name, key))
}

/// Verifies one approval of the intent with hash `intent_sha256`; returns the approver's client name.
pub fn verify_approval(
    tls: &ReloadableTls,
    approval: &pb::Approval,
    intent_sha256: &[u8; 32],
) -> Result<String, Refusal> {
    let (name, key) = client_of_chain(tls, &approval.certificate_chain, "approval")?;
    if !key.verify(
        &crate::domain::approval_signing_bytes(intent_sha256),
        &approval.signature,
    ) {
        return Err(Refusal::Unauthorized(format!(
            "approval by {name} does not verify for this intent"
        )));
    }
    Ok(name)
}

/// Verifies a signed intent for `key_id` at `now_ms` and parses its payload
/// for `subject` (the key signed with) at the intent's derivation path.
pub fn verify_signed_intent(
    tls: &ReloadableTls,
    signed: Option<&pb::SignedIntent>,
    key_id: &str,
    subject: KeyView<'_>,
    limits: &IntentLimits,
    now_ms: u64,
) -> Result<VerifiedIntent, Refusal> {
    let signed = signed.ok_or_else(|| {
        Refusal::Unauthorized("a signed intent from the requester is required".into())
    })?;
    let intent = decode_intent(&signed.intent)
        .map_err(|e| Refusal::Unauthorized(format!("malformed intent: {e}")))?;
    let identity = Identity::from_uri(&intent.requester, tls.domain())
        .map_err(|e| Refusal::Unauthorized(format!("intent requester: {e}")))?;
    let Identity::Client(requester) = identity.clone() else {
        return Err(Refusal::Unauthorized(format!(
            "intent requester {identity} is not a client identity"
        )));
    };
    let key = tls
        .verify_peer_chain(&signed.certificate_chain, &identity)
        .map_err(|e| Refusal::Unauthorized(format!("requester certificate refused: {e}")))?;
    if !key.verify(
        &crate::domain::intent_signing_bytes(&signed.intent),
        &signed.signature,
    ) {
        return Err(Refusal::Unauthorized(format!(
            "intent signature of {requester} does not verify"
        )));
    }
    check_intent(&intent, now_ms, limits).map_err(|e| match e {
        IntentError::Expired { .. } | IntentError::WindowTooLong { .. } => {
            Refusal::Refused(e.to_string())
        }
        malformed => Refusal::Unauthorized(format!("malformed intent: {malformed}")),
    })?;
    // The path is the caller's to compare (ReserveSpend has none of its own).
    check_matches(&intent, key_id, &intent.derivation_path)
        .map_err(|e| Refusal::Refused(e.to_string()))?;
    let sha256 = crate::domain::intent_sha256(&signed.intent);
    let mut approvers = BTreeSet::new();
    for approval in &signed.approvals {
        approvers.insert(verify_approval(tls, approval, &sha256)?);
    }
    let payload = intent
        .payload
        .as_ref()
        .ok_or_else(|| Refusal::Invalid("payload: the intent carries no payload".into()))?;
    let parsed = parse(&subject.at(&intent.derivation_path), payload)
        .map_err(|e| Refusal::Invalid(format!("payload: {e}")))?;
    Ok(VerifiedIntent {
        intent,
        sha256,
        requester,
        approvers: approvers.into_iter().collect(),
        parsed,
    })
}

/// Verifies every officer signature of a policy document; returns the
/// signers' client names (governance then counts the officers among them).
pub fn verify_officer_signatures(
    tls: &ReloadableTls,
    signed: &pb::SignedPolicy,
) -> Result<Vec<String>, Refusal> {
    let bytes = crate::domain::policy_signing_bytes(&signed.document);
    verify_signatures_over(tls, &bytes, &signed.signatures)
}

/// Verifies every officer signature of a key operation document; returns
/// the signers' client names (see [`crate::operation::check_operation`]).
pub fn verify_operation_signatures(
    tls: &ReloadableTls,
    signed: &pb::SignedOperation,
) -> Result<Vec<String>, Refusal> {
    let bytes = crate::operation::operation_signing_bytes(&signed.document);
    verify_signatures_over(tls, &bytes, &signed.signatures)
}

fn verify_signatures_over(
    tls: &ReloadableTls,
    bytes: &[u8],
    signatures: &[pb::OfficerSignature],
) -> Result<Vec<String>, Refusal> {
    let mut names = Vec::with_capacity(signatures.len());
    for (i, s) in signatures.iter().enumerate() {
        let (name, key) = client_of_chain(tls, &s.certificate_chain, "officer signature")?;
        if !key.verify(bytes, &s.signature) {
            return Err(Refusal::Unauthorized(format!(
                "signature {i} by {name} does not verify for this document"
            )));
        }
        names.push(name);
    }
    Ok(names)
}
