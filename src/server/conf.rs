//! Keeping the cluster in line with pgbox.toml after its first start.
//!
//! Environment variables of a database image only matter on the first start;
//! pgbox does not leave it at that. The config files are rendered from
//! pgbox.toml on every `up` and reloaded (or the server restarted when a setting
//! needs it); a changed password is applied with `ALTER ROLE` and a SCRAM
//! verifier computed here; listed extensions are created. Nothing is silently
//! ignored: each change is reported.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::config::{Settings, TlsMode};
use crate::container::psql::{self, ident};
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;
use crate::project;
use crate::storage::ProjectState;
use crate::tls::{self, TlsPaths};

#[derive(Serialize)]
struct ConfVars<'a> {
    pgbox_version: &'a str,
    max_connections: u32,
    shared_buffers: &'a str,
    effective_cache_size: &'a str,
    work_mem: &'a str,
    memory_limit: Option<String>,
    tls: bool,
    settings: &'a [(String, String)],
}

/// Files written by `render_config`, with what they held before (None: absent).
pub struct Rendered {
    pub previous: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Rendered {
    pub fn changed(&self) -> bool {
        !self.previous.is_empty()
    }

    /// Put the previous contents back (after the server refused the new ones).
    pub fn roll_back(&self) {
        for (path, old) in &self.previous {
            match old {
                Some(bytes) => {
                    let _ = crate::fsutil::write_atomic(path, bytes, 0o644);
                }
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// postgresql.conf and pg_hba.conf as pgbox.toml makes them: (file name, text).
pub fn config_texts(s: &Settings) -> anyhow::Result<Vec<(&'static str, String)>> {
    let vars = ConfVars {
        pgbox_version: env!("CARGO_PKG_VERSION"),
        max_connections: s.max_connections,
        shared_buffers: &s.shared_buffers,
        effective_cache_size: &s.effective_cache_size,
        work_mem: &s.work_mem,
        memory_limit: s.memory_limit.map(|b| format!("{} MB", b >> 20)),
        tls: s.tls != TlsMode::Off,
        settings: &s.pg_settings,
    };
    ["postgresql.conf", "pg_hba.conf"]
        .into_iter()
        .map(|name| {
            Ok((
                name,
                crate::templates::render(
                    Some(&s.project_dir),
                    &format!("postgres/{name}.j2"),
                    &vars,
                )?,
            ))
        })
        .collect()
}

/// Render postgresql.conf and pg_hba.conf into `.pgbox/conf/`; writes only what changed.
pub fn render_config(s: &Settings) -> anyhow::Result<Rendered> {
    let dir = s.state_dir().join("conf");
    crate::fsutil::private_dir(&dir, 0o755)?;
    let mut previous = Vec::new();
    for (name, text) in config_texts(s)? {
        let path = dir.join(name);
        let old = std::fs::read(&path).ok();
        if old.as_deref() != Some(text.as_bytes()) {
            crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            previous.push((path, old));
        }
    }
    Ok(Rendered { previous })
}

/// Names for the self-signed server certificate.
fn tls_names(s: &Settings) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".into(),
        "::1".into(),
        s.container_name(),
    ];
    if !["127.0.0.1", "0.0.0.0", "::", "::1"].contains(&s.bind.as_str()) {
        names.push(s.bind.clone());
    }
    names
}

/// Create or refresh the TLS material the settings ask for. True if it changed.
pub fn prepare_tls(s: &Settings) -> anyhow::Result<bool> {
    let paths = TlsPaths::new(&s.state_dir());
    match s.tls {
        TlsMode::Off => Ok(false),
        TlsMode::SelfSigned => tls::ensure_self_signed(&paths, &s.project, &tls_names(s)),
        TlsMode::Files => {
            let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) else {
                return Err(Fail::new("`[tls] mode = \"files\"` needs `cert` and `key`")
                    .hint("set `cert` and `key` under `[tls]` in pgbox.toml, e.g. fullchain.pem and privkey.pem")
                    .into());
            };
            tls::install_files(&paths, cert, key)
        }
    }
}

/// The query string `pgbox url` appends for TLS.
pub fn url_tls_params(s: &Settings) -> Option<String> {
    match s.tls {
        TlsMode::Off => None,
        TlsMode::SelfSigned => Some(format!(
            "sslmode=verify-full&sslrootcert={}",
            TlsPaths::new(&s.state_dir()).ca_cert().display()
        )),
        TlsMode::Files => Some("sslmode=require".into()),
    }
}

/// After the server is ready: apply a changed password and missing extensions.
pub async fn apply_drift(
    engine: &Engine,
    container: &str,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<()> {
    let mut state = ProjectState::load(s);
    let mut dirty = false;
    let password = project::read_password(s)?;
    let digest = crate::digest::sha256_hex(&password);
    match &state.password_sha256 {
        None => {
            state.password_sha256 = Some(digest);
            dirty = true;
        }
        Some(old) if *old != digest => {
            let sql = format!(
                "SET log_statement = 'none';\nALTER ROLE {} PASSWORD '{}';\n",
                ident(&s.user),
                crate::scram::verifier(&password)
            );
            psql::sql(engine, container, s, "postgres", &sql)
                .await
                .context("applying the new password failed")?;
            p.done(format!("applied the new password to role `{}`", s.user));
            state.password_sha256 = Some(digest);
            dirty = true;
        }
        Some(_) => {}
    }
    let missing: Vec<&String> = s
        .extensions
        .iter()
        .filter(|e| !state.extensions.contains(e))
        .collect();
    if !missing.is_empty() {
        let sql: String = missing
            .iter()
            .map(|e| format!("CREATE EXTENSION IF NOT EXISTS {};\n", ident(e)))
            .collect();
        psql::sql(engine, container, s, &s.database, &sql).await.map_err(|e| {
            Fail::new(format!("creating extensions failed: {e}"))
                .hint("check the names under `extensions` in pgbox.toml (`select name from pg_available_extensions`)")
        })?;
        let names: Vec<&str> = missing.iter().map(|e| e.as_str()).collect();
        p.done(format!("created extensions {}", names.join(", ")));
        state.extensions = s.extensions.clone();
        dirty = true;
    }
    if dirty {
        state.save(s)?;
    }
    Ok(())
}

/// What a reload found: parameters that only take effect after a restart.
pub struct Reload {
    pub pending_restart: Vec<String>,
}

/// Check the new config inside the running container, then reload it.
pub async fn reload(engine: &Engine, container: &str) -> anyhow::Result<Reload> {
    let out =
        crate::container::ctl::run(engine, container, crate::container::ctl::Verb::Reload).await?;
    if out.code != 0 {
        return Err(Fail::new(format!(
            "PostgreSQL refused the new configuration: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("fix the value in pgbox.toml and run `pgbox up` again; the running server keeps its old settings")
        .into());
    }
    let pending_restart = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    Ok(Reload { pending_restart })
}
