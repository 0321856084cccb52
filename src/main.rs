//! pgbox: PostgreSQL in a container, with your data safe, in one command.
//!
//! `main` stays thin: parse the command line, build the runtime, run the command,
//! print an error chain if there is one, and map the outcome to an exit code.

mod backup;
mod cancel;
mod cli;
mod cluster;
mod commands;
mod config;
mod connection;
mod container;
mod crypt;
mod deploy;
mod digest;
mod engine;
mod error;
mod fsutil;
mod lock;
mod manifest;
mod migrate;
mod observe;
mod pgclient;
mod pooler;
mod printer;
mod probe;
mod project;
mod remote;
mod schedule;
mod scram;
mod secrets;
mod server;
mod state;
mod storage;
mod templates;
mod tls;
mod upgrade;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_from(cli::psql_passthrough(std::env::args_os()));
    let g = &cli.global;
    let printer = printer::Printer::new(g.quiet, g.verbose, g.json, g.color);
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
        cancel::install();
        // On a signal the command's future is dropped; the guards it held queue their
        // undo, which is awaited here before the runtime goes away.
        let r = tokio::select! {
            r = commands::run(cli, &printer) => r,
            _ = cancel::cancelled() => Err(error::Interrupted.into()),
        };
        let left = cancel::drain(std::time::Duration::from_secs(60)).await;
        if !left.is_empty() {
            printer.warn(format!(
                "left behind: {}; the next run of this command removes it",
                left.join(", ")
            ));
        }
        r
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
