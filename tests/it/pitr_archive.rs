//! The continuous WAL archive of `[backup] pitr` (issue 13, first part): every
//! completed segment lands in `<backup dir>/wal/` compressed, with its sha256, and
//! only ever whole; the archive command never overwrites a different segment and
//! accepts an identical one; a failing archive is an error in `status`, PostgreSQL
//! keeps running, and the archive catches up once the folder is writable again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::*;

fn pitr_project(tag: &str) -> Project {
    let p = Project::new(tag);
    p.init(&[]);
    let path = p.path().join("pgbox.toml");
    let toml = std::fs::read_to_string(&path).unwrap().replace(
        "[backup]\n",
        "[backup]\npitr = true\narchive_timeout = \"10s\"\n",
    );
    std::fs::write(&path, toml).unwrap();
    p.up();
    p
}

fn wal(p: &Project) -> PathBuf {
    p.path().join("backups/wal")
}

fn archived(p: &Project) -> Vec<String> {
    file_names(&wal(p))
        .into_iter()
        .filter(|n| n.len() == 28 && n.ends_with(".zst"))
        .collect()
}

fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {secs}s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn unzstd(path: &Path) -> Vec<u8> {
    let out = Command::new("zstd")
        .args(["-q", "-dc"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "zstd -dc {}", path.display());
    out.stdout
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn each_completed_segment_is_archived_whole_with_its_checksum() {
    let p = pitr_project("pitrarch");
    p.sql("create table t (x int); insert into t select generate_series(1, 1000); select pg_switch_wal()");
    wait_until("a segment in the archive", 30, || !archived(&p).is_empty());
    for name in archived(&p) {
        let seg = name.trim_end_matches(".zst");
        let bytes = unzstd(&wal(&p).join(&name));
        assert_eq!(bytes.len(), 16 << 20, "{name} is not a whole segment");
        let recorded = std::fs::read_to_string(wal(&p).join(format!("{seg}.sha256"))).unwrap();
        assert_eq!(
            recorded.split_whitespace().next().unwrap(),
            hex(&Sha256::digest(&bytes)),
            "{name}"
        );
    }
    let out = ok(&mut p.cmd(&["status"]));
    let rows = text(&out.stdout);
    assert!(rows.contains("archive    ok:"), "{rows}");
    let json: serde_json::Value =
        serde_json::from_slice(&ok(&mut p.cmd(&["status", "--json"])).stdout).unwrap();
    assert!(
        json["archive"]["archived_count"].as_u64().unwrap() >= 1,
        "{json}"
    );
    assert_eq!(json["archive"]["failing"], false);
    assert!(json["recoverable"].is_null(), "{json}");
    assert!(rows.contains("no base backup yet"), "{rows}");
    // With a base backup, status shows the window one can restore to.
    ok(&mut p.cmd(&["backup", "--base"]));
    let json: serde_json::Value =
        serde_json::from_slice(&ok(&mut p.cmd(&["status", "--json"])).stdout).unwrap();
    let (from, to) = (
        json["recoverable"][0].as_str().unwrap().to_string(),
        json["recoverable"][1].as_str().unwrap().to_string(),
    );
    assert!(from <= to, "{json}");
}

#[test]
fn the_archive_command_accepts_an_identical_segment_and_never_overwrites_a_different_one() {
    let p = pitr_project("pitrcontract");
    p.sql("select pg_switch_wal()");
    wait_until("a segment in the archive", 30, || !archived(&p).is_empty());
    let name = archived(&p)[0].clone();
    let seg = name.trim_end_matches(".zst").to_string();
    let before = std::fs::read(wal(&p).join(&name)).unwrap();
    let c = p.container();
    let sh = |script: &str| {
        Command::new("docker")
            .args(["exec", "-u", "postgres", &c, "bash", "-c", script])
            .output()
            .unwrap()
    };
    let archive = "/usr/local/lib/pgbox/runtime/archive.sh";
    let same = sh(&format!(
        "zstd -q -dc /var/lib/pgbox/wal/{seg}.zst > /tmp/seg && {archive} /tmp/seg {seg}"
    ));
    assert!(same.status.success(), "identical: {}", text(&same.stderr));
    let other = sh(&format!(
        "printf 'x' | dd of=/tmp/seg bs=1 seek=100 conv=notrunc 2>/dev/null && {archive} /tmp/seg {seg}"
    ));
    assert!(!other.status.success(), "a different segment was accepted");
    assert!(
        text(&other.stderr).contains("different content"),
        "{}",
        text(&other.stderr)
    );
    assert_eq!(
        std::fs::read(wal(&p).join(&name)).unwrap(),
        before,
        "overwritten"
    );
    // Killed halfway (as a container kill would): never a partial file under the final name.
    let killed = sh(&format!(
        "zstd -q -dc /var/lib/pgbox/wal/{seg}.zst > /tmp/seg2; {archive} /tmp/seg2 000000010000000000000099 & sleep 0.02; kill -9 $! 2>/dev/null; wait; true"
    ));
    assert!(killed.status.success());
    let final_path = wal(&p).join("000000010000000000000099.zst");
    if final_path.exists() {
        assert_eq!(
            unzstd(&final_path).len(),
            16 << 20,
            "a partial segment under its final name"
        );
    }
}

#[test]
fn a_failing_archive_is_an_error_in_status_and_catches_up() {
    let p = pitr_project("pitrfail");
    let dir = wal(&p);
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    p.sql("create table t (x int); insert into t values (1); select pg_switch_wal()");
    let mut last = String::new();
    wait_until("status to report the failing archive", 30, || {
        let out = run(&mut p.cmd(&["status"]));
        last = text(&out.stderr);
        out.status.code() == Some(1) && last.contains("WAL archiving is failing")
    });
    // `schedule status` says it too (its exit code is 1 anyway: no schedule here).
    let out = run(&mut p.cmd(&["schedule", "status"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("archiver    FAILING"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("WAL archiving is failing"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("no base backup with archived WAL"),
        "{}",
        text(&out.stderr)
    );
    // PostgreSQL keeps running and taking writes meanwhile.
    assert_eq!(
        {
            p.sql("insert into t values (2)");
            p.sql("select count(*) from t")
        },
        "2"
    );
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    p.sql("select pg_switch_wal()");
    wait_until("the archive to catch up", 90, || {
        let out = run(&mut p.cmd(&["status", "--json"]));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        json["archive"]["failing"] == false && json["archive"]["waiting"] == 0
    });
    assert!(archived(&p).len() >= 2, "{:?}", archived(&p));
    assert_eq!(run(&mut p.cmd(&["status"])).status.code(), Some(0));
    let out = run(&mut p.cmd(&["schedule", "status", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pitr"]["archive"]["failing"], false, "{json}");
    assert!(!text(&out.stderr).contains("WAL archiving is failing"));
}

/// Retention with PITR: an older base backup goes by the policy, and with it only
/// the WAL segments no kept base backup needs; what is kept still verifies.
#[test]
fn prune_drops_old_base_backups_and_only_the_wal_no_kept_one_needs() {
    let p = pitr_project("pitrprune");
    ok(&mut p.cmd(&["backup", "--base"]));
    for _ in 0..3 {
        p.sql("create table if not exists t (x int); insert into t values (1); select pg_switch_wal()");
    }
    ok(&mut p.cmd(&["backup", "--base"]));
    p.sql("insert into t values (2); select pg_switch_wal()");
    wait_until("the last segment in the archive", 30, || {
        let json: serde_json::Value =
            serde_json::from_slice(&ok(&mut p.cmd(&["status", "--json"])).stdout).unwrap();
        json["archive"]["waiting"] == 0 && json["archive"]["failing"] == false
    });
    let bases = file_names(&p.path().join("backups/base"));
    assert_eq!(bases.len(), 2, "{bases:?}");
    let newest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            p.path()
                .join("backups/base")
                .join(&bases[1])
                .join("pgbox-base.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let start = newest["start_wal"].as_str().unwrap().to_string();
    let before = archived(&p);
    assert!(
        before.iter().any(|s| s.as_str() < start.as_str()),
        "{before:?} {start}"
    );

    let out = ok(&mut p.cmd(&[
        "backup",
        "prune",
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--yes",
    ]));
    let err = text(&out.stderr);
    assert!(err.contains("WAL segments"), "{err}");
    assert_eq!(
        file_names(&p.path().join("backups/base")),
        vec![bases[1].clone()]
    );
    let after = archived(&p);
    assert!(
        after.iter().all(|s| s.as_str() >= start.as_str()),
        "{after:?} kept before {start}"
    );
    assert!(
        after.iter().any(|s| s.starts_with(&start)),
        "{after:?} lost {start}"
    );
    let labels: Vec<String> = file_names(&wal(&p))
        .into_iter()
        .filter(|n| n.ends_with(".backup.zst"))
        .collect();
    assert!(
        labels.iter().all(|l| l.as_str() >= start.as_str()),
        "{labels:?}"
    );
    ok(&mut p.cmd(&["backup", "verify", "--pitr"]));
}

/// The scheduled run takes a base backup beside the dump when PITR is on.
#[test]
fn schedule_run_takes_a_base_backup_when_pitr_is_on() {
    let p = pitr_project("pitrsched");
    let out = ok(&mut p.cmd(&["schedule", "run"]));
    assert!(
        text(&out.stderr).contains("schedule run: base backup"),
        "{}",
        text(&out.stderr)
    );
    let bases = file_names(&p.path().join("backups/base"));
    assert_eq!(bases.len(), 1, "{bases:?}");
    assert!(p
        .path()
        .join("backups/base")
        .join(&bases[0])
        .join("pgbox-base.json")
        .exists());
}

/// `archive_timeout` bounds what a commit can lose: with no switch asked for, the
/// segment holding a write reaches the archive within about the timeout (10 s
/// here), also in the first interval after a start, and an idle server does not
/// keep archiving segments.
#[test]
fn a_write_reaches_the_archive_within_the_timeout_and_an_idle_server_stays_quiet() {
    let p = pitr_project("pitrtimeout");
    // Right after the start: the first interval counts too (it was missed once).
    p.sql("create table t (x int)");
    p.sql("insert into t values (1)");
    let seg = p.sql("select pg_walfile_name(pg_current_wal_lsn())");
    let wrote = Instant::now();
    wait_until("the written segment in the archive", 40, || {
        archived(&p)
            .iter()
            .any(|a| a.as_str() >= format!("{seg}.zst").as_str())
    });
    eprintln!(
        "archived {:.1}s after the write",
        wrote.elapsed().as_secs_f64()
    );
    let count = archived(&p).len();
    std::thread::sleep(Duration::from_secs(25));
    assert!(
        archived(&p).len() <= count + 1,
        "an idle server kept archiving: {:?}",
        archived(&p)
    );
}
