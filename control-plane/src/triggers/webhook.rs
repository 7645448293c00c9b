//! A webhook delivery, handled: the app's secret proved, the delivery id
//! not seen before, the body read, then a deployment of the pushed commit
//! to each environment that auto-deploys the pushed branch. The delivery is
//! claimed by its id before anything starts, so a redelivery (or the same
//! one sent twice at once) starts nothing; what was done is recorded with
//! it and in the audit trail as `webhook/<app>`. A refusal changes nothing.

use serde_json::json;
use slipway_proto::{
    control::v1::{DeploymentKind, WebhookDelivery},
    limits, validate,
};
use tonic::Code;

use super::{
    push::{self, Payload, Push},
    sender::{Headers, Sender},
};
use crate::{
    Context,
    audit::{self, Actor},
    auth::Caller,
    catalog,
    deployment::{self, Start, Target},
    error::Error,
    store::{self, StoreError},
};

/// Longest delivery id kept.
const MAX_DELIVERY_ID: usize = 128;

/// The HTTP answer to a delivery: a status and a JSON body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
}

/// Why a delivery is refused; it changed nothing.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("delivery {} was handled already: {}", .0.delivery_id, .0.message)]
    Replay(Box<WebhookDelivery>),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        Refusal::Internal(err.to_string())
    }
}

impl From<Error> for Refusal {
    fn from(err: Error) -> Self {
        let status = tonic::Status::from(err);
        match status.code() {
            Code::NotFound => Refusal::NotFound(status.message().to_owned()),
            Code::InvalidArgument => Refusal::BadRequest(status.message().to_owned()),
            _ => Refusal::Internal(status.message().to_owned()),
        }
    }
}

impl Refusal {
    fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Unauthorized(_) => 401,
            Refusal::NotFound(_) => 404,
            Refusal::Replay(_) => 409,
            Refusal::Internal(_) => 500,
        }
    }
}

/// Handles one delivery to `/hooks/<app>`.
pub async fn handle(ctx: &Context, app: &str, headers: &impl Headers, body: &[u8]) -> Answer {
    match receive(ctx, app, headers, body).await {
        Ok(answer) => answer,
        Err(refusal) => {
            let app = limits::cut(app, limits::NAME);
            tracing::warn!(%app, error = %refusal, "webhook delivery refused");
            let mut body = json!({ "error": refusal.to_string() });
            if let Refusal::Replay(done) = &refusal {
                body["deployment_ids"] = json!(done.deployment_ids);
            }
            Answer {
                status: refusal.status(),
                body,
            }
        }
    }
}

async fn receive(
    ctx: &Context,
    app: &str,
    headers: &impl Headers,
    body: &[u8],
) -> Result<Answer, Refusal> {
    let store = &ctx.store;
    catalog::app(store, app)?;
    let secret = store::triggers::secret(store, app)?.ok_or_else(|| {
        Refusal::NotFound(format!(
            "app {app} has no webhook; an admin enables it with `slipctl webhook enable {app}`"
        ))
    })?;
    let sender = Sender::of(headers).map_err(|e| Refusal::Unauthorized(e.to_string()))?;
    sender
        .verify(&secret, body)
        .map_err(|e| Refusal::Unauthorized(e.to_string()))?;
    let delivery_id = sender
        .delivery_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Refusal::BadRequest(
                "no delivery id (X-GitHub-Delivery, X-Gitea-Delivery, X-Gitlab-Event-UUID or Idempotency-Key)"
                    .into(),
            )
        })?;
    validate::bounded("delivery id", delivery_id, MAX_DELIVERY_ID)
        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
    if let Some(done) = store::triggers::delivery(store, app, delivery_id)? {
        return Err(Refusal::Replay(Box::new(done)));
    }
    let payload = match sender.event {
        "ping" => Payload::Ignored("pong".into()),
        "push" | "Push Hook" => {
            push::parse(body).map_err(|e| Refusal::BadRequest(e.to_string()))?
        }
        other => Payload::Ignored(format!("event {other:?} is not a push")),
    };
    let mut delivery = WebhookDelivery {
        delivery_id: delivery_id.to_owned(),
        time: Some(slipway_proto::now()),
        source: sender.source.to_owned(),
        event: limits::cut(sender.event, limits::NAME).into_owned(),
        message: "received".into(),
        ..Default::default()
    };
    if let Payload::Push(push) = &payload {
        delivery.branch.clone_from(&push.branch);
        delivery.commit.clone_from(&push.commit);
    }
    claim(ctx, app, &delivery).await?;
    let status = match &payload {
        Payload::Ignored(why) => {
            delivery.message.clone_from(why);
            200
        }
        Payload::Push(push) => deploy(ctx, app, push, &mut delivery).await?,
    };
    store
        .commit(vec![store::triggers::update(app, &delivery)])
        .await?;
    audit(ctx, app, &delivery, status).await;
    Ok(Answer {
        status,
        body: json!({
            "delivery_id": delivery.delivery_id,
            "deployment_ids": delivery.deployment_ids,
            "message": delivery.message,
        }),
    })
}

/// Records the delivery under its id before anything starts: a second one
/// with the same id, even at the same time, is a replay.
async fn claim(ctx: &Context, app: &str, delivery: &WebhookDelivery) -> Result<(), Refusal> {
    let ops = store::triggers::record(&ctx.store, app, delivery)?;
    match ctx.store.commit(ops).await {
        Ok(()) => Ok(()),
        Err(StoreError::Exists { .. }) => {
            let done = store::triggers::delivery(&ctx.store, app, &delivery.delivery_id)?;
            Err(Refusal::Replay(Box::new(
                done.unwrap_or_else(|| delivery.clone()),
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// Starts a deployment of the pushed commit in each environment that
/// auto-deploys its branch; the status says whether any started (202),
/// none was asked for (200) or every one was refused (409).
async fn deploy(
    ctx: &Context,
    app: &str,
    push: &Push,
    delivery: &mut WebhookDelivery,
) -> Result<u16, Refusal> {
    let triggers = store::triggers::get(&ctx.store, app)?.unwrap_or_default();
    let targets: Vec<&str> = triggers
        .auto_deploy
        .iter()
        .filter(|a| a.branch == push.branch)
        .map(|a| a.environment.as_str())
        .collect();
    if targets.is_empty() {
        delivery.message = format!("no environment auto-deploys branch {}", push.branch);
        return Ok(200);
    }
    let caller = Caller::webhook(app);
    let mut said = Vec::new();
    for environment in targets {
        let start = Start {
            kind: DeploymentKind::Deploy,
            app: app.to_owned(),
            environment: environment.to_owned(),
            target: Target::Ref(push.commit.clone()),
            message: limits::cut(&message(push), limits::MESSAGE).into_owned(),
            policy: None,
            // The environment's gates apply: its queue, approvals, windows
            // and freezes; a webhook never forces.
            queue: false,
            run_at: None,
            force: false,
        };
        match deployment::start(ctx, &caller, start).await {
            Ok(id) => {
                said.push(format!("{environment}: started {id}"));
                delivery.deployment_ids.push(id);
            }
            Err(err) => {
                let status = tonic::Status::from(err);
                said.push(format!("{environment}: {}", status.message()));
            }
        }
    }
    delivery.message = limits::cut(&said.join("; "), limits::MESSAGE).into_owned();
    Ok(if delivery.deployment_ids.is_empty() {
        409
    } else {
        202
    })
}

/// `push to main by alice: Fix login`.
fn message(push: &Push) -> String {
    let mut text = format!("push to {}", push.branch);
    if !push.pusher.is_empty() {
        text.push_str(&format!(" by {}", push.pusher));
    }
    if !push.subject.is_empty() {
        text.push_str(&format!(": {}", push.subject));
    }
    text
}

/// The audit entry of a handled delivery, as `webhook/<app>`.
async fn audit(ctx: &Context, app: &str, delivery: &WebhookDelivery, status: u16) {
    let actor = Actor {
        principal: Caller::webhook(app).principal(),
        role: "webhook".into(),
        certificate_sha256: String::new(),
    };
    let outcome = if status == 409 {
        Code::FailedPrecondition
    } else {
        Code::Ok
    };
    let target = format!("app {app}, delivery {}", delivery.delivery_id);
    let method = format!("webhook/{}", delivery.event);
    let recorded = audit::record(
        &ctx.store,
        &actor,
        &method,
        &target,
        outcome,
        &delivery.message,
    );
    if let Err(err) = recorded.await {
        tracing::error!(error = %err, %app, "recording the webhook delivery in the audit trail failed");
    }
}
