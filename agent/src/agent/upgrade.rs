//! The agent's side of an upgrade: the binary store, the wait for running
//! operations (new ones refused meanwhile), the trial run, the swap and the
//! restart request; and, at startup, the confirmation of a pending upgrade.

use std::{path::Path, sync::Arc};

use slipway_proto::agent::v1::UpgradeAgentResponse;

use super::Agent;
use crate::{
    error::{Error, blocking},
    stamp,
    upgrade::{UpgradeError, UpgradePlan, Upgrades},
};

/// What a refused operation is told to wait before trying again.
const RETRY_AFTER_MS: u64 = 500;

impl Agent {
    /// Binaries, the pending upgrade and the restart.
    pub fn upgrades(&self) -> &Arc<Upgrades> {
        &self.upgrades
    }

    /// Once the listener is bound and the state is open: writes
    /// `<data_dir>/agent.pid` and confirms a pending upgrade to this version.
    pub async fn started_serving(&self, data_dir: &Path) {
        let (upgrades, pid_file) = (self.upgrades.clone(), data_dir.join("agent.pid"));
        let _ = blocking(move || {
            if let Err(err) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
                tracing::warn!(%err, file = %pid_file.display(), "cannot write the pid file");
            }
            upgrades.confirm();
            Ok::<_, Error>(())
        })
        .await;
    }

    /// Replaces this agent with a stored binary (see `upgrade.rs`); answers
    /// just before the server stops for the restart.
    pub async fn upgrade(&self, plan: UpgradePlan) -> Result<UpgradeAgentResponse, Error> {
        if !self.upgrades.begin() {
            return Err(UpgradeError::InProgress.into());
        }
        let result = self.upgrade_once(plan).await;
        if result.is_err() {
            self.operations.reopen();
            self.upgrades.end();
        }
        result
    }

    async fn upgrade_once(&self, plan: UpgradePlan) -> Result<UpgradeAgentResponse, Error> {
        let idle_timeout = plan.idle_timeout;
        tracing::info!(
            sha256 = %plan.sha256,
            version = %plan.expected_version,
            "agent upgrade: trial run of the new binary"
        );
        let staged = self.upgrades.stage(plan).await?;
        self.operations.close(RETRY_AFTER_MS);
        tracing::info!("agent upgrade: new operations refused; waiting for running ones");
        if tokio::time::timeout(idle_timeout, self.operations.wait_idle())
            .await
            .is_err()
        {
            return Err(UpgradeError::Busy {
                seconds: idle_timeout.as_secs() as u32,
            }
            .into());
        }
        let upgrades = self.upgrades.clone();
        blocking(move || upgrades.swap(staged).map_err(Error::from)).await?;
        tracing::info!("agent upgrade: binary swapped; restarting");
        Ok(UpgradeAgentResponse {
            previous_version: stamp::version().to_owned(),
            restart: crate::upgrade::restart_how().to_owned(),
        })
    }
}
