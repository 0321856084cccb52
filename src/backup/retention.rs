//! Pruning backups by the retention policy (the rules themselves are in
//! `policy`): the policy from flags and pgbox.toml, the plan per database, and the
//! deletion, recorded like every run.

use super::record::{Kind, Record};
use super::Entry;
use crate::config::Settings;
use crate::error::Fail;
use crate::printer::Printer;

pub use super::policy::{plan, Item, Policy};

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
