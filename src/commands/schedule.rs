//! `pgbox schedule install|list|status|remove|run`: backups on a timer.
//!
//! `run` is what the timer calls: it takes a lock (two runs never overlap), backs
//! up and verifies, prunes by policy, and records the result beside the backups,
//! one log line per step, with no TTY and no prompts. `status` turns that record
//! and the schedule into an exit code a monitor can use.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};

use super::backup::{policy, prune_with, run_backup};
use crate::backup as bk;
use crate::cancel::{self, Guard};
use crate::cli::{BackupCreateArgs, GlobalArgs, RetentionArgs, ScheduleAction, ScheduleArgs};
use crate::config::Settings;
use crate::error::Fail;
use crate::lock::{self, FileLock};
use crate::printer::Printer;
use crate::schedule::install::{self, InstallOptions};
use crate::schedule::status::{self, RunRecord};
use crate::schedule::{list, remove};

/// The last `schedule run`, kept beside the backups.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LastRun {
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    ok: bool,
    file: Option<String>,
    duration_ms: u64,
    error: Option<String>,
    /// The pgbox making this run, while it runs (a record still carrying it after
    /// that process ended is a run that was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    running_pid: Option<u32>,
}

fn last_run_path(s: &Settings) -> PathBuf {
    s.backup_dir
        .join(format!(".pgbox-{}-schedule.json", s.project))
}

pub async fn run(args: ScheduleArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    match args.action {
        ScheduleAction::Install(a) => {
            let mut run_args = Vec::new();
            if let Some(e) = &g.engine {
                run_args.extend(["--engine".to_string(), e.clone()]);
            }
            run_args.extend(retention_flags(&a.retention));
            let o = InstallOptions {
                at: a.at,
                using: a.using,
                system: a.system,
                randomized_delay: a.randomized_delay,
                dry_run: a.dry_run,
                run_args,
            };
            install::install(&o, &s, p).map(|()| 0)
        }
        ScheduleAction::List => list::list(p).map(|()| 0),
        ScheduleAction::Status => {
            let report = status::report::<LastRun>(&s, &last_run_path(&s))?;
            status::show(&report, p)?;
            Ok(report.exit_code())
        }
        ScheduleAction::Remove(a) => remove::remove(&s, a.dry_run, p).map(|()| 0),
        ScheduleAction::Run(r) => run_once(r, &s, g, p).await,
    }
}

/// The retention flags given to `install`, for the job's `schedule run`.
fn retention_flags(r: &RetentionArgs) -> Vec<String> {
    [
        ("--keep-last", r.keep_last),
        ("--keep-daily", r.keep_daily),
        ("--keep-weekly", r.keep_weekly),
        ("--keep-monthly", r.keep_monthly),
    ]
    .iter()
    .filter_map(|(f, v)| v.map(|v| [f.to_string(), v.to_string()]))
    .flatten()
    .collect()
}

impl RunRecord for LastRun {
    fn ok(&self) -> bool {
        self.ok
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn running_pid(&self) -> Option<u32> {
        self.running_pid
    }

    fn summary(&self) -> String {
        format!(
            "{} {} in {:.1}s{}",
            self.started_at.format("%Y-%m-%d %H:%M UTC"),
            if self.ok { "ok" } else { "FAILED" },
            self.duration_ms as f64 / 1000.0,
            self.file
                .as_ref()
                .map(|f| format!(" → {f}"))
                .unwrap_or_default()
        )
    }
}

fn write_last_run(s: &Settings, record: &LastRun) -> anyhow::Result<()> {
    crate::fsutil::write_atomic(
        &last_run_path(s),
        &serde_json::to_vec_pretty(record)?,
        0o600,
    )?;
    Ok(())
}

async fn run_once(r: RetentionArgs, s: &Settings, g: &GlobalArgs, p: &Printer) -> super::Outcome {
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
    let started_at = Utc::now();
    let t = Instant::now();
    // Failed until it finishes: a run killed by any signal leaves a failed record.
    write_last_run(
        s,
        &LastRun {
            started_at,
            finished_at: started_at,
            ok: false,
            file: None,
            duration_ms: 0,
            error: Some("interrupted: the run did not finish".into()),
            running_pid: Some(std::process::id()),
        },
    )?;
    let interrupted = {
        let s = s.clone();
        Guard::sync("the schedule record", move || {
            let signal = if cancel::exit_code() == 143 {
                "SIGTERM"
            } else {
                "SIGINT"
            };
            let _ = write_last_run(
                &s,
                &LastRun {
                    started_at,
                    finished_at: Utc::now(),
                    ok: false,
                    file: None,
                    duration_ms: t.elapsed().as_millis() as u64,
                    error: Some(format!("interrupted by {signal}")),
                    running_pid: None,
                },
            );
        })
    };
    let stamp = || Local::now().format("%Y-%m-%dT%H:%M:%S%z");
    p.info(format!(
        "{} schedule run: backing up `{}`",
        stamp(),
        s.project
    ));
    let args = BackupCreateArgs {
        db: None,
        all: false,
        format: bk::Format::Custom,
        compress: bk::Compression::Zstd,
        level: None,
        output: None,
        verify: true,
    };
    let result: anyhow::Result<Option<String>> = async {
        let files = run_backup(&args, s, 3, false, g, p).await?;
        p.info(format!(
            "{} schedule run: backed up and verified {}",
            stamp(),
            files.join(", ")
        ));
        let pol = policy(s, r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly);
        prune_with(s, pol, true, false, p)?;
        p.info(format!(
            "{} schedule run: pruned by keep-last {} daily {} weekly {} monthly {}",
            stamp(),
            pol.keep_last,
            pol.daily,
            pol.weekly,
            pol.monthly
        ));
        Ok(files.into_iter().next())
    }
    .await;
    interrupted.disarm();
    let record = LastRun {
        started_at,
        finished_at: Utc::now(),
        ok: result.is_ok(),
        file: result.as_ref().ok().cloned().flatten(),
        duration_ms: t.elapsed().as_millis() as u64,
        error: result.as_ref().err().map(|e| format!("{e:#}")),
        running_pid: None,
    };
    write_last_run(s, &record)?;
    match result {
        Ok(_) => {
            p.info(format!(
                "{} schedule run: done in {:.1}s",
                stamp(),
                record.duration_ms as f64 / 1000.0
            ));
            Ok(0)
        }
        Err(e) => {
            p.info(format!("{} schedule run: FAILED: {e:#}", stamp()));
            Err(e)
        }
    }
}
