//! `pgbox maintenance on|off`: stop PostgreSQL while the container stays up, or resume.
//!
//! While in maintenance the entrypoint's state is MAINTENANCE, `pgbox psql`
//! refuses with a hint, and `pgbox exec`-style repairs can work on PGDATA.

use crate::cli::{GlobalArgs, MaintenanceArgs, OnOff};
use crate::printer::Printer;

pub async fn run(args: MaintenanceArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let (s, engine) = super::load(g).await?;
    crate::server::maintenance(&engine, &s, args.action == OnOff::On, p).await?;
    Ok(0)
}
