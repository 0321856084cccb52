//! Issue 11: errors the project scaffold, the server lifecycle and `generate` used
//! to swallow. Each test fails on the code before the fix: it succeeded quietly
//! with a wrong result (an empty password in a URL, a forgotten storage decision,
//! defaults in place of an unreadable pgbox.toml, a half-written deploy folder).

use std::path::Path;

use crate::support::*;

fn toml(dir: &Path, name: &str, port: u16) {
    std::fs::write(
        dir.join("pgbox.toml"),
        format!("[project]\nname = \"{name}\"\n[network]\nport = {port}\n"),
    )
    .unwrap();
}

/// An empty password file is an error, not an empty password in the URL (or, in
/// `up`, an empty password applied to the role).
#[test]
fn an_empty_password_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    toml(d.path(), "emptypw", 6011);
    let secrets = d.path().join(".pgbox/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("postgres_password"), "\n").unwrap();
    let out = run(pgbox(d.path()).args(["url", "--with-password"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("postgres_password` is empty"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

/// A corrupt `.pgbox/state.json` stops `down` (and `up`, `save`, `status`): read as
/// empty it would forget the storage mode in use and the password applied.
#[test]
fn a_corrupt_state_file_is_an_error_not_a_fresh_start() {
    let p = Project::new("badstate");
    toml(p.path(), &p.name, p.port);
    std::fs::create_dir_all(p.path().join(".pgbox")).unwrap();
    std::fs::write(p.path().join(".pgbox/state.json"), "{\"storage\": ").unwrap();
    for args in [&["down"][..], &["status"][..], &["save"][..]] {
        let out = run(&mut p.cmd(args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("state.json` is not valid"), "{args:?}: {err}");
    }
}

/// `init --force` over a pgbox.toml it cannot read says so before it writes the
/// defaults in place of the user's names and port.
#[test]
fn init_force_over_an_unreadable_config_warns() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pgbox.toml"), "[project\nname = \"x\"\n").unwrap();
    let engine = format!("unix://{}/none.sock", d.path().display());
    let out = ok(pgbox(d.path()).args([
        "init", "--yes", "--force", "--name", "fixed", "--port", "6012", "--engine", &engine,
    ]));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: cannot read the existing `") && err.contains("rewrites it"),
        "{err}"
    );
}

/// A file `generate` cannot read is not taken for a new one: the run stops before
/// anything is written, instead of writing the files ahead of it and then failing.
#[test]
fn generate_stops_on_an_unreadable_file_before_writing() {
    let d = tempfile::tempdir().unwrap();
    toml(d.path(), "genread", 6013);
    let out_dir = d.path().join("deploy/dev");
    std::fs::create_dir_all(out_dir.join("conf/pg_hba.conf")).unwrap();
    let out = run(pgbox(d.path()).args(["generate", "compose"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("pg_hba.conf` to compare it"), "{err}");
    assert!(
        !out_dir.join("compose.yaml").exists(),
        "a file was written before the failure: {err}"
    );
}
