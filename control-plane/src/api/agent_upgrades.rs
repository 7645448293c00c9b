//! `slipway.control.v1.AgentUpgradeService`: staging agent binaries and
//! upgrading an environment's agents (admin), reading an upgrade (viewer).

use slipway_proto::{
    control::v1::*,
    identity::Role,
    limits,
    validate::{InvalidField, bounded},
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Streaming};

use super::{Audited, Checked, EventStream, Reply, audited};
use crate::{Context, audit::Audit, auth::require, error::Error, store::agent_upgrades, upgrades};

/// `slipway.control.v1.AgentUpgradeService`.
pub struct AgentUpgrades(pub Context);

impl Audited for UpgradeAgentsRequest {
    const METHOD: &'static str = "AgentUpgradeService/UpgradeAgents";
    const ROLE: Role = Role::Admin;
    type Domain = Checked<UpgradeAgentsRequest>;
    fn target(&self) -> String {
        format!("environment {}, agent {}", self.environment, self.version)
    }
}

impl TryFrom<UpgradeAgentsRequest> for Checked<UpgradeAgentsRequest> {
    type Error = InvalidField;
    fn try_from(request: UpgradeAgentsRequest) -> Result<Self, InvalidField> {
        bounded("environment", &request.environment, limits::NAME)?;
        bounded("version", &request.version, 64)?;
        bounded("sha256", &request.sha256, 64)?;
        Ok(Checked(request))
    }
}

#[tonic::async_trait]
impl agent_upgrade_service_server::AgentUpgradeService for AgentUpgrades {
    type UpgradeAgentsStream = EventStream<UpgradeAgentsResponse>;

    async fn stage_agent_binary(
        &self,
        request: Request<Streaming<StageAgentBinaryRequest>>,
    ) -> Reply<StageAgentBinaryResponse> {
        let audit = Audit::begin(
            &self.0,
            &request,
            "AgentUpgradeService/StageAgentBinary",
            "agent binary",
        );
        let result = async {
            require(&request, Role::Admin)?;
            let (sha256, size) = self.0.agent_binaries.stage(request.into_inner()).await?;
            Ok(StageAgentBinaryResponse { sha256, size })
        }
        .await;
        let answer = audit
            .finish(result, |a| {
                format!("staged {} ({} bytes)", a.sha256, a.size)
            })
            .await?;
        Ok(Response::new(answer))
    }

    async fn upgrade_agents(
        &self,
        request: Request<UpgradeAgentsRequest>,
    ) -> Reply<Self::UpgradeAgentsStream> {
        audited(
            &self.0,
            request,
            |ctx, caller, Checked(request)| async move {
                let events = upgrades::start(&ctx, caller.name, request).await?;
                let stream = ReceiverStream::new(events)
                    .map(|event| Ok(UpgradeAgentsResponse { event: Some(event) }));
                let stream: Self::UpgradeAgentsStream = Box::pin(stream);
                Ok((stream, "started".to_owned()))
            },
        )
        .await
    }

    async fn get_agent_upgrade(
        &self,
        request: Request<GetAgentUpgradeRequest>,
    ) -> Reply<GetAgentUpgradeResponse> {
        require(&request, Role::Viewer)?;
        let id = &request.get_ref().id;
        bounded("id", id, limits::NAME)?;
        let upgrade = agent_upgrades::get(&self.0.store, id)
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound {
                what: "agent upgrade",
                name: id.clone(),
            })?;
        Ok(Response::new(GetAgentUpgradeResponse {
            upgrade: Some(upgrade),
        }))
    }
}
