//! Operations on one project that several commands share.
//!
//! Commands orchestrate; the pieces they have in common live here: the password
//! file, the image (built on demand and tagged by content), the storage decision,
//! the container specification and the connection URL. Each is written once so
//! `init`, `build`, `up` and `status` cannot drift apart.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use sha2::{Digest, Sha256};

use std::path::PathBuf;

use crate::config::{Settings, StorageMode, TlsMode};
use crate::engine::{
    ContainerSpec, Engine, MountSource, MountSpec, LABEL_CONFIG, LABEL_PORT, LABEL_PROJECT,
    LABEL_SPEC, LABEL_VERSION,
};
use crate::error::Fail;
use crate::printer::Printer;
use crate::storage::{self, Decision, ProjectState};
use crate::templates::ImageContext;
use crate::tls::TlsPaths;

/// Where the secrets folder is mounted (a folder, so a rewritten file is seen).
pub const SECRETS_TARGET: &str = "/run/secrets/pgbox";
/// Rendered postgresql.conf and pg_hba.conf, mounted read-only.
pub const CONF_TARGET: &str = "/etc/pgbox/conf";
/// Where the data folder or volume is mounted (PGDATA, except in fallback mode).
pub const DATA_MOUNT: &str = "/var/lib/postgresql/data";
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
/// Line the entrypoint prints once PostgreSQL accepts TCP connections.
pub const READY_MARKER: &str = "state=RUNNING";

pub fn generate_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Check a user-supplied password: non-empty, one line.
pub fn check_password(p: &str) -> Result<(), Fail> {
    if p.is_empty() {
        return Err(Fail::new("the password is empty")
            .hint("pipe a non-empty password into `--password-stdin`"));
    }
    if p.contains('\n') || p.contains('\r') || p.contains('\0') {
        return Err(Fail::new("the password contains a line break or NUL")
            .hint("use a single-line password"));
    }
    Ok(())
}

/// Write the password file (0600 in a 0700 folder) unless it exists. True if written.
pub fn ensure_secret(s: &Settings, provided: Option<&str>) -> anyhow::Result<bool> {
    let path = s.secret_path();
    if path.is_file() && provided.is_none() {
        return Ok(false);
    }
    let dir = path.parent().expect("secret path has a parent");
    crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
    crate::fsutil::private_dir(dir, 0o700)?;
    let password = provided
        .map(str::to_string)
        .unwrap_or_else(generate_password);
    crate::fsutil::write_atomic(&path, format!("{password}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(true)
}

pub fn read_password(s: &Settings) -> anyhow::Result<String> {
    let path = s.secret_path();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Fail::new(format!(
            "cannot read the password file `{}`: {e}",
            path.display()
        ))
        .hint("run `pgbox init` to create it")
    })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `postgresql://user[:password]@host:port/db`
pub fn url(s: &Settings, password: Option<&str>) -> String {
    let auth = match password {
        Some(p) => format!("{}:{}", percent_encode(&s.user), percent_encode(p)),
        None => percent_encode(&s.user),
    };
    let query = crate::cluster::url_tls_params(s)
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    format!(
        "postgresql://{auth}@{}:{}/{}{query}",
        s.url_host(),
        s.port,
        percent_encode(&s.database)
    )
}

/// Build the image unless one with the same content hash exists. Returns its tag.
pub async fn ensure_image(
    engine: &Engine,
    s: &Settings,
    p: &Printer,
    force: bool,
) -> anyhow::Result<String> {
    let ctx = ImageContext::for_settings(s)?;
    if !force && engine.image_exists(&ctx.tag).await? {
        p.detail(format!("image `{}` is up to date", ctx.tag));
        return Ok(ctx.tag);
    }
    let started = std::time::Instant::now();
    let bar = p.spinner(format!(
        "building image `{}` from `{}`",
        ctx.tag, s.base_image
    ));
    let labels = HashMap::from([(
        LABEL_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )]);
    let verbose = p.verbose();
    let result = engine
        .build_image(&ctx.tag, ctx.tar()?, &labels, |line| {
            if verbose {
                bar.suspend(|| eprintln!("  {line}"));
            } else if line.starts_with("Step ") {
                bar.set_message(format!("building image: {line}"));
            }
        })
        .await;
    bar.finish_and_clear();
    result.map_err(|e| {
        Fail::new(format!("building image `{}` failed: {e}", ctx.tag)).hint(format!(
            "check that base image `{}` exists locally or can be pulled, and that it can install PostgreSQL {}; `-v` shows the build output",
            s.base_image, s.pg_version
        ))
    })?;
    p.done(format!(
        "built image `{}` in {:.1}s",
        ctx.tag,
        started.elapsed().as_secs_f64()
    ));
    Ok(ctx.tag)
}

/// The storage decision: recorded at init and confirmed here; made now if absent.
pub async fn storage_decision(
    engine: &Engine,
    s: &Settings,
    image: &str,
) -> anyhow::Result<Decision> {
    let mut state = ProjectState::load(s);
    let known = state
        .storage
        .as_ref()
        .filter(|_| state.image.as_deref() == Some(image))
        .map(|d| (d.uid, d.gid));
    let (uid, gid) = match (s.uid, s.gid, known) {
        (Some(u), g, _) => (u, g.unwrap_or(u)),
        (None, _, Some(ids)) => ids,
        _ => engine
            .image_user_ids(image, "postgres")
            .await
            .with_context(|| format!("cannot read the postgres user from image `{image}`"))?,
    };
    if let Some(d) = state.storage.clone() {
        let still_valid = d.uid == uid
            && d.gid == gid
            && (s.storage_mode == StorageMode::Auto || s.storage_mode == d.mode);
        if still_valid {
            if state.image.as_deref() != Some(image) {
                state.image = Some(image.to_string());
                state.save(s)?;
            }
            return Ok(d);
        }
    }
    let unshare = engine.rootless()
        && engine.flavour == crate::engine::Flavour::Podman
        && storage::unshare_available();
    let d = storage::decide(s.storage_mode, uid, gid, unshare)?;
    state.storage = Some(d.clone());
    state.image = Some(image.to_string());
    state.save(s)?;
    Ok(d)
}

/// Make the data location ready: the folder for direct mode, the volume otherwise.
pub async fn prepare_storage(engine: &Engine, s: &Settings, d: &Decision) -> anyhow::Result<()> {
    match d.mode {
        StorageMode::Volume => {
            if !engine.volume_exists(&s.volume).await? {
                let labels = HashMap::from([
                    (LABEL_PROJECT.to_string(), s.project.clone()),
                    (
                        LABEL_CONFIG.to_string(),
                        s.config_path.display().to_string(),
                    ),
                ]);
                engine.create_volume(&s.volume, labels).await?;
            }
        }
        StorageMode::Fallback => {
            // The folder stays the user's; the container only writes the tarball into it.
            if !s.data_dir.exists() {
                crate::fsutil::private_dir(&s.data_dir, 0o700).with_context(|| {
                    format!("cannot create data folder `{}`", s.data_dir.display())
                })?;
            }
        }
        _ if d.via_unshare => storage::prepare_direct_unshare(&s.data_dir, d.uid, d.gid)?,
        _ => {
            storage::prepare_direct(&s.data_dir, d.uid, d.gid)?;
        }
    }
    Ok(())
}

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
    m
}

/// Everything pgbox asks the engine for, plus a hash of it stored as a label.
pub fn container_spec(s: &Settings, image: &str, d: &Decision) -> ContainerSpec {
    let data = match d.mode {
        StorageMode::Volume => MountSource::Volume(s.volume.clone()),
        _ => MountSource::Bind(s.data_dir.clone()),
    };
    let env = vec![
        format!("POSTGRES_USER={}", s.user),
        format!("POSTGRES_DB={}", s.database),
        format!("POSTGRES_PASSWORD_FILE={SECRETS_TARGET}/postgres_password"),
        format!("PGBOX_MOUNT={DATA_MOUNT}"),
        format!("PGBOX_STORAGE_MODE={}", d.mode),
        format!("PGBOX_SAVE_INTERVAL={}", s.save_interval),
        format!("PGBOX_DISK_MIN_MB={}", s.min_free_mb),
        format!("PGBOX_SHUTDOWN_TIMEOUT={}", SHUTDOWN_BOUND.as_secs()),
    ];
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
    };
    let hash = spec_hash(&spec);
    spec.labels.insert(LABEL_SPEC.to_string(), hash);
    spec
}

fn spec_hash(spec: &ContainerSpec) -> String {
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

/// Warn when PostgreSQL listens beyond this machine (`bind` not a loopback address):
/// with TLS off the password and data cross the network in clear, so say how to turn
/// TLS on; with TLS on, still say the server is reachable from the network.
pub fn warn_if_public(s: &Settings, p: &Printer) {
    let loopback = s
        .bind
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return;
    }
    let at = format!("`{}` port {}", s.bind, s.port);
    if s.tls == TlsMode::Off {
        p.warn(format!(
            "PostgreSQL listens on {at}, reachable from the network, with TLS off: passwords and data \
             cross it in clear; turn TLS on with `mode = \"self-signed\"` (or `\"files\"`) under `[tls]` \
             in pgbox.toml (`pgbox init --tls self-signed` for a new project) and run `pgbox up`, \
             or set `bind = \"127.0.0.1\"` to keep it on this machine"
        ));
    } else {
        p.warn(format!(
            "PostgreSQL listens on {at}, reachable from the network (TLS is on; logins need it); \
             firewall the port or set `bind = \"127.0.0.1\"` if only this machine needs it"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password();
        assert_eq!(a.len(), 32);
        assert_ne!(a, generate_password());
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn url_encodes_special_characters() {
        let s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        assert_eq!(url(&s, None), "postgresql://app@127.0.0.1:5432/app");
        assert_eq!(
            url(&s, Some("p@ss w'o\"rd\\")),
            "postgresql://app:p%40ss%20w%27o%22rd%5C@127.0.0.1:5432/app"
        );
    }

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
