//! Issue #11 for backups: `[backup] format/compress/level` in pgbox.toml (used by
//! `backup` and `schedule run`), and restoring an unpacked directory dump, whose
//! folder is streamed into the container as a tar.

use crate::support::*;

/// Add keys to the `[backup]` section `init` wrote.
fn backup_keys(p: &Project, keys: &str) {
    let path = p.path().join("pgbox.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\n[backup]\n"), "{text}");
    let text = text.replacen("\n[backup]\n", &format!("\n[backup]\n{keys}"), 1);
    std::fs::write(&path, text).unwrap();
}

#[test]
fn a_gzip_level_out_of_range_names_its_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("pgbox.toml"),
        "[project]\nname = \"lvl\"\n\n[backup]\ncompress = \"gzip\"\nlevel = 12\n",
    )
    .unwrap();
    let out = run(pgbox(d.path()).args(["backup"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("pgbox.toml:6:9: `12` is out of range for gzip"),
        "{err}"
    );
}

#[test]
fn schedule_run_honours_backup_format_in_pgbox_toml() {
    let p = Project::new("shfmt");
    p.init(&[]);
    backup_keys(&p, "format = \"plain\"\ncompress = \"gzip\"\n");
    p.up();
    p.sql("create table t(x int); insert into t select generate_series(1, 10)");
    ok(&mut p.cmd(&["schedule", "run"]));
    let list = ok(&mut p.cmd(&["backup", "list", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let file = rows[0]["file"].as_str().unwrap().to_string();
    assert!(file.ends_with(".sql.gz"), "{file}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{file}.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "plain");
    assert_eq!(manifest["compression"], "gzip");
    assert_eq!(manifest["level"], 6);
    // A flag still wins over pgbox.toml.
    let out = ok(&mut p.cmd(&["backup", "--format", "custom", "--compress", "zstd"]));
    assert!(text(&out.stdout).trim().ends_with(".dump.zst"));
}

#[test]
fn an_unpacked_directory_dump_restores() {
    let p = Project::new("shdir");
    p.init(&[]);
    p.up();
    p.sql("create table t(x int, y text); insert into t select g, repeat('y', g % 50) from generate_series(1, 20000) g");
    let out_dir = p.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = ok(&mut p.cmd(&[
        "backup",
        "--format",
        "directory",
        "--compress",
        "none",
        "-o",
        &out_dir.display().to_string(),
    ]));
    let packed = text(&out.stdout).trim().to_string();
    let folder = p.path().join("unpacked");
    std::fs::create_dir_all(&folder).unwrap();
    let st = std::process::Command::new("tar")
        .args(["-xf", &packed, "-C"])
        .arg(&folder)
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(&mut p.cmd(&[
        "restore",
        &folder.display().to_string(),
        "--into",
        "copy_dir",
        "--yes",
    ]));
    assert!(
        text(&out.stderr).contains("1 tables, 20000 rows (matching the backup)"),
        "{}",
        text(&out.stderr)
    );
}
