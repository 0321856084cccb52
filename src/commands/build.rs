//! `pgbox build`: build the PostgreSQL image from the embedded templates.

use crate::cli::{BuildArgs, GlobalArgs};
use crate::printer::Printer;
use crate::project;

pub async fn run(args: BuildArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    let tag = project::ensure_image(&engine, &s, p, args.force).await?;
    p.data(tag);
    Ok(0)
}
