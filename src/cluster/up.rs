//! `pgbox up` and `pgbox down` for a cluster.
//!
//! `up`: network, etcd, then the nodes one at a time, the last known leader first
//! (recorded by `down`), each until its entrypoint reports RUNNING (a replica after
//! its base backup), then until Patroni reports a leader and every node running;
//! then the settings drift is applied through Patroni (`params`), then (with
//! `synchronous = true`) until a synchronous standby is named, and the password and
//! extension drift is applied on the leader. Nodes beyond `replicas` are removed
//! (after a switchover if one leads) and their copies deleted; new ones clone from
//! the leader. A running node whose spec is unchanged is left alone.
//!
//! `down`: replicas first, the leader last, then etcd, so that no replica is
//! promoted while the cluster is being stopped; the data stays.

use std::time::{Duration, Instant};

use super::spec;
use super::{etcd_container, etcd_volume, member, node_container, node_port, node_settings};
use crate::config::{Settings, StorageMode, MAX_REPLICAS};
use crate::container::image::ensure_image;
use crate::container::patroni::{self as api, Member};
use crate::container::spec::{check_ownership, stop_timeout, READY_MARKER};
use crate::engine::{ContainerSpec, Engine, EngineError, WaitError, LABEL_SPEC};
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::server::conf;
use crate::server::down::{Down, DownOptions};
use crate::server::up::UpOptions;
use crate::storage;

/// etcd 3.4's line (zap logger) once it serves clients.
const ETCD_READY: &str = "serving client traffic";

fn leader_record(s: &Settings) -> std::path::PathBuf {
    s.state_dir().join("cluster-leader")
}

/// Bring the cluster up (see the module docs).
pub async fn up(engine: &Engine, s: &Settings, o: UpOptions, p: &Printer) -> anyhow::Result<()> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "up")?;
    let started = Instant::now();
    super::check(s)?;
    if o.dry_run {
        return Err(
            Fail::new("`up --dry-run` is not supported with a cluster yet")
                .code(EXIT_USAGE)
                .into(),
        );
    }
    if let Some(c) = engine.inspect(&s.container_name()).await? {
        if check_ownership(s, &c.labels).is_ok() {
            return Err(Fail::new(format!(
                "`{}` runs as a single server (container `{}`); turning it into a cluster in place is not supported yet",
                s.project,
                s.container_name()
            ))
            .hint("set `replicas = 0` under `[cluster]`; or back up, `pgbox down --purge`, `pgbox up` and restore the backup")
            .code(EXIT_USAGE)
            .into());
        }
    }
    // Every port a node that is not running yet will publish, before anything starts.
    for i in 0..=s.replicas {
        let running = engine
            .inspect(&node_container(s, i))
            .await?
            .is_some_and(|c| c.running);
        if !running && std::net::TcpListener::bind((s.bind.as_str(), node_port(s, i))).is_err() {
            return Err(port_taken(&s.bind, node_port(s, i)).into());
        }
    }
    crate::secrets::ensure_secret(s, None)?;
    super::ensure_secrets(s)?;
    crate::connection::warn_if_public(s, p);
    let tag = ensure_image(engine, s, p, false).await?;
    let decision = storage::decision(engine, s, &tag).await?;
    if decision.mode == StorageMode::Fallback {
        return Err(Fail::new(format!(
            "storage resolved to `fallback` ({}), which cannot work with a cluster: every node needs its data on disk while it runs",
            decision.reason
        ))
        .hint("set `mode = \"volume\"` under `[storage]`, or make the data folder ownable by the container's postgres user")
        .code(EXIT_USAGE)
        .into());
    }
    if decision.mode == StorageMode::Direct && s.data_dir.join("PG_VERSION").exists() {
        return Err(Fail::new(format!(
            "`{}` holds a single server's data; turning it into a cluster in place is not supported yet",
            s.data_dir.display()
        ))
        .hint("set `replicas = 0` under `[cluster]`; or back up, `pgbox down --purge`, `pgbox up` and restore the backup")
        .code(EXIT_USAGE)
        .into());
    }
    let rendered = conf::render_config(s)?;
    super::render_patroni(s)?;
    let topo = spec::ensure_network(engine, s).await?;

    let etcd = spec::etcd_spec(s, &tag, &topo);
    ensure_container(engine, s, &etcd, ETCD_READY, o.timeout, "etcd", p).await?;

    scale_down(engine, s, p).await?;

    let first = std::fs::read_to_string(leader_record(s))
        .ok()
        .and_then(|n| api::member_index(s, n.trim()))
        .filter(|i| *i <= s.replicas)
        .unwrap_or(0);
    let order = std::iter::once(first).chain((0..=s.replicas).filter(|i| *i != first));
    for i in order {
        let ns = node_settings(s, i);
        let spec = spec::node_spec(s, &ns, i, &tag, &decision, &topo);
        // A replica with no data location yet clones the leader (a base backup).
        let new = i > 0 && !storage::location_exists(engine, &ns, decision.mode).await?;
        if !node_current(engine, s, &spec).await? {
            storage::prepare(engine, &ns, &decision).await?;
        }
        let what = format!("{} (port {})", member(i), node_port(s, i));
        ensure_container(engine, s, &spec, READY_MARKER, o.timeout, &what, p).await?;
        if new {
            p.done(format!(
                "added {what}: a copy of the leader's data in {}",
                storage::location(&ns, decision.mode)
            ));
        }
    }

    // A leader and every node first; the synchronous standby only after the
    // settings (`synchronous` among them) are applied.
    wait_healthy(engine, s, false, o.timeout, p).await?;
    super::params::apply(engine, s, &rendered, p).await?;
    let members = wait_healthy(engine, s, s.synchronous, o.timeout, p).await?;
    let leader = api::leader(engine, s).await?;
    conf::apply_drift(engine, &leader, s, p).await?;
    let lname = members
        .iter()
        .find(|m| m.is_leader())
        .map(|m| m.name.clone())
        .unwrap_or_default();
    p.done(format!(
        "cluster `{}` is ready in {:.1}s: leader {lname}, {} replica{} ({}, {} storage)",
        s.project,
        started.elapsed().as_secs_f64(),
        s.replicas,
        if s.replicas == 1 { "" } else { "s" },
        if s.synchronous {
            "synchronous"
        } else {
            "asynchronous"
        },
        decision.mode
    ));
    p.data(super::url(s, None, false));
    Ok(())
}

async fn node_current(engine: &Engine, s: &Settings, spec: &ContainerSpec) -> anyhow::Result<bool> {
    Ok(match engine.inspect(&spec.name).await? {
        Some(c) => {
            check_ownership(s, &c.labels)?;
            c.running && c.labels.get(LABEL_SPEC) == spec.labels.get(LABEL_SPEC)
        }
        None => false,
    })
}

/// Create (or recreate, when its spec changed) and start one container, waiting
/// for `marker`; a running container with the current spec is left alone.
async fn ensure_container(
    engine: &Engine,
    s: &Settings,
    spec: &ContainerSpec,
    marker: &str,
    timeout: Duration,
    what: &str,
    p: &Printer,
) -> anyhow::Result<()> {
    let name = &spec.name;
    let mut create = true;
    if let Some(c) = engine.inspect(name).await? {
        check_ownership(s, &c.labels)?;
        let current = c.labels.get(LABEL_SPEC) == spec.labels.get(LABEL_SPEC);
        if c.running && current {
            p.detail(format!("{what} is already running"));
            return Ok(());
        }
        if c.running {
            engine.stop_container(name, spec.stop_timeout).await?;
        }
        if current {
            create = false;
        } else {
            p.info(format!(
                "settings of {what} changed: recreating `{name}` (data is kept)"
            ));
            engine.remove_container(name, false).await?;
        }
    }
    if let Some((bind, port, _)) = &spec.port {
        if std::net::TcpListener::bind((bind.as_str(), *port)).is_err() {
            return Err(port_taken(bind, *port).into());
        }
    }
    if create {
        engine.create_container(spec).await?;
    }
    let bar = p.spinner(format!("starting {what}"));
    let waited = engine
        .start_and_wait(name, marker, timeout, |line| p.verbose_line(&bar, line))
        .await;
    bar.finish_and_clear();
    match waited {
        Ok(t) => {
            p.detail(format!("{what} started in {:.1}s", t.as_secs_f64()));
            Ok(())
        }
        Err(WaitError::Engine(EngineError::PortTaken(_))) => {
            let (bind, port, _) = spec.port.clone().unwrap_or_default();
            Err(port_taken(&bind, port).into())
        }
        Err(e) => {
            let lines = match &e {
                WaitError::Died { last_lines, .. } | WaitError::Timeout(_, last_lines) => {
                    last_lines.join("\n  ")
                }
                WaitError::Engine(_) => String::new(),
            };
            let _ = engine.stop_container(name, Duration::from_secs(5)).await;
            Err(Fail::new(format!(
                "{what} did not start: {e}; its last lines:\n  {lines}"
            ))
            .hint(format!("`docker logs {name}` shows the whole log"))
            .into())
        }
    }
}

fn port_taken(bind: &str, port: u16) -> Fail {
    Fail::new(format!(
        "port `{port}` on `{bind}` is already in use; node i of the cluster publishes port + i"
    ))
    .hint(format!(
        "stop what listens there (`ss -ltnp 'sport = :{port}'`), or choose another `port` under `[network]` so that port to port + replicas are free"
    ))
    .code(EXIT_USAGE)
}

/// Wait until Patroni reports a leader, every node running, and (`sync`) a
/// synchronous standby.
pub async fn wait_healthy(
    engine: &Engine,
    s: &Settings,
    sync: bool,
    timeout: Duration,
    p: &Printer,
) -> anyhow::Result<Vec<Member>> {
    let bar = p.spinner("waiting for the cluster: leader, replicas streaming");
    let deadline = Instant::now() + timeout.max(Duration::from_secs(60));
    let mut last = String::from("no answer from Patroni yet");
    loop {
        if let Ok(Some(m)) = api::cluster_view(engine, s).await {
            let leader = m.iter().any(|m| m.is_leader() && m.healthy());
            let all = (0..=s.replicas).all(|i| {
                m.iter()
                    .any(|x| x.name == member(i) && x.healthy() && x.timeline.is_some())
            });
            let sync_ok = !sync || m.iter().any(|m| m.role == "sync_standby");
            if leader && all && sync_ok {
                bar.finish_and_clear();
                return Ok(m);
            }
            last = m
                .iter()
                .map(|m| format!("{} {} {}", m.name, m.role, m.state))
                .collect::<Vec<_>>()
                .join(", ");
        }
        if Instant::now() > deadline {
            bar.finish_and_clear();
            return Err(Fail::new(format!(
                "the cluster was not healthy after {}s: {last}",
                timeout.max(Duration::from_secs(60)).as_secs()
            ))
            .hint("`pgbox status` shows every node; `pgbox logs NODE` one node's log")
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Nodes beyond `replicas`: hand the leader on first if one of them leads, then
/// stop and remove them and delete their copies of the data.
async fn scale_down(engine: &Engine, s: &Settings, p: &Printer) -> anyhow::Result<()> {
    let mut extra = Vec::new();
    for i in s.replicas + 1..=MAX_REPLICAS {
        let name = node_container(s, i);
        if let Some(c) = engine.inspect(&name).await? {
            check_ownership(s, &c.labels)?;
            extra.push((i, c));
        }
    }
    if extra.is_empty() {
        return Ok(());
    }
    if let Ok(leader) = api::leader(engine, s).await {
        if let Some(i) = super::node_of(s, &leader).filter(|i| *i > s.replicas) {
            p.info(format!(
                "{} leads and is removed: switching over to node0 first",
                member(i)
            ));
            super::ops::switchover(engine, s, Some("node0"), p).await?;
        }
    }
    let mode = storage::in_effect(s)?.mode;
    for (i, c) in extra {
        let name = node_container(s, i);
        if c.running {
            engine.stop_container(&name, stop_timeout(mode)).await?;
        }
        engine.remove_container(&name, false).await?;
        let ns = node_settings(s, i);
        storage::delete_data(engine, &ns, mode, Some(c.image.clone()), p).await?;
        p.done(format!(
            "removed {} (`{name}`) and its copy of the data ({})",
            member(i),
            storage::location(&ns, mode)
        ));
    }
    Ok(())
}

/// Stop the cluster (see the module docs); `--rm` also removes the containers and
/// the network, `--purge` every node's data and etcd's too.
pub async fn down(
    engine: &Engine,
    s: &Settings,
    o: DownOptions,
    p: &Printer,
) -> anyhow::Result<Down> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "down")?;
    let mode = storage::in_effect(s)?.mode;
    if o.purge {
        let ok = p.confirm(
            format!(
                "Delete the data of every node and of etcd of `{}` for good?",
                s.project
            ),
            o.yes,
            "`--purge` deletes every node's data and etcd's",
            "pass `--yes` to confirm without a terminal",
        )?;
        if !ok {
            p.info("nothing deleted");
            return Ok(Down::Declined);
        }
    }
    let leader = api::leader(engine, s).await.ok();
    if let Some(l) = &leader {
        if let Some(i) = super::node_of(s, l) {
            crate::fsutil::write_atomic(&leader_record(s), member(i).as_bytes(), 0o644)?;
        }
    }
    let mut nodes: Vec<u32> = (0..=MAX_REPLICAS)
        .filter(|i| Some(node_container(s, *i)) != leader)
        .collect();
    if let Some(i) = leader.as_deref().and_then(|l| super::node_of(s, l)) {
        nodes.push(i);
    }
    let mut images = Vec::new();
    for i in nodes {
        let name = node_container(s, i);
        let Some(c) = engine.inspect(&name).await? else {
            continue;
        };
        check_ownership(s, &c.labels)?;
        if c.running {
            let t = Instant::now();
            let bar = p.spinner(format!("stopping {}", member(i)));
            let r = engine.stop_container(&name, stop_timeout(mode)).await;
            bar.finish_and_clear();
            r?;
            p.done(format!(
                "stopped `{name}` in {:.1}s",
                t.elapsed().as_secs_f64()
            ));
        }
        if o.rm || o.purge {
            engine.remove_container(&name, false).await?;
        }
        images.push((i, c.image));
    }
    let etcd = etcd_container(s);
    if let Some(c) = engine.inspect(&etcd).await? {
        check_ownership(s, &c.labels)?;
        if c.running {
            engine
                .stop_container(&etcd, Duration::from_secs(15))
                .await?;
            p.done(format!("stopped `{etcd}`"));
        }
        if o.rm || o.purge {
            engine.remove_container(&etcd, false).await?;
        }
    }
    if o.rm || o.purge {
        engine.remove_network(&super::network(s)).await?;
        p.done("removed the cluster's containers and network (data is kept)");
    }
    if o.purge {
        for i in 0..=MAX_REPLICAS {
            let ns = node_settings(s, i);
            let image = images
                .iter()
                .find(|(n, _)| *n == i)
                .map(|(_, im)| im.clone());
            if i <= s.replicas || image.is_some() {
                storage::delete_data(engine, &ns, mode, image, p).await?;
            }
        }
        if engine.volume_exists(&etcd_volume(s)).await? {
            engine.remove_volume(&etcd_volume(s)).await?;
        }
        let _ = std::fs::remove_file(leader_record(s));
        p.done(format!(
            "deleted the data of every node and of etcd of `{}`",
            s.project
        ));
    }
    Ok(Down::Done)
}
