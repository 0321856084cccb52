//! `pgbox metrics`: a Prometheus endpoint in the foreground.
//!
//! Shared metrics (built in `exporter`) carry postgres_exporter 0.11's names,
//! types, HELP texts and labels (including its constant `server="host:port"`
//! label), so dashboards made for the exporter read them: `pg_up`, `pg_stat_database_*`,
//! `pg_stat_database_conflicts_*`, `pg_stat_activity_*`, `pg_locks_count`,
//! `pg_settings_*`, `pg_database_size_bytes`, `pg_stat_bgwriter_*_total`,
//! `pg_stat_archiver_*` and `pg_static`. What only pgbox knows is `pgbox_*`:
//! backups, the schedule's last run, the archive's lag, the container.
//!
//! One session is kept open between scrapes (connecting with TLS and SCRAM would
//! eat most of a scrape's budget) and opened again after an error; a scrape that
//! cannot reach the server answers `pg_up 0` and pgbox's own metrics. Scrapes are
//! served one at a time. The HTTP side is a few lines on a TCP listener: GET of
//! `/metrics`, nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use super::exporter::server_families;
use super::prom::{self, Family, Kind};
use super::{facts, Source};
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

pub struct Options {
    pub listen: SocketAddr,
    /// Allow an address other than loopback (the endpoint has no authentication).
    pub allow_remote: bool,
}

/// The listen address is loopback, or the user said they mean it.
pub fn check_listen(o: &Options) -> Result<(), Fail> {
    if o.listen.ip().is_loopback() || o.allow_remote {
        return Ok(());
    }
    Err(Fail::new(format!(
        "`{}` is not a loopback address: the metrics (database names, settings, sizes) would be open to the network without authentication",
        o.listen
    ))
    .hint("bind to 127.0.0.1 and scrape through a tunnel or a local Prometheus, or pass `--allow-remote` to mean it")
    .code(EXIT_USAGE))
}

struct State {
    src: Source,
    client: Option<Client>,
    boxes: tokio::sync::watch::Receiver<Option<super::Container>>,
    server_label: String,
}

/// Serve until the process is stopped.
pub async fn serve(src: Source, o: &Options, p: &Printer) -> anyhow::Result<()> {
    check_listen(o)?;
    let listener = TcpListener::bind(o.listen).await.map_err(|e| {
        Fail::new(format!("cannot listen on `{}`: {e}", o.listen))
            .hint("another exporter may use the port; pick another with `--listen 127.0.0.1:PORT`")
    })?;
    let s = &src.settings;
    let server_label = format!(
        "{}:{}",
        s.url_host().trim_start_matches('[').trim_end_matches(']'),
        s.port
    );
    p.info(format!(
        "serving metrics of `{}` on http://{}/metrics (Ctrl-C stops)",
        s.project,
        listener.local_addr()?
    ));
    let boxes = src.sampler(Duration::from_secs(5));
    let state = Arc::new(Mutex::new(State {
        src,
        client: None,
        boxes,
        server_label,
    }));
    loop {
        let (sock, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            let _ = handle(sock, state).await;
        });
    }
}

async fn handle(mut sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => {
            let mut st = state.lock().await;
            ("200 OK", prom::CONTENT_TYPE, scrape(&mut st).await)
        }
        ("GET", "/") => (
            "200 OK",
            "text/html; charset=utf-8",
            "<html><body><a href=\"/metrics\">metrics</a></body></html>\n".to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(reply.as_bytes()).await?;
    sock.shutdown().await
}

/// One scrape: the server's families (or `pg_up 0`), then pgbox's.
async fn scrape(st: &mut State) -> String {
    let started = Instant::now();
    if st.client.as_ref().is_none_or(|c| c.is_closed()) {
        st.client = st.src.connect().await.ok();
    }
    let mut fams = Vec::new();
    let mut up = Family::new(
        "pg_up",
        Kind::Gauge,
        "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).",
    );
    let server = match &st.client {
        Some(c) => server_families(c, &st.server_label).await,
        None => Err(anyhow::anyhow!("not connected")),
    };
    let sample = st.boxes.borrow().clone();
    match server {
        Ok(f) => {
            up.add(&[], 1.0);
            fams.push(up);
            fams.extend(f);
        }
        Err(_) => {
            st.client = None;
            up.add(&[], 0.0);
            fams.push(up);
        }
    }
    fams.extend(pgbox_families(st, sample));
    let mut d = Family::new(
        "pgbox_scrape_duration_seconds",
        Kind::Gauge,
        "How long this scrape took",
    );
    d.add(
        &[("project", &st.src.settings.project)],
        started.elapsed().as_secs_f64(),
    );
    fams.push(d);
    prom::render(&fams)
}

fn pgbox_families(st: &mut State, sample: Option<super::Container>) -> Vec<Family> {
    let project = st.src.settings.project.clone();
    let pl: &[(&str, &str)] = &[("project", &project)];
    let f = facts::read(&st.src.settings);
    let mut out = Vec::new();
    if let Some(b) = &f.newest_backup {
        out.push(gauge(
            "pgbox_backup_last_success_timestamp_seconds",
            "When the newest good database backup was made (unix seconds)",
            pl,
            b.created_at as f64,
        ));
        out.push(gauge(
            "pgbox_backup_age_seconds",
            "Age of the newest good database backup",
            pl,
            b.age_s as f64,
        ));
        out.push(gauge(
            "pgbox_backup_last_verified",
            "1 when the newest backup was verified by a test restore",
            pl,
            f64::from(u8::from(b.verified)),
        ));
    }
    out.push(gauge(
        "pgbox_backup_present",
        "1 when the project has at least one good database backup",
        pl,
        f64::from(u8::from(f.newest_backup.is_some())),
    ));
    if let Some(r) = &f.last_run {
        let result = if r.ok { "ok" } else { "failed" };
        out.push(gauge(
            "pgbox_schedule_last_run_timestamp_seconds",
            "When the last scheduled backup run ended (unix seconds), by result",
            &[("project", &project), ("result", result)],
            r.finished_at as f64,
        ));
        out.push(gauge(
            "pgbox_schedule_last_run_success",
            "1 when the last scheduled backup run succeeded",
            pl,
            f64::from(u8::from(r.ok)),
        ));
    }
    if let Some(c) = sample {
        out.push(gauge(
            "pgbox_container_memory_usage_bytes",
            "Memory the server's container uses, without the inactive page cache",
            pl,
            c.mem_used_bytes as f64,
        ));
        if let Some(l) = c.mem_limit_bytes {
            out.push(gauge(
                "pgbox_container_memory_limit_bytes",
                "The container's memory limit (pgbox.toml `memory`)",
                pl,
                l as f64,
            ));
        }
        if let Some(cpu) = c.cpu_percent {
            out.push(gauge(
                "pgbox_container_cpu_percent",
                "CPU the container used since the previous scrape, in percent of one core",
                pl,
                cpu,
            ));
        }
    }
    out
}

/// A gauge family with one sample.
fn gauge(name: &str, help: &str, labels: &[(&str, &str)], value: f64) -> Family {
    let mut x = Family::new(name, Kind::Gauge, help);
    x.add(labels, value);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_listen_address_needs_the_flag() {
        let o = |a: &str, allow| Options {
            listen: a.parse().unwrap(),
            allow_remote: allow,
        };
        assert!(check_listen(&o("127.0.0.1:9187", false)).is_ok());
        assert!(check_listen(&o("[::1]:9187", false)).is_ok());
        assert!(check_listen(&o("0.0.0.0:9187", false)).is_err());
        assert!(check_listen(&o("0.0.0.0:9187", true)).is_ok());
    }
}
