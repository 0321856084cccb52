//! Helper containers beside the project's server (an upgrade's two clusters, a
//! point-in-time restore's recovering cluster and its recovered copy): started and
//! waited for like the server, stopped cleanly; and the project's own server
//! stopped for a step that replaces its data.

use std::time::Duration;

use crate::config::{Settings, StorageMode};
use crate::container::spec::{self, READY_MARKER};
use crate::engine::{ContainerSpec, Engine, WaitError};
use crate::error::Fail;
use crate::printer::Printer;
use crate::storage;

/// Create and start a helper, and wait until its server accepts connections.
pub async fn start(
    engine: &Engine,
    spec: &ContainerSpec,
    what: &str,
    timeout: Duration,
    p: &Printer,
) -> anyhow::Result<()> {
    let _ = engine.remove_container(&spec.name, true).await;
    engine.create_container(spec).await?;
    let bar = p.spinner(format!("starting {what}"));
    let waited = engine
        .start_and_wait(&spec.name, READY_MARKER, timeout, |l| {
            p.verbose_line(&bar, l)
        })
        .await;
    bar.finish_and_clear();
    match waited {
        Ok(_) => Ok(()),
        Err(WaitError::Died {
            exit_code,
            last_lines,
        }) => Err(Fail::new(format!(
            "{what} did not start (exit code {exit_code}); its last lines:\n  {}",
            last_lines.join("\n  ")
        ))
        .into()),
        Err(WaitError::Timeout(t, last_lines)) => Err(Fail::new(format!(
            "{what} was not ready after {}s; its last lines:\n  {}",
            t.as_secs(),
            last_lines.join("\n  ")
        ))
        .into()),
        Err(WaitError::Engine(e)) => Err(e.into()),
    }
}

/// Stop a helper cleanly (a cluster's clean shutdown, and in fallback mode its
/// save, happen here), and fail when it did not stop cleanly.
pub async fn stop_cleanly(engine: &Engine, name: &str, mode: StorageMode) -> anyhow::Result<()> {
    engine
        .stop_container(name, spec::stop_timeout(mode))
        .await?;
    match engine.inspect(name).await?.and_then(|c| c.exit_code) {
        Some(0) => Ok(()),
        code => Err(Fail::new(format!(
            "`{name}` did not shut down cleanly (exit code {})",
            code.map_or("unknown".into(), |c| c.to_string())
        ))
        .hint("`docker logs` on it shows why")
        .into()),
    }
}

/// The project's own container stopped; in fallback mode only once its data is
/// saved (`why` names the command in the message that asks to save it).
pub async fn stop_live(
    engine: &Engine,
    s: &Settings,
    mode: StorageMode,
    why: &str,
    p: &Printer,
) -> anyhow::Result<()> {
    let name = s.container_name();
    if let Some(c) = engine.inspect(&name).await? {
        if c.running {
            let bar = p.spinner(format!("stopping `{name}`"));
            let r = engine.stop_container(&name, spec::stop_timeout(mode)).await;
            bar.finish_and_clear();
            r?;
        }
        if mode == StorageMode::Fallback {
            storage::fallback::ensure_saved(engine, s, &name, c.running, why, p).await?;
        }
    }
    Ok(())
}
