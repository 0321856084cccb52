//! `pgbox maintenance on|off`: stop PostgreSQL while the container stays up, or resume.
//!
//! While in maintenance the entrypoint's state is MAINTENANCE, `pgbox psql`
//! refuses with a hint, and `pgbox exec`-style repairs can work on PGDATA.

use super::Ctx;
use crate::cli::{MaintenanceArgs, OnOff};

pub async fn run(args: MaintenanceArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let p = ctx.p;
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    crate::cluster::refuse(s, "maintenance")?;
    crate::server::maintenance(engine, s, args.action == OnOff::On, p).await?;
    Ok(0)
}
