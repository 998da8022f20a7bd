//! PSBT decoding, analysis and finalization (`sigil_chains::bitcoin::psbt`)
//! against BIP-341, BIP-143, BIP-174 and BIP-370 (PSBT version 2) vectors, a
//! real mainnet transaction, and end-to-end signing with k256, in PSBT
//! versions 0 and 2.

use std::collections::BTreeMap;

use bitcoin::bip32::{DerivationPath, Fingerprint, Xpub};
use bitcoin::hashes::{Hash as _, hash160};
use bitcoin::psbt::PsbtSighashType;
use bitcoin::secp256k1::{self, Message, Secp256k1, XOnlyPublicKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness, consensus,
};
use k256::elliptic_curve::ff::PrimeField as _;
use k256::elliptic_curve::sec1::ToEncodedPoint as _;
use sha2::Digest as _;
use sigil_chains::bitcoin::psbt::{
    Network, Psbt, PsbtError, SighashKind, SigningKey, analyze, decode_psbt, finalize,
    input_sighash, psbt_signature, to_base64,
};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

fn tx(hex: &str) -> Transaction {
    consensus::deserialize(&unhex(hex)).expect("test transaction")
}

fn psbt_of(unsigned: Transaction) -> Psbt {
    Psbt::from_unsigned_tx(unsigned).expect("unsigned transaction")
}

fn script(hex: &str) -> ScriptBuf {
    ScriptBuf::from_bytes(unhex(hex))
}

fn xonly_of(spk: &ScriptBuf) -> [u8; 32] {
    spk.as_bytes()[2..].try_into().expect("P2TR script")
}

// ---------------------------------------------------------------------------
// BIP-341 key-path sighash vectors
// ---------------------------------------------------------------------------

/// BIP-341 `wallet-test-vectors.json`, `keyPathSpending` (the copy rust-bitcoin
/// ships as `bitcoin/tests/data/bip341_tests.json`).
const BIP341: &str = include_str!("vectors/bip341_key_path_spending.json");

struct Bip341 {
    psbt: Psbt,
    /// (txinIndex, hashType, sigHash, witness[0]).
    spends: Vec<(usize, u32, String, String)>,
}

fn bip341() -> Bip341 {
    let v: serde_json::Value = serde_json::from_str(BIP341).expect("vector JSON");
    let case = &v["keyPathSpending"][0];
    let mut psbt = psbt_of(tx(case["given"]["rawUnsignedTx"].as_str().expect("tx")));
    for (i, utxo) in case["given"]["utxosSpent"]
        .as_array()
        .expect("utxos")
        .iter()
        .enumerate()
    {
        psbt.inputs[i].witness_utxo = Some(TxOut {
            value: Amount::from_sat(utxo["amountSats"].as_u64().expect("amount")),
            script_pubkey: script(utxo["scriptPubKey"].as_str().expect("spk")),
        });
    }
    let spends = case["inputSpending"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|s| {
            (
                s["given"]["txinIndex"].as_u64().expect("index") as usize,
                s["given"]["hashType"].as_u64().expect("hashType") as u32,
                s["intermediary"]["sigHash"]
                    .as_str()
                    .expect("sigHash")
                    .to_owned(),
                s["expected"]["witness"][0]
                    .as_str()
                    .expect("witness")
                    .to_owned(),
            )
        })
        .collect();
    Bip341 { psbt, spends }
}

fn taproot_key_of(psbt: &Psbt, index: usize) -> SigningKey {
    let spk = &psbt.inputs[index]
        .witness_utxo
        .as_ref()
        .expect("utxo")
        .script_pubkey;
    SigningKey::Taproot {
        output_key_xonly: xonly_of(spk),
    }
}

#[test]
fn bip341_key_path_sighashes_and_signatures() {
    let v = bip341();
    let mut supported = 0;
    for (index, hash_type, sighash, witness) in &v.spends {
        let mut psbt = v.psbt.clone();
        if *hash_type != 0 {
            psbt.inputs[*index].sighash_type = Some(PsbtSighashType::from_u32(*hash_type));
        }
        let key = taproot_key_of(&psbt, *index);
        let result = input_sighash(&psbt, *index, &key);
        match hash_type {
            0 | 1 => {
                supported += 1;
                let input = result.expect("supported sighash type");
                assert_eq!(hex::encode(input.sighash), *sighash, "input {index}");
                assert_eq!(input.sighash_type.byte() as u32, *hash_type);
                assert_eq!(
                    input.amount,
                    psbt.inputs[*index]
                        .witness_utxo
                        .as_ref()
                        .map(|u| u.value.to_sat())
                        .expect("utxo")
                );
                // The vector's own witness signature verifies and finalizes.
                let (signed, raw) =
                    finalize(&psbt, &key, &[(*index, unhex(witness))]).expect("vector signature");
                assert_eq!(
                    signed.inputs[*index].final_script_witness,
                    Some(Witness::from_slice(&[unhex(witness)]))
                );
                assert!(signed.inputs[*index].sighash_type.is_none());
                assert!(raw.is_none(), "other inputs are not final");
            }
            other => assert_eq!(
                result.expect_err("unsupported sighash type"),
                PsbtError::UnsupportedSighash {
                    input: *index,
                    sighash_type: *other,
                    reason: "Taproot inputs are signed with SIGHASH_DEFAULT or SIGHASH_ALL",
                },
            ),
        }
    }
    assert_eq!(
        supported, 2,
        "the vectors have one DEFAULT and one ALL key-path spend"
    );
}

#[test]
fn bip341_refusals() {
    let v = bip341();
    // Input 4 is the SIGHASH_DEFAULT spend, input 3 the SIGHASH_ALL one.
    let (_, _, _, witness4) = v.spends.iter().find(|s| s.0 == 4).expect("input 4").clone();
    let key4 = taproot_key_of(&v.psbt, 4);

    // A key-path signature of the wrong input.
    let mut flipped = unhex(&witness4);
    flipped[10] ^= 1;
    assert!(matches!(
        finalize(&v.psbt, &key4, &[(4, flipped)]),
        Err(PsbtError::BadSignature { input: 4, .. })
    ));
    // A 65-byte signature with SIGHASH_ALL where the input asks for DEFAULT.
    let mut with_all = unhex(&witness4);
    with_all.push(0x01);
    assert!(matches!(
        finalize(&v.psbt, &key4, &[(4, with_all)]),
        Err(PsbtError::BadSignature { input: 4, .. })
    ));
    // Input 0 pays to another Taproot key, input 2 is P2PKH, 5 is P2WPKH.
    for other in [0, 2, 5] {
        assert!(matches!(
            input_sighash(&v.psbt, other, &key4),
            Err(PsbtError::NotOurKey { input, .. }) if input == other
        ));
    }
    // Taproot commits to every input's previous output: one missing is refused.
    let mut missing = v.psbt.clone();
    missing.inputs[5].witness_utxo = None;
    assert_eq!(
        input_sighash(&missing, 4, &key4),
        Err(PsbtError::MissingUtxo { input: 5 })
    );
    // Script-path data on a key-path input.
    let mut script_path = v.psbt.clone();
    script_path.inputs[4].tap_scripts.insert(
        bitcoin::taproot::ControlBlock::decode(&unhex(
            "c150929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0",
        ))
        .expect("control block"),
        (ScriptBuf::new(), bitcoin::taproot::LeafVersion::TapScript),
    );
    assert!(matches!(
        input_sighash(&script_path, 4, &key4),
        Err(PsbtError::UnsupportedInput { input: 4, .. })
    ));
    assert!(matches!(
        input_sighash(&v.psbt, 9, &key4),
        Err(PsbtError::NoSuchInput { input: 9, count: 9 })
    ));
}

// ---------------------------------------------------------------------------
// BIP-143 native P2WPKH example
// ---------------------------------------------------------------------------

/// BIP-143, "Native P2WPKH": unsigned transaction, the P2PK first input and
/// the P2WPKH second input (6 BTC), its key, sighash and signature.
const BIP143_TX: &str = "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000";
const BIP143_P2PK: &str = "2103c9f4836b9a4f77fc0d81f7bcb01b7f1b35916864b9476c241ce9fc198bd25432ac";
const BIP143_P2WPKH: &str = "00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1";
const BIP143_KEY: &str = "025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357";
const BIP143_SIGHASH: &str = "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670";
const BIP143_SIG: &str = "304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee01";

fn p2wpkh_key(public_key: &str, request_path: Option<Vec<u32>>) -> SigningKey {
    SigningKey::P2wpkh {
        public_key: unhex(public_key).try_into().expect("33 bytes"),
        chain_code: [0x42; 32],
        request_path,
    }
}

#[test]
fn bip143_native_p2wpkh() {
    let mut psbt = psbt_of(tx(BIP143_TX));
    psbt.inputs[1].witness_utxo = Some(TxOut {
        value: Amount::from_sat(600_000_000),
        script_pubkey: script(BIP143_P2WPKH),
    });
    let key = p2wpkh_key(BIP143_KEY, None);
    let input = input_sighash(&psbt, 1, &key).expect("ours");
    assert_eq!(hex::encode(input.sighash), BIP143_SIGHASH);
    assert_eq!(input.sighash_type, SighashKind::EcdsaAll);
    assert_eq!(input.amount, 600_000_000);
    assert_eq!(hex::encode(&input.public_key), BIP143_KEY);
    assert_eq!(input.derivation_path, None);

    let (signed, raw) = finalize(&psbt, &key, &[(1, unhex(BIP143_SIG))]).expect("BIP-143 sig");
    assert_eq!(
        signed.inputs[1].final_script_witness,
        Some(Witness::from_slice(&[unhex(BIP143_SIG), unhex(BIP143_KEY)]))
    );
    assert!(raw.is_none(), "the P2PK input is not ours to finalize");

    // The whole PSBT is refused: input 0 (P2PK) is not the key's.
    assert_eq!(
        analyze(&psbt, &key, Network::Bitcoin),
        Err(PsbtError::MissingUtxo { input: 0 })
    );
    psbt.inputs[0].witness_utxo = Some(TxOut {
        value: Amount::from_sat(625_000_000),
        script_pubkey: script(BIP143_P2PK),
    });
    assert!(matches!(
        analyze(&psbt, &key, Network::Bitcoin),
        Err(PsbtError::NotOurKey { input: 0, .. })
    ));
    // SIGHASH_SINGLE asked for: refused.
    psbt.inputs[1].sighash_type = Some(PsbtSighashType::from_u32(3));
    assert!(matches!(
        input_sighash(&psbt, 1, &key),
        Err(PsbtError::UnsupportedSighash {
            input: 1,
            sighash_type: 3,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------
// A real mainnet transaction
// ---------------------------------------------------------------------------

// Mainnet transaction f6136403b0288ffccd89052258ec795bca2e3c7f19ea164a5bf187da5532c6a6
// and the two transactions it spends, all three in mainnet block
// 000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae
// (rust-bitcoin's test data, bitcoin/tests/data/mainnet_block_….raw; the
// block's header hash and merkle root were checked when extracting them).
// Both inputs are P2WPKH of 027a1a5e…84a6 signed SIGHASH_ALL.
const MAINNET_TX: &str = "02000000000102ea1cc49283236b9288231f380c715d6ca8fb9c1710acffc166da2172e07b44370100000000ffffffffc98b0207df447a8e4e2d03fbfe062e20a55c8728a4fb9e2700de5ede596ebfbc0000000000ffffffff026578000000000000160014f420f7f449bef40407a35c818f1131e9535838cc007e0100000000001976a91457e143ec13853eb733cf9e1d56bb290c24be217e88ac02483045022100a0fd332c15799813154ed596c7aeed2310b46de647e410f43dfc9427f505d71602200ba3f8c402959dcea8754fe0550eb73649a24d157f1b666f60367ebb442882ce0121027a1a5ec0a22fe3401731159d3fab46bd4ad4d7eb32a06221bfed73ec52cd84a60248304502210097981a43673a6ff2ae0077defb6832fab445d8c802a57081ba4cbdaa87b1b36e02202bf0f7a12f703074a01aab5fe6feb005a717d9c3e8ea25939b3195f9689a09460121027a1a5ec0a22fe3401731159d3fab46bd4ad4d7eb32a06221bfed73ec52cd84a600000000";
const MAINNET_TXID: &str = "f6136403b0288ffccd89052258ec795bca2e3c7f19ea164a5bf187da5532c6a6";
/// 37447be0…1cea, output 1 (83 808 sat) is the first input.
const MAINNET_PARENT_0: &str = "020000000133b583039cd82ec086cb054b435604deb1e1f115a0e352c79c5065127942f449070000006b483045022100ecc84837cc72503311e5de46f8e23885f89a8a99615e91fd8d320c8660657f200220458d94e80ba51bd44771be2f832cf625bccc3ad57d527ca81f61113d8c8677c7012102f7820e3761c5c0dbdf9392cec0a2652fb31eb78bb22e5dfd1b60ece1a1fc1514ffffffff02f51f01000000000016001438a6478356fec83bde48463548a1ff2c0f5cb89b6047010000000000160014683cb8a6d44ba56e04af8e900e29439a6b410f0d00000000";
/// bcbf6e59…8bc9, output 0 (46 600 sat) is the second input.
const MAINNET_PARENT_1: &str = "020000000185d4ea56cc9d25ba4b6a6e9d6e74023dc7bf04c59b4a4723b6c8dd913d41e160010000006b483045022100b9b2a0929d953058053f936e93f30f2c8237bc19c4805a70c54acc65ad25705a02201418f59be5e06ab1ce4006c2b54f75f586c37ac18d90a822f1c48ff77591da9e012102f7820e3761c5c0dbdf9392cec0a2652fb31eb78bb22e5dfd1b60ece1a1fc1514ffffffff0208b6000000000000160014683cb8a6d44ba56e04af8e900e29439a6b410f0d67021100000000001600144886c7b83c71e2172c37d09e9f737180c084ba7500000000";
const MAINNET_KEY: &str = "027a1a5ec0a22fe3401731159d3fab46bd4ad4d7eb32a06221bfed73ec52cd84a6";

/// The mainnet transaction as an unsigned PSBT, with its parents as
/// `non_witness_utxo`, and its two signatures.
fn mainnet_psbt() -> (Psbt, Vec<(usize, Vec<u8>)>) {
    let signed = tx(MAINNET_TX);
    let sigs = signed
        .input
        .iter()
        .enumerate()
        .map(|(i, txin)| (i, txin.witness.nth(0).expect("sig").to_vec()))
        .collect();
    let mut unsigned = signed;
    for txin in &mut unsigned.input {
        txin.witness = Witness::new();
    }
    let mut psbt = psbt_of(unsigned);
    psbt.inputs[0].non_witness_utxo = Some(tx(MAINNET_PARENT_0));
    psbt.inputs[1].non_witness_utxo = Some(tx(MAINNET_PARENT_1));
    (psbt, sigs)
}

#[test]
fn mainnet_transaction_decoded_and_resigned() {
    let (psbt, sigs) = mainnet_psbt();
    // Through the decoder, as binary and as base64.
    let binary = psbt.serialize();
    assert_eq!(decode_psbt(&binary).expect("binary").into_psbt(), psbt);
    let text = format!("  {psbt}\n");
    assert_eq!(
        decode_psbt(text.as_bytes()).expect("base64").into_psbt(),
        psbt
    );

    let key = p2wpkh_key(MAINNET_KEY, None);
    let s = analyze(&psbt, &key, Network::Bitcoin).expect("ours");
    assert_eq!(s.txid, MAINNET_TXID);
    assert_eq!(
        s.inputs.iter().map(|i| i.amount).collect::<Vec<_>>(),
        [83_808, 46_600]
    );
    assert!(
        s.inputs
            .iter()
            .all(|i| i.sighash_type == SighashKind::EcdsaAll
                && hex::encode(&i.public_key) == MAINNET_KEY
                && i.derivation_path.is_none())
    );
    assert_eq!(s.total_in, 130_408);
    assert_eq!(s.total_out, 128_613);
    assert_eq!(s.fee, 1_795);
    assert!(s.change.is_empty());
    assert_eq!(s.total_change, 0);
    assert_eq!(s.total_out_to_others, 128_613);
    let dest: Vec<_> = s
        .destinations
        .iter()
        .map(|d| (d.index, d.address.as_deref(), d.amount))
        .collect();
    assert_eq!(
        dest,
        [
            (
                0,
                Some("bc1q7ss00azfhm6qgpartjqc7yf3a9f4swxv8jx77j"),
                30_821
            ),
            (1, Some("191feQ6MD73kZPbFTv8YkXnSV743p3WZTa"), 97_792),
        ]
    );
    assert_eq!(
        hex::encode(&s.outputs[1].script_pubkey),
        "76a91457e143ec13853eb733cf9e1d56bb290c24be217e88ac"
    );

    // The real signatures verify against the computed BIP-143 sighashes and
    // the finalized PSBT extracts to the transaction as mined.
    let (signed, raw) = finalize(&psbt, &key, &sigs).expect("mainnet signatures");
    assert_eq!(hex::encode(raw.expect("all inputs final")), MAINNET_TX);
    assert!(signed.inputs.iter().all(|i| i.partial_sigs.is_empty()
        && i.final_script_witness.is_some()
        && i.non_witness_utxo.is_some()));
    // Finalized inputs are not signed twice.
    assert!(matches!(
        finalize(&signed, &key, &sigs[..1]),
        Err(PsbtError::UnsupportedInput { input: 0, .. })
    ));
    // Each signature belongs to its own input.
    let swapped = vec![(0, sigs[1].1.clone())];
    assert!(matches!(
        finalize(&psbt, &key, &swapped),
        Err(PsbtError::BadSignature { input: 0, .. })
    ));
}

#[test]
fn mainnet_transaction_on_other_networks_and_keys() {
    let (psbt, _) = mainnet_psbt();
    let key = p2wpkh_key(MAINNET_KEY, None);
    // Scripts are network-free; the addresses shown follow the network asked for.
    let s = analyze(&psbt, &key, Network::Testnet).expect("ours");
    assert_eq!(
        s.outputs
            .iter()
            .map(|o| o.address.as_deref())
            .collect::<Vec<_>>(),
        [
            Some("tb1q7ss00azfhm6qgpartjqc7yf3a9f4swxvd5ad9p"),
            Some("moXcwTBL28V1LW4sBV6vaSzmM6ekp86976")
        ]
    );
    // A PSBT naming a testnet xpub is refused on mainnet (and vice versa).
    let mut tpub = psbt.clone();
    let xpub: Xpub = "tpubD6NzVbkrYhZ4XgiXtGrdW5XDAPFCL9h7we1vwNCpn8tGbBcgfVYjXyhWo4E1xkh56hjod1RhGjxbaTLV3X4FyWuejifB9jusQ46QzG87VKp"
        .parse()
        .expect("tpub");
    tpub.xpub
        .insert(xpub, (Fingerprint::default(), DerivationPath::master()));
    assert_eq!(
        analyze(&tpub, &key, Network::Bitcoin),
        Err(PsbtError::WrongNetwork {
            expected: "mainnet",
            found: "a test network"
        })
    );
    assert!(analyze(&tpub, &key, Network::Testnet).is_ok());

    // Another key: the first input is refused, naming it.
    let other = p2wpkh_key(BIP143_KEY, None);
    assert!(matches!(
        analyze(&psbt, &other, Network::Bitcoin),
        Err(PsbtError::NotOurKey { input: 0, .. })
    ));
    // A Taproot key cannot spend P2WPKH (here: Q = G's x coordinate).
    let g_x = unhex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
    let taproot = SigningKey::Taproot {
        output_key_xonly: g_x.try_into().expect("32 bytes"),
    };
    assert!(matches!(
        analyze(&psbt, &taproot, Network::Bitcoin),
        Err(PsbtError::NotOurKey { input: 0, .. })
    ));
    // Not a curve point.
    assert!(matches!(
        analyze(
            &psbt,
            &SigningKey::Taproot {
                output_key_xonly: [0xff; 32]
            },
            Network::Bitcoin
        ),
        Err(PsbtError::InvalidKey { .. })
    ));

    // non_witness_utxo must be the spent transaction.
    let mut swapped = psbt.clone();
    swapped.inputs.swap(0, 1);
    assert!(matches!(
        analyze(&swapped, &key, Network::Bitcoin),
        Err(PsbtError::UtxoMismatch { input: 0, .. })
    ));
    // witness_utxo must agree with non_witness_utxo.
    let mut disagree = psbt.clone();
    disagree.inputs[0].witness_utxo = Some(TxOut {
        value: Amount::from_sat(83_809),
        script_pubkey: script("0014683cb8a6d44ba56e04af8e900e29439a6b410f0d"),
    });
    assert!(matches!(
        analyze(&disagree, &key, Network::Bitcoin),
        Err(PsbtError::UtxoMismatch { input: 0, .. })
    ));
    // No previous output at all.
    let mut missing = psbt.clone();
    missing.inputs[1].non_witness_utxo = None;
    assert_eq!(
        analyze(&missing, &key, Network::Bitcoin),
        Err(PsbtError::MissingUtxo { input: 1 })
    );
}

// ---------------------------------------------------------------------------
// BIP-174 vectors and malformed input
// ---------------------------------------------------------------------------

/// BIP-174 "valid" test vector 1 (a P2PKH/P2SH spend with non_witness_utxo),
/// from the BIP's test vectors as in rust-bitcoin's `psbt::tests::bip_vectors`.
const BIP174_VALID_1: &str = "70736274ff0100750200000001268171371edff285e937adeea4b37b78000c0566cbb3ad64641713ca42171bf60000000000feffffff02d3dff505000000001976a914d0c59903c5bac2868760e90fd521a4665aa7652088ac00e1f5050000000017a9143545e6e33b832c47050f24d3eeb93c9c03948bc787b32e1300000100fda5010100000000010289a3c71eab4d20e0371bbba4cc698fa295c9463afa2e397f8533ccb62f9567e50100000017160014be18d152a9b012039daf3da7de4f53349eecb985ffffffff86f8aa43a71dff1448893a530a7237ef6b4608bbb2dd2d0171e63aec6a4890b40100000017160014fe3e9ef1a745e974d902c4355943abcb34bd5353ffffffff0200c2eb0b000000001976a91485cff1097fd9e008bb34af709c62197b38978a4888ac72fef84e2c00000017a914339725ba21efd62ac753a9bcd067d6c7a6a39d05870247304402202712be22e0270f394f568311dc7ca9a68970b8025fdd3b240229f07f8a5f3a240220018b38d7dcd314e734c9276bd6fb40f673325bc4baa144c800d2f2f02db2765c012103d2e15674941bad4a996372cb87e1856d3652606d98562fe39c5e9e7e413f210502483045022100d12b852d85dcd961d2f5f4ab660654df6eedcc794c0c33ce5cc309ffb5fce58d022067338a8e0e1725c197fb1a88af59f51e44e4255b20167c8684031c05d1f2592a01210223b72beef0965d10be0778efecd61fcac6f79a4ea169393380734464f84f2ab300000000000000";

/// BIP-174 invalid vectors (rust-bitcoin `invalid_vector_1`…`5`): a network
/// transaction, not a PSBT; a PSBT missing outputs; a global transaction with
/// a scriptSig; no unsigned transaction; duplicate global keys.
const BIP174_INVALID: [(&str, &str); 5] = [
    (
        "0200000001268171371edff285e937adeea4b37b78000c0566cbb3ad64641713ca42171bf6000000006a473044022070b2245123e6bf474d60c5b50c043d4c691a5d2435f09a34a7662a9dc251790a022001329ca9dacf280bdf30740ec0390422422c81cb45839457aeb76fc12edd95b3012102657d118d3357b8e0f4c2cd46db7b39f6d9c38d9a70abcb9b2de5dc8dbfe4ce31feffffff02d3dff505000000001976a914d0c59903c5bac2868760e90fd521a4665aa7652088ac00e1f5050000000017a9143545e6e33b832c47050f24d3eeb93c9c03948bc787b32e1300",
        "",
    ),
    (
        "70736274ff0100750200000001268171371edff285e937adeea4b37b78000c0566cbb3ad64641713ca42171bf60000000000feffffff02d3dff505000000001976a914d0c59903c5bac2868760e90fd521a4665aa7652088ac00e1f5050000000017a9143545e6e33b832c47050f24d3eeb93c9c03948bc787b32e1300000100fda5010100000000010289a3c71eab4d20e0371bbba4cc698fa295c9463afa2e397f8533ccb62f9567e50100000017160014be18d152a9b012039daf3da7de4f53349eecb985ffffffff86f8aa43a71dff1448893a530a7237ef6b4608bbb2dd2d0171e63aec6a4890b40100000017160014fe3e9ef1a745e974d902c4355943abcb34bd5353ffffffff0200c2eb0b000000001976a91485cff1097fd9e008bb34af709c62197b38978a4888ac72fef84e2c00000017a914339725ba21efd62ac753a9bcd067d6c7a6a39d05870247304402202712be22e0270f394f568311dc7ca9a68970b8025fdd3b240229f07f8a5f3a240220018b38d7dcd314e734c9276bd6fb40f673325bc4baa144c800d2f2f02db2765c012103d2e15674941bad4a996372cb87e1856d3652606d98562fe39c5e9e7e413f210502483045022100d12b852d85dcd961d2f5f4ab660654df6eedcc794c0c33ce5cc309ffb5fce58d022067338a8e0e1725c197fb1a88af59f51e44e4255b20167c8684031c05d1f2592a01210223b72beef0965d10be0778efecd61fcac6f79a4ea169393380734464f84f2ab30000000000",
        "",
    ),
    (
        "70736274ff0100fd0a010200000002ab0949a08c5af7c49b8212f417e2f15ab3f5c33dcf153821a8139f877a5b7be4000000006a47304402204759661797c01b036b25928948686218347d89864b719e1f7fcf57d1e511658702205309eabf56aa4d8891ffd111fdf1336f3a29da866d7f8486d75546ceedaf93190121035cdc61fc7ba971c0b501a646a2a83b102cb43881217ca682dc86e2d73fa88292feffffffab0949a08c5af7c49b8212f417e2f15ab3f5c33dcf153821a8139f877a5b7be40100000000feffffff02603bea0b000000001976a914768a40bbd740cbe81d988e71de2a4d5c71396b1d88ac8e240000000000001976a9146f4620b553fa095e721b9ee0efe9fa039cca459788ac00000000000001012000e1f5050000000017a9143545e6e33b832c47050f24d3eeb93c9c03948bc787010416001485d13537f2e265405a34dbafa9e3dda01fb82308000000",
        "script sigs",
    ),
    (
        "70736274ff000100fda5010100000000010289a3c71eab4d20e0371bbba4cc698fa295c9463afa2e397f8533ccb62f9567e50100000017160014be18d152a9b012039daf3da7de4f53349eecb985ffffffff86f8aa43a71dff1448893a530a7237ef6b4608bbb2dd2d0171e63aec6a4890b40100000017160014fe3e9ef1a745e974d902c4355943abcb34bd5353ffffffff0200c2eb0b000000001976a91485cff1097fd9e008bb34af709c62197b38978a4888ac72fef84e2c00000017a914339725ba21efd62ac753a9bcd067d6c7a6a39d05870247304402202712be22e0270f394f568311dc7ca9a68970b8025fdd3b240229f07f8a5f3a240220018b38d7dcd314e734c9276bd6fb40f673325bc4baa144c800d2f2f02db2765c012103d2e15674941bad4a996372cb87e1856d3652606d98562fe39c5e9e7e413f210502483045022100d12b852d85dcd961d2f5f4ab660654df6eedcc794c0c33ce5cc309ffb5fce58d022067338a8e0e1725c197fb1a88af59f51e44e4255b20167c8684031c05d1f2592a01210223b72beef0965d10be0778efecd61fcac6f79a4ea169393380734464f84f2ab30000000000",
        "unsigned",
    ),
    (
        "70736274ff0100750200000001268171371edff285e937adeea4b37b78000c0566cbb3ad64641713ca42171bf60000000000feffffff02d3dff505000000001976a914d0c59903c5bac2868760e90fd521a4665aa7652088ac00e1f5050000000017a9143545e6e33b832c47050f24d3eeb93c9c03948bc787b32e1300000100fda5010100000000010289a3c71eab4d20e0371bbba4cc698fa295c9463afa2e397f8533ccb62f9567e50100000017160014be18d152a9b012039daf3da7de4f53349eecb985ffffffff86f8aa43a71dff1448893a530a7237ef6b4608bbb2dd2d0171e63aec6a4890b40100000017160014fe3e9ef1a745e974d902c4355943abcb34bd5353ffffffff0200c2eb0b000000001976a91485cff1097fd9e008bb34af709c62197b38978a4888ac72fef84e2c00000017a914339725ba21efd62ac753a9bcd067d6c7a6a39d05870247304402202712be22e0270f394f568311dc7ca9a68970b8025fdd3b240229f07f8a5f3a240220018b38d7dcd314e734c9276bd6fb40f673325bc4baa144c800d2f2f02db2765c012103d2e15674941bad4a996372cb87e1856d3652606d98562fe39c5e9e7e413f210502483045022100d12b852d85dcd961d2f5f4ab660654df6eedcc794c0c33ce5cc309ffb5fce58d022067338a8e0e1725c197fb1a88af59f51e44e4255b20167c8684031c05d1f2592a01210223b72beef0965d10be0778efecd61fcac6f79a4ea169393380734464f84f2ab30000000001003f0200000001ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0000000000ffffffff010000000000000000036a010000000000000000",
        "duplicate",
    ),
];

/// BIP-174 (BIP-371) Taproot vectors, as in rust-bitcoin's `valid_psbt_vectors`:
/// a key-path input with `tap_key_sig`-free data (vector 1) and one with
/// script-path signatures (vector 6).
const BIP371_KEY_PATH: &str = "70736274ff010052020000000127744ababf3027fe0d6cf23a96eee2efb188ef52301954585883e69b6624b2420000000000ffffffff0148e6052a01000000160014768e1eeb4cf420866033f80aceff0f9720744969000000000001012b00f2052a010000002251205a2c2cf5b52cf31f83ad2e8da63ff03183ecd8f609c7510ae8a48e03910a07572116fe349064c98d6e2a853fa3c9b12bd8b304a19c195c60efa7ee2393046d3fa2321900772b2da75600008001000080000000800100000000000000011720fe349064c98d6e2a853fa3c9b12bd8b304a19c195c60efa7ee2393046d3fa232002202036b772a6db74d8753c98a827958de6c78ab3312109f37d3e0304484242ece73d818772b2da7540000800100008000000080000000000000000000";
const BIP371_SCRIPT_PATH: &str = "70736274ff01005e02000000019bd48765230bf9a72e662001f972556e54f0c6f97feb56bcb5600d817f6995260100000000ffffffff0148e6052a0100000022512083698e458c6664e1595d75da2597de1e22ee97d798e706c4c0a4b5a9823cd743000000000001012b00f2052a01000000225120c2247efbfd92ac47f6f40b8d42d169175a19fa9fa10e4a25d7f35eb4dd85b69241142cb13ac68248de806aa6a3659cf3c03eb6821d09c8114a4e868febde865bb6d2cd970e15f53fc0c82f950fd560ffa919b76172be017368a89913af074f400b0940bf818d9757d6ffeb538ba057fb4c1fc4e0f5ef186e765beb564791e02af5fd3d5e2551d4e34e33d86f276b82c99c79aed3f0395a081efcd2cc2c65dd7e693d7941144320b0bf16f011b53ea7be615924aa7f27e5d29ad20ea1155d848676c3bad1b2115f2e490af7cc45c4f78511f36057ce5c5a5c56325a29fb44dfc203f356e1f840e1f1ab6fabfa26b236f21833719dc1d428ab768d80f91f9988d8abef47bfb863bb1f2a529f768c15f00ce34ec283cdc07e88f8428be28f6ef64043c32911811a4114fa0f7a3cef3b1d0c0a6ce7d26e17ada0b2e5c92d19efad48b41859cb8a451ca96f7d62059e9497a1a4a267569d9876da60101aff38e3529b9b939ce7f91ae97040ec1f0379206461c83342285423326708ab031f0da4a253ee45aafa5b8c92034d8b605490f8cd13e00f989989b97e215faa36f12dee3693d2daccf3781c1757f66215c150929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac06f7d62059e9497a1a4a267569d9876da60101aff38e3529b9b939ce7f91ae970115f2e490af7cc45c4f78511f36057ce5c5a5c56325a29fb44dfc203f356e1f823202cb13ac68248de806aa6a3659cf3c03eb6821d09c8114a4e868febde865bb6d2acc04215c150929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac097c6e6fea5ff714ff5724499990810e406e98aa10f5bf7e5f6784bc1d0a9a6ce23204320b0bf16f011b53ea7be615924aa7f27e5d29ad20ea1155d848676c3bad1b2acc06215c150929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0cd970e15f53fc0c82f950fd560ffa919b76172be017368a89913af074f400b09115f2e490af7cc45c4f78511f36057ce5c5a5c56325a29fb44dfc203f356e1f82320fa0f7a3cef3b1d0c0a6ce7d26e17ada0b2e5c92d19efad48b41859cb8a451ca9acc021162cb13ac68248de806aa6a3659cf3c03eb6821d09c8114a4e868febde865bb6d23901cd970e15f53fc0c82f950fd560ffa919b76172be017368a89913af074f400b09772b2da7560000800100008002000080000000000000000021164320b0bf16f011b53ea7be615924aa7f27e5d29ad20ea1155d848676c3bad1b23901115f2e490af7cc45c4f78511f36057ce5c5a5c56325a29fb44dfc203f356e1f8772b2da75600008001000080010000800000000000000000211650929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac005007c461e5d2116fa0f7a3cef3b1d0c0a6ce7d26e17ada0b2e5c92d19efad48b41859cb8a451ca939016f7d62059e9497a1a4a267569d9876da60101aff38e3529b9b939ce7f91ae970772b2da7560000800100008003000080000000000000000001172050929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0011820f0362e2f75a6f420a5bde3eb221d96ae6720cf25f81890c95b1d775acb515e65000105201124da7aec92ccd06c954562647f437b138b95721a84be2bf2276bbddab3e67121071124da7aec92ccd06c954562647f437b138b95721a84be2bf2276bbddab3e6711900772b2da7560000800100008000000080000000000500000000";

#[test]
fn bip174_vectors() {
    let valid = unhex(BIP174_VALID_1);
    let psbt = decode_psbt(&valid).expect("valid vector 1");
    assert_eq!(psbt.unsigned_tx.input.len(), 1);
    assert_eq!(psbt.unsigned_tx.output[0].value.to_sat(), 99_999_699);
    assert_eq!(psbt.unsigned_tx.output[1].value.to_sat(), 100_000_000);
    assert_eq!(psbt.serialize(), valid);
    assert_eq!(decode_psbt(psbt.to_string().as_bytes()), Ok(psbt));

    for (i, (hex, needle)) in BIP174_INVALID.iter().enumerate() {
        match decode_psbt(&unhex(hex)) {
            Err(PsbtError::Malformed { reason }) => assert!(
                reason.contains(needle),
                "invalid vector {}: {reason:?} lacks {needle:?}",
                i + 1
            ),
            other => panic!("invalid vector {}: {other:?}", i + 1),
        }
    }
}

#[test]
fn bip371_taproot_vectors() {
    // Key-path input paying to 5a2c2cf5…0757 (50 BTC), one P2WPKH output.
    let psbt = decode_psbt(&unhex(BIP371_KEY_PATH)).expect("BIP-371 vector");
    let q = xonly_of(
        &psbt.inputs[0]
            .witness_utxo
            .as_ref()
            .expect("utxo")
            .script_pubkey,
    );
    let key = SigningKey::Taproot {
        output_key_xonly: q,
    };
    let s = analyze(&psbt, &key, Network::Bitcoin).expect("key path");
    assert_eq!(s.total_in, 5_000_000_000);
    assert_eq!(s.total_out, 4_999_997_000);
    assert_eq!(s.fee, 3_000);
    assert_eq!(s.inputs[0].sighash_type, SighashKind::TaprootDefault);
    assert_eq!(
        s.destinations[0].address.as_deref(),
        Some("bc1qw68pa66v7ssgvcpnlq9valc0jus8gjtfv208as")
    );
    // Cross-check the sighash with rust-bitcoin directly.
    let utxo = psbt.inputs[0].witness_utxo.clone().expect("utxo");
    let expected = SighashCache::new(&psbt.unsigned_tx)
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&[utxo]), TapSighashType::Default)
        .expect("sighash");
    assert_eq!(s.inputs[0].sighash, expected.to_byte_array());

    // Script-path signatures present: refused.
    let psbt = decode_psbt(&unhex(BIP371_SCRIPT_PATH)).expect("BIP-371 vector");
    let q = xonly_of(
        &psbt.inputs[0]
            .witness_utxo
            .as_ref()
            .expect("utxo")
            .script_pubkey,
    );
    assert!(matches!(
        analyze(
            &psbt,
            &SigningKey::Taproot {
                output_key_xonly: q
            },
            Network::Bitcoin
        ),
        Err(PsbtError::UnsupportedInput { input: 0, .. })
    ));
}

#[test]
fn malformed_input_refused() {
    let valid = unhex(BIP174_VALID_1);
    // Truncated anywhere.
    for cut in [0, 3, 5, 6, 8, 100, valid.len() / 2, valid.len() - 1] {
        let err = decode_psbt(&valid[..cut]).expect_err("truncated");
        assert!(
            matches!(err, PsbtError::Malformed { .. }),
            "cut {cut}: {err:?}"
        );
    }
    // Trailing bytes, binary and base64.
    let mut trailing = valid.clone();
    trailing.extend_from_slice(&[0, 0]);
    assert_eq!(
        decode_psbt(&trailing),
        Err(PsbtError::TrailingBytes { count: 2 })
    );
    use bitcoin::base64::Engine as _;
    let b64 = bitcoin::base64::engine::general_purpose::STANDARD.encode(&trailing);
    assert_eq!(
        decode_psbt(b64.as_bytes()),
        Err(PsbtError::TrailingBytes { count: 2 })
    );
    // A length larger than the payload: the unsigned transaction's value
    // length (0x75) becomes 0x7fffffff.
    assert_eq!(valid[7], 0x75);
    let mut long = valid[..7].to_vec();
    long.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x7f]);
    long.extend_from_slice(&valid[8..]);
    assert!(matches!(
        decode_psbt(&long),
        Err(PsbtError::Malformed { .. })
    ));
    // Not base64, empty, base64 of something else.
    for bad in [&b"cHNidP8!!!"[..], b"", b"   ", b"aGVsbG8="] {
        assert!(matches!(decode_psbt(bad), Err(PsbtError::Malformed { .. })));
    }
    // PSBT v2 (BIP-370) announcing one input and one output but carrying
    // neither map: truncated.
    let v2 = unhex(
        "70736274ff010204020000000104010101050101 01fb0402000000 00"
            .replace(' ', "")
            .as_str(),
    );
    assert!(matches!(decode_psbt(&v2), Err(PsbtError::Malformed { .. })));
}

// ---------------------------------------------------------------------------
// End to end with k256 keys
// ---------------------------------------------------------------------------

fn outpoint(n: u8, vout: u32) -> OutPoint {
    OutPoint {
        txid: Txid::from_byte_array([n; 32]),
        vout,
    }
}

fn unsigned(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: inputs
            .iter()
            .map(|o| TxIn {
                previous_output: *o,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

fn p2tr(q: &[u8; 32]) -> ScriptBuf {
    let mut s = vec![0x51, 0x20];
    s.extend_from_slice(q);
    ScriptBuf::from_bytes(s)
}

fn p2wpkh(pk: &[u8]) -> ScriptBuf {
    let mut s = vec![0x00, 0x14];
    s.extend_from_slice(&hash160::Hash::hash(pk).to_byte_array());
    ScriptBuf::from_bytes(s)
}

fn out(sat: u64, script_pubkey: ScriptBuf) -> TxOut {
    TxOut {
        value: Amount::from_sat(sat),
        script_pubkey,
    }
}

#[test]
fn taproot_end_to_end() {
    let sk = k256::schnorr::SigningKey::from_bytes(&[0x11; 32]).expect("key");
    let q: [u8; 32] = sk.verifying_key().to_bytes().into();
    let other: [u8; 32] = k256::schnorr::SigningKey::from_bytes(&[0x22; 32])
        .expect("key")
        .verifying_key()
        .to_bytes()
        .into();
    let key = SigningKey::Taproot {
        output_key_xonly: q,
    };

    let prevouts = vec![out(70_000, p2tr(&q)), out(40_000, p2tr(&q))];
    let mut psbt = psbt_of(unsigned(
        &[outpoint(1, 0), outpoint(2, 3)],
        vec![out(80_000, p2tr(&other)), out(29_000, p2tr(&q))],
    ));
    for (i, p) in prevouts.iter().enumerate() {
        psbt.inputs[i].witness_utxo = Some(p.clone());
    }
    psbt.inputs[1].sighash_type = Some(PsbtSighashType::from_u32(1));

    let s = analyze(&psbt, &key, Network::Bitcoin).expect("ours");
    assert_eq!((s.total_in, s.total_out, s.fee), (110_000, 109_000, 1_000));
    assert_eq!(s.change, [1]);
    assert_eq!(s.total_change, 29_000);
    assert_eq!(s.total_out_to_others, 80_000);
    assert_eq!(s.destinations.len(), 1);
    assert!(
        s.destinations[0]
            .address
            .as_deref()
            .is_some_and(|a| a.starts_with("bc1p"))
    );
    assert_eq!(s.inputs[0].sighash_type, SighashKind::TaprootDefault);
    assert_eq!(s.inputs[1].sighash_type, SighashKind::TaprootAll);

    // BIP-340 signatures by k256 over the computed sighashes.
    let sigs: Vec<(usize, Vec<u8>)> = s
        .inputs
        .iter()
        .map(|i| {
            let mut sig = sk
                .sign_raw(&i.sighash, &[0x33; 32])
                .expect("sign")
                .to_bytes()
                .to_vec();
            if i.sighash_type == SighashKind::TaprootAll {
                sig.push(0x01);
            }
            (i.index, sig)
        })
        .collect();

    // Input 0's signature on input 1 does not verify.
    let mut wrong = sigs[0].1.clone();
    wrong.push(0x01);
    assert!(matches!(
        finalize(&psbt, &key, &[(1, wrong)]),
        Err(PsbtError::BadSignature { input: 1, .. })
    ));
    // Partial: one input signed, no transaction yet.
    let (partial, raw) = finalize(&psbt, &key, &sigs[..1]).expect("input 0");
    assert!(raw.is_none());
    let (_, raw) = finalize(&partial, &key, &sigs[1..]).expect("input 1");
    let raw = raw.expect("all final");

    // The raw transaction: same txid, and each witness verifies against the
    // sighash recomputed from the transaction and its prevouts.
    let signed: Transaction = consensus::deserialize(&raw).expect("raw tx");
    assert_eq!(signed.compute_txid().to_string(), s.txid);
    let secp = Secp256k1::verification_only();
    let mut cache = SighashCache::new(&signed);
    for (i, txin) in signed.input.iter().enumerate() {
        assert_eq!(txin.witness.len(), 1);
        let sig = bitcoin::taproot::Signature::from_slice(&txin.witness[0]).expect("sig");
        let hash = cache
            .taproot_key_spend_signature_hash(i, &Prevouts::All(&prevouts), sig.sighash_type)
            .expect("sighash");
        let pk = XOnlyPublicKey::from_slice(&prevouts[i].script_pubkey.as_bytes()[2..]).expect("Q");
        secp.verify_schnorr(
            &sig.signature,
            &Message::from_digest(hash.to_byte_array()),
            &pk,
        )
        .expect("witness verifies");
    }

    // A negative fee is refused.
    let mut greedy = psbt.clone();
    greedy.unsigned_tx.output[0].value = Amount::from_sat(90_000);
    assert_eq!(
        analyze(&greedy, &key, Network::Bitcoin),
        Err(PsbtError::NegativeFee {
            inputs: 110_000,
            outputs: 119_000
        })
    );
    // So is an amount above 21 million BTC.
    let mut huge = psbt.clone();
    huge.unsigned_tx.output[0].value = Amount::from_sat(u64::MAX);
    assert!(matches!(
        analyze(&huge, &key, Network::Bitcoin),
        Err(PsbtError::Amount { .. })
    ));
}

/// BIP-32 CKDpriv for a non-hardened index, written out here (HMAC-SHA512 by
/// hand) so the derivation the module does with rust-bitcoin is checked
/// against an independent one.
fn ckd_priv(k: &k256::Scalar, chain: &[u8; 32], index: u32) -> (k256::Scalar, [u8; 32]) {
    let pk = (k256::ProjectivePoint::GENERATOR * k)
        .to_affine()
        .to_encoded_point(true);
    let mut data = pk.as_bytes().to_vec();
    data.extend_from_slice(&index.to_be_bytes());
    let mut key = [0u8; 128];
    key[..32].copy_from_slice(chain);
    let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha2::Sha512::new()
        .chain_update(&ipad)
        .chain_update(&data)
        .finalize();
    let i = sha2::Sha512::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    let il = k256::Scalar::from_repr(k256::FieldBytes::from(
        <[u8; 32]>::try_from(&i[..32]).expect("32 bytes"),
    ))
    .into_option()
    .expect("IL < n");
    (k + il, i[32..].try_into().expect("32 bytes"))
}

fn compressed(k: &k256::Scalar) -> Vec<u8> {
    (k256::ProjectivePoint::GENERATOR * k)
        .to_affine()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec()
}

fn derive_path(k: &k256::Scalar, chain: &[u8; 32], path: &[u32]) -> k256::Scalar {
    let (mut k, mut c) = (*k, *chain);
    for i in path {
        (k, c) = ckd_priv(&k, &c, *i);
    }
    k
}

#[test]
fn p2wpkh_bip32_end_to_end() {
    let master = k256::Scalar::from_repr(k256::FieldBytes::from([0x07; 32]))
        .into_option()
        .expect("scalar");
    let chain = [0x5a; 32];
    let master_pk = compressed(&master);
    let fingerprint =
        Fingerprint::from(<[u8; 4]>::try_from(&hash160::Hash::hash(&master_pk)[..4]).expect("4"));
    let child = derive_path(&master, &chain, &[0, 7]);
    let change = derive_path(&master, &chain, &[1, 3]);
    let requested = derive_path(&master, &chain, &[9]);
    let pk_of = |k: &k256::Scalar| secp256k1::PublicKey::from_slice(&compressed(k)).expect("point");
    let entry = |path: &str| (fingerprint, path.parse::<DerivationPath>().expect("path"));

    let prevouts = [
        out(50_000, p2wpkh(&master_pk)),
        out(60_000, p2wpkh(&compressed(&child))),
        out(10_000, p2wpkh(&compressed(&requested))),
    ];
    let mut psbt = psbt_of(unsigned(
        &[outpoint(3, 0), outpoint(4, 1), outpoint(5, 2)],
        vec![
            out(100_000, p2wpkh(&[0x02; 33])),
            out(19_500, p2wpkh(&compressed(&change))),
        ],
    ));
    for (i, p) in prevouts.iter().enumerate() {
        psbt.inputs[i].witness_utxo = Some(p.clone());
    }
    psbt.inputs[1]
        .bip32_derivation
        .insert(pk_of(&child), entry("m/0/7"));
    // An entry of another wallet is ignored.
    psbt.inputs[1].bip32_derivation.insert(
        pk_of(&master),
        (
            Fingerprint::from([1, 2, 3, 4]),
            "m/0'/1".parse().expect("path"),
        ),
    );
    psbt.outputs[1]
        .bip32_derivation
        .insert(pk_of(&change), entry("m/1/3"));

    let key = |request_path| SigningKey::P2wpkh {
        public_key: master_pk.clone().try_into().expect("33"),
        chain_code: chain,
        request_path,
    };
    // Input 2 pays to m/9, which only the request names.
    assert!(matches!(
        analyze(&psbt, &key(None), Network::Bitcoin),
        Err(PsbtError::NotOurKey { input: 2, .. })
    ));
    let key = key(Some(vec![9]));
    let s = analyze(&psbt, &key, Network::Bitcoin).expect("ours");
    assert_eq!(
        s.inputs
            .iter()
            .map(|i| (i.derivation_path.clone(), i.public_key.clone()))
            .collect::<Vec<_>>(),
        [
            (None, master_pk.clone()),
            (Some(vec![0, 7]), compressed(&child)),
            (Some(vec![9]), compressed(&requested)),
        ]
    );
    assert_eq!((s.total_in, s.total_out, s.fee), (120_000, 119_500, 500));
    assert_eq!(s.change, [1]);
    assert_eq!(s.total_out_to_others, 100_000);

    // k256 ECDSA (low-S, DER) with each input's secret.
    let secrets = [master, child, requested];
    let sigs: Vec<(usize, Vec<u8>)> = s
        .inputs
        .iter()
        .map(|i| {
            let sk =
                k256::ecdsa::SigningKey::from_bytes(&secrets[i.index].to_bytes()).expect("key");
            let sig: k256::ecdsa::Signature =
                k256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&sk, &i.sighash)
                    .expect("sign");
            let mut der = sig.to_der().as_bytes().to_vec();
            der.push(0x01);
            (i.index, der)
        })
        .collect();

    // A high-S signature is refused.
    {
        let sig = k256::ecdsa::Signature::from_der(&sigs[0].1[..sigs[0].1.len() - 1]).expect("der");
        let (r, s_) = sig.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r, -*s_).expect("sig");
        let mut der = high.to_der().as_bytes().to_vec();
        der.push(0x01);
        assert!(matches!(
            finalize(&psbt, &key, &[(0, der)]),
            Err(PsbtError::BadSignature { input: 0, .. })
        ));
    }
    // A signature without the sighash byte, or with another one.
    let mut no_byte = sigs[0].1.clone();
    no_byte.pop();
    let mut single = no_byte.clone();
    single.push(0x03);
    for bad in [no_byte, single] {
        assert!(matches!(
            finalize(&psbt, &key, &[(0, bad)]),
            Err(PsbtError::BadSignature { input: 0, .. })
        ));
    }

    let (signed_psbt, raw) = finalize(&psbt, &key, &sigs).expect("signatures");
    assert!(
        signed_psbt
            .inputs
            .iter()
            .all(|i| i.bip32_derivation.is_empty())
    );
    let signed: Transaction = consensus::deserialize(&raw.expect("all final")).expect("raw");
    assert_eq!(signed.compute_txid().to_string(), s.txid);
    let secp = Secp256k1::verification_only();
    let mut cache = SighashCache::new(&signed);
    for (i, txin) in signed.input.iter().enumerate() {
        assert_eq!(txin.witness.len(), 2);
        let sig = bitcoin::ecdsa::Signature::from_slice(&txin.witness[0]).expect("sig");
        let pk = secp256k1::PublicKey::from_slice(&txin.witness[1]).expect("pk");
        assert_eq!(p2wpkh(&pk.serialize()), prevouts[i].script_pubkey);
        let hash = cache
            .p2wpkh_signature_hash(
                i,
                &prevouts[i].script_pubkey,
                prevouts[i].value,
                EcdsaSighashType::All,
            )
            .expect("sighash");
        secp.verify_ecdsa(
            &Message::from_digest(hash.to_byte_array()),
            &sig.signature,
            &pk,
        )
        .expect("witness verifies");
    }

    // A hardened path under our fingerprint is refused, naming the input.
    let mut hardened = psbt.clone();
    hardened.inputs[0]
        .bip32_derivation
        .insert(pk_of(&child), entry("m/0'/7"));
    assert_eq!(
        analyze(&hardened, &key, Network::Bitcoin),
        Err(PsbtError::HardenedDerivation {
            input: Some(0),
            path: "m/0'/7".to_owned()
        })
    );
    // An output entry with a hardened path is simply not change.
    let mut hardened_out = psbt.clone();
    hardened_out.outputs[1].bip32_derivation = BTreeMap::from([(pk_of(&change), entry("m/1'/3"))]);
    let s = analyze(&hardened_out, &key, Network::Bitcoin).expect("ours");
    assert!(s.change.is_empty());
    assert_eq!(s.total_out_to_others, 119_500);
}

// ---------------------------------------------------------------------------
// PSBT version 2 (BIP-370)
// ---------------------------------------------------------------------------

/// BIP-370's test vectors (invalid PSBTs, valid PSBTs, lock time
/// determination), extracted verbatim from bip-0370.mediawiki; the file
/// names the commit.
const BIP370: &str = include_str!("vectors/bip370_psbt_v2.json");

fn bip370(section: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(BIP370).expect("vector JSON");
    v[section].as_array().expect("section").clone()
}

fn field<'a>(case: &'a serde_json::Value, name: &str) -> &'a str {
    case[name].as_str().expect("vector field")
}

fn base64_decode(text: &str) -> Vec<u8> {
    use bitcoin::base64::Engine as _;
    bitcoin::base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// The version-2 form of a version-0 PSBT, built with rust-psbt's types (the
/// other direction from the module's): every field carried, the lock time as
/// PSBT_GLOBAL_FALLBACK_LOCKTIME, every sequence as PSBT_IN_SEQUENCE.
fn to_v2(psbt: &Psbt) -> psbt_v2::v2::Psbt {
    use psbt_v2::v2;
    let proprietary = |m: &BTreeMap<bitcoin::psbt::raw::ProprietaryKey, Vec<u8>>| {
        m.iter()
            .map(|(k, v)| {
                (
                    psbt_v2::raw::ProprietaryKey {
                        prefix: k.prefix.clone(),
                        subtype: k.subtype,
                        key: k.key.clone(),
                    },
                    v.clone(),
                )
            })
            .collect()
    };
    let unknown = |m: &BTreeMap<bitcoin::psbt::raw::Key, Vec<u8>>| {
        m.iter()
            .map(|(k, v)| {
                (
                    psbt_v2::raw::Key {
                        type_value: k.type_value,
                        key: k.key.clone(),
                    },
                    v.clone(),
                )
            })
            .collect()
    };
    let derivations = |m: &BTreeMap<secp256k1::PublicKey, bitcoin::bip32::KeySource>| {
        m.iter()
            .map(|(k, v)| (bitcoin::PublicKey::new(*k), v.clone()))
            .collect()
    };
    let global = v2::Global {
        tx_version: psbt.unsigned_tx.version,
        fallback_lock_time: Some(psbt.unsigned_tx.lock_time),
        input_count: psbt.inputs.len(),
        output_count: psbt.outputs.len(),
        xpubs: psbt.xpub.clone(),
        proprietaries: proprietary(&psbt.proprietary),
        unknowns: unknown(&psbt.unknown),
        ..Default::default()
    };
    let inputs = psbt
        .unsigned_tx
        .input
        .iter()
        .zip(&psbt.inputs)
        .map(|(txin, i)| {
            let mut input = v2::Input::new(&txin.previous_output);
            input.sequence = Some(txin.sequence);
            input.non_witness_utxo = i.non_witness_utxo.clone();
            input.witness_utxo = i.witness_utxo.clone();
            input.partial_sigs = i.partial_sigs.clone();
            input.sighash_type = i
                .sighash_type
                .map(|t| psbt_v2::PsbtSighashType::from_u32(t.to_u32()));
            input.redeem_script = i.redeem_script.clone();
            input.witness_script = i.witness_script.clone();
            input.bip32_derivations = derivations(&i.bip32_derivation);
            input.final_script_sig = i.final_script_sig.clone();
            input.final_script_witness = i.final_script_witness.clone();
            input.ripemd160_preimages = i.ripemd160_preimages.clone();
            input.sha256_preimages = i.sha256_preimages.clone();
            input.hash160_preimages = i.hash160_preimages.clone();
            input.hash256_preimages = i.hash256_preimages.clone();
            input.tap_key_sig = i.tap_key_sig;
            input.tap_script_sigs = i.tap_script_sigs.clone();
            input.tap_scripts = i.tap_scripts.clone();
            input.tap_key_origins = i.tap_key_origins.clone();
            input.tap_internal_key = i.tap_internal_key;
            input.tap_merkle_root = i.tap_merkle_root;
            input.proprietaries = proprietary(&i.proprietary);
            input.unknowns = unknown(&i.unknown);
            input
        })
        .collect();
    let outputs = psbt
        .unsigned_tx
        .output
        .iter()
        .zip(&psbt.outputs)
        .map(|(txout, o)| {
            let mut output = v2::Output::new(txout.clone());
            output.redeem_script = o.redeem_script.clone();
            output.witness_script = o.witness_script.clone();
            output.bip32_derivations = derivations(&o.bip32_derivation);
            output.tap_internal_key = o.tap_internal_key;
            output.tap_tree = o.tap_tree.clone();
            output.tap_key_origins = o.tap_key_origins.clone();
            output.proprietaries = proprietary(&o.proprietary);
            output.unknowns = unknown(&o.unknown);
            output
        })
        .collect();
    v2::Psbt {
        global,
        inputs,
        outputs,
    }
}

/// The signed transaction of a finalized version-2 PSBT, built from its
/// fields here (rust-psbt's Extractor wants a PSBT_IN_FINAL_SCRIPTSIG on
/// segwit inputs too, which BIP-174's finalizer does not write).
fn tx_of_v2(psbt: &psbt_v2::v2::Psbt) -> Transaction {
    Transaction {
        version: psbt.global.tx_version,
        lock_time: psbt.determine_lock_time().expect("lock time"),
        input: psbt
            .inputs
            .iter()
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: i.previous_txid,
                    vout: i.spent_output_index,
                },
                script_sig: i.final_script_sig.clone().unwrap_or_default(),
                sequence: i.sequence.unwrap_or(Sequence::MAX),
                witness: i.final_script_witness.clone().expect("finalized"),
            })
            .collect(),
        output: psbt
            .outputs
            .iter()
            .map(|o| out(o.amount.to_sat(), o.script_pubkey.clone()))
            .collect(),
    }
}

#[test]
fn bip370_invalid_vectors_are_refused_as_malformed_for_their_reason() {
    let cases = bip370("invalid");
    // What each refusal names, in the BIP's order.
    let reasons = [
        // PSBTv0 with PSBT_GLOBAL_VERSION 2: read as version 2, no counts.
        "PSBT_GLOBAL_INPUT_COUNT",
        "PSBT_GLOBAL_TX_VERSION",
        "PSBT_GLOBAL_FALLBACK_LOCKTIME",
        "PSBT_GLOBAL_INPUT_COUNT",
        "PSBT_GLOBAL_OUTPUT_COUNT",
        "PSBT_GLOBAL_TX_MODIFIABLE",
        "PSBT_IN_PREVIOUS_TXID",
        "PSBT_IN_OUTPUT_INDEX",
        "PSBT_IN_SEQUENCE",
        "PSBT_IN_REQUIRED_TIME_LOCKTIME",
        "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME",
        "PSBT_OUT_AMOUNT",
        "PSBT_OUT_SCRIPT",
        "PSBT_GLOBAL_UNSIGNED_TX",
        "PSBT_GLOBAL_INPUT_COUNT",
        "PSBT_GLOBAL_OUTPUT_COUNT",
        "missing the transaction version",
        "previous txid",
        "spent output index",
        "missing a value",
        "missing a script pubkey",
        "499999999",
        "lock-by-blockheight",
        "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME of 0",
    ];
    assert_eq!(cases.len(), reasons.len());
    for (case, needle) in cases.iter().zip(reasons) {
        let name = field(case, "case");
        let err = decode_psbt(&unhex(field(case, "hex"))).expect_err(name);
        assert!(
            matches!(&err, PsbtError::Malformed { reason } if reason.contains(needle)),
            "{name}: {err:?} lacks {needle:?}"
        );
        assert_eq!(
            decode_psbt(field(case, "base64").as_bytes()).expect_err(name),
            err,
            "{name} (base64)"
        );
    }
}

#[test]
fn bip370_valid_vectors_decode_into_their_exact_version_0_view() {
    let cases = bip370("valid");
    assert_eq!(cases.len(), 14);
    let spent = OutPoint {
        txid: Txid::from_byte_array(
            unhex("0b0ad921419c1c8719735d72dc739f9ea9e0638d1fe4c1eef0f9944084815fc8")
                .try_into()
                .expect("32 bytes"),
        ),
        vout: 0,
    };
    for case in &cases {
        let name = field(case, "case");
        let bytes = unhex(field(case, "hex"));
        let decoded = decode_psbt(&bytes).expect(name);
        assert_eq!(decoded.version(), 2, "{name}");
        let maps = psbt_v2::v2::Psbt::deserialize(&bytes).expect(name);

        // The unsigned transaction, from the BIP-370 fields.
        let tx = &decoded.unsigned_tx;
        assert_eq!(tx.version, bitcoin::transaction::Version::TWO, "{name}");
        assert_eq!(tx.input.len(), 1, "{name}");
        assert_eq!(tx.input[0].previous_output, spent, "{name}");
        let sequence = if name.contains("PSBT_IN_SEQUENCE") || name.contains("all PSBTv2 fields") {
            Sequence(0xffff_fffe)
        } else {
            Sequence::MAX
        };
        assert_eq!(tx.input[0].sequence, sequence, "{name}");
        // Both required lock times on the one input: the height wins.
        let lock_time = if name.contains("all locktime fields") || name.contains("all PSBTv2") {
            10_000
        } else {
            0
        };
        assert_eq!(tx.lock_time.to_consensus_u32(), lock_time, "{name}");
        assert_eq!(
            tx.output
                .iter()
                .map(|o| (o.value.to_sat(), o.script_pubkey.to_hex_string()))
                .collect::<Vec<_>>(),
            [
                (
                    800_000_000,
                    "0014c430f64c4756da310dbd1a085572ef299926272c".to_owned()
                ),
                (
                    199_998_859,
                    "00144dd193ac964a56ac1b9e1cca8454fe2f474f8513".to_owned()
                ),
            ],
            "{name}"
        );
        assert!(
            tx.input
                .iter()
                .all(|i| i.script_sig.is_empty() && i.witness.is_empty())
        );
        assert_eq!(decoded.version, 0, "the view is a version-0 PSBT");

        // The maps' fields, as rust-psbt reads them.
        let (input, output) = (&decoded.inputs[0], &decoded.outputs);
        assert_eq!(input.witness_utxo, maps.inputs[0].witness_utxo, "{name}");
        assert_eq!(
            input.non_witness_utxo, maps.inputs[0].non_witness_utxo,
            "{name}"
        );
        assert_eq!(
            input.bip32_derivation.iter().collect::<Vec<_>>(),
            maps.inputs[0]
                .bip32_derivations
                .iter()
                .map(|(k, v)| (&k.inner, v))
                .collect::<Vec<_>>(),
            "{name}"
        );
        for (o, m) in output.iter().zip(&maps.outputs) {
            assert_eq!(
                o.bip32_derivation.iter().collect::<Vec<_>>(),
                m.bip32_derivations
                    .iter()
                    .map(|(k, v)| (&k.inner, v))
                    .collect::<Vec<_>>(),
                "{name}"
            );
        }
        if name.contains("required fields only") {
            assert!(input.witness_utxo.is_none() && input.bip32_derivation.is_empty());
        } else {
            assert_eq!(
                input.witness_utxo.as_ref().map(|u| u.value.to_sat()),
                Some(999_999_000),
                "{name}"
            );
            assert_eq!(output[1].bip32_derivation.len(), 1, "{name}");
        }

        // Base64 gives the same; the PSBT serializes back as version 2.
        assert_eq!(
            decode_psbt(field(case, "base64").as_bytes()).as_ref(),
            Ok(&decoded),
            "{name}"
        );
        let again = decode_psbt(&decoded.serialize()).expect(name);
        assert_eq!(again, decoded, "{name}");
        assert_eq!(
            decode_psbt(to_base64(&decoded).as_bytes()).as_ref(),
            Ok(&decoded),
            "{name}"
        );
    }
}

#[test]
fn bip370_lock_time_vectors_give_the_lock_time_the_bip_computes() {
    let cases = bip370("lock_time");
    assert_eq!(cases.len(), 10);
    for case in &cases {
        let name = field(case, "case");
        let bytes = unhex(field(case, "hex"));
        match case["lock_time"].as_u64() {
            Some(expected) => {
                let decoded = decode_psbt(&bytes).expect(name);
                assert_eq!(
                    u64::from(decoded.unsigned_tx.lock_time.to_consensus_u32()),
                    expected,
                    "{name}"
                );
            }
            None => assert!(
                matches!(decode_psbt(&bytes), Err(PsbtError::Malformed { reason }) if reason.contains("lock time")),
                "{name}"
            ),
        }
    }
}

#[test]
fn a_version_2_psbt_decodes_into_the_version_0_psbt_it_was_built_from() {
    let mut cases = vec![mainnet_psbt().0, psbt_of(tx(BIP143_TX))];
    let mut bip341 = bip341().psbt;
    bip341.inputs[3].sighash_type = Some(PsbtSighashType::from_u32(1));
    bip341.inputs[6].sighash_type = Some(PsbtSighashType::from_u32(0x83));
    cases.push(bip341);
    for vector in [BIP174_VALID_1, BIP371_KEY_PATH, BIP371_SCRIPT_PATH] {
        cases.push(decode_psbt(&unhex(vector)).expect("vector").into_psbt());
    }
    // Global, input and output fields of every kind the maps convert.
    let mut extra = mainnet_psbt().0;
    let xpub: Xpub = "tpubD6NzVbkrYhZ4XgiXtGrdW5XDAPFCL9h7we1vwNCpn8tGbBcgfVYjXyhWo4E1xkh56hjod1RhGjxbaTLV3X4FyWuejifB9jusQ46QzG87VKp"
        .parse()
        .expect("tpub");
    extra.xpub.insert(
        xpub,
        (
            Fingerprint::from([1, 2, 3, 4]),
            "m/1/2".parse().expect("path"),
        ),
    );
    let proprietary = bitcoin::psbt::raw::ProprietaryKey {
        prefix: b"sigil".to_vec(),
        subtype: 7,
        key: vec![1, 2],
    };
    let unknown = bitcoin::psbt::raw::Key {
        type_value: 0xf0,
        key: vec![9],
    };
    extra.proprietary.insert(proprietary.clone(), vec![3]);
    extra.unknown.insert(unknown.clone(), vec![4]);
    extra.inputs[0]
        .proprietary
        .insert(proprietary.clone(), vec![5]);
    extra.inputs[0].unknown.insert(unknown.clone(), vec![6]);
    extra.inputs[1].sha256_preimages.insert(
        bitcoin::hashes::sha256::Hash::hash(b"preimage"),
        b"preimage".to_vec(),
    );
    extra.inputs[1].witness_script = Some(script("51"));
    extra.outputs[0].proprietary.insert(proprietary, vec![7]);
    extra.outputs[0].unknown.insert(unknown, vec![8]);
    extra.outputs[1].redeem_script = Some(script("0014683cb8a6d44ba56e04af8e900e29439a6b410f0d"));
    cases.push(extra);

    for (i, psbt) in cases.iter().enumerate() {
        let bytes = to_v2(psbt).serialize();
        let decoded = decode_psbt(&bytes).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(decoded.version(), 2, "case {i}");
        assert_eq!(decoded.psbt(), psbt, "case {i}");
        assert_eq!(decoded.serialize(), bytes, "case {i}");
    }
}

/// Two Taproot inputs of one key (one SIGHASH_DEFAULT, one SIGHASH_ALL),
/// a payment and change; a height lock time.
fn taproot_psbt() -> (k256::schnorr::SigningKey, SigningKey, Psbt) {
    let sk = k256::schnorr::SigningKey::from_bytes(&[0x11; 32]).expect("key");
    let q: [u8; 32] = sk.verifying_key().to_bytes().into();
    let other: [u8; 32] = k256::schnorr::SigningKey::from_bytes(&[0x22; 32])
        .expect("key")
        .verifying_key()
        .to_bytes()
        .into();
    let mut psbt = psbt_of(unsigned(
        &[outpoint(1, 0), outpoint(2, 3)],
        vec![out(80_000, p2tr(&other)), out(29_000, p2tr(&q))],
    ));
    psbt.unsigned_tx.lock_time = bitcoin::absolute::LockTime::from_height(850_000).expect("height");
    psbt.inputs[0].witness_utxo = Some(out(70_000, p2tr(&q)));
    psbt.inputs[1].witness_utxo = Some(out(40_000, p2tr(&q)));
    psbt.inputs[1].sighash_type = Some(PsbtSighashType::from_u32(1));
    let key = SigningKey::Taproot {
        output_key_xonly: q,
    };
    (sk, key, psbt)
}

#[test]
fn a_version_2_taproot_psbt_is_analyzed_and_signed_like_its_version_0_twin() {
    let (sk, key, psbt) = taproot_psbt();
    let mut maps = to_v2(&psbt);
    // Inputs and outputs still modifiable: accepted (our signatures commit
    // to all of them).
    maps.global.tx_modifiable_flags = 0x03;
    let request = maps.serialize();

    // The coordinator's calls (coordinator/src/transactions.rs), unchanged.
    let decoded = decode_psbt(&request).expect("version 2");
    assert_eq!(decoded.version(), 2);
    let summary = analyze(&decoded, &key, Network::Bitcoin).expect("ours");
    let summary_v0 = analyze(&psbt, &key, Network::Bitcoin).expect("ours");
    assert_eq!(summary, summary_v0);
    assert_eq!(
        (summary.total_in, summary.total_out, summary.fee),
        (110_000, 109_000, 1_000)
    );
    assert_eq!(summary.change, [1]);
    assert_eq!(
        summary
            .destinations
            .iter()
            .map(|d| (d.index, d.amount))
            .collect::<Vec<_>>(),
        [(0, 80_000)]
    );
    assert_eq!(
        summary
            .inputs
            .iter()
            .map(|i| i.sighash_type)
            .collect::<Vec<_>>(),
        [SighashKind::TaprootDefault, SighashKind::TaprootAll]
    );
    let signatures: Vec<(usize, Vec<u8>)> = summary
        .inputs
        .iter()
        .map(|i| {
            let sig = sk.sign_raw(&i.sighash, &[0x33; 32]).expect("sign");
            (
                i.index,
                psbt_signature(i, &sig.to_bytes()).expect("signature"),
            )
        })
        .collect();

    // One input, then the other: no transaction until both are final.
    let (partial, raw) = finalize(&decoded, &key, &signatures[..1]).expect("input 0");
    assert!(raw.is_none());
    assert_eq!(partial.version(), 2);
    assert_eq!(
        partial.inputs[1].sighash_type,
        Some(PsbtSighashType::from_u32(1))
    );
    let (signed, raw) = finalize(&partial, &key, &signatures[1..]).expect("input 1");
    let raw = raw.expect("all final");

    // The version-0 path gives the same transaction and the same view.
    let (signed_v0, raw_v0) = finalize(&psbt, &key, &signatures).expect("version 0");
    assert_eq!(Some(raw.clone()), raw_v0);
    assert_eq!(signed.psbt(), &signed_v0);
    let tx: Transaction = consensus::deserialize(&raw).expect("raw");
    assert_eq!(tx.compute_txid().to_string(), summary.txid);
    assert_eq!(tx.lock_time.to_consensus_u32(), 850_000);

    // What the coordinator sends back is version 2, as rust-psbt reads it.
    let text = to_base64(&signed);
    let back = psbt_v2::v2::Psbt::deserialize(&base64_decode(&text)).expect("rust-psbt");
    assert_eq!(back.global.version, psbt_v2::V2);
    assert_eq!(back.global.tx_modifiable_flags, 0x00);
    assert_eq!(
        back.global.fallback_lock_time,
        Some(psbt.unsigned_tx.lock_time)
    );
    for (i, input) in back.inputs.iter().enumerate() {
        assert_eq!(
            input.final_script_witness, signed_v0.inputs[i].final_script_witness,
            "input {i}"
        );
        assert!(input.sighash_type.is_none() && input.tap_key_sig.is_none());
        assert_eq!(input.witness_utxo, psbt.inputs[i].witness_utxo);
        assert_eq!(input.sequence, Some(Sequence::ENABLE_RBF_NO_LOCKTIME));
        assert_eq!(
            (input.previous_txid, input.spent_output_index),
            (
                psbt.unsigned_tx.input[i].previous_output.txid,
                psbt.unsigned_tx.input[i].previous_output.vout
            )
        );
    }
    assert_eq!(consensus::encode::serialize(&tx_of_v2(&back)), raw);

    // Decoded again: the same PSBT, and nothing left to sign.
    let again = decode_psbt(text.as_bytes()).expect("signed version 2");
    assert_eq!(again, signed);
    assert!(matches!(
        finalize(&again, &key, &signatures[..1]),
        Err(PsbtError::UnsupportedInput { input: 0, .. })
    ));
}

#[test]
fn a_version_2_p2wpkh_psbt_is_analyzed_and_signed_like_its_version_0_twin() {
    // The mainnet transaction (non_witness_utxo inputs, its real signatures).
    let (psbt, sigs) = mainnet_psbt();
    let key = p2wpkh_key(MAINNET_KEY, None);
    let decoded = decode_psbt(&to_v2(&psbt).serialize()).expect("version 2");
    assert_eq!(
        analyze(&decoded, &key, Network::Bitcoin),
        analyze(&psbt, &key, Network::Bitcoin)
    );
    let (signed, raw) = finalize(&decoded, &key, &sigs).expect("mainnet signatures");
    assert_eq!(hex::encode(raw.as_deref().expect("final")), MAINNET_TX);
    let back = psbt_v2::v2::Psbt::deserialize(&signed.serialize()).expect("rust-psbt");
    assert_eq!(
        hex::encode(consensus::encode::serialize(&tx_of_v2(&back))),
        MAINNET_TX
    );
    assert!(back.inputs.iter().all(|i| i.partial_sigs.is_empty()
        && i.non_witness_utxo.is_some()
        && i.final_script_sig.is_none()));

    // BIP-32 children: an input at m/0/7 and change at m/1/3, both named by
    // the PSBT's derivation entries.
    let master = k256::Scalar::from_repr(k256::FieldBytes::from([0x07; 32]))
        .into_option()
        .expect("scalar");
    let chain = [0x5a; 32];
    let master_pk = compressed(&master);
    let fingerprint =
        Fingerprint::from(<[u8; 4]>::try_from(&hash160::Hash::hash(&master_pk)[..4]).expect("4"));
    let child = derive_path(&master, &chain, &[0, 7]);
    let change = derive_path(&master, &chain, &[1, 3]);
    let pk_of = |k: &k256::Scalar| secp256k1::PublicKey::from_slice(&compressed(k)).expect("point");
    let mut psbt = psbt_of(unsigned(
        &[outpoint(3, 0), outpoint(4, 1)],
        vec![
            out(100_000, p2wpkh(&[0x02; 33])),
            out(9_500, p2wpkh(&compressed(&change))),
        ],
    ));
    psbt.inputs[0].witness_utxo = Some(out(50_000, p2wpkh(&master_pk)));
    psbt.inputs[1].witness_utxo = Some(out(60_000, p2wpkh(&compressed(&child))));
    psbt.inputs[1]
        .bip32_derivation
        .insert(pk_of(&child), (fingerprint, "m/0/7".parse().expect("path")));
    psbt.outputs[1].bip32_derivation.insert(
        pk_of(&change),
        (fingerprint, "m/1/3".parse().expect("path")),
    );
    let key = SigningKey::P2wpkh {
        public_key: master_pk.clone().try_into().expect("33"),
        chain_code: chain,
        request_path: None,
    };
    let decoded = decode_psbt(&to_v2(&psbt).serialize()).expect("version 2");
    let summary = analyze(&decoded, &key, Network::Bitcoin).expect("ours");
    assert_eq!(
        Ok(&summary),
        analyze(&psbt, &key, Network::Bitcoin).as_ref()
    );
    assert_eq!(summary.change, [1]);
    assert_eq!(summary.inputs[1].derivation_path, Some(vec![0, 7]));
    assert_eq!(summary.fee, 500);

    let secrets = [master, child];
    let sigs: Vec<(usize, Vec<u8>)> = summary
        .inputs
        .iter()
        .map(|i| {
            let sk =
                k256::ecdsa::SigningKey::from_bytes(&secrets[i.index].to_bytes()).expect("key");
            let sig: k256::ecdsa::Signature =
                k256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&sk, &i.sighash)
                    .expect("sign");
            (
                i.index,
                psbt_signature(i, &sig.to_bytes()).expect("signature"),
            )
        })
        .collect();
    let (signed, raw) = finalize(&decoded, &key, &sigs).expect("signatures");
    let (signed_v0, raw_v0) = finalize(&psbt, &key, &sigs).expect("version 0");
    assert_eq!(raw, raw_v0);
    assert_eq!(signed.psbt(), &signed_v0);
    let back = psbt_v2::v2::Psbt::deserialize(&base64_decode(&to_base64(&signed))).expect("v2");
    assert!(back.inputs.iter().all(|i| i.bip32_derivations.is_empty()));
    assert_eq!(Some(consensus::encode::serialize(&tx_of_v2(&back))), raw_v0);
}

/// A PSBT from raw maps of (key, value) pairs: the global map, then the
/// input and output maps.
fn encode_maps(maps: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Vec<u8> {
    fn compact(out: &mut Vec<u8>, n: usize) {
        match n {
            0..0xfd => out.push(n as u8),
            0xfd..=0xffff => {
                out.push(0xfd);
                out.extend_from_slice(&(n as u16).to_le_bytes());
            }
            _ => {
                out.push(0xfe);
                out.extend_from_slice(&(n as u32).to_le_bytes());
            }
        }
    }
    let mut out = b"psbt\xff".to_vec();
    for map in maps {
        for (key, value) in map {
            compact(&mut out, key.len());
            out.extend_from_slice(key);
            compact(&mut out, value.len());
            out.extend_from_slice(value);
        }
        out.push(0x00);
    }
    out
}

/// A minimal version-2 PSBT as raw maps: one input, one output.
fn minimal_v2() -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    vec![
        vec![
            (vec![0x02], 2u32.to_le_bytes().to_vec()),
            (vec![0x04], vec![1]),
            (vec![0x05], vec![1]),
            (vec![0xfb], 2u32.to_le_bytes().to_vec()),
        ],
        vec![
            (vec![0x0e], vec![0xab; 32]),
            (vec![0x0f], 1u32.to_le_bytes().to_vec()),
        ],
        vec![
            (vec![0x03], 5_000u64.to_le_bytes().to_vec()),
            (
                vec![0x04],
                unhex("0014c430f64c4756da310dbd1a085572ef299926272c"),
            ),
        ],
    ]
}

#[test]
fn a_minimal_version_2_psbt_decodes_and_its_global_fields_may_come_in_any_order() {
    let maps = minimal_v2();
    let decoded = decode_psbt(&encode_maps(&maps)).expect("minimal");
    let tx = &decoded.unsigned_tx;
    assert_eq!(
        tx.input[0].previous_output,
        OutPoint {
            txid: Txid::from_byte_array([0xab; 32]),
            vout: 1
        }
    );
    assert_eq!(tx.input[0].sequence, Sequence::MAX);
    assert_eq!(tx.lock_time.to_consensus_u32(), 0);
    assert_eq!(tx.output[0].value.to_sat(), 5_000);
    // PSBT_GLOBAL_OUTPUT_COUNT before PSBT_GLOBAL_INPUT_COUNT, version first.
    let mut reordered = maps.clone();
    reordered[0].reverse();
    assert_eq!(
        decode_psbt(&encode_maps(&reordered))
            .expect("reordered")
            .psbt(),
        decoded.psbt()
    );
}

#[test]
fn a_version_2_psbt_with_a_zero_amount_output_is_accepted_and_signed_back() {
    // rust-psbt takes PSBT_OUT_AMOUNT 0 for a missing amount; an OP_RETURN
    // output of 0 sat is valid all the same.
    let (sk, key, mut psbt) = taproot_psbt();
    psbt.unsigned_tx
        .output
        .push(out(0, script("6a0568656c6c6f")));
    psbt.outputs.push(Default::default());
    let decoded = decode_psbt(&to_v2(&psbt).serialize()).expect("version 2");
    assert_eq!(decoded.psbt(), &psbt);
    let summary = analyze(&decoded, &key, Network::Bitcoin).expect("ours");
    assert_eq!(
        Ok(&summary),
        analyze(&psbt, &key, Network::Bitcoin).as_ref()
    );
    assert_eq!(
        (
            summary.destinations[1].index,
            summary.destinations[1].amount
        ),
        (2, 0)
    );
    assert_eq!(summary.destinations[1].address, None);
    let signatures: Vec<(usize, Vec<u8>)> = summary
        .inputs
        .iter()
        .map(|i| {
            let sig = sk.sign_raw(&i.sighash, &[0x44; 32]).expect("sign");
            (i.index, psbt_signature(i, &sig.to_bytes()).expect("sig"))
        })
        .collect();
    let (signed, raw) = finalize(&decoded, &key, &signatures).expect("signed");
    assert_eq!(
        Ok(raw),
        finalize(&psbt, &key, &signatures).map(|(_, raw)| raw)
    );
    assert_eq!(signed.version(), 2);
    assert_eq!(decode_psbt(&signed.serialize()).as_ref(), Ok(&signed));
}

#[test]
fn a_version_2_psbt_with_trailing_bytes_is_refused() {
    let (_, _, psbt) = taproot_psbt();
    let mut bytes = to_v2(&psbt).serialize();
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(
        decode_psbt(&bytes),
        Err(PsbtError::TrailingBytes { count: 2 })
    );
    use bitcoin::base64::Engine as _;
    let text = bitcoin::base64::engine::general_purpose::STANDARD.encode(&bytes);
    assert_eq!(
        decode_psbt(text.as_bytes()),
        Err(PsbtError::TrailingBytes { count: 2 })
    );
    // An extra map (a second output) not announced is trailing too.
    let mut maps = minimal_v2();
    maps.push(maps[2].clone());
    let bytes = encode_maps(&maps);
    let extra = (3 + 8) + (3 + 22) + 1;
    assert_eq!(
        decode_psbt(&bytes),
        Err(PsbtError::TrailingBytes { count: extra })
    );
}

#[test]
fn psbt_versions_other_than_0_and_2_are_refused_as_unsupported() {
    for version in [1u32, 3, 0xffff_ffff] {
        let mut maps = minimal_v2();
        maps[0][3].1 = version.to_le_bytes().to_vec();
        assert!(
            matches!(
                decode_psbt(&encode_maps(&maps)),
                Err(PsbtError::UnsupportedVersion { .. })
            ),
            "version {version}"
        );
        // A version-0 layout naming that version is refused the same way.
        let mut v0 = unhex(BIP174_VALID_1);
        let global_end = 5 + 3 + 0x75;
        assert_eq!(v0[global_end], 0x00);
        let mut field = vec![0x01, 0xfb, 0x04];
        field.extend_from_slice(&version.to_le_bytes());
        v0.splice(global_end..global_end, field);
        assert!(
            matches!(decode_psbt(&v0), Err(PsbtError::UnsupportedVersion { .. })),
            "version {version} (version-0 layout)"
        );
    }
}

#[test]
fn version_2_psbts_missing_or_repeating_fields_are_refused() {
    let refused = |maps: &[Vec<(Vec<u8>, Vec<u8>)>], what: &str| {
        let err = decode_psbt(&encode_maps(maps)).expect_err(what);
        assert!(
            matches!(err, PsbtError::Malformed { .. }),
            "{what}: {err:?}"
        );
    };
    // Each required field left out.
    for (map, index, what) in [
        (0, 0, "PSBT_GLOBAL_TX_VERSION"),
        (0, 1, "PSBT_GLOBAL_INPUT_COUNT"),
        (0, 2, "PSBT_GLOBAL_OUTPUT_COUNT"),
        (1, 0, "PSBT_IN_PREVIOUS_TXID"),
        (1, 1, "PSBT_IN_OUTPUT_INDEX"),
        (2, 0, "PSBT_OUT_AMOUNT"),
        (2, 1, "PSBT_OUT_SCRIPT"),
    ] {
        let mut maps = minimal_v2();
        maps[map].remove(index);
        refused(&maps, what);
    }
    // A repeated PSBT_GLOBAL_INPUT_COUNT (rust-psbt alone would take the last).
    let mut maps = minimal_v2();
    maps[0].insert(1, (vec![0x04], vec![1]));
    refused(&maps, "two input counts");
    // A count with a byte after its compact size.
    let mut maps = minimal_v2();
    maps[0][1].1 = vec![1, 0];
    refused(&maps, "input count with an extra byte");
    // Counts far beyond the maps present (no allocation for them).
    for count in [vec![0xff; 9], vec![0xfe, 0xff, 0xff, 0xff, 0x7f], vec![2]] {
        let mut maps = minimal_v2();
        maps[0][1].1 = count.clone();
        refused(&maps, &format!("input count {count:02x?}"));
        let mut maps = minimal_v2();
        maps[0][2].1 = count.clone();
        refused(&maps, &format!("output count {count:02x?}"));
    }
    // Key data on the BIP-370 fields rust-psbt reads without looking at it.
    for (map, what) in [(1, "PSBT_IN_PREVIOUS_TXID"), (2, "PSBT_OUT_AMOUNT")] {
        let mut maps = minimal_v2();
        maps[map][0].0.push(0x00);
        refused(&maps, &format!("{what} with key data"));
    }
    // A duplicate unknown key in an output map.
    let mut maps = minimal_v2();
    maps[2].push((vec![0xf0, 1], vec![]));
    maps[2].push((vec![0xf0, 1], vec![2]));
    refused(&maps, "duplicate unknown key");
    // An excluded version-0 field: PSBT_GLOBAL_UNSIGNED_TX.
    let mut maps = minimal_v2();
    maps[0].push((vec![0x00], tx(BIP143_TX).input.len().to_le_bytes().to_vec()));
    refused(&maps, "PSBT_GLOBAL_UNSIGNED_TX");
    // A BIP-32 derivation under one key, compressed and uncompressed.
    let pk = secp256k1::PublicKey::from_slice(&unhex(MAINNET_KEY)).expect("key");
    let mut maps = minimal_v2();
    let origin = [1u8, 2, 3, 4, 5, 0, 0, 0].to_vec();
    let mut compressed_key = vec![0x06];
    compressed_key.extend_from_slice(&pk.serialize());
    let mut uncompressed_key = vec![0x06];
    uncompressed_key.extend_from_slice(&pk.serialize_uncompressed());
    maps[1].push((compressed_key, origin.clone()));
    maps[1].push((uncompressed_key, origin));
    refused(&maps, "compressed and uncompressed derivation key");
}

#[test]
fn truncated_or_corrupted_version_2_psbts_are_refused_without_panicking() {
    let case = bip370("valid")
        .into_iter()
        .find(|c| field(c, "case").contains("with all PSBTv2 fields"))
        .expect("vector");
    let bytes = unhex(field(&case, "hex"));
    decode_psbt(&bytes).expect("valid");
    for cut in 0..bytes.len() {
        let err = decode_psbt(&bytes[..cut]).expect_err("truncated");
        assert!(
            matches!(err, PsbtError::Malformed { .. }),
            "cut {cut}: {err:?}"
        );
    }
    // Every byte flipped three ways: whatever the verdict, no panic, and an
    // accepted PSBT re-encodes to one that decodes the same.
    for at in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut corrupted = bytes.clone();
            corrupted[at] ^= flip;
            if let Ok(decoded) = decode_psbt(&corrupted) {
                assert_eq!(
                    decode_psbt(&decoded.serialize()).as_ref(),
                    Ok(&decoded),
                    "byte {at} ^ {flip:#04x}"
                );
            }
        }
    }
}

#[test]
fn a_version_0_psbt_carrying_version_2_fields_is_refused() {
    let valid = unhex(BIP174_VALID_1);
    let global_end = 5 + 3 + 0x75;
    let input_start = global_end + 1;
    // Global PSBT_GLOBAL_TX_VERSION; then input PSBT_IN_SEQUENCE.
    for (at, field) in [
        (global_end, vec![0x01, 0x02, 0x04, 2, 0, 0, 0]),
        (input_start, vec![0x01, 0x10, 0x04, 0xff, 0xff, 0xff, 0xff]),
    ] {
        let mut bytes = valid.clone();
        bytes.splice(at..at, field);
        assert!(
            matches!(decode_psbt(&bytes), Err(PsbtError::Malformed { reason }) if reason.contains("BIP-370")),
            "field at {at}"
        );
    }
}
