//! `pgbox schedule run`, what the timer calls: take the schedule lock (two runs
//! never overlap) and the project lock, back up and verify with the `[backup]`
//! settings of pgbox.toml, take a base backup with `[backup] pitr`, prune by policy, and record the result beside the
//! backups, one log line per step, with no TTY and no prompts. The record is the
//! same type as a backup's ([`crate::backup::record`]), which `schedule status`
//! reads.

use anyhow::Context;
use chrono::Local;

use crate::backup::create::{self, CreateOptions};
use crate::backup::record::{self, Kind};
use crate::backup::retention;
use crate::config::Settings;
use crate::error::Fail;
use crate::lock::{self, FileLock};
use crate::printer::Printer;

/// Retention flags given to the run (None: pgbox.toml, else the defaults).
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    pub last: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
}

/// One scheduled run (see the module doc).
pub async fn run(
    keep: Keep,
    engine: Option<&str>,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&s.backup_dir)
        .with_context(|| format!("cannot create `{}`", s.backup_dir.display()))?;
    // Two timer runs never overlap; the project lock (taken once, here) keeps any
    // other pgbox off the project while the backup runs.
    let Some(_schedule_lock) = FileLock::try_take(
        &s.backup_dir
            .join(format!(".pgbox-{}-schedule.lock", s.project)),
    )?
    else {
        return Err(Fail::new(format!(
            "another `pgbox schedule run` of `{}` is running; this one does nothing",
            s.project
        ))
        .into());
    };
    let _lock = lock::project(&s.state_dir(), &s.project, "schedule run")?;
    // Failed until it finishes: a run killed by any signal leaves a failed record.
    let attempt = record::begin(Kind::Schedule, &s.backup_dir, &s.project)?;
    let stamp = || Local::now().format("%Y-%m-%dT%H:%M:%S%z");
    p.info(format!(
        "{} schedule run: backing up `{}`",
        stamp(),
        s.project
    ));
    let options = CreateOptions {
        verify: true,
        engine: engine.map(String::from),
        ..CreateOptions::default()
    };
    let result: anyhow::Result<Option<String>> = async {
        let files = create::create_locked(&options, s, p).await?;
        p.info(format!(
            "{} schedule run: backed up and verified {}",
            stamp(),
            files.join(", ")
        ));
        if s.pitr {
            // Point-in-time recovery rolls forward from a base backup: one each run
            // keeps the WAL to replay short, and retention the archive bounded.
            let base = crate::backup::base::take_locked(engine, s, p).await?;
            p.info(format!(
                "{} schedule run: base backup {}",
                stamp(),
                base.display()
            ));
            if s.remote.is_some() {
                // Shipped before local retention can remove a WAL file the store
                // does not have yet; a failure fails the run.
                crate::backup::offsite::pitr::sync(s, p).await?;
            }
        }
        let pol = retention::policy(s, keep.last, keep.daily, keep.weekly, keep.monthly);
        retention::prune(s, pol, true, false, p)?;
        p.info(format!(
            "{} schedule run: pruned by keep-last {} daily {} weekly {} monthly {}",
            stamp(),
            pol.keep_last,
            pol.daily,
            pol.weekly,
            pol.monthly
        ));
        if let Some(remote) = s
            .remote
            .is_some()
            .then(|| crate::remote::Remote::connect(s))
            .transpose()?
        {
            // The store keeps its own history, by `[backup.remote] keep_*`.
            let pol = crate::backup::offsite::retention::policy(&remote, None, None, None, None);
            crate::backup::offsite::retention::prune(&remote, s, pol, true, false, p).await?;
            if s.pitr {
                crate::backup::offsite::pitr::prune(&remote, s, pol, true, false, p).await?;
            }
            p.info(format!(
                "{} schedule run: pruned `{}` by keep-last {} daily {} weekly {} monthly {}",
                stamp(),
                remote.cfg.url,
                pol.keep_last,
                pol.daily,
                pol.weekly,
                pol.monthly
            ));
        }
        Ok(files.into_iter().next())
    }
    .await;
    let outcome = match &result {
        Ok(file) => Ok(file.clone()),
        Err(e) => Err(format!("{e:#}")),
    };
    let record = attempt.finish(outcome)?;
    match result {
        Ok(_) => {
            p.info(format!(
                "{} schedule run: done in {:.1}s",
                stamp(),
                record.duration_ms as f64 / 1000.0
            ));
            Ok(())
        }
        Err(e) => {
            p.info(format!("{} schedule run: FAILED: {e:#}", stamp()));
            Err(e)
        }
    }
}
