//! The cluster's engine objects: the private network (a /24 picked per project,
//! recorded on the network itself), the etcd container, and node i's container,
//! which is the single server's spec (same image, mounts, secrets and health
//! check) in the entrypoint's `patroni` mode, with its own data, port and address.

use std::collections::HashMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{etcd_container, etcd_volume, member, network, node_container, node_port};
use crate::config::Settings;
use crate::container::spec::{container_spec, spec_hash};
use crate::engine::{
    ContainerSpec, Engine, EngineError, MountSource, MountSpec, NetAttach, LABEL_CONFIG,
    LABEL_PORT, LABEL_PROJECT, LABEL_SPEC, LABEL_VERSION,
};
use crate::error::Fail;
use crate::state::Decision;

/// The cluster's addresses on its network.
#[derive(Debug, Clone)]
pub struct Topology {
    /// `10.213.7` of `10.213.7.0/24`.
    pub prefix: String,
}

impl Topology {
    pub fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }
    pub fn etcd_ip(&self) -> String {
        format!("{}.2", self.prefix)
    }
    pub fn node_ip(&self, i: u32) -> String {
        format!("{}.{}", self.prefix, 10 + i)
    }
    /// `/etc/hosts` lines: etcd only, so that scaling leaves existing nodes' specs
    /// (and so their containers) alone; Patroni itself uses addresses.
    pub fn hosts(&self) -> Vec<String> {
        vec![format!("etcd:{}", self.etcd_ip())]
    }
}

fn labels(s: &Settings) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_PROJECT.to_string(), s.project.clone()),
        (
            LABEL_CONFIG.to_string(),
            s.config_path.display().to_string(),
        ),
        (
            LABEL_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ])
}

/// The project's network, created on first use with a free /24 in 10.213.0.0/16
/// (starting at one derived from the project's name, moving on when the engine
/// refuses one that overlaps another network).
pub async fn ensure_network(engine: &Engine, s: &Settings) -> anyhow::Result<Topology> {
    let name = network(s);
    if let Some(n) = engine.inspect_network(&name).await? {
        if n.labels.get(LABEL_CONFIG) != Some(&s.config_path.display().to_string()) {
            return Err(Fail::new(format!(
                "a network named `{name}` already exists and belongs to something else"
            ))
            .hint("give this project another name (`name` under `[project]` in pgbox.toml)")
            .into());
        }
        let subnet = n.subnet.unwrap_or_default();
        let prefix = subnet.strip_suffix(".0/24").ok_or_else(|| {
            Fail::new(format!(
                "network `{name}` has subnet `{subnet}`, not a /24 pgbox made"
            ))
        })?;
        return Ok(Topology {
            prefix: prefix.to_string(),
        });
    }
    let h = Sha256::digest(s.project.as_bytes());
    let start = u16::from_be_bytes([h[0], h[1]]) as u32;
    let mut last = None;
    for k in 0..24u32 {
        let third = (start + k * 37) % 254 + 1;
        let t = Topology {
            prefix: format!("10.213.{third}"),
        };
        match engine
            .create_network(
                &name,
                Some((&t.subnet(), &format!("{}.1", t.prefix))),
                labels(s),
            )
            .await
        {
            Ok(()) => return Ok(t),
            Err(e @ EngineError::Api { .. }) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Fail::new(format!(
        "cannot create network `{name}`: no free /24 in 10.213.0.0/16 ({})",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
    .hint("remove unused networks (`docker network prune`)")
    .into())
}

/// etcd's command line: one member, clients on 2379 (the private network only),
/// peers on loopback, old revisions compacted hourly (Patroni rewrites keys every loop).
pub fn etcd_args(ip: &str) -> Vec<String> {
    [
        "/usr/bin/etcd",
        "--name",
        "etcd",
        "--data-dir",
        "/var/lib/etcd/data",
        "--listen-client-urls",
        "http://0.0.0.0:2379",
        "--advertise-client-urls",
        &format!("http://{ip}:2379"),
        "--listen-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-cluster",
        "etcd=http://127.0.0.1:2380",
        "--initial-cluster-state",
        "new",
        "--auto-compaction-mode",
        "periodic",
        "--auto-compaction-retention",
        "1",
        "--logger",
        "zap",
    ]
    .map(String::from)
    .to_vec()
}

/// The first /24 tried for the project (`ensure_network` moves on from it when
/// taken); generated files use it as it is.
pub fn default_topology(s: &Settings) -> Topology {
    let h = Sha256::digest(s.project.as_bytes());
    let start = u16::from_be_bytes([h[0], h[1]]) as u32;
    Topology {
        prefix: format!("10.213.{}", start % 254 + 1),
    }
}

/// The etcd container: one member, client port 2379 on the private network only.
pub fn etcd_spec(s: &Settings, image: &str, t: &Topology) -> ContainerSpec {
    let ip = t.etcd_ip();
    let mut spec = ContainerSpec::oneshot(etcd_container(s), image.to_string());
    spec.labels = labels(s);
    spec.entrypoint = Some(etcd_args(&ip));
    spec.user = Some("0".into());
    spec.mounts = vec![MountSpec {
        source: MountSource::Volume(etcd_volume(s)),
        target: "/var/lib/etcd".into(),
        read_only: false,
    }];
    spec.service = true;
    spec.stop_timeout = Duration::from_secs(15);
    spec.network = Some(NetAttach {
        network: network(s),
        ip,
        aliases: vec!["etcd".into()],
    });
    spec.extra_hosts = t.hosts();
    let hash = spec_hash(&spec);
    spec.labels.insert(LABEL_SPEC.to_string(), hash);
    spec
}

/// Node `i`: `ns` are its settings (`super::node_settings`), `d` its storage.
pub fn node_spec(
    s: &Settings,
    ns: &Settings,
    i: u32,
    image: &str,
    d: &Decision,
    t: &Topology,
) -> ContainerSpec {
    let mut spec = container_spec(ns, image, d);
    let ip = t.node_ip(i);
    spec.name = node_container(s, i);
    spec.port = Some((s.bind.clone(), node_port(s, i), 5432));
    spec.labels.remove(LABEL_SPEC);
    spec.labels.insert(
        LABEL_PORT.to_string(),
        format!("{}:{}", s.bind, node_port(s, i)),
    );
    spec.env.extend([
        "PGBOX_MODE=patroni".to_string(),
        format!("PATRONI_NAME={}", member(i)),
        format!("PATRONI_RESTAPI_CONNECT_ADDRESS={ip}:8008"),
        format!("PATRONI_POSTGRESQL_CONNECT_ADDRESS={ip}:5432"),
        format!("PATRONI_ETCD3_HOSTS={}:2379", t.etcd_ip()),
    ]);
    spec.network = Some(NetAttach {
        network: network(s),
        ip,
        aliases: vec![member(i)],
    });
    spec.extra_hosts = t.hosts();
    let hash = spec_hash(&spec);
    spec.labels.insert(LABEL_SPEC.to_string(), hash);
    spec
}
