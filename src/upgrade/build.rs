//! Building the new cluster, the phase of an upgrade that changes things: the new
//! location prepared and the new server initialised while the project's own server
//! still runs, then the server stopped (downtime starts) and the data moved by the
//! chosen method, then the new files synced to disk.
//!
//! A failure or a Ctrl-C undoes it all (helper containers, new location, record),
//! and the old cluster starts again if it was running, except past pg_upgrade
//! `--link`'s point of no return, where the old cluster shares its files with the
//! new one: then the new cluster is kept and the caller switches to it.

use std::time::{Duration, Instant};

use crate::config::{Settings, StorageMode};
use crate::engine::{ContainerSpec, Engine, MountSource, MountSpec};
use crate::error::Fail;
use crate::printer::Printer;
use crate::server::up::{up_locked, UpOptions};
use crate::state::Upgrade;
use crate::storage;

pub use super::job::{Job, PastNoReturn};
use super::options::Method;
use super::{dump, pgupgrade, workers};

/// How a build ended, when it did not fail.
pub struct Built {
    /// When the project's server stopped accepting writes.
    pub down_at: Instant,
    /// A step after pg_upgrade `--link` that failed: the new cluster is the only one
    /// left, so it goes live anyway and this error is reported after the switch.
    pub late: Option<anyhow::Error>,
}

/// Build the new cluster (see the module docs). `resumed`: an earlier attempt may
/// have left helpers and a half-built location, removed first.
pub async fn build(
    job: &Job<'_>,
    resumed: bool,
    restart: bool,
    up: UpOptions,
) -> anyhow::Result<Built> {
    let guard = {
        let (engine, s, old, new, mode) = (
            job.engine.clone(),
            job.s.clone(),
            job.old.clone(),
            job.new.clone(),
            job.mode,
        );
        let opts = up.clone();
        crate::cancel::Guard::future("the unfinished new cluster", async move {
            if undo(&engine, &s, &old, &new, mode).await.is_ok() && restart {
                let _ = up_locked(&engine, &s, opts, &Printer::quiet()).await;
            }
        })
    };
    let mut down_at = Instant::now();
    let result = async {
        if resumed {
            discard(job.engine, &job.old, &job.new, job.mode).await?;
        }
        storage::prepare(job.engine, &job.new, &job.d_new).await?;
        let late = match job.method {
            Method::Dump => {
                let dst = workers::target_spec(
                    &job.new,
                    &job.new_tag,
                    &job.d_new,
                    job.facts.initdb_env(),
                );
                let what = format!("the new cluster (PostgreSQL {})", job.new.pg_version);
                crate::server::worker::start(job.engine, &dst, &what, job.timeout, job.p).await?;
                crate::server::worker::stop_live(
                    job.engine,
                    job.s,
                    job.mode,
                    "pgbox upgrade",
                    job.p,
                )
                .await?;
                down_at = Instant::now();
                let src = workers::source_spec(&job.old, &job.old_tag, &job.d_old);
                let what = format!(
                    "the old cluster (PostgreSQL {}, read-only)",
                    job.old.pg_version
                );
                crate::server::worker::start(job.engine, &src, &what, job.timeout, job.p).await?;
                let moved =
                    dump::transfer(job.engine, &job.old, &job.new, &job.facts, job.jobs, job.p)
                        .await?;
                job.p.done(format!(
                    "moved {} databases, {} tables, {} rows",
                    moved.databases, moved.tables, moved.rows
                ));
                // The old server is no longer needed: it stops while the new one does.
                let (src, dst) = (
                    workers::source_name(&job.old),
                    workers::target_name(&job.new),
                );
                let (stopped, _) = tokio::join!(
                    crate::server::worker::stop_cleanly(job.engine, &dst, job.mode),
                    job.engine.stop_container(&src, Duration::from_secs(10))
                );
                stopped?;
                workers::remove_all(job.engine, &job.old).await?;
                None
            }
            _ => {
                let helper = pgupgrade::prepare(job).await?;
                crate::server::worker::stop_live(
                    job.engine,
                    job.s,
                    job.mode,
                    "pgbox upgrade",
                    job.p,
                )
                .await?;
                down_at = Instant::now();
                match pgupgrade::run(job, &helper).await {
                    Ok(()) => None,
                    Err(e) => match e.downcast::<PastNoReturn>() {
                        Ok(late) => Some(late.0),
                        Err(e) => return Err(e),
                    },
                }
            }
        };
        sync_location(job.engine, &job.new, &job.new_tag, job.mode).await?;
        anyhow::Ok(late)
    }
    .await;
    match result {
        Ok(late) => {
            guard.disarm();
            Ok(Built { down_at, late })
        }
        Err(e) => {
            guard.disarm();
            Err(undo_after_failure(job, e, restart, up).await)
        }
    }
}

/// The error of a failed build, after undoing it (see the module docs).
async fn undo_after_failure(
    job: &Job<'_>,
    e: anyhow::Error,
    restart: bool,
    up: UpOptions,
) -> anyhow::Error {
    let (to, from) = (job.new.pg_version, job.old.pg_version);
    if let Err(left) = undo(job.engine, job.s, &job.old, &job.new, job.mode).await {
        // The engine may be gone: the record stays, so nothing is forgotten.
        return e.context(format!(
            "the upgrade to {to} failed, and what it built could not be removed ({left:#}); \
             the old data was not modified: `pgbox upgrade --rollback` removes the rest \
             (`pgbox upgrade --to {to}` tries again), and `pgbox up` serves the old data meanwhile"
        ));
    }
    let back = if restart {
        match up_locked(job.engine, job.s, up, job.p).await {
            Ok(()) => format!("PostgreSQL {from} is running again on the old data"),
            Err(e2) => {
                format!("the old cluster did not start again ({e2:#}); `pgbox up` starts it")
            }
        }
    } else {
        format!("the project is on PostgreSQL {from} as before")
    };
    e.context(format!(
        "the upgrade to {to} failed and was undone: {back}; the old data was not modified, and the backup is in `{}`",
        job.s.backup_dir.display()
    ))
}

/// The helper containers and the new location removed: what a failed, cancelled or
/// discarded build leaves behind.
pub async fn discard(
    engine: &Engine,
    old: &Settings,
    new: &Settings,
    mode: StorageMode,
) -> anyhow::Result<()> {
    workers::remove_all(engine, old).await?;
    if storage::location_exists(engine, new, mode).await? {
        let quiet = Printer::quiet();
        crate::storage::delete_data(engine, new, mode, None, &quiet).await?;
    }
    Ok(())
}

/// A failed or interrupted build undone: [`discard`], then the record removed.
async fn undo(
    engine: &Engine,
    s: &Settings,
    old: &Settings,
    new: &Settings,
    mode: StorageMode,
) -> anyhow::Result<()> {
    discard(engine, old, new, mode).await?;
    Upgrade::remove(s)
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
