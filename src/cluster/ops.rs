//! Operations on a running cluster: the per-node status (container state, and
//! Patroni's role, state, timeline and lag), and a switchover through Patroni's
//! REST API.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{etcd_container, member, node_container, node_port};
use crate::config::Settings;
use crate::container::patroni::{self as api, Member};
use crate::container::psql;
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

/// One node in `pgbox status`.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub container: String,
    pub port: u16,
    /// The engine's state of the container (`running`, `exited`, `missing`).
    pub container_state: String,
    /// Patroni's role (`leader`, `sync_standby`, `replica`), when known.
    pub role: Option<String>,
    pub state: Option<String>,
    pub timeline: Option<u64>,
    /// Replay lag in bytes, measured on the leader (`pg_stat_replication`).
    pub lag_bytes: Option<i64>,
}

/// `pgbox status` of a cluster.
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub project: String,
    pub replicas: u32,
    pub synchronous: bool,
    pub leader: Option<String>,
    pub etcd: String,
    pub nodes: Vec<NodeStatus>,
    /// A leader, and every node running in Patroni's view.
    pub healthy: bool,
    pub url: String,
}

/// Gather the cluster's status.
pub async fn status(engine: &Engine, s: &Settings) -> anyhow::Result<ClusterStatus> {
    let members = api::cluster_view(engine, s).await?.unwrap_or_default();
    let leader = members.iter().find(|m| m.is_leader()).cloned();
    let lags = match &leader {
        Some(l) => lags(engine, s, &format!("{}-{}", s.container_name(), l.name)).await,
        None => Vec::new(),
    };
    let mut nodes = Vec::new();
    for i in 0..=s.replicas {
        let name = node_container(s, i);
        let c = engine.inspect(&name).await?;
        let m: Option<&Member> = members.iter().find(|m| m.name == member(i));
        let lag = if m.is_some_and(|m| m.is_leader()) {
            Some(0)
        } else {
            lags.iter().find(|(n, _)| *n == member(i)).map(|(_, l)| *l)
        };
        nodes.push(NodeStatus {
            node: member(i),
            container: name,
            port: node_port(s, i),
            container_state: c.map(|c| c.state).unwrap_or_else(|| "missing".into()),
            role: m.map(|m| m.role.clone()),
            state: m.map(|m| m.state.clone()),
            timeline: m.and_then(|m| m.timeline),
            lag_bytes: lag,
        });
    }
    let etcd = engine
        .inspect(&etcd_container(s))
        .await?
        .map(|c| c.state)
        .unwrap_or_else(|| "missing".into());
    let healthy = leader.as_ref().is_some_and(|l| l.healthy())
        && nodes.iter().all(|n| {
            n.container_state == "running"
                && n.state
                    .as_deref()
                    .is_some_and(|st| st == "running" || st == "streaming")
        });
    Ok(ClusterStatus {
        project: s.project.clone(),
        replicas: s.replicas,
        synchronous: s.synchronous,
        leader: leader.map(|l| l.name),
        etcd,
        nodes,
        healthy,
        url: super::url(s, None, false),
    })
}

/// (member, replay lag in bytes) from the leader's `pg_stat_replication`.
async fn lags(engine: &Engine, s: &Settings, leader: &str) -> Vec<(String, i64)> {
    let q = "select application_name, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), -1)::bigint from pg_stat_replication";
    let Ok(out) = psql::sql(engine, leader, s, "postgres", q).await else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once('|')?;
            Some((n.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Print a status: one row per node, then etcd and the URL.
pub fn print(st: &ClusterStatus, p: &Printer) -> anyhow::Result<()> {
    if p.json() {
        p.data(serde_json::to_string_pretty(st)?);
        return Ok(());
    }
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    p.data(format!(
        "{:<7} {:<6} {:<10} {:<13} {:<10} {:>8} {:>10}",
        "node", "port", "container", "role", "state", "timeline", "lag"
    ));
    for n in &st.nodes {
        p.data(format!(
            "{:<7} {:<6} {:<10} {:<13} {:<10} {:>8} {:>10}",
            n.node,
            n.port,
            n.container_state,
            dash(n.role.clone()),
            dash(n.state.clone()),
            dash(n.timeline.map(|t| t.to_string())),
            dash(n.lag_bytes.map(|l| format!("{l} B"))),
        ));
    }
    p.data(format!("etcd    {}", st.etcd));
    p.data(format!(
        "mode    {}",
        if st.synchronous {
            "synchronous"
        } else {
            "asynchronous"
        }
    ));
    p.data(format!("url     {}", st.url));
    Ok(())
}

/// Move the leader to `to` (a node name or number), or to any eligible replica
/// (the synchronous standby in synchronous mode); waits until the new leader runs.
pub async fn switchover(
    engine: &Engine,
    s: &Settings,
    to: Option<&str>,
    p: &Printer,
) -> anyhow::Result<String> {
    let leader = api::leader(engine, s).await?;
    let members = api::members(engine, &leader).await?;
    let current = members
        .iter()
        .find(|m| m.is_leader())
        .map(|m| m.name.clone())
        .ok_or_else(|| Fail::new("the cluster has no leader now"))?;
    let candidate = match to {
        Some(t) => {
            let c = super::resolve_node(s, t)?;
            let i = super::node_of(s, &c).ok_or_else(|| {
                Fail::new(format!("`{t}` is etcd, not a PostgreSQL node")).code(EXIT_USAGE)
            })?;
            let name = member(i);
            if name == current {
                return Err(Fail::new(format!("{name} already leads"))
                    .code(EXIT_USAGE)
                    .into());
            }
            if s.synchronous {
                if let Some(sync) = members.iter().find(|m| m.role == "sync_standby") {
                    if sync.name != name {
                        return Err(Fail::new(format!(
                            "in synchronous mode only the synchronous standby ({}) can take over without losing acknowledged commits; {name} is not it",
                            sync.name
                        ))
                        .hint(format!("run `pgbox switchover --to {}`, or `pgbox switchover` alone", sync.name))
                        .code(EXIT_USAGE)
                        .into());
                    }
                }
            }
            Some(name)
        }
        None => None,
    };
    let body = match &candidate {
        Some(c) => serde_json::json!({"leader": current, "candidate": c}),
        None => serde_json::json!({"leader": current}),
    }
    .to_string();
    let bar = p.spinner(format!("switching over from {current}"));
    let r = api::call(engine, &leader, "POST", "/switchover", Some(&body)).await;
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            bar.finish_and_clear();
            return Err(e);
        }
    };
    if r.status != 200 {
        bar.finish_and_clear();
        return Err(Fail::new(format!(
            "Patroni refused the switchover ({}): {}",
            r.status, r.body
        ))
        .hint("`pgbox status` shows which nodes can take over")
        .into());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(m)) = api::cluster_view(engine, s).await {
            if let Some(l) = m.iter().find(|m| m.is_leader() && m.healthy()) {
                if l.name != current {
                    bar.finish_and_clear();
                    p.done(format!("{} leads now (was {current})", l.name));
                    return Ok(l.name.clone());
                }
            }
        }
        if Instant::now() > deadline {
            bar.finish_and_clear();
            return Err(
                Fail::new("the switchover was accepted but no new leader runs after 60s")
                    .hint("`pgbox status` shows every node")
                    .into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
