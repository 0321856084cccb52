//! Base backups and the WAL archive check of point-in-time recovery (issue 13)
//! against a real engine: `backup --base` files a checked base backup with a right
//! description, refuses without an archive, leaves nothing behind on Ctrl-C; and
//! `backup verify --pitr` passes on a whole archive, names a missing segment and
//! catches a damaged one.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::*;

/// `init`, then `[backup] pitr = true`, then `up`.
fn pitr_project(tag: &str, major: Option<u32>) -> Project {
    let p = Project::with_major(tag, Eng::Docker, major);
    p.init(&[]);
    let toml = p.path().join("pgbox.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("[backup]\n"), "{text}");
    std::fs::write(
        &toml,
        text.replacen("[backup]\n", "[backup]\npitr = true\n", 1),
    )
    .unwrap();
    p.up();
    p
}

fn wal_dir(p: &Project) -> PathBuf {
    p.path().join("backups").join("wal")
}

fn base_dir(p: &Project) -> PathBuf {
    p.path().join("backups").join("base")
}

/// Write a little, switch to a new segment and wait until the finished one is
/// archived; returns its name.
fn switch_and_archive(p: &Project) -> String {
    p.sql("create table if not exists churn(i int); insert into churn select generate_series(1, 1000)");
    let seg = p.sql("select pg_walfile_name(pg_switch_wal())");
    let file = wal_dir(p).join(format!("{seg}.zst"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() {
        assert!(Instant::now() < deadline, "{seg} was never archived");
        std::thread::sleep(Duration::from_millis(100));
    }
    seg
}

fn only_base(p: &Project) -> PathBuf {
    let names = file_names(&base_dir(p));
    assert_eq!(names.len(), 1, "{names:?}");
    base_dir(p).join(&names[0])
}

fn lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn staging_left(p: &Project) -> Vec<String> {
    file_names(&wal_dir(p))
        .into_iter()
        .filter(|f| f.starts_with(".pgbox-base-"))
        .collect()
}

/// The three files, a description that matches the manifest and the tar, and the
/// server's own `pg_walfile_name` for the start segment.
fn assert_base_backup(p: &Project, major: u32) {
    let out = ok(&mut p.cmd(&["backup", "--base"]));
    let dir = only_base(p);
    assert_eq!(text(&out.stdout).trim(), dir.display().to_string());
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{}-base-", p.name)),
        "{}",
        dir.display()
    );
    let mut files = file_names(&dir);
    files.sort();
    assert_eq!(
        files,
        ["backup_manifest", "base.tar.zst", "pgbox-base.json"]
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("pgbox-base.json")).unwrap()).unwrap();
    assert_eq!(meta["project"], p.name.as_str());
    assert_eq!(meta["pg_major"], major);
    let (start, end) = (
        meta["start_lsn"].as_str().unwrap(),
        meta["end_lsn"].as_str().unwrap(),
    );
    assert!(lsn(start) <= lsn(end), "{meta}");
    assert_eq!(meta["timeline"], 1);
    let tar = std::fs::read(dir.join("base.tar.zst")).unwrap();
    assert_eq!(meta["bytes"], tar.len() as u64);
    let sum: String = Sha256::digest(&tar)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(meta["sha256"], sum.as_str());
    // The manifest's WAL range is the one described.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("backup_manifest")).unwrap()).unwrap();
    assert_eq!(manifest["WAL-Ranges"][0]["Start-LSN"], start);
    assert_eq!(manifest["WAL-Ranges"][0]["End-LSN"], end);
    // The start segment, as the server names it, is archived.
    let seg = p.sql(&format!("select pg_walfile_name('{start}')"));
    assert_eq!(meta["start_wal"], seg.as_str());
    assert!(wal_dir(p).join(format!("{seg}.zst")).exists());
    assert!(meta["started_at"].as_str().unwrap() <= meta["finished_at"].as_str().unwrap());
    assert!(staging_left(p).is_empty(), "{:?}", staging_left(p));
}

#[test]
fn base_backup_on_15_is_filed_and_verify_pitr_finds_gaps_and_damage() {
    let p = pitr_project("pitr-b15", Some(15));
    assert_base_backup(&p, 15);
    let chain: Vec<String> = (0..4).map(|_| switch_and_archive(&p)).collect();

    let out = ok(&mut p.cmd(&["backup", "verify", "--pitr"]));
    let err = text(&out.stderr);
    assert!(err.contains("recoverable window"), "{err}");

    // A damaged segment (bytes changed) fails its sha256.
    let damaged = wal_dir(&p).join(format!("{}.zst", chain[2]));
    let saved = std::fs::read(&damaged).unwrap();
    let mut bad = saved.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xFF;
    std::fs::write(&damaged, &bad).unwrap();
    let out = run(&mut p.cmd(&["backup", "verify", "--pitr"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&chain[2]) && err.contains("sha256"), "{err}");
    std::fs::write(&damaged, &saved).unwrap();
    ok(&mut p.cmd(&["backup", "verify", "--pitr"]));

    // A segment missing from the middle of the chain is named, with the base
    // backup it cuts off.
    std::fs::remove_file(wal_dir(&p).join(format!("{}.zst", chain[1]))).unwrap();
    let out = run(&mut p.cmd(&["backup", "verify", "--pitr"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("`{}` is missing", chain[1])), "{err}");
    let base = only_base(&p);
    assert!(
        err.contains(&*base.file_name().unwrap().to_string_lossy()),
        "{err}"
    );
}

#[test]
fn base_backup_on_18_is_filed_and_checked() {
    let p = pitr_project("pitr-b18", Some(18));
    p.assert_major();
    assert_base_backup(&p, 18);
    switch_and_archive(&p);
    ok(&mut p.cmd(&["backup", "verify", "--pitr"]));
}

#[test]
fn base_backup_without_pitr_is_refused_and_writes_nothing() {
    let p = Project::new("pitr-off");
    p.init(&[]);
    let out = run(&mut p.cmd(&["backup", "--base"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no WAL archive") && err.contains("pitr = true"),
        "{err}"
    );
    assert!(!base_dir(&p).exists());
    assert!(!wal_dir(&p).exists());
}

fn basebackups_running(p: &Project) -> usize {
    docker(&["top", &p.container(), "-o", "pid,args"])
        .lines()
        .filter(|l| l.contains("pg_basebackup") || l.contains("pg_verifybackup"))
        .count()
}

fn scratch_left(p: &Project) -> String {
    docker(&[
        "exec",
        &p.container(),
        "sh",
        "-c",
        "ls -d /tmp/pgbox-base-verify-* 2>/dev/null || true",
    ])
}

#[test]
fn ctrl_c_during_a_base_backup_leaves_no_folder() {
    let p = pitr_project("pitr-int", Some(15));
    let (user, db) = (
        p.sql("select current_user"),
        p.sql("select current_database()"),
    );
    docker(&[
        "exec",
        "-u",
        "postgres",
        &p.container(),
        "pgbench",
        "-q",
        "-i",
        "-s",
        "20",
        "-U",
        &user,
        &db,
    ]);
    let mut child = p
        .cmd(&["backup", "--base"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let has_tar = |p: &Project| {
        staging_left(p)
            .iter()
            .any(|d| wal_dir(p).join(d).join("base.tar.zst").exists())
    };
    while !has_tar(&p) {
        assert!(
            Instant::now() < deadline,
            "no base backup was being written"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup --base ended first"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(staging_left(&p).is_empty(), "{:?}", staging_left(&p));
    assert!(
        file_names(&base_dir(&p)).is_empty(),
        "{:?}",
        file_names(&base_dir(&p))
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while basebackups_running(&p) > 0 {
        assert!(
            Instant::now() < deadline,
            "pg_basebackup still runs after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(scratch_left(&p).trim(), "");
    // The lock is free and the next one works.
    ok(&mut p.cmd(&["backup", "--base"]));
    assert!(staging_left(&p).is_empty());
}
