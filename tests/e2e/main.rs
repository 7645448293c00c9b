//! End-to-end tests: real control plane and agents over real mutual TLS, with
//! per-test certificates, real git repositories and real symlinks.

mod activation;
mod agent_bounds;
mod agent_cancel;
mod agent_fencing;
mod agent_prepare;
mod audit;
mod bad_input;
mod ca_rotation;
mod crash;
mod deploy;
mod drift;
mod enrollment;
mod feed;
mod fencing_poison;
mod fixtures_faults;
mod grpcurl;
mod health;
mod history;
mod integrity;
mod limits;
mod logs;
mod metrics;
mod notify;
mod operations;
mod refusals;
mod release_rules;
mod restart;
mod resume;
mod retention;
mod rollout;
mod rollout_faults;
mod sources;
mod streams;
mod trust;
mod unknown_hosts;
