//! A project's scaffold: pgbox.toml, the password, the TLS material and the data
//! location, made by `pgbox init` and, in a folder without pgbox.toml, by `pgbox up`.
//!
//! Flags first, prompts as fallback: on a terminal the name and port are asked
//! with defaults filled in; without one, `--yes` (or the flags) must say what to
//! use. A second run changes nothing and says so; `--force` rewrites pgbox.toml
//! but never the password or the data.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::config::{self, Settings, StorageMode, TlsMode, CONFIG_FILE, DEFAULT_PORT, STATE_DIR};
use crate::container::image::ensure_image;
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::{connection, secrets, storage};

/// What `pgbox init` was asked for; `Default` plus `yes` is `pgbox init --yes`.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub name: Option<String>,
    pub port: Option<u16>,
    pub bind: Option<String>,
    pub storage: Option<StorageMode>,
    pub data_dir: Option<PathBuf>,
    pub base_image: Option<String>,
    pub pg_version: Option<u32>,
    /// A password to use instead of a generated one.
    pub password: Option<String>,
    pub tls: Option<TlsMode>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub yes: bool,
    pub force: bool,
    /// Where pgbox.toml goes (`--config`); default `./pgbox.toml`.
    pub config: Option<PathBuf>,
    /// The engine to prepare storage with (`--engine`); none reachable is a warning.
    pub engine: Option<String>,
}

#[derive(Serialize)]
struct TomlVars {
    pgbox_version: &'static str,
    project: String,
    pg_version: u32,
    /// Written only when given (`--base-image`, or an explicit one in the file being
    /// rewritten); otherwise the major's known base applies and stays unpinned.
    base_image: Option<String>,
    /// The major's known base, named in the commented example.
    default_base: &'static str,
    database: String,
    user: String,
    bind: String,
    port: u16,
    storage_mode: String,
    data_path: String,
    volume: String,
    tls_mode: String,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The first port from `start` on which nothing listens at `bind`.
fn free_port(bind: &str, start: u16) -> u16 {
    (start..start.saturating_add(100))
        .find(|p| std::net::TcpListener::bind((bind, *p)).is_ok())
        .unwrap_or(start)
}

fn gitignore(state_dir: &Path) -> anyhow::Result<()> {
    crate::fsutil::gitignore_once(
        state_dir,
        "# pgbox state: password, data, image context. Never commit.\n*\n",
    )?;
    Ok(())
}

/// Settings and engine for `pgbox up`: in a folder without pgbox.toml (and no
/// `--config`), the folder is initialised with the defaults first.
pub async fn load_or_init(
    config: Option<&Path>,
    engine: Option<&str>,
    p: &Printer,
) -> anyhow::Result<(Settings, Engine)> {
    let s = match Settings::load(config) {
        Err(e) if config.is_none() && config::is_not_found(&e) => {
            // Two `pgbox up` in a fresh folder at once: one initialises, the other
            // says who is running (the lock lives where the project's state will).
            let cwd = std::env::current_dir()?;
            let folder = cwd
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _lock = crate::lock::project(&cwd.join(STATE_DIR), &folder, "up")?;
            p.info("no pgbox.toml here or above: initialising this folder with the defaults");
            init(
                InitOptions {
                    yes: true,
                    engine: engine.map(String::from),
                    ..InitOptions::default()
                },
                p,
            )
            .await?;
            Settings::load(None)?
        }
        other => other?,
    };
    Ok((s, Engine::connect(engine).await?))
}

/// Write pgbox.toml (unless it exists and `force` is off), then make sure the
/// password, TLS material and data location are ready; report each change.
pub async fn init(args: InitOptions, p: &Printer) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let config_path = match &args.config {
        Some(c) => config::absolute(&cwd, c),
        None => cwd.join(CONFIG_FILE),
    };
    let project_dir = config_path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| cwd.clone());
    let password = args.password.as_deref();
    if let Some(pw) = password {
        secrets::check_password(pw)?;
    }

    let exists = config_path.is_file();
    let mut changed = Vec::new();
    if !exists || args.force {
        write_config(&args, exists, &config_path, &project_dir, &cwd, p)?;
        changed.push(format!("wrote `{}`", config_path.display()));
    }

    let s = Settings::load(Some(&config_path))?;
    crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
    gitignore(&s.state_dir())?;
    if password.is_some() && s.secret_path().is_file() && !args.force {
        return Err(Fail::new(format!(
            "a password already exists in `{}`",
            s.secret_path().display()
        ))
        .hint("pass `--force` to replace it (an existing cluster keeps its old password)")
        .code(EXIT_USAGE)
        .into());
    }
    if crate::tls::prepare_tls(&s)? {
        changed.push(match s.tls {
            TlsMode::SelfSigned => format!(
                "created a local CA and server certificate; clients verify with `{}`",
                crate::tls::TlsPaths::new(&s.state_dir())
                    .ca_cert()
                    .display()
            ),
            _ => "installed the TLS certificate and key".to_string(),
        });
    }
    if secrets::ensure_secret(&s, password)? {
        changed.push(format!(
            "wrote the password to `{}` (mode 600)",
            s.secret_path().display()
        ));
    }

    // Storage needs the image (its postgres UID); without an engine it waits for `up`.
    prepare_storage(&s, args.engine.as_deref(), &mut changed, p).await?;

    if changed.is_empty() {
        p.info(format!(
            "`{}` is already initialised; nothing changed",
            s.config_path.display()
        ));
    } else {
        for c in &changed {
            p.done(c);
        }
        p.info(format!(
            "next: `pgbox up` starts PostgreSQL on {}:{}",
            s.bind, s.port
        ));
    }
    connection::warn_if_public(&s, p);
    Ok(())
}

/// Render pgbox.toml from the options, what an `existing` file says, and the
/// defaults (asking on a terminal for what is missing), check it, write it.
fn write_config(
    args: &InitOptions,
    exists: bool,
    config_path: &Path,
    project_dir: &Path,
    cwd: &Path,
    p: &Printer,
) -> anyhow::Result<()> {
    let existing = if exists {
        match Settings::load(Some(config_path)) {
            Ok(s) => Some(s),
            Err(e) => {
                p.warn(format!(
                    "cannot read the existing `{}` ({}); `--force` rewrites it from the flags and defaults",
                    config_path.display(),
                    e.message.lines().next().unwrap_or_default()
                ));
                None
            }
        }
    } else {
        None
    };
    let pg_version = args
        .pg_version
        .or(existing.as_ref().map(|s| s.pg_version))
        .unwrap_or(config::DEFAULT_PG_VERSION);
    let base_image = args.base_image.clone().or(existing
        .as_ref()
        .filter(|s| s.base_image_set)
        .map(|s| s.base_image.clone()));
    let default_base = config::default_base_image(pg_version);
    // A major with no known base needs a base image; say so before anything is written.
    if base_image.is_none() && default_base.is_none() {
        return Err(config::unknown_major(pg_version, None).into());
    }
    let bind = args
        .bind
        .clone()
        .or_else(|| existing.as_ref().map(|s| s.bind.clone()))
        .unwrap_or_else(|| "127.0.0.1".into());
    let (name, port) = name_and_port(args, existing.as_ref(), project_dir, &bind, p)?;
    config::check_project_name(&name).map_err(|m| Fail::new(m).code(EXIT_USAGE))?;
    let storage = args.storage.unwrap_or_else(|| {
        existing
            .as_ref()
            .map(|s| s.storage_mode)
            .unwrap_or(StorageMode::Auto)
    });
    let tls = args.tls.or(existing.as_ref().map(|s| s.tls));
    let tls_mode = match tls {
        None | Some(TlsMode::Off) => "off",
        Some(TlsMode::SelfSigned) => "self-signed",
        Some(TlsMode::Files) => "files",
    };
    let tls_files = tls_files(args, tls, existing.as_ref(), cwd)?;
    let database = existing
        .as_ref()
        .map(|s| s.database.clone())
        .unwrap_or_else(|| name.replace('-', "_"));
    let vars = TomlVars {
        pgbox_version: env!("CARGO_PKG_VERSION"),
        project: quoted(&name),
        pg_version,
        base_image: base_image.map(|b| quoted(&b)),
        default_base: default_base.unwrap_or_default(),
        user: quoted(
            &existing
                .as_ref()
                .map(|s| s.user.clone())
                .unwrap_or_else(|| database.clone()),
        ),
        database: quoted(&database),
        bind: quoted(&bind),
        port,
        storage_mode: quoted(&storage.to_string()),
        data_path: quoted(
            &args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".pgbox/data"))
                .display()
                .to_string(),
        ),
        volume: quoted(&format!("pgbox-{name}-data")),
        tls_mode: quoted(tls_mode),
        tls_cert: tls_files
            .as_ref()
            .map(|(c, _)| quoted(&c.display().to_string())),
        tls_key: tls_files
            .as_ref()
            .map(|(_, k)| quoted(&k.display().to_string())),
    };
    let text = crate::templates::render(Some(project_dir), "pgbox.toml.j2", &vars)?;
    // Never write a file that pgbox itself would refuse to read.
    config::parse_file(config_path, &text)?;
    crate::fsutil::write_atomic(config_path, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write `{}`", config_path.display()))?;
    Ok(())
}

/// Build the image, decide the storage mode and prepare the data location; with no
/// engine reachable, a warning says `pgbox up` will do it.
async fn prepare_storage(
    s: &Settings,
    engine: Option<&str>,
    changed: &mut Vec<String>,
    p: &Printer,
) -> anyhow::Result<()> {
    match Engine::connect(engine).await {
        Ok(engine) => {
            let tag = ensure_image(&engine, s, p, false).await?;
            let before = storage::in_effect(s)?.decision;
            let d = storage::decision(&engine, s, &tag).await?;
            let dir_existed = s.data_dir.exists();
            storage::prepare(&engine, s, &d).await?;
            if d.mode == StorageMode::Fallback {
                if let Some(risk) = storage::fallback::at_risk(s) {
                    p.warn(risk);
                }
            }
            if before.as_ref() != Some(&d) {
                changed.push(format!("storage mode `{}`: {}", d.mode, d.reason));
            }
            if d.mode == StorageMode::Direct && !dir_existed {
                changed.push(format!(
                    "prepared data folder `{}` (owner {}:{}, mode 700)",
                    s.data_dir.display(),
                    d.uid,
                    d.gid
                ));
            }
        }
        Err(e) => {
            p.warn(format!(
                "{}; the data folder will be prepared by `pgbox up`",
                e.message.lines().next().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The project name and host port: flags, then `--yes` defaults, then questions on a
/// terminal; without one (and without `--yes`) an error names the flags.
fn name_and_port(
    args: &InitOptions,
    existing: Option<&Settings>,
    project_dir: &Path,
    bind: &str,
    p: &Printer,
) -> anyhow::Result<(String, u16)> {
    let default_name = existing.map(|s| s.project.clone()).unwrap_or_else(|| {
        config::sanitize_project_name(
            &project_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
        )
    });
    let default_port = existing
        .map(|s| s.port)
        .unwrap_or_else(|| free_port(bind, DEFAULT_PORT));
    Ok(match (args.name.clone(), args.port) {
        (Some(n), Some(port)) => (n, port),
        (n, port) if args.yes => (n.unwrap_or(default_name), port.unwrap_or(default_port)),
        (n, port) if p.can_prompt() => {
            let name = match n {
                Some(n) => n,
                None => p.ask("Project name", default_name, |v: &String| {
                    config::check_project_name(v)
                })?,
            };
            let port = match port {
                Some(port) => port,
                None => p.ask(format!("Host port on {bind}"), default_port, |_| Ok(()))?,
            };
            (name, port)
        }
        _ => {
            return Err(
                Fail::new("`pgbox init` needs answers but there is no terminal to ask on")
                    .hint("pass `--yes` to accept the defaults, or give `--name` and `--port`")
                    .code(EXIT_USAGE)
                    .into(),
            )
        }
    })
}

/// With `--tls files`: the certificate and key (absolute), from the flags or the
/// existing pgbox.toml; `--cert`/`--key` without `files` is an error.
fn tls_files(
    args: &InitOptions,
    tls: Option<TlsMode>,
    existing: Option<&Settings>,
    cwd: &Path,
) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    Ok(match (tls, &args.cert, &args.key) {
        (Some(TlsMode::Files), Some(c), Some(k)) => Some((config::absolute(cwd, c), config::absolute(cwd, k))),
        (Some(TlsMode::Files), _, _) => match existing.and_then(|s| s.tls_cert.clone().zip(s.tls_key.clone())) {
            Some(pair) => Some(pair),
            None => {
                return Err(Fail::new("`--tls files` needs `--cert FILE --key FILE`")
                    .hint("e.g. `--cert /etc/letsencrypt/live/HOST/fullchain.pem --key /etc/letsencrypt/live/HOST/privkey.pem`")
                    .code(EXIT_USAGE)
                    .into())
            }
        },
        (_, Some(_), _) => {
            return Err(Fail::new("`--cert` and `--key` go with `--tls files`")
                .code(EXIT_USAGE)
                .into())
        }
        _ => None,
    })
}
