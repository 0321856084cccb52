//! One line of advice per problem found in a look at the server, the container and
//! pgbox's facts. Pure, so each threshold is unit-tested; `stats` prints the lines
//! and `top` shows them under its header.

use super::facts::Facts;
use super::sample::{Rates, Snapshot};
use super::Container;
use crate::printer::age;

/// A table is flagged when this share of its rows is dead...
pub const DEAD_RATIO: f64 = 0.2;
/// ...and it has at least this many dead rows.
pub const DEAD_MIN: i64 = 1000;
/// A table with this many rows that was never vacuumed is flagged.
pub const NEVER_VACUUMED_MIN: i64 = 10_000;

pub fn advise(
    snap: &Snapshot,
    rates: &Rates,
    box_: Option<&Container>,
    facts: &Facts,
) -> Vec<String> {
    let mut out = Vec::new();
    for b in &snap.blocked {
        out.push(format!(
            "pid {} has waited {} for a lock held by pid {} ({}, transaction open {}): end that transaction, or cancel it (`pgbox top`, key `c`/`k`)",
            b.pid,
            age(b.waiting_s as i64),
            b.blocker_pid,
            b.blocker_state,
            age(b.blocker_xact_s as i64)
        ));
    }
    for t in &snap.tables {
        let name = format!("{}.{}", t.schema, t.name);
        if t.dead >= DEAD_MIN && t.dead_ratio > DEAD_RATIO {
            let when = match t.last_vacuum {
                None => "never vacuumed".to_string(),
                Some(v) => format!("last vacuumed {} ago", age((snap.counters.at - v) as i64)),
            };
            out.push(format!(
                "table `{name}` is {:.0}% dead rows ({} dead, {when}): run `VACUUM (ANALYZE) {name}`, and check that autovacuum is on for it",
                t.dead_ratio * 100.0,
                t.dead
            ));
        } else if t.last_vacuum.is_none() && t.live >= NEVER_VACUUMED_MIN {
            out.push(format!(
                "table `{name}` ({} rows) was never vacuumed: run `VACUUM (ANALYZE) {name}`",
                t.live
            ));
        }
    }
    let c = &snap.connections;
    let usable = (c.max - c.reserved).max(1);
    if c.total * 100 >= usable * 80 {
        out.push(format!(
            "{} of {usable} connections are in use: raise `max_connections` in pgbox.toml or put a pooler in front",
            c.total
        ));
    }
    if c.idle_in_transaction > 0 && c.longest_idle_in_transaction_s >= 60.0 {
        out.push(format!(
            "a session has been idle in a transaction for {}: it holds locks and stops vacuum; fix the client or set `idle_in_transaction_session_timeout`",
            age(c.longest_idle_in_transaction_s as i64)
        ));
    }
    if let Some(w) = snap.wraparound.as_ref().filter(|w| w.pct > 50.0) {
        out.push(format!(
            "database `{}` is {:.0}% of the way to transaction ID wraparound: run `VACUUM (FREEZE)` in it and look for long transactions",
            w.database, w.pct
        ));
    }
    if let Some(h) = rates
        .cache_hit_pct
        .filter(|h| *h < 90.0 && rates.tps > 10.0)
    {
        out.push(format!(
            "cache hit ratio is {h:.0}%: the working set does not fit `shared_buffers`; raise it (and the memory limit) in pgbox.toml"
        ));
    }
    if snap.top_total.is_none() {
        out.push(format!(
            "`pg_stat_statements` is installed neither in `{}` nor in `postgres`: `pgbox up` creates it in `postgres` to show the top queries",
            snap.database
        ));
    }
    if let Some(b) = box_ {
        if let (Some(limit), used) = (b.mem_limit_bytes, b.mem_used_bytes) {
            if limit > 0 && used * 10 >= limit * 9 {
                out.push(format!(
                    "the container uses {:.0}% of its memory limit: raise `memory` in pgbox.toml or lower `shared_buffers`/`work_mem`",
                    100.0 * used as f64 / limit as f64
                ));
            }
        }
    }
    if let Some(a) = &snap.archiver {
        if a.failing {
            out.push("WAL archiving is failing: point-in-time recovery stops at the last archived segment; `pgbox logs` says why".into());
        }
    }
    match (&facts.newest_backup, facts.interval_s) {
        (None, _) => out.push("there is no backup yet: `pgbox backup` makes one, `pgbox schedule install` makes them nightly".into()),
        (Some(b), Some(i)) if b.age_s > i => out.push(format!(
            "the newest backup is {} old, older than the schedule's interval ({}): `pgbox schedule status` says why",
            age(b.age_s),
            age(i)
        )),
        (Some(b), None) if facts.schedule.is_none() && b.age_s > 7 * 86_400 => out.push(format!(
            "the newest backup is {} old and no schedule is installed: `pgbox schedule install`",
            age(b.age_s)
        )),
        _ => {}
    }
    if let Some(b) = facts.newest_backup.as_ref().filter(|b| !b.verified) {
        let _ = b;
        out.push("the newest backup was not verified: `pgbox backup verify latest`".into());
    }
    if let Some(r) = facts.last_run.as_ref().filter(|r| !r.ok) {
        out.push(format!(
            "the last scheduled backup failed: {}",
            r.error.as_deref().unwrap_or("see `pgbox schedule status`")
        ));
    }
    for u in &facts.unreadable {
        out.push(format!("cannot read pgbox's records: {u}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::facts::Backup;
    use crate::observe::sample::{Blocked, Statement, Table, Wraparound};

    fn healthy() -> (Snapshot, Facts) {
        let mut s = Snapshot::default();
        s.connections.max = 100;
        s.connections.reserved = 3;
        s.connections.total = 5;
        s.top_total = Some(Vec::<Statement>::new());
        s.counters.at = 1000.0;
        let f = Facts {
            newest_backup: Some(Backup {
                file: "b".into(),
                created_at: 0,
                age_s: 3600,
                verified: true,
            }),
            schedule: Some("daily".into()),
            interval_s: Some(86_400),
            ..Facts::default()
        };
        (s, f)
    }

    #[test]
    fn a_healthy_server_gets_no_advice() {
        let (s, f) = healthy();
        assert_eq!(
            advise(&s, &Rates::default(), None, &f),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_problem_gets_one_line() {
        let (mut s, mut f) = healthy();
        s.blocked.push(Blocked {
            pid: 2,
            user: "u".into(),
            database: "d".into(),
            waiting_s: 30.0,
            query: "select".into(),
            blocker_pid: 1,
            blocker_state: "idle in transaction".into(),
            blocker_xact_s: 60.0,
            blocker_query: "lock".into(),
        });
        s.tables.push(Table {
            schema: "public".into(),
            name: "t".into(),
            total_bytes: 1,
            live: 5000,
            dead: 5000,
            dead_ratio: 0.5,
            last_vacuum: None,
            last_analyze: None,
        });
        s.wraparound = Some(Wraparound {
            database: "d".into(),
            xid_age: 1_500_000_000,
            pct: 69.8,
        });
        f.newest_backup.as_mut().unwrap().age_s = 200_000;
        let b = Container {
            cpu_percent: None,
            cpu_since_start: false,
            mem_used_bytes: 950,
            mem_limit_bytes: Some(1000),
        };
        let a = advise(&s, &Rates::default(), Some(&b), &f);
        assert_eq!(a.len(), 5, "{a:#?}");
        assert!(a[0].contains("pid 2") && a[0].contains("pid 1"), "{}", a[0]);
        assert!(a[1].contains("`public.t` is 50% dead") && a[1].contains("never vacuumed"));
        assert!(a[2].contains("70% of the way to transaction ID wraparound"));
        assert!(a[3].contains("95% of its memory limit"));
        assert!(a[4].contains("older than the schedule's interval"));
    }
}
