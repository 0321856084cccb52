//! Follow-ups to issue #16 (`pgbox stats`, `top`, `metrics`): the shared host-side
//! PostgreSQL client, top queries out of the box, the metrics service from
//! `pgbox generate`, and a Podman smoke test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::observe::get;
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

/// A background process, killed (by its own pid) when dropped.
struct Bg(std::process::Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// On rootful Podman (its Docker-compatible API): `stats --json` has the
/// container's memory and the top queries, and a `metrics` scrape says `pg_up 1`
/// with the container's memory gauge.
#[test]
fn stats_and_a_metrics_scrape_work_on_podman() {
    let p = Project::on("obs2-podman", Eng::Podman);
    top_queries_out_of_the_box(&p);
    let v = stats_json(&p);
    let mem = v["container"]["mem_used_bytes"].as_u64().unwrap_or(0);
    assert!(mem > 0, "the container's memory from Podman's stats: {v:#}");
    let cpu = v["container"]["cpu_percent"].as_f64();
    assert!(
        cpu.is_some_and(|c| c > 0.0),
        "the container's CPU since start from Podman's stats: {v:#}"
    );
    let port = free_port();
    let _m = Bg(p
        .cmd(&["metrics", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let url = format!("http://127.0.0.1:{port}/metrics");
    let end = Instant::now() + Duration::from_secs(30);
    let body = loop {
        // The container gauge comes from the sampler's first look, shortly after start.
        match get(&url) {
            Some(b) if b.contains("pgbox_container_memory_usage_bytes{") => break b,
            b => assert!(
                Instant::now() < end,
                "no scrape with the container's memory in 30 s: {b:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(body.lines().any(|l| l == "pg_up 1"), "pg_up 1:\n{body}");
    let mem_line = body
        .lines()
        .find(|l| l.starts_with("pgbox_container_memory_usage_bytes{"))
        .unwrap();
    let v: f64 = mem_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(v > 0.0, "{mem_line}");
}

/// `pgbox generate metrics` writes the metrics service (verified by systemd),
/// running this binary on this pgbox.toml with the engine address, and never
/// overwrites an edited unit without `--force`.
#[test]
fn generate_metrics_writes_a_unit_that_verifies_and_is_not_overwritten() {
    let p = Project::new("obs2-gen");
    p.init(&[]);
    let out_dir = p.path().join("units");
    let out_s = out_dir.display().to_string();
    let gen = |force: bool| {
        let mut c = pgbox(p.path());
        c.args([
            "--engine",
            "unix:///var/run/docker.sock",
            "generate",
            "metrics",
            "-o",
            &out_s,
        ]);
        if force {
            c.arg("--force");
        }
        run(&mut c)
    };
    let out = gen(false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let unit = out_dir.join(format!("pgbox-metrics-{}.service", p.name));
    let v = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    assert!(
        v.status.success() && text(&v.stderr).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&v.stderr)
    );
    let body = std::fs::read_to_string(&unit).unwrap();
    let exec = body
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let bin = bin().canonicalize().unwrap().display().to_string();
    let cfg = p.path().join("pgbox.toml").canonicalize().unwrap();
    assert!(exec.starts_with(&format!("{bin} --config ")), "{exec}");
    assert!(exec.contains(&cfg.display().to_string()), "{exec}");
    assert!(
        exec.ends_with("--engine unix:///var/run/docker.sock metrics --listen 127.0.0.1:9187"),
        "{exec}"
    );
    assert_eq!(
        file_names(&out_dir).len(),
        1,
        "only the unit: {:?}",
        file_names(&out_dir)
    );

    // An edited unit is kept without --force, replaced with it.
    std::fs::write(&unit, format!("{body}# mine\n")).unwrap();
    let out = gen(false);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::read_to_string(&unit)
        .unwrap()
        .ends_with("# mine\n"));
    let out = gen(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), body);
}
