//! Guards for issue #20's Podman part: a backup's engine round trips. Every exec
//! costs about 80 ms on Docker and 150-200 ms on Podman, far more than the work it
//! does, so `pgbox backup` checks the container (running, not in maintenance),
//! removes what a killed backup left, and reads the versions in ONE exec before
//! the dump's own. Counted from the engine's event log on both engines; what the
//! merged exec does is checked alongside (the cleanup, the maintenance refusal).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{ok, run, text, Eng, Project};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The execs the engine ran in `p`'s container from second `since` to now.
fn execs_since(p: &Project, since: u64) -> usize {
    // The event log has whole seconds: wait for the next one so nothing is cut off.
    let until = now_secs() + 1;
    while now_secs() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // One line per event: Docker's `Type` and Podman's `Status` are one word.
    let (event, field, word) = match p.eng {
        Eng::Docker => ("exec_create", "{{.Type}}", "container"),
        Eng::Podman => ("exec", "{{.Status}}", "exec"),
    };
    let since = since.to_string();
    let container = format!("container={}", p.container());
    let event = format!("event={event}");
    let mut args = vec!["events", "--since", &since, "--filter", &container];
    args.extend(["--filter", &event, "--format", field]);
    // Podman 4.3 returns nothing for an `--until` in the past; `--stream=false` ends
    // at the last event instead. Docker has only `--until`.
    let until_arg = until.to_string();
    match p.eng {
        Eng::Docker => args.extend(["--until", &until_arg]),
        Eng::Podman => args.push("--stream=false"),
    }
    let out = p.cli(&args);
    let n = out.lines().filter(|l| l.trim() == word).count();
    if n == 0 {
        eprintln!("no exec events from {since} to {until}: {out:?}");
    }
    n
}

/// Start counting at a fresh second, so nothing `up` or the test did is counted.
fn fresh_second() -> u64 {
    let s = now_secs() + 1;
    while now_secs() < s {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    s
}

fn backup_takes_one_exec_besides_the_dump(eng: Eng) {
    let p = Project::on("trips", eng);
    p.init(&[]);
    p.up();
    let c = p.container();
    // What a killed directory-format backup leaves in the container.
    p.cli(&["exec", &c, "mkdir", "-p", "/tmp/pgbox-dump.stale"]);

    let since = fresh_second();
    let out = ok(&mut p.cmd(&["backup"]));
    let execs = execs_since(&p, since);
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "removed what an interrupted backup left: `/tmp/pgbox-dump.stale` in the container"
        ),
        "{err}"
    );
    let left = run(std::process::Command::new(eng.cli()).args([
        "exec",
        &c,
        "test",
        "-e",
        "/tmp/pgbox-dump.stale",
    ]));
    assert_eq!(left.status.code(), Some(1), "the stale folder is gone");
    assert_eq!(
        execs, 2,
        "one exec for the checks, the cleanup and the versions, one for the dump"
    );
    // The backup is whole (its manifest carries the versions the merged exec read).
    let file = text(&out.stdout).trim().to_string();
    let verified = ok(&mut p.cmd(&["backup", "verify", &file]));
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let manifest = std::fs::read_to_string(format!("{file}.json")).unwrap_or_default();
    assert!(
        manifest.contains("pg_dump (PostgreSQL)"),
        "{file}: {manifest}"
    );

    // In maintenance mode the same exec refuses before it cleans anything.
    p.cli(&["exec", &c, "mkdir", "-p", "/tmp/pgbox-dump.kept"]);
    ok(&mut p.cmd(&["maintenance", "on"]));
    let out = run(&mut p.cmd(&["backup"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "error: `{}` is in maintenance mode: PostgreSQL is stopped",
            p.name
        )) && err.contains("hint: run `pgbox maintenance off`"),
        "{err}"
    );
    p.cli(&["exec", &c, "test", "-d", "/tmp/pgbox-dump.kept"]);
    ok(&mut p.cmd(&["maintenance", "off"]));
    ok(&mut p.cmd(&["backup"]));
}

#[test]
fn backup_takes_one_exec_besides_the_dump_docker() {
    backup_takes_one_exec_besides_the_dump(Eng::Docker);
}

#[test]
fn backup_takes_one_exec_besides_the_dump_podman() {
    backup_takes_one_exec_besides_the_dump(Eng::Podman);
}
