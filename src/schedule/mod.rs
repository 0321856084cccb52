//! Scheduled backups: expressions, cron and systemd installers, the installed
//! record, and what `install`, `list`, `status` and `remove` do with them.
//!
//! Both installers write paths the user chose (the project folder, the backup
//! folder, pgbox's own path), so each quotes every word for its target: /bin/sh
//! quoting plus `\\%` for cron, systemd's quoting plus `%%` and `$$` for units.
//! Each action is one module with one entry point the command calls; what they
//! share (the record in `.pgbox/schedule.json`, unit names, crontab access) lives in
//! [`installed`], [`systemd`] and [`cron`], next to the tool it concerns.

pub mod cron;
pub mod expr;
pub mod install;
pub mod installed;
pub mod list;
pub mod remove;
pub mod run;
pub mod status;
pub mod systemd;

use serde::{Deserialize, Serialize};

/// What runs the schedule. `Auto` is only ever asked for: `install` resolves it,
/// and the record keeps the one it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    Auto,
    Systemd,
    Cron,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Auto => "auto",
            Mechanism::Systemd => "systemd",
            Mechanism::Cron => "cron",
        }
    }
}

/// A value a cron line or a unit file cannot carry (a newline, a control character).
#[derive(Debug, thiserror::Error)]
#[error("`{value}` contains a newline or control character, which {target} cannot hold")]
pub struct Unrepresentable {
    pub value: String,
    pub target: &'static str,
}

fn check(s: &str, target: &'static str) -> Result<(), Unrepresentable> {
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Unrepresentable {
            value: s.escape_debug().to_string(),
            target,
        });
    }
    Ok(())
}

/// Words of only these characters need no quoting, in a unit or in a shell.
fn plain_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@+-,".contains(c))
}
