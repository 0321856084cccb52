//! The container side against a real engine: modular entrypoint, storage modes,
//! fallback tarball persistence, maintenance mode, dry runs, shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// Poll `pgbox status` until PostgreSQL answers (after a plain `docker start`).
fn wait_ready(p: &Project) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if run(&mut p.cmd(&["status", "-q"])).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{} did not become ready", p.name);
}

fn tarball(p: &Project) -> std::path::PathBuf {
    p.path().join(".pgbox/data/pgsql.tar.zst")
}

fn logs(p: &Project) -> String {
    text(&ok(&mut p.cmd(&["logs", "-n", "all"])).stdout)
}

#[test]
fn fallback_mode_persists_across_down_stop_and_recreation() {
    fallback_lifecycle(Eng::Docker);
}

#[test]
fn fallback_mode_persists_across_down_stop_and_recreation_on_podman() {
    fallback_lifecycle(Eng::Podman);
}

fn fallback_lifecycle(eng: Eng) {
    let p = Project::on(&format!("fb-{}", eng.cli()), eng);
    p.init(&["--storage", "fallback"]);
    p.up();
    assert!(logs(&p).contains("⚠️ UID mismatch"), "{}", logs(&p));
    assert!(
        logs(&p).contains("Using isolated fallback database instance at /tmp/pgdata-ephemeral-")
    );
    p.sql("create table f(x int)");
    p.sql("insert into f values (1)");

    // pgbox down saves the cluster.
    ok(&mut p.cmd(&["down"]));
    assert!(tarball(&p).is_file(), "down writes pgsql.tar.zst");
    p.up();
    assert_eq!(
        p.sql("select string_agg(x::text, ',' order by x) from f"),
        "1"
    );

    // A plain docker stop saves too, and keeps the previous tarball as .prev.
    p.sql("insert into f values (2)");
    p.cli(&["stop", &p.container()]);
    assert!(p.path().join(".pgbox/data/pgsql.tar.zst.prev").is_file());
    p.cli(&["start", &p.container()]);
    wait_ready(&p);
    assert_eq!(
        p.sql("select string_agg(x::text, ',' order by x) from f"),
        "1,2"
    );

    // A new container restores from the tarball.
    p.sql("insert into f values (3)");
    ok(&mut p.cmd(&["down", "--rm"]));
    p.up();
    assert_eq!(
        p.sql("select string_agg(x::text, ',' order by x) from f"),
        "1,2,3"
    );
    assert!(logs(&p).contains("restored PGDATA from /var/lib/postgresql/data/pgsql.tar.zst"));

    // The tarball unpacks by hand, as the README says.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -tf - | grep -x './PG_VERSION'",
            tarball(&p).display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "zstd -dc | tar lists PG_VERSION");
    let st = ok(&mut p.cmd(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["storage"]["mode"], "fallback");
}

#[test]
fn fallback_kill_keeps_the_writes_made_after_the_last_save() {
    let p = Project::new("kill");
    p.init(&["--storage", "fallback"]);
    p.up();
    p.sql("create table k(x int)");
    p.sql("insert into k values (1)");
    let save = ok(&mut p.cmd(&["save"]));
    assert!(
        text(&save.stderr).contains("saved"),
        "{}",
        text(&save.stderr)
    );
    p.sql("insert into k values (2)");
    docker(&["kill", &p.container()]);
    // After SIGKILL nothing was saved, but the container's own PGDATA survived: the
    // next start recovers it (issue #10: it used to restore the older live save).
    let _ = run(&mut p.cmd(&["up"]));
    wait_ready(&p);
    assert_eq!(
        p.sql("select string_agg(x::text, ',' order by x) from k"),
        "1,2"
    );
}

#[test]
fn damaged_tarball_refuses_to_start_and_is_left_untouched() {
    let p = Project::new("trunc");
    p.init(&["--storage", "fallback"]);
    p.up();
    p.sql("create table d(x int)");
    ok(&mut p.cmd(&["down"]));
    p.up();
    ok(&mut p.cmd(&["down", "--rm"]));
    let main = tarball(&p);
    let prev = p.path().join(".pgbox/data/pgsql.tar.zst.prev");
    let bytes = std::fs::read(&main).unwrap();
    std::fs::write(&main, &bytes[..bytes.len() / 2]).unwrap();
    let truncated = std::fs::read(&main).unwrap();
    let prev_bytes = std::fs::read(&prev).unwrap();

    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("is corrupt or truncated"), "{err}");
    assert!(
        err.contains("refusing to start from a damaged tarball"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&main).unwrap(),
        truncated,
        "pgsql.tar.zst untouched"
    );
    assert_eq!(
        std::fs::read(&prev).unwrap(),
        prev_bytes,
        "pgsql.tar.zst.prev untouched"
    );
    let l = logs(&p);
    assert!(
        !l.contains("state=INITIALIZING"),
        "never initialises over the user's data:\n{l}"
    );
    let st = docker(&["inspect", "-f", "{{.State.Running}}", &p.container()]);
    assert_eq!(
        st.trim(),
        "false",
        "a failed start does not loop under the restart policy"
    );
}

#[test]
fn maintenance_mode_stops_postgres_and_keeps_the_container() {
    let p = Project::new("maint");
    p.init(&[]);
    p.up();
    p.sql("create table m(x int)");
    ok(&mut p.cmd(&["maintenance", "on"]));
    let out = run(&mut p.cmd(&["status", "--json"]));
    assert_eq!(out.status.code(), Some(4), "not healthy in maintenance");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["running"], true);
    assert_eq!(v["entrypoint_state"], "MAINTENANCE");
    let out = run(&mut p.cmd(&["psql", "-c", "select 1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("hint: run `pgbox maintenance off`"),
        "{}",
        text(&out.stderr)
    );
    ok(&mut p.cmd(&["maintenance", "off"]));
    assert_eq!(p.sql("select count(*) from m"), "0");
}

#[test]
fn dry_run_validates_and_changes_nothing() {
    let p = Project::new("dry");
    p.init(&[]);
    let data = p.path().join(".pgbox/data");
    let out = ok(&mut p.cmd(&["up", "--dry-run"]));
    let err = text(&out.stderr);
    assert!(err.contains("DRY_RUN=1: validating only"), "{err}");
    assert!(
        err.contains("dry run: 02-database validated, nothing changed"),
        "{err}"
    );
    assert!(err.contains("dry run passed"), "{err}");
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "no cluster was created"
    );
    assert!(
        run(Command::new("docker").args(["inspect", &p.container()]))
            .status
            .code()
            != Some(0)
    );
    // A bad setting is caught by the dry run.
    let out = run(p.cmd(&["up", "--dry-run"]).env("PGBOX_PORT", "1"));
    assert!(out.status.success(), "port is a host-side setting");
}

#[test]
fn graceful_shutdown_is_logged_with_its_duration() {
    let p = Project::new("stop");
    p.init(&[]);
    p.up();
    let out = ok(&mut p.cmd(&["down"]));
    assert!(
        text(&out.stderr).contains("stopped `"),
        "{}",
        text(&out.stderr)
    );
    let l = logs(&p);
    for needle in [
        "state=STOPPING",
        "PostgreSQL stopped in ",
        "shutdown complete in ",
        "state=STOPPED",
    ] {
        assert!(l.contains(needle), "missing {needle:?} in\n{l}");
    }
    assert!(
        !l.contains("switching to immediate shutdown"),
        "fast shutdown suffices for an idle server"
    );
    // The engine's stop timeout exceeds the entrypoint's 30 s bound.
    let t = docker(&["inspect", "-f", "{{.Config.StopTimeout}}", &p.container()]);
    assert!(t.trim().parse::<u64>().unwrap() > 35, "stop timeout {t}");
}

#[test]
fn fallback_save_interval_bounds_what_a_crash_loses() {
    let p = Project::new("ival");
    p.init(&["--storage", "fallback"]);
    let path = p.path().join("pgbox.toml");
    let t = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        t.replace("# save_interval = \"15m\"", "save_interval = \"1s\""),
    )
    .unwrap();
    p.up();
    assert!(logs(&p).contains("saving a live copy every 1s"));
    p.sql("create table i(x int)");
    p.sql("insert into i values (7)");
    // Wait until a periodic save has started and finished after the insert, then crash.
    let saves = || logs(&p).matches("saved a live copy").count();
    let after_insert = saves();
    let deadline = Instant::now() + Duration::from_secs(30);
    while saves() < after_insert + 2 {
        assert!(
            Instant::now() < deadline,
            "no periodic save within 30s:\n{}",
            logs(&p)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    docker(&["kill", &p.container()]);
    let _ = run(&mut p.cmd(&["up"]));
    wait_ready(&p);
    assert_eq!(p.sql("select x from i"), "7");
}

#[test]
fn volume_mode_keeps_the_volume_until_purge() {
    let p = Project::new("vol");
    p.init(&["--storage", "volume"]);
    p.up();
    p.sql("create table v(x int)");
    p.sql("insert into v values (5)");
    ok(&mut p.cmd(&["down", "--rm"]));
    let volume = format!("pgbox-{}-data", p.name);
    docker(&["volume", "inspect", &volume]);
    p.up();
    assert_eq!(p.sql("select x from v"), "5");
    ok(&mut p.cmd(&["down", "--purge", "--yes"]));
    let gone = run(Command::new("docker").args(["volume", "inspect", &volume]));
    assert!(!gone.status.success(), "purge removes the volume");
}

#[test]
fn dry_run_with_verbose_shows_debug_lines() {
    let p = Project::new("dbg");
    p.init(&[]);
    let out = ok(&mut p.cmd(&["up", "--dry-run", "-v"]));
    assert!(
        text(&out.stderr).contains("DEBUG 01-directories: validating"),
        "{}",
        text(&out.stderr)
    );
}
