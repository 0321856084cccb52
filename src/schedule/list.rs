//! `schedule list`: every pgbox schedule on this host, found where the installers
//! put them: this user's crontab, `/etc/cron.d/pgbox-*`, and the user's and the
//! system's `pgbox-backup-*.timer` units.
//!
//! A crontab that cannot be read is an error (pgbox's blocks could be in it, and
//! the whole source would be missing from the table); one file or folder that
//! cannot be read is a warning naming it, and the others are still listed.

use std::path::{Path, PathBuf};

use chrono::{Local, NaiveDateTime};
use serde::Serialize;

use super::expr::Schedule;
use super::{cron, systemd, Mechanism};
use crate::printer::Printer;

#[derive(Serialize)]
struct Listed {
    project: String,
    mechanism: Mechanism,
    expression: String,
    next_run: Option<String>,
    location: String,
}

pub fn list(p: &Printer) -> anyhow::Result<()> {
    let now = Local::now().naive_local();
    let mut rows = Vec::new();
    if let Some(tab) = cron::read_crontab_if_installed()? {
        rows.extend(cron_rows(&tab, "user crontab", now));
    }
    for path in entries(Path::new("/etc/cron.d"), p) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with("pgbox-") {
            continue;
        }
        if let Some(text) = read(&path, p) {
            rows.extend(cron_rows(&text, &path.display().to_string(), now));
        }
    }
    for system in [false, true] {
        for path in entries(&systemd::unit_dir(system), p) {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let Some(project) = name
                .strip_prefix("pgbox-backup-")
                .and_then(|n| n.strip_suffix(".timer"))
            else {
                continue;
            };
            let Some(text) = read(&path, p) else {
                continue;
            };
            let e = text
                .lines()
                .find_map(|l| l.strip_prefix("OnCalendar="))
                .unwrap_or_default()
                .to_string();
            rows.push(Listed {
                project: project.into(),
                mechanism: Mechanism::Systemd,
                next_run: next(&e, now),
                expression: e,
                location: path.display().to_string(),
            });
        }
    }
    show(rows, p)
}

/// The next run of a listed expression; none for one pgbox cannot read (a line
/// edited by hand), which the table shows as an empty column.
fn next(e: &str, now: NaiveDateTime) -> Option<String> {
    Schedule::parse(e)
        .ok()
        .and_then(|s| s.next_after(now))
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
}

fn cron_rows(text: &str, location: &str, now: NaiveDateTime) -> Vec<Listed> {
    cron::blocks(text)
        .into_iter()
        .map(|(project, line)| {
            let e = line
                .split_whitespace()
                .take(5)
                .collect::<Vec<_>>()
                .join(" ");
            Listed {
                project,
                mechanism: Mechanism::Cron,
                next_run: next(&e, now),
                expression: e,
                location: location.into(),
            }
        })
        .collect()
}

/// The paths in `dir`; none when it does not exist, a warning when it cannot be read.
fn entries(dir: &Path, p: &Printer) -> Vec<PathBuf> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            p.warn(format!("cannot read `{}`: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for ent in rd {
        match ent {
            Ok(ent) => out.push(ent.path()),
            Err(e) => p.warn(format!("cannot read `{}`: {e}", dir.display())),
        }
    }
    out
}

/// A file's text, or a warning naming it.
fn read(path: &Path, p: &Printer) -> Option<String> {
    std::fs::read_to_string(path)
        .map_err(|e| p.warn(format!("cannot read `{}`: {e}", path.display())))
        .ok()
}

fn show(rows: Vec<Listed>, p: &Printer) -> anyhow::Result<()> {
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
                r.mechanism.as_str(),
                r.expression,
                r.next_run.unwrap_or_default(),
                r.location
            ));
        }
    }
    Ok(())
}
