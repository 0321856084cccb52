//! The `pgbox.toml` schema: every section and key, all optional, with the checks
//! each value must pass while it is deserialised (so toml can name the line and
//! column of a bad value), and the value parsers (`15m`, `256MB`, names) that the
//! resolution in the parent module reuses.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

pub use super::dump::{Compression, Format};

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationsSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSection>,
}

/// `[pooler]`: a PgBouncer container beside the server (see `crate::pooler`).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolerSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PoolMode>,
    /// Server connections per (database, user) pair.
    #[serde(
        default,
        deserialize_with = "de_connections",
        skip_serializing_if = "Option::is_none"
    )]
    pub pool_size: Option<u32>,
    /// Client connections the pooler accepts in all.
    #[serde(
        default,
        deserialize_with = "de_connections",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_client_conn: Option<u32>,
    /// Published on `[network] bind`; 6432 by default.
    #[serde(
        default,
        deserialize_with = "de_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
}

/// PgBouncer's `pool_mode`: a server connection per transaction, or per client session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Transaction,
    Session,
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        })
    }
}

/// `[cluster]`: a Patroni + etcd cluster of 1 + `replicas` nodes (0: one server).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    #[serde(
        default,
        deserialize_with = "de_replicas",
        skip_serializing_if = "Option::is_none"
    )]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous: Option<bool>,
}

/// `[migrations]`: where `pgbox migrate` finds its files and records what ran.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MigrationsSection {
    /// The folder of `<version>_<name>.sql` files, relative to the project folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The version table, `schema.table` or `table` (in `public`).
    #[serde(
        default,
        deserialize_with = "de_table",
        skip_serializing_if = "Option::is_none"
    )]
    pub table: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    #[serde(
        default,
        deserialize_with = "de_project_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    #[serde(
        default,
        deserialize_with = "de_pg_version",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_nonempty",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_image: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_identifier",
        skip_serializing_if = "Option::is_none"
    )]
    pub database: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_identifier",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_connections",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connections: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub shared_buffers: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub work_mem: Option<String>,
    /// Container memory limit, e.g. "2GB"; shared_buffers defaults to a quarter of it.
    #[serde(
        default,
        deserialize_with = "de_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_extensions",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<Vec<String>>,
    /// Folder of *.sql, *.sql.gz and *.sh run once on a new cluster, in name order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_dir: Option<PathBuf>,
    /// Folder of your own *.conf files, mounted read-only and included last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf_dir: Option<PathBuf>,
    /// Any other postgresql.conf parameter.
    #[serde(
        default,
        deserialize_with = "de_pg_settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub settings: Option<toml::Table>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TlsMode>,
    /// Certificate (chain) file; for `files` mode, e.g. a Let's Encrypt fullchain.pem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// TLS for connections from outside the container (`[tls] mode`, `init --tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Off,
    SelfSigned,
    Files,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    #[serde(
        default,
        deserialize_with = "de_bind",
        skip_serializing_if = "Option::is_none"
    )]
    pub bind: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<StorageMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(
        default,
        deserialize_with = "de_volume",
        skip_serializing_if = "Option::is_none"
    )]
    pub volume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Fallback mode: how often a live copy is saved, e.g. "15m" (default: only at stop).
    #[serde(
        default,
        deserialize_with = "de_interval",
        skip_serializing_if = "Option::is_none"
    )]
    pub save_interval: Option<String>,
    /// Health check: minimum free MB on the data location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_free_mb: Option<u32>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// A shell command run when a scheduled backup fails (systemd `OnFailure=`, or by cron).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// Dump format of `pgbox backup` and `schedule run` (flags override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Compression, applied inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<Compression>,
    /// Compression level (zstd 1-19, gzip 1-9).
    #[serde(
        default,
        deserialize_with = "de_level",
        skip_serializing_if = "Option::is_none"
    )]
    pub level: Option<u32>,
    /// Point-in-time recovery: archive every completed WAL segment into `<dir>/wal/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<bool>,
    /// With `pitr`: the longest a written transaction waits to be archived, e.g. "60s".
    #[serde(
        default,
        deserialize_with = "de_interval",
        skip_serializing_if = "Option::is_none"
    )]
    pub archive_timeout: Option<String>,
    /// age recipients (`age1...`) or recipients files: every off-site copy is encrypted to them.
    #[serde(
        default,
        deserialize_with = "super::remote::de_recipients",
        skip_serializing_if = "Option::is_none"
    )]
    pub encrypt_to: Option<Vec<String>>,
    /// `[backup.remote]`: the S3-compatible store that backups are shipped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<super::remote::RemoteSection>,
}

/// Where PGDATA lives (`[storage] mode`, `init --storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    Auto,
    Direct,
    Fallback,
    Volume,
}

impl fmt::Display for StorageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageMode::Auto => "auto",
            StorageMode::Direct => "direct",
            StorageMode::Fallback => "fallback",
            StorageMode::Volume => "volume",
        })
    }
}

// ---- value checks, run inside deserialisation so errors carry a position ----

use super::check::de_with;

fn de_project_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| check_project_name(s))
}

fn de_level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    de_with(d, |v: &u32| {
        if (1..=19).contains(v) {
            Ok(())
        } else {
            Err(format!(
                "`{v}` is not a compression level (zstd takes 1-19, gzip 1-9)"
            ))
        }
    })
}

fn de_pg_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    de_with(d, |v: &u32| {
        if (10..=40).contains(v) {
            Ok(())
        } else {
            Err(format!(
                "`{v}` is not a PostgreSQL major version (10 or later, e.g. 15)"
            ))
        }
    })
}

fn de_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| {
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(())
        }
    })
}

fn de_identifier<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| check_identifier(s))
}

fn de_table<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| {
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 63
                && !p.starts_with(|c: char| c.is_ascii_digit())
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match s.split_once('.') {
            Some((a, b)) if ok(a) && ok(b) => Ok(()),
            None if ok(s) => Ok(()),
            _ => Err(format!(
                "`{s}` is not a table name (`schema.table` or `table`; lowercase letters, digits, `_`)"
            )),
        }
    })
}

fn de_bind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| check_bind(s))
}

fn de_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let v = i64::deserialize(d)?;
    check_port(v).map_err(serde::de::Error::custom).map(Some)
}

fn de_replicas<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = i64::deserialize(d)?;
    check_replicas(v)
        .map_err(serde::de::Error::custom)
        .map(Some)
}

/// The most replicas pgbox runs on one host (each is a full copy of the data).
pub const MAX_REPLICAS: u32 = 9;

fn check_replicas(v: i64) -> Result<u32, String> {
    match u32::try_from(v) {
        Ok(n) if n <= MAX_REPLICAS => Ok(n),
        Ok(_) => Err(format!(
            "`replicas` is `{v}`: at most {MAX_REPLICAS} replicas run on one host"
        )),
        Err(_) => Err(format!(
            "`replicas` is `{v}`: it must be 0 (one server) or more"
        )),
    }
}

fn de_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| parse_interval(s).map(|_| ()))
}

/// Seconds in "90", "90s", "15m", "2h" ("0" turns it off).
pub fn parse_interval(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        _ => (t, 1),
    };
    num.trim().parse::<u64>().map(|n| n * mult).map_err(|_| {
        format!("`{s}` is not an interval: use seconds or a number with s, m or h, e.g. \"15m\"")
    })
}

fn de_connections<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    de_with(d, |v: &u32| {
        if (1..=10_000).contains(v) {
            Ok(())
        } else {
            Err(format!("`{v}` is not a sensible max_connections (1-10000)"))
        }
    })
}

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| parse_bytes(s).map(|_| ()))
}

fn de_extensions<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    de_with(d, |v: &Vec<String>| {
        match v.iter().find(|e| {
            e.is_empty()
                || e.len() > 63
                || !e
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            Some(bad) => Err(format!("`{bad}` is not an extension name")),
            None => Ok(()),
        }
    })
}

fn de_pg_settings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<toml::Table>, D::Error> {
    de_with(d, |t: &toml::Table| {
        for (k, v) in t {
            if !k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
            {
                return Err(format!("`{k}` is not a PostgreSQL parameter name"));
            }
            if !matches!(
                v,
                toml::Value::String(_)
                    | toml::Value::Integer(_)
                    | toml::Value::Float(_)
                    | toml::Value::Boolean(_)
            ) {
                return Err(format!("`{k}` must be a string, number or boolean"));
            }
        }
        Ok(())
    })
}

/// Bytes in "512MB", "2GB", "1g", "256m", "64kB" (units are case-insensitive, base 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => 0,
    };
    match num.parse::<u64>() {
        Ok(n) if mult > 0 && n > 0 => Ok(n * mult),
        _ => Err(format!(
            "`{s}` is not a size: use a number with kB, MB or GB, e.g. \"256MB\""
        )),
    }
}

/// A toml value as a postgresql.conf value: strings quoted, the rest bare.
pub(super) fn pg_literal(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
        other => other.to_string(),
    }
}

fn de_volume<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| check_volume(s))
}

pub fn check_project_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 48
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid project name: use 1-48 lowercase letters, digits, `-` or `_`, starting with a letter or digit"
        ))
    }
}

fn check_identifier(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 || s.contains('\0') {
        Err(format!(
            "`{s}` is not a valid PostgreSQL name: 1-63 bytes, no NUL"
        ))
    } else {
        Ok(())
    }
}

fn check_bind(s: &str) -> Result<(), String> {
    s.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("`{s}` is not an IP address (use 127.0.0.1 for this machine only)"))
}

fn check_port(v: i64) -> Result<u16, String> {
    match u16::try_from(v) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("`{v}` is not a port number (1-65535)")),
    }
}

fn check_volume(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid volume name: letters, digits, `_`, `.` or `-`"
        ))
    }
}

/// Make a project name out of a folder name: lowercase, other characters as `-`.
pub fn sanitize_project_name(raw: &str) -> String {
    let mut out: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches(|c| c == '-' || c == '_').to_string();
    out.truncate(48);
    if out.is_empty() {
        "pgbox".into()
    } else {
        out
    }
}
