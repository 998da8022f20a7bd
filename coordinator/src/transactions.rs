//! The chain-ready transaction of a signed payload: once every part of a
//! request is signed, the coordinator puts the signatures where the chain
//! wants them and returns the result beside the signatures.
//!
//! | payload | `SignedTransaction` |
//! |---|---|
//! | Ethereum transaction | `raw`: EIP-2718 signed envelope (legacy: RLP with EIP-155 `v`); `id`: `0x` transaction hash |
//! | TRON transaction | `raw`: `protocol.Transaction` with the 65-byte signature (`v` = 27 + recovery id, low-S); `id`: txID (hex); `json`: the `/wallet/broadcasttransaction` form |
//! | Solana message | `raw`: the wire transaction (the key's signature in its slot, other signers' slots zero); `base64`: `raw` for `sendTransaction`; `id`: the first signature (Base58) when the key is the fee payer |
//! | Bitcoin PSBT | `psbt`: the PSBT with every input finalized (base64); `raw`: the consensus-encoded transaction; `id`: txid |
//! | messages, digests, EIP-712 | none |
//!
//! Nothing here is trusted by anyone: the signatures are the nodes'
//! threshold signatures over what each node computed from the intent, and
//! each assembly checks them against the key again (a PSBT signature
//! against its input's sighash, an Ethereum signature by recovery).

use sigil_chains::bitcoin::psbt;
use sigil_policy::KeyView;
use sigil_proto::v1 as pb;

use crate::CoordinatorError;
use crate::intents::SignJob;

/// The signed transaction for `job`'s payload, if it is one.
pub fn assemble(
    job: &SignJob,
    parts: &[pb::PartSignature],
) -> Result<Option<pb::SignedTransaction>, CoordinatorError> {
    use pb::payload::Kind;
    let Some(kind) = job
        .verified
        .intent
        .payload
        .as_ref()
        .and_then(|p| p.kind.as_ref())
    else {
        return Ok(None);
    };
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        // The nodes' signatures verified when aggregated: a failure here is ours.
        CoordinatorError::Config(format!("assembling the signed {what}: {e}"))
    };
    match kind {
        Kind::EthereumTransaction(unsigned) => {
            let Some(first) = parts.first() else {
                return Ok(None);
            };
            let signed = sigil_chains::evm::signed_transaction(
                unsigned,
                &first.public_key,
                &first.signature,
            )
            .map_err(|e| failed("Ethereum transaction", &e))?;
            Ok(Some(pb::SignedTransaction {
                raw: signed.raw,
                id: format!("0x{}", hex::encode(signed.hash)),
                ..Default::default()
            }))
        }
        Kind::BitcoinPsbt(payload) => {
            let key = KeyView::new(job.scheme, &job.key.public_key, &job.key.public_key_package)
                .at(&job.verified.intent.derivation_path);
            let signing = sigil_policy::payload::bitcoin::signing_key(&key)
                .map_err(|e| failed("PSBT", &e))?;
            let (network, _) = sigil_policy::payload::bitcoin::network(&payload.network)
                .map_err(|e| failed("PSBT", &e))?;
            let decoded = psbt::decode_psbt(&payload.psbt).map_err(|e| failed("PSBT", &e))?;
            let summary =
                psbt::analyze(&decoded, &signing, network).map_err(|e| failed("PSBT", &e))?;
            let mut signatures = Vec::with_capacity(parts.len());
            for (input, part) in summary.inputs.iter().zip(parts) {
                let sig =
                    psbt::psbt_signature(input, &part.signature).map_err(|e| failed("PSBT", &e))?;
                signatures.push((input.index, sig));
            }
            let (signed, raw) =
                psbt::finalize(&decoded, &signing, &signatures).map_err(|e| failed("PSBT", &e))?;
            Ok(Some(pb::SignedTransaction {
                raw: raw.unwrap_or_default(),
                id: summary.txid,
                psbt: psbt::to_base64(&signed),
                ..Default::default()
            }))
        }
        Kind::Eip191Message(_)
        | Kind::RawMessage(_)
        | Kind::RawDigest(_)
        | Kind::Eip712TypedData(_) => Ok(None),
        Kind::TronTransaction(tx) => {
            let Some(first) = parts.first() else {
                return Ok(None);
            };
            let signature: [u8; 64] = first
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| failed("TRON transaction", &"not a 64-byte signature"))?;
            let sig65 = sigil_chains::tron::tron_signature_for_key(
                &first.public_key,
                &tx.raw_data,
                &signature,
            )
            .map_err(|e| failed("TRON transaction", &e))?;
            let signed = sigil_chains::tron::signed_transaction(&tx.raw_data, &sig65)
                .map_err(|e| failed("TRON transaction", &e))?;
            Ok(Some(pb::SignedTransaction {
                raw: signed.raw,
                id: signed.txid,
                json: signed.json,
                ..Default::default()
            }))
        }
        Kind::SolanaMessage(message) => {
            let Some(first) = parts.first() else {
                return Ok(None);
            };
            let key: [u8; 32] = job
                .key
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| failed("Solana transaction", &"not a 32-byte Ed25519 key"))?;
            let signature: [u8; 64] = first
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| failed("Solana transaction", &"not a 64-byte signature"))?;
            let signed =
                sigil_chains::solana::signed_transaction(&message.message, &key, &signature)
                    .map_err(|e| failed("Solana transaction", &e))?;
            Ok(Some(pb::SignedTransaction {
                raw: signed.raw,
                // The fee payer's signature names the transaction: unknown
                // until it signs, when the key is not the fee payer.
                id: signed.id.unwrap_or_default(),
                base64: signed.base64,
                ..Default::default()
            }))
        }
    }
}
