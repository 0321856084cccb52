//! `pgbox.toml`: the schema, where it is found, and how settings are resolved.
//!
//! Every source is parsed into the same all-optional [`FileConfig`] with
//! `deny_unknown_fields`, so a typo is an error with file, line and column rather
//! than a silently ignored key. Values are checked while they are deserialised,
//! which lets toml attach the position of the offending value. Sources are then
//! layered: flags > `PGBOX_*` env > pgbox.toml > user config > defaults, and the
//! result is the fully resolved [`Settings`] that commands work from.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Fail, EXIT_USAGE};

pub const CONFIG_FILE: &str = "pgbox.toml";
pub const STATE_DIR: &str = ".pgbox";
pub const DEFAULT_PG_VERSION: u32 = 15;
/// The PostgreSQL majors pgbox knows a base image for, and that base: a Debian
/// release whose archive ships the major (bookworm 15, trixie 17, forky 18), so
/// nothing is pulled from a registry pgbox cannot vouch for. Any other major needs
/// `[postgres] base_image`, e.g. the official `postgres:<major>` image.
pub const KNOWN_MAJORS: &[(u32, &str)] = &[
    (15, "debian:bookworm-slim"),
    (17, "debian:trixie-slim"),
    (18, "debian:forky-slim"),
];
pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_UID: u32 = 999;

mod check;
mod dump;
pub mod edit;
mod remote;
mod schema;
pub use remote::RemoteSettings;
pub use schema::*;

/// The base image pgbox uses for `major` when `base_image` is not set.
pub fn default_base_image(major: u32) -> Option<&'static str> {
    KNOWN_MAJORS
        .iter()
        .find(|(m, _)| *m == major)
        .map(|(_, image)| *image)
}

/// The error for a major with no known base and no `base_image`: which majors
/// work, and how to name a base for this one. `config`: the pgbox.toml to change
/// (None at `pgbox init`, where the flags say it).
pub fn unknown_major(major: u32, config: Option<&Path>) -> Fail {
    let known: Vec<String> = KNOWN_MAJORS
        .iter()
        .map(|(m, image)| format!("{m} (`{image}`)"))
        .collect();
    let (version, base) = match config {
        Some(c) => (
            format!("`version` under `[postgres]` in `{}`", c.display()),
            "`base_image` under `[postgres]`".to_string(),
        ),
        None => (
            "`--pg-version`".to_string(),
            "`--base-image` (`base_image` in pgbox.toml)".to_string(),
        ),
    };
    Fail::new(format!(
        "pgbox knows no base image that ships PostgreSQL {major}"
    ))
    .hint(format!(
        "the majors that work as they are: {}; choose one with {version}, or name an image that ships \
         PostgreSQL {major} with {base}, e.g. `base_image = \"postgres:{major}\"` where a registry is \
         reachable (the official `postgres:<major>` images work as the base)",
        join_and(&known)
    ))
    .code(EXIT_USAGE)
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

// ---- parsing with positions ----

/// Parse one config file's text; errors name the file, line and column.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, Fail> {
    let bad = |span: Option<std::ops::Range<usize>>, message: &str| {
        let (line, col) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        Fail::new(format!("{}:{line}:{col}: {}", path.display(), message.trim_end()))
            .hint(format!(
                "fix the value in `{}`; the keys pgbox knows are listed in the README under `pgbox.toml`",
                path.display()
            ))
            .code(EXIT_USAGE)
    };
    let c = toml::from_str::<FileConfig>(text).map_err(|e| bad(e.span(), e.message()))?;
    // `[backup] level` must suit the compressor named beside it (gzip stops at 9).
    if let Some(bk) = &c.backup {
        let compress = bk.compress.unwrap_or(Compression::Zstd);
        if let Some(level) = bk.level.filter(|l| !compress.takes_level(*l)) {
            #[derive(Deserialize)]
            struct Probe {
                backup: ProbeBackup,
            }
            #[derive(Deserialize)]
            struct ProbeBackup {
                level: toml::Spanned<u32>,
            }
            let span = toml::from_str::<Probe>(text)
                .ok()
                .map(|p| p.backup.level.span());
            return Err(bad(
                span,
                &format!(
                    "`{level}` is out of range for {}: zstd takes 1-19, gzip 1-9",
                    compress.as_str()
                ),
            ));
        }
    }
    Ok(c)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Why no configuration could be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no `pgbox.toml` in `{}` or any folder above it", .0.display())]
    NotFound(PathBuf),
}

/// True for the error `find_config` gives when no pgbox.toml exists above `start`.
pub fn is_not_found(f: &Fail) -> bool {
    matches!(f.kind::<ConfigError>(), Some(ConfigError::NotFound(_)))
}

/// Find pgbox.toml: `--config`, else walk up from `start`.
pub fn find_config(explicit: Option<&Path>, start: &Path) -> Result<PathBuf, Fail> {
    if let Some(p) = explicit {
        let p = absolute(start, p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Fail::new(format!("config file `{}` does not exist", p.display()))
                .hint("pass the path of an existing pgbox.toml, or run `pgbox init` to create one")
                .code(EXIT_USAGE))
        };
    }
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(CONFIG_FILE);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(Fail::typed(ConfigError::NotFound(start.to_path_buf()))
        .hint("run `pgbox init` in your project folder, or pass `--config PATH`")
        .code(EXIT_USAGE))
}

pub use crate::fsutil::absolute;

fn user_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "pgbox").map(|d| d.config_dir().join("config.toml"))
}

fn read_user_config() -> Result<FileConfig, Fail> {
    match user_config_path() {
        Some(p) if p.is_file() => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| Fail::new(format!("cannot read `{}`: {e}", p.display())))?;
            parse_file(&p, &text)
        }
        _ => Ok(FileConfig::default()),
    }
}

// ---- layering ----

fn to_table(c: &FileConfig) -> toml::Table {
    toml::Table::try_from(c).expect("FileConfig serialises to a table")
}

fn merge_into(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_into(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// (variable, section, key, is_integer)
const ENV_KEYS: &[(&str, &str, &str, bool)] = &[
    ("PGBOX_PROJECT", "project", "name", false),
    ("PGBOX_PG_VERSION", "postgres", "version", true),
    ("PGBOX_BASE_IMAGE", "postgres", "base_image", false),
    ("PGBOX_DATABASE", "postgres", "database", false),
    ("PGBOX_USER", "postgres", "user", false),
    ("PGBOX_BIND", "network", "bind", false),
    ("PGBOX_PORT", "network", "port", true),
    ("PGBOX_STORAGE", "storage", "mode", false),
    ("PGBOX_DATA_DIR", "storage", "path", false),
    ("PGBOX_BACKUP_DIR", "backup", "dir", false),
];

fn env_layer(get: &dyn Fn(&str) -> Option<String>) -> Result<FileConfig, Fail> {
    let mut table = toml::Table::new();
    for (var, section, key, integer) in ENV_KEYS {
        let Some(raw) = get(var) else { continue };
        let value = if *integer {
            let n: i64 = raw.trim().parse().map_err(|_| {
                Fail::new(format!("{var}=`{raw}` is not a number"))
                    .hint(format!("set {var} to a whole number or unset it"))
                    .code(EXIT_USAGE)
            })?;
            toml::Value::Integer(n)
        } else {
            toml::Value::String(raw)
        };
        table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("section is a table")
            .insert(key.to_string(), value);
    }
    FileConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
        Fail::new(format!(
            "invalid PGBOX_* environment variable: {}",
            e.message().trim_end()
        ))
        .hint("fix or unset the variable; see `pgbox.toml` in the README for accepted values")
        .code(EXIT_USAGE)
    })
}

/// Fully resolved settings for one project.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub config_path: PathBuf,
    pub project_dir: PathBuf,
    pub project: String,
    pub pg_version: u32,
    /// `[postgres] base_image`, else the known base of `pg_version` (see
    /// [`KNOWN_MAJORS`]). Empty only from [`Settings::resolve`] for a major with
    /// no known base; [`Settings::load`] refuses that.
    pub base_image: String,
    /// Whether `base_image` was given (pgbox.toml, user config or `PGBOX_BASE_IMAGE`)
    /// rather than derived from the major.
    pub base_image_set: bool,
    pub database: String,
    pub user: String,
    pub bind: String,
    pub port: u16,
    pub storage_mode: StorageMode,
    pub data_dir: PathBuf,
    pub volume: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub save_interval: u64,
    pub min_free_mb: u32,
    pub backup_dir: PathBuf,
    pub keep_last: Option<u32>,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub on_failure: Option<String>,
    /// `[backup] format`, `compress` and `level` (None: the compressor's default).
    pub backup_format: Format,
    pub backup_compress: Compression,
    pub backup_level: Option<u32>,
    /// `[backup] pitr`: a continuous WAL archive in `<backup dir>/wal/`.
    pub pitr: bool,
    /// `[backup] archive_timeout` in seconds (60 by default).
    pub archive_timeout: u64,
    /// `[backup] encrypt_to`: age recipients or recipients files (relative to the project).
    pub encrypt_to: Vec<String>,
    /// `[backup.remote]`, when it names a `url`.
    pub remote: Option<RemoteSettings>,
    pub max_connections: u32,
    /// postgresql.conf values, already in PostgreSQL's units.
    pub shared_buffers: String,
    pub effective_cache_size: String,
    pub work_mem: String,
    pub memory_limit: Option<u64>,
    pub extensions: Vec<String>,
    pub init_dir: Option<PathBuf>,
    pub conf_dir: Option<PathBuf>,
    /// Extra parameters as (name, postgresql.conf literal).
    pub pg_settings: Vec<(String, String)>,
    pub tls: TlsMode,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `[migrations] dir` (default `migrations`) and `table` (`pgbox.schema_version`).
    pub migrations_dir: PathBuf,
    pub migrations_table: String,
    /// `[pooler]`: the PgBouncer container (off unless `enabled = true`).
    pub pooler: PoolerSettings,
    /// `[cluster] replicas` (0: a single server) and `synchronous` (default true).
    pub replicas: u32,
    pub synchronous: bool,
}

/// `[pooler]`, resolved: defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolerSettings {
    pub enabled: bool,
    pub mode: PoolMode,
    pub pool_size: u32,
    pub max_client_conn: u32,
    pub port: u16,
}

pub const DEFAULT_POOLER_PORT: u16 = 6432;

impl PoolerSettings {
    fn resolve(p: PoolerSection) -> PoolerSettings {
        PoolerSettings {
            enabled: p.enabled.unwrap_or(false),
            mode: p.mode.unwrap_or(PoolMode::Transaction),
            pool_size: p.pool_size.unwrap_or(20),
            max_client_conn: p.max_client_conn.unwrap_or(200),
            port: p.port.unwrap_or(DEFAULT_POOLER_PORT),
        }
    }
}

impl Settings {
    /// Load from disk, layering user config, the project file and the environment.
    pub fn load(explicit: Option<&Path>) -> Result<Settings, Fail> {
        let cwd = std::env::current_dir()
            .map_err(|e| Fail::new(format!("cannot read the current folder: {e}")))?;
        let path = find_config(explicit, &cwd)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Fail::new(format!("cannot read `{}`: {e}", path.display())))?;
        let file = parse_file(&path, &text)?;
        let user = read_user_config()?;
        let env = env_layer(&|k| std::env::var(k).ok())?;
        let s = Settings::resolve(&path, &[user, file, env]);
        if s.base_image.is_empty() {
            return Err(unknown_major(s.pg_version, Some(&path)));
        }
        s.check_pooler()?;
        Ok(s)
    }

    /// Resolve layers (lowest priority first) into settings with defaults.
    pub fn resolve(config_path: &Path, layers: &[FileConfig]) -> Settings {
        let mut merged = toml::Table::new();
        for l in layers {
            merge_into(&mut merged, to_table(l));
        }
        let c = FileConfig::deserialize(toml::Value::Table(merged))
            .expect("merged layers were each valid");
        let project_dir = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let project = c
            .project
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_else(|| {
                sanitize_project_name(
                    &project_dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            });
        let pg = c.postgres.unwrap_or_default();
        let net = c.network.unwrap_or_default();
        let st = c.storage.unwrap_or_default();
        let bk = c.backup.unwrap_or_default();
        let tls = c.tls.unwrap_or_default();
        let mig = c.migrations.unwrap_or_default();
        let pooler = PoolerSettings::resolve(c.pooler.unwrap_or_default());
        let cl = c.cluster.unwrap_or_default();
        let kb = |s: &Option<String>| {
            s.as_deref()
                .and_then(|s| parse_bytes(s).ok())
                .map(|b| b / 1024)
        };
        let memory_limit = pg.memory_limit.as_deref().and_then(|s| parse_bytes(s).ok());
        let limit_kb = memory_limit.map(|b| b / 1024);
        let shared_kb = kb(&pg.shared_buffers)
            .or(limit_kb.map(|l| l / 4))
            .unwrap_or(128 * 1024);
        let cache_kb = limit_kb.map(|l| l * 3 / 4).unwrap_or(4 * 1024 * 1024);
        let database = pg.database.unwrap_or_else(|| project.replace('-', "_"));
        let pg_version = pg.version.unwrap_or(DEFAULT_PG_VERSION);
        Settings {
            config_path: config_path.to_path_buf(),
            project_dir: project_dir.clone(),
            pg_version,
            base_image_set: pg.base_image.is_some(),
            base_image: pg
                .base_image
                .or_else(|| default_base_image(pg_version).map(String::from))
                .unwrap_or_default(),
            user: pg.user.unwrap_or_else(|| database.clone()),
            database,
            bind: net.bind.unwrap_or_else(|| "127.0.0.1".into()),
            port: net.port.unwrap_or(DEFAULT_PORT),
            storage_mode: st.mode.unwrap_or(StorageMode::Auto),
            data_dir: absolute(
                &project_dir,
                &st.path.unwrap_or_else(|| PathBuf::from(".pgbox/data")),
            ),
            volume: st.volume.unwrap_or_else(|| format!("pgbox-{project}-data")),
            uid: st.uid,
            gid: st.gid,
            save_interval: st
                .save_interval
                .as_deref()
                .map_or(0, |s| parse_interval(s).unwrap_or(0)),
            min_free_mb: st.min_free_mb.unwrap_or(100),
            backup_dir: absolute(
                &project_dir,
                &bk.dir.unwrap_or_else(|| PathBuf::from("backups")),
            ),
            keep_last: bk.keep_last,
            keep_daily: bk.keep_daily.unwrap_or(7),
            keep_weekly: bk.keep_weekly.unwrap_or(4),
            keep_monthly: bk.keep_monthly.unwrap_or(6),
            on_failure: bk.on_failure.clone(),
            backup_format: bk.format.unwrap_or(Format::Custom),
            backup_compress: bk.compress.unwrap_or(Compression::Zstd),
            backup_level: bk.level,
            pitr: bk.pitr.unwrap_or(false),
            archive_timeout: bk
                .archive_timeout
                .as_deref()
                .map_or(60, |s| parse_interval(s).unwrap_or(60)),
            encrypt_to: bk.encrypt_to.clone().unwrap_or_default(),
            remote: bk.remote.clone().and_then(|r| r.resolve(&project_dir)),
            max_connections: pg.max_connections.unwrap_or(100),
            shared_buffers: format!("{shared_kb}kB"),
            effective_cache_size: format!("{cache_kb}kB"),
            work_mem: format!("{}kB", kb(&pg.work_mem).unwrap_or(4 * 1024)),
            memory_limit,
            extensions: pg.extensions.unwrap_or_default(),
            init_dir: pg.init_dir.map(|d| absolute(&project_dir, &d)),
            conf_dir: pg.conf_dir.map(|d| absolute(&project_dir, &d)),
            pg_settings: pg
                .settings
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| (k.clone(), pg_literal(v)))
                .collect(),
            tls: tls.mode.unwrap_or(TlsMode::Off),
            tls_cert: tls.cert.map(|p| absolute(&project_dir, &p)),
            tls_key: tls.key.map(|p| absolute(&project_dir, &p)),
            migrations_dir: absolute(
                &project_dir,
                &mig.dir.unwrap_or_else(|| PathBuf::from("migrations")),
            ),
            migrations_table: mig.table.unwrap_or_else(|| "pgbox.schema_version".into()),
            pooler,
            replicas: cl.replicas.unwrap_or(0),
            synchronous: cl.synchronous.unwrap_or(true),
            project,
        }
    }

    /// `[pooler]` against the rest: its port must not be the server's, and its
    /// pools must leave the server room for pgbox's own sessions.
    pub fn check_pooler(&self) -> Result<(), Fail> {
        let p = &self.pooler;
        if !p.enabled {
            return Ok(());
        }
        if p.port == self.port {
            return Err(Fail::new(format!(
                "`[pooler] port` is `{}`, the server's own port in `{}`",
                p.port,
                self.config_path.display()
            ))
            .hint(format!(
                "give the pooler another port, e.g. `port = {DEFAULT_POOLER_PORT}` under `[pooler]`, or remove it for the default"
            ))
            .code(EXIT_USAGE));
        }
        // PostgreSQL keeps 3 connections for superusers; pgbox needs 2 of its own
        // (the pooler's lookup session and psql from pgbox).
        let room = self.max_connections.saturating_sub(5);
        if p.pool_size > room {
            return Err(Fail::new(format!(
                "`[pooler] pool_size` is `{}` but `max_connections` `{}` leaves room for {room}",
                p.pool_size, self.max_connections
            ))
            .hint(format!(
                "set `pool_size = {room}` or less under `[pooler]`, or raise `max_connections` under `[postgres]`"
            ))
            .code(EXIT_USAGE));
        }
        Ok(())
    }

    pub fn state_dir(&self) -> PathBuf {
        self.project_dir.join(STATE_DIR)
    }

    pub fn secret_path(&self) -> PathBuf {
        self.state_dir().join("secrets").join("postgres_password")
    }

    /// The WAL archive: `<backup dir>/wal`.
    pub fn wal_archive_dir(&self) -> PathBuf {
        self.backup_dir.join("wal")
    }

    pub fn container_name(&self) -> String {
        format!("pgbox-{}", self.project)
    }

    /// Host used in URLs: the bind address, or loopback when bound to all addresses.
    pub fn url_host(&self) -> String {
        match self.bind.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => "127.0.0.1".into(),
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.bind.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_reports_line_and_column() {
        let text = "[project]\nname = \"a\"\n\n[network]\nprot = 5432\n";
        let err = parse_file(Path::new("pgbox.toml"), text).unwrap_err();
        assert!(
            err.message
                .starts_with("pgbox.toml:5:1: unknown field `prot`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_value_reports_position_of_value() {
        let text = "[network]\nport = 70000\n";
        let err = parse_file(Path::new("x.toml"), text).unwrap_err();
        assert!(err.message.starts_with("x.toml:2:8:"), "{}", err.message);
        assert!(
            err.message.contains("`70000` is not a port number"),
            "{}",
            err.message
        );
    }

    #[test]
    fn layers_resolve_in_priority_order() {
        let user = parse_file(
            Path::new("u"),
            "[network]\nport = 6000\nbind = \"0.0.0.0\"\n",
        )
        .unwrap();
        let file = parse_file(Path::new("f"), "[network]\nport = 6001\n").unwrap();
        let env = env_layer(&|k| (k == "PGBOX_PORT").then(|| "6002".to_string())).unwrap();
        let s = Settings::resolve(
            Path::new("/p/my-app/pgbox.toml"),
            &[user.clone(), file.clone()],
        );
        assert_eq!(s.port, 6001);
        assert_eq!(s.bind, "0.0.0.0");
        assert_eq!(s.url_host(), "127.0.0.1");
        assert_eq!(s.project, "my-app");
        assert_eq!(s.database, "my_app");
        let s = Settings::resolve(Path::new("/p/my-app/pgbox.toml"), &[user, file, env]);
        assert_eq!(s.port, 6002);
    }

    #[test]
    fn env_values_are_checked() {
        let err = env_layer(&|k| (k == "PGBOX_PORT").then(|| "http".to_string())).unwrap_err();
        assert!(err.message.contains("PGBOX_PORT=`http` is not a number"));
        let err = env_layer(&|k| (k == "PGBOX_STORAGE").then(|| "nfs".to_string())).unwrap_err();
        assert!(err.message.contains("nfs"), "{}", err.message);
    }

    #[test]
    fn folder_names_become_project_names() {
        assert_eq!(sanitize_project_name("My App!"), "my-app");
        assert_eq!(sanitize_project_name("..."), "pgbox");
        assert!(check_project_name("-x").is_err());
    }

    #[test]
    fn memory_settings_derive_from_the_limit() {
        let f = parse_file(Path::new("p"), "[postgres]\nmemory_limit = \"2GB\"\n").unwrap();
        let s = Settings::resolve(Path::new("/x/p/pgbox.toml"), &[f]);
        assert_eq!(s.shared_buffers, "524288kB");
        assert_eq!(s.memory_limit, Some(2 << 30));
        let s = Settings::resolve(Path::new("/x/p/pgbox.toml"), &[]);
        assert_eq!(s.shared_buffers, "131072kB");
        let err = parse_file(Path::new("p"), "[postgres]\nwork_mem = \"lots\"\n").unwrap_err();
        assert!(
            err.message.contains("`lots` is not a size"),
            "{}",
            err.message
        );
    }

    #[test]
    fn extra_settings_become_literals() {
        let f = parse_file(
            Path::new("p"),
            "[postgres.settings]\nlog_min_duration_statement = \"250ms\"\njit = false\nsearch_path = \"it's\"\n",
        )
        .unwrap();
        let s = Settings::resolve(Path::new("/x/p/pgbox.toml"), &[f]);
        assert!(s.pg_settings.contains(&("jit".into(), "false".into())));
        assert!(s
            .pg_settings
            .contains(&("search_path".into(), "'it''s'".into())));
        let err = parse_file(Path::new("p"), "[postgres.settings]\n\"Bad Key\" = 1\n").unwrap_err();
        assert!(
            err.message.contains("not a PostgreSQL parameter name"),
            "{}",
            err.message
        );
    }

    #[test]
    fn each_known_major_has_its_base_and_base_image_wins() {
        let resolve = |text: &str| {
            let f = parse_file(Path::new("p"), text).unwrap();
            Settings::resolve(Path::new("/x/p/pgbox.toml"), &[f])
        };
        let s = resolve("");
        assert_eq!(
            (s.pg_version, s.base_image.as_str()),
            (15, "debian:bookworm-slim")
        );
        assert!(!s.base_image_set);
        let s = resolve("[postgres]\nversion = 17\n");
        assert_eq!(s.base_image, "debian:trixie-slim");
        let s = resolve("[postgres]\nversion = 18\n");
        assert_eq!(s.base_image, "debian:forky-slim");
        let s = resolve("[postgres]\nversion = 18\nbase_image = \"postgres:18\"\n");
        assert_eq!(s.base_image, "postgres:18");
        assert!(s.base_image_set);
        let s = resolve("[postgres]\nversion = 16\nbase_image = \"postgres:16\"\n");
        assert_eq!(s.base_image, "postgres:16");
        // No known base and none given: resolve leaves it empty, load refuses it.
        assert_eq!(resolve("[postgres]\nversion = 16\n").base_image, "");
        assert_eq!(default_base_image(14), None);
        let e = unknown_major(16, Some(Path::new("/x/p/pgbox.toml")));
        assert_eq!(e.code, EXIT_USAGE);
        assert!(e.message.contains("PostgreSQL 16"), "{}", e.message);
        let hint = e.hint.unwrap();
        for want in [
            "15 (`debian:bookworm-slim`), 17 (`debian:trixie-slim`) and 18 (`debian:forky-slim`)",
            "`base_image`",
            "postgres:16",
            "/x/p/pgbox.toml",
        ] {
            assert!(hint.contains(want), "{want}: {hint}");
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("90").unwrap(), 90);
        assert_eq!(parse_interval("15m").unwrap(), 900);
        assert_eq!(parse_interval("2h").unwrap(), 7200);
        let err = parse_file(Path::new("p"), "[storage]\nsave_interval = \"soon\"\n").unwrap_err();
        assert!(
            err.message.starts_with("p:2:17: `soon` is not an interval"),
            "{}",
            err.message
        );
    }
}
