//! Following a deployment's event stream, shared by `deploy`, `rollback` and
//! `watch`: print each event as it arrives, then the deployment's summary.

use std::fmt;

use crate::exit::Exit;

use futures_util::{Stream, StreamExt};
use slipway_proto::control::v1::{
    DeploymentEvent, DeploymentStatus, EventKind, GetDeploymentRequest,
};
use tonic::Status;

use super::live::Live;
use crate::{
    connection::{Api, RpcError},
    output,
    output::Output,
};

/// The event stream ended before the deployment did; the deployment goes
/// on in the control plane.
#[derive(Debug)]
pub struct StreamLost {
    /// The deployment.
    pub deployment_id: String,
    /// Sequence number of the last event printed.
    pub last_event: u64,
    /// Why the stream ended, when it broke.
    pub status: Option<Status>,
}

impl StreamLost {
    /// The command that picks the deployment up where the stream ended.
    pub fn resume_command(&self) -> String {
        format!(
            "slipctl watch {} --after {}",
            self.deployment_id, self.last_event
        )
    }
}

impl fmt::Display for StreamLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            Some(status) => write!(
                f,
                "lost the event stream of deployment {}: {}",
                self.deployment_id,
                RpcError(status.clone())
            ),
            None => write!(
                f,
                "the event stream of deployment {} ended before the deployment finished",
                self.deployment_id
            ),
        }
    }
}

impl std::error::Error for StreamLost {}

/// A deployment that finished without succeeding.
#[derive(Debug)]
pub struct Unsuccessful {
    /// The deployment.
    pub deployment_id: String,
    /// Its final status.
    pub status: DeploymentStatus,
    /// Why, as the control plane recorded it.
    pub error: String,
}

impl fmt::Display for Unsuccessful {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deployment {} {}",
            self.deployment_id,
            output::status_name(self.status)
        )?;
        if !self.error.is_empty() {
            write!(f, ": {}", self.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for Unsuccessful {}

/// Prints every event of `events` live (a text line or one JSON object per
/// line), then fetches the deployment and prints its summary. Exits 0 only
/// when it succeeded. `known_id` and `after` are set when watching a known
/// deployment.
pub(crate) async fn follow<S>(
    api: &Api,
    output: Output,
    events: S,
    known_id: Option<String>,
    after: u64,
) -> anyhow::Result<Exit>
where
    S: Stream<Item = Result<Option<DeploymentEvent>, Status>>,
{
    let mut events = std::pin::pin!(events);
    let mut live = Live::new(output);
    let outcome = follow_events(&mut live, events.as_mut(), known_id, after).await;
    // Bars give way to their summary whatever happened.
    live.finish()?;
    let (deployment_id, last_event, final_status) = match outcome? {
        Followed::Ended(ended) => ended,
        Followed::Interrupted(exit) => return Ok(exit),
    };
    summary(api, output, deployment_id, last_event, final_status).await
}

/// How the event stream ended.
enum Followed {
    /// The stream ended: the deployment, the last event, its final status if seen.
    Ended((Option<String>, u64, Option<DeploymentStatus>)),
    /// Ctrl-C.
    Interrupted(Exit),
}

/// Shows every event of `events` until the stream ends or Ctrl-C.
async fn follow_events<S>(
    live: &mut Live,
    mut events: std::pin::Pin<&mut S>,
    known_id: Option<String>,
    after: u64,
) -> anyhow::Result<Followed>
where
    S: Stream<Item = Result<Option<DeploymentEvent>, Status>>,
{
    let mut deployment_id = known_id;
    let mut last_event = after;
    let mut final_status = None;
    let interrupted = async {
        // Without a SIGINT handler the default applies (the process ends),
        // which is still fine: the deployment goes on either way.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let mut interrupted = std::pin::pin!(interrupted);
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = &mut interrupted => {
                // Leaving the stream does not stop the deployment: say how to come back.
                if let Some(deployment_id) = deployment_id {
                    let lost = StreamLost { deployment_id, last_event, status: None };
                    eprintln!(
                        "interrupted; the deployment goes on; follow it with: {}",
                        lost.resume_command()
                    );
                }
                return Ok(Followed::Interrupted(Exit::Interrupted));
            }
        };
        match next {
            Some(Ok(Some(event))) => {
                if deployment_id.is_none() {
                    deployment_id = Some(event.deployment_id.clone());
                }
                last_event = last_event.max(event.sequence);
                if event.host.is_empty()
                    && event.kind() == EventKind::Status
                    && output::is_final(event.status())
                {
                    final_status = Some(event.status());
                }
                live.event(&event)?;
            }
            Some(Ok(None)) => {}
            Some(Err(status)) => {
                return Err(match deployment_id {
                    Some(deployment_id) => StreamLost {
                        deployment_id,
                        last_event,
                        status: Some(status),
                    }
                    .into(),
                    // Nothing started that we know of: an ordinary failed call.
                    None => RpcError(status).into(),
                });
            }
            None => break,
        }
    }
    Ok(Followed::Ended((deployment_id, last_event, final_status)))
}

/// Fetches the deployment and prints its summary; exits 0 only when it
/// succeeded.
async fn summary(
    api: &Api,
    output: Output,
    deployment_id: Option<String>,
    last_event: u64,
    final_status: Option<DeploymentStatus>,
) -> anyhow::Result<Exit> {
    let Some(deployment_id) = deployment_id else {
        anyhow::bail!("the control plane ended the stream without sending any event");
    };
    let request = GetDeploymentRequest {
        deployment_id: deployment_id.clone(),
    };
    let response = match (
        api.deployments().get_deployment(request).await,
        final_status,
    ) {
        (Ok(response), _) => response.into_inner(),
        // The stream's last event already told the outcome (the control
        // plane may have drained and stopped right after it): go by that.
        (Err(status), Some(final_status)) => {
            eprintln!(
                "warning: cannot fetch the summary of deployment {deployment_id}: {}",
                RpcError(status)
            );
            return finish(deployment_id, final_status, String::new());
        }
        (Err(status), None) => {
            return Err(StreamLost {
                deployment_id,
                last_event,
                status: Some(status),
            }
            .into());
        }
    };
    let deployment = response.deployment.clone().unwrap_or_default();
    match output {
        Output::Json => output::json_line(&response)?,
        Output::Text => output::emit(&format!("\n{}", output::deployment(&deployment)))?,
    }
    if !output::is_final(deployment.status()) {
        return Err(StreamLost {
            deployment_id,
            last_event,
            status: None,
        }
        .into());
    }
    // The summary just printed holds the error: the last line need not
    // repeat it.
    let status = deployment.status();
    let error = match output {
        Output::Text => String::new(),
        Output::Json => deployment.error,
    };
    finish(deployment_id, status, error)
}

/// Exit 0 for a deployment that succeeded, an [`Unsuccessful`] error otherwise.
fn finish(deployment_id: String, status: DeploymentStatus, error: String) -> anyhow::Result<Exit> {
    if status == DeploymentStatus::Succeeded {
        Ok(Exit::Success)
    } else {
        Err(Unsuccessful {
            deployment_id,
            status,
            error,
        }
        .into())
    }
}

/// Reads the first event of `events` (the control plane sends it once the
/// deployment is recorded), prints the deployment's id (or, with `-o json`,
/// its record) and returns at once: the deployment goes on in the control
/// plane.
pub(crate) async fn detach<S>(api: &Api, output: Output, events: S) -> anyhow::Result<Exit>
where
    S: Stream<Item = Result<Option<DeploymentEvent>, Status>>,
{
    let mut events = std::pin::pin!(events);
    let first = loop {
        match events.next().await {
            Some(Ok(Some(event))) => break event,
            Some(Ok(None)) => {}
            Some(Err(status)) => return Err(RpcError(status).into()),
            None => anyhow::bail!("the control plane ended the stream without sending any event"),
        }
    };
    let deployment_id = first.deployment_id;
    match output {
        Output::Text => output::emit(&deployment_id)?,
        Output::Json => {
            let request = GetDeploymentRequest { deployment_id };
            let response = api
                .deployments()
                .get_deployment(request)
                .await
                .map_err(RpcError)?;
            output::json(&response.into_inner())?;
        }
    }
    Ok(Exit::Success)
}
