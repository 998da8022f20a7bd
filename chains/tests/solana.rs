//! Solana messages and transactions (`sigil_chains::solana`): real
//! transactions from public sources (`vectors/solana_transactions.json`),
//! round trips through messages built with the Solana crates, malformed
//! input, and signing with ed25519-dalek checked by Solana's own
//! verification.

use std::str::FromStr as _;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sigil_chains::solana::instruction::{
    COMPUTE_BUDGET_PROGRAM_ID, SYSTEM_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID,
};
use sigil_chains::solana::{
    Address, ComputeBudget, DecodedMessage, Hash, InstructionKind, LookupTable, MessageVersion,
    SignerSlot, SolanaError, TokenProgram, check_signer, decode_message, signed_transaction,
};
use solana_message::{AddressLookupTableAccount, Instruction, VersionedMessage, v0};
use solana_transaction::versioned::VersionedTransaction;

const VECTORS: &str = include_str!("vectors/solana_transactions.json");

fn vector(name: &str) -> serde_json::Value {
    let all: serde_json::Value = serde_json::from_str(VECTORS).expect("vector JSON");
    all[name].clone()
}

fn unbase64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("test base64")
}

/// A vector's wire transaction.
fn transaction(name: &str) -> Vec<u8> {
    unbase64(vector(name)["transaction"].as_str().expect("transaction"))
}

/// The signatures and the message of a wire transaction (fewer than 128
/// signatures: a one-byte count).
fn split(raw: &[u8]) -> (Vec<[u8; 64]>, Vec<u8>) {
    let n = usize::from(raw[0]);
    assert!(n < 0x80);
    let signatures = raw[1..1 + 64 * n]
        .chunks(64)
        .map(|c| c.try_into().expect("64 bytes"))
        .collect();
    (signatures, raw[1 + 64 * n..].to_vec())
}

fn addr(s: &str) -> Address {
    Address::from_str(s).expect("test address")
}

fn key_bytes(s: &str) -> [u8; 32] {
    addr(s).to_bytes()
}

/// Solana's own reading and verification of a signed transaction.
fn verify_with_solana(raw: &[u8]) -> VersionedTransaction {
    let tx: VersionedTransaction = wincode::deserialize(raw).expect("Solana decodes it");
    tx.verify_and_hash_message()
        .expect("Solana verifies every signature");
    tx
}

fn blockhash(byte: u8) -> Hash {
    Hash::new_from_array([byte; 32])
}

fn unique(seed: u8) -> Address {
    let mut bytes = [seed; 32];
    bytes[0] = 0xa5;
    Address::new_from_array(bytes)
}

fn legacy_bytes(instructions: &[Instruction], payer: &Address) -> Vec<u8> {
    let mut message = solana_message::Message::new(instructions, Some(payer));
    message.recent_blockhash = blockhash(7);
    wincode::serialize(&VersionedMessage::Legacy(message)).expect("encodes")
}

fn compute_unit_limit(units: u32) -> Instruction {
    // ComputeBudgetInstruction::SetComputeUnitLimit, Borsh: tag 2, u32 LE.
    let mut data = vec![2];
    data.extend_from_slice(&units.to_le_bytes());
    Instruction::new_with_bytes(COMPUTE_BUDGET_PROGRAM_ID, &data, vec![])
}

fn compute_unit_price(micro_lamports: u64) -> Instruction {
    let mut data = vec![3];
    data.extend_from_slice(&micro_lamports.to_le_bytes());
    Instruction::new_with_bytes(COMPUTE_BUDGET_PROGRAM_ID, &data, vec![])
}

fn transfer_checked(
    source: &Address,
    mint: &Address,
    destination: &Address,
    authority: &Address,
    amount: u64,
    decimals: u8,
) -> Instruction {
    spl_token_interface::instruction::transfer_checked(
        &TOKEN_PROGRAM_ID,
        source,
        mint,
        destination,
        authority,
        &[],
        amount,
        decimals,
    )
    .expect("SPL Token instruction")
}

fn kinds(decoded: &DecodedMessage) -> Vec<InstructionKind> {
    decoded
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Real transactions
// ---------------------------------------------------------------------------

#[test]
fn a_real_legacy_sol_transfer_decodes_to_its_transfer_and_is_rebuilt_byte_for_byte() {
    let raw = transaction("legacy_sol_transfer");
    verify_with_solana(&raw);
    let (signatures, message) = split(&raw);
    let decoded = decode_message(&message, &[]).expect("decodes");

    assert_eq!(decoded.version, MessageVersion::Legacy);
    assert_eq!(decoded.header.num_required_signatures, 1);
    assert_eq!(
        decoded.fee_payer(),
        Some(&addr("52NGrUqh6tSGhr59ajGxsH3VnAaoRdSdTbAaV9G3UW35"))
    );
    assert_eq!(
        decoded.recent_blockhash.to_string(),
        "GcgVK9buRA7YepZh3zXuS399GJAESCisLnLDBCmR5Aoj"
    );
    assert_eq!(
        kinds(&decoded),
        [InstructionKind::SystemTransfer {
            from: addr("52NGrUqh6tSGhr59ajGxsH3VnAaoRdSdTbAaV9G3UW35"),
            to: addr("SRMuApVNdxXokk5GT7XD5cUUgXMBCoAz2LHeuAoKWRt"),
            lamports: 12345,
        }]
    );
    assert_eq!(decoded.instructions[0].program_id, SYSTEM_PROGRAM_ID);

    let payer = key_bytes("52NGrUqh6tSGhr59ajGxsH3VnAaoRdSdTbAaV9G3UW35");
    assert_eq!(
        check_signer(&decoded, &payer),
        Ok(SignerSlot {
            index: 0,
            is_fee_payer: true,
            other_signatures_needed: false,
        })
    );
    let signed = signed_transaction(&message, &payer, &signatures[0]).expect("signed");
    assert_eq!(signed.raw, raw);
    assert_eq!(signed.base64, vector("legacy_sol_transfer")["transaction"]);
    assert_eq!(
        signed.id.as_deref(),
        Some(
            "5yUSwqQqeZLEEYKxnG4JC4XhaaBpV3RS4nQbK8bQTyjLX5btVq9A1Ja5nuJzV7Z3Zq8G6EVKFvN4DKUL6PSAxmTk"
        )
    );
    assert_eq!(signed.missing_signatures, 0);
}

#[test]
fn a_real_two_signer_transfer_gives_the_second_signer_its_own_slot() {
    let raw = transaction("legacy_two_signer_transfer");
    verify_with_solana(&raw);
    let (signatures, message) = split(&raw);
    let decoded = decode_message(&message, &[]).expect("decodes");

    assert_eq!(
        decoded.signers(),
        [
            addr("2vKtu3nW1TS6iPvJPK8R88B5QfDrwJDwwB11Uu1CN9o7"),
            addr("96i77Hg7RL7J4Lrc1d6MXFofCKwEFZe84DejFUMhUs19"),
        ]
    );
    // The transfer passes four accounts (the second signer and the program
    // after `from` and `to`): extra accounts do not change what it does.
    assert_eq!(
        kinds(&decoded),
        [InstructionKind::SystemTransfer {
            from: addr("2vKtu3nW1TS6iPvJPK8R88B5QfDrwJDwwB11Uu1CN9o7"),
            to: addr("DjdFG6wFWet9aWFpokABdy8aJgCH6TYqknNP32rrCfDf"),
            lamports: 1_000_000,
        }]
    );

    let second = key_bytes("96i77Hg7RL7J4Lrc1d6MXFofCKwEFZe84DejFUMhUs19");
    assert_eq!(
        check_signer(&decoded, &second),
        Ok(SignerSlot {
            index: 1,
            is_fee_payer: false,
            other_signatures_needed: true,
        })
    );
    let signed = signed_transaction(&message, &second, &signatures[1]).expect("signed");
    assert_eq!(signed.id, None);
    assert_eq!(signed.missing_signatures, 1);
    assert_eq!(signed.raw[0], 2);
    assert_eq!(signed.raw[1..65], [0u8; 64]);
    assert_eq!(signed.raw[65..129], signatures[1]);
    assert_eq!(signed.raw[129..], message[..]);
}

#[test]
fn a_real_usdc_transfer_checked_is_read_with_its_mint_decimals_and_destination() {
    let raw = transaction("legacy_usdc_transfer_checked");
    let (signatures, message) = split(&raw);
    let decoded = decode_message(&message, &[]).expect("decodes");
    let fee_payer = addr("ArQXqDafc92F5k5FDUR8J8qfVPWBZbzXkPueGHUSMoUX");
    assert_eq!(decoded.fee_payer(), Some(&fee_payer));
    // The fee payer's signature is there and verifies; the token
    // authority's slot is still empty.
    ed25519_dalek::VerifyingKey::from_bytes(&fee_payer.to_bytes())
        .expect("key")
        .verify_strict(
            &message,
            &ed25519_dalek::Signature::from_bytes(&signatures[0]),
        )
        .expect("the fee payer's signature verifies");
    assert_eq!(signatures[1], [0u8; 64]);

    let kinds = kinds(&decoded);
    assert_eq!(kinds.len(), 3);
    assert_eq!(
        decoded.instructions[0].program_id,
        addr("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
    );
    assert_eq!(kinds[0], InstructionKind::Other);
    assert_eq!(
        kinds[1],
        InstructionKind::TokenTransferChecked {
            program: TokenProgram::Token,
            source: addr("8X9GtgdogzhdA89RCZTy5VbZyye1FwtJgtPdJGYUiXqw"),
            mint: addr("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"),
            destination: addr("41NSaHuMjk2uQUFamSDw3CVE4iNok7DTyJdiJi9cxGVg"),
            authority: addr("HJCP3ci2rDKZRq3nYBPjWrEgpDBqt2ah7Dv68kB7rdYn"),
            amount: 10_000,
            decimals: 6,
        }
    );
    assert_eq!(
        decoded.instructions[2].program_id,
        addr("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
    );
    assert_eq!(kinds[2], InstructionKind::Other);

    // The token authority is the second, read-only signer.
    let authority = key_bytes("HJCP3ci2rDKZRq3nYBPjWrEgpDBqt2ah7Dv68kB7rdYn");
    assert_eq!(
        check_signer(&decoded, &authority),
        Ok(SignerSlot {
            index: 1,
            is_fee_payer: false,
            other_signatures_needed: true,
        })
    );
}

#[test]
fn a_public_v0_message_needs_its_lookup_table_and_resolves_it_in_solanas_order() {
    let raw = transaction("v0_with_lookup_table");
    let (signatures, message) = split(&raw);
    let table = addr("9WWfC3y4uCNofr2qEFHSVUXkCxW99JiYkMWmSZvVt8j3");

    assert_eq!(
        decode_message(&message, &[]),
        Err(SolanaError::MissingLookupTable(table.to_string()))
    );
    assert_eq!(
        decode_message(&message, &[])
            .expect_err("refused")
            .to_string(),
        "the message loads addresses from lookup table 9WWfC3y4uCNofr2qEFHSVUXkCxW99JiYkMWmSZvVt8j3, whose contents were not supplied"
    );

    // The contents solana-go's test supplies load keys the message already
    // has: Solana would refuse the transaction (AccountLoadedTwice).
    let source = &vector("v0_with_lookup_table")["lookup_table_in_source"];
    let in_source = LookupTable {
        account: addr(source["account"].as_str().expect("account")),
        addresses: source["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .map(|a| addr(a.as_str().expect("address")))
            .collect(),
    };
    assert!(matches!(
        decode_message(&message, std::slice::from_ref(&in_source)),
        Err(SolanaError::DuplicateAccount(_))
    ));

    // With distinct contents: writable indexes 1 and 2, then read-only 0.
    let contents: Vec<Address> = (0..4).map(unique).collect();
    let lookup = LookupTable {
        account: table,
        addresses: contents.clone(),
    };
    let decoded = decode_message(&message, &[lookup]).expect("decodes");
    assert_eq!(decoded.version, MessageVersion::V0);
    assert_eq!(decoded.num_static_keys, 8);
    assert_eq!(
        decoded.account_keys[8..],
        [contents[1], contents[2], contents[0]]
    );
    assert_eq!(decoded.loaded_from, [table; 3]);
    assert_eq!(decoded.lookup_table_of(&contents[0]), Some(&table));
    assert_eq!(decoded.lookup_table_of(&decoded.account_keys[2]), None);

    let payer = addr("2m4eNwBVqu6SgFk23HgE3W5MW89yT5z1vspz2WsiFBHF");
    let transfer = |to: &str| InstructionKind::SystemTransfer {
        from: payer,
        to: addr(to),
        lamports: 10_000_000,
    };
    assert_eq!(
        kinds(&decoded),
        [
            transfer("81o7hHYN5a8fc5wdjjfznK9ziJ9wcuKXwbZnuYpanxMQ"),
            transfer("FKN5imdi7yadX4axe4hxaqBET4n6DBDRF5LKo5aBF53j"),
            transfer("3or4uF7ZyuQW5GGmcmdXDJasNiSZUURF2az1UrRPYQTg"),
            InstructionKind::Other,
        ]
    );
    assert_eq!(
        decoded.instructions[3].program_id,
        addr("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
    );

    // The signatures the test data carries do not verify over its message:
    // a signed transaction is never built from them.
    assert!(matches!(
        signed_transaction(&message, &payer.to_bytes(), &signatures[0]),
        Err(SolanaError::InvalidSignature(_))
    ));
}

#[test]
fn a_real_signed_v0_swap_names_its_missing_table_and_is_rebuilt_byte_for_byte() {
    let raw = transaction("v0_jupiter_swap");
    verify_with_solana(&raw);
    let (signatures, message) = split(&raw);
    assert_eq!(
        decode_message(&message, &[]),
        Err(SolanaError::MissingLookupTable(
            "7NB982hZNyGsC39QvtqhG955WM1mF5sDwK2sTxWyLzgf".into()
        ))
    );

    // Signing needs no table: only static keys sign.
    let payer = key_bytes("BJcxXxr2mSr71SVJaqvHHmdxHUrYRvC4sct1wMNZxirK");
    let signed = signed_transaction(&message, &payer, &signatures[0]).expect("signed");
    assert_eq!(signed.raw, raw);
    assert_eq!(signed.id, Some(bs58::encode(signatures[0]).into_string()));

    // With stand-in contents for the six tables (the chain's are not
    // available here), the message resolves and reads as two ComputeBudget
    // settings and two calls of the Jupiter program.
    let tables: Vec<LookupTable> = [
        "7NB982hZNyGsC39QvtqhG955WM1mF5sDwK2sTxWyLzgf",
        "XN94PpfYYgkKAppkzFz47CtYVVmiEapzcdCURXH56x3",
        "58xVUeBUPcKCyjXtbQVEdeJ4yWdARGgP2iyHRBU8trk3",
        "FBj6vLxx3oAyk7ZJKyadHMaSepD8DH9ns8PvdoCVkTek",
        "52dQQyA61Er5dTyRxYFu9SKhRcbJhKjnp6HqfnBCxVdc",
        "3np4pEdpBZGT3bWeJVPr3MFokTf6tEaTXCwctW4D5JDH",
    ]
    .iter()
    .enumerate()
    .map(|(t, account)| LookupTable {
        account: addr(account),
        addresses: (0..=255u8)
            .map(|i| {
                let mut bytes = [0x5a; 32];
                bytes[0] = t as u8;
                bytes[1] = i;
                Address::new_from_array(bytes)
            })
            .collect(),
    })
    .collect();
    let decoded = decode_message(&message, &tables).expect("decodes");
    assert_eq!(decoded.num_static_keys, 14);
    assert_eq!(decoded.account_keys.len(), 14 + 20 + 17);
    // The first loaded key: table 0, writable index 107.
    assert_eq!(decoded.account_keys[14].as_array()[..2], [0, 107]);
    assert_eq!(
        kinds(&decoded),
        [
            InstructionKind::ComputeBudget(ComputeBudget::SetComputeUnitPrice(1)),
            InstructionKind::ComputeBudget(ComputeBudget::SetComputeUnitLimit(944_995)),
            InstructionKind::Other,
            InstructionKind::Other,
        ]
    );
    assert_eq!(
        decoded.instructions[2].program_id,
        addr("JUP4Fb2cqiRUcaTHdrPC8h2gNsA2ETXiPDD33WcGuJB")
    );
}

// ---------------------------------------------------------------------------
// Round trips through the Solana crates
// ---------------------------------------------------------------------------

#[test]
fn a_legacy_message_built_with_the_solana_crates_decodes_instruction_by_instruction() {
    let payer = unique(1);
    let nonce = unique(2);
    let to = unique(3);
    let new_account = unique(4);
    let owner = unique(5);
    let (source, mint, destination) = (unique(6), unique(7), unique(8));
    // The derived address is the program's to check; any address reads.
    let seeded = unique(10);

    let instructions = [
        solana_system_interface::instruction::advance_nonce_account(&nonce, &payer),
        compute_unit_limit(200_000),
        compute_unit_price(5_000),
        solana_system_interface::instruction::transfer(&payer, &to, 1_500_000_000),
        solana_system_interface::instruction::create_account(
            &payer,
            &new_account,
            2_039_280,
            165,
            &owner,
        ),
        solana_system_interface::instruction::create_account_with_seed(
            &payer, &seeded, &payer, "vault", 890_880, 0, &owner,
        ),
        transfer_checked(&source, &mint, &destination, &payer, 2_500_000, 6),
    ];
    let bytes = legacy_bytes(&instructions, &payer);
    let decoded = decode_message(&bytes, &[]).expect("decodes");

    assert_eq!(decoded.version, MessageVersion::Legacy);
    assert_eq!(decoded.recent_blockhash, blockhash(7));
    assert_eq!(
        kinds(&decoded),
        [
            InstructionKind::AdvanceNonceAccount {
                nonce_account: nonce,
                authority: payer,
            },
            InstructionKind::ComputeBudget(ComputeBudget::SetComputeUnitLimit(200_000)),
            InstructionKind::ComputeBudget(ComputeBudget::SetComputeUnitPrice(5_000)),
            InstructionKind::SystemTransfer {
                from: payer,
                to,
                lamports: 1_500_000_000,
            },
            InstructionKind::SystemCreateAccount {
                funder: payer,
                new_account,
                lamports: 2_039_280,
            },
            InstructionKind::SystemCreateAccountWithSeed {
                funder: payer,
                new_account: seeded,
                lamports: 890_880,
            },
            InstructionKind::TokenTransferChecked {
                program: TokenProgram::Token,
                source,
                mint,
                destination,
                authority: payer,
                amount: 2_500_000,
                decimals: 6,
            },
        ]
    );
    assert!(!decoded.instructions[0].kind.moves_value());
    assert!(decoded.instructions[3].kind.moves_value());
}

#[test]
fn transfers_with_seed_and_plain_token_transfers_are_read_for_both_token_programs() {
    let payer = unique(1);
    let base = unique(2);
    let owner = unique(3);
    let to = unique(4);
    let from = unique(10);
    let (source, destination, mint) = (unique(5), unique(6), unique(7));

    let mut token_2022_transfer = spl_token_interface::instruction::transfer(
        &TOKEN_PROGRAM_ID,
        &source,
        &destination,
        &payer,
        &[],
        42,
    )
    .expect("transfer");
    token_2022_transfer.program_id = TOKEN_2022_PROGRAM_ID;
    let mut token_2022_checked = transfer_checked(&source, &mint, &destination, &payer, 7, 9);
    token_2022_checked.program_id = TOKEN_2022_PROGRAM_ID;
    let plain = spl_token_interface::instruction::transfer(
        &TOKEN_PROGRAM_ID,
        &source,
        &destination,
        &payer,
        &[],
        1,
    )
    .expect("transfer");

    let instructions = [
        solana_system_interface::instruction::transfer_with_seed(
            &from,
            &base,
            "savings".into(),
            &owner,
            &to,
            300,
        ),
        plain,
        token_2022_transfer,
        token_2022_checked,
    ];
    let decoded = decode_message(&legacy_bytes(&instructions, &payer), &[]).expect("decodes");
    assert_eq!(
        kinds(&decoded),
        [
            InstructionKind::SystemTransferWithSeed {
                from,
                base,
                to,
                lamports: 300,
            },
            InstructionKind::TokenTransfer {
                program: TokenProgram::Token,
                source,
                destination,
                authority: payer,
                amount: 1,
            },
            InstructionKind::TokenTransfer {
                program: TokenProgram::Token2022,
                source,
                destination,
                authority: payer,
                amount: 42,
            },
            InstructionKind::TokenTransferChecked {
                program: TokenProgram::Token2022,
                source,
                mint,
                destination,
                authority: payer,
                amount: 7,
                decimals: 9,
            },
        ]
    );
}

#[test]
fn a_v0_message_compiled_with_a_lookup_table_resolves_the_accounts_it_loads() {
    let payer = unique(1);
    let (source, mint, destination, recipient) = (unique(2), unique(3), unique(4), unique(5));
    let table = AddressLookupTableAccount {
        key: unique(9),
        addresses: vec![unique(20), mint, destination, recipient],
    };
    let instructions = [
        compute_unit_limit(50_000),
        transfer_checked(&source, &mint, &destination, &payer, 1_000_000, 6),
        solana_system_interface::instruction::transfer(&payer, &recipient, 5),
    ];
    let message = v0::Message::try_compile(
        &payer,
        &instructions,
        std::slice::from_ref(&table),
        blockhash(3),
    )
    .expect("compiles");
    let bytes = wincode::serialize(&VersionedMessage::V0(message)).expect("encodes");
    assert_eq!(bytes[0], 0x80);

    let supplied = LookupTable {
        account: table.key,
        addresses: table.addresses.clone(),
    };
    let decoded = decode_message(&bytes, &[supplied]).expect("decodes");
    assert_eq!(decoded.version, MessageVersion::V0);
    // Destination and recipient are written (loaded writable), the mint is
    // read-only: writable loads come first.
    assert_eq!(
        decoded.account_keys[decoded.num_static_keys..],
        [destination, recipient, mint]
    );
    assert_eq!(decoded.lookup_table_of(&mint), Some(&table.key));
    assert_eq!(decoded.lookup_table_of(&source), None);
    assert_eq!(
        kinds(&decoded)[1..],
        [
            InstructionKind::TokenTransferChecked {
                program: TokenProgram::Token,
                source,
                mint,
                destination,
                authority: payer,
                amount: 1_000_000,
                decimals: 6,
            },
            InstructionKind::SystemTransfer {
                from: payer,
                to: recipient,
                lamports: 5,
            },
        ]
    );

    let short = LookupTable {
        account: table.key,
        addresses: table.addresses[..2].to_vec(),
    };
    assert_eq!(
        decode_message(&bytes, &[short]),
        Err(SolanaError::LookupIndexOutOfRange {
            table: table.key.to_string(),
            index: 2,
            len: 2,
        })
    );
    let other = LookupTable {
        account: table.key,
        addresses: vec![unique(30), unique(31), unique(32), unique(33)],
    };
    let same = LookupTable {
        account: table.key,
        addresses: table.addresses.clone(),
    };
    assert_eq!(
        decode_message(&bytes, &[same, other]),
        Err(SolanaError::ConflictingLookupTables(table.key.to_string()))
    );
}

#[test]
fn instructions_with_trailing_bytes_a_wrong_length_or_missing_accounts_are_program_calls() {
    let payer = unique(1);
    let to = unique(2);
    let (source, mint, destination) = (unique(3), unique(4), unique(5));

    let mut long_transfer = solana_system_interface::instruction::transfer(&payer, &to, 1);
    long_transfer.data.push(0);
    let mut short_transfer = solana_system_interface::instruction::transfer(&payer, &to, 1);
    short_transfer.data.pop();
    let mut one_account = solana_system_interface::instruction::transfer(&payer, &to, 1);
    one_account.accounts.truncate(1);
    let mut long_checked = transfer_checked(&source, &mint, &destination, &payer, 1, 6);
    long_checked.data.push(0);
    let mut three_accounts = transfer_checked(&source, &mint, &destination, &payer, 1, 6);
    three_accounts.accounts.truncate(3);
    let mut long_price = compute_unit_price(1);
    long_price.data.push(0);
    let unknown = Instruction::new_with_bytes(unique(9), &[1, 2, 3], vec![]);
    let allocate = solana_system_interface::instruction::allocate(&to, 10);

    let instructions = [
        long_transfer,
        short_transfer,
        one_account,
        long_checked,
        three_accounts,
        long_price,
        unknown,
        allocate,
    ];
    let decoded = decode_message(&legacy_bytes(&instructions, &payer), &[]).expect("decodes");
    assert_eq!(kinds(&decoded), vec![InstructionKind::Other; 8]);
    assert_eq!(decoded.instructions[6].program_id, unique(9));
}

// ---------------------------------------------------------------------------
// Malformed messages
// ---------------------------------------------------------------------------

fn simple_message() -> Vec<u8> {
    let payer = unique(1);
    legacy_bytes(
        &[solana_system_interface::instruction::transfer(
            &payer,
            &unique(2),
            10,
        )],
        &payer,
    )
}

#[test]
fn empty_truncated_and_overlong_messages_are_refused() {
    let bytes = simple_message();
    assert_eq!(decode_message(&[], &[]), Err(SolanaError::Empty));
    for len in 1..bytes.len() {
        assert!(
            decode_message(&bytes[..len], &[]).is_err(),
            "{len} bytes of {}",
            bytes.len()
        );
    }
    assert_eq!(
        decode_message(&bytes[..10], &[]),
        Err(SolanaError::Truncated { len: 10 })
    );
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        decode_message(&longer, &[]),
        Err(SolanaError::TrailingBytes(3))
    );
    assert_eq!(
        signed_transaction(&longer, &unique(1).to_bytes(), &[0; 64]),
        Err(SolanaError::TrailingBytes(3))
    );
}

#[test]
fn counts_larger_than_the_payload_are_refused_as_truncation() {
    let mut bytes = simple_message();
    // Legacy layout: header (3 bytes), then the account key count.
    assert_eq!(bytes[3], 3);
    bytes[3] = 100;
    assert_eq!(
        decode_message(&bytes, &[]),
        Err(SolanaError::Truncated { len: bytes.len() })
    );
}

#[test]
fn a_non_minimal_compact_length_is_refused() {
    let bytes = simple_message();
    // The key count 3 written in two bytes (0x83 0x00) instead of one.
    let mut aliased = bytes[..3].to_vec();
    aliased.extend_from_slice(&[0x83, 0x00]);
    aliased.extend_from_slice(&bytes[4..]);
    assert!(decode_message(&aliased, &[]).is_err());
}

#[test]
fn versions_other_than_legacy_and_v0_are_refused() {
    let mut bytes = simple_message();
    bytes.insert(0, 0x81);
    assert_eq!(
        decode_message(&bytes, &[]),
        Err(SolanaError::UnsupportedVersion(1))
    );
    bytes[0] = 0xff;
    assert_eq!(
        decode_message(&bytes, &[]),
        Err(SolanaError::UnsupportedVersion(127))
    );
}

#[test]
fn header_counts_that_contradict_the_keys_are_refused() {
    let bytes = simple_message();
    // [num_required_signatures, num_readonly_signed, num_readonly_unsigned]
    for header in [[0, 0, 1], [4, 0, 0], [1, 1, 1], [1, 0, 3], [2, 0, 2]] {
        let mut bad = bytes.clone();
        bad[..3].copy_from_slice(&header);
        assert!(
            matches!(decode_message(&bad, &[]), Err(SolanaError::Header(_))),
            "{header:?}: {:?}",
            decode_message(&bad, &[])
        );
    }
    let mut no_signer = bytes.clone();
    no_signer[0] = 0;
    assert_eq!(
        decode_message(&no_signer, &[])
            .expect_err("refused")
            .to_string(),
        "invalid Solana message header: no required signatures: a message is signed by at least its fee payer"
    );
}

#[test]
fn program_and_account_indexes_out_of_range_are_refused() {
    let bytes = simple_message();
    // After header (3), key count (1), 3 keys (96) and the blockhash (32):
    // instruction count, then program index, account count, accounts.
    let ix = 3 + 1 + 96 + 32 + 1;
    assert_eq!(bytes[ix], 2, "the System Program is key 2");
    for (offset, value) in [(0, 0u8), (0, 3), (2, 3), (3, 200)] {
        let mut bad = bytes.clone();
        bad[ix + offset] = value;
        assert!(
            matches!(
                decode_message(&bad, &[]),
                Err(SolanaError::Instruction { instruction: 0, .. })
            ),
            "byte {offset} = {value}: {:?}",
            decode_message(&bad, &[])
        );
    }
}

#[test]
fn a_v0_program_loaded_from_a_lookup_table_is_refused() {
    let payer = unique(1);
    let table = AddressLookupTableAccount {
        key: unique(9),
        addresses: vec![unique(2)],
    };
    let instructions = [solana_system_interface::instruction::transfer(
        &payer,
        &unique(2),
        1,
    )];
    let message = v0::Message::try_compile(
        &payer,
        &instructions,
        std::slice::from_ref(&table),
        blockhash(1),
    )
    .expect("compiles");
    let mut message = message;
    // Static keys are [payer, System Program]; the recipient is loaded from
    // the table as key 2. Make key 2 the instruction's program.
    assert_eq!(message.account_keys.len(), 2);
    message.instructions[0].program_id_index = 2;
    let bytes = wincode::serialize(&VersionedMessage::V0(message)).expect("encodes");
    let supplied = LookupTable {
        account: table.key,
        addresses: table.addresses,
    };
    assert!(matches!(
        decode_message(&bytes, &[supplied]),
        Err(SolanaError::Instruction { instruction: 0, .. })
    ));
}

#[test]
fn duplicate_account_keys_are_refused() {
    let mut bytes = simple_message();
    // Make key 1 a copy of key 0 (the fee payer).
    let (key0, key1) = (4..36, 36..68);
    let copy = bytes[key0].to_vec();
    bytes[key1].copy_from_slice(&copy);
    assert_eq!(
        decode_message(&bytes, &[]),
        Err(SolanaError::DuplicateAccount(unique(1).to_string()))
    );
}

#[test]
fn a_message_too_large_for_a_solana_packet_is_refused() {
    let payer = unique(1);
    let memo = Instruction::new_with_bytes(unique(9), &[0x61; 1100], vec![]);
    let bytes = legacy_bytes(&[memo], &payer);
    assert!(matches!(
        decode_message(&bytes, &[]),
        Err(SolanaError::TooLarge { max: 1232, .. })
    ));
}

#[test]
fn lookup_tables_from_bytes_must_hold_32_byte_keys() {
    let ok = LookupTable::from_bytes(&[1; 32], &[[2u8; 32].to_vec()]).expect("valid");
    assert_eq!(ok.addresses, [Address::new_from_array([2; 32])]);
    assert!(matches!(
        LookupTable::from_bytes(&[1; 31], &[[2u8; 32].to_vec()]),
        Err(SolanaError::LookupTable { .. })
    ));
    assert!(matches!(
        LookupTable::from_bytes(&[1; 32], &[vec![2u8; 33]]),
        Err(SolanaError::LookupTable { .. })
    ));
}

#[test]
fn arbitrary_and_mutated_bytes_never_panic() {
    let seeds = [
        simple_message(),
        split(&transaction("v0_with_lookup_table")).1,
        split(&transaction("legacy_usdc_transfer_checked")).1,
    ];
    let table = LookupTable {
        account: addr("9WWfC3y4uCNofr2qEFHSVUXkCxW99JiYkMWmSZvVt8j3"),
        addresses: (0..4).map(unique).collect(),
    };
    // xorshift64: deterministic pseudo-random mutations.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..3000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..=(next() % 4) {
            let len = bytes.len() as u64;
            match next() % 3 {
                0 => bytes[(next() % len) as usize] = next() as u8,
                1 => bytes.truncate((next() % len) as usize + 1),
                _ => bytes.insert((next() % len) as usize, next() as u8),
            }
        }
        let _ = decode_message(&bytes, std::slice::from_ref(&table));
        let _ = signed_transaction(&bytes, &unique(1).to_bytes(), &[7; 64]);
    }
    let mut random = vec![0u8; 300];
    for _ in 0..1000 {
        for b in random.iter_mut() {
            *b = next() as u8;
        }
        let len = (next() % 300) as usize;
        let _ = decode_message(&random[..len], &[]);
    }
}

// ---------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------

#[test]
fn a_message_signed_with_ed25519_dalek_verifies_with_the_solana_crates() {
    let signer = SigningKey::from_bytes(&[42; 32]);
    let key = signer.verifying_key().to_bytes();
    let payer = Address::new_from_array(key);
    let bytes = legacy_bytes(
        &[
            compute_unit_limit(1_000),
            solana_system_interface::instruction::transfer(&payer, &unique(2), 99),
        ],
        &payer,
    );
    let decoded = decode_message(&bytes, &[]).expect("decodes");
    assert!(check_signer(&decoded, &key).expect("signer").is_fee_payer);

    let signature = signer.sign(&bytes).to_bytes();
    let signed = signed_transaction(&bytes, &key, &signature).expect("signed");
    let tx = verify_with_solana(&signed.raw);
    assert_eq!(tx.signatures.len(), 1);
    assert_eq!(
        wincode::serialize(&tx.message).expect("encodes"),
        bytes,
        "the transaction carries the message as signed"
    );
    assert_eq!(unbase64(&signed.base64), signed.raw);
    assert_eq!(
        signed.id,
        Some(bs58::encode(signature).into_string()),
        "the id is the fee payer's signature"
    );
    assert_eq!(signed.missing_signatures, 0);
}

#[test]
fn a_v0_message_signed_by_a_second_signer_leaves_the_fee_payers_slot_empty() {
    let fee_payer = SigningKey::from_bytes(&[1; 32]);
    let authority = SigningKey::from_bytes(&[2; 32]);
    let payer = Address::new_from_array(fee_payer.verifying_key().to_bytes());
    let owner = Address::new_from_array(authority.verifying_key().to_bytes());
    let (source, mint, destination) = (unique(3), unique(4), unique(5));
    let table = AddressLookupTableAccount {
        key: unique(9),
        addresses: vec![mint, destination],
    };
    let message = v0::Message::try_compile(
        &payer,
        &[transfer_checked(
            &source,
            &mint,
            &destination,
            &owner,
            10,
            6,
        )],
        &[table],
        blockhash(5),
    )
    .expect("compiles");
    let bytes = wincode::serialize(&VersionedMessage::V0(message)).expect("encodes");

    let signed = signed_transaction(
        &bytes,
        &owner.to_bytes(),
        &authority.sign(&bytes).to_bytes(),
    )
    .expect("signed");
    assert_eq!(signed.id, None);
    assert_eq!(signed.missing_signatures, 1);
    let mut tx: VersionedTransaction = wincode::deserialize(&signed.raw).expect("decodes");
    assert_eq!(tx.signatures[0], solana_signature::Signature::default());
    // Once the fee payer signs too, Solana verifies the whole transaction.
    tx.signatures[0] = solana_signature::Signature::from(fee_payer.sign(&bytes).to_bytes());
    verify_with_solana(&wincode::serialize(&tx).expect("encodes"));
}

#[test]
fn a_key_that_does_not_sign_the_message_is_refused_naming_the_fee_payer() {
    let bytes = simple_message();
    let decoded = decode_message(&bytes, &[]).expect("decodes");
    let stranger = unique(77);
    let err = check_signer(&decoded, &stranger.to_bytes()).expect_err("refused");
    assert_eq!(
        err,
        SolanaError::NotASigner {
            key: stranger.to_string(),
            fee_payer: unique(1).to_string(),
            signers: unique(1).to_string(),
        }
    );
    assert!(err.to_string().contains(&unique(1).to_string()));
    // A non-signer account of the message (the recipient) is no signer
    // either.
    assert!(check_signer(&decoded, &unique(2).to_bytes()).is_err());
    assert!(matches!(
        signed_transaction(&bytes, &stranger.to_bytes(), &[0; 64]),
        Err(SolanaError::NotASigner { .. })
    ));
}

#[test]
fn a_signature_that_does_not_verify_is_refused() {
    let signer = SigningKey::from_bytes(&[42; 32]);
    let key = signer.verifying_key().to_bytes();
    let payer = Address::new_from_array(key);
    let bytes = legacy_bytes(
        &[solana_system_interface::instruction::transfer(
            &payer,
            &unique(2),
            1,
        )],
        &payer,
    );
    let mut signature = signer.sign(&bytes).to_bytes();
    signature[5] ^= 1;
    assert!(matches!(
        signed_transaction(&bytes, &key, &signature),
        Err(SolanaError::InvalidSignature(_))
    ));
    let other = SigningKey::from_bytes(&[43; 32]).sign(&bytes).to_bytes();
    assert!(matches!(
        signed_transaction(&bytes, &key, &other),
        Err(SolanaError::InvalidSignature(_))
    ));
}
