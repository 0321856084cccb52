//! `pgbox save`: in fallback mode, a consistent tarball of the running cluster now;
//! with `-o PATH`, a consistent copy anywhere, in any storage mode (`server::save`).

use super::Ctx;
use crate::cli::SaveArgs;

pub async fn run(args: SaveArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    crate::cluster::refuse(s, "save")?;
    let output = match &args.output {
        Some(out) => Some(crate::config::absolute(&std::env::current_dir()?, out)),
        None => None,
    };
    crate::server::save::save(engine, s, output.as_deref(), p).await?;
    Ok(0)
}
