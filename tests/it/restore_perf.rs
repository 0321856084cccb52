//! The overlapped restore of issue #20 keeps every guarantee of the serial one:
//! the host reads the backup (checksum, rows per table) while it uploads and the
//! scratch database is created during the upload; a damaged file is still named
//! as such and leaves nothing behind, Ctrl-C in the overlapped phase leaves no
//! scratch database, folder or process, and the rows counted on the host are the
//! rows the restored tables hold, for names and rows that are easy to miscount.
//! The restored database is analyzed before `restore` returns. What killed
//! restores left is removed beside the upload, never this restore's own things,
//! and Ctrl-C while both run leaves nothing of this restore.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::restore_safety::{db_name, in_container, restore_dirs, restore_procs, signal};
use crate::support::*;

/// Through docker exec, not `pgbox psql`: no second pgbox while one holds the lock.
fn container_sql(p: &Project, sql: &str) -> String {
    in_container(
        p,
        &format!("psql -U {} -d postgres -XAt -c \"{sql}\"", db_name(p)),
    )
    .trim()
    .to_string()
}

fn scratch_dbs(p: &Project) -> String {
    container_sql(
        p,
        "select string_agg(datname, ',') from pg_database where datname ~ '_pgbox_restore_'",
    )
}

fn all_dbs(p: &Project) -> String {
    container_sql(
        p,
        "select string_agg(datname, ',' order by datname) from pg_database",
    )
}

fn assert_nothing_left(p: &Project) {
    assert_eq!(scratch_dbs(p), "", "no scratch database");
    assert_eq!(restore_dirs(p), "", "no upload folder");
    assert_eq!(restore_procs(p), "", "no pg_restore or psql");
}

/// A backup of a table big enough that its upload takes a while.
fn big_backup(p: &Project) -> String {
    p.sql("create table big as select g, md5(g::text) as h from generate_series(1, 2000000) g");
    text(&ok(&mut p.cmd(&["backup"])).stdout).trim().to_string()
}

#[test]
fn a_damaged_backup_is_named_as_such_while_it_uploads_and_leaves_nothing() {
    let p = Project::new("rpdamaged");
    p.init(&[]);
    p.up();
    let file = big_backup(&p);
    p.sql("delete from big where g > 10");
    // One byte changed in the middle: still a zstd stream the container may
    // unpack (or not); either way the checksum is what the user is told about.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let dbs = all_dbs(&p);
    for args in [
        vec!["restore", file.as_str(), "--yes", "--into", "copy"],
        vec!["restore", file.as_str(), "--yes", "--drop-old"],
    ] {
        let out = run(&mut p.cmd(&args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("does not match its manifest's checksum; refusing to restore it"),
            "{args:?}: {err}"
        );
        assert_nothing_left(&p);
        assert_eq!(all_dbs(&p), dbs, "{args:?}: no database made or changed");
        assert_eq!(p.sql("select count(*) from big"), "10");
    }
}

/// Poll `f` until it returns true (60 s at most).
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_while_the_scratch_database_is_made_during_the_upload_leaves_nothing() {
    let p = Project::new("rpsigint");
    p.init(&[]);
    p.up();
    let file = big_backup(&p);
    p.sql("delete from big where g > 1000");
    let dbs = all_dbs(&p);
    let mut overlapped = 0;
    // SIGINT as soon as the scratch database exists: during the upload (the
    // overlapped phase) or, on a fast machine, just after it. Three tries, and
    // at least one must have hit the upload, or the test proves nothing.
    for _ in 0..3 {
        let child = p
            .cmd(&["restore", &file, "--yes", "--drop-old"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("the scratch database", || !scratch_dbs(&p).is_empty());
        // The upload's receiving process (`pgbox-ctl receive`) still runs.
        let uploading = in_container(
            &p,
            r#"for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f" 2>/dev/null; echo; done | grep -c 'pgbox-ctl[ ]receive'; true"#,
        )
        .trim()
            != "0";
        signal(&child, "-INT");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
        assert_nothing_left(&p);
        assert_eq!(all_dbs(&p), dbs);
        assert_eq!(p.sql("select count(*) from big"), "1000");
        overlapped += uploading as u32;
        if overlapped > 0 {
            break;
        }
    }
    assert!(
        overlapped > 0,
        "the scratch database never existed while the backup uploaded"
    );
}

#[test]
fn rows_counted_on_the_host_match_odd_names_and_rows() {
    let p = Project::new("rpcount");
    p.init(&[]);
    p.up();
    p.sql(
        r#"create schema "we ""ird"".s";
           create table "we ""ird"".s"."ta ble" (x int);
           insert into "we ""ird"".s"."ta ble" select generate_series(1, 25);
           create table nocols ();
           insert into nocols default values; insert into nocols default values; insert into nocols default values;
           create table texts (t text);
           insert into texts values (''), (''), ('\.'), (E'a\nb'), (E'\\.'), (null);
           create table parted (k int, v text) partition by range (k);
           create table parted_1 partition of parted for values from (0) to (100);
           create table parted_2 partition of parted for values from (100) to (1000);
           insert into parted select g, 'v' from generate_series(0, 499) g;
           create table empty (x int)"#,
    );
    let file = text(&ok(&mut p.cmd(&["backup"])).stdout).trim().to_string();
    let out = ok(&mut p.cmd(&["restore", &file, "--yes", "--into", "copy", "-v"]));
    let err = text(&out.stderr);
    assert!(
        err.contains("counted the backup's rows on the host"),
        "the host counted (no fallback to the container): {err}"
    );
    assert!(
        err.contains("read the backup's table of contents on the host"),
        "the roles it names all exist: no pg_restore --list in the container: {err}"
    );
    // 25 + 3 + 6 + 500 + 0 rows in 6 tables of COPY data (or 5, when the
    // partitions' rows are copied into their root).
    assert!(
        err.contains("6 tables, 534 rows (matching the backup)")
            || err.contains("5 tables, 534 rows (matching the backup)"),
        "{err}"
    );
    let copy = |sql: &str| {
        in_container(
            &p,
            &format!("psql -U {} -d copy -XAt -c \"{sql}\"", db_name(&p)),
        )
        .trim()
        .to_string()
    };
    assert_eq!(copy("select count(*) from nocols"), "3");
    assert_eq!(copy("select count(*) from texts where t = ''"), "2");
    assert_eq!(copy("select count(*) from parted"), "500");
}

#[test]
fn the_restored_database_has_planner_statistics_when_restore_returns() {
    let p = Project::new("rpanalyze");
    p.init(&[]);
    p.up();
    p.sql("create table t as select g from generate_series(1, 5000) g");
    let file = text(&ok(&mut p.cmd(&["backup"])).stdout).trim().to_string();
    ok(&mut p.cmd(&["restore", &file, "--yes", "--into", "copy"]));
    let stats = in_container(
        &p,
        &format!(
            "psql -U {} -d copy -XAt -c \"select count(*) from pg_stats where tablename = 't'\"",
            db_name(&p)
        ),
    );
    assert_eq!(stats.trim(), "1", "ANALYZE ran before restore returned");
}

/// A scratch database and upload folder as a killed restore leaves them.
fn plant_leftovers(p: &Project) -> (String, String) {
    let db = format!("{}_pgbox_restore_20200101000000", db_name(p));
    let dir = "/tmp/pgbox-restore-20200101000000-1".to_string();
    container_sql(p, &format!("drop database if exists {db}"));
    container_sql(p, &format!("create database {db}"));
    in_container(p, &format!("mkdir -p {dir}"));
    (db, dir)
}

#[test]
fn leftovers_are_removed_beside_the_upload_and_ctrl_c_there_leaves_nothing() {
    let p = Project::new("rpleft");
    p.init(&[]);
    p.up();
    let file = big_backup(&p);
    p.sql("delete from big where g > 1000");
    let restore = || {
        p.cmd(&["restore", &file, "--yes", "--drop-old"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // SIGINT once this restore's scratch database exists: the leftovers are
    // being removed beside its upload then. Nothing of this restore is left; a
    // planted leftover is either removed or still there, never half of one.
    let (db, dir) = plant_leftovers(&p);
    let child = restore();
    wait_for("this restore's scratch database", || {
        scratch_dbs(&p).split(',').any(|n| !n.is_empty() && n != db)
    });
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    for n in scratch_dbs(&p).split(',').filter(|n| !n.is_empty()) {
        assert_eq!(n, db, "only the planted scratch database may be left");
    }
    for d in restore_dirs(&p).lines() {
        assert_eq!(d, dir, "only the planted folder may be left");
    }
    assert_eq!(restore_procs(&p), "");
    assert_eq!(p.sql("select count(*) from big"), "1000");

    // A whole restore beside fresh leftovers: it names exactly them, keeps its
    // own folder and scratch database through the upload, and swaps in.
    let (db, dir) = plant_leftovers(&p);
    let out = ok(&mut p.cmd(&["restore", &file, "--yes", "--drop-old"]));
    let err = text(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("removed what an interrupted restore left behind"))
        .unwrap_or_else(|| panic!("no leftover line in:\n{err}"));
    assert!(
        line.ends_with(&format!("database `{db}`, `{dir}`")),
        "only the planted leftovers are named: {line}"
    );
    assert_eq!(p.sql("select count(*) from big"), "2000000");
    assert_nothing_left(&p);
}
