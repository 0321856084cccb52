//! The metrics postgres_exporter 0.11 also serves, read as it reads them: the
//! same names, types, HELP texts and labels (with its constant `server` label),
//! for `pgbox metrics`. Checked against the real Debian binary by the e2e test
//! `shared_metrics_agree_with_postgres_exporter_in_name_type_and_labels`.
//!
//! A few families beyond 0.11 (`pg_stat_user_tables_n_*_tup`, named as its later
//! collector names them) and the server-side `pgbox_*` figures (wraparound ratio,
//! archive lag, data size) come from the same pipelined queries.

use chrono::DateTime;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::prom::{Family, Kind};

/// HELP and type of the columns postgres_exporter 0.11 knows; other columns of the
/// same views are exported as it does, untyped with "Unknown metric from VIEW".
const STAT_DATABASE: &[(&str, Kind, &str)] = &[
    ("numbackends", Kind::Gauge, "Number of backends currently connected to this database. This is the only column in this view that returns a value reflecting current state; all other columns return the accumulated values since the last reset."),
    ("xact_commit", Kind::Counter, "Number of transactions in this database that have been committed"),
    ("xact_rollback", Kind::Counter, "Number of transactions in this database that have been rolled back"),
    ("blks_read", Kind::Counter, "Number of disk blocks read in this database"),
    ("blks_hit", Kind::Counter, "Number of times disk blocks were found already in the buffer cache, so that a read was not necessary (this only includes hits in the PostgreSQL buffer cache, not the operating system's file system cache)"),
    ("tup_returned", Kind::Counter, "Number of rows returned by queries in this database"),
    ("tup_fetched", Kind::Counter, "Number of rows fetched by queries in this database"),
    ("tup_inserted", Kind::Counter, "Number of rows inserted by queries in this database"),
    ("tup_updated", Kind::Counter, "Number of rows updated by queries in this database"),
    ("tup_deleted", Kind::Counter, "Number of rows deleted by queries in this database"),
    ("conflicts", Kind::Counter, "Number of queries canceled due to conflicts with recovery in this database. (Conflicts occur only on standby servers; see pg_stat_database_conflicts for details.)"),
    ("temp_files", Kind::Counter, "Number of temporary files created by queries in this database. All temporary files are counted, regardless of why the temporary file was created (e.g., sorting or hashing), and regardless of the log_temp_files setting."),
    ("temp_bytes", Kind::Counter, "Total amount of data written to temporary files by queries in this database. All temporary files are counted, regardless of why the temporary file was created, and regardless of the log_temp_files setting."),
    ("deadlocks", Kind::Counter, "Number of deadlocks detected in this database"),
    ("blk_read_time", Kind::Counter, "Time spent reading data file blocks by backends in this database, in milliseconds"),
    ("blk_write_time", Kind::Counter, "Time spent writing data file blocks by backends in this database, in milliseconds"),
    ("stats_reset", Kind::Counter, "Time at which these statistics were last reset"),
];

const STAT_DATABASE_CONFLICTS: &[(&str, Kind, &str)] = &[
    (
        "confl_tablespace",
        Kind::Counter,
        "Number of queries in this database that have been canceled due to dropped tablespaces",
    ),
    (
        "confl_lock",
        Kind::Counter,
        "Number of queries in this database that have been canceled due to lock timeouts",
    ),
    (
        "confl_snapshot",
        Kind::Counter,
        "Number of queries in this database that have been canceled due to old snapshots",
    ),
    (
        "confl_bufferpin",
        Kind::Counter,
        "Number of queries in this database that have been canceled due to pinned buffers",
    ),
    (
        "confl_deadlock",
        Kind::Counter,
        "Number of queries in this database that have been canceled due to deadlocks",
    ),
];

const BGWRITER: &[(&str, &str)] = &[
    ("checkpoints_timed", "Number of scheduled checkpoints that have been performed"),
    ("checkpoints_req", "Number of requested checkpoints that have been performed"),
    ("checkpoint_write_time", "Total amount of time that has been spent in the portion of checkpoint processing where files are written to disk, in milliseconds"),
    ("checkpoint_sync_time", "Total amount of time that has been spent in the portion of checkpoint processing where files are synchronized to disk, in milliseconds"),
    ("buffers_checkpoint", "Number of buffers written during checkpoints"),
    ("buffers_clean", "Number of buffers written by the background writer"),
    ("maxwritten_clean", "Number of times the background writer stopped a cleaning scan because it had written too many buffers"),
    ("buffers_backend", "Number of buffers written directly by a backend"),
    ("buffers_backend_fsync", "Number of times a backend had to execute its own fsync call (normally the background writer handles those even when the backend does its own write)"),
    ("buffers_alloc", "Number of buffers allocated"),
    ("stats_reset", "Time at which these statistics were last reset"),
];

/// Rows of a simple query as (column names, rows of optional text).
async fn table(c: &Client, sql: &str) -> anyhow::Result<(Vec<String>, Vec<Vec<Option<String>>>)> {
    let mut cols = Vec::new();
    let mut rows = Vec::new();
    for m in c.simple_query(sql).await? {
        match m {
            SimpleQueryMessage::RowDescription(d) => {
                cols = d.iter().map(|c| c.name().to_string()).collect()
            }
            SimpleQueryMessage::Row(r) => {
                if cols.is_empty() {
                    cols = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => {}
        }
    }
    Ok((cols, rows))
}

/// A value as the exporter reads it: a number, a boolean, a timestamp (epoch
/// seconds), or NaN for NULL.
fn number(v: Option<&str>) -> f64 {
    let Some(v) = v else { return f64::NAN };
    if let Ok(n) = v.parse::<f64>() {
        return n;
    }
    match v {
        "t" | "on" | "true" => return 1.0,
        "f" | "off" | "false" => return 0.0,
        _ => {}
    }
    DateTime::parse_from_str(&format!("{v}00"), "%Y-%m-%d %H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map_or(f64::NAN, |t| t.timestamp_millis() as f64 / 1000.0)
}

/// `view`'s rows as families named `prefix` + column, labelled by `labels` columns.
fn view_families(
    prefix: &str,
    view: &str,
    known: &[(&str, Kind, &str)],
    labels: &[&str],
    server: &str,
    (cols, rows): &(Vec<String>, Vec<Vec<Option<String>>>),
) -> Vec<Family> {
    let mut out = Vec::new();
    for (i, col) in cols.iter().enumerate() {
        if labels.contains(&col.as_str()) {
            continue;
        }
        let (kind, help) = known
            .iter()
            .find(|k| k.0 == col)
            .map(|k| (k.1, k.2.to_string()))
            .unwrap_or((Kind::Untyped, format!("Unknown metric from {view}")));
        let mut f = Family::new(format!("{prefix}{col}"), kind, help);
        for r in rows {
            let mut l: Vec<(&str, &str)> = labels
                .iter()
                .map(|name| {
                    let j = cols.iter().position(|c| c == name);
                    (*name, j.and_then(|j| r[j].as_deref()).unwrap_or(""))
                })
                .collect();
            l.push(("server", server));
            f.add(&l, number(r[i].as_deref()));
        }
        out.push(f);
    }
    out
}

const ACTIVITY_SQL: &str = "select d.datname, t.state, coalesce(count, 0) as count,
    coalesce(max_tx_duration, 0) as max_tx_duration
  from (values ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'),
               ('fastpath function call'), ('disabled')) as t(state)
  cross join pg_database d
  left join (select datname, state, count(*) as count,
                    max(extract(epoch from now() - xact_start))::float8 as max_tx_duration
               from pg_stat_activity group by datname, state) a
    on t.state = a.state and d.datname = a.datname";

const LOCKS_SQL: &str = "select d.datname, t.mode, coalesce(count, 0) as count
  from (values ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), ('shareupdateexclusivelock'),
               ('sharelock'), ('sharerowexclusivelock'), ('exclusivelock'), ('accessexclusivelock'),
               ('sireadlock')) as t(mode)
  cross join pg_database d
  left join (select database, lower(mode) as mode, count(*) as count from pg_locks
              where database is not null group by database, lower(mode)) l
    on t.mode = l.mode and d.oid = l.database";

const ARCHIVER_SQL: &str = "select archived_count::float8, failed_count::float8,
    extract(epoch from now() - last_archived_time)::float8 from pg_stat_archiver";

const USER_TABLES_SQL: &str = "select current_database()::text, schemaname::text, relname::text,
    n_live_tup::float8, n_dead_tup::float8
  from pg_stat_user_tables order by n_dead_tup desc limit 200";

/// The wraparound ratio, the archive's lag and health, and the data location's size.
const OWN_SQL: &str = "select (select max(age(datfrozenxid))::float8 / 2147483648 from pg_database where datallowconn),
    (select extract(epoch from now() - last_archived_time)::float8 from pg_stat_archiver
      where current_setting('archive_mode') <> 'off'),
    (select coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
       from pg_stat_archiver where current_setting('archive_mode') <> 'off'),
    (select sum(pg_database_size(oid)) from pg_database)::float8
      + coalesce((select sum(size) from pg_ls_waldir()), 0)::float8";

const SETTINGS_SQL: &str = "select name, setting, coalesce(unit, ''), short_desc, vartype
  from pg_settings where vartype in ('bool', 'integer', 'real')";

/// One `pg_settings` row as the exporter names and converts it.
fn setting(
    name: &str,
    setting: &str,
    unit: &str,
    desc: &str,
    vartype: &str,
) -> Option<(String, String, f64)> {
    let name = name.replace('.', "_");
    if vartype == "bool" {
        return Some((
            name,
            desc.to_string(),
            if setting == "on" { 1.0 } else { 0.0 },
        ));
    }
    let v: f64 = setting.parse().ok()?;
    let (suffix, factor) = match unit {
        "" => return Some((name, desc.to_string(), v)),
        "ms" => ("seconds", 0.001),
        "s" => ("seconds", 1.0),
        "min" => ("seconds", 60.0),
        "h" => ("seconds", 3600.0),
        "d" => ("seconds", 86_400.0),
        "B" => ("bytes", 1.0),
        "kB" => ("bytes", 1024.0),
        "MB" => ("bytes", 1024.0 * 1024.0),
        "GB" => ("bytes", 1024.0 * 1024.0 * 1024.0),
        "TB" => ("bytes", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        "8kB" => ("bytes", 8192.0),
        "16kB" => ("bytes", 16384.0),
        "32kB" => ("bytes", 32768.0),
        "16MB" => ("bytes", 16.0 * 1024.0 * 1024.0),
        "32MB" => ("bytes", 32.0 * 1024.0 * 1024.0),
        "64MB" => ("bytes", 64.0 * 1024.0 * 1024.0),
        _ => return None,
    };
    let v = if v == -1.0 { v } else { v * factor };
    let help = format!(
        "{desc} [Units converted to {}.]",
        if suffix == "seconds" {
            "seconds"
        } else {
            "bytes"
        }
    );
    Some((format!("{name}_{suffix}"), help, v))
}

pub async fn server_families(c: &Client, server: &str) -> anyhow::Result<Vec<Family>> {
    let sv: &[(&str, &str)] = &[("server", server)];
    let mut out = Vec::new();
    let q = |sql: &'static str| async move { c.query(sql, &[]).await.map_err(anyhow::Error::from) };
    let q1 =
        |sql: &'static str| async move { c.query_one(sql, &[]).await.map_err(anyhow::Error::from) };
    // All queries go out at once: tokio-postgres pipelines them on the one session,
    // so a scrape costs about one round trip rather than a dozen.
    let (
        stat_db,
        confl,
        activity,
        lock_rows,
        settings,
        sizes,
        bgwriter,
        archiver,
        version,
        tables,
        own,
    ) = tokio::try_join!(
        table(c, "select * from pg_stat_database"),
        table(c, "select * from pg_stat_database_conflicts"),
        q(ACTIVITY_SQL),
        q(LOCKS_SQL),
        q(SETTINGS_SQL),
        q("select datname::text, pg_database_size(oid)::float8 from pg_database"),
        table(c, "select * from pg_stat_bgwriter"),
        q1(ARCHIVER_SQL),
        q1("select current_setting('server_version_num')::int4, version()"),
        q(USER_TABLES_SQL),
        q1(OWN_SQL),
    )?;
    out.extend(view_families(
        "pg_stat_database_",
        "pg_stat_database",
        STAT_DATABASE,
        &["datid", "datname"],
        server,
        &stat_db,
    ));
    out.extend(view_families(
        "pg_stat_database_conflicts_",
        "pg_stat_database_conflicts",
        STAT_DATABASE_CONFLICTS,
        &["datid", "datname"],
        server,
        &confl,
    ));

    let mut count = Family::new(
        "pg_stat_activity_count",
        Kind::Gauge,
        "number of connections in this state",
    );
    let mut maxtx = Family::new(
        "pg_stat_activity_max_tx_duration",
        Kind::Gauge,
        "max duration in seconds any active transaction has been running",
    );
    for r in activity {
        let (db, state): (String, String) = (r.get(0), r.get(1));
        let l = [
            ("datname", db.as_str()),
            ("state", state.as_str()),
            ("server", server),
        ];
        count.add(&l, r.get::<_, i64>(2) as f64);
        maxtx.add(&l, r.get(3));
    }
    out.extend([count, maxtx]);

    let mut locks = Family::new("pg_locks_count", Kind::Gauge, "Number of locks");
    for r in lock_rows {
        let (db, mode): (String, String) = (r.get(0), r.get(1));
        locks.add(
            &[("datname", &db), ("mode", &mode), ("server", server)],
            r.get::<_, i64>(2) as f64,
        );
    }
    out.push(locks);

    for r in settings {
        let (n, v, u, d, t): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if let Some((name, help, value)) = setting(&n, &v, &u, &d, &t) {
            let mut f = Family::new(format!("pg_settings_{name}"), Kind::Gauge, help);
            f.add(sv, value);
            out.push(f);
        }
    }

    let mut size = Family::new(
        "pg_database_size_bytes",
        Kind::Gauge,
        "Disk space used by the database",
    );
    for r in sizes {
        let db: String = r.get(0);
        size.add(&[("datname", &db), ("server", server)], r.get(1));
    }
    out.push(size);

    // PostgreSQL 17 moved the checkpoint columns to pg_stat_checkpointer: only the
    // columns the view has are exported.
    {
        let (cols, rows) = &bgwriter;
        if let Some(r) = rows.first() {
            for (col, help) in BGWRITER {
                if let Some(i) = cols.iter().position(|c| c == col) {
                    let mut f = Family::new(
                        format!("pg_stat_bgwriter_{col}_total"),
                        Kind::Counter,
                        *help,
                    );
                    f.add(sv, number(r[i].as_deref()));
                    out.push(f);
                }
            }
        }
    }

    let a = archiver;
    let mut f = Family::new(
        "pg_stat_archiver_archived_count",
        Kind::Counter,
        "Number of WAL files that have been successfully archived",
    );
    f.add(sv, a.get(0));
    out.push(f);
    let mut f = Family::new(
        "pg_stat_archiver_failed_count",
        Kind::Counter,
        "Number of failed attempts for archiving WAL files",
    );
    f.add(sv, a.get(1));
    out.push(f);
    let mut f = Family::new(
        "pg_stat_archiver_last_archive_age",
        Kind::Gauge,
        "Time in seconds since last WAL segment was successfully archived",
    );
    f.add(sv, a.get::<_, Option<f64>>(2).unwrap_or(f64::NAN));
    out.push(f);

    let (version, full): (i32, String) = (version.get(0), version.get(1));
    let short = format!("{}.{}.0", version / 10000, version % 10000);
    let mut f = Family::new(
        "pg_static",
        Kind::Untyped,
        "Version string as reported by postgres",
    );
    f.add(
        &[
            ("server", server),
            ("short_version", &short),
            ("version", &full),
        ],
        1.0,
    );
    out.push(f);

    // Not in exporter 0.11; named as its later `stat_user_tables` collector names them.
    let mut live = Family::new(
        "pg_stat_user_tables_n_live_tup",
        Kind::Gauge,
        "Estimated number of live rows",
    );
    let mut dead = Family::new(
        "pg_stat_user_tables_n_dead_tup",
        Kind::Gauge,
        "Estimated number of dead rows",
    );
    for r in tables {
        let (d, sch, rel): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let l = [
            ("datname", d.as_str()),
            ("schemaname", &sch),
            ("relname", &rel),
            ("server", server),
        ];
        live.add(&l, r.get(3));
        dead.add(&l, r.get(4));
    }
    out.extend([live, dead]);

    // The archive's lag and the wraparound ratio, for pgbox's own families.
    let w = own;
    let mut f = Family::new(
        "pgbox_xid_wraparound_ratio",
        Kind::Gauge,
        "Oldest transaction ID age over the 2^31 wraparound limit (0 to 1)",
    );
    f.add(sv, w.get::<_, Option<f64>>(0).unwrap_or(0.0));
    out.push(f);
    if let Some(lag) = w.get::<_, Option<f64>>(1) {
        let mut f = Family::new(
            "pgbox_archive_lag_seconds",
            Kind::Gauge,
            "Seconds since the last WAL segment was archived ([backup] pitr)",
        );
        f.add(sv, lag);
        out.push(f);
    }
    if let Some(failing) = w.get::<_, Option<bool>>(2) {
        let mut f = Family::new(
            "pgbox_archive_failing",
            Kind::Gauge,
            "1 when the newest WAL archiving attempt failed",
        );
        f.add(sv, f64::from(u8::from(failing)));
        out.push(f);
    }
    let mut f = Family::new(
        "pgbox_data_bytes",
        Kind::Gauge,
        "Bytes the data location holds: all databases and the WAL",
    );
    f.add(sv, w.get::<_, Option<f64>>(3).unwrap_or(f64::NAN));
    out.push(f);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_named_and_converted_as_the_exporter_does() {
        assert_eq!(
            setting("shared_buffers", "16384", "8kB", "Sets buffers.", "integer"),
            Some((
                "shared_buffers_bytes".into(),
                "Sets buffers. [Units converted to bytes.]".into(),
                134_217_728.0
            ))
        );
        assert_eq!(
            setting("checkpoint_timeout", "300", "s", "d", "integer").map(|s| (s.0, s.2)),
            Some(("checkpoint_timeout_seconds".into(), 300.0))
        );
        assert_eq!(
            setting("vacuum_cost_delay", "2", "ms", "d", "real")
                .unwrap()
                .2,
            0.002
        );
        assert_eq!(
            setting("log_min_duration_statement", "-1", "ms", "d", "integer")
                .unwrap()
                .2,
            -1.0
        );
        assert_eq!(setting("autovacuum", "on", "", "d", "bool").unwrap().2, 1.0);
        assert_eq!(
            setting("pg_stat_statements.max", "5000", "", "d", "integer")
                .unwrap()
                .0,
            "pg_stat_statements_max"
        );
        assert_eq!(setting("x", "1", "furlong", "d", "integer"), None);
    }

    #[test]
    fn view_values_read_like_the_exporter() {
        assert_eq!(number(Some("12")), 12.0);
        assert!(number(None).is_nan());
        assert_eq!(number(Some("2026-11-28 05:10:22.5+00")), 1_795_842_622.5);
    }
}
