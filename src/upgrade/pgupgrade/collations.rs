//! Collation versions after pg_upgrade: the old binaries and the new ones come from
//! different C libraries and ICU versions, so indexes that depend on a collation
//! whose version changed (or that pg_upgrade cannot track) are rebuilt and the
//! recorded versions refreshed, and the report lists what was done. Nothing is left
//! silently: a rebuild that fails fails the upgrade.

use crate::container::psql::{ident, lit};
use crate::printer::Printer;

use super::Helper;

/// Collations a pg_upgrade cannot vouch for in database `db`: the rebuilt indexes
/// and the refreshed versions, as report lines.
const STALE_SQL: &str = "
with coll as (
  select c.oid, c.collnamespace = 'pg_catalog'::regnamespace as system,
         format('%I.%I', n.nspname, c.collname) as name,
         case when c.collnamespace <> 'pg_catalog'::regnamespace and c.collversion is not null
              then c.collversion is distinct from pg_collation_actual_version(c.oid) end as stale
    from pg_collation c join pg_namespace n on n.oid = c.collnamespace
   where c.oid <> 100
     and (c.collprovider = 'i' or (c.collprovider = 'c' and c.collcollate not in ('C', 'POSIX')
          and c.collcollate not like 'C.%'))
)
select 'collation' || chr(9) || name from coll where stale
union all
select 'index' || chr(9) || i.indexrelid::regclass::text
  from pg_index i join pg_class t on t.oid = i.indrelid
 where t.relnamespace <> 'pg_catalog'::regnamespace
   and (exists (select 1 from unnest(i.indcollation::oid[]) k(coll)
                 where k.coll in (select oid from coll where system or stale)
                    or (k.coll = 100 and $db_stale))
        or ($db_stale and (i.indpred is not null or i.indexprs is not null)))
";

pub async fn collations(h: &Helper<'_>, p: &Printer) -> anyhow::Result<()> {
    let dbs = h
        .sql(
            "postgres",
            "select datname || chr(9) || (datcollversion is distinct from pg_database_collation_actual_version(oid))::text
               || chr(9) || datallowconn::text || chr(9) || coalesce(datcollversion, 'none') || chr(9)
               || coalesce(pg_database_collation_actual_version(oid), 'none')
               from pg_database order by datname",
        )
        .await?;
    let mut done = Vec::new();
    for line in dbs.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 5 {
            anyhow::bail!("unexpected answer about the collation versions: {line}");
        }
        let (db, db_stale, conn) = (f[0], f[1] == "true", f[2] == "true");
        if !conn {
            if db_stale {
                // template0 holds no user index; its recorded version only needs refreshing.
                h.sql(
                    "postgres",
                    &format!("alter database {} refresh collation version", ident(db)),
                )
                .await?;
                done.push(format!(
                    "`{db}`: refreshed its collation version ({} → {})",
                    f[3], f[4]
                ));
            }
            continue;
        }
        let q = STALE_SQL.replace("$db_stale", if db_stale { "true" } else { "false" });
        let found = h.sql(db, &q).await?;
        let mut indexes = Vec::new();
        let mut colls = Vec::new();
        for l in found.lines() {
            match l.split_once('\t') {
                Some(("index", i)) => indexes.push(i.to_string()),
                Some(("collation", c)) => colls.push(c.to_string()),
                _ => {}
            }
        }
        if indexes.is_empty() && colls.is_empty() && !db_stale {
            continue;
        }
        let bar = p.spinner(format!(
            "rebuilding {} indexes in `{db}` that depend on collations",
            indexes.len()
        ));
        let mut sql = String::new();
        for i in &indexes {
            sql.push_str(&format!("reindex index {i};\n"));
        }
        for c in &colls {
            sql.push_str(&format!("alter collation {c} refresh version;\n"));
        }
        if db_stale {
            sql.push_str(&format!(
                "alter database {} refresh collation version;\n",
                ident(db)
            ));
        }
        let r = h.sql(db, &format!("begin;\n{sql}commit;")).await;
        bar.finish_and_clear();
        r.map_err(|e| {
            e.context(format!(
                "rebuilding the collation-dependent indexes of `{db}` failed"
            ))
        })?;
        let mut what = Vec::new();
        if !indexes.is_empty() {
            what.push(format!(
                "rebuilt {} ({})",
                plural(indexes.len(), "index", "indexes"),
                indexes.join(", ")
            ));
        }
        if !colls.is_empty() {
            what.push(format!("refreshed the versions of {}", colls.join(", ")));
        }
        if db_stale {
            what.push(format!(
                "refreshed the database's collation version ({} → {})",
                lit(f[3]),
                lit(f[4])
            ));
        }
        done.push(format!("`{db}`: {}", what.join("; ")));
    }
    if done.is_empty() {
        p.done("collations: nothing to rebuild (no index depends on a collation whose version the new C library or ICU may have changed; C and C.UTF-8 sort the same everywhere)");
    } else {
        for d in done {
            p.done(format!("collations: {d}"));
        }
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
