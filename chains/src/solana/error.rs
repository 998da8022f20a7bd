//! [`SolanaError`]: why a Solana message, lookup table or signature was
//! refused.

/// Why a Solana message was refused (or a signed transaction not built).
///
/// Addresses in the messages are Base58, as Solana writes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SolanaError {
    /// No bytes at all.
    #[error("the Solana message is empty")]
    Empty,
    /// The bytes end inside the message (a count or length larger than what
    /// follows included).
    #[error("the Solana message is truncated ({len} bytes end inside it)")]
    Truncated {
        /// The length given.
        len: usize,
    },
    /// The bytes do not decode as a legacy or v0 message.
    #[error("the Solana message does not decode: {0}")]
    Malformed(String),
    /// A versioned message of a version other than 0 (`0xff`, version 127,
    /// is the prefix of off-chain messages).
    #[error("Solana message version {0} is not supported (legacy and v0 messages are)")]
    UnsupportedVersion(u8),
    /// Bytes after the message's last field.
    #[error("{0} trailing bytes after the Solana message")]
    TrailingBytes(usize),
    /// The message decodes, but re-encoding it gives other bytes (a
    /// non-minimal compact-u16 length): what is signed must be exactly what
    /// was read.
    #[error(
        "the Solana message is not canonically encoded (re-encoding what it decodes to gives other bytes)"
    )]
    NonCanonical,
    /// Header counts that contradict the account keys (no fee payer, more
    /// signers than keys, read-only counts too large, ...).
    #[error("invalid Solana message header: {0}")]
    Header(String),
    /// An instruction whose program or account index is out of range (or
    /// names the fee payer as its program).
    #[error("Solana instruction {instruction}: {reason}")]
    Instruction {
        /// The instruction's position in the message (from 0).
        instruction: usize,
        /// What is wrong.
        reason: String,
    },
    /// An address lookup table the message uses is malformed (it loads no
    /// address at all).
    #[error("address lookup table {table}: {reason}")]
    LookupTable {
        /// The table's address.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// A v0 message loads addresses from a table whose contents were not
    /// supplied.
    #[error("the message loads addresses from lookup table {0}, whose contents were not supplied")]
    MissingLookupTable(String),
    /// A lookup index past the end of the supplied table.
    #[error("lookup table {table} has {len} addresses; the message loads index {index}")]
    LookupIndexOutOfRange {
        /// The table's address.
        table: String,
        /// The index the message uses.
        index: u8,
        /// The number of addresses supplied for the table.
        len: usize,
    },
    /// The same table supplied twice with different contents.
    #[error("lookup table {0} is supplied twice with different contents")]
    ConflictingLookupTables(String),
    /// An account key appearing twice among the message's (resolved)
    /// accounts: Solana refuses such transactions.
    #[error("account {0} appears twice in the message's account keys")]
    DuplicateAccount(String),
    /// With its signatures, the transaction would not fit in a Solana packet.
    #[error(
        "a transaction of this {len}-byte message and its {signatures} signatures would be {total} bytes, more than Solana's {max}-byte limit"
    )]
    TooLarge {
        /// The message's length.
        len: usize,
        /// Its number of required signatures.
        signatures: u8,
        /// The signed transaction's length.
        total: usize,
        /// The limit (`PACKET_DATA_SIZE`).
        max: usize,
    },
    /// The key that is to sign is neither the fee payer nor another required
    /// signer of the message.
    #[error(
        "key {key} does not sign this message: its fee payer is {fee_payer} and its required signers are {signers}"
    )]
    NotASigner {
        /// The key.
        key: String,
        /// The message's fee payer (account 0).
        fee_payer: String,
        /// Every required signer, comma-separated.
        signers: String,
    },
    /// A signature that does not verify for the key and message.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// The Solana crates refused to encode what was decoded (should not
    /// happen).
    #[error("encoding failed: {0}")]
    Encoding(String),
}
