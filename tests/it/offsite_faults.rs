//! Off-site backups under faults, against a real engine and a real S3-compatible
//! server (moto): pgbox interrupted and the store killed mid-upload leave no object
//! under the final key and the next run ships; remote retention on crafted dates
//! keeps the policy and the newest verified backup; a failed upload fails the
//! scheduled run, fires its `on_failure` hook and keeps the local backup.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::offsite::{both, configure, seed};
use super::s3_support::{BUCKET, S3};
use super::support::{file_names, ok, run, text, Project};

/// A database whose dump does not compress: `mb` MiB of random bytes.
fn seed_big(p: &Project, mb: u32) {
    p.sql(&format!(
        "create extension if not exists pgcrypto; create table big as select (select string_agg(gen_random_bytes(1024), ''::bytea) from generate_series(1, 16) where g > 0) b from generate_series(1, {}) g",
        mb * 64
    ));
}

fn wait_for_upload(s3: &S3, child: &mut std::process::Child) {
    let mut watch = s3.watch_for_upload(120);
    let t = Instant::now();
    loop {
        if let Some(st) = watch.try_wait().unwrap() {
            assert!(st.success(), "no multipart upload was seen in progress");
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            let _ = watch.kill();
            panic!("pgbox ended ({st}) before an upload was seen");
        }
        assert!(t.elapsed() < Duration::from_secs(150));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_interrupted_upload_leaves_no_object_under_the_final_key_and_the_next_run_ships() {
    let mut s3 = S3::start();
    let p = Project::new("offsite-kill");
    p.init(&[]);
    configure(&p, "", &s3.toml("k"));
    p.up();
    seed_big(&p, 48);
    let backups = p.path().join("backups");

    // 1. Ctrl-C mid-upload, of a local backup being shipped and of a dump streamed
    // with --remote-only: exit 130, the multipart upload aborted, nothing stored.
    for args in [&["backup"][..], &["backup", "--remote-only"][..]] {
        let mut child = s3
            .creds(&mut p.cmd(args))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_upload(&s3, &mut child);
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
        assert_eq!(
            s3.keys(),
            (vec![], 0),
            "{args:?}: no object, no unfinished upload"
        );
    }

    // 2. The store killed mid-upload: a failed run, the local backup kept and said so.
    let mut child = s3
        .creds(&mut p.cmd(&["backup"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_upload(&s3, &mut child);
    let (keys, uploads) = s3.keys();
    assert!(
        keys.is_empty(),
        "nothing under the final key mid-upload: {keys:?}"
    );
    assert_eq!(uploads, 1);
    s3.kill();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is kept locally, but shipping it"), "{err}");
    let local: Vec<String> = file_names(&backups)
        .into_iter()
        .filter(|f| f.ends_with(".dump.zst"))
        .collect();
    assert_eq!(local.len(), 2, "both local backups kept: {local:?}");

    // 3. The store is back: the next run ships, and only its backup counts.
    s3.launch();
    let out = ok(s3.creds(&mut p.cmd(&["backup"])));
    assert!(
        both(&out).contains("read back and matched"),
        "{}",
        both(&out)
    );
    let out = ok(s3.creds(&mut p.cmd(&["backup", "list", "--remote", "--json"])));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(s3.keys().1, 0);
}

/// A crafted remote backup of `project` made at `at` (`%Y%m%dT%H%M%SZ`).
fn craft(s3: &S3, project: &str, at: &str, verified: bool) -> String {
    let file = format!("{project}-app-{at}.dump.zst");
    let created = chrono::NaiveDateTime::parse_from_str(at, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    let m = serde_json::json!({
        "file": file, "project": project, "database": "app", "kind": "database",
        "format": "custom", "compression": "zstd", "level": 3, "bytes": 1,
        "sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        "duration_ms": 1, "server_version": "15", "pg_dump_version": "15",
        "pgbox_version": "0.1.0", "image": "x", "created_at": created.to_rfc3339(),
        "verified_at": if verified { Some(created.to_rfc3339()) } else { None },
    });
    s3.put(&format!("r/{file}"), b"x");
    s3.put(
        &format!("r/{file}.json"),
        serde_json::to_vec(&m).unwrap().as_slice(),
    );
    format!("r/{file}")
}

#[test]
fn remote_retention_on_crafted_dates_keeps_the_policy_and_the_newest_verified() {
    let s3 = S3::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pgbox.toml"),
        format!("[project]\nname = \"crafted\"\n{}", s3.toml("r")),
    )
    .unwrap();
    let pgbox = |args: &[&str]| {
        let mut c = super::support::pgbox(dir.path());
        s3.creds(&mut c).args(args);
        c
    };
    // Twelve days at 02:00, a second one on the last day (not verified), another
    // project's, and an object that never got its manifest.
    let days: Vec<String> = (1..=12)
        .map(|d| craft(&s3, "crafted", &format!("202611{d:02}T020000Z"), true))
        .collect();
    let late = craft(&s3, "crafted", "20261112T140000Z", false);
    let other = craft(&s3, "other", "20261101T020000Z", true);
    s3.put("r/crafted-app-20261001T000000Z.dump.zst", b"x");

    let out = ok(&mut pgbox(&["backup", "list", "--remote", "--json"]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 13, "{rows}");

    let keep3 = [
        "backup",
        "prune",
        "--remote",
        "--keep-last",
        "0",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ];
    let dry: Vec<&str> = keep3.iter().copied().chain(["--dry-run"]).collect();
    let out = ok(&mut pgbox(&dry));
    assert_eq!(
        both(&out).matches("would delete").count(),
        9,
        "{}",
        both(&out)
    );
    assert_eq!(s3.keys().0.len(), 29, "a dry run deletes nothing");

    let yes: Vec<&str> = keep3.iter().copied().chain(["--yes"]).collect();
    ok(&mut pgbox(&yes));
    let left = s3.keys().0;
    // The last three days, and the newest verified backup (the 12th at 02:00).
    let mut expect = vec![
        late.clone(),
        days[11].clone(),
        days[10].clone(),
        days[9].clone(),
        other.clone(),
        "r/crafted-app-20261001T000000Z.dump.zst".to_string(),
    ];
    expect.extend(
        [&late, &days[11], &days[10], &days[9], &other]
            .iter()
            .map(|k| format!("{k}.json")),
    );
    expect.sort();
    let mut left_sorted = left.clone();
    left_sorted.sort();
    assert_eq!(left_sorted, expect);

    // A policy that keeps nothing still keeps the newest verified backup (the 12th
    // at 02:00; the later one that day was never verified).
    ok(&mut pgbox(&[
        "backup",
        "prune",
        "--remote",
        "--keep-last",
        "0",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--yes",
    ]));
    let out = ok(&mut pgbox(&["backup", "list", "--remote", "--json"]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec![format!("s3://{BUCKET}/{}", days[11])]);

    // A credentials file others can read is refused before any request.
    let creds = dir.path().join("s3.credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3.key_id, s3.secret
        ),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let toml = dir.path().join("pgbox.toml");
    let t = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, t + "credentials_file = \"s3.credentials\"\n").unwrap();
    let out = run(&mut pgbox(&["backup", "list", "--remote"]));
    assert!(
        text(&out.stderr).contains("is readable by others"),
        "{}",
        text(&out.stderr)
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = super::support::pgbox(dir.path());
    ok(c.args(["backup", "list", "--remote"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY"));
}

#[test]
fn a_failed_upload_fails_the_scheduled_run_fires_the_hook_and_keeps_the_backup() {
    let s3 = S3::start();
    let p = Project::new("offsite-sched");
    p.init(&[]);
    let hook = p.path().join("hook-fired");
    // Scheduled runs have no AWS variables: the credentials come from a private file.
    let creds = p.path().join("s3.credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = wrong\n",
            s3.key_id
        ),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    configure(
        &p,
        &format!("on_failure = \"touch {}\"\n", hook.display()),
        &(s3.toml("s") + "credentials_file = \"s3.credentials\"\n"),
    );
    p.up();
    seed(&p);
    // The exact command the installed crontab line runs.
    let out = ok(&mut p.cmd(&["schedule", "install", "--using", "cron", "--dry-run"]));
    let line = text(&out.stdout)
        .lines()
        .find(|l| l.contains(" schedule run"))
        .unwrap_or_else(|| panic!("{}", text(&out.stdout)))
        .to_string();
    let command: String = line
        .split_whitespace()
        .skip(5)
        .collect::<Vec<_>>()
        .join(" ");
    let sh = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", p.path())
            .output()
            .unwrap()
    };
    // (`schedule install` makes the folder of its log; the dry run does not.)
    std::fs::create_dir_all(p.path().join("backups")).unwrap();
    let out = sh(&command);
    assert!(hook.exists(), "the on_failure hook fired: {}", both(&out));
    let log = std::fs::read_to_string(p.path().join("backups/pgbox-schedule.log"))
        .unwrap_or_else(|e| panic!("{e}: {command}\n{}", both(&out)));
    assert!(log.contains("is kept locally, but shipping it"), "{log}");
    assert!(log.contains("FAILED"), "{log}");
    assert!(file_names(&p.path().join("backups"))
        .iter()
        .any(|f| f.ends_with(".dump.zst")));
    let out = run(&mut p.cmd(&["schedule", "status"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the last run failed"),
        "{}",
        both(&out)
    );

    // With the right secret the run ships, and status shows the off-site copy.
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3.key_id, s3.secret
        ),
    )
    .unwrap();
    std::fs::remove_file(&hook).unwrap();
    let out = sh(&command);
    let log =
        std::fs::read_to_string(p.path().join("backups/pgbox-schedule.log")).unwrap_or_default();
    assert!(
        out.status.success() && !hook.exists(),
        "{}\nthe schedule log:\n{log}",
        both(&out)
    );
    let out = run(&mut p.cmd(&["schedule", "status"]));
    assert!(
        text(&out.stdout).contains(&format!("off-site    s3://{BUCKET}/s/")),
        "{}",
        both(&out)
    );
    assert_eq!(s3.keys().0.len(), 2);
}
