//! Signing TRON transactions: the digest, the 65-byte signature TRON nodes
//! take, and the signed transaction (protobuf and broadcast JSON).
//!
//! - The digest ECDSA signs is SHA-256 of the `raw_data` bytes
//!   ([`signing_hash`]); the same 32 bytes, in hex, are the transaction id
//!   (`txID`).
//! - A signature is `r ‖ s ‖ v`, 65 bytes, low-S, with
//!   **`v = 27 + recovery id`** (`0x1b` / `0x1c`): what tronweb writes
//!   (`ECKeySign` in tronweb's `src/utils/crypto.ts`:
//!   `v = signature.recovery + 27`). java-tron accepts both that and the
//!   bare recovery id 0/1 its own `ECDSASignature.toByteArray` writes
//!   (`TransactionCapsule.getBase64FromByteString`: `if (v < 27) v += 27`),
//!   and mainnet holds both; Sigil writes 27/28 and reads both.
//! - [`signed_transaction`] wraps `raw_data` and the signature into a
//!   protobuf `Transaction` and the JSON `/wallet/broadcasttransaction`
//!   takes (`visible: false`: addresses and bytes in hex, field names as
//!   java-tron's `JsonFormat` prints them). java-tron rebuilds the
//!   transaction from that JSON's `raw_data` object — not from
//!   `raw_data_hex` — so every field of `raw_data` is written, and nothing
//!   else.

use k256::ecdsa::Signature;
use prost::Message;
use serde::Serialize;

use super::proto;
use super::transaction::{
    Parameter, TRANSFER_CONTRACT_TYPE_URL, TRIGGER_SMART_CONTRACT_TYPE_URL, TronAddress, TronError,
    decode_full,
};
use crate::{ChainError, RecoverableSignature, sha256};

/// SHA-256 of `raw_data`: the digest ECDSA signs, and the transaction id.
pub fn signing_hash(raw_data: &[u8]) -> [u8; 32] {
    sha256(raw_data)
}

/// The transaction id (`txID`): lowercase hex of [`signing_hash`].
pub fn transaction_id(raw_data: &[u8]) -> String {
    hex::encode(signing_hash(raw_data))
}

/// The 65-byte `r ‖ s ‖ v` TRON signature of a 64-byte `r ‖ s` with its
/// recovery id (0 or 1): low-S normalized (the recovery id flips with `s`),
/// `v = 27 + recovery id` (see the module docs).
pub fn tron_signature(signature64: &[u8; 64], recovery_id: u8) -> Result<[u8; 65], TronError> {
    if recovery_id > 1 {
        return Err(TronError::InvalidSignature(format!(
            "recovery id {recovery_id} (must be 0 or 1)"
        )));
    }
    let signature = Signature::from_slice(signature64).map_err(|_| {
        TronError::InvalidSignature("r or s is zero or not below the group order".into())
    })?;
    let (signature, recovery_id) = match signature.normalize_s() {
        Some(low) => (low, recovery_id ^ 1),
        None => (signature, recovery_id),
    };
    let (r, s) = signature.split_bytes();
    Ok(RecoverableSignature {
        r: r.into(),
        s: s.into(),
        recovery_id,
    }
    .to_rsv_bytes())
}

/// The TRON signature of a threshold signature `r ‖ s` over `raw_data` by
/// `public_key` (SEC1): low-S normalized and its recovery id found by
/// [`RecoverableSignature::from_prehash`]. Fails unless it verifies.
pub fn tron_signature_for_key(
    public_key: &[u8],
    raw_data: &[u8],
    signature64: &[u8; 64],
) -> Result<[u8; 65], TronError> {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&signature64[..32]);
    s.copy_from_slice(&signature64[32..]);
    let signature =
        RecoverableSignature::from_prehash(public_key, &signing_hash(raw_data), &r, &s)?;
    Ok(signature.to_rsv_bytes())
}

/// The address (`T…`) whose key made `signature65` over `raw_data`, read
/// as TRON nodes read it: `v` 27/28 or 0/1, and high-S signatures too
/// (java-tron does not require low-S, and mainnet holds high-S
/// signatures; Sigil never writes them).
pub fn recover_address(raw_data: &[u8], signature65: &[u8; 65]) -> Result<String, TronError> {
    Ok(recover(raw_data, &read_signature(signature65)?)?.to_base58())
}

/// A 65-byte TRON signature, low-S normalized (`was_high_s` tells).
struct ReadSignature {
    low_s: RecoverableSignature,
    was_high_s: bool,
}

fn read_signature(signature65: &[u8; 65]) -> Result<ReadSignature, TronError> {
    let recovery_id = match signature65[64] {
        v @ (0 | 1) => v,
        v @ (27 | 28) => v - 27,
        v => {
            return Err(TronError::InvalidSignature(format!(
                "v is {v} (TRON takes 27/28 or 0/1)"
            )));
        }
    };
    let signature = Signature::from_slice(&signature65[..64]).map_err(|_| {
        TronError::InvalidSignature("r or s is zero or not below the group order".into())
    })?;
    let (signature, recovery_id, was_high_s) = match signature.normalize_s() {
        Some(low) => (low, recovery_id ^ 1, true),
        None => (signature, recovery_id, false),
    };
    let (r, s) = signature.split_bytes();
    Ok(ReadSignature {
        low_s: RecoverableSignature {
            r: r.into(),
            s: s.into(),
            recovery_id,
        },
        was_high_s,
    })
}

fn recover(raw_data: &[u8], signature: &ReadSignature) -> Result<TronAddress, TronError> {
    let account = signature.low_s.recover_address(&signing_hash(raw_data))?;
    Ok(TronAddress::from_account(&account))
}

/// A signed TRON transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTronTransaction {
    /// The protobuf `Transaction { raw_data, signature: [signature] }`.
    pub raw: Vec<u8>,
    /// The transaction id: hex of SHA-256 of `raw_data`.
    pub txid: String,
    /// The body of `POST /wallet/broadcasttransaction` (`visible: false`).
    pub json: String,
}

/// Puts `raw_data` and its signature together. `raw_data` must decode
/// ([`super::decode_raw_data`]; expiration is not checked) and
/// `signature65` must be a low-S signature (`v` 27/28 or 0/1, kept as
/// given) that recovers to the transaction's owner.
pub fn signed_transaction(
    raw_data: &[u8],
    signature65: &[u8; 65],
) -> Result<SignedTronTransaction, TronError> {
    let (tx, raw, parameter) = decode_full(raw_data)?;
    let signature = read_signature(signature65)?;
    if signature.was_high_s {
        return Err(TronError::InvalidSignature(
            "s is not low (Sigil writes low-S signatures only)".into(),
        ));
    }
    let signer = recover(raw_data, &signature)?;
    if signer != tx.owner() {
        return Err(TronError::InvalidSignature(format!(
            "it recovers to {signer}, not to the owner {}",
            tx.owner()
        )));
    }
    let txid = transaction_id(raw_data);
    let signature_hex = hex::encode(signature65);
    let json = broadcast_json(&raw, &parameter, raw_data, &txid, &signature_hex)?;
    let raw = proto::Transaction {
        raw_data: Some(raw),
        signature: vec![signature65.to_vec()],
        ret: Vec::new(),
    }
    .encode_to_vec();
    Ok(SignedTronTransaction { raw, txid, json })
}

// The broadcast JSON, field by field as java-tron's `Util.printTransactionToJSON`
// / `JsonFormat` write them with `visible: false` (and as `packTransaction`
// reads them back): proto field names, bytes in lowercase hex, int64 as
// JSON numbers, enum values by name, default values omitted.

#[derive(Serialize)]
struct JsonTransaction<'a> {
    visible: bool,
    #[serde(rename = "txID")]
    tx_id: &'a str,
    raw_data: JsonRaw,
    raw_data_hex: String,
    signature: [&'a str; 1],
}

#[derive(Serialize)]
struct JsonRaw {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    contract: [JsonContract; 1],
    ref_block_bytes: String,
    #[serde(skip_serializing_if = "is_zero")]
    ref_block_num: i64,
    ref_block_hash: String,
    #[serde(skip_serializing_if = "is_zero")]
    expiration: i64,
    #[serde(skip_serializing_if = "is_zero")]
    fee_limit: i64,
    #[serde(skip_serializing_if = "is_zero")]
    timestamp: i64,
}

#[derive(Serialize)]
struct JsonContract {
    parameter: JsonParameter,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "Permission_id", skip_serializing_if = "is_zero32")]
    permission_id: i32,
}

#[derive(Serialize)]
struct JsonParameter {
    value: JsonValue,
    type_url: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonValue {
    Transfer {
        owner_address: String,
        to_address: String,
        amount: i64,
    },
    Trigger {
        owner_address: String,
        contract_address: String,
        #[serde(skip_serializing_if = "is_zero")]
        call_value: i64,
        data: String,
    },
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero32(v: &i32) -> bool {
    *v == 0
}

fn broadcast_json(
    raw: &proto::transaction::Raw,
    parameter: &Parameter,
    raw_data: &[u8],
    txid: &str,
    signature_hex: &str,
) -> Result<String, TronError> {
    let permission_id = raw.contract.first().map_or(0, |c| c.permission_id);
    let (value, kind, type_url) = match parameter {
        Parameter::Transfer(p) => (
            JsonValue::Transfer {
                owner_address: hex::encode(&p.owner_address),
                to_address: hex::encode(&p.to_address),
                amount: p.amount,
            },
            "TransferContract",
            TRANSFER_CONTRACT_TYPE_URL,
        ),
        Parameter::Trigger(p) => (
            JsonValue::Trigger {
                owner_address: hex::encode(&p.owner_address),
                contract_address: hex::encode(&p.contract_address),
                call_value: p.call_value,
                data: hex::encode(&p.data),
            },
            "TriggerSmartContract",
            TRIGGER_SMART_CONTRACT_TYPE_URL,
        ),
    };
    let json = JsonTransaction {
        visible: false,
        tx_id: txid,
        raw_data: JsonRaw {
            data: (!raw.data.is_empty()).then(|| hex::encode(&raw.data)),
            contract: [JsonContract {
                parameter: JsonParameter { value, type_url },
                kind,
                permission_id,
            }],
            ref_block_bytes: hex::encode(&raw.ref_block_bytes),
            ref_block_num: raw.ref_block_num,
            ref_block_hash: hex::encode(&raw.ref_block_hash),
            expiration: raw.expiration,
            fee_limit: raw.fee_limit,
            timestamp: raw.timestamp,
        },
        raw_data_hex: hex::encode(raw_data),
        signature: [signature_hex],
    };
    serde_json::to_string(&json)
        .map_err(|e| TronError::Chain(ChainError::Encoding(format!("broadcast JSON: {e}"))))
}
