//! Base backups for point-in-time recovery: `pgbox backup --base`.
//!
//! pg_basebackup runs inside the server's container (its own version, over the
//! local socket), tar format, zstd-compressed on the client side, without WAL:
//! the archive has it, and with `archive_mode` on pg_basebackup waits until the
//! backup's last segment is archived. The container can write only the WAL archive
//! mount, so the backup is written to a dot folder there (`<backup dir>/wal/
//! .pgbox-base-<stamp>`, ignored by everything that reads the archive), checked
//! (extracted into a scratch folder in the container, `pg_verifybackup -n`, since
//! pg_verifybackup reads tar only from 18 on), described in `pgbox-base.json`, and
//! renamed into `<backup dir>/base/<project>-base-<stamp>/` (copied into a dot
//! folder there and renamed when the archive is on another file system): a
//! listing never sees half a base backup. One guard owns the
//! temporary folder, the scratch folder and the pg_basebackup process, so a
//! failure or Ctrl-C leaves nothing behind.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::wal;
use crate::cancel::Guard;
use crate::config::Settings;
use crate::container::{psql, spec::WAL_ARCHIVE};
use crate::engine::{Engine, ExecSpec};
use crate::error::Fail;
use crate::printer::{size, Printer};

/// The description written beside every base backup.
pub const META: &str = "pgbox-base.json";
/// The compressed tar of the data folder.
pub const TAR: &str = "base.tar.zst";
const STAGING_PREFIX: &str = ".pgbox-base-";
const PIDFILE: &str = "/tmp/pgbox-base.pid";
const SCRATCH_PREFIX: &str = "/tmp/pgbox-base-verify-";

/// `pgbox-base.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseMeta {
    pub project: String,
    pub pg_major: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub start_lsn: String,
    pub end_lsn: String,
    pub timeline: u32,
    pub start_wal: String,
    pub end_wal: String,
    #[serde(default = "default_seg")]
    pub wal_segment_size: u64,
    pub bytes: u64,
    pub sha256: String,
    pub verified: bool,
}

fn default_seg() -> u64 {
    wal::DEFAULT_SEGMENT_SIZE
}

/// `<backup dir>/base`.
pub fn base_dir(s: &Settings) -> PathBuf {
    s.backup_dir.join("base")
}

/// Every base backup with a readable description, oldest first.
pub fn list(s: &Settings) -> anyhow::Result<Vec<(PathBuf, BaseMeta)>> {
    let dir = base_dir(s);
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => anyhow::bail!("cannot read `{}`: {e}", dir.display()),
    };
    for e in rd.flatten() {
        let path = e.path();
        // A dot folder is one being copied in (see `move_in`).
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(path.join(META)) {
            if let Ok(m) = serde_json::from_str::<BaseMeta>(&text) {
                out.push((path, m));
            }
        }
    }
    out.sort_by_key(|(_, m)| m.started_at);
    Ok(out)
}

/// The refusal when `[backup] pitr` is off.
pub fn refuse_without_pitr(s: &Settings) -> Result<(), Fail> {
    if s.pitr {
        return Ok(());
    }
    Err(Fail::new(format!(
        "`{}` has no WAL archive: a base backup without one cannot be recovered",
        s.project
    ))
    .hint("set `pitr = true` under `[backup]` in pgbox.toml and run `pgbox up`; `pgbox backup` without `--base` makes a dump"))
}

fn sh(script: &str, args: &[&str]) -> ExecSpec {
    let mut cmd = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    ExecSpec {
        cmd,
        user: Some("postgres".into()),
        env: Vec::new(),
    }
}

/// Stop a pg_basebackup (or check) still running and remove its folders, in the
/// container (which owns them) and, for what is left, here.
async fn clean_container(engine: &Engine, c: &str, staging_in: &str) {
    let script = format!(
        "p=$(cat {PIDFILE} 2>/dev/null) && kill -TERM -- \"-$p\" 2>/dev/null; sleep 0.2; rm -rf -- \"$1\" {SCRATCH_PREFIX}* {PIDFILE}"
    );
    let _ = engine.exec_capture(c, &sh(&script, &[staging_in])).await;
}

/// `pgbox backup --base`: take, check and file a base backup; returns its folder.
pub async fn take(engine: Option<&str>, s: &Settings, p: &Printer) -> anyhow::Result<PathBuf> {
    refuse_without_pitr(s)?;
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "backup")?;
    take_locked(engine, s, p).await
}

/// [`take`] for a caller that holds the project lock (`schedule run`).
pub async fn take_locked(
    engine: Option<&str>,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<PathBuf> {
    refuse_without_pitr(s)?;
    let engine = Engine::connect(engine).await?;
    let c = crate::container::ctl::ready(&engine, s).await?;
    let mode = psql::sql(&engine, &c, s, "postgres", "show archive_mode").await?;
    if mode != "on" && mode != "always" {
        return Err(Fail::new(format!(
            "the running server of `{}` does not archive WAL (`archive_mode` is `{mode}`)",
            s.project
        ))
        .hint("run `pgbox up` to apply `pitr = true`, then take the base backup")
        .into());
    }
    let (server, _) = crate::container::ctl::versions(&engine, &c).await?;
    let pg_major = psql::major_of(&server).unwrap_or(0);
    let seg_size: u64 = psql::sql(
        &engine,
        &c,
        s,
        "postgres",
        "select setting from pg_settings where name = 'wal_segment_size'",
    )
    .await?
    .parse()
    .unwrap_or(wal::DEFAULT_SEGMENT_SIZE);

    // We hold the project lock: what an earlier, killed base backup left is stale.
    clean_container(&engine, &c, &format!("{WAL_ARCHIVE}/{STAGING_PREFIX}*")).await;

    let started_at = Utc::now();
    let stamp = started_at.format("%Y%m%dT%H%M%SZ").to_string();
    let staging_in = format!("{WAL_ARCHIVE}/{STAGING_PREFIX}{stamp}");
    let staging = s.wal_archive_dir().join(format!("{STAGING_PREFIX}{stamp}"));
    let guard = {
        let (engine, c, si, st) = (
            engine.clone(),
            c.clone(),
            staging_in.clone(),
            staging.clone(),
        );
        Guard::future(
            format!("the unfinished base backup `{}`", staging.display()),
            async move {
                clean_container(&engine, &c, &si).await;
                let _ = std::fs::remove_dir_all(&st);
            },
        )
    };
    // finished_at: when pg_basebackup returned (its end WAL archived), before the check.
    let finished_at = match run_and_check(&engine, &c, s, &staging_in, p).await {
        Ok(t) => t,
        Err(e) => {
            guard.undo().await;
            return Err(e);
        }
    };
    let filed = file_it(s, &staging, pg_major, seg_size, started_at, finished_at).await;
    match filed {
        Ok((dest, meta)) => {
            guard.disarm();
            p.done(format!(
                "base backup of `{}` in `{}` ({}, WAL {} to {})",
                s.project,
                dest.display(),
                size(meta.bytes),
                meta.start_wal,
                meta.end_wal
            ));
            Ok(dest)
        }
        Err(e) => {
            guard.undo().await;
            Err(e)
        }
    }
}

/// pg_basebackup into `staging_in`, then the checks pg_verifybackup makes.
async fn run_and_check(
    engine: &Engine,
    c: &str,
    s: &Settings,
    staging_in: &str,
    p: &Printer,
) -> anyhow::Result<DateTime<Utc>> {
    p.info("taking a base backup (pg_basebackup, waiting for its WAL to be archived)");
    // setsid: its own process group, so the guard can stop the whole pipeline.
    let take = format!(
        "exec setsid -w sh -c 'echo $$ > {PIDFILE}; exec pg_basebackup -D \"$1\" -Ft --compress=client-zstd -X none --checkpoint=fast -U \"$2\" -w' sh \"$1\" \"$2\""
    );
    let out = engine
        .exec_capture(c, &sh(&take, &[staging_in, &s.user]))
        .await?;
    if out.code != 0 {
        return Err(Fail::new(format!(
            "pg_basebackup failed (exit {}): {}",
            out.code,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("see `pgbox logs`; nothing was kept")
        .into());
    }
    let finished_at = Utc::now();
    let check = format!(
        "exec setsid -w sh -c 'set -e; echo $$ > {PIDFILE}; d=$(mktemp -d {SCRATCH_PREFIX}XXXXXX); trap \"rm -rf -- \\\"\\$d\\\"\" EXIT; zstd -q -dc -- \"$1/{TAR}\" | tar -xf - -C \"$d\"; cp -- \"$1/backup_manifest\" \"$d/\"; pg_verifybackup -n -q \"$d\"' sh \"$1\""
    );
    let out = engine.exec_capture(c, &sh(&check, &[staging_in])).await?;
    if out.code != 0 {
        return Err(Fail::new(format!(
            "the new base backup failed its check (pg_verifybackup, exit {}): {}",
            out.code,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("nothing was kept; see `pgbox logs` and try again")
        .into());
    }
    Ok(finished_at)
}

/// WAL-Ranges of a backup_manifest: (timeline, start LSN, end LSN).
pub fn wal_range(manifest: &[u8]) -> anyhow::Result<(u32, String, String)> {
    let v: serde_json::Value = serde_json::from_slice(manifest)?;
    let ranges = v
        .get("WAL-Ranges")
        .and_then(|r| r.as_array())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anyhow::anyhow!("backup_manifest has no WAL-Ranges"))?;
    let field = |r: &serde_json::Value, k: &str| {
        r.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("backup_manifest WAL-Ranges lacks `{k}`"))
    };
    // Listed newest timeline first; the backup starts on the last entry's.
    let first = &ranges[ranges.len() - 1];
    let last = &ranges[0];
    let tli = first
        .get("Timeline")
        .and_then(|x| x.as_u64())
        .ok_or_else(|| anyhow::anyhow!("backup_manifest WAL-Ranges lacks `Timeline`"))?;
    Ok((
        tli as u32,
        field(first, "Start-LSN")?,
        field(last, "End-LSN")?,
    ))
}

/// Describe the checked backup and rename it into `<backup dir>/base/`.
async fn file_it(
    s: &Settings,
    staging: &Path,
    pg_major: u32,
    seg_size: u64,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> anyhow::Result<(PathBuf, BaseMeta)> {
    let manifest = std::fs::read(staging.join("backup_manifest"))
        .map_err(|e| anyhow::anyhow!("cannot read the new backup_manifest: {e}"))?;
    let (timeline, start_lsn, end_lsn) = wal_range(&manifest)?;
    let (start, end) = match (wal::parse_lsn(&start_lsn), wal::parse_lsn(&end_lsn)) {
        (Some(a), Some(b)) if a <= b => (a, b),
        _ => anyhow::bail!("backup_manifest has a bad WAL range `{start_lsn}` to `{end_lsn}`"),
    };
    let tar = staging.join(TAR);
    let (bytes, sha256) = tokio::task::spawn_blocking(move || hash_file(&tar)).await??;
    let meta = BaseMeta {
        project: s.project.clone(),
        pg_major,
        started_at,
        finished_at,
        start_lsn,
        end_lsn,
        timeline,
        start_wal: wal::file_name(timeline, wal::segno(start, seg_size), seg_size),
        // The segment holding the last byte before the end LSN.
        end_wal: wal::file_name(
            timeline,
            wal::segno(end.saturating_sub(1).max(start), seg_size),
            seg_size,
        ),
        wal_segment_size: seg_size,
        bytes,
        sha256,
        verified: true,
    };
    crate::fsutil::write_atomic(
        &staging.join(META),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
        0o600,
    )?;
    let base = base_dir(s);
    std::fs::create_dir_all(&base)
        .map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", base.display()))?;
    let dest = base.join(format!(
        "{}-base-{}",
        s.project,
        started_at.format("%Y%m%dT%H%M%SZ")
    ));
    let (from, to) = (staging.to_path_buf(), dest.clone());
    tokio::task::spawn_blocking(move || move_in(&from, &to))
        .await?
        .map_err(|e| {
            anyhow::anyhow!("cannot move the base backup into `{}`: {e}", dest.display())
        })?;
    Ok((dest, meta))
}

/// Rename the checked backup folder into place; when the archive is on another
/// file system than `<backup dir>/base` (a disk mounted on `wal/`), copy it into a
/// dot folder beside the destination, fsync it, and rename that, so a listing
/// still never sees half a base backup. The staging folder goes last.
fn move_in(staging: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    match std::fs::rename(staging, dest) {
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {}
        r => {
            crate::fsutil::sync_dir(parent);
            return r;
        }
    }
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.partial"));
    let copied = (|| {
        crate::fsutil::private_dir(&tmp, 0o700)?;
        for e in std::fs::read_dir(staging)? {
            let e = e?;
            let to = tmp.join(e.file_name());
            std::fs::copy(e.path(), &to)?;
            std::fs::File::open(&to)?.sync_all()?;
        }
        crate::fsutil::sync_dir(&tmp);
        std::fs::rename(&tmp, dest)?;
        crate::fsutil::sync_dir(parent);
        Ok(())
    })();
    if copied.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        return copied;
    }
    // Best effort: the next base backup removes a staging folder left here.
    let _ = std::fs::remove_dir_all(staging);
    Ok(())
}

/// Size and sha256 of a file, fsynced first.
fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open `{}`: {e}", path.display()))?;
    f.sync_all().ok();
    let sum = crate::digest::sum_reader(f)?;
    Ok((sum.bytes, sum.sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_range_reads_the_manifest() {
        let m = br#"{ "PostgreSQL-Backup-Manifest-Version": 1, "Files": [],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
] }"#;
        assert_eq!(
            wal_range(m).unwrap(),
            (1, "0/2000028".to_string(), "0/2000100".to_string())
        );
    }
}
