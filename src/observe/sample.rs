//! What the server says about itself, read from the catalog views in a handful of
//! queries on one session: the numbers `stats`, `top` and `metrics` show.
//!
//! Times come back as seconds (epoch or interval) and sizes as numbers cast in SQL,
//! so the client needs no date or numeric types. Cumulative counters are kept raw
//! here; rates are the difference of two samples ([`Rates::between`]).

use serde::Serialize;
use tokio_postgres::Client;

/// Server-wide counters sampled twice for rates.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counters {
    /// Server clock, epoch seconds.
    pub at: f64,
    pub xacts: i64,
    pub blks_hit: i64,
    pub blks_read: i64,
    /// The next transaction ID (advances with every writing transaction at once,
    /// while the view counters arrive when backends flush, about once a second).
    pub next_xid: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Server {
    pub version: String,
    pub version_num: i32,
    pub started_at: f64,
    pub uptime_s: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Connections {
    pub max: i64,
    pub reserved: i64,
    pub total: i64,
    pub active: i64,
    pub idle: i64,
    pub idle_in_transaction: i64,
    pub longest_idle_in_transaction_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub total_bytes: i64,
    pub live: i64,
    pub dead: i64,
    pub dead_ratio: f64,
    /// Epoch seconds of the newest manual or automatic vacuum (None: never).
    pub last_vacuum: Option<f64>,
    pub last_analyze: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub query: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    pub pid: i32,
    pub user: String,
    pub database: String,
    pub waiting_s: f64,
    pub query: String,
    pub blocker_pid: i32,
    pub blocker_state: String,
    pub blocker_xact_s: f64,
    pub blocker_query: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Wraparound {
    pub database: String,
    pub xid_age: i64,
    /// Percent of the 2^31 limit.
    pub pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Archiver {
    pub archived_count: i64,
    pub failed_count: i64,
    pub last_archived_age_s: Option<f64>,
    /// The newest attempt failed.
    pub failing: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub pid: i32,
    pub user: String,
    pub database: String,
    pub application: String,
    pub client: String,
    pub state: String,
    pub wait: String,
    pub xact_s: Option<f64>,
    pub query_s: Option<f64>,
    pub query: String,
}

/// One look at the server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub server: Server,
    pub connections: Connections,
    pub counters: Counters,
    pub database: String,
    pub database_bytes: i64,
    /// All databases plus the WAL: what the data location holds.
    pub data_bytes: i64,
    pub tables: Vec<Table>,
    /// None when `pg_stat_statements` is installed neither in the database nor in
    /// `postgres` (where `pgbox up` creates it).
    pub top_total: Option<Vec<Statement>>,
    pub top_mean: Option<Vec<Statement>>,
    pub blocked: Vec<Blocked>,
    pub wraparound: Option<Wraparound>,
    pub archiver: Option<Archiver>,
    pub sessions: Vec<Session>,
}

/// Rates between two samples.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rates {
    pub interval_s: f64,
    pub tps: f64,
    /// Percent; None when nothing was read in the interval.
    pub cache_hit_pct: Option<f64>,
}

impl Rates {
    /// TPS is the larger of the views' count and the transaction-ID advance: the
    /// first includes read-only transactions but arrives in per-backend bursts
    /// (PostgreSQL 15+ flushes statistics about once a second), the second counts
    /// only writing transactions but is exact; each is a floor of the real rate.
    pub fn between(a: &Counters, b: &Counters) -> Rates {
        let dt = b.at - a.at;
        if dt <= 0.0 {
            return Rates::default();
        }
        let views = (b.xacts - a.xacts).max(0) as f64 / dt;
        let xids = (b.next_xid - a.next_xid).max(0) as f64 / dt;
        let hit = (b.blks_hit - a.blks_hit).max(0) as f64;
        let read = (b.blks_read - a.blks_read).max(0) as f64;
        Rates {
            interval_s: dt,
            tps: views.max(xids),
            cache_hit_pct: (hit + read > 0.0).then(|| 100.0 * hit / (hit + read)),
        }
    }
}

const COUNTERS_SQL: &str = "select extract(epoch from clock_timestamp())::float8,
    coalesce(sum(xact_commit + xact_rollback), 0)::int8, coalesce(sum(blks_hit), 0)::int8,
    coalesce(sum(blks_read), 0)::int8,
    (case when current_setting('server_version_num')::int >= 130000
        then (pg_snapshot_xmax(pg_current_snapshot())::text)::int8
        else txid_snapshot_xmax(txid_current_snapshot()) end)
  from pg_stat_database";

/// The counters now (outside any transaction, so the views are read afresh).
pub async fn counters(c: &Client) -> anyhow::Result<Counters> {
    let _ = c.batch_execute("select pg_stat_clear_snapshot()").await;
    let r = c.query_one(COUNTERS_SQL, &[]).await?;
    Ok(Counters {
        at: r.get(0),
        xacts: r.get(1),
        blks_hit: r.get(2),
        blks_read: r.get(3),
        next_xid: r.get(4),
    })
}

const SERVER_SQL: &str = "select current_setting('server_version'),
    current_setting('server_version_num')::int4,
    extract(epoch from pg_postmaster_start_time())::float8,
    extract(epoch from now() - pg_postmaster_start_time())::float8,
    current_setting('max_connections')::int8, current_setting('superuser_reserved_connections')::int8,
    count(*) filter (where backend_type = 'client backend'),
    count(*) filter (where backend_type = 'client backend' and state = 'active'),
    count(*) filter (where backend_type = 'client backend' and state = 'idle'),
    count(*) filter (where state like 'idle in transaction%'),
    coalesce(extract(epoch from max(now() - state_change) filter (where state like 'idle in transaction%')), 0)::float8,
    current_database()::text, pg_database_size(current_database())::int8,
    (select sum(pg_database_size(oid)) from pg_database)::int8
      + coalesce((select sum(size) from pg_ls_waldir()), 0)::int8
  from pg_stat_activity";

/// Sizes come from `relpages` (as of the last vacuum or analyze), not from
/// `pg_total_relation_size`, which waits for a lock on the table: a look at a
/// server where a session holds a table's ACCESS EXCLUSIVE lock must not hang.
const TABLES_SQL: &str = "select schemaname::text, relname::text,
    ((select coalesce(sum(c.relpages), 0) from pg_class c
       where c.oid = s.relid or c.oid = (select reltoastrelid from pg_class where oid = s.relid)
          or c.oid in (select indexrelid from pg_index where indrelid = s.relid))
     * current_setting('block_size')::int8)::int8 as bytes,
    n_live_tup, n_dead_tup,
    coalesce(n_dead_tup::float8 / nullif(n_live_tup + n_dead_tup, 0), 0)::float8,
    extract(epoch from greatest(last_vacuum, last_autovacuum))::float8,
    extract(epoch from greatest(last_analyze, last_autoanalyze))::float8
  from pg_stat_user_tables s
  order by bytes desc, n_live_tup + n_dead_tup desc limit $1";

/// The blocked sessions (waiting on a lock) and who blocks each; pg_blocking_pids
/// is only asked for sessions that wait on a lock, as it takes the lock manager's locks.
const BLOCKED_SQL: &str =
    "select a.pid, coalesce(a.usename::text, ''), coalesce(a.datname::text, ''),
    coalesce(extract(epoch from now() - a.query_start), 0)::float8, left(a.query, 200),
    b.pid, coalesce(b.state, ''), coalesce(extract(epoch from now() - b.xact_start), 0)::float8,
    left(b.query, 200)
  from pg_stat_activity a
  cross join lateral unnest(pg_blocking_pids(a.pid)) as bp(pid)
  join pg_stat_activity b on b.pid = bp.pid
  where a.wait_event_type = 'Lock'
  order by 4 desc, a.pid";

const WRAP_SQL: &str = "select datname::text, age(datfrozenxid)::int8,
    (100.0 * age(datfrozenxid) / 2147483648)::float8
  from pg_database where datallowconn order by 2 desc limit 1";

const ARCHIVER_SQL: &str = "select archived_count, failed_count,
    extract(epoch from now() - last_archived_time)::float8,
    coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
  from pg_stat_archiver where current_setting('archive_mode') <> 'off'";

const SESSIONS_SQL: &str = "select pid, coalesce(usename::text, ''), coalesce(datname::text, ''),
    coalesce(application_name, ''), coalesce(host(client_addr), 'local'), coalesce(state, ''),
    coalesce(wait_event_type || ':' || wait_event, ''),
    extract(epoch from now() - xact_start)::float8,
    extract(epoch from now() - query_start)::float8,
    left(regexp_replace(query, '\\s+', ' ', 'g'), 300)
  from pg_stat_activity
  where backend_type = 'client backend' and pid <> pg_backend_pid()";

fn statements_sql(version_num: i32, order: &str) -> String {
    let (total, mean) = if version_num >= 130000 {
        ("total_exec_time", "mean_exec_time")
    } else {
        ("total_time", "mean_time")
    };
    format!(
        "select calls, {total}::float8, {mean}::float8, left(regexp_replace(query, '\\s+', ' ', 'g'), 200)
           from pg_stat_statements
          where dbid = (select oid from pg_database where datname = $2)
            and query not like '%pg_stat_statements%'
          order by {order} desc limit $1",
        order = if order == "mean" { mean } else { total }
    )
}

/// What to read besides the server-wide numbers.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub tables: i64,
    pub statements: i64,
    pub sessions: bool,
}

/// Where the `pg_stat_statements` view is read: in the database reported on, or in
/// the `postgres` maintenance database (where `pgbox up` creates it, so the user's
/// schema stays untouched); it lists the statements of every database either way.
pub enum Statements {
    Here,
    Postgres(Client),
    Missing,
}

/// Whether `c`'s database has the `pg_stat_statements` extension.
pub async fn has_statements(c: &Client) -> anyhow::Result<bool> {
    Ok(c.query_opt(
        "select 1 from pg_extension where extname = 'pg_stat_statements'",
        &[],
    )
    .await?
    .is_some())
}

impl Statements {
    /// The session to read the view on, `here` being the database reported on.
    pub fn client<'a>(&'a self, here: &'a Client) -> Option<&'a Client> {
        match self {
            Statements::Here => Some(here),
            Statements::Postgres(c) => Some(c),
            Statements::Missing => None,
        }
    }
}

/// One look at the server, on `c` (a session in the database to report on), with
/// the top statements of that database read on `stm` (see [`Statements`]).
pub async fn snapshot(c: &Client, stm: Option<&Client>, want: Want) -> anyhow::Result<Snapshot> {
    let s = c.query_one(SERVER_SQL, &[]).await?;
    let version_num: i32 = s.get(1);
    let mut snap = Snapshot {
        server: Server {
            version: s.get(0),
            version_num,
            started_at: s.get(2),
            uptime_s: s.get(3),
        },
        connections: Connections {
            max: s.get(4),
            reserved: s.get(5),
            total: s.get(6),
            active: s.get(7),
            idle: s.get(8),
            idle_in_transaction: s.get(9),
            longest_idle_in_transaction_s: s.get(10),
        },
        database: s.get(11),
        database_bytes: s.get(12),
        data_bytes: s.get(13),
        counters: counters(c).await?,
        ..Snapshot::default()
    };
    snap.tables = c
        .query(TABLES_SQL, &[&want.tables])
        .await?
        .iter()
        .map(|r| Table {
            schema: r.get(0),
            name: r.get(1),
            total_bytes: r.get(2),
            live: r.get(3),
            dead: r.get(4),
            dead_ratio: r.get(5),
            last_vacuum: r.get(6),
            last_analyze: r.get(7),
        })
        .collect();
    if let Some(stm) = stm.filter(|_| want.statements > 0) {
        let database = snap.database.clone();
        let read = |order: &'static str| {
            let sql = statements_sql(version_num, order);
            let database = database.clone();
            async move {
                Ok::<_, anyhow::Error>(
                    stm.query(&sql, &[&want.statements, &database])
                        .await?
                        .iter()
                        .map(|r| Statement {
                            calls: r.get(0),
                            total_ms: r.get(1),
                            mean_ms: r.get(2),
                            query: r.get(3),
                        })
                        .collect::<Vec<_>>(),
                )
            }
        };
        // A statements view that cannot be read (not preloaded) is no reason to fail.
        snap.top_total = read("total").await.ok();
        snap.top_mean = read("mean").await.ok();
    }
    snap.blocked = c
        .query(BLOCKED_SQL, &[])
        .await?
        .iter()
        .map(|r| Blocked {
            pid: r.get(0),
            user: r.get(1),
            database: r.get(2),
            waiting_s: r.get(3),
            query: r.get(4),
            blocker_pid: r.get(5),
            blocker_state: r.get(6),
            blocker_xact_s: r.get(7),
            blocker_query: r.get(8),
        })
        .collect();
    snap.wraparound = c.query_opt(WRAP_SQL, &[]).await?.map(|r| Wraparound {
        database: r.get(0),
        xid_age: r.get(1),
        pct: r.get(2),
    });
    snap.archiver = c.query_opt(ARCHIVER_SQL, &[]).await?.map(|r| Archiver {
        archived_count: r.get(0),
        failed_count: r.get(1),
        last_archived_age_s: r.get(2),
        failing: r.get(3),
    });
    if want.sessions {
        snap.sessions = sessions(c).await?;
    }
    Ok(snap)
}

/// The client sessions except this one.
pub async fn sessions(c: &Client) -> anyhow::Result<Vec<Session>> {
    Ok(c.query(SESSIONS_SQL, &[])
        .await?
        .iter()
        .map(|r| Session {
            pid: r.get(0),
            user: r.get(1),
            database: r.get(2),
            application: r.get(3),
            client: r.get(4),
            state: r.get(5),
            wait: r.get(6),
            xact_s: r.get(7),
            query_s: r.get(8),
            query: r.get(9),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(at: f64, xacts: i64, hit: i64, read: i64, xid: i64) -> Counters {
        Counters {
            at,
            xacts,
            blks_hit: hit,
            blks_read: read,
            next_xid: xid,
        }
    }

    #[test]
    fn rates_take_the_larger_floor_and_skip_an_empty_cache_window() {
        let r = Rates::between(&c(10.0, 100, 50, 50, 7), &c(10.5, 100, 50, 50, 57));
        assert_eq!(r.tps, 100.0);
        assert_eq!(r.cache_hit_pct, None);
        let r = Rates::between(&c(10.0, 100, 0, 0, 7), &c(12.0, 500, 90, 10, 7));
        assert_eq!((r.tps, r.cache_hit_pct), (200.0, Some(90.0)));
        assert_eq!(
            Rates::between(&c(1.0, 0, 0, 0, 0), &c(1.0, 9, 0, 0, 0)).tps,
            0.0
        );
    }
}
