//! `pgbox restore`: flags into [`RestoreOptions`], one call into `backup::restore`
//! (checks, leftovers, confirmation, scratch database, swap).

use crate::backup::restore::{self, RestoreOptions};
use crate::cli::{GlobalArgs, RestoreArgs};
use crate::config::Settings;
use crate::printer::Printer;

pub async fn run(a: RestoreArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    let o = RestoreOptions {
        file: a.file,
        db: a.db,
        into: a.into,
        jobs: a.jobs,
        no_owner: a.no_owner,
        drop_old: a.drop_old,
        yes: a.yes,
        engine: g.engine.clone(),
    };
    Ok(match restore::run(&o, &s, p).await? {
        true => 0,
        false => 1,
    })
}
