//! Transactions built and signed here with Ed25519 keypairs, executed through
//! [`run`] (the binary's code path) and through the binary itself.

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};
use sigil_solana_runtime::{InputError, Output, TOKEN_PROGRAM_ID, run};
use solana_address::Address;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_message::{VersionedMessage, v0};
use solana_signer::Signer as _;
use solana_transaction::Transaction;
use solana_transaction::versioned::VersionedTransaction;

/// What Solana charges per signature.
const FEE: u64 = 5_000;
const SOL: u64 = 1_000_000_000;

/// A blockhash that was never recent: the tool does not check blockhashes.
fn blockhash() -> Hash {
    Hash::new_from_array([7; 32])
}

fn keypair(seed: u8) -> Keypair {
    Keypair::new_from_array([seed; 32])
}

fn address(seed: u8) -> Address {
    Address::new_from_array([seed; 32])
}

fn wire(tx: &VersionedTransaction) -> String {
    let bytes = wincode::serialize(tx).expect("transaction serializes");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A legacy transaction moving `lamports` from `from` to `to`.
fn system_transfer(from: &Keypair, to: &Address, lamports: u64) -> VersionedTransaction {
    let ix = solana_system_interface::instruction::transfer(&from.pubkey(), to, lamports);
    Transaction::new_signed_with_payer(&[ix], Some(&from.pubkey()), &[from], blockhash()).into()
}

/// A v0 transaction with an SPL Token `transfer_checked`, paid and signed by
/// the source's owner.
fn token_transfer(
    owner: &Keypair,
    source: &Address,
    mint: &Address,
    destination: &Address,
    amount: u64,
    decimals: u8,
) -> VersionedTransaction {
    let ix = spl_token_interface::instruction::transfer_checked(
        &TOKEN_PROGRAM_ID,
        source,
        mint,
        destination,
        &owner.pubkey(),
        &[],
        amount,
        decimals,
    )
    .expect("transfer_checked instruction");
    let message = v0::Message::try_compile(&owner.pubkey(), &[ix], &[], blockhash())
        .expect("v0 message compiles");
    VersionedTransaction::try_new(VersionedMessage::V0(message), &[owner])
        .expect("v0 transaction signs")
}

fn run_json(input: &Value) -> Result<Output, InputError> {
    run(&input.to_string())
}

/// The reported (lamports, token amount) of `address`.
fn balance(output: &Output, address: &Address) -> (u64, Option<u64>) {
    let address = address.to_string();
    let account = output
        .accounts
        .iter()
        .find(|a| a.address == address)
        .expect("address is reported");
    (account.lamports, account.token_amount)
}

/// A wallet with 1 SOL, a 6-decimal mint, and two token accounts: the
/// wallet's with 5 tokens and another owner's with none.
struct TokenFixture {
    owner: Keypair,
    mint: Address,
    source: Address,
    destination: Address,
}

impl TokenFixture {
    fn new() -> Self {
        Self {
            owner: keypair(1),
            mint: address(20),
            source: address(21),
            destination: address(22),
        }
    }

    fn accounts(&self) -> Value {
        json!([
            {"kind": "system", "address": self.owner.pubkey().to_string(), "lamports": SOL},
            {"kind": "token_mint", "address": self.mint.to_string(), "decimals": 6,
             "supply": 1_000_000_000u64},
            {"kind": "token_account", "address": self.source.to_string(),
             "mint": self.mint.to_string(), "owner": self.owner.pubkey().to_string(),
             "amount": 5_000_000u64, "program": TOKEN_PROGRAM_ID.to_string()},
            {"kind": "token_account", "address": self.destination.to_string(),
             "mint": self.mint.to_string(), "owner": address(23).to_string(), "amount": 0},
        ])
    }
}

#[test]
fn system_transfer_moves_lamports() {
    let payer = keypair(1);
    let recipient = address(2);
    let tx = system_transfer(&payer, &recipient, SOL / 4);
    let output = run_json(&json!({
        "accounts": [{"kind": "system", "address": payer.pubkey().to_string(), "lamports": SOL}],
        "transactions": [wire(&tx)],
        "report": [payer.pubkey().to_string(), recipient.to_string()],
    }))
    .expect("input is well-formed");

    let result = &output.results[0];
    assert!(result.ok, "{result:?}");
    assert_eq!(result.error, None);
    assert_eq!(result.signature, Some(tx.signatures[0].to_string()));
    assert!(
        result
            .logs
            .iter()
            .any(|l| l.contains("11111111111111111111111111111111 success")),
        "{:?}",
        result.logs
    );
    assert_eq!(
        balance(&output, &payer.pubkey()),
        (SOL - SOL / 4 - FEE, None)
    );
    assert_eq!(balance(&output, &recipient), (SOL / 4, None));
    assert_eq!(output.accounts[1].owner, "11111111111111111111111111111111");
}

#[test]
fn token_transfer_checked_moves_tokens() {
    let f = TokenFixture::new();
    let tx = token_transfer(&f.owner, &f.source, &f.mint, &f.destination, 1_250_000, 6);
    let output = run_json(&json!({
        "accounts": f.accounts(),
        "transactions": [wire(&tx)],
        "report": [f.source.to_string(), f.destination.to_string(), f.owner.pubkey().to_string()],
    }))
    .expect("input is well-formed");

    let result = &output.results[0];
    assert!(result.ok, "{result:?}");
    assert!(
        result
            .logs
            .iter()
            .any(|l| l == &format!("Program {TOKEN_PROGRAM_ID} success")),
        "{:?}",
        result.logs
    );
    assert_eq!(balance(&output, &f.source).1, Some(3_750_000));
    assert_eq!(balance(&output, &f.destination).1, Some(1_250_000));
    assert_eq!(output.accounts[0].owner, TOKEN_PROGRAM_ID.to_string());
    assert_eq!(balance(&output, &f.owner.pubkey()), (SOL - FEE, None));
}

#[test]
fn flipped_signature_fails_verification_and_the_run_goes_on() {
    let payer = keypair(1);
    let recipient = address(2);
    let mut forged = system_transfer(&payer, &recipient, SOL / 2);
    let mut signature = *forged.signatures[0].as_array();
    signature[10] ^= 0x01;
    forged.signatures[0] = signature.into();
    let genuine = system_transfer(&payer, &recipient, SOL / 4);

    let output = run_json(&json!({
        "accounts": [{"kind": "system", "address": payer.pubkey().to_string(), "lamports": SOL}],
        "transactions": [wire(&forged), wire(&genuine)],
        "report": [payer.pubkey().to_string(), recipient.to_string()],
    }))
    .expect("input is well-formed");

    let failed = &output.results[0];
    assert!(!failed.ok);
    assert_eq!(failed.error.as_deref(), Some("SignatureFailure"));
    assert_eq!(failed.signature, Some(forged.signatures[0].to_string()));
    assert!(output.results[1].ok, "{:?}", output.results[1]);
    // Only the genuine transfer moved lamports.
    assert_eq!(balance(&output, &payer.pubkey()).0, SOL - SOL / 4 - FEE);
    assert_eq!(balance(&output, &recipient).0, SOL / 4);
}

#[test]
fn failing_transfer_is_reported_with_the_runtime_error() {
    let f = TokenFixture::new();
    // More than the source holds.
    let tx = token_transfer(&f.owner, &f.source, &f.mint, &f.destination, 5_000_001, 6);
    let output = run_json(&json!({
        "accounts": f.accounts(),
        "transactions": [wire(&tx)],
        "report": [f.source.to_string()],
    }))
    .expect("input is well-formed");

    let result = &output.results[0];
    assert!(!result.ok);
    // SPL Token's InsufficientFunds is custom error 1.
    assert_eq!(
        result.error.as_deref(),
        Some("InstructionError(0, Custom(1))")
    );
    assert_eq!(balance(&output, &f.source).1, Some(5_000_000));
}

#[test]
fn replayed_transaction_is_rejected() {
    let payer = keypair(1);
    let tx = wire(&system_transfer(&payer, &address(2), 1_000_000));
    let output = run_json(&json!({
        "accounts": [{"kind": "system", "address": payer.pubkey().to_string(), "lamports": SOL}],
        "transactions": [tx, tx],
    }))
    .expect("input is well-formed");
    assert!(output.results[0].ok);
    assert_eq!(output.results[1].error.as_deref(), Some("AlreadyProcessed"));
    assert!(output.accounts.is_empty());
}

#[test]
fn unknown_account_is_reported_empty() {
    let output = run_json(&json!({"transactions": [], "report": [address(9).to_string()]}))
        .expect("input is well-formed");
    assert!(output.results.is_empty());
    assert_eq!(output.accounts[0].lamports, 0);
    assert_eq!(output.accounts[0].owner, "11111111111111111111111111111111");
    assert_eq!(output.accounts[0].token_amount, None);
}

#[test]
fn placed_token_accounts_are_rent_exempt() {
    let f = TokenFixture::new();
    let output = run_json(&json!({
        "accounts": f.accounts(),
        "transactions": [],
        "report": [f.mint.to_string(), f.source.to_string()],
    }))
    .expect("input is well-formed");
    // Rent-exempt minimums for 82 and 165 bytes at the default rent.
    assert_eq!(balance(&output, &f.mint), (1_461_600, None));
    assert_eq!(balance(&output, &f.source), (2_039_280, Some(5_000_000)));
}

#[test]
fn malformed_input_is_an_error() {
    let payer = keypair(1);
    let tx = system_transfer(&payer, &address(2), 1);
    let good_tx = wire(&tx);
    let mut trailing = wincode::serialize(&tx).expect("transaction serializes");
    trailing.push(0);
    let trailing = base64::engine::general_purpose::STANDARD.encode(trailing);
    let truncated = {
        let bytes = wincode::serialize(&tx).expect("transaction serializes");
        base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() - 1])
    };
    let system = |address: &str| json!({"kind": "system", "address": address, "lamports": 1});

    // (case, input, what the error names)
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{\"transactions\": [".to_owned(), "EOF"),
        (
            "no transactions",
            json!({"accounts": []}).to_string(),
            "missing field `transactions`",
        ),
        (
            "unknown field",
            json!({"transactions": [], "extra": 1}).to_string(),
            "unknown field `extra`",
        ),
        (
            "unknown kind",
            json!({"accounts": [{"kind": "stake", "address": payer.pubkey().to_string()}],
                   "transactions": []})
            .to_string(),
            "unknown variant `stake`",
        ),
        (
            "misspelt account field",
            json!({"accounts": [{"kind": "token_account", "address": address(3).to_string(),
                                 "mint": address(4).to_string(), "owner": address(5).to_string(),
                                 "amount": 1, "amout": 1}],
                   "transactions": []})
            .to_string(),
            "unknown field `amout`",
        ),
        (
            "float amount",
            json!({"accounts": [{"kind": "system", "address": payer.pubkey().to_string(),
                                 "lamports": 1.5}],
                   "transactions": []})
            .to_string(),
            "floating point",
        ),
        (
            "negative amount",
            json!({"accounts": [{"kind": "system", "address": payer.pubkey().to_string(),
                                 "lamports": -1}],
                   "transactions": []})
            .to_string(),
            "expected u64",
        ),
        (
            "bad base58 account",
            json!({"accounts": [system("0OIl")], "transactions": []}).to_string(),
            "accounts[0].address",
        ),
        (
            "bad base58 report",
            json!({"transactions": [], "report": ["not-an-address"]}).to_string(),
            "report[0]",
        ),
        (
            "not a token program",
            json!({"accounts": [{"kind": "token_mint", "address": address(3).to_string(),
                                 "decimals": 0, "supply": 0,
                                 "program": address(4).to_string()}],
                   "transactions": []})
            .to_string(),
            "accounts[0].program",
        ),
        (
            "duplicate account",
            json!({"accounts": [system(&address(3).to_string()), system(&address(3).to_string())],
                   "transactions": []})
            .to_string(),
            "more than once",
        ),
        (
            "bad base64",
            json!({"transactions": ["!!!"]}).to_string(),
            "transactions[0] is not base64",
        ),
        (
            "not a transaction",
            json!({"transactions": [good_tx, "AAAA"]}).to_string(),
            "transactions[1] is not a wire transaction",
        ),
        (
            "trailing bytes",
            json!({"transactions": [trailing]}).to_string(),
            "Trailing bytes",
        ),
        (
            "truncated",
            json!({"transactions": [truncated]}).to_string(),
            "transactions[0] is not a wire transaction",
        ),
    ];
    for (name, input, expected) in cases {
        let err = run(&input).expect_err(name).to_string();
        assert!(err.contains(expected), "{name}: {err}");
    }
    // The well-formed control case.
    let output = run(&json!({"transactions": [good_tx]}).to_string()).expect("well-formed");
    // Well-formed, though its fee payer does not exist.
    assert_eq!(output.results[0].error.as_deref(), Some("AccountNotFound"));
}

#[test]
fn oversized_transaction_is_refused() {
    let payer = keypair(1);
    let ix = solana_system_interface::instruction::transfer(&payer.pubkey(), &address(2), 1);
    let mut memo = ix.clone();
    memo.program_id = solana_address::address!("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
    memo.accounts.clear();
    memo.data = vec![b'x'; 1200];
    let tx: VersionedTransaction = Transaction::new_signed_with_payer(
        &[ix, memo],
        Some(&payer.pubkey()),
        &[&payer],
        blockhash(),
    )
    .into();
    let output = run_json(&json!({
        "accounts": [{"kind": "system", "address": payer.pubkey().to_string(), "lamports": SOL}],
        "transactions": [wire(&tx)],
        "report": [payer.pubkey().to_string()],
    }))
    .expect("input is well-formed");
    assert!(!output.results[0].ok);
    assert!(
        output.results[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("packet limit"))
    );
    assert_eq!(output.accounts[0].lamports, SOL);
}

/// Runs the binary with `input` on stdin: (status, stdout, stderr).
fn exec(input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil-solana-exec"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("input is written");
    let out = child.wait_with_output().expect("binary finishes");
    (
        out.status.code(),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    )
}

#[test]
fn binary_executes_system_and_token_transfers() {
    let f = TokenFixture::new();
    let recipient = address(2);
    let input = json!({
        "accounts": f.accounts(),
        "transactions": [
            wire(&system_transfer(&f.owner, &recipient, SOL / 4)),
            wire(&token_transfer(&f.owner, &f.source, &f.mint, &f.destination, 1_250_000, 6)),
        ],
        "report": [f.owner.pubkey().to_string(), recipient.to_string(),
                   f.source.to_string(), f.destination.to_string()],
    });
    let (status, stdout, stderr) = exec(&input.to_string());
    assert_eq!(status, Some(0), "{stderr}");
    let output: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(output["results"][0]["ok"], true);
    assert_eq!(output["results"][1]["ok"], true);
    assert_eq!(output["results"][1]["error"], Value::Null);
    assert_eq!(output["accounts"][0]["lamports"], SOL - SOL / 4 - 2 * FEE);
    assert_eq!(output["accounts"][0]["token_amount"], Value::Null);
    assert_eq!(output["accounts"][1]["lamports"], SOL / 4);
    assert_eq!(output["accounts"][2]["token_amount"], 3_750_000);
    assert_eq!(output["accounts"][3]["token_amount"], 1_250_000);
}

#[test]
fn binary_rejects_malformed_input_with_status_2() {
    let (status, stdout, stderr) = exec(r#"{"transactions": ["AAAA"]}"#);
    assert_eq!(status, Some(2));
    assert!(stdout.is_empty());
    assert!(stderr.contains("transactions[0]"), "{stderr}");

    let (status, _, stderr) = exec("not json");
    assert_eq!(status, Some(2));
    assert!(stderr.contains("not a valid document"), "{stderr}");
}
