//! The snapshot `up` takes before it applies anything, and `rollback` to it.
//!
//! Rule: a database of at most 1 GiB with no other session connected is copied
//! with `CREATE DATABASE ... TEMPLATE` (a file copy inside the server: about a
//! second for small databases, and the disk space of one more copy); otherwise,
//! or when a session connects in between, a `pgbox backup` of the database is made
//! (a dump: slower, but it does not need the database to itself). The copy is kept
//! as `pgbox_premigrate_<db>` with connections disallowed, so nobody writes into it
//! and `pgbox backup --all` skips it; a record in `.pgbox/migrate/` says which
//! kind the last snapshot is. Only the project's own server gets snapshots: with
//! `--url` pgbox does not run the server, has no server-version-matched `pg_dump`
//! for it, and will not drop and recreate a production database, so `rollback`
//! is refused there.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::backup::create::{self, CreateOptions};
use crate::backup::restore::{self, RestoreOptions};
use crate::cancel::Guard;
use crate::container::psql::ident;
use crate::error::Fail;
use crate::pgclient::{OwnServer, Target};
use crate::printer::{size, Printer};

/// Databases larger than this are snapshotted with a backup.
pub const TEMPLATE_MAX_BYTES: i64 = 1 << 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Kind {
    /// A template copy in this database.
    Template { database: String },
    /// A `pgbox backup` file.
    Backup { file: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub db: String,
    #[serde(flatten)]
    pub kind: Kind,
    pub taken_at: String,
    /// Versions applied when the snapshot was taken.
    pub applied: Vec<i64>,
}

fn record_path(own: &OwnServer, db: &str) -> PathBuf {
    own.settings
        .state_dir()
        .join("migrate")
        .join(format!("snapshot-{db}.json"))
}

pub fn read_record(own: &OwnServer, db: &str) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(own, db)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_record(own: &OwnServer, r: &Record) -> anyhow::Result<()> {
    let path = record_path(own, &r.db);
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    crate::fsutil::write_atomic(&path, serde_json::to_string_pretty(r)?.as_bytes(), 0o600)?;
    Ok(())
}

/// The snapshot database's name (at most 63 bytes).
pub fn snapshot_name(db: &str) -> String {
    let short = if db.len() <= 40 {
        db.to_string()
    } else {
        super::files::sha256_hex(db.as_bytes())[..16].to_string()
    };
    format!("pgbox_premigrate_{short}")
}

/// Take the snapshot of `target`'s database; `admin` is a session in `postgres`.
pub async fn take(
    admin: &Client,
    target: &Target,
    own: &OwnServer,
    applied: Vec<i64>,
    p: &Printer,
) -> anyhow::Result<()> {
    let db = &target.db;
    // The session `up` just closed may linger for a moment: look again for up to
    // two seconds before deciding that someone else is connected.
    let (mut bytes, mut others) = (0i64, 0i64);
    for attempt in 0..20 {
        let row = admin
            .query_one(
                "select pg_database_size($1::text),
                        (select count(*) from pg_stat_activity where datname = $1::text and pid <> pg_backend_pid())",
                &[db],
            )
            .await?;
        (bytes, others) = (row.get(0), row.get(1));
        if others == 0 || bytes > TEMPLATE_MAX_BYTES || attempt == 19 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let taken_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if bytes <= TEMPLATE_MAX_BYTES && others == 0 {
        match template_copy(admin, target, db).await {
            Ok(database) => {
                p.done(format!(
                    "snapshot of `{db}` ({}) taken as database `{database}`",
                    size(bytes as u64)
                ));
                return write_record(
                    own,
                    &Record {
                        db: db.clone(),
                        kind: Kind::Template { database },
                        taken_at,
                        applied,
                    },
                );
            }
            Err(e) => p.warn(format!(
                "a template copy of `{db}` failed ({e:#}); taking a backup instead"
            )),
        }
    } else {
        p.info(format!(
            "`{db}` is {} with {others} other session(s): the snapshot is a `pgbox backup`",
            size(bytes as u64)
        ));
    }
    let o = CreateOptions {
        db: Some(db.clone()),
        engine: own.engine.clone(),
        ..Default::default()
    };
    let files = create::create(&o, &own.settings, p).await?;
    let file = files
        .into_iter()
        .next()
        .ok_or_else(|| Fail::new("the snapshot backup wrote no file"))?;
    write_record(
        own,
        &Record {
            db: db.clone(),
            kind: Kind::Backup { file },
            taken_at,
            applied,
        },
    )
}

async fn template_copy(admin: &Client, target: &Target, db: &str) -> anyhow::Result<String> {
    let snap = snapshot_name(db);
    let new = format!("{snap}_new");
    admin
        .batch_execute(&format!("drop database if exists {}", ident(&new)))
        .await?;
    let guard = drop_guard(target, &new);
    admin
        .batch_execute(&format!(
            "create database {} template {}",
            ident(&new),
            ident(db)
        ))
        .await?;
    admin
        .batch_execute(&format!(
            "alter database {} allow_connections false",
            ident(&new)
        ))
        .await?;
    admin
        .batch_execute(&format!("drop database if exists {}", ident(&snap)))
        .await?;
    admin
        .batch_execute(&format!(
            "alter database {} rename to {}",
            ident(&new),
            ident(&snap)
        ))
        .await?;
    guard.disarm();
    Ok(snap)
}

/// Drops database `name` unless disarmed (a copy left by a failure or Ctrl-C).
fn drop_guard(target: &Target, name: &str) -> Guard {
    let (t, name) = (target.clone(), name.to_string());
    Guard::future(format!("database `{name}`"), async move {
        if let Ok(c) = t.connect_to("postgres").await {
            let _ = c
                .batch_execute(&format!("drop database if exists {}", ident(&name)))
                .await;
        }
    })
}

/// Replace the database with the last snapshot. `admin` is a session in
/// `postgres` that holds the migration lock.
pub async fn rollback(
    admin: &Client,
    target: &Target,
    own: &OwnServer,
    r: &Record,
    p: &Printer,
) -> anyhow::Result<()> {
    let db = &target.db;
    match &r.kind {
        Kind::Backup { file } => {
            let o = RestoreOptions {
                file: file.clone(),
                db: Some(db.clone()),
                yes: true,
                engine: own.engine.clone(),
                ..Default::default()
            };
            restore::run(&o, &own.settings, p).await?;
        }
        Kind::Template { database } => {
            let exists: bool = admin
                .query_one(
                    "select exists (select 1 from pg_database where datname = $1)",
                    &[database],
                )
                .await?
                .get(0);
            if !exists {
                return Err(
                    Fail::new(format!("the snapshot database `{database}` is gone"))
                        .hint("restore a backup instead (`pgbox backup list`, `pgbox restore`)")
                        .into(),
                );
            }
            let owner: String = admin
                .query_one(
                    "select pg_get_userbyid(datdba)::text from pg_database where datname = $1",
                    &[db],
                )
                .await?
                .get(0);
            let tmp = format!("{}_rb", snapshot_name(db));
            let old = format!("{}_old", snapshot_name(db));
            admin
                .batch_execute(&format!("drop database if exists {}", ident(&tmp)))
                .await?;
            admin
                .batch_execute(&format!("drop database if exists {}", ident(&old)))
                .await?;
            let guard = drop_guard(target, &tmp);
            admin
                .batch_execute(&format!(
                    "create database {} template {} owner {}",
                    ident(&tmp),
                    ident(database),
                    ident(&owner)
                ))
                .await?;
            // From here the swap is three quick statements; sessions of the old
            // database are ended first, as `restore` does.
            end_sessions(admin, db).await?;
            admin
                .batch_execute(&format!(
                    "alter database {di} rename to {o}; alter database {t} rename to {di}",
                    di = ident(db),
                    o = ident(&old),
                    t = ident(&tmp)
                ))
                .await?;
            guard.disarm();
            admin
                .batch_execute(&format!(
                    "drop database if exists {} with (force)",
                    ident(&old)
                ))
                .await?;
        }
    }
    p.done(format!(
        "`{db}` is back to the snapshot taken at {}",
        r.taken_at
    ));
    Ok(())
}

/// End every other session of `db` and wait (up to 10 s) until they are gone.
async fn end_sessions(admin: &Client, db: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        let left: i64 = admin
            .query_one(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
                &[&db],
            )
            .await?
            .get(0);
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(Fail::new(format!("sessions of `{db}` do not end"))
        .hint("stop the applications using it and try again")
        .into())
}
