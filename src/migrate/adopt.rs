//! `migrate adopt --from dbmate|sqlx|golang-migrate`: import another tool's history
//! table into the version table, so `up` continues where that tool stopped.
//!
//! Each imported version must have its file in the folder, in pgbox's format
//! (dbmate's and sqlx's plain `<version>_<name>.sql` files are; golang-migrate's
//! and sqlx's `.up.sql`/`.down.sql` pairs must be merged into one file with a
//! `-- migrate:down` section first). The checksum recorded is the current file's:
//! the other tools' checksums (sqlx's SHA-384 of the file) are of no use to pgbox.
//! The other tool's table is left as it was.

use super::conn;
use super::files::Migration;
use super::table::{self, NewRow};
use super::Env;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    Dbmate,
    Sqlx,
    GolangMigrate,
}

impl Source {
    fn default_table(self) -> &'static str {
        match self {
            Source::Dbmate | Source::GolangMigrate => "schema_migrations",
            Source::Sqlx => "_sqlx_migrations",
        }
    }
}

/// Import the history; returns the number of versions recorded.
pub async fn adopt(
    env: &Env,
    from: Source,
    source_table: Option<&str>,
    p: &Printer,
) -> anyhow::Result<usize> {
    let files = env.load()?;
    let _lock = conn::lock(&env.target, &env.table.display(), p).await?;
    let c = env.target.connect().await?;
    let src = super::table::Table::parse(source_table.unwrap_or(from.default_table()));
    if !table::exists(&c, &src).await? {
        return Err(Fail::new(format!(
            "there is no table `{}` in `{}`",
            src.display(),
            env.target.describe()
        ))
        .hint("name the history table with `--table schema.table`")
        .code(EXIT_USAGE)
        .into());
    }
    let q = |sql: &str| sql.replace("{t}", &src.sql());
    let history: Vec<(i64, Option<String>)> = match from {
        Source::Dbmate => c
            .query(&q("select version::text from {t}"), &[])
            .await?
            .iter()
            .map(|r| (r.get::<_, String>(0).trim().parse().unwrap_or(-1), None))
            .collect(),
        Source::Sqlx => c
            .query(
                &q("select version, to_char(installed_on at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from {t} where success"),
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
        Source::GolangMigrate => {
            let rows = c.query(&q("select version, dirty from {t}"), &[]).await?;
            let Some(r) = rows.first() else {
                return Ok(0);
            };
            let (top, dirty): (i64, bool) = (r.get(0), r.get(1));
            if dirty {
                return Err(Fail::new(format!(
                    "golang-migrate marks version {top} dirty: it failed halfway and the database state is unknown"
                ))
                .hint("repair the database by hand and `migrate force` it with golang-migrate first")
                .into());
            }
            files.iter().filter(|m| m.version <= top).map(|m| (m.version, None)).collect()
        }
    };
    let missing: Vec<String> = history
        .iter()
        .filter(|(v, _)| !files.iter().any(|m| m.version == *v))
        .map(|(v, _)| v.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Fail::new(format!(
            "{} version(s) of the {} history have no file in `{}`: {}; nothing was imported",
            missing.len(),
            src.display(),
            env.dir.display(),
            missing.join(", ")
        ))
        .hint("pgbox reads `<version>_<name>.sql` files; merge `.up.sql`/`.down.sql` pairs into one file with a `-- migrate:down` section")
        .into());
    }
    table::ensure(&c, &env.table).await?;
    let known = table::read(&c, &env.table).await?;
    c.batch_execute("begin").await?;
    let mut n = 0;
    for (v, at) in &history {
        if known.iter().any(|a| a.version == *v) {
            continue;
        }
        let m: &Migration = files
            .iter()
            .find(|m| m.version == *v)
            .expect("checked above");
        table::insert(
            &c,
            &env.table,
            &NewRow {
                version: m.version,
                name: &m.name,
                sha256: &m.sha256,
                duration_ms: 0,
                no_transaction: m.no_transaction,
                script: &m.text,
                applied_at: at.as_deref(),
            },
        )
        .await?;
        n += 1;
    }
    c.batch_execute("commit").await?;
    p.done(format!(
        "imported {n} version(s) from {} `{}` into `{}` ({} already there)",
        match from {
            Source::Dbmate => "dbmate",
            Source::Sqlx => "sqlx",
            Source::GolangMigrate => "golang-migrate",
        },
        src.display(),
        env.table.display(),
        history.len() - n
    ));
    Ok(n)
}
