//! `pgbox logs [server|pooler|NODE]`: the log of the server (in a cluster, the leader),
//! the pooler, or one cluster node, optionally followed.

use super::Ctx;
use crate::cli::LogsArgs;
use crate::error::Fail;

pub async fn run(args: LogsArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    let cluster = crate::cluster::enabled(s);
    let name = match args.target.as_deref() {
        Some("pooler") => crate::pooler::container_name(s),
        None | Some("server") if cluster => crate::container::patroni::leader(engine, s).await?,
        None | Some("server") => s.container_name(),
        Some(n) if cluster => crate::cluster::resolve_node(s, n)?,
        Some(n) => {
            return Err(
                Fail::new(format!("no log named `{n}`: this project is one server"))
                    .hint("run `pgbox logs` for the server or `pgbox logs pooler` for the pooler")
                    .code(crate::error::EXIT_USAGE)
                    .into(),
            )
        }
    };
    if engine.inspect(&name).await?.is_none() {
        let hint = if args.target.as_deref() == Some("pooler") && !s.pooler.enabled {
            "set `enabled = true` under `[pooler]` in pgbox.toml, then run `pgbox up`"
        } else {
            "run `pgbox up` first"
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
