//! `schedule status`: the installed schedule, its next run, the last run and the
//! newest good backup and, with `[backup] pitr`, the archiver's health and the
//! recoverable window, judged into problems so the exit code can drive a monitor
//! (0: all well, 1: something to look at).
//!
//! The last run's record is the one record type of backups and runs
//! ([`crate::backup::record`]), written by `schedule run`. A record that cannot be
//! read is an error, never taken for "no run yet".

use std::path::Path;

use chrono::{Local, Utc};
use serde::Serialize;

use super::expr::Schedule;
use super::installed::Installed;
use super::Mechanism;
use crate::backup as bk;
use crate::backup::record::Record;
use crate::config::Settings;
use crate::lock;
use crate::printer::Printer;
use crate::server::status::Archive;

#[derive(Serialize)]
pub struct Report {
    installed: bool,
    mechanism: Option<Mechanism>,
    expression: Option<String>,
    next_run: Option<String>,
    last_run: Option<Record>,
    newest_good_backup: Option<String>,
    newest_good_backup_age_hours: Option<f64>,
    /// `[backup.remote]`: the newest backup shipped off-site and its age.
    offsite: Option<crate::remote::listing::Offsite>,
    /// `[backup] pitr`: the archiver's health and the recoverable window.
    pitr: Option<Pitr>,
    problems: Vec<String>,
}

/// The point-in-time side of `schedule status`.
#[derive(Serialize)]
pub struct Pitr {
    /// None when the server is not running (nothing archives then).
    archive: Option<Archive>,
    recoverable: Option<(String, String)>,
}

impl Report {
    /// 0 when there is nothing to look at, else 1.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.problems.is_empty())
    }
}

/// The report for `s`, with the last run read from `last_run` and, with
/// `[backup] pitr`, the archiver's health as the running server reports it.
pub fn report(s: &Settings, last_run: &Path, archive: Option<Archive>) -> anyhow::Result<Report> {
    let inst = Installed::read(s)?;
    let last = Record::read(last_run, "the last run's record")?;
    let now = Local::now().naive_local();
    let mut problems = Vec::new();
    let sched = match &inst {
        None => {
            problems.push("no schedule is installed (`pgbox schedule install`)".to_string());
            None
        }
        Some(i) => match Schedule::parse(&i.expression) {
            Ok(sc) => Some(sc),
            Err(e) => {
                problems.push(format!(
                    "the installed expression `{}` cannot be read ({}); install the schedule again",
                    i.expression, e.0
                ));
                None
            }
        },
    };
    let newest = bk::list(&s.backup_dir, &s.project)?
        .into_iter()
        .find(|e| e.manifest.kind == "database");
    let age = newest.as_ref().map(|e| Utc::now() - e.manifest.created_at);
    let running =
        |l: &Record| l.running_pid.is_some() && l.running_pid == lock::held_by(&s.state_dir());
    if let Some(l) = last.as_ref().filter(|l| !l.ok && !running(l)) {
        problems.push(format!(
            "the last run failed: {}",
            l.error.as_deref().unwrap_or_default()
        ));
    }
    if let (Some(sc), Some(i)) = (&sched, &inst) {
        if let Some(interval) = sc.interval(now) {
            let limit = interval * 2;
            match age {
                Some(a) if a > limit => problems.push(format!(
                    "the newest backup is {}h old, more than twice the interval",
                    a.num_hours()
                )),
                None if Utc::now() - i.installed_at > limit => {
                    problems.push("no backup since the schedule was installed".into())
                }
                _ => {}
            }
        }
    }
    let pitr = s.pitr.then(|| {
        let recoverable = crate::backup::pitr::window_rfc3339(s);
        if let Some(a) = &archive {
            problems.extend(a.warnings());
        }
        if recoverable.is_none() {
            problems.push(
                "no base backup with archived WAL: nothing can be recovered to a point in time (`pgbox backup --base`)".into(),
            );
        }
        Pitr {
            archive,
            recoverable,
        }
    });
    Ok(Report {
        installed: inst.is_some(),
        mechanism: inst.as_ref().map(|i| i.mechanism),
        expression: inst.map(|i| i.expression),
        next_run: sched
            .and_then(|sc| sc.next_after(now))
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string()),
        last_run: last,
        newest_good_backup: newest.as_ref().map(|e| e.path.display().to_string()),
        newest_good_backup_age_hours: age
            .map(|a| (a.num_seconds() as f64 / 3600.0 * 10.0).round() / 10.0),
        offsite: crate::remote::listing::Offsite::of(s),
        pitr,
        problems,
    })
}

pub fn show(r: &Report, p: &Printer) -> anyhow::Result<()> {
    if p.json() {
        p.data(serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let dash = || "-".to_string();
    p.data(format!(
        "schedule    {}",
        r.expression
            .as_ref()
            .map(|e| format!("{e} ({})", r.mechanism.map_or("", |m| m.as_str())))
            .unwrap_or_else(dash)
    ));
    p.data(format!(
        "next run    {}",
        r.next_run.clone().unwrap_or_else(dash)
    ));
    p.data(format!(
        "last run    {}",
        r.last_run.as_ref().map(summary).unwrap_or_else(dash)
    ));
    p.data(format!(
        "newest      {}",
        r.newest_good_backup
            .as_ref()
            .map(|f| format!(
                "{f} ({}h old)",
                r.newest_good_backup_age_hours.unwrap_or(0.0)
            ))
            .unwrap_or_else(dash)
    ));
    if let Some(o) = &r.offsite {
        p.data(format!("off-site    {}", o.summary()));
    }
    if let Some(pitr) = &r.pitr {
        p.data(format!(
            "archiver    {}",
            pitr.archive
                .as_ref()
                .map(Archive::summary)
                .unwrap_or_else(|| "- (the server is not running)".into())
        ));
        p.data(format!(
            "recoverable {}",
            pitr.recoverable
                .as_ref()
                .map(|(a, b)| format!("{a} to {b}"))
                .unwrap_or_else(dash)
        ));
    }
    for pr in &r.problems {
        p.warn(pr);
    }
    Ok(())
}

/// One line for the text form: `2026-11-27 02:00 UTC ok in 3.2s → file`.
fn summary(r: &Record) -> String {
    format!(
        "{} {} in {:.1}s{}",
        r.started_at.format("%Y-%m-%d %H:%M UTC"),
        if r.ok { "ok" } else { "FAILED" },
        r.duration_ms as f64 / 1000.0,
        r.file
            .as_ref()
            .map(|f| format!(" → {f}"))
            .unwrap_or_default()
    )
}
