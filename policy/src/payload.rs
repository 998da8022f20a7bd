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
//! | `eip712_typed_data` | ECDSA | [`eip712`]: EIP-2612, DAI and Permit2 approvals; other typed data | `0x1901 ‖ domainSeparator ‖ hashStruct` / Keccak-256 |
//! | `bitcoin_psbt` | Taproot (FROST), ECDSA | [`bitcoin`](mod@bitcoin): PSBT v0 and v2, Taproot key path and P2WPKH | one part per input: its BIP-341 / BIP-143 sighash / RAW |
//! | `solana_message` | Ed25519 (FROST) | [`solana`]: legacy and v0 messages, System and SPL Token transfers | the message / RAW |
//! | `tron_transaction` | ECDSA | [`tron`]: TRX and TRC-20 transfers, contract calls | SHA-256 of `raw_data` / RAW |
//! | `raw_message` | FROST (RAW), ECDSA (KECCAK256, SHA256) | [`raw`] | the message / its encoding |
//! | `raw_digest` | ECDSA | [`raw`] | the 32 bytes / RAW |
//!
//! Decoders that check whose transaction it is (a PSBT input's script, a
//! Solana fee payer, a TRON owner) compare it with the stored key
//! ([`KeyView`]), never with anything the request claims. A payload with
//! several signatures (a PSBT's inputs) has one [`SignPart`] per signature;
//! the coordinator opens one session per part, each node checks the
//! session's part against its own reading, and the spend is counted once
//! per intent.
//!
//! Everything that is not understood exactly is refused with a distinct
//! [`PayloadError`]; nothing is guessed.

use std::fmt;

use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::engine::{Encoding, MAX_MESSAGE_LEN};

use crate::amount::Amount;

pub mod bitcoin;
pub mod eip712;
pub mod evm;
pub mod raw;
pub mod solana;
pub mod tron;

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
    /// EIP-712 typed data that is not a known token approval: its meaning
    /// is the verifying contract's, which Sigil cannot read.
    TypedData,
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
            PayloadKind::TypedData => "typed_data",
        }
    }

    /// Kinds whose meaning Sigil cannot read: signed only where the policy
    /// allows raw signing.
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            PayloadKind::PersonalMessage
                | PayloadKind::RawMessage
                | PayloadKind::RawDigest
                | PayloadKind::TypedData
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
    /// The contracts (programs) called, in order of appearance: one for an
    /// EVM call (ERC-20 included), one per instruction of a program Sigil
    /// does not decode for a Solana transaction. Empty for plain transfers.
    pub calls: Vec<Call>,
    /// The network fee the payload pays from the key (Bitcoin: inputs −
    /// outputs), counted in its asset's limits beside the movements but
    /// subject to no destination list. `None` where the fee is not value
    /// the payload itself fixes (EVM gas, Solana and TRON fees).
    pub fee: Option<Fee>,
    /// What is signed, one part per signature, in order (a Bitcoin PSBT has
    /// one per input; every other payload has exactly one).
    pub parts: Vec<SignPart>,
}

/// A network fee paid from the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fee {
    pub asset: String,
    pub amount: Amount,
}

/// A contract (or program) call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The contract in its chain's canonical form (EVM: lowercase `0x`-hex;
    /// Solana: the program id in Base58; TRON: the `T…` address).
    pub contract: String,
    /// The 4-byte method selector (EVM and TRON calls); `None` where the
    /// chain has no selectors (Solana programs).
    pub selector: Option<[u8; 4]>,
}

/// One signature a payload needs: the message and encoding
/// `SignInput::new` gets, and the derivation path of the key that signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignPart {
    pub message: Vec<u8>,
    pub encoding: Encoding,
    /// BIP-32 path of the signing key (`"m/0/7"`); `None`: the intent's own
    /// `derivation_path`. Set when the payload names the child key itself
    /// (a PSBT input's derivation entry).
    pub derivation_path: Option<String>,
}

impl SignPart {
    /// One part signed with the intent's key.
    pub fn new(message: Vec<u8>, encoding: Encoding) -> Self {
        Self {
            message,
            encoding,
            derivation_path: None,
        }
    }

    /// The path this part is signed at, given the intent's path.
    pub fn path<'a>(&'a self, intent_path: &'a str) -> &'a str {
        self.derivation_path.as_deref().unwrap_or(intent_path)
    }
}

/// The key a payload is read for: decoders that check a transaction's
/// sender (TRON owner, Solana fee payer, a PSBT input's script) compare it
/// with this key, never with anything the request claims.
#[derive(Clone, Copy, Debug)]
pub struct KeyView<'a> {
    pub scheme: Scheme,
    /// The key's group public key (SEC1 compressed for secp256k1 schemes,
    /// x-only-tweaked for Taproot as stored, 32 bytes for Ed25519).
    pub public_key: &'a [u8],
    /// The key's public key package (ECDSA: holds the BIP-32 chain code).
    pub public_key_package: &'a [u8],
    /// The intent's derivation path (`""` for the key itself).
    pub derivation_path: &'a str,
}

impl<'a> KeyView<'a> {
    /// The key itself (no derivation path).
    pub fn new(scheme: Scheme, public_key: &'a [u8], public_key_package: &'a [u8]) -> Self {
        Self {
            scheme,
            public_key,
            public_key_package,
            derivation_path: "",
        }
    }

    /// The same key read at `derivation_path`.
    pub fn at(self, derivation_path: &'a str) -> Self {
        Self {
            derivation_path,
            ..self
        }
    }

    /// The public key at the intent's derivation path.
    pub fn signing_public_key(&self) -> Result<Vec<u8>, PayloadError> {
        sigil_protocol::engine::public_key_for(
            self.scheme,
            self.public_key,
            self.public_key_package,
            self.derivation_path,
        )
        .map_err(|e| PayloadError::Key(e.to_string()))
    }
}

impl Parsed {
    /// One line a person reads (approvers, audit records), such as
    /// `evm:1 ERC-20 transfer of 2500000 evm:1/0xa0b8...eb48 to 0x1111...1111`
    /// (shortened here): amounts in base units, addresses in full.
    pub fn summary(&self) -> String {
        let mut s = self.what();
        if let Some(fee) = &self.fee {
            s.push_str(&format!(", fee {} {}", fee.amount, fee.asset));
        }
        if self.parts.len() > 1 {
            s.push_str(&format!(" ({} signatures)", self.parts.len()));
        }
        s
    }

    fn what(&self) -> String {
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
            PayloadKind::NativeTransfer if self.movements.is_empty() => {
                format!("{chain}native transfer to the key itself")
            }
            PayloadKind::NativeTransfer => format!("{chain}native transfer of {}", moved("to")),
            PayloadKind::TokenTransfer => format!("{chain}{token} transfer of {}", moved("to")),
            PayloadKind::TokenApproval => {
                format!("{chain}{token} approval of {}", moved("to spender"))
            }
            PayloadKind::ContractCall => {
                let calls = self
                    .calls
                    .iter()
                    .map(|c| match c.selector {
                        Some(selector) => {
                            format!("method 0x{} on {}", hex::encode(selector), c.contract)
                        }
                        None => format!("program {}", c.contract),
                    })
                    .collect::<Vec<_>>()
                    .join(" and ");
                let mut s = format!("{chain}call of {calls}");
                if !self.movements.is_empty() {
                    s.push_str(&format!(" with {}", moved("to")));
                }
                s
            }
            // `parse` refuses a payload with nothing to sign, so these
            // kinds have their one part.
            PayloadKind::PersonalMessage => format!(
                "EIP-191 personal message ({} bytes signed)",
                self.parts.first().map_or(0, |p| p.message.len())
            ),
            PayloadKind::RawMessage => match self.parts.first() {
                Some(p) => format!(
                    "raw message of {} bytes ({})",
                    p.message.len(),
                    encoding_name(p.encoding)
                ),
                None => "raw message".into(),
            },
            PayloadKind::RawDigest => match self.parts.first() {
                Some(p) => format!("raw digest 0x{}", hex::encode(&p.message)),
                None => "raw digest".into(),
            },
            PayloadKind::TypedData => {
                let contract = self
                    .calls
                    .first()
                    .map(|c| format!(" for {}", c.contract))
                    .unwrap_or_default();
                format!("{chain}EIP-712 typed data{contract}")
            }
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
    #[error("the payload has nothing for this key to sign")]
    NothingToSign,
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
    #[error("the key cannot be read: {0}")]
    Key(String),
    #[error("unknown network {0:?}")]
    UnknownNetwork(String),
    #[error("PSBT refused: {0}")]
    Psbt(String),
    #[error("Solana message refused: {0}")]
    Solana(String),
    #[error("TRON transaction refused: {0}")]
    Tron(String),
    #[error("EIP-712 typed data refused: {0}")]
    TypedData(String),
}

/// Reads a payload for `key` (see the module docs).
pub fn parse(key: &KeyView<'_>, payload: &pb::Payload) -> Result<Parsed, PayloadError> {
    use pb::payload::Kind;
    let scheme = key.scheme;
    let kind = payload.kind.as_ref().ok_or(PayloadError::Empty)?;
    let parsed = match kind {
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
        Kind::BitcoinPsbt(psbt) => bitcoin::parse_psbt(key, psbt),
        Kind::SolanaMessage(message) => {
            require(scheme, Scheme::FrostEd25519, "Solana transactions")?;
            solana::parse_message(key, message)
        }
        Kind::TronTransaction(tx) => {
            require_ecdsa(scheme, "TRON transactions")?;
            tron::parse_transaction(key, tx)
        }
        Kind::Eip712TypedData(json) => {
            require_ecdsa(scheme, "EIP-712 typed data")?;
            eip712::parse_typed_data(json)
        }
    }?;
    // Every payload signs something: a decoder that found nothing to sign
    // (a PSBT with no input of the key, say) is refused here rather than
    // reaching a signing session with no message.
    if parsed.parts.is_empty() {
        return Err(PayloadError::NothingToSign);
    }
    Ok(parsed)
}

fn require_ecdsa(scheme: Scheme, what: &'static str) -> Result<(), PayloadError> {
    require(scheme, Scheme::EcdsaSecp256k1, what)
}

fn require(scheme: Scheme, need: Scheme, what: &'static str) -> Result<(), PayloadError> {
    if scheme == need {
        Ok(())
    } else {
        Err(PayloadError::WrongScheme {
            what,
            need,
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

/// [`parse`] for a key of `scheme` whose public key no decoder needs.
#[cfg(test)]
pub(crate) fn parse_for(scheme: Scheme, payload: &pb::Payload) -> Result<Parsed, PayloadError> {
    parse(
        &KeyView {
            scheme,
            public_key: &[],
            public_key_package: &[],
            derivation_path: "",
        },
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::parse_for as parse;
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
