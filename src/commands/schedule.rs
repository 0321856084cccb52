//! `pgbox schedule install|list|status|remove|run`: backups on a timer.
//!
//! `run` is what the timer calls: it takes a lock (two runs never overlap), backs
//! up and verifies, prunes by policy, and records the result beside the backups,
//! one log line per step, with no TTY and no prompts. `status` turns that record
//! and the schedule into an exit code a monitor can use.

use super::Ctx;
use crate::backup::record::Kind;
use crate::cli::{RetentionArgs, ScheduleAction, ScheduleArgs};
use crate::schedule::install::{self, InstallOptions};
use crate::schedule::run::Keep;
use crate::schedule::status;
use crate::schedule::{list, remove};

pub async fn run(args: ScheduleArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let s = ctx.settings()?;
    match args.action {
        ScheduleAction::Install(a) => {
            let mut run_args = Vec::new();
            if let Some(e) = &ctx.global.engine {
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
            install::install(&o, s, p).map(|()| 0)
        }
        ScheduleAction::List => list::list(p).map(|()| 0),
        ScheduleAction::Status => {
            let record = Kind::Schedule.path(&s.backup_dir, &s.project);
            let archive = match s.pitr {
                true => match crate::engine::Engine::connect(ctx.global.engine.as_deref()).await {
                    Ok(engine) => crate::server::status::archiver(&engine, s).await,
                    Err(_) => None,
                },
                false => None,
            };
            let report = status::report(s, &record, archive)?;
            status::show(&report, p)?;
            Ok(report.exit_code())
        }
        ScheduleAction::Remove(a) => remove::remove(s, a.dry_run, p).map(|()| 0),
        ScheduleAction::Run(r) => {
            let keep = Keep {
                last: r.keep_last,
                daily: r.keep_daily,
                weekly: r.keep_weekly,
                monthly: r.keep_monthly,
            };
            crate::schedule::run::run(keep, ctx.global.engine.as_deref(), s, p).await?;
            Ok(0)
        }
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
