//! `pgbox backup` (create), `backup list`, `backup verify` and `backup prune`.
//!
//! The dump runs inside the server's own container, compressed there, and is
//! written here as `.partial`, fsynced, checked and renamed, with a manifest
//! beside it. Every outcome, good or bad, is recorded so `prune` can refuse to
//! delete anything after a failed backup; the record says "failed" from before the
//! dump starts until it succeeds, so a killed pgbox never leaves a false `ok`.
//! `backup` holds the project lock, so whatever an earlier, killed backup left (a
//! `.partial` file, a pg_dump still running in the container) is removed first.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;

use crate::backup::dump::{self, Dest, DumpRequest};
use crate::backup::retention::{self, Policy};
use crate::backup::transfer::{self};
use crate::backup::{self as bk, Compression, Entry, Format, LastAttempt};
use crate::cancel::Guard;
use crate::cli::{BackupAction, BackupArgs, BackupCreateArgs, GlobalArgs, PruneArgs, VerifyArgs};
use crate::config::Settings;
use crate::container::psql::{self};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::{cancel, lock};

pub async fn run(args: BackupArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    match args.action {
        None => create(args.create, g, p).await,
        Some(BackupAction::List) => list(g, p),
        Some(BackupAction::Verify(a)) => verify_cmd(a, g, p).await,
        Some(BackupAction::Prune(a)) => prune(a, g, p),
    }
}

pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

async fn create(a: BackupCreateArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    let _lock = lock::project(&s.state_dir(), &s.project, "backup")?;
    let level = a.level.unwrap_or(match a.compress {
        Compression::Zstd => 3,
        Compression::Gzip => 6,
        Compression::None => 0,
    });
    let ok_level = match a.compress {
        Compression::Zstd => (1..=19).contains(&level),
        Compression::Gzip => (1..=9).contains(&level),
        Compression::None => true,
    };
    if !ok_level {
        return Err(Fail::new(format!(
            "`--level {level}` is out of range for {}",
            a.compress.as_str()
        ))
        .hint("zstd takes 1-19, gzip 1-9")
        .code(EXIT_USAGE)
        .into());
    }
    let to_stdout = a.output.as_deref() == Some(Path::new("-"));
    if to_stdout && a.all {
        return Err(
            Fail::new("`--all` writes several files and cannot go to stdout")
                .hint("give `-o` a folder, or leave it out to use the backup folder")
                .code(EXIT_USAGE)
                .into(),
        );
    }
    for path in run_backup(&a, &s, level, to_stdout, g, p).await? {
        p.data(path);
    }
    Ok(0)
}

/// Make the backups `a` asks for; into the backup folder the outcome is recorded,
/// good or bad, for `prune` and `schedule status`. The caller holds the project lock.
///
/// The record says "failed, not finished" before the first byte is dumped, so a
/// pgbox killed by any signal never leaves the previous `ok` standing; a SIGINT or
/// SIGTERM rewrites it as interrupted on the way out.
pub async fn run_backup(
    a: &BackupCreateArgs,
    s: &Settings,
    level: u32,
    to_stdout: bool,
    g: &GlobalArgs,
    p: &Printer,
) -> anyhow::Result<Vec<String>> {
    let record = a.output.is_none();
    let interrupted = if record {
        LastAttempt::begin(&s.backup_dir, &s.project).map_err(|e| {
            Fail::new(format!(
                "cannot write in backup folder `{}`: {e:#}",
                s.backup_dir.display()
            ))
            .hint("check that the folder is writable by you")
        })?;
        let (dir, project) = (s.backup_dir.clone(), s.project.clone());
        Some(Guard::sync("the backup record", move || {
            let signal = if cancel::exit_code() == 143 {
                "SIGTERM"
            } else {
                "SIGINT"
            };
            LastAttempt::finish(&dir, &project, Err(format!("interrupted by {signal}")));
        }))
    } else {
        None
    };
    let result = create_inner(a, s, level, to_stdout, g, p).await;
    if let Some(guard) = interrupted {
        guard.disarm();
        LastAttempt::finish(
            &s.backup_dir,
            &s.project,
            match &result {
                Ok(v) => Ok(v.first().cloned()),
                Err(e) => Err(format!("{e:#}")),
            },
        );
    }
    result
}

async fn create_inner(
    a: &BackupCreateArgs,
    s: &Settings,
    level: u32,
    to_stdout: bool,
    g: &GlobalArgs,
    p: &Printer,
) -> anyhow::Result<Vec<String>> {
    let engine = Engine::connect(g.engine.as_deref()).await?;
    let c = crate::container::ctl::ready(&engine, s).await?;
    let image = engine
        .inspect(&c)
        .await?
        .map(|i| i.image)
        .unwrap_or_default();
    let versions = crate::container::ctl::versions(&engine, &c).await?;
    let mut targets: Vec<(String, &str)> = Vec::new();
    if a.all {
        targets.push(("globals".into(), "globals"));
        let dbs = psql::sql(
            &engine,
            &c,
            s,
            "postgres",
            "select datname from pg_database where datallowconn and not datistemplate order by 1",
        )
        .await?;
        targets.extend(dbs.lines().map(|d| (d.to_string(), "database")));
    } else {
        targets.push((
            a.db.clone().unwrap_or_else(|| s.database.clone()),
            "database",
        ));
    }
    let dir = match &a.output {
        Some(o) if !to_stdout && (o.is_dir() || a.all) => Some(o.clone()),
        Some(_) => None,
        None => Some(s.backup_dir.clone()),
    };
    if let Some(d) = &dir {
        std::fs::create_dir_all(d).map_err(|e| {
            Fail::new(format!(
                "cannot create backup folder `{}`: {e}",
                d.display()
            ))
        })?;
    }
    // We hold the project lock: whatever an earlier backup left is stale.
    let mut stale: Vec<String> = dir
        .iter()
        .flat_map(|d| dump::remove_stale_partials(d, &s.project))
        .map(|f| format!("`{}`", f.display()))
        .collect();
    stale.extend(dump::remove_stale_dumps(&engine, &c).await?);
    if !stale.is_empty() {
        p.info(format!(
            "removed what an interrupted backup left: {}",
            stale.join(", ")
        ));
    }
    let now = Utc::now();
    let mut written = Vec::new();
    for (db, kind) in targets {
        let format = if kind == "globals" {
            Format::Plain
        } else {
            a.format
        };
        let dest = if to_stdout {
            Dest::Stdout
        } else {
            match &dir {
                Some(d) => {
                    Dest::File(d.join(bk::file_name(&s.project, &db, now, format, a.compress)))
                }
                None => Dest::File(a.output.clone().expect("an explicit output path")),
            }
        };
        if let Dest::File(f) = &dest {
            if f.exists() {
                return Err(Fail::new(format!("`{}` already exists", f.display()))
                    .hint("choose another `-o` path; pgbox never overwrites a backup")
                    .into());
            }
        }
        let req = DumpRequest {
            database: &db,
            kind,
            format,
            compression: a.compress,
            level,
            image: &image,
            versions: versions.clone(),
        };
        let dumped = dump::dump(&engine, &c, s, &req, dest, p).await?;
        let Some(path) = dumped.path else {
            p.done(format!(
                "streamed `{db}` to stdout ({})",
                mb(dumped.manifest.bytes)
            ));
            continue;
        };
        p.done(format!(
            "backed up `{db}` to `{}` ({}, {:.1}s)",
            path.display(),
            mb(dumped.manifest.bytes),
            dumped.manifest.duration_ms as f64 / 1000.0
        ));
        if a.verify && kind == "database" {
            verify(&engine, &c, s, &path, false, p).await?;
        }
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// A backup named on the command line, or the newest database backup for `latest`.
pub fn resolve(s: &Settings, which: &str) -> anyhow::Result<PathBuf> {
    if which != "latest" {
        let path = crate::config::absolute(&std::env::current_dir()?, Path::new(which));
        if !path.exists() {
            return Err(Fail::new(format!("`{}` does not exist", path.display()))
                .hint("`pgbox backup list` shows the backups")
                .code(EXIT_USAGE)
                .into());
        }
        return Ok(path);
    }
    bk::list(&s.backup_dir, &s.project)?
        .into_iter()
        .find(|e| e.manifest.kind == "database")
        .map(|e| e.path)
        .ok_or_else(|| {
            Fail::new(format!(
                "no backups of `{}` in `{}`",
                s.project,
                s.backup_dir.display()
            ))
            .hint("make one with `pgbox backup`")
            .into()
        })
}

#[derive(Serialize)]
struct Row {
    created_at: String,
    database: String,
    kind: String,
    bytes: u64,
    age: String,
    verified: bool,
    file: String,
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn list(g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    let now = Utc::now();
    let rows: Vec<Row> = bk::list(&s.backup_dir, &s.project)?
        .into_iter()
        .map(|e| Row {
            created_at: e
                .manifest
                .created_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            database: e.manifest.database.clone(),
            kind: e.manifest.kind.clone(),
            bytes: e.manifest.bytes,
            age: age((now - e.manifest.created_at).num_seconds()),
            verified: e.manifest.verified_at.is_some(),
            file: e.path.display().to_string(),
        })
        .collect();
    if p.json() {
        p.data(serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        p.info(format!(
            "no backups of `{}` in `{}`",
            s.project,
            s.backup_dir.display()
        ));
        return Ok(0);
    }
    p.data(format!(
        "{:<24}{:<16}{:>10}  {:>5}  {:<9}FILE",
        "CREATED", "DATABASE", "SIZE", "AGE", "VERIFIED"
    ));
    for r in rows {
        p.data(format!(
            "{:<24}{:<16}{:>10}  {:>5}  {:<9}{}",
            r.created_at,
            if r.kind == "globals" {
                "(globals)".to_string()
            } else {
                r.database
            },
            mb(r.bytes),
            r.age,
            if r.verified { "yes" } else { "no" },
            r.file
        ));
    }
    Ok(0)
}

/// Checksum, then pg_restore --list (or a full decompression for plain SQL);
/// with `deep`, a restore into a scratch database and a row-count comparison.
pub async fn verify(
    engine: &Engine,
    c: &str,
    s: &Settings,
    path: &Path,
    deep: bool,
    p: &Printer,
) -> anyhow::Result<()> {
    let manifest = bk::Manifest::read(path);
    match &manifest {
        Some(m) => {
            let sum = dump::sha256_file(path, p).await?;
            if sum != m.sha256 {
                return Err(Fail::new(format!(
                    "`{}` does not match its manifest's checksum (sha256 {sum}, expected {})",
                    path.display(),
                    m.sha256
                ))
                .hint("the file was changed or damaged after it was written; use another backup")
                .into());
            }
        }
        None => p.warn(format!(
            "`{}` has no manifest: its checksum cannot be checked",
            path.display()
        )),
    }
    let d = bk::detect(path)?;
    let globals = manifest.as_ref().is_some_and(|m| m.kind == "globals");
    let remote = transfer::upload(engine, c, path, d, p).await?;
    let result = async {
        let items = if d.format == Format::Plain {
            0
        } else {
            transfer::list_items(engine, c, &remote).await?.0
        };
        if deep && globals {
            p.info("a globals backup holds roles, not tables: no test restore (it would change the server's roles)");
        } else if deep {
            // The same scratch restore and checks as `pgbox restore`, then dropped;
            // a plain file is read through first so it can only act in the scratch.
            let plan = match d.format {
                Format::Plain => {
                    let file = path.to_path_buf();
                    Some(
                        tokio::task::spawn_blocking(move || {
                            bk::plain::plan(bk::open_decompressed(&file, d)?, None)
                        })
                        .await??,
                    )
                }
                _ => None,
            };
            let (tables, rows) = bk::restore::test_restore(
                engine,
                c,
                s,
                bk::restore::Request {
                    local: path,
                    detected: d,
                    target: "pgbox_verify",
                    target_exists: false,
                    into: true,
                    drop_old: false,
                    jobs: jobs_default(),
                    no_owner: true,
                    plain: plan,
                },
                p,
            )
            .await?;
            p.done(format!(
                "test restore matched the backup: {tables} tables, {rows} rows"
            ));
        }
        anyhow::Ok(items)
    }
    .await;
    let _ = transfer::remove_remote(engine, c, &remote.dir).await;
    let items = result?;
    if let Some(mut m) = manifest {
        m.verified_at = Some(Utc::now());
        m.write(path)?;
    }
    p.done(format!(
        "`{}` is sound{}",
        path.display(),
        if items > 0 {
            format!(" ({items} archive items)")
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// pg_restore jobs: one per CPU but one, left for the server's own writers. On the
/// 2-CPU machines here `-j 2` measured slower than `-j 1` (13.0 s against 9.5 s).
pub fn jobs_default() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| (n.get() as u32).saturating_sub(1).max(1))
}

async fn verify_cmd(a: VerifyArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    let path = resolve(&s, &a.file)?;
    // A test restore uses a scratch database like `restore`, whose leftovers a later
    // run removes under this lock.
    let _lock = match a.deep {
        true => Some(crate::lock::project(
            &s.state_dir(),
            &s.project,
            "backup verify",
        )?),
        false => None,
    };
    let engine = Engine::connect(g.engine.as_deref()).await?;
    let c = crate::container::ctl::ready(&engine, &s).await?;
    verify(&engine, &c, &s, &path, a.deep, p).await?;
    Ok(0)
}

fn prune(a: PruneArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    let r = &a.retention;
    let policy = policy(&s, r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly);
    prune_with(&s, policy, a.yes, a.dry_run, p)
}

/// The retention policy: flags over pgbox.toml over 7 daily, 4 weekly, 6 monthly.
pub fn policy(
    s: &Settings,
    last: Option<u32>,
    daily: Option<u32>,
    weekly: Option<u32>,
    monthly: Option<u32>,
) -> Policy {
    Policy {
        keep_last: last.or(s.keep_last).unwrap_or(0),
        daily: daily.unwrap_or(s.keep_daily),
        weekly: weekly.unwrap_or(s.keep_weekly),
        monthly: monthly.unwrap_or(s.keep_monthly),
    }
}

/// Delete what `policy` does not keep (after a confirmation unless `yes`).
pub fn prune_with(
    s: &Settings,
    policy: Policy,
    yes: bool,
    dry_run: bool,
    p: &Printer,
) -> super::Outcome {
    let alive = |pid| lock::held_by(&s.state_dir()) == Some(pid);
    if let Some(last) =
        LastAttempt::read(&s.backup_dir, &s.project).filter(|l| l.blocks_prune(alive))
    {
        let how = match last.running_pid {
            Some(pid) if alive(pid) => "before the one now running failed",
            Some(_) => "was interrupted",
            None => "failed",
        };
        let why = last
            .error
            .as_deref()
            .and_then(|e| e.lines().next())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(Fail::new(format!(
            "the latest backup {how} ({}{why}); prune deletes nothing until a backup succeeds",
            last.at.format("%Y-%m-%d %H:%M UTC")
        ))
        .hint("run `pgbox backup` and fix what it reports")
        .into());
    }
    let doomed = prune_plan(&bk::list(&s.backup_dir, &s.project)?, policy);
    if doomed.is_empty() {
        p.info("nothing to prune: every backup is kept by the policy");
        return Ok(0);
    }
    for e in &doomed {
        p.info(format!(
            "would delete `{}` ({})",
            e.path.display(),
            e.manifest.created_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if dry_run {
        return Ok(0);
    }
    if !p.confirm(
        format!("Delete these {} backups?", doomed.len()),
        yes,
        format!("pruning deletes {} backups", doomed.len()),
        "pass `--yes` to confirm without a terminal, or `--dry-run` to only look",
    )? {
        p.info("nothing deleted");
        return Ok(1);
    }
    for e in &doomed {
        std::fs::remove_file(&e.path)?;
        let _ = std::fs::remove_file(bk::manifest_path(&e.path));
    }
    p.done(format!("deleted {} backups", doomed.len()));
    Ok(0)
}

/// Backups the policy lets go, applied per database (and to the globals separately).
pub fn prune_plan(entries: &[Entry], policy: Policy) -> Vec<Entry> {
    let mut groups: Vec<(String, Vec<&Entry>)> = Vec::new();
    for e in entries {
        let key = format!("{}/{}", e.manifest.kind, e.manifest.database);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    let mut doomed = Vec::new();
    for (_, group) in groups {
        let items: Vec<retention::Item> = group
            .iter()
            .map(|e| retention::Item {
                created_at: e.manifest.created_at,
                verified: e.manifest.verified_at.is_some(),
            })
            .collect();
        for (e, keep) in group.iter().zip(retention::plan(&items, policy)) {
            if !keep {
                doomed.push((*e).clone());
            }
        }
    }
    doomed
}
