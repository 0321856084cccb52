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
