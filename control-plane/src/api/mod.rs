//! The operator gRPC services, one file per service. Each handler is a few
//! lines: it converts the request, calls the domain and converts the answer.
//! Every mutating call goes through [`audited`], which checks the caller's
//! role, records the audit entry (refusals included) and maps the error;
//! reads check the role with [`require`](crate::auth::require).

mod agent_upgrades;
mod approvals;
mod apps;
mod audit_trail;
mod certificates;
mod cluster;
mod dashboard;
mod deploy_keys;
mod deployments;
mod drift;
pub mod enrollment;
mod environments;
mod feed;
mod hosts;
mod locks;
mod notify;
mod queue;
mod releases;
mod secrets;
mod sources;
mod targets;
mod triggers;

use std::{future::Future, pin::Pin};

use slipway_proto::{identity::Role, validate::InvalidField};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::{
    Context,
    audit::Audit,
    auth::{Caller, require},
};

pub use self::{
    agent_upgrades::AgentUpgrades, approvals::Approvals, apps::Apps, audit_trail::AuditTrail,
    certificates::Certificates, cluster::Cluster, dashboard::Dashboard, deploy_keys::DeployKeys,
    deployments::Deployments, drift::Drift, environments::Environments, feed::Feed, hosts::Hosts,
    locks::Locks, notify::Notifications, queue::Queue, releases::Releases, secrets::Secrets,
    sources::Sources, triggers::Triggers,
};

type Reply<T> = Result<Response<T>, Status>;

/// A server stream of a deployment's events.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A mutating request: the method the audit trail names, the role it needs,
/// what it acts on and the domain value it becomes.
pub(crate) trait Audited: Sized {
    /// `Service/Method`.
    const METHOD: &'static str;
    /// The least role allowed to call it.
    const ROLE: Role;
    /// What the handler gets: the request converted and checked (names,
    /// enums, the bounds of [`slipway_proto::limits`]) after the role check
    /// and before the call does anything.
    type Domain: TryFrom<Self, Error = InvalidField>;
    /// What the call acts on: `app web, environment prod`. The audit trail
    /// cuts it to a bound: it is built before anything is checked.
    fn target(&self) -> String;
}

/// A request whose fields are within their bounds, for calls whose domain
/// checks need the store (see `targets.rs` for each one's bounds).
pub(crate) struct Checked<R>(pub R);

/// Runs a mutating call: the audit entry begins before the role check (so a
/// refusal is recorded), the request is converted into its domain value,
/// `body` runs with the caller and that value, and
/// the entry records how it ended (the message `body` returns with its
/// answer, or the error) before the caller gets the answer.
pub(crate) async fn audited<R, T, F, Fut>(ctx: &Context, request: Request<R>, body: F) -> Reply<T>
where
    R: Audited,
    F: FnOnce(Context, Caller, R::Domain) -> Fut,
    Fut: Future<Output = Result<(T, String), Status>>,
{
    let target = request.get_ref().target();
    let audit = Audit::begin(ctx, &request, R::METHOD, target);
    let result = async {
        let caller = require(&request, R::ROLE)?;
        let domain = R::Domain::try_from(request.into_inner())?;
        body(ctx.clone(), caller, domain).await
    }
    .await;
    let result = audit.finish(result, |(_, message)| message.clone()).await;
    result.map(|(answer, _)| Response::new(answer))
}

/// The error for a required field left out.
fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("missing {field}"))
}
