//! One module per subcommand; `run` dispatches. Commands orchestrate only.
//!
//! Each command is an async function taking its args, the global flags and the
//! printer, and returning the process exit code. Engine work, storage, templates
//! and shared project operations live in the layers below.

mod backup;
mod build;
mod completions;
mod down;
mod generate;
mod init;
mod logs;
mod ls;
mod maintenance;
mod psql;
mod restore;
mod save;
mod schedule;
mod status;
mod up;
mod url;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::Settings;
use crate::engine::Engine;
use crate::printer::Printer;

pub type Outcome = anyhow::Result<u8>;

pub async fn run(cli: Cli, p: &Printer) -> Outcome {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(a, g, p).await,
        Command::Build(a) => build::run(a, g, p).await,
        Command::Up(a) => up::run(a, g, p).await,
        Command::Down(a) => down::run(a, g, p).await,
        Command::Status(_) => status::run(g, p).await,
        Command::Logs(a) => logs::run(a, g).await,
        Command::Psql(a) => psql::run(a, g).await,
        Command::Url(a) => url::run(a, g, p),
        Command::Ls(_) => ls::run(g, p).await,
        Command::Backup(a) => backup::run(a, g, p).await,
        Command::Restore(a) => restore::run(a, g, p).await,
        Command::Schedule(a) => schedule::run(a, g, p).await,
        Command::Generate(a) => generate::run(a, g, p),
        Command::Save(a) => save::run(a, g, p).await,
        Command::Maintenance(a) => maintenance::run(a, g, p).await,
        Command::Completions(a) => completions::completions(a),
        Command::Man => completions::man(),
    }
}

/// Settings and a connected engine: what most commands start from.
async fn load(g: &GlobalArgs) -> anyhow::Result<(Settings, Engine)> {
    let settings = Settings::load(g.config.as_deref())?;
    let engine = Engine::connect(g.engine.as_deref()).await?;
    Ok((settings, engine))
}
