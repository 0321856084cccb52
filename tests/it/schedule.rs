//! Scheduled backups: the real crontab, systemd units checked by systemd-analyze,
//! and `schedule run` against a real engine.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;

/// The crontab is per user and shared: one test at a time touches it.
pub(crate) static CRONTAB: Mutex<()> = Mutex::new(());

/// Saves this user's crontab and puts it back when dropped.
pub(crate) struct SavedCrontab(Option<Vec<u8>>);

impl SavedCrontab {
    pub(crate) fn take() -> SavedCrontab {
        let out = Command::new("crontab")
            .arg("-l")
            .output()
            .expect("crontab (apt-get install cron; scripts/ensure-engine.sh does it)");
        SavedCrontab(out.status.success().then_some(out.stdout))
    }
}

impl Drop for SavedCrontab {
    fn drop(&mut self) {
        match &self.0 {
            Some(bytes) => set_crontab(bytes),
            None => {
                let _ = Command::new("crontab").arg("-r").status();
            }
        }
    }
}

fn set_crontab(bytes: &[u8]) {
    let mut c = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), bytes).unwrap();
    assert!(c.wait().unwrap().success());
}

pub(crate) fn crontab() -> Vec<u8> {
    Command::new("crontab").arg("-l").output().unwrap().stdout
}

/// Every file under `dir` with its bytes, for before/after comparisons.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn config_only(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("pgbox.toml"),
        format!("[project]\nname = \"{name}\"\n"),
    )
    .unwrap();
}

#[test]
fn cron_round_trip_leaves_foreign_lines_byte_for_byte() {
    let _g = CRONTAB.lock().unwrap_or_else(|e| e.into_inner());
    let _saved = SavedCrontab::take();
    let foreign = b"# my own jobs, hands off\nMAILTO=\"\"\n0 5 * * * date +\\%F >> /tmp/pgbox-test-date.log\n# another comment with 100% in it\n";
    set_crontab(foreign);
    let d = tempfile::tempdir().unwrap();
    config_only(d.path(), "crontest");
    let other = tempfile::tempdir().unwrap();
    config_only(other.path(), "othercron");

    ok(pgbox(d.path()).args(["schedule", "install", "--using", "cron", "--at", "@daily"]));
    ok(pgbox(other.path()).args([
        "schedule",
        "install",
        "--using",
        "cron",
        "--at",
        "30 3 * * 1-5",
    ]));
    ok(pgbox(d.path()).args([
        "schedule",
        "install",
        "--using",
        "cron",
        "--at",
        "0 2 * * *",
    ]));
    let tab = text(&crontab());
    assert!(
        tab.starts_with(std::str::from_utf8(foreign).unwrap()),
        "{tab}"
    );
    assert_eq!(
        tab.matches(">>> pgbox schedule: crontest >>>").count(),
        1,
        "{tab}"
    );
    let line = tab
        .lines()
        .find(|l| l.starts_with("0 2 * * * env PATH="))
        .expect("the new line");
    assert!(
        line.contains(" --config ") && line.contains(" schedule run >> "),
        "{line}"
    );
    assert!(
        line.contains(&bin().canonicalize().unwrap().display().to_string()),
        "absolute pgbox path: {line}"
    );

    let list = ok(pgbox(d.path()).args(["schedule", "list", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    for (project, expr) in [("crontest", "0 2 * * *"), ("othercron", "30 3 * * 1-5")] {
        let row = rows
            .iter()
            .find(|r| r["project"] == project)
            .expect("listed");
        assert_eq!(row["mechanism"], "cron");
        assert_eq!(row["expression"], expr);
        assert!(row["next_run"].is_string());
    }

    ok(pgbox(d.path()).args(["schedule", "remove"]));
    let tab = crontab();
    assert!(!text(&tab).contains("crontest"));
    assert!(
        text(&tab).contains(">>> pgbox schedule: othercron >>>"),
        "other projects are untouched"
    );
    ok(pgbox(other.path()).args(["schedule", "remove"]));
    assert_eq!(
        crontab(),
        foreign.to_vec(),
        "the foreign crontab survives byte for byte"
    );
}

#[test]
fn systemd_units_verify_and_calendar_agrees_on_next_elapse() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("pgbox.toml"),
        "[project]\nname = \"sdtest\"\n[backup]\non_failure = \"logger pgbox backup failed\"\n",
    )
    .unwrap();
    ok(pgbox(d.path()).args([
        "schedule",
        "install",
        "--using",
        "systemd",
        "--at",
        "Mon..Fri 03:30",
        "--randomized-delay",
        "600",
    ]));
    let dir = d.path().join(".test-xdg/systemd/user");
    let units: Vec<_> = [
        "pgbox-backup-sdtest.service",
        "pgbox-backup-sdtest.timer",
        "pgbox-backup-sdtest-failure.service",
    ]
    .iter()
    .map(|u| dir.join(u))
    .collect();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        text(&out.stderr)
    );
    let timer = std::fs::read_to_string(&units[1]).unwrap();
    for line in [
        "OnCalendar=Mon..Fri *-*-* 03:30:00",
        "Persistent=true",
        "RandomizedDelaySec=600",
    ] {
        assert!(timer.contains(line), "{line} in\n{timer}");
    }
    let service = std::fs::read_to_string(&units[0]).unwrap();
    assert!(
        service.contains("Type=oneshot")
            && service.contains("OnFailure=pgbox-backup-sdtest-failure.service")
    );

    for form in [
        "0 2 * * *",
        "*-*-* 02:00:00",
        "daily",
        "weekly",
        "monthly",
        "Mon..Fri 03:30",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "*/15 * * * *",
        "0 4 1,15 * *",
    ] {
        let out = ok(pgbox(d.path()).args([
            "schedule",
            "install",
            "--using",
            "systemd",
            "--dry-run",
            "--at",
            form,
        ]));
        let cal = text(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("OnCalendar=").map(String::from))
            .expect("OnCalendar line");
        let ours = text(&out.stderr)
            .lines()
            .find_map(|l| {
                l.split("the next run would be ")
                    .nth(1)
                    .map(|s| s.trim().to_string())
            })
            .expect("next run");
        let sa = Command::new("systemd-analyze")
            .args(["calendar", &cal])
            .output()
            .unwrap();
        assert!(
            sa.status.success(),
            "systemd-analyze calendar {cal}: {}",
            text(&sa.stderr)
        );
        let next = text(&sa.stdout)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Next elapse: ").map(String::from))
            .unwrap();
        // "Sat 2026-11-28 02:00:00 UTC" → "2026-11-28 02:00"
        let theirs: String = next
            .split_whitespace()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(&theirs[..16], ours, "{form} ({cal})");
    }
}

#[test]
fn bad_expressions_and_dry_runs_write_nothing() {
    let _g = CRONTAB.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    config_only(d.path(), "drytest");
    let before_tab = crontab();
    let before = tree(d.path());
    let out = run(pgbox(d.path()).args(["schedule", "install", "--at", "61 2 * * *"]));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("minute field: `61` is not a value from 0 to 59"),
        "{err}"
    );
    assert!(err.contains("accepted forms"), "{err}");
    let out = run(pgbox(d.path()).args([
        "schedule",
        "install",
        "--using",
        "systemd",
        "--at",
        "0 0 13 * 5",
    ]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "cron's day OR weekday cannot become OnCalendar"
    );
    for using in ["cron", "systemd"] {
        let out = ok(pgbox(d.path()).args(["schedule", "install", "--using", using, "--dry-run"]));
        assert!(
            text(&out.stdout).contains("schedule run"),
            "{}",
            text(&out.stdout)
        );
    }
    assert_eq!(tree(d.path()), before, "nothing written");
    assert_eq!(crontab(), before_tab, "crontab untouched");
}

#[test]
fn schedule_run_backs_up_verifies_prunes_and_records() {
    let p = Project::new("sched");
    p.init(&[]);
    p.up();
    p.sql("create table s(x int); insert into s values (1)");
    ok(&mut p.cmd(&["schedule", "install", "--using", "systemd"]));
    for _ in 0..2 {
        ok(&mut p.cmd(&["backup"]));
        std::thread::sleep(Duration::from_millis(1100)); // distinct timestamps in the names
    }
    let keep = [
        "schedule",
        "run",
        "--keep-last",
        "2",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ];
    let out = ok(&mut p.cmd(&keep));
    let log = text(&out.stderr);
    for step in [
        "schedule run: backing up",
        "schedule run: backed up and verified",
        "schedule run: pruned",
        "schedule run: done",
    ] {
        assert!(log.contains(step), "{step} missing from\n{log}");
    }
    let list = ok(&mut p.cmd(&["backup", "list", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.len(), 2, "pruned to keep-last 2");
    assert_eq!(rows[0]["verified"], true, "the new backup is verified");
    let st = ok(&mut p.cmd(&["schedule", "status", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["last_run"]["ok"], true);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);

    // With the container stopped the run fails, is recorded, keeps every backup, and status says so.
    let files_before = rows.len();
    docker(&["stop", &p.container()]);
    let out = run(&mut p.cmd(&keep));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("schedule run: FAILED"),
        "{}",
        text(&out.stderr)
    );
    let list = ok(&mut p.cmd(&["backup", "list", "--json"]));
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&list.stdout)
            .unwrap()
            .len(),
        files_before
    );
    let st = run(&mut p.cmd(&["schedule", "status"]));
    assert_eq!(st.status.code(), Some(1));
    assert!(
        text(&st.stderr).contains("the last run failed"),
        "{}",
        text(&st.stderr)
    );
}

#[test]
fn two_concurrent_runs_back_up_once() {
    let p = Project::new("conc");
    p.init(&[]);
    p.up();
    p.sql("create table c as select i from generate_series(1, 200000) i");
    let lock = p
        .path()
        .join(format!("backups/.pgbox-{}-schedule.lock", p.name));
    let mut first = p
        .cmd(&["schedule", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock, then start the second.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = lock.exists()
            && !Command::new("flock")
                .args(["-n"])
                .arg(&lock)
                .arg("true")
                .status()
                .unwrap()
                .success();
        if held {
            break;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before the second started"
        );
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = run(&mut p.cmd(&["schedule", "run"]));
    let first = first.wait().unwrap();
    assert!(first.success());
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("another `pgbox schedule run`"),
        "{}",
        text(&second.stderr)
    );
    let list = ok(&mut p.cmd(&["backup", "list", "--json"]));
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&list.stdout)
            .unwrap()
            .len(),
        1,
        "exactly one backup"
    );
}
