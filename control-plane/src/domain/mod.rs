//! What the control plane's records mean, apart from how they are stored or
//! sent: the events of a deployment and which of them end it, a release's
//! manifest, and hosts' health over time.

pub mod catalog;
pub mod event;
pub mod health;
pub mod manifest;
