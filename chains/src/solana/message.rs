//! Legacy and v0 Solana messages: [`decode_message`] reads one exactly,
//! resolves a v0 message's address lookup tables from contents the caller
//! supplies, and summarizes its instructions ([`crate::solana::instruction`]);
//! [`check_signer`] finds the key's signature slot.
//!
//! The bytes are decoded as `solana_message::VersionedMessage` with wincode,
//! the Solana crates' own encoding, and re-encoded: anything that does not
//! re-encode to the very same bytes is refused, so what the policy reads is
//! exactly what is signed.

use std::collections::HashSet;

use solana_message::{Address, Hash, MESSAGE_VERSION_PREFIX, MessageHeader, VersionedMessage};

use super::SolanaError;
use super::instruction::{InstructionKind, classify};

/// The largest wire transaction Solana accepts (`PACKET_DATA_SIZE`: an IPv6
/// MTU minus headers): compact-u16 signature count, signatures, message.
pub const MAX_TRANSACTION_LEN: usize = 1232;

/// The contents of an address lookup table, as the caller read them from
/// the chain (nodes cannot read the chain themselves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupTable {
    /// The table's own address.
    pub account: Address,
    /// Its addresses, in order.
    pub addresses: Vec<Address>,
}

impl LookupTable {
    /// A table from raw 32-byte keys, refusing any other length.
    pub fn from_bytes<A: AsRef<[u8]>>(
        account: &[u8],
        addresses: &[A],
    ) -> Result<Self, SolanaError> {
        let account = address_from(account).ok_or_else(|| SolanaError::LookupTable {
            table: format!("of {} bytes", account.len()),
            reason: "a lookup table's address is 32 bytes".into(),
        })?;
        let addresses = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                address_from(a.as_ref()).ok_or_else(|| SolanaError::LookupTable {
                    table: account.to_string(),
                    reason: format!("address {i} is {} bytes, not 32", a.as_ref().len()),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { account, addresses })
    }
}

/// A message's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageVersion {
    /// The original format (no version prefix, no lookup tables).
    Legacy,
    /// Version 0 (prefix `0x80`): address lookup tables.
    V0,
}

/// A decoded, checked message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedMessage {
    pub version: MessageVersion,
    pub header: MessageHeader,
    /// Every account the message uses, in Solana's order: the static keys,
    /// then the writable addresses loaded from lookup tables (table by
    /// table), then the read-only ones. Instructions index this list.
    pub account_keys: Vec<Address>,
    /// How many of [`Self::account_keys`] are in the message itself (the
    /// rest come from lookup tables).
    pub num_static_keys: usize,
    /// For each loaded key (`account_keys[num_static_keys..]`), the lookup
    /// table it comes from.
    pub loaded_from: Vec<Address>,
    /// The recent blockhash, or the nonce of a durable-nonce transaction.
    pub recent_blockhash: Hash,
    pub instructions: Vec<DecodedInstruction>,
}

/// One instruction with its program and accounts resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedInstruction {
    pub program_id: Address,
    pub accounts: Vec<Address>,
    pub data: Vec<u8>,
    /// What Sigil reads from it ([`InstructionKind::Other`] when nothing).
    pub kind: InstructionKind,
}

impl DecodedMessage {
    /// Account 0: pays the fee and signs first (always there in a message
    /// [`decode_message`] returns).
    pub fn fee_payer(&self) -> Option<&Address> {
        self.signers().first()
    }

    /// The keys whose signatures the message needs, in signature order.
    pub fn signers(&self) -> &[Address] {
        let n = usize::from(self.header.num_required_signatures).min(self.num_static_keys);
        self.account_keys.get(..n).unwrap_or_default()
    }

    /// The lookup table an account was loaded from (`None` for a key in the
    /// message itself, or one the message does not use). Keys are unique,
    /// so an address names one position.
    pub fn lookup_table_of(&self, account: &Address) -> Option<&Address> {
        let position = self.account_keys.iter().position(|k| k == account)?;
        position
            .checked_sub(self.num_static_keys)
            .and_then(|i| self.loaded_from.get(i))
    }
}

/// Which signature of a message a key gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignerSlot {
    /// The key's position among the required signers (its signature's
    /// position in the transaction).
    pub index: usize,
    /// The key is account 0, the fee payer (its signature is the
    /// transaction's id).
    pub is_fee_payer: bool,
    /// The message needs other signatures than the key's
    /// (`num_required_signatures > 1`).
    pub other_signatures_needed: bool,
}

/// Decodes and checks a legacy or v0 message, resolving the lookup tables
/// it uses from `lookup_tables` (the contents of every table it uses must be
/// given; others are ignored).
pub fn decode_message(
    bytes: &[u8],
    lookup_tables: &[LookupTable],
) -> Result<DecodedMessage, SolanaError> {
    let message = parse(bytes)?;
    let header = *message.header();
    let static_keys = message.static_account_keys();
    let (version, loaded) = match &message {
        VersionedMessage::Legacy(_) => (MessageVersion::Legacy, Vec::new()),
        VersionedMessage::V0(m) => (
            MessageVersion::V0,
            load_addresses(&m.address_table_lookups, lookup_tables)?,
        ),
        VersionedMessage::V1(_) => return Err(SolanaError::UnsupportedVersion(1)),
    };
    let mut account_keys = static_keys.to_vec();
    account_keys.extend(loaded.iter().map(|(address, _)| *address));
    check_unique(&account_keys)?;

    let mut instructions = Vec::with_capacity(message.instructions().len());
    for (i, ix) in message.instructions().iter().enumerate() {
        let key = |index: u8| {
            account_keys
                .get(usize::from(index))
                .copied()
                .ok_or_else(|| SolanaError::Instruction {
                    instruction: i,
                    reason: format!("account index {index} is out of range"),
                })
        };
        let program_id = key(ix.program_id_index)?;
        let accounts = ix
            .accounts
            .iter()
            .map(|&a| key(a))
            .collect::<Result<Vec<_>, _>>()?;
        let kind = classify(&program_id, &accounts, &ix.data);
        instructions.push(DecodedInstruction {
            program_id,
            accounts,
            data: ix.data.clone(),
            kind,
        });
    }
    Ok(DecodedMessage {
        version,
        header,
        num_static_keys: static_keys.len(),
        loaded_from: loaded.into_iter().map(|(_, table)| table).collect(),
        account_keys,
        recent_blockhash: message.recent_blockhash().clone(),
        instructions,
    })
}

/// Checks that `key` signs `decoded`: it must be the fee payer or another
/// of the required signers.
pub fn check_signer(decoded: &DecodedMessage, key: &[u8; 32]) -> Result<SignerSlot, SolanaError> {
    signer_slot(decoded.signers(), key)
}

/// The slot of `key` among `signers` (the first `num_required_signatures`
/// keys).
pub(crate) fn signer_slot(signers: &[Address], key: &[u8; 32]) -> Result<SignerSlot, SolanaError> {
    let key = Address::new_from_array(*key);
    match signers.iter().position(|s| *s == key) {
        Some(index) => Ok(SignerSlot {
            index,
            is_fee_payer: index == 0,
            other_signatures_needed: signers.len() > 1,
        }),
        None => Err(SolanaError::NotASigner {
            key: key.to_string(),
            fee_payer: signers.first().map(ToString::to_string).unwrap_or_default(),
            signers: signers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Decodes `bytes` exactly and checks everything that can be checked
/// without the lookup tables' contents.
pub(crate) fn parse(bytes: &[u8]) -> Result<VersionedMessage, SolanaError> {
    let first = *bytes.first().ok_or(SolanaError::Empty)?;
    if first & MESSAGE_VERSION_PREFIX != 0 {
        let version = first & !MESSAGE_VERSION_PREFIX;
        if version != 0 {
            return Err(SolanaError::UnsupportedVersion(version));
        }
    }
    let message: VersionedMessage = wincode::deserialize(bytes).map_err(|e| match e {
        wincode::ReadError::Io(_) => SolanaError::Truncated { len: bytes.len() },
        other => SolanaError::Malformed(other.to_string()),
    })?;
    if matches!(message, VersionedMessage::V1(_)) {
        return Err(SolanaError::UnsupportedVersion(1));
    }
    let canonical =
        wincode::serialize(&message).map_err(|e| SolanaError::Encoding(e.to_string()))?;
    if canonical != bytes {
        return Err(
            if bytes.len() > canonical.len() && bytes.starts_with(&canonical) {
                SolanaError::TrailingBytes(bytes.len() - canonical.len())
            } else {
                SolanaError::NonCanonical
            },
        );
    }
    check_structure(&message)?;
    check_unique(message.static_account_keys())?;
    let signatures = message.header().num_required_signatures;
    let total = compact_u16_len(usize::from(signatures))
        .saturating_add(usize::from(signatures).saturating_mul(64))
        .saturating_add(bytes.len());
    if total > MAX_TRANSACTION_LEN {
        return Err(SolanaError::TooLarge {
            len: bytes.len(),
            signatures,
            total,
            max: MAX_TRANSACTION_LEN,
        });
    }
    Ok(message)
}

/// The header, lookup and index checks of Solana's `sanitize`, each with
/// its own reason, then `sanitize` itself.
fn check_structure(message: &VersionedMessage) -> Result<(), SolanaError> {
    let header = message.header();
    let signers = usize::from(header.num_required_signatures);
    let readonly_signed = usize::from(header.num_readonly_signed_accounts);
    let readonly_unsigned = usize::from(header.num_readonly_unsigned_accounts);
    let num_static = message.static_account_keys().len();
    let lookups = message.address_table_lookups().unwrap_or(&[]);

    if signers == 0 {
        return Err(SolanaError::Header(
            "no required signatures: a message is signed by at least its fee payer".into(),
        ));
    }
    if signers > num_static {
        return Err(SolanaError::Header(format!(
            "{signers} required signatures but only {num_static} account keys"
        )));
    }
    if readonly_signed >= signers {
        return Err(SolanaError::Header(format!(
            "{readonly_signed} of its {signers} signers are read-only: the fee payer must be writable"
        )));
    }
    if signers + readonly_unsigned > num_static {
        return Err(SolanaError::Header(format!(
            "{readonly_unsigned} read-only unsigned accounts do not fit after its {signers} signers in {num_static} account keys"
        )));
    }
    let mut num_loaded = 0usize;
    for lookup in lookups {
        let n = lookup.writable_indexes.len() + lookup.readonly_indexes.len();
        if n == 0 {
            return Err(SolanaError::LookupTable {
                table: lookup.account_key.to_string(),
                reason: "the message loads no address from it".into(),
            });
        }
        num_loaded = num_loaded.saturating_add(n);
    }
    let total = num_static.saturating_add(num_loaded);
    if total > 256 {
        return Err(SolanaError::Header(format!(
            "{total} account keys, more than the 256 an instruction can index"
        )));
    }
    for (i, ix) in message.instructions().iter().enumerate() {
        let program = usize::from(ix.program_id_index);
        if program == 0 {
            return Err(SolanaError::Instruction {
                instruction: i,
                reason: "its program is account 0, the fee payer".into(),
            });
        }
        if program >= num_static {
            return Err(SolanaError::Instruction {
                instruction: i,
                reason: format!(
                    "program index {program} is out of range of the {num_static} account keys in the message (programs cannot come from lookup tables)"
                ),
            });
        }
        if let Some(&bad) = ix.accounts.iter().find(|&&a| usize::from(a) >= total) {
            return Err(SolanaError::Instruction {
                instruction: i,
                reason: format!("account index {bad} is out of range of its {total} account keys"),
            });
        }
    }
    message
        .sanitize()
        .map_err(|e| SolanaError::Header(format!("refused by Solana's sanitize checks: {e}")))
}

/// The addresses a v0 message loads, in Solana's order (writable from every
/// table, then read-only from every table), each with its table.
fn load_addresses(
    lookups: &[solana_message::v0::MessageAddressTableLookup],
    tables: &[LookupTable],
) -> Result<Vec<(Address, Address)>, SolanaError> {
    let mut used = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        let mut supplied = tables.iter().filter(|t| t.account == lookup.account_key);
        let table = supplied
            .next()
            .ok_or_else(|| SolanaError::MissingLookupTable(lookup.account_key.to_string()))?;
        if supplied.any(|other| other.addresses != table.addresses) {
            return Err(SolanaError::ConflictingLookupTables(
                lookup.account_key.to_string(),
            ));
        }
        used.push(table);
    }
    let load = |table: &LookupTable, index: u8| {
        table
            .addresses
            .get(usize::from(index))
            .map(|address| (*address, table.account))
            .ok_or_else(|| SolanaError::LookupIndexOutOfRange {
                table: table.account.to_string(),
                index,
                len: table.addresses.len(),
            })
    };
    let mut loaded = Vec::new();
    for (lookup, table) in lookups.iter().zip(&used) {
        for &index in &lookup.writable_indexes {
            loaded.push(load(table, index)?);
        }
    }
    for (lookup, table) in lookups.iter().zip(&used) {
        for &index in &lookup.readonly_indexes {
            loaded.push(load(table, index)?);
        }
    }
    Ok(loaded)
}

/// Refuses an account key that appears twice (Solana refuses such
/// transactions: `AccountLoadedTwice`).
fn check_unique(keys: &[Address]) -> Result<(), SolanaError> {
    let mut seen = HashSet::with_capacity(keys.len());
    match keys.iter().find(|k| !seen.insert(**k)) {
        Some(duplicate) => Err(SolanaError::DuplicateAccount(duplicate.to_string())),
        None => Ok(()),
    }
}

/// The length of Solana's compact-u16 encoding of `n`.
fn compact_u16_len(n: usize) -> usize {
    match n {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        _ => 3,
    }
}

/// 32 bytes as an address.
pub(crate) fn address_from(bytes: &[u8]) -> Option<Address> {
    <[u8; 32]>::try_from(bytes)
        .ok()
        .map(Address::new_from_array)
}
