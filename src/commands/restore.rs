//! `pgbox restore`: flags into [`RestoreOptions`], one call into `backup::restore`
//! (checks, leftovers, confirmation, scratch database, swap); with `--to-time`,
//! `--to-lsn` or `--to-latest` (and `--into-new`), one call into
//! `backup::pitr_restore`; `--discard-new` removes the copy `--into-new` made.

use super::Ctx;
use crate::backup::pitr_restore;
use crate::backup::restore::{self, RestoreOptions};
use crate::cli::RestoreArgs;

pub async fn run(a: RestoreArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let s = ctx.settings()?;
    if a.discard_new {
        let done = pitr_restore::copy::discard(s, a.yes, ctx.global.engine.as_deref(), p).await?;
        return Ok(if done { 0 } else { 1 });
    }
    let target = if let Some(t) = &a.to_time {
        Some(pitr_restore::Target::Time(pitr_restore::parse_time(t)?))
    } else if let Some(l) = &a.to_lsn {
        Some(pitr_restore::Target::Lsn(pitr_restore::parse_lsn(l)?))
    } else if a.to_latest {
        Some(pitr_restore::Target::Latest)
    } else {
        None
    };
    if let Some(target) = target {
        if a.file != "latest" {
            return Err(crate::error::Fail::new(format!(
                "`{}` is a dump, and `--to-time`, `--to-lsn` and `--to-latest` recover from base backups and the WAL archive",
                a.file
            ))
            .hint("restore the dump with `pgbox restore FILE`, or recover to a point without naming a file")
            .code(crate::error::EXIT_USAGE)
            .into());
        }
        let o = pitr_restore::PitrOptions {
            target,
            yes: a.yes,
            timeout: std::time::Duration::from_secs(a.timeout),
            engine: ctx.global.engine.clone(),
            into_new: a.into_new.then_some(a.port),
            from: None,
        };
        let done = match a.from_remote.as_deref() {
            None => pitr_restore::run(&o, s, p).await?,
            Some("latest") => {
                crate::backup::offsite::pitr::restore(&o, a.identity.as_deref(), s, p).await?
            }
            Some(name) => {
                return Err(crate::error::Fail::new(format!(
                    "`{name}` names a dump, and `--to-time`, `--to-lsn` and `--to-latest` pick the base backup themselves"
                ))
                .hint("pass `--from-remote` without a name to recover from the store")
                .code(crate::error::EXIT_USAGE)
                .into())
            }
        };
        return Ok(match done {
            true => 0,
            false => 1,
        });
    }
    if a.from_remote.is_some() && a.file != "latest" {
        return Err(crate::error::Fail::new(format!(
            "`{}` is a local file, and `--from-remote` restores from the store",
            a.file
        ))
        .hint("name the remote backup with `--from-remote NAME` (`pgbox backup list --remote`)")
        .code(crate::error::EXIT_USAGE)
        .into());
    }
    let o = RestoreOptions {
        file: a.file,
        db: a.db,
        into: a.into,
        jobs: a.jobs,
        no_owner: a.no_owner,
        drop_old: a.drop_old,
        yes: a.yes,
        engine: ctx.global.engine.clone(),
    };
    let done = match &a.from_remote {
        Some(which) => {
            crate::backup::offsite::restore(&o, which, a.identity.as_deref(), s, p).await?
        }
        None => restore::run(&o, s, p).await?,
    };
    Ok(match done {
        true => 0,
        false => 1,
    })
}
