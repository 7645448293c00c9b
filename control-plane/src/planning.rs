//! `PlanDeployment`: what a deploy would do — release, policy, batches and
//! what each host lacks — asked of the agents without changing anything:
//! no release is cut, no deployment recorded.

use std::{collections::HashSet, time::Duration};

use slipway_proto::{
    agent::v1::{AppTarget, GetStatusRequest, MissingObjectsRequest},
    control::v1::{DeployRequest, Host, PlanDeploymentResponse, PlannedBatch, PlannedHost},
};

use crate::{
    Context,
    deployment::{self, Start},
    domain::manifest::Manifest,
    error::Error,
    locks, releases,
    rollout::Delta,
};

/// How long the plan waits for one agent.
const ASK_DEADLINE: Duration = Duration::from_secs(10);

/// Plans `request` as `Deploy` would run it.
pub async fn plan(
    ctx: &Context,
    request: DeployRequest,
    release_only: bool,
) -> Result<PlanDeploymentResponse, Error> {
    let start = Start::try_from(request)?;
    let resolved = deployment::resolve_preview(ctx, &start, !release_only).await?;
    let target = AppTarget {
        name: resolved.app.name.clone(),
        deploy_root: resolved.app.deploy_root.clone(),
    };
    let canary = resolved.policy.spec.canary;
    let mut batches = Vec::new();
    for (index, hosts) in resolved
        .policy
        .batches(resolved.hosts.clone())
        .into_iter()
        .enumerate()
    {
        let mut tasks = tokio::task::JoinSet::new();
        for host in hosts {
            if release_only {
                tasks.spawn(std::future::ready(PlannedHost {
                    host: host.name,
                    ..Default::default()
                }));
                continue;
            }
            let (ctx, target, manifest) = (ctx.clone(), target.clone(), resolved.manifest.clone());
            tasks.spawn(async move { ask(&ctx, &host, target, &manifest).await });
        }
        let mut planned: Vec<PlannedHost> = tasks.join_all().await;
        planned.sort_by(|a, b| a.host.cmp(&b.host));
        batches.push(PlannedBatch {
            number: index as u32 + 1,
            canary: canary && index == 0,
            hosts: planned,
        });
    }
    let lock = locks::get(&ctx.store, &resolved.app.name, &resolved.environment)?;
    Ok(PlanDeploymentResponse {
        release: Some(resolved.release),
        policy: Some(resolved.policy.spec),
        batches,
        lock,
    })
}

/// One host's current release and what it lacks of `manifest`.
async fn ask(ctx: &Context, host: &Host, target: AppTarget, manifest: &Manifest) -> PlannedHost {
    let mut planned = PlannedHost {
        host: host.name.clone(),
        ..Default::default()
    };
    let answer = tokio::time::timeout(ASK_DEADLINE, async {
        let client = ctx
            .agents
            .connect_once(host)
            .await
            .map_err(|e| e.to_string())?;
        let status = client
            .get_status(GetStatusRequest {
                apps: vec![target.clone()],
                omit_sizes: true,
            })
            .await
            .map_err(|s| s.message().to_owned())?;
        let current = status
            .apps
            .into_iter()
            .next()
            .map(|a| a.current_release)
            .unwrap_or_default();
        // Against the release the host runs, when the control plane knows
        // it; otherwise every file.
        let base = if current.is_empty() {
            None
        } else {
            releases::manifest(&ctx.store, &target.name, &current).ok()
        };
        let changed: Vec<_> = match &base {
            Some(base) => Delta::between(base, manifest).changed,
            None => manifest.files.iter().collect(),
        };
        let mut seen = HashSet::new();
        let hashes: Vec<String> = changed
            .iter()
            .filter(|f| seen.insert(f.sha256.clone()))
            .map(|f| f.sha256.clone())
            .collect();
        let missing: HashSet<String> = client
            .missing_objects(MissingObjectsRequest {
                app: Some(target),
                sha256: hashes,
            })
            .await
            .map_err(|s| s.message().to_owned())?
            .sha256
            .into_iter()
            .collect();
        let mut counted = HashSet::new();
        let bytes = changed
            .iter()
            .filter(|f| missing.contains(&f.sha256) && counted.insert(f.sha256.clone()))
            .map(|f| f.size)
            .sum();
        Ok::<_, String>((current, changed.len() as u64, missing.len() as u64, bytes))
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} s", ASK_DEADLINE.as_secs())));
    match answer {
        Ok((current, files, objects, bytes)) => {
            planned.reachable = true;
            planned.current_release = current;
            planned.files_changed = files;
            planned.objects_missing = objects;
            planned.bytes_missing = bytes;
        }
        Err(error) => planned.error = error,
    }
    planned
}
