//! `backup verify`: is a backup sound? Its checksum against the manifest, then
//! `pg_restore --list` (or a full read of plain SQL) inside the container; with
//! `deep`, the same scratch restore and row-count checks as `pgbox restore`, then
//! the scratch database is dropped.

use std::path::Path;

use chrono::Utc;

use super::{dump, transfer, Format, Manifest};
use crate::config::Settings;
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;

/// `pgbox backup verify FILE|latest [--deep]`: resolve the backup, connect, verify.
pub async fn verify_backup(
    which: &str,
    deep: bool,
    engine: Option<&str>,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<()> {
    let path = super::listing::resolve(s, which)?;
    // A test restore uses a scratch database like `restore`, whose leftovers a later
    // run removes under this lock.
    let _lock = match deep {
        true => Some(crate::lock::project(
            &s.state_dir(),
            &s.project,
            "backup verify",
        )?),
        false => None,
    };
    let engine = Engine::connect(engine).await?;
    let c = crate::container::ctl::ready(&engine, s).await?;
    verify(&engine, &c, s, &path, deep, p).await
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
    let manifest = Manifest::read(path);
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
    let d = super::detect(path)?;
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
                            super::plain::plan(super::open_decompressed(&file, d)?, None)
                        })
                        .await??,
                    )
                }
                _ => None,
            };
            let (tables, rows) = super::restore::test_restore(
                engine,
                c,
                s,
                super::restore::Request {
                    local: path,
                    detected: d,
                    target: "pgbox_verify",
                    target_exists: false,
                    into: true,
                    drop_old: false,
                    jobs: super::restore::jobs_default(),
                    no_owner: true,
                    plain: plan,
                    scan: None,
                    clean_leftovers: false,
                },
                p,
            )
            .await?;
            p.done(format!(
                "test restore matched the row counts of {tables} tables ({rows} rows)"
            ));
        }
        anyhow::Ok(items)
    }
    .await;
    let removed = transfer::remove_remote(engine, c, &remote.dir).await;
    let items = result?;
    removed.map_err(|e| {
        Fail::new(format!(
            "cannot remove the uploaded copy `{}` in the container: {e:#}",
            remote.dir
        ))
    })?;
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
