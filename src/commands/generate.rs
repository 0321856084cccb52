//! `pgbox generate`: deployment files to commit, from the same settings and templates.
//!
//! Existing files are never overwritten without `--force`; with it, each rewrite is
//! reported with a line count of what changed. Nothing is written when any file
//! would be refused, so a folder is never left half regenerated. Each environment
//! gets its own password file, created once and never printed (`deploy::write`).

use super::Ctx;
use crate::cli::GenerateArgs;
use crate::deploy::write::{write, GenerateOptions};

pub fn run(a: GenerateArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let s = ctx.settings()?;
    let output = match &a.output {
        Some(o) => Some(crate::config::absolute(&std::env::current_dir()?, o)),
        None => None,
    };
    let options = GenerateOptions {
        what: a.what,
        env: a.env,
        publish: a.publish,
        output,
        force: a.force,
        backup: a.backup,
        engine: ctx.global.engine.clone(),
    };
    let out_dir = write(s, options, p)?;
    p.data(out_dir.display().to_string());
    Ok(0)
}
