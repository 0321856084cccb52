//! `pgbox backup verify --pitr`: can the archive recover every base backup?
//!
//! For each base backup, every WAL segment from its start segment to the newest
//! archived one must be in the archive, following timeline switches recorded in
//! history files (see [`super::wal::needed`]), and every segment with a recorded
//! sha256 must decompress to exactly those bytes. The recoverable window runs
//! from the end of the oldest base backup whose chain is whole to the newest
//! archived segment. Reading only the host's files, it needs no engine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{base, wal};
use crate::config::Settings;
use crate::error::Fail;
use crate::printer::Printer;

/// Check the archive; Ok with the window, or a failure naming what is wrong.
pub async fn verify(s: &Settings, p: &Printer) -> anyhow::Result<()> {
    let bases = base::list(s)?;
    if bases.is_empty() {
        return Err(Fail::new(format!(
            "no base backups of `{}` in `{}`",
            s.project,
            base::base_dir(s).display()
        ))
        .hint("take one with `pgbox backup --base` (needs `pitr = true` under `[backup]`)")
        .into());
    }
    let seg = bases[bases.len() - 1].1.wal_segment_size;
    let dir = s.wal_archive_dir();
    let (archive, bad) = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let a = wal::scan(&dir, seg)?;
            let mut bad = Vec::new();
            for (tli, segs) in &a.segments {
                for n in segs {
                    let name = wal::file_name(*tli, *n, seg);
                    if wal::check_sum(&dir, &name) == Some(false) {
                        bad.push(name);
                    }
                }
            }
            Ok((a, bad))
        })
        .await??
    };
    let total: usize = archive.segments.values().map(|s| s.len()).sum();
    // Missing segment -> the base backups it cuts off.
    let mut gaps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut whole: Vec<&base::BaseMeta> = Vec::new();
    for (path, m) in &bases {
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((tli, start)) = wal::parse_name(&m.start_wal, seg) else {
            gaps.entry(m.start_wal.clone()).or_default().push(label);
            continue;
        };
        match wal::needed(&archive, tli, start, seg) {
            Some(need) => {
                let missing = need.iter().find(|(t, n)| {
                    !archive.segments.get(t).is_some_and(|set| set.contains(n))
                });
                match missing {
                    Some((t, n)) => gaps
                        .entry(wal::file_name(*t, *n, seg))
                        .or_default()
                        .push(label),
                    None => whole.push(m),
                }
            }
            None => p.warn(format!(
                "base backup `{label}` is on timeline {tli}, which the newest timeline does not descend from"
            )),
        }
    }
    let newest: Option<DateTime<Utc>> = archive.newest_mtime.map(DateTime::<Utc>::from);
    let oldest_whole = whole.iter().map(|m| m.finished_at).min();
    if gaps.is_empty() && bad.is_empty() {
        p.done(format!(
            "WAL archive of `{}`: {total} segments, no gap from {} base backup(s), every recorded sha256 matches",
            s.project,
            bases.len()
        ));
    }
    match (oldest_whole, newest) {
        (Some(from), Some(to)) => {
            // The end of the newest backup may be later than its last segment's mtime.
            let to = to.max(from);
            p.info(format!(
                "recoverable window: {} to {}",
                stamp(from),
                stamp(to)
            ));
            p.data(format!("{}\t{}", from.to_rfc3339(), to.to_rfc3339()));
        }
        _ => p.warn("no recoverable window: no base backup has a whole WAL chain"),
    }
    if !bad.is_empty() {
        let list = bad.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>();
        return Err(Fail::new(format!(
            "{} archived WAL segment(s) do not match their sha256: {}",
            bad.len(),
            list.join(", ")
        ))
        .hint("a damaged segment cannot be replayed; take a new `pgbox backup --base` so recovery starts after it")
        .into());
    }
    if let Some((segment, cut)) = gaps.iter().next() {
        let cut = cut.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>();
        let more = if gaps.len() > 1 {
            format!(" (and {} more gap(s))", gaps.len() - 1)
        } else {
            String::new()
        };
        return Err(Fail::new(format!(
            "WAL segment `{segment}` is missing from `{}`{more}: base backup(s) {} cannot be recovered past it",
            dir.display(),
            cut.join(", ")
        ))
        .hint("take a new `pgbox backup --base`; recovery from it needs only WAL archived after it")
        .into());
    }
    Ok(())
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The recoverable window at a glance, for `status`: from the oldest base backup's
/// end to the newest archived segment; None without a base backup. It does not
/// check the chain (that is `backup verify --pitr`).
pub fn window(s: &Settings) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let bases = base::list(s).ok()?;
    let oldest = bases.iter().map(|(_, m)| m.finished_at).min()?;
    let seg = bases
        .first()
        .map_or(wal::DEFAULT_SEGMENT_SIZE, |(_, m)| m.wal_segment_size);
    let newest = wal::scan(&s.wal_archive_dir(), seg)
        .ok()?
        .newest_mtime
        .map(DateTime::<Utc>::from)?;
    Some((oldest, newest.max(oldest)))
}

/// [`window`] as RFC 3339 times, for `status` and `schedule status`.
pub fn window_rfc3339(s: &Settings) -> Option<(String, String)> {
    let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    window(s).map(|(a, b)| (f(a), f(b)))
}
