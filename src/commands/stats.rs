//! `pgbox stats`: one screen on the server, or JSON with `--json` (see `observe::stats`).

use std::time::Duration;

use super::Ctx;
use crate::observe::{stats, Source};

pub async fn run(ctx: &Ctx<'_>) -> super::Outcome {
    let s = ctx.settings()?;
    // The server may answer on its port when the engine does not; stats goes on without
    // the container's numbers then.
    let engine = ctx.engine().await.ok().cloned();
    let src = Source::new(s, engine, "pgbox stats", Duration::from_secs(5))?;
    let report = stats::collect(&src).await?;
    stats::print(&report, ctx.p)?;
    Ok(0)
}
