//! Patroni inside a cluster's node containers: the nodes' names, Patroni's REST API
//! reached inside a node with `pgbox-ctl patroni-api` (port 8008 is never published;
//! the script reads the API password from the secrets mount), and the leader: the one
//! seam through which everything that needs the primary (backup, restore, psql,
//! scheduled runs) follows it. It lives with the container client, below the
//! commands that use it; `crate::cluster` builds and runs the nodes.

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::engine::{Engine, ExecSpec};
use crate::error::Fail;

/// Whether the project runs as a cluster (`[cluster] replicas` above 0).
pub fn clustered(s: &Settings) -> bool {
    s.replicas > 0
}

/// Node `i`'s member name in Patroni (`node0` .. `nodeN`).
pub fn member(i: u32) -> String {
    format!("node{i}")
}

/// Node `i`'s container.
pub fn node_container(s: &Settings, i: u32) -> String {
    format!("{}-{}", s.container_name(), member(i))
}

/// Node `i` of a container name, or None when it is not one of this project's nodes.
pub fn node_of(s: &Settings, container: &str) -> Option<u32> {
    container
        .strip_prefix(&format!("{}-node", s.container_name()))?
        .parse()
        .ok()
}

/// One member as `GET /cluster` reports it (Patroni 3.x and 4.x).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Member {
    pub name: String,
    /// `leader`, `sync_standby`, `replica`, `standby_leader` (4.x: `quorum_standby`).
    pub role: String,
    /// `running` (3.x), `streaming` (4.x replicas), `starting`, `stopped`, ...
    pub state: String,
    #[serde(default)]
    pub timeline: Option<u64>,
    /// Bytes behind the leader, or `unknown`; absent for the leader.
    #[serde(default)]
    pub lag: Option<serde_json::Value>,
}

impl Member {
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
    /// Running as it should: `running` or `streaming`.
    pub fn healthy(&self) -> bool {
        self.state == "running" || self.state == "streaming"
    }
}

#[derive(Debug, Deserialize)]
struct ClusterJson {
    #[serde(default)]
    members: Vec<Member>,
}

/// An API call's HTTP status and body (`0` when the API did not answer).
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Call the API of the node running in `container`.
pub async fn call(
    engine: &Engine,
    container: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<Reply> {
    let mut cmd: Vec<String> = ["pgbox-ctl", "patroni-api", method, path]
        .map(String::from)
        .to_vec();
    if let Some(b) = body {
        cmd.push(b.to_string());
    }
    let out = engine
        .exec_capture(
            container,
            &ExecSpec {
                cmd,
                user: Some("0".into()),
                env: Vec::new(),
            },
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    Ok(Reply {
        status: status.trim().parse().unwrap_or(0),
        body: body.trim().to_string(),
    })
}

/// The members from `GET /cluster`, asked of `container`.
pub async fn members(engine: &Engine, container: &str) -> anyhow::Result<Vec<Member>> {
    let r = call(engine, container, "GET", "/cluster", None).await?;
    if r.status != 200 {
        anyhow::bail!("Patroni's API answered {}: {}", r.status, r.body);
    }
    let c: ClusterJson = serde_json::from_str(&r.body)?;
    Ok(c.members)
}

/// The running node containers of the project, in order.
pub async fn running_nodes(engine: &Engine, s: &Settings) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..=s.replicas {
        let name = node_container(s, i);
        if let Some(c) = engine.inspect(&name).await? {
            if c.running {
                crate::container::spec::check_ownership(s, &c.labels)?;
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// The members as the first running node that answers sees them.
pub async fn cluster_view(engine: &Engine, s: &Settings) -> anyhow::Result<Option<Vec<Member>>> {
    for name in running_nodes(engine, s).await? {
        if let Ok(m) = members(engine, &name).await {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// The leader's container: from `/cluster`, or (etcd down) the node whose own
/// `/patroni` says it is the primary.
pub async fn leader(engine: &Engine, s: &Settings) -> anyhow::Result<String> {
    let nodes = running_nodes(engine, s).await?;
    if nodes.is_empty() {
        return Err(
            Fail::new(format!("the cluster of `{}` is not running", s.project))
                .hint("start it with `pgbox up`")
                .into(),
        );
    }
    for name in &nodes {
        if let Ok(m) = members(engine, name).await {
            if let Some(l) = m.iter().find(|m| m.is_leader() && m.healthy()) {
                let container = format!("{}-{}", s.container_name(), l.name);
                if nodes.contains(&container) {
                    return Ok(container);
                }
            }
            break;
        }
    }
    for name in &nodes {
        if let Ok(r) = call(engine, name, "GET", "/patroni", None).await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body) {
                let role = v.get("role").and_then(|r| r.as_str()).unwrap_or("");
                let state = v.get("state").and_then(|r| r.as_str()).unwrap_or("");
                if (role == "master" || role == "primary") && state == "running" {
                    return Ok(name.clone());
                }
            }
        }
    }
    Err(Fail::new(format!("the cluster of `{}` has no leader now", s.project))
        .hint("a failover may be in progress: try again in a few seconds; `pgbox status` shows every node")
        .into())
}

/// Whether this node's Patroni flags a restart as pending (`GET /patroni`).
pub async fn pending_restart(engine: &Engine, container: &str) -> anyhow::Result<bool> {
    let r = call(engine, container, "GET", "/patroni", None).await?;
    if r.status != 200 {
        anyhow::bail!("Patroni's API answered {}: {}", r.status, r.body);
    }
    let v: serde_json::Value = serde_json::from_str(&r.body)?;
    Ok(v.get("pending_restart").and_then(|p| p.as_bool()) == Some(true))
}

/// PGDATA inside a node: Patroni's `data_dir` in patroni.yml.
pub fn pgdata() -> String {
    format!("{}/pgdata", crate::templates::DATA_MOUNT)
}

/// As postgres inside `container`: (exit code, stdout, stderr).
async fn exec_postgres(
    engine: &Engine,
    container: &str,
    cmd: &[&str],
) -> anyhow::Result<(i64, String, String)> {
    let out = engine
        .exec_capture(
            container,
            &ExecSpec {
                cmd: cmd.iter().map(|c| c.to_string()).collect(),
                user: Some("postgres".into()),
                env: Vec::new(),
            },
        )
        .await?;
    Ok((
        out.code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The dynamic configuration this node has applied: Patroni saves it to
/// `patroni.dynamic.json` in PGDATA in the same loop in which it rewrote
/// postgresql.conf, reloaded PostgreSQL and flagged `pending_restart`. None when
/// the file is missing or unreadable.
pub async fn applied_config(
    engine: &Engine,
    container: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let path = format!("{}/patroni.dynamic.json", pgdata());
    let (code, out, _) = exec_postgres(engine, container, &["cat", &path]).await?;
    Ok((code == 0)
        .then(|| serde_json::from_str(&out).ok())
        .flatten())
}

/// Check pgbox's rendered postgresql.conf on its own with `postgres -C` inside a
/// node: every value in it, unknown names included, as the server would read them.
/// (PGDATA's postgresql.conf is Patroni's, which names each of its parameters again
/// after including pgbox's file, and PostgreSQL reads only the last of duplicates.)
/// `Err` holds the server's complaint.
pub async fn check_config(engine: &Engine, container: &str) -> anyhow::Result<Result<(), String>> {
    let conf = format!(
        "--config-file={}/postgresql.conf",
        crate::container::spec::CONF_TARGET
    );
    let data = pgdata();
    let (code, out, err) = exec_postgres(
        engine,
        container,
        &["postgres", "-D", &data, &conf, "-C", "max_connections"],
    )
    .await?;
    if code == 0 {
        return Ok(Ok(()));
    }
    let text = format!("{out}{err}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["LOG:", "FATAL:", "ERROR:", "DETAIL:", "HINT:"]
                .iter()
                .any(|k| l.contains(k))
        })
        .collect();
    Ok(Err(if lines.is_empty() {
        text.trim().to_string()
    } else {
        lines.join("\n")
    }))
}

/// Node number of a member name (`node2` -> 2).
pub fn member_index(s: &Settings, name: &str) -> Option<u32> {
    node_of(s, &format!("{}-{name}", s.container_name()))
}
