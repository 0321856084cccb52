//! Args of the observability commands: `stats`, `top`, `metrics`.

use std::net::SocketAddr;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {}

#[derive(Debug, Clone, Args)]
pub struct TopArgs {}

#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Address to serve `/metrics` on
    #[arg(long, value_name = "ADDR:PORT", default_value = crate::observe::service::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Allow a non-loopback `--listen` address (the endpoint has no authentication)
    #[arg(long)]
    pub allow_remote: bool,

    /// Print a systemd unit that runs this endpoint as a service, and exit
    #[arg(long)]
    pub systemd_unit: bool,
}
