//! `pgbox generate kube` (and `quadlet`) for `[cluster] replicas = N` (issue 18):
//! one pod holding etcd and every node, node i on its own ports inside the pod and
//! published on `port + i`, secrets as files; run by `podman kube play` on rootful
//! Podman, where a leader and a streaming replica come up and a row written through
//! the multi-host URL is read back on the replica.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::api_json;
use crate::support::*;

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--url", PODMAN_SOCKET])
        .args(args)
        .output()
        .expect("podman (scripts/ensure-engine.sh installs it)")
}

fn podman_ok(args: &[&str]) -> String {
    let o = podman(args);
    assert!(
        o.status.success(),
        "podman {args:?}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn cluster_project(dir: &Path, name: &str, port: u16, replicas: u32) {
    std::fs::write(
        dir.join("pgbox.toml"),
        format!(
            "[project]\nname = \"{name}\"\n[network]\nport = {port}\n[cluster]\nreplicas = {replicas}\n"
        ),
    )
    .unwrap();
}

fn generate(dir: &Path, kind: &str) -> PathBuf {
    let out = ok(pgbox(dir).args(["generate", kind]));
    PathBuf::from(text(&out.stdout).trim())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn secrets(out: &Path) -> Vec<String> {
    [
        "postgres_password",
        "replication_password",
        "rewind_password",
        "patroni_api_password",
    ]
    .iter()
    .map(|f| read(&out.join("secrets").join(f)).trim().to_string())
    .collect()
}

#[test]
fn cluster_kube_yaml_is_one_pod_with_etcd_and_every_node_and_no_secret() {
    let d = tempfile::tempdir().unwrap();
    cluster_project(d.path(), "ckube", 6200, 2);
    let out = generate(d.path(), "kube");
    let body = read(&out.join("kube.yaml"));
    for pw in secrets(&out) {
        assert!(!body.contains(&pw), "a secret is inline in kube.yaml");
    }
    insta::assert_snapshot!(
        "cluster_kube",
        body.replace(&out.display().to_string(), "[OUT]")
    );
    assert!(read(&out.join("conf/patroni.yml")).contains("scope: ckube"));

    let y: serde_yaml::Value = serde_yaml::from_str(&body).unwrap();
    assert_eq!(y["kind"], "Pod");
    let containers = y["spec"]["containers"].as_sequence().unwrap();
    let names: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["etcd", "node0", "node1", "node2"]);
    let image = containers[0]["image"].as_str().unwrap();
    assert_eq!(image, "localhost/pgbox-ckube:pg15-dev");
    let etcd_args: Vec<&str> = containers[0]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        etcd_args
            .windows(2)
            .any(|w| w == ["--listen-client-urls", "http://127.0.0.1:2379"]),
        "etcd listens on the pod's loopback only: {etcd_args:?}"
    );
    let mut claims = Vec::new();
    for (i, c) in containers[1..].iter().enumerate() {
        assert_eq!(c["image"].as_str().unwrap(), image);
        let env: Vec<(String, String)> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("node{i}: no {k}"))
        };
        let (pg, api) = (5432 + i, 8008 + i);
        assert_eq!(get("PATRONI_NAME"), format!("node{i}"));
        assert_eq!(get("PGPORT"), pg.to_string());
        assert_eq!(get("PATRONI_POSTGRESQL_LISTEN"), format!("0.0.0.0:{pg}"));
        assert_eq!(
            get("PATRONI_POSTGRESQL_CONNECT_ADDRESS"),
            format!("127.0.0.1:{pg}")
        );
        assert_eq!(get("PATRONI_RESTAPI_LISTEN"), format!("127.0.0.1:{api}"));
        assert_eq!(get("PATRONI_ETCD3_HOSTS"), "127.0.0.1:2379");
        assert_eq!(
            get("POSTGRES_PASSWORD_FILE"),
            "/run/secrets/pgbox/postgres_password"
        );
        // Passwords only as files: no other variable names one.
        for (k, _) in &env {
            assert!(
                !k.contains("PASSWORD") || k.ends_with("_FILE"),
                "node{i}: {k}"
            );
        }
        let port = &c["ports"][0];
        assert_eq!(port["containerPort"].as_u64(), Some(pg as u64));
        assert_eq!(port["hostPort"].as_u64(), Some(6200 + i as u64));
        let mounts = c["volumeMounts"].as_sequence().unwrap();
        let secret_mount = mounts.iter().find(|m| m["name"] == "secrets").unwrap();
        assert_eq!(secret_mount["mountPath"], "/run/secrets/pgbox");
        assert_eq!(secret_mount["readOnly"], true);
        let data = mounts[0]["name"].as_str().unwrap();
        let vol = y["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == data)
            .unwrap();
        claims.push(
            vol["persistentVolumeClaim"]["claimName"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        claims,
        [
            "pgbox-ckube-dev-node0-data",
            "pgbox-ckube-dev-node1-data",
            "pgbox-ckube-dev-node2-data"
        ],
        "each node has its own volume"
    );
}

#[test]
fn cluster_quadlet_is_a_kube_unit_running_the_pod_and_podman_run_is_refused() {
    let d = tempfile::tempdir().unwrap();
    cluster_project(d.path(), "cquad", 6210, 1);
    let out = generate(d.path(), "quadlet");
    let unit = read(&out.join("pgbox-cquad-dev.kube"));
    assert!(out.join("kube.yaml").is_file());
    insta::assert_snapshot!(
        "cluster_quadlet_kube",
        unit.replace(&out.display().to_string(), "[OUT]")
    );
    // Keys from podman-systemd.unit(5) (Podman 4.4+) and systemd.unit(5).
    let known: &[(&str, &[&str])] = &[
        ("Unit", &["Description"]),
        ("Kube", &["Yaml"]),
        ("Service", &["Restart", "TimeoutStartSec", "TimeoutStopSec"]),
        ("Install", &["WantedBy"]),
    ];
    let mut section = String::new();
    for line in unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
            assert!(known.iter().any(|(s, _)| *s == section), "{section}");
            continue;
        }
        let (key, value) = line.split_once('=').unwrap();
        let keys = known.iter().find(|(s, _)| *s == section).unwrap().1;
        assert!(keys.contains(&key), "[{section}] {key}");
        if key == "Yaml" {
            assert_eq!(Path::new(value), out.join("kube.yaml"));
        }
    }

    let r = run(pgbox(d.path()).args(["generate", "podman"]));
    assert_eq!(r.status.code(), Some(2), "{}", text(&r.stderr));
    assert!(text(&r.stderr).contains("`kube`"), "{}", text(&r.stderr));
}

/// A port p with p + 1 free too (node0 and node1 publish both).
fn two_free_ports() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// `podman kube down`, the pod, its volumes and the image, even when the test failed.
struct KubeDown {
    out: PathBuf,
    pod: String,
    volumes: Vec<String>,
    image: String,
}

impl Drop for KubeDown {
    fn drop(&mut self) {
        let yaml = self.out.join("kube.yaml").display().to_string();
        let _ = podman(&["kube", "down", &yaml]);
        let _ = podman(&["pod", "rm", "-f", &self.pod]);
        let mut rm = vec!["volume", "rm", "-f"];
        rm.extend(self.volumes.iter().map(String::as_str));
        let _ = podman(&rm);
        let _ = podman(&["rmi", &self.image]);
    }
}

/// Patroni's /cluster seen from node0, once it names a leader and a replica that
/// follows it; (leader, replica).
fn wait_leader_and_replica(node0: &str, bound: Duration) -> (String, String) {
    let deadline = Instant::now() + bound;
    loop {
        let o = podman(&["exec", node0, "pgbox-ctl", "patroni-api", "GET", "/cluster"]);
        let json = api_json(&o.stdout);
        let members = json["members"].as_array().cloned().unwrap_or_default();
        let name = |m: &Value| m["name"].as_str().unwrap_or_default().to_string();
        let leader = members
            .iter()
            .find(|m| m["role"] == "leader" && m["state"] == "running");
        let replica = members.iter().find(|m| {
            (m["role"] == "replica" || m["role"] == "sync_standby")
                && (m["state"] == "running" || m["state"] == "streaming")
        });
        if let (Some(l), Some(r)) = (leader, replica) {
            return (name(l), name(r));
        }
        assert!(
            Instant::now() < deadline,
            "no leader and replica under kube play after {bound:?}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// psql on the host until it prints `want` (a fresh connection each time).
fn psql_until(url: &str, password: &str, sql: &str, want: &str, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let r = host_psql(url, password, sql);
        let got = text(&r.stdout).trim().to_string();
        if r.status.success() && got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` on {url}: wanted {want:?}, got {got:?}: {}",
            text(&r.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn cluster_generated_kube_runs_under_podman_kube_play() {
    require(Eng::Podman);
    let d = tempfile::tempdir().unwrap();
    let name = format!("clkube{}", std::process::id());
    let port = two_free_ports();
    cluster_project(d.path(), &name, port, 1);
    let out = generate(d.path(), "kube");
    let pod = format!("pgbox-{name}-dev");
    let image = format!("localhost/pgbox-{name}:pg15-dev");
    let _down = KubeDown {
        out: out.clone(),
        pod: pod.clone(),
        volumes: ["etcd", "node0-data", "node1-data"]
            .iter()
            .map(|v| format!("{pod}-{v}"))
            .collect(),
        image: image.clone(),
    };
    let ctx = out.join("image").display().to_string();
    let file = out.join("image/Containerfile").display().to_string();
    podman_ok(&["build", "-q", "-t", &image, "-f", &file, &ctx]);
    let yaml = out.join("kube.yaml").display().to_string();
    podman_ok(&["kube", "play", &yaml]);

    let node0 = format!("{pod}-node0");
    let (leader, replica) = wait_leader_and_replica(&node0, Duration::from_secs(300));
    assert_ne!(leader, replica);

    // Inside each node, its own server and its own Patroni API answer (the pod's
    // loopback holds every node's ports): psql finds node i's socket on 5432 + i,
    // and `pgbox-ctl patroni-api` reaches node i's API, not node0's.
    for i in 0..2u16 {
        let m = format!("node{i}");
        let c = format!("{pod}-{m}");
        let port = podman_ok(&[
            "exec",
            "-u",
            "postgres",
            &c,
            "psql",
            "-X",
            "-At",
            "-U",
            &name,
            "-d",
            &name,
            "-c",
            "show port",
        ]);
        assert_eq!(port.trim(), (5432 + i).to_string(), "{m}");
        let o = podman_ok(&["exec", &c, "pgbox-ctl", "patroni-api", "GET", "/patroni"]);
        let me: Value = serde_json::from_str(o.split_once('\n').unwrap().1).unwrap();
        let primary = me["role"] == "master" || me["role"] == "primary";
        assert_eq!(primary, m == leader, "{m}'s API answered: {o}");
    }

    // The password is a file in the container, in no variable.
    let password = read(&out.join("secrets/postgres_password"))
        .trim()
        .to_string();
    for m in ["node0", "node1", "etcd"] {
        let env = podman_ok(&[
            "inspect",
            "-f",
            "{{json .Config.Env}}",
            &format!("{pod}-{m}"),
        ]);
        for pw in secrets(&out) {
            assert!(!env.contains(&pw), "a secret is in {m}'s environment");
        }
    }

    let hosts = format!("127.0.0.1:{port},127.0.0.1:{}", port + 1);
    let rw = format!(
        "postgresql://{name}@{hosts}/{name}?target_session_attrs=read-write&connect_timeout=3"
    );
    let ro = format!(
        "postgresql://{name}@{hosts}/{name}?target_session_attrs=read-only&connect_timeout=3"
    );
    // The leader streams to the replica.
    psql_until(
        &rw,
        &password,
        "select count(*) from pg_stat_replication where state = 'streaming'",
        "1",
        Duration::from_secs(60),
    );
    let w = host_psql(
        &rw,
        &password,
        "create table kube_kept(x int); insert into kube_kept values (11)",
    );
    assert!(w.status.success(), "{}", text(&w.stderr));
    // Read on the replica: a session in recovery sees the row.
    psql_until(
        &ro,
        &password,
        "select x, pg_is_in_recovery() from kube_kept",
        "11|t",
        Duration::from_secs(30),
    );

    // `kube down` keeps the volumes; a new `kube play` serves the same data.
    podman_ok(&["kube", "down", &yaml]);
    podman_ok(&["volume", "inspect", &format!("{pod}-node1-data")]);
    podman_ok(&["kube", "play", &yaml]);
    psql_until(
        &rw,
        &password,
        "select x from kube_kept",
        "11",
        Duration::from_secs(180),
    );
}
