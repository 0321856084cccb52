//! `pgbox metrics`: the Prometheus endpoint, in the foreground (see `observe::metrics`).

use std::time::Duration;

use super::Ctx;
use crate::cli::MetricsArgs;
use crate::observe::metrics::{self, Options};
use crate::observe::{service, Source};

pub async fn run(args: MetricsArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let o = Options {
        listen: args.listen,
        allow_remote: args.allow_remote,
    };
    metrics::check_listen(&o)?;
    let s = ctx.settings()?;
    if args.systemd_unit {
        let pgbox = std::env::current_exe()?;
        let listen = o.listen.to_string();
        ctx.p.data(service::render(&service::UnitSpec {
            project: &s.project,
            pgbox: &pgbox,
            config: &s.config_path,
            engine: ctx.global.engine.as_deref(),
            listen: &listen,
            allow_remote: o.allow_remote,
        }));
        return Ok(0);
    }
    let engine = ctx.engine().await.ok().cloned();
    // A scrape must not hang on a server that does not answer: pg_up 0 within 2 s.
    let src = Source::new(s, engine, "pgbox metrics", Duration::from_secs(2))?;
    metrics::serve(src, &o, ctx.p).await?;
    Ok(0)
}
