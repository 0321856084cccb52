//! PgBouncer's admin console (the `pgbouncer` database), over tokio-postgres.
//!
//! The console speaks the simple query protocol only, so everything here goes
//! through `simple_query` and reads rows by column name (the columns of `SHOW
//! POOLS` and `SHOW STATS` change between versions). pgbox logs in as the pooler's
//! own role (`admin_users`), with the password from its auth file, over TLS when
//! the server has TLS (the pooler then requires it).

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::{read_secret, AUTH_USER};
use crate::cancel::Guard;
use crate::config::Settings;
use crate::pgclient::tls::Check;

/// A session on the admin console.
pub struct Console {
    client: Client,
}

/// One row of a `SHOW` command, by column name.
pub type Row = HashMap<String, String>;

impl Console {
    /// Connect to the pooler's published port.
    pub async fn connect(s: &Settings) -> anyhow::Result<Console> {
        let password = read_secret(s)?;
        let host = s.url_host();
        let mut c = Config::new();
        c.host(host.trim_start_matches('[').trim_end_matches(']'))
            .port(s.pooler.port)
            .user(AUTH_USER)
            .password(password)
            .dbname("pgbouncer")
            .connect_timeout(Duration::from_secs(5));
        let check = Check::for_project(s);
        c.ssl_mode(check.ssl_mode());
        let (client, conn) = c.connect(check.connector()?).await.map_err(|e| {
            crate::error::Fail::new(format!(
                "cannot reach PgBouncer's admin console on {host}:{}: {e}",
                s.pooler.port
            ))
            .hint("`pgbox up` starts the pooler; `pgbox logs pooler` shows its log")
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Console { client })
    }

    /// Run a console command (`RELOAD`, `PAUSE db`, ...).
    pub async fn command(&self, cmd: &str) -> anyhow::Result<()> {
        self.client
            .simple_query(cmd)
            .await
            .map_err(|e| anyhow::anyhow!("PgBouncer refused `{cmd}`: {e}"))?;
        Ok(())
    }

    /// The rows of a `SHOW` command.
    pub async fn show(&self, what: &str) -> anyhow::Result<Vec<Row>> {
        let msgs = self.client.simple_query(&format!("SHOW {what}")).await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(
                    r.columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_string(), r.get(i).unwrap_or("").to_string()))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// `PgBouncer 1.24.1`.
    pub async fn version(&self) -> anyhow::Result<String> {
        let rows = self.show("VERSION").await?;
        Ok(rows
            .first()
            .and_then(|r| r.get("version"))
            .cloned()
            .unwrap_or_default())
    }
}

/// Whether this PgBouncer (`PgBouncer 1.24.1`) keeps protocol-level prepared
/// statements in transaction mode: 1.21 and later.
pub fn keeps_prepared(version: &str) -> bool {
    let v = version.trim_start_matches("PgBouncer").trim();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 21)
}

/// A paused pooler: clients wait instead of failing while the server restarts or a
/// database is swapped; [`Pause::end`] reconnects and resumes it. PgBouncer keeps a
/// pause after the session that asked for it is gone, so the resume is a cancel
/// guard: a Ctrl-C or an error between `begin` and `end` still lets clients through.
pub struct Pause {
    /// The session that paused, held open until the end as before.
    _console: Console,
    resume: Guard,
}

/// How long a `PAUSE` may wait for running transactions before pgbox goes on
/// without it (the server side then ends them anyway).
const PAUSE_BOUND: Duration = Duration::from_secs(30);

impl Pause {
    /// Pause the pooler (all databases, or `db`) when it is enabled and answers;
    /// None otherwise, or when the pause did not finish within its bound.
    pub async fn begin(s: &Settings, db: Option<&str>) -> Option<Pause> {
        if !s.pooler.enabled {
            return None;
        }
        let console = Console::connect(s).await.ok()?;
        let cmd = match db {
            Some(d) => format!("PAUSE {}", quote(d)),
            None => "PAUSE".to_string(),
        };
        let resume = Guard::future("resume the pooler", resume(s.clone(), db.map(String::from)));
        match tokio::time::timeout(PAUSE_BOUND, console.command(&cmd)).await {
            Ok(Ok(())) => Some(Pause {
                _console: console,
                resume,
            }),
            _ => {
                // Half-paused on a timeout or an error: resume on a fresh session.
                resume.undo().await;
                None
            }
        }
    }

    /// Close every server connection made before, then let clients through again.
    pub async fn end(self) {
        self.resume.undo().await;
    }
}

/// `RECONNECT` and `RESUME` (all databases, or `db`) on a fresh console session.
async fn resume(s: Settings, db: Option<String>) {
    let Ok(console) = Console::connect(&s).await else {
        return;
    };
    let target = db.as_deref().map(quote).unwrap_or_default();
    let _ = console.command(&format!("RECONNECT {target}")).await;
    let _ = console.command(&format!("RESUME {target}")).await;
}

/// A database name as the console takes it.
fn quote(db: &str) -> String {
    format!("\"{}\"", db.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_statements_from_1_21() {
        assert!(!keeps_prepared("PgBouncer 1.18.0"));
        assert!(keeps_prepared("PgBouncer 1.21.0"));
        assert!(keeps_prepared("PgBouncer 1.24.1"));
        assert!(keeps_prepared("PgBouncer 2.0.0"));
        assert!(!keeps_prepared(""));
    }
}
