//! `pgbox upgrade`: to a newer major (`--to`, `--check`), then `--finalize` or
//! `--rollback`; the whole operation is `upgrade::upgrade`.

use std::time::Duration;

use super::Ctx;
use crate::cli::UpgradeArgs;
use crate::upgrade::{upgrade, UpgradeOptions};

pub async fn run(args: UpgradeArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    crate::cluster::refuse(s, "upgrade")?;
    let options = UpgradeOptions {
        to: args.to,
        method: args.method,
        check: args.check,
        finalize: args.finalize,
        rollback: args.rollback,
        base_image: args.base_image,
        jobs: args.jobs,
        yes: args.yes,
        engine: ctx.global.engine.clone(),
        timeout: Duration::from_secs(args.timeout),
    };
    upgrade(engine, s, options, ctx.p).await?;
    Ok(0)
}
