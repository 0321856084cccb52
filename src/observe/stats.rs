//! `pgbox stats`: one look, in under a second. Two samples of the counters half a
//! second apart give the rates (and CPU); everything else is read once, between
//! them. The report is printed as rows, or as JSON with `--json`.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde::Serialize;

use super::facts::{self, Facts};
use super::sample::{self, Rates, Snapshot, Want};
use super::{advice, Container, Source};
use crate::printer::{age, size, Printer};

/// The shortest and longest time between the two samples of the counters.
pub const MIN_INTERVAL: Duration = Duration::from_millis(300);
pub const MAX_INTERVAL: Duration = Duration::from_millis(850);

#[derive(Debug, Serialize)]
pub struct Report {
    pub snapshot: Snapshot,
    pub rates: Rates,
    pub container: Option<Container>,
    pub facts: Facts,
    pub advice: Vec<String>,
}

/// Look at the server and the container (see the module doc).
///
/// The engine answers a stats call at its collector's next tick (up to a second
/// away), so the interval of the rates ends when that answer comes, between
/// [`MIN_INTERVAL`] and [`MAX_INTERVAL`]; one container sample gives memory, and
/// CPU is its average since the container started.
pub async fn collect(src: &Source) -> anyhow::Result<Report> {
    let client = src.connect().await?;
    let started = tokio::time::Instant::now();
    let first = sample::counters(&client).await?;
    let want = Want {
        tables: 10,
        statements: 5,
        sessions: false,
    };
    let boxed = async {
        let deadline = started + MAX_INTERVAL;
        let s = tokio::time::timeout_at(deadline, src.sample())
            .await
            .ok()
            .flatten();
        tokio::time::sleep_until(started + MIN_INTERVAL).await;
        s
    };
    let (snap, sampled, since) = tokio::join!(
        async {
            let stm = src.statements(&client).await;
            sample::snapshot(&client, stm.client(&client), want).await
        },
        boxed,
        src.started_at()
    );
    let mut snapshot = snap?;
    snapshot.counters = sample::counters(&client).await?;
    let rates = Rates::between(&first, &snapshot.counters);
    let container = sampled.map(|b| {
        let mut c = src.container(None, &b);
        c.cpu_percent = since.map(|secs| b.cpu_total_ns as f64 / 1e7 / secs.max(1.0));
        c.cpu_since_start = true;
        c
    });
    let facts = facts::read(&src.settings);
    let advice = advice::advise(&snapshot, &rates, container.as_ref(), &facts);
    Ok(Report {
        snapshot,
        rates,
        container,
        facts,
        advice,
    })
}

fn when(epoch: f64) -> String {
    Utc.timestamp_opt(epoch as i64, 0).single().map_or_else(
        || "?".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn ago(now: f64, t: Option<f64>) -> String {
    t.map_or_else(
        || "never".into(),
        |t| format!("{} ago", age((now - t) as i64)),
    )
}

/// The summary rows `stats` prints and `top` shows in its header.
pub fn summary(r: &Report) -> Vec<(&'static str, String)> {
    let s = &r.snapshot;
    let c = &s.connections;
    let mut rows = vec![
        (
            "server",
            format!(
                "PostgreSQL {}, up {} (since {})",
                s.server.version,
                age(s.server.uptime_s as i64),
                when(s.server.started_at)
            ),
        ),
        (
            "connections",
            format!(
                "{} of {} ({} active, {} idle, {} idle in transaction); max_connections {}",
                c.total,
                c.max - c.reserved,
                c.active,
                c.idle,
                c.idle_in_transaction,
                c.max
            ),
        ),
        (
            "throughput",
            format!(
                "{:.0} TPS, cache hit {} (over {:.1}s)",
                r.rates.tps,
                r.rates
                    .cache_hit_pct
                    .map_or_else(|| "-".into(), |h| format!("{h:.1}%")),
                r.rates.interval_s
            ),
        ),
        (
            "size",
            format!(
                "database `{}` {}; data location {} (all databases and WAL)",
                s.database,
                size(s.database_bytes.max(0) as u64),
                size(s.data_bytes.max(0) as u64)
            ),
        ),
        (
            "wraparound",
            s.wraparound.as_ref().map_or_else(
                || "-".into(),
                |w| {
                    format!(
                        "{:.1}% of the limit (`{}`, xid age {})",
                        w.pct, w.database, w.xid_age
                    )
                },
            ),
        ),
        (
            "container",
            match &r.container {
                None => "- (no engine, or the container is not running)".into(),
                Some(b) => {
                    let cpu = b
                        .cpu_percent
                        .map_or_else(|| "-".into(), |p| format!("{p:.0}%"));
                    let cpu = if b.cpu_since_start {
                        format!("{cpu} (average since start)")
                    } else {
                        cpu
                    };
                    let mem = match b.mem_limit_bytes {
                        Some(l) => format!(
                            "{} of {} ({:.0}%)",
                            size(b.mem_used_bytes),
                            size(l),
                            100.0 * b.mem_used_bytes as f64 / l as f64
                        ),
                        None => format!("{} (no limit)", size(b.mem_used_bytes)),
                    };
                    format!("CPU {cpu}, memory {mem}")
                }
            },
        ),
        (
            "backup",
            match &r.facts.newest_backup {
                None => "none".into(),
                Some(b) => format!(
                    "newest {} old, {}",
                    age(b.age_s),
                    if b.verified {
                        "verified"
                    } else {
                        "not verified"
                    }
                ),
            },
        ),
        (
            "schedule",
            match (&r.facts.schedule, &r.facts.last_run) {
                (None, _) => "not installed".into(),
                (Some(e), None) => format!("`{e}`, no run yet"),
                (Some(e), Some(l)) => format!(
                    "`{e}`, last run {} {} ago",
                    if l.ok { "ok" } else { "FAILED" },
                    age(chrono::Utc::now().timestamp() - l.finished_at)
                ),
            },
        ),
    ];
    if r.facts.pitr {
        rows.push((
            "archiver",
            match &s.archiver {
                None => "archive_mode is off".into(),
                Some(a) => format!(
                    "{} archived, {} failed, last {}{}",
                    a.archived_count,
                    a.failed_count,
                    a.last_archived_age_s
                        .map_or_else(|| "never".into(), |x| format!("{} ago", age(x as i64))),
                    if a.failing { ", FAILING" } else { "" }
                ),
            },
        ));
    }
    rows
}

pub fn print(r: &Report, p: &Printer) -> anyhow::Result<()> {
    if p.json() {
        p.data(serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    for (k, v) in summary(r) {
        p.data(format!("{k:<12}{v}"));
    }
    let s = &r.snapshot;
    let now = s.counters.at;
    if !s.tables.is_empty() {
        p.data("");
        p.data("largest tables");
        p.data(format!(
            "  {:<32} {:>9} {:>10} {:>10} {:>6}  {:<14} {:<14}",
            "table", "size~", "live", "dead", "dead%", "last vacuum", "last analyze"
        ));
        for t in &s.tables {
            p.data(format!(
                "  {:<32} {:>9} {:>10} {:>10} {:>5.1}%  {:<14} {:<14}",
                format!("{}.{}", t.schema, t.name),
                size(t.total_bytes.max(0) as u64),
                t.live,
                t.dead,
                t.dead_ratio * 100.0,
                ago(now, t.last_vacuum),
                ago(now, t.last_analyze)
            ));
        }
    }
    for (title, list) in [
        ("top queries by total time", &s.top_total),
        ("top queries by mean time", &s.top_mean),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            p.data("");
            p.data(title);
            p.data(format!(
                "  {:>8} {:>11} {:>10}  query",
                "calls", "total ms", "mean ms"
            ));
            for q in list {
                p.data(format!(
                    "  {:>8} {:>11.1} {:>10.2}  {}",
                    q.calls,
                    q.total_ms,
                    q.mean_ms,
                    clip(&q.query, 80)
                ));
            }
        }
    }
    if !s.blocked.is_empty() {
        p.data("");
        p.data("blocked sessions");
        for b in &s.blocked {
            p.data(format!(
                "  pid {} ({}@{}) waiting {}: {}",
                b.pid,
                b.user,
                b.database,
                age(b.waiting_s as i64),
                clip(&b.query, 60)
            ));
            p.data(format!(
                "    blocked by pid {} ({}, transaction open {}): {}",
                b.blocker_pid,
                b.blocker_state,
                age(b.blocker_xact_s as i64),
                clip(&b.blocker_query, 60)
            ));
        }
    }
    p.data("");
    if r.advice.is_empty() {
        p.data("advice      none: nothing looks wrong");
    } else {
        p.data("advice");
        for a in &r.advice {
            p.data(format!("  ! {a}"));
        }
    }
    Ok(())
}

/// At most `n` characters, on one line.
pub fn clip(s: &str, n: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        one
    } else {
        let mut t: String = one.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
