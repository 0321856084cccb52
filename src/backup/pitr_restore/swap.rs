//! The swap of a point-in-time restore: the recovered scratch cluster becomes
//! the project's, and the data from before is kept aside until the user deletes
//! it.
//!
//! Direct mode renames the data folder to `.pgbox/data-before-pitr-<stamp>` and
//! the scratch folder into its place; a kill between the two renames is repaired
//! by the next `up` or `restore` from the record (`state::PitrRestore`). Volume
//! mode rewrites `[storage] volume` in pgbox.toml, atomically, to the scratch
//! volume; the old volume stays as it was.

use std::path::PathBuf;

use super::scratch::Scratch;
use crate::config::{self, Settings, StorageMode};
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;
use crate::state::{PitrPhase, PitrRestore};

/// Where the data from before the restore is kept, and the settings the
/// project runs with from now on.
pub struct Swapped {
    pub kept: String,
    pub s: Settings,
}

/// Where direct mode keeps the data from before.
pub fn aside_dir(s: &Settings, stamp: &str) -> PathBuf {
    s.data_dir
        .with_file_name(format!("data-before-pitr-{stamp}"))
}

/// Stop the server and put the scratch cluster in place. On an error the
/// project's data is where it was (the caller starts the server again).
pub async fn swap(
    engine: &Engine,
    s: &Settings,
    sc: &Scratch,
    record: &mut PitrRestore,
    stamp: &str,
    p: &Printer,
) -> anyhow::Result<Swapped> {
    let aside = aside_dir(s, stamp);
    record.phase = PitrPhase::Swapping;
    if sc.mode != StorageMode::Volume {
        record.aside = Some(aside.display().to_string());
    }
    record.save(s)?;
    crate::server::worker::stop_live(engine, s, sc.mode, "pgbox restore", p)
        .await
        .map_err(|e| {
            e.context("stopping the server for the swap failed; the data was not changed")
        })?;
    if sc.mode == StorageMode::Volume {
        config::edit::set(
            &s.config_path,
            &[(
                "storage",
                "volume",
                config::edit::Value::Str(sc.s.volume.clone()),
            )],
        )?;
        return Ok(Swapped {
            kept: format!("volume `{}`", s.volume),
            s: sc.s.clone(),
        });
    }
    std::fs::rename(&s.data_dir, &aside).map_err(|e| {
        Fail::new(format!(
            "cannot move `{}` aside to `{}`: {e}",
            s.data_dir.display(),
            aside.display()
        ))
        .hint("the data was not changed")
    })?;
    if let Err(e) = std::fs::rename(&sc.s.data_dir, &s.data_dir) {
        let back = std::fs::rename(&aside, &s.data_dir);
        return Err(Fail::new(format!(
            "cannot move the recovered cluster into `{}`: {e}",
            s.data_dir.display()
        ))
        .hint(match back {
            Ok(()) => "the data was not changed".to_string(),
            Err(b) => format!(
                "moving the data back failed too ({b}): rename `{}` to `{}` yourself",
                aside.display(),
                s.data_dir.display()
            ),
        })
        .into());
    }
    crate::fsutil::sync_dir(s.data_dir.parent().unwrap_or(std::path::Path::new(".")));
    Ok(Swapped {
        kept: format!(
            "`{}` (owned by the container's postgres uid)",
            aside.display()
        ),
        s: s.clone(),
    })
}
