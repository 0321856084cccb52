//! `pgbox migrate`: numbered SQL migrations with a version table, checksums, one
//! advisory lock per run, a snapshot before `up`, and `rollback` to it.
//!
//! Every operation starts the same way: the folder is read and checked as a whole
//! (`files`), the lock is taken on a session of its own (`conn`), and the applied
//! set is read only then (`table`), so two runs never apply a file twice. Each file
//! runs in one transaction together with its version row (`exec`), so a failure
//! leaves the database exactly as before that file. Reports (`status`, `repair`)
//! are in `report`; importing another tool's history is in `adopt`.

pub mod adopt;
pub mod conn;
pub mod exec;
pub mod files;
pub mod report;
pub mod snapshot;
pub mod sql;
pub mod table;

use std::path::{Path, PathBuf};

use crate::pgclient::Target;
use exec::Direction;
use files::Migration;
use table::{Applied, Table};

use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

/// Where the files are, where the history is kept, and which server.
#[derive(Debug, Clone)]
pub struct Env {
    pub dir: PathBuf,
    pub table: Table,
    pub target: Target,
}

impl Env {
    /// The folder's migrations; every problem of the folder is one error.
    pub fn load(&self) -> anyhow::Result<Vec<Migration>> {
        load_dir(&self.dir)
    }
}

fn load_dir(dir: &Path) -> anyhow::Result<Vec<Migration>> {
    files::load(dir).map_err(|errs| {
        let list: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        Fail::new(format!(
            "the migrations folder `{}` has {} problem(s); nothing was applied:\n{}",
            dir.display(),
            errs.len(),
            list.join("\n")
        ))
        .hint("fix the files named above and run the command again")
        .code(EXIT_USAGE)
        .into()
    })
}

/// `migrate new NAME`: an empty file with both sections; returns its path.
pub fn new(dir: &Path, name: &str, p: &Printer) -> anyhow::Result<PathBuf> {
    let slug = files::slug(name);
    if slug.is_empty() {
        return Err(Fail::new(format!(
            "`{name}` has no letters or digits to name a file with"
        ))
        .code(EXIT_USAGE)
        .into());
    }
    let existing = load_dir(dir)?;
    let now: i64 = chrono::Utc::now()
        .format("%Y%m%d%H%M%S")
        .to_string()
        .parse()?;
    let version = existing.last().map_or(now, |m| now.max(m.version + 1));
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail::new(format!("cannot create `{}`: {e}", dir.display())))?;
    let path = dir.join(format!("{version}_{slug}.sql"));
    std::fs::write(&path, "-- migrate:up\n\n\n-- migrate:down\n\n")
        .map_err(|e| Fail::new(format!("cannot write `{}`: {e}", path.display())))?;
    p.done(format!("created `{}`", path.display()));
    Ok(path)
}

/// An applied file whose content changed: `up` and `down` stop on these.
fn changed<'a>(files: &'a [Migration], applied: &[Applied]) -> Vec<&'a Migration> {
    files
        .iter()
        .filter(|m| {
            applied
                .iter()
                .any(|a| a.version == m.version && a.sha256 != m.sha256)
        })
        .collect()
}

fn refuse_changed(changed: &[&Migration]) -> anyhow::Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = changed
        .iter()
        .map(|m| format!("`{}`", m.path.display()))
        .collect();
    Err(Fail::new(format!(
        "{} changed after {} applied: {}; nothing was applied",
        if names.len() == 1 { "a migration file" } else { "migration files" },
        if names.len() == 1 { "it was" } else { "they were" },
        names.join(", ")
    ))
    .hint("put the applied text back, or record the new text with `pgbox migrate repair` (it shows the diff first), and make further changes in a new migration (`pgbox migrate new`)")
    .into())
}

fn warn_missing(files: &[Migration], applied: &[Applied], p: &Printer) {
    for a in applied
        .iter()
        .filter(|a| !files.iter().any(|m| m.version == a.version))
    {
        p.warn(format!(
            "`{}` is applied in the database but missing on disk",
            a.file_name()
        ));
    }
}

fn check_version(files: &[Migration], to: Option<i64>) -> anyhow::Result<()> {
    match to {
        Some(v) if v != 0 && !files.iter().any(|m| m.version == v) => {
            Err(Fail::new(format!("no migration has version `{v}`"))
                .hint("`pgbox migrate status` lists the versions")
                .code(EXIT_USAGE)
                .into())
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Apply up to and including this version.
    pub to: Option<i64>,
    pub dry_run: bool,
    /// Skip the snapshot (the project's server only takes one).
    pub no_snapshot: bool,
}

/// `migrate up`. Returns the number of files applied.
pub async fn up(env: &Env, o: &UpOptions, p: &Printer) -> anyhow::Result<usize> {
    let files = env.load()?;
    check_version(&files, o.to)?;
    let lock = conn::lock(&env.target, &env.table.display(), p).await?;
    let mut work = env.target.connect().await?;
    let applied = table::read(&work, &env.table).await?;
    refuse_changed(&changed(&files, &applied))?;
    warn_missing(&files, &applied, p);
    let pending: Vec<&Migration> = files
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .filter(|m| o.to.is_none_or(|t| m.version <= t))
        .collect();
    if pending.is_empty() {
        p.done(format!(
            "`{}` is up to date ({} applied)",
            env.target.describe(),
            applied.len()
        ));
        return Ok(0);
    }
    if o.dry_run {
        for m in &pending {
            p.data(format!(
                "would apply {}{}",
                m.file_name(),
                if m.no_transaction {
                    " (no transaction)"
                } else {
                    ""
                }
            ));
        }
        return Ok(0);
    }
    if let (Some(own), false) = (&env.target.own, o.no_snapshot) {
        // The template copy needs the database to itself: this run's session leaves.
        drop(work);
        let before = applied.iter().map(|a| a.version).collect();
        snapshot::take(&lock.client, &env.target, own, before, p).await?;
        work = env.target.connect().await?;
    }
    table::ensure(&work, &env.table).await?;
    for m in &pending {
        let ms = exec::run(&work, env.target.tls(), &env.table, m, Direction::Up).await?;
        p.done(format!(
            "applied {} in {ms} ms{}",
            m.file_name(),
            if m.no_transaction {
                " (no transaction)"
            } else {
                ""
            }
        ));
    }
    drop(lock);
    Ok(pending.len())
}

#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// Revert every file newer than this version (0: all); None: the newest one.
    pub to: Option<i64>,
    pub dry_run: bool,
}

/// `migrate down`, newest first; refuses before anything runs when a file to revert
/// has no down section. Returns the number reverted.
pub async fn down(env: &Env, o: &DownOptions, p: &Printer) -> anyhow::Result<usize> {
    let files = env.load()?;
    check_version(&files, o.to)?;
    let _lock = conn::lock(&env.target, &env.table.display(), p).await?;
    let work = env.target.connect().await?;
    let applied = table::read(&work, &env.table).await?;
    let mut revert: Vec<&Applied> = match o.to {
        Some(t) => applied.iter().filter(|a| a.version > t).collect(),
        None => applied.last().into_iter().collect(),
    };
    revert.reverse();
    if revert.is_empty() {
        p.done("nothing to revert");
        return Ok(0);
    }
    // Each reverted file from disk, else from the text recorded when it was applied.
    let mut plan = Vec::new();
    for a in &revert {
        let m = match files.iter().find(|m| m.version == a.version) {
            Some(m) if m.sha256 == a.sha256 => m.clone(),
            Some(m) => return refuse_changed(&[m]).map(|_| 0),
            None => recorded(a)?,
        };
        if m.down.is_none() {
            return Err(Fail::new(format!("`{}` has no down section; nothing was reverted", m.file_name()))
                .hint("add a `-- migrate:down` section (then `pgbox migrate repair`), or write a new migration that undoes it")
                .into());
        }
        plan.push(m);
    }
    if o.dry_run {
        for m in &plan {
            p.data(format!("would revert {}", m.file_name()));
        }
        return Ok(0);
    }
    for m in &plan {
        let ms = exec::run(&work, env.target.tls(), &env.table, m, Direction::Down).await?;
        p.done(format!("reverted {} in {ms} ms", m.file_name()));
    }
    Ok(plan.len())
}

/// A migration rebuilt from the text its row recorded.
fn recorded(a: &Applied) -> anyhow::Result<Migration> {
    let name = a.file_name();
    let text = a.script.clone().ok_or_else(|| {
        Fail::new(format!(
            "`{name}` is missing on disk and its text was not recorded (an adopted history)"
        ))
        .hint("put the file back to revert it")
    })?;
    let (up, down, no_transaction) = files::parse_text(&name, &text).map_err(Fail::typed)?;
    Ok(Migration {
        version: a.version,
        name: a.name.clone(),
        path: PathBuf::from(format!("(recorded) {name}")),
        sha256: a.sha256.clone(),
        text,
        up,
        down,
        no_transaction,
    })
}

/// `migrate rollback`: back to the snapshot taken before the last `up`.
pub async fn rollback(env: &Env, yes: bool, p: &Printer) -> anyhow::Result<bool> {
    let Some(own) = &env.target.own else {
        return Err(Fail::new("`rollback` works on the project's own server only; with `--url` no snapshot is taken")
            .hint("pgbox does not run that server: restore it from your own backup, or revert with `pgbox migrate down`")
            .code(EXIT_USAGE)
            .into());
    };
    let db = &env.target.db;
    let r = snapshot::read_record(own, db).ok_or_else(|| {
        Fail::new(format!("there is no snapshot of `{db}` to roll back to"))
            .hint("`pgbox migrate up` takes one before it applies anything")
    })?;
    let what = match &r.kind {
        snapshot::Kind::Template { database } => format!("database `{database}`"),
        snapshot::Kind::Backup { file } => format!("backup `{file}`"),
    };
    let question = format!(
        "replace `{db}` with the snapshot taken at {} ({what})? every change since is lost",
        r.taken_at
    );
    if !p.confirm(
        question,
        yes,
        format!("replacing `{db}` with the snapshot"),
        "pass `--yes` to confirm",
    )? {
        return Ok(false);
    }
    let lock = conn::lock(&env.target, &env.table.display(), p).await?;
    snapshot::rollback(&lock.client, &env.target, own, &r, p).await?;
    Ok(true)
}
