//! Payment policy for Sigil keys: whether a signed payment intent may be
//! signed under its key's policy.
//!
//! Every signer node runs these checks itself, on its own copy of the
//! key's policy, before it draws a nonce; the coordinator runs the same
//! checks first to give clients an early, clear answer (the nodes do not
//! trust it). The crate is pure — no I/O, no clock, no storage: callers pass
//! the time, the counters of the last 24 hours and their own TLS trust
//! anchors ([`verify`] checks signatures and certificate chains against
//! them).
//!
//! | step | module |
//! |---|---|
//! | the bytes each party signs (domain separated) | [`domain`] |
//! | decode and check an intent: ids, expiry, key and path | [`intent`] |
//! | read the payload: chain, kind, movements, what the engine signs | [`payload`] |
//! | the policy document (TOML written, JSON signed) | [`document`] |
//! | the decision: allow, deny with the rule, or ask for approvals | [`evaluate`](mod@evaluate) |
//! | who may replace a policy | [`governance`] |
//! | who may refresh or reshare a key, or drill its recovery | [`operation`] |
//! | acknowledgements and commit certificates of new epochs | [`epoch`] |
//! | backups sealed to an offline key, and what a restore checks | [`backup`] |
//! | verify intents, approvals and officer signatures against a CA bundle | [`verify`] |
//!
//! Deny by default: a payload that is not understood exactly is refused,
//! and one that no rule allows is refused.

pub mod amount;
pub mod backup;
pub mod chain;
pub mod document;
pub mod domain;
pub mod epoch;
pub mod evaluate;
pub mod governance;
pub mod intent;
pub mod operation;
pub mod payload;
pub mod verify;

pub use amount::{Amount, AmountError};
pub use document::{
    ApprovalTier, AssetRule, ContractRule, DestinationRule, DocumentError, PolicyDocument,
    PolicyRules, hash as document_sha256,
};
pub use domain::{
    APPROVAL_DOMAIN, DRILL_DOMAIN, EPOCH_ACK_DOMAIN, EPOCH_TEST_DOMAIN, INTENT_DOMAIN,
    POLICY_DOMAIN, RECEIPT_DOMAIN, approval_signing_bytes, drill_message, epoch_ack_signing_bytes,
    epoch_test_message, intent_sha256, intent_signing_bytes, policy_signing_bytes,
    receipt_signing_bytes,
};
pub use evaluate::{ApprovalNeed, Decision, Denial, EvalRequest, Usage, evaluate};
pub use governance::{GovernanceError, Officers, check_update};
pub use intent::{IntentError, IntentLimits, check_intent, check_matches, decode_intent};
pub use operation::{
    KeyOperation, OPERATION_DOMAIN, OperationError, OperationKind, RequestedOperation,
    check_operation, operation_signing_bytes,
};
pub use payload::{Call, KeyView, Movement, Parsed, PayloadError, PayloadKind, SignPart, parse};
