//! `pgbox generate compose` for a cluster: the same topology `pgbox up` runs (etcd
//! and node0..N on one network with fixed addresses, the same image, patroni.yml
//! and secrets as files), for a server host without pgbox.

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

#[derive(Serialize)]
struct Vars<'a> {
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
    let url_hosts = (0..=s.replicas)
        .map(|i| format!("{}:{}", s.url_host(), super::node_port(s, i)))
        .collect::<Vec<_>>()
        .join(",");
    crate::templates::render(
        Some(&s.project_dir),
        "cluster/compose.yaml.j2",
        Vars {
            header,
            project: &s.project,
            env,
            name,
            image,
            pg_major: s.pg_version,
            user: &s.user,
            database: &s.database,
            synchronous: s.synchronous,
            url_hosts,
            etcd_args: etcd_args(&t.etcd_ip()),
            etcd_ip: t.etcd_ip(),
            subnet: t.subnet(),
            data_mount: DATA_MOUNT,
            stop_grace: format!("{}s", stop_timeout(StorageMode::Volume).as_secs()),
            nodes,
        },
    )
}

/// The secret files beside `secrets/postgres_password` a generated cluster needs.
pub fn secret_names() -> &'static [&'static str] {
    &SECRETS
}
