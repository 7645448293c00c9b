//! `slipctl cluster status`: the control plane's replicas, which one leads,
//! and the health of the store's members.

use clap::Subcommand;
use slipway_proto::control::v1::{GetClusterStatusRequest, GetClusterStatusResponse};

use crate::{
    connection::{Connection, rpc},
    output::{self, Output, Table},
};

/// `slipctl cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The replicas (the leader marked), the store, and each etcd member's
    /// health, as the replica asked sees them.
    Status,
}

/// Runs a `cluster` command.
pub async fn run(
    command: &ClusterCommand,
    conn: &Connection,
    output: Output,
) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status => {
            let api = conn.api().await?;
            let status = rpc(api
                .cluster()
                .get_cluster_status(GetClusterStatusRequest {})
                .await)?;
            match output {
                Output::Json => output::json(&status),
                Output::Text => Ok(output::emit(&render(&status))?),
            }
        }
    }
}

fn render(status: &GetClusterStatusResponse) -> String {
    let leader = status.leader.as_ref();
    let mut out = output::fields(&[
        ("store", status.store.clone()),
        (
            "leader",
            leader.map_or("none (an election is in progress)".to_owned(), |l| {
                format!("{} at {} (term {})", l.id, l.address, l.term)
            }),
        ),
        (
            "answered by",
            status
                .answered_by
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_default(),
        ),
    ]);
    let mut replicas = Table::new(&["REPLICA", "ADDRESS", "ROLE", "VERSION", "STARTED"]);
    for r in &status.replicas {
        let role = if r.leader { "leader" } else { "follower" };
        replicas.row(vec![
            r.id.clone(),
            r.address.clone(),
            role.to_owned(),
            r.version.clone(),
            output::time(r.started_at.as_ref()),
        ]);
    }
    out.push('\n');
    out.push_str(&replicas.render());
    if !status.store_members.is_empty() {
        let mut members = Table::new(&[
            "ETCD MEMBER",
            "ENDPOINT",
            "HEALTH",
            "RAFT",
            "VERSION",
            "DB SIZE",
            "INDEX",
        ]);
        for m in &status.store_members {
            let health = if m.healthy {
                "healthy".to_owned()
            } else {
                format!("unhealthy: {}", m.error)
            };
            let raft = if m.leader { "leader" } else { "member" };
            members.row(vec![
                output::or_dash(&m.name),
                output::or_dash(&m.endpoint),
                health,
                raft.to_owned(),
                output::or_dash(&m.version),
                output::bytes(m.db_size_bytes),
                m.raft_index.to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&members.render());
    }
    out
}
