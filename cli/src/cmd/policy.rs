//! `sigil policy`: the signed policy documents of keys.
//!
//! A policy is written as TOML, turned into a proposal file by `propose`
//! (the exact document bytes officers sign, as JSON text, and their
//! signatures), signed by security officers one by one with `sign --as
//! officer-N`, and relayed to the key's nodes by `apply`; every node checks
//! the officers' signatures and quorum itself. `show` prints the document
//! in force. `show` and `apply` act as `operator` (officers may too).
//!
//! Proposal file:
//! `{"document": "<document JSON text>", "signatures": [{"officer": "officer-1",
//! "signature": "<hex>", "certificate_chain": ["<hex DER>", ...]}]}` —
//! `document` is signed exactly as written there (its UTF-8 bytes).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sigil_cli::intent::Signer;
use sigil_cli::output::Text;
use sigil_policy::PolicyDocument;
use sigil_proto::v1 as pb;
use sigil_proto::v1::policy_client::PolicyClient;

use super::Context;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// The policy in force for a key: version, signed or the configured default, document.
    Show {
        #[arg(long, value_name = "ID")]
        key: String,
    },
    /// Turn a TOML policy into a proposal file for officers to sign (no cluster needed).
    Propose {
        /// The key the policy is for (must be the document's key_id).
        #[arg(long, value_name = "ID")]
        key: String,
        /// The policy, TOML (key_id, version, requesters, assets, ...; see docs/policy.md).
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Where to write the proposal (default: next to the TOML, `<name>.proposal.json`).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Sign a proposal as a security officer (`--as officer-N`, default officer-1).
    Sign {
        /// The proposal file; the signature is added to it.
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
    /// Send a signed proposal to the key's nodes; non-zero exit if any node refused it.
    Apply {
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
}

/// A proposal file (see the module docs).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Proposal {
    /// The document exactly as officers sign it.
    document: String,
    #[serde(default)]
    signatures: Vec<ProposalSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalSignature {
    officer: String,
    signature: String,
    certificate_chain: Vec<String>,
}

impl Proposal {
    fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a policy proposal file", path.display()))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The document, parsed and validated as the nodes will.
    fn parsed(&self) -> Result<PolicyDocument> {
        PolicyDocument::from_document_bytes(self.document.as_bytes())
            .context("the proposal's document is not a valid policy document")
    }

    fn officers(&self) -> Vec<&str> {
        self.signatures.iter().map(|s| s.officer.as_str()).collect()
    }

    fn to_wire(&self) -> Result<pb::SignedPolicy> {
        let signatures = self
            .signatures
            .iter()
            .map(|s| {
                Ok(pb::OfficerSignature {
                    signature: hex::decode(&s.signature)
                        .with_context(|| format!("signature of {}", s.officer))?,
                    certificate_chain: s
                        .certificate_chain
                        .iter()
                        .map(hex::decode)
                        .collect::<Result<_, _>>()
                        .with_context(|| format!("certificate chain of {}", s.officer))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(pb::SignedPolicy {
            document: self.document.as_bytes().to_vec(),
            signatures,
        })
    }
}

/// JSON text indented for people, its fields in the order written (the
/// order officers sign); text that is not JSON comes back as is.
fn pretty(text: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return text.to_owned();
    }
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    }
    let mut out = String::with_capacity(text.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

fn document_value(document: &str) -> Value {
    serde_json::from_str(document).unwrap_or_else(|_| Value::String(document.to_owned()))
}

fn sha256_hex(document: &str) -> String {
    hex::encode(sigil_policy::document_sha256(document.as_bytes()))
}

pub async fn run(ctx: &Context, command: &PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Show { key } => show(ctx, key).await,
        PolicyCommand::Propose { key, file, out } => propose(ctx, key, file, out.as_deref()),
        PolicyCommand::Sign { file } => sign(ctx, file),
        PolicyCommand::Apply { file } => apply(ctx, file).await,
    }
}

async fn show(ctx: &Context, key: &str) -> Result<()> {
    let client = ctx.client("operator")?;
    let resp = PolicyClient::new(client.connect().await?)
        .get_policy(pb::GetPolicyRequest {
            key_id: key.to_owned(),
        })
        .await?
        .into_inner();
    // Who signed, as this data directory's CA sees it.
    let officers: Option<Result<Vec<String>, String>> = resp.policy.as_ref().map(|signed| {
        sigil_policy::verify::verify_officer_signatures(&client.tls, signed)
            .map_err(|e| e.to_string())
    });
    let sha = resp
        .policy
        .as_ref()
        .map(|p| hex::encode(sigil_policy::document_sha256(&p.document)));
    let value = json!({
        "key_id": key,
        "version": resp.version,
        "is_default": resp.is_default,
        "document": document_value(&resp.document_json),
        "document_sha256": sha,
        "officers": match &officers {
            Some(Ok(names)) => json!(names),
            _ => Value::Null,
        },
        "officers_error": match &officers {
            Some(Err(e)) => json!(e),
            _ => Value::Null,
        },
    });
    ctx.out.print(&value, || {
        let mut t = Text::new();
        t.line(format_args!("key        {key}"));
        if resp.is_default {
            t.line(format_args!(
                "version    {} (no signed document: the nodes' configured default applies)",
                resp.version
            ));
        } else {
            t.line(format_args!("version    {} (signed)", resp.version));
        }
        match &officers {
            Some(Ok(names)) => {
                t.line(format_args!("signed by  {}", names.join(", ")));
            }
            Some(Err(e)) => {
                t.line(format_args!("signatures do not verify here: {e}"));
            }
            None => {}
        }
        if let Some(sha) = &sha {
            t.line(format_args!("sha-256    {sha}"));
        }
        t.line("document");
        t.line(pretty(&resp.document_json));
        t.into()
    });
    Ok(())
}

fn propose(ctx: &Context, key: &str, file: &Path, out: Option<&Path>) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc = PolicyDocument::from_toml(&text).with_context(|| format!("{}", file.display()))?;
    if doc.key_id != key {
        bail!(
            "{} is a policy for key {:?}, not {key:?}",
            file.display(),
            doc.key_id
        );
    }
    let document =
        String::from_utf8(doc.to_document_bytes()).context("the policy document is not UTF-8")?;
    let out = match out {
        Some(p) => p.to_owned(),
        None => {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "policy".into());
            file.with_file_name(format!("{stem}.proposal.json"))
        }
    };
    let proposal = Proposal {
        document,
        signatures: Vec::new(),
    };
    proposal.save(&out)?;
    let sha = sha256_hex(&proposal.document);
    ctx.out.print(
        &json!({
            "file": out,
            "key_id": doc.key_id,
            "version": doc.version,
            "document_sha256": sha,
            "document": document_value(&proposal.document),
        }),
        || {
            let mut t = Text::new();
            t.line(format_args!(
                "proposal   {} (key {}, version {})",
                out.display(),
                doc.key_id,
                doc.version
            ));
            t.line(format_args!("sha-256    {sha}"));
            t.line("document (review it: officers sign exactly this)");
            t.line(pretty(&proposal.document));
            t.line(format_args!(
                "next: officers run `sigil policy sign --file {} --as officer-N`, then `sigil policy apply --file {}`",
                out.display(),
                out.display()
            ));
            t.into()
        },
    );
    Ok(())
}

fn sign(ctx: &Context, file: &Path) -> Result<()> {
    let mut proposal = Proposal::load(file)?;
    let doc = proposal.parsed()?;
    let client = ctx.client("officer-1")?;
    let officer = client.name();
    let signer = Signer::from_tls(&client.tls)?;
    let signature = signer.sign_policy(proposal.document.as_bytes())?;
    let entry = ProposalSignature {
        officer: officer.clone(),
        signature: hex::encode(&signature.signature),
        certificate_chain: signature
            .certificate_chain
            .iter()
            .map(hex::encode)
            .collect(),
    };
    match proposal
        .signatures
        .iter_mut()
        .find(|s| s.officer == officer)
    {
        Some(existing) => *existing = entry,
        None => proposal.signatures.push(entry),
    }
    proposal.save(file)?;
    let sha = sha256_hex(&proposal.document);
    let officers = proposal.officers();
    ctx.out.print(
        &json!({
            "file": file,
            "key_id": doc.key_id,
            "version": doc.version,
            "document_sha256": sha,
            "signed_by": officers,
        }),
        || {
            let mut t = Text::new();
            t.line(format_args!(
                "signed     key {} version {} (sha-256 {sha}) as {officer}",
                doc.key_id, doc.version
            ));
            t.line(format_args!("signed by  {}", officers.join(", ")));
            t.into()
        },
    );
    Ok(())
}

async fn apply(ctx: &Context, file: &Path) -> Result<()> {
    let proposal = Proposal::load(file)?;
    let doc = proposal.parsed()?;
    if proposal.signatures.is_empty() {
        bail!(
            "{} has no officer signatures; officers run `sigil policy sign --file {} --as officer-N`",
            file.display(),
            file.display()
        );
    }
    let client = ctx.client("operator")?;
    let resp = PolicyClient::new(client.connect().await?)
        .apply_policy(pb::ApplyPolicyRequest {
            policy: Some(proposal.to_wire()?),
        })
        .await
        .with_context(|| format!("applying version {} to key {}", doc.version, doc.key_id))?
        .into_inner();
    let failed: Vec<Value> = resp
        .failed
        .iter()
        .map(|f| json!({"node_id": f.node_id, "reason": f.reason}))
        .collect();
    ctx.out.print(
        &json!({
            "key_id": doc.key_id,
            "version": resp.version,
            "document_sha256": sha256_hex(&proposal.document),
            "signed_by": proposal.officers(),
            "accepted": resp.accepted,
            "failed": failed,
        }),
        || {
            let accepted: Vec<String> = resp.accepted.iter().map(ToString::to_string).collect();
            let mut t = Text::new();
            t.line(format_args!(
                "applied    key {} version {}",
                doc.key_id, resp.version
            ));
            t.line(format_args!(
                "accepted   nodes {}",
                if accepted.is_empty() {
                    "none".to_owned()
                } else {
                    accepted.join(", ")
                }
            ));
            for f in &resp.failed {
                t.line(format_args!("failed     node {}: {}", f.node_id, f.reason));
            }
            t.into()
        },
    );
    if !resp.failed.is_empty() {
        bail!(
            "{} node(s) did not accept the policy: {}",
            resp.failed.len(),
            resp.failed
                .iter()
                .map(|f| format!("node {}: {}", f.node_id, f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_keeps_the_field_order_and_the_strings() {
        let text =
            r#"{"key_id":"k","version":2,"requesters":["a,b","c\"d:{"],"assets":[],"groups":{}}"#;
        assert_eq!(
            pretty(text),
            "{\n  \"key_id\": \"k\",\n  \"version\": 2,\n  \"requesters\": [\n    \"a,b\",\n    \"c\\\"d:{\"\n  ],\n  \"assets\": [],\n  \"groups\": {}\n}"
        );
        let value: Value = serde_json::from_str(&pretty(text)).expect("still JSON");
        assert_eq!(value, serde_json::from_str::<Value>(text).expect("JSON"));
        assert_eq!(pretty("not json {"), "not json {");
    }
}
