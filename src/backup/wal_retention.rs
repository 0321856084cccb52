//! Retention for point-in-time recovery: base backups go by the same policy as
//! dumps (the newest verified one always stays), and a WAL segment goes only when
//! no kept base backup needs it: everything from the oldest kept base backup's
//! start segment on stays, so no base backup is ever kept without its WAL (the
//! backup-label files named for older segments go with them). Timeline history
//! files are tiny and always kept.

use std::path::PathBuf;

use super::policy::{plan, Item, Policy};
use super::{base, wal};
use crate::config::Settings;

/// What retention would delete: base backup folders and archived segments (with
/// their `.sha256`).
#[derive(Debug, Default)]
pub struct Doomed {
    pub bases: Vec<PathBuf>,
    pub segments: Vec<PathBuf>,
}

impl Doomed {
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty() && self.segments.is_empty()
    }
}

/// The plan for `s` under `policy` (nothing without `[backup] pitr` or a base backup).
pub fn plan_pitr(s: &Settings, policy: Policy) -> anyhow::Result<Doomed> {
    let mut doomed = Doomed::default();
    if !s.pitr {
        return Ok(doomed);
    }
    let mut bases = base::list(s)?;
    bases.sort_by_key(|b| std::cmp::Reverse(b.1.finished_at));
    if bases.is_empty() {
        return Ok(doomed);
    }
    let items: Vec<Item> = bases
        .iter()
        .map(|(_, m)| Item {
            created_at: m.finished_at,
            verified: m.verified,
        })
        .collect();
    let keep = plan(&items, policy);
    let mut oldest_needed: Option<u64> = None;
    for ((path, m), k) in bases.iter().zip(&keep) {
        if *k {
            let start = wal::parse_name(&m.start_wal, m.wal_segment_size).map(|(_, n)| n);
            oldest_needed = match (oldest_needed, start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        } else {
            doomed.bases.push(path.clone());
        }
    }
    let Some(oldest) = oldest_needed else {
        return Ok(doomed);
    };
    let seg = bases[0].1.wal_segment_size;
    let dir = s.wal_archive_dir();
    for e in std::fs::read_dir(&dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".zst") else {
            continue;
        };
        // A segment, or a backup-label file named for one (`<segment>.<offset>.backup`).
        let segment = stem
            .strip_suffix(".backup")
            .map_or(stem, |s| s.get(..24).unwrap_or(s));
        if let Some((_, n)) = wal::parse_name(segment, seg) {
            if n < oldest {
                doomed.segments.push(dir.join(&name));
            }
        }
    }
    doomed.segments.sort();
    Ok(doomed)
}

/// Delete what [`plan_pitr`] found: the base backups first, then the segments only
/// they needed (each with its `.sha256`), so a kill halfway never leaves a base
/// backup without its WAL.
pub fn delete(d: &Doomed) -> anyhow::Result<()> {
    for b in &d.bases {
        std::fs::remove_dir_all(b)?;
    }
    for seg in &d.segments {
        std::fs::remove_file(seg)?;
        let sum = seg.with_extension("sha256");
        match std::fs::remove_file(&sum) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}
