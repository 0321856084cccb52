//! `pgbox top`: the live view (see `observe::top`); `stats` once without a terminal.

use std::time::Duration;

use super::Ctx;
use crate::observe::{top, Source};

pub async fn run(ctx: &Ctx<'_>) -> super::Outcome {
    let s = ctx.settings()?;
    let engine = ctx.engine().await.ok().cloned();
    let src = Source::new(s, engine, "pgbox top", Duration::from_secs(5))?;
    top::run(src, ctx.p).await
}
