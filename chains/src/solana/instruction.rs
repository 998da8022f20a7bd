//! What Sigil reads from a Solana instruction ([`InstructionKind`]).
//!
//! | program | instruction | read as |
//! |---|---|---|
//! | System (`11111111111111111111111111111111`) | `Transfer`, `TransferWithSeed` | lamports from → to |
//! | System | `CreateAccount`, `CreateAccountWithSeed` | lamports funder → new account |
//! | System | `AdvanceNonceAccount` | no value (durable-nonce transactions) |
//! | ComputeBudget (`ComputeBudget111111111111111111111111111111`) | `RequestHeapFrame`, `SetComputeUnitLimit`, `SetComputeUnitPrice`, `SetLoadedAccountsDataSizeLimit` | no value |
//! | SPL Token (`Tokenkeg…`) and Token-2022 (`Tokenz…`) | `Transfer` | amount, source → destination token account (the mint is not named) |
//! | SPL Token and Token-2022 | `TransferChecked` | amount of a mint, its decimals, source → destination token account |
//! | anything else | | [`InstructionKind::Other`]: a call of the program |
//!
//! Decoding is exact: the data must decode with the program's own layout
//! (`solana-system-interface`'s `SystemInstruction` with wincode,
//! `spl-token-interface`'s `TokenInstruction::unpack`) *and* re-encode to
//! the same bytes, so trailing bytes or a wrong length make the instruction
//! [`InstructionKind::Other`], never a guess. The same holds for an
//! instruction with fewer accounts than its layout names (more are allowed:
//! the programs ignore them, or read them as multisig signers). The on-chain
//! programs are laxer (they ignore trailing data); reading such an
//! instruction as a program call is the conservative side.
//!
//! Token-2022 shares SPL Token's instruction layouts for the two transfers
//! read here (tags 3 and 12), so both programs' data is read with
//! `spl-token-interface` (`spl-token-2022-interface` would pull in the
//! confidential-transfer proof crates for nothing). Token-2022's
//! extension instructions that move tokens (`TransferCheckedWithFee`,
//! confidential transfers) are program calls.

use solana_message::Address;
use solana_system_interface::instruction::SystemInstruction;
use spl_token_interface::instruction::TokenInstruction;

/// The SPL Token-2022 program.
pub const TOKEN_2022_PROGRAM_ID: Address =
    Address::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");
/// The SPL Token program.
pub const TOKEN_PROGRAM_ID: Address = spl_token_interface::ID;
/// The System Program.
pub const SYSTEM_PROGRAM_ID: Address = solana_sdk_ids::system_program::ID;
/// The ComputeBudget program.
pub const COMPUTE_BUDGET_PROGRAM_ID: Address = solana_sdk_ids::compute_budget::ID;

/// The token program an instruction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenProgram {
    /// SPL Token (`TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA`).
    Token,
    /// SPL Token-2022 (`TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb`).
    Token2022,
}

impl TokenProgram {
    /// The program's address.
    pub fn id(self) -> Address {
        match self {
            TokenProgram::Token => TOKEN_PROGRAM_ID,
            TokenProgram::Token2022 => TOKEN_2022_PROGRAM_ID,
        }
    }
}

/// A ComputeBudget instruction (it moves no value; the unit price sets the
/// priority fee the fee payer pays).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComputeBudget {
    /// Heap size in bytes.
    RequestHeapFrame(u32),
    /// Compute units.
    SetComputeUnitLimit(u32),
    /// Micro-lamports per compute unit.
    SetComputeUnitPrice(u64),
    /// Bytes of loaded account data.
    SetLoadedAccountsDataSizeLimit(u32),
}

/// What an instruction does, as far as Sigil reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstructionKind {
    /// System `Transfer`: lamports from a signer to an account.
    SystemTransfer {
        from: Address,
        to: Address,
        lamports: u64,
    },
    /// System `TransferWithSeed`: lamports from an account derived from
    /// `base` (which signs) to an account.
    SystemTransferWithSeed {
        from: Address,
        base: Address,
        to: Address,
        lamports: u64,
    },
    /// System `CreateAccount`: lamports from the funder to the new account.
    SystemCreateAccount {
        funder: Address,
        new_account: Address,
        lamports: u64,
    },
    /// System `CreateAccountWithSeed`: lamports from the funder to the new
    /// (derived) account.
    SystemCreateAccountWithSeed {
        funder: Address,
        new_account: Address,
        lamports: u64,
    },
    /// System `AdvanceNonceAccount` (first instruction of a durable-nonce
    /// transaction): no value.
    AdvanceNonceAccount {
        nonce_account: Address,
        authority: Address,
    },
    /// A ComputeBudget instruction: no value.
    ComputeBudget(ComputeBudget),
    /// Token `Transfer`: `amount` base units from one token account to
    /// another. The mint is not named: it is the source account's.
    TokenTransfer {
        program: TokenProgram,
        source: Address,
        destination: Address,
        authority: Address,
        amount: u64,
    },
    /// Token `TransferChecked`: `amount` base units of `mint` (with
    /// `decimals`) from one token account to another.
    TokenTransferChecked {
        program: TokenProgram,
        source: Address,
        mint: Address,
        destination: Address,
        authority: Address,
        amount: u64,
        decimals: u8,
    },
    /// Anything else: a call of the instruction's program that Sigil does
    /// not read.
    Other,
}

impl InstructionKind {
    /// True for the kinds that move value (transfers and account
    /// creations).
    pub fn moves_value(&self) -> bool {
        matches!(
            self,
            InstructionKind::SystemTransfer { .. }
                | InstructionKind::SystemTransferWithSeed { .. }
                | InstructionKind::SystemCreateAccount { .. }
                | InstructionKind::SystemCreateAccountWithSeed { .. }
                | InstructionKind::TokenTransfer { .. }
                | InstructionKind::TokenTransferChecked { .. }
        )
    }
}

/// Reads one instruction of `program_id` with its resolved `accounts`.
pub fn classify(program_id: &Address, accounts: &[Address], data: &[u8]) -> InstructionKind {
    let kind = if *program_id == SYSTEM_PROGRAM_ID {
        system(accounts, data)
    } else if *program_id == COMPUTE_BUDGET_PROGRAM_ID {
        compute_budget(accounts, data)
    } else if *program_id == TOKEN_PROGRAM_ID {
        token(TokenProgram::Token, accounts, data)
    } else if *program_id == TOKEN_2022_PROGRAM_ID {
        token(TokenProgram::Token2022, accounts, data)
    } else {
        None
    };
    kind.unwrap_or(InstructionKind::Other)
}

fn system(accounts: &[Address], data: &[u8]) -> Option<InstructionKind> {
    let instruction: SystemInstruction = wincode::deserialize_exact(data).ok()?;
    if wincode::serialize(&instruction).ok()? != data {
        return None;
    }
    Some(match (instruction, accounts) {
        (SystemInstruction::Transfer { lamports }, [from, to, ..]) => {
            InstructionKind::SystemTransfer {
                from: *from,
                to: *to,
                lamports,
            }
        }
        (SystemInstruction::TransferWithSeed { lamports, .. }, [from, base, to, ..]) => {
            InstructionKind::SystemTransferWithSeed {
                from: *from,
                base: *base,
                to: *to,
                lamports,
            }
        }
        (SystemInstruction::CreateAccount { lamports, .. }, [funder, new_account, ..]) => {
            InstructionKind::SystemCreateAccount {
                funder: *funder,
                new_account: *new_account,
                lamports,
            }
        }
        (SystemInstruction::CreateAccountWithSeed { lamports, .. }, [funder, new_account, ..]) => {
            InstructionKind::SystemCreateAccountWithSeed {
                funder: *funder,
                new_account: *new_account,
                lamports,
            }
        }
        (
            SystemInstruction::AdvanceNonceAccount,
            [nonce_account, _recent_blockhashes, authority, ..],
        ) => InstructionKind::AdvanceNonceAccount {
            nonce_account: *nonce_account,
            authority: *authority,
        },
        _ => return None,
    })
}

/// ComputeBudget instructions are Borsh: a one-byte tag, then one
/// little-endian integer. They take no accounts.
fn compute_budget(accounts: &[Address], data: &[u8]) -> Option<InstructionKind> {
    if !accounts.is_empty() {
        return None;
    }
    let (&tag, rest) = data.split_first()?;
    let u32_of = |rest: &[u8]| <[u8; 4]>::try_from(rest).ok().map(u32::from_le_bytes);
    let instruction = match tag {
        1 => ComputeBudget::RequestHeapFrame(u32_of(rest)?),
        2 => ComputeBudget::SetComputeUnitLimit(u32_of(rest)?),
        3 => ComputeBudget::SetComputeUnitPrice(u64::from_le_bytes(rest.try_into().ok()?)),
        4 => ComputeBudget::SetLoadedAccountsDataSizeLimit(u32_of(rest)?),
        _ => return None,
    };
    Some(InstructionKind::ComputeBudget(instruction))
}

fn token(program: TokenProgram, accounts: &[Address], data: &[u8]) -> Option<InstructionKind> {
    let instruction = TokenInstruction::unpack(data).ok()?;
    if instruction.pack() != data {
        return None;
    }
    Some(match (instruction, accounts) {
        (TokenInstruction::Transfer { amount }, [source, destination, authority, ..]) => {
            InstructionKind::TokenTransfer {
                program,
                source: *source,
                destination: *destination,
                authority: *authority,
                amount,
            }
        }
        (
            TokenInstruction::TransferChecked { amount, decimals },
            [source, mint, destination, authority, ..],
        ) => InstructionKind::TokenTransferChecked {
            program,
            source: *source,
            mint: *mint,
            destination: *destination,
            authority: *authority,
            amount,
            decimals,
        },
        _ => return None,
    })
}
