//! What the control plane's records mean, apart from how they are stored or
//! sent: the events of a deployment and which of them end it, and a
//! release's manifest.

pub mod catalog;
pub mod event;
pub mod manifest;
