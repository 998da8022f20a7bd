//! Bitcoin PSBTs as the policy sees them: [`sigil_chains::bitcoin::psbt`]
//! decodes the PSBT, checks that every input pays to the key and computes
//! each input's sighash; this module turns its summary into a [`Parsed`].
//!
//! | PSBT | [`Parsed`] |
//! |---|---|
//! | network (`BitcoinPsbt.network`, default mainnet) | chain `bitcoin:<network>` |
//! | an output not paying to the key's own scripts | a movement of `bitcoin:<network>/native` to its address (`script:<hex>` for scripts without one, such as `OP_RETURN`) |
//! | an output paying to the key (change) | nothing |
//! | Σ inputs − Σ outputs | the fee, counted in the asset's limits beside the movements |
//! | input *i* | part *i*: its 32-byte sighash (BIP-341 key path or BIP-143), encoding RAW, and for ECDSA keys the derivation path of the key that signs it |
//!
//! A transfer to nobody but the key itself is still a native transfer (of
//! nothing but its fee). Everything the decoder refuses is refused with its
//! reason ([`PayloadError::Psbt`]).

use sigil_chains::bitcoin::psbt::{self, Network, SigningKey};
use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::ecdsa::DerivationPath;
use sigil_protocol::engine::{self, Encoding};

use super::{Fee, KeyView, Movement, Parsed, PayloadError, PayloadKind, SignPart};
use crate::amount::Amount;
use crate::chain::native_asset;

/// Reads a PSBT for `key` (a `frost-taproot` or `ecdsa-secp256k1` key).
pub fn parse_psbt(key: &KeyView<'_>, payload: &pb::BitcoinPsbt) -> Result<Parsed, PayloadError> {
    let (network, name) = network(&payload.network)?;
    let signing = signing_key(key)?;
    let decoded =
        psbt::decode_psbt(&payload.psbt).map_err(|e| PayloadError::Psbt(e.to_string()))?;
    let summary = psbt::analyze(&decoded, &signing, network)
        .map_err(|e| PayloadError::Psbt(e.to_string()))?;
    let chain = format!("bitcoin:{name}");
    let asset = native_asset(&chain);
    let movements = summary
        .destinations
        .iter()
        .map(|d| Movement {
            asset: asset.clone(),
            amount: Amount::from(d.amount),
            destination: d
                .address
                .clone()
                .unwrap_or_else(|| format!("script:{}", hex::encode(&d.script_pubkey))),
        })
        .collect();
    let parts = summary
        .inputs
        .iter()
        .map(|input| SignPart {
            message: input.sighash.to_vec(),
            encoding: Encoding::Raw,
            derivation_path: match key.scheme {
                Scheme::EcdsaSecp256k1 => Some(path_string(input.derivation_path.as_deref())),
                _ => None,
            },
        })
        .collect();
    Ok(Parsed {
        chain: Some(chain),
        kind: PayloadKind::NativeTransfer,
        movements,
        calls: Vec::new(),
        fee: Some(Fee {
            asset,
            amount: Amount::from(summary.fee),
        }),
        parts,
    })
}

/// The network a `BitcoinPsbt` names, and its name in chain names.
pub fn network(name: &str) -> Result<(Network, &'static str), PayloadError> {
    Ok(match name {
        "" | "mainnet" | "bitcoin" => (Network::Bitcoin, "mainnet"),
        "testnet" => (Network::Testnet, "testnet"),
        "testnet4" => (Network::Testnet4, "testnet4"),
        "signet" => (Network::Signet, "signet"),
        "regtest" => (Network::Regtest, "regtest"),
        other => return Err(PayloadError::UnknownNetwork(other.to_owned())),
    })
}

/// The key a node signs the PSBT's inputs with, read from the stored key
/// (never from the PSBT).
pub fn signing_key(key: &KeyView<'_>) -> Result<SigningKey, PayloadError> {
    match key.scheme {
        Scheme::FrostTaproot => {
            if !key.derivation_path.is_empty() {
                return Err(PayloadError::Key(
                    "frost-taproot keys have no derivation paths".into(),
                ));
            }
            let output_key_xonly = key.public_key.try_into().map_err(|_| {
                PayloadError::Key(format!(
                    "a Taproot output key is 32 bytes, got {}",
                    key.public_key.len()
                ))
            })?;
            Ok(SigningKey::Taproot { output_key_xonly })
        }
        Scheme::EcdsaSecp256k1 => {
            let public_key = key.public_key.try_into().map_err(|_| {
                PayloadError::Key(format!(
                    "a compressed secp256k1 key is 33 bytes, got {}",
                    key.public_key.len()
                ))
            })?;
            let chain_code = engine::chain_code(key.scheme, key.public_key_package)
                .map_err(|e| PayloadError::Key(e.to_string()))?
                .ok_or_else(|| PayloadError::Key("no chain code".into()))?;
            let request_path = if key.derivation_path.is_empty() {
                None
            } else {
                let path: DerivationPath = key
                    .derivation_path
                    .parse()
                    .map_err(|e: sigil_protocol::ProtocolError| PayloadError::Key(e.to_string()))?;
                Some(path.indices().to_vec())
            };
            Ok(SigningKey::P2wpkh {
                public_key,
                chain_code,
                request_path,
            })
        }
        got => Err(PayloadError::WrongScheme {
            what: "Bitcoin PSBTs",
            need: Scheme::FrostTaproot,
            got,
        }),
    }
}

/// `"m/0/7"` for a child path, `""` for the master key (as sign requests write them).
fn path_string(path: Option<&[u32]>) -> String {
    match path {
        Some(indices) if !indices.is_empty() => {
            let mut s = String::from("m");
            for i in indices {
                s.push('/');
                s.push_str(&i.to_string());
            }
            s
        }
        _ => String::new(),
    }
}
