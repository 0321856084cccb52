//! `pgbox upgrade` by method `dump` against a real engine: rich data moved 15 → 17,
//! 15 → 18 and 17 → 18 with every row, sequence, role password and large object;
//! rollback and finalize; and the faults of issue #12 (a wrong target, a missing
//! extension, a full disk, the engine stopping, a second upgrade, SIGKILL and
//! SIGINT mid-load), each a clear error with the old data intact and served.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const APP_PASSWORD: &str = "app-Pässwörd-42";
const LO_TEXT: &str = "a large object: Grüße, 日本語, 🐘";

/// The shared rich fixture: several schemas, a second database, roles with grants
/// (an app role that logs in with a password), pgcrypto, a large object, a sequence
/// in mid-range, a materialized view and non-ASCII text; a few thousand rows.
fn rich_fixture(p: &Project) {
    p.sql(
        "create extension if not exists pgcrypto;
         create schema app; create schema billing;
         create role readers nologin;
         create role app_user login password 'app-Pässwörd-42' in role readers;
         create table app.customers(id serial primary key, name text not null, secret bytea not null);
         insert into app.customers(name, secret)
           select 'Kundin ' || g || ' Åsa Ñandú 日本 🐘', digest('s' || g, 'sha256') from generate_series(1, 3000) g;
         create table billing.invoices(id bigserial primary key,
           customer int not null references app.customers(id), amount numeric(12,2) not null, note text);
         insert into billing.invoices(customer, amount, note)
           select 1 + g % 3000, (g * 7 % 1000) / 3.0, case when g % 5 = 0 then 'straße №' || g end
           from generate_series(1, 4000) g;
         create materialized view billing.totals as
           select customer, sum(amount) as total, count(*) as n from billing.invoices group by customer;
         create sequence app.counter;
         select setval('app.counter', 5000);
         create table app.docs(id int primary key, doc oid not null);
         insert into app.docs values (1, lo_from_bytea(0, convert_to('a large object: Grüße, 日本語, 🐘', 'UTF8')));
         create table public.notes(id int primary key, body text);
         insert into public.notes select g, repeat('ü', g % 40) from generate_series(1, 500) g;
         grant usage on schema app, billing to readers;
         grant select on all tables in schema app, billing to readers;
         grant insert, update on app.customers to app_user;
         grant usage on sequence app.customers_id_seq, app.counter to app_user",
    );
    let lo = p.sql("select doc from app.docs where id = 1");
    p.sql(&format!("grant select on large object {lo} to readers"));
    db_sql(p, "postgres", "create database analytics");
    db_sql(
        p,
        "analytics",
        "create schema metrics;
         create table metrics.events(id bigint primary key, at timestamptz not null, what text);
         insert into metrics.events select g, timestamptz '2026-01-01' + g * interval '1 minute', 'événement ' || g
           from generate_series(1, 2000) g;
         grant usage on schema metrics to readers; grant select on metrics.events to readers",
    );
}

/// psql in database `db` of the project's server, stdout trimmed.
fn db_sql(p: &Project, db: &str, sql: &str) -> String {
    let out = ok(&mut p.cmd(&[
        "psql",
        "--db",
        db,
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]));
    text(&out.stdout).trim().to_string()
}

/// `schema.table|rows|md5 of every row` for every table and materialized view of `db`.
fn fingerprint(p: &Project, db: &str) -> Vec<String> {
    let names = db_sql(
        p,
        db,
        "select format('%I.%I', schemaname, tablename) from pg_tables
           where schemaname not in ('pg_catalog', 'information_schema')
         union all select format('%I.%I', schemaname, matviewname) from pg_matviews
         order by 1",
    );
    let parts: Vec<String> = names
        .lines()
        .map(|t| {
            format!(
                "select '{t}' || '|' || count(*) || '|' || md5(coalesce(string_agg(r::text, E'\\n' order by r::text), '')) from {t} r"
            )
        })
        .collect();
    assert!(!parts.is_empty(), "no tables in `{db}`");
    let q = format!("select * from ({}) x order by 1", parts.join(" union all "));
    db_sql(p, db, &q).lines().map(String::from).collect()
}

/// Everything the fixture made, read back: the fingerprints of both databases.
fn snapshot(p: &Project) -> (Vec<String>, Vec<String>) {
    let main = fingerprint(p, &dbname(p));
    let analytics = fingerprint(p, "analytics");
    (main, analytics)
}

fn assert_rich_counts(snap: &(Vec<String>, Vec<String>)) {
    let has = |v: &Vec<String>, prefix: &str| v.iter().any(|l| l.starts_with(prefix));
    assert!(has(&snap.0, "app.customers|3000|"), "{:?}", snap.0);
    assert!(has(&snap.0, "billing.invoices|4000|"), "{:?}", snap.0);
    assert!(has(&snap.0, "billing.totals|3000|"), "{:?}", snap.0);
    assert!(has(&snap.0, "app.docs|1|"), "{:?}", snap.0);
    assert!(has(&snap.1, "metrics.events|2000|"), "{:?}", snap.1);
}

/// The project database (the project name with `_` for `-`).
fn dbname(p: &Project) -> String {
    p.name.replace('-', "_")
}

fn major(p: &Project) -> u32 {
    p.sql("show server_version_num").parse::<u32>().unwrap() / 10000
}

fn url(p: &Project, user: &str, db: &str) -> String {
    format!("postgresql://{user}@127.0.0.1:{}/{db}", p.port)
}

/// What must hold after a successful upgrade to `to`, against the snapshot taken before.
fn assert_moved(p: &Project, before: &(Vec<String>, Vec<String>), to: u32, checksums_before: &str) {
    assert_eq!(major(p), to, "the server is not on PostgreSQL {to}");
    let after = snapshot(p);
    assert_eq!(
        &after, before,
        "rows or their checksums differ after the upgrade"
    );
    assert_eq!(p.sql("show data_checksums"), checksums_before);
    // Sequences continue where they were.
    assert_eq!(p.sql("select nextval('app.counter')"), "5001");
    // The app role logs in over TCP with its old password and has its grants.
    let out = host_psql(
        &url(p, "app_user", &dbname(p)),
        APP_PASSWORD,
        "insert into app.customers(name, secret) values ('nach dem Upgrade', '\\x00') returning id",
    );
    assert!(
        out.status.success(),
        "app_user cannot log in or write: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).lines().next().unwrap_or(""), "3001");
    let out = host_psql(
        &url(p, "app_user", "analytics"),
        APP_PASSWORD,
        "select count(*) from metrics.events",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "2000");
    // The large object reads back, and its grant came along.
    let out = host_psql(
        &url(p, "app_user", &dbname(p)),
        APP_PASSWORD,
        "select convert_from(lo_get(doc), 'UTF8') from app.docs where id = 1",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), LO_TEXT);
    // pgcrypto works on the new major.
    assert_eq!(
        p.sql("select encode(digest('s1', 'sha256'), 'hex') = encode(secret, 'hex') from app.customers where id = 1"),
        "t"
    );
    let status = text(&ok(&mut p.cmd(&["status", "--json"])).stdout);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let image = v["image"].as_str().unwrap_or("");
    assert!(
        image.contains(&format!(":{to}-")),
        "status shows image `{image}`"
    );
}

/// `pgbox init` on major `from`. (`init --pg-version 17` alone writes bookworm's
/// base image, which has no PostgreSQL 17, so the major's base is named.)
fn init_on(p: &Project, from: &str) {
    let base = match from {
        "15" => "debian:bookworm-slim",
        "17" => "debian:trixie-slim",
        _ => "debian:forky-slim",
    };
    p.init(&["--pg-version", from, "--base-image", base]);
}

fn upgrade_state(p: &Project) -> PathBuf {
    p.path().join(".pgbox/upgrade.json")
}

fn toml(p: &Project) -> String {
    std::fs::read_to_string(p.path().join("pgbox.toml")).unwrap()
}

/// Removes the upgrade's helper containers and socket volume when a test ends, even
/// a failed one (the project's own `down --purge` knows nothing of them).
struct Helpers {
    cli: &'static str,
    container: String,
}

fn helpers_removed(p: &Project) -> Helpers {
    Helpers {
        cli: p.eng.cli(),
        container: p.container(),
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        for suffix in [
            "upgrade-src",
            "upgrade-new",
            "upgrade-sync",
            "upgrade-check",
        ] {
            let _ = Command::new(self.cli)
                .args(["rm", "-f", &format!("{}-{suffix}", self.container)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new(self.cli)
            .args([
                "volume",
                "rm",
                "-f",
                &format!("{}-upgrade-sock", self.container),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Project on `from` with the rich fixture, running, and its snapshot.
fn rich_project(tag: &str, from: &str) -> (Project, (Vec<String>, Vec<String>), Helpers) {
    let p = Project::new(tag);
    init_on(&p, from);
    p.up();
    rich_fixture(&p);
    let snap = snapshot(&p);
    assert_rich_counts(&snap);
    let h = helpers_removed(&p);
    (p, snap, h)
}

fn upgrade_and_check(tag: &str, from: &str, to: u32) -> (Project, Helpers) {
    let (p, before, h) = rich_project(tag, from);
    let checksums = p.sql("show data_checksums");
    let out = ok(&mut p.cmd(&["upgrade", "--to", &to.to_string(), "--yes"]));
    let err = text(&out.stderr);
    assert!(err.contains("every count matching"), "{err}");
    assert_moved(&p, &before, to, &checksums);
    (p, h)
}

#[test]
fn dump_15_to_17_moves_everything_and_generated_files_follow() {
    let (p, _h) = upgrade_and_check("up1517", "15", 17);
    assert!(toml(&p).contains("version = 17"), "{}", toml(&p));
    let gen = p.path().join("gen");
    ok(&mut p.cmd(&["generate", "compose", "-o", gen.to_str().unwrap()]));
    let compose = std::fs::read_to_string(gen.join("compose.yaml")).unwrap();
    let image = std::fs::read_to_string(gen.join("image/Containerfile")).unwrap();
    assert!(compose.contains("PostgreSQL 17"), "{compose}");
    assert!(image.contains("PG_MAJOR=17"), "{image}");
    assert!(image.contains("FROM debian:trixie-slim"), "{image}");
    assert!(
        !image.contains("bookworm") && !compose.contains("PostgreSQL 15"),
        "{image}\n{compose}"
    );
}

#[test]
fn dump_15_to_18_moves_everything_and_keeps_checksums_off() {
    let (p, _h) = upgrade_and_check("up1518", "15", 18);
    assert_eq!(p.sql("show data_checksums"), "off");
}

#[test]
fn dump_17_to_18_moves_everything_then_finalize_deletes_the_old_data() {
    let (p, _h) = upgrade_and_check("up1718", "17", 18);
    let old = p.path().join(".pgbox/data");
    assert!(old.exists(), "the old data must be kept until --finalize");
    // Without a terminal, finalize asks for --yes and deletes nothing.
    let out = run(&mut p.cmd(&["upgrade", "--finalize"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert!(old.exists());
    ok(&mut p.cmd(&["upgrade", "--finalize", "--yes"]));
    assert!(!old.exists(), "finalize left the old data");
    assert!(!upgrade_state(&p).exists(), "finalize left the state file");
    let out = run(&mut p.cmd(&["upgrade", "--rollback", "--yes"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no upgrade is in progress"), "{err}");
    assert_eq!(major(&p), 18);
    assert_eq!(p.sql("select count(*) from billing.invoices"), "4000");
}

#[test]
fn rollback_after_writes_names_them_asks_and_returns_to_the_old_data() {
    let (p, before, _h) = rich_project("uprb", "15");
    let toml_before = toml(&p);
    ok(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    assert_eq!(major(&p), 17);
    p.sql("insert into public.notes values (100001, 'written on 17'), (100002, 'also on 17'); delete from public.notes where id = 1");
    // Without --yes and without a terminal: it says what is lost, refuses, changes nothing.
    let out = run(&mut p.cmd(&["upgrade", "--rollback"]));
    assert!(
        !out.status.success(),
        "rollback went ahead without a confirmation"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("about 3 rows"),
        "the message does not name the writes: {err}"
    );
    assert!(
        err.contains("public.notes"),
        "the message does not name the table written: {err}"
    );
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(major(&p), 17);
    assert_eq!(
        p.sql("select count(*) from public.notes where id > 100000"),
        "2"
    );
    assert!(upgrade_state(&p).exists());
    // With --yes: back on 15, the old data, without the writes made on 17.
    ok(&mut p.cmd(&["upgrade", "--rollback", "--yes"]));
    assert_eq!(major(&p), 15);
    assert_eq!(snapshot(&p), before);
    assert_eq!(
        toml(&p),
        toml_before,
        "pgbox.toml is not as it was before the upgrade"
    );
    assert!(!upgrade_state(&p).exists());
    assert!(
        !p.path().join(".pgbox/data-pg17").exists(),
        "the new cluster was kept"
    );
}

/// The old data served, with every row, after a refusal or failure.
fn assert_old_intact(p: &Project, before: &(Vec<String>, Vec<String>), from: u32) {
    p.up();
    assert_eq!(major(p), from);
    assert_eq!(&snapshot(p), before, "the old data changed");
    assert!(!upgrade_state(p).exists(), "a state file was left");
}

#[test]
fn a_target_not_newer_or_unknown_is_refused_before_anything_changes() {
    let p = Project::new("upbad");
    init_on(&p, "15");
    p.up();
    p.sql("create table t(id int primary key); insert into t select generate_series(1, 10)");
    let before = snapshot_simple(&p);
    for (to, says) in [
        ("14", "PostgreSQL 14 is not newer than this project's 15"),
        ("15", "PostgreSQL 15 is not newer than this project's 15"),
        ("16", "knows no base image that ships PostgreSQL 16"),
        ("19", "knows no base image that ships PostgreSQL 19"),
    ] {
        let out = run(&mut p.cmd(&["upgrade", "--to", to, "--yes"]));
        assert_eq!(
            out.status.code(),
            Some(2),
            "--to {to}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(err.contains(says), "--to {to}: {err}");
        assert!(
            !err.contains("backing up"),
            "--to {to} took a backup: {err}"
        );
    }
    assert!(
        file_names(&p.path().join("backups")).is_empty(),
        "a backup was taken"
    );
    assert!(!upgrade_state(&p).exists());
    let new_dirs = file_names(&p.path().join(".pgbox"))
        .into_iter()
        .filter(|f| f.starts_with("data-"))
        .count();
    assert_eq!(new_dirs, 0);
    assert_eq!(snapshot_simple(&p), before);
    assert_eq!(major(&p), 15);
    assert!(toml(&p).contains("version = 15"));
}

fn snapshot_simple(p: &Project) -> String {
    p.sql("select count(*) || '|' || md5(string_agg(t::text, ',' order by id)) from t")
}

#[test]
fn an_extension_missing_in_the_target_is_refused_before_any_backup() {
    let p = Project::new("upext");
    p.init(&["--pg-version", "15"]);
    p.up();
    // A tiny extension installed into the old container only.
    docker(&[
        "exec",
        "-u",
        "0",
        &p.container(),
        "sh",
        "-c",
        "printf \"default_version = '1.0'\\nrelocatable = true\\ncomment = 'pgbox test'\\n\" \
           > /usr/share/postgresql/15/extension/pgbox_tiny.control && \
         printf 'create function pgbox_tiny() returns int language sql as $$ select 42 $$;\\n' \
           > /usr/share/postgresql/15/extension/pgbox_tiny--1.0.sql",
    ]);
    p.sql("create extension pgbox_tiny; create table t(id int primary key); insert into t select generate_series(1, 10)");
    assert_eq!(p.sql("select pgbox_tiny()"), "42");
    let before = snapshot_simple(&p);
    let out = run(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("lacks an extension") && err.contains("`pgbox_tiny`"),
        "{err}"
    );
    assert!(!err.contains("backing up"), "{err}");
    assert!(
        file_names(&p.path().join("backups")).is_empty(),
        "a backup was taken"
    );
    assert!(!upgrade_state(&p).exists(), "a state file was written");
    assert!(!p.path().join(".pgbox/data-pg17").exists());
    assert_eq!(major(&p), 15);
    assert_eq!(snapshot_simple(&p), before);
    assert!(toml(&p).contains("version = 15"));
}

/// A pgbox process whose stderr is read line by line as it runs.
struct Watched {
    child: Child,
    lines: Receiver<String>,
    all: Arc<Mutex<Vec<String>>>,
}

impl Watched {
    fn spawn(cmd: &mut Command) -> Watched {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgbox");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let all2 = all.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Watched {
            child,
            lines: rx,
            all,
        }
    }

    /// Block until a line containing `needle` (panics when pgbox ends first).
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(l) if l.contains(needle) => return,
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    assert!(
                        Instant::now() < deadline,
                        "never saw `{needle}`: {}",
                        self.stderr()
                    );
                }
                Err(_) => panic!("pgbox ended before `{needle}`:\n{}", self.stderr()),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn stderr(&self) -> String {
        self.all.lock().unwrap().join("\n")
    }

    fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        // Let the reader drain what is left.
        while self.lines.recv_timeout(Duration::from_secs(5)).is_ok() {}
        (status, self.stderr())
    }
}

/// The load step has begun: the roles are in the new cluster, the databases are next.
const LOAD_STEP: &str = "moved roles, their passwords and memberships";

fn workers_left(p: &Project) -> Vec<String> {
    p.cli(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .filter(|n| n.starts_with(&format!("{}-upgrade", p.container())))
        .map(String::from)
        .collect()
}

#[test]
fn sigkill_mid_load_then_up_serves_the_old_cluster_and_upgrade_resumes() {
    let (p, before, _h) = rich_project("upkill", "15");
    let w = Watched::spawn(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    w.wait_for(LOAD_STEP);
    w.signal(libc::SIGKILL);
    let (status, err) = w.finish();
    assert!(!status.success(), "{err}");
    assert!(
        !err.contains("upgraded `"),
        "the upgrade finished before the kill: {err}"
    );
    assert!(toml(&p).contains("version = 15"));
    let state = std::fs::read_to_string(upgrade_state(&p)).expect("the state file");
    assert!(state.contains("\"building\""), "{state}");
    // `up` starts the OLD cluster with every row, removing the helpers left behind.
    let out = p.up();
    assert!(
        text(&out.stderr).contains("left by an interrupted `pgbox upgrade`"),
        "{}",
        text(&out.stderr)
    );
    assert!(workers_left(&p).is_empty(), "{:?}", workers_left(&p));
    assert_eq!(major(&p), 15);
    assert_eq!(snapshot(&p), before);
    // The upgrade resumes, reusing the recorded backup.
    let backups = file_names(&p.path().join("backups"));
    let out = ok(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    let err = text(&out.stderr);
    assert!(
        !err.contains("backing up"),
        "the resumed upgrade took a second backup: {err}"
    );
    assert_eq!(file_names(&p.path().join("backups")), backups);
    assert_eq!(major(&p), 17);
    assert_eq!(snapshot(&p), before);
}

#[test]
fn sigint_mid_load_exits_130_and_leaves_nothing_behind() {
    let (p, before, _h) = rich_project("upint", "15");
    let w = Watched::spawn(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    w.wait_for(LOAD_STEP);
    w.signal(libc::SIGINT);
    let (status, err) = w.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        workers_left(&p).is_empty(),
        "helpers left: {:?}",
        workers_left(&p)
    );
    assert!(
        !p.path().join(".pgbox/data-pg17").exists(),
        "the new data folder was left"
    );
    assert!(!upgrade_state(&p).exists(), "the state file was left");
    assert!(toml(&p).contains("version = 15"));
    assert_old_intact(&p, &before, 15);
}

#[test]
fn a_second_upgrade_is_refused_while_one_runs_and_the_first_finishes() {
    let (p, before, _h) = rich_project("uptwo", "15");
    let first = Watched::spawn(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    first.wait_for("backing up every database");
    let out = run(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    assert!(!out.status.success(), "a second upgrade ran");
    let err = text(&out.stderr);
    assert!(
        err.contains("`pgbox upgrade` (pid") && err.contains("is already running"),
        "the refusal does not name the running upgrade: {err}"
    );
    // `pgbox up` is refused too while the upgrade runs (two servers on one data).
    let out = run(&mut p.cmd(&["up"]));
    assert!(!out.status.success(), "`up` ran during the upgrade");
    assert!(
        text(&out.stderr).contains("`pgbox upgrade` (pid"),
        "{}",
        text(&out.stderr)
    );
    let (status, err) = first.finish();
    assert!(status.success(), "the first upgrade failed: {err}");
    assert_eq!(major(&p), 17);
    assert_eq!(snapshot(&p), before);
}

#[test]
fn finalize_and_rollback_with_no_upgrade_in_progress_are_clear_errors() {
    let p = Project::new("upnone");
    p.init(&["--pg-version", "15"]);
    for (flag, says) in [
        ("--finalize", "nothing to finalize"),
        ("--rollback", "nothing to roll back"),
    ] {
        let out = run(&mut p.cmd(&["upgrade", flag, "--yes"]));
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("no upgrade is in progress") && err.contains(says),
            "{flag}: {err}"
        );
    }
    assert!(toml(&p).contains("version = 15"));
}

/// A small tmpfs the test mounts and unmounts (even when it fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(tag: &str, size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("pgbox-tmpfs-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs (the tests run as root)");
        Tmpfs(dir)
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()
            .unwrap();
        text(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn set_storage_path(p: &Project, path: &Path) {
    let t = toml(p).replace(
        "path = \".pgbox/data\"",
        &format!("path = \"{}\"", path.display()),
    );
    assert!(t.contains(&path.display().to_string()));
    std::fs::write(p.path().join("pgbox.toml"), t).unwrap();
}

#[test]
fn a_full_disk_during_the_load_fails_clearly_and_keeps_the_old_data() {
    let fs = Tmpfs::new("full", "300m");
    let p = Project::new("upfull");
    let _h = helpers_removed(&p);
    p.init(&["--pg-version", "15"]);
    set_storage_path(&p, &fs.0.join("data"));
    p.up();
    rich_fixture(&p);
    let before = snapshot(&p);
    assert_rich_counts(&before);
    let w = Watched::spawn(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
    w.wait_for(LOAD_STEP);
    // The checks passed; now the disk fills up under the load.
    let filler = fs.0.join("filler");
    let leave = 1024 * 1024;
    let st = Command::new("fallocate")
        .args(["-l", &(fs.free().saturating_sub(leave)).to_string()])
        .arg(&filler)
        .status()
        .unwrap();
    assert!(st.success());
    let (status, err) = w.finish();
    assert!(
        !status.success(),
        "the upgrade succeeded on a full disk: {err}"
    );
    assert!(
        err.contains("No space left on device")
            || err.contains("could not extend")
            || err.contains("no space"),
        "{err}"
    );
    assert!(err.contains("failed and was undone"), "{err}");
    assert!(err.contains("the old data was not modified"), "{err}");
    std::fs::remove_file(&filler).unwrap();
    assert!(
        !fs.0.join("data-pg17").exists(),
        "the half-built cluster was kept"
    );
    assert!(workers_left(&p).is_empty(), "{:?}", workers_left(&p));
    assert!(toml(&p).contains("version = 15"));
    assert_old_intact(&p, &before, 15);
    drop(p);
}

/// A private `podman system service` on its own socket, killed and restarted by the test.
struct PrivateEngine {
    sock: PathBuf,
    child: Option<Child>,
}

impl PrivateEngine {
    fn start(tag: &str) -> PrivateEngine {
        let sock = PathBuf::from(format!("/tmp/pgbox-{}-{tag}.sock", std::process::id()));
        let mut e = PrivateEngine { sock, child: None };
        e.restart();
        e
    }

    fn address(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.sock);
        let child = Command::new("podman")
            .args(["system", "service", "--time=0", &self.address()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("docker")
                .args([
                    "-H",
                    &self.address(),
                    "version",
                    "--format",
                    "{{.Server.Version}}",
                ])
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private podman service did not answer"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The engine stops: SIGKILL to the service process (containers run on, under conmon).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.sock);
    }
}

#[test]
fn the_engine_stopping_halfway_leaves_an_upgrade_that_resumes_and_old_data_up_serves() {
    let mut eng = PrivateEngine::start("upeng");
    let p = Project::on("upeng", Eng::Podman);
    let _h = helpers_removed(&p);
    let addr = eng.address();
    let on = |args: &[&str]| {
        let mut c = pgbox(p.path());
        c.args(["--engine", &addr]);
        c.args(args);
        c
    };
    let port = p.port.to_string();
    ok(&mut on(&[
        "init",
        "--yes",
        "--name",
        &p.name,
        "--port",
        &port,
        "--pg-version",
        "15",
    ]));
    ok(&mut on(&["up"]));
    ok(&mut on(&["psql", "-X", "-c", "create table t(id int primary key, v text); insert into t select g, 'ü' || g from generate_series(1, 3000) g"]));
    let before = snapshot_simple(&p);
    let w = Watched::spawn(&mut on(&["upgrade", "--to", "17", "--yes"]));
    w.wait_for(LOAD_STEP);
    eng.kill();
    let (status, err) = w.finish();
    assert!(!status.success(), "{err}");
    assert!(toml(&p).contains("version = 15"));
    eng.restart();
    // The record survives, so the upgrade can be discarded or resumed.
    assert!(
        upgrade_state(&p).exists(),
        "the failed upgrade forgot its state: {err}"
    );
    let out = run(&mut on(&["upgrade"]));
    assert!(
        text(&out.stderr).contains("did not finish"),
        "{}",
        text(&out.stderr)
    );
    ok(&mut on(&["upgrade", "--rollback", "--yes"]));
    assert!(!upgrade_state(&p).exists());
    assert!(
        !p.path().join(".pgbox/data-pg17").exists(),
        "rollback left the new cluster"
    );
    assert!(workers_left(&p).is_empty(), "{:?}", workers_left(&p));
    ok(&mut on(&["up"]));
    assert_eq!(major(&p), 15);
    assert_eq!(snapshot_simple(&p), before);
    // And a new upgrade goes through on the same engine.
    ok(&mut on(&["upgrade", "--to", "17", "--yes"]));
    assert_eq!(major(&p), 17);
    assert_eq!(snapshot_simple(&p), before);
}

/// The new cluster goes where the storage mode keeps data: a new tarball folder in
/// fallback mode (the old tarball, saved when the server stopped, is read through a
/// read-only mount), a new volume in volume mode. Fallback rolls back to the old tarball (the
/// write made on 17 is gone); volume finalizes (the old volume is deleted).
#[test]
fn dump_moves_fallback_and_volume_storage_to_new_locations() {
    for mode in ["fallback", "volume"] {
        let p = Project::new(&format!("upgm{mode}"));
        p.init(&["--pg-version", "15", "--storage", mode]);
        p.up();
        let _h = helpers_removed(&p);
        p.sql("create table t (id int primary key, v text); insert into t select g, 'ü' || g from generate_series(1, 2000) g");
        let sum = "select md5(string_agg(id || v, ',' order by id)) from t";
        let before = p.sql(sum);

        let out = ok(&mut p.cmd(&["upgrade", "--to", "17", "--yes"]));
        assert!(text(&out.stderr).contains("every count matching"), "{mode}");
        assert_eq!(major(&p), 17, "{mode}");
        assert_eq!(p.sql(sum), before, "{mode}: the rows changed");
        let status = text(&ok(&mut p.cmd(&["status", "--json"])).stdout);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["upgrade"]["phase"], "switched", "{mode}: {status}");
        if mode == "fallback" {
            assert!(p.path().join(".pgbox/data-pg17/pgsql.tar.zst").exists());
            p.sql("insert into t values (9999, 'on 17')");
            ok(&mut p.cmd(&["upgrade", "--rollback", "--yes"]));
            assert_eq!(major(&p), 15);
            assert_eq!(
                p.sql(sum),
                before,
                "the old tarball's rows are not all back"
            );
            assert!(!p.path().join(".pgbox/data-pg17").exists());
        } else {
            let volume = format!("pgbox-{}-data", p.name);
            let new_volume = format!("{volume}-pg17");
            assert!(p
                .cli(&["volume", "ls", "-q"])
                .lines()
                .any(|v| v == new_volume));
            // `down --purge` would delete one side only: refused until the upgrade ends.
            let purge = run(&mut p.cmd(&["down", "--purge", "--yes"]));
            assert_eq!(purge.status.code(), Some(2), "{}", text(&purge.stderr));
            assert!(text(&purge.stderr).contains("--finalize"));
            assert_eq!(p.sql(sum), before, "the refused purge changed something");
            ok(&mut p.cmd(&["upgrade", "--finalize", "--yes"]));
            let volumes = p.cli(&["volume", "ls", "-q"]);
            assert!(
                !volumes.lines().any(|v| v == volume),
                "the old volume is still there"
            );
            assert!(volumes.lines().any(|v| v == new_volume));
            assert_eq!(p.sql(sum), before);
        }
        assert!(!upgrade_state(&p).exists(), "{mode}");
    }
}

/// `--check` runs the checks, prints the report (the old cluster's facts and the space
/// needed against the space free) and changes nothing: no backup, no record, no new
/// location, the same major.
#[test]
fn check_only_reports_and_changes_nothing() {
    let p = Project::new("upgcheck");
    p.init(&["--pg-version", "15"]);
    p.up();
    p.sql("create table t (id int primary key); insert into t select generate_series(1, 100)");
    let out = ok(&mut p.cmd(&["upgrade", "--to", "17", "--check"]));
    let err = text(&out.stderr);
    for want in [
        "old cluster: PostgreSQL 15.",
        "encoding UTF8",
        "data checksums off",
        "new cluster: about",
        "backup: about",
        "every check passed for 15 → 17",
        "nothing was changed",
    ] {
        assert!(err.contains(want), "missing `{want}`: {err}");
    }
    assert!(!upgrade_state(&p).exists());
    assert!(!p.path().join(".pgbox/data-pg17").exists());
    assert!(file_names(&p.path().join("backups")).is_empty());
    assert_eq!(major(&p), 15);
    assert!(toml(&p).contains("version = 15"));
}
