//! The arguments of the commands that handle data and deployment: `backup` (and
//! its `list`, `verify`, `prune`), `restore`, `generate` and `schedule`. Split from
//! the rest of the command-line surface only to keep each file readable; the domain
//! enums they use (`Format`, `Compression`, `GenerateKind`, `DeployEnv`,
//! `Mechanism`) derive `ValueEnum` themselves.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::backup::{Compression, Format};
use crate::deploy::{DeployEnv, GenerateKind};
use crate::schedule::Mechanism;

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

    /// A base backup for point-in-time recovery (pg_basebackup, checked with
    /// pg_verifybackup) into `<backup dir>/base/`; needs `[backup] pitr = true`
    #[arg(long, conflicts_with_all = ["db", "all", "format", "compress", "level", "output"])]
    pub base: bool,

    /// Stream the dump straight to `[backup.remote]` (encrypted with `encrypt_to`),
    /// keeping no local copy
    #[arg(long, conflicts_with_all = ["output", "base", "verify"])]
    pub remote_only: bool,

    /// Keep the backup here only, even with `[backup.remote]` configured
    #[arg(long, conflicts_with = "remote_only")]
    pub local_only: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackupAction {
    /// List backups: time, database, size, age, verified
    List(ListArgs),
    /// Check a backup's checksum and run pg_restore --list on it
    Verify(VerifyArgs),
    /// Delete backups the retention policy does not keep (asks first)
    Prune(PruneArgs),
    /// Ship every base backup and archived WAL file not yet off-site (PITR)
    Sync(SyncArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// To `[backup.remote]` (encrypted with `encrypt_to`); the only destination
    #[arg(long, required = true)]
    pub remote: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// The backups in `[backup.remote]` instead of the backup folder
    #[arg(long)]
    pub remote: bool,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Backup file, or `latest` (with `--remote`: a remote backup's name, or `latest`)
    #[arg(default_value = "latest", value_name = "FILE|latest")]
    pub file: String,

    /// Verify a backup in `[backup.remote]`: its stored bytes against the manifest
    /// (no key needed); with `--deep`, also downloaded, decrypted and test-restored
    #[arg(long, conflicts_with = "pitr")]
    pub remote: bool,

    /// The age identity file that decrypts the backup (for `--remote --deep`)
    #[arg(long, value_name = "FILE", requires = "remote")]
    pub identity: Option<PathBuf>,

    /// Also restore into a scratch database and compare row counts per table
    #[arg(long)]
    pub deep: bool,

    /// Check the WAL archive instead: no gap from any base backup to the newest
    /// segment, every recorded sha256; prints the recoverable window
    #[arg(long, conflicts_with = "deep")]
    pub pitr: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Prune `[backup.remote]` by its own policy (`[backup.remote] keep_*`) instead
    #[arg(long)]
    pub remote: bool,
    /// Delete without asking
    #[arg(short, long)]
    pub yes: bool,
    /// Show what would be deleted and delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("pitr_target").args(["to_time", "to_lsn", "to_latest"])))]
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

    /// Restore a backup from `[backup.remote]`: `latest` or a name from
    /// `pgbox backup list --remote`; with `--to-*`, recover from the base backups
    /// and WAL shipped by `backup sync --remote` (no name)
    #[arg(long, value_name = "NAME|latest", num_args = 0..=1, default_missing_value = "latest")]
    pub from_remote: Option<String>,

    /// The age identity file (private key) that decrypts an encrypted backup
    #[arg(long, value_name = "FILE", requires = "from_remote")]
    pub identity: Option<PathBuf>,

    /// Point-in-time recovery to this moment (UTC unless a zone is given:
    /// `2026-11-27 14:02:00`, `2026-11-27 15:02:00+01:00`); needs `[backup] pitr`
    #[arg(long, value_name = "TIME", conflicts_with_all = PITR_CONFLICTS)]
    pub to_time: Option<String>,

    /// Point-in-time recovery to this WAL position (`0/3000060`)
    #[arg(long, value_name = "LSN", conflicts_with_all = PITR_CONFLICTS, conflicts_with = "to_time")]
    pub to_lsn: Option<String>,

    /// Point-in-time recovery to the newest archived WAL
    #[arg(long, conflicts_with_all = PITR_CONFLICTS, conflicts_with_all = ["to_time", "to_lsn"])]
    pub to_latest: bool,

    /// Point-in-time recovery: how long replaying the WAL may take, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub timeout: u64,

    /// Point-in-time recovery into a new cluster beside the project's, on another
    /// port, to inspect and copy rows back; the project's data and server are untouched
    #[arg(long, requires = "pitr_target", conflicts_with_all = PITR_CONFLICTS)]
    pub into_new: bool,

    /// With `--into-new`: the host port of the recovered copy (default: the first
    /// free one after the project's)
    #[arg(long, value_name = "N", requires = "into_new")]
    pub port: Option<u16>,

    /// Remove the copy `--into-new` made: stop its container and delete its data
    #[arg(long, conflicts_with_all = DISCARD_CONFLICTS)]
    pub discard_new: bool,
}

/// What `--discard-new` does not take.
const DISCARD_CONFLICTS: [&str; 10] = [
    "file",
    "db",
    "into",
    "jobs",
    "no_owner",
    "drop_old",
    "to_time",
    "to_lsn",
    "to_latest",
    "into_new",
];

/// The dump-restore flags a point-in-time restore does not take.
const PITR_CONFLICTS: [&str; 5] = ["db", "into", "jobs", "no_owner", "drop_old"];

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// What to write
    #[arg(value_enum)]
    pub what: GenerateKind,
    /// Environment: isolated names, volumes, ports and password per environment
    #[arg(long, value_enum, default_value = "dev")]
    pub env: DeployEnv,
    /// Output folder (default: deploy/<env>, for k8s deploy/k8s-<env>, in the project folder)
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Overwrite files that differ (a summary of the changes is shown)
    #[arg(long)]
    pub force: bool,
    /// Publish the port in prod too (dev always publishes it on the bind address)
    #[arg(long)]
    pub publish: bool,
    /// k8s: the pgbox backup the restore Job loads: a file or `latest` (default: the newest)
    #[arg(long, value_name = "FILE")]
    pub backup: Option<String>,
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
