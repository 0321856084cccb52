//! Keeping the running server in line with pgbox.toml after its first start.
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
use crate::container::ctl::{self, Verb};
use crate::container::psql::{self, ident};
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;
use crate::secrets;
use crate::state::ProjectState;

#[derive(Serialize)]
struct ConfVars<'a> {
    pgbox_version: &'a str,
    max_connections: u32,
    shared_buffers: &'a str,
    effective_cache_size: &'a str,
    work_mem: &'a str,
    memory_limit: Option<String>,
    tls: bool,
    /// `[backup] pitr`: archive_timeout in seconds, or None when off.
    pitr: Option<u64>,
    settings: &'a [(String, String)],
    /// `[cluster]`: replication and rewind lines in pg_hba.conf.
    cluster: bool,
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
    /// Every file is tried; the first failure is returned, naming the file, since a
    /// refused file left in place stops the server's next start.
    pub fn roll_back(&self) -> Result<(), Fail> {
        let mut first = None;
        for (path, old) in &self.previous {
            let r = match old {
                Some(bytes) => crate::fsutil::write_atomic(path, bytes, 0o644),
                None => std::fs::remove_file(path),
            };
            if let (Err(e), None) = (r, &first) {
                first = Some(Fail::new(format!(
                    "cannot put back the previous `{}`: {e}; restore it by hand before the server restarts",
                    path.display()
                )));
            }
        }
        first.map_or(Ok(()), Err)
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
        pitr: s.pitr.then_some(s.archive_timeout),
        settings: &s.pg_settings,
        cluster: s.replicas > 0,
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
        let old = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Fail::new(format!("cannot read `{}`: {e}", path.display())).into())
            }
        };
        if old.as_deref() != Some(text.as_bytes()) {
            crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            previous.push((path, old));
        }
    }
    Ok(Rendered { previous })
}

/// After the server is ready: apply a changed password and missing extensions, and
/// make sure `pg_stat_statements` exists in the `postgres` database.
pub async fn apply_drift(
    engine: &Engine,
    container: &str,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<()> {
    let mut state = ProjectState::load(s)?;
    let mut dirty = false;
    let password = secrets::read_password(s)?;
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
    if !state.statements_view {
        // In the maintenance database, never in the user's schema: the view lists
        // the statements of every database (the library is preloaded by
        // postgresql.conf). A server without it (an image lacking contrib) only
        // loses the top queries, so this warns and does not stop `up`.
        match psql::sql(
            engine,
            container,
            s,
            "postgres",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n",
        )
        .await
        {
            Ok(_) => {
                state.statements_view = true;
                dirty = true;
            }
            Err(e) => p.warn(format!(
                "cannot create `pg_stat_statements` in the `postgres` database ({e}): `pgbox stats` shows no top queries"
            )),
        }
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
    let out = ctl::run(engine, container, Verb::Reload).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roll_back_that_cannot_write_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let ok = tmp.path().join("pg_hba.conf");
        std::fs::write(&ok, "new").unwrap();
        let gone = tmp.path().join("no-such-folder").join("postgresql.conf");
        let r = Rendered {
            previous: vec![
                (gone.clone(), Some(b"old".to_vec())),
                (ok.clone(), Some(b"old".to_vec())),
            ],
        };
        let err = r.roll_back().unwrap_err();
        assert!(err.message.contains("postgresql.conf"), "{}", err.message);
        // The other file is still put back.
        assert_eq!(std::fs::read(&ok).unwrap(), b"old");
    }
}
