//! `pgbox migrate` and its subcommands' arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub action: MigrateAction,

    /// Any PostgreSQL instead of the project's server (`postgres://user:pass@host:port/db`);
    /// prefer `DATABASE_URL`, which keeps the password out of process listings
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub url: Option<String>,

    /// The migrations folder [default: `[migrations] dir`, else `migrations`]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum MigrateAction {
    /// Write `<dir>/<UTC timestamp>_<name>.sql` with an up and a down section
    New(MigrateNewArgs),
    /// Apply pending migrations in version order, after a snapshot
    Up(MigrateUpArgs),
    /// Show each migration: applied or pending, when, how long, checksum (`--json`)
    Status(MigrateStatusArgs),
    /// Run down sections, newest first (the last one, or down to `--to`)
    Down(MigrateDownArgs),
    /// Record the checksums of edited applied files, after showing the diff
    Repair(MigrateYesArgs),
    /// Put the database back to the snapshot taken before the last `up`
    Rollback(MigrateYesArgs),
    /// Import the history table of dbmate, sqlx or golang-migrate
    Adopt(MigrateAdoptArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MigrateNewArgs {
    /// What the migration does, e.g. `create users` (becomes `create_users`)
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateUpArgs {
    /// Apply up to and including this version
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,

    /// Print what would be applied; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Do not take the snapshot `rollback` returns to
    #[arg(long)]
    pub no_snapshot: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateStatusArgs {}

#[derive(Debug, Clone, Args)]
pub struct MigrateDownArgs {
    /// Revert every migration newer than this version (`0`: all)
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,

    /// Print what would be reverted; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateYesArgs {
    /// Confirm without asking
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateAdoptArgs {
    /// The tool whose history table is imported
    #[arg(long, value_enum)]
    pub from: crate::migrate::adopt::Source,

    /// Its history table [default: `schema_migrations`, for sqlx `_sqlx_migrations`]
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
}
