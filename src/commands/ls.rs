//! `pgbox ls`: every pgbox-managed container on this host, any project.

use serde::Serialize;

use super::Ctx;
use crate::engine::{LABEL_CONFIG, LABEL_PORT, LABEL_PROJECT};

#[derive(Serialize)]
struct Row {
    project: String,
    container: String,
    state: String,
    health: Option<String>,
    port: String,
    config: String,
}

pub async fn run(ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let engine = ctx.engine().await?;
    let mut rows: Vec<Row> = engine
        .list_labelled(LABEL_PROJECT)
        .await?
        .into_iter()
        .filter(|c| {
            c.labels
                .get(LABEL_PROJECT)
                .is_some_and(|p| !p.starts_with('-'))
        })
        .map(|c| Row {
            project: c.labels.get(LABEL_PROJECT).cloned().unwrap_or_default(),
            container: c.name,
            state: c.state,
            health: c.health,
            port: c.labels.get(LABEL_PORT).cloned().unwrap_or_default(),
            config: c.labels.get(LABEL_CONFIG).cloned().unwrap_or_default(),
        })
        .collect();
    rows.sort_by(|a, b| a.project.cmp(&b.project));
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
        "{:<w$}{:<10}{:<11}{:<22}CONFIG",
        "PROJECT", "STATE", "HEALTH", "PORT"
    ));
    for r in rows {
        p.data(format!(
            "{:<w$}{:<10}{:<11}{:<22}{}",
            r.project,
            r.state,
            r.health.unwrap_or_else(|| "-".into()),
            r.port,
            r.config
        ));
    }
    Ok(0)
}
