//! Solana messages as the policy sees them: [`sigil_chains::solana`]
//! decodes a legacy or v0 message exactly (see its module docs for
//! everything it refuses), resolves the lookup tables it uses from the
//! contents the request supplies and reads its instructions; this module
//! checks that the key signs it and turns it into a [`Parsed`].
//!
//! | Solana message | [`Parsed`] |
//! |---|---|
//! | cluster (`SolanaMessage.cluster`: `""`/`mainnet`, `devnet`, `testnet`) | chain `solana:<cluster>` (other names refused) |
//! | fee payer (account 0) and the other required signers | the key (at the intent's path: FROST keys have none) must be one of them, else refused |
//! | System `Transfer`, `TransferWithSeed` | a movement of `lamports` of `solana:<cluster>/native` to the recipient |
//! | System `CreateAccount`, `CreateAccountWithSeed` | a movement of `lamports` of `solana:<cluster>/native` to the new account |
//! | System `AdvanceNonceAccount`, ComputeBudget instructions | nothing (no value moves) |
//! | SPL Token / Token-2022 `TransferChecked` | a movement of `amount` base units of `solana:<cluster>/<mint>` to the destination token account |
//! | SPL Token / Token-2022 `Transfer` (the mint is not in the instruction) | a movement of `amount` base units of `solana:<cluster>/token-account:<source token account>` to the destination token account |
//! | an instruction of any other program, or one of the above not understood exactly (other instructions, trailing bytes, missing accounts) | a call of the program (`selector` `None`) |
//! | kind | `contract_call` if there is a call, else `token_transfer` if a token moves, else `native_transfer`; a message that moves nothing and calls nothing is refused |
//! | fee | none: the fee (and a ComputeBudget priority fee) is paid by the fee payer at the network's rates, not fixed by the message |
//! | what is signed | one part: the message bytes as given, encoding RAW (Ed25519 signs the message itself) |
//!
//! Every transfer in the message is counted, whoever's account it is from
//! (conservative: a transfer from another signer's account still needs
//! this key's signature to happen). Addresses are Base58, as Solana and
//! policy documents write them.
//!
//! A plain token `Transfer` does not name its mint: only the source token
//! account is known, and a token account holds exactly one mint for its
//! whole life, so `token-account:<address>` names the asset as precisely
//! as the mint would (a policy can name that account; `TransferChecked`,
//! which wallets use, names the mint itself).
//!
//! **Lookup tables.** A v0 message names some accounts by index into an
//! address lookup table whose contents the request supplies; the message's
//! signature does not commit to them and the nodes cannot read the chain,
//! so a movement whose destination, mint or (for a plain `Transfer`) source
//! account would come from a table is refused: the request, not the
//! message, would decide where value goes. Programs cannot come from tables
//! (Solana's rule, checked by the decoder) and signers never do.
//!
//! Everything refused is refused with its reason ([`PayloadError::Solana`],
//! [`PayloadError::UnknownNetwork`] for the cluster).

use sigil_chains::solana::{
    self, Address, DecodedMessage, InstructionKind, LookupTable, SolanaError,
};
use sigil_proto::v1 as pb;
use sigil_protocol::engine::Encoding;

use super::{Call, KeyView, Movement, Parsed, PayloadError, PayloadKind, SignPart, check_len};
use crate::amount::Amount;
use crate::chain::{native_asset, token_asset};

/// Reads a Solana message for `key` (a `frost-ed25519` key).
pub fn parse_message(
    key: &KeyView<'_>,
    message: &pb::SolanaMessage,
) -> Result<Parsed, PayloadError> {
    let chain = format!("solana:{}", cluster(&message.cluster)?);
    check_len(&message.message)?;
    let refused = |e: SolanaError| PayloadError::Solana(e.to_string());
    let tables = message
        .lookup_tables
        .iter()
        .map(|t| LookupTable::from_bytes(&t.account, &t.addresses))
        .collect::<Result<Vec<_>, _>>()
        .map_err(refused)?;
    let decoded = solana::decode_message(&message.message, &tables).map_err(refused)?;

    let public_key = key.signing_public_key()?;
    let public_key: [u8; 32] = public_key.as_slice().try_into().map_err(|_| {
        PayloadError::Key(format!(
            "an Ed25519 public key is 32 bytes, got {}",
            public_key.len()
        ))
    })?;
    solana::check_signer(&decoded, &public_key).map_err(refused)?;

    let mut movements = Vec::new();
    let mut calls = Vec::new();
    let mut token_moved = false;
    for (i, instruction) in decoded.instructions.iter().enumerate() {
        let from_table = |what: &str, account: &Address| match decoded.lookup_table_of(account) {
            Some(table) => Err(PayloadError::Solana(format!(
                "instruction {i}: its {what} {account} comes from address lookup table {table}, whose contents the nodes cannot check; the message must name it among its own account keys"
            ))),
            None => Ok(account.to_string()),
        };
        let native = |to: &Address, lamports: u64| {
            Ok::<_, PayloadError>(Movement {
                asset: native_asset(&chain),
                amount: Amount::from(lamports),
                destination: from_table("recipient", to)?,
            })
        };
        match &instruction.kind {
            InstructionKind::SystemTransfer { to, lamports, .. }
            | InstructionKind::SystemTransferWithSeed { to, lamports, .. } => {
                movements.push(native(to, *lamports)?);
            }
            InstructionKind::SystemCreateAccount {
                new_account,
                lamports,
                ..
            }
            | InstructionKind::SystemCreateAccountWithSeed {
                new_account,
                lamports,
                ..
            } => movements.push(native(new_account, *lamports)?),
            InstructionKind::AdvanceNonceAccount { .. } | InstructionKind::ComputeBudget(_) => {}
            InstructionKind::TokenTransferChecked {
                mint,
                destination,
                amount,
                ..
            } => {
                token_moved = true;
                movements.push(Movement {
                    asset: token_asset(&chain, &from_table("mint", mint)?),
                    amount: Amount::from(*amount),
                    destination: from_table("destination", destination)?,
                });
            }
            InstructionKind::TokenTransfer {
                source,
                destination,
                amount,
                ..
            } => {
                token_moved = true;
                let source = from_table("source token account", source)?;
                movements.push(Movement {
                    asset: token_account_asset(&chain, &source),
                    amount: Amount::from(*amount),
                    destination: from_table("destination", destination)?,
                });
            }
            InstructionKind::Other => calls.push(Call {
                contract: instruction.program_id.to_string(),
                selector: None,
            }),
        }
    }
    let kind = if !calls.is_empty() {
        PayloadKind::ContractCall
    } else if token_moved {
        PayloadKind::TokenTransfer
    } else if !movements.is_empty() {
        PayloadKind::NativeTransfer
    } else {
        return Err(PayloadError::Solana(nothing_done(&decoded)));
    };
    Ok(Parsed {
        chain: Some(chain),
        kind,
        movements,
        calls,
        fee: None,
        parts: vec![SignPart::new(message.message.clone(), Encoding::Raw)],
    })
}

/// The cluster name a `SolanaMessage` gives, as chain names write it.
pub fn cluster(name: &str) -> Result<&'static str, PayloadError> {
    Ok(match name {
        "" | "mainnet" => "mainnet",
        "devnet" => "devnet",
        "testnet" => "testnet",
        other => return Err(PayloadError::UnknownNetwork(other.to_owned())),
    })
}

/// `<chain>/token-account:<address>`: the asset a plain token `Transfer`
/// moves, named by its source token account (which holds one mint).
pub fn token_account_asset(chain: &str, token_account: &str) -> String {
    token_asset(chain, &format!("token-account:{token_account}"))
}

fn nothing_done(decoded: &DecodedMessage) -> String {
    format!(
        "the message moves nothing and calls nothing ({} instructions, all ComputeBudget settings or nonce advances)",
        decoded.instructions.len()
    )
}

#[cfg(test)]
mod tests {
    use sigil_protocol::Scheme;
    use sigil_protocol::engine::MAX_MESSAGE_LEN;

    use super::*;

    const SYSTEM: [u8; 32] = [0; 32];

    fn b58(key: &[u8; 32]) -> String {
        Address::new_from_array(*key).to_string()
    }

    fn program(id: &str) -> [u8; 32] {
        id.parse::<Address>().expect("program id").to_bytes()
    }

    fn token() -> [u8; 32] {
        program("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
    }

    fn compute_budget() -> [u8; 32] {
        program("ComputeBudget111111111111111111111111111111")
    }

    /// The key that signs (any 32 bytes: the decoder compares, the engine
    /// checks keys).
    const KEY: [u8; 32] = [0x11; 32];

    fn view(key: &[u8; 32]) -> KeyView<'_> {
        KeyView::new(Scheme::FrostEd25519, key, &[])
    }

    /// A legacy message: `header`, `keys`, a blockhash, and instructions
    /// (program index, account indexes, data); every count fits one byte.
    fn legacy(header: [u8; 3], keys: &[[u8; 32]], instructions: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
        let mut m = header.to_vec();
        m.push(keys.len() as u8);
        keys.iter().for_each(|k| m.extend_from_slice(k));
        m.extend_from_slice(&[0x77; 32]);
        m.push(instructions.len() as u8);
        for (program, accounts, data) in instructions {
            m.push(*program);
            m.push(accounts.len() as u8);
            m.extend_from_slice(accounts);
            m.push(data.len() as u8);
            m.extend_from_slice(data);
        }
        m
    }

    /// A v0 message: `legacy` with the prefix and one lookup table.
    fn v0(
        header: [u8; 3],
        keys: &[[u8; 32]],
        instructions: &[(u8, &[u8], &[u8])],
        table: [u8; 32],
        writable: &[u8],
        readonly: &[u8],
    ) -> Vec<u8> {
        let mut m = vec![0x80];
        m.extend(legacy(header, keys, instructions));
        m.push(1);
        m.extend_from_slice(&table);
        m.push(writable.len() as u8);
        m.extend_from_slice(writable);
        m.push(readonly.len() as u8);
        m.extend_from_slice(readonly);
        m
    }

    fn transfer_data(lamports: u64) -> Vec<u8> {
        let mut data = vec![2, 0, 0, 0];
        data.extend_from_slice(&lamports.to_le_bytes());
        data
    }

    fn transfer_checked_data(amount: u64, decimals: u8) -> Vec<u8> {
        let mut data = vec![12];
        data.extend_from_slice(&amount.to_le_bytes());
        data.push(decimals);
        data
    }

    fn payload(message: Vec<u8>, cluster: &str) -> pb::SolanaMessage {
        pb::SolanaMessage {
            message,
            lookup_tables: Vec::new(),
            cluster: cluster.into(),
        }
    }

    fn parse(message: Vec<u8>) -> Result<Parsed, PayloadError> {
        parse_message(&view(&KEY), &payload(message, ""))
    }

    /// KEY sends 1.5 SOL to `[0x22; 32]`.
    fn sol_transfer() -> Vec<u8> {
        legacy(
            [1, 0, 1],
            &[KEY, [0x22; 32], SYSTEM],
            &[(2, &[0, 1], &transfer_data(1_500_000_000))],
        )
    }

    #[test]
    fn a_system_transfer_is_a_native_transfer_of_lamports_to_the_recipient() {
        let message = sol_transfer();
        let parsed = parse(message.clone()).expect("parsed");
        assert_eq!(parsed.chain.as_deref(), Some("solana:mainnet"));
        assert_eq!(parsed.kind, PayloadKind::NativeTransfer);
        assert_eq!(
            parsed.movements,
            [Movement {
                asset: "solana:mainnet/native".into(),
                amount: Amount::from(1_500_000_000u64),
                destination: b58(&[0x22; 32]),
            }]
        );
        assert!(parsed.calls.is_empty());
        assert_eq!(parsed.fee, None);
        assert_eq!(parsed.parts, [SignPart::new(message, Encoding::Raw)]);
        assert_eq!(
            parsed.summary(),
            format!(
                "solana:mainnet native transfer of 1500000000 solana:mainnet/native to {}",
                b58(&[0x22; 32])
            )
        );
    }

    #[test]
    fn clusters_name_the_chain_and_unknown_clusters_are_refused() {
        for (cluster, chain) in [
            ("", "solana:mainnet"),
            ("mainnet", "solana:mainnet"),
            ("devnet", "solana:devnet"),
            ("testnet", "solana:testnet"),
        ] {
            let parsed =
                parse_message(&view(&KEY), &payload(sol_transfer(), cluster)).expect("parsed");
            assert_eq!(parsed.chain.as_deref(), Some(chain));
            assert_eq!(parsed.movements[0].asset, format!("{chain}/native"));
        }
        for unknown in ["mainnet-beta", "localnet", "Mainnet"] {
            assert_eq!(
                parse_message(&view(&KEY), &payload(sol_transfer(), unknown)),
                Err(PayloadError::UnknownNetwork(unknown.into()))
            );
        }
    }

    #[test]
    fn a_transfer_checked_moves_the_mint_to_the_destination_token_account() {
        let (source, mint, destination) = ([0x33; 32], [0x44; 32], [0x55; 32]);
        let message = legacy(
            [1, 0, 2],
            &[KEY, source, destination, mint, token()],
            &[(4, &[1, 3, 2, 0], &transfer_checked_data(2_500_000, 6))],
        );
        let parsed = parse(message).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::TokenTransfer);
        assert_eq!(
            parsed.movements,
            [Movement {
                asset: format!("solana:mainnet/{}", b58(&mint)),
                amount: Amount::from(2_500_000u64),
                destination: b58(&destination),
            }]
        );
        assert!(parsed.calls.is_empty());
    }

    #[test]
    fn a_plain_token_transfer_names_its_asset_by_the_source_token_account() {
        let (source, destination) = ([0x33; 32], [0x55; 32]);
        let mut data = vec![3];
        data.extend_from_slice(&7u64.to_le_bytes());
        let message = legacy(
            [1, 0, 1],
            &[KEY, source, destination, token()],
            &[(3, &[1, 2, 0], &data)],
        );
        let parsed = parse(message).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::TokenTransfer);
        assert_eq!(
            parsed.movements,
            [Movement {
                asset: format!("solana:mainnet/token-account:{}", b58(&source)),
                amount: Amount::from(7u64),
                destination: b58(&destination),
            }]
        );
    }

    #[test]
    fn an_unknown_program_is_a_call_and_every_transfer_is_still_counted() {
        let memo = program("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
        let message = legacy(
            [1, 0, 2],
            &[KEY, [0x22; 32], SYSTEM, memo],
            &[
                (2, &[0, 1], &transfer_data(5)),
                (3, &[], b"invoice 42"),
                (2, &[0, 1], &transfer_data(6)),
            ],
        );
        let parsed = parse(message).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::ContractCall);
        assert_eq!(
            parsed.calls,
            [Call {
                contract: "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr".into(),
                selector: None,
            }]
        );
        let amounts: Vec<Amount> = parsed.movements.iter().map(|m| m.amount).collect();
        assert_eq!(amounts, [Amount::from(5u64), Amount::from(6u64)]);
    }

    #[test]
    fn a_system_instruction_that_is_not_read_exactly_is_a_call_of_the_system_program() {
        let mut long = transfer_data(5);
        long.push(0);
        let message = legacy(
            [1, 0, 1],
            &[KEY, [0x22; 32], SYSTEM],
            &[(2, &[0, 1], &long)],
        );
        let parsed = parse(message).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::ContractCall);
        assert!(parsed.movements.is_empty());
        assert_eq!(parsed.calls[0].contract, "11111111111111111111111111111111");
    }

    #[test]
    fn a_message_of_compute_budget_settings_only_is_refused() {
        let mut limit = vec![2];
        limit.extend_from_slice(&200_000u32.to_le_bytes());
        let message = legacy([1, 0, 1], &[KEY, compute_budget()], &[(1, &[], &limit)]);
        let err = parse(message).expect_err("refused");
        assert!(
            err.to_string().contains("moves nothing and calls nothing"),
            "{err}"
        );
    }

    #[test]
    fn a_fee_payer_that_is_not_the_key_is_refused_naming_both() {
        let other = [0x99; 32];
        let message = legacy(
            [1, 0, 1],
            &[other, [0x22; 32], SYSTEM],
            &[(2, &[0, 1], &transfer_data(1))],
        );
        let err = parse(message).expect_err("refused");
        let PayloadError::Solana(reason) = &err else {
            panic!("{err:?}");
        };
        assert!(reason.contains(&b58(&other)), "{reason}");
        assert!(reason.contains(&b58(&KEY)), "{reason}");
    }

    #[test]
    fn a_second_signer_that_is_the_key_may_sign() {
        // The fee payer is someone else; the key signs as the transfer's
        // source.
        let payer = [0x99; 32];
        let message = legacy(
            [2, 0, 1],
            &[payer, KEY, [0x22; 32], SYSTEM],
            &[(3, &[1, 2], &transfer_data(9))],
        );
        let parsed = parse(message).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::NativeTransfer);
        assert_eq!(parsed.movements[0].amount, Amount::from(9u64));
    }

    #[test]
    fn a_missing_lookup_table_is_refused_naming_it() {
        let table = [0x66; 32];
        let message = v0(
            [1, 0, 1],
            &[KEY, SYSTEM],
            &[(1, &[0, 2], &transfer_data(1))],
            table,
            &[0],
            &[],
        );
        let err = parse(message.clone()).expect_err("refused");
        assert!(err.to_string().contains(&b58(&table)), "{err}");

        // Supplied, the recipient comes from the table: the request, not the
        // message, would name it.
        let mut with_table = payload(message, "");
        with_table.lookup_tables.push(pb::SolanaLookupTable {
            account: table.to_vec(),
            addresses: vec![vec![0x22; 32]],
        });
        let err = parse_message(&view(&KEY), &with_table).expect_err("refused");
        let PayloadError::Solana(reason) = &err else {
            panic!("{err:?}");
        };
        assert!(reason.contains("lookup table"), "{reason}");
        assert!(reason.contains(&b58(&[0x22; 32])), "{reason}");
    }

    #[test]
    fn a_v0_message_whose_movements_use_only_its_own_keys_is_read() {
        let table = [0x66; 32];
        let memo = program("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
        // The table only lends a read-only account to the memo.
        let message = v0(
            [1, 0, 2],
            &[KEY, [0x22; 32], SYSTEM, memo],
            &[(2, &[0, 1], &transfer_data(3)), (3, &[4], b"hi")],
            table,
            &[],
            &[0],
        );
        let mut request = payload(message, "devnet");
        request.lookup_tables.push(pb::SolanaLookupTable {
            account: table.to_vec(),
            addresses: vec![vec![0x23; 32]],
        });
        let parsed = parse_message(&view(&KEY), &request).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::ContractCall);
        assert_eq!(parsed.movements[0].destination, b58(&[0x22; 32]));
        assert_eq!(parsed.movements[0].asset, "solana:devnet/native");
    }

    #[test]
    fn malformed_messages_and_lookup_tables_are_refused() {
        let mut trailing = sol_transfer();
        trailing.push(0);
        assert!(matches!(parse(trailing), Err(PayloadError::Solana(_))));
        assert!(matches!(parse(Vec::new()), Err(PayloadError::Solana(_))));
        let mut request = payload(sol_transfer(), "");
        request.lookup_tables.push(pb::SolanaLookupTable {
            account: vec![1; 31],
            addresses: Vec::new(),
        });
        assert!(matches!(
            parse_message(&view(&KEY), &request),
            Err(PayloadError::Solana(_))
        ));
        assert_eq!(
            parse(vec![0; MAX_MESSAGE_LEN + 1]),
            Err(PayloadError::TooLong {
                len: MAX_MESSAGE_LEN + 1,
                max: MAX_MESSAGE_LEN,
            })
        );
    }

    #[test]
    fn a_frost_key_with_a_derivation_path_is_refused() {
        let err = parse_message(&view(&KEY).at("m/0"), &payload(sol_transfer(), ""));
        assert!(matches!(err, Err(PayloadError::Key(_))), "{err:?}");
    }
}
