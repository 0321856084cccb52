//! `pgbox up`: build if needed, create or start the container, wait until ready.
//!
//! In a folder without pgbox.toml it initialises the folder first
//! (`project::load_or_init`); the rest is `server::up::up`.

use std::time::Duration;

use super::Ctx;
use crate::cli::UpArgs;
use crate::project;
use crate::server::up::{up, UpOptions};

pub async fn run(args: UpArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let (s, engine) = project::load_or_init(
        ctx.global.config.as_deref(),
        ctx.global.engine.as_deref(),
        p,
    )
    .await?;
    let options = UpOptions {
        timeout: Duration::from_secs(args.timeout),
        dry_run: args.dry_run,
    };
    if crate::cluster::enabled(&s) {
        crate::cluster::up::up(&engine, &s, options, p).await?;
        return Ok(0);
    }
    up(&engine, &s, options, p).await?;
    Ok(0)
}
