//! Scheduled backups: expressions, cron and systemd installers, and the run itself.

pub mod cron;
pub mod expr;
pub mod systemd;
