//! End-to-end tests: real control plane and agents over real mutual TLS, with
//! per-test certificates, real git repositories and real symlinks.

mod bad_input;
mod deploy;
mod grpcurl;
mod refusals;
mod restart;
mod streams;
