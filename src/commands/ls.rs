//! `pgbox ls`: every pgbox-managed container on this host, any project.
//!
//! The PostgreSQL major comes from the image's label; the exact version of each
//! running server from one `pgbox-ctl versions` exec per container, all at once.

use serde::Serialize;

use super::Ctx;
use crate::container::{ctl, psql};
use crate::engine::{ContainerInfo, Engine, LABEL_CONFIG, LABEL_PORT, LABEL_PROJECT};
use crate::pooler;

/// The label the image carries with its PostgreSQL major (templates/image/Containerfile.j2).
const LABEL_PG_MAJOR: &str = "org.pgbox.pg-major";

#[derive(Serialize)]
struct Row {
    project: String,
    container: String,
    state: String,
    health: Option<String>,
    port: String,
    config: String,
    /// The running server's major, else the image's.
    pg_major: Option<u32>,
    /// The running server's exact version (e.g. `17.6`); None when it does not answer.
    server_version: Option<String>,
    /// `server`, or `pooler` for a project's PgBouncer.
    role: String,
}

fn is_pooler(c: &ContainerInfo) -> bool {
    c.labels.get(pooler::LABEL_ROLE).map(String::as_str) == Some(pooler::ROLE_POOLER)
}

/// The image's major: its label, else the `pgbox-postgres:<major>-<hash>` tag.
fn image_major(c: &ContainerInfo) -> Option<u32> {
    c.labels
        .get(LABEL_PG_MAJOR)
        .and_then(|m| m.parse().ok())
        .or_else(|| {
            let tag = c.image.rsplit_once(':')?.1;
            psql::major_of(tag)
        })
}

/// The exact version of the server in a running container, or None.
async fn running_version(engine: &Engine, c: &ContainerInfo) -> Option<String> {
    if !c.running || is_pooler(c) {
        return None;
    }
    let (server, _) = ctl::versions(engine, &c.name).await.ok()?;
    psql::version_number(&server).map(String::from)
}

pub async fn run(ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let engine = ctx.engine().await?;
    let containers: Vec<ContainerInfo> = engine
        .list_labelled(LABEL_PROJECT)
        .await?
        .into_iter()
        .filter(|c| {
            c.labels
                .get(LABEL_PROJECT)
                .is_some_and(|p| !p.starts_with('-'))
        })
        .collect();
    let versions =
        futures_util::future::join_all(containers.iter().map(|c| running_version(engine, c))).await;
    let mut rows: Vec<Row> = containers
        .into_iter()
        .zip(versions)
        .map(|(c, server_version)| Row {
            project: c.labels.get(LABEL_PROJECT).cloned().unwrap_or_default(),
            role: if is_pooler(&c) { "pooler" } else { "server" }.into(),
            pg_major: match is_pooler(&c) {
                true => None,
                false => server_version
                    .as_deref()
                    .and_then(psql::major_of)
                    .or_else(|| image_major(&c)),
            },
            server_version,
            container: c.name,
            state: c.state,
            health: c.health,
            port: c.labels.get(LABEL_PORT).cloned().unwrap_or_default(),
            config: c.labels.get(LABEL_CONFIG).cloned().unwrap_or_default(),
        })
        .collect();
    rows.sort_by(|a, b| (&a.project, &a.role).cmp(&(&b.project, &b.role)));
    if p.json() {
        p.data(serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        p.info("no pgbox containers on this engine");
        return Ok(0);
    }
    let w = rows
        .iter()
        .map(|r| r.project.len())
        .max()
        .unwrap_or(7)
        .max(7)
        + 2;
    p.data(format!(
        "{:<w$}{:<10}{:<11}{:<12}{:<22}CONFIG",
        "PROJECT", "STATE", "HEALTH", "POSTGRES", "PORT"
    ));
    for r in rows {
        // The exact version of a running server, else the image's major.
        let version = match r.role.as_str() {
            "pooler" => "pgbouncer".into(),
            _ => r
                .server_version
                .or_else(|| r.pg_major.map(|m| m.to_string()))
                .unwrap_or_else(|| "-".into()),
        };
        p.data(format!(
            "{:<w$}{:<10}{:<11}{:<12}{:<22}{}",
            r.project,
            r.state,
            r.health.unwrap_or_else(|| "-".into()),
            version,
            r.port,
            r.config
        ));
    }
    Ok(0)
}
