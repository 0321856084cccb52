//! `[cluster] replicas = N` (issue 18): Patroni + etcd on the real engine.
//!
//! The fault tests kill containers while a client writes through `pgbox url` in a
//! loop that records every commit the server acknowledged (`Recorder`): after the
//! leader is killed a replica takes over and, with `synchronous = true`, no
//! acknowledged row is missing; the old leader rejoins with `pgbox up`; etcd's loss
//! loses nothing and its return heals the cluster; a replica stopped during a
//! backup does not affect it. The bad-input tests need no image.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{docker, ok, run, text, Project};

/// A project with `[cluster]`, torn down (every node, etcd, network, data) on drop.
pub(crate) struct Cluster {
    pub(crate) p: Project,
}

impl Cluster {
    pub(crate) fn new(tag: &str, replicas: u32, synchronous: bool) -> Cluster {
        let p = Project::new(tag);
        p.init(&[]);
        let toml = p.path().join("pgbox.toml");
        let mut t = std::fs::read_to_string(&toml).unwrap();
        t.push_str(&format!(
            "\n[cluster]\nreplicas = {replicas}\nsynchronous = {synchronous}\n"
        ));
        std::fs::write(&toml, t).unwrap();
        Cluster { p }
    }

    pub(crate) fn up(&self) {
        ok(&mut self.p.cmd(&["up", "--timeout", "300"]));
    }

    pub(crate) fn node(&self, member: &str) -> String {
        format!("pgbox-{}-{member}", self.p.name)
    }

    pub(crate) fn status(&self) -> Value {
        let out = run(&mut self.p.cmd(&["status", "--json"]));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Until there is a leader, every node runs with no replay lag, and (synchronous)
    /// a synchronous standby is named; the status then.
    pub(crate) fn wait_healthy(&self, bound: Duration) -> Value {
        let deadline = Instant::now() + bound;
        loop {
            let st = self.status();
            let nodes = st["nodes"].as_array().cloned().unwrap_or_default();
            let sync_ok =
                st["synchronous"] == false || nodes.iter().any(|n| n["role"] == "sync_standby");
            let lag_ok = nodes.iter().all(|n| n["lag_bytes"] == 0);
            if st["healthy"] == true && sync_ok && lag_ok {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not healthy after {bound:?}: {st:#}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub(crate) fn url(&self) -> String {
        text(&ok(&mut self.p.cmd(&["url", "--with-password"])).stdout)
            .trim()
            .to_string()
    }

    /// SQL run with psql inside one node (local socket), stdout trimmed.
    pub(crate) fn sql_on(&self, member: &str, sql: &str) -> String {
        let user = &self.p.name.replace('-', "_");
        docker(&[
            "exec",
            "-u",
            "postgres",
            &self.node(member),
            "psql",
            "-X",
            "-At",
            "-U",
            user,
            "-d",
            user,
            "-c",
            sql,
        ])
        .trim()
        .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.p.cmd(&["down", "--purge", "--yes", "-q"]).output();
        let mut names: Vec<String> = (0..4).map(|i| self.node(&format!("node{i}"))).collect();
        names.push(self.node("etcd"));
        let _ = Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&names)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("docker")
            .args(["network", "rm", &self.node("net")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("docker")
            .args([
                "volume",
                "rm",
                "-f",
                &format!("pgbox-{}-data-etcd", self.p.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What the writer saw: acknowledged ids (with when), and ids in doubt (error or
/// timeout: the commit may or may not have happened).
#[derive(Default, Clone)]
struct Log {
    /// (id, when the statement was sent, when it was acknowledged)
    acked: Vec<(i64, Instant, Instant)>,
    in_doubt: Vec<i64>,
}

/// A client inserting one row per statement through the multi-host URL, in
/// autocommit, reconnecting after any error. No statement_timeout and no
/// server-side cancel: a cancelled wait for the synchronous standby would make
/// the commit visible unreplicated (Patroni's documented hole).
struct Recorder {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    fn start(url: String, first_id: i64) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Log::default()));
        let (s, l) = (stop.clone(), log.clone());
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut id = first_id;
                let mut client: Option<tokio_postgres::Client> = None;
                while !s.load(Ordering::SeqCst) {
                    let c = match client.take() {
                        Some(c) => c,
                        None => {
                            let conn = tokio::time::timeout(
                                Duration::from_secs(4),
                                tokio_postgres::connect(&url, tokio_postgres::NoTls),
                            )
                            .await;
                            match conn {
                                Ok(Ok((c, conn))) => {
                                    tokio::spawn(conn);
                                    c
                                }
                                _ => {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    continue;
                                }
                            }
                        }
                    };
                    id += 1;
                    let sent = Instant::now();
                    let r = tokio::time::timeout(
                        Duration::from_secs(2),
                        c.execute("insert into ack(id) values ($1)", &[&id]),
                    )
                    .await;
                    match r {
                        Ok(Ok(_)) => {
                            l.lock().unwrap().acked.push((id, sent, Instant::now()));
                            client = Some(c);
                        }
                        _ => l.lock().unwrap().in_doubt.push(id),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        });
        Recorder {
            stop,
            log,
            handle: Some(handle),
        }
    }

    fn snapshot(&self) -> Log {
        self.log.lock().unwrap().clone()
    }

    /// The first acknowledgement of a statement sent after `t`, waiting up to `bound`.
    fn first_ack_after(&self, t: Instant, bound: Duration) -> Option<Instant> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some((_, _, at)) = self.snapshot().acked.iter().find(|(_, sent, _)| *sent > t) {
                return Some(*at);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn finish(mut self) -> Log {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.snapshot()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Acknowledged ids missing from the table (read through the leader).
fn lost(c: &Cluster, log: &Log) -> Vec<i64> {
    let stored: std::collections::HashSet<i64> =
        c.p.sql("select id from ack")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
    log.acked
        .iter()
        .map(|(id, _, _)| *id)
        .filter(|id| !stored.contains(id))
        .collect()
}

pub(crate) fn leader(st: &Value) -> String {
    st["leader"].as_str().expect("a leader").to_string()
}

pub(crate) fn node_field(st: &Value, member: &str, field: &str) -> Value {
    st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == member)
        .map(|n| n[field].clone())
        .unwrap_or(Value::Null)
}

/// Kill the leader while a client writes through `pgbox url`: a replica takes over,
/// no acknowledged row is lost (synchronous), the old leader rejoins as a replica
/// with the same rows; then kill etcd: nothing is lost, and its return heals.
#[test]
fn cluster_leader_and_etcd_kills_lose_no_acknowledged_row() {
    let c = Cluster::new("clfo", 2, true);
    c.up();
    let st = c.wait_healthy(Duration::from_secs(180));
    c.p.sql("create table ack(id bigint primary key, at timestamptz default now())");
    let url = c.url();
    assert!(url.contains("target_session_attrs=read-write"), "{url}");

    // Leader kill.
    let old = leader(&st);
    let rec = Recorder::start(url.clone(), 0);
    assert!(
        rec.first_ack_after(Instant::now(), Duration::from_secs(20))
            .is_some(),
        "the writer never got a commit through `{url}`"
    );
    std::thread::sleep(Duration::from_secs(2));
    let t_kill = Instant::now();
    docker(&["kill", &c.node(&old)]);
    // Statements sent before the kill returned may still have reached the old leader.
    let first = rec.first_ack_after(Instant::now(), Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(2));
    let log = rec.finish();
    let first = first.expect("no write succeeded within 90 s of killing the leader");
    eprintln!(
        "leader kill: first acknowledged write {:.1}s after the kill; {} acknowledged, {} in doubt",
        (first - t_kill).as_secs_f64(),
        log.acked.len(),
        log.in_doubt.len()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let new = loop {
        let st = c.status();
        match st["leader"].as_str() {
            Some(l) if l != old => break l.to_string(),
            _ => assert!(Instant::now() < deadline, "no replica took over: {st:#}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let missing = lost(&c, &log);
    assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");

    // The old leader rejoins as a replica and converges.
    c.up();
    let st = c.wait_healthy(Duration::from_secs(180));
    assert_ne!(node_field(&st, &old, "role"), "leader", "{st:#}");
    assert_eq!(
        node_field(&st, &old, "timeline"),
        node_field(&st, &new, "timeline"),
        "{st:#}"
    );
    let on_leader = c.sql_on(&new, "select count(*), max(id) from ack");
    for m in ["node0", "node1", "node2"] {
        assert_eq!(
            c.sql_on(m, "select count(*), max(id) from ack"),
            on_leader,
            "{m}"
        );
    }

    // etcd kill: failsafe mode keeps the leader serving while every member answers
    // it; whether it keeps serving or steps down, nothing acknowledged is lost.
    let timeline = node_field(&st, &new, "timeline");
    let rec = Recorder::start(url, 1_000_000);
    assert!(rec
        .first_ack_after(Instant::now(), Duration::from_secs(20))
        .is_some());
    let t_kill = Instant::now();
    docker(&["kill", &c.node("etcd")]);
    std::thread::sleep(Duration::from_secs(35));
    let log = rec.finish();
    let late = log
        .acked
        .iter()
        .filter(|(_, _, at)| *at > t_kill + Duration::from_secs(30))
        .count();
    eprintln!(
        "etcd kill: {} acknowledged after the kill, {late} of them 30 s or more after it, {} in doubt",
        log.acked.iter().filter(|(_, _, at)| *at > t_kill).count(),
        log.in_doubt.len()
    );
    c.up();
    let st = c.wait_healthy(Duration::from_secs(180));
    let missing = lost(&c, &log);
    assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
    assert_eq!(
        node_field(&st, &leader(&st), "timeline"),
        timeline,
        "no failover while etcd was away: {st:#}"
    );
}

/// Backup runs on the leader and is unaffected by a replica stopped during it;
/// restore goes through the leader and is seen on every node; switchover moves
/// the leader (only to the synchronous standby in synchronous mode); scaling down
/// removes a node and its data; down/up keep the data.
#[test]
fn cluster_backup_restore_switchover_scale_and_restart() {
    let c = Cluster::new("clops", 2, true);
    c.up();
    let st = c.wait_healthy(Duration::from_secs(180));
    let l = leader(&st);
    let user = c.p.name.replace('-', "_");
    docker(&[
        "exec",
        "-u",
        "postgres",
        &c.node(&l),
        "pgbench",
        "-q",
        "-i",
        "-s",
        "5",
        "-U",
        &user,
        &user,
    ]);
    let sync = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "sync_standby")
        .map(|n| n["node"].as_str().unwrap().to_string())
        .unwrap();

    // A replica stopped during the backup.
    let child =
        c.p.cmd(&["backup"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    docker(&["stop", &c.node(&sync)]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    let file = text(&out.stdout).trim().lines().last().unwrap().to_string();
    ok(&mut c.p.cmd(&["backup", "verify", &file]));

    c.up();
    let st = c.wait_healthy(Duration::from_secs(180));

    // Switchover: not to a replica that is not the synchronous standby.
    let sync = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "sync_standby")
        .map(|n| n["node"].as_str().unwrap().to_string())
        .unwrap();
    let l = leader(&st);
    let other = ["node0", "node1", "node2"]
        .into_iter()
        .find(|m| *m != l && *m != sync)
        .unwrap();
    let out = run(&mut c.p.cmd(&["switchover", "--to", other]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("synchronous standby"),
        "{}",
        text(&out.stderr)
    );
    ok(&mut c.p.cmd(&["switchover"]));
    let st = c.wait_healthy(Duration::from_secs(120));
    assert_ne!(leader(&st), l, "{st:#}");
    // A scheduled run finds the new leader by itself (taken after the switchover,
    // it is the backup restored below).
    let before = std::fs::read_dir(c.p.path().join("backups"))
        .unwrap()
        .count();
    ok(&mut c.p.cmd(&["schedule", "run"]));
    assert!(
        std::fs::read_dir(c.p.path().join("backups"))
            .unwrap()
            .count()
            > before
    );

    // Restore through the (new) leader, seen on every node.
    c.p.sql("delete from pgbench_accounts where aid <= 1000");
    // The latest backup: the scheduled run's retention keeps one a day.
    ok(&mut c.p.cmd(&["restore", "--yes"]));
    c.wait_healthy(Duration::from_secs(120));
    for m in ["node0", "node1", "node2"] {
        assert_eq!(
            c.sql_on(m, "select count(*) from pgbench_accounts"),
            "500000",
            "{m}"
        );
    }

    // Scale down to one replica: node2 and its copy go.
    let toml = c.p.path().join("pgbox.toml");
    let t = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("replicas = 2", "replicas = 1");
    std::fs::write(&toml, t).unwrap();
    c.up();
    let st = c.wait_healthy(Duration::from_secs(180));
    assert_eq!(st["nodes"].as_array().unwrap().len(), 2, "{st:#}");
    let gone = run(Command::new("docker").args(["inspect", &c.node("node2")]));
    assert!(!gone.status.success(), "node2's container is removed");
    assert!(!c.p.path().join(".pgbox/data-node2").exists());

    // down/up keep the data.
    ok(&mut c.p.cmd(&["down"]));
    c.up();
    c.wait_healthy(Duration::from_secs(180));
    assert_eq!(c.p.sql("select count(*) from pgbench_accounts"), "500000");
}

/// Each bad input gets a clear error (exit 2) before anything starts.
#[test]
fn cluster_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |body: &str| {
        std::fs::write(dir.path().join("pgbox.toml"), body).unwrap();
    };
    let cmd = |args: &[&str]| run(crate::support::pgbox(dir.path()).args(args));

    cfg("[project]\nname = \"clbad\"\n[cluster]\nreplicas = -1\n");
    let out = cmd(&["url"]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("pgbox.toml:4:") && e.contains("`replicas` is `-1`: it must be 0"),
        "{e}"
    );

    cfg("[project]\nname = \"clbad\"\n[storage]\nmode = \"fallback\"\n[cluster]\nreplicas = 1\n");
    let out = cmd(&["up"]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("storage mode `fallback` cannot work with a cluster"),
        "{e}"
    );

    cfg("[project]\nname = \"clbad\"\n[network]\nport = 65535\n[cluster]\nreplicas = 1\n");
    let out = cmd(&["up"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("highest port is 65535"),
        "{}",
        text(&out.stderr)
    );

    cfg("[project]\nname = \"clbad\"\n[pooler]\nenabled = true\n[cluster]\nreplicas = 1\n");
    let out = cmd(&["up"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`[pooler]` is not supported with a cluster yet"),
        "{}",
        text(&out.stderr)
    );

    // A port of a node (port + 1) taken: named before anything starts.
    crate::support::require_engine();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = l.local_addr().unwrap().port();
    cfg(&format!(
        "[project]\nname = \"clbad\"\n[network]\nport = {}\n[cluster]\nreplicas = 1\n",
        taken - 1
    ));
    let out = cmd(&["up"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!("port `{taken}`")) && e.contains("port + i"),
        "{e}"
    );
    let none = run(Command::new("docker").args(["inspect", "pgbox-clbad-etcd"]));
    assert!(!none.status.success(), "nothing was started");

    // `switchover`, `url --replica` and `logs NODE` need a cluster.
    cfg("[project]\nname = \"clbad\"\n");
    let out = cmd(&["url", "--replica"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("needs a cluster"));
    let out = cmd(&["logs", "node2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no log named `node2`: this project is one server"),
        "{}",
        text(&out.stderr)
    );
}

/// `pgbox generate compose` emits the same cluster: under docker-compose it elects a
/// leader, the replicas stream, and a row written on the leader is on every node.
#[test]
fn cluster_generated_compose_runs_the_same_cluster() {
    crate::support::require_engine();
    let d = tempfile::tempdir().unwrap();
    let name = format!("clcmp{}", std::process::id());
    std::fs::write(
        d.path().join("pgbox.toml"),
        format!(
            "[project]\nname = \"{name}\"\n[network]\nport = {}\n[cluster]\nreplicas = 1\n",
            crate::support::free_port()
        ),
    )
    .unwrap();
    let out = ok(crate::support::pgbox(d.path()).args(["generate", "compose"]));
    let dir = std::path::PathBuf::from(text(&out.stdout).trim());
    let _down = crate::support::ComposeDown(
        dir.clone(),
        vec![format!("localhost/pgbox-{name}:pg15-dev")],
    );
    for f in [
        "replication_password",
        "rewind_password",
        "patroni_api_password",
    ] {
        let meta = std::fs::metadata(dir.join("secrets").join(f)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
    }
    let compose = |args: &[&str]| {
        let o = Command::new("docker-compose")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("docker-compose (apt-get install docker-compose)");
        assert!(
            o.status.success(),
            "docker-compose {args:?}: {}",
            text(&o.stderr)
        );
        o
    };
    compose(&["config", "-q"]);
    compose(&["up", "-d", "--build"]);
    let node = |i: u32| format!("pgbox-{name}-dev-node{i}");
    let deadline = Instant::now() + Duration::from_secs(300);
    let leader = loop {
        let o = run(Command::new("docker").args([
            "exec",
            &node(0),
            "pgbox-ctl",
            "patroni-api",
            "GET",
            "/cluster",
        ]));
        let json = api_json(&o.stdout);
        let members = json["members"].as_array().cloned().unwrap_or_default();
        let running = members
            .iter()
            .filter(|m| m["state"] == "running" || m["state"] == "streaming")
            .count();
        if running == 2 && members.iter().any(|m| m["role"] == "sync_standby") {
            let l = members.iter().find(|m| m["role"] == "leader").unwrap();
            break l["name"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no healthy cluster under compose: {}",
            text(&o.stdout)
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let psql = |c: &str, sql: &str| {
        docker(&[
            "exec", "-u", "postgres", c, "psql", "-qAt", "-U", &name, "-d", &name, "-c", sql,
        ])
    };
    let l = format!("pgbox-{name}-dev-{leader}");
    psql(&l, "create table kept(x int); insert into kept values (11)");
    let replica = if leader == "node0" { node(1) } else { node(0) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = run(Command::new("docker").args([
            "exec",
            "-u",
            "postgres",
            &replica,
            "psql",
            "-qAt",
            "-U",
            &name,
            "-d",
            &name,
            "-c",
            "select x from kept",
        ]));
        if text(&o.stdout).trim() == "11" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the row never reached the replica"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Podman (rootful, through its Docker-compatible API, CNI networking without DNS):
/// the private network with static addresses works, a leader and a streaming
/// replica come up, and a write through `pgbox url` lands.
#[test]
fn cluster_podman_smoke() {
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let names: Vec<String> = ["node0", "node1", "etcd"]
                .iter()
                .map(|m| format!("pgbox-{}-{m}", self.0))
                .collect();
            let _ = Command::new("podman")
                .args(["rm", "-f"])
                .args(&names)
                .output();
            let _ = Command::new("podman")
                .args(["network", "rm", &format!("pgbox-{}-net", self.0)])
                .output();
            let _ = Command::new("podman")
                .args(["volume", "rm", "-f", &format!("pgbox-{}-data-etcd", self.0)])
                .output();
        }
    }
    let p = Project::on("clpod", crate::support::Eng::Podman);
    p.init(&[]);
    let toml = p.path().join("pgbox.toml");
    let mut t = std::fs::read_to_string(&toml).unwrap();
    t.push_str("\n[cluster]\nreplicas = 1\n");
    std::fs::write(&toml, t).unwrap();
    let _gone = Gone(p.name.clone());
    ok(&mut p.cmd(&["up", "--timeout", "300"]));
    let st: Value = serde_json::from_slice(&ok(&mut p.cmd(&["status", "--json"])).stdout).unwrap();
    assert_eq!(st["healthy"], true, "{st:#}");
    let roles: Vec<&str> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["role"].as_str().unwrap_or("-"))
        .collect();
    assert!(roles.contains(&"leader"), "{st:#}");
    let url = text(&ok(&mut p.cmd(&["url"])).stdout).trim().to_string();
    let out = crate::support::host_psql(
        &url,
        &p.password(),
        "create table smoke(x int); insert into smoke values (7); select x from smoke",
    );
    assert_eq!(
        text(&out.stdout).trim().lines().last(),
        Some("7"),
        "{}",
        text(&out.stderr)
    );
    ok(&mut p.cmd(&["down"]));
}

/// The JSON body of a `pgbox-ctl patroni-api` reply (its first line is the HTTP
/// status), or null when there is none.
pub(crate) fn api_json(stdout: &[u8]) -> Value {
    text(stdout)
        .split_once('\n')
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}
