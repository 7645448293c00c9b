//! `slipway.control.v1.ReleaseService`: releases cut from git, marks and
//! pins.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response, Status};

use super::{Checked, Reply, audited};
use crate::{Context, auth::require, fleet, releases};

/// `slipway.control.v1.ReleaseService`.
pub struct Releases(pub Context);

#[tonic::async_trait]
impl release_service_server::ReleaseService for Releases {
    async fn create_release(
        &self,
        request: Request<CreateReleaseRequest>,
    ) -> Reply<CreateReleaseResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            if req.build {
                releases::require_build(&ctx.store, &req.app)?;
            }
            let progress = crate::progress::Progress::none();
            let cut = releases::create(&ctx.store, &ctx.sources, &req.app, &req.git_ref, &progress)
                .await?;
            let verb = if cut.created { "created" } else { "existing" };
            let message = format!("{verb} release {}", cut.release.id);
            let built = cut.build.as_ref().is_some_and(|b| b.ran);
            let response = CreateReleaseResponse {
                release: Some(cut.release),
                created: cut.created,
                build: cut.build.map(|b| b.build),
                built,
            };
            Ok((response, message))
        })
        .await
    }

    async fn mark_release(
        &self,
        request: Request<MarkReleaseRequest>,
    ) -> Reply<MarkReleaseResponse> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            let mark = ReleaseMark::try_from(req.mark).map_err(|_| {
                Status::invalid_argument(format!("invalid mark: {} is not a known value", req.mark))
            })?;
            let reason = match req.reason.trim() {
                "" => format!("by {}", caller.principal()),
                why => format!("by {}: {why}", caller.principal()),
            };
            let release =
                releases::mark(&ctx.store, &req.app, &req.release_id, mark, &reason).await?;
            let message = match mark {
                ReleaseMark::Good => "marked good",
                ReleaseMark::Bad => "marked bad",
                _ => "mark cleared",
            };
            let release = Some(release);
            Ok((MarkReleaseResponse { release }, message.into()))
        })
        .await
    }

    async fn pin_release(&self, request: Request<PinReleaseRequest>) -> Reply<PinReleaseResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let hosts = fleet::pin(&ctx, &req.app, &req.environment, &req.id, req.pinned).await?;
            let ok = hosts.iter().filter(|h| h.ok).count();
            let verb = if req.pinned { "pinned" } else { "unpinned" };
            let message = format!("{verb} on {ok} of {} hosts", hosts.len());
            Ok((PinReleaseResponse { hosts }, message))
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
        let release = Some(release);
        Ok(Response::new(GetReleaseResponse { release }))
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
