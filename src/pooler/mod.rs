//! The PgBouncer pooler: a second container of the project, beside the server.
//!
//! Shape, and why:
//! - The image is built from the distribution's `pgbouncer` package through the same
//!   templates mechanism as the server's (`templates/pooler/`), tagged by content. Its
//!   base is `debian:trixie-slim` whatever the server's, for PgBouncer 1.24: 1.21+
//!   keeps protocol-level prepared statements working in transaction mode, and 1.24
//!   does so by default (`max_prepared_statements = 200`); bookworm's 1.18 does not.
//! - The pooler reaches the server by name on a project network (`pgbox-<project>`),
//!   and publishes its port on the server's bind address.
//! - Clients are checked against the server's own SCRAM verifiers: `auth_query` runs
//!   a `SECURITY DEFINER` lookup function as a dedicated role (`pgbox_pooler`), and
//!   PgBouncer then logs in to the server with the client's SCRAM keys. That role must
//!   log in by itself, which SCRAM allows only with its password, so its password is
//!   in the auth file: the generated secret (0600, mounted read-only), the one file
//!   holding a password. `pgbouncer.ini` names its path only (see `auth`).
//! - `pgbouncer.ini` is rendered under `.pgbox/pooler/` and mounted, not baked in, so a
//!   changed `mode` or `pool_size` is a `RELOAD` on the admin console (`admin`), which
//!   keeps clients connected; a changed port or image recreates the container.
//! - Around a server restart or a restore swap, pgbox `PAUSE`s the pooler (clients
//!   wait instead of failing) and `RECONNECT`s and `RESUME`s it afterwards, so no dead
//!   server connection is left ([`admin::Pause`]).

pub mod admin;
pub mod auth;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{PoolMode, Settings};
use crate::container::image::build_once;
use crate::engine::{
    ContainerSpec, Engine, MountSource, MountSpec, LABEL_CONFIG, LABEL_PORT, LABEL_PROJECT,
    LABEL_SPEC, LABEL_VERSION,
};
use crate::error::Fail;
use crate::printer::Printer;
use crate::templates::{self, ImageContext};

/// The base the pooler image is built from (PgBouncer 1.24 in Debian trixie).
pub const BASE_IMAGE: &str = "debian:trixie-slim";
/// The role `auth_query` runs as, and the schema of its lookup function.
pub const AUTH_USER: &str = "pgbox_pooler";
/// The label that tells the pooler's container from the server's.
pub const LABEL_ROLE: &str = "org.pgbox.role";
pub const ROLE_POOLER: &str = "pooler";
/// Where the auth file's folder and the rendered ini are mounted (the entrypoint
/// and `pgbouncer.ini.j2` use the same paths).
pub const SECRET_TARGET: &str = "/run/secrets/pgbox-pooler";
pub const CONF_TARGET: &str = "/etc/pgbox/pooler";

pub fn container_name(s: &Settings) -> String {
    format!("{}-pooler", s.container_name())
}

/// The project network both containers join.
pub fn network_name(s: &Settings) -> String {
    format!("{}-net", s.container_name())
}

/// The auth file: `"pgbox_pooler" "<password>"`, 0600 in a 0700 folder.
pub fn secret_path(s: &Settings) -> PathBuf {
    s.state_dir().join("secrets").join("pooler").join("auth")
}

fn conf_dir(s: &Settings) -> PathBuf {
    s.state_dir().join("pooler")
}

/// Write the auth file with a fresh password unless it exists; the password.
pub fn ensure_secret(s: &Settings) -> anyhow::Result<String> {
    let path = secret_path(s);
    if let Ok(pw) = read_secret(s) {
        return Ok(pw);
    }
    let dir = path.parent().expect("secret has a folder");
    crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
    crate::fsutil::private_dir(dir.parent().expect("secrets folder"), 0o700)?;
    crate::fsutil::private_dir(dir, 0o700)?;
    let pw = crate::secrets::generate_password();
    crate::fsutil::write_atomic(
        &path,
        format!("\"{AUTH_USER}\" \"{pw}\"\n").as_bytes(),
        0o600,
    )
    .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(pw)
}

/// The pooler role's password, from the auth file.
pub fn read_secret(s: &Settings) -> anyhow::Result<String> {
    let path = secret_path(s);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Fail::new(format!(
            "cannot read the pooler's auth file `{}`: {e}",
            path.display()
        ))
        .hint("`pgbox up` creates it when `[pooler] enabled = true`")
    })?;
    let line = text.lines().next().unwrap_or_default();
    let pw = line
        .strip_prefix(&format!("\"{AUTH_USER}\" \""))
        .and_then(|r| r.strip_suffix('"'))
        .filter(|p| !p.is_empty() && !p.contains('"'));
    match pw {
        Some(p) => Ok(p.to_string()),
        None => Err(Fail::new(format!(
            "the pooler's auth file `{}` is not `\"{AUTH_USER}\" \"PASSWORD\"`",
            path.display()
        ))
        .hint("delete it; `pgbox up` writes a new one and sets the role's password to match")
        .into()),
    }
}

#[derive(Serialize)]
struct IniVars<'a> {
    pgbox_version: &'a str,
    project: &'a str,
    server_host: String,
    auth_user: &'a str,
    mode: String,
    pool_size: u32,
    max_client_conn: u32,
    tls: bool,
}

/// `pgbouncer.ini` for these settings, reaching the server at `server_host`.
pub fn render_ini(s: &Settings, server_host: &str) -> anyhow::Result<String> {
    let p = &s.pooler;
    templates::render(
        Some(&s.project_dir),
        "pooler/pgbouncer.ini.j2",
        IniVars {
            pgbox_version: env!("CARGO_PKG_VERSION"),
            project: &s.project,
            server_host: server_host.to_string(),
            auth_user: AUTH_USER,
            mode: p.mode.to_string(),
            pool_size: p.pool_size,
            max_client_conn: p.max_client_conn,
            tls: s.tls != crate::config::TlsMode::Off,
        },
    )
}

/// Write the rendered ini when it differs; true if it changed.
fn write_ini(s: &Settings) -> anyhow::Result<bool> {
    let body = render_ini(s, &s.container_name())?;
    let dir = conf_dir(s);
    let path = dir.join("pgbouncer.ini");
    if std::fs::read_to_string(&path).is_ok_and(|old| old == body) {
        return Ok(false);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    crate::fsutil::write_atomic(&path, body.as_bytes(), 0o644)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(true)
}

/// The pooler's container: labels like the server's plus the role, the auth file's
/// folder and the ini folder read-only, TLS material when the server has it.
pub fn container_spec(s: &Settings, image: &str) -> ContainerSpec {
    let ro = |source: PathBuf, target: &str| MountSpec {
        source: MountSource::Bind(source),
        target: target.into(),
        read_only: true,
    };
    let mut mounts = vec![
        ro(
            secret_path(s).parent().expect("folder").to_path_buf(),
            SECRET_TARGET,
        ),
        ro(conf_dir(s), CONF_TARGET),
    ];
    if s.tls != crate::config::TlsMode::Off {
        mounts.push(ro(
            crate::tls::TlsPaths::new(&s.state_dir()).server_dir,
            "/etc/pgbox/tls",
        ));
    }
    let mut spec = ContainerSpec {
        name: container_name(s),
        image: image.to_string(),
        env: Vec::new(),
        labels: HashMap::from([
            (LABEL_PROJECT.to_string(), s.project.clone()),
            (LABEL_ROLE.to_string(), ROLE_POOLER.to_string()),
            (
                LABEL_CONFIG.to_string(),
                s.config_path.display().to_string(),
            ),
            (
                LABEL_VERSION.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (
                LABEL_PORT.to_string(),
                format!("{}:{}", s.bind, s.pooler.port),
            ),
        ]),
        mounts,
        port: Some((s.bind.clone(), s.pooler.port, 6432)),
        healthcheck: vec![
            "CMD".into(),
            "bash".into(),
            "-c".into(),
            "exec 3<>/dev/tcp/127.0.0.1/6432".into(),
        ],
        stop_timeout: Duration::from_secs(10),
        entrypoint: None,
        user: None,
        service: true,
        memory: None,
        network: None,
        extra_hosts: Vec::new(),
    };
    let mut h = Sha256::new();
    h.update(spec.image.as_bytes());
    for m in &spec.mounts {
        h.update(format!("{m:?}").as_bytes());
    }
    h.update(format!("{:?}", spec.port).as_bytes());
    let mut labels: Vec<_> = spec.labels.iter().collect();
    labels.sort();
    h.update(format!("{labels:?}").as_bytes());
    spec.labels.insert(
        LABEL_SPEC.to_string(),
        crate::digest::hex(&h.finalize()[..8]),
    );
    spec
}

/// Build the pooler's image unless it exists; its tag.
pub async fn ensure_image(engine: &Engine, s: &Settings, p: &Printer) -> anyhow::Result<String> {
    let ctx = ImageContext::pooler(s, BASE_IMAGE)?;
    if let Some(took) = build_once(
        engine,
        &ctx,
        &format!("from `{BASE_IMAGE}` (PgBouncer)"),
        false,
        p,
        |e| {
            Fail::new(format!("building image `{}` failed: {e}", ctx.tag)).hint(format!(
                "check that `{BASE_IMAGE}` exists locally or can be pulled and that its archive is reachable; `-v` shows the build output"
            ))
        },
    )
    .await?
    {
        p.done(format!(
            "built image `{}` in {:.1}s",
            ctx.tag,
            took.as_secs_f64()
        ));
    }
    Ok(ctx.tag)
}

fn port_taken(s: &Settings) -> Fail {
    let port = s.pooler.port;
    Fail::new(format!(
        "the pooler's port `{port}` on `{}` is already in use",
        s.bind
    ))
    .hint(format!(
        "stop what listens there (`ss -ltnp 'sport = :{port}'` shows it), or choose another port: `port = {}` under `[pooler]` in pgbox.toml",
        port.saturating_add(1)
    ))
}

/// Bring the pooler in line with `[pooler]` once the server is ready (called by
/// `up` with the project lock held): create or start it, reload a changed ini,
/// recreate it for a changed image or port; remove it when the pooler is off.
/// `server_started`: the server was (re)started, so a running pooler's server
/// connections are dead and are closed (`RECONNECT`).
pub async fn up(
    engine: &Engine,
    s: &Settings,
    p: &Printer,
    server_started: bool,
) -> anyhow::Result<()> {
    let name = container_name(s);
    if !s.pooler.enabled {
        if let Some(c) = engine.inspect(&name).await? {
            crate::container::spec::check_ownership(s, &c.labels)?;
            remove(engine, s).await?;
            p.info(format!("`[pooler]` is off: removed `{name}`"));
        }
        return Ok(());
    }
    s.check_pooler()?;
    let server = s.container_name();
    let password = ensure_secret(s)?;
    auth::ensure_role(engine, &server, s, &password).await?;
    engine
        .ensure_network(
            &network_name(s),
            HashMap::from([(LABEL_PROJECT.to_string(), s.project.clone())]),
        )
        .await?;
    engine.join_network(&network_name(s), &server).await?;
    let ini_changed = write_ini(s)?;
    let tag = ensure_image(engine, s, p).await?;
    let spec = container_spec(s, &tag);
    if let Some(c) = engine.inspect(&name).await? {
        crate::container::spec::check_ownership(s, &c.labels)?;
        let current = c.labels.get(LABEL_SPEC) == spec.labels.get(LABEL_SPEC);
        if current && c.running {
            let console = admin::Console::connect(s).await?;
            if server_started {
                console.command("RECONNECT").await?;
            }
            if ini_changed {
                console.command("RELOAD").await?;
                p.done(format!(
                    "reloaded PgBouncer: {} mode, pool_size {}, max_client_conn {} (clients stay connected)",
                    s.pooler.mode, s.pooler.pool_size, s.pooler.max_client_conn
                ));
            }
            return announce(s, p, false).await;
        }
        if current {
            engine.join_network(&network_name(s), &name).await.ok();
            start(engine, s, &name).await?;
            return announce(s, p, true).await;
        }
        p.info("the pooler's image or port changed: recreating its container");
        engine.stop_container(&name, spec.stop_timeout).await?;
        engine.remove_container(&name, true).await?;
    }
    if std::net::TcpListener::bind((s.bind.as_str(), s.pooler.port)).is_err() {
        return Err(port_taken(s).into());
    }
    engine.create_container(&spec).await?;
    engine.join_network(&network_name(s), &name).await?;
    start(engine, s, &name).await?;
    announce(s, p, true).await
}

/// Start the pooler's container and wait until its admin console answers.
async fn start(engine: &Engine, s: &Settings, name: &str) -> anyhow::Result<()> {
    match engine
        .start_and_wait(name, "process up", Duration::from_secs(30), |_| {})
        .await
    {
        Ok(_) => {}
        Err(crate::engine::WaitError::Engine(crate::engine::EngineError::PortTaken(_))) => {
            let _ = engine.stop_container(name, Duration::from_secs(5)).await;
            return Err(port_taken(s).into());
        }
        Err(e) => {
            let _ = engine.stop_container(name, Duration::from_secs(5)).await;
            let last = engine.log_lines(name, 20).await.unwrap_or_default();
            return Err(Fail::new(format!(
                "PgBouncer did not start: {e}; its last lines:\n{}",
                last.iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
            .hint("fix the cause above, then run `pgbox up` again; `pgbox logs pooler` shows the whole log")
            .into());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match admin::Console::connect(s).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("PgBouncer started but its admin console does not answer"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Say the pooler is ready, with its version; warn when it cannot keep prepared
/// statements in transaction mode.
async fn announce(s: &Settings, p: &Printer, started: bool) -> anyhow::Result<()> {
    let console = admin::Console::connect(s).await?;
    let version = console.version().await.unwrap_or_default();
    if s.pooler.mode == PoolMode::Transaction && !admin::keeps_prepared(&version) {
        p.warn(format!(
            "{version} does not keep prepared statements in transaction mode (1.21+ does): turn server-side prepares off in the client (JDBC `prepareThreshold=0`, asyncpg `statement_cache_size=0`)"
        ));
    }
    let what = format!(
        "{} pools `{}` on port {} ({} mode, pool_size {})",
        if version.is_empty() {
            "PgBouncer"
        } else {
            &version
        },
        s.project,
        s.pooler.port,
        s.pooler.mode,
        s.pooler.pool_size
    );
    if started {
        p.done(what);
    } else {
        p.info(what);
    }
    p.info(format!(
        "pooled: {}",
        crate::connection::pooled_url(s, None)
    ));
    Ok(())
}

/// Stop and remove the pooler's container and the project network (`down`, or
/// `[pooler]` turned off). The server leaves the network first.
/// True when there was one.
pub async fn remove(engine: &Engine, s: &Settings) -> anyhow::Result<bool> {
    let name = container_name(s);
    let Some(c) = engine.inspect(&name).await? else {
        return Ok(false);
    };
    crate::container::spec::check_ownership(s, &c.labels)?;
    if c.running {
        engine
            .stop_container(&name, Duration::from_secs(10))
            .await?;
    }
    engine.remove_container(&name, true).await?;
    Ok(true)
}

/// Remove the project network once no container is on it (after `down`).
pub async fn remove_network(engine: &Engine, s: &Settings) -> anyhow::Result<()> {
    let net = network_name(s);
    match engine.network_members(&net).await? {
        Some(m) if m.is_empty() => Ok(engine.remove_network(&net).await?),
        _ => Ok(()),
    }
}
