//! Guards for the fast paths of issue #20: `status` reads the entrypoint state and
//! the server version over the published port (no exec) and the engine is
//! identified from `GET /_ping` (not `/version`). Each test fails if a fast path
//! showed less, or something other, than the slow one did.

use crate::support::{ok, run, text, Eng, Project};

fn status_json(p: &Project) -> (Option<i32>, serde_json::Value) {
    let out = run(&mut p.cmd(&["status", "--json"]));
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&out.stderr)));
    (out.status.code(), v)
}

/// Every key the report has on a running project, and their values where known.
fn assert_running(p: &Project, v: &serde_json::Value, state: &str) {
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["entrypoint_state"], state, "{v}");
    let version = p.sql("select current_setting('server_version')");
    let want = version.split_whitespace().next().unwrap();
    assert_eq!(v["server_version"], want, "{v}");
    assert!(v["started_at"].is_string() && v["image"].is_string(), "{v}");
}

/// On both engines: running, with the port path refused (a wrong password: the exec
/// answers instead), in maintenance and stopped, status shows every field.
fn status_shows_every_field_on_every_path(eng: Eng) {
    let p = Project::on("stfast", eng);
    p.init(&[]);
    p.up();
    let (code, running) = status_json(&p);
    assert_eq!(code, Some(0), "{running}");
    assert_running(&p, &running, "RUNNING");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };

    // The state comes from the entrypoint's file, not from readiness: a state other
    // than RUNNING while the server answers is shown as it is.
    let c = p.container();
    p.cli(&[
        "exec",
        &c,
        "sh",
        "-c",
        "echo STOPPING > /tmp/container-state",
    ]);
    let (_, v) = status_json(&p);
    p.cli(&[
        "exec",
        &c,
        "sh",
        "-c",
        "echo RUNNING > /tmp/container-state",
    ]);
    assert_running(&p, &v, "STOPPING");

    // The port refuses this password: the exec still gives the state and the version.
    let secret = p.path().join(".pgbox/secrets/postgres_password");
    let good = std::fs::read(&secret).unwrap();
    std::fs::write(&secret, "not-the-password\n").unwrap();
    let (code, v) = status_json(&p);
    std::fs::write(&secret, &good).unwrap();
    assert_eq!(code, Some(0), "{v}");
    assert_running(&p, &v, "RUNNING");
    assert_eq!(keys(&v), keys(&running));

    // The engine is named as its own CLI names it (from `_ping`, not `/version`).
    let server = p.cli(&["version", "--format", "{{.Server.Version}}"]);
    let want = match eng {
        Eng::Docker => format!("Docker {} at ", server.trim()),
        Eng::Podman => format!("Podman {} at ", server.trim()),
    };
    assert!(
        v["engine"].as_str().unwrap().starts_with(&want),
        "{} does not start with {want}",
        v["engine"]
    );

    ok(&mut p.cmd(&["maintenance", "on"]));
    let (code, v) = status_json(&p);
    assert_eq!(code, Some(4), "{v}");
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["ready"], false, "{v}");
    assert_eq!(v["entrypoint_state"], "MAINTENANCE", "{v}");
    assert!(v["server_version"].is_null(), "{v}");
    assert_eq!(keys(&v), keys(&running));
    let rows = text(&run(&mut p.cmd(&["status"])).stdout);
    assert!(rows.contains("entrypoint MAINTENANCE"), "{rows}");
    assert!(rows.contains("(not answering)"), "{rows}");
    ok(&mut p.cmd(&["maintenance", "off"]));

    ok(&mut p.cmd(&["down"]));
    let (code, v) = status_json(&p);
    assert_eq!(code, Some(4), "{v}");
    assert_eq!(v["running"], false, "{v}");
    assert!(v["entrypoint_state"].is_null(), "{v}");
    assert_eq!(keys(&v), keys(&running));
}

#[test]
fn status_shows_every_field_on_every_path_docker() {
    status_shows_every_field_on_every_path(Eng::Docker);
}

#[test]
fn status_shows_every_field_on_every_path_podman() {
    status_shows_every_field_on_every_path(Eng::Podman);
}
