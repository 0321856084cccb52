//! The record of the last attempt, kept in the backup folder: one type for both
//! `pgbox backup` (`.pgbox-<project>-last-backup.json`, read by `prune`) and
//! `schedule run` (`.pgbox-<project>-schedule.json`, read by `schedule status`).
//!
//! A record is written before the work starts, as failed with `running_pid` set,
//! and rewritten when the attempt ends. So a pgbox killed mid-backup (even by
//! SIGKILL) leaves a failed record, never the previous `ok`, and `prune` refuses to
//! delete. While the attempt runs, `previous_ok` (backup records only) says how the
//! one before it ended: a prune beside a live backup goes by that (see
//! [`Record::blocks_prune`]). A SIGINT or SIGTERM rewrites the record as interrupted
//! on the way out. Records written by older pgbox versions (`at` instead of
//! `started_at`, no `duration_ms`) still read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cancel::{self, Guard};
use crate::fsutil::{read_record, RecordError};

/// What a record says when its pgbox never came back to finish it.
pub const NOT_FINISHED: &str = "interrupted: the backup did not finish";

/// Which attempts a record follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every `pgbox backup` into the backup folder (and so every scheduled one).
    Backup,
    /// Every `pgbox schedule run`: backup, verify and prune.
    Schedule,
}

impl Kind {
    pub fn path(self, dir: &Path, project: &str) -> PathBuf {
        dir.join(match self {
            Kind::Backup => format!(".pgbox-{project}-last-backup.json"),
            Kind::Schedule => format!(".pgbox-{project}-schedule.json"),
        })
    }

    fn not_finished(self) -> &'static str {
        match self {
            Kind::Backup => NOT_FINISHED,
            Kind::Schedule => "interrupted: the run did not finish",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Backup => "the backup record",
            Kind::Schedule => "the schedule record",
        }
    }
}

/// The outcome of the last attempt (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "Stored")]
pub struct Record {
    pub started_at: DateTime<Utc>,
    /// When it ended; `started_at` while it runs.
    pub finished_at: DateTime<Utc>,
    pub ok: bool,
    pub file: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// The pgbox making this attempt, while it runs (a record still carrying it
    /// after that process ended is an attempt that was killed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_pid: Option<u32>,
    /// Whether the attempt before this one succeeded (None: there was none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_ok: Option<bool>,
}

/// A record as any pgbox version wrote it.
#[derive(Deserialize)]
struct Stored {
    #[serde(alias = "at")]
    started_at: DateTime<Utc>,
    #[serde(default)]
    finished_at: Option<DateTime<Utc>>,
    ok: bool,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    running_pid: Option<u32>,
    #[serde(default)]
    previous_ok: Option<bool>,
}

impl From<Stored> for Record {
    fn from(s: Stored) -> Record {
        Record {
            finished_at: s.finished_at.unwrap_or(s.started_at),
            started_at: s.started_at,
            ok: s.ok,
            file: s.file,
            duration_ms: s.duration_ms,
            error: s.error,
            running_pid: s.running_pid,
            previous_ok: s.previous_ok,
        }
    }
}

impl Record {
    /// The record at `path`; `None` when there is none, an error when one is there
    /// but cannot be read (prune must not take it for "no failed backup").
    /// `what` names it in the error ("the last run's record").
    pub fn read(path: &Path, what: &'static str) -> Result<Option<Record>, RecordError> {
        read_record(path, what)
    }

    fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fsutil::write_atomic(path, &serde_json::to_vec_pretty(self)?, 0o600)?;
        Ok(())
    }

    /// Whether this record stops `prune`: a failed or interrupted attempt does; one
    /// still running (its pgbox alive, as `alive(pid)` tells) goes by the attempt
    /// before it, since it has not failed yet and waiting for it would block a
    /// prune for the length of a dump.
    pub fn blocks_prune(&self, alive: impl Fn(u32) -> bool) -> bool {
        match self.running_pid {
            Some(pid) if alive(pid) => self.previous_ok == Some(false),
            _ => !self.ok,
        }
    }
}

/// An attempt under way: its record says "failed, not finished" until
/// [`Attempt::finish`]; dropped by a signal, it says "interrupted by SIGINT/SIGTERM".
pub struct Attempt {
    path: PathBuf,
    started_at: DateTime<Utc>,
    t: Instant,
    interrupted: Guard,
}

/// Record an attempt that starts now (the caller holds the project lock).
pub fn begin(kind: Kind, dir: &Path, project: &str) -> anyhow::Result<Attempt> {
    let path = kind.path(dir, project);
    let previous_ok = match kind {
        Kind::Backup => match Record::read(&path, kind.what()) {
            Ok(last) => last.map(|l| match l.running_pid {
                // Its pgbox never finished it (we hold the project lock now).
                Some(_) => false,
                None => l.ok,
            }),
            // Unreadable: what it said is unknown, so it counts as a failure.
            Err(_) => Some(false),
        },
        Kind::Schedule => None,
    };
    let started_at = Utc::now();
    let t = Instant::now();
    Record {
        started_at,
        finished_at: started_at,
        ok: false,
        file: None,
        duration_ms: 0,
        error: Some(kind.not_finished().into()),
        running_pid: Some(std::process::id()),
        previous_ok,
    }
    .write(&path)?;
    let interrupted = {
        let path = path.clone();
        Guard::sync(kind.what(), move || {
            let signal = cancel::signal_name();
            // No one to tell on the way out; should this write fail, the record
            // still says "failed, not finished", which reads the same to `prune`.
            let _ = Record {
                started_at,
                finished_at: Utc::now(),
                ok: false,
                file: None,
                duration_ms: t.elapsed().as_millis() as u64,
                error: Some(format!("interrupted by {signal}")),
                running_pid: None,
                previous_ok: None,
            }
            .write(&path);
        })
    };
    Ok(Attempt {
        path,
        started_at,
        t,
        interrupted,
    })
}

impl Attempt {
    /// Record how the attempt ended: the first file written, or the error. A record
    /// that cannot be written is an error (the caller reports it): the file still
    /// says "not finished", so `prune` refuses until a later backup records success.
    pub fn finish(self, outcome: Result<Option<String>, String>) -> anyhow::Result<Record> {
        self.interrupted.disarm();
        let record = Record {
            started_at: self.started_at,
            finished_at: Utc::now(),
            ok: outcome.is_ok(),
            file: outcome.as_ref().ok().cloned().flatten(),
            duration_ms: self.t.elapsed().as_millis() as u64,
            error: outcome.err(),
            running_pid: None,
            previous_ok: None,
        };
        record.write(&self.path)?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path) -> Record {
        Record::read(&Kind::Backup.path(dir, "app"), "x")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_begun_attempt_reads_as_failed_until_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        begin(Kind::Backup, dir, "app")
            .unwrap()
            .finish(Ok(Some("a.dump".into())))
            .unwrap();
        let _running = begin(Kind::Backup, dir, "app").unwrap();
        let l = read(dir);
        assert!(!l.ok);
        assert_eq!(l.running_pid, Some(std::process::id()));
        assert_eq!(l.previous_ok, Some(true));
        // Alive: prune goes by the previous attempt; dead (killed): it is a failure.
        assert!(!l.blocks_prune(|_| true));
        assert!(l.blocks_prune(|_| false));
        // A new attempt after a killed one remembers the killed one as failed.
        std::mem::forget(_running);
        let a = begin(Kind::Backup, dir, "app").unwrap();
        let l = read(dir);
        assert_eq!(l.previous_ok, Some(false));
        assert!(l.blocks_prune(|_| true));
        a.finish(Err("boom".into())).unwrap();
        let l = read(dir);
        assert!(l.blocks_prune(|_| true));
        assert_eq!(l.error.as_deref(), Some("boom"));
    }

    #[test]
    fn a_record_that_cannot_be_written_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let a = begin(Kind::Backup, dir, "app").unwrap();
        // The record's place is taken by a folder: the rename onto it fails (even as root).
        let path = Kind::Backup.path(dir, "app");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir_all(path.join("x")).unwrap();
        assert!(a.finish(Ok(Some("a.dump".into()))).is_err());
    }

    #[test]
    fn records_of_older_versions_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let old_backup = tmp.path().join("b.json");
        std::fs::write(
            &old_backup,
            r#"{"at": "2026-11-27T02:00:00Z", "ok": false, "file": null, "error": "boom", "running_pid": 7}"#,
        )
        .unwrap();
        let r = Record::read(&old_backup, "x").unwrap().unwrap();
        assert_eq!(r.started_at, r.finished_at);
        assert_eq!((r.ok, r.running_pid, r.duration_ms), (false, Some(7), 0));
        let old_run = tmp.path().join("s.json");
        std::fs::write(
            &old_run,
            r#"{"started_at": "2026-11-27T02:00:00Z", "finished_at": "2026-11-27T02:00:05Z", "ok": true, "file": "a.dump", "duration_ms": 5000, "error": null}"#,
        )
        .unwrap();
        let r = Record::read(&old_run, "x").unwrap().unwrap();
        assert!(r.ok && r.duration_ms == 5000 && r.file.as_deref() == Some("a.dump"));
        assert_eq!((r.finished_at - r.started_at).num_seconds(), 5);
    }
}
