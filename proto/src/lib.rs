//! Slipway's contract: the generated gRPC code for the agent and control-plane
//! APIs, plus what both sides must agree on (identity in certificates, name and
//! path rules, how connections are made).
#![forbid(unsafe_code)]

pub mod activation;
pub mod codec;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod limits;
pub mod observe;
pub mod reason;
pub mod reflection;
pub mod revocation;
pub mod runtime;
pub mod secrets;
pub mod tls;
pub mod validate;
pub mod words;

/// `slipway.agent.v1`: the API every host's agent serves to the control plane.
pub mod agent {
    /// Version 1.
    pub mod v1 {
        // The generated code itself reads and writes deprecated fields.
        #![allow(missing_docs, deprecated, clippy::all, clippy::pedantic)]
        tonic::include_proto!("slipway.agent.v1");
        include!(concat!(env!("OUT_DIR"), "/slipway.agent.v1.serde.rs"));
    }
}

/// `slipway.control.v1`: the operator API of the control plane.
pub mod control {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("slipway.control.v1");
        include!(concat!(env!("OUT_DIR"), "/slipway.control.v1.serde.rs"));
    }
}

/// The version of the agent contract this crate describes, reported by
/// agents in `HostInfo.contract_version`. 2 added PrepareRelease,
/// ActivateRelease, `ProgressEvent.run_id` and error reasons
/// ([`reason`]), 3 CheckDrift and RepairRelease, 4 GetHealth (continuous
/// probes), https health checks and `HealthCheck.probe_interval_seconds`,
/// 5 runtime actions and drains (`ActivationSpec.runtime_action`, `.drain`),
/// agent upgrades (UploadAgentBinary, UpgradeAgent, `HostInfo.last_upgrade`),
/// secrets (the `secrets` request fields, `ActivationSpec.secrets_file` and
/// ApplySecrets); an agent that reports 0 predates the field (version 1).
pub const AGENT_CONTRACT_VERSION: u32 = 5;

/// The first agent contract with UploadAgentBinary and UpgradeAgent.
pub const AGENT_UPGRADE_CONTRACT: u32 = 5;

/// The `step` of an agent's health check events (`ProgressEvent.step`):
/// each attempt is one event, at INFO when it passed and WARN when it
/// failed.
pub const HEALTH_CHECK_STEP: &str = "health-check";

/// Encoded `FileDescriptorSet` of every Slipway proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("slipway_descriptor");

/// Largest gRPC message either side accepts. A manifest of 100,000 files is
/// about 15 MB; file contents always travel in chunks of [`CHUNK_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Size of one content chunk on the wire.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Converts a `SystemTime` into a protobuf timestamp.
pub fn timestamp(time: std::time::SystemTime) -> pbjson_types::Timestamp {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

/// The current time as a protobuf timestamp.
pub fn now() -> pbjson_types::Timestamp {
    timestamp(std::time::SystemTime::now())
}
