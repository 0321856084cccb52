//! Backup operations against the running container: dump to a file, upload a
//! backup for pg_restore, list its items and owners, count rows, restore into a
//! scratch database and swap it in.
//!
//! Every stream that carries data is an exec without a TTY, compressed inside
//! the container; the host only hashes, counts and writes bytes, so its memory
//! stays flat whatever the database size.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::{Compression, Detected, Format, Manifest};
use crate::cancel::Guard;
use crate::config::Settings;
use crate::engine::{Engine, ExecSpec};
use crate::error::Fail;
use crate::printer::Printer;

fn spec(cmd: &[&str], user: &str) -> ExecSpec {
    ExecSpec {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        user: Some(user.into()),
        env: Vec::new(),
    }
}

/// Run SQL (on stdin) with psql as the superuser in `db`; stdout, trimmed.
pub async fn sql(
    engine: &Engine,
    c: &str,
    s: &Settings,
    db: &str,
    sql: &str,
) -> anyhow::Result<String> {
    let out = engine
        .exec_with_stdin(
            c,
            &spec(
                &[
                    "psql",
                    "--no-psqlrc",
                    "-qAt",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    &s.user,
                    "-d",
                    db,
                ],
                "postgres",
            ),
            sql.as_bytes().to_vec(),
        )
        .await?;
    if out.code != 0 {
        anyhow::bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Where a dump goes.
pub enum Dest {
    File(PathBuf),
    Stdout,
}

pub struct Dumped {
    pub path: Option<PathBuf>,
    pub manifest: Manifest,
}

pub struct DumpRequest<'a> {
    pub database: &'a str,
    pub kind: &'a str,
    pub format: Format,
    pub compression: Compression,
    pub level: u32,
    pub image: &'a str,
    pub versions: (String, String),
}

/// Where the in-container dump records its process group: `/tmp/pgbox-dump-<token>.pid`.
const DUMP_PIDFILE_PREFIX: &str = "/tmp/pgbox-dump-";

/// Runs the command after it in a session of its own and writes the session's id
/// (the process group of everything the dump starts) to the file named by `$0`,
/// which also tags the command line so a later kill can check it is ours.
const DUMP_WRAPPER: &str = r#"echo $$ >"$0"; "$@"; rc=$?; rm -f "$0"; exit $rc"#;

/// Ends the dump group named in pid file `$0` (if its leader still carries that
/// name) and removes the file; prints a line when it ended one.
const DUMP_KILLER: &str = r#"pg=$(cat "$0" 2>/dev/null) || exit 0
if [ -n "$pg" ] && tr '\0' ' ' <"/proc/$pg/cmdline" 2>/dev/null | grep -qF "$0"; then
    kill -TERM "-$pg" 2>/dev/null && echo "a pg_dump still running in the container"
fi
rm -f "$0""#;

/// Ends a dump (or all stale ones, for `*`) inside the container.
async fn kill_dumps(engine: &Engine, c: &str, pidfile_glob: &str) -> anyhow::Result<String> {
    let script = format!(
        "for f in {pidfile_glob}; do [ -e \"$f\" ] || continue; sh -c '{}' \"$f\"; done",
        DUMP_KILLER.replace('\'', r"'\''")
    );
    let out = engine
        .exec_capture(c, &spec(&["sh", "-c", &script], "0"))
        .await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What a killed backup may have left in the container: dumps still running (their
/// output goes nowhere) and the temporary folders of directory-format dumps. Call
/// with the project lock held: no dump of this project is live then. Returns
/// descriptions of what was removed.
pub async fn remove_stale_dumps(engine: &Engine, c: &str) -> anyhow::Result<Vec<String>> {
    let mut did: Vec<String> = kill_dumps(engine, c, &format!("{DUMP_PIDFILE_PREFIX}*.pid"))
        .await?
        .lines()
        .map(str::to_string)
        .collect();
    let out = engine
        .exec_capture(
            c,
            &spec(
                &[
                    "sh",
                    "-c",
                    r#"for d in /tmp/pgbox-dump.*; do [ -d "$d" ] || continue; rm -rf "$d" && echo "$d"; done"#,
                ],
                "0",
            ),
        )
        .await?;
    did.extend(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|d| format!("`{d}` in the container")),
    );
    Ok(did)
}

/// Remove `*.partial` files of `project` in `dir` that an interrupted backup left.
/// Call with the project lock held. Returns the files removed.
pub fn remove_stale_partials(dir: &Path, project: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{project}-");
    rd.flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&prefix) && n.ends_with(".partial") && !n.starts_with('.')
            })
        })
        .filter(|p| p.is_file() && std::fs::remove_file(p).is_ok())
        .collect()
}

/// Dump one database (or the globals) to `dest`: `.partial`, fsync, checks, rename.
/// On any failure, and on cancellation, guards remove the partial file and stop the
/// dump inside the container; nothing else is touched.
pub async fn dump(
    engine: &Engine,
    c: &str,
    s: &Settings,
    req: &DumpRequest<'_>,
    dest: Dest,
    p: &Printer,
) -> anyhow::Result<Dumped> {
    let started = Instant::now();
    let created_at = Utc::now();
    let level = req.level.to_string();
    let verb = if req.kind == "globals" {
        "globals"
    } else {
        "dump"
    };
    let pidfile = format!(
        "{DUMP_PIDFILE_PREFIX}{}-{}.pid",
        std::process::id(),
        created_at.timestamp_nanos_opt().unwrap_or_default()
    );
    // setsid: the dump gets a process group of its own, which the guard below ends.
    let cmd = [
        "setsid",
        "-w",
        "sh",
        "-c",
        DUMP_WRAPPER,
        &pidfile,
        "pgbox-ctl",
        verb,
        req.database,
        req.format.as_str(),
        req.compression.as_str(),
        &level,
    ];
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    let mut stderr = Vec::new();
    let bar = p.bytes_bar(format!("backing up `{}`", req.database), None);

    let (mut file, partial) = match &dest {
        Dest::File(path) => {
            let partial = PathBuf::from(format!("{}.partial", path.display()));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600) // a dump holds all the data: the owner only
                .open(&partial)
                .with_context(|| format!("cannot create `{}`", partial.display()))?;
            (
                Some(std::io::BufWriter::with_capacity(1 << 20, f)),
                Some(partial),
            )
        }
        Dest::Stdout => (None, None),
    };
    // From here until the rename, the partial file is the guard's.
    let partial_guard = partial.clone().map(Guard::path);
    // Dropping the stream does not stop pg_dump in the container at once (it runs
    // until its next write fails, or a directory dump to its end): end its group.
    let killer = {
        let (engine, c, pidfile) = (engine.clone(), c.to_string(), pidfile.clone());
        Guard::future(format!("the dump running in `{c}`"), async move {
            let _ = kill_dumps(&engine, &c, &pidfile).await;
        })
    };
    let mut stdout = std::io::stdout().lock();
    let result = engine
        .exec_stream(
            c,
            &spec(&cmd, "0"),
            None::<tokio::io::Empty>,
            |chunk| {
                hasher.update(chunk);
                bytes += chunk.len() as u64;
                bar.set_position(bytes);
                match file.as_mut() {
                    Some(f) => f.write_all(chunk),
                    None => stdout.write_all(chunk),
                }
            },
            |e| stderr.extend_from_slice(e),
        )
        .await;
    drop(stdout);
    match &result {
        Ok(_) => killer.disarm(),
        Err(_) => killer.undo().await,
    }
    bar.finish_and_clear();
    let messages = String::from_utf8_lossy(&stderr).into_owned();
    let failed = |why: String| -> anyhow::Error {
        let msg = messages.trim();
        let detail = if msg.is_empty() {
            String::new()
        } else {
            format!("\n{msg}")
        };
        Fail::new(format!(
            "backup of `{}` failed: {why}{detail}",
            req.database
        ))
        .hint("no backup file was written; existing backups are untouched")
        .into()
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => return Err(failed(e.to_string())),
    };
    if code != 0 {
        return Err(failed(format!("the dump exited with code {code}")));
    }
    if bytes == 0 {
        return Err(failed("the dump produced no bytes".into()));
    }
    let path = match (file, partial.clone(), &dest) {
        (Some(f), Some(partial), Dest::File(path)) => {
            let f = f.into_inner().map_err(|e| failed(e.to_string()))?;
            // fsync and the read-back off the runtime, so a signal is seen at once.
            let check = partial.clone();
            let synced = tokio::task::spawn_blocking(move || {
                f.sync_all()?;
                drop(f);
                super::detect(&check).map_err(std::io::Error::other)
            })
            .await
            .map_err(|e| failed(e.to_string()))?;
            // The file must read back as what it claims to be.
            match synced {
                Ok(d)
                    if d.compression == req.compression
                        && (d.format == req.format || req.kind == "globals") => {}
                Ok(d) => {
                    return Err(failed(format!(
                        "the file reads as {d:?}, not {:?}/{:?}",
                        req.format, req.compression
                    )))
                }
                Err(e) => {
                    return Err(failed(format!(
                        "cannot write or read back `{}`: {e}",
                        partial.display()
                    )))
                }
            }
            Some((partial, path.clone()))
        }
        _ => {
            let _ = std::io::stdout().flush();
            None
        }
    };
    let manifest = Manifest {
        file: path
            .as_ref()
            .and_then(|(_, p)| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "-".into()),
        project: s.project.clone(),
        database: req.database.to_string(),
        kind: req.kind.to_string(),
        format: req.format,
        compression: req.compression,
        level: (req.compression != Compression::None).then_some(req.level),
        bytes,
        sha256: hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        duration_ms: started.elapsed().as_millis() as u64,
        server_version: req.versions.0.clone(),
        pg_dump_version: req.versions.1.clone(),
        pgbox_version: env!("CARGO_PKG_VERSION").to_string(),
        image: req.image.to_string(),
        created_at,
        verified_at: None,
    };
    let path = match path {
        Some((partial, final_path)) => {
            // Manifest first: a file without a manifest is never left looking complete.
            // No await from here to the disarm: a cancellation cannot fall in between.
            if let Err(e) = manifest.write(&final_path) {
                return Err(failed(format!("cannot write the manifest: {e}")));
            }
            if let Err(e) = std::fs::rename(&partial, &final_path) {
                let _ = std::fs::remove_file(super::manifest_path(&final_path));
                return Err(failed(format!(
                    "cannot rename `{}`: {e}",
                    partial.display()
                )));
            }
            if let Some(g) = partial_guard {
                g.disarm();
            }
            if let Some(dir) = final_path.parent().map(Path::to_path_buf) {
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                })
                .await;
            }
            Some(final_path)
        }
        None => None,
    };
    Ok(Dumped { path, manifest })
}

/// sha256 of a file, with a progress bar; the reading runs off the async runtime so
/// a signal is seen at once, and stops when one arrived.
pub async fn sha256_file(path: &Path, p: &Printer) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)?.len();
    let bar = p.bytes_bar("checking the checksum", Some(len));
    let (path, b) = (path.to_path_buf(), bar.clone());
    let sum = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if crate::cancel::is_cancelled() {
                return Err(crate::error::Interrupted.into());
            }
            let n = std::io::Read::read(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            b.inc(n as u64);
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    })
    .await?;
    bar.finish_and_clear();
    sum
}

/// A backup placed inside the container (`dir/dump`), removed with [`remove_remote`].
pub struct Remote {
    pub dir: String,
    pub path: String,
}

/// Stream a backup file (or packed directory) into the container, decompressed, to
/// `/tmp/pgbox-upload-<pid>`.
pub async fn upload(
    engine: &Engine,
    c: &str,
    local: &Path,
    d: Detected,
    p: &Printer,
) -> anyhow::Result<Remote> {
    let dir = format!("/tmp/pgbox-upload-{}", std::process::id());
    upload_to(engine, c, local, d, &dir, p).await
}

/// Stream a backup file (or packed directory) into the container folder `dir`,
/// decompressed, as `dir/dump`.
pub async fn upload_to(
    engine: &Engine,
    c: &str,
    local: &Path,
    d: Detected,
    dir: &str,
    p: &Printer,
) -> anyhow::Result<Remote> {
    let dir = dir.to_string();
    let path = format!("{dir}/dump");
    let mut cmd = vec![
        "pgbox-ctl",
        "receive",
        path.as_str(),
        d.compression.as_str(),
    ];
    if d.format == Format::Directory {
        cmd.push("tar");
    }
    if local.is_dir() {
        // An unpacked directory dump: pack it on the fly.
        let mut b = tar::Builder::new(Vec::new());
        b.append_dir_all(".", local)?;
        let bytes = b.into_inner()?;
        let out = engine.exec_with_stdin(c, &spec(&cmd, "0"), bytes).await?;
        anyhow::ensure!(
            out.code == 0,
            "uploading failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Ok(Remote { dir, path });
    }
    let len = std::fs::metadata(local)?.len();
    let bar = p.bytes_bar("sending the backup into the container", Some(len));
    let file = tokio::fs::File::open(local).await?;
    let reader = bar.wrap_async_read(file);
    let mut stderr = Vec::new();
    let code = engine
        .exec_stream(
            c,
            &spec(&cmd, "0"),
            Some(reader),
            |_| Ok(()),
            |e| stderr.extend_from_slice(e),
        )
        .await?;
    bar.finish_and_clear();
    if code != 0 {
        let _ = remove_remote(engine, c, &dir).await;
        return Err(Fail::new(format!(
            "`{}` could not be unpacked: {}",
            local.display(),
            String::from_utf8_lossy(&stderr).trim()
        ))
        .hint("the file is truncated or corrupt; nothing in the database was touched")
        .into());
    }
    Ok(Remote { dir, path })
}

pub async fn remove_remote(engine: &Engine, c: &str, dir: &str) -> anyhow::Result<()> {
    engine
        .exec_capture(c, &spec(&["rm", "-rf", dir], "0"))
        .await?;
    Ok(())
}

/// Roles named by `OWNER TO` and `GRANT ... TO` in SQL text (PUBLIC excluded).
pub fn roles_in_sql(sql: &str) -> Vec<String> {
    let mut roles: Vec<String> = sql
        .lines()
        .filter(|l| l.contains(" OWNER TO ") || l.starts_with("GRANT "))
        .filter_map(|l| l.rsplit_once(" TO "))
        .map(|(_, r)| r.trim_end_matches(';').trim())
        .map(|r| r.strip_suffix(" WITH GRANT OPTION").unwrap_or(r))
        .map(|r| {
            if r.starts_with('"') && r.ends_with('"') && r.len() >= 2 {
                r[1..r.len() - 1].replace("\"\"", "\"")
            } else {
                r.to_string()
            }
        })
        .filter(|r| !r.is_empty() && r != "PUBLIC")
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// `pg_restore --list` of an uploaded custom or directory dump (the item count),
/// and the roles its objects are owned by or granted to.
pub async fn list_items(
    engine: &Engine,
    c: &str,
    remote: &Remote,
) -> anyhow::Result<(u64, Vec<String>)> {
    let out = engine
        .exec_capture(
            c,
            &spec(&["pg_restore", "--list", &remote.path], "postgres"),
        )
        .await?;
    if out.code != 0 {
        return Err(Fail::new(format!(
            "pg_restore cannot read the backup: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("the file is damaged or not a pg_dump archive; nothing in the database was touched")
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let items = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count();
    let schema = engine
        .exec_capture(
            c,
            &spec(
                &["pg_restore", "--schema-only", "--file=-", &remote.path],
                "postgres",
            ),
        )
        .await?;
    Ok((
        items as u64,
        roles_in_sql(&String::from_utf8_lossy(&schema.stdout)),
    ))
}

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
            let cmd = [
                "psql",
                "--no-psqlrc",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                &s.user,
                "-d",
                db,
                "-f",
                input,
            ];
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

/// Undo one restore's temporary things: end its processes, drop the scratch
/// database (FORCE ends any connection still in it), remove the upload folder.
/// Every step runs even when an earlier one failed; the first error is returned.
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
        let q = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(db));
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
pub async fn clean_restore_leftovers(
    engine: &Engine,
    c: &str,
    s: &Settings,
) -> anyhow::Result<Vec<String>> {
    let out = engine
        .exec_capture(
            c,
            &spec(
                &[
                    "bash",
                    "-c",
                    r#"for d in "$0"*; do [ -d "$d" ] && printf '%s\n' "$d"; done; true"#,
                    RESTORE_DIR_PREFIX,
                ],
                "0",
            ),
        )
        .await?;
    let dirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let dbs: Vec<String> = sql(
        engine,
        c,
        s,
        "postgres",
        "select datname from pg_database where datname like '%\\_pgbox\\_restore\\_%' order by 1",
    )
    .await?
    .lines()
    .filter(|n| is_restore_scratch(n))
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

/// Rows per table (`schema.table`, unquoted) in the COPY blocks of an uploaded
/// custom or directory dump, read inside the container.
pub async fn archive_row_counts(
    engine: &Engine,
    c: &str,
    remote: &Remote,
) -> anyhow::Result<BTreeMap<String, u64>> {
    // The COPY target as pg_dump quotes it: "a ""b""".c -> a "b".c
    let awk = r#"function qname(s,   i, ch, out, inq) {
    out = ""; inq = 0
    for (i = 1; i <= length(s); i++) {
        ch = substr(s, i, 1)
        if (inq) {
            if (ch == "\"") { if (substr(s, i + 1, 1) == "\"") { out = out ch; i++ } else inq = 0 }
            else out = out ch
        } else if (ch == "\"") inq = 1
        else if (ch == " ") break
        else out = out ch
    }
    return out
}
/^COPY .* FROM stdin;$/ { t = qname(substr($0, 6)); n = 0; inside = 1; next }
inside && /^\\\.$/ { print t "\t" n; inside = 0; next }
inside { n++ }"#;
    let out = engine
        .exec_capture(
            c,
            &spec(
                &[
                    "bash",
                    "-c",
                    r#"set -o pipefail; pg_restore --data-only --file=- "$0" | awk "$1""#,
                    &remote.path,
                    awk,
                ],
                "postgres",
            ),
        )
        .await?;
    anyhow::ensure!(
        out.code == 0,
        "counting the rows in the backup failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once('\t'))
        .filter_map(|(t, n)| Some((t.to_string(), n.parse().ok()?)))
        .fold(BTreeMap::new(), |mut m, (t, n): (String, u64)| {
            *m.entry(t).or_insert(0) += n;
            m
        }))
}

/// Every database as `(oid, name)`, in oid order.
pub async fn databases(
    engine: &Engine,
    c: &str,
    s: &Settings,
) -> anyhow::Result<Vec<(u32, String)>> {
    let out = sql(
        engine,
        c,
        s,
        "postgres",
        "select oid || chr(9) || datname from pg_database order by oid",
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(o, n)| Some((o.parse().ok()?, n.to_string())))
        .collect())
}

/// Whether this psql has `\restrict` (15.14, 16.10, 17.6 and later; from its
/// `psql --version` line).
pub fn psql_has_restrict(version: &str) -> bool {
    let Some(v) = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
    else {
        return false;
    };
    let mut it = v.split('.').map(|x| {
        x.trim_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .unwrap_or(0)
    });
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    match major {
        0..=12 => false,
        13 => minor >= 22,
        14 => minor >= 19,
        15 => minor >= 14,
        16 => minor >= 10,
        17 => minor >= 6,
        _ => true,
    }
}

/// `psql --version` inside the container.
pub async fn psql_version(engine: &Engine, c: &str) -> anyhow::Result<String> {
    let out = engine
        .exec_capture(c, &spec(&["psql", "--version"], "postgres"))
        .await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_owner_and_grant_lines() {
        let sql = "ALTER TABLE public.t OWNER TO alice;\nALTER SCHEMA s OWNER TO \"Bob \"\"B\"\"\";\nGRANT SELECT ON TABLE public.t TO carol WITH GRANT OPTION;\nGRANT ALL ON SCHEMA public TO PUBLIC;\nCOMMENT ON EXTENSION x IS 'TO nobody';\n";
        assert_eq!(roles_in_sql(sql), vec!["Bob \"B\"", "alice", "carol"]);
    }

    #[test]
    fn only_restore_scratch_names_count_as_leftovers() {
        assert!(is_restore_scratch("app_pgbox_restore_20260101120000"));
        assert!(!is_restore_scratch("app_pgbox_old_20260101120000"));
        assert!(!is_restore_scratch("app_pgbox_restore_2026"));
        assert!(!is_restore_scratch("my_pgbox_restore_notes"));
    }

    #[test]
    fn restrict_arrived_in_these_minor_releases() {
        assert!(psql_has_restrict(
            "psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        ));
        assert!(!psql_has_restrict("psql (PostgreSQL) 15.13"));
        assert!(psql_has_restrict("psql (PostgreSQL) 18.1"));
        assert!(!psql_has_restrict("psql (PostgreSQL) 16.9"));
        assert!(!psql_has_restrict("garbage"));
    }
}
