//! `pgbox restore --to-time | --to-lsn | --to-latest`: point-in-time recovery.
//!
//! Everything is checked before anything is built: `[backup] pitr` on, a base
//! backup, and a target inside the recoverable range (from the oldest base
//! backup's end to the newest archived segment), which a refusal prints. The
//! newest base backup finished before the target is unpacked, as the container's
//! postgres uid, into a scratch folder beside the data folder
//! (`.pgbox/data-pitr-<stamp>`), with `recovery.signal` and, in
//! `postgresql.auto.conf`, a `restore_command` reading the archive, the target,
//! `recovery_target_action = 'promote'` and `archive_mode = off` (a recovery that
//! fails after its promotion must not put a side timeline into the archive). A
//! helper container (no port, the archive mounted read-only) replays the WAL; once
//! `pg_is_in_recovery()` is false the recovery settings are reset with
//! `ALTER SYSTEM`, checked, and the server stopped cleanly. The new timeline's
//! history file is marked ready for the archiver, so the project's server
//! archives it once it runs on the recovered cluster.
//!
//! Until the swap the project's cluster is untouched (it keeps running while the
//! recovery replays): one guard removes the helper container and the scratch
//! folder on a failure or Ctrl-C. The swap stops the server, renames the data
//! folder to `.pgbox/data-before-pitr-<stamp>` (kept until the user deletes it),
//! renames the scratch folder into place and starts the server. The project lock
//! is held throughout. Direct storage only for now: volume and fallback modes are
//! refused with the reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{base, wal};
use crate::cancel::Guard;
use crate::config::{Settings, StorageMode};
use crate::container::{psql, spec};
use crate::engine::{ContainerSpec, Engine, MountSource, MountSpec, LABEL_PROJECT};
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::server::up::{up_locked, UpOptions};
use crate::state::Decision;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Time(DateTime<Utc>),
    Lsn(u64),
    Latest,
}

/// `pgbox restore --to-*`.
#[derive(Debug, Clone)]
pub struct PitrOptions {
    pub target: Target,
    pub yes: bool,
    /// How long the recovery (WAL replay) and the restart may take.
    pub timeout: Duration,
    pub engine: Option<String>,
}

/// The settings written for the recovery and reset after it.
const RECOVERY_SETTINGS: [&str; 5] = [
    "restore_command",
    "recovery_target_time",
    "recovery_target_lsn",
    "recovery_target_action",
    "archive_mode",
];

/// `--to-time`: `2026-11-27 14:02:00` (UTC), with optional fractions of a second,
/// a `T`, and a zone as `Z`, `UTC` or an offset (`+01:00`, `+0100`, `+01`).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, Fail> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    // `2026-11-27T14:02:00`: the date and the time joined by a `T`.
    let t2 = match t.get(10..11) {
        Some("T") | Some("t") => format!("{} {}", &t[..10], &t[11..]),
        _ => t.to_string(),
    };
    let bare = t2
        .strip_suffix(" UTC")
        .or_else(|| t2.strip_suffix("UTC"))
        .or_else(|| t2.strip_suffix('Z'))
        .unwrap_or(&t2)
        .trim();
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(bare, f) {
            return Ok(n.and_utc());
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f %:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(&t2, f) {
            return Ok(d.with_timezone(&Utc));
        }
    }
    Err(Fail::new(format!("`{text}` is not a time pgbox reads"))
        .hint("write `2026-11-27 14:02:00` (UTC), or add an offset: `2026-11-27 14:02:00+01:00`")
        .code(EXIT_USAGE))
}

/// `--to-lsn`: `0/3000060`.
pub fn parse_lsn(text: &str) -> Result<u64, Fail> {
    wal::parse_lsn(text.trim()).ok_or_else(|| {
        Fail::new(format!("`{text}` is not an LSN"))
            .hint(
                "write it as PostgreSQL shows it, e.g. `0/3000060` (`select pg_current_wal_lsn()`)",
            )
            .code(EXIT_USAGE)
    })
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn lsn_text(l: u64) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xFFFF_FFFF)
}

fn describe(t: &Target) -> String {
    match t {
        Target::Time(t) => t.format("%Y-%m-%d %H:%M:%S%.f UTC").to_string(),
        Target::Lsn(l) => format!("LSN {}", lsn_text(*l)),
        Target::Latest => "the newest archived WAL".to_string(),
    }
}

/// The base backup to start from, or the refusal naming the recoverable range.
fn pick<'a>(
    s: &Settings,
    bases: &'a [(PathBuf, base::BaseMeta)],
    archive: &wal::Archive,
    target: &Target,
) -> Result<&'a (PathBuf, base::BaseMeta), Fail> {
    let oldest = &bases[0].1;
    let newest_seg = archive.newest_mtime.map(DateTime::<Utc>::from);
    let to = newest_seg.map(|t| t.max(bases[bases.len() - 1].1.finished_at));
    let range = format!(
        "`{}` can be recovered from {} to {}",
        s.project,
        stamp(oldest.finished_at),
        to.map(stamp)
            .unwrap_or_else(|| "the end of the newest base backup".into())
    );
    let outside = |why: String| {
        Fail::new(format!("{why}; {range}"))
            .hint("choose a target inside that range; `pgbox backup verify --pitr` checks the archive")
            .code(EXIT_USAGE)
    };
    let chosen = match target {
        Target::Time(t) => {
            if *t < oldest.finished_at {
                return Err(outside(format!(
                    "{} is before the oldest base backup ended",
                    stamp(*t)
                )));
            }
            if to.is_none_or(|to| *t > to) {
                return Err(outside(format!(
                    "{} is after the newest archived WAL segment",
                    stamp(*t)
                )));
            }
            bases.iter().rev().find(|(_, m)| m.finished_at <= *t)
        }
        Target::Lsn(l) => {
            let ends = |m: &base::BaseMeta| wal::parse_lsn(&m.end_lsn).unwrap_or(u64::MAX);
            if *l < ends(oldest) {
                return Err(outside(format!(
                    "LSN {} is before the oldest base backup ended ({})",
                    lsn_text(*l),
                    oldest.end_lsn
                )));
            }
            let seg = oldest.wal_segment_size;
            let newest = archive
                .segments
                .values()
                .filter_map(|set| set.iter().next_back())
                .max()
                .copied();
            if newest.is_none_or(|n| wal::segno(*l, seg) > n) {
                return Err(outside(format!(
                    "LSN {} is after the newest archived WAL segment",
                    lsn_text(*l)
                )));
            }
            bases.iter().rev().find(|(_, m)| ends(m) <= *l)
        }
        Target::Latest => bases.last(),
    };
    chosen.ok_or_else(|| outside("no base backup ended before the target".into()))
}

/// Refuse what this cannot do before anything is touched.
fn refuse_storage(s: &Settings, mode: StorageMode) -> Result<(), Fail> {
    match mode {
        StorageMode::Direct => Ok(()),
        other => Err(Fail::new(format!(
            "point-in-time restore works only with direct storage for now; `{}` uses {other} storage",
            s.project
        ))
        .hint("restore a dump with `pgbox restore FILE`, or use `mode = \"direct\"` under `[storage]`")),
    }
}

/// `pgbox restore --to-*` (see the module docs). False when the user declined.
pub async fn run(o: &PitrOptions, s: &Settings, p: &Printer) -> anyhow::Result<bool> {
    let started = Instant::now();
    base::refuse_without_pitr(s)?;
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "restore")?;
    if let Some(up) = crate::state::Upgrade::load(s)? {
        return Err(Fail::new(format!(
            "`{}` is in the middle of the upgrade {} → {}",
            s.project, up.old.major, up.new.major
        ))
        .hint("end the upgrade first: `pgbox upgrade --finalize` or `pgbox upgrade --rollback`")
        .code(EXIT_USAGE)
        .into());
    }
    let bases = base::list(s)?;
    if bases.is_empty() {
        return Err(Fail::new(format!(
            "`{}` has no base backup in `{}`: there is nothing to recover from",
            s.project,
            base::base_dir(s).display()
        ))
        .hint("take one with `pgbox backup --base`; recovery can reach any time after it")
        .into());
    }
    let seg = bases[bases.len() - 1].1.wal_segment_size;
    let archive = {
        let dir = s.wal_archive_dir();
        tokio::task::spawn_blocking(move || wal::scan(&dir, seg)).await??
    };
    let (from, meta) = pick(s, &bases, &archive, &o.target)?;
    if let Some(mode) = crate::storage::in_effect(s)?.decision.map(|d| d.mode) {
        refuse_storage(s, mode)?;
    }
    let label = from
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.info(format!(
        "recovering `{}` to {} from base backup `{label}` (ended {})",
        s.project,
        describe(&o.target),
        stamp(meta.finished_at)
    ));
    let ok = p.confirm(
        format!(
            "Replace the data of `{}` with its state at {}? The current data folder is kept aside",
            s.project,
            describe(&o.target)
        ),
        o.yes,
        "a point-in-time restore replaces the project's data",
        "pass `--yes` to confirm without a terminal",
    )?;
    if !ok {
        p.info("nothing changed");
        return Ok(false);
    }

    let engine = Engine::connect(o.engine.as_deref()).await?;
    let tag = crate::container::image::ensure_image(&engine, s, p, false).await?;
    let d = crate::storage::decision(&engine, s, &tag).await?;
    refuse_storage(s, d.mode)?;

    let now = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let parent = s
        .data_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let scratch = parent.join(format!("data-pitr-{now}"));
    let aside = parent.join(format!("data-before-pitr-{now}"));
    let helper = helper_name(s);
    let mut scratch_s = s.clone();
    scratch_s.data_dir = scratch.clone();

    // What an earlier, killed restore left: we hold the lock, so it is stale.
    remove_helper(&engine, &helper).await;
    let guard = {
        let (engine, helper, ss, tag) = (
            engine.clone(),
            helper.clone(),
            scratch_s.clone(),
            tag.clone(),
        );
        Guard::future(
            format!("the unfinished recovery in `{}`", scratch.display()),
            async move {
                remove_helper(&engine, &helper).await;
                let quiet = crate::upgrade::options::quiet_printer();
                let _ = crate::server::down::delete_data(
                    &engine,
                    &ss,
                    StorageMode::Direct,
                    Some(tag),
                    &quiet,
                )
                .await;
            },
        )
    };
    let built = build(
        &engine, s, &scratch_s, &tag, &d, from, &o.target, o.timeout, p,
    )
    .await;
    if let Err(e) = built {
        guard.undo().await;
        return Err(e.context(format!(
            "the point-in-time restore of `{}` failed and was undone; its data was not touched",
            s.project
        )));
    }

    // The swap: from here the recovered cluster is the project's.
    if let Err(e) = crate::upgrade::build::stop_live(&engine, s, d.mode, p).await {
        guard.undo().await;
        let _ = up_locked(&engine, s, up_options(o), p).await;
        return Err(e.context("stopping the server for the swap failed; the data was not changed"));
    }
    if let Err(e) = std::fs::rename(&s.data_dir, &aside) {
        guard.undo().await;
        let _ = up_locked(&engine, s, up_options(o), p).await;
        return Err(Fail::new(format!(
            "cannot move `{}` aside to `{}`: {e}",
            s.data_dir.display(),
            aside.display()
        ))
        .hint("the data was not changed and the server was started again")
        .into());
    }
    if let Err(e) = std::fs::rename(&scratch, &s.data_dir) {
        let back = std::fs::rename(&aside, &s.data_dir);
        guard.undo().await;
        let _ = up_locked(&engine, s, up_options(o), p).await;
        return Err(Fail::new(format!(
            "cannot move the recovered cluster into `{}`: {e}",
            s.data_dir.display()
        ))
        .hint(match back {
            Ok(()) => "the data was not changed and the server was started again".to_string(),
            Err(b) => format!(
                "moving the data back failed too ({b}): rename `{}` to `{}` yourself",
                aside.display(),
                s.data_dir.display()
            ),
        })
        .into());
    }
    guard.disarm();
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    p.done(format!(
        "recovered `{}` to {} in {:.1}s; the data before it is kept in `{}` (owned by the container's postgres uid; delete it when you no longer need it)",
        s.project,
        describe(&o.target),
        started.elapsed().as_secs_f64(),
        aside.display()
    ));
    up_locked(&engine, s, up_options(o), p).await?;
    Ok(true)
}

fn up_options(o: &PitrOptions) -> UpOptions {
    UpOptions {
        timeout: o.timeout,
        dry_run: false,
    }
}

fn helper_name(s: &Settings) -> String {
    spec::worker_name(s, "pitr")
}

async fn remove_helper(engine: &Engine, name: &str) {
    if let Ok(Some(_)) = engine.inspect(name).await {
        let _ = engine.remove_container(name, true).await;
    }
}

/// The `postgresql.auto.conf` lines of the recovery.
fn recovery_conf(target: &Target) -> String {
    let mut c = format!(
        "\n# pgbox restore: point-in-time recovery (reset once recovered)\n\
         restore_command = 'zstd -q -dc {}/%f.zst > %p'\n\
         recovery_target_action = 'promote'\n\
         archive_mode = 'off'\n",
        spec::WAL_ARCHIVE
    );
    match target {
        Target::Time(t) => c.push_str(&format!(
            "recovery_target_time = '{}'\n",
            t.format("%Y-%m-%d %H:%M:%S%.6f+00")
        )),
        Target::Lsn(l) => c.push_str(&format!("recovery_target_lsn = '{}'\n", lsn_text(*l))),
        Target::Latest => {}
    }
    c
}

/// Unpack, recover, promote, reset and stop the scratch cluster.
#[allow(clippy::too_many_arguments)]
async fn build(
    engine: &Engine,
    s: &Settings,
    ss: &Settings,
    tag: &str,
    d: &Decision,
    from: &Path,
    target: &Target,
    timeout: Duration,
    p: &Printer,
) -> anyhow::Result<()> {
    crate::storage::direct::prepare_direct(&ss.data_dir, d.uid, d.gid)?;
    unpack(engine, s, ss, tag, d, from, target, p).await?;

    let helper = helper_name(s);
    let mut spec = spec::container_spec(ss, tag, d);
    spec.name = helper.clone();
    spec.port = None;
    spec.service = false;
    spec.healthcheck.clear();
    spec.labels
        .insert(LABEL_PROJECT.to_string(), "-pitr".to_string());
    spec.env.push("PGBOX_SKIP_INIT_SCRIPTS=1".into());
    spec.mounts.retain(|m| m.target != "/etc/pgbox/initdb.d");
    for m in &mut spec.mounts {
        if m.target == spec::WAL_ARCHIVE {
            m.read_only = true;
        }
    }
    let mut attempt = recover(engine, s, &spec, timeout, p).await;
    if attempt.is_err()
        && matches!(target, Target::Time(_))
        && target_not_reached(engine, &helper).await
    {
        // No commit after the target is in the archive, so nothing tells recovery it
        // passed the target: the state at the target is the newest archived one.
        p.info(format!(
            "the archive holds no commit after {}: recovering to the newest archived WAL, which is the state at that time",
            describe(target)
        ));
        drop_time_target(engine, ss, tag, d).await?;
        attempt = recover(engine, s, &spec, timeout, p).await;
    }
    attempt?;
    let tli = psql::sql(
        engine,
        &helper,
        s,
        "postgres",
        "select timeline_id from pg_control_checkpoint()",
    )
    .await
    .unwrap_or_default();
    let reset: String = RECOVERY_SETTINGS
        .iter()
        .map(|n| format!("ALTER SYSTEM RESET {n};\n"))
        .collect();
    psql::sql(engine, &helper, s, "postgres", &reset).await?;
    let names = RECOVERY_SETTINGS
        .iter()
        .map(|n| psql::lit(n))
        .collect::<Vec<_>>()
        .join(", ");
    let left = psql::sql(
        engine,
        &helper,
        s,
        "postgres",
        &format!(
            "select string_agg(name, ', ') from pg_file_settings \
             where sourcefile like '%postgresql.auto.conf' and name in ({names})"
        ),
    )
    .await?;
    if !left.is_empty() {
        return Err(Fail::new(format!(
            "the recovered cluster still has recovery settings in postgresql.auto.conf: {left}"
        ))
        .into());
    }
    crate::upgrade::workers::stop_cleanly(engine, &helper, StorageMode::Direct).await?;
    engine.remove_container(&helper, true).await?;
    if let Ok(n) = tli.trim().parse::<u32>() {
        mark_history_ready(engine, ss, tag, d, n).await?;
    }
    p.done(format!(
        "recovered and promoted the scratch cluster (timeline {})",
        tli.trim()
    ));
    Ok(())
}

/// Start the helper on the scratch cluster and wait until it is promoted.
async fn recover(
    engine: &Engine,
    s: &Settings,
    spec: &ContainerSpec,
    timeout: Duration,
    p: &Printer,
) -> anyhow::Result<()> {
    crate::upgrade::workers::start(
        engine,
        spec,
        "the recovering cluster (replaying archived WAL)",
        timeout,
        p,
    )
    .await?;
    let bar = p.spinner("replaying archived WAL until the target");
    let waited = wait_promoted(engine, s, &spec.name, timeout).await;
    bar.finish_and_clear();
    waited
}

/// PostgreSQL (13 and later) stops with this when the WAL ends before a record
/// past the target: for a time target, no commit after it was archived.
async fn target_not_reached(engine: &Engine, helper: &str) -> bool {
    engine.log_lines(helper, 200).await.is_ok_and(|lines| {
        lines
            .iter()
            .any(|l| l.contains("recovery ended before configured recovery target was reached"))
    })
}

/// The time target removed from the scratch cluster's `postgresql.auto.conf`
/// (it is still in recovery: `recovery.signal` stays until the promotion).
async fn drop_time_target(
    engine: &Engine,
    ss: &Settings,
    tag: &str,
    d: &Decision,
) -> anyhow::Result<()> {
    let script = "set -e; f=/target/postgresql.auto.conf; grep -v '^recovery_target_time = ' \"$f\" > \"$f.pgbox\" || true; mv \"$f.pgbox\" \"$f\"; sync \"$f\"";
    let mut spec = oneshot(ss, "pitr-retarget", tag, d, script);
    spec.mounts = vec![MountSpec {
        source: MountSource::Bind(ss.data_dir.clone()),
        target: "/target".into(),
        read_only: false,
    }];
    let r = engine.run_to_completion(&spec).await;
    let _ = engine.remove_container(&spec.name, true).await;
    let (code, lines) = r?;
    if code != 0 {
        return Err(Fail::new(format!(
            "removing the time target from the scratch cluster failed: {}",
            lines.join("\n")
        ))
        .into());
    }
    Ok(())
}

/// Poll `pg_is_in_recovery()` until it is false; fail when the server stops.
async fn wait_promoted(
    engine: &Engine,
    s: &Settings,
    helper: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match psql::sql(engine, helper, s, "postgres", "select pg_is_in_recovery()").await {
            Ok(v) if v == "f" => return Ok(()),
            _ => {}
        }
        let running = engine
            .inspect(helper)
            .await?
            .map(|c| c.running)
            .unwrap_or(false);
        if !running {
            return Err(Fail::new(
                "the recovering server stopped before it reached the target (see its log above, or the archive may lack WAL)",
            )
            .hint("`pgbox backup verify --pitr` checks the archive; a time target needs a commit after it in the archived WAL")
            .into());
        }
        if Instant::now() > deadline {
            return Err(Fail::new(format!(
                "the recovery did not finish within {}s",
                timeout.as_secs()
            ))
            .hint("`--timeout SECONDS` waits longer")
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn oneshot(s: &Settings, role: &str, tag: &str, d: &Decision, script: &str) -> ContainerSpec {
    let mut spec = ContainerSpec::oneshot(format!("{}-{role}", s.container_name()), tag.into());
    spec.entrypoint = Some(vec!["sh".into(), "-c".into(), script.into()]);
    spec.user = Some(format!("{}:{}", d.uid, d.gid));
    spec
}

/// Extract the base backup into the scratch folder as the postgres uid and write
/// the recovery settings.
#[allow(clippy::too_many_arguments)]
async fn unpack(
    engine: &Engine,
    s: &Settings,
    ss: &Settings,
    tag: &str,
    d: &Decision,
    from: &Path,
    target: &Target,
    p: &Printer,
) -> anyhow::Result<()> {
    let conf = recovery_conf(target);
    // The settings go through the environment of a one-off container: no secret.
    let script = format!(
        "set -e; zstd -q -dc /base/{} | tar -xf - -C /target; \
         rm -f /target/postmaster.pid /target/postmaster.opts; \
         mkdir -p /target/pg_wal/archive_status; chmod 700 /target/pg_wal /target/pg_wal/archive_status; \
         : > /target/recovery.signal; printf '%s' \"$PGBOX_RECOVERY_CONF\" >> /target/postgresql.auto.conf; \
         sync /target/postgresql.auto.conf",
        base::TAR
    );
    let mut spec = oneshot(s, "pitr-unpack", tag, d, &script);
    spec.env.push(format!("PGBOX_RECOVERY_CONF={conf}"));
    spec.mounts = vec![
        MountSpec {
            source: MountSource::Bind(ss.data_dir.clone()),
            target: "/target".into(),
            read_only: false,
        },
        MountSpec {
            source: MountSource::Bind(from.to_path_buf()),
            target: "/base".into(),
            read_only: true,
        },
    ];
    let bar = p.spinner("unpacking the base backup");
    let r = engine.run_to_completion(&spec).await;
    let _ = engine.remove_container(&spec.name, true).await;
    bar.finish_and_clear();
    let (code, lines) = r?;
    if code != 0 {
        return Err(Fail::new(format!(
            "unpacking the base backup `{}` failed (exit {code}): {}",
            from.display(),
            lines.join("\n")
        ))
        .into());
    }
    Ok(())
}

/// The new timeline's history file, written while `archive_mode` was off, marked
/// ready so the project's server archives it: a later recovery follows the switch.
/// (PostgreSQL 15 was seen archiving it without the mark too, through its own
/// check for missing status files; the mark does not depend on that.)
async fn mark_history_ready(
    engine: &Engine,
    ss: &Settings,
    tag: &str,
    d: &Decision,
    tli: u32,
) -> anyhow::Result<()> {
    if tli <= 1 {
        return Ok(());
    }
    let h = format!("{tli:08X}.history");
    let script = format!(
        "if [ -f /target/pg_wal/{h} ]; then : > /target/pg_wal/archive_status/{h}.ready; fi"
    );
    let mut spec = oneshot(ss, "pitr-history", tag, d, &script);
    spec.mounts = vec![MountSpec {
        source: MountSource::Bind(ss.data_dir.clone()),
        target: "/target".into(),
        read_only: false,
    }];
    let r = engine.run_to_completion(&spec).await;
    let _ = engine.remove_container(&spec.name, true).await;
    let (code, lines) = r?;
    if code != 0 {
        return Err(Fail::new(format!(
            "marking the history file of timeline {tli} for the archive failed: {}",
            lines.join("\n")
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_unless_a_zone_is_given() {
        let t = |s: &str| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(t("2026-11-27 14:02:00"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27T14:02:00Z"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27 14:02:00 UTC"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27 15:02:00+01:00"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27 15:02:00+01"), "2026-11-27T14:02:00+00:00");
        assert_eq!(
            t("2026-11-27 14:02:00.250"),
            "2026-11-27T14:02:00.250+00:00"
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn recovery_conf_names_the_target() {
        let c = recovery_conf(&Target::Lsn(0x3000060));
        assert!(c.contains("recovery_target_lsn = '0/3000060'"), "{c}");
        assert!(c.contains("archive_mode = 'off'"), "{c}");
        let l = recovery_conf(&Target::Latest);
        assert!(!l.contains("recovery_target_time"), "{l}");
        assert!(l.contains("restore_command = 'zstd -q -dc /var/lib/pgbox/wal/%f.zst > %p'"));
    }
}
