//! `sigil health`: gRPC health checking of the coordinator and of every
//! node of the local cluster; non-zero unless every process is serving.

use anyhow::{Result, bail};
use serde_json::json;
use sigil_cli::output::Text;
use tonic_health::pb::health_client::HealthClient;

use super::Context;

pub async fn run(ctx: &Context) -> Result<()> {
    let client = ctx.client("operator")?;
    let mut targets = vec![("coordinator".to_owned(), client.coordinator()?)];
    for n in &client.info.nodes {
        targets.push((format!("node-{}", n.id), client.node(n.id)?));
    }
    let mut rows = Vec::new();
    let mut all_ok = true;
    for (name, ch) in targets {
        let status = match HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(r) => tonic_health::pb::health_check_response::ServingStatus::try_from(
                r.into_inner().status,
            )
            .map(|s| s.as_str_name().to_owned())
            .unwrap_or_else(|_| "UNKNOWN".into()),
            Err(s) => format!("ERROR {:?}: {}", s.code(), s.message()),
        };
        all_ok &= status == "SERVING";
        rows.push((name, status));
    }
    let map: serde_json::Map<_, _> = rows.iter().map(|(n, s)| (n.clone(), json!(s))).collect();
    ctx.out.print(&serde_json::Value::Object(map), || {
        let mut t = Text::new();
        for (n, s) in &rows {
            t.line(format_args!("{n:<12} {s}"));
        }
        t.into()
    });
    if !all_ok {
        bail!("not every process is serving");
    }
    Ok(())
}
