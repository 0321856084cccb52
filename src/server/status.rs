//! `pgbox status` as an operation: what runs, whether it answers, and where the
//! data lives, gathered into one [`Report`] that the command prints as JSON or as
//! rows. Warnings found on the way (unsaved writes, unbounded risk, copies kept
//! aside) travel in the report too, so the command prints everything in one place.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Settings, StorageMode};
use crate::connection;
use crate::container::{ctl, psql};
use crate::engine::Engine;
use crate::probe::{self, Ping};
use crate::state::{Recovered, Upgrade};
use crate::storage::{self, fallback};

#[derive(Serialize)]
pub struct Storage {
    pub mode: String,
    pub reason: Option<String>,
    pub location: String,
    /// Fallback: when `pgsql.tar.zst` was last written (RFC 3339).
    pub last_save: Option<String>,
    /// Fallback: what a crash or a removed container can cost, when unbounded.
    pub at_risk: Option<String>,
    /// Fallback: copies of a cluster the entrypoint kept aside, never deleted by pgbox.
    pub kept_aside: Vec<String>,
}

/// The copy `pgbox restore --into-new` made (`.pgbox/recovered.json`), and how it is.
#[derive(Serialize)]
pub struct RecoveredCopy {
    #[serde(flatten)]
    pub record: Recovered,
    /// Its container's state (`running`, `exited`, or `absent`).
    pub state: String,
    /// Since it was made (`42s`, `5m`, `3h`, `2d`).
    pub age: String,
}

#[derive(Serialize)]
pub struct Report {
    pub project: String,
    pub container: String,
    pub state: String,
    pub running: bool,
    pub health: Option<String>,
    pub entrypoint_state: Option<String>,
    pub ready: bool,
    pub url: String,
    pub port: u16,
    pub bind: String,
    pub image: Option<String>,
    /// The PostgreSQL major: the running server's, else the configured one.
    pub pg_major: u32,
    /// The running server's exact version (e.g. `17.6`); None when it does not answer.
    pub server_version: Option<String>,
    pub started_at: Option<String>,
    pub storage: Storage,
    pub engine: String,
    pub config: String,
    /// `[backup] pitr`: the WAL archiver's health, from `pg_stat_archiver`.
    pub archive: Option<Archive>,
    /// `[backup] pitr`: the times one can restore to, from the oldest base backup's
    /// end to the newest archived segment (RFC 3339); None without a base backup.
    /// Filled by the caller, which sees the backups (this layer does not).
    pub recoverable: Option<(String, String)>,
    /// A major upgrade that did not finish or awaits `--finalize` (`.pgbox/upgrade.json`).
    pub upgrade: Option<Upgrade>,
    /// `[backup.remote]`: the newest backup shipped off-site and its age.
    pub offsite: Option<crate::remote::listing::Offsite>,
    /// The copy of a `pgbox restore --into-new`, until `--discard-new` removes it.
    pub recovered: Option<RecoveredCopy>,
    /// The storage mode in effect (what `storage.mode` spells).
    #[serde(skip)]
    pub mode: StorageMode,
    /// Warnings for stderr, in the order they are to be printed.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Look at the project's container, server and data (see the module docs).
pub async fn status(engine: &Engine, s: &Settings) -> anyhow::Result<Report> {
    let name = s.container_name();
    let info = engine.inspect(&name).await?;
    let running = info.as_ref().is_some_and(|c| c.running);
    let mut warnings = Vec::new();
    let mut archive = None;
    // The entrypoint's state and the server's version in one exec, beside the ping.
    let (ready, entrypoint_state, server_version) = if running {
        let host = s.url_host();
        let ping = probe::ping(&host, s.port, Duration::from_secs(2));
        let query = if s.pitr {
            ARCHIVER_SQL
        } else {
            "show server_version"
        };
        // Through the published port first: no exec (an exec costs more than the rest
        // of `status`); an exec when the server does not answer there (down,
        // starting, maintenance) or refuses this connection.
        let (ping, direct) = tokio::join!(ping, over_port(s));
        let (state, out) = match direct {
            Some(found) => found,
            None => {
                let version = psql::argv(s, "postgres", &["-qAt", "-c", query]);
                ctl::state_then(engine, &name, &version).await
            }
        };
        let mut lines = out.as_deref().unwrap_or("").lines();
        let version = lines
            .next()
            .and_then(psql::version_number)
            .map(String::from);
        archive = lines.next().and_then(Archive::parse);
        (ping == Ping::Ready, state, version)
    } else {
        (false, None, None)
    };
    if let Some(a) = &archive {
        warnings.extend(a.warnings());
    }
    let storage::InEffect { mode, decision } = storage::in_effect(s)?;
    let fallback = mode == StorageMode::Fallback;
    if fallback && info.as_ref().is_some_and(|c| !c.running) {
        match fallback::unsaved(engine, &name).await {
            Ok(Some(why)) => warnings.push(format!(
                "`{name}` holds writes that are not in `pgsql.tar.zst` ({why}); `pgbox down` or `pgbox up` saves them, removing the container loses them"
            )),
            Ok(None) => {}
            Err(e) => warnings.push(format!(
                "cannot tell whether `{name}` holds writes that are not in `pgsql.tar.zst`: {e}; `pgbox down` or `pgbox up` saves them, removing the container loses them"
            )),
        }
    }
    let at_risk = fallback.then(|| fallback::at_risk(s)).flatten();
    let kept = if fallback {
        fallback::kept_aside(s)?
    } else {
        Vec::new()
    };
    let upgrade = Upgrade::load(s)?;
    let recovered = match Recovered::load(s)? {
        Some(record) => Some(recovered_copy(engine, record).await?),
        None => None,
    };
    warnings.extend(upgrade.as_ref().map(Upgrade::describe));
    warnings.extend(at_risk.clone());
    warnings.extend(kept.iter().map(|k| fallback::describe_kept(k)));
    Ok(Report {
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
        url: connection::url(s, None),
        port: s.port,
        bind: s.bind.clone(),
        image: info.as_ref().map(|c| c.image.clone()),
        pg_major: server_version
            .as_deref()
            .and_then(psql::major_of)
            .unwrap_or(s.pg_version),
        server_version,
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
            last_save: fallback.then(|| last_save(s)).flatten(),
            at_risk,
            kept_aside: kept.iter().map(|k| k.display().to_string()).collect(),
        },
        engine: engine.describe(),
        config: s.config_path.display().to_string(),
        archive,
        recoverable: None,
        upgrade,
        offsite: crate::remote::listing::Offsite::of(s),
        recovered,
        mode,
        warnings,
    })
}

/// The archiver's health of the project's running server; None when it is not
/// running or does not answer.
pub async fn archiver(engine: &Engine, s: &Settings) -> Option<Archive> {
    let name = s.container_name();
    if !engine.inspect(&name).await.ok()??.running {
        return None;
    }
    let out = psql::sql(engine, &name, s, "postgres", ARCHIVER_SQL)
        .await
        .ok()?;
    out.lines().nth(1).and_then(Archive::parse)
}

async fn recovered_copy(engine: &Engine, record: Recovered) -> anyhow::Result<RecoveredCopy> {
    let state = engine
        .inspect(&record.container)
        .await?
        .map_or_else(|| "absent".to_string(), |c| c.state);
    let age = chrono::DateTime::parse_from_rfc3339(&record.created_at)
        .map(|t| crate::printer::age((chrono::Utc::now() - t.to_utc()).num_seconds().max(0)))
        .unwrap_or_else(|_| "?".into());
    Ok(RecoveredCopy { record, state, age })
}

/// Where the entrypoint writes its state (`STATE_FILE` in the image's
/// runtime/common.sh; `pgbox-ctl state` prints it, `UNKNOWN` when it is missing).
const STATE_FILE: &str = "/tmp/container-state";

/// The entrypoint's state and what the status exec's psql would print (the server's
/// version, with `[backup] pitr` the archiver's line too), over ONE connection to the
/// published port as the project's superuser: `pg_read_file` reads the state file
/// inside the container, so no exec is needed. None when the server does not answer
/// there or refuses (then the caller asks through an exec, which says why).
async fn over_port(s: &Settings) -> Option<(Option<String>, Option<String>)> {
    use crate::pgclient::tls::Check;
    let password = crate::secrets::read_password(s).ok()?;
    let host = s.url_host();
    let mut config = tokio_postgres::Config::new();
    config
        .host(host.trim_start_matches('[').trim_end_matches(']'))
        .port(s.port)
        .user(&s.user)
        .password(password)
        .dbname("postgres")
        .application_name("pgbox status")
        .connect_timeout(Duration::from_secs(2));
    let check = Check::for_project(s);
    config.ssl_mode(check.ssl_mode());
    let tls = check.connector().ok()?;
    let rest = if s.pitr {
        format!("({ARCHIVER_SQL})")
    } else {
        "current_setting('server_version')".to_string()
    };
    let sql = format!(
        "select coalesce(pg_read_file({}, 0, 64, true), 'UNKNOWN'), {rest}",
        psql::lit(STATE_FILE)
    );
    let work = async {
        let (client, conn) = config.connect(tls).await.ok()?;
        let conn = tokio::spawn(conn);
        let rows = client.simple_query(&sql).await.ok();
        drop(client);
        let _ = conn.await;
        rows?.into_iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.get(0).map(|v| v.trim().to_string()),
                r.get(1).map(|v| v.trim().to_string()),
            )),
            _ => None,
        })
    };
    tokio::time::timeout(Duration::from_secs(4), work)
        .await
        .ok()
        .flatten()
}

/// The server's version and, on the next line, the archiver's health (`|`-separated).
const ARCHIVER_SQL: &str = "select current_setting('server_version') || chr(10) || concat_ws('|',
    archived_count, coalesce(last_archived_wal, ''), coalesce(to_char(last_archived_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),
    failed_count, coalesce(last_failed_wal, ''), coalesce(to_char(last_failed_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),
    (select count(*) from pg_ls_archive_statusdir() where name like '%.ready'),
    coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false))
  from pg_stat_archiver";

/// The WAL archiver's health (`[backup] pitr`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Archive {
    pub archived_count: u64,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    pub failed_count: u64,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<String>,
    /// Segments waiting in pg_wal to be archived.
    pub waiting: u64,
    /// The last attempt failed (no success since).
    pub failing: bool,
}

/// Segments waiting to be archived before status warns that pg_wal is filling up.
const WAITING_WARN: u64 = 8;

impl Archive {
    fn parse(line: &str) -> Option<Archive> {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 8 {
            return None;
        }
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(Archive {
            archived_count: f[0].parse().ok()?,
            last_archived_wal: opt(f[1]),
            last_archived_time: opt(f[2]),
            failed_count: f[3].parse().ok()?,
            last_failed_wal: opt(f[4]),
            last_failed_time: opt(f[5]),
            waiting: f[6].parse().ok()?,
            failing: f[7] == "t" || f[7] == "true",
        })
    }

    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.failing {
            w.push(format!(
                "WAL archiving is failing: `{}` could not be archived (last failure {}); PostgreSQL keeps the segments in pg_wal until it can; `pgbox logs` says why",
                self.last_failed_wal.as_deref().unwrap_or("?"),
                self.last_failed_time.as_deref().unwrap_or("?")
            ));
        }
        if self.waiting >= WAITING_WARN {
            w.push(format!(
                "{} WAL segments ({} MB) wait in pg_wal to be archived; they stay until the archive takes them, so the data disk fills while archiving fails",
                self.waiting,
                self.waiting * 16
            ));
        }
        w
    }

    /// One line for the status rows.
    pub fn summary(&self) -> String {
        let last = match (&self.last_archived_wal, &self.last_archived_time) {
            (Some(w), Some(t)) => format!("last {w} at {t}"),
            _ => "nothing archived yet".to_string(),
        };
        let state = if self.failing { "FAILING" } else { "ok" };
        format!(
            "{state}: {} archived, {last}; {} failed; {} waiting",
            self.archived_count, self.failed_count, self.waiting
        )
    }
}

/// When `pgsql.tar.zst` was last written (RFC 3339), or None when it never was.
fn last_save(s: &Settings) -> Option<String> {
    let t = std::fs::metadata(s.data_dir.join("pgsql.tar.zst"))
        .and_then(|m| m.modified())
        .ok()?;
    Some(
        chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
