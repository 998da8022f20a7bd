//! How the CLI shows a gRPC error: its code, its message and the
//! machine-readable `sigil-*` details the coordinator and the nodes attach
//! (the policy rule that refused a request, the approvals it still needs,
//! the pending approval it waits for, blamed nodes). Every command's errors
//! print through [`describe`], so a refusal always names its rule.

use sigil_proto::convert::metadata;
use tonic::Status;

/// The `sigil-*` metadata of `status`, in a stable order, as `(name, value)`.
pub fn details(status: &Status) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = status
        .metadata()
        .iter()
        .filter_map(|entry| match entry {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                let name = k.as_str();
                name.starts_with("sigil-")
                    .then(|| (name.to_owned(), v.to_str().unwrap_or("?").to_owned()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect();
    out.sort();
    out
}

fn value<'a>(status: &'a Status, name: &str) -> Option<&'a str> {
    status.metadata().get(name).and_then(|v| v.to_str().ok())
}

/// The policy rule that refused the request (`sigil-policy-rule`).
pub fn policy_rule(status: &Status) -> Option<&str> {
    value(status, metadata::POLICY_RULE)
}

/// The pending approval a held request waits for (`sigil-approval-id`).
pub fn approval_id(status: &Status) -> Option<&str> {
    value(status, metadata::APPROVAL_ID)
}

/// What approvals the request still needs: `<group>:<have>/<required>`
/// (`sigil-approval-required`).
pub fn approval_required(status: &Status) -> Option<&str> {
    value(status, metadata::APPROVAL_REQUIRED)
}

/// `Code: message`, then one indented line per `sigil-*` detail.
pub fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    for (name, value) in details(status) {
        text.push_str(&format!("\n  {name}: {value}"));
    }
    text
}

/// The reason of a policy refusal without the `policy: ` prefix and the
/// `(rule …)` suffix the servers wrap it in (a node's `node N: ` stays).
pub fn policy_reason(status: &Status) -> String {
    let message = status.message();
    let (prefix, rest) = match message.split_once(": policy: ") {
        Some((node, rest)) if node.starts_with("node ") => (format!("{node}: "), rest),
        _ => (
            String::new(),
            message.strip_prefix("policy: ").unwrap_or(message),
        ),
    };
    let rest = match policy_rule(status) {
        Some(rule) => rest
            .strip_suffix(&format!(" (rule {rule})"))
            .unwrap_or(rest),
        None => rest,
    };
    format!("{prefix}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(message: &str, meta: &[(&'static str, &str)]) -> Status {
        let mut s = Status::failed_precondition(message);
        for (k, v) in meta {
            s.metadata_mut()
                .insert(*k, v.parse().expect("ASCII metadata"));
        }
        s
    }

    #[test]
    fn describe_names_code_message_and_sigil_details_only() {
        let s = refused(
            "policy: 2 wei of evm:1/native exceeds the per-transaction limit 1 (rule assets[0].max_per_tx)",
            &[
                (metadata::POLICY_RULE, "assets[0].max_per_tx"),
                ("x-other", "ignored"),
            ],
        );
        assert_eq!(
            describe(&s),
            "FailedPrecondition: policy: 2 wei of evm:1/native exceeds the per-transaction limit 1 (rule assets[0].max_per_tx)\n  sigil-policy-rule: assets[0].max_per_tx"
        );
        assert_eq!(policy_rule(&s), Some("assets[0].max_per_tx"));
        assert_eq!(
            policy_reason(&s),
            "2 wei of evm:1/native exceeds the per-transaction limit 1"
        );
        assert_eq!(describe(&Status::not_found("key k")), "NotFound: key k");
    }

    #[test]
    fn a_node_refusal_keeps_the_node_in_the_reason() {
        let s = refused(
            "node 2: policy: too much (rule assets[0].max_per_day)",
            &[(metadata::POLICY_RULE, "assets[0].max_per_day")],
        );
        assert_eq!(policy_reason(&s), "node 2: too much");
    }

    #[test]
    fn approval_details_are_read() {
        let s = refused(
            "approval required: 1 approvals from group treasury",
            &[
                (metadata::APPROVAL_ID, "appr-1"),
                (metadata::APPROVAL_REQUIRED, "treasury:0/1"),
            ],
        );
        assert_eq!(approval_id(&s), Some("appr-1"));
        assert_eq!(approval_required(&s), Some("treasury:0/1"));
        assert_eq!(
            details(&s),
            [
                ("sigil-approval-id".to_owned(), "appr-1".to_owned()),
                (
                    "sigil-approval-required".to_owned(),
                    "treasury:0/1".to_owned()
                ),
            ]
        );
    }
}
