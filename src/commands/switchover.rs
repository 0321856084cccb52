//! `pgbox switchover [--to NODE]`: move a cluster's leader with Patroni.

use super::Ctx;
use crate::cli::SwitchoverArgs;
use crate::error::{Fail, EXIT_USAGE};

pub async fn run(args: SwitchoverArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    if !crate::cluster::enabled(s) {
        return Err(
            Fail::new("`switchover` needs a cluster: this project is one server")
                .hint(
                    "set `replicas = 1` or more under `[cluster]` in pgbox.toml and run `pgbox up`",
                )
                .code(EXIT_USAGE)
                .into(),
        );
    }
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "switchover")?;
    crate::cluster::ops::switchover(engine, s, args.to.as_deref(), ctx.p).await?;
    Ok(0)
}
