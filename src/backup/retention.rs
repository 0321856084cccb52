//! Which backups a retention policy keeps: keep-last, daily, weekly and monthly.
//!
//! The newest backup of each of the last N days (weeks, months) that have a
//! backup is kept, plus the newest `keep_last`; everything else may go. Two rules
//! override the policy: the newest verified backup is always kept (or the newest
//! backup when none is verified), so retention can never leave nothing good.
//! Days, weeks and months are taken in UTC, like the timestamps in the names.

use chrono::{DateTime, Datelike, Utc};

use super::record::{Kind, Record};
use super::Entry;
use crate::config::Settings;
use crate::error::Fail;
use crate::printer::Printer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub created_at: DateTime<Utc>,
    pub verified: bool,
}

/// For items sorted newest first, whether each is kept.
pub fn plan(items: &[Item], p: Policy) -> Vec<bool> {
    let mut keep = vec![false; items.len()];
    for k in keep.iter_mut().take(p.keep_last as usize) {
        *k = true;
    }
    let mut bucket = |n: u32, key: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
        let mut seen: Option<(i32, u32)> = None;
        let mut count = 0;
        for (i, it) in items.iter().enumerate() {
            if count >= n {
                break;
            }
            let k = key(&it.created_at);
            if seen != Some(k) {
                seen = Some(k);
                count += 1;
                keep[i] = true;
            }
        }
    };
    bucket(p.daily, &|t| (t.year(), t.ordinal()));
    bucket(p.weekly, &|t| {
        let w = t.iso_week();
        (w.year(), w.week())
    });
    bucket(p.monthly, &|t| (t.year(), t.month()));
    let guard = items
        .iter()
        .position(|it| it.verified)
        .or(if items.is_empty() { None } else { Some(0) });
    if let Some(i) = guard {
        keep[i] = true;
    }
    keep
}

/// The retention policy: flags over pgbox.toml over 7 daily, 4 weekly, 6 monthly.
pub fn policy(
    s: &Settings,
    last: Option<u32>,
    daily: Option<u32>,
    weekly: Option<u32>,
    monthly: Option<u32>,
) -> Policy {
    Policy {
        keep_last: last.or(s.keep_last).unwrap_or(0),
        daily: daily.unwrap_or(s.keep_daily),
        weekly: weekly.unwrap_or(s.keep_weekly),
        monthly: monthly.unwrap_or(s.keep_monthly),
    }
}

/// Delete what `policy` does not keep (after a confirmation unless `yes`).
/// Returns false when the user declined.
pub fn prune(
    s: &Settings,
    policy: Policy,
    yes: bool,
    dry_run: bool,
    p: &Printer,
) -> anyhow::Result<bool> {
    let alive = |pid| crate::lock::held_by(&s.state_dir()) == Some(pid);
    let record = Kind::Backup.path(&s.backup_dir, &s.project);
    let last = Record::read(&record, "the last backup's record").map_err(|e| {
        anyhow::Error::new(e).context(
            Fail::new("prune deletes nothing while it cannot tell how the latest backup ended")
                .hint("fix the record's permissions, or run `pgbox backup` to write a new one"),
        )
    })?;
    if let Some(last) = last.filter(|l| l.blocks_prune(alive)) {
        let how = match last.running_pid {
            Some(pid) if alive(pid) => "before the one now running failed",
            Some(_) => "was interrupted",
            None => "failed",
        };
        let why = last
            .error
            .as_deref()
            .and_then(|e| e.lines().next())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(Fail::new(format!(
            "the latest backup {how} ({}{why}); prune deletes nothing until a backup succeeds",
            last.finished_at.format("%Y-%m-%d %H:%M UTC")
        ))
        .hint("run `pgbox backup` and fix what it reports")
        .into());
    }
    let doomed = prune_plan(&super::list(&s.backup_dir, &s.project)?, policy);
    let pitr = super::wal_retention::plan_pitr(s, policy)?;
    if doomed.is_empty() && pitr.is_empty() {
        p.info("nothing to prune: every backup is kept by the policy");
        return Ok(true);
    }
    for e in &doomed {
        p.info(format!(
            "would delete `{}` ({})",
            e.path.display(),
            e.manifest.created_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    for b in &pitr.bases {
        p.info(format!("would delete base backup `{}`", b.display()));
    }
    if !pitr.segments.is_empty() {
        p.info(format!(
            "would delete {} archived WAL segments no kept base backup needs",
            pitr.segments.len()
        ));
    }
    if dry_run {
        return Ok(true);
    }
    let count = doomed.len() + pitr.bases.len();
    if !p.confirm(
        format!("Delete these {count} backups?"),
        yes,
        format!("pruning deletes {count} backups"),
        "pass `--yes` to confirm without a terminal, or `--dry-run` to only look",
    )? {
        p.info("nothing deleted");
        return Ok(false);
    }
    for e in &doomed {
        std::fs::remove_file(&e.path)?;
        // The file first: a manifest left without its file is ignored by listings.
        match std::fs::remove_file(super::manifest_path(&e.path)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(Fail::new(format!(
                    "deleted `{}` but not its manifest: {err}",
                    e.path.display()
                ))
                .into())
            }
            _ => {}
        }
    }
    super::wal_retention::delete(&pitr)?;
    p.done(format!(
        "deleted {count} backups{}",
        if pitr.segments.is_empty() {
            String::new()
        } else {
            format!(" and {} WAL segments", pitr.segments.len())
        }
    ));
    Ok(true)
}

/// Backups the policy lets go, applied per database (and to the globals separately).
pub fn prune_plan(entries: &[Entry], policy: Policy) -> Vec<Entry> {
    doomed_by(entries, policy, |e| &e.manifest)
}

/// Which of `entries` (newest first, each with its manifest) the policy lets go,
/// per database and kind: local backups and remote ones alike.
pub fn doomed_by<T: Clone>(
    entries: &[T],
    policy: Policy,
    manifest: impl Fn(&T) -> &super::Manifest,
) -> Vec<T> {
    let mut groups: Vec<(String, Vec<&T>)> = Vec::new();
    for e in entries {
        let m = manifest(e);
        let key = format!("{}/{}", m.kind, m.database);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    let mut doomed = Vec::new();
    for (_, group) in groups {
        let items: Vec<Item> = group
            .iter()
            .map(|e| Item {
                created_at: manifest(e).created_at,
                verified: manifest(e).verified_at.is_some(),
            })
            .collect();
        for (e, keep) in group.iter().zip(plan(&items, policy)) {
            if !keep {
                doomed.push((*e).clone());
            }
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn items(times: &[DateTime<Utc>]) -> Vec<Item> {
        times
            .iter()
            .map(|&created_at| Item {
                created_at,
                verified: true,
            })
            .collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        // Two backups a day for five days, newest first.
        let times: Vec<_> = (1..=5).rev().flat_map(|d| [at(d, 14), at(d, 2)]).collect();
        let keep = plan(
            &items(&times),
            Policy {
                keep_last: 0,
                daily: 3,
                weekly: 0,
                monthly: 0,
            },
        );
        let kept: Vec<_> = times
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(kept, vec![at(5, 14), at(4, 14), at(3, 14)]);
    }

    #[test]
    fn weekly_and_monthly_reach_further_back() {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap();
        let times: Vec<_> = (0..120).map(|d| start - Duration::days(d)).collect();
        let keep = plan(
            &items(&times),
            Policy {
                keep_last: 1,
                daily: 7,
                weekly: 4,
                monthly: 3,
            },
        );
        let kept: Vec<_> = times
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(t, _)| t.date_naive().to_string())
            .collect();
        assert_eq!(
            kept,
            vec![
                "2026-11-27",
                "2026-11-26",
                "2026-11-25",
                "2026-11-24",
                "2026-11-23", // days, and the week of 23rd
                "2026-11-22",
                "2026-11-21", // days; 22nd ends the previous ISO week
                "2026-11-15",
                "2026-11-08", // weeks
                "2026-10-31", // month of October
                "2026-09-30", // September
            ]
        );
    }

    #[test]
    fn the_newest_verified_backup_is_never_deleted() {
        let mut it = items(&[at(5, 2), at(4, 2), at(3, 2)]);
        it[0].verified = false;
        it[1].verified = false;
        let none = Policy {
            keep_last: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        assert_eq!(plan(&it, none), vec![false, false, true]);
        it[2].verified = false;
        assert_eq!(
            plan(&it, none),
            vec![true, false, false],
            "the newest when none is verified"
        );
        assert!(plan(&[], none).is_empty());
    }
}
