//! Generates the Rust code, its proto3-JSON serde impls and the reflection
//! descriptor set from `proto/slipway/**.proto`.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "slipway/agent/v1/agent.proto",
    "slipway/control/v1/approvals.proto",
    "slipway/control/v1/control.proto",
    "slipway/control/v1/feed.proto",
    "slipway/control/v1/notify.proto",
    "slipway/control/v1/triggers.proto",
    "slipway/control/v1/sources.proto",
    "slipway/control/v1/queue.proto",
    "slipway/control/v1/dashboard.proto",
    "slipway/control/v1/agent_upgrades.proto",
    "slipway/control/v1/secrets.proto",
    "slipway/control/v1/cluster.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-changed=slipway");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("slipway_descriptor.bin");

    let mut config = prost_build::Config::new();
    // A fresh machine has only cargo: use the protoc shipped inside
    // protoc-bin-vendored unless the caller chose one.
    if env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    // Well-known types come from pbjson-types so that they serialise as proto3 JSON.
    config
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types");
    // Secret values never reach a log through `{:?}`: see `src/redact.rs`.
    config.skip_debug([
        ".slipway.agent.v1.Secret",
        ".slipway.control.v1.SetSecretRequest",
    ]);
    // Malformed protobuf is the caller's fault: see `src/codec.rs`.
    tonic_prost_build::configure()
        .codec_path("crate::codec::Codec")
        .file_descriptor_set_path(&descriptor_path)
        .compile_with_config(config, PROTOS, &["."])?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".slipway"])?;
    Ok(())
}
