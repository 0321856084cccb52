//! `pgbox backup` (create), `backup list`, `backup verify` and `backup prune`:
//! flags into options, one call into `backup::{create, base, listing, verify, pitr,
//! retention}`.

use super::Ctx;
use crate::backup::create::{self, CreateOptions};
use crate::backup::{base, listing, pitr, retention, verify};
use crate::cli::{BackupAction, BackupArgs, BackupCreateArgs, GlobalArgs, PruneArgs};
use crate::config::Settings;
use crate::printer::{size, Printer};
use crate::remote;

pub async fn run(args: BackupArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let s = ctx.settings()?;
    match args.action {
        None if args.create.base => {
            let dir = base::take(ctx.global.engine.as_deref(), s, p).await?;
            if s.remote.is_some() && !args.create.local_only {
                // As for dumps: the new base backup (and the WAL) go off-site too.
                let _lock = crate::lock::project(&s.state_dir(), &s.project, "backup")?;
                crate::backup::offsite::pitr::sync(s, p).await?;
            }
            p.data(dir.display().to_string());
            Ok(0)
        }
        None => {
            for path in create::create(&options(args.create, ctx.global), s, p).await? {
                p.data(path);
            }
            Ok(0)
        }
        Some(BackupAction::List(a)) if a.remote => {
            let (url, rows) = crate::backup::offsite::rows(s).await?;
            show(rows, &url, s, p)
        }
        Some(BackupAction::List(_)) => {
            let rows = listing::rows(s)?;
            show(rows, &s.backup_dir.display().to_string(), s, p)
        }
        Some(BackupAction::Verify(a)) if a.pitr => {
            pitr::verify(s, p).await?;
            Ok(0)
        }
        Some(BackupAction::Verify(a)) if a.remote => {
            let (engine, id) = (ctx.global.engine.as_deref(), a.identity.as_deref());
            crate::backup::offsite::verify(s, &a.file, a.deep, id, engine, p).await?;
            Ok(0)
        }
        Some(BackupAction::Verify(a)) => {
            verify::verify_backup(&a.file, a.deep, ctx.global.engine.as_deref(), s, p).await?;
            Ok(0)
        }
        Some(BackupAction::Prune(a)) if a.remote => {
            let r = &a.retention;
            let remote = remote::Remote::connect(s)?;
            let (l, d, w, m) = (r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly);
            let policy = crate::backup::offsite::retention::policy(&remote, l, d, w, m);
            let mut done =
                crate::backup::offsite::retention::prune(&remote, s, policy, a.yes, a.dry_run, p)
                    .await?;
            if done && s.pitr {
                done = crate::backup::offsite::pitr::prune(&remote, s, policy, a.yes, a.dry_run, p)
                    .await?;
            }
            Ok(if done { 0 } else { 1 })
        }
        Some(BackupAction::Prune(a)) => prune(a, s, p),
        Some(BackupAction::Sync(_)) => {
            let _lock = crate::lock::project(&s.state_dir(), &s.project, "backup")?;
            crate::backup::offsite::pitr::sync(s, p).await?;
            Ok(0)
        }
    }
}

fn options(a: BackupCreateArgs, g: &GlobalArgs) -> CreateOptions {
    CreateOptions {
        db: a.db,
        all: a.all,
        format: a.format,
        compress: a.compress,
        level: a.level,
        output: a.output,
        verify: a.verify,
        engine: g.engine.clone(),
        remote_only: a.remote_only,
        local_only: a.local_only,
    }
}

fn show(rows: Vec<listing::Row>, place: &str, s: &Settings, p: &Printer) -> super::Outcome {
    if p.json() {
        p.data(serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        p.info(format!("no backups of `{}` in `{place}`", s.project));
        return Ok(0);
    }
    p.data(format!(
        "{:<24}{:<16}{:>10}  {:>5}  {:<9}FILE",
        "CREATED", "DATABASE", "SIZE", "AGE", "VERIFIED"
    ));
    for r in rows {
        p.data(format!(
            "{:<24}{:<16}{:>10}  {:>5}  {:<9}{}",
            r.created_at,
            if r.kind == "globals" {
                "(globals)".to_string()
            } else {
                r.database
            },
            size(r.bytes),
            r.age,
            if r.verified { "yes" } else { "no" },
            r.file
        ));
    }
    Ok(0)
}

fn prune(a: PruneArgs, s: &Settings, p: &Printer) -> super::Outcome {
    let r = &a.retention;
    let policy = retention::policy(s, r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly);
    Ok(match retention::prune(s, policy, a.yes, a.dry_run, p)? {
        true => 0,
        false => 1,
    })
}
