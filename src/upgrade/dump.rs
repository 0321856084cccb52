//! Method `dump`: the new major's own `pg_dumpall --globals-only` and `pg_dump`,
//! run in the new cluster's container against the old server's socket, restored
//! with `pg_restore -j`; then the rows of every table compared between the two, and
//! `ANALYZE`. Safe across C libraries: the new cluster builds its indexes itself.
//!
//! Each database goes through an uncompressed directory-format dump in the new
//! container (parallel dump and restore need one); it is deleted as soon as it is
//! restored. The bootstrap superuser already exists in the new cluster, so its
//! `CREATE ROLE` is the one line left out of the globals; its `ALTER ROLE`
//! (password verifier included) applies, so every role logs in as before.

use crate::config::Settings;
use crate::container::psql::exec_spec;
use crate::engine::{Engine, ExecOutput};
use crate::error::Fail;
use crate::printer::Printer;

use super::check::{Facts, SERVER_PRIVATE_OPTIONS};
use super::workers::{source_name, target_name, OLD_SOCKET_DIR};

/// What was moved.
pub struct Moved {
    pub databases: usize,
    pub tables: usize,
    pub rows: u64,
}

/// psql as `user` into `postgres`, stopping at the first error, script on stdin.
fn psql(user: &str) -> [&str; 9] {
    [
        "psql",
        "--no-psqlrc",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        user,
        "-d",
        "postgres",
    ]
}

const STAGE: &str = "/tmp/pgbox-upgrade";

async fn run(
    engine: &Engine,
    c: &str,
    cmd: &[&str],
    stdin: Option<Vec<u8>>,
) -> anyhow::Result<ExecOutput> {
    let spec = exec_spec(cmd, "postgres");
    let out = match stdin {
        Some(input) => engine.exec_with_stdin(c, &spec, input).await?,
        None => engine.exec_capture(c, &spec).await?,
    };
    if out.code != 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Fail::new(format!(
            "`{}` failed in the new cluster's container (exit {}):\n  {}",
            cmd[0],
            out.code,
            tail.join("\n  ")
        ))
        .into());
    }
    Ok(out)
}

/// The globals script without the `CREATE ROLE` of the bootstrap superuser `user`.
pub fn without_bootstrap_role(globals: &str, user: &str) -> String {
    let plain = format!("CREATE ROLE {user};");
    let quoted = format!("CREATE ROLE \"{}\";", user.replace('"', "\"\""));
    globals
        .lines()
        .filter(|l| *l != plain && *l != quoted)
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The schema script with the old server's private column options left out (a
/// statement left with none is dropped). Bytes, so any server encoding passes.
pub fn without_private_options(script: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(script.len());
    for line in script.split_inclusive(|b| *b == b'\n') {
        match std::str::from_utf8(line)
            .ok()
            .and_then(strip_private_options)
        {
            Some(None) => {}
            Some(Some(kept)) => out.extend_from_slice(kept.as_bytes()),
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// `None`: not such a line; `Some(None)`: drop it; `Some(Some(l))`: `l` instead.
fn strip_private_options(line: &str) -> Option<Option<String>> {
    if !line.starts_with("ALTER ") || !line.contains(" ALTER COLUMN ") {
        return None;
    }
    let open = line.rfind(" SET (")? + " SET (".len();
    let close = open + line[open..].rfind(");")?;
    let private = |o: &&str| {
        SERVER_PRIVATE_OPTIONS
            .iter()
            .any(|p| o.trim().starts_with(&format!("{p}=")))
    };
    let opts: Vec<&str> = line[open..close].split(',').collect();
    if !opts.iter().any(private) {
        return None;
    }
    let kept: Vec<&str> = opts
        .into_iter()
        .filter(|o| !private(o))
        .map(str::trim)
        .collect();
    if kept.is_empty() {
        return Some(None);
    }
    Some(Some(format!(
        "{}{}{}",
        &line[..open],
        kept.join(", "),
        &line[close..]
    )))
}

/// Restore the directory dump `dir` of `db` with `pg_restore -j`, stopping at the
/// first error. When the schema carries the old server's private column options,
/// the schema goes as a script through psql with them left out, then the data and
/// the indexes with `pg_restore -j`.
async fn restore(
    engine: &Engine,
    dst: &str,
    user: &str,
    db: &str,
    dir: &str,
    jobs: &str,
) -> anyhow::Result<()> {
    let mut pre = vec!["pg_restore", "--section=pre-data", "-f", "-"];
    if db != "postgres" {
        pre.push("--create");
    }
    pre.push(dir);
    let schema = run(engine, dst, &pre, None).await?;
    let script = without_private_options(&schema.stdout);
    if script == schema.stdout {
        // Nothing to leave out: pg_restore does it all, so each table is created in
        // this run and its COPY follows a TRUNCATE in one transaction, which the new
        // server (wal_level=minimal while it loads) writes without WAL.
        let mut all = vec![
            "pg_restore",
            "-U",
            user,
            "-j",
            jobs,
            "--exit-on-error",
            "-d",
            "postgres",
        ];
        if db != "postgres" {
            all.push("--create");
        }
        all.push(dir);
        run(engine, dst, &all, None).await?;
        return Ok(());
    }
    run(engine, dst, &psql(user), Some(script)).await?;
    let target = format!("dbname={}", conninfo_quote(db));
    run(
        engine,
        dst,
        &[
            "pg_restore",
            "-U",
            user,
            "-j",
            jobs,
            "--section=data",
            "--section=post-data",
            "-d",
            &target,
            dir,
        ],
        None,
    )
    .await?;
    Ok(())
}

/// A value quoted for a libpq connection string.
fn conninfo_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Move everything from the old server to the new one (see the module docs).
pub async fn transfer(
    engine: &Engine,
    old: &Settings,
    new: &Settings,
    f: &Facts,
    jobs: u32,
    p: &Printer,
) -> anyhow::Result<Moved> {
    let (src, dst) = (source_name(old), target_name(new));
    let user = new.user.as_str();
    let jobs = jobs.max(1).to_string();

    let bar = p.spinner("moving roles and grants (pg_dumpall --globals-only)");
    let globals = run(
        engine,
        &dst,
        &[
            "pg_dumpall",
            "-h",
            OLD_SOCKET_DIR,
            "-U",
            user,
            "--globals-only",
        ],
        None,
    )
    .await;
    let globals = match globals {
        Ok(g) => g,
        Err(e) => {
            bar.finish_and_clear();
            return Err(e);
        }
    };
    let script = without_bootstrap_role(&String::from_utf8_lossy(&globals.stdout), user);
    let applied = run(engine, &dst, &psql(user), Some(script.into_bytes())).await;
    bar.finish_and_clear();
    applied?;
    p.done("moved roles, their passwords and memberships");

    let mut moved = Moved {
        databases: 0,
        tables: 0,
        rows: 0,
    };
    for (i, db) in f.databases.iter().enumerate() {
        let dir = format!("{STAGE}/{i}");
        let bar = p.spinner(format!("dumping `{db}` with the new pg_dump"));
        let mut dump = vec![
            "pg_dump",
            "-h",
            OLD_SOCKET_DIR,
            "-U",
            user,
            "-Fd",
            "-Z0",
            "-j",
            &jobs,
            "-f",
            &dir,
        ];
        if db != "postgres" {
            dump.push("--create");
        }
        dump.push(db);
        let step = async {
            run(engine, &dst, &["mkdir", "-p", STAGE], None).await?;
            run(engine, &dst, &["rm", "-rf", &dir], None).await?;
            run(engine, &dst, &dump, None).await?;
            bar.set_message(format!("restoring `{db}` (pg_restore -j {jobs})"));
            let r = restore(engine, &dst, user, db, &dir, &jobs).await;
            let _ = run(engine, &dst, &["rm", "-rf", &dir], None).await;
            r.map(|_| ())
        }
        .await;
        bar.finish_and_clear();
        step.map_err(|e| e.context(format!("moving database `{db}` failed")))?;

        let bar = p.spinner(format!("comparing the rows of every table in `{db}`"));
        let (before, after) = tokio::join!(
            crate::backup::load::row_counts(engine, &src, old, db),
            crate::backup::load::row_counts(engine, &dst, new, db)
        );
        bar.finish_and_clear();
        let (before, after) = (before?, after?);
        if before != after {
            let diff: Vec<String> = before
                .iter()
                .filter(|(t, n)| after.get(*t) != Some(n))
                .map(|(t, n)| {
                    format!(
                        "`{t}`: {n} rows before, {} after",
                        after.get(t).map_or("none".into(), |a| a.to_string())
                    )
                })
                .chain(
                    after
                        .keys()
                        .filter(|t| !before.contains_key(*t))
                        .map(|t| format!("`{t}` only in the new cluster")),
                )
                .collect();
            return Err(Fail::new(format!(
                "the new cluster's `{db}` does not match the old one: {}",
                diff.join("; ")
            ))
            .hint("the old data is untouched and still in use; report this with `pgbox logs`")
            .into());
        }
        moved.databases += 1;
        moved.tables += before.len();
        moved.rows += before.values().sum::<u64>();
        p.done(format!(
            "moved `{db}`: {} tables, {} rows, every count matching",
            before.len(),
            before.values().sum::<u64>()
        ));
    }

    let bar = p.spinner("ANALYZE in every database");
    let analyzed = run(
        engine,
        &dst,
        &[
            "vacuumdb",
            "-U",
            user,
            "--all",
            "--analyze-only",
            "-q",
            "-j",
            &jobs,
        ],
        None,
    )
    .await;
    bar.finish_and_clear();
    analyzed?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_servers_private_column_options_are_left_out() {
        let script = "CREATE TABLE t (a int);\n\
            ALTER TABLE ONLY public.t ALTER COLUMN a SET (pg_attver=30324416);\n\
            ALTER TABLE ONLY public.t ALTER COLUMN b SET (n_distinct=5, pg_attver=1);\n\
            ALTER TABLE ONLY public.t ALTER COLUMN c SET (n_distinct=-1);\n\
            INSERT INTO x VALUES ('pg_attver=1');\n";
        let out = without_private_options(script.as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CREATE TABLE t (a int);\n\
             ALTER TABLE ONLY public.t ALTER COLUMN b SET (n_distinct=5);\n\
             ALTER TABLE ONLY public.t ALTER COLUMN c SET (n_distinct=-1);\n\
             INSERT INTO x VALUES ('pg_attver=1');\n"
        );
        let latin1 = b"COMMENT ON TABLE t IS 'caf\xe9';\n";
        assert_eq!(without_private_options(latin1), latin1.to_vec());
        assert_eq!(conninfo_quote("it's"), "'it\\'s'");
    }

    #[test]
    fn only_the_bootstrap_role_is_left_out() {
        let g = "SET x = 1;\nCREATE ROLE app;\nALTER ROLE app WITH SUPERUSER PASSWORD 'SCRAM';\nCREATE ROLE reader;\n";
        let out = without_bootstrap_role(g, "app");
        assert_eq!(
            out,
            "SET x = 1;\nALTER ROLE app WITH SUPERUSER PASSWORD 'SCRAM';\nCREATE ROLE reader;\n"
        );
        let q = "CREATE ROLE \"My App\";\nCREATE ROLE app;\n";
        assert_eq!(without_bootstrap_role(q, "My App"), "CREATE ROLE app;\n");
    }
}
