//! Issue 12, `pgbox upgrade --method link|clone|copy`: PostgreSQL's pg_upgrade in an
//! image carrying both majors, end to end on real data, and the storage modes where
//! it cannot run refused with the way that works.

use crate::support::*;

/// 15 → 17 by `--method link`: the data, an index on text, a sequence mid-range and
/// pgcrypto all work on 17; an index on an ICU collation whose version changed with
/// the new ICU is rebuilt and the version refreshed; `--rollback` is refused (the old
/// cluster shares its files with the new one) with the way back; `--finalize` then
/// deletes the old folder and the new cluster keeps every row.
#[test]
fn link_upgrade_keeps_the_data_and_refuses_a_rollback_to_the_linked_cluster() {
    let p = Project::new("pgulink");
    p.init(&["--storage", "direct", "--pg-version", "15"]);
    p.up();
    p.sql(
        "create extension if not exists pgcrypto;
         create table items (id bigserial primary key, name text not null, hash bytea);
         create index items_name on items (name);
         insert into items (name, hash) select 'item ' || g, digest('x' || g, 'sha256') from generate_series(1, 5000) g;
         select setval('items_id_seq', 123456);
         create collation de_icu (provider = icu, locale = 'de');
         create table words (w text collate de_icu);
         create index words_w on words (w);
         insert into words values ('äpfel'), ('zebra'), ('apfel');",
    );
    let old_coll = p.sql("select collversion from pg_collation where collname = 'de_icu'");
    let before = p.sql(
        "select md5(string_agg(id || name || encode(hash, 'hex'), ',' order by id)) from items",
    );

    let out = ok(&mut p.cmd(&["upgrade", "--to", "17", "--method", "link", "--yes"]));
    let err = text(&out.stderr);
    assert!(err.contains("consistency checks passed first"), "{err}");
    assert!(err.contains("pg_upgrade --link done in"), "{err}");
    assert!(err.contains("upgraded `"), "{err}");

    assert!(p.sql("show server_version").starts_with("17."));
    let after = p.sql(
        "select md5(string_agg(id || name || encode(hash, 'hex'), ',' order by id)) from items",
    );
    assert_eq!(before, after, "the rows changed");
    assert_eq!(p.sql("select nextval('items_id_seq')"), "123457");
    assert!(
        p.sql("set enable_seqscan = off; explain (costs off) select id from items where name = 'item 42'")
            .lines()
            .any(|l| l.contains("items_name")),
        "the text index is not used"
    );
    assert_eq!(
        p.sql("select count(*) from items where name = 'item 42'"),
        "1"
    );
    assert_eq!(p.sql("select length(digest('a', 'sha256'))"), "32");
    // The ICU collation: its recorded version is the new ICU's, and its index was rebuilt.
    let new_coll = p.sql("select collversion from pg_collation where collname = 'de_icu'");
    assert_eq!(
        new_coll,
        p.sql(
            "select pg_collation_actual_version(oid) from pg_collation where collname = 'de_icu'"
        )
    );
    if new_coll != old_coll {
        assert!(err.contains("rebuilt 1 index (words_w)"), "{err}");
    }
    let sorted = p.sql("set enable_seqscan = off; select string_agg(w, ',' order by w) from words");
    assert_eq!(sorted.lines().last(), Some("apfel,äpfel,zebra"), "{sorted}");

    // The old cluster shares its files with the new one: no rollback to it.
    let out = run(&mut p.cmd(&["upgrade", "--rollback", "--yes"]));
    let rb = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{rb}");
    assert!(rb.contains("used `--method link`"), "{rb}");
    assert!(rb.contains("pgbox restore"), "{rb}");
    assert!(
        p.sql("show server_version").starts_with("17."),
        "the rollback changed something"
    );

    ok(&mut p.cmd(&["upgrade", "--finalize", "--yes"]));
    assert!(
        !p.path().join(".pgbox/data").exists(),
        "the old folder is still there"
    );
    assert_eq!(p.sql("select count(*) from items"), "5000");
}

/// pg_upgrade cannot run on fallback or volume storage: a usage error that says why
/// and points to `--method dump`, and nothing changed.
#[test]
fn pg_upgrade_methods_refuse_fallback_and_volume_storage() {
    for (mode, why) in [
        ("volume", "cannot run with volume storage"),
        ("fallback", "cannot run with fallback storage"),
    ] {
        let p = Project::new(&format!("pgu{mode}"));
        p.init(&["--storage", mode, "--pg-version", "15"]);
        p.up();
        for method in ["link", "copy"] {
            let out = run(&mut p.cmd(&["upgrade", "--to", "17", "--method", method, "--yes"]));
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{mode} {method}: {err}");
            assert!(err.contains(why), "{mode} {method}: {err}");
            assert!(err.contains("--method dump"), "{mode} {method}: {err}");
        }
        assert!(!p.path().join(".pgbox/upgrade.json").exists());
        assert!(p.sql("show server_version").starts_with("15."));
    }
}

/// Debian's PostgreSQL 17 gives every column a private option (`pg_attver`) that 18's
/// pg_upgrade copies into a schema 18 refuses: the check says so before anything
/// changes (no backup, no record, no new folder) and points to `--method dump`.
#[test]
fn pg_upgrade_from_17_with_private_column_options_is_refused_before_anything_changes() {
    let p = Project::new("pgu17");
    p.init(&["--pg-version", "17"]);
    p.up();
    p.sql("create table t (id int primary key); insert into t select generate_series(1, 10)");
    let out = run(&mut p.cmd(&["upgrade", "--to", "18", "--method", "copy", "--yes"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("pg_attver"), "{err}");
    assert!(err.contains("--method dump"), "{err}");
    assert!(!p.path().join(".pgbox/upgrade.json").exists());
    assert!(!p.path().join(".pgbox/data-pg18").exists());
    assert!(file_names(&p.path().join("backups")).is_empty());
    assert_eq!(p.sql("select count(*) from t"), "10");
    assert!(p.sql("show server_version").starts_with("17."));
}
