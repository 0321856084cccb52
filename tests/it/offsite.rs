//! Off-site, encrypted backups (`[backup.remote]`, `[backup] encrypt_to`) against a
//! real engine and a real S3-compatible server (moto, see `s3_support`): ship,
//! list, verify and restore by checksum and rows; refused credentials and a missing
//! bucket are named; two recipients, each key alone restores, a wrong key is
//! refused; secrets in no log, manifest, object, process argument or container
//! environment. The faults (interruptions, retention, failed scheduled runs) are in
//! `offsite_faults`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::s3_support::{BUCKET, S3};
use super::support::{file_names, ok, run, text, Project};

/// An age key pair: the private key file (0600) and the public key.
pub(super) fn age_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let secret = id.to_string().expose_secret().to_string();
    let path = dir.join(name);
    std::fs::write(&path, format!("# created for a test\n{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, id.to_public().to_string(), secret)
}

/// Insert `lines` right after the `[backup]` header of the project's pgbox.toml,
/// and append `tail`.
pub(super) fn configure(p: &Project, lines: &str, tail: &str) {
    let path = p.path().join("pgbox.toml");
    let s = std::fs::read_to_string(&path).unwrap();
    let s = s.replacen("[backup]\n", &format!("[backup]\n{lines}"), 1) + tail;
    std::fs::write(&path, s).unwrap();
}

pub(super) fn both(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

pub(super) const ROWS_SQL: &str = "select count(*) || ':' || sum(i) from t";

pub(super) fn seed(p: &Project) {
    p.sql("create table t as select i, md5(i::text) m from generate_series(1, 5000) i");
}

/// The stored manifests (`.json` objects) by key.
pub(super) fn manifests(s3: &S3) -> Vec<(String, serde_json::Value)> {
    s3.keys()
        .0
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .map(|k| {
            let v = serde_json::from_slice(&s3.get(&k)).unwrap();
            (k, v)
        })
        .collect()
}

#[test]
fn ships_lists_verifies_and_restores_from_the_store_and_names_bad_credentials_and_buckets() {
    let s3 = S3::start();
    let p = Project::new("offsite-plain");
    p.init(&[]);
    configure(&p, "", &s3.toml("db"));
    p.up();
    seed(&p);
    let want = p.sql(ROWS_SQL);

    // Refused credentials: a clear error, and the local backup is kept and said so.
    let mut bad = p.cmd(&["backup"]);
    s3.creds(&mut bad)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = run(&mut bad);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the store refused the credentials"), "{err}");
    assert!(err.contains("is kept locally"), "{err}");
    assert_eq!(
        file_names(&p.path().join("backups"))
            .iter()
            .filter(|f| f.ends_with(".dump.zst"))
            .count(),
        1
    );
    let out = run(s3
        .creds(&mut p.cmd(&["backup", "list", "--remote"]))
        .env("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY"));
    assert!(
        text(&out.stderr).contains("the store refused the credentials"),
        "{}",
        text(&out.stderr)
    );

    // A missing bucket, named.
    let toml = p.path().join("pgbox.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        good.replace("s3://pgbox-test/", "s3://no-such-bucket/"),
    )
    .unwrap();
    for args in [&["backup"][..], &["backup", "list", "--remote"][..]] {
        let out = run(s3.creds(&mut p.cmd(args)));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("the bucket `no-such-bucket` does not exist"),
            "{args:?}: {err}"
        );
    }
    std::fs::write(&toml, good).unwrap();
    assert_eq!(s3.keys(), (vec![], 0), "nothing stored by the failed runs");

    // Ship: backed up, verified, uploaded, read back, then the manifest.
    let out = ok(s3.creds(&mut p.cmd(&["backup"])));
    assert!(
        both(&out).contains("read back and matched"),
        "{}",
        both(&out)
    );
    let (keys, uploads) = s3.keys();
    assert_eq!(uploads, 0);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let object = keys
        .iter()
        .find(|k| k.ends_with(".dump.zst"))
        .unwrap()
        .clone();
    assert!(object.starts_with("db/"), "{object}");
    assert!(keys.contains(&format!("{object}.json")));
    // The stored manifest has the local one's checksum; the stored bytes are the file.
    let name = object.trim_start_matches("db/");
    let local = p.path().join("backups").join(name);
    let local_m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", local.display())).unwrap())
            .unwrap();
    let (_, remote_m) = &manifests(&s3)[0];
    assert_eq!(remote_m["sha256"], local_m["sha256"]);
    assert_eq!(s3.get(&object), std::fs::read(&local).unwrap());
    assert_eq!(
        local_m["remote"].as_str(),
        Some(format!("s3://{BUCKET}/{object}").as_str())
    );

    let out = ok(s3.creds(&mut p.cmd(&["backup", "list", "--remote"])));
    assert!(text(&out.stdout).contains(&object), "{}", text(&out.stdout));
    ok(s3.creds(&mut p.cmd(&["backup", "verify", "--remote", "latest"])));
    let out = ok(&mut p.cmd(&["status"]));
    assert!(
        text(&out.stdout).contains(&format!("off-site   s3://{BUCKET}/{object} (")),
        "{}",
        text(&out.stdout)
    );

    // Restore from the store, with the local copy gone: same rows.
    std::fs::remove_file(&local).unwrap();
    p.sql("delete from t where i > 10");
    let out = ok(s3.creds(&mut p.cmd(&["restore", "--from-remote", "latest", "--yes"])));
    assert!(
        both(&out).contains("(matching the backup)"),
        "{}",
        both(&out)
    );
    assert_eq!(p.sql(ROWS_SQL), want);
    // The download folder is gone.
    assert!(
        !file_names(&p.path().join("backups"))
            .iter()
            .any(|f| f.starts_with(".pgbox-fetch")),
        "{:?}",
        file_names(&p.path().join("backups"))
    );
}

/// Everything `ps` shows while `cmd` runs (pgbox, and the processes it starts in
/// the container, which the host sees), and its output.
pub(super) fn run_watching_ps(cmd: &mut Command) -> (Output, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = String::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
                seen.push_str(&text(&ps.stdout));
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    assert!(
        seen.contains(&super::support::bin().display().to_string()),
        "ps saw pgbox run"
    );
    (out, seen)
}

/// No secret (each long enough to search for) appears in any of the places.
pub(super) fn assert_nowhere(secrets: &[(&str, &str)], places: &[(String, Vec<u8>)]) {
    for (what, secret) in secrets {
        assert!(secret.len() >= 16, "{what} is long enough to search for");
        for (place, bytes) in places {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{what} found in {place}"
            );
        }
    }
}

pub(super) fn files_under(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if skip.iter().any(|s| path.starts_with(s)) {
            continue;
        }
        if path.is_dir() {
            files_under(&path, skip, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn encrypted_to_two_recipients_each_key_restores_a_wrong_key_is_refused_and_no_secret_leaks() {
    let s3 = S3::start();
    let p = Project::new("offsite-age");
    p.init(&[]);
    let keys = tempfile::tempdir().unwrap();
    let (a, pa, secret_a) = age_key(keys.path(), "a.txt");
    let (b, pb, secret_b) = age_key(keys.path(), "b.txt");
    let (c, _, _) = age_key(keys.path(), "c.txt");
    // One recipient inline, one from a recipients file.
    std::fs::write(p.path().join("team.txt"), format!("# team\n{pb}\n")).unwrap();
    configure(
        &p,
        &format!("encrypt_to = [\"{pa}\", \"team.txt\"]\n"),
        &s3.toml("enc"),
    );
    p.up();
    seed(&p);
    let want = p.sql(ROWS_SQL);
    let mut logs = String::new();

    // --remote-only: streamed from the container, encrypted, no local copy.
    let (out, mut ps) = run_watching_ps(s3.creds(&mut p.cmd(&["backup", "--remote-only"])));
    logs.push_str(&both(&out));
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        !file_names(&p.path().join("backups"))
            .iter()
            .any(|f| f.contains(".dump")),
        "no local copy: {:?}",
        file_names(&p.path().join("backups"))
    );
    let (objects, uploads) = s3.keys();
    assert_eq!(uploads, 0);
    let object = objects
        .iter()
        .find(|k| k.ends_with(".dump.zst.age"))
        .unwrap_or_else(|| panic!("{objects:?}"))
        .clone();
    let stored = s3.get(&object);
    assert!(
        stored.starts_with(b"age-encryption.org/v1\n"),
        "an age file"
    );
    let (_, m) = &manifests(&s3)[0];
    assert_eq!(m["encrypted_to"], serde_json::json!([pa, pb]));
    assert_eq!(m["ciphertext"]["bytes"], stored.len() as u64);
    assert_ne!(m["ciphertext"]["sha256"], m["sha256"]);

    // Verify without a key (the ciphertext), then deep with one (the plaintext).
    let out = ok(s3.creds(&mut p.cmd(&["backup", "verify", "--remote"])));
    logs.push_str(&both(&out));
    assert!(
        both(&out).contains("checked without the key"),
        "{}",
        both(&out)
    );
    let out = ok(s3.creds(&mut p.cmd(&[
        "backup",
        "verify",
        "--remote",
        "--deep",
        "--identity",
        b.to_str().unwrap(),
    ])));
    logs.push_str(&both(&out));
    assert!(
        both(&out).contains("test restore matched"),
        "{}",
        both(&out)
    );

    // Each key alone restores.
    for key in [&a, &b] {
        p.sql("delete from t where i > 10");
        let (out, seen) = run_watching_ps(s3.creds(&mut p.cmd(&[
            "restore",
            "--from-remote",
            "latest",
            "--identity",
            key.to_str().unwrap(),
            "--yes",
        ])));
        ps.push_str(&seen);
        logs.push_str(&both(&out));
        assert!(out.status.success(), "{}", both(&out));
        assert_eq!(p.sql(ROWS_SQL), want);
    }

    // A wrong key, no key, and a key file others can read: refused, clearly.
    let out = run(s3.creds(&mut p.cmd(&[
        "restore",
        "--from-remote",
        "latest",
        "--identity",
        c.to_str().unwrap(),
        "--yes",
    ])));
    let err = text(&out.stderr);
    logs.push_str(&err);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is none of them") && err.contains(&pa) && err.contains(&pb),
        "{err}"
    );
    let out = run(s3.creds(&mut p.cmd(&["restore", "--from-remote", "latest", "--yes"])));
    let err = text(&out.stderr);
    assert!(
        err.contains("is encrypted to") && err.contains("--identity"),
        "{err}"
    );
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(s3.creds(&mut p.cmd(&[
        "restore",
        "--from-remote",
        "latest",
        "--identity",
        a.to_str().unwrap(),
        "--yes",
    ])));
    let err = text(&out.stderr);
    assert!(
        err.contains("is readable by others") && err.contains("chmod 600"),
        "{err}"
    );

    // A backup kept locally too, then shipped encrypted.
    let (out, seen) = run_watching_ps(s3.creds(&mut p.cmd(&["backup"])));
    ps.push_str(&seen);
    logs.push_str(&both(&out));
    assert!(out.status.success(), "{}", both(&out));

    // No secret anywhere: logs, files written, stored objects, process arguments,
    // the container's environment.
    let password = p.password();
    let secrets = [
        ("the database password", password.as_str()),
        ("the access key id", s3.key_id.as_str()),
        ("the secret access key", s3.secret.as_str()),
        ("age identity a", secret_a.as_str()),
        ("age identity b", secret_b.as_str()),
    ];
    let mut files = Vec::new();
    let skip = [
        p.path().join(".pgbox/secrets"),
        p.path().join(".pgbox/data"),
    ];
    files_under(p.path(), &skip, &mut files);
    let mut places: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    for k in s3.keys().0 {
        places.push((format!("object {k}"), s3.get(&k)));
    }
    places.push(("pgbox's output".into(), logs.into_bytes()));
    places.push(("process arguments".into(), ps.into_bytes()));
    let inspect = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            &p.container(),
        ])
        .output()
        .unwrap();
    places.push(("the container's environment".into(), inspect.stdout));
    assert!(places.len() > 6, "{}", places.len());
    assert_nowhere(&secrets, &places);
}
