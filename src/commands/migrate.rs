//! `pgbox migrate`: resolve where the files are and which server, then one call
//! into `migrate`.
//!
//! Without `--url` the project's server is used (it must be running); with one, a
//! pgbox.toml is optional and read only for `[migrations]`.

use super::Ctx;
use crate::cli::{MigrateAction, MigrateArgs};
use crate::migrate::table::Table;
use crate::migrate::{self, DownOptions, Env, UpOptions};
use crate::pgclient::Target;

pub async fn run(args: MigrateArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let cwd = std::env::current_dir()?;
    let has_project = ctx.global.config.is_some() || crate::config::find_config(None, &cwd).is_ok();
    let settings = match (&args.url, has_project) {
        (Some(_), false) => None,
        _ => Some(ctx.settings()?),
    };
    let dir = match (&args.dir, settings) {
        (Some(d), _) => cwd.join(d),
        (None, Some(s)) => s.migrations_dir.clone(),
        (None, None) => cwd.join("migrations"),
    };
    if let MigrateAction::New(a) = &args.action {
        migrate::new(&dir, &a.name, p)?;
        return Ok(0);
    }
    let table = Table::parse(settings.map_or("pgbox.schema_version", |s| &s.migrations_table));
    let target = match (&args.url, settings) {
        (Some(url), _) => Target::url(url)?,
        (None, Some(s)) => {
            crate::container::ctl::ready(ctx.engine().await?, s).await?;
            Target::own(s, ctx.global.engine.clone())?
        }
        (None, None) => unreachable!("settings are loaded without a URL"),
    };
    let env = Env { dir, table, target };
    let json = ctx.global.json;
    let ok = match args.action {
        MigrateAction::New(_) => unreachable!("handled above"),
        MigrateAction::Up(a) => {
            let o = UpOptions {
                to: a.to,
                dry_run: a.dry_run,
                no_snapshot: a.no_snapshot,
            };
            migrate::up(&env, &o, p).await.map(|_| true)?
        }
        MigrateAction::Status(_) => migrate::report::status(&env, json, p).await?,
        MigrateAction::Down(a) => {
            let o = DownOptions {
                to: a.to,
                dry_run: a.dry_run,
            };
            migrate::down(&env, &o, p).await.map(|_| true)?
        }
        MigrateAction::Repair(a) => migrate::report::repair(&env, a.yes, p)
            .await
            .map(|_| true)?,
        MigrateAction::Rollback(a) => migrate::rollback(&env, a.yes, p).await?,
        MigrateAction::Adopt(a) => {
            migrate::adopt::adopt(&env, a.from, a.table.as_deref(), p).await?;
            true
        }
    };
    Ok(if ok { 0 } else { 1 })
}
