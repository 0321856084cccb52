//! `pgbox url`: the connection string on stdout and nothing else.
//!
//! It reads only pgbox.toml (and the password file with `--with-password`), so it
//! answers in milliseconds and works while the engine is down.

use crate::cli::{GlobalArgs, UrlArgs};
use crate::config::Settings;
use crate::printer::Printer;
use crate::{connection, secrets};

pub fn run(args: UrlArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    let password = if args.with_password {
        Some(secrets::read_password(&s)?)
    } else {
        None
    };
    p.data(connection::url(&s, password.as_deref()));
    Ok(0)
}
