//! The end of an upgrade: `--finalize` deletes the old data once the user is sure,
//! `--rollback` returns to it at any time before that. Both are idempotent steps,
//! each recorded before the next, so a kill halfway leaves a state the same command
//! finishes; `reconcile` squares the record with pgbox.toml after such a kill.

use std::collections::BTreeMap;

use crate::config::{self, Settings};
use crate::container::ctl;
use crate::container::psql::sql;
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::server::up::up_locked;
use crate::state::{Upgrade, UpgradePhase};

use super::build::discard;
use super::options::{up_options, Method, UpgradeOptions};
use super::plan;
use crate::storage::location;

/// The record squared with pgbox.toml: the switch is the rewrite of pgbox.toml, so
/// the file says which side is live even when pgbox died before recording it.
pub fn reconcile(mut st: Upgrade, s: &Settings) -> Upgrade {
    if s.pg_version == st.new.major {
        st.phase = UpgradePhase::Switched;
    } else if s.pg_version == st.old.major {
        st.phase = UpgradePhase::Building;
    }
    st
}

fn none_in_progress(what: &str) -> anyhow::Error {
    Fail::new(format!(
        "no upgrade is in progress, so there is nothing to {what}"
    ))
    .hint("`pgbox status` shows the project's major; `pgbox upgrade --to N` starts an upgrade")
    .code(EXIT_USAGE)
    .into()
}

/// Rows inserted, updated and deleted since the server started, per table
/// (`` `database`.`schema.table` ``), for the tables written at all.
pub async fn writes(
    engine: &Engine,
    c: &str,
    s: &Settings,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let dbs = sql(
        engine,
        c,
        s,
        "postgres",
        "select datname from pg_database where datallowconn and not datistemplate order by 1",
    )
    .await?;
    let mut out = BTreeMap::new();
    for db in dbs.lines() {
        let rows = sql(
            engine,
            c,
            s,
            db,
            "select format('%I.%I', schemaname, relname) || chr(9) || (n_tup_ins + n_tup_upd + n_tup_del)
               from pg_stat_user_tables where n_tup_ins + n_tup_upd + n_tup_del > 0",
        )
        .await?;
        for row in rows.lines() {
            if let Some((table, n)) = row.split_once('\t') {
                out.insert(format!("`{db}`.`{table}`"), n.parse::<i64>().unwrap_or(0));
            }
        }
    }
    Ok(out)
}

/// What a rollback drops, said from the write counters at the switch and now.
pub fn lost_writes(
    at_switch: Option<&BTreeMap<String, i64>>,
    now: Option<&BTreeMap<String, i64>>,
) -> String {
    let (Some(base), Some(now)) = (at_switch, now) else {
        return "pgbox could not count the writes since then (the server is not running)".into();
    };
    // A counter below its value at the switch: the statistics were reset (a crash
    // resets them), so a count would understate what is lost.
    if base
        .iter()
        .any(|(t, b)| now.get(t).copied().unwrap_or(0) < *b)
    {
        return "pgbox could not count the writes since then (the server's statistics were reset, \
                as a crash does); assume every write since the upgrade is lost"
            .into();
    }
    let changed: Vec<(&String, i64)> = now
        .iter()
        .map(|(t, n)| (t, n - base.get(t).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect();
    if changed.is_empty() {
        return "no writes were counted on it since then".into();
    }
    let total: i64 = changed.iter().map(|(_, d)| d).sum();
    let tables: Vec<String> = changed.iter().map(|(t, d)| format!("{t} ({d})")).collect();
    format!(
        "about {total} rows were inserted, updated or deleted on it since then, in {}",
        tables.join(", ")
    )
}

/// `--finalize`: delete the old data after a confirmation; the upgrade is over.
pub async fn finalize(
    engine: &Engine,
    s: &Settings,
    state: Option<Upgrade>,
    yes: bool,
    p: &Printer,
) -> anyhow::Result<()> {
    let Some(st) = state else {
        return Err(none_in_progress("finalize"));
    };
    if st.phase != UpgradePhase::Switched {
        return Err(Fail::new(format!(
            "the upgrade {} → {} did not finish, so there is nothing to finalize",
            st.old.major, st.new.major
        ))
        .hint(st.resume_hint())
        .code(EXIT_USAGE)
        .into());
    }
    let old = plan::settings_for(s, &st.old);
    let what = location(&old, st.mode);
    if !p.confirm(
        format!(
            "Delete the PostgreSQL {} data in {what} for good? `--rollback` is impossible afterwards",
            st.old.major
        ),
        yes,
        format!("`--finalize` deletes {what}"),
        "pass `--yes` to confirm without a terminal",
    )? {
        p.info("nothing deleted");
        return Ok(());
    }
    crate::storage::delete_data(engine, &old, st.mode, None, p).await?;
    Upgrade::remove(s)?;
    p.done(format!(
        "the upgrade to PostgreSQL {} is final: deleted the old data in {what}",
        st.new.major
    ));
    if !st.backup.is_empty() {
        p.info(format!(
            "the backup taken before the upgrade stays in `{}` until `pgbox backup prune` removes it",
            s.backup_dir.display()
        ));
    }
    Ok(())
}

/// `--rollback`: back to the old major and the old data, in one command.
pub async fn rollback(
    engine: &Engine,
    s: &Settings,
    state: Option<Upgrade>,
    o: &UpgradeOptions,
    p: &Printer,
) -> anyhow::Result<()> {
    let Some(mut st) = state else {
        return Err(none_in_progress("roll back"));
    };
    rollback_possible(&st, s)?;
    let old = plan::settings_for(s, &st.old);
    let new = plan::settings_for(s, &st.new);
    if st.phase == UpgradePhase::Switched {
        let live = ctl::ready(engine, s).await.ok();
        let now = match &live {
            Some(c) => writes(engine, c, s).await.ok(),
            None => None,
        };
        let lost = lost_writes(st.table_writes_at_switch.as_ref(), now.as_ref());
        let since = st.switched_at.as_deref().unwrap_or("the switch");
        p.warn(format!(
            "rolling back drops everything written on PostgreSQL {} since the upgrade ({since}): {lost}; \
             to keep it, `pgbox backup --all` first and restore what you need afterwards",
            st.new.major
        ));
        if !p.confirm(
            format!(
                "Return `{}` to PostgreSQL {} and delete the PostgreSQL {} data in {}?",
                s.project,
                st.old.major,
                st.new.major,
                location(&new, st.mode)
            ),
            o.yes,
            "`--rollback` deletes the new cluster",
            "pass `--yes` to confirm without a terminal",
        )? {
            p.info("nothing was changed");
            return Ok(());
        }
        crate::server::worker::stop_live(engine, s, st.mode, "pgbox upgrade", p).await?;
        let name = s.container_name();
        if engine.inspect(&name).await?.is_some() {
            engine.remove_container(&name, false).await?;
        }
        config::edit::set(&s.config_path, &plan::toml_changes(&st.old))?;
        st.phase = UpgradePhase::Building;
        st.save(s)?;
    }
    discard(engine, &old, &new, st.mode).await?;
    Upgrade::remove(s)?;
    p.done(format!(
        "`{}` is back on PostgreSQL {} with its old data; the PostgreSQL {} cluster is deleted",
        s.project, st.old.major, st.new.major
    ));
    let s2 = Settings::load(Some(&s.config_path))?;
    if st.was_running || st.switched_at.is_some() {
        up_locked(engine, &s2, up_options(o), p).await?;
    }
    Ok(())
}

/// `--rollback` after `--method link` once the new cluster may have started: the
/// old cluster shares its files with the new one and cannot be started again, so
/// the rollback is refused with the way back through the automatic backup.
fn rollback_possible(st: &Upgrade, s: &Settings) -> Result<(), Fail> {
    if st.method != Method::Link.as_str() {
        return Ok(());
    }
    let old = super::plan::settings_for(s, &st.old);
    let global = old.data_dir.join("global");
    let unlinked = global.join("pg_control").exists();
    if st.phase != UpgradePhase::Switched && unlinked {
        return Ok(());
    }
    let backups = if st.backup.is_empty() {
        "none was recorded".to_string()
    } else {
        st.backup
            .iter()
            .map(|b| format!("`{b}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (o, n) = (st.old.major, st.new.major);
    let mut hint = format!(
        "to return to PostgreSQL {o}: `pgbox backup --all` keeps what was written on {n} if you want it; \
         `pgbox upgrade --finalize` ends the upgrade (it deletes only the old folder's names, the {n} cluster keeps its files); \
         then start a PostgreSQL {o} project (`pgbox init --pg-version {o}` in a new folder) and `pgbox restore` the automatic backup taken before the upgrade: {backups}"
    );
    if st.phase != UpgradePhase::Switched {
        hint.push_str(&format!(
            "; if the upgrade was interrupted before PostgreSQL {n} ever started, renaming `{}` back to `pg_control` makes the old cluster usable again",
            global.join("pg_control.old").display()
        ));
    }
    Err(Fail::new(format!(
        "the upgrade {o} → {n} used `--method link`: the PostgreSQL {o} data in `{}` shares its files with the {n} cluster, which has started and written to them, so it cannot run again and `--rollback` would return to a broken cluster",
        old.data_dir.display()
    ))
    .hint(hint)
    .code(EXIT_USAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &[(&str, i64)]) -> BTreeMap<String, i64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn the_lost_writes_are_named_per_table() {
        let base = m(&[("`db`.`public.t`", 1000)]);
        let now = m(&[("`db`.`public.t`", 1002), ("`db`.`app.new`", 1)]);
        let said = lost_writes(Some(&base), Some(&now));
        assert_eq!(
            said,
            "about 3 rows were inserted, updated or deleted on it since then, in `db`.`app.new` (1), `db`.`public.t` (2)"
        );
        assert!(lost_writes(Some(&base), Some(&base)).starts_with("no writes"));
        // Counters reset by a crash: no false "no writes".
        let reset = m(&[("`db`.`public.t`", 3)]);
        assert!(lost_writes(Some(&base), Some(&reset)).contains("could not count"));
        assert!(lost_writes(None, Some(&now)).contains("could not count"));
    }
}
