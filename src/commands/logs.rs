//! `pgbox logs`: the server's log, optionally followed.

use super::Ctx;
use crate::cli::LogsArgs;
use crate::error::Fail;

pub async fn run(args: LogsArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    let name = match (&args.node, crate::cluster::enabled(s)) {
        (Some(n), true) => crate::cluster::resolve_node(s, n)?,
        (None, true) => crate::cluster::api::leader(engine, s).await?,
        (Some(_), false) => {
            return Err(
                Fail::new("a NODE is only for a cluster: this project is one server")
                    .hint("run `pgbox logs` without it")
                    .code(crate::error::EXIT_USAGE)
                    .into(),
            )
        }
        (None, false) => s.container_name(),
    };
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
