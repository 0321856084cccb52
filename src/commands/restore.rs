//! `pgbox restore`: never leaves you with less than you had.
//!
//! The checksum is verified and the format detected from magic bytes before the
//! database is touched; a plain SQL file is also read through (`backup::plain`) and
//! refused if it would act outside one database. Under the project lock, what a
//! killed restore left behind is removed first. The restore itself (scratch database,
//! checks, atomic swap, cleanup on every exit path) is `backup::restore`.

use std::time::Instant;

use super::backup::{jobs_default, mb, resolve};
use crate::backup::dump::{self};
use crate::backup::load::{self};
use crate::backup::transfer::{self};
use crate::backup::{self as bk, Format};
use crate::cli::{GlobalArgs, RestoreArgs};
use crate::config::Settings;
use crate::container::psql::{self, lit};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

pub async fn run(a: RestoreArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let started = Instant::now();
    let s = Settings::load(g.config.as_deref())?;
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "restore")?;
    let path = resolve(&s, &a.file)?;
    let manifest = bk::Manifest::read(&path);

    // 1. Nothing is touched before the file checks out.
    match &manifest {
        Some(m) => {
            let sum = dump::sha256_file(&path, p).await?;
            if sum != m.sha256 {
                return Err(Fail::new(format!(
                    "`{}` does not match its manifest's checksum; refusing to restore it",
                    path.display()
                ))
                .hint("the file was changed or damaged after it was written; pick another backup (`pgbox backup list`)")
                .into());
            }
        }
        None => p.warn(format!(
            "`{}` has no pgbox manifest: its checksum cannot be checked (fine for dumps made by other tools)",
            path.display()
        )),
    }
    let d = bk::detect(&path).map_err(|e| Fail::new(e.to_string()).hint("restore takes pg_dump custom or directory archives and plain SQL, optionally gzip or zstd compressed"))?;
    if let Some(m) = &manifest {
        if m.kind == "database" && m.format != d.format {
            return Err(Fail::new(format!(
                "`{}` reads as {:?} but its manifest says {:?}",
                path.display(),
                d.format,
                m.format
            ))
            .into());
        }
    }
    let globals = manifest.as_ref().is_some_and(|m| m.kind == "globals");
    // A plain SQL file is read through before anything is touched (blocking work).
    let plan = if d.format == Format::Plain && !globals {
        let (file, want) = (path.clone(), a.db.clone());
        let plan = tokio::task::spawn_blocking(move || {
            bk::plain::plan(bk::open_decompressed(&file, d)?, want.as_deref())
        })
        .await??;
        Some(plan)
    } else {
        None
    };

    let engine = Engine::connect(g.engine.as_deref()).await?;
    let c = crate::container::ctl::ready(&engine, &s).await?;
    // 2. The project lock is held: what an earlier, killed restore left is stale.
    let left = load::clean_restore_leftovers(&engine, &c, &s).await?;
    if !left.is_empty() {
        p.info(format!(
            "removed what an interrupted restore left behind: {}",
            left.join(", ")
        ));
    }
    if globals {
        return restore_globals(&engine, &c, &s, &path, d, a.yes, p).await;
    }

    let target = a
        .into
        .clone()
        .or(a.db.clone())
        .or(manifest.as_ref().map(|m| m.database.clone()))
        .unwrap_or_else(|| s.database.clone());
    let current = psql::sql(
        &engine,
        &c,
        &s,
        "postgres",
        &format!(
            "select pg_database_size(datname) from pg_database where datname = {}",
            lit(&target)
        ),
    )
    .await?
    .parse::<u64>()
    .ok();
    if a.into.is_some() && current.is_some() {
        return Err(Fail::new(format!("database `{target}` already exists"))
            .hint("`--into` restores next to existing databases; choose a new name")
            .code(EXIT_USAGE)
            .into());
    }

    // 3. The confirmation names what is replaced, how big it is, and the backup's date.
    if let (Some(size), None) = (current, &a.into) {
        let when = manifest
            .as_ref()
            .map(|m| m.created_at.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "an unknown date (no manifest)".into());
        let question =
            format!(
            "Replace database `{target}` ({}) with the backup from {when}? The current one is {}",
            mb(size),
            if a.drop_old { "dropped" } else { "kept, renamed aside" }
        );
        if !a.yes {
            if !p.can_prompt() {
                return Err(Fail::new(format!("restoring replaces database `{target}` ({}) and needs a confirmation", mb(size)))
                    .hint("pass `--yes` to confirm without a terminal, or `--into NEW` to restore next to it")
                    .code(EXIT_USAGE)
                    .into());
            }
            if !dialoguer::Confirm::new()
                .with_prompt(question)
                .default(false)
                .interact()?
            {
                p.info("nothing restored");
                return Ok(1);
            }
        }
    }
    if let Some((pl, section)) = plan
        .as_ref()
        .and_then(|pl| Some((pl, pl.section.as_ref()?)))
    {
        if pl.cluster {
            p.info(format!(
                "the SQL file is a whole-cluster dump of {}; restoring only `{section}` (roles and the other databases are left out)",
                pl.sections.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
        } else {
            p.detail(format!(
                "restoring the `{section}` database of the SQL file into the scratch database (its CREATE/DROP DATABASE and \\connect are left out)"
            ));
        }
    }

    // 4. Scratch database, checks, swap.
    let r = bk::restore::restore(
        &engine,
        &c,
        &s,
        bk::restore::Request {
            local: &path,
            detected: d,
            target: &target,
            target_exists: current.is_some(),
            into: a.into.is_some(),
            drop_old: a.drop_old,
            jobs: a.jobs.unwrap_or_else(jobs_default).max(1),
            no_owner: a.no_owner,
            plain: plan,
        },
        p,
    )
    .await?;
    p.done(format!(
        "restored `{}` into `{target}`: {} tables, {} rows{}, {:.1}s",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        r.tables,
        r.rows,
        if r.checked {
            " (matching the backup)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    ));
    if let Some(old) = r.old {
        p.info(format!(
            "the previous database is kept as `{old}`; drop it with: pgbox psql -c 'DROP DATABASE \"{old}\"'"
        ));
    }
    Ok(0)
}

/// Roles and tablespaces from a `--all` backup, applied to the cluster with psql.
/// "already exists" errors are expected for roles that are there and are reported,
/// not fatal; any other error, or a psql failure, is.
async fn restore_globals(
    engine: &Engine,
    c: &str,
    s: &Settings,
    path: &std::path::Path,
    d: bk::Detected,
    yes: bool,
    p: &Printer,
) -> super::Outcome {
    if !yes && !p.can_prompt() {
        return Err(Fail::new(
            "restoring globals changes roles for the whole server and needs a confirmation",
        )
        .hint("pass `--yes` to confirm without a terminal")
        .code(EXIT_USAGE)
        .into());
    }
    if !yes
        && !dialoguer::Confirm::new()
            .with_prompt("Apply the roles from this backup to the server?")
            .default(false)
            .interact()?
    {
        return Ok(1);
    }
    let dir = format!(
        "{}{}-{}",
        load::RESTORE_DIR_PREFIX,
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );
    let guard = {
        let (engine, c, s, dir) = (engine.clone(), c.to_string(), s.clone(), dir.clone());
        crate::cancel::Guard::future(format!("`{dir}` in the container"), async move {
            let _ = load::remove_restore_leftovers(&engine, &c, &s, Some(&dir), None).await;
        })
    };
    let out = async {
        let remote = transfer::upload_to(engine, c, path, d, &dir, p).await?;
        let out = engine
            .exec_capture(
                c,
                &crate::engine::ExecSpec {
                    cmd: [
                        "psql",
                        "--no-psqlrc",
                        "-q",
                        "-U",
                        &s.user,
                        "-d",
                        "postgres",
                        "-f",
                        &remote.path,
                    ]
                    .map(String::from)
                    .to_vec(),
                    user: Some("postgres".into()),
                    env: Vec::new(),
                },
            )
            .await?;
        anyhow::Ok(out)
    }
    .await;
    guard.undo().await;
    let out = out?;
    let err = String::from_utf8_lossy(&out.stderr);
    let real: Vec<&str> = err
        .lines()
        .filter(|l| {
            (l.contains("ERROR") || l.contains("FATAL") || l.contains("psql:"))
                && !l.contains("already exists")
        })
        .collect();
    if out.code != 0 || !real.is_empty() {
        let shown = if real.is_empty() {
            err.lines().rev().take(5).collect::<Vec<_>>()
        } else {
            real
        };
        return Err(Fail::new(format!(
            "some globals could not be applied (psql exit {}):\n{}",
            out.code,
            shown.join("\n")
        ))
        .into());
    }
    p.done("applied the roles and tablespaces from the globals backup");
    Ok(0)
}
