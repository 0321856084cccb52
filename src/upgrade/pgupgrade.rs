//! Methods `link`, `clone` and `copy`: PostgreSQL's pg_upgrade (not written yet).

use crate::config::{Settings, StorageMode};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::state::Decision;

use super::check::Facts;
use super::Method;

/// Whether `method` can run with storage `mode`.
pub fn supported(method: Method, mode: StorageMode) -> Result<(), Fail> {
    let _ = mode;
    Err(Fail::new(format!(
        "`--method {}` (pg_upgrade) cannot run here yet",
        method.as_str()
    ))
    .hint("use `--method dump`")
    .code(EXIT_USAGE))
}

#[allow(clippy::too_many_arguments)]
pub async fn check(
    _engine: &Engine,
    _old: &Settings,
    _new: &Settings,
    _old_tag: &str,
    _new_tag: &str,
    _d_old: &Decision,
    _d_new: &Decision,
    method: Method,
    _p: &Printer,
) -> anyhow::Result<()> {
    supported(method, StorageMode::Direct)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    _engine: &Engine,
    _old: &Settings,
    _new: &Settings,
    _old_tag: &str,
    _new_tag: &str,
    _d_old: &Decision,
    _d_new: &Decision,
    _facts: &Facts,
    method: Method,
    _p: &Printer,
) -> anyhow::Result<()> {
    supported(method, StorageMode::Direct)?;
    Ok(())
}
