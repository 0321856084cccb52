//! PostgreSQL 15, 17 and 18 (issue #12, part 1): the major chosen at `init` or in
//! pgbox.toml runs on its known base, an unknown one is a clear error, `status` and
//! `ls` show the exact version, PG18's initdb default (data checksums) and data
//! layout hold, and generated files follow the major.
//!
//! The lifecycle, backup round trip and one fallback safety test run on 17 and 18
//! here (15 is pgbox's default and runs in their own files), on Docker only: Podman
//! stays on 15 to keep CI's time in check. Each major's image is built once
//! (`support::require_major`), whatever runs in parallel.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

#[test]
fn data_survives_restart_and_container_recreation_on_17() {
    crate::e2e::lifecycle(Eng::Docker, Some(17));
}

#[test]
fn data_survives_restart_and_container_recreation_on_18() {
    crate::e2e::lifecycle(Eng::Docker, Some(18));
}

#[test]
fn tricky_data_round_trips_in_every_format_on_17() {
    crate::backup::round_trip(Eng::Docker, Some(17));
}

#[test]
fn tricky_data_round_trips_in_every_format_on_18() {
    crate::backup::round_trip(Eng::Docker, Some(18));
}

#[test]
fn a_crash_or_kill_keeps_every_committed_row_on_17() {
    crate::fallback_safety::crash_or_kill(Some(17));
}

#[test]
fn a_crash_or_kill_keeps_every_committed_row_on_18() {
    crate::fallback_safety::crash_or_kill(Some(18));
}

/// The hint of an unknown major names every major that works and `base_image`.
fn assert_unknown_major(out: &std::process::Output, major: u32) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "error: pgbox knows no base image that ships PostgreSQL {major}"
        )),
        "{err}"
    );
    for want in [
        "15 (`debian:bookworm-slim`), 17 (`debian:trixie-slim`) and 18 (`debian:forky-slim`)",
        "base_image",
        &format!("postgres:{major}"),
    ] {
        assert!(err.contains(want), "the hint names {want}: {err}");
    }
}

#[test]
fn an_unknown_major_is_a_clear_error_that_lists_the_known_ones() {
    // At init: nothing is written.
    let d = tempfile::tempdir().unwrap();
    let out = run(pgbox(d.path()).args(["init", "--yes", "--pg-version", "16"]));
    assert_unknown_major(&out, 16);
    assert!(text(&out.stderr).contains("--base-image"));
    assert_eq!(
        file_names(d.path()),
        Vec::<String>::new(),
        "nothing written"
    );

    // In pgbox.toml: every command that loads the settings says the same.
    std::fs::write(
        d.path().join("pgbox.toml"),
        "[project]\nname = \"old\"\n[postgres]\nversion = 14\n",
    )
    .unwrap();
    for cmd in [&["url"][..], &["status"], &["up"]] {
        let out = run(pgbox(d.path()).args(cmd));
        assert_unknown_major(&out, 14);
        assert!(
            text(&out.stderr).contains(&format!(
                "`version` under `[postgres]` in `{}`",
                d.path().join("pgbox.toml").display()
            )),
            "{}",
            text(&out.stderr)
        );
    }

    // With a base image named, any major is the user's choice, and it is written.
    let d = tempfile::tempdir().unwrap();
    ok(pgbox(d.path()).args([
        "init",
        "--yes",
        "--name",
        "sixteen",
        "--pg-version",
        "16",
        "--base-image",
        "postgres:16",
        "--engine",
        "unix:///nonexistent/pgbox-test.sock",
    ]));
    let toml = std::fs::read_to_string(d.path().join("pgbox.toml")).unwrap();
    assert!(toml.contains("\nversion = 16\n"), "{toml}");
    assert!(toml.contains("\nbase_image = \"postgres:16\"\n"), "{toml}");
}

/// The lines of pgbox.toml that set `key` (not the commented ones).
fn set_lines(toml: &str, key: &str) -> Vec<String> {
    toml.lines()
        .filter(|l| l.trim_start().starts_with(&format!("{key} ")))
        .map(String::from)
        .collect()
}

fn status_json(p: &Project) -> serde_json::Value {
    let out = run(&mut p.cmd(&["status", "--json"]));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn ls_row(p: &Project) -> serde_json::Value {
    let out = ok(&mut p.cmd(&["ls", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .find(|r| r["project"] == p.name.as_str())
        .expect("project listed")
}

#[test]
fn init_for_18_pins_no_base_and_status_and_ls_show_the_exact_version() {
    let p = Project::with_major("pg18", Eng::Docker, Some(18));
    p.init(&[]);
    let toml = std::fs::read_to_string(p.path().join("pgbox.toml")).unwrap();
    assert_eq!(set_lines(&toml, "version"), ["version = 18"], "{toml}");
    assert!(
        set_lines(&toml, "base_image").is_empty(),
        "no base image is pinned, so 18's own base applies:\n{toml}"
    );
    assert!(toml.contains("# base_image = \"postgres:18\""), "{toml}");

    p.up();
    let version = p.sql("show server_version");
    assert!(version.starts_with("18."), "{version}");
    let exact = version.split_whitespace().next().unwrap();
    // PG18's initdb turns data checksums on by default.
    assert_eq!(p.sql("show data_checksums"), "on");

    let st = status_json(&p);
    assert_eq!(st["pg_major"], 18, "{st}");
    assert_eq!(st["server_version"], exact, "{st}");
    let rows = text(&ok(&mut p.cmd(&["status"])).stdout);
    assert!(
        rows.contains(&format!("postgres   PostgreSQL {exact}\n")),
        "{rows}"
    );
    let row = ls_row(&p);
    assert_eq!(row["pg_major"], 18, "{row}");
    assert_eq!(row["server_version"], exact, "{row}");

    // Stopped: the configured major, no version.
    ok(&mut p.cmd(&["down"]));
    let st = status_json(&p);
    assert_eq!(st["pg_major"], 18, "{st}");
    assert!(st["server_version"].is_null(), "{st}");
    let rows = text(&run(&mut p.cmd(&["status"])).stdout);
    assert!(
        rows.contains("postgres   PostgreSQL 18 (not running)\n"),
        "{rows}"
    );
    let row = ls_row(&p);
    assert_eq!(row["pg_major"], 18, "{row}");
    assert!(row["server_version"].is_null(), "{row}");
}

#[test]
fn fresh_15_and_17_clusters_have_no_data_checksums() {
    // initdb's own default before 18 (pgbox passes nothing that changes it).
    for major in [15, 17] {
        let p = Project::with_major(&format!("sum{major}"), Eng::Docker, Some(major));
        p.init(&[]);
        p.up();
        p.assert_major();
        assert_eq!(p.sql("show data_checksums"), "off", "PostgreSQL {major}");
    }
}

fn generate_compose(dir: &Path, major: u32) -> (String, String) {
    std::fs::write(
        dir.join("pgbox.toml"),
        format!("[project]\nname = \"gen\"\n[postgres]\nversion = {major}\n"),
    )
    .unwrap();
    let out = ok(pgbox(dir).args(["generate", "compose", "--force"]));
    let out_dir = std::path::PathBuf::from(text(&out.stdout).trim());
    let read = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap();
    (read("compose.yaml"), read("image/Containerfile"))
}

#[test]
fn generated_files_follow_the_major() {
    let d = tempfile::tempdir().unwrap();
    let (compose, containerfile) = generate_compose(d.path(), 17);
    assert!(compose.contains("# PostgreSQL 17 for `gen`"), "{compose}");
    // The image's tag names the major, so a change of major builds a new image
    // instead of running the old one on the new data.
    assert!(
        compose.contains("image: \"localhost/pgbox-gen:pg17-dev\""),
        "{compose}"
    );
    assert!(
        containerfile.contains("\nFROM debian:trixie-slim\n"),
        "{containerfile}"
    );
    assert!(
        containerfile.contains("ENV PG_MAJOR=17 "),
        "{containerfile}"
    );

    let (compose, containerfile) = generate_compose(d.path(), 18);
    assert!(
        compose.contains("image: \"localhost/pgbox-gen:pg18-dev\""),
        "{compose}"
    );
    assert!(
        containerfile.contains("\nFROM debian:forky-slim\n"),
        "{containerfile}"
    );
}

/// A local stand-in for the official `postgres:18` image (no registry here): its
/// data layout (PGDATA=/var/lib/postgresql/18/docker, VOLUME /var/lib/postgresql)
/// on the offline forky base, with Debian's postgresql-18. Built once; the engine's
/// build cache makes later runs instant.
const POSTGRES_18_SHAPED: &str = "pgbox-test/postgres-shaped:18";

fn build_postgres_18_shaped() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dockerfile = r#"FROM debian:forky-slim
RUN set -eux; groupadd -r postgres --gid=999; \
    useradd -r -g postgres --uid=999 --home-dir=/var/lib/postgresql --shell=/bin/bash postgres; \
    install --directory --owner postgres --group postgres --mode 1777 /var/lib/postgresql
ENV PG_MAJOR=18
ENV PATH=$PATH:/usr/lib/postgresql/18/bin
RUN set -eux; apt-get update; apt-get install -y --no-install-recommends postgresql-common zstd; \
    sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf; \
    apt-get install -y --no-install-recommends postgresql-18; rm -rf /var/lib/apt/lists/*
RUN install --directory --owner postgres --group postgres --mode 3777 /var/run/postgresql
ENV PGDATA=/var/lib/postgresql/18/docker
VOLUME /var/lib/postgresql
"#;
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", POSTGRES_18_SHAPED, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker build");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dockerfile.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "building {POSTGRES_18_SHAPED} (needs debian:forky-slim from scripts/ensure-engine.sh): {}",
            text(&out.stderr)
        );
    });
}

/// The name of the anonymous volume the base's VOLUME gave the container.
fn anonymous_volume(p: &Project) -> String {
    docker(&[
        "inspect",
        "-f",
        r#"{{range .Mounts}}{{if eq .Destination "/var/lib/postgresql"}}{{.Name}}{{end}}{{end}}"#,
        &p.container(),
    ])
    .trim()
    .to_string()
}

#[test]
fn an_official_postgres_18_layout_keeps_pgdata_on_the_mount_and_leaves_no_volume() {
    let p = Project::new("pg18shape");
    build_postgres_18_shaped();
    p.init(&[
        "--pg-version",
        "18",
        "--base-image",
        POSTGRES_18_SHAPED,
        "--storage",
        "direct",
    ]);
    p.up();
    // PGDATA is pgbox's mount, not the base's /var/lib/postgresql/18/docker.
    assert_eq!(p.sql("show data_directory"), "/var/lib/postgresql/data");
    assert_eq!(
        std::fs::read_to_string(p.path().join(".pgbox/data/PG_VERSION"))
            .unwrap()
            .trim(),
        "18"
    );
    assert_eq!(p.sql("show data_checksums"), "on");
    p.sql("create table kept(x int); insert into kept values (18)");

    // The base's VOLUME gives the container an anonymous volume; it goes with it.
    let anon = anonymous_volume(&p);
    assert!(
        !anon.is_empty(),
        "the base declares VOLUME /var/lib/postgresql"
    );
    ok(&mut p.cmd(&["down", "--rm"]));
    let left = run(Command::new("docker").args(["volume", "inspect", &anon]));
    if left.status.success() {
        let _ = Command::new("docker")
            .args(["volume", "rm", &anon])
            .output();
        panic!("`down --rm` left the container's anonymous volume `{anon}` behind");
    }
    p.up();
    assert_eq!(p.sql("select x from kept"), "18");
    let anon = anonymous_volume(&p);
    ok(&mut p.cmd(&["down", "--purge", "--yes"]));
    assert!(
        !run(Command::new("docker").args(["volume", "inspect", &anon]))
            .status
            .success(),
        "`down --purge` left `{anon}` behind"
    );
}
