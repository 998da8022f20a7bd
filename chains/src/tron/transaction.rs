//! Unsigned TRON transactions: decoding `Transaction.raw` (the
//! `raw_data` a node or wallet builds) into what it does, exactly.
//!
//! [`decode_raw_data`] reads the protobuf with the prost types of TRON's own
//! definitions ([`super::proto`]) and accepts only what it understands
//! exactly:
//!
//! | `raw_data` | accepted |
//! |---|---|
//! | empty, not protobuf | no |
//! | not the canonical encoding (see below) | no |
//! | contracts | exactly one |
//! | `TransferContract` (TRX transfer) | owner, recipient, amount > 0 sun |
//! | `TriggerSmartContract` | owner, contract, call data ≥ 4 bytes; no TRC-10 value (`call_token_value`, `token_id`) |
//! | any other contract type | no |
//! | `parameter` (`google.protobuf.Any`) | its `type_url` must be `type.googleapis.com/protocol.<contract type>` |
//! | addresses | 21 bytes, `0x41` ‖ 20-byte account |
//! | `ref_block_bytes` / `ref_block_hash` | 2 / 8 bytes (what TAPoS compares) |
//! | `fee_limit` | ≥ 0 sun |
//! | `data` (the memo) | any bytes, kept |
//! | `Permission_id` | ≥ 0, kept (the owner's permission that signs) |
//! | `auths`, `scripts`, `provider`, `ContractName` | unset (unused by TRON) |
//!
//! A `TriggerSmartContract` whose call data is exactly a TRC-20
//! `transfer(address,uint256)` — selector `a9059cbb`, 4 + 64 bytes, the
//! address word being 12 zero bytes then the 20-byte account (TRC-20 ABI
//! encodes the account *without* its `0x41` prefix), decoded strictly and
//! re-encoded to the same bytes — is a [`TronContract::Trc20Transfer`]; it
//! must move nothing besides the token (no `call_value`) and a non-zero
//! amount. Any other call (including a `transfer` whose address word is not
//! canonical, such as the `41`-prefixed words some tools write) is a
//! [`TronContract::ContractCall`], with its 4-byte selector.
//!
//! **Canonical encoding.** prost decodes leniently: it skips unknown
//! fields, keeps the last of repeated scalar fields, and accepts
//! non-minimal varints. So the decoded message (and the decoded contract
//! inside its `Any`) is re-encoded and must give the input bytes back;
//! otherwise the transaction is refused ([`TronError::NonCanonical`]). Every
//! byte that is signed is then a byte that was read, and trailing garbage,
//! unknown fields and second readings of the same bytes are all refused.
//! TRON's own encoders (java-tron, tronweb's protobuf) write this same
//! canonical form (fields in number order, defaults omitted).
//!
//! Whether the transaction is still valid ([`check_expiration`]) and
//! whether the key signs for its owner ([`check_owner`]) are separate
//! checks: decoding is independent of time and keys.

use std::fmt;

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use alloy_sol_types::abi::AbiDecoderConfig;
use prost::Message;

use super::proto::{self, transaction::contract::ContractType};
use super::{TRON_ADDRESS_PREFIX, tron_address_from_account};
use crate::ChainError;

/// The TRC-20 method Sigil reads.
mod trc20 {
    alloy_sol_types::sol! {
        /// TRC-20 (ERC-20) `transfer`.
        function transfer(address to, uint256 amount) returns (bool);
    }
}

/// The selector of TRC-20 `transfer(address,uint256)`: `a9059cbb`.
pub const TRC20_TRANSFER_SELECTOR: [u8; 4] = trc20::transferCall::SELECTOR;

/// The `type_url` of a `TransferContract` parameter.
pub const TRANSFER_CONTRACT_TYPE_URL: &str = "type.googleapis.com/protocol.TransferContract";

/// The `type_url` of a `TriggerSmartContract` parameter.
pub const TRIGGER_SMART_CONTRACT_TYPE_URL: &str =
    "type.googleapis.com/protocol.TriggerSmartContract";

/// Why a TRON transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TronError {
    #[error("the raw_data is empty")]
    Empty,
    #[error("{what} is not protobuf: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error(
        "{0} is not canonically encoded (re-encoding what it decodes to gives other bytes: unknown or repeated fields, non-minimal varints or trailing bytes)"
    )]
    NonCanonical(&'static str),
    #[error("a transaction has exactly one contract, this one has {0}")]
    ContractCount(usize),
    #[error("contract type {0} is not signed (TransferContract and TriggerSmartContract are)")]
    UnsupportedContract(String),
    #[error("the contract has no parameter")]
    MissingParameter,
    #[error("the parameter of a {contract} has type_url {got:?}, expected {expected:?}")]
    TypeUrlMismatch {
        contract: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("{field} is not a TRON address (21 bytes: 0x41 and the account): {reason}")]
    InvalidAddress { field: &'static str, reason: String },
    #[error("{field} is {value}; it must be positive")]
    NonPositiveAmount { field: &'static str, value: i64 },
    #[error("the TRC-20 transfer moves 0 tokens")]
    ZeroTokenAmount,
    #[error("the TRC-20 transfer also moves {0} (only the token may move)")]
    ValueBesidesToken(&'static str),
    #[error("TRC-10 tokens sent with a contract call ({0} is set) are not signed")]
    Trc10Value(&'static str),
    #[error("the call data is {0} bytes, shorter than a 4-byte method selector")]
    ShortCallData(usize),
    #[error("{field} is {value}; it must not be negative")]
    Negative { field: &'static str, value: i64 },
    #[error("{field} is {len} bytes, expected {expected}")]
    FieldLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{0} is set; TRON does not use it and Sigil does not sign it")]
    UnusedField(&'static str),
    #[error("the transaction expired at {expiration} ms (now {now_ms} ms)")]
    Expired { expiration: i64, now_ms: i64 },
    #[error("the transaction's owner is {owner}, but the key's TRON address is {key}")]
    WrongOwner { owner: String, key: String },
    #[error("invalid TRON signature: {0}")]
    InvalidSignature(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// A TRON address in its 21-byte form: `0x41` ‖ the 20-byte account.
/// Shown (`Display`) as Base58Check `T…`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TronAddress([u8; 21]);

impl TronAddress {
    /// The address of a 20-byte account.
    pub fn from_account(account: &[u8; 20]) -> Self {
        Self(super::tron_address_hex_bytes(account))
    }

    /// Reads the 21-byte form; `field` names it in errors.
    pub fn from_bytes(bytes: &[u8], field: &'static str) -> Result<Self, TronError> {
        let bad = |reason: String| TronError::InvalidAddress { field, reason };
        let raw: [u8; 21] = bytes
            .try_into()
            .map_err(|_| bad(format!("{} bytes", bytes.len())))?;
        if raw[0] != TRON_ADDRESS_PREFIX {
            return Err(bad(format!("prefix 0x{:02x}", raw[0])));
        }
        Ok(Self(raw))
    }

    /// The 21 bytes (`0x41` first).
    pub fn as_bytes(&self) -> &[u8; 21] {
        &self.0
    }

    /// The 20-byte account (the Ethereum address of the same key).
    pub fn account(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[1..]);
        out
    }

    /// Base58Check, `T…`.
    pub fn to_base58(&self) -> String {
        tron_address_from_account(&self.account())
    }

    /// Lowercase hex of the 21 bytes, `41…` (the `visible: false` JSON form).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base58())
    }
}

impl fmt::Debug for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TronAddress({})", self.to_base58())
    }
}

/// What the transaction's one contract does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TronContract {
    /// `TransferContract`: `amount` sun of TRX from `owner` to `to`.
    Transfer {
        owner: TronAddress,
        to: TronAddress,
        /// Sun (10⁻⁶ TRX), > 0.
        amount: i64,
    },
    /// `TriggerSmartContract` calling TRC-20 `transfer(recipient, amount)`
    /// on `token`, with no TRX or TRC-10 value.
    Trc20Transfer {
        owner: TronAddress,
        token: TronAddress,
        recipient: TronAddress,
        /// The token's base units, > 0.
        amount: U256,
    },
    /// Any other `TriggerSmartContract`.
    ContractCall {
        owner: TronAddress,
        contract: TronAddress,
        selector: [u8; 4],
        /// Sun of TRX sent to the contract with the call (≥ 0).
        call_value: i64,
        /// The whole call data (selector first).
        data: Vec<u8>,
    },
}

impl TronContract {
    /// The account that signs (and pays).
    pub fn owner(&self) -> TronAddress {
        match self {
            TronContract::Transfer { owner, .. }
            | TronContract::Trc20Transfer { owner, .. }
            | TronContract::ContractCall { owner, .. } => *owner,
        }
    }
}

/// A decoded `Transaction.raw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TronTransaction {
    pub contract: TronContract,
    /// Bytes 6..8 of the reference block's height (TAPoS).
    pub ref_block_bytes: [u8; 2],
    /// Unused by TRON's wallets; kept as read (usually 0).
    pub ref_block_num: i64,
    /// Bytes 8..16 of the reference block's hash (TAPoS).
    pub ref_block_hash: [u8; 8],
    /// Milliseconds since the Unix epoch after which no node accepts it.
    pub expiration: i64,
    /// Milliseconds since the Unix epoch when it was built (0 if unset).
    pub timestamp: i64,
    /// The most TRX (sun) a contract call may burn for energy (0 if unset).
    pub fee_limit: i64,
    /// `raw_data.data`: the memo, as bytes (empty if unset).
    pub memo: Vec<u8>,
    /// The owner's permission that signs (0: the owner permission).
    pub permission_id: i32,
}

impl TronTransaction {
    /// The account that signs (and pays).
    pub fn owner(&self) -> TronAddress {
        self.contract.owner()
    }
}

/// The decoded contract parameter, as TRON's types.
#[derive(Clone, Debug)]
pub(crate) enum Parameter {
    Transfer(proto::TransferContract),
    Trigger(proto::TriggerSmartContract),
}

/// Decodes `raw_data` (see the module docs for what is refused).
pub fn decode_raw_data(bytes: &[u8]) -> Result<TronTransaction, TronError> {
    decode_full(bytes).map(|(tx, _, _)| tx)
}

/// [`decode_raw_data`], also returning TRON's own decoded types (for the
/// broadcast JSON).
pub(crate) fn decode_full(
    bytes: &[u8],
) -> Result<(TronTransaction, proto::transaction::Raw, Parameter), TronError> {
    if bytes.is_empty() {
        return Err(TronError::Empty);
    }
    let raw = decode_exact::<proto::transaction::Raw>(bytes, "raw_data")?;
    if !raw.auths.is_empty() {
        return Err(TronError::UnusedField("raw_data.auths"));
    }
    if !raw.scripts.is_empty() {
        return Err(TronError::UnusedField("raw_data.scripts"));
    }
    let contract = match raw.contract.as_slice() {
        [one] => one,
        many => return Err(TronError::ContractCount(many.len())),
    };
    if !contract.provider.is_empty() {
        return Err(TronError::UnusedField("contract.provider"));
    }
    if !contract.contract_name.is_empty() {
        return Err(TronError::UnusedField("contract.ContractName"));
    }
    if contract.permission_id < 0 {
        return Err(TronError::Negative {
            field: "contract.Permission_id",
            value: i64::from(contract.permission_id),
        });
    }
    let kind = ContractType::try_from(contract.r#type)
        .map_err(|_| TronError::UnsupportedContract(format!("{} (unknown)", contract.r#type)))?;
    let parameter = contract
        .parameter
        .as_ref()
        .ok_or(TronError::MissingParameter)?;
    let (decoded, parameter) = match kind {
        ContractType::TransferContract => {
            check_type_url(parameter, "TransferContract", TRANSFER_CONTRACT_TYPE_URL)?;
            let p = decode_exact::<proto::TransferContract>(
                &parameter.value,
                "the TransferContract parameter",
            )?;
            (read_transfer(&p)?, Parameter::Transfer(p))
        }
        ContractType::TriggerSmartContract => {
            check_type_url(
                parameter,
                "TriggerSmartContract",
                TRIGGER_SMART_CONTRACT_TYPE_URL,
            )?;
            let p = decode_exact::<proto::TriggerSmartContract>(
                &parameter.value,
                "the TriggerSmartContract parameter",
            )?;
            (read_trigger(&p)?, Parameter::Trigger(p))
        }
        other => {
            return Err(TronError::UnsupportedContract(
                other.as_str_name().to_owned(),
            ));
        }
    };
    let ref_block_bytes = fixed::<2>(&raw.ref_block_bytes, "raw_data.ref_block_bytes")?;
    let ref_block_hash = fixed::<8>(&raw.ref_block_hash, "raw_data.ref_block_hash")?;
    if raw.fee_limit < 0 {
        return Err(TronError::Negative {
            field: "raw_data.fee_limit",
            value: raw.fee_limit,
        });
    }
    let tx = TronTransaction {
        contract: decoded,
        ref_block_bytes,
        ref_block_num: raw.ref_block_num,
        ref_block_hash,
        expiration: raw.expiration,
        timestamp: raw.timestamp,
        fee_limit: raw.fee_limit,
        memo: raw.data.clone(),
        permission_id: contract.permission_id,
    };
    Ok((tx, raw, parameter))
}

/// Refuses a transaction whose expiration is not after `now_ms`
/// (milliseconds since the Unix epoch), as nodes do.
pub fn check_expiration(tx: &TronTransaction, now_ms: i64) -> Result<(), TronError> {
    if tx.expiration <= now_ms {
        Err(TronError::Expired {
            expiration: tx.expiration,
            now_ms,
        })
    } else {
        Ok(())
    }
}

/// Refuses a transaction whose owner is not the key's TRON address
/// (`0x41` ‖ `key_account`, the key's Ethereum account): the error names
/// both addresses (`T…`).
pub fn check_owner(tx: &TronTransaction, key_account: &[u8; 20]) -> Result<(), TronError> {
    let owner = tx.owner();
    if owner.account() == *key_account {
        Ok(())
    } else {
        Err(TronError::WrongOwner {
            owner: owner.to_base58(),
            key: tron_address_from_account(key_account),
        })
    }
}

/// `M` decoded from `bytes`, if `bytes` is exactly its canonical encoding.
fn decode_exact<M: Message + Default>(bytes: &[u8], what: &'static str) -> Result<M, TronError> {
    let message = M::decode(bytes).map_err(|e| TronError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if message.encode_to_vec() != bytes {
        return Err(TronError::NonCanonical(what));
    }
    Ok(message)
}

fn check_type_url(
    parameter: &prost_types::Any,
    contract: &'static str,
    expected: &'static str,
) -> Result<(), TronError> {
    if parameter.type_url == expected {
        Ok(())
    } else {
        Err(TronError::TypeUrlMismatch {
            contract,
            expected,
            got: parameter.type_url.clone(),
        })
    }
}

fn fixed<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], TronError> {
    bytes.try_into().map_err(|_| TronError::FieldLength {
        field,
        len: bytes.len(),
        expected: N,
    })
}

fn read_transfer(p: &proto::TransferContract) -> Result<TronContract, TronError> {
    let owner = TronAddress::from_bytes(&p.owner_address, "owner_address")?;
    let to = TronAddress::from_bytes(&p.to_address, "to_address")?;
    if p.amount <= 0 {
        return Err(TronError::NonPositiveAmount {
            field: "amount",
            value: p.amount,
        });
    }
    Ok(TronContract::Transfer {
        owner,
        to,
        amount: p.amount,
    })
}

fn read_trigger(p: &proto::TriggerSmartContract) -> Result<TronContract, TronError> {
    let owner = TronAddress::from_bytes(&p.owner_address, "owner_address")?;
    let contract = TronAddress::from_bytes(&p.contract_address, "contract_address")?;
    if p.call_value < 0 {
        return Err(TronError::Negative {
            field: "call_value",
            value: p.call_value,
        });
    }
    let selector: [u8; 4] = p
        .data
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(TronError::ShortCallData(p.data.len()))?;
    if selector == TRC20_TRANSFER_SELECTOR
        && let Some(call) = decode_strict::<trc20::transferCall>(&p.data)
    {
        if p.call_value != 0 {
            return Err(TronError::ValueBesidesToken("call_value"));
        }
        if p.call_token_value != 0 {
            return Err(TronError::ValueBesidesToken("call_token_value"));
        }
        if p.token_id != 0 {
            return Err(TronError::ValueBesidesToken("token_id"));
        }
        if call.amount.is_zero() {
            return Err(TronError::ZeroTokenAmount);
        }
        return Ok(TronContract::Trc20Transfer {
            owner,
            token: contract,
            recipient: TronAddress::from_account(&call.to.into_array()),
            amount: call.amount,
        });
    }
    if p.call_token_value != 0 {
        return Err(TronError::Trc10Value("call_token_value"));
    }
    if p.token_id != 0 {
        return Err(TronError::Trc10Value("token_id"));
    }
    Ok(TronContract::ContractCall {
        owner,
        contract,
        selector,
        call_value: p.call_value,
        data: p.data.clone(),
    })
}

/// The call as `C`, if `data` is exactly its canonical ABI encoding.
fn decode_strict<C: SolCall>(data: &[u8]) -> Option<C> {
    let call = C::abi_decode_with_config(data, AbiDecoderConfig::new().strict(true)).ok()?;
    (call.abi_encode() == data).then_some(call)
}
