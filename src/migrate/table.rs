//! The version table (`pgbox.schema_version` unless `[migrations] table` says
//! otherwise): one row per applied file, written in the same transaction as the file.
//!
//! Beyond version, name, sha256, applied_at, duration_ms and the pgbox version, a
//! row keeps whether the file ran without a transaction and the file's text as it
//! was applied: `repair` diffs against it, and `down` can still run a file that is
//! gone from disk.

use tokio_postgres::Client;

use crate::container::psql::ident;

/// `schema.table`, each part checked by the config (lowercase identifiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub schema: String,
    pub name: String,
}

impl Table {
    pub fn parse(s: &str) -> Table {
        match s.split_once('.') {
            Some((a, b)) => Table {
                schema: a.into(),
                name: b.into(),
            },
            None => Table {
                schema: "public".into(),
                name: s.into(),
            },
        }
    }

    /// The quoted, qualified name for SQL.
    pub fn sql(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// One applied migration, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub sha256: String,
    pub applied_at: String,
    pub duration_ms: i64,
    pub pgbox_version: String,
    pub no_transaction: bool,
    #[serde(skip)]
    pub script: Option<String>,
}

impl Applied {
    pub fn file_name(&self) -> String {
        format!("{}_{}.sql", self.version, self.name)
    }
}

/// Create the schema and table when missing.
pub async fn ensure(c: &Client, t: &Table) -> anyhow::Result<()> {
    c.batch_execute(&format!(
        "create schema if not exists {schema};
         create table if not exists {table} (
             version bigint primary key,
             name text not null,
             sha256 text not null,
             applied_at timestamptz not null default now(),
             duration_ms bigint not null,
             pgbox_version text not null,
             no_transaction boolean not null default false,
             script text
         )",
        schema = ident(&t.schema),
        table = t.sql()
    ))
    .await?;
    Ok(())
}

/// Whether the table exists.
pub async fn exists(c: &Client, t: &Table) -> anyhow::Result<bool> {
    let row = c
        .query_one("select to_regclass($1) is not null", &[&t.sql()])
        .await?;
    Ok(row.get(0))
}

/// Every applied row, by version (none when the table does not exist yet).
pub async fn read(c: &Client, t: &Table) -> anyhow::Result<Vec<Applied>> {
    if !exists(c, t).await? {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            &format!(
                "select version, name, sha256,
                        to_char(applied_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        duration_ms, pgbox_version, no_transaction, script
                 from {} order by version",
                t.sql()
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            version: r.get(0),
            name: r.get(1),
            sha256: r.get(2),
            applied_at: r.get(3),
            duration_ms: r.get(4),
            pgbox_version: r.get(5),
            no_transaction: r.get(6),
            script: r.get(7),
        })
        .collect())
}

/// What a new row records.
pub struct NewRow<'a> {
    pub version: i64,
    pub name: &'a str,
    pub sha256: &'a str,
    pub duration_ms: i64,
    pub no_transaction: bool,
    pub script: &'a str,
    /// `applied_at` as text (an adopted history's date); None: now.
    pub applied_at: Option<&'a str>,
}

pub async fn insert(c: &Client, t: &Table, r: &NewRow<'_>) -> anyhow::Result<()> {
    c.execute(
        &format!(
            "insert into {} (version, name, sha256, applied_at, duration_ms, pgbox_version, no_transaction, script)
             values ($1, $2, $3, coalesce($4::text::timestamptz, now()), $5, $6, $7, $8)",
            t.sql()
        ),
        &[
            &r.version,
            &r.name,
            &r.sha256,
            &r.applied_at,
            &r.duration_ms,
            &env!("CARGO_PKG_VERSION"),
            &r.no_transaction,
            &r.script,
        ],
    )
    .await?;
    Ok(())
}

pub async fn delete(c: &Client, t: &Table, version: i64) -> anyhow::Result<()> {
    c.execute(
        &format!("delete from {} where version = $1", t.sql()),
        &[&version],
    )
    .await?;
    Ok(())
}

/// Record a new checksum and text for an applied file (`repair`).
pub async fn update_sum(
    c: &Client,
    t: &Table,
    version: i64,
    sha: &str,
    script: &str,
) -> anyhow::Result<()> {
    c.execute(
        &format!(
            "update {} set sha256 = $2, script = $3 where version = $1",
            t.sql()
        ),
        &[&version, &sha, &script],
    )
    .await?;
    Ok(())
}
