//! `pgbox down` as an operation: graceful stop, optionally removing the container
//! or the data.
//!
//! Data is deleted only with `--purge`, after a confirmation (or `--yes`). The
//! question is asked before anything is stopped, so a refused or impossible
//! confirmation leaves everything as it was. Files in a direct-mode folder belong
//! to the container's UID, so they are deleted through the engine. In fallback
//! mode a stop succeeds only when the entrypoint saved the cluster; otherwise the
//! operation fails and the container, holding the only up-to-date copy, is kept.
//! `--purge` also removes the copy a `pgbox restore --into-new` made, and says so.
//! The project lock is taken first.

use std::time::Instant;

use crate::config::{Settings, StorageMode};
use crate::container::spec;
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;
use crate::storage::{self, fallback};

/// What `pgbox down` was asked for.
pub struct DownOptions {
    /// Remove the container after stopping it.
    pub rm: bool,
    /// Remove the container and delete the data.
    pub purge: bool,
    /// Confirm `purge` without asking.
    pub yes: bool,
}

/// How a `down` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Down {
    Done,
    /// The purge was not confirmed; nothing changed.
    Declined,
}

/// Stop the project's server (see the module docs).
pub async fn down(
    engine: &Engine,
    s: &Settings,
    args: DownOptions,
    p: &Printer,
) -> anyhow::Result<Down> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "down")?;
    let name = s.container_name();
    let mode = storage::in_effect(s)?.mode;
    let mut what = match mode {
        StorageMode::Volume => format!("volume `{}`", s.volume),
        _ => format!("data folder `{}`", s.data_dir.display()),
    };
    let copy = match args.purge {
        true => crate::state::Recovered::load(s)?,
        false => None,
    };
    if let Some(r) = &copy {
        what.push_str(&format!(
            " and the recovered copy `{}` (port {}) with its data",
            r.container, r.port
        ));
    }

    if args.purge {
        if let Some(up) = crate::state::Upgrade::load(s)? {
            return Err(Fail::new(format!(
                "`--purge` would delete one side of the upgrade {} → {} and leave the other",
                up.old.major, up.new.major
            ))
            .hint("end the upgrade first: `pgbox upgrade --finalize` or `pgbox upgrade --rollback`; then purge")
            .code(crate::error::EXIT_USAGE)
            .into());
        }
        let ok = p.confirm(
            format!("Delete {what} of `{}` for good?", s.project),
            args.yes,
            format!("`--purge` deletes {what}"),
            "pass `--yes` to confirm without a terminal",
        )?;
        if !ok {
            p.info("nothing deleted");
            return Ok(Down::Declined);
        }
    }

    // The pooler holds no state: it goes first, so no client spins on a stopping server.
    if crate::pooler::remove(engine, s).await? {
        p.done(format!(
            "stopped and removed the pooler `{}`",
            crate::pooler::container_name(s)
        ));
    }
    let container = engine.inspect(&name).await?;
    if let Some(c) = &container {
        spec::check_ownership(s, &c.labels)?;
        let stopped = if c.running {
            let bar = p.spinner(format!("stopping `{name}`"));
            let t = Instant::now();
            let r = engine.stop_container(&name, spec::stop_timeout(mode)).await;
            bar.finish_and_clear();
            r?;
            Some(t.elapsed())
        } else {
            None
        };
        // Fallback: the stop is a success only once the newest data is in the tarball,
        // and a container holding unsaved data is never removed (`--purge` deletes it all).
        if mode == StorageMode::Fallback && !args.purge {
            fallback::ensure_saved(engine, s, &name, stopped.is_some(), "pgbox down", p).await?;
        }
        match stopped {
            Some(t) => p.done(format!("stopped `{name}` in {:.1}s", t.as_secs_f64())),
            None => p.info(format!("`{name}` is not running")),
        }
        if args.rm || args.purge {
            engine.remove_container(&name, false).await?;
            p.done(format!("removed container `{name}`"));
            crate::pooler::remove_network(engine, s).await?;
        }
    } else {
        p.info(format!("`{name}` does not exist; nothing to stop"));
    }

    if args.purge {
        storage::delete_data(engine, s, mode, container.map(|c| c.image), p).await?;
        if let Some(r) = &copy {
            super::recovered::remove(engine, s, r).await?;
        }
        p.done(format!("deleted {what}"));
    }
    Ok(Down::Done)
}
