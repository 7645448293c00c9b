//! `slipway.control.v1.DeploymentService`: deploys, rollbacks, plans,
//! cancels, live event streams and the history.

use slipway_proto::{
    control::v1::{self as pb, *},
    identity::Role,
};
use tonic::{Request, Response};

use super::{Checked, EventStream, Reply, audited, missing};
use crate::{
    Context,
    auth::require,
    deployment::{self, Start},
    history, planning,
};

/// `slipway.control.v1.DeploymentService`.
pub struct Deployments(pub Context);

/// Starts a deployment and streams its events from the first; the audit
/// entry records its id.
async fn start<T: Send + 'static>(
    ctx: Context,
    caller: crate::auth::Caller,
    start: Start,
    wrap: fn(DeploymentEvent) -> T,
) -> Result<(EventStream<T>, String), tonic::Status> {
    let id = deployment::start(&ctx, &caller, start).await?;
    let message = format!("started deployment {id}");
    let stream = ctx.events.stream(ctx.store.clone(), id, 0, wrap);
    Ok((Box::pin(stream), message))
}

#[tonic::async_trait]
impl deployment_service_server::DeploymentService for Deployments {
    type DeployStream = EventStream<DeployResponse>;
    type RollbackStream = EventStream<RollbackResponse>;
    type WatchDeploymentStream = EventStream<WatchDeploymentResponse>;

    async fn deploy(&self, request: Request<pb::DeployRequest>) -> Reply<Self::DeployStream> {
        audited(&self.0, request, |ctx, caller, request| async move {
            start(ctx, caller, request, |e| DeployResponse { event: Some(e) }).await
        })
        .await
    }

    async fn rollback(&self, request: Request<pb::RollbackRequest>) -> Reply<Self::RollbackStream> {
        audited(&self.0, request, |ctx, caller, request| async move {
            start(ctx, caller, request, |e| RollbackResponse {
                event: Some(e),
            })
            .await
        })
        .await
    }

    async fn plan_deployment(
        &self,
        request: Request<PlanDeploymentRequest>,
    ) -> Reply<PlanDeploymentResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let deploy = req.deploy.ok_or_else(|| missing("deploy"))?;
            let plan = planning::plan(&ctx, deploy, req.release_only).await?;
            let release = plan.release.as_ref().map_or("", |r| &r.id);
            let message = format!("planned {release} in {} batches", plan.batches.len());
            Ok((plan, message))
        })
        .await
    }

    async fn cancel_deployment(
        &self,
        request: Request<CancelDeploymentRequest>,
    ) -> Reply<CancelDeploymentResponse> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            let (id, reason, grace) = (&req.deployment_id, &req.reason, req.grace_seconds);
            let deployment = deployment::cancel(&ctx, &caller, id, reason, grace).await?;
            let message = deployment.status().as_str_name().to_owned();
            let deployment = Some(deployment);
            Ok((CancelDeploymentResponse { deployment }, message))
        })
        .await
    }

    async fn watch_deployment(
        &self,
        request: Request<WatchDeploymentRequest>,
    ) -> Reply<Self::WatchDeploymentStream> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        let deployment = deployment::get(&self.0.store, &req.deployment_id)?;
        let store = self.0.store.clone();
        let stream = self
            .0
            .events
            .stream(store, deployment.id, req.after_event, |e| {
                WatchDeploymentResponse { event: Some(e) }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_deployment(
        &self,
        request: Request<GetDeploymentRequest>,
    ) -> Reply<GetDeploymentResponse> {
        require(&request, Role::Viewer)?;
        let mut deployment = deployment::get(&self.0.store, &request.get_ref().deployment_id)?;
        history::fill_release(&self.0.store, &mut deployment)?;
        let deployment = Some(deployment);
        Ok(Response::new(GetDeploymentResponse { deployment }))
    }

    async fn list_deployments(
        &self,
        request: Request<ListDeploymentsRequest>,
    ) -> Reply<ListDeploymentsResponse> {
        require(&request, Role::Viewer)?;
        let (deployments, next_page_token) = history::list(&self.0.store, request.get_ref())?;
        Ok(Response::new(ListDeploymentsResponse {
            deployments,
            next_page_token,
        }))
    }

    async fn list_deployment_events(
        &self,
        request: Request<ListDeploymentEventsRequest>,
    ) -> Reply<ListDeploymentEventsResponse> {
        require(&request, Role::Viewer)?;
        let (events, next_page_token) = history::events(&self.0.store, request.get_ref())?;
        Ok(Response::new(ListDeploymentEventsResponse {
            events,
            next_page_token,
        }))
    }

    async fn get_rollback_timeline(
        &self,
        request: Request<GetRollbackTimelineRequest>,
    ) -> Reply<GetRollbackTimelineResponse> {
        require(&request, Role::Viewer)?;
        let req = request.get_ref();
        let rollbacks = history::rollback_timeline(&self.0.store, &req.app, &req.environment)?;
        Ok(Response::new(GetRollbackTimelineResponse { rollbacks }))
    }

    async fn get_deployment_stats(
        &self,
        request: Request<GetDeploymentStatsRequest>,
    ) -> Reply<GetDeploymentStatsResponse> {
        require(&request, Role::Viewer)?;
        let stats = history::stats(&self.0.store, request.get_ref())?;
        Ok(Response::new(GetDeploymentStatsResponse { stats }))
    }
}
