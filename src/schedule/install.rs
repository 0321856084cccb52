//! `schedule install`: turn an expression into systemd units or a crontab entry
//! that runs `pgbox schedule run` for one project, write them (or print them on a
//! dry run), record what was done, and activate the timer when systemd answers.
//!
//! The job runs with no terminal and a bare environment, so everything it needs is
//! written into it: pgbox and the config by absolute path, `PATH`, and the
//! `DOCKER_HOST` of the installing shell (refused when it cannot be carried as is,
//! since a job silently without it would back up another engine's server).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Local, Utc};

use super::expr::Schedule;
use super::installed::Installed;
use super::{cron, systemd, Mechanism, Unrepresentable};
use crate::config::Settings;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to install.
pub struct InstallOptions {
    /// The expression, as the user wrote it.
    pub at: String,
    pub using: Mechanism,
    /// System-wide (/etc) rather than this user's.
    pub system: bool,
    pub randomized_delay: Option<u64>,
    /// Print what would be written and write nothing.
    pub dry_run: bool,
    /// Arguments after `schedule run` (engine, retention flags), unquoted.
    pub run_args: Vec<String>,
}

/// One install being made: what was asked, for which project, and where the job
/// finds pgbox, its config and its engine.
struct Plan<'a> {
    o: &'a InstallOptions,
    s: &'a Settings,
    sched: Schedule,
    pgbox: PathBuf,
    config: PathBuf,
    docker_host: Option<String>,
}

pub fn install(o: &InstallOptions, s: &Settings, p: &Printer) -> anyhow::Result<()> {
    let sched = Schedule::parse(&o.at)
        .map_err(|e| Fail::new(format!("invalid schedule `{}`: {e}", o.at)).code(EXIT_USAGE))?;
    let mechanism = match o.using {
        Mechanism::Auto if systemd::manager_reachable(o.system)? => Mechanism::Systemd,
        Mechanism::Auto => Mechanism::Cron,
        m => m,
    };
    let plan = Plan {
        o,
        s,
        sched,
        pgbox: std::env::current_exe()?
            .canonicalize()
            .context("cannot find pgbox's own path")?,
        config: s.config_path.canonicalize()?,
        docker_host: docker_host()?,
    };
    let mut files = Vec::new();
    let (cron_expr, calendar) = match mechanism {
        Mechanism::Systemd => (None, Some(plan.units(&mut files, p)?)),
        _ => (Some(plan.cron_entry(&mut files, p)?), None),
    };
    // Never empty: `Schedule::parse` refuses an expression that never fires.
    let next = plan
        .sched
        .next_after(Local::now().naive_local())
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    if o.dry_run {
        p.info(format!(
            "dry run: nothing written; the next run would be {next}"
        ));
        return Ok(());
    }
    Installed {
        mechanism,
        system: o.system,
        expression: o.at.clone(),
        cron: cron_expr,
        on_calendar: calendar,
        files,
        installed_at: Utc::now(),
    }
    .write(s)?;
    if mechanism == Mechanism::Systemd {
        activate(&s.project, o.system, p)?;
    }
    p.done(format!(
        "scheduled backups of `{}` with {} at `{}`; next run {next}",
        s.project,
        mechanism.as_str(),
        o.at
    ));
    Ok(())
}

/// The installing shell's `DOCKER_HOST`, for the job; none when unset or empty.
fn docker_host() -> Result<Option<String>, Fail> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => Ok(Some(h)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(h)) => Err(Fail::new(format!(
            "`DOCKER_HOST` is not valid UTF-8 (`{}`), so the scheduled job cannot carry it",
            h.to_string_lossy()
        ))
        .hint("set `DOCKER_HOST` to a value without such bytes, or unset it to use the default engine")
        .code(EXIT_USAGE)),
    }
}

fn unrepresentable(e: Unrepresentable) -> Fail {
    Fail::new(e.to_string())
        .hint("move the project (or pgbox) to a path without such characters")
        .code(EXIT_USAGE)
}

impl Plan<'_> {
    /// Write (or print) the service, timer and failure units; their OnCalendar value.
    fn units(&self, files: &mut Vec<PathBuf>, p: &Printer) -> anyhow::Result<String> {
        let (o, s) = (self.o, self.s);
        let cal = self
            .sched
            .to_calendar()
            .map_err(|e| Fail::new(e.0).code(EXIT_USAGE))?;
        let spec = systemd::UnitSpec {
            project: &s.project,
            pgbox: &self.pgbox,
            config: &self.config,
            on_calendar: &cal,
            docker_host: self.docker_host.as_deref(),
            path_env: DEFAULT_PATH,
            randomized_delay: o.randomized_delay,
            on_failure: s.on_failure.as_deref(),
            system: o.system,
            extra_args: &o.run_args,
        };
        let units = systemd::render(&spec).map_err(unrepresentable)?;
        let dir = systemd::unit_dir(o.system);
        let mut all = vec![units.service, units.timer];
        all.extend(units.failure);
        for (name, body) in &all {
            let path = dir.join(name);
            if o.dry_run {
                p.data(format!("# {}\n{body}", path.display()));
                continue;
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
            write_file(&path, body)?;
            files.push(path);
        }
        Ok(cal)
    }

    /// Write (or print) the crontab block or `/etc/cron.d` file; its cron expression.
    fn cron_entry(&self, files: &mut Vec<PathBuf>, p: &Printer) -> anyhow::Result<String> {
        let (o, s) = (self.o, self.s);
        let expr = self
            .sched
            .to_cron()
            .map_err(|e| Fail::new(e.0).code(EXIT_USAGE))?;
        if !o.dry_run {
            std::fs::create_dir_all(&s.backup_dir)
                .with_context(|| format!("cannot create `{}`", s.backup_dir.display()))?;
        }
        let log = s.backup_dir.join("pgbox-schedule.log");
        let mut env = vec![("PATH", DEFAULT_PATH)];
        env.extend(self.docker_host.as_deref().map(|h| ("DOCKER_HOST", h)));
        let command = cron::command(&cron::Job {
            env: &env,
            pgbox: &self.pgbox,
            config: &self.config,
            args: &o.run_args,
            log: &log,
            on_failure: s.on_failure.as_deref(),
        })
        .map_err(unrepresentable)?;
        if o.system {
            let block = cron::block(&s.project, &format!("{expr} root"), &command);
            let path = cron::system_file(&s.project);
            if o.dry_run {
                p.data(format!("# {}\n{block}", path.display()));
            } else {
                write_file(&path, &block)?;
                files.push(path);
            }
        } else {
            let block = cron::block(&s.project, &expr, &command);
            if o.dry_run {
                p.data(block);
            } else {
                let current = cron::read_crontab()?;
                cron::write_crontab(&cron::with_block(&current, &s.project, Some(&block)))?;
            }
        }
        Ok(expr)
    }
}

fn write_file(path: &Path, body: &str) -> anyhow::Result<()> {
    crate::fsutil::write_atomic(path, body.as_bytes(), 0o644)
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// Load and start the timer when this scope's manager answers; otherwise say how.
fn activate(project: &str, system: bool, p: &Printer) -> anyhow::Result<()> {
    let (_, timer, _) = systemd::unit_names(project);
    if systemd::manager_reachable(system)? {
        systemd::systemctl(system, &["daemon-reload"])?;
        systemd::systemctl(system, &["enable", "--now", &timer])?;
    } else {
        let scope = if system { "" } else { " --user" };
        p.warn(format!(
            "systemd is not running here; to activate the timer: systemctl{scope} daemon-reload && systemctl{scope} enable --now {timer}"
        ));
    }
    Ok(())
}
