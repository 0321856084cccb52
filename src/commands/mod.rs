//! One module per subcommand; `run` dispatches. Commands orchestrate only.
//!
//! Each command is a function taking its args and the [`Ctx`], turning the args
//! into a domain module's options and calling it, and returning the process exit
//! code. The context holds the global flags and the printer, and resolves the
//! settings and connects the engine once, on first use, so a command that needs
//! neither (`url` needs no engine, `completions` nothing) pays for neither.

mod backup;
mod build;
mod completions;
mod down;
mod generate;
mod init;
mod logs;
mod ls;
mod maintenance;
mod metrics;
mod migrate;
mod psql;
mod restore;
mod save;
mod schedule;
mod stats;
mod status;
mod switchover;
mod top;
mod up;
mod upgrade;
mod url;

use std::sync::OnceLock;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::Settings;
use crate::engine::Engine;
use crate::printer::Printer;

pub type Outcome = anyhow::Result<u8>;

/// What every command starts from (see the module doc).
pub struct Ctx<'a> {
    pub global: &'a GlobalArgs,
    pub p: &'a Printer,
    settings: OnceLock<Settings>,
    engine: tokio::sync::OnceCell<Engine>,
}

impl<'a> Ctx<'a> {
    pub fn new(global: &'a GlobalArgs, p: &'a Printer) -> Self {
        Ctx {
            global,
            p,
            settings: OnceLock::new(),
            engine: tokio::sync::OnceCell::new(),
        }
    }

    /// The project's settings, resolved once (flags > `PGBOX_*` > pgbox.toml > user
    /// config > defaults).
    pub fn settings(&self) -> anyhow::Result<&Settings> {
        if let Some(s) = self.settings.get() {
            return Ok(s);
        }
        let s = Settings::load(self.global.config.as_deref())?;
        Ok(self.settings.get_or_init(|| s))
    }

    /// The engine, discovered and connected once.
    pub async fn engine(&self) -> anyhow::Result<&Engine> {
        Ok(self
            .engine
            .get_or_try_init(|| Engine::connect(self.global.engine.as_deref()))
            .await?)
    }
}

pub async fn run(cli: Cli, p: &Printer) -> Outcome {
    let ctx = Ctx::new(&cli.global, p);
    let ctx = &ctx;
    match cli.command {
        Command::Init(a) => init::run(a, ctx).await,
        Command::Build(a) => build::run(a, ctx).await,
        Command::Up(a) => up::run(a, ctx).await,
        Command::Down(a) => down::run(a, ctx).await,
        Command::Status(_) => status::run(ctx).await,
        Command::Logs(a) => logs::run(a, ctx).await,
        Command::Psql(a) => psql::run(a, ctx).await,
        Command::Url(a) => url::run(a, ctx),
        Command::Ls(_) => ls::run(ctx).await,
        Command::Backup(a) => backup::run(a, ctx).await,
        Command::Restore(a) => restore::run(a, ctx).await,
        Command::Schedule(a) => schedule::run(a, ctx).await,
        Command::Generate(a) => generate::run(a, ctx),
        Command::Save(a) => save::run(a, ctx).await,
        Command::Maintenance(a) => maintenance::run(a, ctx).await,
        Command::Upgrade(a) => upgrade::run(a, ctx).await,
        Command::Migrate(a) => migrate::run(a, ctx).await,
        Command::Stats(_) => stats::run(ctx).await,
        Command::Top(_) => top::run(ctx).await,
        Command::Metrics(a) => metrics::run(a, ctx).await,
        Command::Switchover(a) => switchover::run(a, ctx).await,
        Command::Completions(a) => completions::completions(a),
        Command::Man => completions::man(),
    }
}
