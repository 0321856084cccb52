//! `pgbox restore`: never leaves you with less than you had.
//!
//! The format is detected from magic bytes, and the file is read once on the host
//! ([`scan`]: its checksum, and a custom archive's rows per table) while the
//! restore connects, removes what a killed restore left and uploads. No database
//! but the restore's own scratch one is created before the file checked out, and a
//! file that does not match its manifest is named as such even when its upload
//! failed too. A plain SQL file (and a globals backup) is checked first, then read
//! through (`backup::plain`) and refused if it would act outside one database.
//! Under the project lock, what a killed restore left behind is removed first.
//! The restore itself (scratch database, checks, atomic swap, cleanup on every
//! exit path) is [`scratch`]; a
//! globals backup (roles) is applied to the server by [`globals`].

mod globals;
mod phases;
mod scan;
mod scratch;

pub use scratch::{restore, test_restore, Request};

use scan::Scan;

use std::time::Instant;

use super::{load, Format, Manifest};
use crate::config::Settings;
use crate::container::psql::{self, lit};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::{size, Printer};

/// pg_restore jobs: one per CPU but one, left for the server's own writers. On the
/// 2-CPU machines here `-j 2` measured slower than `-j 1` (13.0 s against 9.5 s).
pub fn jobs_default() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| (n.get() as u32).saturating_sub(1).max(1))
}

/// What `pgbox restore` restores, where and how.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// A backup file or directory dump, or `latest`.
    pub file: String,
    /// The database replaced (default: the manifest's, else the project database).
    pub db: Option<String>,
    /// A new database to restore into, next to the existing ones.
    pub into: Option<String>,
    pub jobs: Option<u32>,
    pub no_owner: bool,
    pub drop_old: bool,
    pub yes: bool,
    /// The engine address (`--engine`).
    pub engine: Option<String>,
}

/// Restore a backup (see the module doc). Returns false when the user declined.
pub async fn run(o: &RestoreOptions, s: &Settings, p: &Printer) -> anyhow::Result<bool> {
    let started = Instant::now();
    phases::start();
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "restore")?;
    let path = super::listing::resolve(s, &o.file)?;
    let manifest = Manifest::read(&path);

    // 1. The host's reads of the file start now and run beside what follows; no
    // database but the scratch one is touched before it checked out (module doc).
    if manifest.is_none() {
        p.warn(format!(
            "`{}` has no pgbox manifest: its checksum cannot be checked (fine for dumps made by other tools)",
            path.display()
        ));
    }
    let detected = super::detect(&path);
    let mut scan = Scan::start(
        &path,
        detected.as_ref().ok().copied(),
        manifest.as_ref().map(|m| m.sha256.clone()),
    );
    let d = match detected {
        Ok(d) => d,
        Err(e) => {
            scan.verified().await?;
            return Err(Fail::new(e.to_string()).hint("restore takes pg_dump custom or directory archives and plain SQL, optionally gzip or zstd compressed").into());
        }
    };
    if let Some(m) = &manifest {
        if m.kind == "database" && m.format != d.format {
            scan.verified().await?;
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
    if globals || d.format == Format::Plain {
        // Checked before it is read through or applied, as it always was.
        phases::time(p, "checksum", scan.verified()).await?;
    }
    // A plain SQL file is read through before anything is touched (blocking work).
    let plan = if d.format == Format::Plain && !globals {
        let (file, want) = (path.clone(), o.db.clone());
        let plan = tokio::task::spawn_blocking(move || {
            super::plain::plan(super::open_decompressed(&file, d)?, want.as_deref())
        })
        .await??;
        Some(plan)
    } else {
        None
    };

    let (engine, c) = phases::time(p, "connect, ready", async {
        let engine = Engine::connect(o.engine.as_deref()).await?;
        let c = crate::container::ctl::ready(&engine, s).await?;
        anyhow::Ok((engine, c))
    })
    .await?;
    let target = o
        .into
        .clone()
        .or(o.db.clone())
        .or(manifest.as_ref().map(|m| m.database.clone()))
        .unwrap_or_else(|| s.database.clone());
    // 2. The project lock is held: what an earlier, killed restore left is stale.
    // A globals backup removes it now; a database restore while it uploads
    // ([`scratch`]), sparing its latency. The target's size is read now (a read only).
    if globals {
        let left = phases::time(
            p,
            "leftovers",
            load::clean_restore_leftovers(&engine, &c, s, None),
        )
        .await?;
        report_leftovers(&left, p);
        return globals::apply(&engine, &c, s, &path, d, o.yes, p).await;
    }
    let current = phases::time(
        p,
        "target size",
        psql::sql(
            &engine,
            &c,
            s,
            "postgres",
            &format!(
                "select pg_database_size(datname) from pg_database where datname = {}",
                lit(&target)
            ),
        ),
    )
    .await;

    let current = current?;
    let current = match current.as_str() {
        "" => None,
        n => Some(n.parse::<u64>().map_err(|e| {
            Fail::new(format!(
                "cannot read the size of database `{target}` (`{n}`): {e}"
            ))
        })?),
    };
    if o.into.is_some() && current.is_some() {
        return Err(Fail::new(format!("database `{target}` already exists"))
            .hint("`--into` restores next to existing databases; choose a new name")
            .code(EXIT_USAGE)
            .into());
    }

    // 3. The confirmation names what is replaced, how big it is, and the backup's date.
    if let (Some(bytes), None) = (current, &o.into) {
        if !o.yes {
            // The question is asked about a file known to be sound.
            phases::time(p, "checksum", scan.verified()).await?;
        }
        let when = manifest
            .as_ref()
            .map(|m| m.created_at.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "an unknown date (no manifest)".into());
        let question =
            format!(
            "Replace database `{target}` ({}) with the backup from {when}? The current one is {}",
            size(bytes),
            if o.drop_old { "dropped" } else { "kept, renamed aside" }
        );
        if !p.confirm(
            question,
            o.yes,
            format!("restoring replaces database `{target}` ({})", size(bytes)),
            "pass `--yes` to confirm without a terminal, or `--into NEW` to restore next to it",
        )? {
            p.info("nothing restored");
            return Ok(false);
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
    let r = restore(
        &engine,
        &c,
        s,
        Request {
            local: &path,
            detected: d,
            target: &target,
            target_exists: current.is_some(),
            into: o.into.is_some(),
            drop_old: o.drop_old,
            jobs: o.jobs.unwrap_or_else(jobs_default).max(1),
            no_owner: o.no_owner,
            plain: plan,
            scan: Some(scan),
            clean_leftovers: true,
        },
        p,
    )
    .await?;
    p.trace(format!(
        "restore total                          {:>7.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    ));
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
    Ok(true)
}

/// Say what an interrupted restore left behind and this one removed.
pub(crate) fn report_leftovers(left: &[String], p: &Printer) {
    if !left.is_empty() {
        p.info(format!(
            "removed what an interrupted restore left behind: {}",
            left.join(", ")
        ));
    }
}
