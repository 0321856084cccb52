//! End-to-end tests against a real container engine (see `support::require_engine`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::support::*;

#[test]
fn data_survives_restart_and_container_recreation() {
    lifecycle(Eng::Docker, None);
}

#[test]
fn data_survives_restart_and_container_recreation_on_podman() {
    lifecycle(Eng::Podman, None);
}

/// Data survives `down` and `up`, and `down --rm` and `up`; `up` on a running project
/// says so. `major`: the PostgreSQL major to run (None: pgbox's default).
pub fn lifecycle(eng: Eng, major: Option<u32>) {
    let tag = match major {
        Some(m) => format!("life-{}-{m}", eng.cli()),
        None => format!("life-{}", eng.cli()),
    };
    let p = Project::with_major(&tag, eng, major);
    p.init(&[]);
    let out = p.up();
    // stdout carries the URL and nothing else.
    assert_eq!(
        text(&out.stdout),
        format!(
            "postgresql://{0}@127.0.0.1:{1}/{0}\n",
            p.name.replace('-', "_"),
            p.port
        )
    );
    p.assert_major();
    p.sql("create table t(x text)");
    assert_eq!(
        p.sql("insert into t values ('kept') returning x"),
        "kept\nINSERT 0 1"
    );

    ok(&mut p.cmd(&["down"]));
    let st = p.cli(&["inspect", "-f", "{{.State.Status}}", &p.container()]);
    assert_eq!(st.trim(), "exited");
    p.up();
    assert_eq!(p.sql("select x from t"), "kept");

    ok(&mut p.cmd(&["down", "--rm"]));
    assert!(
        run(std::process::Command::new(p.eng.cli()).args(["inspect", &p.container()]))
            .status
            .code()
            != Some(0)
    );
    p.up();
    assert_eq!(p.sql("select x from t"), "kept");

    // `up` on a running project says so and exits 0.
    let again = p.up();
    assert!(
        text(&again.stderr).contains("already running"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn special_password_works_over_tcp_and_stays_secret() {
    let p = Project::new("pw");
    let password = r#"p@ss w'o"rd\ $HOME %s;--"#;
    let port = p.port.to_string();
    let mut init = p.cmd(&[
        "init",
        "--yes",
        "--name",
        &p.name,
        "--port",
        &port,
        "--password-stdin",
    ]);
    init.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = init.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(password) && !text(&out.stderr).contains(password));

    let secret = p.path().join(".pgbox/secrets/postgres_password");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(p.password(), password);

    let up = p.up();
    let url = text(&up.stdout).trim().to_string();
    let r = host_psql(&url, password, "select current_user");
    assert!(
        r.status.success(),
        "password login failed: {}",
        text(&r.stderr)
    );
    assert_eq!(text(&r.stdout).trim(), p.name.replace('-', "_"));

    let bad = host_psql(&url, "wrong", "select 1");
    assert!(!bad.status.success(), "a wrong password must be refused");
    assert!(
        text(&bad.stderr).contains("password authentication failed"),
        "{}",
        text(&bad.stderr)
    );

    // --with-password gives a URL that works as it is.
    let full = ok(&mut p.cmd(&["url", "--with-password"]));
    let r = host_psql(text(&full.stdout).trim(), "", "select 1");
    assert!(r.status.success(), "{}", text(&r.stderr));

    // The password is in no process argument, env entry or label the engine shows.
    let inspect = docker(&["inspect", &p.container()]);
    assert!(
        !inspect.contains("p@ss"),
        "password visible in docker inspect"
    );
    let logs = ok(&mut p.cmd(&["logs", "-n", "all"]));
    assert!(!text(&logs.stdout).contains("p@ss") && !text(&logs.stderr).contains("p@ss"));
}

#[test]
fn status_json_reports_health_and_exit_codes() {
    let p = Project::new("st");
    p.init(&[]);
    p.up();
    let out = ok(&mut p.cmd(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["project"], p.name.as_str());
    assert_eq!(v["running"], true);
    assert_eq!(v["ready"], true);
    assert_eq!(v["state"], "running");
    assert_eq!(v["entrypoint_state"], "RUNNING");
    assert_eq!(v["port"], p.port);
    assert_eq!(v["storage"]["mode"], "direct");
    assert!(v["storage"]["reason"].as_str().unwrap().contains("uid"));
    assert!(v["engine"].as_str().unwrap().contains("Docker"));

    ok(&mut p.cmd(&["down"]));
    let out = run(&mut p.cmd(&["status", "--json"]));
    assert_eq!(
        out.status.code(),
        Some(4),
        "a stopped server is not healthy"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["running"], false);
    assert_eq!(v["ready"], false);
}

#[test]
fn two_projects_run_side_by_side() {
    let a = Project::new("pa");
    let b = Project::new("pb");
    a.init(&[]);
    b.init(&[]);
    a.up();
    b.up();
    a.sql("create table who(n text); insert into who values ('a')");
    b.sql("create table who(n text); insert into who values ('b')");
    assert_eq!(a.sql("select n from who"), "a");
    assert_eq!(b.sql("select n from who"), "b");
    let ls = ok(&mut a.cmd(&["ls", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&ls.stdout).unwrap();
    for p in [&a, &b] {
        let row = rows
            .iter()
            .find(|r| r["project"] == p.name.as_str())
            .expect("project listed");
        assert_eq!(row["state"], "running");
        assert_eq!(row["port"], format!("127.0.0.1:{}", p.port));
    }
}

#[test]
fn taken_port_is_a_clear_error() {
    let p = Project::new("port");
    let _holder = std::net::TcpListener::bind(("127.0.0.1", p.port)).unwrap();
    p.init(&[]);
    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "error: port `{}` on `127.0.0.1` is already in use",
            p.port
        )),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    let running = run(std::process::Command::new("docker").args([
        "inspect",
        "-f",
        "{{.State.Running}}",
        &p.container(),
    ]));
    assert!(
        text(&running.stdout).trim() != "true",
        "no container may be running"
    );
}

#[test]
fn data_folder_of_wrong_owner_is_reported_with_the_fix() {
    let p = Project::new("uid");
    // A data folder that already holds files of this test's user, not the container's.
    let data = p.path().join("pgdata");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious.txt"), "keep me").unwrap();
    let port = p.port.to_string();
    let out = run(&mut p.cmd(&[
        "init",
        "--yes",
        "--name",
        &p.name,
        "--port",
        &port,
        "--storage",
        "direct",
        "--data-dir",
        "pgdata",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let me = unsafe_uid();
    assert!(
        err.contains(&format!(
            "is owned by uid {me}, but PostgreSQL in the container runs as uid 999"
        )),
        "{err}"
    );
    assert!(err.contains("hint: run `sudo chown -R 999:999 '"), "{err}");
    // `up` refuses the same way and touches nothing.
    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("sudo chown -R 999:999"));
    assert_eq!(
        std::fs::read_to_string(data.join("precious.txt")).unwrap(),
        "keep me"
    );
    assert!(
        run(std::process::Command::new("docker").args(["inspect", &p.container()]))
            .status
            .code()
            != Some(0)
    );
}

fn unsafe_uid() -> u32 {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

#[test]
fn psql_streams_stdin_and_passes_the_exit_code() {
    let p = Project::new("psql");
    p.init(&[]);
    p.up();
    // psql exits 3 when a script fails under ON_ERROR_STOP.
    let mut cmd = p.cmd(&["psql", "-X", "-v", "ON_ERROR_STOP=1"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"create table s(x int);\ninsert into s values (1);\nselect 1/0;\ninsert into s values (2);\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("division by zero"));
    assert_eq!(p.sql("select count(*) from s"), "1");
    // A plain failing command passes psql's own code 1.
    let out = run(&mut p.cmd(&["psql", "-c", "select * from missing_table"]));
    assert_eq!(out.status.code(), Some(1));
    // Logs carry the entrypoint's structured lines.
    let logs = ok(&mut p.cmd(&["logs", "-n", "all"]));
    assert!(
        text(&logs.stdout).contains("INFO  startup: state=RUNNING"),
        "{}",
        text(&logs.stdout)
    );
}

#[test]
fn purge_needs_confirmation_and_then_deletes_the_data() {
    let p = Project::new("purge");
    p.init(&[]);
    p.up();
    p.sql("create table z(x int)");
    let data = p.path().join(".pgbox/data");
    let out = run(&mut p.cmd(&["down", "--purge"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert!(
        data.join("PG_VERSION").exists(),
        "nothing may be deleted without confirmation"
    );
    let st = docker(&["inspect", "-f", "{{.State.Running}}", &p.container()]);
    assert_eq!(
        st.trim(),
        "true",
        "a refused purge leaves the server running"
    );

    ok(&mut p.cmd(&["down", "--purge", "--yes"]));
    assert!(!data.exists());
    assert!(p.path().join("pgbox.toml").exists(), "config is kept");
    // The project folder is still fully deletable by its owner.
    p.up();
    assert_eq!(
        p.sql("select count(*) from pg_tables where tablename = 'z'"),
        "0"
    );
}

#[test]
fn up_initialises_a_fresh_folder_with_defaults() {
    let p = Project::new("fresh");
    let dir = p.path().join(&p.name);
    std::fs::create_dir(&dir).unwrap();
    let mut cmd = pgbox(&dir);
    cmd.args(["up"]).env("PGBOX_PORT", p.port.to_string());
    let out = ok(&mut cmd);
    assert!(dir.join("pgbox.toml").is_file());
    assert!(text(&out.stdout).starts_with(&format!(
        "postgresql://{}@127.0.0.1:{}/",
        p.name.replace('-', "_"),
        p.port
    )));
    ok(pgbox(&dir).args(["down", "--purge", "--yes"]));
}

#[test]
fn engine_detection_picks_docker_first_and_podman_on_request() {
    require(Eng::Docker);
    require(Eng::Podman);
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("pgbox.toml"),
        "[project]\nname = \"detect\"\n",
    )
    .unwrap();
    let engine_of = |extra: &[&str]| {
        let mut c = pgbox(d.path());
        c.args(extra).args(["status", "--json"]);
        let out = run(&mut c);
        assert_eq!(
            out.status.code(),
            Some(4),
            "not running: {}",
            text(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["engine"].as_str().unwrap().to_string()
    };
    // Both sockets answer: the Docker socket comes first.
    assert!(engine_of(&[]).starts_with("Docker "), "{}", engine_of(&[]));
    let podman = engine_of(&["--engine", "podman"]);
    assert!(
        podman.starts_with("Podman ") && podman.ends_with(PODMAN_SOCKET),
        "{podman}"
    );
    let by_address = engine_of(&["--engine", PODMAN_SOCKET]);
    assert!(by_address.starts_with("Podman "), "{by_address}");
}

/// The unprivileged user `scripts/ensure-rootless.sh` sets up with rootless Podman.
const ROOTLESS_USER: &str = "pgboxtest";

#[test]
fn rootless_podman_user_keeps_data_and_can_delete_everything() {
    let uid = text(&run(std::process::Command::new("id").args(["-u", ROOTLESS_USER])).stdout)
        .trim()
        .to_string();
    assert!(
        !uid.is_empty() && text(&run(std::process::Command::new("id").arg("-u")).stdout).trim() == "0",
        "this test runs pgbox as `{ROOTLESS_USER}` and needs root to switch to it: run `sudo scripts/ensure-rootless.sh` and the tests as root"
    );
    let home = format!("/home/{ROOTLESS_USER}");
    let dir = format!("{home}/pgbox-rootless-{}", std::process::id());
    let runtime = format!("/run/user/{uid}");
    let as_user = |args: &[&str]| {
        let mut c = std::process::Command::new("runuser");
        c.args([
            "-u",
            ROOTLESS_USER,
            "--",
            "env",
            &format!("HOME={home}"),
            &format!("XDG_RUNTIME_DIR={runtime}"),
        ])
        .arg(format!(
            "PATH={}",
            std::env::var("PATH").unwrap_or_default()
        ))
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null());
        c
    };
    let pgbox_bin = bin().display().to_string();
    let pg = |args: &[&str]| {
        let mut a = vec![pgbox_bin.as_str()];
        a.extend_from_slice(args);
        as_user(&a)
    };
    assert!(std::process::Command::new("runuser")
        .args(["-u", ROOTLESS_USER, "--", "mkdir", "-p", &dir])
        .status()
        .unwrap()
        .success());
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let port = free_port().to_string();

    let out = ok(&mut pg(&[
        "init",
        "--yes",
        "--name",
        &format!("rl{}", std::process::id()),
        "--port",
        &port,
    ]));
    let err = text(&out.stderr);
    assert!(
        err.contains("storage mode `direct`: rootless Podman maps"),
        "{err}"
    );
    let status = ok(&mut pg(&["up"]));
    assert!(text(&status.stdout).starts_with("postgresql://"));
    ok(&mut pg(&[
        "psql",
        "-c",
        "create table r(x int); insert into r values (8)",
    ]));
    ok(&mut pg(&["down"]));
    ok(&mut pg(&["up"]));
    let out = ok(&mut pg(&["psql", "-X", "-At", "-c", "select x from r"]));
    assert_eq!(text(&out.stdout).trim(), "8");
    let st = ok(&mut pg(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(
        v["engine"].as_str().unwrap().starts_with("Podman "),
        "{}",
        v["engine"]
    );
    ok(&mut pg(&["down", "--purge", "--yes"]));
    // Every file left in the project folder can be deleted by its owner, without sudo.
    let rm = run(&mut as_user(&["rm", "-rf", &dir]));
    assert!(
        rm.status.success(),
        "the user could not delete their project: {}",
        text(&rm.stderr)
    );
    assert!(!std::path::Path::new(&dir).exists());
}
