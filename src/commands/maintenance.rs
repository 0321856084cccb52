//! `pgbox maintenance on|off`: stop PostgreSQL while the container stays up, or resume.
//!
//! While in maintenance the entrypoint's state is MAINTENANCE, `pgbox psql`
//! refuses with a hint, and `pgbox exec`-style repairs can work on PGDATA.

use crate::cli::{GlobalArgs, MaintenanceArgs, OnOff};
use crate::error::Fail;
use crate::printer::Printer;
use crate::project;

pub async fn run(args: MaintenanceArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    let name = project::running_container(&engine, &s).await?;
    let action = match args.action {
        OnOff::On => "on",
        OnOff::Off => "off",
    };
    let bar = p.spinner(match args.action {
        OnOff::On => "stopping PostgreSQL for maintenance",
        OnOff::Off => "starting PostgreSQL",
    });
    let out = project::ctl(&engine, &name, &["maintenance", action]).await;
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
