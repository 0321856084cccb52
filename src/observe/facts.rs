//! What only pgbox knows about the project: the newest backup and whether it was
//! verified, the schedule and its last run. Read from pgbox's own files (no engine,
//! no server), so `stats` and every scrape can afford them.

use chrono::{Local, Utc};
use serde::Serialize;

use crate::backup::record::{Kind, Record};
use crate::config::Settings;
use crate::schedule::expr::Schedule;
use crate::schedule::installed::Installed;

#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub file: String,
    /// Epoch seconds.
    pub created_at: i64,
    pub age_s: i64,
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// Epoch seconds.
    pub finished_at: i64,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    pub newest_backup: Option<Backup>,
    /// The installed schedule's expression (None: no schedule).
    pub schedule: Option<String>,
    /// Seconds between scheduled runs, where the expression has a fixed one.
    pub interval_s: Option<i64>,
    pub last_run: Option<LastRun>,
    pub pitr: bool,
    /// Files that could not be read, said once rather than taken for "none".
    pub unreadable: Vec<String>,
}

pub fn read(s: &Settings) -> Facts {
    let mut f = Facts {
        pitr: s.pitr,
        ..Facts::default()
    };
    let now = Utc::now();
    match crate::backup::list(&s.backup_dir, &s.project) {
        Ok(list) => {
            f.newest_backup = list
                .into_iter()
                .find(|e| e.manifest.kind == "database")
                .map(|e| Backup {
                    file: e.path.display().to_string(),
                    created_at: e.manifest.created_at.timestamp(),
                    age_s: (now - e.manifest.created_at).num_seconds().max(0),
                    verified: e.manifest.verified_at.is_some(),
                })
        }
        Err(e) => f.unreadable.push(format!("{e:#}")),
    }
    match Installed::read(s) {
        Ok(Some(i)) => {
            f.interval_s = Schedule::parse(&i.expression)
                .ok()
                .and_then(|sc| sc.interval(Local::now().naive_local()))
                .map(|d| d.num_seconds());
            f.schedule = Some(i.expression);
        }
        Ok(None) => {}
        Err(e) => f.unreadable.push(e.to_string()),
    }
    let record = Kind::Schedule.path(&s.backup_dir, &s.project);
    match Record::read(&record, "the last run's record") {
        Ok(r) => {
            f.last_run = r.map(|r| LastRun {
                finished_at: r.finished_at.timestamp(),
                ok: r.ok,
                error: r.error,
            })
        }
        Err(e) => f.unreadable.push(e.to_string()),
    }
    f
}
