//! `pgbox save`: in fallback mode, a consistent tarball of the running cluster now;
//! with `-o PATH`, a consistent copy anywhere, in any storage mode (`server::save`).

use crate::cli::{GlobalArgs, SaveArgs};
use crate::printer::Printer;

pub async fn run(args: SaveArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    let output = match &args.output {
        Some(out) => Some(crate::config::absolute(&std::env::current_dir()?, out)),
        None => None,
    };
    crate::server::save::save(&engine, &s, output.as_deref(), p).await?;
    Ok(0)
}
