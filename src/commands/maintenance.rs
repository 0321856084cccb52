//! `pgbox maintenance on|off`: stop PostgreSQL while the container stays up, or resume.
//!
//! While in maintenance the entrypoint's state is MAINTENANCE, `pgbox psql`
//! refuses with a hint, and `pgbox exec`-style repairs can work on PGDATA.

use crate::cli::{GlobalArgs, MaintenanceArgs, OnOff};
use crate::container::ctl;
use crate::error::Fail;
use crate::printer::Printer;

pub async fn run(args: MaintenanceArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    let name = ctl::running(&engine, &s).await?;
    let on = args.action == OnOff::On;
    let action = if on { "on" } else { "off" };
    let bar = p.spinner(match args.action {
        OnOff::On => "stopping PostgreSQL for maintenance",
        OnOff::Off => "starting PostgreSQL",
    });
    let out = ctl::run(&engine, &name, ctl::Verb::Maintenance(on)).await;
    bar.finish_and_clear();
    let out = out?;
    if out.code != 0 {
        return Err(Fail::new(format!(
            "maintenance {action} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("`pgbox logs` shows what the entrypoint did")
        .into());
    }
    match args.action {
        OnOff::On => p.done(format!(
            "`{}` is in maintenance: PostgreSQL is stopped, the container stays up",
            s.project
        )),
        OnOff::Off => p.done(format!("PostgreSQL for `{}` is running again", s.project)),
    }
    Ok(0)
}
