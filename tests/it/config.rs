//! Configuration after the first start, against a real engine: rendered
//! postgresql.conf / pg_hba.conf, reload or restart on change, password changes,
//! init scripts, extensions and TLS.

use std::process::Command;

use crate::support::*;

/// Replace `from` with `to` in the project's pgbox.toml.
fn edit(p: &Project, from: &str, to: &str) {
    let path = p.path().join("pgbox.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "pgbox.toml has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn started_at(p: &Project) -> String {
    docker(&["inspect", "-f", "{{.State.StartedAt}}", &p.container()])
}

#[test]
fn config_changes_are_reloaded_or_restarted_and_bad_values_refused() {
    let p = Project::new("conf");
    p.init(&[]);
    p.up();
    assert_eq!(p.sql("show work_mem"), "4MB");
    assert_eq!(p.sql("show shared_preload_libraries"), "pg_stat_statements");
    let data = p.path().join(".pgbox/data");
    assert!(
        data.join("postgresql.conf.original").is_file()
            && data.join("pg_hba.conf.original").is_file()
    );

    // work_mem: a reload is enough; the server keeps running.
    let before = started_at(&p);
    edit(&p, "work_mem = \"4MB\"", "work_mem = \"16MB\"");
    let out = p.up();
    assert!(
        text(&out.stderr).contains("applied the changed settings with a reload"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.sql("show work_mem"), "16MB");
    assert_eq!(
        started_at(&p),
        before,
        "no restart for a reloadable setting"
    );

    // max_connections needs a restart, and pgbox says so.
    edit(&p, "max_connections = 100", "max_connections = 123");
    let out = p.up();
    assert!(
        text(&out.stderr).contains("restarted PostgreSQL to apply max_connections"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.sql("show max_connections"), "123");
    assert_ne!(started_at(&p), before);

    // A bad value is refused with PostgreSQL's message; the server and its files keep the old values.
    let conf = p.path().join(".pgbox/conf/postgresql.conf");
    let good = std::fs::read(&conf).unwrap();
    edit(
        &p,
        "# [postgres.settings]",
        "[postgres.settings]\nrandom_page_cost = \"fast\"\n#",
    );
    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid value for parameter \"random_page_cost\": \"fast\""),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&conf).unwrap(),
        good,
        "rendered config rolled back"
    );
    assert_eq!(p.sql("show random_page_cost"), "4");
    // And a bad value before a start stops the start with the same message.
    ok(&mut p.cmd(&["down"]));
    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid value for parameter \"random_page_cost\""),
        "{}",
        text(&out.stderr)
    );
    edit(&p, "random_page_cost = \"fast\"", "random_page_cost = 1.5");
    p.up();
    assert_eq!(p.sql("show random_page_cost"), "1.5");
}

#[test]
fn a_changed_password_is_applied_without_leaking() {
    let p = Project::new("repw");
    p.init(&[]);
    let url = text(&p.up().stdout).trim().to_string();
    let old = p.password();
    let new = "n3w 'pass' \"word\" \\ $x";
    std::fs::write(
        p.path().join(".pgbox/secrets/postgres_password"),
        format!("{new}\n"),
    )
    .unwrap();
    let out = p.up();
    assert!(
        text(&out.stderr).contains("applied the new password"),
        "{}",
        text(&out.stderr)
    );
    let r = host_psql(&url, new, "select 1");
    assert!(r.status.success(), "new password: {}", text(&r.stderr));
    assert!(
        !host_psql(&url, &old, "select 1").status.success(),
        "old password refused"
    );
    let logs = text(&ok(&mut p.cmd(&["logs", "-n", "all"])).stderr);
    assert!(!logs.contains("n3w"), "password in the server log");
    // Nothing to do the second time.
    let out = p.up();
    assert!(!text(&out.stderr).contains("applied the new password"));
}

#[test]
fn init_scripts_run_once_and_a_failing_one_stops_the_first_start() {
    let p = Project::new("initd");
    let dir = p.path().join("initdb.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("01-schema.sql"), "create table seeded(x int);\n").unwrap();
    std::fs::write(
        dir.join("03-more.sh"),
        "psql -c 'insert into seeded values (3)'\n",
    )
    .unwrap();
    let gz = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'insert into seeded values (2);\\n' | gzip > '{}'",
            dir.join("02-data.sql.gz").display()
        ))
        .status()
        .unwrap();
    assert!(gz.success());
    std::fs::write(
        dir.join("04-broken.sql"),
        "insert into missing_table values (1);\n",
    )
    .unwrap();
    p.init(&[]);
    edit(&p, "# init_dir = \"initdb.d\"", "init_dir = \"initdb.d\"");

    let out = run(&mut p.cmd(&["up"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("relation \"missing_table\" does not exist"),
        "the script's output: {err}"
    );
    assert!(err.contains("init script 04-broken.sql failed"), "{err}");

    std::fs::remove_file(dir.join("04-broken.sql")).unwrap();
    p.up();
    assert_eq!(
        p.sql("select string_agg(x::text, ',' order by x) from seeded"),
        "2,3"
    );
    ok(&mut p.cmd(&["down"]));
    p.up();
    assert_eq!(
        p.sql("select count(*) from seeded"),
        "2",
        "scripts run once only"
    );
}

#[test]
fn extensions_from_pgbox_toml_are_created() {
    let p = Project::new("ext");
    p.init(&[]);
    p.up();
    assert_eq!(
        p.sql("select string_agg(extname, ',' order by extname) from pg_extension where extname <> 'plpgsql'"),
        "pgcrypto,uuid-ossp"
    );
    assert_eq!(p.sql("select length(gen_random_uuid()::text)"), "36");
    edit(
        &p,
        "extensions = [\"pgcrypto\", \"uuid-ossp\"]",
        "extensions = [\"pgcrypto\", \"uuid-ossp\", \"pg_stat_statements\"]",
    );
    p.up();
    assert_eq!(
        p.sql("select count(*) from pg_extension where extname = 'pg_stat_statements'"),
        "1"
    );
}

#[test]
fn tls_verify_full_works_and_a_wrong_ca_fails() {
    let p = Project::new("tls");
    p.init(&["--tls", "self-signed"]);
    let url = text(&p.up().stdout).trim().to_string();
    let ca = p.path().join(".pgbox/ca/ca.crt");
    assert!(
        url.ends_with(&format!(
            "?sslmode=verify-full&sslrootcert={}",
            ca.display()
        )),
        "{url}"
    );
    let r = host_psql(
        &url,
        &p.password(),
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_eq!(text(&r.stdout).trim(), "t");

    // Another project's CA does not verify this server.
    let other = tempfile::tempdir().unwrap();
    let none = format!("unix://{}/none.sock", other.path().display());
    ok(pgbox(other.path()).args([
        "init",
        "--yes",
        "--name",
        "otherca",
        "--tls",
        "self-signed",
        "--engine",
        &none,
    ]));
    let wrong = url.replace(
        &ca.display().to_string(),
        &other.path().join(".pgbox/ca/ca.crt").display().to_string(),
    );
    let r = host_psql(&wrong, &p.password(), "select 1");
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("certificate verify failed"),
        "{}",
        text(&r.stderr)
    );

    // Without TLS the server refuses.
    let plain = format!(
        "postgresql://{}@127.0.0.1:{}/{}?sslmode=disable",
        p.name, p.port, p.name
    );
    let r = host_psql(&plain, &p.password(), "select 1");
    assert!(
        text(&r.stderr).contains("no encryption"),
        "{}",
        text(&r.stderr)
    );

    // The key inside the container: 0600, owned by postgres.
    let out = docker(&[
        "exec",
        &p.container(),
        "stat",
        "-c",
        "%a %U",
        "/var/lib/postgresql/tls/server.key",
    ]);
    assert_eq!(out.trim(), "600 postgres");
}

#[test]
fn tls_files_mode_serves_the_given_certificate() {
    // A certificate and key made elsewhere (here: another project's self-signed pair).
    let maker = tempfile::tempdir().unwrap();
    let none = format!("unix://{}/none.sock", maker.path().display());
    ok(pgbox(maker.path()).args([
        "init",
        "--yes",
        "--name",
        "certmaker",
        "--tls",
        "self-signed",
        "--engine",
        &none,
    ]));
    let cert = maker.path().join(".pgbox/tls/server.crt");
    let key = maker.path().join(".pgbox/tls/server.key");

    let p = Project::new("tlsf");
    p.init(&[
        "--tls",
        "files",
        "--cert",
        &cert.display().to_string(),
        "--key",
        &key.display().to_string(),
    ]);
    let url = text(&p.up().stdout).trim().to_string();
    assert!(url.ends_with("?sslmode=require"), "{url}");
    let r = host_psql(
        &url,
        &p.password(),
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_eq!(text(&r.stdout).trim(), "t");
    assert_eq!(
        std::fs::read(p.path().join(".pgbox/tls/server.crt")).unwrap(),
        std::fs::read(&cert).unwrap()
    );
}

#[test]
fn health_check_covers_state_process_and_disk() {
    let p = Project::new("hc");
    p.init(&[]);
    p.up();
    let hc = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        let c = p.container();
        args.extend_from_slice(&[c.as_str(), "pgbox-healthcheck"]);
        run(Command::new("docker").args(&args))
    };
    let out = hc(&[]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let out = hc(&["-e", "PGBOX_DISK_MIN_MB=999999999"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("MB free on"),
        "{}",
        text(&out.stdout)
    );
    ok(&mut p.cmd(&["maintenance", "on"]));
    let out = hc(&[]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout).trim(), "state is MAINTENANCE");
}

#[test]
fn own_conf_files_and_memory_limit_are_applied() {
    let p = Project::new("own");
    let dir = p.path().join("postgres.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("slow.conf"), "log_min_duration_statement = 123\n").unwrap();
    p.init(&[]);
    edit(
        &p,
        "# conf_dir = \"postgres.d\"",
        "conf_dir = \"postgres.d\"",
    );
    edit(&p, "# memory_limit = \"2GB\"", "memory_limit = \"1GB\"");
    p.up();
    assert_eq!(p.sql("show log_min_duration_statement"), "123ms");
    assert_eq!(
        p.sql("show shared_buffers"),
        "256MB",
        "a quarter of the memory limit"
    );
    let mem = docker(&["inspect", "-f", "{{.HostConfig.Memory}}", &p.container()]);
    assert_eq!(mem.trim(), (1u64 << 30).to_string());
    // The mount is read-only inside the container.
    let out =
        run(Command::new("docker").args(["exec", &p.container(), "touch", "/etc/pgbox/conf.d/x"]));
    assert!(!out.status.success());
}
