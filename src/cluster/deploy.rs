//! `pgbox generate compose|kube|quadlet` for a cluster: the same topology `pgbox up`
//! runs (etcd and node0..N, the same image, patroni.yml and secrets as files), for a
//! server host without pgbox.
//!
//! compose puts them on one network with fixed addresses, as `pgbox up` does. The
//! kube YAML puts them in one pod instead: Podman's CNI backend has no DNS between
//! pods, and one pod shares one network namespace, so node i listens on PostgreSQL
//! port 5432+i and Patroni's API on 127.0.0.1:8008+i, and reaches etcd and the other
//! nodes on 127.0.0.1. Quadlet runs that YAML (a `.kube` unit).

use std::collections::BTreeMap;

use serde::Serialize;

use super::spec::{default_topology, etcd_args};
use super::{member, SECRETS};
use crate::config::Settings;
use crate::config::StorageMode;
use crate::container::spec::{stop_timeout, DATA_MOUNT};

#[derive(Serialize)]
struct Node {
    member: String,
    container: String,
    ip: String,
    volume: String,
    port: Option<String>,
    environment: Vec<(String, String)>,
}

/// What both files name the same way.
#[derive(Serialize)]
struct Common<'a> {
    header: &'a str,
    project: &'a str,
    env: &'a str,
    name: &'a str,
    image: &'a str,
    pg_major: u32,
    user: &'a str,
    database: &'a str,
    synchronous: bool,
    url_hosts: String,
}

impl<'a> Common<'a> {
    fn new(s: &'a Settings, header: &'a str, env: &'a str, name: &'a str, image: &'a str) -> Self {
        Common {
            header,
            project: &s.project,
            env,
            name,
            image,
            pg_major: s.pg_version,
            user: &s.user,
            database: &s.database,
            synchronous: s.synchronous,
            url_hosts: url_hosts(s),
        }
    }
}

#[derive(Serialize)]
struct Vars<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    etcd_args: Vec<String>,
    etcd_ip: String,
    subnet: String,
    data_mount: &'a str,
    stop_grace: String,
    nodes: Vec<Node>,
}

/// compose.yaml for the cluster; `name` is the environment's container prefix,
/// `publish` whether node i publishes `bind:port+i`.
pub fn compose(
    s: &Settings,
    header: &str,
    env: &str,
    name: &str,
    image: &str,
    publish: bool,
) -> anyhow::Result<String> {
    let t = default_topology(s);
    let nodes = (0..=s.replicas)
        .map(|i| {
            let ip = t.node_ip(i);
            let mut e = BTreeMap::new();
            e.insert("POSTGRES_USER".to_string(), s.user.clone());
            e.insert("POSTGRES_DB".to_string(), s.database.clone());
            e.insert("PGBOX_MOUNT".to_string(), DATA_MOUNT.to_string());
            e.insert("PGBOX_STORAGE_MODE".to_string(), "volume".to_string());
            e.insert("PGBOX_SECRETS_DIR".to_string(), "/run/secrets".to_string());
            e.insert("PGBOX_MODE".to_string(), "patroni".to_string());
            e.insert("PATRONI_NAME".to_string(), member(i));
            e.insert(
                "PATRONI_RESTAPI_CONNECT_ADDRESS".to_string(),
                format!("{ip}:8008"),
            );
            e.insert(
                "PATRONI_POSTGRESQL_CONNECT_ADDRESS".to_string(),
                format!("{ip}:5432"),
            );
            e.insert(
                "PATRONI_ETCD3_HOSTS".to_string(),
                format!("{}:2379", t.etcd_ip()),
            );
            Node {
                member: member(i),
                container: format!("{name}-{}", member(i)),
                ip,
                volume: format!("{}-data", member(i)),
                port: publish.then(|| format!("{}:{}:5432", s.bind, super::node_port(s, i))),
                environment: e.into_iter().collect(),
            }
        })
        .collect();
    crate::templates::render(
        Some(&s.project_dir),
        "cluster/compose.yaml.j2",
        Vars {
            common: Common::new(s, header, env, name, image),
            etcd_args: etcd_args(&t.etcd_ip()),
            etcd_ip: t.etcd_ip(),
            subnet: t.subnet(),
            data_mount: DATA_MOUNT,
            stop_grace: format!("{}s", stop_timeout(StorageMode::Volume).as_secs()),
            nodes,
        },
    )
}

#[derive(Serialize)]
struct KubeNode {
    member: String,
    volume: String,
    pg_port: u16,
    host_port: Option<u16>,
    environment: Vec<(String, String)>,
}

#[derive(Serialize)]
struct KubeVars<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    bind: &'a str,
    etcd_args: Vec<String>,
    data_mount: &'a str,
    stop_seconds: u64,
    out_dir: String,
    nodes: Vec<KubeNode>,
}

/// Node i's PostgreSQL port inside the kube pod (every node shares its network).
pub const KUBE_PG_PORT: u16 = 5432;
/// Node i's Patroni REST API port inside the kube pod (on 127.0.0.1 only).
pub const KUBE_API_PORT: u16 = 8008;

/// kube.yaml for the cluster: one pod holding etcd and every node (see the module
/// docs); `out_dir` is where secrets/ and conf/ live on the host, `publish` whether
/// node i publishes `bind:port+i`.
pub fn kube(
    s: &Settings,
    header: &str,
    env: &str,
    name: &str,
    image: &str,
    publish: bool,
    out_dir: &str,
) -> anyhow::Result<String> {
    let local = "127.0.0.1";
    let nodes = (0..=s.replicas)
        .map(|i| {
            let pg_port = KUBE_PG_PORT + i as u16;
            let api_port = KUBE_API_PORT + i as u16;
            let mut e = BTreeMap::new();
            e.insert("POSTGRES_USER".to_string(), s.user.clone());
            e.insert("POSTGRES_DB".to_string(), s.database.clone());
            e.insert(
                "POSTGRES_PASSWORD_FILE".to_string(),
                "/run/secrets/pgbox/postgres_password".to_string(),
            );
            e.insert("PGBOX_MOUNT".to_string(), DATA_MOUNT.to_string());
            e.insert("PGBOX_STORAGE_MODE".to_string(), "volume".to_string());
            e.insert(
                "PGBOX_SECRETS_DIR".to_string(),
                "/run/secrets/pgbox".to_string(),
            );
            e.insert("PGBOX_MODE".to_string(), "patroni".to_string());
            // libpq's tools (psql, pg_isready, the health check) and the entrypoint
            // find this node's server on its own port.
            e.insert("PGPORT".to_string(), pg_port.to_string());
            e.insert("PATRONI_NAME".to_string(), member(i));
            e.insert(
                "PATRONI_RESTAPI_LISTEN".to_string(),
                format!("{local}:{api_port}"),
            );
            e.insert(
                "PATRONI_RESTAPI_CONNECT_ADDRESS".to_string(),
                format!("{local}:{api_port}"),
            );
            e.insert(
                "PATRONI_POSTGRESQL_LISTEN".to_string(),
                format!("0.0.0.0:{pg_port}"),
            );
            e.insert(
                "PATRONI_POSTGRESQL_CONNECT_ADDRESS".to_string(),
                format!("{local}:{pg_port}"),
            );
            e.insert("PATRONI_ETCD3_HOSTS".to_string(), format!("{local}:2379"));
            KubeNode {
                member: member(i),
                volume: format!("{name}-{}-data", member(i)),
                pg_port,
                host_port: publish.then(|| super::node_port(s, i)),
                environment: e.into_iter().collect(),
            }
        })
        .collect();
    // etcd as `pgbox up` runs it, but its clients on the pod's loopback only: other
    // pods on Podman's network must not reach an etcd without authentication.
    let etcd_args = etcd_args(local)
        .into_iter()
        .map(|a| {
            if a == "http://0.0.0.0:2379" {
                format!("http://{local}:2379")
            } else {
                a
            }
        })
        .collect();
    crate::templates::render(
        Some(&s.project_dir),
        "cluster/kube.yaml.j2",
        KubeVars {
            common: Common::new(s, header, env, name, image),
            bind: &s.bind,
            etcd_args,
            data_mount: DATA_MOUNT,
            stop_seconds: stop_timeout(StorageMode::Volume).as_secs(),
            out_dir: out_dir.to_string(),
            nodes,
        },
    )
}

#[derive(Serialize)]
struct QuadletVars<'a> {
    header: &'a str,
    project: &'a str,
    env: &'a str,
    name: &'a str,
    image: &'a str,
    out_dir: &'a str,
    stop_seconds: u64,
}

/// `<name>.kube`: a Quadlet unit running `out_dir/kube.yaml` (Podman 4.4+).
pub fn quadlet_kube(
    s: &Settings,
    header: &str,
    env: &str,
    name: &str,
    image: &str,
    out_dir: &str,
) -> anyhow::Result<String> {
    crate::templates::render(
        Some(&s.project_dir),
        "cluster/quadlet.kube.j2",
        QuadletVars {
            header,
            project: &s.project,
            env,
            name,
            image,
            out_dir,
            // Every node stops in parallel, each within the single server's bound.
            stop_seconds: stop_timeout(StorageMode::Volume).as_secs() + 10,
        },
    )
}

/// `host:port` of every node's published port, for the URL in the files' header.
fn url_hosts(s: &Settings) -> String {
    (0..=s.replicas)
        .map(|i| format!("{}:{}", s.url_host(), super::node_port(s, i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The secret files beside `secrets/postgres_password` a generated cluster needs.
pub fn secret_names() -> &'static [&'static str] {
    &SECRETS
}
