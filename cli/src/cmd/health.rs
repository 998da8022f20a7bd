//! `sigil health`: gRPC health checking of every coordinator and of every
//! node; non-zero unless every process is serving.
//!
//! Nodes whose endpoints are known here (a data directory, a profile that
//! lists them, as `sigil up`'s does) are checked directly. Otherwise —
//! a deployed cluster, whose nodes usually take calls from the coordinator
//! only — their health is the coordinator's view (`ListNodes`, which needs
//! the `operator` role).

use anyhow::{Result, bail};
use serde_json::json;
use sigil_cli::output::Text;
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use super::Context;

pub async fn run(ctx: &Context) -> Result<()> {
    let client = ctx.client("operator")?;
    let mut rows = Vec::new();
    let several = client.coordinators.len() > 1;
    for addr in &client.coordinators {
        let name = if several {
            format!("coordinator@{addr}")
        } else {
            "coordinator".to_owned()
        };
        rows.push((name, check(client.coordinator_at(addr)?).await));
    }
    let mut note = None;
    if client.info.nodes.is_empty() {
        // The coordinator's view of its nodes, from the first that answers.
        let listed = match client.connect().await {
            Ok(channel) => KeyAdminClient::new(channel)
                .list_nodes(pb::ListNodesRequest {})
                .await
                .map_err(|s| sigil_cli::status::describe(&s)),
            Err(e) => Err(e.to_string()),
        };
        match listed {
            Ok(resp) => {
                for n in resp.into_inner().nodes {
                    let status = if n.healthy {
                        "SERVING".to_owned()
                    } else {
                        format!("NOT_SERVING ({})", n.detail)
                    };
                    rows.push((format!("node-{}", n.node_id), status));
                }
                note =
                    Some("node health as the coordinator sees it (node endpoints not known here)");
            }
            Err(e) => {
                tracing::warn!("node health unknown: the coordinator's node list failed: {e}");
                note = Some(
                    "node health unknown (the coordinator's node list needs the operator role)",
                );
            }
        }
    } else {
        for n in &client.info.nodes {
            rows.push((format!("node-{}", n.id), check(client.node(n.id)?).await));
        }
    }
    let all_ok = rows.iter().all(|(_, s)| s == "SERVING");
    let map: serde_json::Map<_, _> = rows.iter().map(|(n, s)| (n.clone(), json!(s))).collect();
    ctx.out.print(&serde_json::Value::Object(map), || {
        let mut t = Text::new();
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(12);
        for (n, s) in &rows {
            t.line(format_args!("{n:<width$} {s}"));
        }
        if let Some(note) = note {
            t.line(format_args!("({note})"));
        }
        t.into()
    });
    if !all_ok {
        bail!("not every process is serving");
    }
    Ok(())
}

/// One process's gRPC health: `SERVING`, another status, or the error.
async fn check(channel: Channel) -> String {
    match HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
    {
        Ok(r) => {
            tonic_health::pb::health_check_response::ServingStatus::try_from(r.into_inner().status)
                .map(|s| s.as_str_name().to_owned())
                .unwrap_or_else(|_| "UNKNOWN".into())
        }
        Err(s) => format!("ERROR {:?}: {}", s.code(), s.message()),
    }
}
