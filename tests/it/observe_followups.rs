//! Follow-ups to issue #16 (`pgbox stats`, `top`, `metrics`): the shared host-side
//! PostgreSQL client, top queries out of the box, the metrics service from
//! `pgbox generate`, and a Podman smoke test.

use std::path::Path;

/// `src/observe/` and `src/pooler/` connect through the shared `src/pgclient/`:
/// no module outside `migrate` (its command and its clap enums aside) reaches into
/// `crate::migrate` for the connection or its TLS.
#[test]
fn no_domain_reaches_into_migrate_for_the_client() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if rel.starts_with("migrate/")
                || rel == "commands/migrate.rs"
                || rel.starts_with("cli/")
            {
                continue;
            }
            if path.extension().is_some_and(|x| x == "rs") {
                let body = std::fs::read_to_string(&path).unwrap();
                if body.contains("crate::migrate::") {
                    offenders.push(rel);
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "modules reaching into `crate::migrate`: {offenders:?}"
    );
    assert!(src.join("pgclient/mod.rs").exists());
}
