//! The signed wire transaction: the message with the key's signature in its
//! slot ([`signed_transaction`]).
//!
//! A Solana transaction is a compact-u16 count of signatures, the
//! signatures in the order of the message's required signers, then the
//! message bytes. It is built as a `solana_transaction::VersionedTransaction`
//! and encoded with wincode, as the Solana crates encode it; the slots of
//! other signers hold zero signatures (`Signature::default()`) for them to
//! fill.

use base64::Engine as _;
use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;

use super::SolanaError;
use super::message::{parse, signer_slot};

/// A signed (possibly partially signed) Solana transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedSolanaTransaction {
    /// The wire transaction (what `sendTransaction` takes, base64-encoded).
    pub raw: Vec<u8>,
    /// [`Self::raw`] in standard base64.
    pub base64: String,
    /// The transaction id: the Base58 first signature, the fee payer's.
    /// `None` when the key is not the fee payer (the id is the fee payer's
    /// signature, not known yet).
    pub id: Option<String>,
    /// How many signatures other than the key's the transaction still needs
    /// (zero slots).
    pub missing_signatures: usize,
}

/// Puts `signature`, by `key`, into the transaction of `message` (the
/// message bytes exactly as signed).
///
/// The message is decoded and checked as [`super::decode_message`] does
/// (lookup tables' contents are not needed: only static keys sign), `key`
/// must be one of its required signers, and `signature` must verify for
/// `key` over the message (strict RFC 8032 verification, as Solana's).
pub fn signed_transaction(
    message: &[u8],
    key: &[u8; 32],
    signature: &[u8; 64],
) -> Result<SignedSolanaTransaction, SolanaError> {
    let parsed = parse(message)?;
    let signers = parsed
        .static_account_keys()
        .get(..usize::from(parsed.header().num_required_signatures))
        .unwrap_or_default();
    let slot = signer_slot(signers, key)?;
    let num_signers = signers.len();
    VerifyingKey::from_bytes(key)
        .and_then(|k| k.verify_strict(message, &DalekSignature::from_bytes(signature)))
        .map_err(|_| {
            SolanaError::InvalidSignature(
                "the signature does not verify for the key over the message".into(),
            )
        })?;

    let mut signatures = vec![Signature::default(); num_signers];
    if let Some(s) = signatures.get_mut(slot.index) {
        *s = Signature::from(*signature);
    }
    let transaction = VersionedTransaction {
        signatures,
        message: parsed,
    };
    let raw = wincode::serialize(&transaction).map_err(|e| SolanaError::Encoding(e.to_string()))?;
    if !raw.ends_with(message) {
        return Err(SolanaError::Encoding(
            "the encoded transaction does not end with the message as signed".into(),
        ));
    }
    Ok(SignedSolanaTransaction {
        base64: base64::engine::general_purpose::STANDARD.encode(&raw),
        id: slot
            .is_fee_payer
            .then(|| bs58::encode(signature).into_string()),
        missing_signatures: num_signers.saturating_sub(1),
        raw,
    })
}
