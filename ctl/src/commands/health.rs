//! `slipctl health`: the hosts' health over a range, as the control plane
//! sampled it: state now, uptime, response-time percentiles and error rate
//! of the apps' health probes, and a sparkline per metric.

use clap::Args;
use pbjson_types::Timestamp;
use slipway_proto::control::v1::GetHealthSeriesRequest;

use super::times;
use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Characters of a sparkline unless --step says otherwise.
const WIDTH: u64 = 48;
/// The range unless --since says otherwise.
const DEFAULT_SECONDS: i64 = 24 * 3600;

/// Flags of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Only the hosts of this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only this host
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Start of the range: RFC 3339, a date, or an age such as 24h or 7d
    /// (default 24h)
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub since: Option<Timestamp>,
    /// End of the range (default now)
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub until: Option<Timestamp>,
    /// Seconds per point of the sparklines (default: the range in 48)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub step: Option<u32>,
}

impl HealthArgs {
    /// The request these flags make, the clock reading `now`.
    pub fn request(&self, now: Timestamp) -> GetHealthSeriesRequest {
        let to = self.until.unwrap_or(now);
        let from = self.since.unwrap_or(Timestamp {
            seconds: to.seconds - DEFAULT_SECONDS,
            nanos: 0,
        });
        let span = (to.seconds - from.seconds).max(1) as u64;
        let step = self
            .step
            .unwrap_or_else(|| u32::try_from(span.div_ceil(WIDTH)).unwrap_or(u32::MAX));
        GetHealthSeriesRequest {
            host: self.host.clone().unwrap_or_default(),
            environment: self.env.clone().unwrap_or_default(),
            from: Some(from),
            to: Some(to),
            step_seconds: step,
        }
    }
}

/// Prints a row per host, then each host's sparklines.
pub async fn run(args: &HealthArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = args.request(slipway_proto::now());
    let response = rpc(conn.api().await?.hosts().get_health_series(request).await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => Ok(output::emit(&output::health(&response))?),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Command};

    #[test]
    fn a_day_in_48_points_unless_told_otherwise() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(std::iter::once("slipctl").chain(args.iter().copied()));
            match cli.map(|c| c.command) {
                Ok(Command::Health(args)) => Ok(args),
                Ok(other) => panic!("not health: {other:?}"),
                Err(err) => Err(err),
            }
        };
        let now = pbjson_types::Timestamp {
            seconds: 1_795_443_840,
            nanos: 0,
        };
        let args = parse(&["health", "--env", "prod"]).unwrap();
        let request = args.request(now);
        assert_eq!(request.environment, "prod");
        assert_eq!(request.step_seconds, 1800);
        assert_eq!(request.from.unwrap().seconds, now.seconds - 86_400);
        let args = parse(&["health", "--host", "web-1", "--since", "2h", "--step", "60"]).unwrap();
        let request = args.request(now);
        assert_eq!((request.host.as_str(), request.step_seconds), ("web-1", 60));
        for bad in [
            &["health", "--step", "0"][..],
            &["health", "--since", "soon"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
