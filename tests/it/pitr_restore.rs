//! Point-in-time restore (issue 13, `pgbox restore --to-time | --to-latest`)
//! against a real engine: rows committed at t1, t2 and t3 with a WAL switch after
//! each; a restore to a moment between t2 and t3 has exactly the rows up to t2,
//! `--to-latest` has them all, and a target before the base backup is refused with
//! the recoverable range before anything changes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A project with `[backup] pitr = true` and `archive_timeout = "10s"`, up, with
/// the helper container of a failed restore removed on drop.
pub(crate) struct Pitr {
    pub(crate) p: Project,
}

impl Drop for Pitr {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &format!("{}-pitr", self.p.container())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub(crate) fn pitr_project(tag: &str) -> Pitr {
    pitr_project_with(tag, &[])
}

/// [`pitr_project`] with more `init` flags.
pub(crate) fn pitr_project_with(tag: &str, init: &[&str]) -> Pitr {
    let p = Project::new(tag);
    p.init(init);
    enable_pitr(&p);
    p.up();
    Pitr { p }
}

/// `[backup] pitr = true` and `archive_timeout = "10s"` in the project's pgbox.toml.
pub(crate) fn enable_pitr(p: &Project) {
    let path = p.path().join("pgbox.toml");
    let toml = std::fs::read_to_string(&path).unwrap().replacen(
        "[backup]\n",
        "[backup]\npitr = true\narchive_timeout = \"10s\"\n",
        1,
    );
    std::fs::write(&path, toml).unwrap();
}

/// Whether the container `name` runs.
pub(crate) fn runs(name: &str) -> bool {
    Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", name])
        .output()
        .map(|o| text(&o.stdout).trim() == "true")
        .unwrap_or(false)
}

/// `pgbox ARGS` spawned (output piped), returned once the recovery's helper
/// container `<container>-pitr` runs: the replay has started.
pub(crate) fn spawn_until_replaying(p: &Project, args: &[&str]) -> std::process::Child {
    let helper = format!("{}-pitr", p.container());
    let mut child = p
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !runs(&helper) {
        assert!(Instant::now() < deadline, "the recovery never started");
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("{args:?} ended first ({status}): {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

pub(crate) fn wal_dir(p: &Project) -> PathBuf {
    p.path().join("backups").join("wal")
}

/// Switch to a new WAL segment and wait until the finished one is archived.
pub(crate) fn switch_and_archive(p: &Project) {
    let seg = p.sql("select pg_walfile_name(pg_switch_wal())");
    let file = wal_dir(p).join(format!("{seg}.zst"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() {
        assert!(Instant::now() < deadline, "{seg} was never archived");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's clock now, in UTC, as `--to-time` takes it.
pub(crate) fn server_now(p: &Project) -> String {
    p.sql("select to_char(clock_timestamp() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US')")
}

pub(crate) fn sleep1() {
    std::thread::sleep(Duration::from_secs(1));
}

/// A base backup, then batches 1, 2, 3 in separate commits, each followed by a WAL
/// switch; returns a server time, and the WAL position, between the commits of
/// batches 2 and 3.
pub(crate) fn three_batches(p: &Project) -> (String, String) {
    p.sql("create table t (batch int not null)");
    ok(&mut p.cmd(&["backup", "--base"]));
    sleep1();
    p.sql("insert into t values (1)");
    switch_and_archive(p);
    sleep1();
    p.sql("insert into t values (2)");
    switch_and_archive(p);
    sleep1();
    let mid = server_now(p);
    let lsn = p.sql("select pg_current_wal_lsn()");
    sleep1();
    p.sql("insert into t values (3)");
    switch_and_archive(p);
    (mid, lsn)
}

pub(crate) fn batches(p: &Project) -> String {
    p.sql("select string_agg(batch::text, ',' order by batch) from t")
}

pub(crate) fn pgbox_dir_entries(p: &Project, prefix: &str) -> Vec<String> {
    file_names(&p.path().join(".pgbox"))
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn restore_to_a_time_between_two_commits_has_exactly_the_rows_before_it() {
    let g = pitr_project("pitrtime");
    let p = &g.p;
    let (mid, _) = three_batches(p);
    assert_eq!(batches(p), "1,2,3");

    // Before the base backup: refused with the range, nothing changed.
    let out = run(&mut p.cmd(&["restore", "--to-time", "2000-01-01 00:00:00", "--yes"]));
    assert!(!out.status.success(), "a target before the base backup");
    let err = text(&out.stderr);
    assert!(err.contains("can be recovered from"), "{err}");
    assert!(err.contains("2000-01-01 00:00:00 UTC"), "{err}");
    assert_eq!(batches(p), "1,2,3");
    assert!(pgbox_dir_entries(p, "data-pitr-").is_empty());
    assert!(pgbox_dir_entries(p, "data-before-pitr-").is_empty());

    let out = ok(&mut p.cmd(&["restore", "--to-time", &mid, "--yes"]));
    let err = text(&out.stderr);
    assert_eq!(batches(p), "1,2", "restored to {mid}: {err}");
    let aside = pgbox_dir_entries(p, "data-before-pitr-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(err.contains(&aside[0]), "the kept folder is named: {err}");
    assert!(pgbox_dir_entries(p, "data-pitr-").is_empty());
    // A normal server again: out of recovery, archiving, no recovery settings left.
    assert_eq!(p.sql("select pg_is_in_recovery()"), "f");
    assert_eq!(p.sql("show archive_mode"), "on");
    assert_eq!(
        p.sql("select count(*) from pg_file_settings where name like 'recovery_target%' or name = 'restore_command'"),
        "0"
    );
    // It takes writes, and the new timeline's history reaches the archive.
    p.sql("insert into t values (4)");
    let tli = p.sql("select timeline_id from pg_control_checkpoint()");
    assert_ne!(tli, "1", "a new timeline after the recovery");
    let history = wal_dir(p).join(format!("{:08X}.history.zst", tli.parse::<u32>().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !history.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was never archived",
            history.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn restore_to_latest_has_every_row() {
    let g = pitr_project("pitrlatest");
    let p = &g.p;
    three_batches(p);
    assert_eq!(
        p.sql("select timeline_id from pg_control_checkpoint()"),
        "1"
    );
    ok(&mut p.cmd(&["restore", "--to-latest", "--yes"]));
    assert_eq!(batches(p), "1,2,3");
    assert_eq!(p.sql("select pg_is_in_recovery()"), "f");
    // The recovered cluster, not the old one: a new timeline, the old data aside.
    assert_ne!(
        p.sql("select timeline_id from pg_control_checkpoint()"),
        "1"
    );
    assert_eq!(pgbox_dir_entries(p, "data-before-pitr-").len(), 1);
}

#[test]
fn restore_to_an_lsn_between_two_commits_has_exactly_the_rows_before_it() {
    let g = pitr_project("pitrlsn");
    let p = &g.p;
    let (_, lsn) = three_batches(p);
    ok(&mut p.cmd(&["restore", "--to-lsn", &lsn, "--yes"]));
    assert_eq!(batches(p), "1,2", "restored to {lsn}");
}

#[test]
fn an_interrupted_restore_leaves_the_current_cluster_untouched() {
    let g = pitr_project("pitrint");
    let p = &g.p;
    three_batches(p);
    let helper = format!("{}-pitr", p.container());
    let child = spawn_until_replaying(p, &["restore", "--to-latest", "--yes"]);
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(pgbox_dir_entries(p, "data-pitr-").is_empty());
    assert!(pgbox_dir_entries(p, "data-before-pitr-").is_empty());
    assert!(!runs(&helper), "the helper container is gone");
    let gone = Command::new("docker")
        .args(["inspect", &helper])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!gone.success(), "`{helper}` was removed");
    // The project's own server ran throughout, on its own data.
    assert_eq!(batches(p), "1,2,3");
    assert_eq!(
        p.sql("select timeline_id from pg_control_checkpoint()"),
        "1"
    );
    // The lock is free and the next one works.
    ok(&mut p.cmd(&["restore", "--to-latest", "--yes"]));
    assert_eq!(batches(p), "1,2,3");
}

#[test]
fn restore_to_a_time_after_the_last_commit_has_every_row() {
    let g = pitr_project("pitrtail");
    let p = &g.p;
    three_batches(p);
    sleep1();
    let after = server_now(p);
    sleep1();
    // WAL without a commit after the target: the archive reaches past it, but no
    // commit record there tells recovery that the target was passed.
    p.sql("checkpoint");
    switch_and_archive(p);
    ok(&mut p.cmd(&["restore", "--to-time", &after, "--yes"]));
    assert_eq!(batches(p), "1,2,3", "restored to {after}");
    assert_ne!(
        p.sql("select timeline_id from pg_control_checkpoint()"),
        "1"
    );
}

#[test]
fn a_second_restore_follows_the_timeline_of_the_first() {
    let g = pitr_project("pitrtli");
    let p = &g.p;
    let (mid, _) = three_batches(p);
    ok(&mut p.cmd(&["restore", "--to-time", &mid, "--yes"]));
    assert_eq!(batches(p), "1,2");
    let tli: u32 = p
        .sql("select timeline_id from pg_control_checkpoint()")
        .parse()
        .unwrap();
    p.sql("insert into t values (4)");
    switch_and_archive(p);
    let history = wal_dir(p).join(format!("{tli:08X}.history.zst"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !history.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was never archived",
            history.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // From the same base backup (on timeline 1), along the switch to the new one.
    ok(&mut p.cmd(&["restore", "--to-latest", "--yes"]));
    assert_eq!(batches(p), "1,2,4");
    assert_eq!(pgbox_dir_entries(p, "data-before-pitr-").len(), 2);
}
