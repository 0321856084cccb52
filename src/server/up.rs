//! `pgbox up` as an operation: build if needed, create or start the container, wait
//! until ready; or, with the container already running on the current spec, apply
//! changed settings in place; or validate everything in a throwaway container.
//!
//! Readiness comes from the entrypoint itself: it prints `state=RUNNING` only after
//! a TCP connection to 127.0.0.1 inside the container succeeds against the real
//! server (the first-start init server listens on no TCP port). pgbox attaches
//! to the container before starting it, so it sees that line the moment it is
//! written, then confirms the published port from the host with a protocol ping.
//! The project lock is taken first, so `down`, `save` and backups wait their turn.

use std::time::{Duration, Instant};

use super::conf;
use crate::config::{Settings, StorageMode};
use crate::connection;
use crate::container::image::ensure_image;
use crate::container::spec::{self, READY_MARKER};
use crate::engine::{
    ContainerSpec, Engine, EngineError, MountSource, WaitError, LABEL_PROJECT, LABEL_SPEC,
};
use crate::error::Fail;
use crate::printer::Printer;
use crate::probe::{self, Ping};
use crate::storage::{self, fallback};

/// What `pgbox up` was asked for.
#[derive(Clone)]
pub struct UpOptions {
    /// How long to wait for PostgreSQL to accept connections.
    pub timeout: Duration,
    /// Validate in a throwaway container and change nothing.
    pub dry_run: bool,
}

fn port_taken(bind: &str, port: u16) -> Fail {
    Fail::new(format!("port `{port}` on `{bind}` is already in use")).hint(format!(
        "stop what listens there (`ss -ltnp 'sport = :{port}'` shows it), or choose another port: \
             `port = {}` under `[network]` in pgbox.toml, or `PGBOX_PORT={}`",
        port.saturating_add(1),
        port.saturating_add(1)
    ))
}

/// Ping the published port until it answers (the engine's proxy may lag a moment).
async fn confirm_port(host: &str, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match probe::ping(host, port, Duration::from_secs(2)).await {
            Ping::Ready => return Ok(()),
            other if Instant::now() > deadline => return Err(format!("{other:?}")),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Bring the project's server up (see the module docs); prints the URL when ready.
pub async fn up(engine: &Engine, s: &Settings, o: UpOptions, p: &Printer) -> anyhow::Result<()> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "up")?;
    up_locked(engine, s, o, p).await
}

/// [`up`] for a caller that holds the project lock (`pgbox upgrade`).
pub async fn up_locked(
    engine: &Engine,
    s: &Settings,
    o: UpOptions,
    p: &Printer,
) -> anyhow::Result<()> {
    let started = Instant::now();
    if let Some(msg) = crate::state::PitrRestore::repair_swap(s)? {
        p.warn(msg);
    }
    crate::secrets::ensure_secret(s, None)?;
    connection::warn_if_public(s, p);
    let tag = ensure_image(engine, s, p, false).await?;
    let decision = storage::decision(engine, s, &tag).await?;
    let spec = spec::container_spec(s, &tag, &decision);
    let name = spec.name.clone();
    if o.dry_run {
        crate::tls::prepare_tls(s)?;
        conf::render_config(s)?;
        return dry_run(engine, spec, p).await;
    }
    let tls_changed = crate::tls::prepare_tls(s)?;
    let rendered = conf::render_config(s)?;
    let running = Running {
        engine,
        s,
        name: &name,
        mode: decision.mode,
        timeout: o.timeout,
        p,
    };

    let mut create = true;
    if let Some(c) = engine.inspect(&name).await? {
        spec::check_ownership(s, &c.labels)?;
        let current = c.labels.get(LABEL_SPEC) == spec.labels.get(LABEL_SPEC);
        if c.running && current {
            return running.apply(&rendered, tls_changed).await;
        }
        if c.running {
            let bar = p.spinner("settings changed: stopping the container to recreate it");
            let r = engine
                .stop_container(&name, spec::stop_timeout(decision.mode))
                .await;
            bar.finish_and_clear();
            r?;
        }
        if current {
            create = false;
        } else {
            // Fallback: the old container may hold the only up-to-date copy; it goes
            // only after that copy is in the tarball.
            if decision.mode == StorageMode::Fallback {
                fallback::ensure_saved(engine, s, &name, c.running, "pgbox up", p).await?;
            }
            p.info(
                "settings changed since the container was created: recreating it (data is kept)",
            );
            engine.remove_container(&name, false).await?;
        }
    }

    remove_upgrade_workers(engine, s, p).await?;
    storage::prepare(engine, s, &decision).await?;
    if std::net::TcpListener::bind((s.bind.as_str(), s.port)).is_err() {
        return Err(port_taken(&s.bind, s.port).into());
    }
    if create {
        engine.create_container(&spec).await?;
    }
    running.start().await?;
    running.settle().await?;
    p.done(format!(
        "PostgreSQL {} for `{}` is ready in {:.1}s ({} storage)",
        s.pg_version,
        s.project,
        started.elapsed().as_secs_f64(),
        decision.mode
    ));
    crate::pooler::up(engine, s, p, true).await?;
    p.data(connection::url(s, None));
    Ok(())
}

/// A killed `pgbox upgrade` can leave its helper containers, one of them serving the
/// old data read-only: they go before the server starts, so two servers never run
/// on one data folder. (The lock guarantees no upgrade is running now.)
async fn remove_upgrade_workers(engine: &Engine, s: &Settings, p: &Printer) -> anyhow::Result<()> {
    for role in spec::WORKER_ROLES {
        let name = spec::worker_name(s, role);
        if let Some(c) = engine.inspect(&name).await? {
            if spec::check_ownership(s, &c.labels).is_err() {
                continue;
            }
            let _ = engine.stop_container(&name, Duration::from_secs(10)).await;
            engine.remove_container(&name, true).await?;
            p.info(format!(
                "removed `{name}`, left by an interrupted `pgbox upgrade`"
            ));
        }
    }
    Ok(())
}

/// The project's container, created with the current spec, and how to wait for it.
struct Running<'a> {
    engine: &'a Engine,
    s: &'a Settings,
    name: &'a str,
    mode: StorageMode,
    timeout: Duration,
    p: &'a Printer,
}

impl Running<'_> {
    /// The container runs with the current spec: apply config, TLS, password and
    /// extension changes (reload, or restart when a setting needs it).
    async fn apply(&self, rendered: &conf::Rendered, tls_changed: bool) -> anyhow::Result<()> {
        let Running {
            engine, s, name, p, ..
        } = *self;
        crate::container::ctl::refuse_maintenance(engine, s, name).await?;
        if let Err(why) = confirm_port(&s.url_host(), s.port).await {
            return Err(Fail::new(format!(
                "`{name}` is running but PostgreSQL does not answer on port {}: {why}",
                s.port
            ))
            .hint("see `pgbox logs`; `pgbox down && pgbox up` restarts it")
            .into());
        }
        if rendered.changed() || tls_changed {
            let reload = match conf::reload(engine, name).await {
                Ok(r) => r,
                Err(e) => {
                    // The refusal is the error; a failed roll-back is said alongside.
                    if let Err(rb) = rendered.roll_back() {
                        p.warn(rb.message);
                    }
                    return Err(e);
                }
            };
            if reload.pending_restart.is_empty() {
                p.done("applied the changed settings with a reload");
            } else {
                let what = reload.pending_restart.join(", ");
                // Pooled clients wait through the restart instead of failing.
                let paused = crate::pooler::admin::Pause::begin(s, None).await;
                let bar = p.spinner(format!("restarting PostgreSQL to apply {what}"));
                let r = engine
                    .stop_container(name, spec::stop_timeout(self.mode))
                    .await;
                bar.finish_and_clear();
                let started = match r {
                    Ok(()) => self.start().await,
                    Err(e) => Err(e.into()),
                };
                if let Some(paused) = paused {
                    paused.end().await;
                }
                started?;
                p.done(format!("restarted PostgreSQL to apply {what}"));
            }
        }
        self.settle().await?;
        p.info(format!("PostgreSQL for `{}` is already running", s.project));
        crate::pooler::up(engine, s, p, false).await?;
        p.data(connection::url(s, None));
        Ok(())
    }

    /// Once ready: apply password and extension drift, and list copies kept aside.
    async fn settle(&self) -> anyhow::Result<()> {
        conf::apply_drift(self.engine, self.name, self.s, self.p).await?;
        if self.mode == StorageMode::Fallback {
            fallback::warn_kept(self.s, self.p)?;
        }
        Ok(())
    }

    /// Start the created container and wait until it is ready, from inside and from the host.
    async fn start(&self) -> anyhow::Result<()> {
        let Running {
            engine,
            s,
            name,
            timeout,
            p,
            ..
        } = *self;
        let bar = p.spinner(format!(
            "starting PostgreSQL {} for `{}`",
            s.pg_version, s.project
        ));
        let waited = engine
            .start_and_wait(name, READY_MARKER, timeout, |line| {
                p.verbose_line(&bar, line);
                if let Some(state) = line.split("state=").nth(1) {
                    bar.set_message(format!(
                        "starting PostgreSQL {} ({})",
                        s.pg_version,
                        state.trim()
                    ));
                }
            })
            .await;
        bar.finish_and_clear();
        if matches!(waited, Err(WaitError::Died { .. } | WaitError::Timeout(..))) {
            // Keep the restart policy from looping on a start that cannot succeed.
            if let Err(e) = engine.stop_container(name, Duration::from_secs(5)).await {
                p.warn(format!(
                "cannot stop `{name}` after its failed start, so its restart policy may keep restarting it: {e}"
            ));
            }
        }
        match waited {
        Ok(_) => {}
        Err(WaitError::Engine(EngineError::PortTaken(_))) => return Err(port_taken(&s.bind, s.port).into()),
        Err(WaitError::Died { exit_code, last_lines }) => {
            return Err(Fail::new(format!(
                "PostgreSQL did not start: the container exited with code {exit_code}; its last lines:\n{}",
                indent(&last_lines)
            ))
            .hint("fix the cause above, then run `pgbox up` again; `pgbox logs` shows the whole log")
            .into())
        }
        Err(WaitError::Timeout(t, last_lines)) => {
            return Err(Fail::new(format!(
                "PostgreSQL was not ready after {}s; the container's last lines:\n{}",
                t.as_secs(),
                indent(&last_lines)
            ))
            .hint("`pgbox logs -f` shows what it is doing; `--timeout SECONDS` waits longer")
            .into())
        }
        Err(WaitError::Engine(e)) => return Err(e.into()),
    }
        if let Err(why) = confirm_port(&s.url_host(), s.port).await {
            return Err(Fail::new(format!(
            "PostgreSQL is running in the container but does not answer on {}:{}: {why}",
            s.url_host(),
            s.port
        ))
        .hint(
            "check the engine's port forwarding (`docker port`); `pgbox logs` shows the server log",
        )
        .into());
        }
        Ok(())
    }
}

/// Run the entrypoint with DRY_RUN=1 against the real mounts: it validates every
/// module and changes nothing. A data folder that does not exist yet is not created.
async fn dry_run(engine: &Engine, mut spec: ContainerSpec, p: &Printer) -> anyhow::Result<()> {
    spec.name = format!("{}-dryrun", spec.name);
    spec.port = None;
    spec.healthcheck.clear();
    spec.service = false;
    spec.labels
        .insert(LABEL_PROJECT.to_string(), "-dryrun".to_string());
    spec.env.push("DRY_RUN=1".into());
    if p.verbose() {
        spec.env.push("DEBUG=1".into());
    }
    spec.mounts.retain(|m| match &m.source {
        MountSource::Bind(path) if !path.exists() => {
            p.info(format!(
                "data folder `{}` does not exist yet; `pgbox up` creates it",
                path.display()
            ));
            false
        }
        _ => true,
    });
    let (code, lines) = engine.run_to_completion(&spec).await?;
    for l in &lines {
        p.info(format!("  {l}"));
    }
    if code != 0 {
        return Err(Fail::new(format!(
            "the dry run failed with exit code {code}; see the lines above"
        ))
        .hint("fix what the entrypoint reported, then run `pgbox up --dry-run` again")
        .into());
    }
    p.done("dry run passed: the configuration is valid and nothing was changed");
    Ok(())
}

fn indent(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
