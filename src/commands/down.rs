//! `pgbox down`: graceful stop, optionally removing the container or the data.
//!
//! Exit 1 when a `--purge` is declined at the prompt; the work is `server::down`.

use crate::cli::{DownArgs, GlobalArgs};
use crate::printer::Printer;
use crate::server::down::{down, Down, DownOptions};

pub async fn run(args: DownArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    let options = DownOptions {
        rm: args.rm,
        purge: args.purge,
        yes: args.yes,
    };
    Ok(match down(&engine, &s, options, p).await? {
        Down::Done => 0,
        Down::Declined => 1,
    })
}
