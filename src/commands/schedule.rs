//! `pgbox schedule install|list|status|remove|run`: backups on a timer.
//!
//! `run` is what the timer calls: it takes a lock (two runs never overlap), backs
//! up and verifies, prunes by policy, and records the result beside the backups,
//! one log line per step, with no TTY and no prompts. `status` turns that record
//! and the schedule into an exit code a monitor can use.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};

use crate::backup as bk;
use crate::cli::{
    GlobalArgs, Mechanism, RetentionArgs, ScheduleAction, ScheduleArgs, ScheduleInstallArgs,
};
use crate::config::Settings;
use crate::error::{Fail, EXIT_USAGE};
use crate::lock;
use crate::printer::Printer;
use crate::schedule::expr::Schedule;
use crate::schedule::run::{read_last_run, Keep, LastRun};
use crate::schedule::{cron, systemd};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `install` did, kept in `.pgbox/schedule.json` for `status` and `remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Installed {
    mechanism: String,
    system: bool,
    expression: String,
    cron: Option<String>,
    on_calendar: Option<String>,
    files: Vec<PathBuf>,
    installed_at: DateTime<Utc>,
}

fn installed_path(s: &Settings) -> PathBuf {
    s.state_dir().join("schedule.json")
}

fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

pub async fn run(args: ScheduleArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    match args.action {
        ScheduleAction::Install(a) => install(a, &s, g, p),
        ScheduleAction::List => list(p),
        ScheduleAction::Status => status(&s, p),
        ScheduleAction::Remove(a) => remove(&s, a.dry_run, p),
        ScheduleAction::Run(r) => {
            let keep = Keep {
                last: r.keep_last,
                daily: r.keep_daily,
                weekly: r.keep_weekly,
                monthly: r.keep_monthly,
            };
            crate::schedule::run::run(keep, g.engine.as_deref(), &s, p).await?;
            Ok(0)
        }
    }
}

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

fn install(a: ScheduleInstallArgs, s: &Settings, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let sched = Schedule::parse(&a.at)
        .map_err(|e| Fail::new(format!("invalid schedule `{}`: {e}", a.at)).code(EXIT_USAGE))?;
    let mechanism = match a.using {
        Mechanism::Systemd => "systemd",
        Mechanism::Cron => "cron",
        Mechanism::Auto if systemd::manager_reachable(a.system) => "systemd",
        Mechanism::Auto => "cron",
    };
    let pgbox = std::env::current_exe()?
        .canonicalize()
        .context("cannot find pgbox's own path")?;
    let config = s.config_path.canonicalize()?;
    let mut run_args = Vec::new();
    if let Some(e) = &g.engine {
        run_args.extend(["--engine".to_string(), e.clone()]);
    }
    run_args.extend(retention_flags(&a.retention));
    let docker_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    let usage = |e: crate::schedule::Unrepresentable| {
        Fail::new(e.to_string())
            .hint("move the project (or pgbox) to a path without such characters")
            .code(EXIT_USAGE)
    };
    let mut files = Vec::new();
    let (cron_expr, calendar) = match mechanism {
        "systemd" => {
            let cal = sched
                .to_calendar()
                .map_err(|e| Fail::new(e.0).code(EXIT_USAGE))?;
            let spec = systemd::UnitSpec {
                project: &s.project,
                pgbox: &pgbox,
                config: &config,
                on_calendar: &cal,
                docker_host: docker_host.as_deref(),
                path_env: DEFAULT_PATH,
                randomized_delay: a.randomized_delay,
                on_failure: s.on_failure.as_deref(),
                system: a.system,
                extra_args: &run_args,
            };
            let units = systemd::render(&spec).map_err(usage)?;
            let dir = systemd::unit_dir(a.system);
            let mut all = vec![units.service, units.timer];
            all.extend(units.failure);
            for (name, body) in &all {
                let path = dir.join(name);
                if a.dry_run {
                    p.data(format!("# {}\n{body}", path.display()));
                    continue;
                }
                std::fs::create_dir_all(&dir)?;
                crate::fsutil::write_atomic(&path, body.as_bytes(), 0o644)?;
                files.push(path);
            }
            (None, Some(cal))
        }
        _ => {
            let expr = sched
                .to_cron()
                .map_err(|e| Fail::new(e.0).code(EXIT_USAGE))?;
            if !a.dry_run {
                std::fs::create_dir_all(&s.backup_dir)?;
            }
            let log = s.backup_dir.join("pgbox-schedule.log");
            let mut env = vec![("PATH", DEFAULT_PATH)];
            env.extend(docker_host.as_deref().map(|h| ("DOCKER_HOST", h)));
            let command = cron::command(&cron::Job {
                env: &env,
                pgbox: &pgbox,
                config: &config,
                args: &run_args,
                log: &log,
                on_failure: s.on_failure.as_deref(),
            })
            .map_err(usage)?;
            if a.system {
                let block = cron::block(&s.project, &format!("{expr} root"), &command);
                let path = PathBuf::from(format!("/etc/cron.d/pgbox-{}", s.project));
                if a.dry_run {
                    p.data(format!("# {}\n{block}", path.display()));
                } else {
                    crate::fsutil::write_atomic(&path, block.as_bytes(), 0o644)?;
                    files.push(path);
                }
            } else {
                let block = cron::block(&s.project, &expr, &command);
                if a.dry_run {
                    p.data(block);
                } else {
                    let current = cron::read_crontab()?;
                    cron::write_crontab(&cron::with_block(&current, &s.project, Some(&block)))?;
                }
            }
            (Some(expr), None)
        }
    };
    let next = sched
        .next_after(Local::now().naive_local())
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    if a.dry_run {
        p.info(format!(
            "dry run: nothing written; the next run would be {next}"
        ));
        return Ok(0);
    }
    let record = Installed {
        mechanism: mechanism.into(),
        system: a.system,
        expression: a.at.clone(),
        cron: cron_expr,
        on_calendar: calendar,
        files,
        installed_at: Utc::now(),
    };
    crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
    crate::fsutil::write_atomic(
        &installed_path(s),
        &serde_json::to_vec_pretty(&record)?,
        0o600,
    )?;
    if mechanism == "systemd" {
        let (_, timer, _) = systemd::unit_names(&s.project);
        let scope = if a.system { "" } else { " --user" };
        if systemd::manager_reachable(a.system) {
            systemctl(a.system, &["daemon-reload"])?;
            systemctl(a.system, &["enable", "--now", &timer])?;
        } else {
            p.warn(format!(
                "systemd is not running here; to activate the timer: systemctl{scope} daemon-reload && systemctl{scope} enable --now {timer}"
            ));
        }
    }
    p.done(format!(
        "scheduled backups of `{}` with {mechanism} at `{}`; next run {next}",
        s.project, a.at
    ));
    Ok(0)
}

fn systemctl(system: bool, args: &[&str]) -> anyhow::Result<()> {
    let mut c = std::process::Command::new("systemctl");
    if !system {
        c.arg("--user");
    }
    let out = c.args(args).output().context("cannot run systemctl")?;
    anyhow::ensure!(
        out.status.success(),
        "systemctl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

#[derive(Serialize)]
struct Listed {
    project: String,
    mechanism: String,
    expression: String,
    next_run: Option<String>,
    location: String,
}

fn list(p: &Printer) -> super::Outcome {
    let now = Local::now().naive_local();
    let next = |e: &str| {
        Schedule::parse(e)
            .ok()
            .and_then(|s| s.next_after(now))
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    let mut rows = Vec::new();
    let cron_expr = |line: &str, fields: usize| {
        line.split_whitespace()
            .take(fields)
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Ok(tab) = cron::read_crontab() {
        for (project, line) in cron::blocks(&tab) {
            let e = cron_expr(&line, 5);
            rows.push(Listed {
                project,
                mechanism: "cron".into(),
                next_run: next(&e),
                expression: e,
                location: "user crontab".into(),
            });
        }
    }
    if let Ok(rd) = std::fs::read_dir("/etc/cron.d") {
        for ent in rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("pgbox-"))
        {
            let text = std::fs::read_to_string(ent.path()).unwrap_or_default();
            for (project, line) in cron::blocks(&text) {
                let e = cron_expr(&line, 5);
                rows.push(Listed {
                    project,
                    mechanism: "cron".into(),
                    next_run: next(&e),
                    expression: e,
                    location: ent.path().display().to_string(),
                });
            }
        }
    }
    for system in [false, true] {
        let dir = systemd::unit_dir(system);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let Some(project) = name
                .strip_prefix("pgbox-backup-")
                .and_then(|n| n.strip_suffix(".timer"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(ent.path()).unwrap_or_default();
            let e = text
                .lines()
                .find_map(|l| l.strip_prefix("OnCalendar="))
                .unwrap_or_default()
                .to_string();
            rows.push(Listed {
                project: project.into(),
                mechanism: "systemd".into(),
                next_run: next(&e),
                expression: e,
                location: ent.path().display().to_string(),
            });
        }
    }
    if p.json() {
        p.data(serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        p.info("no pgbox schedules on this host");
    } else {
        p.data(format!(
            "{:<20}{:<9}{:<26}{:<18}WHERE",
            "PROJECT", "USING", "WHEN", "NEXT RUN"
        ));
        for r in rows {
            p.data(format!(
                "{:<20}{:<9}{:<26}{:<18}{}",
                r.project,
                r.mechanism,
                r.expression,
                r.next_run.unwrap_or_default(),
                r.location
            ));
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct Status {
    installed: bool,
    mechanism: Option<String>,
    expression: Option<String>,
    next_run: Option<String>,
    last_run: Option<LastRun>,
    newest_good_backup: Option<String>,
    newest_good_backup_age_hours: Option<f64>,
    problems: Vec<String>,
}

fn status(s: &Settings, p: &Printer) -> super::Outcome {
    let inst: Option<Installed> = read_json(&installed_path(s));
    let last: Option<LastRun> = read_last_run(s);
    let now = Local::now().naive_local();
    let sched = inst
        .as_ref()
        .and_then(|i| Schedule::parse(&i.expression).ok());
    let newest = bk::list(&s.backup_dir, &s.project)?
        .into_iter()
        .find(|e| e.manifest.kind == "database");
    let age = newest.as_ref().map(|e| Utc::now() - e.manifest.created_at);
    let mut problems = Vec::new();
    if inst.is_none() {
        problems.push("no schedule is installed (`pgbox schedule install`)".to_string());
    }
    let running =
        |l: &LastRun| l.running_pid.is_some() && l.running_pid == lock::held_by(&s.state_dir());
    if let Some(l) = last.as_ref().filter(|l| !l.ok && !running(l)) {
        problems.push(format!(
            "the last run failed: {}",
            l.error.clone().unwrap_or_default()
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
    let report = Status {
        installed: inst.is_some(),
        mechanism: inst.as_ref().map(|i| i.mechanism.clone()),
        expression: inst.as_ref().map(|i| i.expression.clone()),
        next_run: sched
            .and_then(|sc| sc.next_after(now))
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string()),
        last_run: last.clone(),
        newest_good_backup: newest.as_ref().map(|e| e.path.display().to_string()),
        newest_good_backup_age_hours: age
            .map(|a| (a.num_seconds() as f64 / 3600.0 * 10.0).round() / 10.0),
        problems: problems.clone(),
    };
    if p.json() {
        p.data(serde_json::to_string_pretty(&report)?);
    } else {
        let dash = || "-".to_string();
        p.data(format!(
            "schedule    {}",
            report
                .expression
                .clone()
                .map(|e| format!("{e} ({})", report.mechanism.clone().unwrap_or_default()))
                .unwrap_or_else(dash)
        ));
        p.data(format!(
            "next run    {}",
            report.next_run.clone().unwrap_or_else(dash)
        ));
        p.data(format!(
            "last run    {}",
            last.map(|l| format!(
                "{} {} in {:.1}s{}",
                l.started_at.format("%Y-%m-%d %H:%M UTC"),
                if l.ok { "ok" } else { "FAILED" },
                l.duration_ms as f64 / 1000.0,
                l.file.map(|f| format!(" → {f}")).unwrap_or_default()
            ))
            .unwrap_or_else(dash)
        ));
        p.data(format!(
            "newest      {}",
            report
                .newest_good_backup
                .clone()
                .map(|f| format!(
                    "{f} ({}h old)",
                    report.newest_good_backup_age_hours.unwrap_or(0.0)
                ))
                .unwrap_or_else(dash)
        ));
        for pr in &problems {
            p.warn(pr);
        }
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

fn remove(s: &Settings, dry_run: bool, p: &Printer) -> super::Outcome {
    let mut did = Vec::new();
    if let Ok(tab) = cron::read_crontab() {
        if cron::blocks(&tab)
            .iter()
            .any(|(proj, _)| *proj == s.project)
        {
            did.push("the block in this user's crontab".to_string());
            if !dry_run {
                cron::write_crontab(&cron::with_block(&tab, &s.project, None))?;
            }
        }
    }
    let (svc, timer, fail) = systemd::unit_names(&s.project);
    let mut paths = vec![PathBuf::from(format!("/etc/cron.d/pgbox-{}", s.project))];
    for system in [false, true] {
        let dir = systemd::unit_dir(system);
        if dir.join(&timer).exists() && systemd::systemd_running() && !dry_run {
            let _ = systemctl(system, &["disable", "--now", &timer]);
        }
        paths.extend([dir.join(&svc), dir.join(&timer), dir.join(&fail)]);
    }
    for path in paths.into_iter().filter(|p| p.exists()) {
        did.push(format!("`{}`", path.display()));
        if !dry_run {
            std::fs::remove_file(&path)?;
        }
    }
    if !dry_run {
        let _ = std::fs::remove_file(installed_path(s));
    }
    if did.is_empty() {
        p.info(format!("no schedule of `{}` to remove", s.project));
    }
    for d in did {
        p.done(format!(
            "{}removed {d}",
            if dry_run { "would have " } else { "" }
        ));
    }
    Ok(0)
}
