//! The two containers an upgrade runs while the project's own is stopped: the old
//! cluster as a read-only source (every transaction read-only, no port, in fallback
//! mode its tarball mounted read-only and never saved over), and the new cluster
//! being filled (no port, no init scripts, created to match the old one's encoding,
//! locale and checksums, and run with durability off while it loads: it is synced
//! to disk before the switch). They share only a volume holding the old server's
//! Unix socket, so the new major's pg_dump reaches the old server with no network.

use std::time::Duration;

use crate::config::{Settings, StorageMode};
use crate::container::spec::{self, worker_name, WORKER_ROLES};
use crate::engine::{ContainerSpec, Engine, MountSource, MountSpec, LABEL_PROJECT};
use crate::state::Decision;

/// Where the new cluster's container sees the old server's socket folder.
pub const OLD_SOCKET_DIR: &str = "/run/pgbox-old";

pub fn source_name(s: &Settings) -> String {
    worker_name(s, WORKER_ROLES[0])
}

pub fn target_name(s: &Settings) -> String {
    worker_name(s, WORKER_ROLES[1])
}

fn socket_volume(s: &Settings) -> String {
    format!("{}-upgrade-sock", s.container_name())
}

fn worker(mut spec: ContainerSpec, name: String) -> ContainerSpec {
    spec.name = name;
    spec.port = None;
    spec.service = false;
    spec.healthcheck.clear();
    spec.labels
        .insert(LABEL_PROJECT.to_string(), "-upgrade".to_string());
    spec
}

/// The old cluster, read-only (see the module docs).
pub fn source_spec(old: &Settings, tag: &str, d: &Decision) -> ContainerSpec {
    let mut spec = worker(spec::container_spec(old, tag, d), source_name(old));
    spec.env.push("PGBOX_READ_ONLY=1".into());
    spec.env.push("PGBOX_NO_SAVE=1".into());
    for m in &mut spec.mounts {
        if m.target == spec::DATA_MOUNT && d.mode == StorageMode::Fallback {
            m.read_only = true;
        }
    }
    spec.mounts.push(MountSpec {
        source: MountSource::Volume(socket_volume(old)),
        target: "/var/run/postgresql".into(),
        read_only: false,
    });
    spec
}

/// The new cluster (see the module docs); `initdb_env` from the old cluster's facts.
pub fn target_spec(
    new: &Settings,
    tag: &str,
    d: &Decision,
    initdb_env: Vec<String>,
) -> ContainerSpec {
    let mut spec = worker(spec::container_spec(new, tag, d), target_name(new));
    spec.env.retain(|e| !e.starts_with("POSTGRES_DB="));
    spec.env.push("POSTGRES_DB=postgres".into());
    spec.env.push("PGBOX_SKIP_INIT_SCRIPTS=1".into());
    spec.env.push("PGBOX_FAST_LOAD=1".into());
    spec.env.extend(initdb_env);
    spec.mounts.retain(|m| m.target != "/etc/pgbox/initdb.d");
    spec.mounts.push(MountSpec {
        source: MountSource::Volume(socket_volume(new)),
        target: OLD_SOCKET_DIR.into(),
        read_only: true,
    });
    spec
}

/// Remove both workers and the socket volume; what is already gone is fine.
pub async fn remove_all(engine: &Engine, s: &Settings) -> anyhow::Result<()> {
    for name in [source_name(s), target_name(s)] {
        if engine.inspect(&name).await?.is_some() {
            let _ = engine.stop_container(&name, Duration::from_secs(10)).await;
            engine.remove_container(&name, true).await?;
        }
    }
    let vol = socket_volume(s);
    if engine.volume_exists(&vol).await? {
        engine.remove_volume(&vol).await?;
    }
    Ok(())
}
