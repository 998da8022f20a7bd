//! `sigil nodes`: the signer nodes as the coordinator sees them (endpoint,
//! zone, health).

use anyhow::Result;
use serde_json::json;
use sigil_cli::output::Text;
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;

use super::Context;

pub async fn run(ctx: &Context) -> Result<()> {
    let client = ctx.client("operator")?;
    let resp = KeyAdminClient::new(client.connect().await?)
        .list_nodes(pb::ListNodesRequest {})
        .await?
        .into_inner();
    let nodes: Vec<_> = resp
        .nodes
        .iter()
        .map(|n| json!({"node_id": n.node_id, "endpoint": n.endpoint, "zone": n.zone, "healthy": n.healthy, "version": n.version, "detail": n.detail}))
        .collect();
    ctx.out.print(&json!({ "nodes": nodes }), || {
        let mut t = Text::new();
        for n in &resp.nodes {
            let state = if n.healthy {
                "healthy".to_owned()
            } else {
                format!("UNHEALTHY ({})", n.detail)
            };
            t.line(format_args!(
                "node {:>3}  {:<8} {:<22} {}",
                n.node_id, n.zone, n.endpoint, state
            ));
        }
        t.into()
    });
    Ok(())
}
