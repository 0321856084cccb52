//! `pgbox init`: write pgbox.toml, generate the password, prepare the data folder.
//!
//! The command reads a password from stdin when asked (`--password-stdin`) and
//! hands everything to `project::init`, which `pgbox up` uses too.

use std::io::{IsTerminal, Read};

use super::Ctx;
use crate::cli::InitArgs;
use crate::error::{Fail, EXIT_USAGE};
use crate::project::{self, InitOptions};

pub async fn run(args: InitArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let password = if args.password_stdin {
        if std::io::stdin().is_terminal() {
            return Err(Fail::new(
                "`--password-stdin` expects the password on stdin, not a terminal",
            )
            .hint("run `printf %s \"$PASSWORD\" | pgbox init --password-stdin`")
            .code(EXIT_USAGE)
            .into());
        }
        let mut buf = String::new();
        std::io::stdin().read_to_string(&mut buf)?;
        Some(buf.strip_suffix('\n').unwrap_or(&buf).to_string())
    } else {
        None
    };
    let options = InitOptions {
        name: args.name,
        port: args.port,
        bind: args.bind,
        storage: args.storage,
        data_dir: args.data_dir,
        base_image: args.base_image,
        pg_version: args.pg_version,
        password,
        tls: args.tls,
        cert: args.cert,
        key: args.key,
        yes: args.yes,
        force: args.force,
        config: ctx.global.config.clone(),
        engine: ctx.global.engine.clone(),
    };
    project::init(options, p).await?;
    Ok(0)
}
