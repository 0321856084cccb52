//! `pgbox restore --to-* --into-new` and `--discard-new` (issue 13) against a real
//! engine: the recovered cluster runs beside the project's on another port with
//! exactly the rows up to the target, the project keeps running on its own data and
//! timeline, the copy's WAL never reaches the project's archive, one copy at a time,
//! `--discard-new` (and `down --purge`) removes it with its data, volume storage
//! works, and a Ctrl-C during the replay leaves nothing behind.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pitr_restore::{
    batches, enable_pitr, pgbox_dir_entries, spawn_until_replaying, switch_and_archive,
    three_batches, wal_dir,
};
use crate::support::*;

/// A project with `[backup] pitr = true` and `archive_timeout = "10s"`, up; on drop
/// the helper, the copy and any scratch volume go too, even when the test failed.
struct Pitr {
    p: Project,
}

impl Drop for Pitr {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("docker")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        for role in ["pitr", "recovered"] {
            quiet(&["rm", "-f", &format!("{}-{role}", self.p.container())]);
        }
        for v in scratch_volumes(&self.p) {
            quiet(&["volume", "rm", "-f", &v]);
        }
    }
}

fn pitr_project(tag: &str, init: &[&str]) -> Pitr {
    let p = Project::new(tag);
    p.init(init);
    enable_pitr(&p);
    p.up();
    Pitr { p }
}

const BATCHES: &str = "select string_agg(batch::text, ',' order by batch) from t";

/// The project's server: still on its own data, timeline and container.
fn assert_project_untouched(p: &Project) {
    assert_eq!(batches(p), "1,2,3");
    assert_eq!(
        p.sql("select timeline_id from pg_control_checkpoint()"),
        "1"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &p.container()]).trim(),
        "true"
    );
}

/// `sql` on the copy from the host, with the project's password.
fn copy_sql(url: &str, p: &Project, sql: &str) -> String {
    let out = host_psql(url, &p.password(), sql);
    assert!(
        out.status.success(),
        "psql on the copy at {url}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

fn copy_name(p: &Project) -> String {
    format!("{}-recovered", p.container())
}

fn container_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn scratch_volumes(p: &Project) -> Vec<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q"])
        .output()
        .unwrap();
    let prefix = format!("pgbox-{}-data-pitr-", p.name);
    text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(String::from)
        .collect()
}

fn record(p: &Project) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(p.path().join(".pgbox/recovered.json")).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// `restore ... --into-new` succeeded: the URL it printed (the copy's), checked to
/// carry no password, here or on stderr.
fn into_new(p: &Project, args: &[&str]) -> String {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    all.push("--into-new");
    let out = ok(&mut p.cmd(&all));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stdout.contains(&p.password()) && !stderr.contains(&p.password()));
    assert!(
        stderr.contains("--discard-new"),
        "says how to remove it: {stderr}"
    );
    stdout.trim().lines().last().unwrap().to_string()
}

/// WAL files of a timeline after the first (segments or history files).
fn later_timelines(p: &Project) -> Vec<String> {
    file_names(&wal_dir(p))
        .into_iter()
        .filter(|n| !n.starts_with("00000001") || n.contains(".history"))
        .collect()
}

#[test]
fn into_new_serves_the_state_at_a_time_beside_the_untouched_project() {
    let g = pitr_project("intonew", &[]);
    let p = &g.p;
    let (mid, _) = three_batches(p);
    // No confirmation: nothing of the project is replaced (stdin is no terminal).
    let url = into_new(p, &["--to-time", &mid]);
    let r = record(p).expect("recovered.json");
    let port = r["port"].as_u64().unwrap() as u16;
    assert!(
        port > p.port,
        "the first free port after the project's: {r}"
    );
    assert!(url.contains(&format!(":{port}/")), "{url}");
    assert_eq!(r["container"], copy_name(p).as_str());
    assert!(!p.path().join(".pgbox/pitr-restore.json").exists());

    // The copy: exactly the rows up to the target, reached with the project's password.
    assert_eq!(copy_sql(&url, p, BATCHES), "1,2", "recovered to {mid}");
    assert_eq!(copy_sql(&url, p, "select pg_is_in_recovery()"), "f");
    // The project: all its rows, its timeline, its server still running.
    assert_project_untouched(p);

    // status lists the copy, in JSON and in rows.
    let out = run(&mut p.cmd(&["--json", "status"]));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["recovered"]["port"], port, "{j}");
    assert_eq!(j["recovered"]["container"], copy_name(p).as_str());
    assert_eq!(j["container"], p.container().as_str());
    let rows = text(&run(&mut p.cmd(&["status"])).stdout);
    assert!(
        rows.lines()
            .any(|l| l.starts_with("recovered") && l.contains(&port.to_string())),
        "{rows}"
    );

    // Writes and a WAL switch on the copy never reach the project's archive.
    assert!(later_timelines(p).is_empty(), "{:?}", later_timelines(p));
    copy_sql(&url, p, "insert into t values (9)");
    copy_sql(&url, p, "select pg_switch_wal()");
    copy_sql(&url, p, "insert into t values (10)");
    copy_sql(&url, p, "select pg_switch_wal()");
    assert_eq!(copy_sql(&url, p, "show archive_mode"), "off");
    // The project keeps archiving meanwhile (its own switch arrives), the copy's never.
    switch_and_archive(p);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert!(later_timelines(p).is_empty(), "{:?}", later_timelines(p));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_project_untouched(p);
}

#[test]
fn one_copy_at_a_time_and_discard_new_removes_it_with_its_data() {
    let g = pitr_project("intonewx", &[]);
    let p = &g.p;
    three_batches(p);
    let port = free_port();
    let url = into_new(p, &["--to-latest", "--port", &port.to_string()]);
    assert!(url.contains(&format!(":{port}/")), "{url}");
    assert_eq!(copy_sql(&url, p, BATCHES), "1,2,3");
    let folders = pgbox_dir_entries(p, "data-pitr-");
    assert_eq!(folders.len(), 1, "{folders:?}");

    // A second one is refused, pointing at --discard-new; nothing new is made.
    let out = run(&mut p.cmd(&["restore", "--to-latest", "--into-new"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--discard-new"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(pgbox_dir_entries(p, "data-pitr-"), folders);
    assert_eq!(copy_sql(&url, p, BATCHES), "1,2,3");
    assert!(record(p).is_some());

    // Without a terminal the removal wants --yes.
    let out = run(&mut p.cmd(&["restore", "--discard-new"]));
    assert!(!out.status.success());
    assert!(container_exists(&copy_name(p)));

    ok(&mut p.cmd(&["restore", "--discard-new", "--yes"]));
    assert!(
        !container_exists(&copy_name(p)),
        "the copy's container is gone"
    );
    assert!(
        pgbox_dir_entries(p, "data-pitr-").is_empty(),
        "its folder is gone"
    );
    assert!(record(p).is_none(), "its record is gone");
    assert_project_untouched(p);

    // Then a new one works, and `down --purge` removes it with the project.
    let url = into_new(p, &["--to-latest"]);
    assert_eq!(copy_sql(&url, p, BATCHES), "1,2,3");
    ok(&mut p.cmd(&["down", "--purge", "--yes"]));
    assert!(!container_exists(&copy_name(p)));
    assert!(pgbox_dir_entries(p, "data-pitr-").is_empty());
    assert!(record(p).is_none());
}

#[test]
fn into_new_works_with_volume_storage() {
    let g = pitr_project("intonewvol", &["--storage", "volume"]);
    let p = &g.p;
    let (mid, _) = three_batches(p);
    let url = into_new(p, &["--to-time", &mid]);
    assert_eq!(copy_sql(&url, p, BATCHES), "1,2");
    let vols = scratch_volumes(p);
    assert_eq!(vols.len(), 1, "{vols:?}");
    assert_eq!(record(p).unwrap()["location"], vols[0].as_str());
    // The project still runs on its own volume.
    assert_project_untouched(p);
    assert!(
        std::fs::read_to_string(p.path().join("pgbox.toml"))
            .unwrap()
            .lines()
            .all(|l| !l.contains("-pitr-")),
        "pgbox.toml still names the project's volume"
    );

    ok(&mut p.cmd(&["restore", "--discard-new", "--yes"]));
    assert!(scratch_volumes(p).is_empty(), "the scratch volume is gone");
    assert!(!container_exists(&copy_name(p)));
    assert!(record(p).is_none());
    assert_project_untouched(p);
}

#[test]
fn ctrl_c_during_the_replay_of_into_new_leaves_nothing() {
    let g = pitr_project("intonewint", &[]);
    let p = &g.p;
    three_batches(p);
    let helper = format!("{}-pitr", p.container());
    let child = spawn_until_replaying(p, &["restore", "--to-latest", "--into-new"]);
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(!container_exists(&helper), "`{helper}` was removed");
    assert!(!container_exists(&copy_name(p)), "no copy runs");
    assert!(pgbox_dir_entries(p, "data-pitr-").is_empty());
    assert!(record(p).is_none());
    assert!(!p.path().join(".pgbox/pitr-restore.json").exists());
    assert_project_untouched(p);
    // The lock is free and the next one works.
    let url = into_new(p, &["--to-latest"]);
    assert_eq!(copy_sql(&url, p, BATCHES), "1,2,3");
}

#[test]
fn an_into_new_killed_during_the_replay_is_cleaned_by_the_next_restore() {
    let g = pitr_project("intonewkill", &[]);
    let p = &g.p;
    three_batches(p);
    let helper = format!("{}-pitr", p.container());
    let mut child = spawn_until_replaying(p, &["restore", "--to-latest", "--into-new"]);
    // SIGKILL: no guard runs; the restore's record names what it left.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(p.path().join(".pgbox/pitr-restore.json").exists());
    assert_project_untouched(p);
    let url = into_new(p, &["--to-latest"]);
    assert_eq!(copy_sql(&url, p, BATCHES), "1,2,3");
    // Only the new copy's folder is left, and it is recorded as the copy's.
    let folders = pgbox_dir_entries(p, "data-pitr-");
    assert_eq!(folders.len(), 1, "{folders:?}");
    let location = record(p).unwrap()["location"].as_str().unwrap().to_string();
    assert!(location.ends_with(&folders[0]), "{location} {folders:?}");
    assert!(!p.path().join(".pgbox/pitr-restore.json").exists());
    assert!(!container_exists(&helper));
}
