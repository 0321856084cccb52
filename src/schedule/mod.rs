//! Scheduled backups: expressions, cron and systemd installers, and the run itself.
//!
//! Both installers write paths the user chose (the project folder, the backup
//! folder, pgbox's own path), so each quotes every word for its target: /bin/sh
//! quoting plus `\\%` for cron, systemd's quoting plus `%%` and `$$` for units.

pub mod cron;
pub mod expr;
pub mod run;
pub mod systemd;

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
