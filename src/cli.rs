//! Command-line surface: clap derive structs only, one args struct per subcommand.
//!
//! Nothing here acts; `commands::run` dispatches on what clap parsed. Keeping the
//! whole surface in one file lets `completions` and `man` be generated from it
//! and the help snapshots read it as users will.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backup::{Compression, Format};
use crate::config::{StorageMode, TlsMode};
use crate::deploy::{DeployEnv, GenerateKind};
use crate::printer::ColorChoice;
use crate::schedule::Mechanism;

/// PostgreSQL in a container, with your data safe, in one command.
#[derive(Debug, Parser)]
#[command(
    name = "pgbox",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Print nothing but data and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail (engine calls, build output)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colours on stderr
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Machine-readable JSON on stdout, for commands that report
    #[arg(long, global = true)]
    pub json: bool,

    /// Use this pgbox.toml instead of searching upwards from the current folder
    #[arg(long, global = true, value_name = "FILE", env = "PGBOX_CONFIG")]
    pub config: Option<PathBuf>,

    /// Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`
    #[arg(long, global = true, value_name = "ENGINE", env = "PGBOX_ENGINE")]
    pub engine: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create pgbox.toml, a generated password and the data folder
    Init(InitArgs),
    /// Build the PostgreSQL image from the embedded templates
    Build(BuildArgs),
    /// Start PostgreSQL and wait until it accepts connections
    Up(UpArgs),
    /// Stop PostgreSQL gracefully; data is kept
    Down(DownArgs),
    /// Show the state of this project's server (exit 0 only when healthy)
    Status(StatusArgs),
    /// Show the server's log
    Logs(LogsArgs),
    /// Open psql inside the container, or run it with arguments
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Psql(PsqlArgs),
    /// Print the connection string on stdout
    Url(UrlArgs),
    /// List every pgbox-managed container on this host
    Ls(LsArgs),
    /// Dump a database to the backup folder; `list`, `verify` and `prune` manage backups
    Backup(BackupArgs),
    /// Restore a backup: into a scratch database first, swapped in only on success
    Restore(RestoreArgs),
    /// Scheduled backups with cron or systemd: install, list, status, remove, run
    Schedule(ScheduleArgs),
    /// Write deployment files: compose, podman, quadlet, kube, containerfile, or all
    Generate(GenerateArgs),
    /// Fallback storage: save the running cluster to pgsql.tar.zst now
    Save(SaveArgs),
    /// Stop PostgreSQL but keep the container up for repairs (`on`), or resume (`off`)
    Maintenance(MaintenanceArgs),
    /// Print a shell completion script on stdout
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout
    Man,
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Project name, used for the container and volume names
    #[arg(long)]
    pub name: Option<String>,

    /// Host port PostgreSQL is published on (default: 5432, or the next free one)
    #[arg(long)]
    pub port: Option<u16>,

    /// Address the port is published on
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,

    /// Storage mode
    #[arg(long, value_enum)]
    pub storage: Option<StorageMode>,

    /// Data folder for direct mode, relative to the project folder
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Base image the PostgreSQL image is built from
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// PostgreSQL major version
    #[arg(long, value_name = "MAJOR")]
    pub pg_version: Option<u32>,

    /// Read the password from stdin instead of generating one
    #[arg(long)]
    pub password_stdin: bool,

    /// TLS for connections from outside the container
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<TlsMode>,

    /// With `--tls files`: the certificate (chain) file, e.g. fullchain.pem
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// With `--tls files`: the private key file, e.g. privkey.pem
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Accept defaults for everything not given as a flag
    #[arg(short, long)]
    pub yes: bool,

    /// Rewrite pgbox.toml even when it exists (the password and data are kept)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Build even when an image with the same content hash exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Seconds to wait for PostgreSQL to accept connections
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,

    /// Validate the image, settings and data location in a throwaway container; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Remove the container after stopping it (data is kept)
    #[arg(long)]
    pub rm: bool,

    /// Remove the container and delete the data (asks first)
    #[arg(long)]
    pub purge: bool,

    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SaveArgs {
    /// Write a consistent copy of the running cluster to PATH instead (pg_basebackup tar,
    /// zstd; any storage mode); for getting the data out when the data folder is full
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep following the log
    #[arg(short, long)]
    pub follow: bool,

    /// Number of lines from the end (`all` for everything)
    #[arg(short = 'n', long, default_value = "200", value_name = "N")]
    pub tail: String,

    /// Prefix each line with the engine's timestamp
    #[arg(short, long)]
    pub timestamps: bool,
}

/// Every argument after `psql` belongs to psql: its `-h`, `-q`, `-v` and `--help`
/// would otherwise be read as pgbox's own. So an optional leading `--db NAME` is
/// left to pgbox and a `--` goes in before the rest (unless the user wrote one);
/// `pgbox help psql` still shows pgbox's help for the command.
pub fn psql_passthrough<I: IntoIterator<Item = std::ffi::OsString>>(
    args: I,
) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = args.into_iter().collect();
    let mut i = 1;
    while let Some(a) = v.get(i).and_then(|a| a.to_str()) {
        match a {
            "--" => return v,
            "--config" | "--engine" | "--color" => i += 2,
            a if a.starts_with('-') => i += 1,
            "psql" => break,
            _ => return v,
        }
    }
    i += 1;
    match v.get(i).and_then(|a| a.to_str()) {
        Some("--db") => i += 2,
        Some(a) if a.starts_with("--db=") => i += 1,
        _ => {}
    }
    if i < v.len() && v[i] != "--" {
        v.insert(i, "--".into());
    }
    v
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Every argument after `psql` goes to psql as it is (`-h`, `-q`, `-v`, `--help` \
                  included); only a leading `--db NAME` is pgbox's. This help: `pgbox help psql`"
)]
pub struct PsqlArgs {
    /// Database to connect to (default: the project database); must come first
    #[arg(long, value_name = "NAME")]
    pub db: Option<String>,

    /// Arguments passed to psql as they are, e.g. `-h host -c 'select 1'`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PSQL ARGS"
    )]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct UrlArgs {
    /// Include the password in the URL
    #[arg(long)]
    pub with_password: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LsArgs {}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,

    #[command(flatten)]
    pub create: BackupCreateArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BackupCreateArgs {
    /// Database to dump (default: the project database)
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub db: Option<String>,

    /// The globals (roles) and every database, one file each
    #[arg(long)]
    pub all: bool,

    /// Dump format (default: pgbox.toml `[backup] format`, else custom)
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Compression, applied inside the container (default: pgbox.toml `[backup] compress`, else zstd)
    #[arg(long, value_enum)]
    pub compress: Option<Compression>,

    /// Compression level (zstd 1-19, default 3; gzip 1-9, default 6; or pgbox.toml `[backup] level`)
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,

    /// Output file or folder (`-` for stdout); default: the backup folder
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Verify the new backup with pg_restore --list right away
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackupAction {
    /// List backups: time, database, size, age, verified
    List,
    /// Check a backup's checksum and run pg_restore --list on it
    Verify(VerifyArgs),
    /// Delete backups the retention policy does not keep (asks first)
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Backup file, or `latest`
    #[arg(default_value = "latest", value_name = "FILE|latest")]
    pub file: String,

    /// Also restore into a scratch database and compare row counts per table
    #[arg(long)]
    pub deep: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Delete without asking
    #[arg(short, long)]
    pub yes: bool,
    /// Show what would be deleted and delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// Backup file or directory dump, or `latest`
    #[arg(default_value = "latest", value_name = "FILE|latest")]
    pub file: String,

    /// Database to replace (default: the one in the backup's manifest, else the project database)
    #[arg(long, value_name = "NAME", conflicts_with = "into")]
    pub db: Option<String>,

    /// Restore into a new database NEW instead, next to the existing ones
    #[arg(long, value_name = "NEW")]
    pub into: Option<String>,

    /// Parallel pg_restore jobs (default: the number of CPUs)
    #[arg(long, value_name = "N")]
    pub jobs: Option<u32>,

    /// Do not restore ownership (for roles that do not exist here)
    #[arg(long)]
    pub no_owner: bool,

    /// Drop the replaced database instead of keeping it renamed aside
    #[arg(long)]
    pub drop_old: bool,

    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// What to write
    #[arg(value_enum)]
    pub what: GenerateKind,
    /// Environment: isolated names, volumes, ports and password per environment
    #[arg(long, value_enum, default_value = "dev")]
    pub env: DeployEnv,
    /// Output folder (default: deploy/<env> in the project folder)
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Overwrite files that differ (a summary of the changes is shown)
    #[arg(long)]
    pub force: bool,
    /// Publish the port in prod too (dev always publishes it on the bind address)
    #[arg(long)]
    pub publish: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub action: ScheduleAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ScheduleAction {
    /// Install a timer (systemd) or crontab entry that backs up, verifies and prunes
    Install(ScheduleInstallArgs),
    /// Every pgbox schedule on this host (this user's and the system's)
    List,
    /// Last run, next run and the newest good backup; non-zero when something is wrong
    Status,
    /// Remove this project's crontab entry or timer
    Remove(ScheduleRemoveArgs),
    /// What the timer runs: backup, verify, prune, record (no TTY, no prompts)
    Run(RetentionArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleInstallArgs {
    /// When: cron (`0 2 * * *`), OnCalendar (`*-*-* 02:00:00`, `Mon..Fri 03:30`) or @daily etc.
    #[arg(long, value_name = "EXPR", default_value = "0 2 * * *")]
    pub at: String,
    /// Mechanism: systemd when it runs as PID 1, else cron
    #[arg(long, value_enum, default_value = "auto")]
    pub using: Mechanism,
    /// Install for this user (the default)
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// Install system-wide (/etc/systemd/system or /etc/cron.d)
    #[arg(long)]
    pub system: bool,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// systemd: spread the start over up to this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub randomized_delay: Option<u64>,
    /// Print the exact files or crontab lines and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleRemoveArgs {
    /// Print what would be removed and remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RetentionArgs {
    /// Keep the N newest backups (default: pgbox.toml `[backup]`)
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep one backup a day for N days (default: pgbox.toml, else 7)
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep one backup a week for N weeks (default: pgbox.toml, else 4)
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep one backup a month for N months (default: pgbox.toml, else 6)
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct MaintenanceArgs {
    /// `on` stops PostgreSQL and keeps the container; `off` starts PostgreSQL again
    #[arg(value_enum)]
    pub action: OnOff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// Shell to generate for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> (GlobalArgs, PsqlArgs) {
        let cli = Cli::try_parse_from(psql_passthrough(args.iter().map(|a| a.into()))).unwrap();
        match cli.command {
            Command::Psql(p) => (cli.global, p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn psql_gets_every_argument_after_psql() {
        let (g, p) = parse(&[
            "pgbox", "-q", "--config", "x.toml", "psql", "-h", "db", "-v", "A=1", "-q", "--help",
        ]);
        assert!(g.quiet && g.verbose == 0);
        assert_eq!(p.args, ["-h", "db", "-v", "A=1", "-q", "--help"]);
        let (_, p) = parse(&["pgbox", "psql", "--db", "shop", "-c", "select 1"]);
        assert_eq!(
            (p.db.as_deref(), &p.args[..]),
            (Some("shop"), &["-c".to_string(), "select 1".into()][..])
        );
        let (_, p) = parse(&["pgbox", "psql", "--db=shop", "--", "-V"]);
        assert_eq!(
            (p.db.as_deref(), &p.args[..]),
            (Some("shop"), &["-V".to_string()][..])
        );
        let (_, p) = parse(&["pgbox", "psql"]);
        assert!(p.args.is_empty() && p.db.is_none());
        // Other commands and `help psql` are untouched.
        let a: Vec<std::ffi::OsString> =
            ["pgbox", "help", "psql"].iter().map(|a| a.into()).collect();
        assert_eq!(psql_passthrough(a.clone()), a);
    }
}
