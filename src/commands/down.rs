//! `pgbox down`: graceful stop, optionally removing the container or the data.
//!
//! Exit 1 when a `--purge` is declined at the prompt; the work is `server::down`.

use super::Ctx;
use crate::cli::DownArgs;
use crate::server::down::{down, Down, DownOptions};

pub async fn run(args: DownArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    let options = DownOptions {
        rm: args.rm,
        purge: args.purge,
        yes: args.yes,
    };
    let down = if crate::cluster::enabled(s) {
        crate::cluster::up::down(engine, s, options, p).await?
    } else {
        down(engine, s, options, p).await?
    };
    Ok(match down {
        Down::Done => 0,
        Down::Declined => 1,
    })
}
