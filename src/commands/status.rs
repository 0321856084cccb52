//! `pgbox status`: what runs, whether it answers, and where the data lives.
//!
//! Exit 0 only when the container runs and PostgreSQL answers a protocol ping on
//! the published port; 4 otherwise, so scripts and monitors can rely on it. The
//! report comes from `server::status`; this file prints it as JSON or as rows.

use super::Ctx;
use crate::config::StorageMode;
use crate::error::EXIT_UNHEALTHY;
use crate::server::status::status;

pub async fn run(ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    crate::connection::warn_if_public(s, p);
    if crate::cluster::enabled(s) {
        let st = crate::cluster::ops::status(engine, s).await?;
        crate::cluster::ops::print(&st, p)?;
        return Ok(if st.healthy { 0 } else { EXIT_UNHEALTHY });
    }
    let mut report = status(engine, s).await?;
    if s.pitr {
        report.recoverable = crate::backup::pitr::window_rfc3339(s);
    }
    for w in &report.warnings {
        p.warn(w);
    }
    // The pooler's section, beside the server's report (`[pooler]`).
    let pooler = crate::pooler::status::status(engine, s).await?;
    if p.json() {
        let mut json = serde_json::to_value(&report)?;
        if let (Some(obj), Some(pl)) = (json.as_object_mut(), &pooler) {
            obj.insert("pooler".into(), serde_json::to_value(pl)?);
        }
        p.data(serde_json::to_string_pretty(&json)?);
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
                match report.mode {
                    StorageMode::Fallback => report
                        .storage
                        .last_save
                        .clone()
                        .unwrap_or_else(|| "never".into()),
                    _ => dash(),
                },
            ),
            (
                "postgres",
                match &report.server_version {
                    Some(v) => format!("PostgreSQL {v}"),
                    None if report.running => {
                        format!("PostgreSQL {} (not answering)", report.pg_major)
                    }
                    None => format!("PostgreSQL {} (not running)", report.pg_major),
                },
            ),
            ("image", report.image.clone().unwrap_or_else(dash)),
            ("started", report.started_at.clone().unwrap_or_else(dash)),
            ("engine", report.engine.clone()),
            ("config", report.config.clone()),
            (
                "archive",
                report.archive.as_ref().map_or_else(dash, |a| a.summary()),
            ),
            (
                "window",
                match (&report.archive, &report.recoverable) {
                    (_, Some((a, b))) => {
                        format!("{a} .. {b} (`pgbox backup verify --pitr` checks it)")
                    }
                    (Some(_), None) => "no base backup yet: `pgbox backup --base`".into(),
                    _ => dash(),
                },
            ),
            (
                "off-site",
                report.offsite.as_ref().map_or_else(dash, |o| o.summary()),
            ),
            (
                "recovered",
                report.recovered.as_ref().map_or_else(dash, |r| {
                    format!(
                        "`{}` on port {} ({}), state at {}, made {} ago; `pgbox restore --discard-new` removes it",
                        r.record.container, r.record.port, r.state, r.record.target, r.age
                    )
                }),
            ),
            (
                "upgrade",
                report.upgrade.as_ref().map_or_else(dash, |u| {
                    format!("{} → {} ({:?})", u.old.major, u.new.major, u.phase).to_lowercase()
                }),
            ),
        ];
        for (k, v) in rows {
            p.data(format!("{k:<11}{v}"));
        }
        for (k, v) in pooler.iter().flat_map(|pl| pl.rows()) {
            p.data(format!("{k:<11}{v}"));
        }
    }
    // A failing WAL archive is an error: point-in-time recovery silently stops otherwise.
    if report.archive.as_ref().is_some_and(|a| a.failing) {
        return Ok(1);
    }
    let pooler_down = pooler.is_some_and(|pl| !pl.ready);
    Ok(if report.ready && !pooler_down {
        0
    } else {
        EXIT_UNHEALTHY
    })
}
