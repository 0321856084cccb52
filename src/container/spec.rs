//! The container pgbox asks the engine for: its spec, labels and mounts, the hash
//! of all that (stored as a label, so a changed setting means a recreated
//! container), the stop timeout, and the ownership check that keeps pgbox off a
//! container of another pgbox.toml.
//!
//! Where things are mounted inside the container is fixed here once; the deploy
//! files (`pgbox generate`) use the same constants so both agree with the image.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Settings, StorageMode, TlsMode};
use crate::engine::{
    ContainerSpec, MountSource, MountSpec, LABEL_CONFIG, LABEL_PORT, LABEL_PROJECT, LABEL_SPEC,
    LABEL_VERSION,
};
use crate::error::Fail;
use crate::state::Decision;
use crate::tls::TlsPaths;

/// Where the secrets folder is mounted (a folder, so a rewritten file is seen).
pub const SECRETS_TARGET: &str = "/run/secrets/pgbox";
/// Rendered postgresql.conf and pg_hba.conf, mounted read-only.
pub const CONF_TARGET: &str = "/etc/pgbox/conf";
/// Where the data folder or volume is mounted (PGDATA, except in fallback mode); the
/// image's own layout, so it is defined where the image is rendered.
pub use crate::templates::DATA_MOUNT;
/// Where the WAL archive (`<backup dir>/wal`) is mounted with `[backup] pitr`.
pub const WAL_ARCHIVE: &str = "/var/lib/pgbox/wal";
/// Bound of the entrypoint's fast shutdown; the engine's stop timeout exceeds it.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

/// The engine's stop timeout: the shutdown bound, the immediate-shutdown grace,
/// and in fallback mode the time to save the tarball.
pub fn stop_timeout(mode: StorageMode) -> Duration {
    match mode {
        StorageMode::Fallback => Duration::from_secs(300),
        _ => Duration::from_secs(45),
    }
}
/// The helper containers a major upgrade runs beside the project's own (the old
/// cluster as a read-only source, the new one being filled); `up` removes any left
/// by a killed upgrade before it starts the server, so two servers never share data.
pub const WORKER_ROLES: [&str; 2] = ["upgrade-src", "upgrade-new"];

/// The name of the project's helper container for `role` (see [`WORKER_ROLES`]).
pub fn worker_name(s: &Settings, role: &str) -> String {
    format!("{}-{role}", s.container_name())
}

/// Line the entrypoint prints once PostgreSQL accepts TCP connections.
pub const READY_MARKER: &str = "state=RUNNING";

fn mounts(s: &Settings, data: MountSource) -> Vec<MountSpec> {
    let ro = |source: PathBuf, target: &str| MountSpec {
        source: MountSource::Bind(source),
        target: target.into(),
        read_only: true,
    };
    let mut m = vec![
        MountSpec {
            source: data,
            target: DATA_MOUNT.into(),
            read_only: false,
        },
        ro(
            s.secret_path()
                .parent()
                .expect("secrets folder")
                .to_path_buf(),
            SECRETS_TARGET,
        ),
        ro(s.state_dir().join("conf"), CONF_TARGET),
    ];
    if s.tls != TlsMode::Off {
        m.push(ro(
            TlsPaths::new(&s.state_dir()).server_dir,
            "/etc/pgbox/tls",
        ));
    }
    if let Some(d) = &s.conf_dir {
        m.push(ro(d.clone(), "/etc/pgbox/conf.d"));
    }
    if let Some(d) = &s.init_dir {
        m.push(ro(d.clone(), "/etc/pgbox/initdb.d"));
    }
    if s.pitr {
        m.push(MountSpec {
            source: MountSource::Bind(s.wal_archive_dir()),
            target: WAL_ARCHIVE.into(),
            read_only: false,
        });
    }
    m
}

/// Everything pgbox asks the engine for, plus a hash of it stored as a label.
pub fn container_spec(s: &Settings, image: &str, d: &Decision) -> ContainerSpec {
    let data = match d.mode {
        StorageMode::Volume => MountSource::Volume(s.volume.clone()),
        _ => MountSource::Bind(s.data_dir.clone()),
    };
    let mut env = vec![
        format!("POSTGRES_USER={}", s.user),
        format!("POSTGRES_DB={}", s.database),
        format!("POSTGRES_PASSWORD_FILE={SECRETS_TARGET}/postgres_password"),
        format!("PGBOX_MOUNT={DATA_MOUNT}"),
        format!("PGBOX_STORAGE_MODE={}", d.mode),
        format!("PGBOX_SAVE_INTERVAL={}", s.save_interval),
        format!("PGBOX_DISK_MIN_MB={}", s.min_free_mb),
        format!("PGBOX_SHUTDOWN_TIMEOUT={}", SHUTDOWN_BOUND.as_secs()),
    ];
    if s.pitr {
        // The entrypoint switches a written segment at least this often (see startup.sh).
        env.push(format!("PGBOX_ARCHIVE_TIMEOUT={}", s.archive_timeout));
    }
    let mut spec = ContainerSpec {
        name: s.container_name(),
        image: image.to_string(),
        env,
        labels: HashMap::from([
            (LABEL_PROJECT.to_string(), s.project.clone()),
            (
                LABEL_CONFIG.to_string(),
                s.config_path.display().to_string(),
            ),
            (
                LABEL_VERSION.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (LABEL_PORT.to_string(), format!("{}:{}", s.bind, s.port)),
        ]),
        mounts: mounts(s, data),
        port: Some((s.bind.clone(), s.port, 5432)),
        healthcheck: vec!["CMD".into(), "/usr/local/bin/pgbox-healthcheck".into()],
        stop_timeout: stop_timeout(d.mode),
        entrypoint: None,
        user: None,
        service: true,
        memory: s.memory_limit,
        network: None,
        extra_hosts: Vec::new(),
    };
    let hash = spec_hash(&spec);
    spec.labels.insert(LABEL_SPEC.to_string(), hash);
    spec
}

pub fn spec_hash(spec: &ContainerSpec) -> String {
    let mut h = Sha256::new();
    h.update(spec.image.as_bytes());
    for e in &spec.env {
        h.update(e.as_bytes());
        h.update([0]);
    }
    for m in &spec.mounts {
        h.update(format!("{:?}", m).as_bytes());
    }
    h.update(format!("{:?} {:?}", spec.port, spec.memory).as_bytes());
    if spec.network.is_some() || !spec.extra_hosts.is_empty() {
        h.update(format!("{:?} {:?}", spec.network, spec.extra_hosts).as_bytes());
    }
    let mut labels: Vec<_> = spec.labels.iter().collect();
    labels.sort();
    h.update(format!("{labels:?}").as_bytes());
    crate::digest::hex(&h.finalize()[..8])
}

/// Refuse to manage a container of the same name that belongs to another pgbox.toml.
pub fn check_ownership(s: &Settings, labels: &HashMap<String, String>) -> Result<(), Fail> {
    let theirs = labels.get(LABEL_CONFIG).map(String::as_str).unwrap_or("");
    let ours = s.config_path.display().to_string();
    if theirs != ours {
        let owner = if theirs.is_empty() {
            "something other than pgbox".to_string()
        } else {
            format!("`{theirs}`")
        };
        return Err(Fail::new(format!(
            "a container named `{}` already exists and belongs to {owner}",
            s.container_name()
        ))
        .hint("give this project another name (`name` under `[project]` in pgbox.toml)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn spec_hash_changes_with_port() {
        let s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        let d = Decision {
            mode: StorageMode::Direct,
            reason: String::new(),
            uid: 999,
            gid: 999,
            via_unshare: false,
        };
        let a = container_spec(&s, "img", &d);
        let mut s2 = s.clone();
        s2.port = 5433;
        let b = container_spec(&s2, "img", &d);
        assert_ne!(a.labels[LABEL_SPEC], b.labels[LABEL_SPEC]);
        assert!(
            a.env.iter().all(|e| !e.contains("PASSWORD=")),
            "no password in env"
        );
    }
}
