//! What the backup folder holds, as `backup list` shows it, and which backup a
//! command line names (`FILE` or `latest`).

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;

use crate::config::Settings;
use crate::error::{Fail, EXIT_USAGE};

/// A backup named on the command line, or the newest database backup for `latest`.
pub fn resolve(s: &Settings, which: &str) -> anyhow::Result<PathBuf> {
    if which != "latest" {
        let path = crate::config::absolute(&std::env::current_dir()?, Path::new(which));
        if !path.exists() {
            return Err(Fail::new(format!("`{}` does not exist", path.display()))
                .hint("`pgbox backup list` shows the backups")
                .code(EXIT_USAGE)
                .into());
        }
        return Ok(path);
    }
    super::list(&s.backup_dir, &s.project)?
        .into_iter()
        .find(|e| e.manifest.kind == "database")
        .map(|e| e.path)
        .ok_or_else(|| {
            Fail::new(format!(
                "no backups of `{}` in `{}`",
                s.project,
                s.backup_dir.display()
            ))
            .hint("make one with `pgbox backup`")
            .into()
        })
}

/// One backup as `backup list` shows it (and prints with `--json`).
#[derive(Debug, Serialize)]
pub struct Row {
    pub created_at: String,
    pub database: String,
    pub kind: String,
    pub bytes: u64,
    pub age: String,
    pub verified: bool,
    pub file: String,
}

/// The backups of the project, newest first.
pub fn rows(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let now = Utc::now();
    Ok(super::list(&s.backup_dir, &s.project)?
        .into_iter()
        .map(|e| Row {
            created_at: e
                .manifest
                .created_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            database: e.manifest.database.clone(),
            kind: e.manifest.kind.clone(),
            bytes: e.manifest.bytes,
            age: crate::printer::age((now - e.manifest.created_at).num_seconds()),
            verified: e.manifest.verified_at.is_some(),
            file: e.path.display().to_string(),
        })
        .collect())
}
