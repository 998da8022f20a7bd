//! Executes signed Solana transactions in an independent Solana runtime.
//!
//! Sigil's own tests can check that a threshold signature verifies and that
//! the transaction Sigil assembles decodes the way Sigil meant. Neither shows
//! that a Solana validator would *execute* it. This crate closes that gap: it
//! loads the signed wire transactions (exactly the bytes a caller would give
//! `sendTransaction`) into [LiteSVM], which embeds the Agave runtime — the
//! transaction sanitization, signature verification, System program and
//! on-chain token programs a validator runs — and reports whether each
//! transaction executed and what the accounts hold afterwards.
//!
//! It is a separate workspace (`tests/solana-runtime`) because LiteSVM's
//! Solana crates cannot be unified with the versions the Sigil workspace pins.
//! The Sigil test suite drives it through the `sigil-solana-exec` binary:
//! one JSON document on stdin ([`Input`]), one on stdout ([`Output`]). The
//! binary and the tests here share one code path, [`run`].
//!
//! # The runtime
//!
//! - **Signature verification is on.** A transaction whose signatures do not
//!   verify against its message fails with `SignatureFailure`.
//! - **The blockhash check is off.** Callers sign with a fixed "recent"
//!   blockhash so that their fixtures are reproducible, and a validator
//!   would reject that blockhash as unknown or expired. Whatever the message
//!   names as its blockhash is accepted.
//! - The feature set is Solana mainnet-beta's (as bundled with LiteSVM), with
//!   the token, Token-2022, Memo and Associated Token Account programs loaded
//!   from their on-chain ELF images. That feature set replaces the SPL Token
//!   program with p-token, its mainnet implementation, at the same address;
//!   it logs less (no `Instruction: …` line) and uses fewer compute units.
//! - Transactions execute in order against one bank; each sees the effects of
//!   the ones before it. A failing transaction is reported and the run goes
//!   on. A failed transaction changes no account — LiteSVM does not charge
//!   fees for failed transactions, unlike a validator.
//! - Successful transactions pay the runtime's fee (5,000 lamports per
//!   signature) from the fee payer, so a fee payer's balance drops by the
//!   fee on top of what it transfers.
//! - A transaction whose wire form is larger than a packet
//!   ([`PACKET_DATA_SIZE`], 1232 bytes) is reported as failed without being
//!   executed: a validator's RPC would refuse it.
//! - A signature is accepted once: a repeated transaction fails with
//!   `AlreadyProcessed`.
//!
//! # Accounts
//!
//! The input places accounts before anything runs:
//!
//! - `system`: an account owned by the System program with the given
//!   lamports and no data (a wallet; also a fee payer).
//! - `token_mint`: an initialized mint (SPL Token layout, packed with
//!   `spl-token-interface`) with the given decimals and supply, an optional
//!   mint authority and no freeze authority.
//! - `token_account`: an initialized token account with the given mint, owner
//!   and amount, no delegate and no close authority. For the SPL Token native
//!   mint it is a wrapped-SOL account (its lamports are the rent reserve plus
//!   the amount).
//!
//! Mints and token accounts belong to the SPL Token program unless `program`
//! names Token-2022; both accept these base layouts. They hold the
//! rent-exempt minimum of lamports. Account addresses must be distinct.
//!
//! [LiteSVM]: https://docs.rs/litesvm

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use litesvm::LiteSVM;
use serde::{Deserialize, Serialize};
use solana_account::Account;
use solana_address::Address;
use solana_program_option::COption;
use solana_program_pack::Pack;
use solana_sdk_ids::system_program;
use solana_transaction::versioned::VersionedTransaction;
use spl_token_interface::state::{Account as TokenAccount, AccountState, Mint};

/// The SPL Token program, the default owner of mints and token accounts.
pub const TOKEN_PROGRAM_ID: Address = spl_token_interface::ID;

/// The Token-2022 program, which a mint or token account can name instead.
pub const TOKEN_2022_PROGRAM_ID: Address =
    solana_address::address!("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");

/// The largest wire transaction a validator accepts (an IPv6 MTU minus
/// headers), in bytes.
pub const PACKET_DATA_SIZE: usize = 1232;

/// The document the binary reads on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Accounts placed in the runtime before any transaction runs.
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    /// Signed wire transactions (legacy or v0), standard base64, in the
    /// order they execute.
    pub transactions: Vec<String>,
    /// Base58 addresses whose state is reported after the last transaction.
    #[serde(default)]
    pub report: Vec<String>,
}

/// One account to place, by `kind`. Addresses are base58.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountSpec {
    /// A System-owned account with no data.
    System {
        /// The account's address.
        address: String,
        /// Its balance.
        lamports: u64,
    },
    /// An initialized token mint.
    TokenMint {
        /// The mint's address.
        address: String,
        /// Decimal places of the token.
        decimals: u8,
        /// Total supply, in base units.
        supply: u64,
        /// The mint authority; none when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mint_authority: Option<String>,
        /// The token program owning the mint; SPL Token when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        program: Option<String>,
    },
    /// An initialized token account.
    TokenAccount {
        /// The token account's address.
        address: String,
        /// The mint it holds.
        mint: String,
        /// The wallet that owns (may transfer from) it.
        owner: String,
        /// Its balance, in base units.
        amount: u64,
        /// The token program owning the account; SPL Token when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        program: Option<String>,
    },
}

/// The document the binary writes on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// One result per input transaction, in order.
    pub results: Vec<TransactionOutcome>,
    /// One entry per `report` address, in order.
    pub accounts: Vec<AccountReport>,
}

/// What happened to one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionOutcome {
    /// Whether the transaction executed successfully.
    pub ok: bool,
    /// Why it failed (the runtime's `TransactionError`, debug-formatted);
    /// `null` when `ok`.
    pub error: Option<String>,
    /// The transaction's first signature, base58 (its id); `null` for a
    /// transaction without signatures.
    pub signature: Option<String>,
    /// The program logs.
    pub logs: Vec<String>,
}

/// The state of one reported account after the last transaction.
///
/// An account that does not exist is reported as a validator sees it: zero
/// lamports, owned by the System program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountReport {
    /// The account's address, base58.
    pub address: String,
    /// Its balance.
    pub lamports: u64,
    /// The program that owns it, base58.
    pub owner: String,
    /// The token balance when the account is an initialized SPL Token or
    /// Token-2022 account (base layout), else `null`.
    pub token_amount: Option<u64>,
}

/// Input the tool cannot process. The binary exits with status 2 on it.
#[derive(Debug)]
pub enum InputError {
    /// The document is not JSON of the [`Input`] shape.
    Json(serde_json::Error),
    /// A field is not a base58 address.
    Address {
        /// Where, e.g. `accounts[1].mint`.
        field: String,
        /// The rejected value.
        value: String,
    },
    /// A `program` is neither SPL Token nor Token-2022.
    TokenProgram {
        /// Where, e.g. `accounts[1].program`.
        field: String,
        /// The rejected address.
        value: String,
    },
    /// Two accounts have the same address.
    DuplicateAccount(String),
    /// The runtime refused to place an account.
    Account {
        /// The account's address.
        address: String,
        /// The runtime's reason.
        reason: String,
    },
    /// A transaction is not standard base64.
    Base64 {
        /// Its index in `transactions`.
        index: usize,
        /// The decoder's reason.
        reason: String,
    },
    /// A transaction's bytes are not a wire transaction.
    Transaction {
        /// Its index in `transactions`.
        index: usize,
        /// The decoder's reason.
        reason: String,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "input is not a valid document: {e}"),
            Self::Address { field, value } => {
                write!(f, "{field}: {value:?} is not a base58 address")
            }
            Self::TokenProgram { field, value } => write!(
                f,
                "{field}: {value} is neither SPL Token ({TOKEN_PROGRAM_ID}) nor Token-2022 \
                 ({TOKEN_2022_PROGRAM_ID})"
            ),
            Self::DuplicateAccount(address) => {
                write!(f, "account {address} is given more than once")
            }
            Self::Account { address, reason } => {
                write!(f, "cannot place account {address}: {reason}")
            }
            Self::Base64 { index, reason } => {
                write!(f, "transactions[{index}] is not base64: {reason}")
            }
            Self::Transaction { index, reason } => {
                write!(
                    f,
                    "transactions[{index}] is not a wire transaction: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

/// Parses an [`Input`] document and executes it: the binary's whole job.
pub fn run(input: &str) -> Result<Output, InputError> {
    let input: Input = serde_json::from_str(input).map_err(InputError::Json)?;
    execute(&input)
}

/// Executes an [`Input`]: places the accounts, runs the transactions in
/// order, reports the requested accounts.
///
/// Everything is decoded before anything runs, so malformed input is an
/// error and never a partial run.
pub fn execute(input: &Input) -> Result<Output, InputError> {
    let transactions = input
        .transactions
        .iter()
        .enumerate()
        .map(|(index, encoded)| decode_transaction(index, encoded))
        .collect::<Result<Vec<_>, _>>()?;
    let report = input
        .report
        .iter()
        .enumerate()
        .map(|(i, value)| parse_address(&format!("report[{i}]"), value))
        .collect::<Result<Vec<_>, _>>()?;

    let mut svm = LiteSVM::new()
        .with_sigverify(true)
        .with_blockhash_check(false);

    let mut placed = HashSet::new();
    for (i, spec) in input.accounts.iter().enumerate() {
        let (address, account) = build_account(&svm, i, spec)?;
        if !placed.insert(address) {
            return Err(InputError::DuplicateAccount(address.to_string()));
        }
        svm.set_account(address, account)
            .map_err(|e| InputError::Account {
                address: address.to_string(),
                reason: format!("{e:?}"),
            })?;
    }

    let results = transactions
        .into_iter()
        .map(|(tx, wire_len)| send(&mut svm, tx, wire_len))
        .collect();
    let accounts = report
        .iter()
        .map(|address| account_state(&svm, address))
        .collect();
    Ok(Output { results, accounts })
}

/// Decodes one base64 wire transaction; returns it with its wire length.
fn decode_transaction(
    index: usize,
    encoded: &str,
) -> Result<(VersionedTransaction, usize), InputError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| InputError::Base64 {
            index,
            reason: e.to_string(),
        })?;
    let tx = wincode::deserialize_exact::<VersionedTransaction>(&bytes).map_err(|e| {
        InputError::Transaction {
            index,
            reason: e.to_string(),
        }
    })?;
    Ok((tx, bytes.len()))
}

/// Executes one transaction and describes the outcome.
fn send(svm: &mut LiteSVM, tx: VersionedTransaction, wire_len: usize) -> TransactionOutcome {
    let signature = tx.signatures.first().map(ToString::to_string);
    if wire_len > PACKET_DATA_SIZE {
        return TransactionOutcome {
            ok: false,
            error: Some(format!(
                "transaction is {wire_len} bytes on the wire, above the {PACKET_DATA_SIZE}-byte \
                 packet limit"
            )),
            signature,
            logs: Vec::new(),
        };
    }
    match svm.send_transaction(tx) {
        Ok(meta) => TransactionOutcome {
            ok: true,
            error: None,
            signature,
            logs: meta.logs,
        },
        Err(failed) => TransactionOutcome {
            ok: false,
            error: Some(format!("{:?}", failed.err)),
            signature,
            logs: failed.meta.logs,
        },
    }
}

/// The account an [`AccountSpec`] describes, at its address.
fn build_account(
    svm: &LiteSVM,
    index: usize,
    spec: &AccountSpec,
) -> Result<(Address, Account), InputError> {
    let field = |name: &str| format!("accounts[{index}].{name}");
    match spec {
        AccountSpec::System { address, lamports } => {
            let address = parse_address(&field("address"), address)?;
            Ok((address, Account::new(*lamports, 0, &system_program::ID)))
        }
        AccountSpec::TokenMint {
            address,
            decimals,
            supply,
            mint_authority,
            program,
        } => {
            let address = parse_address(&field("address"), address)?;
            let program = token_program(&field("program"), program.as_deref())?;
            let mint_authority = match mint_authority {
                Some(value) => COption::Some(parse_address(&field("mint_authority"), value)?),
                None => COption::None,
            };
            let mint = Mint {
                mint_authority,
                supply: *supply,
                decimals: *decimals,
                is_initialized: true,
                freeze_authority: COption::None,
            };
            let lamports = svm.minimum_balance_for_rent_exemption(Mint::LEN);
            let mut account = Account::new(lamports, Mint::LEN, &program);
            Mint::pack(mint, &mut account.data).map_err(|e| InputError::Account {
                address: address.to_string(),
                reason: e.to_string(),
            })?;
            Ok((address, account))
        }
        AccountSpec::TokenAccount {
            address,
            mint,
            owner,
            amount,
            program,
        } => {
            let address = parse_address(&field("address"), address)?;
            let mint = parse_address(&field("mint"), mint)?;
            let owner = parse_address(&field("owner"), owner)?;
            let program = token_program(&field("program"), program.as_deref())?;
            let rent = svm.minimum_balance_for_rent_exemption(TokenAccount::LEN);
            // Wrapped SOL: the token amount is backed by lamports above the
            // rent reserve.
            let native =
                program == TOKEN_PROGRAM_ID && mint == spl_token_interface::native_mint::ID;
            let (lamports, is_native) = if native {
                let lamports = rent
                    .checked_add(*amount)
                    .ok_or_else(|| InputError::Account {
                        address: address.to_string(),
                        reason: "wrapped-SOL amount plus rent reserve overflows u64".to_owned(),
                    })?;
                (lamports, COption::Some(rent))
            } else {
                (rent, COption::None)
            };
            let state = TokenAccount {
                mint,
                owner,
                amount: *amount,
                delegate: COption::None,
                state: AccountState::Initialized,
                is_native,
                delegated_amount: 0,
                close_authority: COption::None,
            };
            let mut account = Account::new(lamports, TokenAccount::LEN, &program);
            TokenAccount::pack(state, &mut account.data).map_err(|e| InputError::Account {
                address: address.to_string(),
                reason: e.to_string(),
            })?;
            Ok((address, account))
        }
    }
}

/// The reported state of `address`.
fn account_state(svm: &LiteSVM, address: &Address) -> AccountReport {
    let (lamports, owner, token_amount) = match svm.get_account(address) {
        Some(account) => (account.lamports, account.owner, token_amount(&account)),
        None => (0, system_program::ID, None),
    };
    AccountReport {
        address: address.to_string(),
        lamports,
        owner: owner.to_string(),
        token_amount,
    }
}

/// The amount held by an initialized token account (base layout).
fn token_amount(account: &Account) -> Option<u64> {
    if !is_token_program(&account.owner) || account.data.len() != TokenAccount::LEN {
        return None;
    }
    TokenAccount::unpack(&account.data)
        .ok()
        .map(|state| state.amount)
}

fn is_token_program(address: &Address) -> bool {
    *address == TOKEN_PROGRAM_ID || *address == TOKEN_2022_PROGRAM_ID
}

/// `value` as the token program it names; SPL Token when absent.
fn token_program(field: &str, value: Option<&str>) -> Result<Address, InputError> {
    let Some(value) = value else {
        return Ok(TOKEN_PROGRAM_ID);
    };
    let program = parse_address(field, value)?;
    if is_token_program(&program) {
        Ok(program)
    } else {
        Err(InputError::TokenProgram {
            field: field.to_owned(),
            value: value.to_owned(),
        })
    }
}

fn parse_address(field: &str, value: &str) -> Result<Address, InputError> {
    Address::from_str(value).map_err(|_| InputError::Address {
        field: field.to_owned(),
        value: value.to_owned(),
    })
}
