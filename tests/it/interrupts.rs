//! Interruptions and concurrency against a real engine: SIGINT, SIGTERM and SIGKILL
//! at several points of `backup`, `save` and `schedule run` must leave no partial
//! file, no dump running in the container and no false `ok` record; two pgbox
//! processes on one project must not both go ahead.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// About 150 MB of hex text (compresses to about half): a dump takes seconds.
const BIG: &str = "create table big as select i, (select string_agg(md5((i*31+k)::text), '') from generate_series(1,16) k) as filler from generate_series(1, 300000) i";

fn partials(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|f| f.ends_with(".partial"))
        .collect()
}

fn spawn(p: &Project, args: &[&str]) -> Child {
    p.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `cond` holds while `child` still runs (panics if it ended first).
fn wait_while_running(child: &mut Child, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} never happened");
        assert!(
            child.try_wait().unwrap().is_none(),
            "pgbox ended before {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Poll `cond` for up to a minute (what a killed process leaves may take a moment).
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// pg_dump processes running in the project's container.
fn dumps_running(p: &Project) -> usize {
    docker(&["top", &p.container(), "-o", "pid,args"])
        .lines()
        .filter(|l| l.contains("pg_dump") || l.contains("pgbox-ctl dump"))
        .count()
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn last_backup(p: &Project) -> serde_json::Value {
    json(
        p.path()
            .join("backups")
            .join(format!(".pgbox-{}-last-backup.json", p.name)),
    )
}

fn big_project(tag: &str, extra: &[&str]) -> Project {
    let p = Project::new(tag);
    p.init(extra);
    p.up();
    p.sql(BIG);
    p
}

fn stderr_of(o: &Output) -> String {
    text(&o.stderr)
}

#[test]
fn sigint_and_sigterm_mid_backup_leave_no_partial_and_a_failed_record() {
    let p = big_project("sig-bk", &[]);
    let dir = p.path().join("backups");
    ok(&mut p.cmd(&["backup"]));
    assert_eq!(last_backup(&p)["ok"], true);
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let mut child = spawn(&p, &["backup", "--compress", "none"]);
        wait_while_running(&mut child, "a `.partial` file", || {
            !partials(&dir).is_empty()
        });
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", stderr_of(&out));
        assert!(
            partials(&dir).is_empty(),
            "partial left after signal {sig}: {:?}",
            file_names(&dir)
        );
        let last = last_backup(&p);
        assert_eq!(last["ok"], false, "signal {sig}: {last}");
        assert!(
            last["error"].as_str().unwrap_or("").contains("interrupted"),
            "{last}"
        );
        eventually(
            &format!("pg_dump still running in the container after signal {sig}"),
            || dumps_running(&p) == 0,
        );
    }
    // The only dump in the folder is the first one.
    let dumps: Vec<_> = file_names(&dir)
        .into_iter()
        .filter(|f| f.ends_with(".zst") || f.ends_with(".dump"))
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
}

#[test]
fn sigkill_mid_backup_is_cleaned_up_by_the_next_run_and_blocks_prune() {
    let p = big_project("kill9-bk", &[]);
    let dir = p.path().join("backups");
    ok(&mut p.cmd(&["backup"]));
    let mut child = spawn(&p, &["backup", "--compress", "none"]);
    wait_while_running(&mut child, "a `.partial` file", || {
        !partials(&dir).is_empty()
    });
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let left = partials(&dir);
    assert_eq!(left.len(), 1, "a killed pgbox cannot clean: {left:?}");
    assert_eq!(last_backup(&p)["ok"], false, "no `ok` left from before");
    let prune = run(&mut p.cmd(&["backup", "prune", "--keep-last", "1", "--yes"]));
    assert_eq!(prune.status.code(), Some(1));
    assert!(
        stderr_of(&prune).contains("prune deletes nothing"),
        "{}",
        stderr_of(&prune)
    );
    let next = ok(&mut p.cmd(&["backup"]));
    let err = stderr_of(&next);
    assert!(
        err.contains("removed what an interrupted backup left:") && err.contains(&left[0]),
        "{err}"
    );
    assert!(partials(&dir).is_empty(), "{:?}", file_names(&dir));
    assert_eq!(dumps_running(&p), 0, "the stale pg_dump was ended");
    assert_eq!(last_backup(&p)["ok"], true);
    ok(&mut p.cmd(&["backup", "prune", "--keep-last", "1", "--yes"]));
}

/// Start two pgbox with the same arguments at once; returns (winner, loser).
fn race(p: &Project, args: &[&str]) -> (Output, Output) {
    let a = spawn(p, args);
    let b = spawn(p, args);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    match (a.status.success(), b.status.success()) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        _ => panic!(
            "exactly one of two `pgbox {}` must go ahead:\nfirst: {} {}\nsecond: {} {}",
            args.join(" "),
            a.status,
            stderr_of(&a),
            b.status,
            stderr_of(&b)
        ),
    }
}

fn assert_loser(loser: &Output, command: &str, project: &str) {
    let err = stderr_of(loser);
    assert_eq!(loser.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("is already running for `{project}`"))
            && err.contains(&format!("this `pgbox {command}` did nothing")),
        "{err}"
    );
    assert!(
        !err.contains("Conflict") && !err.contains("os error"),
        "{err}"
    );
}

#[test]
fn two_ups_at_once_one_says_another_pgbox_runs() {
    let p = Project::new("two-up");
    p.init(&[]);
    let (_, loser) = race(&p, &["up"]);
    assert_loser(&loser, "up", &p.name);
    assert!(stderr_of(&loser).contains("`pgbox up` (pid "));
    assert_eq!(p.sql("select 1"), "1");
}

/// `pgbox up` in a folder without pgbox.toml initialises it: two at once must not
/// both write a password (the cluster would get one, the file the other).
#[test]
fn two_ups_in_a_fresh_folder_make_one_project_whose_password_logs_in() {
    let p = Project::new("fresh-two");
    let (a, b) = (spawn(&p, &["up"]), spawn(&p, &["up"]));
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for o in &outs {
        let err = stderr_of(o);
        assert!(
            o.status.success()
                || (o.status.code() == Some(1) && err.contains("is already running")),
            "{err}"
        );
        assert!(
            !err.contains("Conflict") && !err.contains("os error"),
            "{err}"
        );
    }
    assert!(outs.iter().any(|o| o.status.success()));
    let url = text(&ok(&mut p.cmd(&["url"])).stdout).trim().to_string();
    let login = host_psql(&url, &p.password(), "select 1");
    assert!(login.status.success(), "{}", text(&login.stderr));
}

#[test]
fn two_backups_at_once_one_says_another_pgbox_runs() {
    let p = big_project("two-bk", &[]);
    let (winner, loser) = race(&p, &["backup", "--compress", "none"]);
    assert_loser(&loser, "backup", &p.name);
    let path = PathBuf::from(text(&winner.stdout).trim());
    assert!(path.is_file(), "{path:?}");
    assert!(partials(&p.path().join("backups")).is_empty());
}

fn tarball(p: &Project) -> PathBuf {
    p.path().join(".pgbox/data/pgsql.tar.zst")
}

fn save_temps(p: &Project) -> Vec<String> {
    file_names(&p.path().join(".pgbox/data"))
        .into_iter()
        .filter(|f| f.contains(".tmp"))
        .collect()
}

/// The tarball decompresses and holds a cluster.
fn assert_tarball_whole(p: &Project) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("zstd -dc \"$0\" | tar -tf - | grep -c PG_VERSION")
        .arg(tarball(p))
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).trim() != "0",
        "tarball damaged: {}",
        text(&out.stderr)
    );
}

#[test]
fn an_interrupted_save_keeps_a_whole_tarball_and_frees_the_lock() {
    let p = big_project("sig-save", &["--storage", "fallback"]);
    ok(&mut p.cmd(&["save"]));
    assert_tarball_whole(&p);
    for (sig, code) in [
        (libc::SIGINT, Some(130)),
        (libc::SIGTERM, Some(143)),
        (libc::SIGKILL, None),
    ] {
        let mut child = spawn(&p, &["save"]);
        wait_while_running(&mut child, "the save's temporary file", || {
            !save_temps(&p).is_empty()
        });
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), code, "{}", stderr_of(&out));
        // The save inside the container finishes (or fails) on its own and replaces
        // the tarball only whole.
        eventually("the in-container save never finished", || {
            save_temps(&p).is_empty()
        });
        assert_tarball_whole(&p);
        ok(&mut p.cmd(&["save"]));
    }
}

fn last_run(p: &Project) -> serde_json::Value {
    json(
        p.path()
            .join("backups")
            .join(format!(".pgbox-{}-schedule.json", p.name)),
    )
}

#[test]
fn an_interrupted_schedule_run_records_a_failure_and_frees_its_locks() {
    let p = big_project("sig-sched", &[]);
    let dir = p.path().join("backups");
    ok(&mut p.cmd(&["schedule", "run"]));
    assert_eq!(last_run(&p)["ok"], true);
    for (sig, code) in [
        (libc::SIGTERM, Some(143)),
        (libc::SIGINT, Some(130)),
        (libc::SIGKILL, None),
    ] {
        let mut child = spawn(&p, &["schedule", "run"]);
        wait_while_running(&mut child, "a `.partial` file", || {
            !partials(&dir).is_empty()
        });
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), code, "{}", stderr_of(&out));
        let run_record = last_run(&p);
        assert_eq!(run_record["ok"], false, "signal {sig}: {run_record}");
        assert!(
            run_record["error"]
                .as_str()
                .unwrap_or("")
                .contains("interrupted"),
            "{run_record}"
        );
        assert_eq!(last_backup(&p)["ok"], false);
        let status = run(&mut p.cmd(&["schedule", "status"]));
        assert!(
            text(&status.stderr).contains("the last run failed"),
            "{}",
            text(&status.stderr)
        );
        if sig != libc::SIGKILL {
            assert!(partials(&dir).is_empty(), "{:?}", file_names(&dir));
        }
        // Both locks are free and what was left is cleaned: the next run succeeds.
        ok(&mut p.cmd(&["schedule", "run"]));
        assert!(partials(&dir).is_empty(), "{:?}", file_names(&dir));
        assert_eq!(last_run(&p)["ok"], true);
    }
}
