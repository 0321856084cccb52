//! `pgbox migrate` against a real engine: the faults first (two concurrent runs,
//! a failing file in the middle, Ctrl-C during a run, each kind of bad input), then
//! a realistic history of 32 files applied at once and one by one, repair after an
//! edit, rollback to the snapshot (template copy and backup), `down` of the last
//! three, `adopt` of a dbmate history, and `--url` against a second server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// `pgbox migrate ARGS` in the project, without a caller's DATABASE_URL.
fn mig(p: &Project, args: &[&str]) -> Command {
    let mut c = p.cmd(&[&["migrate"], args].concat());
    c.env_remove("DATABASE_URL").env_remove("PGPASSWORD");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn ready(tag: &str) -> Project {
    let p = Project::new(tag);
    p.init(&[]);
    p.up();
    p
}

fn dir(p: &Project) -> PathBuf {
    p.path().join("migrations")
}

fn versions(p: &Project) -> String {
    p.sql("select coalesce(string_agg(version::text, ',' order by version), '') from pgbox.schema_version")
}

fn table_exists(p: &Project, t: &str) -> bool {
    p.sql(&format!("select to_regclass('{t}') is not null")) == "t"
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "should fail: {}", text(&out.stdout));
    text(&out.stderr)
}

fn eventually(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// ---- faults ----

#[test]
fn two_concurrent_up_runs_apply_each_file_once() {
    let p = ready("mig-conc");
    let d = dir(&p);
    write(
        &d,
        "1_log.sql",
        "create table log (file int);\nselect pg_sleep(3);\ninsert into log values (1);",
    );
    for v in 2..=20 {
        write(
            &d,
            &format!("{v}_f{v}.sql"),
            &format!("insert into log values ({v});\ncreate table t{v} (x int);"),
        );
    }
    let a = spawn(mig(&p, &["up"]));
    // B starts while A is in its first file (which sleeps three seconds).
    eventually(
        "the first run is in its first file",
        Duration::from_secs(60),
        || {
            p.sql("select count(*) from pg_stat_activity where query like '%pg_sleep(3)%' and pid <> pg_backend_pid()") == "1"
        },
    );
    let b = spawn(mig(&p, &["up"]));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    let both = format!("{}{}", text(&a.stderr), text(&b.stderr));
    assert!(
        both.contains("waiting for another `pgbox migrate` run"),
        "{both}"
    );
    assert_eq!(
        p.sql("select count(*), count(distinct file) from log"),
        "20|20"
    );
    assert_eq!(p.sql("select count(*) from pgbox.schema_version"), "20");
}

/// 80 lines; line 40 refers to a column that does not exist, at column 8.
fn eighty_lines() -> String {
    let mut lines = vec!["create table t3 (id int primary key, name text);".to_string()];
    for i in 2..40 {
        lines.push(format!("insert into t3 values ({i}, 'row {i}');"));
    }
    lines.push("select nosuchcolumn from t3;".into());
    for i in 41..=80 {
        lines.push(format!("insert into t3 values ({i}, 'row {i}');"));
    }
    lines.join("\n") + "\n"
}

#[test]
fn a_failing_file_in_the_middle_leaves_the_database_as_before_it() {
    let p = ready("mig-fail");
    let d = dir(&p);
    write(&d, "1_a.sql", "create table a (x int);");
    write(
        &d,
        "2_b.sql",
        "create table b (x int);\ninsert into b values (1);",
    );
    let bad = write(&d, "3_c.sql", &eighty_lines());
    write(&d, "4_d.sql", "create table d (x int);");
    let dry = ok(&mut mig(&p, &["up", "--dry-run"]));
    assert_eq!(
        text(&dry.stdout)
            .lines()
            .filter(|l| l.starts_with("would apply"))
            .count(),
        4
    );
    assert!(!table_exists(&p, "a") && !table_exists(&p, "pgbox.schema_version"));
    let err = failed(&run(&mut mig(&p, &["up"])));
    assert!(err.contains("3_c.sql:40:8`"), "{err}");
    assert!(
        err.contains("column \"nosuchcolumn\" does not exist"),
        "{err}"
    );
    assert!(err.contains("database is as it was before it"), "{err}");
    assert_eq!(versions(&p), "1,2");
    assert!(!table_exists(&p, "t3") && !table_exists(&p, "d"));
    // A runtime error without a position names the line of its statement.
    std::fs::write(
        &bad,
        eighty_lines().replace(
            "select nosuchcolumn from t3;",
            "insert into t3 values (2, 'dup');",
        ),
    )
    .unwrap();
    let err = failed(&run(&mut mig(&p, &["up"])));
    assert!(
        err.contains("3_c.sql:40:1`") && err.contains("duplicate key"),
        "{err}"
    );
    assert_eq!(versions(&p), "1,2");
    std::fs::write(
        &bad,
        eighty_lines().replace("select nosuchcolumn from t3;", "select 1;"),
    )
    .unwrap();
    ok(&mut mig(&p, &["up"]));
    assert_eq!(versions(&p), "1,2,3,4");
    assert_eq!(p.sql("select count(*) from t3"), "78");
}

#[test]
fn ctrl_c_during_a_run_leaves_no_dirty_state() {
    let p = ready("mig-int");
    let d = dir(&p);
    write(&d, "1_a.sql", "create table a (x int);");
    let slow = write(
        &d,
        "2_b.sql",
        "create table b (x int);\nselect pg_sleep(120);\ninsert into b values (1);",
    );
    let mut child = spawn(mig(&p, &["up"]));
    eventually("the slow statement runs", Duration::from_secs(60), || {
        p.sql("select count(*) from pg_stat_activity where query like '%pg_sleep(120)%' and pid <> pg_backend_pid()") == "1"
    });
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    // The statement is cancelled on the server, not left running for two minutes.
    eventually(
        "the statement stops on the server",
        Duration::from_secs(15),
        || {
            p.sql("select count(*) from pg_stat_activity where query like '%pg_sleep(120)%' and pid <> pg_backend_pid()") == "0"
        },
    );
    eventually("the lock is released", Duration::from_secs(15), || {
        p.sql("select count(*) from pg_locks where locktype = 'advisory'") == "0"
    });
    assert_eq!(versions(&p), "1");
    assert!(
        !table_exists(&p, "b"),
        "the interrupted file left its table"
    );
    std::fs::write(&slow, "create table b (x int);\ninsert into b values (1);").unwrap();
    ok(&mut mig(&p, &["up"]));
    assert_eq!(versions(&p), "1,2");
}

#[test]
fn each_kind_of_bad_input_is_named_and_nothing_is_applied() {
    let p = ready("mig-bad");
    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "dup",
            "1_again.sql",
            "create table x (y int);",
            "have the same version 1",
        ),
        (
            "name",
            "create_things.sql",
            "create table x (y int);",
            "`create_things.sql`: the name is not",
        ),
        (
            "empty",
            "2_empty.sql",
            "-- nothing here\n\n",
            "`2_empty.sql` is empty",
        ),
        (
            "downonly",
            "2_down.sql",
            "-- migrate:up\n\n-- migrate:down\ndrop table a;\n",
            "`2_down.sql` has a `-- migrate:down` section but no up section",
        ),
        (
            "pair",
            "2_x.up.sql",
            "create table x (y int);",
            "`2_x.up.sql`: the name is not",
        ),
        (
            "txn",
            "2_tx.sql",
            "create table x (y int);\ncommit;\ncreate table z (y int);",
            "`2_tx.sql:2`: `commit` ends or starts a transaction",
        ),
    ];
    for (tag, file, body, expected) in cases {
        let d = p.path().join(tag);
        write(&d, "1_a.sql", "create table a (x int);");
        write(&d, "3_c.sql", "create table c (x int);");
        write(&d, file, body);
        let out = run(&mut mig(&p, &["up", "--dir", tag]));
        assert_eq!(out.status.code(), Some(2), "{tag}");
        let err = text(&out.stderr);
        assert!(
            err.contains(expected) && err.contains("nothing was applied"),
            "{tag}: {err}"
        );
        assert!(
            !table_exists(&p, "a") && !table_exists(&p, "pgbox.schema_version"),
            "{tag}"
        );
    }
}

// ---- a realistic history ----

/// 32 files: tables, seed data, an index built concurrently, a function, a data
/// backfill, a renamed column, a trigger, a view, an enum; the last three have downs.
fn history(d: &Path) -> Vec<i64> {
    let mut files: Vec<String> = vec![
        "create table users (id bigserial primary key, email text not null, full_name text);".into(),
        "create table orgs (id bigserial primary key, name text not null);".into(),
        "alter table users add column org_id bigint references orgs (id);".into(),
        "create table projects (id bigserial primary key, org_id bigint not null references orgs (id), title text not null);".into(),
        "insert into orgs (name) values ('Acme Corp'), ('Globex, Inc.'), ('Initech');".into(),
        "insert into users (email, full_name, org_id)\nselect 'u' || i || '@example.com', 'User ' || i, 1 + i % 3 from generate_series(1, 1000) i;".into(),
        "-- pgbox:no-transaction\ncreate index concurrently if not exists users_email_idx on users (email);".into(),
        "create function slugify(t text) returns text language sql immutable as $$\n  select trim(both '-' from lower(regexp_replace(t, '[^a-zA-Z0-9]+', '-', 'g')));\n$$;".into(),
        "alter table orgs add column slug text;".into(),
        "-- backfill\nupdate orgs set slug = slugify(name) where slug is null;".into(),
        "alter table orgs alter column slug set not null;\ncreate unique index orgs_slug on orgs (slug);".into(),
        "alter table users rename column full_name to display_name;".into(),
        "create table audit_log (id bigserial primary key, tbl text, op text, at timestamptz default now());".into(),
        "create function audit() returns trigger language plpgsql as $$\nbegin\n  insert into audit_log (tbl, op) values (TG_TABLE_NAME, TG_OP);\n  return new;\nend;\n$$;\ncreate trigger projects_audit after insert on projects for each row execute function audit();".into(),
        "create view org_users as select o.slug, count(u.id) as users from orgs o left join users u on u.org_id = o.id group by o.slug;".into(),
    ];
    for i in 16..=29 {
        files.push(format!(
            "create table extra_{i} (id int primary key, note text default 'it''s; fine');\ninsert into extra_{i} (id) select g from generate_series(1, {i}) g;"
        ));
    }
    files.push("create type project_status as enum ('open', 'done');\nalter table projects add column status project_status not null default 'open';\n-- migrate:down\nalter table projects drop column status;\ndrop type project_status;".into());
    files.push("-- migrate:up\ncreate table tags (id serial primary key, name text unique);\ninsert into tags (name) values ('a'), ('b');\n-- migrate:down\ndrop table tags;".into());
    files.push("alter table users add column last_login timestamptz;\ninsert into projects (org_id, title) values (1, 'first');\n-- migrate:down\nalter table users drop column last_login;".into());
    let mut vs = Vec::new();
    for (i, body) in files.iter().enumerate() {
        let v = 20260101000000 + i as i64 + 1;
        write(d, &format!("{v}_step_{:02}.sql", i + 1), body);
        vs.push(v);
    }
    vs
}

/// Columns of the public schema, to compare two databases' shapes.
fn shape(p: &Project) -> String {
    p.sql("select string_agg(table_name || '.' || column_name || ':' || data_type, ',' order by table_name, column_name) from information_schema.columns where table_schema = 'public'")
}

#[test]
fn a_realistic_history_in_one_up_then_down_of_the_last_three() {
    let p = ready("mig-hist");
    let vs = history(&dir(&p));
    let out = ok(&mut mig(&p, &["up"]));
    assert!(
        text(&out.stderr).contains("(no transaction)"),
        "{}",
        text(&out.stderr)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&ok(&mut mig(&p, &["status", "--json"])).stdout).unwrap();
    let rows = status["migrations"].as_array().unwrap();
    assert_eq!(rows.len(), 32);
    assert!(rows
        .iter()
        .all(|r| r["state"] == "applied" && r["checksum_ok"] == true));
    assert_eq!(
        rows.iter().filter(|r| r["no_transaction"] == true).count(),
        1
    );
    assert_eq!(
        p.sql("select indisvalid from pg_index where indexrelid = 'users_email_idx'::regclass"),
        "t"
    );
    assert_eq!(
        p.sql("select string_agg(slug, ',' order by id) from orgs"),
        "acme-corp,globex-inc,initech"
    );
    assert_eq!(p.sql("select count(display_name) from users"), "1000");
    assert_eq!(p.sql("select count(*) from audit_log"), "1");
    assert!(table_exists(&p, "tags"));
    // Down of the last three, newest first.
    ok(&mut mig(&p, &["down", "--to", &vs[28].to_string()]));
    assert_eq!(p.sql("select count(*) from pgbox.schema_version"), "29");
    assert!(!table_exists(&p, "tags"));
    assert_eq!(p.sql("select count(*) from information_schema.columns where table_schema = 'public' and column_name in ('last_login', 'status')"), "0");
    // One more down refuses: the 29th file has no down section.
    let err = failed(&run(&mut mig(&p, &["down"])));
    assert!(
        err.contains("has no down section; nothing was reverted"),
        "{err}"
    );
    ok(&mut mig(&p, &["up"]));
    assert_eq!(p.sql("select count(*) from pgbox.schema_version"), "32");
}

#[test]
fn a_realistic_history_one_by_one_with_to_ends_in_the_same_shape() {
    let p = ready("mig-1by1");
    let vs = history(&dir(&p));
    for (i, v) in vs.iter().enumerate() {
        ok(&mut mig(&p, &["up", "--to", &v.to_string()]));
        assert_eq!(
            p.sql("select count(*) from pgbox.schema_version"),
            (i + 1).to_string()
        );
    }
    let one_by_one = shape(&p);
    assert!(
        one_by_one.contains("users.display_name:text"),
        "{one_by_one}"
    );
    // The same files in one run on a fresh database give the same shape.
    p.sql("create database fresh");
    let url = format!(
        "postgresql://{}@127.0.0.1:{}/fresh",
        p.sql("select current_user"),
        p.port
    );
    ok(mig(&p, &["up"])
        .env("DATABASE_URL", &url)
        .env("PGPASSWORD", p.password()));
    let fresh = text(&host_psql(&url, &p.password(), "select string_agg(table_name || '.' || column_name || ':' || data_type, ',' order by table_name, column_name) from information_schema.columns where table_schema = 'public'").stdout);
    assert_eq!(fresh.trim(), one_by_one);
}

// ---- repair, rollback, adopt, --url ----

#[test]
fn an_edited_applied_file_stops_up_until_repair() {
    let p = ready("mig-repair");
    let d = dir(&p);
    write(&d, "1_a.sql", "create table a (x int);");
    let edited = write(
        &d,
        "2_b.sql",
        "create table b (x int);\n-- migrate:down\ndrop table b;\n",
    );
    ok(&mut mig(&p, &["up"]));
    std::fs::write(&edited, "create table b (x int);\ncomment on table b is 'edited';\n-- migrate:down\ndrop table b;\n").unwrap();
    write(&d, "3_c.sql", "create table c (x int);");
    let err = failed(&run(&mut mig(&p, &["up"])));
    assert!(
        err.contains("2_b.sql`")
            && err.contains("changed after it was applied")
            && err.contains("pgbox migrate repair"),
        "{err}"
    );
    assert!(!table_exists(&p, "c"));
    let st = run(&mut mig(&p, &["status"]));
    assert_eq!(st.status.code(), Some(1));
    assert!(
        text(&st.stdout).contains("CHANGED since applied"),
        "{}",
        text(&st.stdout)
    );
    // No terminal and no --yes: a confirmation is needed, nothing is recorded.
    let out = run(&mut mig(&p, &["repair"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("+comment on table b is 'edited';"),
        "{}",
        text(&out.stdout)
    );
    let out = ok(&mut mig(&p, &["repair", "--yes"]));
    assert!(text(&out.stderr).contains("recorded the new checksum of 2_b.sql"));
    ok(&mut mig(&p, &["up"]));
    assert_eq!(versions(&p), "1,2,3");
    // A file applied but gone from disk is reported.
    std::fs::remove_file(d.join("1_a.sql")).unwrap();
    let st = run(&mut mig(&p, &["status"]));
    assert_eq!(st.status.code(), Some(1));
    assert!(text(&st.stdout).contains("file missing on disk"));
}

#[test]
fn rollback_returns_to_the_snapshot_taken_before_up() {
    let p = ready("mig-rb");
    let d = dir(&p);
    write(
        &d,
        "1_a.sql",
        "create table a (x int);\ninsert into a values (1), (2);",
    );
    ok(&mut mig(&p, &["up"]));
    p.sql("insert into a values (3)");
    write(&d, "2_drop.sql", "drop table a;\ncreate table b (y int);");
    let out = ok(&mut mig(&p, &["up"]));
    assert!(
        text(&out.stderr).contains("taken as database `pgbox_premigrate_"),
        "{}",
        text(&out.stderr)
    );
    assert!(!table_exists(&p, "a"));
    ok(&mut mig(&p, &["rollback", "--yes"]));
    assert_eq!(
        p.sql("select string_agg(x::text, ',' order by x) from a"),
        "1,2,3"
    );
    assert!(!table_exists(&p, "b"));
    assert_eq!(versions(&p), "1");
    // With another session in the database the snapshot is a backup, and rollback restores it.
    let mut holder = p
        .cmd(&["psql", "-c", "select pg_sleep(300)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        "the other session is connected",
        Duration::from_secs(30),
        || {
            p.sql("select count(*) from pg_stat_activity where query like '%pg_sleep(300)%' and pid <> pg_backend_pid()") == "1"
        },
    );
    let out = ok(&mut mig(&p, &["up"]));
    holder.kill().unwrap();
    let _ = holder.wait();
    assert!(
        text(&out.stderr).contains("the snapshot is a `pgbox backup`"),
        "{}",
        text(&out.stderr)
    );
    assert!(!table_exists(&p, "a"));
    ok(&mut mig(&p, &["rollback", "--yes"]));
    assert_eq!(p.sql("select count(*) from a"), "3");
    assert_eq!(versions(&p), "1");
}

#[test]
fn adopt_imports_dbmate_sqlx_and_golang_migrate_histories() {
    let p = ready("mig-adopt");
    let d = dir(&p);
    write(
        &d,
        "20240101000000_a.sql",
        "-- migrate:up\ncreate table a (x int);\n-- migrate:down\ndrop table a;\n",
    );
    write(
        &d,
        "20240102000000_b.sql",
        "-- migrate:up\ncreate table b (x int);\n-- migrate:down\ndrop table b;\n",
    );
    write(
        &d,
        "20240103000000_c.sql",
        "-- migrate:up\ncreate table c (x int);\n",
    );
    p.sql("create table a (x int); create table b (x int); create table schema_migrations (version varchar(128) primary key); insert into schema_migrations values ('20240101000000'), ('20240102000000')");
    let out = ok(&mut mig(&p, &["adopt", "--from", "dbmate"]));
    assert!(
        text(&out.stderr).contains("imported 2 version(s)"),
        "{}",
        text(&out.stderr)
    );
    ok(&mut mig(&p, &["up"]));
    assert_eq!(versions(&p), "20240101000000,20240102000000,20240103000000");
    assert!(table_exists(&p, "c"));
    // sqlx: only successful rows, with their dates; a configured table and folder.
    let toml = p.path().join("pgbox.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{base}\n[migrations]\ndir = \"sqlx\"\ntable = \"ops.history\"\n"),
    )
    .unwrap();
    let s = p.path().join("sqlx");
    write(&s, "1_sa.sql", "create table sa (x int);");
    write(&s, "2_sb.sql", "create table sb (x int);");
    write(&s, "3_sc.sql", "create table sc (x int);");
    p.sql("create table sa (x int); create table _sqlx_migrations (version bigint primary key, description text not null, installed_on timestamptz not null default now(), success boolean not null, checksum bytea not null, execution_time bigint not null); insert into _sqlx_migrations values (1, 'sa', '2024-05-01 10:00:00+00', true, '\\x00', 1), (2, 'sb', now(), false, '\\x00', 1)");
    let out = ok(&mut mig(&p, &["adopt", "--from", "sqlx"]));
    assert!(
        text(&out.stderr).contains("imported 1 version(s)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        p.sql("select applied_at = '2024-05-01 10:00:00+00' from ops.history where version = 1"),
        "t"
    );
    ok(&mut mig(&p, &["up"]));
    assert_eq!(
        p.sql("select string_agg(version::text, ',' order by version) from ops.history"),
        "1,2,3"
    );
    // golang-migrate: a dirty version is refused; a clean one imports every file up to it.
    std::fs::write(
        &toml,
        format!("{base}\n[migrations]\ndir = \"gm\"\ntable = \"gm.history\"\n"),
    )
    .unwrap();
    let g = p.path().join("gm");
    write(&g, "1_ga.sql", "create table ga (x int);");
    write(&g, "2_gb.sql", "create table gb (x int);");
    write(&g, "3_gc.sql", "create table gc (x int);");
    p.sql("create table ga (x int); create table gb (x int); create table gm_versions (version bigint primary key, dirty boolean not null); insert into gm_versions values (2, true)");
    let err = failed(&run(&mut mig(
        &p,
        &[
            "adopt",
            "--from",
            "golang-migrate",
            "--table",
            "gm_versions",
        ],
    )));
    assert!(err.contains("marks version 2 dirty"), "{err}");
    p.sql("update gm_versions set dirty = false");
    ok(&mut mig(
        &p,
        &[
            "adopt",
            "--from",
            "golang-migrate",
            "--table",
            "gm_versions",
        ],
    ));
    ok(&mut mig(&p, &["up"]));
    assert_eq!(p.sql("select string_agg(version::text || ':' || duration_ms, ',' order by version) from gm.history").split(',').count(), 3);
    assert!(table_exists(&p, "gc"));
}

#[test]
fn url_runs_against_a_second_server() {
    let a = ready("mig-url-a");
    let b = ready("mig-url-b");
    let d = dir(&a);
    write(&d, "1_a.sql", "create table on_b (x int);");
    let user = b.sql("select current_user");
    let db = b.sql("select current_database()");
    let url = format!(
        "postgresql://{user}:{}@127.0.0.1:{}/{db}",
        b.password(),
        b.port
    );
    let out = ok(mig(&a, &["up"]).env("DATABASE_URL", &url));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !all.contains(&b.password()),
        "the password was printed: {all}"
    );
    assert!(table_exists(&b, "on_b") && !table_exists(&a, "on_b"));
    assert!(!table_exists(&a, "pgbox.schema_version"));
    let st = ok(mig(&a, &["status", "--json"]).env("DATABASE_URL", &url));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["migrations"][0]["state"], "applied");
    let out = run(mig(&a, &["rollback", "--yes"]).env("DATABASE_URL", &url));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("works on the project's own server only"));
    // No pgbox.toml needed with a URL.
    let bare = tempfile::tempdir().unwrap();
    write(
        &bare.path().join("migrations"),
        "1_a.sql",
        "create table on_b (x int);",
    );
    write(
        &bare.path().join("migrations"),
        "2_b.sql",
        "create table on_b2 (x int);",
    );
    let mut c = pgbox(bare.path());
    c.args(["migrate", "up"]).env("DATABASE_URL", &url);
    ok(&mut c);
    assert!(table_exists(&b, "on_b2"));
}

#[test]
fn new_writes_a_timestamped_file() {
    let p = Project::new("mig-new");
    p.init(&[]);
    let out = ok(&mut mig(&p, &["new", "Create users!"]));
    let names = file_names(&dir(&p));
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].ends_with("_create_users.sql")
            && names[0].len() == "20261128014500_create_users.sql".len(),
        "{names:?}"
    );
    assert!(text(&out.stderr).contains(&names[0]));
}

#[test]
fn tls_servers_are_reached_with_the_projects_ca_and_with_sslmode() {
    let p = Project::new("mig-tls");
    p.init(&["--tls", "self-signed"]);
    p.up();
    write(&dir(&p), "1_a.sql", "create table a (x int);");
    // The project's own server: TLS only for host logins, its CA checked.
    ok(&mut mig(&p, &["up"]));
    assert_eq!(versions(&p), "1");
    assert_eq!(
        p.sql("select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) where a.application_name = 'pgbox migrate'"),
        "0",
        "no session is left behind"
    );
    // `pgbox url --with-password` (verify-full against the project's CA) as DATABASE_URL.
    let url = text(&ok(&mut p.cmd(&["url", "--with-password"])).stdout)
        .trim()
        .to_string();
    assert!(url.contains("sslmode=verify-full"), "{url}");
    write(&dir(&p), "2_b.sql", "create table b (x int);");
    ok(mig(&p, &["up"]).env("DATABASE_URL", &url));
    assert_eq!(versions(&p), "1,2");
    // sslmode=disable is refused by this server (hostnossl reject).
    let plain = url.split('?').next().unwrap().to_string() + "?sslmode=disable";
    let err = failed(&run(mig(&p, &["status"]).env("DATABASE_URL", &plain)));
    assert!(err.contains("cannot connect"), "{err}");
}
