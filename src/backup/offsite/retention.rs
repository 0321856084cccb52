//! `backup prune --remote`: the store's own retention policy
//! (`[backup.remote] keep_*`, else 7 daily, 4 weekly, 6 monthly), planned by the
//! same rules as the local one ([`crate::backup::retention::plan`]), per database.
//! Every remote backup has been read back before it was listed, so the newest one is
//! the newest verified one and is never deleted. The object goes first, then its
//! manifest: a manifest without its object is no backup.

use object_store::ObjectStoreExt;

use crate::backup::retention::{doomed_by, Policy};
use crate::config::Settings;
use crate::printer::Printer;
use crate::remote::listing::{self, RemoteEntry};
use crate::remote::Remote;

/// The remote policy: flags over `[backup.remote]` over the defaults.
pub fn policy(
    r: &Remote,
    last: Option<u32>,
    daily: Option<u32>,
    weekly: Option<u32>,
    monthly: Option<u32>,
) -> Policy {
    Policy {
        keep_last: last.or(r.cfg.keep_last).unwrap_or(0),
        daily: daily.unwrap_or(r.cfg.keep_daily),
        weekly: weekly.unwrap_or(r.cfg.keep_weekly),
        monthly: monthly.unwrap_or(r.cfg.keep_monthly),
    }
}

/// Remote backups the policy lets go, per database (and the globals apart).
pub fn doomed(entries: &[RemoteEntry], policy: Policy) -> Vec<RemoteEntry> {
    doomed_by(entries, policy, |e| &e.manifest)
}

/// Delete what `policy` does not keep in the store (after a confirmation unless
/// `yes`). Returns false when the user declined.
pub async fn prune(
    r: &Remote,
    s: &Settings,
    policy: Policy,
    yes: bool,
    dry_run: bool,
    p: &Printer,
) -> anyhow::Result<bool> {
    let gone = doomed(&listing::list(r, &s.project).await?, policy);
    if gone.is_empty() {
        p.info(format!(
            "nothing to prune in `{}`: every backup is kept by the policy",
            r.cfg.url
        ));
        return Ok(true);
    }
    for e in &gone {
        p.info(format!(
            "would delete `{}` ({})",
            r.url_of(&e.name),
            e.manifest.created_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if dry_run {
        return Ok(true);
    }
    let n = gone.len();
    if !p.confirm(
        format!("Delete these {n} remote backups?"),
        yes,
        format!("pruning deletes {n} remote backups"),
        "pass `--yes` to confirm without a terminal, or `--dry-run` to only look",
    )? {
        p.info("nothing deleted");
        return Ok(false);
    }
    for e in &gone {
        r.store
            .delete(&e.key)
            .await
            .map_err(|err| r.fail("deleting from", err))?;
        let manifest = object_store::path::Path::from(format!("{}.json", e.key));
        r.store
            .delete(&manifest)
            .await
            .map_err(|err| r.fail("deleting from", err))?;
    }
    p.done(format!("deleted {n} remote backups from `{}`", r.cfg.url));
    Ok(true)
}
