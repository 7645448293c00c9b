//! What both daemons share for being observed: the metrics listener
//! (`/metrics`, `/healthz`, `/readyz`) with its readiness switch, the
//! setting that places or disables it, the tower layer that counts gRPC
//! calls by method and code, and one-line registration of a metric.

mod grpc;
mod http;
mod register;

use std::{net::SocketAddr, str::FromStr};

pub use grpc::{GrpcCalls, GrpcMetricsLayer, KnownMethods};
pub use http::{Endpoint, Readiness, serve, serve_per_connection, serve_router};
pub use register::{Histograms, histograms, register};

/// Where a daemon serves its metrics: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsListen {
    /// No metrics listener.
    Off,
    /// Listen here (port 0: any free port, logged at start).
    At(SocketAddr),
}

impl MetricsListen {
    /// The address to bind, if any.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            MetricsListen::Off => None,
            MetricsListen::At(addr) => Some(addr),
        }
    }
}

/// A metrics setting that is neither `off` nor an address.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither `off` nor an address such as 127.0.0.1:9480")]
pub struct BadMetricsListen(String);

impl FromStr for MetricsListen {
    type Err = BadMetricsListen;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(MetricsListen::Off);
        }
        text.parse()
            .map(MetricsListen::At)
            .map_err(|_| BadMetricsListen(text.to_owned()))
    }
}

impl<'de> serde::Deserialize<'de> for MetricsListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_or_an_address() {
        assert_eq!("off".parse::<MetricsListen>().unwrap(), MetricsListen::Off);
        assert_eq!(
            "127.0.0.1:9480".parse::<MetricsListen>().unwrap().addr(),
            Some("127.0.0.1:9480".parse().unwrap())
        );
        let err = "localhost".parse::<MetricsListen>().unwrap_err();
        assert!(err.to_string().contains("neither `off`"), "{err}");
    }
}
