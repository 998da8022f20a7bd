//! What a node reads from an intent's payload, by itself, before it decides
//! anything: which chain, what kind of operation, which value leaves the key
//! and to whom, and the exact message and encoding the engine will sign.
//!
//! [`parse`] dispatches on the payload's kind to one decoder per family and
//! every decoder produces the same [`Parsed`], so the evaluation
//! ([`crate::evaluate()`]) never looks at chain encodings:
//!
//! | payload kind | schemes | decoder | message / encoding signed |
//! |---|---|---|---|
//! | `ethereum_transaction` | ECDSA | [`evm`]: legacy (EIP-155 only), EIP-2930, EIP-1559; ERC-20 `transfer`, `transferFrom`, `approve` | the unsigned transaction / Keccak-256 |
//! | `eip191_message` | ECDSA | [`evm`] | `"\x19Ethereum Signed Message:\n" ‖ len ‖ msg` / Keccak-256 |
//! | `raw_message` | FROST (RAW), ECDSA (KECCAK256, SHA256) | [`raw`] | the message / its encoding |
//! | `raw_digest` | ECDSA | [`raw`] | the 32 bytes / RAW |
//!
//! A new chain (Bitcoin PSBTs, Solana or TRON transactions) is a new
//! `Payload` kind and a new decoder module producing the same [`Parsed`]
//! (chains `bitcoin:mainnet`, `solana:mainnet`, `tron:mainnet`, ...): the
//! evaluation and policy documents need no change.
//!
//! Everything that is not understood exactly is refused with a distinct
//! [`PayloadError`]; nothing is guessed.

use std::fmt;

use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::engine::{Encoding, MAX_MESSAGE_LEN};

use crate::amount::Amount;

pub mod evm;
pub mod raw;

/// What an operation does, as far as policies are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// The chain's native currency sent to an address, no call data.
    NativeTransfer,
    /// A token transfer (ERC-20 `transfer` or `transferFrom`).
    TokenTransfer,
    /// A token allowance (ERC-20 `approve`): value another address may move.
    TokenApproval,
    /// Any other contract call.
    ContractCall,
    /// An EIP-191 personal message.
    PersonalMessage,
    /// An opaque message.
    RawMessage,
    /// An opaque 32-byte digest.
    RawDigest,
}

impl PayloadKind {
    /// Stable snake_case name (logs, audit records).
    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::NativeTransfer => "native_transfer",
            PayloadKind::TokenTransfer => "token_transfer",
            PayloadKind::TokenApproval => "token_approval",
            PayloadKind::ContractCall => "contract_call",
            PayloadKind::PersonalMessage => "personal_message",
            PayloadKind::RawMessage => "raw_message",
            PayloadKind::RawDigest => "raw_digest",
        }
    }

    /// Kinds whose meaning Sigil cannot read: signed only where the policy
    /// allows raw signing.
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            PayloadKind::PersonalMessage | PayloadKind::RawMessage | PayloadKind::RawDigest
        )
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Value that a payload moves away from the key (or, for an approval,
/// allows another address to move).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movement {
    /// `<chain>/native` or `<chain>/<token address>` (see [`crate::chain`]).
    pub asset: String,
    pub amount: Amount,
    /// Recipient (or spender, for an approval), in the chain's canonical form.
    pub destination: String,
}

/// A payload as the node understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// `evm:<chain id>` for Ethereum/EVM transactions; `None` for raw kinds
    /// and EIP-191 messages, which belong to no chain.
    pub chain: Option<String>,
    pub kind: PayloadKind,
    /// Value moved (or allowed to be moved) away from the key. Empty for
    /// messages and for contract calls without value.
    pub movements: Vec<Movement>,
    /// The called contract (lowercase `0x`-hex) of an EVM call, ERC-20 included.
    pub contract: Option<String>,
    /// The 4-byte method selector of an EVM call.
    pub selector: Option<[u8; 4]>,
    /// What `SignInput::new` gets as message.
    pub message: Vec<u8>,
    /// What `SignInput::new` gets as encoding.
    pub encoding: Encoding,
}

impl Parsed {
    /// One line a person reads (approvers, audit records), such as
    /// `evm:1 ERC-20 transfer of 2500000 evm:1/0xa0b8...eb48 to 0x1111...1111`
    /// (shortened here): amounts in base units, addresses in full.
    pub fn summary(&self) -> String {
        let chain = self
            .chain
            .as_deref()
            .map(|c| format!("{c} "))
            .unwrap_or_default();
        let evm = self.chain.as_deref().is_some_and(|c| c.starts_with("evm:"));
        let token = if evm { "ERC-20" } else { "token" };
        let moved = |verb: &str| {
            self.movements
                .iter()
                .map(|m| format!("{} {} {verb} {}", m.amount, m.asset, m.destination))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        match self.kind {
            PayloadKind::NativeTransfer => format!("{chain}native transfer of {}", moved("to")),
            PayloadKind::TokenTransfer => format!("{chain}{token} transfer of {}", moved("to")),
            PayloadKind::TokenApproval => {
                format!("{chain}{token} approval of {}", moved("to spender"))
            }
            PayloadKind::ContractCall => {
                let selector = self
                    .selector
                    .map(|s| format!("0x{}", hex::encode(s)))
                    .unwrap_or_else(|| "?".into());
                let contract = self.contract.as_deref().unwrap_or("?");
                let mut s = format!("{chain}call of method {selector} on {contract}");
                if !self.movements.is_empty() {
                    s.push_str(&format!(" with {}", moved("to")));
                }
                s
            }
            PayloadKind::PersonalMessage => {
                format!(
                    "EIP-191 personal message ({} bytes signed)",
                    self.message.len()
                )
            }
            PayloadKind::RawMessage => format!(
                "raw message of {} bytes ({})",
                self.message.len(),
                encoding_name(self.encoding)
            ),
            PayloadKind::RawDigest => format!("raw digest 0x{}", hex::encode(&self.message)),
        }
    }
}

/// The wire name of an encoding, for messages.
pub(crate) fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Raw => "RAW",
        Encoding::Keccak256 => "KECCAK256",
        Encoding::Sha256 => "SHA256",
    }
}

/// Why a payload is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the intent's payload is empty (no kind set)")]
    Empty,
    #[error("{what} are signed with {need} keys, not {got}")]
    WrongScheme {
        what: &'static str,
        need: Scheme,
        got: Scheme,
    },
    #[error("the payload is {len} bytes; at most {max} bytes are signed")]
    TooLong { len: usize, max: usize },
    #[error("the raw message is empty")]
    EmptyMessage,
    #[error("unknown message encoding {0}")]
    UnknownEncoding(i32),
    #[error("{scheme} signs a raw message as given: use encoding RAW, not {encoding}")]
    FrostNeedsRawEncoding {
        scheme: Scheme,
        encoding: &'static str,
    },
    #[error(
        "{scheme} hashes a raw message with KECCAK256 or SHA256; a digest signed as is goes in raw_digest"
    )]
    EcdsaNeedsHashEncoding { scheme: Scheme },
    #[error("a raw digest is 32 bytes, got {0}")]
    DigestLength(usize),
    #[error("the unsigned transaction is empty")]
    EmptyTransaction,
    #[error(
        "transaction type 0x{0:02x} is not supported (legacy with EIP-155, 0x01 EIP-2930 and 0x02 EIP-1559 are)"
    )]
    UnsupportedTransactionType(u8),
    #[error("the unsigned transaction does not decode: {0}")]
    MalformedTransaction(String),
    #[error("the unsigned transaction is truncated ({len} bytes end inside its RLP structure)")]
    TruncatedTransaction { len: usize },
    #[error("the unsigned transaction has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error(
        "the unsigned transaction is not canonically encoded (re-encoding what it decodes to gives other bytes)"
    )]
    NonCanonicalTransaction,
    #[error(
        "legacy transaction without an EIP-155 chain id: its signature would be valid on every chain"
    )]
    PreEip155,
    #[error("chain id 0 names no chain")]
    ZeroChainId,
    #[error("contract creation (a transaction without a recipient) is not signed")]
    ContractCreation,
    #[error("the call data is {0} bytes, shorter than a 4-byte method selector")]
    ShortCalldata(usize),
}

/// Reads a payload for a key of `scheme` (see the module docs).
pub fn parse(scheme: Scheme, payload: &pb::Payload) -> Result<Parsed, PayloadError> {
    use pb::payload::Kind;
    let kind = payload.kind.as_ref().ok_or(PayloadError::Empty)?;
    match kind {
        Kind::EthereumTransaction(tx) => {
            require_ecdsa(scheme, "Ethereum transactions")?;
            evm::parse_transaction(tx)
        }
        Kind::Eip191Message(message) => {
            require_ecdsa(scheme, "EIP-191 messages")?;
            evm::parse_personal_message(message)
        }
        Kind::RawMessage(raw) => raw::parse_message(scheme, raw),
        Kind::RawDigest(digest) => {
            require_ecdsa(scheme, "raw digests")?;
            raw::parse_digest(digest)
        }
    }
}

fn require_ecdsa(scheme: Scheme, what: &'static str) -> Result<(), PayloadError> {
    if scheme == Scheme::EcdsaSecp256k1 {
        Ok(())
    } else {
        Err(PayloadError::WrongScheme {
            what,
            need: Scheme::EcdsaSecp256k1,
            got: scheme,
        })
    }
}

/// Refuses what the engine would refuse for its size.
fn check_len(message: &[u8]) -> Result<(), PayloadError> {
    if message.len() > MAX_MESSAGE_LEN {
        Err(PayloadError::TooLong {
            len: message.len(),
            max: MAX_MESSAGE_LEN,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_without_a_kind_is_refused() {
        assert_eq!(
            parse(Scheme::EcdsaSecp256k1, &pb::Payload { kind: None }),
            Err(PayloadError::Empty)
        );
    }

    #[test]
    fn ethereum_payloads_on_a_frost_key_are_refused_naming_both_schemes() {
        let payload = pb::Payload {
            kind: Some(pb::payload::Kind::EthereumTransaction(vec![0x02, 0xc0])),
        };
        let err = parse(Scheme::FrostEd25519, &payload);
        assert_eq!(
            err,
            Err(PayloadError::WrongScheme {
                what: "Ethereum transactions",
                need: Scheme::EcdsaSecp256k1,
                got: Scheme::FrostEd25519,
            })
        );
        assert_eq!(
            err.expect_err("refused").to_string(),
            "Ethereum transactions are signed with ecdsa-secp256k1 keys, not frost-ed25519"
        );
        let message = pb::Payload {
            kind: Some(pb::payload::Kind::Eip191Message(b"hi".to_vec())),
        };
        assert!(matches!(
            parse(Scheme::FrostSecp256k1, &message),
            Err(PayloadError::WrongScheme {
                what: "EIP-191 messages",
                ..
            })
        ));
    }

    #[test]
    fn raw_kinds_need_allow_raw_and_chain_kinds_do_not() {
        assert!(PayloadKind::RawMessage.is_raw());
        assert!(PayloadKind::RawDigest.is_raw());
        assert!(PayloadKind::PersonalMessage.is_raw());
        assert!(!PayloadKind::NativeTransfer.is_raw());
        assert!(!PayloadKind::TokenTransfer.is_raw());
        assert!(!PayloadKind::TokenApproval.is_raw());
        assert!(!PayloadKind::ContractCall.is_raw());
    }
}
