//! The project's PostgreSQL server over its life: brought up (`up`), stopped or
//! purged (`down`), saved (`save`), looked at (`status`), put into maintenance and
//! back (here), helper containers beside it (`worker`) and a
//! recovered copy of it (`recovered`), and kept in line with pgbox.toml while it runs (`conf`: rendered
//! configuration, reload, password and extension drift).
//!
//! Each operation takes the settings, a connected engine and the printer, and
//! takes the project lock itself where it changes the server, so the commands
//! above only turn arguments into options.

pub mod conf;
pub mod down;
pub mod recovered;
pub mod save;
pub mod status;
pub mod up;
pub mod worker;

use crate::config::Settings;
use crate::container::ctl::{self, Verb};
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;

/// Stop PostgreSQL while the container stays up (`on`), or start it again.
pub async fn maintenance(
    engine: &Engine,
    s: &Settings,
    on: bool,
    p: &Printer,
) -> anyhow::Result<()> {
    let name = ctl::running(engine, s).await?;
    let action = if on { "on" } else { "off" };
    let bar = p.spinner(if on {
        "stopping PostgreSQL for maintenance"
    } else {
        "starting PostgreSQL"
    });
    let out = ctl::run(engine, &name, Verb::Maintenance(on)).await;
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
    if on {
        p.done(format!(
            "`{}` is in maintenance: PostgreSQL is stopped, the container stays up",
            s.project
        ));
    } else {
        p.done(format!("PostgreSQL for `{}` is running again", s.project));
    }
    Ok(())
}
