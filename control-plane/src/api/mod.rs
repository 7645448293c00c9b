//! The operator gRPC services, one file per service. Each handler is a few
//! lines: it converts the request, calls the domain and converts the answer.
//! Every mutating call goes through [`audited`], which checks the caller's
//! role, records the audit entry (refusals included) and maps the error;
//! reads check the role with [`require`](crate::auth::require).

mod apps;
mod audit_trail;
mod deployments;
mod environments;
mod hosts;
mod locks;
mod releases;
mod targets;

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
    apps::Apps, audit_trail::AuditTrail, deployments::Deployments, environments::Environments,
    hosts::Hosts, locks::Locks, releases::Releases,
};

type Reply<T> = Result<Response<T>, Status>;

/// A server stream of a deployment's events.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A mutating request: the method the audit trail names, the role it needs
/// and what it acts on.
pub(crate) trait Audited {
    /// `Service/Method`.
    const METHOD: &'static str;
    /// The least role allowed to call it.
    const ROLE: Role;
    /// What the call acts on: `app web, environment prod`. The audit trail
    /// cuts it to a bound: it is built before anything is checked.
    fn target(&self) -> String;
    /// The request's bounds (see [`slipway_proto::limits`]): checked after
    /// the role and before the call does anything.
    fn bounds(&self) -> Result<(), InvalidField>;
}

/// Runs a mutating call: the audit entry begins before the role check (so a
/// refusal is recorded), `body` runs with the caller and the request, and
/// the entry records how it ended (the message `body` returns with its
/// answer, or the error) before the caller gets the answer.
pub(crate) async fn audited<R, T, F, Fut>(ctx: &Context, request: Request<R>, body: F) -> Reply<T>
where
    R: Audited,
    F: FnOnce(Context, Caller, R) -> Fut,
    Fut: Future<Output = Result<(T, String), Status>>,
{
    let target = request.get_ref().target();
    let audit = Audit::begin(ctx, &request, R::METHOD, target);
    let result = async {
        let caller = require(&request, R::ROLE)?;
        request.get_ref().bounds()?;
        body(ctx.clone(), caller, request.into_inner()).await
    }
    .await;
    let result = audit.finish(result, |(_, message)| message.clone()).await;
    result.map(|(answer, _)| Response::new(answer))
}

/// The error for a required field left out.
fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("missing {field}"))
}
