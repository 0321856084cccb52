//! `pgbox restore` safety against a real engine: plain SQL files that would act
//! outside the scratch database, restores that come out empty or short, and
//! SIGINT, SIGTERM and SIGKILL in the middle of a restore.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

pub(crate) fn db_name(p: &Project) -> String {
    p.name.replace('-', "_")
}

fn databases(p: &Project) -> String {
    p.sql("select string_agg(datname, ',' order by datname) from pg_database where datname !~ '_pgbox_old_'")
}

/// Run a shell command on the host, writing its stdout to `file` in the project.
fn to_file(p: &Project, name: &str, cmd: &str) -> PathBuf {
    let path = p.path().join(name);
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} > '{}'", path.display()))
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
    path
}

#[test]
fn a_cluster_dump_never_drops_the_live_database() {
    let p = Project::new("rsall");
    p.init(&[]);
    p.up();
    let db = db_name(&p);
    p.sql("create table t(x int); insert into t select generate_series(1, 100)");
    let file = to_file(
        &p,
        "all.sql",
        &format!(
            "docker exec -u postgres {} pg_dumpall -U {db} -c --if-exists",
            p.container()
        ),
    );
    p.sql("insert into t select generate_series(101, 150)");
    let dbs = databases(&p);
    let f = file.display().to_string();

    // Without a section: refused before anything is touched, and it says why.
    let out = run(&mut p.cmd(&["restore", &f, "--yes"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("whole-cluster dump"), "{err}");
    assert!(err.contains(&format!("`{db}`")), "{err}");
    assert!(err.contains("--db NAME"), "{err}");
    assert_eq!(p.sql("select count(*) from t"), "150");
    assert_eq!(databases(&p), dbs);

    // With --db: that database's section replaces it; roles and the rest stay as they are.
    let out = ok(&mut p.cmd(&["restore", &f, "--yes", "--db", &db, "--drop-old"]));
    let err = text(&out.stderr);
    assert!(
        err.contains("1 tables, 100 rows (matching the backup)"),
        "{err}"
    );
    assert_eq!(p.sql("select count(*) from t"), "100");
    assert_eq!(databases(&p), dbs);
    assert_eq!(p.sql("select current_user"), db, "the user still logs in");
}

#[test]
fn a_create_clean_dump_restores_its_content_not_an_empty_database() {
    let p = Project::new("rscc");
    p.init(&[]);
    p.up();
    let db = db_name(&p);
    p.sql("create table t(x int); insert into t select generate_series(1, 40)");
    p.sql(&format!("alter database {db} set work_mem = '7MB'"));
    let file = to_file(
        &p,
        "cc.sql.gz",
        &format!(
            "docker exec -u postgres {} pg_dump -U {db} -C -c {db} | gzip",
            p.container()
        ),
    );
    p.sql("insert into t select generate_series(41, 50)");
    let dbs = databases(&p);
    let out = ok(&mut p.cmd(&["restore", &file.display().to_string(), "--yes"]));
    let err = text(&out.stderr);
    assert!(
        err.contains("1 tables, 40 rows (matching the backup)"),
        "{err}"
    );
    assert_eq!(p.sql("select count(*) from t"), "40");
    assert_eq!(
        p.sql(&format!("select setconfig::text from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase where d.datname = '{db}'")),
        "{work_mem=7MB}",
        "the database's own settings come along"
    );
    // The previous database is kept aside, with the rows it had.
    let old = p.sql("select datname from pg_database where datname ~ '_pgbox_old_'");
    let out = ok(&mut p.cmd(&[
        "psql",
        "--db",
        &old,
        "-X",
        "-At",
        "-c",
        "select count(*) from t",
    ]));
    assert_eq!(text(&out.stdout).trim(), "50");
    assert_eq!(databases(&p), dbs);
}

#[test]
fn a_restore_that_comes_out_empty_is_refused_and_the_target_stays() {
    let p = Project::new("rsempty");
    p.init(&[]);
    p.up();
    p.sql("create table keep(x int); insert into keep values (7)");
    let dbs = databases(&p);
    // Valid SQL whose rows vanish on the way in: the COPY data holds 3 rows.
    let file = p.path().join("vanishing.sql");
    std::fs::write(
        &file,
        "CREATE TABLE public.t (x int);\n\
         CREATE FUNCTION public.drop_it() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;\n\
         CREATE TRIGGER t_drop BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.drop_it();\n\
         COPY public.t (x) FROM stdin;\n1\n2\n3\n\\.\n",
    )
    .unwrap();
    let out = run(&mut p.cmd(&["restore", &file.display().to_string(), "--yes"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the restored database is empty, but the backup holds 3 rows"),
        "{err}"
    );
    assert!(err.contains("is unchanged"), "{err}");
    assert_eq!(p.sql("select x from keep"), "7");
    assert_eq!(databases(&p), dbs, "no scratch database left");
}

/// Poll `f` until it returns true (60 s at most).
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn in_container(p: &Project, script: &str) -> String {
    docker(&["exec", &p.container(), "bash", "-c", script])
}

fn scratch_dbs(p: &Project) -> String {
    // Through docker exec, not `pgbox psql`: no second pgbox while one holds the lock.
    in_container(
        p,
        &format!(
            "psql -U {} -d postgres -XAt -c \"select string_agg(datname, ',') from pg_database where datname ~ '_pgbox_restore_'\"",
            db_name(p)
        ),
    )
    .trim()
    .to_string()
}

pub(crate) fn restore_dirs(p: &Project) -> String {
    in_container(p, "ls -d /tmp/pgbox-restore-* 2>/dev/null; true")
        .trim()
        .to_string()
}

/// pg_restore or psql processes still running in the container.
pub(crate) fn restore_procs(p: &Project) -> String {
    in_container(
        p,
        r#"for f in /proc/[0-9]*/cmdline; do c=$(tr '\0' '\n' < "$f" 2>/dev/null | head -1); case "$c" in pg_restore | psql) echo "$c" ;; esac; done; true"#,
    )
    .trim()
    .to_string()
}

pub(crate) fn signal(child: &std::process::Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn signals_during_a_restore_leave_the_target_intact_and_nothing_behind() {
    let p = Project::new("rssig");
    p.init(&[]);
    p.up();
    p.sql("create table big as select g, md5(g::text) as h from generate_series(1, 2000000) g");
    let file = text(&ok(&mut p.cmd(&["backup"])).stdout).trim().to_string();
    p.sql("delete from big where g > 1000");
    let dbs = databases(&p);
    let start = || {
        p.cmd(&["restore", &file, "--yes", "--drop-old"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // SIGINT while the backup is uploaded (its folder is there, no scratch database yet).
    let child = start();
    wait_for("the upload folder", || !restore_dirs(&p).is_empty());
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert_eq!(scratch_dbs(&p), "");
    assert_eq!(restore_dirs(&p), "");
    assert_eq!(restore_procs(&p), "");
    assert_eq!(p.sql("select count(*) from big"), "1000");

    // SIGTERM while pg_restore runs.
    let child = start();
    wait_for("pg_restore in the scratch database", || {
        !scratch_dbs(&p).is_empty() && restore_procs(&p).contains("pg_restore")
    });
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    assert_eq!(scratch_dbs(&p), "");
    assert_eq!(restore_dirs(&p), "");
    assert_eq!(restore_procs(&p), "");
    assert_eq!(p.sql("select count(*) from big"), "1000");
    assert_eq!(databases(&p), dbs);

    // SIGKILL while pg_restore runs: the next restore removes what it left, in one line.
    let child = start();
    wait_for("pg_restore in the scratch database", || {
        !scratch_dbs(&p).is_empty() && restore_procs(&p).contains("pg_restore")
    });
    let scratch = scratch_dbs(&p);
    let dir = restore_dirs(&p);
    signal(&child, "-KILL");
    let _ = child.wait_with_output().unwrap();
    assert_eq!(p.sql("select count(*) from big"), "1000");
    let out = ok(&mut p.cmd(&["restore", &file, "--yes", "--drop-old"]));
    let err = text(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("removed what an interrupted restore left behind"))
        .unwrap_or_else(|| panic!("no leftover line in:\n{err}"));
    assert!(line.contains(&format!("database `{scratch}`")), "{line}");
    assert!(line.contains(&format!("`{dir}`")), "{line}");
    assert_eq!(p.sql("select count(*) from big"), "2000000");
    assert_eq!(scratch_dbs(&p), "");
    assert_eq!(restore_dirs(&p), "");
    assert_eq!(restore_procs(&p), "");
    assert_eq!(databases(&p), dbs);
}

/// `backup verify --deep` test-restores through the same scratch path as `restore`:
/// a `pg_dump -C -c` file made by hand once dropped the live database there too.
#[test]
fn a_deep_verify_of_a_create_clean_dump_never_touches_the_live_database() {
    let p = Project::new("rsverify");
    p.init(&[]);
    p.up();
    let db = db_name(&p);
    p.sql("create table t(x int); insert into t select generate_series(1, 30)");
    let file = to_file(
        &p,
        "cc.sql",
        &format!(
            "docker exec -u postgres {} pg_dump -U {db} -C -c {db}",
            p.container()
        ),
    );
    p.sql("insert into t select generate_series(31, 45)");
    let dbs = databases(&p);
    let out = ok(&mut p.cmd(&["backup", "verify", &file.display().to_string(), "--deep"]));
    let err = text(&out.stderr);
    assert!(
        err.contains("test restore matched the row counts of 1 tables (30 rows)"),
        "{err}"
    );
    assert_eq!(p.sql("select count(*) from t"), "45", "the live rows stay");
    assert_eq!(databases(&p), dbs, "no scratch or other database is left");
}
