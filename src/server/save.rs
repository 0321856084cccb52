//! `pgbox save` as an operation: in fallback mode, a consistent tarball of the
//! running cluster now; with an output path, a consistent copy anywhere, in any
//! storage mode.
//!
//! The entrypoint runs pg_basebackup (tar format, WAL included) into a temporary
//! file on the data mount, checks it, keeps the current tarball as `.prev` and
//! renames the new one into place, so a crash loses at most what came after.
//! A copy to the host streams the same kind of copy out instead, so a full data
//! folder never traps the data in the container. The project lock is taken first.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{Settings, StorageMode};
use crate::container::ctl::{self, Verb};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

/// Save the running cluster: into its tarball (fallback mode), or to `output`.
pub async fn save(
    engine: &Engine,
    s: &Settings,
    output: Option<&Path>,
    p: &Printer,
) -> anyhow::Result<()> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "save")?;
    let mode = crate::storage::in_effect(s)?.mode;
    if mode != StorageMode::Fallback && output.is_none() {
        return Err(Fail::new(format!("`pgbox save` applies to fallback storage; `{}` uses {mode}", s.project))
            .hint("in direct and volume modes the data is already on the host or in the volume; use `pgbox backup` for copies, or `pgbox save -o PATH` for a physical one")
            .code(EXIT_USAGE)
            .into());
    }
    let name = ctl::running(engine, s).await?;
    let t = Instant::now();
    if let Some(path) = output {
        let size = copy_out(engine, &name, path, p).await?;
        p.done(format!(
            "copied the cluster to `{}` ({:.1} MB) in {:.1}s; unpack it with `zstd -dc FILE | tar -xf -`",
            path.display(),
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        ));
        return Ok(());
    }
    let bar = p.spinner("saving the running cluster");
    let out = ctl::run(engine, &name, Verb::Save).await;
    bar.finish_and_clear();
    let out = out?;
    if out.code != 0 {
        return Err(Fail::new(format!(
            "saving failed; the previous tarball is untouched:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
        .hint("free space in the data folder, or copy the data elsewhere with `pgbox save -o PATH`")
        .into());
    }
    let tarball = s.data_dir.join("pgsql.tar.zst");
    let size = std::fs::metadata(&tarball).map(|m| m.len()).map_err(|e| {
        Fail::new(format!(
            "the container reported a save, but `{}` cannot be read: {e}",
            tarball.display()
        ))
        .hint("check the data folder; `pgbox logs` shows what the entrypoint did")
    })?;
    p.done(format!(
        "saved `{}` ({:.1} MB) in {:.1}s",
        tarball.display(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// `pgbox save -o PATH`: a consistent copy of the running cluster (pg_basebackup tar,
/// zstd) written to `path` through `PATH.partial`, fsynced, checked, renamed. Nothing
/// is written in the container or the data folder, so it works when that is full.
/// Returns the size in bytes.
async fn copy_out(engine: &Engine, name: &str, path: &Path, p: &Printer) -> anyhow::Result<u64> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Err(Fail::new(format!("`{}` already exists", path.display()))
            .hint("choose a new file name; pgbox never overwrites a copy")
            .into());
    }
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600) // the whole cluster: the owner only
        .open(&partial)
        .map_err(|e| Fail::new(format!("cannot create `{}`: {e}", partial.display())))?;
    let guard = crate::cancel::Guard::path(partial.clone());
    let mut file = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut bytes: u64 = 0;
    let mut head = Vec::new();
    let mut stderr = Vec::new();
    let bar = p.bytes_bar(format!("copying `{name}`"), None);
    let spec = Verb::SaveStream.spec();
    let result = engine
        .exec_stream(
            name,
            &spec,
            None::<tokio::io::Empty>,
            |chunk| {
                if head.len() < 4 {
                    head.extend_from_slice(&chunk[..chunk.len().min(4)]);
                }
                bytes += chunk.len() as u64;
                bar.set_position(bytes);
                file.write_all(chunk)
            },
            |e| stderr.extend_from_slice(e),
        )
        .await;
    bar.finish_and_clear();
    let fail = |why: String| -> anyhow::Error {
        let msg = String::from_utf8_lossy(&stderr).trim().to_string();
        Fail::new(format!(
            "copying the cluster to `{}` failed: {why}",
            path.display()
        ))
        .hint(if msg.is_empty() {
            "nothing was written".to_string()
        } else {
            format!("nothing was written; the container said: {msg}")
        })
        .into()
    };
    let code = result.map_err(|e| fail(e.to_string()))?;
    if code != 0 {
        return Err(fail(format!("the copy exited with code {code}")));
    }
    // A zstd frame starts with 28 b5 2f fd.
    if bytes == 0 || !head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(fail("the copy is empty or not zstd".into()));
    }
    let f = file.into_inner().map_err(|e| fail(e.to_string()))?;
    f.sync_all().map_err(|e| fail(e.to_string()))?;
    drop(f);
    std::fs::rename(&partial, path).map_err(|e| fail(e.to_string()))?;
    guard.disarm();
    // The rename is durable only once the folder is synced.
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| {
            Fail::new(format!(
                "the copy `{}` is complete but its folder could not be synced: {e}",
                path.display()
            ))
            .hint("run `sync` before relying on the copy after a power loss")
        })?;
    Ok(bytes)
}
