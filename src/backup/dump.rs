//! Dumps from the running container to a file or stdout: pg_dump inside the
//! container, compressed there, streamed through an exec without a TTY; the host
//! only hashes, counts and writes bytes, so its memory stays flat. The `.partial`
//! file and the in-container dump are owned by guards until the rename.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::cancel::Guard;
use crate::config::Settings;
use crate::container::ctl::Verb;
use crate::container::psql::exec_spec as spec;
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;

use super::{Compression, Format, Manifest};

/// Where a dump goes.
pub enum Dest<'a> {
    File(PathBuf),
    Stdout,
    /// A writer (an off-site upload's feed); the manifest's `file` is the name given.
    Stream(String, &'a mut (dyn Write + Send)),
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

/// The script that ends a dump (or all stale ones, for `*`) inside the container.
fn kill_script(pidfile_glob: &str) -> String {
    format!(
        "for f in {pidfile_glob}; do [ -e \"$f\" ] || continue; sh -c '{}' \"$f\"; done",
        DUMP_KILLER.replace('\'', r"'\''")
    )
}

/// Ends a dump (or all stale ones, for `*`) inside the container.
async fn kill_dumps(engine: &Engine, c: &str, pidfile_glob: &str) -> anyhow::Result<String> {
    let out = engine
        .exec_capture(c, &spec(&["sh", "-c", &kill_script(pidfile_glob)], "0"))
        .await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The shell script that removes what a killed backup may have left in the
/// container: dumps still running (their output goes nowhere) and the temporary
/// folders of directory-format dumps. It prints one line per thing removed. Run it
/// with the project lock held: no dump of this project is live then. The backup
/// runs it in the exec that checks the container ([`crate::container::ctl::ready_for_backup`]).
pub fn stale_dumps_script() -> String {
    format!(
        r#"{}
for d in /tmp/pgbox-dump.*; do [ -d "$d" ] || continue; rm -rf "$d" && echo "$d"; done"#,
        kill_script(&format!("{DUMP_PIDFILE_PREFIX}*.pid"))
    )
}

/// The lines of [`stale_dumps_script`] said as what was removed.
pub fn describe_stale(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            if l.starts_with("/tmp/") {
                format!("`{l}` in the container")
            } else {
                l.clone()
            }
        })
        .collect()
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
    mut dest: Dest<'_>,
    p: &Printer,
) -> anyhow::Result<Dumped> {
    let started = Instant::now();
    let created_at = Utc::now();
    let verb = if req.kind == "globals" {
        Verb::Globals {
            compression: req.compression.as_str(),
            level: req.level,
        }
    } else {
        Verb::Dump {
            database: req.database,
            format: req.format.as_str(),
            compression: req.compression.as_str(),
            level: req.level,
        }
    };
    let pidfile = format!(
        "{DUMP_PIDFILE_PREFIX}{}-{}.pid",
        std::process::id(),
        created_at.timestamp_nanos_opt().unwrap_or_default()
    );
    // setsid: the dump gets a process group of its own, which the guard below ends.
    let mut cmd: Vec<String> = ["setsid", "-w", "sh", "-c", DUMP_WRAPPER, &pidfile]
        .map(String::from)
        .to_vec();
    cmd.extend(verb.argv());
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
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
        Dest::Stdout | Dest::Stream(..) => (None, None),
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
    let mut stream = match &mut dest {
        Dest::Stream(_, w) => Some(w),
        _ => None,
    };
    let result = engine
        .exec_stream(
            c,
            &spec(&cmd, "0"),
            None::<tokio::io::Empty>,
            |chunk| {
                hasher.update(chunk);
                bytes += chunk.len() as u64;
                bar.set_position(bytes);
                match (file.as_mut(), stream.as_mut()) {
                    (Some(f), _) => f.write_all(chunk),
                    (None, Some(w)) => w.write_all(chunk),
                    (None, None) => stdout.write_all(chunk),
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
    let streamed_as = match &dest {
        Dest::Stream(name, _) => Some(name.clone()),
        _ => None,
    };
    let manifest = Manifest {
        file: path
            .as_ref()
            .and_then(|(_, p)| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .or(streamed_as)
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
        encrypted_to: Vec::new(),
        ciphertext: None,
        remote: None,
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
