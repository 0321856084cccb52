//! `pgbox restore`: flags into [`RestoreOptions`], one call into `backup::restore`
//! (checks, leftovers, confirmation, scratch database, swap).

use super::Ctx;
use crate::backup::restore::{self, RestoreOptions};
use crate::cli::RestoreArgs;

pub async fn run(a: RestoreArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let s = ctx.settings()?;
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
    Ok(match restore::run(&o, s, p).await? {
        true => 0,
        false => 1,
    })
}
