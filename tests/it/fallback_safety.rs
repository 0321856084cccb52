//! Fallback storage never loses committed data without saying so (issue #10,
//! items 2 to 4): a save that fails at stop fails the command and keeps the
//! container; a crash or a kill restarts from the container's own, newer PGDATA;
//! a cluster that cannot start falls back to the tarball and keeps the newer copy
//! aside, loudly; a kill during the first initdb leaves nothing that blocks the
//! next start. The full disk is a small tmpfs mounted as the data folder (the
//! tests run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn logs(p: &Project) -> String {
    text(&ok(&mut p.cmd(&["logs", "-n", "all"])).stdout)
}

fn data(p: &Project) -> PathBuf {
    p.path().join(".pgbox/data")
}

fn rows(p: &Project, table: &str) -> String {
    p.sql(&format!(
        "select string_agg(x::text, ',' order by x) from {table}"
    ))
}

fn exists(p: &Project) -> bool {
    run(Command::new(p.eng.cli()).args(["inspect", &p.container()]))
        .status
        .success()
}

/// Poll until `cond` holds, or fail with `what` and the container log.
fn wait_for(p: &Project, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} within {secs}s; log:\n{}",
            logs(p)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small tmpfs mounted on the project's data folder; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs (the tests run as root): {}",
            text(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Take every free byte with a filler file.
    fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(Stdio::null())
            .status();
        let out = text(
            &Command::new("df")
                .arg("--output=avail")
                .arg(&self.0)
                .output()
                .unwrap()
                .stdout,
        );
        assert!(
            out.lines().nth(1).unwrap().trim() == "0",
            "the tmpfs is full: {out}"
        );
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn set_port(p: &Project, port: u16) {
    let path = p.path().join("pgbox.toml");
    let t = std::fs::read_to_string(&path).unwrap();
    let new = t.replace(&format!("port = {}", p.port), &format!("port = {port}"));
    assert_ne!(t, new, "pgbox.toml names port {}", p.port);
    std::fs::write(&path, new).unwrap();
}

#[test]
fn down_on_a_full_data_location_fails_and_keeps_the_data() {
    let p = Project::new("fbfull");
    let disk = Tmpfs::mount(&data(&p), "48m");
    p.init(&["--storage", "fallback"]);
    p.up();
    p.sql("create table full_t(x int)");
    p.sql("insert into full_t select generate_series(1, 3)");
    disk.fill();

    let out = run(&mut p.cmd(&["down"]));
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "down must fail when the save fails:\n{err}"
    );
    assert!(!err.contains("✓ stopped"), "{err}");
    assert!(err.contains("did not save"), "{err}");
    assert!(err.contains("free space"), "{err}");
    assert!(err.contains("pgbox save -o"), "{err}");
    assert!(exists(&p), "the container holding the only copy is kept");
    // The engine copies a stopped container's last lines into its log a moment later.
    wait_for(&p, "the failed save in the container's log", 10, || {
        logs(&p).contains("ERROR shutdown: saving the cluster failed")
    });
    let st = text(&run(&mut p.cmd(&["status"])).stderr);
    assert!(
        st.contains("holds writes that are not in `pgsql.tar.zst`"),
        "{st}"
    );

    // --rm refuses while the newest data is unsaved.
    let out = run(&mut p.cmd(&["down", "--rm"]));
    assert!(!out.status.success(), "{}", text(&out.stderr));
    assert!(exists(&p), "down --rm keeps a container with unsaved data");

    // The data can be copied elsewhere while the disk is still full.
    p.up();
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copy.tar.zst");
    ok(&mut p.cmd(&["save", "-o", copy.to_str().unwrap()]));
    let listed = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -tf - | grep -cx './PG_VERSION\\|PG_VERSION'",
            copy.display()
        ))
        .output()
        .unwrap();
    assert!(listed.status.success(), "the copy holds a cluster");

    // After freeing space, down succeeds and saves; the rows survive a new container.
    disk.free();
    ok(&mut p.cmd(&["down", "--rm"]));
    assert!(!exists(&p));
    p.up();
    assert_eq!(rows(&p, "full_t"), "1,2,3");
}

#[test]
fn up_after_a_port_change_never_drops_unsaved_data() {
    let mut p = Project::new("fbport");
    let disk = Tmpfs::mount(&data(&p), "48m");
    p.init(&["--storage", "fallback"]);
    p.up();
    p.sql("create table port_t(x int)");
    p.sql("insert into port_t values (1)");
    disk.fill();

    // Full disk: the recreate cannot save, so it refuses and keeps the container.
    let port2 = free_port();
    set_port(&p, port2);
    p.port = port2;
    let out = run(&mut p.cmd(&["up"]));
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("data is kept"), "{err}");
    assert!(err.contains("did not save"), "{err}");
    assert!(exists(&p));
    disk.free();
    ok(&mut p.cmd(&["up"]));
    assert_eq!(rows(&p, "port_t"), "1");

    // A killed container holds newer data than the tarball: the recreate saves it first.
    p.sql("insert into port_t values (2)");
    docker(&["kill", &p.container()]);
    let port3 = free_port();
    set_port(&p, port3);
    p.port = port3;
    ok(&mut p.cmd(&["up"]));
    assert_eq!(rows(&p, "port_t"), "1,2");
    drop(disk);
}

#[test]
fn a_crash_or_kill_keeps_every_committed_row() {
    crash_or_kill(None);
}

/// Fallback mode keeps every committed row through a killed postmaster, a killed
/// container and a removed one. `major`: the PostgreSQL major (None: pgbox's default).
pub fn crash_or_kill(major: Option<u32>) {
    let tag = major.map_or("fbcrash".to_string(), |m| format!("fbcrash-{m}"));
    let p = Project::with_major(&tag, Eng::Docker, major);
    p.init(&["--storage", "fallback"]);
    p.up();
    p.assert_major();
    p.sql("create table crash_t(x int)");
    p.sql("insert into crash_t values (1)");
    ok(&mut p.cmd(&["save"]));
    p.sql("insert into crash_t values (2)");

    // Kill the postmaster inside the container: the engine restarts it.
    docker(&[
        "exec",
        &p.container(),
        "sh",
        "-c",
        "kill -9 $(head -n 1 /tmp/pgdata-ephemeral-*/postmaster.pid)",
    ]);
    wait_for(
        &p,
        "PostgreSQL answers again after the postmaster was killed",
        60,
        || run(&mut p.cmd(&["status", "-q"])).status.success(),
    );
    assert_eq!(rows(&p, "crash_t"), "1,2");

    // docker kill, then up.
    p.sql("insert into crash_t values (3)");
    docker(&["kill", &p.container()]);
    let starts = logs(&p).matches("state=RUNNING").count();
    p.up();
    assert_eq!(
        rows(&p, "crash_t"),
        "1,2,3",
        "the container's log:\n{}",
        logs(&p)
    );
    let l = logs(&p);
    assert!(!l.contains(".stale"), "nothing was moved aside:\n{l}");

    // The tarball catches up: after the save that follows the start, losing the
    // container loses nothing.
    wait_for(&p, "a save after the recovered start", 60, || {
        let l = logs(&p);
        let tail = l.split("state=RUNNING").nth(starts + 1).unwrap_or("");
        tail.contains("saved a live copy")
    });
    docker(&["rm", "-f", &p.container()]);
    p.up();
    assert_eq!(rows(&p, "crash_t"), "1,2,3");
}

#[test]
fn an_unstartable_cluster_falls_back_to_the_tarball_and_keeps_the_newer_copy() {
    let p = Project::new("fbbad");
    p.init(&["--storage", "fallback"]);
    p.up();
    p.sql("create table bad_t(x int)");
    p.sql("insert into bad_t values (1)");
    ok(&mut p.cmd(&["down"]));
    p.up();
    p.sql("insert into bad_t values (2)");
    // Damage the container's cluster so it cannot start, then crash.
    docker(&[
        "exec",
        &p.container(),
        "sh",
        "-c",
        "rm /tmp/pgdata-ephemeral-*/global/pg_control",
    ]);
    docker(&["kill", &p.container()]);

    let out = p.up();
    let err = text(&out.stderr);
    assert!(err.contains("could not start"), "{err}");
    assert!(err.contains("pgsql-unstartable-"), "{err}");
    assert_eq!(rows(&p, "bad_t"), "1", "restored from the last save");
    let kept: Vec<_> = std::fs::read_dir(data(&p))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgsql-unstartable-") && n.ends_with(".tar.zst"))
        .collect();
    assert_eq!(kept.len(), 1, "one copy kept aside");
    let st = run(&mut p.cmd(&["status"]));
    assert!(text(&st.stderr).contains(&kept[0]), "{}", text(&st.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&run(&mut p.cmd(&["status", "--json"])).stdout).unwrap();
    assert!(
        v["storage"]["kept_aside"][0]
            .as_str()
            .unwrap_or_default()
            .contains("pgsql-unstartable-"),
        "{v}"
    );
    // A later restart keeps it: it is never deleted automatically.
    ok(&mut p.cmd(&["down"]));
    p.up();
    assert!(data(&p).join(&kept[0]).is_file());
}

fn kill_during_first_initdb(storage: &str) {
    let p = Project::new(&format!("init{storage}"));
    p.init(&["--storage", storage]);
    let mut up = p
        .cmd(&["up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once initdb has begun writing the cluster (PG_VERSION is its first file).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let l = run(Command::new("docker").args([
            "exec",
            &p.container(),
            "sh",
            "-c",
            "find /var/lib/postgresql/data /tmp/pgdata-ephemeral-* -name PG_VERSION 2>/dev/null | grep -q .",
        ]));
        if l.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "initdb did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    docker(&["kill", &p.container()]);
    let at_kill = text(&docker(&["logs", &p.container()]).into_bytes());
    assert!(
        !at_kill.contains("cluster initialised"),
        "the kill came after initialisation finished; the test did not exercise an interrupted initdb"
    );
    let _ = up.wait();
    let out = p.up();
    assert!(
        logs(&p).contains("interrupted initialisation"),
        "{}\n{}",
        text(&out.stderr),
        logs(&p)
    );
    assert_eq!(p.sql("select current_database()"), p.name.replace('-', "_"));
    p.sql("create table after_init(x int)");
}

#[test]
fn a_kill_during_the_first_initdb_reinitialises_direct() {
    kill_during_first_initdb("direct");
}

#[test]
fn a_kill_during_the_first_initdb_reinitialises_fallback() {
    kill_during_first_initdb("fallback");
}

#[test]
fn init_and_status_warn_about_unsaved_writes_in_fallback_mode() {
    let p = Project::new("fbwarn");
    let out = p.init(&["--storage", "fallback"]);
    let err = text(&out.stderr);
    assert!(err.contains("save_interval"), "{err}");
    let st = run(&mut p.cmd(&["status"]));
    assert!(
        text(&st.stderr).contains("save_interval"),
        "{}",
        text(&st.stderr)
    );

    let path = p.path().join("pgbox.toml");
    let t = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        t.replace("# save_interval = \"15m\"", "save_interval = \"5m\""),
    )
    .unwrap();
    let st = run(&mut p.cmd(&["status"]));
    assert!(
        !text(&st.stderr).contains("save_interval"),
        "{}",
        text(&st.stderr)
    );
}

#[test]
fn a_tarball_replaced_by_hand_wins_and_the_container_copy_is_kept() {
    let p = Project::new("fbrepl");
    p.init(&["--storage", "fallback"]);
    p.up();
    p.sql("create table repl_t(x int)");
    p.sql("insert into repl_t values (1)");
    ok(&mut p.cmd(&["down"]));
    let tarball = data(&p).join("pgsql.tar.zst");
    let old = p.path().join("old.tar.zst");
    std::fs::copy(&tarball, &old).unwrap();
    p.up();
    p.sql("insert into repl_t values (2)");
    ok(&mut p.cmd(&["down"]));
    // The user puts an older save back by hand; the same container starts again.
    std::fs::remove_file(&tarball).unwrap();
    std::fs::copy(&old, &tarball).unwrap();
    let out = p.up();
    assert_eq!(
        rows(&p, "repl_t"),
        "1",
        "the tarball put in place by hand is used"
    );
    let err = text(&out.stderr);
    assert!(err.contains("was replaced by hand"), "{err}");
    assert!(
        std::fs::read_dir(data(&p)).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("pgsql-replaced-")),
        "the container's own cluster is kept aside"
    );
}
