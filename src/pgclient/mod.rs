//! pgbox's host-side PostgreSQL client: how the host reaches the project's own
//! server (through its published port, with the password from the project's secret
//! file) or any PostgreSQL named by `--url` / `DATABASE_URL`, through tokio-postgres.
//! It sits below the domains that use it (`migrate`, `observe`, `pooler`), so none
//! of them reaches into another for this plumbing.
//!
//! TLS follows libpq's `sslmode` (see `tls`); the project's server is reached as
//! `pgbox url` says (its own CA checked with self-signed TLS).
//!
//! One client for both keeps a single code path, and sends SQL over the protocol,
//! never through a process argument. The password goes into the client's config
//! only; it is never printed (tokio-postgres redacts it from `Debug`) nor passed to
//! a process.

use std::time::Duration;

use tokio_postgres::{Client, Config};

pub mod tls;

use tls::{Check, Tls};

use crate::config::Settings;
use crate::error::Fail;

/// The project's own server: what callers (migrate's snapshots and rollback) need
/// beyond a connection.
#[derive(Debug, Clone)]
pub struct OwnServer {
    pub settings: Settings,
    /// `--engine`, for the backup a large database's snapshot is made with.
    pub engine: Option<String>,
}

/// The server and database migrations run against.
#[derive(Clone)]
pub struct Target {
    config: Config,
    tls: Tls,
    pub db: String,
    pub own: Option<OwnServer>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("db", &self.db).finish()
    }
}

impl Target {
    /// The project's server, with the password from its secret file.
    pub fn own(s: &Settings, engine: Option<String>) -> anyhow::Result<Target> {
        let password = crate::secrets::read_password(s)?;
        let mut c = Config::new();
        let host = s.url_host();
        c.host(host.trim_start_matches('[').trim_end_matches(']'))
            .port(s.port)
            .user(&s.user)
            .password(password)
            .dbname(&s.database);
        let check = Check::for_project(s);
        let own = OwnServer {
            settings: s.clone(),
            engine,
        };
        Target::with(c, check, s.database.clone(), Some(own))
    }

    /// Any server, from a `postgres://` URL or a `key=value` string.
    pub fn url(url: &str) -> anyhow::Result<Target> {
        let (url, check) = tls::split_url(url)?;
        let c: Config = url.parse().map_err(|e| {
            Fail::new(format!("the database URL is not valid: {e}"))
                .hint("give `postgres://user:password@host:port/db`, best in `DATABASE_URL` (an argument shows in process listings)")
        })?;
        let db = c
            .get_dbname()
            .map(str::to_string)
            .or_else(|| c.get_user().map(str::to_string))
            .ok_or_else(|| Fail::new("the database URL names no database"))?;
        let mut c = c;
        if c.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                c.password(p);
            }
        }
        Target::with(c, check, db, None)
    }

    fn with(
        mut config: Config,
        check: Check,
        db: String,
        own: Option<OwnServer>,
    ) -> anyhow::Result<Target> {
        config
            .application_name("pgbox migrate")
            .connect_timeout(Duration::from_secs(10))
            .ssl_mode(check.ssl_mode());
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        let tls = check.connector()?;
        Ok(Target {
            config,
            tls,
            db,
            own,
        })
    }

    /// The same server as another client: `application_name` as `pg_stat_activity`
    /// shows it (`pgbox migrate` by default), and how long a connection attempt may
    /// take.
    pub fn named(mut self, application_name: &str, connect_timeout: Duration) -> Target {
        self.config
            .application_name(application_name)
            .connect_timeout(connect_timeout);
        self
    }

    /// The TLS connector (cancel requests need it too).
    pub fn tls(&self) -> Tls {
        self.tls.clone()
    }

    /// Where the server is, for messages: `host:port/db` (no user, no password).
    pub fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}/{}", self.db)
    }

    /// A session in the target database.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        self.connect_to(&self.db).await
    }

    /// A session in another database of the same server.
    pub async fn connect_to(&self, db: &str) -> anyhow::Result<Client> {
        let mut c = self.config.clone();
        c.dbname(db);
        let (client, conn) = c.connect(self.tls.clone()).await.map_err(|e| {
            let hint = match &self.own {
                Some(_) => "is the server up? `pgbox up` starts it, `pgbox status` shows it".to_string(),
                None => "check the URL (host, port, user, database, `sslmode`) and that the server is reachable".to_string(),
            };
            Fail::new(format!("cannot connect to `{}`: {e}", self.describe_db(db))).hint(hint)
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
            .batch_execute("set client_min_messages = warning")
            .await?;
        Ok(client)
    }

    fn describe_db(&self, db: &str) -> String {
        let d = self.describe();
        match d.rsplit_once('/') {
            Some((hp, _)) => format!("{hp}/{db}"),
            None => d,
        }
    }
}
