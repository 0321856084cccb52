//! `pgbox restore --to-time | --to-lsn | --to-latest`: point-in-time recovery.
//!
//! Everything is checked before anything is built: `[backup] pitr` on, direct or
//! volume storage, a base backup, and a target that some base backup's unbroken
//! WAL chain reaches ([`target`]; a refusal names the gap or the range that can
//! be recovered). The newest such base backup is recovered in a scratch location
//! beside the project's ([`scratch`]) while the project's server keeps running;
//! then the scratch cluster is swapped in and the data from before kept aside
//! ([`swap`]).
//!
//! Until the swap the project's cluster is untouched: one guard removes the
//! helper container and the scratch location on a failure or Ctrl-C, and
//! `.pgbox/pitr-restore.json` lets the next restore remove what a kill left. The
//! project lock is held throughout.
//!
//! With `--into-new` there is no swap: the recovered cluster is served beside the
//! project's on another port ([`copy`]).

pub mod copy;
pub mod scratch;
pub mod swap;
pub mod target;

use std::time::{Duration, Instant};

use chrono::Utc;

pub use target::{parse_lsn, parse_time, Target};

use super::{base, wal};
use crate::cancel::Guard;
use crate::config::{Settings, StorageMode};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::server::up::{up_locked, UpOptions};
use crate::state::{PitrPhase, PitrRestore, Recovered};
use scratch::{Job, Scratch};
use target::{describe, stamp};

/// `pgbox restore --to-*`.
#[derive(Debug, Clone)]
pub struct PitrOptions {
    pub target: Target,
    pub yes: bool,
    /// How long the recovery (WAL replay) and the restart may take.
    pub timeout: Duration,
    pub engine: Option<String>,
    /// `--into-new`: serve the recovered cluster beside the project's on this port
    /// (Some(None): the first free one after the project's) instead of swapping it in.
    pub into_new: Option<Option<u16>>,
    /// Recover from this folder (holding `base/` and `wal/` as the backup folder
    /// does) instead of the project's backup folder: a staging folder that
    /// `restore --from-remote` downloaded into.
    pub from: Option<std::path::PathBuf>,
}

/// Refuse what this cannot do before anything is touched.
fn refuse_storage(s: &Settings, mode: StorageMode) -> Result<(), Fail> {
    match mode {
        StorageMode::Fallback => Err(Fail::new(format!(
            "point-in-time restore needs direct or volume storage, and `{}` uses fallback storage (its data lives in the container and is saved as one tarball)",
            s.project
        ))
        .hint("restore a dump with `pgbox restore FILE`; for PITR use `mode = \"volume\"` under `[storage]` (it works on rootless engines and macOS) or `mode = \"direct\"`")
        .code(EXIT_USAGE)),
        _ => Ok(()),
    }
}

/// What an earlier restore that was killed left: the half swap put back, the
/// scratch location removed (we hold the lock, so it is stale).
async fn clear_leftovers(
    engine: &Engine,
    s: &Settings,
    tag: &str,
    p: &Printer,
) -> anyhow::Result<()> {
    scratch::remove_helper(engine, &scratch::helper_name(s)).await;
    copy::remove_unrecorded(engine, s).await?;
    let Some(r) = PitrRestore::load(s)? else {
        return Ok(());
    };
    if let Some(msg) = PitrRestore::repair_swap(s)? {
        p.warn(msg);
    }
    let sc = Scratch::at(s, r.mode, &r.scratch);
    let swapped_in = match r.mode {
        StorageMode::Volume => s.volume == r.scratch,
        _ => !sc.s.data_dir.exists() && s.data_dir.exists(),
    };
    // Killed after `--into-new` recorded its copy: the location is the copy's now.
    let the_copys = Recovered::load(s)?.is_some_and(|c| c.location == r.scratch);
    if !swapped_in && !the_copys && sc.exists(engine).await? {
        p.info(format!(
            "removing {}, left by a point-in-time restore that did not finish",
            sc.describe()
        ));
        sc.remove(engine, Some(tag.to_string())).await?;
    }
    PitrRestore::remove(s)
}

/// `pgbox restore --to-*` (see the module docs). False when the user declined.
pub async fn run(o: &PitrOptions, s: &Settings, p: &Printer) -> anyhow::Result<bool> {
    let started = Instant::now();
    base::refuse_without_pitr(s)?;
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "restore")?;
    if let Some(up) = crate::state::Upgrade::load(s)? {
        return Err(Fail::new(format!(
            "`{}` is in the middle of the upgrade {} → {}",
            s.project, up.old.major, up.new.major
        ))
        .hint("end the upgrade first: `pgbox upgrade --finalize` or `pgbox upgrade --rollback`")
        .code(EXIT_USAGE)
        .into());
    }
    refuse_storage(s, crate::storage::in_effect(s)?.mode)?;
    let copy_port = o.into_new.map(|port| copy::plan(s, port)).transpose()?;
    let src = {
        let mut src = s.clone();
        if let Some(dir) = &o.from {
            src.backup_dir = dir.clone();
        }
        src
    };
    let bases = base::list(&src)?;
    if bases.is_empty() {
        return Err(Fail::new(format!(
            "`{}` has no base backup in `{}`: there is nothing to recover from",
            s.project,
            base::base_dir(&src).display()
        ))
        .hint("take one with `pgbox backup --base`; recovery can reach any time after it")
        .into());
    }
    let seg = bases[bases.len() - 1].1.wal_segment_size;
    let archive = {
        let dir = src.wal_archive_dir();
        tokio::task::spawn_blocking(move || wal::scan(&dir, seg)).await??
    };
    let reach = target::pick(&s.project, &bases, &archive, &o.target)?;
    let (from, meta) = &bases[reach.base];
    let label = from
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.info(format!(
        "recovering `{}` to {} from base backup `{label}` (ended {})",
        s.project,
        describe(&o.target),
        stamp(meta.finished_at)
    ));
    let ok = copy_port.is_some()
        || p.confirm(
            format!(
                "Replace the data of `{}` with its state at {}? The current data is kept aside",
                s.project,
                describe(&o.target)
            ),
            o.yes,
            "a point-in-time restore replaces the project's data",
            "pass `--yes` to confirm without a terminal",
        )?;
    if !ok {
        p.info("nothing changed");
        return Ok(false);
    }

    let engine = Engine::connect(o.engine.as_deref()).await?;
    let tag = crate::container::image::ensure_image(&engine, s, p, false).await?;
    let d = crate::storage::decision(&engine, s, &tag).await?;
    refuse_storage(s, d.mode)?;
    clear_leftovers(&engine, s, &tag, p).await?;

    let now = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let sc = Scratch::new(s, d.mode, &now);
    let mut record = PitrRestore {
        phase: PitrPhase::Building,
        mode: d.mode,
        scratch: sc.location(),
        aside: None,
        started_at: Utc::now().to_rfc3339(),
    };
    record.save(s)?;
    let guard = {
        let (engine, s, sc, tag) = (engine.clone(), s.clone(), sc.clone(), tag.clone());
        Guard::future(
            format!("the unfinished recovery in {}", sc.describe()),
            async move {
                scratch::remove_helper(&engine, &scratch::helper_name(&s)).await;
                copy::remove_if_ours(&engine, &s).await;
                if sc.remove(&engine, Some(tag)).await.is_ok() {
                    let _ = PitrRestore::remove(&s);
                }
            },
        )
    };
    let job = Job {
        engine: &engine,
        s,
        tag: &tag,
        d: &d,
        timeout: o.timeout,
        archive: src.wal_archive_dir(),
        p,
    };
    if let Err(e) = scratch::build(&job, &sc, from, &o.target).await {
        guard.undo().await;
        return Err(e.context(format!(
            "the point-in-time restore of `{}` failed and was undone; its data was not touched",
            s.project
        )));
    }

    if let Some(port) = copy_port {
        let started_copy = copy::start(&job, &sc, port, describe(&o.target))
            .await
            .and_then(|r| r.save(s).map(|()| r));
        let r = match started_copy {
            Ok(r) => r,
            Err(e) => {
                guard.undo().await;
                return Err(e.context(format!(
                    "the recovered copy was removed; the data of `{}` was not touched",
                    s.project
                )));
            }
        };
        // No await between the copy's record and the end of the restore's: the
        // location stops being the restore's in one step.
        guard.disarm();
        PitrRestore::remove(s)?;
        p.done(format!(
            "recovered `{}` to {} in {:.1}s into `{}` on port {}",
            s.project,
            describe(&o.target),
            started.elapsed().as_secs_f64(),
            r.container,
            r.port
        ));
        copy::report(s, &r, p);
        return Ok(true);
    }

    // The swap: from here the recovered cluster becomes the project's.
    let swapped = match swap::swap(&engine, s, &sc, &mut record, &now, p).await {
        Ok(sw) => sw,
        Err(e) => {
            guard.undo().await;
            let _ = up_locked(&engine, s, up_options(o), p).await;
            return Err(
                e.context("the point-in-time restore was undone and the server started again")
            );
        }
    };
    guard.disarm();
    PitrRestore::remove(s)?;
    p.done(format!(
        "recovered `{}` to {} in {:.1}s; the data before it is kept in {} (delete it when you no longer need it)",
        s.project,
        describe(&o.target),
        started.elapsed().as_secs_f64(),
        swapped.kept
    ));
    up_locked(&engine, &swapped.s, up_options(o), p).await?;
    Ok(true)
}

fn up_options(o: &PitrOptions) -> UpOptions {
    UpOptions {
        timeout: o.timeout,
        dry_run: false,
    }
}
