//! The decision whether a parsed payload may be signed under a key's rules:
//! a pure function of the rules, the request and what this node counted in
//! the last 24 hours. Anything no rule allows is refused.
//!
//! The checks run in this order; the first that fails decides:
//!
//! | # | check | outcome when it fails (`Denial::rule`) |
//! |---|---|---|
//! | 0 | the rules validate ([`PolicyRules::validate`]) | deny `invalid_policy` |
//! | 1 | the requester is one of `requesters` | deny `requesters` |
//! | 2 | raw messages, raw digests and EIP-191 messages need `allow_raw` | deny `raw_signing` |
//! | 3 | an EVM or TRON contract call carrying an ERC-20 movement selector (`transfer`, `transferFrom`, `approve`) that did not decode exactly | deny `contracts.erc20_selector` |
//! | 4 | every other call needs a `contracts` entry for its chain, address and selector (an exact ERC-20 movement needs none: its token's asset entry decides; a Solana program, which has no selectors, needs an entry without `selectors`) | deny `contracts` |
//! | 5 | each movement: its destination is not on its chain's denylist | deny `destinations.deny` |
//! | 6 | each movement: its chain's allowlist, if not empty, names the destination | deny `destinations.allow` |
//! | 7 | each asset moved: an `assets` entry for the exact asset, else `*` | deny `no_allowance` |
//! | 8 | each asset: the sum of its movements in this payload (and its fee, where the payload fixes one: Bitcoin) ≤ `max_per_tx` | deny `assets[i].max_per_tx` |
//! | 9 | each asset: counted amount of the last 24 h + this sum ≤ `max_per_day` | deny `assets[i].max_per_day` |
//! | 10 | each asset: counted spends of the last 24 h + 1 ≤ `max_count_per_day` | deny `assets[i].max_count_per_day` |
//! | 11 | each asset: the tier with the highest `above` that the sum exceeds (exact asset before `*` at equal `above`) has `required` distinct approvals from members of its group | needs approval `approval_tiers[i]` |
//!
//! Two refusals guard against payloads the decoders never produce: value
//! moved on no named chain (`no_allowance`) and per-asset sums beyond 2^256
//! (`amount_overflow`).
//!
//! Approvals are counted once per approver, only from members of the tier's
//! group, and never from the requester itself. A payload without movements
//! (a contract call without value, a message) still needs its own allowance
//! (step 2 or 4). When everything passes, [`Decision::Allow`] lists per
//! asset what the payload adds to the rolling counters; a node counts it
//! (one spend per asset) before it signs.

use std::collections::BTreeSet;

use crate::amount::Amount;
use crate::chain::{ANY_ASSET, Family, unit_of};
use crate::document::{AssetRule, PolicyRules};
use crate::payload::evm::ERC20_MOVEMENT_SELECTORS;
use crate::payload::{Call, Parsed, PayloadKind};

/// What a node counted for one asset of a key in the last 24 hours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub amount: Amount,
    pub count: u64,
}

/// What is asked: who asks, what they ask to sign, who approved it.
#[derive(Clone, Copy, Debug)]
pub struct EvalRequest<'a> {
    /// The requester's client name (`<name>` of `spiffe://<td>/client/<name>`).
    pub requester: &'a str,
    pub parsed: &'a Parsed,
    /// Client names of verified approvals (duplicates allowed; counted once).
    pub approvers: &'a [String],
}

/// A refusal, with the rule that refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// Stable machine name of the rule, e.g. `assets[0].max_per_tx`.
    pub rule: String,
    /// What a person reads.
    pub reason: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (rule {})", self.reason, self.rule)
    }
}

/// Approvals an approval tier asks for and does not have yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalNeed {
    /// Index into `approval_tiers`.
    pub tier: usize,
    /// `approval_tiers[i] (<asset> above <amount>)`.
    pub rule: String,
    pub group: String,
    pub required: u16,
    /// Distinct approvals from the group's members so far.
    pub have: u16,
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Sign; per asset, the amount this payload adds to the rolling counters.
    Allow {
        spends: Vec<(String, Amount)>,
    },
    Deny(Denial),
    NeedsApproval(ApprovalNeed),
}

fn deny(rule: impl Into<String>, reason: impl Into<String>) -> Decision {
    Decision::Deny(Denial {
        rule: rule.into(),
        reason: reason.into(),
    })
}

/// Decides whether `req` may be signed under `rules`; `usage` tells what this
/// node counted for an asset in the last 24 hours (see the module docs).
pub fn evaluate(
    rules: &PolicyRules,
    req: &EvalRequest<'_>,
    usage: impl Fn(&str) -> Usage,
) -> Decision {
    match decide(rules, req, &usage) {
        Ok(spends) => Decision::Allow { spends },
        Err(decision) => decision,
    }
}

fn decide(
    rules: &PolicyRules,
    req: &EvalRequest<'_>,
    usage: &dyn Fn(&str) -> Usage,
) -> Result<Vec<(String, Amount)>, Decision> {
    let parsed = req.parsed;
    // Rules built in code skip the checks deserialization makes.
    if let Err(e) = rules.validate() {
        return Err(deny("invalid_policy", e.to_string()));
    }
    if !rules.requesters.iter().any(|r| r == req.requester) {
        return Err(deny(
            "requesters",
            format!("client {} is not a requester of this key", req.requester),
        ));
    }
    if parsed.kind.is_raw() && !rules.allow_raw {
        return Err(deny(
            "raw_signing",
            format!(
                "{} payloads are signed only where the policy allows raw signing",
                parsed.kind
            ),
        ));
    }
    if parsed.kind == PayloadKind::ContractCall {
        check_contract_call(rules, parsed)?;
    }

    // Destinations, per movement.
    let chain = match (&parsed.chain, parsed.movements.is_empty()) {
        (Some(chain), _) => chain.as_str(),
        (None, true) => "",
        (None, false) => {
            return Err(deny(
                "no_allowance",
                "the payload moves value on no named chain",
            ));
        }
    };
    let lists: Vec<_> = rules
        .destinations
        .iter()
        .filter(|d| d.chain == chain)
        .collect();
    for m in &parsed.movements {
        if lists.iter().any(|d| d.deny.contains(&m.destination)) {
            return Err(deny(
                "destinations.deny",
                format!("{} is on the {chain} denylist", m.destination),
            ));
        }
        let allowlists: Vec<_> = lists.iter().filter(|d| !d.allow.is_empty()).collect();
        if !allowlists.is_empty() && !allowlists.iter().any(|d| d.allow.contains(&m.destination)) {
            return Err(deny(
                "destinations.allow",
                format!("{} is not on the {chain} allowlist", m.destination),
            ));
        }
    }

    // Per asset: what this payload moves in total, in order of appearance;
    // the fee leaves the key too, so it counts in its asset's limits.
    let mut totals: Vec<(String, Amount)> = Vec::new();
    let fee = parsed.fee.iter().map(|f| (&f.asset, f.amount));
    for (asset, amount) in parsed
        .movements
        .iter()
        .map(|m| (&m.asset, m.amount))
        .chain(fee)
    {
        match totals.iter_mut().find(|(a, _)| a == asset) {
            Some((_, total)) => {
                *total = total.checked_add(amount).ok_or_else(|| {
                    deny(
                        "amount_overflow",
                        format!("the amounts of {asset} in this payload overflow"),
                    )
                })?;
            }
            None => totals.push((asset.clone(), amount)),
        }
    }
    for (asset, total) in &totals {
        check_limits(rules, asset, *total, usage)?;
    }
    for (asset, total) in &totals {
        check_approvals(rules, req, asset, *total)?;
    }
    Ok(totals)
}

fn check_contract_call(rules: &PolicyRules, parsed: &Parsed) -> Result<(), Decision> {
    let Some(chain) = &parsed.chain else {
        return Err(deny("contracts", "a contract call on no named chain"));
    };
    if parsed.calls.is_empty() {
        return Err(deny("contracts", "a contract call without a contract"));
    }
    for call in &parsed.calls {
        check_call(rules, chain, call)?;
    }
    Ok(())
}

fn check_call(rules: &PolicyRules, chain: &str, call: &Call) -> Result<(), Decision> {
    let contract = &call.contract;
    let Some(selector) = call.selector else {
        // Programs without selectors (Solana): an entry without selectors allows them.
        let allowed = rules
            .contracts
            .iter()
            .any(|c| c.chain == chain && c.address == *contract && c.selectors.is_empty());
        return if allowed {
            Ok(())
        } else {
            Err(deny(
                "contracts",
                format!("no contracts entry allows program {contract} on {chain}"),
            ))
        };
    };
    let method = format!("0x{}", hex::encode(selector));
    if matches!(Family::of(chain), Some(Family::Evm | Family::Tron))
        && ERC20_MOVEMENT_SELECTORS.contains(&selector)
    {
        return Err(deny(
            "contracts.erc20_selector",
            format!(
                "the call of {contract} uses the ERC-20 method {method} but is not its exact encoding; its amount cannot be read, so it is not signed"
            ),
        ));
    }
    let allowed = rules.contracts.iter().any(|c| {
        c.chain == chain
            && c.address == *contract
            && (c.selectors.is_empty() || c.selectors.contains(&method))
    });
    if allowed {
        Ok(())
    } else {
        Err(deny(
            "contracts",
            format!("no contracts entry allows method {method} of {contract} on {chain}"),
        ))
    }
}

/// The `assets` entry for `asset`: the exact one, else `*`.
fn allowance<'r>(rules: &'r PolicyRules, asset: &str) -> Option<(usize, &'r AssetRule)> {
    let position = |name: &str| rules.assets.iter().position(|a| a.asset == name);
    let i = position(asset).or_else(|| position(ANY_ASSET))?;
    rules.assets.get(i).map(|a| (i, a))
}

fn check_limits(
    rules: &PolicyRules,
    asset: &str,
    total: Amount,
    usage: &dyn Fn(&str) -> Usage,
) -> Result<(), Decision> {
    let Some((i, rule)) = allowance(rules, asset) else {
        return Err(deny(
            "no_allowance",
            format!("no assets entry allows {asset}"),
        ));
    };
    let unit = unit_of(asset);
    if let Some(max) = rule.max_per_tx
        && total > max
    {
        return Err(deny(
            format!("assets[{i}].max_per_tx"),
            format!("{total} {unit} of {asset} exceeds the per-transaction limit {max}"),
        ));
    }
    if rule.max_per_day.is_none() && rule.max_count_per_day.is_none() {
        return Ok(());
    }
    let used = usage(asset);
    if let Some(max) = rule.max_per_day {
        match used.amount.checked_add(total) {
            Some(sum) if sum <= max => {}
            sum => {
                let sum = sum.map_or_else(|| "more than 2^256".to_owned(), |s| s.to_string());
                return Err(deny(
                    format!("assets[{i}].max_per_day"),
                    format!(
                        "{total} {unit} of {asset} would bring the last 24 hours to {sum}, over the daily limit {max}"
                    ),
                ));
            }
        }
    }
    if let Some(max) = rule.max_count_per_day
        && used.count.saturating_add(1) > max
    {
        return Err(deny(
            format!("assets[{i}].max_count_per_day"),
            format!(
                "{asset} was spent {} times in the last 24 hours; the limit is {max}",
                used.count
            ),
        ));
    }
    Ok(())
}

fn check_approvals(
    rules: &PolicyRules,
    req: &EvalRequest<'_>,
    asset: &str,
    total: Amount,
) -> Result<(), Decision> {
    let tier = rules
        .approval_tiers
        .iter()
        .enumerate()
        .filter(|(_, t)| (t.asset == asset || t.asset == ANY_ASSET) && total > t.above)
        .max_by_key(|(_, t)| (t.above, t.asset == asset));
    let Some((i, tier)) = tier else {
        return Ok(());
    };
    let members = rules
        .approver_groups
        .get(&tier.group)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let distinct: BTreeSet<&str> = req
        .approvers
        .iter()
        .map(String::as_str)
        .filter(|a| *a != req.requester && members.iter().any(|m| m == a))
        .collect();
    let have = u16::try_from(distinct.len()).unwrap_or(u16::MAX);
    if have >= tier.required {
        return Ok(());
    }
    Err(Decision::NeedsApproval(ApprovalNeed {
        tier: i,
        rule: format!("approval_tiers[{i}] ({} above {})", tier.asset, tier.above),
        group: tier.group.clone(),
        required: tier.required,
        have,
    }))
}
