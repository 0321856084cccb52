//! What the store holds for this project, as `backup list --remote` shows it, which
//! remote backup a command line names (`NAME` or `latest`), and the local note of
//! the newest shipped backup that `status` and `schedule status` read without
//! asking the store.
//!
//! A remote backup is a manifest object (`<key>.json`) whose object is there too;
//! objects without a manifest (an upload that never completed its check) and
//! manifests without their object (half a prune) are not backups.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::Remote;
use crate::config::Settings;
use crate::error::{Fail, EXIT_USAGE};
use crate::manifest::Manifest;

/// One backup in the store.
#[derive(Debug, Clone)]
pub struct RemoteEntry {
    /// The object's name under the prefix.
    pub name: String,
    pub key: Key,
    /// The object's size as the store lists it.
    pub size: u64,
    pub manifest: Manifest,
}

/// Every backup of `project` in the store, newest first.
pub async fn list(r: &Remote, project: &str) -> anyhow::Result<Vec<RemoteEntry>> {
    let prefix = (!r.cfg.prefix.is_empty()).then(|| Key::from(r.cfg.prefix.as_str()));
    let objects: Vec<_> = match r.store.list(prefix.as_ref()).try_collect().await {
        Ok(o) => o,
        Err(e) => return Err(r.list_failed(e).await),
    };
    let sizes: HashMap<String, u64> = objects
        .iter()
        .map(|o| (o.location.to_string(), o.size))
        .collect();
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for o in &objects {
        let key = o.location.to_string();
        let Some(data) = key.strip_suffix(".json") else {
            continue;
        };
        let Some(&size) = sizes.get(data) else {
            continue;
        };
        let name = data.rsplit('/').next().unwrap_or(data).to_string();
        if !name.starts_with(&format!("{project}-")) {
            continue;
        }
        let bytes = r
            .store
            .get(&o.location)
            .await
            .map_err(|e| r.fail("reading a manifest from", e))?
            .bytes()
            .await
            .map_err(|e| r.fail("reading a manifest from", e))?;
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if m.project == project => out.push(RemoteEntry {
                name,
                key: Key::from(data),
                size,
                manifest: m,
            }),
            Ok(_) => {}
            Err(e) => unreadable.push(format!("  `{key}`: not a pgbox manifest ({e})")),
        }
    }
    if !unreadable.is_empty() {
        return Err(Fail::new(format!(
            "cannot read {} manifest(s) in `{}`:\n{}",
            unreadable.len(),
            r.cfg.url,
            unreadable.join("\n")
        ))
        .hint("move the damaged manifest objects aside; their backups are still there")
        .into());
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.manifest.created_at));
    Ok(out)
}

/// The remote backup named `which` (its object or backup file name), or the newest
/// database backup for `latest`.
pub async fn resolve(r: &Remote, project: &str, which: &str) -> anyhow::Result<RemoteEntry> {
    let all = list(r, project).await?;
    let found = match which {
        "latest" => all.into_iter().find(|e| e.manifest.kind == "database"),
        name => all
            .into_iter()
            .find(|e| e.name == name || e.manifest.file == name),
    };
    found.ok_or_else(|| {
        let what = match which {
            "latest" => format!("no backups of `{project}` in `{}`", r.cfg.url),
            name => format!("no backup `{name}` of `{project}` in `{}`", r.cfg.url),
        };
        Fail::new(what)
            .hint("`pgbox backup list --remote` shows what the store holds")
            .code(EXIT_USAGE)
            .into()
    })
}

/// The newest shipped backup, as the last successful upload noted it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Shipped {
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub shipped_at: DateTime<Utc>,
}

fn note_path(s: &Settings) -> PathBuf {
    s.backup_dir
        .join(format!(".pgbox-{}-remote.json", s.project))
}

/// Note a backup that was shipped and checked (for `status`).
pub fn note_shipped(s: &Settings, m: &Manifest) -> anyhow::Result<()> {
    let note = Shipped {
        url: m.remote.clone().unwrap_or_default(),
        created_at: m.created_at,
        shipped_at: m.verified_at.unwrap_or_else(Utc::now),
    };
    if newest_shipped(s).is_some_and(|n| n.created_at > note.created_at) {
        return Ok(());
    }
    std::fs::create_dir_all(&s.backup_dir)?;
    crate::fsutil::write_atomic(&note_path(s), &serde_json::to_vec_pretty(&note)?, 0o600)?;
    Ok(())
}

/// The newest backup shipped from here, if any was.
pub fn newest_shipped(s: &Settings) -> Option<Shipped> {
    read_note(&note_path(s))
}

/// The off-site side for `status` and `schedule status`: the newest shipped
/// backup and its age, from the local note (no request to the store).
#[derive(Debug, Clone, Serialize)]
pub struct Offsite {
    pub url: String,
    pub newest: Option<String>,
    pub newest_age_hours: Option<f64>,
}

impl Offsite {
    pub fn of(s: &Settings) -> Option<Offsite> {
        let r = s.remote.as_ref()?;
        let n = newest_shipped(s);
        Some(Offsite {
            url: r.url.clone(),
            newest_age_hours: n
                .as_ref()
                .map(|n| ((Utc::now() - n.created_at).num_seconds() as f64 / 360.0).round() / 10.0),
            newest: n.map(|n| n.url),
        })
    }

    /// `s3://... (2.5h old)`, or that nothing was shipped.
    pub fn summary(&self) -> String {
        match (&self.newest, self.newest_age_hours) {
            (Some(u), Some(h)) => format!("{u} ({h}h old)"),
            _ => format!("nothing shipped to `{}` yet", self.url),
        }
    }
}

fn read_note(p: &Path) -> Option<Shipped> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}
