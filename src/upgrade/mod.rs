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

pub(crate) mod build;
pub mod check;
mod dump;
mod finish;
mod job;
pub(crate) mod options;
mod pgupgrade;
pub mod plan;
pub(crate) mod workers;

use options::up_options;
pub use options::{Method, UpgradeOptions};

use std::time::Instant;

use crate::backup::create::{create_locked, CreateOptions};
use crate::config::{self, Settings, StorageMode};
use crate::container::{ctl, image::ensure_image};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::server::up::up_locked;
use crate::state::{Decision, Side, Upgrade, UpgradePhase};
use crate::storage;

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
            .hint(st.resume_hint())
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

async fn run(
    engine: &Engine,
    s: &Settings,
    o: &UpgradeOptions,
    to: u32,
    resumed: Option<Upgrade>,
    p: &Printer,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let job = prepare(engine, s, o, to, resumed.as_ref(), p).await?;
    let (old, new) = (job.sides.0.clone(), job.sides.1.clone());
    if o.check {
        p.done(format!(
            "every check passed for {} → {to} by `{}`; nothing was changed",
            s.pg_version,
            o.method.as_str()
        ));
        return Ok(());
    }
    if o.method == Method::Link {
        p.warn("`--method link` hard-links the old cluster's files into the new one: once the new cluster starts, the old one is unusable, and `--rollback` is refused (the way back is the automatic backup)");
    }
    let question = format!(
        "Upgrade `{}` from PostgreSQL {} to {to} by `{}`? PostgreSQL is stopped until the new cluster is ready",
        s.project,
        job.facts.version,
        o.method.as_str()
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
        old,
        new: new.clone(),
        mode: job.mode,
        started_at: chrono::Utc::now().to_rfc3339(),
        switched_at: None,
        backup,
        was_running: resumed.as_ref().map_or(job.was_running, |r| r.was_running),
        writes_at_switch: None,
        table_writes_at_switch: None,
    };
    st.save(s)?;

    // c/d. The new cluster; a failure undoes it (see `build`).
    let built = build::build(&job.job, resumed.is_some(), st.was_running, up_options(o)).await?;

    // The switch: one atomic rewrite of pgbox.toml.
    config::edit::set(&s.config_path, &plan::toml_changes(&new))?;
    st.phase = UpgradePhase::Switched;
    st.switched_at = Some(chrono::Utc::now().to_rfc3339());
    st.save(s)?;
    let s2 = Settings::load(Some(&s.config_path))?;
    let back = if o.method == Method::Link {
        "the old cluster's files now belong to the new one".to_string()
    } else {
        format!(
            "`pgbox upgrade --rollback` returns to {}",
            job.facts.version
        )
    };
    if let Err(e) = up_locked(engine, &s2, up_options(o), p).await {
        return Err(e.context(format!(
            "pgbox.toml now selects PostgreSQL {to}, but it did not start; {back}"
        )));
    }
    let downtime = built.down_at.elapsed();
    if let Ok(c) = ctl::ready(engine, &s2).await {
        if o.method != Method::Dump {
            pgupgrade::statistics(engine, &c, &s2, p).await?;
        }
        if let Ok(w) = finish::writes(engine, &c, &s2).await {
            st.writes_at_switch = Some(w.values().sum());
            st.table_writes_at_switch = Some(w);
        }
        st.save(&s2)?;
    }
    if let Some(late) = built.late {
        return Err(late.context(format!(
            "PostgreSQL {to} is live (past pg_upgrade --link the old cluster cannot run again), but a step after pg_upgrade failed; fix the cause and run it by hand"
        )));
    }
    p.done(format!(
        "upgraded `{}` from PostgreSQL {} to {to} in {:.1}s (no writes possible for {:.1}s)",
        s.project,
        job.facts.version,
        started.elapsed().as_secs_f64(),
        downtime.as_secs_f64()
    ));
    let keep = if o.method == Method::Link {
        "`pgbox upgrade --finalize` removes the old folder's names (the new cluster keeps its files)".to_string()
    } else {
        "`pgbox upgrade --finalize` deletes it, `pgbox upgrade --rollback` goes back".to_string()
    };
    p.info(format!(
        "the old data is kept in {}; {keep}",
        storage::location(&job.old, job.mode)
    ));
    Ok(())
}

/// The old and new sides of a fresh upgrade.
fn sides(
    s: &Settings,
    o: &UpgradeOptions,
    to: u32,
    mode: StorageMode,
) -> anyhow::Result<(Side, Side)> {
    let text = std::fs::read_to_string(&s.config_path)?;
    let file = config::parse_file(&s.config_path, &text)?;
    let old = plan::current_side(s, &file);
    let new = plan::target_side(s, &old, mode, to, o.base_image.as_deref())?;
    Ok((old, new))
}

/// The build's job and what the checks found out.
struct Prepared<'a> {
    job: build::Job<'a>,
    was_running: bool,
    /// The old and new sides, as pgbox.toml selects them.
    sides: (Side, Side),
}

impl<'a> std::ops::Deref for Prepared<'a> {
    type Target = build::Job<'a>;
    fn deref(&self) -> &build::Job<'a> {
        &self.job
    }
}

/// a. The checks: nothing changes until all pass.
async fn prepare<'a>(
    engine: &'a Engine,
    s: &'a Settings,
    o: &UpgradeOptions,
    to: u32,
    resumed: Option<&Upgrade>,
    p: &'a Printer,
) -> anyhow::Result<Prepared<'a>> {
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
    let Some(d_old) = in_effect.decision else {
        return Err(Fail::new(format!(
            "`{}` has never run, so there is nothing to upgrade",
            s.project
        ))
        .hint(format!(
            "set `version = {to}` under `[postgres]` in pgbox.toml and run `pgbox up`"
        ))
        .into());
    };
    let (old, new) = match resumed {
        Some(st) => (st.old.clone(), st.new.clone()),
        None => sides(s, o, to, mode)?,
    };
    if o.method != Method::Dump {
        pgupgrade::supported(o.method, mode)?;
    }
    let old_s = plan::settings_for(s, &old);
    let new_s = plan::settings_for(s, &new);
    let sides = (old, new);
    if resumed.is_none() && storage::location_exists(engine, &new_s, mode).await? {
        return Err(Fail::new(format!(
            "the new cluster's location {} exists already",
            storage::location(&new_s, mode)
        ))
        .hint("move it away (pgbox never writes over data it did not create), then run the upgrade again")
        .into());
    }
    let (c, was_running) = old_running(engine, s, o, p).await?;
    let facts = check::facts(engine, &c, s).await?;
    check::require_locale(&facts)?;
    let old_tag = ensure_image(engine, &old_s, p, false).await?;
    let new_tag = ensure_image(engine, &new_s, p, false).await?;
    let shipped = check::shipped_extensions(engine, s, &new_tag, to).await?;
    check::require_extensions(&facts, &shipped, to)?;
    let (uid, gid) = engine.image_user_ids(&new_tag, "postgres").await?;
    let d_new = Decision {
        uid,
        gid,
        ..d_old.clone()
    };
    let space = check::space(s, &new_s, mode, &facts, o.method);
    for l in check::fact_lines(&facts).into_iter().chain(space.lines(s)) {
        p.info(l);
    }
    space.require(s)?;
    let job = build::Job {
        engine,
        s,
        old: old_s,
        new: new_s,
        old_tag,
        new_tag,
        d_old,
        d_new,
        facts,
        method: o.method,
        mode,
        jobs: o.jobs.unwrap_or_else(crate::backup::restore::jobs_default),
        timeout: o.timeout,
        p,
    };
    if o.method != Method::Dump {
        pgupgrade::check(&job).await?;
    }
    Ok(Prepared {
        job,
        was_running,
        sides,
    })
}
