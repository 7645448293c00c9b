//! slipway-control-plane: the operator gRPC API, state in sled, and rollouts
//! that drive the agents.
#![forbid(unsafe_code)]

pub mod agents;
pub mod api;
pub mod audit;
pub mod audit_chain;
pub mod auth;
pub mod blobs;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod context;
pub mod deployment;
pub mod domain;
pub mod drift;
pub mod enrollment;
pub mod error;
pub mod events;
pub mod feed;
pub mod fleet;
pub mod git;
pub mod git_blob;
pub mod git_error;
pub mod history;
pub mod leading;
pub mod link_token;
pub mod locks;
pub mod migrate_command;
pub mod notify;
pub mod observe;
pub mod planning;
pub mod policy;
pub mod progress;
pub mod releases;
pub mod renewal;
pub mod replication;
pub mod rollout;
pub mod running;
pub mod secrets;
pub mod server;
pub mod sessions;
pub mod signing;
pub mod sources;
pub mod store;
pub mod triggers;
pub mod trust;
pub mod upgrades;
pub mod waiting;
pub mod web;
pub mod windows;

pub use config::Config;
pub use context::Context;
pub use server::{Error, run, serve};
