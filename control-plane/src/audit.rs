//! The audit trail: every mutating call of the operator API, recorded durably
//! with who made it (principal, role and the SHA-256 fingerprint of the client
//! certificate), the method, what it acted on, and how it ended. Refused calls
//! (PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND, ...) are recorded too.
//!
//! Wrapping a handler takes three lines: [`Audit::begin`] before anything can
//! fail (before `require`, so that a refused role is recorded), the handler's
//! body in an `async` block, and [`Audit::finish`] with the block's result,
//! which it returns unchanged once the entry is on disk:
//!
//! ```ignore
//! async fn cancel_deployment(
//!     &self,
//!     request: Request<CancelDeploymentRequest>,
//! ) -> Reply<CancelDeploymentResponse> {
//!     let target = format!("deployment {}", request.get_ref().deployment_id);
//!     let audit = Audit::begin(&self.0, &request, "DeploymentService/CancelDeployment", target);
//!     let result = async {
//!         let caller = require(&request, Role::Deployer)?;
//!         let deployment = rollout::cancel(&self.0, &caller, request.get_ref()).await?;
//!         Ok(Response::new(CancelDeploymentResponse { deployment: Some(deployment) }))
//!     }
//!     .await;
//!     audit.finish(result, |r| format!("cancelled {}", r.get_ref().deployment.as_ref().map_or("", |d| &d.id))).await
//! }
//! ```
//!
//! For a call that is not a gRPC handler (a rollout that marks a release bad,
//! say), [`record`] writes an entry from explicit parts.
//!
//! The trail is read newest first (see [`crate::store::audit`]); a page token
//! is the sequence of the last entry of a page.

use pbjson_types::Timestamp;
use sha2::{Digest, Sha256};
use slipway_proto::{
    control::v1::{AuditEvent, ListAuditEventsRequest},
    identity::Identity,
    limits,
    validate::InvalidField,
};
use tonic::{Code, Request, Status};

use crate::{
    Context, audit_chain,
    auth::Caller,
    error::Error,
    store::{Store, StoreError, audit as trail},
};

/// The proto package every method name is recorded under.
const PACKAGE: &str = "slipway.control.v1";

/// Entries a listing reads from the store at once.
const SCAN: usize = 256;

/// Appends are serialised so that sequence order is commit order: a reader
/// paging down the trail never skips an entry that committed late. One lock
/// for the whole process: audit writes are rare, and tests run several
/// control planes in one process, each with its own store.
static APPEND: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fingerprint (lower-case hex SHA-256) of the certificate a dashboard
/// session was opened with, in the extensions of the requests the
/// dashboard makes for it.
#[derive(Clone, Debug)]
pub struct SessionCertificate(pub String);

/// Who made a call, as the trail records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    /// Principal, e.g. `admin/alice`.
    pub principal: String,
    /// Role, e.g. `admin`.
    pub role: String,
    /// Lowercase hex SHA-256 of the DER certificate; empty when none.
    pub certificate_sha256: String,
}

impl Actor {
    /// The caller of `request`: the operator the authentication interceptor
    /// found, and the fingerprint of the certificate it presented.
    pub fn of<T>(request: &Request<T>) -> Self {
        let certificate_sha256 = request
            .peer_certs()
            .and_then(|certs| {
                certs
                    .first()
                    .map(|c| hex::encode(Sha256::digest(c.as_ref())))
            })
            .or_else(|| {
                // A dashboard session acts for the certificate that asked
                // for its login link.
                request
                    .extensions()
                    .get::<SessionCertificate>()
                    .map(|c| c.0.clone())
            })
            .unwrap_or_default();
        let (principal, role) = match request.extensions().get::<Caller>() {
            Some(caller) => (caller.principal(), caller.role.to_string()),
            // Not authenticated as an operator (the interceptor refuses those,
            // so this is a call from a test or a future path): say what we can.
            None => match Identity::from_request(request) {
                Ok(identity) => (identity.principal(), String::new()),
                Err(_) => ("(unknown)".to_owned(), String::new()),
            },
        };
        Self {
            principal,
            role,
            certificate_sha256,
        }
    }
}

/// A mutating call in progress; [`Audit::finish`] records how it ended.
#[must_use = "an audit entry is only written by `finish`"]
pub struct Audit {
    store: Store,
    actor: Actor,
    method: String,
    target: String,
}

impl Audit {
    /// Starts the entry of a call to `method` (`"Service/Method"`; the proto
    /// package is added) acting on `target` (`"app web, environment prod"`).
    /// Call it first, before the role check.
    pub fn begin<T>(
        ctx: &Context,
        request: &Request<T>,
        method: &str,
        target: impl Into<String>,
    ) -> Self {
        Self {
            store: ctx.store.clone(),
            actor: Actor::of(request),
            method: format!("{PACKAGE}.{method}"),
            target: target.into(),
        }
    }

    /// Records the outcome of the call and returns `result` unchanged. On
    /// success the entry's message is `produced(&value)` (say, the id of the
    /// deployment started); on failure it is the status message. The entry
    /// is durable before this returns; if the store fails, that is logged and
    /// the caller still gets its result, because the call itself happened.
    pub async fn finish<T>(
        self,
        result: Result<T, Status>,
        produced: impl FnOnce(&T) -> String,
    ) -> Result<T, Status> {
        let (outcome, message) = match &result {
            Ok(value) => (Code::Ok, produced(value)),
            Err(status) => (status.code(), status.message().to_owned()),
        };
        let entry = AuditEvent {
            sequence: 0,
            time: None,
            actor: self.actor.principal,
            role: self.actor.role,
            certificate_sha256: self.actor.certificate_sha256,
            method: self.method,
            target: self.target,
            outcome: outcome_name(outcome).to_owned(),
            message,
            previous_sha256: String::new(),
        };
        if let Err(err) = append(&self.store, entry.clone()).await {
            tracing::error!(error = ?err, method = %entry.method, target = %entry.target,
                "recording the audit entry failed");
        }
        result
    }
}

/// Records a call the authentication interceptor refused, beside the
/// refusal (the interceptor cannot wait for the store).
pub fn refused(store: &Store, refusal: crate::auth::Refusal) {
    let store = store.clone();
    tokio::spawn(async move {
        let actor = Actor {
            principal: refusal.identity,
            role: String::new(),
            certificate_sha256: refusal.fingerprint,
        };
        let method = refusal.method.trim_start_matches('/').to_owned();
        let target = format!("peer {}", refusal.peer);
        let recorded = record(
            &store,
            &actor,
            &method,
            &target,
            refusal.code,
            &refusal.reason,
        )
        .await;
        if let Err(err) = recorded {
            tracing::error!(error = %err, "recording a refused call failed");
        }
    });
}

/// Records one entry from explicit parts, for actions that are not a gRPC
/// handler. `method` is recorded as given.
pub async fn record(
    store: &Store,
    actor: &Actor,
    method: &str,
    target: &str,
    outcome: Code,
    message: &str,
) -> Result<AuditEvent, Error> {
    let entry = AuditEvent {
        actor: actor.principal.clone(),
        role: actor.role.clone(),
        certificate_sha256: actor.certificate_sha256.clone(),
        method: method.to_owned(),
        target: target.to_owned(),
        outcome: outcome_name(outcome).to_owned(),
        message: message.to_owned(),
        ..Default::default()
    };
    Ok(append(store, entry).await?)
}

/// Numbers, stamps and durably stores an entry.
async fn append(store: &Store, mut entry: AuditEvent) -> Result<AuditEvent, StoreError> {
    // Every field is bounded before it is written: a target or an error
    // message can carry what a caller sent.
    for field in [
        &mut entry.actor,
        &mut entry.role,
        &mut entry.method,
        &mut entry.target,
        &mut entry.outcome,
        &mut entry.message,
    ] {
        if field.len() > limits::AUDIT_FIELD {
            *field = limits::cut(field, limits::AUDIT_FIELD).into_owned();
        }
    }
    let _serial = APPEND.lock().await;
    // Replicas on a shared store append too: the one whose number was
    // taken first reads the newest entry again and takes the next.
    let mut attempts = 0;
    loop {
        let last = trail::newest(store)?;
        entry.sequence = last.as_ref().map_or(0, |e| e.sequence) + 1;
        entry.previous_sha256 = audit_chain::link(last.as_ref());
        entry.time = Some(slipway_proto::now());
        match store.commit(vec![trail::append(&entry)]).await {
            Err(StoreError::Exists { .. }) if attempts < APPEND_ATTEMPTS => attempts += 1,
            committed => return committed.map(|()| entry),
        }
    }
}

/// How often an append retries when another replica took its number.
const APPEND_ATTEMPTS: u32 = 16;

/// A gRPC code as the trail spells it: `OK`, or the code's name such as
/// `PermissionDenied`.
pub fn outcome_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// `app web, environment prod`.
pub fn app_env(app: &str, environment: &str) -> String {
    format!("app {app}, environment {environment}")
}

/// Whether a recorded principal (`admin/alice`) is `wanted`, given either
/// whole or as the bare name.
pub fn principal_matches(principal: &str, wanted: &str) -> bool {
    wanted.is_empty()
        || principal == wanted
        || principal
            .split_once('/')
            .is_some_and(|(_, name)| name == wanted)
}

/// Seconds and nanoseconds, for ordering timestamps.
pub(crate) fn instant(t: &Timestamp) -> (i64, i32) {
    (t.seconds, t.nanos)
}

/// Whether `t` lies in `[since, until)`; an unset bound does not limit.
pub(crate) fn within(
    t: Option<&Timestamp>,
    since: Option<&Timestamp>,
    until: Option<&Timestamp>,
) -> bool {
    let Some(t) = t.map(instant) else {
        return since.is_none() && until.is_none();
    };
    since.is_none_or(|s| t >= instant(s)) && until.is_none_or(|u| t < instant(u))
}

/// Refuses `since` at or after `until`.
pub(crate) fn check_range(
    since: Option<&Timestamp>,
    until: Option<&Timestamp>,
) -> Result<(), InvalidField> {
    match (since, until) {
        (Some(s), Some(u)) if instant(s) >= instant(u) => {
            Err(InvalidField::new("until", "must be later than since"))
        }
        _ => Ok(()),
    }
}

/// The page size asked for: `default` for 0, at most 1000.
pub(crate) fn page_size(asked: u32, default: usize) -> usize {
    match asked {
        0 => default,
        n => (n as usize).min(1000),
    }
}

/// A page token that is a sequence number; empty means from the start.
pub(crate) fn sequence_token(token: &str) -> Result<Option<u64>, InvalidField> {
    if token.is_empty() {
        return Ok(None);
    }
    token.parse().map(Some).map_err(|_| {
        InvalidField::new(
            "page_token",
            format!("{token:?} is not a token this server returned"),
        )
    })
}

/// One page of the trail, newest first, filtered; with the token of the next
/// page (empty on the last).
pub fn list(
    store: &Store,
    req: &ListAuditEventsRequest,
) -> Result<(Vec<AuditEvent>, String), Error> {
    let size = page_size(req.page_size, 100);
    check_range(req.since.as_ref(), req.until.as_ref())?;
    let mut below = sequence_token(&req.page_token)?;
    let method = req.method.to_lowercase();
    let wanted = |e: &AuditEvent| {
        principal_matches(&e.actor, &req.actor)
            && (method.is_empty() || e.method.to_lowercase().contains(&method))
            && within(e.time.as_ref(), req.since.as_ref(), req.until.as_ref())
    };
    let mut page = Vec::new();
    loop {
        let chunk = trail::newest_first(store, below, SCAN)?;
        let done = chunk.len() < SCAN;
        if let Some(last) = chunk.last() {
            below = Some(last.sequence);
        }
        page.extend(chunk.into_iter().filter(|e| wanted(e)));
        if page.len() > size || done {
            break;
        }
    }
    let next = if page.len() > size {
        page.truncate(size);
        page.last()
            .map(|e| e.sequence.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledBackend;

    fn store(dir: &std::path::Path) -> Store {
        Store::new(Arc::new(SledBackend::open(dir, 8 << 20).unwrap()))
    }

    fn actor(principal: &str) -> Actor {
        Actor {
            principal: principal.into(),
            role: principal.split('/').next().unwrap_or_default().into(),
            certificate_sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn outcomes_and_principals() {
        assert_eq!(outcome_name(Code::Ok), "OK");
        assert_eq!(outcome_name(Code::PermissionDenied), "PermissionDenied");
        assert!(principal_matches("admin/alice", "alice"));
        assert!(principal_matches("admin/alice", "admin/alice"));
        assert!(!principal_matches("admin/alice", "admin"));
        assert!(!principal_matches("admin/alice", "ali"));
    }

    #[tokio::test]
    async fn pages_newest_first_with_filters_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path());
            for i in 0..7 {
                let who = if i % 2 == 0 {
                    "admin/alice"
                } else {
                    "viewer/bob"
                };
                let method = if i == 3 {
                    "slipway.control.v1.DeploymentService/Deploy"
                } else {
                    "slipway.control.v1.AppService/CreateApp"
                };
                record(&s, &actor(who), method, "app web", Code::Ok, "")
                    .await
                    .unwrap();
            }
        }
        let s = store(dir.path());
        // Numbering goes on after a restart.
        let e = record(&s, &actor("admin/alice"), "X/Y", "", Code::NotFound, "gone")
            .await
            .unwrap();
        assert_eq!(e.sequence, 8);

        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let req = ListAuditEventsRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            };
            let (page, next) = list(&s, &req).unwrap();
            seen.extend(page.iter().map(|e| e.sequence));
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, [8, 7, 6, 5, 4, 3, 2, 1]);

        let req = ListAuditEventsRequest {
            actor: "bob".into(),
            ..Default::default()
        };
        let (page, next) = list(&s, &req).unwrap();
        let seqs: Vec<u64> = page.iter().map(|e| e.sequence).collect();
        assert_eq!((seqs, next.as_str()), (vec![6, 4, 2], ""));

        let req = ListAuditEventsRequest {
            method: "deploymentservice/deploy".into(),
            ..Default::default()
        };
        let (page, _) = list(&s, &req).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].sequence, 4);

        let bad = ListAuditEventsRequest {
            page_token: "nope".into(),
            ..Default::default()
        };
        assert!(matches!(list(&s, &bad), Err(Error::Invalid(_))));
    }
}
