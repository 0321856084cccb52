//! Backup and restore against a real engine: round trips of awkward data, failures
//! that must leave nothing behind, refusals that must leave the database alone.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const TRICKY: &str = r#"
create table tricky(id int primary key, t text, b bytea, u text);
insert into tricky values (1, E'line1\r\nline2\n\ttab\\back', (select string_agg(decode(lpad(to_hex(i), 2, '0'), 'hex'), ''::bytea order by i) from generate_series(0, 255) i), 'héllo 🐘 日本語 ∑');
insert into tricky values (2, repeat('x', 10 * 1024 * 1024), '\x00'::bytea, E'\u0001\u007f');
select lo_from_bytea(0, '\x00ff0d0a0d'::bytea);
"#;

/// A checksum of everything the tricky data holds, large objects included.
const CHECKSUM: &str = "select md5(string_agg(tricky::text, '|' order by id)) || ':' || (select md5(string_agg(lo_get(oid)::text, '|' order by oid)) from pg_largeobject_metadata) from tricky";

fn sql_in(p: &Project, db: &str, sql: &str) -> String {
    let out = ok(&mut p.cmd(&["psql", "--db", db, "-X", "-A", "-t", "-c", sql]));
    text(&out.stdout).trim().to_string()
}

fn databases(p: &Project) -> String {
    p.sql("select string_agg(datname, ',' order by datname) from pg_database")
}

#[test]
fn tricky_data_round_trips_in_every_format() {
    round_trip(Eng::Docker, None);
}

#[test]
fn tricky_data_round_trips_in_every_format_on_podman() {
    round_trip(Eng::Podman, None);
}

/// Tricky data survives backup and restore in every format. `major`: the PostgreSQL
/// major to run (None: pgbox's default).
pub fn round_trip(eng: Eng, major: Option<u32>) {
    let tag = match major {
        Some(m) => format!("rt-{}-{m}", eng.cli()),
        None => format!("rt-{}", eng.cli()),
    };
    let p = Project::with_major(&tag, eng, major);
    p.init(&[]);
    p.up();
    p.assert_major();
    let db = p.name.replace('-', "_");
    p.sql(TRICKY);
    let before = p.sql(CHECKSUM);

    // custom + zstd (the default), restored over the damaged original.
    let out = ok(&mut p.cmd(&["backup"]));
    let file = PathBuf::from(text(&out.stdout).trim());
    assert!(file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with(".dump.zst"));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", file.display())).unwrap())
            .unwrap();
    for key in [
        "database",
        "server_version",
        "pg_dump_version",
        "format",
        "compression",
        "bytes",
        "sha256",
        "duration_ms",
        "pgbox_version",
        "created_at",
        "image",
    ] {
        assert!(!m[key].is_null(), "manifest lacks {key}");
    }
    assert_eq!(
        m["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    p.sql("delete from tricky where id = 2");
    let out = ok(&mut p.cmd(&["restore", "--yes"]));
    assert!(
        text(&out.stderr).contains("tables"),
        "summary: {}",
        text(&out.stderr)
    );
    assert_eq!(p.sql(CHECKSUM), before, "custom/zstd round trip");

    // plain + gzip and directory, each restored next to it with --into.
    for (fmt, comp, into) in [
        ("plain", "gzip", "copy_plain"),
        ("directory", "none", "copy_dir"),
    ] {
        let out = ok(&mut p.cmd(&["backup", "--format", fmt, "--compress", comp]));
        let f = text(&out.stdout).trim().to_string();
        ok(&mut p.cmd(&["restore", &f, "--into", into]));
        assert_eq!(
            sql_in(&p, into, CHECKSUM),
            before,
            "{fmt}/{comp} round trip"
        );
    }
    // The original database was kept aside after the first restore.
    assert!(
        databases(&p).contains(&format!("{db}_pgbox_old_")),
        "{}",
        databases(&p)
    );

    // Listing, verification and a deep verification.
    let list = ok(&mut p.cmd(&["backup", "list", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["verified"] == false));
    let v = ok(&mut p.cmd(&["backup", "verify", &file.display().to_string(), "--deep"]));
    assert!(
        text(&v.stderr).contains("matched the row counts of 1 tables"),
        "{}",
        text(&v.stderr)
    );
    let list = ok(&mut p.cmd(&["backup", "list", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.iter().filter(|r| r["verified"] == true).count(), 1);

    // -o - streams the compressed dump and nothing else to stdout.
    let out = ok(&mut p.cmd(&["backup", "-o", "-"]));
    assert_eq!(&out.stdout[..4], &[0x28, 0xB5, 0x2F, 0xFD], "a zstd frame");
    let copy = p.path().join("stdout.dump.zst");
    std::fs::write(&copy, &out.stdout).unwrap();
    ok(&mut p.cmd(&[
        "restore",
        &copy.display().to_string(),
        "--into",
        "copy_stdout",
    ]));
    assert_eq!(sql_in(&p, "copy_stdout", CHECKSUM), before);
}

#[test]
fn killing_the_container_mid_backup_leaves_nothing_behind() {
    let p = Project::new("kill-bk");
    p.init(&[]);
    p.up();
    p.sql("create table small(x int); insert into small values (1)");
    let first = PathBuf::from(text(&ok(&mut p.cmd(&["backup"])).stdout).trim());
    let first_bytes = std::fs::read(&first).unwrap();
    // About 300 MB uncompressed: long enough to kill the container mid-stream.
    p.sql("create table big as select i, repeat(md5(i::text), 30) as filler from generate_series(1, 300000) i");
    let dir = p.path().join("backups");
    let mut child = p
        .cmd(&["backup", "--compress", "none"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let growing = file_names(&dir).iter().any(|f| f.ends_with(".partial"));
        if growing {
            break;
        }
        assert!(Instant::now() < deadline, "no .partial appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    docker(&["kill", &p.container()]);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a killed backup must fail");
    assert!(
        text(&out.stderr).contains("error: backup of"),
        "{}",
        text(&out.stderr)
    );
    let files = file_names(&dir);
    assert!(
        files.iter().all(|f| !f.ends_with(".partial")),
        "partial left: {files:?}"
    );
    let dumps: Vec<_> = files
        .iter()
        .filter(|f| f.ends_with(".dump") || f.ends_with(".zst"))
        .collect();
    assert_eq!(dumps.len(), 1, "only the earlier backup: {files:?}");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        first_bytes,
        "earlier backup unchanged"
    );
    let last: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!(".pgbox-{}-last-backup.json", p.name))).unwrap(),
    )
    .unwrap();
    assert_eq!(last["ok"], false, "the failure is recorded");
}

/// A tmpfs mounted for the length of a test (needs root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (the full-disk test runs as root in CI)"
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_nothing() {
    let p = Project::new("full");
    p.init(&[]);
    p.up();
    p.sql("create table noise as select i, md5(i::text) || md5((i * 7)::text) as h from generate_series(1, 200000) i");
    let small = Tmpfs::new(p.path().join("tiny"), "2m");
    let out = run(&mut p.cmd(&[
        "backup",
        "--compress",
        "none",
        "-o",
        &small.0.display().to_string(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("no backup file was written"), "{err}");
    assert!(
        file_names(&small.0).is_empty(),
        "left behind: {:?}",
        file_names(&small.0)
    );
}

#[test]
fn damaged_backups_are_refused_and_the_database_is_untouched() {
    let p = Project::new("dmg");
    p.init(&[]);
    p.up();
    p.sql(TRICKY);
    let file = PathBuf::from(text(&ok(&mut p.cmd(&["backup"])).stdout).trim());
    p.sql("insert into tricky values (3, 'after the backup', null, null)");
    let before = p.sql(CHECKSUM);
    let dbs = databases(&p);
    let bytes = std::fs::read(&file).unwrap();

    // Wrong checksum: one flipped byte, same length.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(&file, &flipped).unwrap();
    let out = run(&mut p.cmd(&["restore", "--yes"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not match its manifest's checksum"),
        "{}",
        text(&out.stderr)
    );

    // Truncated, with its manifest: the checksum catches it.
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&mut p.cmd(&["restore", "--yes"]));
    assert_eq!(out.status.code(), Some(1));

    // Truncated, without a manifest: unpacking fails before the database is touched.
    let bare = p.path().join("bare.dump.zst");
    std::fs::write(&bare, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&mut p.cmd(&["restore", &bare.display().to_string(), "--yes"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no pgbox manifest"),
        "{}",
        text(&out.stderr)
    );

    assert_eq!(p.sql(CHECKSUM), before, "database unchanged");
    assert_eq!(databases(&p), dbs, "no scratch database left behind");
}

#[test]
fn a_restore_that_fails_halfway_leaves_the_target_as_it_was() {
    let p = Project::new("half");
    p.init(&[]);
    p.up();
    // Objects owned by a role that will not exist at restore time.
    p.sql("create role alice; create table owned(x int); alter table owned owner to alice; insert into owned values (1)");
    let file = text(&ok(&mut p.cmd(&["backup"])).stdout).trim().to_string();
    p.sql("drop table owned; drop role alice; create table current_data(x int); insert into current_data values (42)");
    let before = p.sql("select string_agg(x::text, ',') from current_data");
    let dbs = databases(&p);
    let out = run(&mut p.cmd(&["restore", &file, "--yes"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs roles that do not exist here: alice"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        p.sql("select string_agg(x::text, ',') from current_data"),
        before
    );
    // --no-owner restores it.
    ok(&mut p.cmd(&["restore", &file, "--yes", "--no-owner", "--drop-old"]));
    assert_eq!(p.sql("select x from owned"), "1");
    assert_eq!(databases(&p), dbs, "--drop-old leaves no old database");

    // An error in the middle of a plain SQL file: the scratch database goes, the target stays.
    p.sql("create table keep_me(x int); insert into keep_me values (7)");
    let broken = p.path().join("broken.sql.gz");
    let mut gz = Command::new("gzip")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&broken).unwrap())
        .spawn()
        .unwrap();
    gz.stdin.take().unwrap().write_all(b"create table a(x int);\ninsert into a values (1);\nselect 1/0;\ncreate table b(x int);\n").unwrap();
    assert!(gz.wait().unwrap().success());
    let out = run(&mut p.cmd(&["restore", &broken.display().to_string(), "--yes"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("division by zero"), "{err}");
    assert!(err.contains("is unchanged"), "{err}");
    assert_eq!(p.sql("select x from keep_me"), "7");
    assert_eq!(databases(&p), dbs);
}

#[test]
fn a_plain_dump_made_the_common_way_imports() {
    let p = Project::new("imp");
    p.init(&[]);
    p.up();
    p.sql(TRICKY);
    let before = p.sql(CHECKSUM);
    let db = p.name.replace('-', "_");
    let dump = p.path().join("legacy.sql.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker exec {} pg_dump -U {db} {db} | gzip > '{}'",
            p.container(),
            dump.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(&mut p.cmd(&["restore", &dump.display().to_string(), "--into", "imported"]));
    assert!(text(&out.stderr).contains("has no pgbox manifest"));
    assert_eq!(sql_in(&p, "imported", CHECKSUM), before);
    // Without a TTY and without --yes, replacing a database is refused.
    let out = run(&mut p.cmd(&["restore", &dump.display().to_string()]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pass `--yes`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn backup_all_writes_globals_and_every_database() {
    let p = Project::new("all");
    p.init(&[]);
    p.up();
    p.sql("create role reporter");
    p.sql("create database second");
    sql_in(
        &p,
        "second",
        "create table s(x int); insert into s values (2)",
    );
    let out = ok(&mut p.cmd(&["backup", "--all"]));
    let files: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    let db = p.name.replace('-', "_");
    for part in ["-globals-", &format!("-{db}-"), "-second-", "-postgres-"] {
        assert!(
            files.iter().any(|f| f.contains(part)),
            "{part} missing from {files:?}"
        );
    }
    let globals = files.iter().find(|f| f.contains("-globals-")).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{globals}.json")).unwrap()).unwrap();
    assert_eq!(m["kind"], "globals");

    // The roles come back from the globals file, then a database from its own file.
    p.sql("drop database second");
    p.sql("drop role reporter");
    ok(&mut p.cmd(&["restore", globals, "--yes"]));
    assert_eq!(
        p.sql("select count(*) from pg_roles where rolname = 'reporter'"),
        "1"
    );
    let second = files.iter().find(|f| f.contains("-second-")).unwrap();
    ok(&mut p.cmd(&["restore", second, "--yes"]));
    assert_eq!(sql_in(&p, "second", "select x from s"), "2");
}

/// Backups are named to the second: three runs back to back (as a failed and a
/// retried scheduled run can be) each get their own file instead of "already exists".
#[test]
fn backups_back_to_back_each_get_their_own_file() {
    let p = Project::new("b2b");
    p.init(&[]);
    p.up();
    for _ in 0..3 {
        ok(&mut p.cmd(&["backup"]));
    }
    let dumps: Vec<String> = file_names(&p.path().join("backups"))
        .into_iter()
        .filter(|n| n.ends_with(".dump.zst"))
        .collect();
    assert_eq!(dumps.len(), 3, "{dumps:?}");
}
