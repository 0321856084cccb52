//! `pgbox url`: the connection string on stdout and nothing else.
//!
//! It reads only pgbox.toml (and the password file with `--with-password`), so it
//! answers in milliseconds and works while the engine is down.

use super::Ctx;
use crate::cli::UrlArgs;
use crate::{connection, secrets};

pub fn run(args: UrlArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let s = ctx.settings()?;
    let password = if args.with_password {
        Some(secrets::read_password(s)?)
    } else {
        None
    };
    if args.pooled && args.replica {
        return Err(
            crate::error::Fail::new("`--pooled` and `--replica` cannot be used together")
                .hint("pick one of them")
                .code(crate::error::EXIT_USAGE)
                .into(),
        );
    }
    if crate::cluster::enabled(s) && !args.pooled {
        p.data(crate::cluster::url(s, password.as_deref(), args.replica));
        return Ok(0);
    }
    if args.replica {
        return Err(crate::error::Fail::new(
            "`--replica` needs a cluster: this project is one server",
        )
        .hint("set `replicas = 1` or more under `[cluster]` in pgbox.toml")
        .code(crate::error::EXIT_USAGE)
        .into());
    }
    if args.pooled {
        if !s.pooler.enabled {
            return Err(crate::error::Fail::new("the pooler is not enabled")
                .hint("set `enabled = true` under `[pooler]` in pgbox.toml, then run `pgbox up`")
                .code(crate::error::EXIT_USAGE)
                .into());
        }
        p.data(connection::pooled_url(s, password.as_deref()));
    } else {
        p.data(connection::url(s, password.as_deref()));
    }
    Ok(0)
}
