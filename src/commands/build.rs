//! `pgbox build`: build the PostgreSQL image from the embedded templates.

use super::Ctx;
use crate::cli::BuildArgs;
use crate::container::image::ensure_image;

pub async fn run(args: BuildArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    let tag = ensure_image(engine, s, p, args.force).await?;
    p.data(tag);
    Ok(0)
}
