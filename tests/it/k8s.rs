//! `pgbox generate k8s`: snapshots of every file for a fixed pgbox.toml, every
//! object validated against the JSON schemas in tests/schemas/ (CloudNativePG
//! 1.25.x, Kubernetes 1.30), wrong fields rejected, bad input refused with nothing
//! written, and the restore Job's script run for real against a pgbox server
//! standing in for the CloudNativePG service.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::*;

const TOML: &str = r#"[project]
name = "shop"
[postgres]
memory_limit = "1GB"
extensions = ["pgcrypto", "uuid-ossp"]
[postgres.settings]
random_page_cost = 1.1
port = 5433
[network]
port = 6001
[backup]
keep_daily = 14
"#;
const BACKUP: &str = "shop-shop-20261127T020000Z.dump.zst";

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn hostname() -> String {
    read(Path::new("/proc/sys/kernel/hostname"))
        .trim()
        .to_string()
}

/// A project folder with [`TOML`] and a stand-in backup file; returns the output
/// folder of `generate k8s --env prod` and the command's stderr.
fn generated(d: &Path) -> (PathBuf, String) {
    std::fs::write(d.join("pgbox.toml"), TOML).unwrap();
    std::fs::create_dir_all(d.join("backups")).unwrap();
    std::fs::write(d.join("backups").join(BACKUP), b"not read by generate").unwrap();
    let out = ok(pgbox(d).args([
        "generate",
        "k8s",
        "--env",
        "prod",
        "--backup",
        &format!("backups/{BACKUP}"),
    ]));
    (PathBuf::from(text(&out.stdout).trim()), text(&out.stderr))
}

/// The schema of `kind`, as a validator.
fn validator(kind: &str) -> jsonschema::Validator {
    let file = match kind {
        "Cluster" => "cnpg-1.25-cluster.json",
        "Pooler" => "cnpg-1.25-pooler.json",
        "ScheduledBackup" => "cnpg-1.25-scheduledbackup.json",
        "Secret" => "k8s-1.30-secret.json",
        "ConfigMap" => "k8s-1.30-configmap.json",
        "Job" => "k8s-1.30-job.json",
        other => panic!("no schema for kind {other}"),
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(file);
    let schema: Value = serde_json::from_str(&read(&path)).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn errors(v: &Value) -> Vec<String> {
    let kind = v["kind"].as_str().expect("every object has a kind");
    validator(kind)
        .iter_errors(v)
        .map(|e| format!("{e} at `{}`", e.instance_path))
        .collect()
}

/// Every YAML document of a file, as JSON values (a real YAML parser).
fn objects(p: &Path) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(p))
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            v
        })
        .collect()
}

#[test]
fn k8s_snapshots_of_every_file_and_every_object_valid() {
    let d = tempfile::tempdir().unwrap();
    let (out, stderr) = generated(d.path());
    assert_eq!(out, d.path().join("deploy/k8s-prod"));
    let password = objects(&out.join("secret-app.yaml"))[0]["stringData"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(password.len(), 32);
    let host = hostname();
    let shown = |name: &str| {
        read(&out.join(name))
            .replace(&out.display().to_string(), "[OUT]")
            .replace(&d.path().display().to_string(), "[PROJECT]")
            .replace(&password, "[PASSWORD]")
            .replace(&format!("\"{host}\""), "\"[HOST]\"")
            .replace(&format!("`{host}`"), "`[HOST]`")
    };
    let files = [
        "cluster.yaml",
        "secret-app.yaml",
        "scheduled-backup.yaml",
        "restore-job.yaml",
        "cluster-import.yaml",
        "README.md",
        ".gitignore",
    ];
    for f in files {
        insta::assert_snapshot!(format!("k8s_{}", f.trim_start_matches('.')), shown(f));
    }
    let mut listed: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut want: Vec<String> = files.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want, "no other file (no Pooler without [pooler])");

    // Every object of every file is valid for its schema.
    let mut kinds = Vec::new();
    for f in files.iter().filter(|f| f.ends_with(".yaml")) {
        for o in objects(&out.join(f)) {
            assert_eq!(errors(&o), Vec::<String>::new(), "{f}: {o:#}");
            kinds.push(o["kind"].as_str().unwrap().to_string());
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Cluster",
            "Cluster",
            "ConfigMap",
            "Job",
            "ScheduledBackup",
            "Secret"
        ]
    );

    // The password is only in the Secret's file: mode 600 and git-ignored.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("secret-app.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for f in files.iter().filter(|f| **f != "secret-app.yaml") {
        assert!(
            !read(&out.join(f)).contains(&password),
            "{f} carries the password"
        );
    }
    ok(Command::new("git")
        .args(["init", "-q"])
        .current_dir(d.path()));
    ok(Command::new("git")
        .args(["check-ignore", "-q", "deploy/k8s-prod/secret-app.yaml"])
        .current_dir(d.path()));

    // The pieces the issue names.
    let c = &objects(&out.join("cluster.yaml"))[0];
    assert_eq!(
        c["spec"]["imageName"],
        "ghcr.io/cloudnative-pg/postgresql:15"
    );
    assert_eq!(c["spec"]["enableSuperuserAccess"], false);
    assert_eq!(c["spec"]["resources"]["limits"]["memory"], "1024Mi");
    assert_eq!(
        c["spec"]["bootstrap"]["initdb"]["secret"]["name"],
        "shop-prod-app"
    );
    let params = c["spec"]["postgresql"]["parameters"].as_object().unwrap();
    for managed in [
        "port",
        "listen_addresses",
        "hba_file",
        "shared_preload_libraries",
    ] {
        assert!(!params.contains_key(managed), "{managed}");
    }
    assert_eq!(params["random_page_cost"], "1.1");
    let sb = &objects(&out.join("scheduled-backup.yaml"))[0];
    assert_eq!(sb["spec"]["schedule"], "0 0 2 * * *");
    let job = &objects(&out.join("restore-job.yaml"))[1];
    let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env
        .as_array()
        .unwrap()
        .contains(&json!({"name": "BACKUP_FILE", "value": BACKUP})));
    let imp = &objects(&out.join("cluster-import.yaml"))[0];
    assert_eq!(
        imp["spec"]["bootstrap"]["initdb"]["import"]["source"]["externalCluster"],
        "pgbox"
    );

    // Each set setting with no CloudNativePG equivalent is warned about.
    for w in [
        "`[postgres.settings] port` is managed by CloudNativePG",
        "`[network] port` has no CloudNativePG equivalent",
        "`[backup] keep_*` has no CloudNativePG equivalent",
    ] {
        assert!(stderr.contains(w), "{w}: {stderr}");
    }
    assert!(!stderr.contains("`[tls] mode`"), "{stderr}");

    // The script in the ConfigMap is shellcheck-clean.
    let script = objects(&out.join("restore-job.yaml"))[0]["data"]["restore.sh"]
        .as_str()
        .unwrap()
        .to_string();
    let f = d.path().join("restore.sh");
    std::fs::write(&f, &script).unwrap();
    let sc = run(Command::new("shellcheck").arg(&f));
    assert!(sc.status.success(), "shellcheck: {}", text(&sc.stdout));
}

#[test]
fn k8s_wrong_fields_are_rejected_by_the_schemas() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = generated(d.path());
    let cluster = objects(&out.join("cluster.yaml")).remove(0);
    let sb = objects(&out.join("scheduled-backup.yaml")).remove(0);
    let secret = objects(&out.join("secret-app.yaml")).remove(0);
    let mut restore = objects(&out.join("restore-job.yaml"));
    let job = restore.remove(1);
    let cm = restore.remove(0);
    type Breaker = fn(&mut Value);
    let cases: Vec<(&str, Value, Breaker)> = vec![
        ("a misspelt initdb field", cluster.clone(), |v| {
            v["spec"]["bootstrap"]["initdb"]["checksums"] = json!(true)
        }),
        ("instances as a string", cluster.clone(), |v| {
            v["spec"]["instances"] = json!("1")
        }),
        ("a parameter that is not a string", cluster.clone(), |v| {
            v["spec"]["postgresql"]["parameters"]["max_connections"] = json!(100)
        }),
        ("an unknown import type", cluster.clone(), |v| {
            v["spec"]["bootstrap"]["initdb"]["import"] =
                json!({"type": "dump", "databases": ["a"], "source": {"externalCluster": "x"}})
        }),
        ("a bad memory quantity", cluster, |v| {
            v["spec"]["resources"]["limits"]["memory"] = json!("1 GB")
        }),
        ("a five-field schedule", sb.clone(), |v| {
            v["spec"]["schedule"] = json!("0 2 * * *")
        }),
        ("an unknown backup method", sb.clone(), |v| {
            v["spec"]["method"] = json!("pgdump")
        }),
        ("no cluster", sb, |v| {
            v["spec"].as_object_mut().unwrap().remove("cluster");
        }),
        ("basic-auth without a password", secret, |v| {
            v["stringData"].as_object_mut().unwrap().remove("password");
        }),
        ("a Job pod that restarts always", job.clone(), |v| {
            v["spec"]["template"]["spec"]["restartPolicy"] = json!("Always")
        }),
        ("a volume mount without a path", job, |v| {
            v["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
                .as_object_mut()
                .unwrap()
                .remove("mountPath");
        }),
        ("a ConfigMap key with a space", cm, |v| {
            v["data"]["restore script"] = json!("x")
        }),
    ];
    for (what, mut v, break_it) in cases {
        assert_eq!(errors(&v), Vec::<String>::new(), "{what}: valid before");
        break_it(&mut v);
        assert!(!errors(&v).is_empty(), "{what}: accepted {v:#}");
    }
}

#[test]
fn k8s_bad_input_is_refused_and_nothing_is_half_written() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pgbox.toml"), TOML).unwrap();

    let bad_env = run(pgbox(d.path()).args(["generate", "k8s", "--env", "staging"]));
    assert_eq!(bad_env.status.code(), Some(2));
    assert!(
        text(&bad_env.stderr).contains("invalid value 'staging'"),
        "{}",
        text(&bad_env.stderr)
    );
    assert!(!d.path().join("deploy").exists());

    let file = d.path().join("not-a-folder");
    std::fs::write(&file, "mine\n").unwrap();
    let to_file = run(pgbox(d.path()).args(["generate", "k8s", "-o", "not-a-folder"]));
    assert_eq!(to_file.status.code(), Some(2));
    assert!(
        text(&to_file.stderr).contains("is not a folder; nothing was written"),
        "{}",
        text(&to_file.stderr)
    );
    assert_eq!(read(&file), "mine\n");

    let wrong_kind = run(pgbox(d.path()).args(["generate", "compose", "--backup", "latest"]));
    assert_eq!(wrong_kind.status.code(), Some(2));
    assert!(text(&wrong_kind.stderr).contains("`--backup` applies to `generate k8s`"));
    let missing = run(pgbox(d.path()).args(["generate", "k8s", "--backup", "nope.dump"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("does not exist"),
        "{}",
        text(&missing.stderr)
    );
    assert!(!d.path().join("deploy").exists());

    // Into an existing folder of the user's, with its own .gitignore: the line is added.
    let mine = d.path().join("k8s");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join(".gitignore"), "*.log").unwrap();
    ok(pgbox(d.path()).args(["generate", "k8s", "-o", "k8s"]));
    assert_eq!(read(&mine.join(".gitignore")), "*.log\nsecret-app.yaml\n");
    let secret = read(&mine.join("secret-app.yaml"));
    let again = ok(pgbox(d.path()).args(["generate", "k8s", "-o", "k8s"]));
    assert!(
        text(&again.stderr).contains("0 written, 5 unchanged"),
        "{}",
        text(&again.stderr)
    );

    // A changed file is refused, and so nothing else is written either.
    let before: Vec<(String, String)> = ["cluster.yaml", "cluster-import.yaml", "README.md"]
        .iter()
        .map(|f| (f.to_string(), read(&mine.join(f))))
        .collect();
    std::fs::write(mine.join("cluster.yaml"), "# mine\n").unwrap();
    std::fs::write(
        d.path().join("pgbox.toml"),
        TOML.replace("memory_limit = \"1GB\"", "memory_limit = \"2GB\""),
    )
    .unwrap();
    let refused = run(pgbox(d.path()).args(["generate", "k8s", "-o", "k8s"]));
    assert_eq!(refused.status.code(), Some(2));
    let err = text(&refused.stderr);
    assert!(
        err.contains("nothing was written") && err.contains("cluster.yaml"),
        "{err}"
    );
    assert_eq!(read(&mine.join("cluster.yaml")), "# mine\n");
    for (f, body) in &before[1..] {
        assert_eq!(&read(&mine.join(f)), body, "{f} untouched");
    }
    let forced = ok(pgbox(d.path()).args(["generate", "k8s", "-o", "k8s", "--force"]));
    assert!(
        text(&forced.stderr).contains("updated `cluster.yaml`"),
        "{}",
        text(&forced.stderr)
    );
    assert!(read(&mine.join("cluster.yaml")).contains("\"2048Mi\""));
    assert_eq!(
        read(&mine.join("secret-app.yaml")),
        secret,
        "the password is never regenerated"
    );
}

/// The restore Job's script, from the generated ConfigMap, run with the Job's own
/// settings against a second pgbox server of the same major standing in for the
/// CloudNativePG service, as a non-superuser owner like CloudNativePG's app user.
#[test]
fn k8s_restore_job_script_restores_a_pgbox_backup_and_checks_row_counts() {
    let src = Project::new("k8s-src");
    src.init(&[]);
    src.up();
    src.sql("CREATE EXTENSION IF NOT EXISTS pgcrypto");
    src.sql(
        "CREATE TABLE items (id int PRIMARY KEY, note text, h bytea); \
         INSERT INTO items SELECT g, 'line one' || E'\\n' || 'line two ' || g, digest(g::text, 'sha256') FROM generate_series(1, 5000) g; \
         CREATE TABLE \"Orders\" (id serial PRIMARY KEY, item int REFERENCES items(id)); \
         INSERT INTO \"Orders\"(item) SELECT g FROM generate_series(1, 300) g; \
         CREATE TABLE empty_one (x int); \
         CREATE SCHEMA sales; CREATE TABLE sales.t AS SELECT g FROM generate_series(1, 77) g",
    );
    let backup = PathBuf::from(text(&ok(&mut src.cmd(&["backup"])).stdout).trim());
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".dump.zst"), "{name}");

    let gen = ok(&mut src.cmd(&["generate", "k8s", "--env", "prod", "--backup", "latest"]));
    let out = PathBuf::from(text(&gen.stdout).trim());
    let mut restore = objects(&out.join("restore-job.yaml"));
    let job = restore.remove(1);
    let script = restore.remove(0)["data"]["restore.sh"]
        .as_str()
        .unwrap()
        .to_string();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["sh", "/scripts/restore.sh"]));
    let job_env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let value = |k: &str| job_env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(value("BACKUP_FILE"), name);

    // The stand-in: a second server of the image's major, with an empty database
    // owned by a non-superuser and the extension created as CloudNativePG's
    // postInitApplicationSQL would.
    let dst = Project::new("k8s-dst");
    dst.init(&[]);
    dst.up();
    let major = dst.sql("SELECT current_setting('server_version_num')::int / 10000");
    let image = container["image"].as_str().unwrap();
    assert_eq!(image, format!("ghcr.io/cloudnative-pg/postgresql:{major}"));
    let owner_password: String = format!("k8s{}", std::process::id());
    dst.sql(&format!(
        "CREATE ROLE appowner LOGIN PASSWORD '{owner_password}'"
    ));
    dst.sql("CREATE DATABASE appdb OWNER appowner");
    ok(&mut dst.cmd(&[
        "psql",
        "--db",
        "appdb",
        "-X",
        "-c",
        "CREATE EXTENSION pgcrypto",
    ]));

    // The Job's volumes: the script, the basic-auth Secret's files, the import folder.
    let ctr = dst.container();
    let stage = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(stage.path().join("k8s/import")).unwrap();
    std::fs::create_dir_all(stage.path().join("k8s/app")).unwrap();
    std::fs::write(stage.path().join("k8s/restore.sh"), &script).unwrap();
    std::fs::copy(&backup, stage.path().join("k8s/import").join(&name)).unwrap();
    std::fs::write(stage.path().join("k8s/app/username"), "appowner").unwrap();
    std::fs::write(stage.path().join("k8s/app/password"), &owner_password).unwrap();
    docker(&[
        "cp",
        &format!("{}/k8s", stage.path().display()),
        &format!("{ctr}:/tmp/"),
    ]);
    docker(&["exec", &ctr, "chown", "-R", "postgres:postgres", "/tmp/k8s"]);
    docker(&["exec", &ctr, "chmod", "0400", "/tmp/k8s/app/password"]);

    let run_script = |wait: &str, db: &str, extra: &[&str]| {
        let mut c = Command::new("docker");
        c.args(["exec", "-u", "postgres"]);
        for (k, v) in &job_env {
            let v = match k.as_str() {
                // Only where the service and the volumes are differs from the Job.
                "PGHOST" => "127.0.0.1".to_string(),
                "PGSSLMODE" => "prefer".to_string(),
                "IMPORT_DIR" => "/tmp/k8s/import".to_string(),
                "SECRET_DIR" => "/tmp/k8s/app".to_string(),
                "PGDATABASE" => db.to_string(),
                "WAIT_SECONDS" => wait.to_string(),
                _ => v.clone(),
            };
            c.args(["-e", &format!("{k}={v}")]);
        }
        for e in extra {
            c.args(["-e", e]);
        }
        c.args([&ctr, "sh", "/tmp/k8s/restore.sh"]);
        run(&mut c)
    };
    // Before `.ready` the Job waits, then gives up.
    let early = run_script("1", "appdb", &[]);
    assert!(!early.status.success());
    assert!(
        text(&early.stdout).contains("no /tmp/k8s/import/.ready after 1s"),
        "{}",
        text(&early.stdout)
    );
    docker(&[
        "exec",
        "-u",
        "postgres",
        &ctr,
        "touch",
        "/tmp/k8s/import/.ready",
    ]);

    let done = run_script("3600", "appdb", &[]);
    let log = format!("{}{}", text(&done.stdout), text(&done.stderr));
    assert!(done.status.success(), "{log}");
    assert!(
        log.contains(&format!("pg_restore -j {}", value("RESTORE_JOBS"))),
        "{log}"
    );
    assert!(
        log.contains("ok: 4 tables, 5377 rows, counts match the backup"),
        "{log}"
    );

    let counts = "SELECT (SELECT count(*) FROM items) || ' ' || (SELECT count(*) FROM \"Orders\") || ' ' || (SELECT count(*) FROM sales.t) || ' ' || (SELECT md5(string_agg(note || encode(h, 'hex'), ',' ORDER BY id)) FROM items)";
    let restored =
        text(&ok(&mut dst.cmd(&["psql", "--db", "appdb", "-X", "-A", "-t", "-c", counts])).stdout)
            .trim()
            .to_string();
    assert_eq!(restored, src.sql(counts));
    let owner = text(
        &ok(&mut dst.cmd(&[
            "psql",
            "--db",
            "appdb",
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'items'",
        ]))
        .stdout,
    );
    assert_eq!(owner.trim(), "appowner", "restored as the app's owner");

    // A second run refuses a database that already has tables.
    let again = run_script("3600", "appdb", &[]);
    assert!(!again.status.success());
    assert!(
        text(&again.stdout).contains("already has 4 tables"),
        "{}",
        text(&again.stdout)
    );

    // The row-count check catches a table that lost a row on the way in: here an
    // event trigger arms a row trigger that drops one row of `sales.t`.
    dst.sql("CREATE DATABASE appdb2 OWNER appowner");
    ok(&mut dst.cmd(&[
        "psql",
        "--db",
        "appdb2",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "CREATE EXTENSION pgcrypto; \
         CREATE FUNCTION public.drop_first() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW.g = 1 THEN RETURN NULL; END IF; RETURN NEW; END$$; \
         CREATE FUNCTION public.arm() RETURNS event_trigger LANGUAGE plpgsql AS $$ \
         DECLARE r record; BEGIN \
           FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' AND object_identity = 'sales.t' LOOP \
             EXECUTE 'CREATE TRIGGER lose_one BEFORE INSERT ON sales.t FOR EACH ROW EXECUTE FUNCTION public.drop_first()'; \
           END LOOP; END $$; \
         CREATE EVENT TRIGGER arm ON ddl_command_end EXECUTE FUNCTION public.arm()",
    ]));
    let lossy = run_script("3600", "appdb2", &[]);
    let log = text(&lossy.stdout);
    assert!(!lossy.status.success(), "{log}");
    assert!(
        log.contains("mismatch: sales.t has 76 rows, the backup has 77")
            && log.contains("1 tables differ from the backup"),
        "{log}"
    );

    // An image without zstd: the Job asks for the decompressed file under the
    // name without `.zst`, and restores it. PATH here hides zstd from the script.
    let plain = name.trim_end_matches(".zst").to_string();
    docker(&[
        "exec",
        "-u",
        "postgres",
        &ctr,
        "zstd",
        "-q",
        "-d",
        &format!("/tmp/k8s/import/{name}"),
        "-o",
        &format!("/tmp/k8s/import/{plain}"),
    ]);
    docker(&[
        "exec", &ctr, "sh", "-c",
        "mkdir -p /tmp/k8s/nozstd && for d in $(echo \"$PATH\" | tr ':' ' '); do for f in \"$d\"/*; do n=$(basename \"$f\"); [ \"$n\" = zstd ] || [ -e /tmp/k8s/nozstd/\"$n\" ] || ln -s \"$f\" /tmp/k8s/nozstd/\"$n\"; done; done",
    ]);
    dst.sql("CREATE DATABASE appdb3 OWNER appowner");
    ok(&mut dst.cmd(&[
        "psql",
        "--db",
        "appdb3",
        "-X",
        "-c",
        "CREATE EXTENSION pgcrypto",
    ]));
    let no_zstd = run_script("3600", "appdb3", &["PATH=/tmp/k8s/nozstd"]);
    let log = format!("{}{}", text(&no_zstd.stdout), text(&no_zstd.stderr));
    assert!(no_zstd.status.success(), "{log}");
    assert!(
        log.contains(&format!("this image has no zstd: decompress the backup first (zstd -d) and copy {plain} instead"))
            && log.contains("ok: 4 tables, 5377 rows, counts match the backup"),
        "{log}"
    );
}

/// The ScheduledBackup carries the installed pgbox schedule, in six fields; one
/// cron cannot express is refused before anything is written.
#[test]
fn k8s_scheduled_backup_follows_the_installed_schedule() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pgbox.toml"), TOML).unwrap();
    std::fs::create_dir_all(d.path().join(".pgbox")).unwrap();
    let record = |expr: &str| {
        std::fs::write(
            d.path().join(".pgbox/schedule.json"),
            json!({
                "mechanism": "cron", "system": false, "expression": expr, "cron": null,
                "on_calendar": null, "files": [], "installed_at": "2026-11-27T00:00:00Z",
            })
            .to_string(),
        )
        .unwrap();
    };
    record("Mon *-*-01 02:00");
    let refused = run(pgbox(d.path()).args(["generate", "k8s"]));
    assert_eq!(refused.status.code(), Some(2));
    let err = text(&refused.stderr);
    assert!(
        err.contains("the schedule `Mon *-*-01 02:00` (the installed pgbox schedule) cannot be written as CloudNativePG's cron"),
        "{err}"
    );
    assert!(!d.path().join("deploy").exists(), "nothing written");

    record("Mon..Fri 03:30");
    let out = PathBuf::from(text(&ok(pgbox(d.path()).args(["generate", "k8s"])).stdout).trim());
    let sb = objects(&out.join("scheduled-backup.yaml")).remove(0);
    assert_eq!(sb["spec"]["schedule"], "0 30 3 * * 1-5");
    assert_eq!(errors(&sb), Vec::<String>::new());
    assert!(read(&out.join("README.md"))
        .contains("`Mon..Fri 03:30` (the installed pgbox schedule) as `0 30 3 * * 1-5`"));
}
