//! CLI behaviour that needs no engine: help, config errors, engine discovery
//! errors, no-TTY prompts, `url`, and the committed completions.

use crate::support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn help_snapshot() {
    let d = tmp();
    let out = ok(pgbox(d.path()).arg("--help"));
    insta::assert_snapshot!("help", text(&out.stdout));
    let out = ok(pgbox(d.path()).args(["init", "--help"]));
    insta::assert_snapshot!("init_help", text(&out.stdout));
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let d = tmp();
    std::fs::write(
        d.path().join("pgbox.toml"),
        "[project]\nname = \"x\"\n\n[network]\nprot = 5432\n",
    )
    .unwrap();
    let out = run(pgbox(d.path()).arg("url"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr).replace(&d.path().display().to_string(), "[DIR]");
    insta::assert_snapshot!("unknown_key", err);
}

#[test]
fn bad_value_is_an_error_with_position() {
    let d = tmp();
    std::fs::write(d.path().join("pgbox.toml"), "[network]\nport = 0\n").unwrap();
    let out = run(pgbox(d.path()).arg("url"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("pgbox.toml:2:8: `0` is not a port number (1-65535)"),
        "{err}"
    );
}

#[test]
fn config_is_found_from_a_subfolder_and_env_overrides_it() {
    let d = tmp();
    std::fs::write(
        d.path().join("pgbox.toml"),
        "[project]\nname = \"shop\"\n[network]\nport = 6543\n",
    )
    .unwrap();
    let sub = d.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let out = ok(pgbox(&sub).arg("url"));
    assert_eq!(text(&out.stdout), "postgresql://shop@127.0.0.1:6543/shop\n");
    assert!(out.stderr.is_empty(), "url prints data only");
    let out = ok(pgbox(&sub).arg("url").env("PGBOX_PORT", "7000"));
    assert_eq!(text(&out.stdout), "postgresql://shop@127.0.0.1:7000/shop\n");
    let out = run(pgbox(&sub).arg("url").env("PGBOX_PORT", "seven"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("PGBOX_PORT=`seven` is not a number"));
}

#[test]
fn missing_config_names_init() {
    let d = tmp();
    let out = run(pgbox(d.path()).arg("status"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("hint: run `pgbox init`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_engine_is_reported_with_a_hint() {
    let d = tmp();
    std::fs::write(d.path().join("pgbox.toml"), "").unwrap();
    let sock = d.path().join("nothing.sock");
    let host = format!("unix://{}", sock.display());
    let out = run(pgbox(d.path()).arg("status").env("DOCKER_HOST", &host));
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("error: no container engine answered"), "{err}");
    assert!(
        err.contains(&format!("{host} (DOCKER_HOST): no socket there")),
        "{err}"
    );
    assert!(err.contains("hint: DOCKER_HOST is set to"), "{err}");

    let out = run(pgbox(d.path()).args(["status", "--engine", &sock.display().to_string()]));
    assert_eq!(out.status.code(), Some(3));
    let out = run(pgbox(d.path()).args(["ls", "--engine", "lxc"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`lxc` is not an engine"));
}

#[test]
fn init_without_a_terminal_names_the_flag_and_writes_nothing() {
    let d = tmp();
    let out = run(pgbox(d.path()).arg("init"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("no terminal to ask on"), "{err}");
    assert!(err.contains("pass `--yes`"), "{err}");
    assert!(!d.path().join("pgbox.toml").exists());
    assert!(!d.path().join(".pgbox").exists());
}

#[test]
fn init_is_idempotent_and_keeps_the_password() {
    let d = tmp();
    // No engine here: init writes config and secret and defers the data folder.
    let engine = format!("unix://{}/none.sock", d.path().display());
    let first = ok(pgbox(d.path()).args([
        "init", "--yes", "--name", "idem", "--port", "6001", "--engine", &engine,
    ]));
    assert!(text(&first.stderr).contains("warning: no container engine answered"));
    let secret = d.path().join(".pgbox/secrets/postgres_password");
    let pw = std::fs::read(&secret).unwrap();
    let toml = std::fs::read(d.path().join("pgbox.toml")).unwrap();
    let second = ok(pgbox(d.path()).args(["init", "--yes", "--engine", &engine]));
    assert!(
        text(&second.stderr).contains("already initialised; nothing changed"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(std::fs::read(&secret).unwrap(), pw);
    assert_eq!(std::fs::read(d.path().join("pgbox.toml")).unwrap(), toml);
    // --force rewrites pgbox.toml with new flags, keeping name and password.
    ok(pgbox(d.path()).args([
        "init", "--yes", "--force", "--port", "6002", "--engine", &engine,
    ]));
    let url = ok(pgbox(d.path()).arg("url"));
    assert_eq!(text(&url.stdout), "postgresql://idem@127.0.0.1:6002/idem\n");
    assert_eq!(std::fs::read(&secret).unwrap(), pw);
    // The written file is valid and its .gitignore keeps the secret out of git.
    assert_eq!(
        std::fs::read_to_string(d.path().join(".pgbox/.gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );
}

#[test]
fn completions_are_current() {
    let d = tmp();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "pgbox.bash"),
        ("zsh", "_pgbox"),
        ("fish", "pgbox.fish"),
    ] {
        let out = ok(pgbox(d.path()).args(["completions", shell]));
        let committed = std::fs::read(root.join(file)).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "completions/{file} is stale: run `scripts/gen-completions.sh` and commit the result"
        );
    }
    let man = ok(pgbox(d.path()).arg("man"));
    assert!(text(&man.stdout).contains(".TH pgbox"));
}

/// Backups with crafted timestamps: one per day at 02:00 UTC for `days` days up to 2026-11-27.
fn craft_backups(dir: &std::path::Path, project: &str, days: i64) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let end = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    (0..days)
        .map(|d| {
            let day = end - chrono::Duration::days(d);
            let stamp = format!("{}T020000Z", day.format("%Y%m%d"));
            let name = format!("{project}-{project}-{stamp}.dump.zst");
            std::fs::write(dir.join(&name), b"x").unwrap();
            let manifest = serde_json::json!({
                "file": name, "project": project, "database": project, "kind": "database",
                "format": "custom", "compression": "zstd", "level": 3, "bytes": 1, "sha256": "00",
                "duration_ms": 1, "server_version": "15", "pg_dump_version": "15", "pgbox_version": "0",
                "image": "i", "created_at": format!("{}T02:00:00Z", day.format("%Y-%m-%d")),
                "verified_at": if d == 20 { serde_json::json!("2026-11-27T03:00:00Z") } else { serde_json::Value::Null },
            });
            std::fs::write(dir.join(format!("{name}.json")), manifest.to_string()).unwrap();
            day.format("%Y-%m-%d").to_string()
        })
        .collect()
}

fn remaining_days(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dump.zst"))
        .map(|n| {
            let stamp = n.rsplit('-').next().unwrap()[..8].to_string();
            format!("{}-{}-{}", &stamp[..4], &stamp[4..6], &stamp[6..8])
        })
        .collect();
    v.sort();
    v.reverse();
    v
}

#[test]
fn prune_keeps_exactly_what_the_policy_says() {
    let d = tmp();
    std::fs::write(d.path().join("pgbox.toml"), "[project]\nname = \"ret\"\n").unwrap();
    let dir = d.path().join("backups");
    let all = craft_backups(&dir, "ret", 45);
    let prune = [
        "backup",
        "prune",
        "--keep-last",
        "0",
        "--keep-daily",
        "5",
        "--keep-weekly",
        "3",
        "--keep-monthly",
        "2",
    ];

    // Without a terminal and without --yes nothing is deleted.
    let out = run(pgbox(d.path()).args(prune));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pass `--yes`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(remaining_days(&dir), all);
    // --dry-run shows and deletes nothing.
    let out = ok(pgbox(d.path()).args(prune).arg("--dry-run"));
    assert!(text(&out.stderr).contains("would delete"));
    assert_eq!(remaining_days(&dir), all);

    ok(pgbox(d.path()).args(prune).arg("--yes"));
    assert_eq!(
        remaining_days(&dir),
        vec![
            "2026-11-27",
            "2026-11-26",
            "2026-11-25",
            "2026-11-24",
            "2026-11-23", // 5 days
            "2026-11-22",
            "2026-11-15", // weeks 2 and 3 (the 27th is week 1)
            "2026-11-07", // the newest verified backup (day 20 back), always kept
            "2026-10-31", // month 2 (November is month 1)
        ]
    );
    // Manifests went with their files.
    let jsons = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(jsons, 9);
}

#[test]
fn prune_deletes_nothing_when_the_backup_record_cannot_be_read() {
    let d = tmp();
    std::fs::write(d.path().join("pgbox.toml"), "[project]\nname = \"torn\"\n").unwrap();
    let dir = d.path().join("backups");
    let all = craft_backups(&dir, "torn", 20);
    // A record cut short: what the last backup did is unknown, not "fine".
    std::fs::write(
        dir.join(".pgbox-torn-last-backup.json"),
        r#"{"at":"2026-11-27T0"#,
    )
    .unwrap();
    let out = run(pgbox(d.path()).args([
        "backup",
        "prune",
        "--keep-daily",
        "1",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--yes",
    ]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot tell how the latest backup ended"),
        "{err}"
    );
    assert!(err.contains(".pgbox-torn-last-backup.json"), "{err}");
    assert_eq!(remaining_days(&dir), all);
}

#[test]
fn prune_deletes_nothing_after_a_failed_backup() {
    let d = tmp();
    std::fs::write(d.path().join("pgbox.toml"), "[project]\nname = \"fail\"\n").unwrap();
    let dir = d.path().join("backups");
    let all = craft_backups(&dir, "fail", 20);
    std::fs::write(
        dir.join(".pgbox-fail-last-backup.json"),
        r#"{"at":"2026-11-27T02:00:00Z","ok":false,"file":null,"error":"pg_dump failed"}"#,
    )
    .unwrap();
    let out = run(pgbox(d.path()).args([
        "backup",
        "prune",
        "--keep-daily",
        "1",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--yes",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the latest backup failed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(remaining_days(&dir), all);
}
