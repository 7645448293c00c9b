//! The `slipctl` binary: parse the command line and run it.

use std::process::ExitCode;

use clap::Parser;
use slipctl::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    slipway_proto::daemon::install_crypto_provider();
    let cli = Cli::parse();
    slipctl::run(cli).await
}
