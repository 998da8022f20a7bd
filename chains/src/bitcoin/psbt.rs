//! Bitcoin PSBTs (BIP-174 version 0, BIP-370 version 2) as a signing node
//! sees them: decode, check that every input it signs pays to its key,
//! compute the sighashes, and put the signatures back.
//!
//! # What the node decodes
//!
//! [`decode_psbt`] takes a PSBT as binary (`psbt\xff…`) or as base64 text
//! (`cHNidP8…`, surrounding ASCII whitespace allowed), in version 0
//! (BIP-174) or version 2 (BIP-370), and returns a [`DecodedPsbt`]: the
//! version-0 [`Psbt`] view everything below analyzes (it derefs to it), and
//! the version the client sent, which [`finalize`] and [`to_base64`] give
//! back. The version is read from `PSBT_GLOBAL_VERSION` (absent means 0); any
//! version other than 0 and 2 is refused ([`PsbtError::UnsupportedVersion`]).
//!
//! **Version 0** is parsed with rust-bitcoin's BIP-174 parser. Everything
//! that parser refuses is refused ([`PsbtError::Malformed`], with its reason:
//! bad magic, truncation, duplicate keys, a global transaction carrying
//! scriptSigs or witnesses, counts larger than the payload, invalid keys or
//! signatures in the maps), and so are bytes left over after the last output
//! map ([`PsbtError::TrailingBytes`]) and the version-2 fields BIP-370
//! excludes from version 0 (`PSBT_GLOBAL_TX_VERSION`, `…_FALLBACK_LOCKTIME`,
//! `…_INPUT_COUNT`, `…_OUTPUT_COUNT`, `…_TX_MODIFIABLE`; `PSBT_IN_PREVIOUS_TXID`,
//! `…_OUTPUT_INDEX`, `…_SEQUENCE`, `…_REQUIRED_TIME_LOCKTIME`,
//! `…_REQUIRED_HEIGHT_LOCKTIME`; `PSBT_OUT_AMOUNT`, `PSBT_OUT_SCRIPT`), which
//! rust-bitcoin would keep as unknown fields.
//!
//! **Version 2** is parsed with rust-bitcoin's rust-psbt (`psbt-v2`), after a
//! framing pass over the key-value maps that refuses what that crate lets
//! through: duplicate keys in any map, key data on `PSBT_IN_PREVIOUS_TXID`,
//! `PSBT_IN_OUTPUT_INDEX`, `PSBT_OUT_AMOUNT` and `PSBT_OUT_SCRIPT`, counts that
//! are not exactly one compact size, more maps announced than present, and
//! trailing bytes ([`PsbtError::TrailingBytes`]). rust-psbt then refuses a
//! missing `PSBT_GLOBAL_TX_VERSION`, `…_INPUT_COUNT` or `…_OUTPUT_COUNT`, a
//! `PSBT_GLOBAL_UNSIGNED_TX`, an input without `PSBT_IN_PREVIOUS_TXID` or
//! `PSBT_IN_OUTPUT_INDEX`, an output without `PSBT_OUT_AMOUNT` or
//! `PSBT_OUT_SCRIPT`, a required time lock below 500 000 000 or a required
//! height at or above it, wrong value lengths and invalid keys or signatures;
//! the node also refuses a required height of 0 and inputs whose required
//! lock times admit no common type (BIP-370's lock time determination). Like
//! the BIP's own vectors, such PSBTs are [`PsbtError::Malformed`]. rust-psbt
//! takes an all-zero previous txid, an output index of `0xffffffff` or an
//! empty output script for a missing field, so those (coinbase-only
//! outpoints, anyone-can-spend outputs) are refused too; a zero amount (an
//! `OP_RETURN` output) is accepted (though rust-psbt itself cannot read such
//! a PSBT back).
//!
//! The version-0 view of a version-2 PSBT is exact: its unsigned transaction
//! has `PSBT_GLOBAL_TX_VERSION`, the lock time BIP-370 determines from
//! `PSBT_GLOBAL_FALLBACK_LOCKTIME` and the inputs' `PSBT_IN_REQUIRED_*_LOCKTIME`,
//! each input's `PSBT_IN_PREVIOUS_TXID`:`PSBT_IN_OUTPUT_INDEX` and
//! `PSBT_IN_SEQUENCE` (`0xffffffff` when absent) and each output's
//! `PSBT_OUT_AMOUNT` and `PSBT_OUT_SCRIPT`; every other field is carried over
//! as it is: global xpubs, proprietary and unknown fields; per input
//! `witness_utxo`, `non_witness_utxo`, partial signatures, sighash type,
//! redeem and witness scripts, BIP-32 derivations, final scriptSig and
//! witness, hash preimages, `tap_key_sig`, Taproot script signatures, leaf
//! scripts, key origins, internal key and merkle root, proprietary and
//! unknown fields; per output redeem and witness scripts, BIP-32
//! derivations, Taproot internal key, tree and key origins, proprietary and
//! unknown fields. Only `PSBT_GLOBAL_TX_MODIFIABLE`, the input and output
//! counts and the version number have no place in the view (and the lock
//! time fields only through the lock time they determine); the analysis has
//! no use for them (the counts are the transaction's, the view is version 0). A BIP-32 derivation given under the same
//! key in both compressed and uncompressed form is refused, as version 0's
//! parser refuses it.
//!
//! `PSBT_GLOBAL_TX_MODIFIABLE` may say that inputs or outputs can still be
//! added (or that a `SIGHASH_SINGLE` signature exists elsewhere): such PSBTs
//! are accepted, but the node signs only with `SIGHASH_DEFAULT` or
//! `SIGHASH_ALL`, which commit to every input and output, so its signatures
//! make the transaction final: adding or removing an input or output
//! afterwards invalidates them. [`finalize`] clears the Inputs Modifiable and
//! Outputs Modifiable flags accordingly, as BIP-370's Signer must.
//!
//! [`analyze`] then looks at the PSBT on behalf of one [`SigningKey`]:
//!
//! - **Taproot key-path spends (BIP-341)** for `frost-taproot` keys. The key
//!   is the tweaked output key `Q` (the group key is already tweaked), so an
//!   input is ours when its previous output's script is `OP_1 <Q>`. The
//!   sighash is BIP-341's key-path message over *all* the transaction's
//!   previous outputs, with `SIGHASH_DEFAULT` (no `PSBT_IN_SIGHASH_TYPE`, or
//!   `0x00`) or `SIGHASH_ALL` (`0x01`). No annex is ever committed to (PSBTs
//!   have no annex field and [`finalize`] writes a witness holding only the
//!   signature).
//! - **P2WPKH spends (BIP-143)** for `ecdsa-secp256k1` keys, with
//!   `SIGHASH_ALL` only. An input is ours when its script is
//!   `OP_0 <HASH160(pk)>` for `pk` either the master public key or a child
//!   of it at a non-hardened BIP-32 path: the path given in the sign request
//!   ([`SigningKey::P2wpkh::request_path`]) or a path in the input's
//!   `PSBT_IN_BIP32_DERIVATION` entries whose fingerprint is the master key's
//!   fingerprint. Child keys are derived here from the master public key and
//!   chain code, never taken from the PSBT.
//!
//! Every input must carry its previous output: `witness_utxo`, or
//! `non_witness_utxo` (whose txid must be the one the input spends; when
//! both are given they must agree). That is how the node knows every amount
//! and so the fee.
//!
//! # What the node refuses
//!
//! Each refusal is a [`PsbtError`] naming the input where there is one:
//! an input without its previous output; an input paying to another key
//! (or to a script type the key cannot spend); a sighash type other than
//! the above; Taproot script-path data (`PSBT_IN_TAP_LEAF_SCRIPT`,
//! `PSBT_IN_TAP_SCRIPT_SIG`); an input already finalized; a hardened step in
//! a derivation path that names our fingerprint (or in the request path);
//! global extended public keys of another network; amounts above 21 million
//! BTC, sums that overflow, and outputs worth more than the inputs (a
//! negative fee); an empty transaction.
//!
//! # What the policy sees
//!
//! A [`PsbtSummary`]: per input its amount, sighash, sighash type, the key
//! that signs and its derivation path; per output its amount, script,
//! address for the requested network (`None` for scripts without one, such
//! as `OP_RETURN`) and whether it is change. Change is an output paying to
//! the key's own scripts: `OP_1 <Q>`, or P2WPKH of the master key, of the
//! request-path child, or of a child at a non-hardened path named in the
//! output's `PSBT_OUT_BIP32_DERIVATION` with our fingerprint. Every other
//! output is a destination. Then `fee = Σ inputs − Σ outputs` and
//! `total_out_to_others = Σ destinations`. All amounts are exact integers in
//! satoshi.
//!
//! # Signing back
//!
//! [`finalize`] takes the signatures (a 64-byte BIP-340 signature, or 65
//! bytes with the sighash byte `0x01`; or a DER ECDSA signature with the
//! sighash byte `0x01`, low-S), checks each against the input's sighash and
//! key, finalizes the input (`PSBT_IN_FINAL_SCRIPTWITNESS`, other fields
//! cleared as BIP-174's finalizer does) and, once every input is final,
//! extracts the consensus-encoded raw transaction. It does not cap the fee
//! rate: the fee is in the summary, for the policy. Given a [`DecodedPsbt`]
//! it returns one in the same version: a version-2 PSBT is finalized in its
//! own maps the same way (keeping the fields its transaction is built from:
//! previous txid, output index, sequence and required lock times) and
//! [`to_base64`] / [`DecodedPsbt::serialize`] encode it as version 2, with
//! rust-psbt's serializer (its field order; `PSBT_GLOBAL_TX_MODIFIABLE`
//! always written).
//!
//! rust-bitcoin's libsecp256k1 bindings are used here to parse keys, derive
//! public child keys and *verify* signatures; nothing here signs.

use std::io::BufRead as _;

use ::bitcoin::bip32::{ChainCode, ChildNumber, DerivationPath, Fingerprint, KeySource, Xpub};
use ::bitcoin::hashes::{Hash as _, hash160};
use ::bitcoin::secp256k1::{self, Message, Secp256k1, VerifyOnly, XOnlyPublicKey};
use ::bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use ::bitcoin::{
    Address, Amount, NetworkKind, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
    consensus,
};

pub use ::bitcoin::Network;
pub use ::bitcoin::psbt::Psbt;

/// The PSBT magic bytes, `psbt` followed by the `0xff` separator.
const MAGIC: &[u8] = b"psbt\xff";

/// Why a PSBT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsbtError {
    /// The bytes are not a PSBT rust-bitcoin (version 0) or rust-psbt
    /// (version 2) accepts, break a BIP-174/BIP-370 rule those let through,
    /// or are not base64.
    #[error("malformed PSBT: {reason}")]
    Malformed {
        /// What the parser found.
        reason: String,
    },
    /// A PSBT version other than 0 (BIP-174) and 2 (BIP-370).
    #[error("unsupported PSBT version: {reason}")]
    UnsupportedVersion {
        /// The parser's reason.
        reason: String,
    },
    /// Bytes after the last output map.
    #[error("{count} trailing bytes after the PSBT")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// No inputs or no outputs.
    #[error("empty transaction: {reason}")]
    Empty {
        /// Which part is empty.
        reason: &'static str,
    },
    /// The signing key itself is unusable (not a point, not x-only, ...).
    #[error("invalid signing key: {reason}")]
    InvalidKey {
        /// Why.
        reason: String,
    },
    /// An input index past the end of the transaction.
    #[error("input {input} does not exist (the transaction has {count})")]
    NoSuchInput {
        /// The index asked for.
        input: usize,
        /// The number of inputs.
        count: usize,
    },
    /// An input carries neither `witness_utxo` nor `non_witness_utxo`.
    #[error("input {input} has no previous output (witness_utxo or non_witness_utxo)")]
    MissingUtxo {
        /// The input.
        input: usize,
    },
    /// The previous output given does not match what the input spends.
    #[error("input {input}: previous output mismatch: {reason}")]
    UtxoMismatch {
        /// The input.
        input: usize,
        /// Why.
        reason: String,
    },
    /// The input's previous output does not pay to the signing key.
    #[error("input {input} pays to another key: {reason}")]
    NotOurKey {
        /// The input.
        input: usize,
        /// What the script is.
        reason: String,
    },
    /// A sighash type other than the supported ones.
    #[error("input {input}: sighash type {sighash_type:#x} is not supported ({reason})")]
    UnsupportedSighash {
        /// The input.
        input: usize,
        /// The `PSBT_IN_SIGHASH_TYPE` value.
        sighash_type: u32,
        /// What is supported.
        reason: &'static str,
    },
    /// An input the node will not sign for another reason (script path,
    /// already finalized).
    #[error("input {input}: {reason}")]
    UnsupportedInput {
        /// The input.
        input: usize,
        /// Why.
        reason: String,
    },
    /// A hardened step in a derivation path (public derivation cannot
    /// follow it). `input` is `None` for the sign request's path.
    #[error("hardened derivation path {path} refused{}", match .input { Some(i) => format!(" (input {i})"), None => " (request)".to_owned() })]
    HardenedDerivation {
        /// The input whose derivation entry it is.
        input: Option<usize>,
        /// The path, as `m/…`.
        path: String,
    },
    /// Global extended public keys of another network.
    #[error("wrong network: the PSBT is for {found}, expected {expected}")]
    WrongNetwork {
        /// The requested network kind.
        expected: &'static str,
        /// What the PSBT names.
        found: &'static str,
    },
    /// An amount out of range, a sum overflowing, or a negative fee.
    #[error("amounts: {reason}")]
    Amount {
        /// Why.
        reason: String,
    },
    /// The outputs are worth more than the inputs.
    #[error("negative fee: outputs {outputs} sat exceed inputs {inputs} sat")]
    NegativeFee {
        /// Σ inputs, satoshi.
        inputs: u64,
        /// Σ outputs, satoshi.
        outputs: u64,
    },
    /// The sighash could not be computed.
    #[error("input {input}: sighash: {reason}")]
    Sighash {
        /// The input.
        input: usize,
        /// Why.
        reason: String,
    },
    /// A signature handed to [`finalize`] is malformed or does not verify.
    #[error("input {input}: bad signature: {reason}")]
    BadSignature {
        /// The input.
        input: usize,
        /// Why.
        reason: String,
    },
}

/// The key a node signs a PSBT's inputs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// A `frost-taproot` key: the BIP-341 output key `Q` (x-only), which
    /// key-path spends sign with as it is.
    Taproot {
        /// `Q`, x-only (BIP-340).
        output_key_xonly: [u8; 32],
    },
    /// An `ecdsa-secp256k1` key spending P2WPKH outputs, itself or at
    /// non-hardened BIP-32 child paths.
    P2wpkh {
        /// The master public key, compressed SEC1.
        public_key: [u8; 33],
        /// The master chain code (BIP-32).
        chain_code: [u8; 32],
        /// A child path given in the sign request (non-hardened indices),
        /// tried for every input and output besides the master key and the
        /// PSBT's own derivation entries.
        request_path: Option<Vec<u32>>,
    },
}

/// The sighash type an input is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SighashKind {
    /// BIP-341 `SIGHASH_DEFAULT` (`0x00`): 64-byte signature.
    TaprootDefault,
    /// BIP-341 `SIGHASH_ALL` (`0x01`): 65-byte signature.
    TaprootAll,
    /// BIP-143 `SIGHASH_ALL` (`0x01`).
    EcdsaAll,
}

impl SighashKind {
    /// The sighash type byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::TaprootDefault => 0x00,
            Self::TaprootAll | Self::EcdsaAll => 0x01,
        }
    }
}

/// One input the key signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSummary {
    /// Index in the transaction.
    pub index: usize,
    /// The previous output's amount, satoshi.
    pub amount: u64,
    /// The digest to sign (BIP-341 key-path or BIP-143).
    pub sighash: [u8; 32],
    /// The sighash type the signature must carry.
    pub sighash_type: SighashKind,
    /// The key that signs: x-only `Q` (32 bytes) or the compressed P2WPKH
    /// key (33 bytes, the master's or the child's).
    pub public_key: Vec<u8>,
    /// The BIP-32 path from the master key, when a child key signs.
    pub derivation_path: Option<Vec<u32>>,
}

/// One output of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSummary {
    /// Index in the transaction.
    pub index: usize,
    /// Amount, satoshi.
    pub amount: u64,
    /// The output script.
    pub script_pubkey: Vec<u8>,
    /// The address for the requested network, if the script has one.
    pub address: Option<String>,
    /// Whether it pays to the key's own scripts.
    pub is_change: bool,
}

/// An output paying to someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Output index.
    pub index: usize,
    /// The address for the requested network, if the script has one.
    pub address: Option<String>,
    /// The output script.
    pub script_pubkey: Vec<u8>,
    /// Amount, satoshi.
    pub amount: u64,
}

/// What a PSBT does, for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsbtSummary {
    /// The transaction id (of the unsigned transaction; segwit inputs do not
    /// change it).
    pub txid: String,
    /// Every input, all signed by the key.
    pub inputs: Vec<InputSummary>,
    /// Every output.
    pub outputs: Vec<OutputSummary>,
    /// Indices of the change outputs.
    pub change: Vec<usize>,
    /// The outputs that are not change.
    pub destinations: Vec<Destination>,
    /// Σ inputs, satoshi.
    pub total_in: u64,
    /// Σ outputs, satoshi.
    pub total_out: u64,
    /// Σ change outputs, satoshi.
    pub total_change: u64,
    /// Σ destinations, satoshi.
    pub total_out_to_others: u64,
    /// `total_in − total_out`, satoshi.
    pub fee: u64,
}

/// A decoded PSBT: the version-0 [`Psbt`] view [`analyze`] reads (the
/// struct derefs to it) and the version the client sent it in, kept so that
/// [`finalize`] and [`to_base64`] give a version-2 PSBT back as version 2.
///
/// Encode it with [`DecodedPsbt::serialize`], [`to_base64`] or `Display`
/// (base64), which use its own version; [`Psbt`]'s other encoders reached
/// through `Deref` (`serialize_hex`, …) encode the version-0 view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPsbt {
    /// The version-0 view (for a version-0 PSBT, the PSBT itself).
    psbt: Psbt,
    /// The version-2 maps, for a version-2 PSBT.
    v2: Option<psbt_v2::v2::Psbt>,
}

impl DecodedPsbt {
    /// The PSBT version it was decoded from: 0 or 2.
    pub fn version(&self) -> u32 {
        if self.v2.is_some() { 2 } else { 0 }
    }

    /// The version-0 view the analysis reads.
    pub fn psbt(&self) -> &Psbt {
        &self.psbt
    }

    /// The version-0 view, dropping the version-2 maps.
    pub fn into_psbt(self) -> Psbt {
        self.psbt
    }

    /// The binary PSBT in its own version.
    pub fn serialize(&self) -> Vec<u8> {
        match &self.v2 {
            Some(v2) => v2.serialize(),
            None => self.psbt.serialize(),
        }
    }
}

/// Base64 (BIP-174's text form) in its own version.
impl std::fmt::Display for DecodedPsbt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ::bitcoin::base64::Engine as _;
        f.write_str(&::bitcoin::base64::engine::general_purpose::STANDARD.encode(self.serialize()))
    }
}

impl std::ops::Deref for DecodedPsbt {
    type Target = Psbt;

    fn deref(&self) -> &Psbt {
        &self.psbt
    }
}

/// A version-0 PSBT as a [`DecodedPsbt`].
impl From<Psbt> for DecodedPsbt {
    fn from(psbt: Psbt) -> Self {
        Self { psbt, v2: None }
    }
}

mod sealed {
    use super::{Psbt, PsbtError, Witness};

    /// What [`super::finalize`] and [`super::to_base64`] need of a PSBT.
    pub trait Form: Sized {
        /// The version-0 view.
        fn view(&self) -> &Psbt;
        /// `self` with `finalized` (the version-0 view with the inputs in
        /// `witnesses` finalized) applied.
        fn with_finalized(
            &self,
            finalized: Psbt,
            witnesses: &[(usize, Witness)],
        ) -> Result<Self, PsbtError>;
        /// The binary PSBT in its own version.
        fn to_bytes(&self) -> Vec<u8>;
    }
}

/// A PSBT [`finalize`] and [`to_base64`] take: the version-0 [`Psbt`] itself,
/// or a [`DecodedPsbt`], which they keep in the version it was decoded from.
/// Sealed: implemented for those two only.
pub trait PsbtForm: sealed::Form {}

impl PsbtForm for Psbt {}
impl PsbtForm for DecodedPsbt {}

impl sealed::Form for Psbt {
    fn view(&self) -> &Psbt {
        self
    }

    fn with_finalized(&self, finalized: Psbt, _: &[(usize, Witness)]) -> Result<Self, PsbtError> {
        Ok(finalized)
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.serialize()
    }
}

impl sealed::Form for DecodedPsbt {
    fn view(&self) -> &Psbt {
        &self.psbt
    }

    fn with_finalized(
        &self,
        finalized: Psbt,
        witnesses: &[(usize, Witness)],
    ) -> Result<Self, PsbtError> {
        let Some(v2) = &self.v2 else {
            return Ok(Self {
                psbt: finalized,
                v2: None,
            });
        };
        let mut v2 = v2.clone();
        let count = v2.inputs.len();
        for (index, witness) in witnesses {
            let input = v2.inputs.get_mut(*index).ok_or(PsbtError::NoSuchInput {
                input: *index,
                count,
            })?;
            finalize_v2_input(input, witness.clone());
        }
        if !witnesses.is_empty() {
            // BIP-370 Signer: a signature without SIGHASH_ANYONECANPAY clears
            // the Inputs Modifiable flag, one without SIGHASH_NONE the Outputs
            // Modifiable flag (ours are SIGHASH_DEFAULT or SIGHASH_ALL).
            v2.global.tx_modifiable_flags &= !(TX_INPUTS_MODIFIABLE | TX_OUTPUTS_MODIFIABLE);
        }
        // The view again from the maps just finalized: one source of truth.
        Ok(Self {
            psbt: v0_view(&v2)?,
            v2: Some(v2),
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.serialize()
    }
}

/// `PSBT_GLOBAL_VERSION`.
const GLOBAL_VERSION: u8 = 0xfb;
/// `PSBT_GLOBAL_INPUT_COUNT`, `PSBT_GLOBAL_OUTPUT_COUNT` (BIP-370).
const GLOBAL_INPUT_COUNT: u8 = 0x04;
const GLOBAL_OUTPUT_COUNT: u8 = 0x05;
/// `PSBT_OUT_AMOUNT` (BIP-370).
const OUT_AMOUNT: u8 = 0x03;
/// `PSBT_GLOBAL_TX_MODIFIABLE` bits 0 and 1 (BIP-370).
const TX_INPUTS_MODIFIABLE: u8 = 0x01;
const TX_OUTPUTS_MODIFIABLE: u8 = 0x02;

/// The version-2 fields BIP-370 excludes from version 0, by map.
const V2_GLOBAL_FIELDS: [(u8, &str); 5] = [
    (0x02, "PSBT_GLOBAL_TX_VERSION"),
    (0x03, "PSBT_GLOBAL_FALLBACK_LOCKTIME"),
    (0x04, "PSBT_GLOBAL_INPUT_COUNT"),
    (0x05, "PSBT_GLOBAL_OUTPUT_COUNT"),
    (0x06, "PSBT_GLOBAL_TX_MODIFIABLE"),
];
const V2_INPUT_FIELDS: [(u8, &str); 5] = [
    (0x0e, "PSBT_IN_PREVIOUS_TXID"),
    (0x0f, "PSBT_IN_OUTPUT_INDEX"),
    (0x10, "PSBT_IN_SEQUENCE"),
    (0x11, "PSBT_IN_REQUIRED_TIME_LOCKTIME"),
    (0x12, "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME"),
];
const V2_OUTPUT_FIELDS: [(u8, &str); 2] = [(0x03, "PSBT_OUT_AMOUNT"), (0x04, "PSBT_OUT_SCRIPT")];

/// Decodes a PSBT given as binary or base64 text, version 0 (BIP-174) or 2
/// (BIP-370); see the module documentation for what is refused. The result
/// derefs to the version-0 [`Psbt`] view [`analyze`] takes.
pub fn decode_psbt(bytes: &[u8]) -> Result<DecodedPsbt, PsbtError> {
    if bytes.starts_with(MAGIC) {
        return decode_binary(bytes);
    }
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err(PsbtError::Malformed {
            reason: "empty input".to_owned(),
        });
    }
    use ::bitcoin::base64::Engine as _;
    let binary = ::bitcoin::base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| PsbtError::Malformed {
            reason: format!("neither binary (no `psbt\\xff` magic) nor base64 ({e})"),
        })?;
    if !binary.starts_with(MAGIC) {
        return Err(PsbtError::Malformed {
            reason: "base64 text does not decode to a PSBT (no `psbt\\xff` magic)".to_owned(),
        });
    }
    decode_binary(&binary)
}

fn decode_binary(bytes: &[u8]) -> Result<DecodedPsbt, PsbtError> {
    match global_version(bytes) {
        None | Some(0) => decode_v0(bytes).map(DecodedPsbt::from),
        Some(2) => decode_v2(bytes),
        Some(other) => Err(PsbtError::UnsupportedVersion {
            reason: format!(
                "PSBT_GLOBAL_VERSION {other}: only versions 0 (BIP-174) and 2 (BIP-370) are supported"
            ),
        }),
    }
}

fn decode_v0(bytes: &[u8]) -> Result<Psbt, PsbtError> {
    let mut reader = bytes;
    let psbt = Psbt::deserialize_from_reader(&mut reader).map_err(|e| match e {
        ::bitcoin::psbt::Error::Version(reason) => PsbtError::UnsupportedVersion {
            reason: reason.to_owned(),
        },
        other => PsbtError::Malformed {
            reason: error_chain(&other),
        },
    })?;
    let rest = reader.fill_buf().map(<[u8]>::len).unwrap_or(0);
    if rest != 0 {
        return Err(PsbtError::TrailingBytes { count: rest });
    }
    refuse_v2_fields(&psbt)?;
    Ok(psbt)
}

/// Refuses the version-2 fields rust-bitcoin keeps as unknown in version 0.
fn refuse_v2_fields(psbt: &Psbt) -> Result<(), PsbtError> {
    let find = |unknown: &std::collections::BTreeMap<::bitcoin::psbt::raw::Key, Vec<u8>>,
                fields: &[(u8, &'static str)]| {
        unknown.keys().find_map(|k| {
            fields
                .iter()
                .find(|(t, _)| *t == k.type_value)
                .map(|(t, name)| (*t, *name))
        })
    };
    let found = find(&psbt.unknown, &V2_GLOBAL_FIELDS)
        .map(|f| ("the global map".to_owned(), f))
        .or_else(|| {
            psbt.inputs.iter().enumerate().find_map(|(i, input)| {
                find(&input.unknown, &V2_INPUT_FIELDS).map(|f| (format!("input {i}"), f))
            })
        })
        .or_else(|| {
            psbt.outputs.iter().enumerate().find_map(|(i, output)| {
                find(&output.unknown, &V2_OUTPUT_FIELDS).map(|f| (format!("output {i}"), f))
            })
        });
    match found {
        None => Ok(()),
        Some((map, (type_value, name))) => Err(PsbtError::Malformed {
            reason: format!(
                "{map}: {name} ({type_value:#04x}) is a version 2 field, excluded from version 0 \
                 (BIP-370)"
            ),
        }),
    }
}

/// The `PSBT_GLOBAL_VERSION` in the global map, if the map can be walked that
/// far and the field holds 4 bytes (what else is wrong is for the parser of
/// that version to report).
fn global_version(bytes: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(bytes, MAGIC.len());
    loop {
        let pair = reader.pair().ok()??;
        if pair.key == [GLOBAL_VERSION] {
            return <[u8; 4]>::try_from(pair.value).ok().map(u32::from_le_bytes);
        }
    }
}

fn decode_v2(bytes: &[u8]) -> Result<DecodedPsbt, PsbtError> {
    let framed = frame_v2(bytes)?;
    let mut v2 =
        psbt_v2::v2::Psbt::deserialize(&framed.bytes).map_err(|e| PsbtError::Malformed {
            reason: describe_v2_error(&e),
        })?;
    for index in framed.zero_amounts {
        if let Some(output) = v2.outputs.get_mut(index) {
            output.amount = Amount::ZERO;
        }
    }
    if framed.trailing != 0 {
        return Err(PsbtError::TrailingBytes {
            count: framed.trailing,
        });
    }
    Ok(DecodedPsbt {
        psbt: v0_view(&v2)?,
        v2: Some(v2),
    })
}

/// A version-2 PSBT checked for what rust-psbt lets through, and the bytes to
/// hand it.
struct FramedV2 {
    /// The PSBT up to the end of the last output map, with the global map's
    /// pairs in key order (rust-psbt refuses `PSBT_GLOBAL_INPUT_COUNT` after
    /// `PSBT_GLOBAL_OUTPUT_COUNT` as a duplicate) and every zero
    /// `PSBT_OUT_AMOUNT` written as 1 (rust-psbt takes 0 for "missing").
    bytes: Vec<u8>,
    /// The outputs whose amount is 0.
    zero_amounts: Vec<usize>,
    /// Bytes after the last output map.
    trailing: usize,
}

fn frame_v2(bytes: &[u8]) -> Result<FramedV2, PsbtError> {
    let malformed = |reason: String| PsbtError::Malformed { reason };
    let mut reader = Reader::new(bytes, MAGIC.len());
    let global = reader
        .map()
        .map_err(|e| malformed(format!("global map: {e}")))?;
    let global_end = reader.pos;
    let count = |type_value: u8, name: &str| -> Result<u64, PsbtError> {
        let pair = global
            .iter()
            .find(|p| p.key == [type_value])
            .ok_or_else(|| malformed(format!("version 2 PSBT without {name}")))?;
        let mut value = Reader::new(pair.value, 0);
        let n = value
            .compact_size()
            .map_err(|e| malformed(format!("{name}: {e}")))?;
        if value.pos != pair.value.len() {
            return Err(malformed(format!(
                "{name}: {} bytes after the compact size",
                pair.value.len() - value.pos
            )));
        }
        Ok(n)
    };
    let inputs = count(GLOBAL_INPUT_COUNT, "PSBT_GLOBAL_INPUT_COUNT")?;
    let outputs = count(GLOBAL_OUTPUT_COUNT, "PSBT_GLOBAL_OUTPUT_COUNT")?;

    // Each map takes at least its separator byte, so these loops end within
    // the payload whatever the counts say.
    let mut input = 0u64;
    while input < inputs {
        let map = reader
            .map()
            .map_err(|e| malformed(format!("input {input}: {e}")))?;
        no_key_data(&map, &V2_INPUT_FIELDS)
            .map_err(|name| malformed(format!("input {input}: {name} with key data")))?;
        input += 1;
    }
    let mut zero_amounts = Vec::new();
    let mut zero_offsets = Vec::new();
    let mut output = 0u64;
    while output < outputs {
        let map = reader
            .map()
            .map_err(|e| malformed(format!("output {output}: {e}")))?;
        no_key_data(&map, &V2_OUTPUT_FIELDS)
            .map_err(|name| malformed(format!("output {output}: {name} with key data")))?;
        if let Some(amount) = map
            .iter()
            .find(|p| p.key == [OUT_AMOUNT] && p.value == [0u8; 8])
        {
            // `output` < the number of maps read, which fits in memory.
            zero_amounts.push(usize::try_from(output).unwrap_or(usize::MAX));
            zero_offsets.push(amount.value_at);
        }
        output += 1;
    }
    let end = reader.pos;

    let mut sorted: Vec<&RawPair<'_>> = global.iter().collect();
    sorted.sort_by_key(|p| p.key);
    let mut out = Vec::with_capacity(end);
    out.extend_from_slice(MAGIC);
    for pair in sorted {
        out.extend_from_slice(pair.whole);
    }
    out.push(0x00);
    out.extend_from_slice(bytes.get(global_end..end).unwrap_or_default());
    // The global map keeps its length, so offsets past it are unchanged.
    for at in zero_offsets {
        if let Some(b) = out.get_mut(at) {
            *b = 1;
        }
    }
    Ok(FramedV2 {
        bytes: out,
        zero_amounts,
        trailing: bytes.len() - end,
    })
}

/// The name of the first of `fields` present with key data.
fn no_key_data(map: &[RawPair<'_>], fields: &[(u8, &'static str)]) -> Result<(), &'static str> {
    for pair in map {
        if let Some((type_value, data)) = pair.key.split_first()
            && !data.is_empty()
            && let Some((_, name)) = fields.iter().find(|(t, _)| t == type_value)
        {
            return Err(name);
        }
    }
    Ok(())
}

/// rust-psbt's deserialization error, described without its `Display` (a
/// `todo!()` in rust-psbt 0.3.0).
fn describe_v2_error(e: &psbt_v2::v2::DeserializeError) -> String {
    use psbt_v2::v2::DeserializeError as E;
    match e {
        E::InvalidMagic => "invalid magic".to_owned(),
        E::InvalidSeparator => "invalid separator".to_owned(),
        E::NoMorePairs => "no key-value pairs".to_owned(),
        E::DecodeGlobal(e) => format!("global map: {}", error_chain(e)),
        E::DecodeInput(e) => format!("input map: {}", error_chain(e)),
        E::DecodeOutput(e) => format!("output map: {}", error_chain(e)),
        _ => "rust-psbt deserialization error".to_owned(),
    }
}

/// The version-0 view of a version-2 PSBT (see the module documentation).
fn v0_view(v2: &psbt_v2::v2::Psbt) -> Result<Psbt, PsbtError> {
    let malformed = |reason: String| PsbtError::Malformed { reason };
    for (i, input) in v2.inputs.iter().enumerate() {
        if input.min_height.is_some_and(|h| h.to_consensus_u32() == 0) {
            return Err(malformed(format!(
                "input {i}: PSBT_IN_REQUIRED_HEIGHT_LOCKTIME of 0 (BIP-370: greater than 0)"
            )));
        }
    }
    let lock_time = v2.determine_lock_time().map_err(|_| {
        malformed(
            "no lock time satisfies every input: one requires a height, another a time \
             (BIP-370 lock time determination)"
                .to_owned(),
        )
    })?;
    let unsigned_tx = Transaction {
        version: v2.global.tx_version,
        lock_time,
        input: v2
            .inputs
            .iter()
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: i.previous_txid,
                    vout: i.spent_output_index,
                },
                script_sig: ScriptBuf::new(),
                sequence: i.sequence.unwrap_or(Sequence::MAX),
                witness: Witness::new(),
            })
            .collect(),
        output: v2
            .outputs
            .iter()
            .map(|o| TxOut {
                value: o.amount,
                script_pubkey: o.script_pubkey.clone(),
            })
            .collect(),
    };
    let inputs = v2
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            Ok(::bitcoin::psbt::Input {
                non_witness_utxo: input.non_witness_utxo.clone(),
                witness_utxo: input.witness_utxo.clone(),
                partial_sigs: input.partial_sigs.clone(),
                sighash_type: input
                    .sighash_type
                    .map(|t| ::bitcoin::psbt::PsbtSighashType::from_u32(t.to_u32())),
                redeem_script: input.redeem_script.clone(),
                witness_script: input.witness_script.clone(),
                bip32_derivation: secp_keys(&input.bip32_derivations)
                    .map_err(|k| malformed(format!("input {i}: {k}")))?,
                final_script_sig: input.final_script_sig.clone(),
                final_script_witness: input.final_script_witness.clone(),
                ripemd160_preimages: input.ripemd160_preimages.clone(),
                sha256_preimages: input.sha256_preimages.clone(),
                hash160_preimages: input.hash160_preimages.clone(),
                hash256_preimages: input.hash256_preimages.clone(),
                tap_key_sig: input.tap_key_sig,
                tap_script_sigs: input.tap_script_sigs.clone(),
                tap_scripts: input.tap_scripts.clone(),
                tap_key_origins: input.tap_key_origins.clone(),
                tap_internal_key: input.tap_internal_key,
                tap_merkle_root: input.tap_merkle_root,
                proprietary: proprietary(&input.proprietaries),
                unknown: unknown(&input.unknowns),
            })
        })
        .collect::<Result<Vec<_>, PsbtError>>()?;
    let outputs = v2
        .outputs
        .iter()
        .enumerate()
        .map(|(i, output)| {
            Ok(::bitcoin::psbt::Output {
                redeem_script: output.redeem_script.clone(),
                witness_script: output.witness_script.clone(),
                bip32_derivation: secp_keys(&output.bip32_derivations)
                    .map_err(|k| malformed(format!("output {i}: {k}")))?,
                tap_internal_key: output.tap_internal_key,
                tap_tree: output.tap_tree.clone(),
                tap_key_origins: output.tap_key_origins.clone(),
                proprietary: proprietary(&output.proprietaries),
                unknown: unknown(&output.unknowns),
            })
        })
        .collect::<Result<Vec<_>, PsbtError>>()?;
    Ok(Psbt {
        unsigned_tx,
        version: 0,
        xpub: v2.global.xpubs.clone(),
        proprietary: proprietary(&v2.global.proprietaries),
        unknown: unknown(&v2.global.unknowns),
        inputs,
        outputs,
    })
}

/// BIP-32 derivations keyed by the secp256k1 point, as version 0 has them;
/// a point given both compressed and uncompressed is refused.
fn secp_keys(
    map: &std::collections::BTreeMap<::bitcoin::PublicKey, KeySource>,
) -> Result<std::collections::BTreeMap<secp256k1::PublicKey, KeySource>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (key, source) in map {
        if out.insert(key.inner, source.clone()).is_some() {
            return Err(format!(
                "BIP-32 derivation of {} given both compressed and uncompressed",
                key.inner
            ));
        }
    }
    Ok(out)
}

fn proprietary(
    map: &std::collections::BTreeMap<psbt_v2::raw::ProprietaryKey, Vec<u8>>,
) -> std::collections::BTreeMap<::bitcoin::psbt::raw::ProprietaryKey, Vec<u8>> {
    map.iter()
        .map(|(k, v)| {
            (
                ::bitcoin::psbt::raw::ProprietaryKey {
                    prefix: k.prefix.clone(),
                    subtype: k.subtype,
                    key: k.key.clone(),
                },
                v.clone(),
            )
        })
        .collect()
}

fn unknown(
    map: &std::collections::BTreeMap<psbt_v2::raw::Key, Vec<u8>>,
) -> std::collections::BTreeMap<::bitcoin::psbt::raw::Key, Vec<u8>> {
    map.iter()
        .map(|(k, v)| {
            (
                ::bitcoin::psbt::raw::Key {
                    type_value: k.type_value,
                    key: k.key.clone(),
                },
                v.clone(),
            )
        })
        .collect()
}

/// One key-value pair of a PSBT map (BIP-174 framing only).
struct RawPair<'a> {
    /// `<keytype> <keydata>`.
    key: &'a [u8],
    value: &'a [u8],
    /// Where `value` starts in the whole input.
    value_at: usize,
    /// The pair as encoded (lengths included).
    whole: &'a [u8],
}

/// A cursor over PSBT bytes that only follows BIP-174's map framing.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], pos: usize) -> Self {
        Self { bytes, pos }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= rest.len())
            .ok_or_else(|| format!("{n} bytes announced, {} left", rest.len()))?;
        let out = rest.get(..n).unwrap_or_default();
        self.pos += n;
        Ok(out)
    }

    /// A compact size (canonical, as rust-bitcoin reads them).
    fn compact_size(&mut self) -> Result<u64, String> {
        let first = *self.take(1)?.first().ok_or("truncated")?;
        let (len, min) = match first {
            0xfd => (2, 0xfd),
            0xfe => (4, 0x1_0000),
            0xff => (8, 0x1_0000_0000),
            n => return Ok(u64::from(n)),
        };
        let mut buf = [0u8; 8];
        buf.get_mut(..len)
            .ok_or("compact size")?
            .copy_from_slice(self.take(len as u64)?);
        let value = u64::from_le_bytes(buf);
        if value < min {
            return Err(format!("non-minimal compact size {value}"));
        }
        Ok(value)
    }

    /// The next pair, or `None` at the map's separator.
    fn pair(&mut self) -> Result<Option<RawPair<'a>>, String> {
        let start = self.pos;
        let key_len = self.compact_size()?;
        if key_len == 0 {
            return Ok(None);
        }
        let key = self.take(key_len)?;
        let value_len = self.compact_size()?;
        let value_at = self.pos;
        let value = self.take(value_len)?;
        let whole = self.bytes.get(start..self.pos).unwrap_or_default();
        Ok(Some(RawPair {
            key,
            value,
            value_at,
            whole,
        }))
    }

    /// A whole map up to its separator; duplicate keys refused.
    fn map(&mut self) -> Result<Vec<RawPair<'a>>, String> {
        let mut pairs: Vec<RawPair<'a>> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(pair) = self.pair()? {
            if !seen.insert(pair.key) {
                return Err(format!("duplicate key {}", hex::encode(pair.key)));
            }
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

/// An error's message followed by its sources'.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Checks every input against `key`, computes the sighashes and sums the
/// amounts. A [`DecodedPsbt`] (of either version) is analyzed through its
/// version-0 view: `analyze(&decoded, …)` takes it as it is.
pub fn analyze(psbt: &Psbt, key: &SigningKey, network: Network) -> Result<PsbtSummary, PsbtError> {
    check_network(psbt, network)?;
    let tx = &psbt.unsigned_tx;
    if tx.input.is_empty() {
        return Err(PsbtError::Empty {
            reason: "no inputs",
        });
    }
    if tx.output.is_empty() {
        return Err(PsbtError::Empty {
            reason: "no outputs",
        });
    }
    let resolved = Resolved::new(key)?;

    let mut inputs = Vec::with_capacity(tx.input.len());
    let mut total_in: u64 = 0;
    for index in 0..tx.input.len() {
        let prepared = prepare_input(psbt, index, &resolved)?;
        total_in = add_sat(total_in, prepared.summary.amount)?;
        inputs.push(prepared.summary);
    }

    let mut outputs = Vec::with_capacity(tx.output.len());
    let mut change = Vec::new();
    let mut destinations = Vec::new();
    let (mut total_out, mut total_change, mut total_out_to_others) = (0u64, 0u64, 0u64);
    for (index, txout) in tx.output.iter().enumerate() {
        let amount = checked_amount(txout.value)?;
        total_out = add_sat(total_out, amount)?;
        let is_change = resolved.is_own_output(psbt, index, &txout.script_pubkey);
        let address = Address::from_script(&txout.script_pubkey, network)
            .ok()
            .map(|a| a.to_string());
        let script_pubkey = txout.script_pubkey.to_bytes();
        if is_change {
            total_change = add_sat(total_change, amount)?;
            change.push(index);
        } else {
            total_out_to_others = add_sat(total_out_to_others, amount)?;
            destinations.push(Destination {
                index,
                address: address.clone(),
                script_pubkey: script_pubkey.clone(),
                amount,
            });
        }
        outputs.push(OutputSummary {
            index,
            amount,
            script_pubkey,
            address,
            is_change,
        });
    }
    let fee = total_in
        .checked_sub(total_out)
        .ok_or(PsbtError::NegativeFee {
            inputs: total_in,
            outputs: total_out,
        })?;
    Ok(PsbtSummary {
        txid: tx.compute_txid().to_string(),
        inputs,
        outputs,
        change,
        destinations,
        total_in,
        total_out,
        total_change,
        total_out_to_others,
        fee,
    })
}

/// Checks one input against `key` and computes its sighash (the other
/// inputs' previous outputs are needed too for a Taproot input).
pub fn input_sighash(
    psbt: &Psbt,
    index: usize,
    key: &SigningKey,
) -> Result<InputSummary, PsbtError> {
    let resolved = Resolved::new(key)?;
    prepare_input(psbt, index, &resolved).map(|p| p.summary)
}

/// Puts `signatures` (input index, signature bytes) into `psbt`, checking
/// each against its input's sighash and key, and finalizes those inputs.
/// Returns the updated PSBT and, when every input is final, the raw signed
/// transaction (consensus encoding).
///
/// `psbt` is a version-0 [`Psbt`] or a [`DecodedPsbt`]; the result has the
/// same type and, for a [`DecodedPsbt`], the same PSBT version: a version-2
/// PSBT comes back as version 2 (its finalized inputs with
/// `PSBT_IN_FINAL_SCRIPTWITNESS`, its Inputs and Outputs Modifiable flags
/// cleared), for [`to_base64`] or [`DecodedPsbt::serialize`].
pub fn finalize<P: PsbtForm>(
    psbt: &P,
    key: &SigningKey,
    signatures: &[(usize, Vec<u8>)],
) -> Result<(P, Option<Vec<u8>>), PsbtError> {
    let (finalized, witnesses) = finalize_view(psbt.view(), key, signatures)?;
    let out = psbt.with_finalized(finalized, &witnesses)?;
    let view = out.view();
    let all_final = view
        .inputs
        .iter()
        .all(|i| i.final_script_witness.is_some() || i.final_script_sig.is_some());
    let raw = if all_final {
        Some(consensus::encode::serialize(
            &view.clone().extract_tx_unchecked_fee_rate(),
        ))
    } else {
        None
    };
    Ok((out, raw))
}

/// [`finalize`] on the version-0 view: the finalized view and the witness
/// of each input finalized.
fn finalize_view(
    psbt: &Psbt,
    key: &SigningKey,
    signatures: &[(usize, Vec<u8>)],
) -> Result<(Psbt, Vec<(usize, Witness)>), PsbtError> {
    let resolved = Resolved::new(key)?;
    let mut out = psbt.clone();
    let mut witnesses = Vec::with_capacity(signatures.len());
    for (index, sig) in signatures {
        let index = *index;
        let prepared = prepare_input(&out, index, &resolved)?;
        let msg = Message::from_digest(prepared.summary.sighash);
        let bad = |reason: String| PsbtError::BadSignature {
            input: index,
            reason,
        };
        let witness = match prepared.signer {
            Signer::Taproot { key: q } => {
                let parsed = ::bitcoin::taproot::Signature::from_slice(sig)
                    .map_err(|e| bad(error_chain(&e)))?;
                if sig.len() == 65 && parsed.sighash_type == TapSighashType::Default {
                    return Err(bad(
                        "a 65-byte signature must not carry SIGHASH_DEFAULT (BIP-341)".to_owned(),
                    ));
                }
                let wanted = match prepared.summary.sighash_type {
                    SighashKind::TaprootAll => TapSighashType::All,
                    _ => TapSighashType::Default,
                };
                if parsed.sighash_type != wanted {
                    return Err(bad(format!(
                        "signature carries {} but the input is signed with {wanted}",
                        parsed.sighash_type
                    )));
                }
                resolved
                    .secp
                    .verify_schnorr(&parsed.signature, &msg, &q)
                    .map_err(|e| bad(format!("does not verify against the key: {e}")))?;
                let input = out.inputs.get_mut(index).ok_or(PsbtError::NoSuchInput {
                    input: index,
                    count: psbt.inputs.len(),
                })?;
                input.tap_key_sig = Some(parsed);
                Witness::from_slice(&[parsed.to_vec()])
            }
            Signer::P2wpkh { key: pk } => {
                let parsed = ::bitcoin::ecdsa::Signature::from_slice(sig)
                    .map_err(|e| bad(error_chain(&e)))?;
                if parsed.sighash_type != EcdsaSighashType::All {
                    return Err(bad(format!(
                        "signature carries {} but the input is signed with SIGHASH_ALL",
                        parsed.sighash_type
                    )));
                }
                let mut normalized = parsed.signature;
                normalized.normalize_s();
                if normalized != parsed.signature {
                    return Err(bad("high-S signature (non-standard, BIP-146)".to_owned()));
                }
                resolved
                    .secp
                    .verify_ecdsa(&msg, &parsed.signature, &pk)
                    .map_err(|e| bad(format!("does not verify against the key: {e}")))?;
                let input = out.inputs.get_mut(index).ok_or(PsbtError::NoSuchInput {
                    input: index,
                    count: psbt.inputs.len(),
                })?;
                input
                    .partial_sigs
                    .insert(::bitcoin::PublicKey::new(pk), parsed);
                Witness::from_slice(&[parsed.to_vec(), pk.serialize().to_vec()])
            }
        };
        let input = out.inputs.get_mut(index).ok_or(PsbtError::NoSuchInput {
            input: index,
            count: psbt.inputs.len(),
        })?;
        finalize_input(input, witness.clone());
        witnesses.push((index, witness));
    }
    Ok((out, witnesses))
}

/// A threshold signature over `input`'s sighash in the form [`finalize`]
/// takes: a 64-byte BIP-340 signature as is (`SIGHASH_DEFAULT`) or with the
/// byte `0x01` (`SIGHASH_ALL`); a 64-byte ECDSA `r ‖ s` normalized to low-S
/// (BIP-146) and DER-encoded with the byte `0x01`.
pub fn psbt_signature(input: &InputSummary, signature: &[u8]) -> Result<Vec<u8>, PsbtError> {
    let bad = |reason: String| PsbtError::BadSignature {
        input: input.index,
        reason,
    };
    if signature.len() != 64 {
        return Err(bad(format!(
            "a threshold signature is 64 bytes, got {}",
            signature.len()
        )));
    }
    match input.sighash_type {
        SighashKind::TaprootDefault => Ok(signature.to_vec()),
        SighashKind::TaprootAll => {
            let mut out = signature.to_vec();
            out.push(TapSighashType::All as u8);
            Ok(out)
        }
        SighashKind::EcdsaAll => {
            let mut sig = secp256k1::ecdsa::Signature::from_compact(signature)
                .map_err(|e| bad(e.to_string()))?;
            sig.normalize_s();
            Ok(::bitcoin::ecdsa::Signature {
                signature: sig,
                sighash_type: EcdsaSighashType::All,
            }
            .to_vec())
        }
    }
}

/// The PSBT as base64 text (BIP-174's text form), in its own version: a
/// [`DecodedPsbt`] decoded from version 2 is encoded as version 2.
pub fn to_base64<P: PsbtForm>(psbt: &P) -> String {
    use ::bitcoin::base64::Engine as _;
    ::bitcoin::base64::engine::general_purpose::STANDARD.encode(psbt.to_bytes())
}

/// BIP-174's input finalizer: set the final witness, clear everything but
/// the previous outputs and unknown/proprietary fields.
fn finalize_input(input: &mut ::bitcoin::psbt::Input, witness: Witness) {
    let kept = ::bitcoin::psbt::Input {
        non_witness_utxo: input.non_witness_utxo.take(),
        witness_utxo: input.witness_utxo.take(),
        final_script_witness: Some(witness),
        proprietary: std::mem::take(&mut input.proprietary),
        unknown: std::mem::take(&mut input.unknown),
        ..Default::default()
    };
    *input = kept;
}

/// [`finalize_input`] for a version-2 input: the fields its transaction is
/// built from (previous txid, output index, sequence, required lock times)
/// are kept too.
fn finalize_v2_input(input: &mut psbt_v2::v2::Input, witness: Witness) {
    let mut kept = psbt_v2::v2::Input::new(&OutPoint {
        txid: input.previous_txid,
        vout: input.spent_output_index,
    });
    kept.sequence = input.sequence;
    kept.min_time = input.min_time;
    kept.min_height = input.min_height;
    kept.non_witness_utxo = input.non_witness_utxo.take();
    kept.witness_utxo = input.witness_utxo.take();
    kept.final_script_witness = Some(witness);
    kept.proprietaries = std::mem::take(&mut input.proprietaries);
    kept.unknowns = std::mem::take(&mut input.unknowns);
    *input = kept;
}

/// The signing key, parsed once.
struct Resolved {
    secp: Secp256k1<VerifyOnly>,
    kind: ResolvedKind,
}

enum ResolvedKind {
    Taproot {
        q: XOnlyPublicKey,
        script: ScriptBuf,
    },
    P2wpkh {
        master: Xpub,
        fingerprint: Fingerprint,
        /// The request path and the key there.
        request: Option<(Vec<u32>, secp256k1::PublicKey)>,
    },
}

/// Which key signs an input, and how.
enum Signer {
    Taproot { key: XOnlyPublicKey },
    P2wpkh { key: secp256k1::PublicKey },
}

struct Prepared {
    summary: InputSummary,
    signer: Signer,
}

impl Resolved {
    fn new(key: &SigningKey) -> Result<Self, PsbtError> {
        let secp = Secp256k1::verification_only();
        let kind = match key {
            SigningKey::Taproot { output_key_xonly } => {
                let q = XOnlyPublicKey::from_slice(output_key_xonly).map_err(|e| {
                    PsbtError::InvalidKey {
                        reason: format!("Taproot output key: {e}"),
                    }
                })?;
                ResolvedKind::Taproot {
                    q,
                    script: p2tr_script(output_key_xonly),
                }
            }
            SigningKey::P2wpkh {
                public_key,
                chain_code,
                request_path,
            } => {
                let pk = secp256k1::PublicKey::from_slice(public_key).map_err(|e| {
                    PsbtError::InvalidKey {
                        reason: format!("P2WPKH public key: {e}"),
                    }
                })?;
                let master = Xpub {
                    // Public derivation does not depend on the network.
                    network: NetworkKind::Main,
                    depth: 0,
                    parent_fingerprint: Fingerprint::default(),
                    child_number: ChildNumber::Normal { index: 0 },
                    public_key: pk,
                    chain_code: ChainCode::from(*chain_code),
                };
                let request = match request_path {
                    None => None,
                    Some(path) => {
                        let derived = derive(&secp, &master, path).map_err(|_| {
                            PsbtError::HardenedDerivation {
                                input: None,
                                path: path_string(path),
                            }
                        })?;
                        Some((path.clone(), derived))
                    }
                };
                ResolvedKind::P2wpkh {
                    fingerprint: master.fingerprint(),
                    master,
                    request,
                }
            }
        };
        Ok(Self { secp, kind })
    }

    /// Whether output `index` (script `script`) pays to one of our scripts.
    fn is_own_output(&self, psbt: &Psbt, index: usize, script: &ScriptBuf) -> bool {
        match &self.kind {
            ResolvedKind::Taproot { script: ours, .. } => script == ours,
            ResolvedKind::P2wpkh {
                master,
                fingerprint,
                request,
            } => {
                let Some(program) = p2wpkh_program(script) else {
                    return false;
                };
                if pays_to(&program, &master.public_key)
                    || request.as_ref().is_some_and(|(_, k)| pays_to(&program, k))
                {
                    return true;
                }
                let Some(output) = psbt.outputs.get(index) else {
                    return false;
                };
                output
                    .bip32_derivation
                    .values()
                    .filter(|(fp, _)| fp == fingerprint)
                    .filter_map(|(_, path)| normal_indices(path))
                    .filter_map(|path| derive(&self.secp, master, &path).ok())
                    .any(|child| pays_to(&program, &child))
            }
        }
    }
}

fn prepare_input(psbt: &Psbt, index: usize, key: &Resolved) -> Result<Prepared, PsbtError> {
    let count = psbt.unsigned_tx.input.len();
    let input = psbt
        .inputs
        .get(index)
        .filter(|_| index < count)
        .ok_or(PsbtError::NoSuchInput {
            input: index,
            count,
        })?;
    if input.final_script_witness.is_some() || input.final_script_sig.is_some() {
        return Err(PsbtError::UnsupportedInput {
            input: index,
            reason: "already finalized".to_owned(),
        });
    }
    let utxo = spent_output(psbt, index)?;
    let amount = checked_amount(utxo.value)?;
    let script = &utxo.script_pubkey;
    let sighash_err = |e: &dyn std::error::Error| PsbtError::Sighash {
        input: index,
        reason: error_chain(e),
    };
    match &key.kind {
        ResolvedKind::Taproot { q, script: ours } => {
            if script != ours {
                return Err(PsbtError::NotOurKey {
                    input: index,
                    reason: format!(
                        "script {} is not the key's P2TR output OP_1 <{}>",
                        script.to_hex_string(),
                        hex::encode(q.serialize())
                    ),
                });
            }
            if !input.tap_scripts.is_empty() || !input.tap_script_sigs.is_empty() {
                return Err(PsbtError::UnsupportedInput {
                    input: index,
                    reason: "Taproot script-path data present; only key-path spends are signed"
                        .to_owned(),
                });
            }
            let (hash_ty, kind) = match input.sighash_type.map(|t| t.to_u32()) {
                None | Some(0x00) => (TapSighashType::Default, SighashKind::TaprootDefault),
                Some(0x01) => (TapSighashType::All, SighashKind::TaprootAll),
                Some(other) => {
                    return Err(PsbtError::UnsupportedSighash {
                        input: index,
                        sighash_type: other,
                        reason: "Taproot inputs are signed with SIGHASH_DEFAULT or SIGHASH_ALL",
                    });
                }
            };
            let prevouts = all_spent_outputs(psbt)?;
            let sighash = SighashCache::new(&psbt.unsigned_tx)
                .taproot_key_spend_signature_hash(index, &Prevouts::All(&prevouts), hash_ty)
                .map_err(|e| sighash_err(&e))?;
            Ok(Prepared {
                summary: InputSummary {
                    index,
                    amount,
                    sighash: sighash.to_byte_array(),
                    sighash_type: kind,
                    public_key: q.serialize().to_vec(),
                    derivation_path: None,
                },
                signer: Signer::Taproot { key: *q },
            })
        }
        ResolvedKind::P2wpkh {
            master,
            fingerprint,
            request,
        } => {
            let Some(program) = p2wpkh_program(script) else {
                return Err(PsbtError::NotOurKey {
                    input: index,
                    reason: format!(
                        "script {} is not P2WPKH (OP_0 <20 bytes>)",
                        script.to_hex_string()
                    ),
                });
            };
            // Candidates: the master key, the request's child, the PSBT's
            // children under our fingerprint (derived here, not trusted).
            let mut found: Option<(secp256k1::PublicKey, Option<Vec<u32>>)> = None;
            if pays_to(&program, &master.public_key) {
                found = Some((master.public_key, None));
            }
            if found.is_none()
                && let Some((path, child)) = request
                && pays_to(&program, child)
            {
                found = Some((*child, Some(path.clone())));
            }
            for (fp, path) in input.bip32_derivation.values() {
                if fp != fingerprint {
                    continue;
                }
                let Some(indices) = normal_indices(path) else {
                    return Err(PsbtError::HardenedDerivation {
                        input: Some(index),
                        path: format!("m/{path}"),
                    });
                };
                if found.is_some() {
                    continue;
                }
                if let Ok(child) = derive(&key.secp, master, &indices)
                    && pays_to(&program, &child)
                {
                    found = Some((child, Some(indices)));
                }
            }
            let Some((pk, derivation_path)) = found else {
                return Err(PsbtError::NotOurKey {
                    input: index,
                    reason: format!(
                        "P2WPKH program {} is neither the key's nor a child's at the \
                         request's or the PSBT's derivation paths",
                        hex::encode(program)
                    ),
                });
            };
            match input.sighash_type.map(|t| t.to_u32()) {
                None | Some(0x01) => {}
                Some(other) => {
                    return Err(PsbtError::UnsupportedSighash {
                        input: index,
                        sighash_type: other,
                        reason: "P2WPKH inputs are signed with SIGHASH_ALL",
                    });
                }
            }
            let sighash = SighashCache::new(&psbt.unsigned_tx)
                .p2wpkh_signature_hash(index, script, utxo.value, EcdsaSighashType::All)
                .map_err(|e| sighash_err(&e))?;
            Ok(Prepared {
                summary: InputSummary {
                    index,
                    amount,
                    sighash: sighash.to_byte_array(),
                    sighash_type: SighashKind::EcdsaAll,
                    public_key: pk.serialize().to_vec(),
                    derivation_path,
                },
                signer: Signer::P2wpkh { key: pk },
            })
        }
    }
}

/// The previous output input `index` spends, from `witness_utxo` or
/// `non_witness_utxo` (checked against the outpoint; both must agree).
fn spent_output(psbt: &Psbt, index: usize) -> Result<TxOut, PsbtError> {
    let count = psbt.unsigned_tx.input.len();
    let (Some(txin), Some(input)) = (psbt.unsigned_tx.input.get(index), psbt.inputs.get(index))
    else {
        return Err(PsbtError::NoSuchInput {
            input: index,
            count,
        });
    };
    let mismatch = |reason: String| PsbtError::UtxoMismatch {
        input: index,
        reason,
    };
    let from_full = match &input.non_witness_utxo {
        None => None,
        Some(prev) => {
            let txid = prev.compute_txid();
            if txid != txin.previous_output.txid {
                return Err(mismatch(format!(
                    "non_witness_utxo is transaction {txid}, the input spends {}",
                    txin.previous_output
                )));
            }
            let out = usize::try_from(txin.previous_output.vout)
                .ok()
                .and_then(|v| prev.output.get(v))
                .ok_or_else(|| {
                    mismatch(format!(
                        "non_witness_utxo has {} outputs, the input spends output {}",
                        prev.output.len(),
                        txin.previous_output.vout
                    ))
                })?;
            Some(out.clone())
        }
    };
    match (&input.witness_utxo, from_full) {
        (Some(w), Some(f)) if *w != f => Err(mismatch(
            "witness_utxo and non_witness_utxo disagree".to_owned(),
        )),
        (Some(w), _) => Ok(w.clone()),
        (None, Some(f)) => Ok(f),
        (None, None) => Err(PsbtError::MissingUtxo { input: index }),
    }
}

fn all_spent_outputs(psbt: &Psbt) -> Result<Vec<TxOut>, PsbtError> {
    (0..psbt.unsigned_tx.input.len())
        .map(|i| spent_output(psbt, i))
        .collect()
}

/// Refuses global xpubs of another network kind (mainnet vs test networks).
fn check_network(psbt: &Psbt, network: Network) -> Result<(), PsbtError> {
    let expected = NetworkKind::from(network);
    let name = |k: NetworkKind| match k {
        NetworkKind::Main => "mainnet",
        NetworkKind::Test => "a test network",
    };
    match psbt.xpub.keys().find(|x| x.network != expected) {
        Some(x) => Err(PsbtError::WrongNetwork {
            expected: name(expected),
            found: name(x.network),
        }),
        None => Ok(()),
    }
}

fn checked_amount(value: Amount) -> Result<u64, PsbtError> {
    if value > Amount::MAX_MONEY {
        return Err(PsbtError::Amount {
            reason: format!("{} sat exceeds 21 million BTC", value.to_sat()),
        });
    }
    Ok(value.to_sat())
}

fn add_sat(a: u64, b: u64) -> Result<u64, PsbtError> {
    a.checked_add(b)
        .filter(|s| *s <= Amount::MAX_MONEY.to_sat())
        .ok_or_else(|| PsbtError::Amount {
            reason: "sum exceeds 21 million BTC".to_owned(),
        })
}

/// `OP_1 <Q>`.
fn p2tr_script(q: &[u8; 32]) -> ScriptBuf {
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&[0x51, 0x20]);
    bytes.extend_from_slice(q);
    ScriptBuf::from_bytes(bytes)
}

/// The 20-byte program of an `OP_0 <20 bytes>` script.
fn p2wpkh_program(script: &ScriptBuf) -> Option<[u8; 20]> {
    match script.as_bytes() {
        [0x00, 0x14, rest @ ..] => rest.try_into().ok(),
        _ => None,
    }
}

fn pays_to(program: &[u8; 20], key: &secp256k1::PublicKey) -> bool {
    hash160::Hash::hash(&key.serialize()).to_byte_array() == *program
}

/// The indices of a path with no hardened step.
fn normal_indices(path: &DerivationPath) -> Option<Vec<u32>> {
    path.into_iter()
        .map(|c| match c {
            ChildNumber::Normal { index } => Some(*index),
            ChildNumber::Hardened { .. } => None,
        })
        .collect()
}

/// Public derivation along non-hardened `indices`.
fn derive(
    secp: &Secp256k1<VerifyOnly>,
    master: &Xpub,
    indices: &[u32],
) -> Result<secp256k1::PublicKey, ()> {
    let path: Vec<ChildNumber> = indices
        .iter()
        .map(|i| ChildNumber::from_normal_idx(*i))
        .collect::<Result<_, _>>()
        .map_err(|_| ())?;
    master
        .derive_pub(secp, &path)
        .map(|x| x.public_key)
        .map_err(|_| ())
}

fn path_string(indices: &[u32]) -> String {
    let mut s = "m".to_owned();
    for i in indices {
        if *i >= 0x8000_0000 {
            s.push_str(&format!("/{}'", i - 0x8000_0000));
        } else {
            s.push_str(&format!("/{i}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_sizes_must_be_minimal() {
        let read = |bytes: &[u8]| Reader::new(bytes, 0).compact_size();
        assert_eq!(read(&[0xfc]), Ok(0xfc));
        assert_eq!(read(&[0xfd, 0xfd, 0x00]), Ok(0xfd));
        assert_eq!(read(&[0xfe, 0x00, 0x00, 0x01, 0x00]), Ok(0x1_0000));
        assert_eq!(read(&[0xff, 0, 0, 0, 0, 1, 0, 0, 0]), Ok(0x1_0000_0000));
        assert!(read(&[0xfd, 0xfc, 0x00]).is_err());
        assert!(read(&[0xfe, 0xff, 0xff, 0x00, 0x00]).is_err());
        assert!(read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        assert!(read(&[0xfd, 0x01]).is_err());
        assert!(read(&[]).is_err());
    }

    #[test]
    fn the_version_is_read_from_the_global_map_only() {
        // Global map: an unknown pair, then PSBT_GLOBAL_VERSION 2.
        let mut v2 = MAGIC.to_vec();
        v2.extend_from_slice(&[0x02, 0xf0, 0x00, 0x01, 0xaa]);
        v2.extend_from_slice(&[0x01, 0xfb, 0x04, 2, 0, 0, 0, 0x00]);
        assert_eq!(global_version(&v2), Some(2));
        // A version key in the first input map is not the PSBT's version.
        let mut v0 = MAGIC.to_vec();
        v0.extend_from_slice(&[0x00, 0x01, 0xfb, 0x04, 2, 0, 0, 0, 0x00]);
        assert_eq!(global_version(&v0), None);
        // A version that is not 4 bytes is left for the parser to refuse.
        let mut odd = MAGIC.to_vec();
        odd.extend_from_slice(&[0x01, 0xfb, 0x01, 2, 0x00]);
        assert_eq!(global_version(&odd), None);
    }

    #[test]
    fn path_strings() {
        assert_eq!(path_string(&[]), "m");
        assert_eq!(path_string(&[0, 5]), "m/0/5");
        assert_eq!(path_string(&[0x8000_0000 + 44, 1]), "m/44'/1");
    }

    #[test]
    fn p2wpkh_program_only_matches_v0_20_bytes() {
        let mut s = vec![0x00, 0x14];
        s.extend_from_slice(&[7u8; 20]);
        assert_eq!(p2wpkh_program(&ScriptBuf::from_bytes(s)), Some([7u8; 20]));
        let mut wsh = vec![0x00, 0x20];
        wsh.extend_from_slice(&[7u8; 32]);
        assert_eq!(p2wpkh_program(&ScriptBuf::from_bytes(wsh)), None);
        assert_eq!(
            p2wpkh_program(&ScriptBuf::from_bytes(vec![0x00, 0x14])),
            None
        );
    }

    #[test]
    fn sums_stop_at_max_money() {
        let max = Amount::MAX_MONEY.to_sat();
        assert_eq!(add_sat(max - 1, 1), Ok(max));
        assert!(matches!(add_sat(max, 1), Err(PsbtError::Amount { .. })));
        assert!(matches!(
            add_sat(u64::MAX, 1),
            Err(PsbtError::Amount { .. })
        ));
        assert!(matches!(
            checked_amount(Amount::from_sat(max + 1)),
            Err(PsbtError::Amount { .. })
        ));
    }

    #[test]
    fn hardened_request_path_refused() {
        let key = SigningKey::P2wpkh {
            public_key: G,
            chain_code: [1; 32],
            request_path: Some(vec![0, 0x8000_0001]),
        };
        assert_eq!(
            Resolved::new(&key).err(),
            Some(PsbtError::HardenedDerivation {
                input: None,
                path: "m/0/1'".to_owned()
            })
        );
    }

    /// The generator, compressed.
    const G: [u8; 33] = [
        0x02, 0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87,
        0x0b, 0x07, 0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16,
        0xf8, 0x17, 0x98,
    ];
}
