//! `pgbox build`: build the PostgreSQL image from the embedded templates.

use crate::cli::{BuildArgs, GlobalArgs};
use crate::container::image::ensure_image;
use crate::printer::Printer;

pub async fn run(args: BuildArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    let tag = ensure_image(&engine, &s, p, args.force).await?;
    p.data(tag);
    Ok(0)
}
