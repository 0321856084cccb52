//! `pgbox status`: what runs, whether it answers, and where the data lives.
//!
//! Exit 0 only when the container runs and PostgreSQL answers a protocol ping on
//! the published port; 4 otherwise, so scripts and monitors can rely on it.

use std::time::Duration;

use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::config::StorageMode;
use crate::error::EXIT_UNHEALTHY;
use crate::fallback;
use crate::printer::Printer;
use crate::probe::{self, Ping};
use crate::project;
use crate::storage::ProjectState;

#[derive(Serialize)]
struct Storage {
    mode: String,
    reason: Option<String>,
    location: String,
    /// Fallback: when `pgsql.tar.zst` was last written (RFC 3339).
    last_save: Option<String>,
    /// Fallback: what a crash or a removed container can cost, when unbounded.
    at_risk: Option<String>,
    /// Fallback: copies of a cluster the entrypoint kept aside, never deleted by pgbox.
    kept_aside: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    project: String,
    container: String,
    state: String,
    running: bool,
    health: Option<String>,
    entrypoint_state: Option<String>,
    ready: bool,
    url: String,
    port: u16,
    bind: String,
    image: Option<String>,
    started_at: Option<String>,
    storage: Storage,
    engine: String,
    config: String,
}

pub async fn run(g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    crate::project::warn_if_public(&s, p);
    let name = s.container_name();
    let info = engine.inspect(&name).await?;
    let running = info.as_ref().is_some_and(|c| c.running);
    let (ready, entrypoint_state) = if running {
        let host = s.url_host();
        let ping = probe::ping(&host, s.port, Duration::from_secs(2));
        let state = crate::container::ctl::state(&engine, &name);
        let (ping, state) = tokio::join!(ping, state);
        (ping == Ping::Ready, state)
    } else {
        (false, None)
    };
    let decision = ProjectState::load(&s).storage;
    let mode = decision.as_ref().map(|d| d.mode).unwrap_or(s.storage_mode);
    let report = Report {
        project: s.project.clone(),
        container: name,
        state: info
            .as_ref()
            .map(|c| c.state.clone())
            .unwrap_or_else(|| "absent".into()),
        running,
        health: info.as_ref().and_then(|c| c.health.clone()).map(|h| {
            if engine.health_checks_run() {
                h
            } else {
                format!("{h} (Podman runs health checks through systemd, which is not running here; `ready` is pgbox's own probe)")
            }
        }),
        entrypoint_state,
        ready,
        url: project::url(&s, None),
        port: s.port,
        bind: s.bind.clone(),
        image: info.as_ref().map(|c| c.image.clone()),
        started_at: info
            .as_ref()
            .and_then(|c| c.started_at.clone())
            .filter(|_| running),
        storage: Storage {
            mode: mode.to_string(),
            reason: decision.map(|d| d.reason),
            location: match mode {
                StorageMode::Volume => format!("volume {}", s.volume),
                _ => s.data_dir.display().to_string(),
            },
            last_save: (mode == StorageMode::Fallback)
                .then(|| std::fs::metadata(s.data_dir.join("pgsql.tar.zst")).and_then(|m| m.modified()).ok())
                .flatten()
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            at_risk: (mode == StorageMode::Fallback)
                .then(|| fallback::at_risk(&s))
                .flatten(),
            kept_aside: if mode == StorageMode::Fallback {
                fallback::kept_aside(&s)
                    .iter()
                    .map(|k| k.display().to_string())
                    .collect()
            } else {
                Vec::new()
            },
        },
        engine: engine.describe(),
        config: s.config_path.display().to_string(),
    };
    if mode == StorageMode::Fallback && info.as_ref().is_some_and(|c| !c.running) {
        if let Ok(Some(why)) = fallback::unsaved(&engine, &report.container).await {
            p.warn(format!(
                "`{}` holds writes that are not in `pgsql.tar.zst` ({why}); `pgbox down` or `pgbox up` saves them, removing the container loses them",
                report.container
            ));
        }
    }
    if let Some(risk) = &report.storage.at_risk {
        p.warn(risk);
    }
    for k in &report.storage.kept_aside {
        p.warn(fallback::describe_kept(std::path::Path::new(k)));
    }
    if p.json() {
        p.data(serde_json::to_string_pretty(&report)?);
    } else {
        let dash = || "-".to_string();
        let rows = [
            ("project", report.project.clone()),
            ("container", report.container.clone()),
            ("state", report.state.clone()),
            (
                "entrypoint",
                report.entrypoint_state.clone().unwrap_or_else(dash),
            ),
            ("health", report.health.clone().unwrap_or_else(dash)),
            (
                "ready",
                if report.ready {
                    "yes".into()
                } else {
                    "no".into()
                },
            ),
            ("url", report.url.clone()),
            (
                "storage",
                format!("{} ({})", report.storage.mode, report.storage.location),
            ),
            ("why", report.storage.reason.clone().unwrap_or_else(dash)),
            (
                "last save",
                match mode {
                    StorageMode::Fallback => report
                        .storage
                        .last_save
                        .clone()
                        .unwrap_or_else(|| "never".into()),
                    _ => dash(),
                },
            ),
            ("image", report.image.clone().unwrap_or_else(dash)),
            ("started", report.started_at.clone().unwrap_or_else(dash)),
            ("engine", report.engine.clone()),
            ("config", report.config.clone()),
        ];
        for (k, v) in rows {
            p.data(format!("{k:<11}{v}"));
        }
    }
    Ok(if ready { 0 } else { EXIT_UNHEALTHY })
}
