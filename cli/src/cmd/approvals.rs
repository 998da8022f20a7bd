//! `sigil approvals`: sign requests that a key's policy holds until
//! approvers approve them (acts as `approver-1` unless `--as` names another
//! approver).
//!
//! An approval is the approver's signature over the SHA-256 of the intent
//! bytes, with the approver's own certificate key. `approve` reads the
//! intent itself (its payload decoded here, not only the coordinator's
//! summary) before signing, and checks that the hash it signs is the
//! intent's. After enough approvals the requester sends the same request
//! again (same idempotency key, same intent) and it is signed.

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use sigil_cli::intent::Signer;
use sigil_cli::output::Text;
use sigil_proto::v1 as pb;
use sigil_proto::v1::approvals_client::ApprovalsClient;
use sigil_protocol::Scheme;

use super::Context;

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// Sign requests waiting for approvals.
    List {
        /// Only this key's.
        #[arg(long, value_name = "ID")]
        key: Option<String>,
    },
    /// Approve a held sign request (`--as approver-N`).
    Approve {
        /// The approval id (`appr-...`), as the refused request and `list` print it.
        approval_id: String,
    },
}

pub async fn run(ctx: &Context, command: &ApprovalsCommand) -> Result<()> {
    let client = ctx.client("approver-1")?;
    let name = client.name();
    let mut approvals = ApprovalsClient::new(client.connect().await?);
    match command {
        ApprovalsCommand::List { key } => {
            let pending = approvals
                .list_pending(pb::ListPendingApprovalsRequest {
                    key_id: key.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .pending;
            let now = now_ms();
            let values: Vec<Value> = pending.iter().map(pending_json).collect();
            ctx.out.print(&json!({ "pending": values }), || {
                let mut t = Text::new();
                if pending.is_empty() {
                    t.line("no sign requests wait for approval");
                }
                for (i, p) in pending.iter().enumerate() {
                    if i > 0 {
                        t.line("");
                    }
                    pending_text(&mut t, p, now);
                }
                t.into()
            });
        }
        ApprovalsCommand::Approve { approval_id } => {
            let pending = approvals
                .list_pending(pb::ListPendingApprovalsRequest::default())
                .await?
                .into_inner()
                .pending
                .into_iter()
                .find(|p| p.approval_id == *approval_id)
                .with_context(|| {
                    format!(
                        "no sign request waits for approval {approval_id} \
                         (expired, or already signed; `sigil approvals list` shows what waits)"
                    )
                })?;
            let signed = pending
                .intent
                .as_ref()
                .context("the coordinator returned the pending approval without its intent")?;
            let sha = sigil_policy::intent_sha256(&signed.intent);
            if sha.as_slice() != pending.intent_sha256.as_slice() {
                bail!(
                    "the coordinator's intent hash {} is not the SHA-256 of its intent ({}); not approving",
                    hex::encode(&pending.intent_sha256),
                    hex::encode(sha)
                );
            }
            let intent = sigil_policy::decode_intent(&signed.intent)
                .context("the held intent does not decode; not approving")?;
            ctx.out.note(format_args!(
                "approving as {name}: {} on key {} requested by {}",
                payload_summary(&intent),
                intent.key_id,
                intent.requester
            ));
            let signer = Signer::from_tls(&client.tls)?;
            let approval = signer.approve(signed)?;
            let updated = approvals
                .approve(pb::ApproveRequest {
                    approval_id: approval_id.clone(),
                    approval: Some(approval),
                })
                .await
                .with_context(|| format!("approving {approval_id} as {name}"))?
                .into_inner()
                .pending
                .context("the coordinator returned no pending approval")?;
            let now = now_ms();
            ctx.out.print(&pending_json(&updated), || {
                let mut t = Text::new();
                pending_text(&mut t, &updated, now);
                let have = updated.approved_by.len();
                if have >= updated.required as usize {
                    t.line(
                        "approved: the requester can now send the same request again (same idempotency key)",
                    );
                } else {
                    t.line(format_args!(
                        "{} more approval(s) needed",
                        updated.required as usize - have
                    ));
                }
                t.into()
            });
        }
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the intent's payload asks, decoded here (the approver's own reading).
fn payload_summary(intent: &pb::Intent) -> String {
    let Some(payload) = &intent.payload else {
        return "an intent without a payload".into();
    };
    // The key's scheme is not the approver's to look up: Ethereum payloads
    // and digests are ECDSA's, a message signed as is FROST's.
    let scheme = match &payload.kind {
        Some(pb::payload::Kind::RawMessage(m)) if m.encoding == pb::MessageEncoding::Raw as i32 => {
            Scheme::FrostSecp256k1
        }
        _ => Scheme::EcdsaSecp256k1,
    };
    // Payloads read against the key (PSBTs, Solana, TRON) do not parse
    // without it; the coordinator's summary stands for those.
    match sigil_policy::parse(&sigil_policy::KeyView::new(scheme, &[], &[]), payload) {
        Ok(parsed) => parsed.summary(),
        Err(e) => format!("a payload that does not parse ({e})"),
    }
}

/// The payload summary decoded here, when the intent decodes.
fn local_summary(p: &pb::PendingApproval) -> Option<String> {
    let signed = p.intent.as_ref()?;
    let intent = sigil_policy::decode_intent(&signed.intent).ok()?;
    Some(payload_summary(&intent))
}

fn pending_json(p: &pb::PendingApproval) -> Value {
    json!({
        "approval_id": p.approval_id,
        "key_id": p.key_id,
        "requester": p.requester,
        "summary": p.summary,
        "decoded_summary": local_summary(p),
        "rule": p.rule,
        "group": p.group,
        "required": p.required,
        "approved_by": p.approved_by,
        "not_after_unix_ms": p.not_after_unix_ms,
        "intent_sha256": hex::encode(&p.intent_sha256),
        "created_at": p.created_at,
    })
}

fn pending_text(t: &mut Text, p: &pb::PendingApproval, now: u64) {
    t.line(format_args!("approval     {}", p.approval_id));
    t.line(format_args!("key          {}", p.key_id));
    t.line(format_args!("requester    {}", p.requester));
    t.line(format_args!("summary      {}", p.summary));
    if let Some(local) = local_summary(p).filter(|l| *l != p.summary) {
        t.line(format_args!("decoded here {local}"));
    }
    t.line(format_args!("rule         {}", p.rule));
    t.line(format_args!(
        "approvals    {}/{} from group {}{}",
        p.approved_by.len(),
        p.required,
        p.group,
        if p.approved_by.is_empty() {
            String::new()
        } else {
            format!(": {}", p.approved_by.join(", "))
        }
    ));
    let expiry = if p.not_after_unix_ms > now {
        format!("in {}s", (p.not_after_unix_ms - now) / 1000)
    } else {
        "expired".to_owned()
    };
    t.line(format_args!(
        "expires      {expiry} (unix ms {})",
        p.not_after_unix_ms
    ));
}
