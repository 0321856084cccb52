//! `pgbox restore`: never leaves you with less than you had.
//!
//! The checksum is verified and the format detected from magic bytes before the
//! database is touched. The backup is restored into a scratch database; only
//! when that succeeds are the target's connections ended and the old database
//! renamed aside (or dropped with `--drop-old`) and the scratch one renamed into
//! place, both renames in one transaction. A failed restore drops the scratch
//! database and leaves the target exactly as it was.

use std::time::Instant;

use chrono::Utc;

use super::backup::{jobs_default, mb, ready_container, resolve};
use crate::backup::ops::{self, ident, lit};
use crate::backup::{self as bk, Format};
use crate::cli::{GlobalArgs, RestoreArgs};
use crate::config::Settings;
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

/// PostgreSQL names are at most 63 bytes.
fn pg_name(base: &str, suffix: &str) -> String {
    let mut b = base.to_string();
    while b.len() + suffix.len() > 63 {
        b.pop();
    }
    format!("{b}{suffix}")
}

pub async fn run(a: RestoreArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let started = Instant::now();
    let s = Settings::load(g.config.as_deref())?;
    let path = resolve(&s, &a.file)?;
    let manifest = bk::Manifest::read(&path);

    // 1. Nothing is touched before the file checks out.
    match &manifest {
        Some(m) => {
            let sum = ops::sha256_file(&path, p).await?;
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

    let engine = Engine::connect(g.engine.as_deref()).await?;
    let c = ready_container(&engine, &s).await?;
    if globals {
        return restore_globals(&engine, &c, &s, &path, d, a.yes, p).await;
    }

    let target = a
        .into
        .clone()
        .or(a.db.clone())
        .or(manifest.as_ref().map(|m| m.database.clone()))
        .unwrap_or_else(|| s.database.clone());
    let exists = |db: String| {
        let (engine, c, s) = (&engine, &c, &s);
        async move {
            ops::sql(
                engine,
                c,
                s,
                "postgres",
                &format!(
                    "select pg_database_size(datname) from pg_database where datname = {}",
                    lit(&db)
                ),
            )
            .await
            .map(|o| o.parse::<u64>().ok())
        }
    };
    let current = exists(target.clone()).await?;
    if a.into.is_some() && current.is_some() {
        return Err(Fail::new(format!("database `{target}` already exists"))
            .hint("`--into` restores next to existing databases; choose a new name")
            .code(EXIT_USAGE)
            .into());
    }

    // 2. The confirmation names what is replaced, how big it is, and the backup's date.
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

    // 3. Into the container, then the roles it needs.
    let remote = ops::upload(&engine, &c, &path, d, p).await?;
    p.detail(format!(
        "uploaded and unpacked in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    let outcome = restore_and_swap(
        &engine,
        &c,
        &s,
        &a,
        &remote,
        d,
        &target,
        current.is_some(),
        p,
    )
    .await;
    let _ = ops::remove_remote(&engine, &c, &remote.dir).await;
    let (tables, rows, old) = outcome?;
    p.done(format!(
        "restored `{}` into `{target}`: {tables} tables, {rows} rows, {:.1}s",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        started.elapsed().as_secs_f64()
    ));
    if let Some(old) = old {
        p.info(format!(
            "the previous database is kept as `{old}`; drop it with: pgbox psql -c 'DROP DATABASE \"{old}\"'"
        ));
    }
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
async fn restore_and_swap(
    engine: &Engine,
    c: &str,
    s: &Settings,
    a: &RestoreArgs,
    remote: &ops::Remote,
    d: bk::Detected,
    target: &str,
    target_exists: bool,
    p: &Printer,
) -> anyhow::Result<(u64, u64, Option<String>)> {
    let mut items = 0;
    if d.format != Format::Plain {
        let (n, owners) = ops::list_items(engine, c, remote).await?;
        items = n;
        if !a.no_owner && !owners.is_empty() {
            let list = owners.iter().map(|o| lit(o)).collect::<Vec<_>>().join(",");
            let present = ops::sql(
                engine,
                c,
                s,
                "postgres",
                &format!("select rolname from pg_roles where rolname in ({list})"),
            )
            .await?;
            let missing: Vec<&String> = owners
                .iter()
                .filter(|o| !present.lines().any(|l| l == o.as_str()))
                .collect();
            if !missing.is_empty() {
                let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Err(Fail::new(format!("the backup needs roles that do not exist here: {}", names.join(", ")))
                    .hint("create them (`pgbox psql -c 'CREATE ROLE name'`, or restore the globals backup first), or pass `--no-owner`")
                    .into());
            }
        }
    }

    p.detail("checked the roles the backup needs");
    // 4. Scratch database; the target is not touched until this succeeded.
    let stamp = Utc::now().format("%Y%m%d%H%M%S").to_string();
    let scratch = pg_name(target, &format!("_pgbox_restore_{stamp}"));
    ops::sql(
        engine,
        c,
        s,
        "postgres",
        &format!(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0",
            ident(&scratch),
            ident(&s.user)
        ),
    )
    .await?;
    let jobs = a.jobs.unwrap_or_else(jobs_default).max(1);
    if let Err(e) = ops::restore_into(
        engine,
        c,
        s,
        &ops::RestoreJob {
            remote,
            detected: d,
            db: &scratch,
            jobs,
            no_owner: a.no_owner,
            items,
        },
        p,
    )
    .await
    {
        let _ = ops::sql(
            engine,
            c,
            s,
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&scratch)),
        )
        .await;
        return Err(Fail::new(format!("restore failed; database `{target}` is unchanged: {e:#}"))
            .hint("fix the cause (e.g. create missing roles or pass `--no-owner`) and run the restore again")
            .into());
    }

    p.detail(format!("restored into `{scratch}`"));
    // 5. The swap: end connections, rename old aside and new into place, atomically.
    let old = (target_exists && a.into.is_none())
        .then(|| pg_name(target, &format!("_pgbox_old_{stamp}")));
    let renames = match &old {
        Some(old) => format!(
            "ALTER DATABASE {t} RENAME TO {o};\nALTER DATABASE {n} RENAME TO {t};\n",
            t = ident(target),
            o = ident(old),
            n = ident(&scratch)
        ),
        None => format!(
            "ALTER DATABASE {} RENAME TO {};\n",
            ident(&scratch),
            ident(target)
        ),
    };
    let swap = format!(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = {} and pid <> pg_backend_pid();\nBEGIN;\n{renames}COMMIT;\n",
        lit(target)
    );
    let mut tries = 0;
    loop {
        match ops::sql(engine, c, s, "postgres", &swap).await {
            Ok(_) => break,
            Err(e) if tries < 10 && e.to_string().contains("being accessed by other users") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                let _ = ops::sql(
                    engine,
                    c,
                    s,
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&scratch)),
                )
                .await;
                return Err(Fail::new(format!(
                    "could not swap the restored database in; `{target}` is unchanged: {e}"
                ))
                .into());
            }
        }
    }
    let old = match old {
        Some(o) if a.drop_old => {
            ops::sql(
                engine,
                c,
                s,
                "postgres",
                &format!("DROP DATABASE {} WITH (FORCE)", ident(&o)),
            )
            .await?;
            None
        }
        other => other,
    };
    let summary = ops::sql(
        engine,
        c,
        s,
        target,
        "ANALYZE;\nselect count(*) || ' ' || coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast'",
    )
    .await
    .unwrap_or_default();
    let mut it = summary
        .split_whitespace()
        .map(|x| x.parse::<u64>().unwrap_or(0));
    Ok((it.next().unwrap_or(0), it.next().unwrap_or(0), old))
}

/// Roles and tablespaces from a `--all` backup, applied to the cluster with psql.
/// "already exists" errors are expected for roles that are there and are reported, not fatal.
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
    let remote = ops::upload(engine, c, path, d, p).await?;
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
        .await;
    let _ = ops::remove_remote(engine, c, &remote.dir).await;
    let out = out?;
    let err = String::from_utf8_lossy(&out.stderr);
    let real: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("ERROR") && !l.contains("already exists"))
        .collect();
    if !real.is_empty() {
        return Err(Fail::new(format!(
            "some globals could not be applied:\n{}",
            real.join("\n")
        ))
        .into());
    }
    p.done("applied the roles and tablespaces from the globals backup");
    Ok(0)
}
