//! End-to-end tests: real control plane and agents over real mutual TLS, with
//! per-test certificates, real git repositories and real symlinks.

mod activation;
mod bad_input;
mod crash;
mod deploy;
mod grpcurl;
mod integrity;
mod operations;
mod refusals;
mod restart;
mod retention;
mod streams;
