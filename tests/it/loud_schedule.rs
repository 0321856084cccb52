//! Issue 11: schedule install, list, status and remove fail loudly (or warn, naming
//! the file) where they used to discard an error and report something untrue.
//! None of these needs an engine; a fake `crontab` stands in for a broken one.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::*;

fn project(name: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("pgbox.toml"),
        format!("[project]\nname = \"{name}\"\n"),
    )
    .unwrap();
    d
}

/// `schedule install --using systemd`: writes the units under the test's XDG folder
/// and `.pgbox/schedule.json`; no systemd runs here, so nothing is activated.
fn install_systemd(dir: &Path) {
    ok(pgbox(dir).args(["schedule", "install", "--using", "systemd"]));
    assert!(dir.join(".pgbox/schedule.json").is_file());
}

/// A folder holding one executable `crontab` that behaves as `script` says, and the
/// PATH that finds it first.
fn fake_crontab(script: &str) -> (tempfile::TempDir, String) {
    let bin = tempfile::tempdir().unwrap();
    let path = bin.path().join("crontab");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let search = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (bin, search)
}

#[test]
fn status_names_an_installed_record_it_cannot_read() {
    let d = project("loudstatus");
    std::fs::create_dir_all(d.path().join(".pgbox")).unwrap();
    std::fs::write(d.path().join(".pgbox/schedule.json"), "{ not json").unwrap();
    let out = run(pgbox(d.path()).args(["schedule", "status"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read the installed schedule") && err.contains(".pgbox/schedule.json"),
        "{err}"
    );
    assert!(
        !err.contains("no schedule is installed"),
        "a corrupt record is not a missing one: {err}"
    );
}

#[test]
fn status_names_a_last_run_record_it_cannot_read() {
    let d = project("loudlast");
    install_systemd(d.path());
    let record: PathBuf = d.path().join("backups/.pgbox-loudlast-schedule.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(&record, "{\"ok\": tru").unwrap();
    let out = run(pgbox(d.path()).args(["schedule", "status"]));
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a record that cannot be read is not a healthy schedule: {err}"
    );
    assert!(
        err.contains("cannot read the last run's record")
            && err.contains(&record.display().to_string()),
        "{err}"
    );
}

#[test]
fn status_reports_an_installed_expression_it_cannot_parse() {
    let d = project("loudexpr");
    install_systemd(d.path());
    let path = d.path().join(".pgbox/schedule.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["expression"] = "every other tuesday".into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = run(pgbox(d.path()).args(["schedule", "status"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the installed expression `every other tuesday` cannot be read"),
        "{err}"
    );
}

#[test]
fn remove_fails_when_the_installed_record_stays() {
    let d = project("loudremove");
    // A folder where the record should be: removing it as a file fails, as it would
    // on a read-only `.pgbox` for a user who is not root.
    std::fs::create_dir_all(d.path().join(".pgbox/schedule.json/x")).unwrap();
    let out = run(pgbox(d.path()).args(["schedule", "remove"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot remove the installed schedule")
            && err.contains(".pgbox/schedule.json"),
        "{err}"
    );
}

#[test]
fn list_and_remove_fail_when_the_crontab_cannot_be_read() {
    let d = project("loudcron");
    let (_bin, path) = fake_crontab(
        "echo 'crontab: cannot open /var/spool/cron/crontabs: Permission denied' >&2; exit 1",
    );
    for action in ["list", "remove"] {
        let out = run(pgbox(d.path())
            .env("PATH", &path)
            .args(["schedule", action]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "schedule {action}: {err}");
        assert!(
            err.contains("`crontab -l` failed") && err.contains("Permission denied"),
            "schedule {action}: {err}"
        );
    }
    // "no crontab" is not a failure, and neither is a host without cron at all.
    let (_bin, path) = fake_crontab("echo 'no crontab for someone' >&2; exit 1");
    let empty = tempfile::tempdir().unwrap();
    for path in [path, empty.path().display().to_string()] {
        for action in ["list", "remove"] {
            ok(pgbox(d.path())
                .env("PATH", &path)
                .args(["schedule", action]));
        }
    }
}

#[test]
fn list_warns_about_a_timer_it_cannot_read() {
    let d = project("loudlist");
    let units = d.path().join(".test-xdg/systemd/user");
    std::fs::create_dir_all(units.join("pgbox-backup-ghost.timer")).unwrap();
    let out = ok(pgbox(d.path()).args(["schedule", "list"]));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: cannot read") && err.contains("pgbox-backup-ghost.timer"),
        "{err}"
    );
}

#[test]
fn install_refuses_a_docker_host_it_cannot_carry() {
    let d = project("loudhost");
    let host = std::ffi::OsStr::from_bytes(b"unix:///run/\xff.sock");
    let out = run(pgbox(d.path()).env("DOCKER_HOST", host).args([
        "schedule",
        "install",
        "--using",
        "cron",
        "--dry-run",
    ]));
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the job would run against another engine: {err}\n{}",
        text(&out.stdout)
    );
    assert!(err.contains("`DOCKER_HOST` is not valid UTF-8"), "{err}");
}
