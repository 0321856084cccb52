//! Loading an uploaded backup into a database with pg_restore or psql, tracked so
//! that a cancelled run (or the next one, after a kill) ends the processes and
//! removes the scratch database and folder it left; and the exact row counts the
//! checks compare.

use std::collections::BTreeMap;

use crate::config::Settings;
use crate::container::psql::{exec_spec as spec, ident, lit, sql};
use crate::engine::Engine;
use crate::printer::Printer;

use super::transfer::remove_remote;
use super::transfer::Remote;
use super::{Detected, Format};

/// Exact row counts of every user table in `db`, as the dump's COPY blocks hold them:
/// a table without its inheritance children (`only`), a partitioned table with all its
/// partitions (what `--load-via-partition-root` copies into it).
pub async fn row_counts(
    engine: &Engine,
    c: &str,
    s: &Settings,
    db: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let q = "select format('select %L || chr(9) || count(*) from %s %I.%I', n.nspname || '.' || c.relname, case c.relkind when 'r' then 'only' else '' end, n.nspname, c.relname)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast'
              order by 1 \\gexec";
    let out = sql(engine, c, s, db, q).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.rsplit_once('\t'))
        .filter_map(|(t, n)| Some((t.to_string(), n.parse().ok()?)))
        .collect())
}

/// Session settings for the restore: asynchronous commits (the scratch database only
/// goes live through the swap, whose synchronous commit flushes all WAL before it),
/// no compression of the full-page images index builds write (measured 8.3 s → 6.2 s
/// for a pgbench scale 50 restore here), and more memory for index builds.
fn restore_session_options(s: &Settings) -> String {
    let mwm_mb = s
        .memory_limit
        .map_or(512, |b| (b >> 20) / 4)
        .clamp(64, 1024);
    format!("-c synchronous_commit=off -c wal_compression=off -c maintenance_work_mem={mwm_mb}MB")
}

/// What to restore where.
pub struct RestoreJob<'a> {
    pub remote: &'a Remote,
    pub detected: Detected,
    /// An existing, empty database.
    pub db: &'a str,
    pub jobs: u32,
    pub no_owner: bool,
    /// Archive items, for the progress bar.
    pub items: u64,
}

/// Wrap `cmd` so its process group id lands in `dir/pid` first (a cancelled run, or
/// the next one, ends the whole group: psql, sed, pg_restore and its workers). With
/// `plain`, `dir/edits.sed` is applied to `dir/dump` on its way into `cmd`'s stdin.
fn tracked(dir: &str, plain: bool, cmd: &[&str]) -> Vec<String> {
    let script = if plain {
        r#"set -o pipefail; echo $$ > "$0/pid"; sed -f "$0/edits.sed" "$0/dump" | "$@""#
    } else {
        r#"echo $$ > "$0/pid"; exec "$@""#
    };
    let mut v: Vec<String> = ["setsid", "-w", "bash", "-c", script, dir]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

/// Restore an uploaded backup into `job.db`. With `plan` (the restore command), the
/// run is tracked in the upload folder, and a plain SQL file is fed through its plan
/// (see [`super::plain`]); `plan.1` is the first line psql reads (`\restrict`).
pub async fn restore_tracked(
    engine: &Engine,
    c: &str,
    s: &Settings,
    job: &RestoreJob<'_>,
    plan: Option<(&super::plain::Plan, Option<String>)>,
    p: &Printer,
) -> anyhow::Result<()> {
    let RestoreJob {
        remote,
        detected: d,
        db,
        jobs,
        no_owner,
        items,
    } = *job;
    let mut stderr = Vec::new();
    let code = match d.format {
        Format::Plain => {
            let bar = p.spinner(format!("restoring into scratch database `{db}` with psql"));
            let input = if plan.is_some() { "-" } else { &remote.path };
            let mut cmd = crate::container::psql::argv(s, db, &["-q"]);
            cmd.extend(["-f", input]);
            let mut psql = spec(&cmd, "postgres");
            if let Some((plan, first)) = &plan {
                let script = plan.sed_script(&ident(db), first.as_deref());
                let out = engine
                    .exec_with_stdin(
                        c,
                        &spec(
                            &["sh", "-c", r#"cat > "$0/edits.sed""#, &remote.dir],
                            "postgres",
                        ),
                        script.into_bytes(),
                    )
                    .await?;
                anyhow::ensure!(
                    out.code == 0,
                    "cannot write the restore plan into the container: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                psql.cmd = tracked(&remote.dir, true, &cmd);
            }
            psql.env
                .push(format!("PGOPTIONS={}", restore_session_options(s)));
            let code = engine
                .exec_stream(
                    c,
                    &psql,
                    None::<tokio::io::Empty>,
                    |_| Ok(()),
                    |e| stderr.extend_from_slice(e),
                )
                .await?;
            bar.finish_and_clear();
            code
        }
        _ => {
            let bar = p.items_bar(
                format!("restoring into scratch database `{db}`"),
                items.max(1),
            );
            let jobs = jobs.to_string();
            let mut cmd = vec![
                "pg_restore",
                "--verbose",
                "--exit-on-error",
                "--jobs",
                &jobs,
                "-U",
                &s.user,
                "-d",
                db,
            ];
            if no_owner {
                cmd.extend(["--no-owner", "--no-privileges"]);
            }
            cmd.push(&remote.path);
            let mut partial = String::new();
            let mut pg_restore = spec(&cmd, "postgres");
            if plan.is_some() {
                pg_restore.cmd = tracked(&remote.dir, false, &cmd);
            }
            pg_restore
                .env
                .push(format!("PGOPTIONS={}", restore_session_options(s)));
            let code = engine
                .exec_stream(
                    c,
                    &pg_restore,
                    None::<tokio::io::Empty>,
                    |_| Ok(()),
                    |e| {
                        stderr.extend_from_slice(e);
                        partial.push_str(&String::from_utf8_lossy(e));
                        while let Some(i) = partial.find('\n') {
                            let line: String = partial.drain(..=i).collect();
                            if line.contains("processing item")
                                || line.contains("creating ")
                                || line.contains("processing data")
                            {
                                bar.inc(1);
                            }
                        }
                    },
                )
                .await?;
            bar.finish_and_clear();
            code
        }
    };
    if code != 0 {
        let text = String::from_utf8_lossy(&stderr);
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("error")
                    || l.contains("ERROR")
                    || l.contains("FATAL")
                    || l.contains("psql:")
            })
            .collect();
        let shown = if errors.is_empty() {
            text.lines().rev().take(5).collect::<Vec<_>>()
        } else {
            errors
        };
        anyhow::bail!("the restore stopped (exit {code}):\n{}", shown.join("\n"));
    }
    Ok(())
}

/// The prefix of the container folders a restore uploads to (`<prefix><stamp>-<pid>`).
pub const RESTORE_DIR_PREFIX: &str = "/tmp/pgbox-restore-";

/// End the process group a tracked restore recorded in `dir/pid` (TERM, then KILL
/// after 5 s); nothing when there is none or it is gone.
pub async fn kill_tracked(engine: &Engine, c: &str, dir: &str) -> anyhow::Result<()> {
    let script = r#"p=$(cat "$0/pid" 2>/dev/null) || exit 0
case "$p" in '' | *[!0-9]*) exit 0 ;; esac
kill -TERM -- "-$p" 2>/dev/null || exit 0
for _ in $(seq 50); do kill -0 -- "-$p" 2>/dev/null || exit 0; sleep 0.1; done
kill -KILL -- "-$p" 2>/dev/null || true"#;
    let out = engine
        .exec_capture(c, &spec(&["bash", "-c", script, dir], "0"))
        .await?;
    anyhow::ensure!(
        out.code == 0,
        "cannot end the restore still running in `{dir}`: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The `application_name` of the session that creates a restore's scratch
/// database, named for the restore's folder (`pgbox-restore-<stamp>-<pid>`).
pub fn creating_session(dir: &str) -> String {
    let name = dir.rsplit('/').next().unwrap_or(dir);
    name.chars().take(63).collect()
}

/// Undo one restore's temporary things: end its processes, end the session still
/// creating its scratch database (if any: it would create it after the drop),
/// drop the scratch database (FORCE ends any connection still in it), remove the
/// upload folder. Every step runs even when an earlier one failed; the first
/// error is returned.
pub async fn remove_restore_leftovers(
    engine: &Engine,
    c: &str,
    s: &Settings,
    dir: Option<&str>,
    scratch: Option<&str>,
) -> anyhow::Result<()> {
    let mut first: Option<anyhow::Error> = None;
    if let Some(dir) = dir {
        if let Err(e) = kill_tracked(engine, c, dir).await {
            first.get_or_insert(e);
        }
    }
    if let Some(db) = scratch {
        let mut q = String::new();
        if let Some(dir) = dir {
            // pg_terminate_backend with a timeout waits for the session to end,
            // its CREATE DATABASE rolled back.
            q.push_str(&format!(
                "select count(pg_terminate_backend(pid, 10000)) from pg_stat_activity where application_name = {} and pid <> pg_backend_pid();\n",
                lit(&creating_session(dir))
            ));
        }
        q.push_str(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE);\n",
            ident(db)
        ));
        if let Err(e) = sql(engine, c, s, "postgres", &q).await {
            first.get_or_insert(e);
        }
    }
    if let Some(dir) = dir {
        if let Err(e) = remove_remote(engine, c, dir).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Whether a scratch database name is one a restore made (`..._pgbox_restore_<14 digits>`).
pub fn is_restore_scratch(name: &str) -> bool {
    name.rsplit_once("_pgbox_restore_")
        .is_some_and(|(_, stamp)| stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()))
}

/// What earlier restores left (killed before their cleanup ran): scratch databases
/// and upload folders. Removed, and named for the caller to report. Only call this
/// holding the project lock, so no other restore of the project is running. Never
/// touches `_pgbox_old_*` databases (a replaced database kept for the user).
///
/// `ours` (this restore's folder and scratch database, made meanwhile when the
/// cleaning runs beside the upload) is never counted as a leftover.
pub async fn clean_restore_leftovers(
    engine: &Engine,
    c: &str,
    s: &Settings,
    ours: Option<(&str, &str)>,
) -> anyhow::Result<Vec<String>> {
    // Both only read: side by side, one round trip's latency instead of two.
    let list_dirs = spec(
        &[
            "bash",
            "-c",
            r#"for d in "$0"*; do [ -d "$d" ] && printf '%s\n' "$d"; done; true"#,
            RESTORE_DIR_PREFIX,
        ],
        "0",
    );
    let (out, dbs) = tokio::join!(
        engine.exec_capture(c, &list_dirs),
        sql(
            engine,
            c,
            s,
            "postgres",
            "select datname from pg_database where datname like '%\\_pgbox\\_restore\\_%' order by 1",
        )
    );
    let dirs: Vec<String> = String::from_utf8_lossy(&out?.stdout)
        .lines()
        .filter(|d| ours.is_none_or(|(dir, _)| *d != dir))
        .map(String::from)
        .collect();
    let dbs: Vec<String> = dbs?
        .lines()
        .filter(|n| is_restore_scratch(n))
        .filter(|n| ours.is_none_or(|(_, db)| *n != db))
        .map(String::from)
        .collect();
    let mut named = Vec::new();
    for d in &dirs {
        kill_tracked(engine, c, d).await?;
    }
    for db in &dbs {
        remove_restore_leftovers(engine, c, s, None, Some(db)).await?;
        named.push(format!("database `{db}`"));
    }
    for d in &dirs {
        remove_remote(engine, c, d).await?;
        named.push(format!("`{d}`"));
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_restore_scratch_names_count_as_leftovers() {
        assert!(is_restore_scratch("app_pgbox_restore_20260101120000"));
        assert!(!is_restore_scratch("app_pgbox_old_20260101120000"));
        assert!(!is_restore_scratch("app_pgbox_restore_2026"));
        assert!(!is_restore_scratch("my_pgbox_restore_notes"));
    }
}
