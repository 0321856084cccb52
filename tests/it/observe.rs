//! `pgbox stats`, `top` and `metrics` (issue #16) against a real server, with the
//! real tools: pgbench for load, Debian's `prometheus` scraping pgbox and its
//! `prometheus-postgres-exporter` as the reference for the shared metric names,
//! and tmux as the terminal `top` runs in. The tools come from
//! `scripts/ensure-observe.sh`; a missing one fails the test saying so.
//!
//! Every helper process (metrics server, exporter, Prometheus, sessions, tmux) is
//! owned by a guard that kills it when the test ends, passing or failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A background process, killed (by its own pid) when dropped.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(bin: &str) {
    assert!(
        Path::new(bin).exists() || Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().is_ok_and(|o| o.status.success()),
        "`{bin}` is missing: run `sudo scripts/ensure-observe.sh` (installs prometheus, prometheus-postgres-exporter, tmux, curl)"
    );
}

fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "gave up after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// GET `url` with curl; the body on a 200.
pub(crate) fn get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status.success().then(|| text(&out.stdout))
}

/// `pgbox metrics` of `p` on a free port, once it answers.
fn metrics(p: &Project) -> (Bg, String) {
    let port = free_port();
    let child = p
        .cmd(&["metrics", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let bg = Bg(child);
    until("pgbox metrics to answer", 30, || get(&url));
    (bg, url)
}

/// SQL through psql in the server's container, in the background (a session that
/// stays open while the test looks at it).
fn session(p: &Project, sql: &str) -> Bg {
    let (user, db) = user_db(p);
    let c = p.container();
    let args = [
        "exec", "-u", "postgres", &c, "psql", "-X", "-U", &user, "-d", &db, "-c", sql,
    ];
    Bg(Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

/// The user and database `pgbox url` names.
fn user_db(p: &Project) -> (String, String) {
    let url = text(&ok(&mut p.cmd(&["url"])).stdout);
    let rest = url
        .trim()
        .trim_start_matches("postgresql://")
        .trim_start_matches("postgres://");
    let (user, rest) = rest.split_once('@').unwrap();
    let db = rest.split_once('/').unwrap().1.split('?').next().unwrap();
    (user.to_string(), db.to_string())
}

fn stats_json(p: &Project) -> serde_json::Value {
    let out = ok(&mut p.cmd(&["stats", "--json"]));
    serde_json::from_slice(&out.stdout).expect("stats --json prints JSON")
}

#[test]
fn stats_on_a_stopped_server_fails_clearly_and_metrics_say_pg_up_0() {
    need("curl");
    let p = Project::new("obs-down");
    p.init(&[]);
    let out = run(&mut p.cmd(&["stats"]));
    let err = text(&out.stderr);
    assert!(!out.status.success(), "stats without a server fails");
    assert!(
        err.contains("cannot connect to") && err.contains("pgbox up"),
        "a clear error with the fix: {err}"
    );
    let (_m, url) = metrics(&p);
    let body = get(&url).unwrap();
    assert!(
        body.lines().any(|l| l == "pg_up 0"),
        "pg_up 0 when the server is down:\n{body}"
    );
    assert!(
        body.contains("pgbox_backup_present{project="),
        "pgbox's own metrics still come:\n{body}"
    );
    // A public address needs the explicit flag.
    let out = run(&mut p.cmd(&["metrics", "--listen", "0.0.0.0:1"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--allow-remote"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stats_under_pgbench_load_shows_transactions_per_second() {
    let p = Project::new("obs-tps");
    p.init(&[]);
    p.up();
    let c = p.container();
    let (user, db) = user_db(&p);
    let bench = |args: &[&str]| {
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-u", "postgres", &c, "pgbench", "-U", &user]);
        cmd.args(args).arg(&db);
        cmd
    };
    ok(&mut bench(&["-i", "-s", "1", "-q"]));
    let _load = Bg(bench(&["-c", "4", "-j", "2", "-T", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    until("pgbench clients to connect", 20, || {
        (p.sql("select count(*) from pg_stat_activity where application_name = 'pgbench'") == "4")
            .then_some(())
    });
    let r = stats_json(&p);
    let tps = r["rates"]["tps"].as_f64().unwrap();
    assert!(tps > 0.0, "non-zero TPS under pgbench: {}", r["rates"]);
    assert!(r["snapshot"]["connections"]["total"].as_i64().unwrap() >= 4);
    let text_out = text(&ok(&mut p.cmd(&["stats"])).stdout);
    assert!(text_out.contains(" TPS, cache hit "), "{text_out}");
    assert!(
        text_out.contains("pgbench_accounts"),
        "largest tables listed:\n{text_out}"
    );
}

#[test]
fn stats_shows_a_blocked_session_with_its_blocker_and_flags_dead_tuples() {
    let p = Project::new("obs-lock");
    p.init(&[]);
    p.up();
    p.sql(
        "create table t (id int primary key, v int) with (autovacuum_enabled = off);
         insert into t select g, 0 from generate_series(1, 20000) g;
         update t set v = 1;",
    );
    let _holder = session(
        &p,
        "begin; lock table t in access exclusive mode; select pg_sleep(120)",
    );
    until("the lock holder", 20, || {
        (p.sql("select count(*) from pg_locks where relation = 't'::regclass and mode = 'AccessExclusiveLock' and granted") == "1").then_some(())
    });
    let _waiter = session(&p, "select count(*) from t");
    let (waiter, holder) = until("the blocked session", 20, || {
        let w = p.sql("select pid from pg_stat_activity where wait_event_type = 'Lock' and query like 'select count(*) from t%'");
        let h = p.sql("select pid from pg_stat_activity where query like 'begin; lock table t%'");
        (!w.is_empty() && !h.is_empty())
            .then(|| (w.parse::<i64>().unwrap(), h.parse::<i64>().unwrap()))
    });
    let r = stats_json(&p);
    let blocked = r["snapshot"]["blocked"].as_array().unwrap();
    assert!(
        blocked
            .iter()
            .any(|b| b["pid"] == waiter && b["blocker_pid"] == holder),
        "pid {waiter} blocked by {holder}: {blocked:?}"
    );
    let t = r["snapshot"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t")
        .cloned()
        .expect("table t listed");
    assert!(t["dead"].as_i64().unwrap() >= 20000, "{t}");
    let advice: Vec<String> = r["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        advice
            .iter()
            .any(|a| a.contains("`public.t`") && a.contains("dead rows")),
        "{advice:#?}"
    );
    assert!(
        advice
            .iter()
            .any(|a| a.contains(&format!("pid {waiter}")) && a.contains(&format!("pid {holder}"))),
        "{advice:#?}"
    );
    let shown = text(&ok(&mut p.cmd(&["stats"])).stdout);
    assert!(
        shown.contains(&format!("blocked by pid {holder}")),
        "{shown}"
    );
}

/// Families of a text exposition: name -> (type, label names).
fn families(body: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut m: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (n, t) = rest.split_once(' ').unwrap();
            m.entry(n.into()).or_default().0 = t.into();
        } else if !l.starts_with('#') && !l.is_empty() {
            let name_end = l.find(['{', ' ']).unwrap();
            let e = m.entry(l[..name_end].into()).or_default();
            if let Some(open) = l[name_end..].strip_prefix('{') {
                let labels = &open[..open.rfind('}').unwrap()];
                for part in labels.split("\",") {
                    e.1.insert(part.split('=').next().unwrap().to_string());
                }
            }
        }
    }
    m
}

#[test]
fn shared_metrics_agree_with_postgres_exporter_in_name_type_and_labels() {
    need("/usr/bin/prometheus-postgres-exporter");
    need("curl");
    let p = Project::new("obs-exp");
    p.init(&[]);
    p.up();
    let (_m, url) = metrics(&p);
    let port = free_port();
    let (user, db) = user_db(&p);
    // The password goes in the environment, never in an argument.
    let exporter = Bg(Command::new("/usr/bin/prometheus-postgres-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .env(
            "DATA_SOURCE_NAME",
            format!(
                "postgresql://{user}:{}@127.0.0.1:{}/{db}?sslmode=disable",
                p.password(),
                p.port,
            ),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let exp_url = format!("http://127.0.0.1:{port}/metrics");
    let theirs = until("postgres_exporter to reach the server", 30, || {
        get(&exp_url).filter(|b| b.contains("\npg_up 1"))
    });
    let ours = get(&url).unwrap();
    assert!(ours.lines().any(|l| l == "pg_up 1"), "{ours}");
    let (theirs, ours) = (families(&theirs), families(&ours));
    let shared = [
        "pg_up",
        "pg_stat_database_",
        "pg_stat_activity_",
        "pg_locks_count",
        "pg_settings_",
        "pg_database_size_bytes",
        "pg_stat_bgwriter_",
        "pg_stat_archiver_",
        "pg_static",
    ];
    let mut compared = 0;
    let mut wrong = Vec::new();
    for (name, t) in &theirs {
        if !shared.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        compared += 1;
        match ours.get(name) {
            None => wrong.push(format!("{name}: missing")),
            Some(o) if o != t => wrong.push(format!("{name}: exporter {t:?}, pgbox {o:?}")),
            _ => {}
        }
    }
    assert!(
        compared > 100,
        "the exporter gave {compared} shared families"
    );
    assert!(
        wrong.is_empty(),
        "{} of {compared} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    drop(exporter);
}

#[test]
fn prometheus_scrapes_pgbox_metrics_and_reads_pg_up_and_backup_age() {
    need("/usr/bin/prometheus");
    need("curl");
    let p = Project::new("obs-prom");
    p.init(&[]);
    p.up();
    ok(&mut p.cmd(&["backup"]));
    let (_m, url) = metrics(&p);
    let target = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let dir = p.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pgbox\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .unwrap();
    let port = free_port();
    let _prom = Bg(Command::new("/usr/bin/prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let query = |q: &str| -> Option<serde_json::Value> {
        let out = Command::new("curl")
            .args([
                "-fsSG",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{port}/api/v1/query"),
                "--data-urlencode",
                &format!("query={q}"),
            ])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let r = v["data"]["result"].as_array()?.first()?.clone();
        Some(r)
    };
    let up = until("Prometheus to scrape pg_up", 90, || {
        query("pg_up{job=\"pgbox\"}")
    });
    assert_eq!(up["value"][1], "1", "{up}");
    let age = until("Prometheus to scrape pgbox_backup_age_seconds", 30, || {
        query("pgbox_backup_age_seconds{job=\"pgbox\"}")
    });
    assert_eq!(age["metric"]["project"], p.name.as_str(), "{age}");
    let secs: f64 = age["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        (0.0..600.0).contains(&secs),
        "the backup just made is young: {age}"
    );
}

/// A tmux server of its own (socket named for this test), killed when dropped.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        text(&out.stdout)
    }
    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "top"])
    }
    fn wait(&self, what: &str, secs: u64) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "no `{what}` on the screen after {secs}s:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

#[test]
fn top_in_tmux_renders_sorts_quits_and_ctrl_c_restores_the_terminal() {
    need("tmux");
    let p = Project::new("obs-top");
    p.init(&[]);
    p.up();
    let _idle = session(&p, "select pg_sleep(120)");
    let bin = bin();
    let env = format!(
        "cd '{}' && env -u PGBOX_CONFIG NO_COLOR=1 XDG_CONFIG_HOME='{}'",
        p.path().display(),
        p.path().join(".test-xdg").display()
    );
    let script = format!(
        "{env} '{b}' top; echo TOP1-EXIT=$?; read -r _; {env} '{b}' top; echo TOP2-EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e '-*icanon' -e '-*echo' | tr '\\n' ' '; echo; sleep 120",
        b = bin.display()
    );
    let t = Tmux(format!("pgbox-test-{}", std::process::id()));
    t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "180",
        "-y",
        "50",
        &script,
    ]);
    t.wait("sort: duration", 30);
    let s = t.wait("pg_sleep(120)", 15);
    assert!(s.contains("connections") && s.contains("pid"), "{s}");
    t.cmd(&["send-keys", "-t", "top", "s"]);
    t.wait("sort: state", 10);
    t.cmd(&["send-keys", "-t", "top", "q"]);
    let s = t.wait("TOP1-EXIT=0", 10);
    assert!(
        !s.contains("sort: state"),
        "the alternate screen is gone after q:\n{s}"
    );
    t.cmd(&["send-keys", "-t", "top", "Enter"]);
    t.wait("sort: duration", 30);
    t.cmd(&["send-keys", "-t", "top", "C-c"]);
    let s = t.wait("TOP2-EXIT=130", 10);
    let s = if s.contains("icanon echo") {
        s
    } else {
        t.wait("icanon echo", 5)
    };
    assert!(
        !s.contains("-icanon") && !s.contains("-echo "),
        "Ctrl-C left the terminal in raw mode:\n{s}"
    );
}
