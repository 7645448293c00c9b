//! One module per subcommand; each owns its flags (clap derive, doc comments
//! are the help) and a `run` that calls the API and hands the answer to
//! [`crate::output`].

pub mod activation;
pub mod agent;
pub mod app;
pub mod approve;
pub mod audit;
pub mod build;
pub mod cancel;
pub mod cluster;
pub mod completions;
pub mod context;
pub mod credentials;
pub mod dashboard;
pub mod deploy;
pub mod deployment;
pub mod drift;
pub mod env;
pub mod events;
mod follow;
pub mod gates;
pub mod health;
pub mod history;
pub mod host;
mod live;
pub mod lock;
pub mod man;
pub mod notify;
pub mod pki;
pub mod policy;
pub mod queue;
pub mod release;
pub mod revoke;
pub mod rollback;
pub mod rollbacks;
pub mod runtime;
pub mod secret;
pub mod source;
mod source_key;
pub mod stats;
pub mod status;
mod times;
pub mod watch;
pub mod webhook;

pub use follow::{StreamLost, Unsuccessful};
