//! `slipway.control.v1.DriftService`: drift checks on demand, the latest
//! findings, and repairs.

use slipway_proto::{control::v1::*, identity::Role};
use tokio_stream::StreamExt;
use tonic::{Request, Response};

use super::{Checked, EventStream, Reply, audited, missing};
use crate::{Context, auth::require, drift};

/// `slipway.control.v1.DriftService`.
pub struct Drift(pub Context);

#[tonic::async_trait]
impl drift_service_server::DriftService for Drift {
    type RepairDriftStream = EventStream<RepairDriftResponse>;

    async fn check_drift(&self, request: Request<CheckDriftRequest>) -> Reply<CheckDriftResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        if req.environment.is_empty() {
            return Err(missing("environment"));
        }
        let report = drift::check(&self.0, &req.environment, &req.app).await?;
        Ok(Response::new(report))
    }

    async fn list_drift_findings(
        &self,
        request: Request<ListDriftFindingsRequest>,
    ) -> Reply<ListDriftFindingsResponse> {
        require(&request, Role::Viewer)?;
        let req = request.get_ref();
        let findings =
            drift::findings(&self.0.store, &req.environment, &req.app, req.drifted_only)?;
        Ok(Response::new(ListDriftFindingsResponse { findings }))
    }

    async fn repair_drift(
        &self,
        request: Request<RepairDriftRequest>,
    ) -> Reply<Self::RepairDriftStream> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            let (check, id) = drift::repair::repair(&ctx, &caller, req).await?;
            let message = match &id {
                Some(id) => format!("started deployment {id} ({} drifted)", check.drifted),
                None => format!("no host to repair ({} drifted)", check.drifted),
            };
            let first = RepairDriftResponse {
                check: Some(check),
                deployment_id: id.clone().unwrap_or_default(),
                event: None,
            };
            let head = tokio_stream::once(Ok(first));
            let stream: Self::RepairDriftStream = match id {
                Some(id) => {
                    let events =
                        ctx.events
                            .stream(ctx.store.clone(), id, 0, |e| RepairDriftResponse {
                                event: Some(e),
                                ..Default::default()
                            });
                    Box::pin(head.chain(events))
                }
                None => Box::pin(head),
            };
            Ok((stream, message))
        })
        .await
    }
}
