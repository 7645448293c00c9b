//! The operator gRPC services: each handler checks the caller's role, converts
//! the request, calls the domain and maps its error.

use std::pin::Pin;

use slipway_proto::{
    control::v1::{self as pb, *},
    identity::Role,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::{
    Context,
    auth::{Caller, require},
    catalog,
    deployments::{self, Start, Target},
    fleet, releases,
};

type Reply<T> = Result<Response<T>, Status>;

/// A server stream of a deployment's events.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("missing {field}"))
}

/// `slipway.control.v1.AppService`.
pub struct Apps(pub Context);
/// `slipway.control.v1.EnvironmentService`.
pub struct Environments(pub Context);
/// `slipway.control.v1.HostService`.
pub struct Hosts(pub Context);
/// `slipway.control.v1.ReleaseService`.
pub struct Releases(pub Context);
/// `slipway.control.v1.DeploymentService`.
pub struct Deployments(pub Context);

#[tonic::async_trait]
impl app_service_server::AppService for Apps {
    async fn create_app(&self, request: Request<CreateAppRequest>) -> Reply<CreateAppResponse> {
        require(&request, Role::Admin)?;
        let app = request.into_inner().app.ok_or_else(|| missing("app"))?;
        let app = catalog::create_app(&self.0.store, app).await?;
        Ok(Response::new(CreateAppResponse { app: Some(app) }))
    }

    async fn update_app(&self, request: Request<UpdateAppRequest>) -> Reply<UpdateAppResponse> {
        require(&request, Role::Admin)?;
        let app = request.into_inner().app.ok_or_else(|| missing("app"))?;
        let app = catalog::update_app(&self.0.store, app).await?;
        Ok(Response::new(UpdateAppResponse { app: Some(app) }))
    }

    async fn get_app(&self, request: Request<GetAppRequest>) -> Reply<GetAppResponse> {
        require(&request, Role::Viewer)?;
        let app = catalog::app(&self.0.store, &request.get_ref().name)?;
        Ok(Response::new(GetAppResponse { app: Some(app) }))
    }

    async fn list_apps(&self, request: Request<ListAppsRequest>) -> Reply<ListAppsResponse> {
        require(&request, Role::Viewer)?;
        Ok(Response::new(ListAppsResponse {
            apps: catalog::apps(&self.0.store)?,
        }))
    }
}

#[tonic::async_trait]
impl environment_service_server::EnvironmentService for Environments {
    async fn update_environment(&self, _request: Request<pb::UpdateEnvironmentRequest>) -> Reply<pb::UpdateEnvironmentResponse> {
        Err(Status::unimplemented("UpdateEnvironment: in progress")) // PLACEHOLDER(issue-4)
    }
    async fn create_environment(
        &self,
        request: Request<CreateEnvironmentRequest>,
    ) -> Reply<CreateEnvironmentResponse> {
        require(&request, Role::Admin)?;
        let env = request
            .into_inner()
            .environment
            .ok_or_else(|| missing("environment"))?;
        let env = catalog::create_environment(&self.0.store, env).await?;
        Ok(Response::new(CreateEnvironmentResponse {
            environment: Some(env),
        }))
    }

    async fn get_environment(
        &self,
        request: Request<GetEnvironmentRequest>,
    ) -> Reply<GetEnvironmentResponse> {
        require(&request, Role::Viewer)?;
        let name = &request.get_ref().name;
        let env = catalog::environment(&self.0.store, name)?;
        let hosts = catalog::hosts(&self.0.store, name)?;
        Ok(Response::new(GetEnvironmentResponse {
            environment: Some(env),
            hosts,
        }))
    }

    async fn list_environments(
        &self,
        request: Request<ListEnvironmentsRequest>,
    ) -> Reply<ListEnvironmentsResponse> {
        require(&request, Role::Viewer)?;
        Ok(Response::new(ListEnvironmentsResponse {
            environments: catalog::environments(&self.0.store)?,
        }))
    }
}

#[tonic::async_trait]
impl host_service_server::HostService for Hosts {
    async fn add_host(&self, request: Request<AddHostRequest>) -> Reply<AddHostResponse> {
        require(&request, Role::Admin)?;
        let host = request.into_inner().host.ok_or_else(|| missing("host"))?;
        let host = catalog::add_host(&self.0.store, host).await?;
        Ok(Response::new(AddHostResponse { host: Some(host) }))
    }

    async fn remove_host(&self, request: Request<RemoveHostRequest>) -> Reply<RemoveHostResponse> {
        require(&request, Role::Admin)?;
        let host = catalog::remove_host(&self.0.store, &request.get_ref().name).await?;
        Ok(Response::new(RemoveHostResponse { host: Some(host) }))
    }

    async fn get_host(&self, request: Request<GetHostRequest>) -> Reply<GetHostResponse> {
        require(&request, Role::Viewer)?;
        let host = catalog::host(&self.0.store, &request.get_ref().name)?;
        Ok(Response::new(GetHostResponse { host: Some(host) }))
    }

    async fn list_hosts(&self, request: Request<ListHostsRequest>) -> Reply<ListHostsResponse> {
        require(&request, Role::Viewer)?;
        let hosts = catalog::hosts(&self.0.store, &request.get_ref().environment)?;
        Ok(Response::new(ListHostsResponse { hosts }))
    }

    async fn get_fleet_status(
        &self,
        request: Request<GetFleetStatusRequest>,
    ) -> Reply<GetFleetStatusResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        let hosts = fleet::status(&self.0, &req.environment, &req.app).await?;
        Ok(Response::new(GetFleetStatusResponse { hosts }))
    }
}

#[tonic::async_trait]
impl release_service_server::ReleaseService for Releases {
    async fn mark_release(&self, _request: Request<pb::MarkReleaseRequest>) -> Reply<pb::MarkReleaseResponse> {
        Err(Status::unimplemented("MarkRelease: in progress")) // PLACEHOLDER(issue-4)
    }
    async fn create_release(
        &self,
        request: Request<CreateReleaseRequest>,
    ) -> Reply<CreateReleaseResponse> {
        require(&request, Role::Deployer)?;
        let req = request.into_inner();
        let (release, created) = releases::create(&self.0.store, &req.app, &req.git_ref).await?;
        Ok(Response::new(CreateReleaseResponse {
            release: Some(release),
            created,
        }))
    }

    async fn get_release(&self, request: Request<GetReleaseRequest>) -> Reply<GetReleaseResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        let mut release = releases::get(&self.0.store, &req.app, &req.id)?;
        if req.include_manifest {
            let manifest = releases::manifest(&self.0.store, &req.app, &req.id)?;
            release.manifest = releases::manifest_entries(&manifest);
        }
        Ok(Response::new(GetReleaseResponse {
            release: Some(release),
        }))
    }

    async fn pin_release(
        &self,
        request: Request<pb::PinReleaseRequest>,
    ) -> Reply<pb::PinReleaseResponse> {
        require(&request, Role::Deployer)?;
        let req = request.into_inner();
        let hosts = fleet::pin(&self.0, &req.app, &req.environment, &req.id, req.pinned).await?;
        Ok(Response::new(pb::PinReleaseResponse { hosts }))
    }

    async fn list_releases(
        &self,
        request: Request<ListReleasesRequest>,
    ) -> Reply<ListReleasesResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        let mut releases = releases::list(&self.0.store, &req.app)?;
        if req.limit > 0 {
            releases.truncate(req.limit as usize);
        }
        for r in &mut releases {
            r.changes.clear();
        }
        Ok(Response::new(ListReleasesResponse { releases }))
    }
}

impl Deployments {
    /// Starts a deployment and streams its events from the first.
    async fn start<T: Send + 'static>(
        &self,
        caller: &Caller,
        start: Start,
        wrap: fn(DeploymentEvent) -> T,
    ) -> Reply<EventStream<T>> {
        let id = deployments::start(&self.0, caller, start).await?;
        let stream = self.0.events.stream(self.0.store.clone(), id, 0, wrap);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl deployment_service_server::DeploymentService for Deployments {
    type DeployStream = EventStream<DeployResponse>;
    type RollbackStream = EventStream<RollbackResponse>;
    type WatchDeploymentStream = EventStream<WatchDeploymentResponse>;

    async fn plan_deployment(&self, _request: Request<pb::PlanDeploymentRequest>) -> Reply<pb::PlanDeploymentResponse> {
        Err(Status::unimplemented("PlanDeployment: in progress")) // PLACEHOLDER(issue-4)
    }

    async fn cancel_deployment(&self, _request: Request<pb::CancelDeploymentRequest>) -> Reply<pb::CancelDeploymentResponse> {
        Err(Status::unimplemented("CancelDeployment: in progress")) // PLACEHOLDER(issue-4)
    }

    async fn list_deployment_events(&self, _request: Request<pb::ListDeploymentEventsRequest>) -> Reply<pb::ListDeploymentEventsResponse> {
        Err(Status::unimplemented("ListDeploymentEvents: in progress")) // PLACEHOLDER(issue-4)
    }

    async fn get_rollback_timeline(&self, _request: Request<pb::GetRollbackTimelineRequest>) -> Reply<pb::GetRollbackTimelineResponse> {
        Err(Status::unimplemented("GetRollbackTimeline: in progress")) // PLACEHOLDER(issue-4)
    }

    async fn get_deployment_stats(&self, _request: Request<pb::GetDeploymentStatsRequest>) -> Reply<pb::GetDeploymentStatsResponse> {
        Err(Status::unimplemented("GetDeploymentStats: in progress")) // PLACEHOLDER(issue-4)
    }

    async fn deploy(&self, request: Request<pb::DeployRequest>) -> Reply<Self::DeployStream> {
        let caller = require(&request, Role::Deployer)?;
        let req = request.into_inner();
        let target = if req.release_id.is_empty() {
            Target::Ref(req.git_ref)
        } else {
            Target::Release(req.release_id)
        };
        let start = Start {
            kind: DeploymentKind::Deploy,
            app: req.app,
            environment: req.environment,
            target,
            message: req.message,
        };
        self.start(&caller, start, |e| DeployResponse { event: Some(e) })
            .await
    }

    async fn rollback(&self, request: Request<pb::RollbackRequest>) -> Reply<Self::RollbackStream> {
        let caller = require(&request, Role::Deployer)?;
        let req = request.into_inner();
        let target = if req.release_id.is_empty() {
            Target::Previous
        } else {
            Target::Release(req.release_id)
        };
        let start = Start {
            kind: DeploymentKind::Rollback,
            app: req.app,
            environment: req.environment,
            target,
            message: req.message,
        };
        self.start(&caller, start, |e| RollbackResponse { event: Some(e) })
            .await
    }

    async fn watch_deployment(
        &self,
        request: Request<WatchDeploymentRequest>,
    ) -> Reply<Self::WatchDeploymentStream> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        let deployment = deployments::get(&self.0.store, &req.deployment_id)?;
        let stream =
            self.0
                .events
                .stream(self.0.store.clone(), deployment.id, req.after_event, |e| {
                    WatchDeploymentResponse { event: Some(e) }
                });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_deployment(
        &self,
        request: Request<GetDeploymentRequest>,
    ) -> Reply<GetDeploymentResponse> {
        require(&request, Role::Viewer)?;
        let deployment = deployments::get(&self.0.store, &request.get_ref().deployment_id)?;
        Ok(Response::new(GetDeploymentResponse {
            deployment: Some(deployment),
        }))
    }

    async fn list_deployments(
        &self,
        request: Request<ListDeploymentsRequest>,
    ) -> Reply<ListDeploymentsResponse> {
        require(&request, Role::Viewer)?;
        let (deployments, next_page_token) = deployments::list(&self.0.store, request.get_ref())?;
        Ok(Response::new(ListDeploymentsResponse {
            deployments,
            next_page_token,
        }))
    }
}
