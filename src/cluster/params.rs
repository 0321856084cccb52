//! A running cluster's PostgreSQL settings kept in line with pgbox.toml.
//!
//! Every parameter pgbox.toml sets (`max_connections`, the memory settings,
//! `[postgres.settings]`, and the replication settings pgbox fixes) lives in
//! Patroni's dynamic configuration in etcd, which Patroni documents as the place for
//! settings shared by the whole cluster: it applies them to every node, and the ones
//! replicas must hold at least as high as the primary (`max_connections`,
//! `max_worker_processes`, ...) can be set nowhere else. `synchronous = true|false`
//! is `synchronous_mode` there. pgbox owns `postgresql.parameters` in it: one
//! removed from pgbox.toml is removed there (reset to its default).
//!
//! `pgbox up` compares it with pgbox.toml and, when they differ: checks the rendered
//! postgresql.conf with `postgres -C` on a node (a bad value never reaches Patroni,
//! which would drop it silently or fail the next start), `PATCH /config`, waits
//! until every node has applied it (Patroni saves the configuration it applied as
//! `patroni.dynamic.json` in PGDATA in the loop that reloaded PostgreSQL), then
//! restarts the nodes Patroni flags `pending_restart`, one at a time with
//! `POST /restart` and `restart_pending`: the replicas first and the leader last, in
//! place, so it keeps leading. When one of those minimums goes down the leader goes
//! first and each replica once it has replayed the leader's new values: a replica
//! restarted first would keep the old value from its control file.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::member;
use crate::config::Settings;
use crate::container::patroni as api;
use crate::container::psql;
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;
use crate::server::conf::Rendered;

/// Parameters a hot standby needs at least as high as its primary's.
const STANDBY_MINIMUMS: [&str; 5] = [
    "max_connections",
    "max_prepared_transactions",
    "max_locks_per_transaction",
    "max_worker_processes",
    "max_wal_senders",
];

/// How long every node gets to apply a change, and a node to restart.
const APPLY_WAIT: Duration = Duration::from_secs(90);

/// The parameters pgbox puts in the dynamic configuration (also the bootstrap ones
/// in patroni.yml): the replication settings, pgbox.toml's `[postgres]` keys, then
/// `[postgres.settings]`, later ones winning.
pub fn parameters(s: &Settings) -> BTreeMap<String, Value> {
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    m.insert("max_connections".into(), json!(s.max_connections));
    m.insert("max_wal_senders".into(), json!(10));
    m.insert("max_replication_slots".into(), json!(10));
    m.insert("wal_keep_size".into(), json!("128MB"));
    m.insert("hot_standby".into(), json!("on"));
    m.insert("wal_log_hints".into(), json!("on"));
    m.insert("shared_buffers".into(), json!(s.shared_buffers));
    m.insert("effective_cache_size".into(), json!(s.effective_cache_size));
    m.insert("work_mem".into(), json!(s.work_mem));
    for (name, literal) in &s.pg_settings {
        m.insert(name.clone(), json!(unquote(literal)));
    }
    m
}

/// The value of a postgresql.conf literal as pgbox.toml's settings are rendered
/// (`'it''s'` -> `it's`); Patroni quotes it again when it writes postgresql.conf.
fn unquote(literal: &str) -> String {
    match literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
    {
        Some(inner) => inner.replace("''", "'").replace("\\\\", "\\"),
        None => literal.to_string(),
    }
}

/// A JSON value as the text PostgreSQL reads.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One parameter whose value in etcd differs from pgbox.toml's.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub name: String,
    /// None: not set in etcd.
    pub old: Option<String>,
    /// None: removed from pgbox.toml (PostgreSQL's default).
    pub new: Option<Value>,
}

/// What differs between the dynamic configuration and pgbox.toml.
#[derive(Debug, Default)]
pub struct Drift {
    pub params: Vec<Change>,
    /// `synchronous_mode` to set, when it differs.
    pub synchronous: Option<bool>,
}

/// Compare `GET /config`'s answer with pgbox.toml.
pub fn drift(config: &Value, s: &Settings) -> Drift {
    let current = config
        .pointer("/postgresql/parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let wanted = parameters(s);
    let mut params = Vec::new();
    for (name, value) in &wanted {
        let old = current.get(name).map(text);
        if old.as_deref() != Some(text(value).as_str()) {
            params.push(Change {
                name: name.clone(),
                old,
                new: Some(value.clone()),
            });
        }
    }
    for (name, value) in &current {
        if !wanted.contains_key(name) {
            params.push(Change {
                name: name.clone(),
                old: Some(text(value)),
                new: None,
            });
        }
    }
    let synchronous = (config.get("synchronous_mode").and_then(Value::as_bool)
        != Some(s.synchronous))
    .then_some(s.synchronous);
    Drift {
        params,
        synchronous,
    }
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.synchronous.is_none()
    }

    /// The body of `PATCH /config` (null removes a parameter).
    pub fn patch(&self) -> Value {
        let mut body = json!({});
        if !self.params.is_empty() {
            let params: serde_json::Map<String, Value> = self
                .params
                .iter()
                .map(|c| (c.name.clone(), c.new.clone().unwrap_or(Value::Null)))
                .collect();
            body["postgresql"] = json!({ "parameters": params });
        }
        if let Some(on) = self.synchronous {
            body["synchronous_mode"] = json!(on);
        }
        body
    }

    /// Whether a parameter replicas need at least as high as the primary goes down
    /// (or back to its default): then the leader restarts first.
    pub fn lowers_a_standby_minimum(&self) -> bool {
        self.params.iter().any(|c| {
            STANDBY_MINIMUMS.contains(&c.name.as_str())
                && match (&c.old, &c.new) {
                    (Some(old), Some(new)) => {
                        match (old.parse::<i64>(), text(new).parse::<i64>()) {
                            (Ok(o), Ok(n)) => n < o,
                            _ => true,
                        }
                    }
                    (Some(_), None) => true,
                    (None, _) => false,
                }
        })
    }

    /// `work_mem` 4096kB -> 8MB, `jit` off -> (default), synchronous replication off.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .params
            .iter()
            .map(|c| {
                format!(
                    "`{}` {} -> {}",
                    c.name,
                    c.old.as_deref().unwrap_or("(unset)"),
                    c.new
                        .as_ref()
                        .map(text)
                        .unwrap_or_else(|| "(default)".into())
                )
            })
            .collect();
        if let Some(on) = self.synchronous {
            parts.push(format!(
                "synchronous replication {}",
                if on { "on" } else { "off" }
            ));
        }
        parts.join(", ")
    }

    fn names(&self) -> String {
        self.params
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A running node: member name and container.
struct Node {
    name: String,
    container: String,
}

/// Bring the cluster's settings in line with pgbox.toml (see the module docs). The
/// cluster is healthy and the project lock held; `rendered` is this `up`'s
/// rendering of postgresql.conf and pg_hba.conf, put back if the check refuses it.
pub async fn apply(
    engine: &Engine,
    s: &Settings,
    rendered: &Rendered,
    p: &Printer,
) -> anyhow::Result<()> {
    let leader = api::leader(engine, s).await?;
    let r = api::call(engine, &leader, "GET", "/config", None).await?;
    if r.status != 200 {
        return Err(Fail::new(format!(
            "cannot read the cluster's configuration from Patroni ({}): {}",
            r.status, r.body
        ))
        .hint("`pgbox status` shows every node; `pgbox logs etcd` etcd's log")
        .into());
    }
    let config: Value = serde_json::from_str(&r.body)?;
    let d = drift(&config, s);
    let nodes = nodes(engine, s).await?;
    if d.is_empty() {
        // pg_hba.conf, or a postgresql.conf line that is not a parameter pgbox puts
        // in etcd (a new pgbox's template): Patroni reloads PostgreSQL on
        // `POST /reload`. Not after the files' first rendering (a new cluster).
        if rendered.previous.iter().any(|(_, old)| old.is_some()) {
            for n in &nodes {
                let r = api::call(engine, &n.container, "POST", "/reload", None).await?;
                if r.status >= 300 {
                    return Err(Fail::new(format!(
                        "Patroni on {} refused the reload ({}): {}",
                        n.name, r.status, r.body
                    ))
                    .into());
                }
            }
            p.done("reloaded every node for the changed configuration files");
        }
        p.info("the cluster's settings are up to date with pgbox.toml");
        return Ok(());
    }
    if !d.params.is_empty() {
        if let Err(why) = api::check_config(engine, &leader).await? {
            if let Err(rb) = rendered.roll_back() {
                p.warn(rb.message);
            }
            return Err(Fail::new(format!(
                "PostgreSQL refused the new settings: {why}"
            ))
            .hint("fix the value in pgbox.toml and run `pgbox up` again; the cluster keeps its old settings")
            .into());
        }
    }
    p.info(format!("settings changed in pgbox.toml: {}", d.describe()));
    let r = api::call(
        engine,
        &leader,
        "PATCH",
        "/config",
        Some(&d.patch().to_string()),
    )
    .await?;
    if r.status != 200 {
        return Err(Fail::new(format!(
            "Patroni refused the new settings ({}): {}",
            r.status, r.body
        ))
        .hint("run `pgbox up` again; `pgbox logs node0` shows Patroni's log")
        .into());
    }
    let wanted: Value = serde_json::from_str(&r.body)?;
    wait_applied(engine, &nodes, &wanted, p).await?;
    if d.params.is_empty() {
        p.done(format!("applied {} on every node", d.describe()));
        return Ok(());
    }

    let mut pending = Vec::new();
    for n in &nodes {
        if api::pending_restart(engine, &n.container).await? {
            pending.push(n);
        }
    }
    if pending.is_empty() {
        p.done(format!(
            "applied {} on every node with a reload (no restart needed)",
            d.names()
        ));
        return Ok(());
    }
    let mut needing: Vec<String> = Vec::new();
    for n in &pending {
        let q = "select name from pg_settings where pending_restart order by name";
        if let Ok(out) = psql::sql(engine, &n.container, s, "postgres", q).await {
            for name in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let name = format!("`{name}`");
                if !needing.contains(&name) {
                    needing.push(name);
                }
            }
        }
    }
    let what = if needing.is_empty() {
        d.names()
    } else {
        needing.join(", ")
    };

    let leader_first = d.lowers_a_standby_minimum();
    let (lead, replicas): (Vec<&Node>, Vec<&Node>) =
        nodes.iter().partition(|n| n.container == leader);
    let order: Vec<&Node> = if leader_first {
        lead.iter().chain(replicas.iter()).copied().collect()
    } else {
        replicas.iter().chain(lead.iter()).copied().collect()
    };
    let mut restarted = Vec::new();
    let mut leader_restarted = false;
    for n in order {
        let is_leader = n.container == leader;
        if !api::pending_restart(engine, &n.container).await? {
            continue;
        }
        if leader_restarted {
            wait_replayed(engine, s, &leader, n).await?;
        }
        let took = restart(engine, s, n, is_leader, &what, p).await?;
        leader_restarted |= is_leader && leader_first;
        restarted.push(if is_leader {
            format!(
                "{} (the leader, in place: {:.1}s)",
                n.name,
                took.as_secs_f64()
            )
        } else {
            n.name.clone()
        });
    }
    let mut still = Vec::new();
    for n in &nodes {
        if api::pending_restart(engine, &n.container).await? {
            still.push(n.name.clone());
        }
    }
    if !still.is_empty() {
        return Err(Fail::new(format!(
            "{} still wait for a restart to apply {what} after pgbox restarted them",
            still.join(", ")
        ))
        .hint("run `pgbox up` again; `pgbox status` shows every node")
        .into());
    }
    p.done(format!(
        "applied {} on every node: restarted {} for {what}",
        d.names(),
        restarted.join(", then ")
    ));
    Ok(())
}

/// The running nodes, in order.
async fn nodes(engine: &Engine, s: &Settings) -> anyhow::Result<Vec<Node>> {
    Ok(api::running_nodes(engine, s)
        .await?
        .into_iter()
        .filter_map(|c| {
            super::node_of(s, &c).map(|i| Node {
                name: member(i),
                container: c,
            })
        })
        .collect())
}

/// Until every node's Patroni has applied `wanted` (the configuration `PATCH`
/// returned): it does so in its next loop.
async fn wait_applied(
    engine: &Engine,
    nodes: &[Node],
    wanted: &Value,
    p: &Printer,
) -> anyhow::Result<()> {
    let bar = p.spinner("waiting for every node to apply the new settings");
    let deadline = Instant::now() + APPLY_WAIT;
    let mut left: Vec<&Node> = nodes.iter().collect();
    loop {
        let mut next = Vec::new();
        for n in left {
            if api::applied_config(engine, &n.container).await?.as_ref() != Some(wanted) {
                next.push(n);
            }
        }
        left = next;
        if left.is_empty() {
            bar.finish_and_clear();
            return Ok(());
        }
        if Instant::now() > deadline {
            bar.finish_and_clear();
            let names: Vec<&str> = left.iter().map(|n| n.name.as_str()).collect();
            return Err(Fail::new(format!(
                "{} did not apply the new settings within {}s",
                names.join(", "),
                APPLY_WAIT.as_secs()
            ))
            .hint(format!(
                "`pgbox logs {}` shows Patroni's log; `pgbox up` tries again",
                names[0]
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Until replica `n` has replayed the leader's WAL as of now (which holds the
/// leader's new parameter values after its restart).
async fn wait_replayed(
    engine: &Engine,
    s: &Settings,
    leader: &str,
    n: &Node,
) -> anyhow::Result<()> {
    let lsn = psql::sql(engine, leader, s, "postgres", "select pg_current_wal_lsn()").await?;
    let q = format!(
        "select pg_last_wal_replay_lsn() >= {}::pg_lsn",
        psql::lit(lsn.trim())
    );
    let deadline = Instant::now() + APPLY_WAIT;
    loop {
        if psql::sql(engine, &n.container, s, "postgres", &q)
            .await
            .is_ok_and(|o| o.trim() == "t")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Fail::new(format!(
                "{} did not replay the leader's WAL within {}s",
                n.name,
                APPLY_WAIT.as_secs()
            ))
            .hint("`pgbox status` shows each node's lag")
            .into());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Restart one node through Patroni, if it still has a restart pending, and wait
/// until it runs again (the leader: until it leads again). Returns how long it took.
async fn restart(
    engine: &Engine,
    s: &Settings,
    n: &Node,
    is_leader: bool,
    what: &str,
    p: &Printer,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let bar = p.spinner(format!("restarting {} to apply {what}", n.name));
    let r = api::call(
        engine,
        &n.container,
        "POST",
        "/restart",
        Some(r#"{"restart_pending": true}"#),
    )
    .await;
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            bar.finish_and_clear();
            return Err(e);
        }
    };
    // 200: restarted; 503: no restart pending any more; 0: no answer within the
    // script's 30 s (a slow shutdown checkpoint): the wait below decides.
    if !matches!(r.status, 200 | 503 | 0) {
        bar.finish_and_clear();
        return Err(Fail::new(format!(
            "Patroni refused to restart {} ({}): {}",
            n.name, r.status, r.body
        ))
        .hint(format!("`pgbox logs {}` shows Patroni's log", n.name))
        .into());
    }
    let deadline = Instant::now() + APPLY_WAIT;
    loop {
        if let Ok(Some(m)) = api::cluster_view(engine, s).await {
            if m.iter()
                .any(|m| m.name == n.name && m.healthy() && (!is_leader || m.is_leader()))
            {
                bar.finish_and_clear();
                p.detail(format!(
                    "restarted {} in {:.1}s",
                    n.name,
                    started.elapsed().as_secs_f64()
                ));
                return Ok(started.elapsed());
            }
        }
        if Instant::now() > deadline {
            bar.finish_and_clear();
            return Err(Fail::new(format!(
                "{} does not run again {}s after its restart",
                n.name,
                APPLY_WAIT.as_secs()
            ))
            .hint(format!("`pgbox logs {}` shows why", n.name))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings() -> Settings {
        let mut s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        s.replicas = 1;
        s
    }

    fn config_of(s: &Settings) -> Value {
        json!({
            "ttl": 20,
            "synchronous_mode": s.synchronous,
            "postgresql": {"use_slots": true, "parameters": parameters(s)},
        })
    }

    #[test]
    fn the_same_settings_are_no_drift() {
        let s = settings();
        let d = drift(&config_of(&s), &s);
        assert!(d.is_empty(), "{d:?}");
        // A number stored as a string is the same value.
        let mut c = config_of(&s);
        c["postgresql"]["parameters"]["max_connections"] = json!("100");
        assert!(drift(&c, &s).is_empty());
    }

    #[test]
    fn changed_added_and_removed_parameters_are_patched() {
        let old = settings();
        let mut s = settings();
        s.work_mem = "8192kB".into();
        s.max_connections = 120;
        s.pg_settings = vec![("search_path".into(), "'it''s'".into())];
        let mut c = config_of(&old);
        c["postgresql"]["parameters"]["jit"] = json!("off");
        let d = drift(&c, &s);
        let patch = d.patch();
        let params = &patch["postgresql"]["parameters"];
        assert_eq!(params["work_mem"], json!("8192kB"));
        assert_eq!(params["max_connections"], json!(120));
        assert_eq!(params["search_path"], json!("it's"));
        assert_eq!(params["jit"], Value::Null);
        assert_eq!(params.as_object().unwrap().len(), 4, "{patch}");
        assert!(patch.get("synchronous_mode").is_none());
        assert!(!d.lowers_a_standby_minimum());
        assert!(
            d.describe().contains("`max_connections` 100 -> 120"),
            "{}",
            d.describe()
        );
    }

    #[test]
    fn a_lower_standby_minimum_restarts_the_leader_first() {
        let old = settings();
        let mut s = settings();
        s.max_connections = 90;
        assert!(drift(&config_of(&old), &s).lowers_a_standby_minimum());
        let mut s = settings();
        s.max_connections = 110;
        assert!(!drift(&config_of(&old), &s).lowers_a_standby_minimum());
    }

    #[test]
    fn the_synchronous_setting_is_patched() {
        let old = settings();
        let mut s = settings();
        s.synchronous = !old.synchronous;
        let d = drift(&config_of(&old), &s);
        assert!(d.params.is_empty());
        assert_eq!(d.patch(), json!({"synchronous_mode": s.synchronous}));
    }
}
