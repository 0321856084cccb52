//! The PgBouncer pooler (`[pooler]`), against the real engine and real clients:
//! pgbench runs inside the server's container and reaches the pooler by name on the
//! project network; psql runs on the host against the pooled URL.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A project with `[pooler]` on; removes the pooler and the network even on failure.
struct Pooled {
    p: Project,
    pooler_port: u16,
}

impl Pooled {
    /// `init`, then `max_connections` and `[pooler]` (plus `extra` lines in it).
    fn new(tag: &str, max_connections: u32, extra: &str) -> Pooled {
        let p = Project::new(tag);
        p.init(&[]);
        let pooler_port = free_port();
        let path = p.path().join("pgbox.toml");
        let toml = std::fs::read_to_string(&path).unwrap().replace(
            "max_connections = 100",
            &format!("max_connections = {max_connections}"),
        );
        std::fs::write(
            &path,
            format!("{toml}\n[pooler]\nenabled = true\nport = {pooler_port}\n{extra}"),
        )
        .unwrap();
        Pooled { p, pooler_port }
    }

    fn pooler(&self) -> String {
        format!("{}-pooler", self.p.container())
    }

    /// The project's user (the database's name by default).
    fn user(&self) -> String {
        self.db()
    }

    /// The project's database (the project name with `-` as `_`).
    fn db(&self) -> String {
        self.p.name.replace('-', "_")
    }

    fn pooled_url(&self) -> String {
        let out = ok(&mut self.p.cmd(&["url", "--pooled"]));
        text(&out.stdout).trim().to_string()
    }

    /// Run `args` in the server's container as postgres, `stdin` fed in.
    fn exec(&self, stdin: Option<&str>, args: &[&str]) -> Output {
        let container = self.p.container();
        let mut c = Command::new("docker");
        c.args(["exec", "-i", "-u", "postgres", "-e"])
            .arg("PGPASSFILE=/tmp/pgbox-test.pgpass")
            .arg(&container)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("docker exec");
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }

    /// The user's password in a pgpass file inside the server's container (never an argument).
    fn write_pgpass(&self) {
        let line = format!("*:*:*:{}:{}\n", self.user(), self.p.password());
        let out = self.exec(
            Some(&line),
            &["sh", "-c", "umask 077; cat > /tmp/pgbox-test.pgpass"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// pgbench tables at scale 1, through the Unix socket.
    fn pgbench_init(&self) {
        let (user, db) = (self.user(), self.db());
        let out = self.exec(None, &["pgbench", "-i", "-q", "-s", "1", "-U", &user, &db]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// pgbench through the pooler (by name on the project network), bounded by
    /// `timeout`, in a helper container of the server's image: it lives through a
    /// restart of the server's container. The password comes in a pgpass file.
    fn pgbench_pooled(&self, args: &[&str]) -> Output {
        let (user, db, pooler) = (self.user(), self.db(), self.pooler());
        let pgpass = self.p.path().join(".test-pgpass");
        if !pgpass.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&pgpass)
                .unwrap();
            use std::io::Write;
            writeln!(f, "*:*:*:{user}:{}", self.p.password()).unwrap();
        }
        let image = docker(&["inspect", "-f", "{{.Config.Image}}", &self.p.container()]);
        let network = format!("{}-net", self.p.container());
        // The project folder, for the pgpass file and any pgbench script in it.
        let mount = format!("{}:/bench:ro", self.p.path().display());
        let mut v = vec![
            "run",
            "--rm",
            "--network",
            &network,
            "-v",
            &mount,
            "-e",
            "PGPASSFILE=/bench/.test-pgpass",
            "--entrypoint",
            "timeout",
            image.trim(),
            "180",
            "pgbench",
            "-n",
            "-h",
            &pooler,
            "-p",
            "6432",
            "-U",
            &user,
        ];
        v.extend_from_slice(args);
        v.push(&db);
        Command::new("docker")
            .args(&v)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let _ = self.p.cmd(&["down", "--purge", "--yes", "-q"]).output();
        for args in [
            vec!["rm", "-f", &self.pooler()],
            vec!["network", "rm", &format!("{}-net", self.p.container())],
        ] {
            let _ = Command::new("docker")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// pgbench ran to the end and every transaction succeeded.
fn assert_all_succeeded(out: &Output, want: Option<u32>) {
    let o = text(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed ({}):\n{o}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        o.contains("number of failed transactions: 0 "),
        "failed transactions:\n{o}"
    );
    if let Some(n) = want {
        assert!(
            o.contains(&format!(
                "number of transactions actually processed: {n}/{n}"
            )),
            "{o}"
        );
    }
}

/// The pooler's part of `pgbox status --json` (exit code, the `pooler` object).
fn pooler_status(p: &Project) -> (i32, serde_json::Value) {
    let out = run(&mut p.cmd(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), v["pooler"].clone())
}

#[test]
fn a_hundred_pgbench_clients_share_a_server_of_twenty_connections() {
    let t = Pooled::new("pool100", 20, "pool_size = 15\nmode = \"transaction\"\n");
    t.p.up();
    assert_eq!(t.p.sql("show max_connections"), "20");
    t.write_pgpass();
    t.pgbench_init();

    // Straight to the server, 100 clients are more than it takes.
    let (user, db) = (t.user(), t.db());
    let direct = t.exec(
        None,
        &[
            "pgbench",
            "-n",
            "-h",
            "127.0.0.1",
            "-U",
            &user,
            "-c",
            "100",
            "-j",
            "4",
            "-t",
            "1",
            &db,
        ],
    );
    assert!(
        !direct.status.success(),
        "100 direct clients on max_connections = 20 should fail: {}",
        text(&direct.stdout)
    );
    assert!(
        text(&direct.stderr).contains("too many clients"),
        "{}",
        text(&direct.stderr)
    );

    // Through the pooler every one of them gets its transactions done.
    let out = t.pgbench_pooled(&["-c", "100", "-j", "4", "-t", "20", "-M", "extended"]);
    assert_all_succeeded(&out, Some(2000));

    // Protocol-level prepared statements in transaction mode (PgBouncer 1.21+): each
    // client's statements run on whichever server connection it gets. (pgbench
    // prepares synchronously, so it needs no more clients than pool_size here.)
    let out = t.pgbench_pooled(&["-c", "12", "-j", "2", "-t", "50", "-S", "-M", "prepared"]);
    assert_all_succeeded(&out, Some(600));

    let (code, pooler) = pooler_status(&t.p);
    assert_eq!(code, 0, "{pooler}");
    assert_eq!(pooler["ready"], true, "{pooler}");
    assert!(
        pooler["transactions"].as_u64().unwrap_or(0) >= 2000,
        "{pooler}"
    );
    assert!(
        pooler["version"]
            .as_str()
            .unwrap_or("")
            .starts_with("PgBouncer 1.2"),
        "{pooler}"
    );
}

#[test]
fn psql_through_the_pooled_url_with_the_right_and_a_wrong_password_and_no_plaintext_anywhere() {
    let t = Pooled::new("poolpw", 100, "");
    t.p.up();
    let url = t.pooled_url();
    assert!(
        url.ends_with(&format!(":{}/{}", t.pooler_port, t.db())),
        "{url}"
    );
    let password = t.p.password();

    // Right password: SCRAM with PgBouncer, then PgBouncer's SCRAM with the server.
    let out = host_psql(
        &url,
        &password,
        "select current_user || ' ' || inet_server_port()",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{} 5432", t.user()));

    // Wrong password: refused by the pooler.
    let out = host_psql(&url, "not-the-password", "select 1");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("authentication failed"),
        "{}",
        text(&out.stderr)
    );

    // The pooler's own role can do nothing but log in and run the lookup.
    let role = t.p.sql(
        "select rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, \
         rolconnlimit, rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'pgbox_pooler'",
    );
    assert_eq!(role, "f|f|f|f|f|f|5|t");

    // No plaintext password in any config file, env var or log; the auth file is the one
    // place the pooler role's password lives, 0600.
    let auth_path = t.p.path().join(".pgbox/secrets/pooler/auth");
    let auth = std::fs::read_to_string(&auth_path).unwrap();
    let pooler_pw = auth
        .trim_end()
        .trim_start_matches("\"pgbox_pooler\" \"")
        .trim_end_matches('"')
        .to_string();
    assert_eq!(pooler_pw.len(), 32, "{auth}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&auth_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let ini = std::fs::read_to_string(t.p.path().join(".pgbox/pooler/pgbouncer.ini")).unwrap();
    let inspect = docker(&["inspect", &t.pooler()]);
    let pooler_log = {
        let out = ok(&mut t.p.cmd(&["logs", "pooler", "-n", "all"]));
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    assert!(
        pooler_log.contains("PgBouncer 1.2"),
        "`logs pooler` shows the pooler's log: {pooler_log}"
    );
    let server_log = {
        let out = ok(&mut t.p.cmd(&["logs", "-n", "all"]));
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    for (what, haystack) in [
        ("pgbouncer.ini", &ini),
        ("docker inspect of the pooler", &inspect),
        ("the pooler's log", &pooler_log),
        ("the server's log", &server_log),
    ] {
        for secret in [&password, &pooler_pw] {
            assert!(!haystack.contains(secret.as_str()), "a password in {what}");
        }
    }
}

#[test]
fn a_server_restart_during_pgbench_through_the_pooler_loses_no_client() {
    let t = Pooled::new("poolrst", 40, "pool_size = 10\n");
    t.p.up();
    t.pgbench_init();

    // A restart pgbox makes (a setting that needs one, applied by `up`): the pooler is
    // paused around it, so every transaction succeeds.
    let bench = std::thread::scope(|scope| {
        let bench = scope.spawn(|| t.pgbench_pooled(&["-c", "20", "-j", "2", "-T", "20"]));
        std::thread::sleep(Duration::from_secs(4));
        let path = t.p.path().join("pgbox.toml");
        let toml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("# shared_buffers = \"256MB\"", "shared_buffers = \"64MB\"");
        std::fs::write(&path, toml).unwrap();
        let up = t.p.up();
        let said = text(&up.stderr);
        assert!(said.contains("restarted PostgreSQL"), "{said}");
        bench.join().unwrap()
    });
    assert_all_succeeded(&bench, None);
    assert_eq!(t.p.sql("show shared_buffers"), "64MB");

    // A restart pgbox does not make (the engine's): clients see errors, but none hangs,
    // and once the server is back the pooler serves again with no dead connection left.
    let started = Instant::now();
    let bench = std::thread::scope(|scope| {
        let bench = scope.spawn(|| t.pgbench_pooled(&["-c", "20", "-j", "2", "-T", "15"]));
        std::thread::sleep(Duration::from_secs(3));
        docker(&["restart", "-t", "30", &t.p.container()]);
        bench.join().unwrap()
    });
    assert_ne!(
        bench.status.code(),
        Some(124),
        "pgbench hung: {}",
        text(&bench.stdout)
    );
    assert!(started.elapsed() < Duration::from_secs(150));
    let deadline = Instant::now() + Duration::from_secs(90);
    while run(&mut t.p.cmd(&["status", "-q"])).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the server did not come back");
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = t.pgbench_pooled(&["-c", "20", "-j", "2", "-t", "25"]);
    assert_all_succeeded(&out, Some(500));
}

#[test]
fn a_restore_swap_while_clients_are_connected_through_the_pooler() {
    let t = Pooled::new("poolrest", 100, "pool_size = 10\n");
    t.p.up();
    t.p.sql("create table t (x int); insert into t select generate_series(1, 3)");
    ok(&mut t.p.cmd(&["backup"]));
    t.p.sql("insert into t select generate_series(4, 5)");
    std::fs::write(t.p.path().join("count.sql"), "select count(*) from t;\n").unwrap();

    let bench = std::thread::scope(|scope| {
        let bench = scope.spawn(|| {
            t.pgbench_pooled(&["-c", "10", "-j", "2", "-T", "25", "-f", "/bench/count.sql"])
        });
        std::thread::sleep(Duration::from_secs(4));
        ok(&mut t.p.cmd(&["restore", "latest", "--yes"]));
        bench.join().unwrap()
    });
    // Clients waited through the swap instead of failing.
    assert_all_succeeded(&bench, None);

    // A new pooled session sees the restored database, not the one renamed aside.
    let out = host_psql(&t.pooled_url(), &t.p.password(), "select count(*) from t");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "3");
    let (code, pooler) = pooler_status(&t.p);
    assert_eq!(code, 0, "{pooler}");
}

#[test]
fn down_and_up_with_the_pooler_on() {
    let t = Pooled::new("poolcycle", 100, "");
    t.p.up();
    let url = t.pooled_url();
    let password = t.p.password();
    let listed = text(&ok(&mut t.p.cmd(&["ls"])).stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&t.p.name) && l.contains("pgbouncer")),
        "{listed}"
    );

    let down = ok(&mut t.p.cmd(&["down"]));
    assert!(
        text(&down.stderr).contains("removed the pooler"),
        "{}",
        text(&down.stderr)
    );
    let gone = Command::new("docker")
        .args(["inspect", &t.pooler()])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the pooler's container is gone");
    let (code, _) = pooler_status(&t.p);
    assert_ne!(code, 0, "status is unhealthy with the project down");

    t.p.up();
    let out = host_psql(&url, &password, "select 42");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "42");
    let (code, pooler) = pooler_status(&t.p);
    assert_eq!(code, 0, "{pooler}");
    assert_eq!(pooler["ready"], true, "{pooler}");

    // `up` again with nothing changed leaves the pooler as it is.
    let again = t.p.up();
    assert!(!text(&again.stderr).contains("reloaded"));

    // Turning it off removes it; `url --pooled` then says why it has none.
    let path = t.p.path().join("pgbox.toml");
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("enabled = true", "enabled = false");
    std::fs::write(&path, toml).unwrap();
    let off = t.p.up();
    assert!(text(&off.stderr).contains("`[pooler]` is off"));
    let url = run(&mut t.p.cmd(&["url", "--pooled"]));
    assert!(!url.status.success());
    assert!(text(&url.stderr).contains("the pooler is not enabled"));
}

#[test]
fn changing_pool_size_and_mode_reloads_without_dropping_a_client() {
    let t = Pooled::new("pooldrift", 100, "pool_size = 5\nmode = \"transaction\"\n");
    t.p.up();
    let url = t.pooled_url();
    let password = t.p.password();

    // A client session through the pooler, open across the change.
    let mut client = Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", &url])
        .env("PGPASSWORD", &password)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = client.stdin.take().unwrap();
    use std::io::Write;
    writeln!(input, "select 'before';").unwrap();
    input.flush().unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let path = t.p.path().join("pgbox.toml");
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("pool_size = 5", "pool_size = 8")
        .replace("mode = \"transaction\"", "mode = \"session\"");
    std::fs::write(&path, toml).unwrap();
    let up = t.p.up();
    assert!(
        text(&up.stderr).contains("reloaded PgBouncer: session mode, pool_size 8"),
        "{}",
        text(&up.stderr)
    );

    writeln!(input, "select 'after';").unwrap();
    drop(input);
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "before\nafter");
    let (_, pooler) = pooler_status(&t.p);
    assert_eq!(pooler["mode"], "session", "{pooler}");
    assert_eq!(pooler["pool_size"], 8, "{pooler}");
}

#[test]
fn bad_pooler_settings_are_clear_errors() {
    let p = Project::new("poolbad");
    p.init(&[]);
    let path = p.path().join("pgbox.toml");
    let base = std::fs::read_to_string(&path).unwrap();

    std::fs::write(
        &path,
        format!("{base}\n[pooler]\nenabled = true\nmode = \"transacton\"\n"),
    )
    .unwrap();
    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown variant `transacton`, expected `transaction` or `session`"),
        "{err}"
    );
    assert!(
        err.contains("pgbox.toml:"),
        "names the file and line: {err}"
    );

    std::fs::write(
        &path,
        format!("{base}\n[pooler]\nenabled = true\nport = {}\n", p.port),
    )
    .unwrap();
    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "`[pooler] port` is `{}`, the server's own port",
            p.port
        )),
        "{err}"
    );

    std::fs::write(
        &path,
        format!("{base}\n[pooler]\nenabled = true\npool_size = 99\n"),
    )
    .unwrap();
    let err = text(&run(&mut p.cmd(&["up"])).stderr);
    assert!(
        err.contains("`[pooler] pool_size` is `99` but `max_connections` `100` leaves room for 95"),
        "{err}"
    );

    // The pooler's port taken by something else: said before anything is created.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        &path,
        format!("{base}\n[pooler]\nenabled = true\nport = {port}\n"),
    )
    .unwrap();
    let out = run(&mut p.cmd(&["up"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "the pooler's port `{port}` on `127.0.0.1` is already in use"
        )),
        "{err}"
    );
    let _ = Command::new("docker")
        .args(["network", "rm", &format!("{}-net", p.container())])
        .output();
    drop(taken);
}

#[test]
fn generated_compose_kube_and_quadlet_include_the_pooler_and_the_compose_one_runs() {
    let t = Pooled::new("poolgen", 100, "");
    let out_dir = t.p.path().join("deploy");
    let out_s = out_dir.display().to_string();
    ok(&mut t.p.cmd(&["generate", "all", "-o", &out_s]));
    let read = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap();
    let name = format!("pgbox-{}-dev", t.p.name);

    let compose = read("compose.yaml");
    assert!(compose.contains("\n  pooler:\n"), "{compose}");
    assert!(
        compose.contains(&format!("\"127.0.0.1:{}:6432\"", t.pooler_port)),
        "{compose}"
    );
    assert!(compose.contains("condition: service_healthy"));
    let kube = read("kube.yaml");
    assert!(kube.contains("- name: pooler"), "{kube}");
    assert!(
        kube.contains(&format!("hostPort: {}", t.pooler_port)),
        "{kube}"
    );
    assert!(read("pooler/kube/pgbouncer.ini").contains("* = host=localhost port=5432"));
    assert!(read(&format!("{name}-pooler.container")).contains(&format!("Network={name}.network")));
    assert!(read(&format!("{name}.container")).contains(&format!("Network={name}.network")));
    assert!(read(&format!("{name}.network")).contains("[Network]"));
    assert!(read("pooler/conf/pgbouncer.ini").contains(&format!("* = host={name} port=5432")));

    // The pooler role's password only in its auth file; setup.sql carries its verifier.
    use std::os::unix::fs::PermissionsExt;
    let auth = read("secrets/pooler/auth");
    let pw = auth.trim_end().rsplit('"').nth(1).unwrap().to_string();
    assert_eq!(pw.len(), 32, "{auth}");
    let setup = read("secrets/pooler/setup.sql");
    assert!(setup.contains("PASSWORD 'SCRAM-SHA-256$4096:"), "{setup}");
    for f in ["secrets/pooler/auth", "secrets/pooler/setup.sql"] {
        let mode = std::fs::metadata(out_dir.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let mut stack = vec![out_dir.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with("secrets/pooler/auth") {
                let body = std::fs::read(&path).unwrap();
                assert!(
                    !String::from_utf8_lossy(&body).contains(&pw),
                    "the pooler's password in {}",
                    path.display()
                );
            }
        }
    }
    assert!(read(".gitignore").lines().any(|l| l == "secrets/"));

    // The compose file runs: set up the role once, then psql through the pooler.
    let _down = crate::support::ComposeDown(
        out_dir.clone(),
        vec![
            format!("localhost/pgbox-{}:pg15-dev", t.p.name),
            format!("localhost/pgbox-{}-pooler:dev", t.p.name),
        ],
    );
    let compose = |args: &[&str], stdin: Option<std::fs::File>| {
        let mut c = Command::new("docker-compose");
        c.args(args).current_dir(&out_dir);
        if let Some(f) = stdin {
            c.stdin(f);
        }
        let o = c.output().expect("docker-compose");
        assert!(
            o.status.success(),
            "docker-compose {args:?}: {}",
            text(&o.stderr)
        );
        o
    };
    compose(&["up", "-d"], None);
    let server = name.clone();
    let deadline = Instant::now() + Duration::from_secs(180);
    while docker(&["inspect", "-f", "{{.State.Health.Status}}", &server]).trim() != "healthy" {
        assert!(Instant::now() < deadline, "the server never became healthy");
        std::thread::sleep(Duration::from_millis(500));
    }
    let setup = std::fs::File::open(out_dir.join("secrets/pooler/setup.sql")).unwrap();
    let db = t.db();
    compose(
        &[
            "exec", "-T", "postgres", "psql", "-U", &db, "-d", "postgres",
        ],
        Some(setup),
    );
    let password = read("secrets/postgres_password").trim_end().to_string();
    let url = format!("postgresql://{db}@127.0.0.1:{}/{db}", t.pooler_port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = host_psql(&url, &password, "select current_user");
        if out.status.success() {
            assert_eq!(text(&out.stdout).trim(), db);
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn with_tls_the_pooler_requires_it_from_clients_and_uses_it_to_the_server() {
    let p = Project::new("pooltls");
    p.init(&["--tls", "self-signed"]);
    let pooler_port = free_port();
    let path = p.path().join("pgbox.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{toml}\n[pooler]\nenabled = true\nport = {pooler_port}\n"),
    )
    .unwrap();
    let _cleanup = Pooled { p, pooler_port };
    let t = &_cleanup;
    t.p.up();
    let url = t.pooled_url();
    assert!(url.contains("sslmode=verify-full"), "{url}");
    // Verified against the project's CA, and TLS again from the pooler to the server.
    let out = host_psql(
        &url,
        &t.p.password(),
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "t");
    let plain = format!(
        "postgresql://{}@127.0.0.1:{pooler_port}/{}?sslmode=disable",
        t.user(),
        t.db()
    );
    let out = host_psql(&plain, &t.p.password(), "select 1");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("SSL required"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn generate_k8s_renders_a_cloudnativepg_pooler_from_the_pooler_settings() {
    let t = Pooled::new(
        "poolk8s",
        100,
        "mode = \"session\"\npool_size = 12\nmax_client_conn = 300\n",
    );
    let out_dir = t.p.path().join("k8s-out");
    let out_s = out_dir.display().to_string();
    ok(&mut t.p.cmd(&["generate", "k8s", "-o", &out_s]));
    let pooler = std::fs::read_to_string(out_dir.join("pooler.yaml")).unwrap();
    for want in [
        "kind: \"Pooler\"",
        "poolMode: \"session\"",
        "default_pool_size: \"12\"",
        "max_client_conn: \"300\"",
    ] {
        assert!(pooler.contains(want), "{want}:\n{pooler}");
    }
}
