//! Point-in-time recovery off-site (issue 14 for base backups and WAL) against a
//! real engine and a real S3-compatible server (moto): `backup --base` and
//! `backup sync --remote` ship the base backup and every archived WAL file,
//! encrypted to `encrypt_to`, each read back; a second sync ships nothing; with
//! the local backups folder deleted, `restore --to-time --from-remote --identity`
//! recovers exactly the rows before the target; a wrong key is refused before
//! anything changes; the store killed mid-sync fails the sync and the next one
//! completes; no secret in any process argument, output, written file or object.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::offsite::{age_key, assert_nowhere, both, configure, files_under, run_watching_ps};
use super::pitr_restore::{
    batches, pgbox_dir_entries, pitr_project, server_now, sleep1, switch_and_archive,
};
use super::s3_support::S3;
use super::support::{ok, run, text, Project};

/// Batches 1, 2, 3 with a WAL switch after each (the base backup is taken by the
/// caller); a server time between the commits of 2 and 3.
fn batches_after_base(p: &Project) -> String {
    sleep1();
    p.sql("insert into t values (1)");
    switch_and_archive(p);
    sleep1();
    p.sql("insert into t values (2)");
    switch_and_archive(p);
    sleep1();
    let mid = server_now(p);
    sleep1();
    p.sql("insert into t values (3)");
    switch_and_archive(p);
    mid
}

fn sync(s3: &S3, p: &Project) -> Output {
    run(s3.creds(&mut p.cmd(&["backup", "sync", "--remote"])))
}

/// The counted objects: keys with a `.json` beside them.
fn counted(s3: &S3) -> Vec<String> {
    let keys = s3.keys().0;
    let mut out: Vec<String> = keys
        .iter()
        .filter(|k| k.ends_with(".json"))
        .cloned()
        .collect();
    out.sort();
    out
}

#[test]
fn synced_encrypted_base_and_wal_restore_to_a_time_with_the_local_backups_gone() {
    let s3 = S3::start();
    let keys = tempfile::tempdir().unwrap();
    let (id, public, secret) = age_key(keys.path(), "key.txt");
    let (wrong, _, wrong_secret) = age_key(keys.path(), "wrong.txt");
    let g = pitr_project("offpitr-time");
    let p = &g.p;
    configure(
        p,
        &format!("encrypt_to = [\"{public}\"]\n"),
        &s3.toml("pitr"),
    );
    let mut logs = String::new();
    let mut ps = String::new();
    p.sql("create table t (batch int not null)");

    // `backup --base` ships the new base backup (and the WAL so far).
    let (out, seen) = run_watching_ps(s3.creds(&mut p.cmd(&["backup", "--base"])));
    ps.push_str(&seen);
    logs.push_str(&both(&out));
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("shipped 1 base backup(s)"),
        "{}",
        both(&out)
    );
    let mid = batches_after_base(p);

    let (out, seen) = run_watching_ps(s3.creds(&mut p.cmd(&["backup", "sync", "--remote"])));
    ps.push_str(&seen);
    logs.push_str(&both(&out));
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("shipped 0 base backup(s)"),
        "{}",
        both(&out)
    );
    let before = counted(&s3);
    let (all, uploads) = s3.keys();
    assert_eq!(uploads, 0, "no unfinished upload");
    assert!(
        before
            .iter()
            .any(|k| k.starts_with("pitr/base/") && k.ends_with("/pgbox-base.json")),
        "{before:?}"
    );
    assert!(
        before.iter().filter(|k| k.starts_with("pitr/wal/")).count() >= 3,
        "{before:?}"
    );
    // Encrypted: every data object is `.age`, and each has its manifest.
    for k in all.iter().filter(|k| !k.ends_with(".json")) {
        assert!(k.ends_with(".age"), "{k} is not encrypted");
        assert!(
            all.contains(&format!("{k}.json")) || k.starts_with("pitr/base/"),
            "{k} has no manifest"
        );
        let bytes = s3.get(k);
        assert!(bytes.starts_with(b"age-encryption.org/v1"), "{k}");
    }

    // A second sync ships nothing it shipped before: every object is as it was
    // (age output is randomised, so a re-upload would change its bytes); only WAL
    // archived since (`archive_timeout` switches an idle server's segment) is new.
    let first: Vec<(String, Vec<u8>)> = all.iter().map(|k| (k.clone(), s3.get(k))).collect();
    let out = sync(&s3, p);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("shipped 0 base backup(s)"),
        "{}",
        both(&out)
    );
    let (now, _) = s3.keys();
    for (k, bytes) in &first {
        assert!(&s3.get(k) == bytes, "{k} was shipped again");
    }
    for k in now.iter().filter(|k| !all.contains(k)) {
        assert!(k.starts_with("pitr/wal/"), "{k} is new");
    }

    // The local backups folder is gone: only the store has the base backup and WAL.
    // Stop the server first so it archives nothing into a missing folder.
    ok(&mut p.cmd(&["down"]));
    std::fs::remove_dir_all(p.path().join("backups")).unwrap();
    p.up();
    assert_eq!(batches(p), "1,2,3");

    // A target before the base backup: refused on the remote listing, with the
    // range, before anything is downloaded.
    let out = run(s3.creds(&mut p.cmd(&[
        "restore",
        "--to-time",
        "2000-01-01 00:00:00",
        "--from-remote",
        "--identity",
        id.to_str().unwrap(),
        "--yes",
    ])));
    logs.push_str(&both(&out));
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("can be recovered from"),
        "{}",
        both(&out)
    );
    assert!(!both(&out).contains("downloading"), "{}", both(&out));

    // A wrong key: refused, nothing changed, no staging left.
    let out = run(s3.creds(&mut p.cmd(&[
        "restore",
        "--to-time",
        &mid,
        "--from-remote",
        "--identity",
        wrong.to_str().unwrap(),
        "--yes",
    ])));
    logs.push_str(&both(&out));
    assert!(!out.status.success(), "a wrong key");
    let err = text(&out.stderr);
    assert!(
        err.contains(&public),
        "the error names the recipient: {err}"
    );
    assert_eq!(batches(p), "1,2,3");
    assert!(pgbox_dir_entries(p, "pitr-remote-").is_empty());
    assert!(pgbox_dir_entries(p, "data-before-pitr-").is_empty());

    // The right key: exactly batches 1 and 2.
    let (out, seen) = run_watching_ps(s3.creds(&mut p.cmd(&[
        "restore",
        "--to-time",
        &mid,
        "--from-remote",
        "--identity",
        id.to_str().unwrap(),
        "--yes",
    ])));
    ps.push_str(&seen);
    logs.push_str(&both(&out));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(batches(p), "1,2");
    assert!(
        pgbox_dir_entries(p, "pitr-remote-").is_empty(),
        "the staging folder is removed"
    );

    // No secret anywhere: output, process arguments, files written, objects.
    let password = p.password();
    let secrets = [
        ("the database password", password.as_str()),
        ("the secret access key", s3.secret.as_str()),
        ("the age identity", secret.as_str()),
        ("the wrong age identity", wrong_secret.as_str()),
    ];
    let mut files = Vec::new();
    let skip = [
        p.path().join(".pgbox/secrets"),
        p.path().join(".pgbox/data"),
    ];
    files_under(p.path(), &skip, &mut files);
    let mut places: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|f| Some((f.display().to_string(), std::fs::read(f).ok()?)))
        .collect();
    for k in s3.keys().0 {
        places.push((format!("object {k}"), s3.get(&k)));
    }
    places.push(("pgbox's output".into(), logs.into_bytes()));
    places.push(("process arguments".into(), ps.into_bytes()));
    assert_nowhere(&secrets, &places);
}

#[test]
fn the_store_killed_mid_sync_fails_the_sync_and_the_next_one_completes() {
    let mut s3 = S3::start();
    let g = pitr_project("offpitr-kill");
    let p = &g.p;
    configure(p, "", &s3.toml("k"));
    // Enough data that the base backup takes several parts to upload.
    p.sql("create table big as select i, md5(i::text) || md5((i*7)::text) m from generate_series(1, 600000) i");
    p.sql("create table t (batch int not null)");
    ok(&mut p.cmd(&["backup", "--base", "--local-only"]));
    batches_after_base(p);

    let mut child = s3
        .creds(&mut p.cmd(&["backup", "sync", "--remote"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the store once some WAL file counts, before the base backup does.
    let t = Instant::now();
    loop {
        let c = counted(&s3);
        if c.iter().any(|k| k.starts_with("k/wal/")) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before anything counted"
        );
        assert!(t.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(20));
    }
    s3.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));

    // Back (moto starts empty): the next sync ships everything, and it all counts.
    s3.launch();
    let out = sync(&s3, p);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("shipped 1 base backup(s)"),
        "{}",
        both(&out)
    );
    let (all, uploads) = s3.keys();
    assert_eq!(uploads, 0);
    for k in all
        .iter()
        .filter(|k| k.starts_with("k/wal/") && !k.ends_with(".json"))
    {
        assert!(all.contains(&format!("{k}.json")), "{k} counts");
    }
    // And it restores: latest has every batch.
    let out = run(s3.creds(&mut p.cmd(&["restore", "--to-latest", "--from-remote", "--yes"])));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(batches(p), "1,2,3");
}

#[test]
fn schedule_run_ships_base_and_wal_and_remote_prune_keeps_the_wal_of_the_kept_base() {
    let s3 = S3::start();
    let g = pitr_project("offpitr-sched");
    let p = &g.p;
    // The store keeps the last 5 (both runs' base backups fall on one day, which
    // the default daily policy would thin out at once).
    configure(p, "", &(s3.toml("s") + "keep_last = 5\n"));
    p.sql("create table t (batch int not null)");

    // Two scheduled runs, a batch and a WAL switch between them: each ships.
    let out = run(s3.creds(&mut p.cmd(&["schedule", "run"])));
    assert!(out.status.success(), "{}", both(&out));
    sleep1();
    p.sql("insert into t values (1)");
    switch_and_archive(p);
    let out = run(s3.creds(&mut p.cmd(&["schedule", "run"])));
    assert!(out.status.success(), "{}", both(&out));
    let bases = |s3: &S3| -> Vec<String> {
        counted(s3)
            .into_iter()
            .filter(|k| k.ends_with("/pgbox-base.json"))
            .collect()
    };
    assert_eq!(bases(&s3).len(), 2, "{:?}", counted(&s3));
    let wal_before = counted(&s3)
        .into_iter()
        .filter(|k| k.starts_with("s/wal/"))
        .count();

    // Remote prune keeping one: the older base backup goes, and the WAL only it
    // needed; the newer one still restores to latest.
    let out =
        run(s3.creds(&mut p.cmd(&["backup", "prune", "--remote", "--keep-last", "1", "--yes"])));
    assert!(out.status.success(), "{}", both(&out));
    let left = bases(&s3);
    assert_eq!(left.len(), 1, "{left:?}");
    let wal_after = counted(&s3)
        .into_iter()
        .filter(|k| k.starts_with("s/wal/"))
        .count();
    assert!(wal_after < wal_before, "{wal_after} < {wal_before}");
    let out = run(s3.creds(&mut p.cmd(&["restore", "--to-latest", "--from-remote", "--yes"])));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(batches(p), "1");

    // Wrong credentials: the scheduled run fails.
    let out = run(s3
        .creds(&mut p.cmd(&["schedule", "run"]))
        .env("AWS_SECRET_ACCESS_KEY", "wrong"));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
}
