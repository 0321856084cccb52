//! Fallback storage's safety net on the host: never drop the only up-to-date copy.
//!
//! In fallback mode the newest data lives in the container's own PGDATA until a
//! save succeeds. The entrypoint keeps a marker file (`UNSAVED_MARK`, holding the
//! reason) while that copy may hold writes the tarball lacks; pgbox reads it, even
//! from a stopped container, before it calls a stop successful or removes a
//! container. A container stopped without a save (a kill, a crash, a full disk) is
//! started once to recover and stopped again so its stop-save runs. Copies the
//! entrypoint kept aside (`pgsql-unstartable-*`, `pgsql-replaced-*`) are listed by
//! `up` and `status` until the user deletes them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Settings, StorageMode};
use crate::container::spec::{stop_timeout, READY_MARKER};
use crate::engine::{Engine, WaitError};
use crate::error::Fail;
use crate::printer::Printer;

/// Written by the entrypoint (runtime/common.sh) while PGDATA is newer than the tarball.
pub const UNSAVED_MARK: &str = "/tmp/pgbox-unsaved";

/// Why the container may hold writes its tarball lacks, or None when it holds none.
pub async fn unsaved(engine: &Engine, name: &str) -> anyhow::Result<Option<String>> {
    Ok(engine
        .read_file(name, UNSAVED_MARK)
        .await?
        .map(|b| String::from_utf8_lossy(&b).trim().to_string()))
}

fn not_saved(s: &Settings, name: &str, reason: &str, retry: &str) -> Fail {
    let free = crate::fsutil::free_bytes(&s.data_dir)
        .map(|b| format!(" ({} MB free there now)", b / 1_000_000))
        .unwrap_or_default();
    Fail::new(format!(
        "stopping `{name}` did not save its newest data: {reason}"
    ))
    .hint(format!(
        "the container and its data are kept: free space in `{}`{free}, then run `{retry}` again; \
         or copy the data elsewhere: `pgbox up`, then `pgbox save -o PATH`",
        s.data_dir.display()
    ))
}

/// After a stop (`just_stopped`) or on a stopped container: make sure the tarball
/// holds the newest data, or fail saying what to do. `retry` is the command to rerun.
pub async fn ensure_saved(
    engine: &Engine,
    s: &Settings,
    name: &str,
    just_stopped: bool,
    retry: &str,
    p: &Printer,
) -> anyhow::Result<()> {
    let Some(reason) = unsaved(engine, name).await? else {
        return Ok(());
    };
    if just_stopped {
        return Err(not_saved(s, name, &reason, retry).into());
    }
    p.warn(format!(
        "`{name}` stopped without saving its newest data ({reason}): starting it to save it"
    ));
    let bar = p.spinner(format!("recovering `{name}` to save it"));
    let waited = engine
        .start_and_wait(name, READY_MARKER, Duration::from_secs(600), |_| {})
        .await;
    bar.finish_and_clear();
    let timeout = stop_timeout(StorageMode::Fallback);
    if let Err(e) = waited {
        let mut detail = match e {
            WaitError::Died { last_lines, .. } | WaitError::Timeout(_, last_lines) => {
                last_lines.join("\n")
            }
            WaitError::Engine(e) => e.to_string(),
        };
        if let Err(e) = engine.stop_container(name, timeout).await {
            detail.push_str(&format!("\nstopping it again failed too: {e}"));
        }
        return Err(Fail::new(format!(
            "`{name}` holds data newer than its last save, and starting it to save that data failed:\n{detail}"
        ))
        .hint(format!(
            "the container is kept: fix the cause (`pgbox logs`), then run `{retry}` again"
        ))
        .into());
    }
    let bar = p.spinner(format!("stopping `{name}` and saving it"));
    let r = engine.stop_container(name, timeout).await;
    bar.finish_and_clear();
    r?;
    if let Some(reason) = unsaved(engine, name).await? {
        return Err(not_saved(s, name, &reason, retry).into());
    }
    p.done("saved the newest data to `pgsql.tar.zst`");
    Ok(())
}

/// Copies of a cluster the entrypoint kept aside in the data folder, oldest first
/// (none when the folder does not exist yet). A folder that cannot be listed is an
/// error: those copies may hold the only newer data.
pub fn kept_aside(s: &Settings) -> Result<Vec<PathBuf>, Fail> {
    let cannot = |e: std::io::Error| {
        Fail::new(format!(
            "cannot list the data folder `{}` for copies kept aside: {e}",
            s.data_dir.display()
        ))
    };
    let rd = match std::fs::read_dir(&s.data_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(cannot(e)),
    };
    let mut v = Vec::new();
    for e in rd {
        let p = e.map_err(cannot)?.path();
        let n = p.file_name().unwrap_or_default().to_string_lossy();
        if (n.starts_with("pgsql-unstartable-") || n.starts_with("pgsql-replaced-"))
            && n.ends_with(".tar.zst")
        {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// What a kept-aside copy is, and what to do with it.
pub fn describe_kept(path: &Path) -> String {
    let file = path.display();
    if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("pgsql-unstartable-"))
    {
        format!(
            "the container's cluster could not start after a crash, so PostgreSQL runs on the last save, \
             which lacks the writes made after it; that newer cluster is kept in `{file}` \
             (unpack it into an empty folder with `zstd -dc FILE | tar -xf -` to look at it; delete the file when done)"
        )
    } else {
        format!(
            "`pgsql.tar.zst` was replaced by hand and PostgreSQL runs on it; the container's own cluster \
             it replaced is kept in `{file}` (delete the file when done)"
        )
    }
}

/// Print a warning for every kept-aside copy.
pub fn warn_kept(s: &Settings, p: &Printer) -> Result<(), Fail> {
    for k in kept_aside(s)? {
        p.warn(describe_kept(&k));
    }
    Ok(())
}

/// The risk of fallback mode without `save_interval`, or None when it is bounded.
pub fn at_risk(s: &Settings) -> Option<String> {
    (s.save_interval == 0).then(|| {
        "fallback storage without `save_interval`: writes since the last save (`pgbox down`, `pgbox save`) \
         exist only inside the container; a crash or kill keeps them, but a container removed outside pgbox \
         (`docker rm -f`, a prune, an engine reset) loses them; set `save_interval = \"15m\"` under \
         `[storage]` in pgbox.toml to bound that"
            .to_string()
    })
}
