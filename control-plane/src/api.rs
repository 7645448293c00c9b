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
    audit::{self, Audit},
    auth::{Caller, require},
    catalog,
    deployment::{self, Start, Target},
    fleet, history, locks, planning, releases,
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
/// `slipway.control.v1.AuditService`.
pub struct AuditTrail(pub Context);
/// `slipway.control.v1.LockService`.
pub struct Locks(pub Context);

#[tonic::async_trait]
impl app_service_server::AppService for Apps {
    async fn create_app(&self, request: Request<CreateAppRequest>) -> Reply<CreateAppResponse> {
        let target = format!(
            "app {}",
            request.get_ref().app.as_ref().map_or("", |a| &a.name)
        );
        let audit = Audit::begin(&self.0, &request, "AppService/CreateApp", target);
        let result = async {
            require(&request, Role::Admin)?;
            let app = request.into_inner().app.ok_or_else(|| missing("app"))?;
            let app = catalog::create_app(&self.0.store, app).await?;
            Ok(Response::new(CreateAppResponse { app: Some(app) }))
        }
        .await;
        audit.finish(result, |_| "created".into()).await
    }

    async fn update_app(&self, request: Request<UpdateAppRequest>) -> Reply<UpdateAppResponse> {
        let target = format!(
            "app {}",
            request.get_ref().app.as_ref().map_or("", |a| &a.name)
        );
        let audit = Audit::begin(&self.0, &request, "AppService/UpdateApp", target);
        let result = async {
            require(&request, Role::Admin)?;
            let app = request.into_inner().app.ok_or_else(|| missing("app"))?;
            let app = catalog::update_app(&self.0.store, app).await?;
            Ok(Response::new(UpdateAppResponse { app: Some(app) }))
        }
        .await;
        audit.finish(result, |_| "updated".into()).await
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
    async fn update_environment(
        &self,
        request: Request<pb::UpdateEnvironmentRequest>,
    ) -> Reply<pb::UpdateEnvironmentResponse> {
        let name = request
            .get_ref()
            .environment
            .as_ref()
            .map_or("", |e| &e.name);
        let target = format!("environment {name}");
        let audit = Audit::begin(
            &self.0,
            &request,
            "EnvironmentService/UpdateEnvironment",
            target,
        );
        let result = async {
            require(&request, Role::Admin)?;
            let env = request
                .get_ref()
                .environment
                .clone()
                .ok_or_else(|| missing("environment"))?;
            let env = catalog::update_environment(&self.0.store, env).await?;
            Ok(Response::new(pb::UpdateEnvironmentResponse {
                environment: Some(env),
            }))
        }
        .await;
        audit.finish(result, |_| "updated".into()).await
    }

    async fn create_environment(
        &self,
        request: Request<CreateEnvironmentRequest>,
    ) -> Reply<CreateEnvironmentResponse> {
        let name = request
            .get_ref()
            .environment
            .as_ref()
            .map_or("", |e| &e.name);
        let target = format!("environment {name}");
        let audit = Audit::begin(
            &self.0,
            &request,
            "EnvironmentService/CreateEnvironment",
            target,
        );
        let result = async {
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
        .await;
        audit.finish(result, |_| "created".into()).await
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
        let target = request
            .get_ref()
            .host
            .as_ref()
            .map_or_else(String::new, |h| {
                format!(
                    "host {}, environment {}, address {}",
                    h.name, h.environment, h.address
                )
            });
        let audit = Audit::begin(&self.0, &request, "HostService/AddHost", target);
        let result = async {
            require(&request, Role::Admin)?;
            let host = request.into_inner().host.ok_or_else(|| missing("host"))?;
            let host = catalog::add_host(&self.0.store, host).await?;
            Ok(Response::new(AddHostResponse { host: Some(host) }))
        }
        .await;
        audit.finish(result, |_| "added".into()).await
    }

    async fn remove_host(&self, request: Request<RemoveHostRequest>) -> Reply<RemoveHostResponse> {
        let target = format!("host {}", request.get_ref().name);
        let audit = Audit::begin(&self.0, &request, "HostService/RemoveHost", target);
        let result = async {
            require(&request, Role::Admin)?;
            let host = catalog::remove_host(&self.0.store, &request.get_ref().name).await?;
            Ok(Response::new(RemoveHostResponse { host: Some(host) }))
        }
        .await;
        audit
            .finish(result, |r| {
                let env = r.get_ref().host.as_ref().map_or("", |h| &h.environment);
                format!("removed from environment {env}")
            })
            .await
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
    async fn mark_release(
        &self,
        request: Request<pb::MarkReleaseRequest>,
    ) -> Reply<pb::MarkReleaseResponse> {
        let req = request.get_ref();
        let target = format!("release {} of app {}", req.release_id, req.app);
        let audit = Audit::begin(&self.0, &request, "ReleaseService/MarkRelease", target);
        let result = async {
            let caller = require(&request, Role::Deployer)?;
            let req = request.get_ref();
            let mark = ReleaseMark::try_from(req.mark).map_err(|_| {
                Status::invalid_argument(format!("invalid mark: {} is not a known value", req.mark))
            })?;
            if req.reason.len() > 1000 {
                return Err(Status::invalid_argument(
                    "invalid reason: longer than 1000 bytes",
                ));
            }
            let reason = match req.reason.trim() {
                "" => format!("by {}", caller.principal()),
                why => format!("by {}: {why}", caller.principal()),
            };
            let release =
                releases::mark(&self.0.store, &req.app, &req.release_id, mark, &reason).await?;
            Ok(Response::new(pb::MarkReleaseResponse {
                release: Some(release),
            }))
        }
        .await;
        audit
            .finish(result, |_| mark_name(request.get_ref().mark))
            .await
    }
    async fn create_release(
        &self,
        request: Request<CreateReleaseRequest>,
    ) -> Reply<CreateReleaseResponse> {
        let req = request.get_ref();
        let target = format!("app {}, ref {}", req.app, req.git_ref);
        let audit = Audit::begin(&self.0, &request, "ReleaseService/CreateRelease", target);
        let result = async {
            require(&request, Role::Deployer)?;
            let req = request.into_inner();
            let (release, created) =
                releases::create(&self.0.store, &req.app, &req.git_ref).await?;
            Ok(Response::new(CreateReleaseResponse {
                release: Some(release),
                created,
            }))
        }
        .await;
        audit
            .finish(result, |r| {
                let r = r.get_ref();
                let id = r.release.as_ref().map_or("", |r| &r.id);
                let verb = if r.created { "created" } else { "existing" };
                format!("{verb} release {id}")
            })
            .await
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
        let req = request.get_ref();
        let target = format!(
            "release {} of app {}, environment {}",
            req.id, req.app, req.environment
        );
        let audit = Audit::begin(&self.0, &request, "ReleaseService/PinRelease", target);
        let pinned = req.pinned;
        let result = async {
            require(&request, Role::Deployer)?;
            let req = request.into_inner();
            let hosts =
                fleet::pin(&self.0, &req.app, &req.environment, &req.id, req.pinned).await?;
            Ok(Response::new(pb::PinReleaseResponse { hosts }))
        }
        .await;
        audit
            .finish(result, |r| {
                let hosts = &r.get_ref().hosts;
                let ok = hosts.iter().filter(|h| h.ok).count();
                let verb = if pinned { "pinned" } else { "unpinned" };
                format!("{verb} on {ok} of {} hosts", hosts.len())
            })
            .await
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
    /// Starts a deployment and streams its events from the first; the audit
    /// entry records whether it started (and its id) or why not.
    async fn start<T: Send + 'static>(
        &self,
        audit: Audit,
        caller: Result<Caller, Status>,
        start: Start,
        wrap: fn(DeploymentEvent) -> T,
    ) -> Reply<EventStream<T>> {
        let started = match caller {
            Ok(caller) => deployment::start(&self.0, &caller, start)
                .await
                .map_err(Status::from),
            Err(refused) => Err(refused),
        };
        let id = audit
            .finish(started, |id| format!("started deployment {id}"))
            .await?;
        let stream = self.0.events.stream(self.0.store.clone(), id, 0, wrap);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl deployment_service_server::DeploymentService for Deployments {
    type DeployStream = EventStream<DeployResponse>;
    type RollbackStream = EventStream<RollbackResponse>;
    type WatchDeploymentStream = EventStream<WatchDeploymentResponse>;

    async fn plan_deployment(
        &self,
        request: Request<pb::PlanDeploymentRequest>,
    ) -> Reply<pb::PlanDeploymentResponse> {
        let target = request
            .get_ref()
            .deploy
            .as_ref()
            .map_or_else(String::new, |d| audit::app_env(&d.app, &d.environment));
        // Audited: planning cuts the release when the ref has none yet.
        let audit = Audit::begin(
            &self.0,
            &request,
            "DeploymentService/PlanDeployment",
            target,
        );
        let result = async {
            require(&request, Role::Deployer)?;
            let deploy = request
                .get_ref()
                .deploy
                .clone()
                .ok_or_else(|| missing("deploy"))?;
            Ok(Response::new(planning::plan(&self.0, deploy).await?))
        }
        .await;
        audit
            .finish(result, |r| {
                format!(
                    "planned {} in {} batches",
                    r.get_ref().release.as_ref().map_or("", |r| &r.id),
                    r.get_ref().batches.len()
                )
            })
            .await
    }

    async fn cancel_deployment(
        &self,
        request: Request<pb::CancelDeploymentRequest>,
    ) -> Reply<pb::CancelDeploymentResponse> {
        let target = format!("deployment {}", request.get_ref().deployment_id);
        let audit = Audit::begin(
            &self.0,
            &request,
            "DeploymentService/CancelDeployment",
            target,
        );
        let result = async {
            let caller = require(&request, Role::Deployer)?;
            let req = request.get_ref();
            let deployment = deployment::cancel(
                &self.0,
                &caller,
                &req.deployment_id,
                &req.reason,
                req.grace_seconds,
            )
            .await?;
            Ok(Response::new(pb::CancelDeploymentResponse {
                deployment: Some(deployment),
            }))
        }
        .await;
        audit
            .finish(result, |r| {
                let status = r.get_ref().deployment.as_ref().map_or(0, |d| d.status);
                pb::DeploymentStatus::try_from(status)
                    .map(|s| s.as_str_name().to_owned())
                    .unwrap_or_default()
            })
            .await
    }

    async fn list_deployment_events(
        &self,
        request: Request<pb::ListDeploymentEventsRequest>,
    ) -> Reply<pb::ListDeploymentEventsResponse> {
        require(&request, Role::Viewer)?;
        let (events, next_page_token) = history::events(&self.0.store, request.get_ref())?;
        Ok(Response::new(pb::ListDeploymentEventsResponse {
            events,
            next_page_token,
        }))
    }

    async fn get_rollback_timeline(
        &self,
        request: Request<pb::GetRollbackTimelineRequest>,
    ) -> Reply<pb::GetRollbackTimelineResponse> {
        require(&request, Role::Viewer)?;
        let req = request.get_ref();
        let rollbacks = history::rollback_timeline(&self.0.store, &req.app, &req.environment)?;
        Ok(Response::new(pb::GetRollbackTimelineResponse { rollbacks }))
    }

    async fn get_deployment_stats(
        &self,
        request: Request<pb::GetDeploymentStatsRequest>,
    ) -> Reply<pb::GetDeploymentStatsResponse> {
        require(&request, Role::Viewer)?;
        let stats = history::stats(&self.0.store, request.get_ref())?;
        Ok(Response::new(pb::GetDeploymentStatsResponse { stats }))
    }

    async fn deploy(&self, request: Request<pb::DeployRequest>) -> Reply<Self::DeployStream> {
        let target = audit::app_env(&request.get_ref().app, &request.get_ref().environment);
        let audit = Audit::begin(&self.0, &request, "DeploymentService/Deploy", target);
        let caller = require(&request, Role::Deployer);
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
            policy: req.policy,
        };
        self.start(audit, caller, start, |e| DeployResponse { event: Some(e) })
            .await
    }

    async fn rollback(&self, request: Request<pb::RollbackRequest>) -> Reply<Self::RollbackStream> {
        let target = audit::app_env(&request.get_ref().app, &request.get_ref().environment);
        let audit = Audit::begin(&self.0, &request, "DeploymentService/Rollback", target);
        let caller = require(&request, Role::Deployer);
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
            policy: req.policy,
        };
        self.start(audit, caller, start, |e| RollbackResponse {
            event: Some(e),
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
        let mut deployment = deployment::get(&self.0.store, &request.get_ref().deployment_id)?;
        history::fill_release(&self.0.store, &mut deployment)?;
        Ok(Response::new(GetDeploymentResponse {
            deployment: Some(deployment),
        }))
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
}

/// A mark as the audit trail states it.
fn mark_name(mark: i32) -> String {
    match ReleaseMark::try_from(mark) {
        Ok(ReleaseMark::Good) => "marked good".into(),
        Ok(ReleaseMark::Bad) => "marked bad".into(),
        _ => "mark cleared".into(),
    }
}

#[tonic::async_trait]
impl audit_service_server::AuditService for AuditTrail {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Reply<pb::ListAuditEventsResponse> {
        require(&request, Role::Admin)?;
        let (events, next_page_token) = audit::list(&self.0.store, request.get_ref())?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events,
            next_page_token,
        }))
    }
}

#[tonic::async_trait]
impl lock_service_server::LockService for Locks {
    async fn get_lock(&self, request: Request<pb::GetLockRequest>) -> Reply<pb::GetLockResponse> {
        require(&request, Role::Viewer)?;
        let req = request.get_ref();
        let lock = locks::get(&self.0.store, &req.app, &req.environment)?;
        Ok(Response::new(pb::GetLockResponse { lock }))
    }

    async fn list_locks(
        &self,
        request: Request<pb::ListLocksRequest>,
    ) -> Reply<pb::ListLocksResponse> {
        require(&request, Role::Viewer)?;
        Ok(Response::new(pb::ListLocksResponse {
            locks: locks::list(&self.0.store)?,
        }))
    }

    async fn release_lock(
        &self,
        request: Request<pb::ReleaseLockRequest>,
    ) -> Reply<pb::ReleaseLockResponse> {
        let target = audit::app_env(&request.get_ref().app, &request.get_ref().environment);
        let audit = Audit::begin(&self.0, &request, "LockService/ReleaseLock", target);
        let result = async {
            let caller = require(&request, Role::Admin)?;
            let req = request.get_ref();
            if !req.force {
                return Err(Status::invalid_argument(
                    "force: must be true; freeing a lock overrides its holder (slipctl lock release --force)",
                ));
            }
            let lock = locks::force_release(
                &self.0,
                &caller.principal(),
                &req.app,
                &req.environment,
                &req.reason,
            )
            .await?;
            Ok(Response::new(pb::ReleaseLockResponse { lock: Some(lock) }))
        }
        .await;
        audit
            .finish(result, |r| {
                format!(
                    "freed the lock of {}",
                    r.get_ref().lock.as_ref().map_or("", |l| &l.deployment_id)
                )
            })
            .await
    }
}
