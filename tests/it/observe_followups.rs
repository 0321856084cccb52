//! Follow-ups to issue #16 (`pgbox stats`, `top`, `metrics`): the shared host-side
//! PostgreSQL client, top queries out of the box, the metrics service from
//! `pgbox generate`, and a Podman smoke test.

use std::path::Path;

use crate::support::*;

/// `src/observe/` and `src/pooler/` connect through the shared `src/pgclient/`:
/// no module outside `migrate` (its command and its clap enums aside) reaches into
/// `crate::migrate` for the connection or its TLS.
#[test]
fn no_domain_reaches_into_migrate_for_the_client() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if rel.starts_with("migrate/")
                || rel == "commands/migrate.rs"
                || rel.starts_with("cli/")
            {
                continue;
            }
            if path.extension().is_some_and(|x| x == "rs") {
                let body = std::fs::read_to_string(&path).unwrap();
                if body.contains("crate::migrate::") {
                    offenders.push(rel);
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "modules reaching into `crate::migrate`: {offenders:?}"
    );
    assert!(src.join("pgclient/mod.rs").exists());
}

/// `pgbox stats --json` of `p`.
fn stats_json(p: &Project) -> serde_json::Value {
    let out = ok(&mut p.cmd(&["stats", "--json"]));
    serde_json::from_slice(&out.stdout).expect("stats --json prints JSON")
}

/// A fresh project lists its top queries with no `CREATE EXTENSION` by the user:
/// `pgbox up` created `pg_stat_statements` in `postgres`, the project database's
/// schema has no extension, and `stats` reads the view there, filtered to the
/// project database (a query run only in `postgres` is not listed).
fn top_queries_out_of_the_box(p: &Project) {
    p.init(&[]);
    p.up();
    p.assert_major();
    // Heavy enough to rank above pgbox's own statements (extensions, its looks).
    for _ in 0..3 {
        p.sql("select count(*) from generate_series(1, 2000000) as pgbox_marker_here");
    }
    ok(&mut p.cmd(&[
        "psql",
        "-X",
        "-d",
        "postgres",
        "-c",
        "select 1 as pgbox_marker_elsewhere",
    ]));
    assert_eq!(
        p.sql("select count(*) from pg_extension where extname = 'pg_stat_statements'"),
        "0",
        "the project database's schema is left alone"
    );
    let v = stats_json(p);
    let top = v["snapshot"]["top_total"]
        .as_array()
        .unwrap_or_else(|| panic!("top queries are listed: {v:#}"));
    let queries: Vec<&str> = top.iter().filter_map(|s| s["query"].as_str()).collect();
    assert!(
        queries.iter().any(|q| q.contains("pgbox_marker_here")),
        "the project database's query is among the top: {queries:?}"
    );
    assert!(
        !queries.iter().any(|q| q.contains("pgbox_marker_elsewhere")),
        "another database's query is not: {queries:?}"
    );
    let advice = v["advice"].to_string();
    assert!(
        !advice.contains("pg_stat_statements"),
        "no advice to install it: {advice}"
    );
}

#[test]
fn a_fresh_project_lists_top_queries_on_15() {
    top_queries_out_of_the_box(&Project::new("obs2-top15"));
}

#[test]
fn a_fresh_project_lists_top_queries_on_17() {
    top_queries_out_of_the_box(&Project::with_major("obs2-top17", Eng::Docker, Some(17)));
}
