//! `pgbox completions <shell>` and `pgbox man`, generated from the clap definition.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub fn completions(args: CompletionsArgs) -> super::Outcome {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "pgbox", &mut std::io::stdout());
    Ok(0)
}

pub fn man() -> super::Outcome {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(0)
}
