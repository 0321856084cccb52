//! `pgbox backup` (create), `backup list`, `backup verify` and `backup prune`:
//! flags into options, one call into `backup::{create, base, listing, verify, pitr,
//! retention}`.

use super::Ctx;
use crate::backup::create::{self, CreateOptions};
use crate::backup::{base, listing, pitr, retention, verify};
use crate::cli::{BackupAction, BackupArgs, BackupCreateArgs, GlobalArgs, PruneArgs};
use crate::config::Settings;
use crate::printer::{size, Printer};

pub async fn run(args: BackupArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let s = ctx.settings()?;
    match args.action {
        None if args.create.base => {
            let dir = base::take(ctx.global.engine.as_deref(), s, p).await?;
            p.data(dir.display().to_string());
            Ok(0)
        }
        None => {
            for path in create::create(&options(args.create, ctx.global), s, p).await? {
                p.data(path);
            }
            Ok(0)
        }
        Some(BackupAction::List) => list(s, p),
        Some(BackupAction::Verify(a)) if a.pitr => {
            pitr::verify(s, p).await?;
            Ok(0)
        }
        Some(BackupAction::Verify(a)) => {
            verify::verify_backup(&a.file, a.deep, ctx.global.engine.as_deref(), s, p).await?;
            Ok(0)
        }
        Some(BackupAction::Prune(a)) => prune(a, s, p),
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
    }
}

fn list(s: &Settings, p: &Printer) -> super::Outcome {
    let rows = listing::rows(s)?;
    if p.json() {
        p.data(serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        p.info(format!(
            "no backups of `{}` in `{}`",
            s.project,
            s.backup_dir.display()
        ));
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
