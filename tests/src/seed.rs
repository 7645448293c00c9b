//! A store filled with a large deployment history, for the benchmarks:
//! apps, environments, releases and finished deployments with their index
//! entries and the text index, as the control plane records them.

use slipway_control_plane::store::{Store, catalog, deployments, releases};
use slipway_proto::control::v1::{App, Deployment, DeploymentStatus, Environment, Release};

/// Apps the deployments spread over.
pub const APPS: [&str; 4] = ["web", "api", "worker", "admin"];
/// Environments the deployments spread over.
pub const ENVIRONMENTS: [&str; 3] = ["prod", "staging", "test"];
/// Distinct releases per app.
pub const RELEASES: u64 = 20;

/// `size` finished deployments, a third of them succeeded, recorded with
/// their index entries in batches of up to 4,000 operations (fewer when the
/// backend takes fewer in one transaction).
pub async fn deployments(store: &Store, size: u64) -> anyhow::Result<()> {
    // The index trees are written below with each record: marked built
    // while the store is empty, so no full rebuild in one batch follows.
    deployments::ensure_indexes(store).await?;
    // Room for one more deployment's ops past the threshold.
    let batch = 4_000.min(store.max_batch_ops().saturating_sub(16));
    let mut ops = Vec::new();
    for env in ENVIRONMENTS {
        ops.push(catalog::put(&Environment {
            name: env.into(),
            ..Default::default()
        }));
    }
    for app in APPS {
        let record = App {
            name: app.into(),
            ..Default::default()
        };
        ops.push(catalog::put(&record));
        for r in 0..RELEASES {
            let release = Release {
                id: format!("r{r:02}"),
                app: app.into(),
                ..Default::default()
            };
            ops.push(releases::put(&release));
        }
    }
    for n in 1..=size {
        let status = if n % 3 == 0 {
            DeploymentStatus::Succeeded
        } else {
            DeploymentStatus::Failed
        };
        let d = Deployment {
            id: deployments::id(n),
            app: APPS[n as usize % APPS.len()].into(),
            environment: ENVIRONMENTS[n as usize % ENVIRONMENTS.len()].into(),
            release: format!("r{:02}", n % RELEASES),
            author: "deployer/alice".into(),
            message: format!("deploy number {n}"),
            status: status as i32,
            ..Default::default()
        };
        ops.extend(deployments::created(&d));
        ops.extend(deployments::finished(&d));
        ops.push(deployments::put(&d));
        if ops.len() >= batch {
            store.commit(std::mem::take(&mut ops)).await?;
        }
    }
    store.commit(ops).await?;
    deployments::ensure_indexes(store).await?;
    slipway_control_plane::history::ensure_text_index(store).await?;
    Ok(())
}
