//! Seeing the database: `pgbox stats` (one screen with advice), `pgbox top` (a
//! live view) and `pgbox metrics` (a Prometheus endpoint with postgres_exporter's
//! names), all from the same looks at the server.
//!
//! Queries go from the host through tokio-postgres (typed rows, no psql output to
//! scrape), on the connection code `migrate` uses: the project's password from its
//! secret file and its TLS, under the command's own `application_name`. Container
//! numbers come from the engine's stats API (`engine::stats`), pgbox's own facts
//! from its records (`facts`). `sample` reads, `advice` judges, and each command
//! module only shows.

pub mod advice;
pub mod exporter;
pub mod facts;
pub mod metrics;
pub mod prom;
pub mod sample;
pub mod service;
pub mod stats;
pub mod top;

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::engine::{cpu_percent, ContainerSample, Engine};
use crate::pgclient::Target;

/// The project's server and container, as one command sees them.
pub struct Source {
    pub settings: Settings,
    /// None when no engine answers (the server may still answer on its port).
    pub engine: Option<Engine>,
    target: Target,
}

/// The container's resource use, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// Percent of one core; None on the first sample.
    pub cpu_percent: Option<f64>,
    /// The CPU figure is the average since the container started (one sample).
    pub cpu_since_start: bool,
    pub mem_used_bytes: u64,
    /// The memory limit set in pgbox.toml (None: no limit).
    pub mem_limit_bytes: Option<u64>,
}

impl Source {
    pub fn new(
        s: &Settings,
        engine: Option<Engine>,
        application_name: &str,
        connect_timeout: Duration,
    ) -> anyhow::Result<Source> {
        let target = Target::own(s, None)?.named(application_name, connect_timeout);
        Ok(Source {
            settings: s.clone(),
            engine,
            target,
        })
    }

    /// A session in the project's database that never waits long: a look must
    /// not queue behind a lock a user's session holds.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let c = self.target.connect().await?;
        c.batch_execute("set lock_timeout = '1s'; set statement_timeout = '5s'")
            .await?;
        Ok(c)
    }

    /// Where to read `pg_stat_statements` for the database `c` is in: there when it
    /// has the extension, else in `postgres` (see [`sample::Statements`]).
    pub async fn statements(&self, c: &Client) -> sample::Statements {
        if sample::has_statements(c).await.unwrap_or(false) {
            return sample::Statements::Here;
        }
        let Ok(pg) = self.target.connect_to("postgres").await else {
            return sample::Statements::Missing;
        };
        let _ = pg
            .batch_execute("set lock_timeout = '1s'; set statement_timeout = '5s'")
            .await;
        match sample::has_statements(&pg).await {
            Ok(true) => sample::Statements::Postgres(pg),
            _ => sample::Statements::Missing,
        }
    }

    /// The container's counters now; None without an engine or a running container.
    pub async fn sample(&self) -> Option<ContainerSample> {
        let e = self.engine.as_ref()?;
        e.stats(&self.settings.container_name()).await.ok()
    }

    /// Seconds since the container started; None without an engine or container.
    pub async fn started_at(&self) -> Option<f64> {
        let e = self.engine.as_ref()?;
        let info = e.inspect(&self.settings.container_name()).await.ok()??;
        let t = chrono::DateTime::parse_from_rfc3339(info.started_at.as_deref()?).ok()?;
        Some((chrono::Utc::now() - t.to_utc()).num_milliseconds() as f64 / 1000.0)
    }

    /// A task that samples the container every `every` and keeps the newest look
    /// (with CPU against the sample before): the engine answers a stats call at its
    /// collector's next tick, up to a second later, so no scrape or screen waits
    /// for it. The task ends with the receiver.
    pub fn sampler(&self, every: Duration) -> watch::Receiver<Option<Container>> {
        let (tx, rx) = watch::channel(None);
        let Some(engine) = self.engine.clone() else {
            return rx;
        };
        let name = self.settings.container_name();
        let limit = self.settings.memory_limit;
        tokio::spawn(async move {
            let mut prev: Option<ContainerSample> = None;
            loop {
                let cur = engine.stats(&name).await.ok();
                let look = cur.map(|c| container(limit, prev.as_ref(), &c));
                if tx.send(look).is_err() {
                    return;
                }
                prev = cur;
                tokio::time::sleep(every).await;
            }
        });
        rx
    }

    /// What to show of `cur`, with CPU against `prev`.
    pub fn container(&self, prev: Option<&ContainerSample>, cur: &ContainerSample) -> Container {
        container(self.settings.memory_limit, prev, cur)
    }
}

fn container(
    limit: Option<u64>,
    prev: Option<&ContainerSample>,
    cur: &ContainerSample,
) -> Container {
    Container {
        cpu_percent: prev.and_then(|p| cpu_percent(p, cur)),
        cpu_since_start: false,
        mem_used_bytes: cur.mem_used_bytes,
        mem_limit_bytes: limit.map(|_| cur.mem_limit_bytes).filter(|l| *l > 0),
    }
}
