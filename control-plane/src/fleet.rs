//! Live fleet state: every selected host's agent asked in parallel, an
//! unreachable one reported rather than fatal.

use std::time::Duration;

use slipway_proto::{
    agent::v1::{self as agent, AppTarget, GetStatusRequest},
    control::v1::{Host, HostAppState, HostPinResult, HostState},
    validate,
};
use tokio::task::JoinSet;

use crate::{Context, catalog, error::Error};

/// How long one agent may take to answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks each host of `environment` (all when empty) for its state, reporting
/// only `app` when it is not empty.
pub async fn status(ctx: &Context, environment: &str, app: &str) -> Result<Vec<HostState>, Error> {
    let hosts = catalog::hosts(&ctx.store, environment)?;
    let apps = if app.is_empty() {
        Vec::new()
    } else {
        let app = catalog::app(&ctx.store, app)?;
        vec![AppTarget {
            name: app.name,
            deploy_root: app.deploy_root,
        }]
    };
    let mut tasks = JoinSet::new();
    for host in hosts {
        let (ctx, apps) = (ctx.clone(), apps.clone());
        tasks.spawn(async move {
            let name = host.name.clone();
            let state = match tokio::time::timeout(STATUS_TIMEOUT, ask(&ctx, &host, apps)).await {
                Ok(Ok(state)) => state,
                Ok(Err(error)) => unreachable(host, error),
                Err(_) => unreachable(host, format!("no answer within {STATUS_TIMEOUT:?}")),
            };
            ctx.agents.contacts().set(&name, state.reachable);
            state
        });
    }
    let mut states = tasks.join_all().await;
    states.sort_by(|a, b| {
        a.host
            .as_ref()
            .map(|h| &h.name)
            .cmp(&b.host.as_ref().map(|h| &h.name))
    });
    Ok(states)
}

/// Pins (or unpins) a release on every host of an environment, in parallel.
pub async fn pin(
    ctx: &Context,
    app: &str,
    environment: &str,
    release: &str,
    pinned: bool,
) -> Result<Vec<HostPinResult>, Error> {
    let app = catalog::app(&ctx.store, app)?;
    validate::name("environment", environment)?;
    crate::releases::get(&ctx.store, &app.name, release)?;
    let hosts = catalog::hosts(&ctx.store, environment)?;
    let target = AppTarget {
        name: app.name,
        deploy_root: app.deploy_root,
    };
    let mut tasks = JoinSet::new();
    for host in hosts {
        let (ctx, target, release) = (ctx.clone(), target.clone(), release.to_owned());
        tasks.spawn(async move {
            let request = agent::PinReleaseRequest {
                app: Some(target),
                release_id: release,
                pinned,
                ..Default::default()
            };
            let answer = async {
                let client = ctx.agents.connect(&host).await.map_err(|e| e.to_string())?;
                client
                    .pin_release(request)
                    .await
                    .map_err(|s| format!("agent: {}", s.message()))
            };
            let error = match tokio::time::timeout(STATUS_TIMEOUT, answer).await {
                Ok(Ok(_)) => String::new(),
                Ok(Err(error)) => error,
                Err(_) => format!("no answer within {STATUS_TIMEOUT:?}"),
            };
            HostPinResult {
                host: host.name,
                ok: error.is_empty(),
                error,
            }
        });
    }
    let mut results = tasks.join_all().await;
    results.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(results)
}

/// Clears `app`'s fencing token and epoch on `host` (see the agent's
/// ResetFencing); returns what the host had recorded. An agent that cannot
/// be reached, or that refuses, is an error.
pub async fn reset_fencing(ctx: &Context, host: &str, app: &str) -> Result<(u64, String), Error> {
    let host = catalog::host(&ctx.store, host)?;
    let app = catalog::app(&ctx.store, app)?;
    let request = agent::ResetFencingRequest {
        app: Some(AppTarget {
            name: app.name,
            deploy_root: app.deploy_root,
        }),
    };
    let failed = |code, message: String| Error::Agent {
        host: host.name.clone(),
        code,
        message,
    };
    let client = ctx
        .agents
        .connect(&host)
        .await
        .map_err(|err| failed(tonic::Code::Unavailable, err.to_string()))?;
    let answer = tokio::time::timeout(STATUS_TIMEOUT, client.reset_fencing(request))
        .await
        .map_err(|_| {
            let message = format!("no answer within {STATUS_TIMEOUT:?}");
            failed(tonic::Code::Unavailable, message)
        })?
        .map_err(|status| failed(status.code(), format!("agent: {}", status.message())))?;
    Ok((answer.previous_token, answer.previous_epoch))
}

fn unreachable(host: Host, error: String) -> HostState {
    HostState {
        host: Some(host),
        reachable: false,
        error,
        ..Default::default()
    }
}

async fn ask(ctx: &Context, host: &Host, apps: Vec<AppTarget>) -> Result<HostState, String> {
    let client = ctx.agents.connect(host).await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    })?;
    let status = client
        .get_status(GetStatusRequest {
            apps,
            omit_sizes: false,
        })
        .await
        .map_err(|s| format!("agent: {}", s.message()))?;
    let info = status.host.unwrap_or_default();
    let certificate = ctx.agents.certificate(&host.name);
    Ok(HostState {
        host: Some(host.clone()),
        reachable: true,
        error: String::new(),
        agent_version: info.agent_version,
        uptime_seconds: info.uptime_seconds,
        load_average: info.load_average,
        memory_available_bytes: info.memory_available_bytes,
        disk_free_bytes: info.disk_free_bytes,
        apps: status
            .apps
            .into_iter()
            .map(|a| HostAppState {
                app: a.name,
                current_release: a.current_release,
                releases: a.releases.iter().map(|r| r.id.clone()).collect(),
                previous_release: a.previous_release,
                release_details: a.releases,
                prestaged_release: a.prestaged_release,
            })
            .collect(),
        certificate_expires_at: certificate.as_ref().map(|c| pbjson_types::Timestamp {
            seconds: c.not_after,
            nanos: 0,
        }),
        certificate_serial: certificate.map(|c| c.serial).unwrap_or_default(),
    })
}
