//! Bitcoin PSBTs (BIP-174) as a signing node sees them: decode, check that
//! every input it signs pays to its key, compute the sighashes, and put the
//! signatures back.
//!
//! # What the node decodes
//!
//! [`decode_psbt`] takes a PSBT as binary (`psbt\xff…`) or as base64 text
//! (`cHNidP8…`, surrounding ASCII whitespace allowed) and parses it with
//! rust-bitcoin's BIP-174 parser. Everything that parser refuses is refused
//! ([`PsbtError::Malformed`], with its reason: bad magic, truncation,
//! duplicate keys, a global transaction carrying scriptSigs or witnesses,
//! counts larger than the payload, invalid keys or signatures in the maps),
//! and so are bytes left over after the last output map
//! ([`PsbtError::TrailingBytes`]).
//!
//! **PSBT version 2 (BIP-370) is not supported**: rust-bitcoin 0.32 parses
//! version 0 only and refuses any other `PSBT_GLOBAL_VERSION`; the node
//! reports that as [`PsbtError::UnsupportedVersion`] rather than parsing v2
//! by hand.
//!
//! [`analyze`] then looks at the PSBT on behalf of one [`SigningKey`]:
//!
//! - **Taproot key-path spends (BIP-341)** for `frost-taproot` keys. The key
//!   is the tweaked output key `Q` (the group key is already tweaked), so an
//!   input is ours when its previous output's script is `OP_1 <Q>`. The
//!   sighash is BIP-341's key-path message over *all* the transaction's
//!   previous outputs, with `SIGHASH_DEFAULT` (no `PSBT_IN_SIGHASH_TYPE`, or
//!   `0x00`) or `SIGHASH_ALL` (`0x01`). No annex is ever committed to (PSBT
//!   v0 has no annex field and [`finalize`] writes a witness holding only the
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
//! rate: the fee is in the summary, for the policy.
//!
//! rust-bitcoin's libsecp256k1 bindings are used here to parse keys, derive
//! public child keys and *verify* signatures; nothing here signs.

use std::io::BufRead as _;

use ::bitcoin::bip32::{ChainCode, ChildNumber, DerivationPath, Fingerprint, Xpub};
use ::bitcoin::hashes::{Hash as _, hash160};
use ::bitcoin::secp256k1::{self, Message, Secp256k1, VerifyOnly, XOnlyPublicKey};
use ::bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use ::bitcoin::{Address, Amount, NetworkKind, ScriptBuf, TxOut, Witness, consensus};

pub use ::bitcoin::Network;
pub use ::bitcoin::psbt::Psbt;

/// The PSBT magic bytes, `psbt` followed by the `0xff` separator.
const MAGIC: &[u8] = b"psbt\xff";

/// Why a PSBT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsbtError {
    /// The bytes are not a PSBT rust-bitcoin accepts (or not base64).
    #[error("malformed PSBT: {reason}")]
    Malformed {
        /// What the parser found.
        reason: String,
    },
    /// A PSBT version other than 0 (BIP-370 version 2 included).
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

/// Decodes a PSBT given as binary or base64 text.
pub fn decode_psbt(bytes: &[u8]) -> Result<Psbt, PsbtError> {
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

fn decode_binary(bytes: &[u8]) -> Result<Psbt, PsbtError> {
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
    Ok(psbt)
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
/// amounts.
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
pub fn finalize(
    psbt: &Psbt,
    key: &SigningKey,
    signatures: &[(usize, Vec<u8>)],
) -> Result<(Psbt, Option<Vec<u8>>), PsbtError> {
    let resolved = Resolved::new(key)?;
    let mut out = psbt.clone();
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
        finalize_input(input, witness);
    }
    let all_final = out
        .inputs
        .iter()
        .all(|i| i.final_script_witness.is_some() || i.final_script_sig.is_some());
    let raw = if all_final {
        Some(consensus::encode::serialize(
            &out.clone().extract_tx_unchecked_fee_rate(),
        ))
    } else {
        None
    };
    Ok((out, raw))
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
