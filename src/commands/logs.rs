//! `pgbox logs [server|pooler]`: the server's or the pooler's log, optionally followed.

use super::Ctx;
use crate::cli::{LogService, LogsArgs};
use crate::error::Fail;

pub async fn run(args: LogsArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    let name = match args.service {
        LogService::Server => s.container_name(),
        LogService::Pooler => crate::pooler::container_name(s),
    };
    if engine.inspect(&name).await?.is_none() {
        let hint = match args.service {
            LogService::Pooler if !s.pooler.enabled => {
                "set `enabled = true` under `[pooler]` in pgbox.toml, then run `pgbox up`"
            }
            _ => "run `pgbox up` first",
        };
        return Err(Fail::new(format!("container `{name}` does not exist"))
            .hint(hint)
            .into());
    }
    engine
        .stream_logs(&name, args.follow, &args.tail, args.timestamps)
        .await?;
    Ok(0)
}
