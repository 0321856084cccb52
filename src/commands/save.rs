//! `pgbox save`: in fallback mode, a consistent tarball of the running cluster now;
//! with `-o PATH`, a consistent copy anywhere, in any storage mode.
//!
//! The entrypoint runs pg_basebackup (tar format, WAL included) into a temporary
//! file on the data mount, checks it, keeps the current tarball as `.prev` and
//! renames the new one into place, so a crash loses at most what came after.
//! `-o` streams the same kind of copy to the host instead, so a full data folder
//! never traps the data in the container.

use std::time::Instant;

use crate::cli::{GlobalArgs, SaveArgs};
use crate::config::StorageMode;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::storage::ProjectState;

pub async fn run(args: SaveArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "save")?;
    let mode = ProjectState::load(&s)
        .storage
        .map(|d| d.mode)
        .unwrap_or(s.storage_mode);
    if mode != StorageMode::Fallback && args.output.is_none() {
        return Err(Fail::new(format!("`pgbox save` applies to fallback storage; `{}` uses {mode}", s.project))
            .hint("in direct and volume modes the data is already on the host or in the volume; use `pgbox backup` for copies, or `pgbox save -o PATH` for a physical one")
            .code(EXIT_USAGE)
            .into());
    }
    let name = crate::container::ctl::running(&engine, &s).await?;
    let t = Instant::now();
    if let Some(out) = &args.output {
        let path = crate::config::absolute(&std::env::current_dir()?, out);
        let size = crate::fallback::copy_out(&engine, &name, &path, p).await?;
        p.done(format!(
            "copied the cluster to `{}` ({:.1} MB) in {:.1}s; unpack it with `zstd -dc FILE | tar -xf -`",
            path.display(),
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        ));
        return Ok(0);
    }
    let bar = p.spinner("saving the running cluster");
    let out = crate::container::ctl::run(&engine, &name, crate::container::ctl::Verb::Save).await;
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
    let size = std::fs::metadata(&tarball).map(|m| m.len()).unwrap_or(0);
    p.done(format!(
        "saved `{}` ({:.1} MB) in {:.1}s",
        tarball.display(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    Ok(0)
}
