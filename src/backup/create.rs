//! Making backups: `pgbox backup` and the backup step of `schedule run`.
//!
//! The dump runs inside the server's own container, compressed there, and is
//! written here as `.partial`, fsynced, checked and renamed, with a manifest
//! beside it (see [`super::dump`]). Every outcome, good or bad, of a backup into
//! the backup folder is recorded (see [`super::record`]) so `prune` can refuse to
//! delete anything after a failed backup. The caller holds the project lock, so
//! whatever an earlier, killed backup left (a `.partial` file, a pg_dump still
//! running in the container) is removed first. Format, compression and level come
//! from [`CreateOptions`] when given, else from `[backup]` in pgbox.toml.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::dump::{self, Dest, DumpRequest};
use super::record::{self, Kind};
use super::{Compression, Format};
use crate::config::Settings;
use crate::container::psql;
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::{size, Printer};
use crate::remote::ship::{shipped_line, Shipping};

/// What to back up and how; `None` takes the value from pgbox.toml `[backup]`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// One database (default: the project database).
    pub db: Option<String>,
    /// The globals and every database, one file each.
    pub all: bool,
    pub format: Option<Format>,
    pub compress: Option<Compression>,
    pub level: Option<u32>,
    /// A file, a folder, or `-` for stdout (default: the backup folder, recorded).
    pub output: Option<PathBuf>,
    /// Verify each new database backup right away.
    pub verify: bool,
    /// The engine address (`--engine`).
    pub engine: Option<String>,
    /// Stream each dump to `[backup.remote]` and keep no local copy.
    pub remote_only: bool,
    /// Do not ship to `[backup.remote]`.
    pub local_only: bool,
}

/// Format, compression and level resolved: flags over pgbox.toml over custom, zstd,
/// and the compressor's default level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub format: Format,
    pub compress: Compression,
    pub level: u32,
}

impl CreateOptions {
    pub fn choice(&self, s: &Settings) -> Result<Choice, Fail> {
        let compress = self.compress.unwrap_or(s.backup_compress);
        // A level from pgbox.toml belongs to the compressor named there.
        let level = self.level.or(if self.compress.is_none() {
            s.backup_level
        } else {
            None
        });
        let level = level.unwrap_or(compress.default_level());
        if !compress.takes_level(level) {
            return Err(Fail::new(format!(
                "`--level {level}` is out of range for {}",
                compress.as_str()
            ))
            .hint("zstd takes 1-19, gzip 1-9")
            .code(EXIT_USAGE));
        }
        Ok(Choice {
            format: self.format.unwrap_or(s.backup_format),
            compress,
            level,
        })
    }

    fn to_stdout(&self) -> bool {
        self.output.as_deref() == Some(Path::new("-"))
    }

    /// Where backups go off-site: with `--remote-only`, or into the backup folder
    /// with `[backup.remote]` configured and no `--local-only`.
    fn shipping(&self, s: &Settings) -> anyhow::Result<Option<Shipping>> {
        let ship =
            self.remote_only || (self.output.is_none() && !self.local_only && s.remote.is_some());
        ship.then(|| Shipping::from_settings(s)).transpose()
    }
}

/// `pgbox backup`: check the options, take the project lock, make the backups.
/// Returns the files written.
pub async fn create(o: &CreateOptions, s: &Settings, p: &Printer) -> anyhow::Result<Vec<String>> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "backup")?;
    o.choice(s)?;
    if o.to_stdout() && o.all {
        return Err(
            Fail::new("`--all` writes several files and cannot go to stdout")
                .hint("give `-o` a folder, or leave it out to use the backup folder")
                .code(EXIT_USAGE)
                .into(),
        );
    }
    create_locked(o, s, p).await
}

/// Make the backups `o` asks for; into the backup folder the outcome is recorded,
/// good or bad, for `prune` and `schedule status`. The caller holds the project lock.
///
/// The record says "failed, not finished" before the first byte is dumped, so a
/// pgbox killed by any signal never leaves the previous `ok` standing; a SIGINT or
/// SIGTERM rewrites it as interrupted on the way out. A record that cannot be
/// written fails the backup: `prune` relies on it.
pub async fn create_locked(
    o: &CreateOptions,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<Vec<String>> {
    let choice = o.choice(s)?;
    if o.output.is_some() {
        return create_inner(o, choice, s, p).await;
    }
    let cannot_record = |e: anyhow::Error| {
        Fail::new(format!(
            "cannot write in backup folder `{}`: {e:#}",
            s.backup_dir.display()
        ))
        .hint("check that the folder is writable by you")
    };
    let attempt = record::begin(Kind::Backup, &s.backup_dir, &s.project).map_err(cannot_record)?;
    let result = create_inner(o, choice, s, p).await;
    let outcome = match &result {
        Ok(v) => Ok(v.first().cloned()),
        Err(e) => Err(format!("{e:#}")),
    };
    if let Err(e) = attempt.finish(outcome) {
        let e = cannot_record(e).hint(
            "the record still says the backup did not finish, so `prune` deletes nothing; check that the backup folder is writable",
        );
        match result {
            Ok(_) => return Err(e.into()),
            Err(_) => p.warn(e.to_string()),
        }
    }
    result
}

async fn create_inner(
    o: &CreateOptions,
    choice: Choice,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<Vec<String>> {
    let to_stdout = o.to_stdout();
    // The store and the recipients are checked before anything is dumped.
    let shipping = o.shipping(s)?;
    let engine = Engine::connect(o.engine.as_deref()).await?;
    // We hold the project lock: whatever an earlier backup left in the container is
    // stale. The gate, the image, that cleanup and the versions take one exec.
    let gate =
        crate::container::ctl::ready_for_backup(&engine, s, &dump::stale_dumps_script()).await?;
    let (c, image, versions) = (gate.container, gate.image, gate.versions);
    let mut targets: Vec<(String, &str)> = Vec::new();
    if o.all {
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
            o.db.clone().unwrap_or_else(|| s.database.clone()),
            "database",
        ));
    }
    let dir = match &o.output {
        Some(out) if !to_stdout && (out.is_dir() || o.all) => Some(out.clone()),
        Some(_) => None,
        None if o.remote_only => None,
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
    stale.extend(dump::describe_stale(&gate.cleaned));
    if !stale.is_empty() {
        p.info(format!(
            "removed what an interrupted backup left: {}",
            stale.join(", ")
        ));
    }
    let mut now = Utc::now();
    if let Some(d) = &dir {
        // Names carry the second: a backup started in the same second as an earlier
        // one (two runs back to back) waits for the next second instead of failing.
        while second_taken(d, &s.project, now) {
            let rest = 1_000_000_000 - u64::from(now.timestamp_subsec_nanos()).min(999_999_999);
            tokio::time::sleep(std::time::Duration::from_nanos(rest)).await;
            now = Utc::now();
        }
    }
    let mut written = Vec::new();
    for (db, kind) in targets {
        let format = if kind == "globals" {
            Format::Plain
        } else {
            choice.format
        };
        let name = super::file_name(&s.project, &db, now, format, choice.compress);
        let req = DumpRequest {
            database: &db,
            kind,
            format,
            compression: choice.compress,
            level: choice.level,
            image: &image,
            versions: versions.clone(),
        };
        if let (true, Some(ship)) = (o.remote_only, &shipping) {
            written.push(stream_off_site(&engine, &c, s, &req, &name, ship, p).await?);
            continue;
        }
        let dest = if to_stdout {
            Dest::Stdout
        } else {
            match &dir {
                Some(d) => Dest::File(d.join(&name)),
                None => Dest::File(o.output.clone().expect("an explicit output path")),
            }
        };
        if let Dest::File(f) = &dest {
            if f.exists() {
                return Err(Fail::new(format!("`{}` already exists", f.display()))
                    .hint("choose another `-o` path; pgbox never overwrites a backup")
                    .into());
            }
        }
        let dumped = dump::dump(&engine, &c, s, &req, dest, p).await?;
        let Some(path) = dumped.path else {
            p.done(format!(
                "streamed `{db}` to stdout ({})",
                size(dumped.manifest.bytes)
            ));
            continue;
        };
        p.done(format!(
            "backed up `{db}` to `{}` ({}, {:.1}s)",
            path.display(),
            size(dumped.manifest.bytes),
            dumped.manifest.duration_ms as f64 / 1000.0
        ));
        // A backup is checked before it is shipped.
        if (o.verify || shipping.is_some()) && kind == "database" {
            super::verify::verify(&engine, &c, s, &path, false, p).await?;
        }
        if let Some(ship) = &shipping {
            ship_local(ship, s, &path, p).await?;
        }
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// Whether a backup of `project` in `dir` is named for the second of `at`.
fn second_taken(dir: &Path, project: &str, at: chrono::DateTime<Utc>) -> bool {
    let mark = format!("-{}.", at.format("%Y%m%dT%H%M%SZ"));
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("{project}-")) && n.contains(&mark)
        })
    })
}

/// Ship a local backup (already verified); a failure says the local copy is kept.
async fn ship_local(ship: &Shipping, s: &Settings, path: &Path, p: &Printer) -> anyhow::Result<()> {
    let shipped = async {
        let m = super::Manifest::read_checked(path).map_err(anyhow::Error::msg)?;
        let rm = ship.ship_file(path, &m, p).await?;
        // The local manifest says where its off-site copy is.
        let mut m = super::Manifest::read_checked(path).map_err(anyhow::Error::msg)?;
        m.remote = rm.remote.clone();
        m.write(path)?;
        crate::remote::listing::note_shipped(s, &rm)?;
        anyhow::Ok(rm)
    }
    .await;
    match shipped {
        Ok(rm) => {
            p.done(shipped_line(&rm));
            Ok(())
        }
        Err(e) => Err(e.context(Fail::new(format!(
            "`{}` is kept locally, but shipping it to `{}` failed",
            path.display(),
            ship.remote.cfg.url
        )))),
    }
}

/// `--remote-only`: dump straight into an upload (encrypted on the way), read it
/// back, publish its manifest. Returns the object's URL.
async fn stream_off_site(
    engine: &Engine,
    c: &str,
    s: &Settings,
    req: &DumpRequest<'_>,
    name: &str,
    ship: &Shipping,
    p: &Printer,
) -> anyhow::Result<String> {
    let up = ship.begin(name).await?;
    // The upload runs as a task: on Ctrl-C this guard aborts it.
    let abort = up.abort_guard();
    let (mut feed, task) = crate::remote::upload::feed(up);
    let dumped = dump::dump(
        engine,
        c,
        s,
        req,
        Dest::Stream(name.to_string(), &mut feed),
        p,
    )
    .await;
    let dumped = match dumped.and_then(|d| feed.close().map(|_| d).map_err(Into::into)) {
        Ok(d) => d,
        Err(e) => {
            // The feed is gone: the upload task aborts the multipart upload.
            let _ = task.await;
            abort.undo().await;
            return Err(e);
        }
    };
    let done = match task.await? {
        Ok(d) => d,
        Err(e) => {
            abort.undo().await;
            return Err(e);
        }
    };
    abort.disarm();
    if done.plain.sha256 != dumped.manifest.sha256 {
        return Err(Fail::new("the uploaded dump does not match what was dumped").into());
    }
    let rm = ship.publish(&dumped.manifest, &done).await?;
    crate::remote::listing::note_shipped(s, &rm)?;
    p.done(shipped_line(&rm));
    Ok(rm.remote.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Settings {
        let path = Path::new("/tmp/x/pgbox.toml");
        let file = crate::config::parse_file(path, toml).unwrap();
        Settings::resolve(path, &[file])
    }

    #[test]
    fn flags_override_pgbox_toml_which_overrides_the_defaults() {
        let o = CreateOptions::default();
        let c = o.choice(&settings("")).unwrap();
        assert_eq!(
            (c.format, c.compress, c.level),
            (Format::Custom, Compression::Zstd, 3)
        );
        let s = settings("[backup]\nformat = \"plain\"\ncompress = \"gzip\"\n");
        let c = o.choice(&s).unwrap();
        assert_eq!(
            (c.format, c.compress, c.level),
            (Format::Plain, Compression::Gzip, 6)
        );
        let s = settings("[backup]\ncompress = \"zstd\"\nlevel = 12\n");
        assert_eq!(o.choice(&s).unwrap().level, 12);
        // `--compress gzip` drops pgbox.toml's zstd level for gzip's default.
        let flags = CreateOptions {
            compress: Some(Compression::Gzip),
            format: Some(Format::Directory),
            ..CreateOptions::default()
        };
        let c = flags.choice(&s).unwrap();
        assert_eq!(
            (c.format, c.compress, c.level),
            (Format::Directory, Compression::Gzip, 6)
        );
        let bad = CreateOptions {
            level: Some(12),
            compress: Some(Compression::Gzip),
            ..CreateOptions::default()
        };
        assert!(bad.choice(&s).is_err());
    }
}
