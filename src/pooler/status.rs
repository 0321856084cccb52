//! The pooler's part of `pgbox status`: its container, version, and pool use from
//! `SHOW POOLS` and `SHOW STATS`, summed over the project's pools (the admin
//! console's own `pgbouncer` pool left out).

use serde::Serialize;

use super::admin::{Console, Row};
use super::container_name;
use crate::config::Settings;
use crate::engine::Engine;

#[derive(Debug, Serialize, Default)]
pub struct PoolerStatus {
    pub container: String,
    pub state: String,
    pub ready: bool,
    pub version: Option<String>,
    pub mode: String,
    pub port: u16,
    pub pool_size: u32,
    pub url: String,
    /// Clients with a server connection, and waiting for one.
    pub clients_active: u64,
    pub clients_waiting: u64,
    /// Server connections in use and idle.
    pub servers_active: u64,
    pub servers_idle: u64,
    /// Longest current wait, in seconds.
    pub max_wait_s: u64,
    /// Since the pooler started: transactions and queries served.
    pub transactions: u64,
    pub queries: u64,
}

fn sum(rows: &[Row], col: &str) -> u64 {
    rows.iter()
        .filter(|r| r.get("database").map(String::as_str) != Some("pgbouncer"))
        .filter_map(|r| r.get(col)?.parse::<u64>().ok())
        .sum()
}

fn max(rows: &[Row], col: &str) -> u64 {
    rows.iter()
        .filter_map(|r| r.get(col)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// The pooler's status, or None when `[pooler]` is off and no pooler container exists.
pub async fn status(engine: &Engine, s: &Settings) -> anyhow::Result<Option<PoolerStatus>> {
    let name = container_name(s);
    let info = engine.inspect(&name).await?;
    if !s.pooler.enabled && info.is_none() {
        return Ok(None);
    }
    let mut st = PoolerStatus {
        container: name,
        state: info
            .as_ref()
            .map_or_else(|| "missing".into(), |c| c.state.clone()),
        mode: s.pooler.mode.to_string(),
        port: s.pooler.port,
        pool_size: s.pooler.pool_size,
        url: crate::connection::pooled_url(s, None),
        ..Default::default()
    };
    if !info.is_some_and(|c| c.running) {
        return Ok(Some(st));
    }
    let Ok(console) = Console::connect(s).await else {
        return Ok(Some(st));
    };
    st.version = console.version().await.ok();
    if let Ok(pools) = console.show("POOLS").await {
        st.ready = true;
        st.clients_active = sum(&pools, "cl_active");
        st.clients_waiting = sum(&pools, "cl_waiting");
        st.servers_active = sum(&pools, "sv_active");
        st.servers_idle = sum(&pools, "sv_idle");
        st.max_wait_s = max(&pools, "maxwait");
    }
    if let Ok(stats) = console.show("STATS").await {
        st.transactions = sum(&stats, "total_xact_count");
        st.queries = sum(&stats, "total_query_count");
    }
    Ok(Some(st))
}

impl PoolerStatus {
    /// The rows `pgbox status` prints under the server's.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "pooler",
                format!(
                    "{} ({}{})",
                    self.version.clone().unwrap_or_else(|| "PgBouncer".into()),
                    self.state,
                    if self.ready { ", ready" } else { ", not answering" }
                ),
            ),
            ("pooled url", self.url.clone()),
            (
                "pools",
                format!(
                    "{} mode, pool_size {}; clients {} active, {} waiting; servers {} active, {} idle; max wait {}s",
                    self.mode,
                    self.pool_size,
                    self.clients_active,
                    self.clients_waiting,
                    self.servers_active,
                    self.servers_idle,
                    self.max_wait_s
                ),
            ),
            (
                "served",
                format!(
                    "{} transactions, {} queries since the pooler started",
                    self.transactions, self.queries
                ),
            ),
        ]
    }
}
