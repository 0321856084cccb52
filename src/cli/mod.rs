//! Command-line surface: clap derive structs only, one args struct per subcommand.
//!
//! Nothing here acts; `commands::run` dispatches on what clap parsed. The whole
//! surface hangs off [`Cli`] (the data commands' structs live in `data`), so
//! `completions` and `man` are generated from it and the help snapshots read it as
//! users will.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{StorageMode, TlsMode};
use crate::printer::ColorChoice;

mod data;
mod migrate;
mod observe;
pub use data::*;
pub use migrate::*;
pub use observe::*;

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
#[command(next_help_heading = "Global options")]
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
    /// Move the data to a newer PostgreSQL major, with a backup first and a rollback
    Upgrade(UpgradeArgs),
    /// Numbered SQL migrations: new, up, status, down, repair, rollback, adopt
    Migrate(MigrateArgs),
    /// One screen on the server: load, sizes, vacuum, top queries, locks, backups, advice
    Stats(StatsArgs),
    /// A live view of sessions and queries, refreshed every second
    Top(TopArgs),
    /// Serve Prometheus metrics (postgres_exporter names plus `pgbox_*`) in the foreground
    Metrics(MetricsArgs),
    /// Cluster: move the leader to another node (`[cluster] replicas`)
    Switchover(SwitchoverArgs),
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

    /// Base image the PostgreSQL image is built from [default: a Debian release that
    /// ships the major; official `postgres:<major>` images work too]
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// PostgreSQL major version: 15, 17 or 18 (another needs --base-image) [default: 15]
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
#[command(group(clap::ArgGroup::new("action").args(["to", "finalize", "rollback"])))]
pub struct UpgradeArgs {
    /// The major to move to (15, 17 or 18; newer than the current one)
    #[arg(long, value_name = "MAJOR")]
    pub to: Option<u32>,

    /// How to make the new cluster: dump (safe, default) or pg_upgrade's link, clone or copy
    #[arg(long, value_enum, default_value_t = crate::upgrade::Method::Dump)]
    pub method: crate::upgrade::Method,

    /// Run the checks only, print the report, change nothing
    #[arg(long, requires = "to")]
    pub check: bool,

    /// End the upgrade: delete the old data (asks first)
    #[arg(long)]
    pub finalize: bool,

    /// Return to the old major and the old data (asks first; drops writes made since)
    #[arg(long)]
    pub rollback: bool,

    /// Base image of the new major when pgbox.toml names one pgbox cannot map
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// Parallel jobs for pg_dump and pg_restore (default: the number of CPUs, at most 4)
    #[arg(long, value_name = "N")]
    pub jobs: Option<u32>,

    /// Confirm without asking
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Seconds to wait for each server to accept connections
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
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
    /// Whose log: `server` (default; in a cluster, the leader), `pooler`, or a cluster
    /// node (`node1`, `1`, `etcd`)
    #[arg(value_name = "SERVICE|NODE")]
    pub target: Option<String>,

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

    /// The URL through the pooler (`[pooler]` in pgbox.toml)
    #[arg(long)]
    pub pooled: bool,
    /// Cluster: a URL that reaches a read-only replica
    #[arg(long)]
    pub replica: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SwitchoverArgs {
    /// The node to lead next (`node1` or `1`); default: the synchronous standby, or
    /// any healthy replica
    #[arg(long, value_name = "NODE")]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LsArgs {}

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
