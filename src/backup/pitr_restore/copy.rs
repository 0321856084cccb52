//! `pgbox restore --to-* --into-new`: the recovered cluster runs beside the
//! project's instead of replacing it, to inspect and copy rows back; and
//! `pgbox restore --discard-new` (or `down --purge`) removes it.
//!
//! The copy is the scratch cluster of the restore, served as it is by its own
//! container `<project container>-recovered` on another port of the project's bind
//! address. It is a copy of the project's cluster, so the project's roles and
//! password work, and it runs with the project's settings except three: no WAL
//! archive mount, its own rendered configuration with `[backup] pitr` off (its new
//! timeline must never reach the project's archive, where it would collide with the
//! project's own future timelines), and no init scripts. Its label keeps it out of
//! `pgbox ls`, and `up`, `down` and `status` of the project look only at the
//! project's own container name.
//!
//! `.pgbox/recovered.json` ([`Recovered`]) records it. It is written once the copy
//! answers, and the restore's own record is removed right after, with no await in
//! between: a Ctrl-C before it leaves the restore's guard to remove the copy and its
//! location, and after it the location belongs to the copy, never to the leftover
//! cleanup of the next restore.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::scratch::{Job, Scratch};
use crate::config::Settings;
use crate::container::{psql, spec};
use crate::engine::{Engine, MountSource, LABEL_PORT, LABEL_PROJECT};
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::probe::{self, Ping};
pub use crate::server::recovered::remove_if_ours;
use crate::server::recovered::{conf_dir, name, ours, remove};
use crate::state::Recovered;

/// The copy's settings: the project's on the scratch location, pitr off, its port.
fn settings(sc: &Scratch, port: u16) -> Settings {
    let mut cs = sc.s.clone();
    cs.pitr = false;
    cs.port = port;
    cs
}

fn port_free(bind: &str, port: u16) -> bool {
    std::net::TcpListener::bind((bind, port)).is_ok()
}

/// Before anything is built: refuse a second copy, and pick the port (`--port`, or
/// the first free one after the project's).
pub fn plan(s: &Settings, port: Option<u16>) -> anyhow::Result<u16> {
    if let Some(r) = Recovered::load(s)? {
        return Err(Fail::new(format!(
            "`{}` already has a recovered copy: `{}` on port {} (state at {})",
            s.project, r.container, r.port, r.target
        ))
        .hint("copy what you need from it, then `pgbox restore --discard-new` removes it; recover again after that")
        .code(EXIT_USAGE)
        .into());
    }
    match port {
        Some(p) if p == s.port => Err(Fail::new(format!(
            "port `{p}` is the project's own; the recovered copy needs another"
        ))
        .code(EXIT_USAGE)
        .into()),
        Some(p) if !port_free(&s.bind, p) => Err(Fail::new(format!(
            "port `{p}` on `{}` is already in use",
            s.bind
        ))
        .hint("choose another with `--port N`, or leave it out to take the first free one")
        .code(EXIT_USAGE)
        .into()),
        Some(p) => Ok(p),
        None => (s.port.saturating_add(1)..=s.port.saturating_add(100))
            .find(|p| *p != s.port && port_free(&s.bind, *p))
            .ok_or_else(|| {
                Fail::new(format!(
                    "no free port among the 100 after `{}` on `{}`",
                    s.port, s.bind
                ))
                .hint("choose one with `--port N`")
                .into()
            }),
    }
}

/// Serve the recovered (promoted, stopped) scratch cluster in its own container and
/// wait until it answers on `port`; the record to save (the caller saves it, then
/// drops the restore's record). On an error the caller's guard removes the copy.
pub async fn start(
    j: &Job<'_>,
    sc: &Scratch,
    port: u16,
    target: String,
) -> anyhow::Result<Recovered> {
    let (engine, s, p) = (j.engine, j.s, j.p);
    let cs = settings(sc, port);
    let conf = conf_dir(s);
    crate::fsutil::private_dir(&conf, 0o755)?;
    for (file, text) in crate::server::conf::config_texts(&cs)? {
        crate::fsutil::write_atomic(&conf.join(file), text.as_bytes(), 0o644)?;
    }
    let mut spec = spec::container_spec(&cs, j.tag, j.d);
    spec.name = name(s);
    spec.labels
        .insert(LABEL_PROJECT.to_string(), "-recovered".to_string());
    spec.labels
        .insert(LABEL_PORT.to_string(), format!("{}:{port}", s.bind));
    spec.env.push("PGBOX_SKIP_INIT_SCRIPTS=1".into());
    spec.mounts
        .retain(|m| m.target != "/etc/pgbox/initdb.d" && m.target != spec::WAL_ARCHIVE);
    for m in &mut spec.mounts {
        if m.target == spec::CONF_TARGET {
            m.source = MountSource::Bind(conf.clone());
        }
    }
    if let Some(c) = engine.inspect(&spec.name).await? {
        if !ours(s, &c.labels) {
            return Err(Fail::new(format!(
                "a container named `{}` already exists and is not this project's recovered copy",
                spec.name
            ))
            .hint("remove or rename it, or give this project another name")
            .into());
        }
    }
    if !port_free(&s.bind, port) {
        return Err(
            Fail::new(format!("port `{port}` on `{}` was taken meanwhile", s.bind))
                .hint("run it again; `--port N` chooses the port")
                .into(),
        );
    }
    crate::server::worker::start(engine, &spec, "the recovered copy", j.timeout, p).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match probe::ping(&cs.url_host(), port, Duration::from_secs(2)).await {
            Ping::Ready => break,
            other if Instant::now() > deadline => {
                return Err(Fail::new(format!(
                    "the recovered copy runs but does not answer on {}:{port}: {other:?}",
                    cs.url_host()
                ))
                .into())
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // Its WAL must never reach the project's archive: check, do not assume.
    let archiving = psql::sql(engine, &spec.name, &cs, "postgres", "show archive_mode").await?;
    if archiving.trim() != "off" {
        return Err(Fail::new(format!(
            "the recovered copy runs with `archive_mode = {}`, and its timeline must stay out of the project's archive",
            archiving.trim()
        ))
        .hint("a file under `conf_dir` may set `archive_mode`; the copy was removed")
        .into());
    }
    Ok(Recovered {
        container: spec.name,
        location: sc.location(),
        mode: sc.mode,
        port,
        target,
        created_at: Utc::now().to_rfc3339(),
    })
}

/// What to print once the copy runs: how to reach it and how to remove it.
pub fn report(s: &Settings, r: &Recovered, p: &Printer) {
    p.info(format!(
        "connect: host {}, port {}, user `{}`, database `{}`, with the project's password (`pgbox url --with-password` prints it)",
        s.url_host(),
        r.port,
        s.user,
        s.database
    ));
    p.info(format!(
        "the project's server is untouched; `pgbox restore --discard-new` removes the copy and its data ({})",
        where_(s, r)
    ));
    let mut cs = s.clone();
    cs.port = r.port;
    p.data(crate::connection::url(&cs, None));
}

fn where_(s: &Settings, r: &Recovered) -> String {
    Scratch::at(s, r.mode, &r.location).describe()
}

/// `pgbox restore --discard-new`. False when the user declined.
pub async fn discard(
    s: &Settings,
    yes: bool,
    engine: Option<&str>,
    p: &Printer,
) -> anyhow::Result<bool> {
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "restore")?;
    let Some(r) = Recovered::load(s)? else {
        p.info(format!(
            "`{}` has no recovered copy; nothing to discard",
            s.project
        ));
        return Ok(true);
    };
    let what = where_(s, &r);
    let ok = p.confirm(
        format!(
            "Remove the recovered copy `{}` (port {}, state at {}) and delete {what}?",
            r.container, r.port, r.target
        ),
        yes,
        format!("`--discard-new` deletes {what}"),
        "pass `--yes` to confirm without a terminal",
    )?;
    if !ok {
        p.info("nothing removed");
        return Ok(false);
    }
    let engine = Engine::connect(engine).await?;
    remove(&engine, s, &r).await?;
    p.done(format!(
        "removed the recovered copy `{}` and deleted {what}",
        r.container
    ));
    Ok(true)
}

/// A copy container no record names: left by an `--into-new` killed between the
/// copy's start and its record (a kill no guard saw). The lock is held.
pub async fn remove_unrecorded(engine: &Engine, s: &Settings) -> anyhow::Result<()> {
    if Recovered::load(s)?.is_none() {
        remove_if_ours(engine, s).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_another_free_one_and_one_copy_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Settings::resolve(&tmp.path().join("pgbox.toml"), &[]);
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.port = taken.local_addr().unwrap().port();
        let port = plan(&s, None).unwrap();
        assert!(port > s.port, "{port} after {}", s.port);
        assert!(plan(&s, Some(s.port)).is_err(), "the project's own port");
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(plan(&s, Some(busy.local_addr().unwrap().port())).is_err());
        Recovered {
            container: name(&s),
            location: "x".into(),
            mode: crate::config::StorageMode::Direct,
            port,
            target: "the newest archived WAL".into(),
            created_at: String::new(),
        }
        .save(&s)
        .unwrap();
        let err = plan(&s, None).unwrap_err().to_string();
        assert!(err.contains("already has a recovered copy"), "{err}");
    }
}
