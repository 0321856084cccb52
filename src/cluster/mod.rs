//! A replicated cluster from `[cluster] replicas = N`: Patroni runs PostgreSQL on
//! 1 + N nodes and fails over through one etcd, all on a private engine network.
//!
//! pgbox writes no failover logic of its own. It owns the topology (names, the
//! network's subnet and the fixed addresses on it, each node's data location and
//! published port), the secrets Patroni needs (as files), the rendered
//! `patroni.yml`, and the operations around it: `up`/`down`/scaling (`up`), the
//! settings kept in line with pgbox.toml through Patroni (`params`), per-node
//! status, switchover and logs (`ops`). Finding the leader is `container::patroni`,
//! the one seam through which backup, restore, psql and scheduled runs follow it
//! (`container::ctl::running`). Static addresses and `/etc/hosts` entries rather
//! than DNS, because Podman's CNI backend on Debian has no name resolution.

pub mod deploy;
pub mod ops;
pub mod params;
pub mod spec;
pub mod up;

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::config::{Settings, StorageMode, TlsMode};
use crate::error::{Fail, EXIT_USAGE};

/// Patroni's timing (seconds): the leader key lives `TTL`; the HA loop runs every
/// `LOOP_WAIT`; DCS and PostgreSQL calls are retried for `RETRY_TIMEOUT`
/// (loop_wait + 2 × retry_timeout ≤ ttl, Patroni's rule). A killed leader is
/// replaced once its key expires: at most `TTL` plus a loop.
pub const TTL: u32 = 20;
pub const LOOP_WAIT: u32 = 5;
pub const RETRY_TIMEOUT: u32 = 7;

/// The secret files a cluster needs beside the main password (`.pgbox/secrets/`).
pub const SECRETS: [&str; 3] = [
    "replication_password",
    "rewind_password",
    "patroni_api_password",
];

pub use crate::container::patroni::{member, node_container, node_of};

/// Whether the project runs as a cluster.
pub fn enabled(s: &Settings) -> bool {
    crate::container::patroni::clustered(s)
}

/// The etcd container.
pub fn etcd_container(s: &Settings) -> String {
    format!("{}-etcd", s.container_name())
}

/// The private network.
pub fn network(s: &Settings) -> String {
    format!("{}-net", s.container_name())
}

/// The etcd data volume.
pub fn etcd_volume(s: &Settings) -> String {
    format!("{}-etcd", s.volume)
}

/// Node `i`'s host port: the project's port plus `i`.
pub fn node_port(s: &Settings, i: u32) -> u16 {
    s.port + i as u16
}

/// The settings node `i` runs with: node0 keeps the project's data location; node
/// i ≥ 1 gets `<data folder>-node{i}` or volume `<volume>-node{i}`, its own copy.
pub fn node_settings(s: &Settings, i: u32) -> Settings {
    let mut n = s.clone();
    if i > 0 {
        let mut dir = s.data_dir.clone().into_os_string();
        dir.push(format!("-{}", member(i)));
        n.data_dir = PathBuf::from(dir);
        n.volume = format!("{}-{}", s.volume, member(i));
    }
    n
}

/// What a user may type for a node (`node1`, `1`, `etcd`): its container.
pub fn resolve_node(s: &Settings, given: &str) -> Result<String, Fail> {
    if given == "etcd" {
        return Ok(etcd_container(s));
    }
    let n = given.strip_prefix("node").unwrap_or(given);
    match n.parse::<u32>() {
        Ok(i) if i <= s.replicas => Ok(node_container(s, i)),
        _ => Err(Fail::new(format!(
            "`{given}` is not a node of `{}`: it has node0 to node{} and etcd",
            s.project, s.replicas
        ))
        .hint("name a node as `node1` (or `1`), or `etcd`")
        .code(EXIT_USAGE)),
    }
}

/// Settings a cluster cannot work with, refused before anything starts.
pub fn check(s: &Settings) -> Result<(), Fail> {
    if !enabled(s) {
        return Ok(());
    }
    let refuse = |msg: String, hint: &str| Err(Fail::new(msg).hint(hint).code(EXIT_USAGE));
    if s.storage_mode == StorageMode::Fallback {
        return refuse(
            "storage mode `fallback` cannot work with a cluster: it keeps PGDATA inside the container and saves a tarball at stop, but every node needs its data on disk while it runs".into(),
            "set `mode = \"direct\"` or `mode = \"volume\"` under `[storage]`, or `replicas = 0` under `[cluster]`",
        );
    }
    let last = s.port as u32 + s.replicas;
    if last > u16::MAX as u32 {
        return refuse(
            format!(
                "ports `{}` to `{last}` do not fit: node i of the cluster listens on port + i, and the highest port is 65535",
                s.port
            ),
            "choose a lower `port` under `[network]`",
        );
    }
    if s.tls != TlsMode::Off {
        return refuse(
            "TLS is not supported with a cluster yet".into(),
            "set `mode = \"off\"` under `[tls]`, or `replicas = 0` under `[cluster]`",
        );
    }
    if s.pitr {
        return refuse(
            "`[backup] pitr` is not supported with a cluster yet (each node would archive its own timeline)".into(),
            "set `pitr = false` under `[backup]`, or `replicas = 0` under `[cluster]`; dump backups work with a cluster",
        );
    }
    if s.pooler.enabled {
        return refuse(
            "`[pooler]` is not supported with a cluster yet (PgBouncer would have to follow the leader)".into(),
            "set `enabled = false` under `[pooler]`, or `replicas = 0` under `[cluster]`; `pgbox url` reaches the leader",
        );
    }
    Ok(())
}

/// An error for commands that act on one server's container (`maintenance`, `save`,
/// `upgrade`), which a cluster does not have.
pub fn refuse(s: &Settings, what: &str) -> Result<(), Fail> {
    if enabled(s) {
        return Err(Fail::new(format!(
            "`{what}` is not supported with a cluster (`[cluster] replicas = {}`)",
            s.replicas
        ))
        .hint("Patroni runs PostgreSQL on every node; `pgbox switchover` moves the leader")
        .code(EXIT_USAGE));
    }
    Ok(())
}

/// The cluster's secrets beside the main password: created once, 0600.
pub fn ensure_secrets(s: &Settings) -> anyhow::Result<()> {
    let dir = s
        .secret_path()
        .parent()
        .expect("secrets folder")
        .to_path_buf();
    crate::fsutil::private_dir(&dir, 0o700)?;
    for name in SECRETS {
        let path = dir.join(name);
        if !path.is_file() {
            let pw = crate::secrets::generate_password();
            crate::fsutil::write_atomic(&path, format!("{pw}\n").as_bytes(), 0o600)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct PatroniVars<'a> {
    pgbox_version: &'a str,
    scope: &'a str,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
    synchronous: bool,
    max_connections: u32,
    /// (name, value as JSON, which YAML reads): `params::parameters`.
    parameters: Vec<(String, String)>,
    pgdata: String,
    pg_major: u32,
    user: &'a str,
}

/// The Patroni configuration every node shares (no secrets in it).
pub fn patroni_yml(s: &Settings) -> anyhow::Result<String> {
    crate::templates::render(
        Some(&s.project_dir),
        "cluster/patroni.yml.j2",
        PatroniVars {
            pgbox_version: env!("CARGO_PKG_VERSION"),
            scope: &s.project,
            ttl: TTL,
            loop_wait: LOOP_WAIT,
            retry_timeout: RETRY_TIMEOUT,
            synchronous: s.synchronous,
            max_connections: s.max_connections,
            parameters: params::parameters(s)
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect(),
            pgdata: crate::container::patroni::pgdata(),
            pg_major: s.pg_version,
            user: &s.user,
        },
    )
}

/// Write `.pgbox/conf/patroni.yml` (mounted read-only at /etc/pgbox/conf).
pub fn render_patroni(s: &Settings) -> anyhow::Result<()> {
    let path = s.state_dir().join("conf").join("patroni.yml");
    let text = patroni_yml(s)?;
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

/// The libpq multi-host URL: every node's published port; `read-write` reaches the
/// leader whichever node it is, `read-only` a replica (libpq 14+, pgx, JDBC, Npgsql).
pub fn url(s: &Settings, password: Option<&str>, replica: bool) -> String {
    let single = crate::connection::url(s, password);
    // postgresql://auth@host:port/db -> replace host:port with the list.
    let host = s.url_host();
    let hosts: Vec<String> = (0..=s.replicas)
        .map(|i| format!("{host}:{}", node_port(s, i)))
        .collect();
    let one = format!("@{host}:{}/", s.port);
    let attrs = if replica { "read-only" } else { "read-write" };
    let base = single.replacen(&one, &format!("@{}/", hosts.join(",")), 1);
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}target_session_attrs={attrs}&connect_timeout=3")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cluster(replicas: u32) -> Settings {
        let mut s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        s.replicas = replicas;
        s
    }

    #[test]
    fn url_lists_every_node_and_targets_the_leader() {
        let s = cluster(2);
        assert_eq!(
            url(&s, None, false),
            format!(
                "postgresql://app@127.0.0.1:{p},127.0.0.1:{},127.0.0.1:{}/app?target_session_attrs=read-write&connect_timeout=3",
                s.port + 1,
                s.port + 2,
                p = s.port
            )
        );
        assert!(url(&s, None, true).contains("target_session_attrs=read-only"));
    }

    #[test]
    fn bad_cluster_settings_are_refused() {
        let mut s = cluster(2);
        s.storage_mode = StorageMode::Fallback;
        assert!(check(&s).unwrap_err().message.contains("fallback"));
        let mut s = cluster(2);
        s.port = 65535;
        assert!(check(&s).unwrap_err().message.contains("65535"));
        assert!(check(&cluster(0)).is_ok());
        let mut s = cluster(0);
        s.storage_mode = StorageMode::Fallback;
        assert!(check(&s).is_ok());
    }

    #[test]
    fn nodes_resolve_by_name_or_number() {
        let s = cluster(2);
        assert_eq!(resolve_node(&s, "node1").unwrap(), "pgbox-app-node1");
        assert_eq!(resolve_node(&s, "2").unwrap(), "pgbox-app-node2");
        assert_eq!(resolve_node(&s, "etcd").unwrap(), "pgbox-app-etcd");
        assert!(resolve_node(&s, "node3").is_err());
        assert_eq!(node_of(&s, "pgbox-app-node2"), Some(2));
        assert_eq!(
            node_settings(&s, 1).data_dir,
            PathBuf::from("/x/app/.pgbox/data-node1")
        );
    }

    #[test]
    fn patroni_yml_carries_no_secret_and_the_sync_setting() {
        let mut s = cluster(1);
        let y = patroni_yml(&s).unwrap();
        assert!(y.contains("synchronous_mode: true"), "{y}");
        assert!(!y.contains("password:"), "{y}");
        s.synchronous = false;
        assert!(patroni_yml(&s).unwrap().contains("synchronous_mode: false"));
    }

    #[test]
    fn patroni_yml_bootstraps_the_parameters_up_keeps_in_line() {
        let mut s = cluster(1);
        s.max_connections = 150;
        s.pg_settings = vec![
            ("search_path".into(), "'\"$user\", it''s'".into()),
            ("jit".into(), "false".into()),
        ];
        let y: serde_yaml::Value = serde_yaml::from_str(&patroni_yml(&s).unwrap()).unwrap();
        let got: serde_json::Value =
            serde_json::to_value(&y["bootstrap"]["dcs"]["postgresql"]["parameters"]).unwrap();
        let want = serde_json::to_value(params::parameters(&s)).unwrap();
        assert_eq!(got, want);
        assert_eq!(got["search_path"], "\"$user\", it's");
        assert_eq!(got["max_connections"], 150);
        // A cluster bootstrapped from it has nothing to apply.
        let config = serde_json::json!({
            "synchronous_mode": s.synchronous,
            "postgresql": {"parameters": got},
        });
        assert!(params::drift(&config, &s).is_empty());
    }
}
