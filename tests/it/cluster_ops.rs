//! Operating a running `[cluster]` (issue 18) on the real engine: settings changed
//! in pgbox.toml reach every node through Patroni (reload, or one node at a time
//! restarts in the right order), and `replicas` scaled up clones a new node from the
//! leader. Helpers come from `cluster.rs`.

use std::time::{Duration, Instant};

use crate::cluster::{leader, node_field, Cluster};
use crate::support::{ok, text};

/// `pgbox up --timeout 300`, its stderr.
fn up(c: &Cluster) -> String {
    let err = text(&ok(&mut c.p.cmd(&["up", "--timeout", "300"])).stderr);
    eprintln!("--- pgbox up\n{err}");
    err
}

/// Rewrite pgbox.toml with `f`.
fn edit(c: &Cluster, f: impl FnOnce(String) -> String) {
    let path = c.p.path().join("pgbox.toml");
    let t = std::fs::read_to_string(&path).unwrap();
    let new = f(t.clone());
    assert_ne!(t, new, "the edit changed nothing");
    std::fs::write(&path, new).unwrap();
}

/// Each node's postmaster start time (a restart changes it).
fn starts(c: &Cluster, nodes: &[&str]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| c.sql_on(n, "select pg_postmaster_start_time()"))
        .collect()
}

/// Poll `cond` on the status until it holds (bounded), returning the status.
fn wait_status(
    c: &Cluster,
    bound: Duration,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + bound;
    loop {
        let st = c.status();
        if cond(&st) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} after {bound:?}: {st:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A reload-only change (`work_mem`, an extra setting) and a restart one
/// (`max_connections` up) reach every node with one `up`, replicas restarted before
/// the leader, which keeps leading, with the data intact; a second `up` changes
/// nothing. Then `max_connections` down (the leader restarts first, or the replica
/// would keep the old value), the extra setting removed (back to its default) and
/// `synchronous` turned off, again on every node.
#[test]
fn cluster_setting_changes_reach_every_node() {
    let c = Cluster::new("clset", 1, true);
    let err = up(&c);
    assert!(
        !err.contains("reloaded") && !err.contains("settings changed"),
        "a new cluster has nothing to apply: {err}"
    );
    let st = c.wait_healthy(Duration::from_secs(180));
    let lead = leader(&st);
    let nodes = ["node0", "node1"];
    c.p.sql(
        "create table kept(id int primary key); insert into kept select generate_series(1, 500)",
    );

    edit(&c, |t| {
        t.replace("work_mem = \"4MB\"", "work_mem = \"8MB\"")
            .replace("max_connections = 100", "max_connections = 120")
            + "\n[postgres.settings]\nlog_min_duration_statement = \"250ms\"\n"
    });
    let before = starts(&c, &nodes);
    let err = up(&c);
    // In effect on every node when `up` returns.
    for n in nodes {
        assert_eq!(c.sql_on(n, "show work_mem"), "8MB", "{n}");
        assert_eq!(c.sql_on(n, "show max_connections"), "120", "{n}");
        assert_eq!(
            c.sql_on(n, "show log_min_duration_statement"),
            "250ms",
            "{n}"
        );
        assert_eq!(c.sql_on(n, "select count(*) from kept"), "500", "{n}");
    }
    assert!(err.contains("`max_connections` 100 -> 120"), "{err}");
    let order = err
        .lines()
        .find(|l| l.contains("restarted node"))
        .unwrap_or_else(|| panic!("no restart reported: {err}"));
    let r1 = order.find("node1").expect(&err);
    let r0 = order.find("node0").expect(&err);
    if lead == "node0" {
        assert!(r1 < r0, "replica first, the leader last: {order}");
    } else {
        assert!(r0 < r1, "replica first, the leader last: {order}");
    }
    let after = starts(&c, &nodes);
    for i in 0..2 {
        assert_ne!(before[i], after[i], "{} restarted", nodes[i]);
    }
    let st = c.wait_healthy(Duration::from_secs(120));
    assert_eq!(leader(&st), lead, "the leader keeps leading");

    // Nothing changed: nothing is applied, nothing restarts.
    let err = up(&c);
    assert!(err.contains("up to date"), "{err}");
    assert!(
        !err.contains("restarted") && !err.contains("settings changed"),
        "{err}"
    );
    assert_eq!(starts(&c, &nodes), after, "a second `up` restarts nothing");

    // Down again, a setting removed, synchronous off.
    edit(&c, |t| {
        t.replace("max_connections = 120", "max_connections = 90")
            .replace("log_min_duration_statement = \"250ms\"\n", "")
            .replace("synchronous = true", "synchronous = false")
    });
    let err = up(&c);
    let order = err
        .lines()
        .find(|l| l.contains("restarted node"))
        .unwrap_or_else(|| panic!("no restart reported: {err}"));
    let (first, second) = if lead == "node0" {
        ("node0", "node1")
    } else {
        ("node1", "node0")
    };
    assert!(
        order.find(first) < order.find(second),
        "a lower max_connections restarts the leader first: {order}"
    );
    for n in nodes {
        assert_eq!(c.sql_on(n, "show max_connections"), "90", "{n}");
        assert_eq!(c.sql_on(n, "show log_min_duration_statement"), "-1", "{n}");
        assert_eq!(c.sql_on(n, "show work_mem"), "8MB", "{n}");
    }
    let replica = if lead == "node0" { "node1" } else { "node0" };
    wait_status(
        &c,
        Duration::from_secs(60),
        "the standby is not synchronous any more",
        |st| node_field(st, replica, "role") == "replica",
    );
    c.p.sql("insert into kept values (501)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.sql_on(replica, "select count(*) from kept") != "501" {
        assert!(
            Instant::now() < deadline,
            "the replica streams the write after"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let st = c.wait_healthy(Duration::from_secs(120));
    assert_eq!(leader(&st), lead, "the leader keeps leading");
    assert!(up(&c).contains("up to date"));

    // A value PostgreSQL would refuse never reaches Patroni: `up` fails, saying
    // why, and every node keeps its value.
    // (`[postgres.settings]` is still the last table, empty.)
    edit(&c, |t| t + "log_min_duration_statement = \"soon\"\n");
    let out = c.p.cmd(&["up", "--timeout", "300"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refused") && err.contains("log_min_duration_statement"),
        "{err}"
    );
    for n in nodes {
        assert_eq!(c.sql_on(n, "show log_min_duration_statement"), "-1", "{n}");
    }
}

/// `replicas = 1` -> `2` on a cluster holding data: the new node clones from the
/// leader, streams (in `pgbox status --json` and the leader's pg_stat_replication),
/// has the rows and the cluster's settings, and sees a write made after.
#[test]
fn cluster_scale_up_clones_a_new_streaming_replica() {
    let c = Cluster::new("clgrow", 1, true);
    up(&c);
    let st = c.wait_healthy(Duration::from_secs(180));
    let lead = leader(&st);
    c.p.sql("create table kept(id int primary key, v text); insert into kept select g, md5(g::text) from generate_series(1, 2000) g");

    edit(&c, |t| t.replace("replicas = 1", "replicas = 2"));
    let err = up(&c);
    assert!(err.contains("added node2 (port"), "{err}");
    let st = c.wait_healthy(Duration::from_secs(180));
    assert_eq!(leader(&st), lead, "the leader keeps leading");
    assert_eq!(
        node_field(&st, "node2", "container_state"),
        "running",
        "{st:#}"
    );
    let role = node_field(&st, "node2", "role");
    assert!(role == "replica" || role == "sync_standby", "{st:#}");
    assert_eq!(node_field(&st, "node2", "lag_bytes"), 0, "{st:#}");
    assert_eq!(
        c.sql_on(
            &lead,
            "select state from pg_stat_replication where application_name = 'node2'"
        ),
        "streaming"
    );
    assert_eq!(
        c.sql_on("node2", "select count(*), sum(length(v)) from kept"),
        "2000|64000"
    );
    assert_eq!(c.sql_on("node2", "select pg_is_in_recovery()"), "t");
    assert_eq!(
        c.sql_on("node2", "show max_connections"),
        c.sql_on(&lead, "show max_connections")
    );

    c.p.sql("insert into kept values (2001, 'after')");
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in ["node0", "node1", "node2"] {
        while c.sql_on(n, "select v from kept where id = 2001") != "after" {
            assert!(Instant::now() < deadline, "{n} sees the write made after");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert!(
        up(&c).contains("up to date"),
        "a second `up` changes nothing"
    );
}
