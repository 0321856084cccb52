//! pgbox: PostgreSQL in a container, with your data safe, in one command.
//!
//! `main` stays thin: parse the command line, build the runtime, run the command,
//! print an error chain if there is one, and map the outcome to an exit code.

mod backup;
mod cli;
mod cluster;
mod commands;
mod config;
mod deploy;
mod engine;
mod error;
mod fsutil;
mod printer;
mod probe;
mod project;
mod schedule;
mod scram;
mod storage;
mod templates;
mod tls;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let printer = printer::Printer::new(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = commands::run(cli, &printer) => r,
            _ = tokio::signal::ctrl_c() => Err(error::Interrupted.into()),
        }
    });
    // A stdin reader may still be blocked in a worker thread; do not wait for it.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            printer.error(&e);
            ExitCode::from(error::exit_code(&e))
        }
    }
}
