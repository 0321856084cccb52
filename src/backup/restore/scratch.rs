//! A restore that never leaves you with less than you had: scratch database,
//! checks, then an atomic swap.
//!
//! The backup goes into a scratch database `<target>_pgbox_restore_<stamp>` from a
//! container folder `/tmp/pgbox-restore-<stamp>-<pid>`. One guard owns both and the
//! processes restoring into them (their process group id is in the folder): on any
//! failure, on Ctrl-C or SIGTERM, it ends the processes, drops the scratch database
//! and removes the folder. A run killed with SIGKILL leaves them behind; the next
//! restore (holding the project lock, so no other restore runs) removes them and
//! names them. Before the swap the scratch database must hold what the backup holds
//! (rows per table of its COPY data) and every database that existed before must
//! still be there under its name and oid; only then is the target renamed aside and
//! the scratch one renamed into place, both in one transaction.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use rand::distributions::{Alphanumeric, DistString};

use super::phases;
use super::scan::Scan;
use crate::backup::load;
use crate::backup::plain::Plan;
use crate::backup::transfer;
use crate::backup::{Detected, Format};
use crate::cancel::Guard;
use crate::config::Settings;
use crate::container::psql::{self, ident, lit};
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;

/// PostgreSQL names are at most 63 bytes.
pub fn pg_name(base: &str, suffix: &str) -> String {
    let mut b = base.to_string();
    while b.len() + suffix.len() > 63 {
        b.pop();
    }
    format!("{b}{suffix}")
}

pub struct Request<'a> {
    pub local: &'a Path,
    pub detected: Detected,
    /// The database replaced (or created, with `into`).
    pub target: &'a str,
    pub target_exists: bool,
    /// `--into`: the target is new; nothing is renamed aside.
    pub into: bool,
    pub drop_old: bool,
    pub jobs: u32,
    pub no_owner: bool,
    /// The plan of a plain SQL file (see `plain`); required for plain SQL.
    pub plain: Option<Plan>,
    /// The host's reads of the backup file, still running: nothing is loaded
    /// into the scratch database before its checksum matched, and its row counts
    /// (when it could count) spare the container's count. None: the file was
    /// checked already.
    pub scan: Option<Scan>,
    /// Remove what killed restores left (under the project lock only), while the
    /// backup uploads; this restore's own folder and scratch database are spared.
    pub clean_leftovers: bool,
}

pub struct Restored {
    pub tables: usize,
    pub rows: u64,
    /// Whether the counts were compared with the backup's COPY data.
    pub checked: bool,
    /// The previous database, kept renamed aside.
    pub old: Option<String>,
    /// Whether the upload folder was removed already (beside the checks).
    pub folder_gone: bool,
}

/// Restore `req.local` into a scratch database and swap it in (see the module doc).
pub async fn restore(
    engine: &Engine,
    c: &str,
    s: &Settings,
    req: Request<'_>,
    p: &Printer,
) -> anyhow::Result<Restored> {
    let mut req = req;
    let scan = req.scan.take();
    let scratch = Scratch::new(engine, c, s, req.target);
    let result = restore_guarded(engine, c, s, &req, scan, &scratch.name, &scratch.dir, p).await;
    let swapped = result.as_ref().ok().map(|r| r.folder_gone);
    phases::time(p, "cleanup", async move {
        if let Some(folder_gone) = swapped {
            // Swapped in: pg_restore has ended and the scratch name is gone, so
            // only the folder is left (unless it went beside the checks). The
            // guard stays armed until it is removed.
            if folder_gone
                || transfer::remove_remote(engine, c, &scratch.dir)
                    .await
                    .is_ok()
            {
                scratch.guard.disarm();
                return;
            }
        }
        scratch.guard.undo().await;
    })
    .await;
    result
}

/// A test restore (`backup verify --deep`): the backup goes into a scratch database
/// exactly as a restore would put it there, with the same checks, and the scratch
/// database is dropped afterwards. Returns the tables and rows checked.
pub async fn test_restore(
    engine: &Engine,
    c: &str,
    s: &Settings,
    req: Request<'_>,
    p: &Printer,
) -> anyhow::Result<(usize, u64)> {
    let scratch = Scratch::new(engine, c, s, req.target);
    let loaded = load_checked(
        engine,
        c,
        s,
        &req,
        None,
        &scratch.name,
        &scratch.dir,
        "no database was changed",
        p,
    )
    .await;
    scratch.guard.undo().await;
    let checked = loaded?;
    Ok((checked.expected.len(), checked.expected.values().sum()))
}

/// A scratch database and its container folder, owned by a guard from the start.
struct Scratch {
    name: String,
    dir: String,
    guard: Guard,
}

impl Scratch {
    fn new(engine: &Engine, c: &str, s: &Settings, target: &str) -> Scratch {
        let stamp = Utc::now().format("%Y%m%d%H%M%S").to_string();
        let name = pg_name(target, &format!("_pgbox_restore_{stamp}"));
        let dir = format!("{}{stamp}-{}", load::RESTORE_DIR_PREFIX, std::process::id());
        let guard = {
            let (engine, c, s) = (engine.clone(), c.to_string(), s.clone());
            let (dir, name) = (dir.clone(), name.clone());
            Guard::future(
                format!("scratch database `{name}` and `{dir}` in the container"),
                async move {
                    let _ =
                        load::remove_restore_leftovers(&engine, &c, &s, Some(&dir), Some(&name))
                            .await;
                },
            )
        };
        Scratch { name, dir, guard }
    }
}

/// What a scratch database holds after a checked load: the backup's rows per table
/// (from its COPY data) and the restored ones.
struct Checked {
    expected: BTreeMap<String, u64>,
    got: BTreeMap<String, u64>,
    /// The upload folder was removed once pg_restore ended.
    folder_gone: bool,
}

#[allow(clippy::too_many_arguments)]
async fn restore_guarded(
    engine: &Engine,
    c: &str,
    s: &Settings,
    req: &Request<'_>,
    scan: Option<Scan>,
    scratch: &str,
    dir: &str,
    p: &Printer,
) -> anyhow::Result<Restored> {
    let target = req.target;
    let untouched = format!("database `{target}` is unchanged");
    let checked = load_checked(engine, c, s, req, scan, scratch, dir, &untouched, p).await?;
    swap(engine, c, s, req, scratch, checked, p).await
}

/// Load the backup into the new database `scratch` and check it: the rows per
/// table must match the backup's, and every database that existed before must still
/// be there. Errors end with `untouched` when nothing outside the scratch changed.
#[allow(clippy::too_many_arguments)]
async fn load_checked(
    engine: &Engine,
    c: &str,
    s: &Settings,
    req: &Request<'_>,
    mut scan: Option<Scan>,
    scratch: &str,
    dir: &str,
    untouched: &str,
    p: &Printer,
) -> anyhow::Result<Checked> {
    // While the backup streams in (the guard owns `dir` and the scratch database
    // from the start): what killed restores left is removed (never ours); the
    // databases before are read (restore scratch databases left out, so a
    // leftover dropped meanwhile is not missed later); the roles there are; the
    // empty scratch database is made;
    // and the host's checksum of the file must match before anything is loaded.
    // A database created during the read of `before` may or may not be listed
    // there; the scratch one is still there when `intact` looks again.
    let create = create_scratch_sql(s, scratch, dir);
    let plain = req.detected.format == Format::Plain;
    let need_roles = !plain && !req.no_owner;
    let (left, before, roles, remote, created, verified) = tokio::join!(
        phases::time(p, "leftovers", async {
            if !req.clean_leftovers {
                return Ok(Vec::new());
            }
            load::clean_restore_leftovers(engine, c, s, Some((dir, scratch))).await
        }),
        phases::time(p, "databases before", psql::databases(engine, c, s)),
        phases::time(p, "roles", async {
            if !need_roles {
                return Ok(String::new());
            }
            psql::sql(engine, c, s, "postgres", "select rolname from pg_roles").await
        }),
        phases::time(
            p,
            "upload",
            transfer::upload_to(engine, c, req.local, req.detected, dir, p)
        ),
        phases::time(
            p,
            "create scratch",
            psql::sql(engine, c, s, "postgres", &create)
        ),
        phases::time(p, "checksum", async {
            match &mut scan {
                Some(scan) => scan.verified().await,
                None => Ok(()),
            }
        })
    );
    // A file that does not check out is named as such, whatever else failed.
    verified?;
    super::report_leftovers(&left?, p);
    // Restore scratch databases are not the user's: a leftover one dropped
    // meanwhile (or this restore's own) is no database that went missing.
    let before: Vec<(u32, String)> = before?
        .into_iter()
        .filter(|(_, n)| !load::is_restore_scratch(n))
        .collect();
    let remote = remote?;
    created?;
    p.detail("uploaded and unpacked the backup");
    let mut items = 0;
    // The host read the archive's table of contents: when every role it names
    // exists (a superset of those the restore needs, see `scan::Toc`), the
    // container need not list it. Otherwise, or when the host could not read
    // it, the container's pg_restore lists the items and the roles exactly.
    let toc = match &mut scan {
        Some(scan) if !plain => phases::time(p, "table of contents", scan.toc()).await,
        _ => None,
    };
    let roles = roles?;
    let host_listed = toc.filter(|t| {
        !need_roles
            || t.roles
                .iter()
                .all(|r| roles.lines().any(|l| l == r.as_str()))
    });
    if let Some(t) = &host_listed {
        items = t.items;
        p.detail("read the backup's table of contents on the host");
    } else if !plain {
        let (n, owners) =
            phases::time(p, "list items", transfer::list_items(engine, c, &remote)).await?;
        items = n;
        if need_roles && !owners.is_empty() {
            let present = &roles;
            let missing: Vec<&str> = owners
                .iter()
                .filter(|o| !present.lines().any(|l| l == o.as_str()))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(Fail::new(format!("the backup needs roles that do not exist here: {}", missing.join(", ")))
                    .hint("create them (`pgbox psql -c 'CREATE ROLE name'`, or restore the globals backup first), or pass `--no-owner`")
                    .into());
            }
        }
        p.detail("checked the roles the backup needs");
    }
    let plan = match (&req.plain, plain) {
        (Some(plan), true) => {
            let restrict =
                psql::psql_has_restrict(&psql::psql_version(engine, c).await?).then(|| {
                    format!(
                        "\\restrict {}",
                        Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
                    )
                });
            Some((plan, restrict))
        }
        (None, true) => anyhow::bail!("a plain SQL restore needs its plan"),
        _ => None,
    };

    // The host counts a custom archive's rows (known once it read the table of
    // contents, at the start of the file); else the container counts them.
    let host_counts = match &mut scan {
        Some(scan) if !plain => scan.countable().await,
        _ => false,
    };
    let job = load::RestoreJob {
        remote: &remote,
        detected: req.detected,
        db: scratch,
        jobs: req.jobs,
        no_owner: req.no_owner,
        items,
    };
    let (restored, expected) = tokio::join!(
        phases::time(
            p,
            "pg_restore",
            load::restore_tracked(engine, c, s, &job, plan, p)
        ),
        phases::time(p, "backup row counts", async {
            let on_host = match &mut scan {
                Some(scan) if host_counts => scan.rows().await,
                _ => None,
            };
            match (&req.plain, on_host) {
                (Some(plan), _) => Ok(plan.tables.clone()),
                (None, Some(counted)) => {
                    p.detail("counted the backup's rows on the host");
                    Ok(counted)
                }
                (None, None) => transfer::archive_row_counts(engine, c, &remote).await,
            }
        })
    );
    // The checks read the scratch database, so they run side by side: whether every
    // database is still there, the restored rows, and ANALYZE (harmless on a scratch
    // database that is dropped if a check fails). Their results are taken in the
    // order they always were: the restore's, the databases', then the rows'.
    // The upload folder is no longer needed once pg_restore ended (its processes
    // with it): it goes meanwhile; the guard removes it again if this fails.
    let (intact, counted, analyzed, folder_gone) = if restored.is_ok() {
        tokio::join!(
            phases::time(p, "databases after", intact(engine, c, s, &before)),
            phases::time(p, "restored row counts", async {
                Some(load::row_counts(engine, c, s, scratch).await)
            }),
            phases::time(p, "analyze", async {
                Some(psql::sql(engine, c, s, scratch, "ANALYZE").await)
            }),
            phases::time(p, "remove folder", async {
                transfer::remove_remote(engine, c, dir).await.is_ok()
            })
        )
    } else {
        (intact(engine, c, s, &before).await, None, None, false)
    };
    let unchanged = |what: String| -> anyhow::Error {
        match &intact {
            Ok(()) => Fail::new(format!("{what}; {untouched}"))
                .hint("fix the cause (e.g. create missing roles or pass `--no-owner`) and run the restore again")
                .into(),
            Err(changed) => Fail::new(format!("{what}; and {changed:#}"))
                .hint("the backup file acted outside its scratch database; check the databases named above")
                .into(),
        }
    };
    if let Err(e) = restored {
        return Err(unchanged(format!("restore failed: {e:#}")));
    }
    if let Err(changed) = &intact {
        return Err(Fail::new(format!(
            "the restore was stopped before the swap: {changed:#}"
        ))
        .hint("nothing was swapped in; the backup file acted outside its scratch database")
        .into());
    }
    let expected = expected.map_err(|e| unchanged(format!("{e:#}")))?;
    let got = counted
        .expect("counted after a restore that succeeded")
        .map_err(|e| unchanged(format!("cannot count the restored rows: {e:#}")))?;
    compare(&expected, &got).map_err(|e| unchanged(e.to_string()))?;
    analyzed
        .expect("analyzed after a restore that succeeded")
        .map_err(|e| unchanged(format!("ANALYZE of the restored database failed: {e:#}")))?;
    p.detail(format!("restored into `{scratch}` and checked it"));
    Ok(Checked {
        expected,
        got,
        folder_gone,
    })
}

async fn swap(
    engine: &Engine,
    c: &str,
    s: &Settings,
    req: &Request<'_>,
    scratch: &str,
    Checked {
        expected,
        got,
        folder_gone,
    }: Checked,
    p: &Printer,
) -> anyhow::Result<Restored> {
    let target = req.target;
    // The swap: end connections, rename old aside and new into place, atomically.
    let stamp = scratch.rsplit('_').next().unwrap_or_default();
    let old =
        (req.target_exists && !req.into).then(|| pg_name(target, &format!("_pgbox_old_{stamp}")));
    let renames = match &old {
        Some(old) => format!(
            "ALTER DATABASE {t} RENAME TO {o};\nALTER DATABASE {n} RENAME TO {t};\n",
            t = ident(target),
            o = ident(old),
            n = ident(scratch)
        ),
        None => format!(
            "ALTER DATABASE {} RENAME TO {};\n",
            ident(scratch),
            ident(target)
        ),
    };
    let swap = swap_sql(target, &renames);
    // Pooled clients wait through the swap; their next server connection is to the
    // restored database, none to the renamed one (see `pooler::admin::Pause`).
    let paused = phases::time(
        p,
        "pooler pause",
        crate::pooler::admin::Pause::begin(s, Some(target)),
    )
    .await;
    let swapped: anyhow::Result<()> = async {
    let mut tries = 0;
    loop {
        let out = phases::time(p, "swap", psql::sql(engine, c, s, "postgres", &swap)).await;
        match out.as_deref().map(swap_in_use) {
            Ok(false) => break,
            // Someone connected between the terminate and the rename: try again.
            Ok(true) if tries < 10 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Ok(true) => {
                return Err(Fail::new(format!(
                    "could not swap the restored database in; `{target}` is unchanged: database `{target}` is being used by other sessions (SQLSTATE {OBJECT_IN_USE})"
                ))
                .into());
            }
            Err(e) => {
                return Err(Fail::new(format!(
                    "could not swap the restored database in; `{target}` is unchanged: {e}"
                ))
                .into());
            }
        }
    }
    Ok(())
    }
    .await;
    if let Some(paused) = paused {
        paused.end().await;
    }
    swapped?;
    let old = match old {
        Some(o) if req.drop_old => {
            psql::sql(
                engine,
                c,
                s,
                "postgres",
                &format!("DROP DATABASE {} WITH (FORCE)", ident(&o)),
            )
            .await
            .map_err(|e| {
                Fail::new(format!(
                    "restored `{target}`, but could not drop the previous database `{o}`: {e:#}"
                ))
                .hint(format!(
                    "drop it with: pgbox psql -c 'DROP DATABASE \"{o}\"'"
                ))
            })?;
            None
        }
        other => other,
    };
    let checked = !expected.is_empty();
    let (tables, rows) = if checked {
        (expected.len(), expected.values().sum())
    } else {
        (got.len(), got.values().sum())
    };
    Ok(Restored {
        tables,
        rows,
        checked,
        old,
        folder_gone,
    })
}

/// The scratch database's CREATE, in a session named for the restore's folder
/// (see [`load::creating_session`]): a cancelled restore ends that session before
/// it drops the scratch database, so a CREATE still running then cannot finish
/// after the drop and leave the database behind.
fn create_scratch_sql(s: &Settings, scratch: &str, dir: &str) -> String {
    format!(
        "SET application_name = {};\nCREATE DATABASE {} OWNER {} TEMPLATE template0;\n",
        lit(&load::creating_session(dir)),
        ident(scratch),
        ident(&s.user)
    )
}

/// SQLSTATE object_in_use: a database with sessions cannot be renamed.
const OBJECT_IN_USE: &str = "55006";

/// The swap as one statement: end the sessions on `target`, then the renames in a
/// DO block, atomic. A rename refused with object_in_use (someone connected in
/// between) is caught by its SQLSTATE and reported on the last line of output, so
/// the caller retries without reading any message text.
fn swap_sql(target: &str, renames: &str) -> String {
    let tag = format!(
        "$pgbox_{}$",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 16)
    );
    format!(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = {} and pid <> pg_backend_pid();\n\
         DO {tag} BEGIN\n{renames}EXCEPTION WHEN SQLSTATE '{OBJECT_IN_USE}' THEN\n  PERFORM set_config('pgbox.swap', '{OBJECT_IN_USE}', false);\nEND {tag};\n\
         select current_setting('pgbox.swap', true);\n",
        lit(target)
    )
}

/// Whether the swap's output says the renames were refused with object_in_use.
fn swap_in_use(out: &str) -> bool {
    out.lines().last() == Some(OBJECT_IN_USE)
}

/// Every database that existed before the restore is still there, same name and oid.
async fn intact(
    engine: &Engine,
    c: &str,
    s: &Settings,
    before: &[(u32, String)],
) -> anyhow::Result<()> {
    let now = psql::databases(engine, c, s).await?;
    let mut changed = Vec::new();
    for (oid, name) in before {
        match now.iter().find(|(o, _)| o == oid) {
            Some((_, n)) if n == name => {}
            Some((_, n)) => changed.push(format!("database `{name}` was renamed to `{n}`")),
            None => changed.push(format!("database `{name}` was dropped")),
        }
    }
    if changed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", changed.join(", "))
    }
}

/// The scratch database must hold every table of the backup's COPY data with as
/// many rows; an empty result from a backup with rows is named as such.
fn compare(expected: &BTreeMap<String, u64>, got: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    let want: u64 = expected.values().sum();
    let have: u64 = expected.keys().filter_map(|t| got.get(t)).sum();
    if want > 0 && got.values().sum::<u64>() == 0 {
        anyhow::bail!(
            "the restored database is empty, but the backup holds {want} rows in {} tables",
            expected.len()
        );
    }
    let diffs: Vec<String> = expected
        .iter()
        .filter(|(t, n)| got.get(*t) != Some(n))
        .map(|(t, n)| match got.get(t) {
            Some(g) => format!("`{t}`: {n} rows in the backup, {g} restored"),
            None => format!("`{t}`: {n} rows in the backup, table missing"),
        })
        .collect();
    if !diffs.is_empty() {
        let shown: Vec<&str> = diffs.iter().take(10).map(String::as_str).collect();
        anyhow::bail!(
            "the restored database does not hold what the backup holds ({have} of {want} rows): {}{}",
            shown.join(", "),
            if diffs.len() > 10 { format!(" and {} more", diffs.len() - 10) } else { String::new() }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_short_restore_is_refused() {
        let m = |v: &[(&str, u64)]| {
            v.iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect::<BTreeMap<_, _>>()
        };
        let want = m(&[("public.a", 5), ("public.b", 0)]);
        let e = compare(&want, &m(&[])).unwrap_err().to_string();
        assert!(
            e.contains("is empty, but the backup holds 5 rows in 2 tables"),
            "{e}"
        );
        let e = compare(&want, &m(&[("public.a", 4), ("public.b", 0)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`public.a`: 5 rows in the backup, 4 restored"),
            "{e}"
        );
        let e = compare(&want, &m(&[("public.a", 5)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`public.b`: 0 rows in the backup, table missing"),
            "{e}"
        );
        compare(
            &want,
            &m(&[("public.a", 5), ("public.b", 0), ("public.extra", 1)]),
        )
        .unwrap();
        compare(&m(&[]), &m(&[])).unwrap();
    }

    #[test]
    fn the_swap_is_retried_by_sqlstate_not_message() {
        let sql = swap_sql("app", "ALTER DATABASE a RENAME TO b;\n");
        assert!(sql.contains("EXCEPTION WHEN SQLSTATE '55006'"), "{sql}");
        assert!(swap_in_use("0\n55006"));
        assert!(!swap_in_use("2"));
        assert!(!swap_in_use("0\n"));
    }

    #[test]
    fn names_keep_their_suffix_within_63_bytes() {
        let n = pg_name(&"x".repeat(80), "_pgbox_restore_20260101120000");
        assert_eq!(n.len(), 63);
        assert!(load::is_restore_scratch(&n));
    }
}
