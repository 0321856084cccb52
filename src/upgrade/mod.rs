//! `pgbox upgrade`: a project moved to a newer PostgreSQL major without ever
//! risking the old data, and back again until the user says it is final.
//!
//! Checks come first and change nothing (`check`). Then a verified `backup --all`,
//! the floor every failure falls back to. The new cluster is built in a location
//! of its own (`plan`) by helper containers (`workers`) with the chosen method
//! (`dump`, or `pg_upgrade`'s link/clone/copy in `pgupgrade`); only when it is
//! complete, verified and synced does one atomic rewrite of pgbox.toml switch the
//! project to it. The old data stays until `--finalize`; `--rollback` returns to it
//! (`finish`). Every step is recorded in `.pgbox/upgrade.json` (`state::Upgrade`)
//! before it is taken, so a killed pgbox or container leaves a state that
//! `pgbox upgrade` resumes, `--rollback` discards, and `pgbox up` runs (the old
//! cluster until the switch, the new one after it).

pub mod check;
mod dump;
mod finish;
mod pgupgrade;
pub mod plan;
mod workers;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backup::create::{create_locked, CreateOptions};
use crate::config::{self, Settings, StorageMode};
use crate::container::{ctl, image::ensure_image, spec};
use crate::engine::{ContainerSpec, Engine, MountSource, MountSpec};
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::server::up::{up_locked, UpOptions};
use crate::state::{Decision, Upgrade, UpgradePhase};
use crate::storage;

/// How the new cluster is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The new major's pg_dump and pg_restore -j: safe across C libraries (default)
    Dump,
    /// pg_upgrade --link: fastest; the old cluster is unusable once the new one starts
    Link,
    /// pg_upgrade --clone: copy-on-write file clones, where the file system has them
    Clone,
    /// pg_upgrade --copy: copies every file
    Copy,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dump => "dump",
            Method::Link => "link",
            Method::Clone => "clone",
            Method::Copy => "copy",
        }
    }
}

/// What `pgbox upgrade` was asked for.
pub struct UpgradeOptions {
    pub to: Option<u32>,
    pub method: Method,
    pub check: bool,
    pub finalize: bool,
    pub rollback: bool,
    pub base_image: Option<String>,
    pub jobs: Option<u32>,
    pub yes: bool,
    /// The engine address (`--engine`), for the automatic backup.
    pub engine: Option<String>,
    pub timeout: Duration,
}

/// `pgbox upgrade` (see the module docs).
pub async fn upgrade(
    engine: &Engine,
    s: &Settings,
    o: UpgradeOptions,
    p: &Printer,
) -> anyhow::Result<()> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "upgrade")?;
    let state = Upgrade::load(s)?.map(|st| finish::reconcile(st, s));
    if o.finalize {
        return finish::finalize(engine, s, state, o.yes, p).await;
    }
    if o.rollback {
        pgupgrade::rollback_possible(state.as_ref(), s)?;
        return finish::rollback(engine, s, state, &o, p).await;
    }
    let Some(to) = o.to else {
        return match state {
            Some(st) => {
                p.info(st.describe());
                Ok(())
            }
            None => Err(
                Fail::new("no upgrade is in progress; say which major to go to")
                    .hint("`pgbox upgrade --to 17` (add `--check` to only check)")
                    .code(EXIT_USAGE)
                    .into(),
            ),
        };
    };
    match &state {
        Some(st) if st.phase == UpgradePhase::Switched => {
            return Err(Fail::new(format!(
                "the upgrade {} → {} awaits `--finalize` or `--rollback`",
                st.old.major, st.new.major
            ))
            .hint("`pgbox upgrade --finalize` keeps the new cluster, `pgbox upgrade --rollback` goes back; then upgrade again")
            .code(EXIT_USAGE)
            .into())
        }
        Some(st) if st.new.major != to => {
            return Err(Fail::new(format!(
                "an upgrade {} → {} did not finish",
                st.old.major, st.new.major
            ))
            .hint(format!(
                "`pgbox upgrade --to {}` resumes it, `pgbox upgrade --rollback` discards it",
                st.new.major
            ))
            .code(EXIT_USAGE)
            .into())
        }
        _ => {}
    }
    run(engine, s, &o, to, state, p).await
}

/// The old cluster's container, started when it is not running.
async fn old_running(
    engine: &Engine,
    s: &Settings,
    o: &UpgradeOptions,
    p: &Printer,
) -> anyhow::Result<(String, bool)> {
    let running = engine
        .inspect(&s.container_name())
        .await?
        .is_some_and(|c| c.running);
    if !running {
        p.info("starting the old cluster to read it");
        up_locked(engine, s, up_options(o), p).await?;
    }
    Ok((ctl::ready(engine, s).await?, running))
}

fn up_options(o: &UpgradeOptions) -> UpOptions {
    UpOptions {
        timeout: o.timeout,
        dry_run: false,
    }
}

async fn run(
    engine: &Engine,
    s: &Settings,
    o: &UpgradeOptions,
    to: u32,
    resumed: Option<Upgrade>,
    p: &Printer,
) -> anyhow::Result<()> {
    let started = Instant::now();
    if to <= s.pg_version {
        return Err(Fail::new(format!(
            "PostgreSQL {to} is not newer than this project's {}; `pgbox upgrade` only moves to a newer major",
            s.pg_version
        ))
        .hint("to go to an older major, `pgbox backup --all` and restore into a new project of that major")
        .code(EXIT_USAGE)
        .into());
    }
    let in_effect = storage::in_effect(s)?;
    let mode = in_effect.mode;
    let Some(decision) = in_effect.decision else {
        return Err(Fail::new(format!(
            "`{}` has never run, so there is nothing to upgrade",
            s.project
        ))
        .hint(format!(
            "set `version = {to}` under `[postgres]` in pgbox.toml and run `pgbox up`"
        ))
        .into());
    };
    let text = std::fs::read_to_string(&s.config_path)?;
    let file = config::parse_file(&s.config_path, &text)?;
    let old = match &resumed {
        Some(st) => st.old.clone(),
        None => plan::current_side(s, &file),
    };
    let new = match &resumed {
        Some(st) => st.new.clone(),
        None => plan::target_side(s, &old, mode, to, o.base_image.as_deref())?,
    };
    if o.method != Method::Dump {
        pgupgrade::supported(o.method, mode)?;
    }
    let old_s = plan::settings_for(s, &old);
    let new_s = plan::settings_for(s, &new);
    if resumed.is_none() && location_exists(engine, &new_s, mode).await? {
        return Err(Fail::new(format!(
            "the new cluster's location {} exists already",
            location(&new_s, mode)
        ))
        .hint("move it away (pgbox never writes over data it did not create), then run the upgrade again")
        .into());
    }

    // a. Checks: nothing changes until all pass.
    let (c, was_running) = old_running(engine, s, o, p).await?;
    let facts = check::facts(engine, &c, s).await?;
    check::require_locale(&facts)?;
    let old_tag = ensure_image(engine, &old_s, p, false).await?;
    let new_tag = ensure_image(engine, &new_s, p, false).await?;
    let shipped = check::shipped_extensions(engine, s, &new_tag, to).await?;
    check::require_extensions(&facts, &shipped, to)?;
    let (uid, gid) = engine.image_user_ids(&new_tag, "postgres").await?;
    let new_decision = Decision {
        uid,
        gid,
        ..decision.clone()
    };
    let space = check::space(s, &new_s, mode, &facts, o.method != Method::Link);
    for l in check::fact_lines(&facts).into_iter().chain(space.lines(s)) {
        p.info(l);
    }
    space.require(s)?;
    if o.method != Method::Dump {
        pgupgrade::check(
            engine,
            &old_s,
            &new_s,
            &old_tag,
            &new_tag,
            &decision,
            &new_decision,
            o.method,
            p,
        )
        .await?;
    }
    if o.check {
        p.done(format!(
            "every check passed for {} → {to} by `{}`; nothing was changed",
            s.pg_version,
            o.method.as_str()
        ));
        return Ok(());
    }
    if o.method == Method::Link {
        p.warn("`--method link` hard-links the old cluster's files into the new one: once the new cluster starts, the old one is unusable, and `--rollback` restores the automatic backup instead");
    }
    let question = format!(
        "Upgrade `{}` from PostgreSQL {} to {to} by `{}`? PostgreSQL is stopped until the new cluster is ready",
        s.project, facts.version, o.method.as_str()
    );
    if resumed.is_none()
        && !p.confirm(
            question,
            o.yes,
            "an upgrade stops the server while it runs",
            "pass `--yes` to confirm without a terminal",
        )?
    {
        p.info("nothing was changed");
        return Ok(());
    }

    // b. The automatic backup: the floor every failure falls back to.
    let backup = match resumed.as_ref().filter(|st| !st.backup.is_empty()) {
        Some(st) => st.backup.clone(),
        None => {
            p.info(
                "backing up every database and the roles first (`pgbox backup --all`, verified)",
            );
            let opts = CreateOptions {
                all: true,
                verify: true,
                engine: o.engine.clone(),
                ..CreateOptions::default()
            };
            create_locked(&opts, s, p).await?
        }
    };
    let mut st = Upgrade {
        phase: UpgradePhase::Building,
        method: o.method.as_str().to_string(),
        old: old.clone(),
        new: new.clone(),
        mode,
        started_at: chrono::Utc::now().to_rfc3339(),
        switched_at: None,
        backup,
        was_running: resumed.as_ref().map_or(was_running, |r| r.was_running),
        writes_at_switch: None,
        table_writes_at_switch: None,
    };
    st.save(s)?;

    // c/d. Build the new cluster; on any failure or Ctrl-C it is discarded, and the
    // record with it once nothing is left (else it stays, for `--rollback` to finish).
    let guard = {
        let (engine, s, old_s, new_s) = (engine.clone(), s.clone(), old_s.clone(), new_s.clone());
        let (restart, opts) = (st.was_running, up_options(o));
        crate::cancel::Guard::future("the unfinished new cluster", async move {
            if undo_build(&engine, &s, &old_s, &new_s, mode).await.is_ok() && restart {
                let _ = up_locked(&engine, &s, opts, &quiet_printer()).await;
            }
        })
    };
    let down_at = Instant::now();
    let built = async {
        if resumed.is_some() {
            discard(engine, &old_s, &new_s, mode).await?;
        }
        stop_live(engine, s, mode, p).await?;
        storage::prepare(engine, &new_s, &new_decision).await?;
        match o.method {
            Method::Dump => {
                let src = workers::source_spec(&old_s, &old_tag, &decision);
                let dst = workers::target_spec(&new_s, &new_tag, &new_decision, facts.initdb_env());
                workers::start(
                    engine,
                    &src,
                    &format!("the old cluster (PostgreSQL {}, read-only)", old.major),
                    o.timeout,
                    p,
                )
                .await?;
                workers::start(
                    engine,
                    &dst,
                    &format!("the new cluster (PostgreSQL {to})"),
                    o.timeout,
                    p,
                )
                .await?;
                let jobs = o.jobs.unwrap_or_else(crate::backup::restore::jobs_default);
                let moved = dump::transfer(engine, &old_s, &new_s, &facts, jobs, p).await?;
                p.done(format!(
                    "moved {} databases, {} tables, {} rows",
                    moved.databases, moved.tables, moved.rows
                ));
                workers::stop_cleanly(engine, &workers::target_name(&new_s), mode).await?;
                workers::remove_all(engine, &old_s).await?;
            }
            m => {
                pgupgrade::run(
                    engine,
                    &old_s,
                    &new_s,
                    &old_tag,
                    &new_tag,
                    &decision,
                    &new_decision,
                    &facts,
                    m,
                    p,
                )
                .await?;
            }
        }
        sync_location(engine, &new_s, &new_tag, mode).await
    }
    .await;
    if let Err(e) = built {
        guard.disarm();
        if let Err(left) = undo_build(engine, s, &old_s, &new_s, mode).await {
            // The engine may be gone: the record stays, so nothing is forgotten.
            return Err(e.context(format!(
                "the upgrade to {to} failed, and what it built could not be removed ({left:#}); \
                 the old data was not modified: `pgbox upgrade --rollback` removes the rest \
                 (`pgbox upgrade --to {to}` tries again), and `pgbox up` serves the old data meanwhile"
            )));
        }
        let back = if st.was_running {
            match up_locked(engine, s, up_options(o), p).await {
                Ok(()) => format!("PostgreSQL {} is running again on the old data", old.major),
                Err(e2) => {
                    format!("the old cluster did not start again ({e2:#}); `pgbox up` starts it")
                }
            }
        } else {
            format!("the project is on PostgreSQL {} as before", old.major)
        };
        return Err(e.context(format!(
            "the upgrade to {to} failed and was undone: {back}; the old data was not modified, and the backup is in `{}`",
            s.backup_dir.display()
        )));
    }
    guard.disarm();

    // The switch: one atomic rewrite of pgbox.toml.
    config::edit::set(&s.config_path, &plan::toml_changes(&new))?;
    st.phase = UpgradePhase::Switched;
    st.switched_at = Some(chrono::Utc::now().to_rfc3339());
    st.save(s)?;
    let s2 = Settings::load(Some(&s.config_path))?;
    if let Err(e) = up_locked(engine, &s2, up_options(o), p).await {
        return Err(e.context(format!(
            "pgbox.toml now selects PostgreSQL {to}, but it did not start; `pgbox upgrade --rollback` returns to {}",
            old.major
        )));
    }
    let downtime = down_at.elapsed();
    if let Ok(c) = ctl::ready(engine, &s2).await {
        if let Ok(w) = finish::writes(engine, &c, &s2).await {
            st.writes_at_switch = Some(w.values().sum());
            st.table_writes_at_switch = Some(w);
        }
        st.save(&s2)?;
    }
    p.done(format!(
        "upgraded `{}` from PostgreSQL {} to {to} in {:.1}s (no writes possible for {:.1}s)",
        s.project,
        facts.version,
        started.elapsed().as_secs_f64(),
        downtime.as_secs_f64()
    ));
    p.info(format!(
        "the old data is kept in {}; `pgbox upgrade --finalize` deletes it, `pgbox upgrade --rollback` goes back",
        location(&old_s, mode)
    ));
    Ok(())
}

/// The project's own container stopped; in fallback mode only once its data is saved.
async fn stop_live(
    engine: &Engine,
    s: &Settings,
    mode: StorageMode,
    p: &Printer,
) -> anyhow::Result<()> {
    let name = s.container_name();
    if let Some(c) = engine.inspect(&name).await? {
        if c.running {
            let bar = p.spinner(format!("stopping `{name}`"));
            let r = engine.stop_container(&name, spec::stop_timeout(mode)).await;
            bar.finish_and_clear();
            r?;
        }
        if mode == StorageMode::Fallback {
            crate::storage::fallback::ensure_saved(engine, s, &name, c.running, "pgbox upgrade", p)
                .await?;
        }
    }
    Ok(())
}

/// The helper containers and the new location removed: what a failed, cancelled or
/// discarded build leaves behind.
async fn discard(
    engine: &Engine,
    old: &Settings,
    new: &Settings,
    mode: StorageMode,
) -> anyhow::Result<()> {
    workers::remove_all(engine, old).await?;
    if location_exists(engine, new, mode).await? {
        let quiet = quiet_printer();
        crate::server::down::delete_data(engine, new, mode, None, &quiet).await?;
    }
    Ok(())
}

/// A failed or interrupted build undone: [`discard`], then the record removed.
async fn undo_build(
    engine: &Engine,
    s: &Settings,
    old: &Settings,
    new: &Settings,
    mode: StorageMode,
) -> anyhow::Result<()> {
    discard(engine, old, new, mode).await?;
    Upgrade::remove(s)
}

fn quiet_printer() -> Printer {
    Printer::new(true, 0, false, console_never())
}

fn console_never() -> crate::printer::ColorChoice {
    crate::printer::ColorChoice::Never
}

/// A location for messages: the folder or the volume.
fn location(s: &Settings, mode: StorageMode) -> String {
    match mode {
        StorageMode::Volume => format!("volume `{}`", s.volume),
        _ => format!("`{}`", s.data_dir.display()),
    }
}

async fn location_exists(engine: &Engine, s: &Settings, mode: StorageMode) -> anyhow::Result<bool> {
    Ok(match mode {
        StorageMode::Volume => engine.volume_exists(&s.volume).await?,
        _ => s.data_dir.exists(),
    })
}

/// The new cluster's files on disk (it was loaded with fsync off): `sync -f` on its
/// file system, from a one-off container that sees the location as the server does.
async fn sync_location(
    engine: &Engine,
    s: &Settings,
    tag: &str,
    mode: StorageMode,
) -> anyhow::Result<()> {
    let mut spec = ContainerSpec::oneshot(
        format!("{}-upgrade-sync", s.container_name()),
        tag.to_string(),
    );
    spec.entrypoint = Some(vec!["sync".into(), "-f".into(), "/target".into()]);
    spec.user = Some("0:0".into());
    spec.mounts = vec![MountSpec {
        source: match mode {
            StorageMode::Volume => MountSource::Volume(s.volume.clone()),
            _ => MountSource::Bind(s.data_dir.clone()),
        },
        target: "/target".into(),
        read_only: true,
    }];
    let (code, lines) = engine.run_to_completion(&spec).await?;
    let _ = engine.remove_container(&spec.name, true).await;
    if code != 0 {
        return Err(Fail::new(format!(
            "syncing the new cluster to disk failed: {}",
            lines.join("\n")
        ))
        .into());
    }
    Ok(())
}
