//! `pgbox logs`: the server's log, optionally followed.

use super::Ctx;
use crate::cli::LogsArgs;
use crate::error::Fail;

pub async fn run(args: LogsArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    let name = s.container_name();
    if engine.inspect(&name).await?.is_none() {
        return Err(Fail::new(format!("container `{name}` does not exist"))
            .hint("run `pgbox up` first")
            .into());
    }
    engine
        .stream_logs(&name, args.follow, &args.tail, args.timestamps)
        .await?;
    Ok(0)
}
