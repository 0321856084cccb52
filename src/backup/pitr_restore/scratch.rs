//! The scratch cluster of a point-in-time restore: its location beside the
//! project's (a folder in direct mode, a volume in volume mode), the base backup
//! unpacked into it with the recovery settings, the replay in a helper container,
//! the promotion, and the check that no recovery setting is left.
//!
//! The recovery settings go into `postgresql.auto.conf`: a `restore_command`
//! reading the archive, the target, `recovery_target_action = 'promote'` and
//! `archive_mode = off` (a recovery that fails after its promotion must not put a
//! side timeline into the archive). Once `pg_is_in_recovery()` is false they are
//! reset with `ALTER SYSTEM`, checked, and the server stopped cleanly. The new
//! timeline's history file is marked ready for the archiver, so the project's
//! server archives it once it runs on the recovered cluster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::target::{describe, lsn_text, Target};
use crate::backup::base;
use crate::config::{Settings, StorageMode};
use crate::container::{psql, spec};
use crate::engine::{ContainerSpec, Engine, MountSource, MountSpec, LABEL_PROJECT};
use crate::error::Fail;
use crate::printer::Printer;
use crate::state::Decision;

/// The settings written for the recovery and reset after it.
const RECOVERY_SETTINGS: [&str; 5] = [
    "restore_command",
    "recovery_target_time",
    "recovery_target_lsn",
    "recovery_target_action",
    "archive_mode",
];

/// A scratch location: `s` is the project's settings pointing at it.
#[derive(Debug, Clone)]
pub struct Scratch {
    pub s: Settings,
    pub mode: StorageMode,
}

/// `<volume>-pitr-<stamp>`, replacing an earlier restore's suffix.
pub fn volume_name(current: &str, stamp: &str) -> String {
    let stem = match current.rsplit_once("-pitr-") {
        Some((stem, tail)) if tail.ends_with('Z') && tail.contains('T') => stem,
        _ => current,
    };
    format!("{stem}-pitr-{stamp}")
}

impl Scratch {
    /// A new scratch location for the restore started at `stamp`.
    pub fn new(s: &Settings, mode: StorageMode, stamp: &str) -> Scratch {
        let mut ss = s.clone();
        match mode {
            StorageMode::Volume => ss.volume = volume_name(&s.volume, stamp),
            _ => ss.data_dir = s.data_dir.with_file_name(format!("data-pitr-{stamp}")),
        }
        Scratch { s: ss, mode }
    }

    /// The scratch location a record names.
    pub fn at(s: &Settings, mode: StorageMode, location: &str) -> Scratch {
        let mut ss = s.clone();
        match mode {
            StorageMode::Volume => ss.volume = location.to_string(),
            _ => ss.data_dir = location.into(),
        }
        Scratch { s: ss, mode }
    }

    /// The folder or the volume name, as recorded.
    pub fn location(&self) -> String {
        match self.mode {
            StorageMode::Volume => self.s.volume.clone(),
            _ => self.s.data_dir.display().to_string(),
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        crate::storage::location(&self.s, self.mode)
    }

    fn mount(&self, target: &str) -> MountSpec {
        MountSpec {
            source: match self.mode {
                StorageMode::Volume => MountSource::Volume(self.s.volume.clone()),
                _ => MountSource::Bind(self.s.data_dir.clone()),
            },
            target: target.into(),
            read_only: false,
        }
    }

    pub async fn exists(&self, engine: &Engine) -> anyhow::Result<bool> {
        crate::storage::location_exists(engine, &self.s, self.mode).await
    }

    /// Delete the scratch location and everything in it.
    pub async fn remove(&self, engine: &Engine, tag: Option<String>) -> anyhow::Result<()> {
        if !self.exists(engine).await? {
            return Ok(());
        }
        let quiet = Printer::quiet();
        crate::storage::delete_data(engine, &self.s, self.mode, tag, &quiet).await
    }
}

pub fn helper_name(s: &Settings) -> String {
    spec::worker_name(s, "pitr")
}

pub async fn remove_helper(engine: &Engine, name: &str) {
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

/// What the restore works with: the engine, the project, its image and storage.
pub struct Job<'a> {
    pub engine: &'a Engine,
    pub s: &'a Settings,
    pub tag: &'a str,
    pub d: &'a Decision,
    pub timeout: Duration,
    /// The WAL archive recovery reads (the project's, or a staged copy).
    pub archive: PathBuf,
    pub p: &'a Printer,
}

/// Unpack, recover, promote, reset and stop the scratch cluster; its timeline.
pub async fn build(j: &Job<'_>, sc: &Scratch, from: &Path, target: &Target) -> anyhow::Result<u32> {
    let (engine, s, p) = (j.engine, j.s, j.p);
    crate::storage::prepare(engine, &sc.s, j.d).await?;
    unpack(j, sc, from, target).await?;

    let helper = helper_name(s);
    let mut spec = spec::container_spec(&sc.s, j.tag, j.d);
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
            m.source = MountSource::Bind(j.archive.clone());
            m.read_only = true;
        }
    }
    let mut attempt = recover(j, &spec).await;
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
        run_on(
            j,
            sc,
            "pitr-retarget",
            "set -e; f=/target/postgresql.auto.conf; grep -v '^recovery_target_time = ' \"$f\" > \"$f.pgbox\" || true; mv \"$f.pgbox\" \"$f\"; sync \"$f\"",
            "removing the time target from the scratch cluster",
        )
        .await?;
        attempt = recover(j, &spec).await;
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
    crate::server::worker::stop_cleanly(engine, &helper, sc.mode).await?;
    engine.remove_container(&helper, true).await?;
    let tli: u32 = tli.trim().parse().unwrap_or(0);
    if tli > 1 {
        // Written while `archive_mode` was off: marked ready so the project's server
        // archives it and a later recovery follows the switch. (PostgreSQL 15 was
        // seen archiving it without the mark too; the mark does not depend on that.)
        let h = format!("{tli:08X}.history");
        run_on(
            j,
            sc,
            "pitr-history",
            &format!("if [ -f /target/pg_wal/{h} ]; then : > /target/pg_wal/archive_status/{h}.ready; fi"),
            &format!("marking the history file of timeline {tli} for the archive"),
        )
        .await?;
    }
    p.done(format!(
        "recovered and promoted the scratch cluster (timeline {tli})"
    ));
    Ok(tli)
}

/// Start the helper on the scratch cluster and wait until it is promoted.
async fn recover(j: &Job<'_>, spec: &ContainerSpec) -> anyhow::Result<()> {
    crate::server::worker::start(
        j.engine,
        spec,
        "the recovering cluster (replaying archived WAL)",
        j.timeout,
        j.p,
    )
    .await?;
    let bar = j.p.spinner("replaying archived WAL until the target");
    let waited = wait_promoted(j.engine, j.s, &spec.name, j.timeout).await;
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

/// A one-off container running `script` as `user`, the scratch location at `/target`.
fn one_off(j: &Job<'_>, sc: &Scratch, role: &str, user: String, script: &str) -> ContainerSpec {
    let mut spec = ContainerSpec::oneshot(
        format!("{}-{role}", j.s.container_name()),
        j.tag.to_string(),
    );
    spec.entrypoint = Some(vec!["sh".into(), "-c".into(), script.into()]);
    spec.user = Some(user);
    spec.mounts = vec![sc.mount("/target")];
    spec
}

/// Run a one-off container to its end and remove it; `what` names it in the error.
async fn run_spec(j: &Job<'_>, spec: &ContainerSpec, what: &str) -> anyhow::Result<()> {
    let r = j.engine.run_to_completion(spec).await;
    let _ = j.engine.remove_container(&spec.name, true).await;
    let (code, lines) = r?;
    if code != 0 {
        return Err(Fail::new(format!("{what} failed (exit {code}): {}", lines.join("\n"))).into());
    }
    Ok(())
}

/// `script` run on the scratch location as the container's postgres uid.
async fn run_on(
    j: &Job<'_>,
    sc: &Scratch,
    role: &str,
    script: &str,
    what: &str,
) -> anyhow::Result<()> {
    let user = format!("{}:{}", j.d.uid, j.d.gid);
    run_spec(j, &one_off(j, sc, role, user, script), what).await
}

/// Extract the base backup into the scratch location and write the recovery
/// settings. As root, then everything handed to the postgres uid: a new volume's
/// root belongs to root.
async fn unpack(j: &Job<'_>, sc: &Scratch, from: &Path, target: &Target) -> anyhow::Result<()> {
    let script = format!(
        "set -e; zstd -q -dc /base/{} | tar -xf - -C /target; \
         rm -f /target/postmaster.pid /target/postmaster.opts; \
         mkdir -p /target/pg_wal/archive_status; \
         : > /target/recovery.signal; printf '%s' \"$PGBOX_RECOVERY_CONF\" >> /target/postgresql.auto.conf; \
         chown -R {}:{} /target; chmod 700 /target /target/pg_wal /target/pg_wal/archive_status; \
         sync -f /target",
        base::TAR,
        j.d.uid,
        j.d.gid
    );
    let mut spec = one_off(j, sc, "pitr-unpack", "0:0".into(), &script);
    // The settings go through the environment of a one-off container: no secret.
    spec.env = vec![format!("PGBOX_RECOVERY_CONF={}", recovery_conf(target))];
    spec.mounts.push(MountSpec {
        source: MountSource::Bind(from.to_path_buf()),
        target: "/base".into(),
        read_only: true,
    });
    let bar = j.p.spinner("unpacking the base backup");
    let r = run_spec(
        j,
        &spec,
        &format!("unpacking the base backup `{}`", from.display()),
    )
    .await;
    bar.finish_and_clear();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_conf_names_the_target() {
        let c = recovery_conf(&Target::Lsn(0x3000060));
        assert!(c.contains("recovery_target_lsn = '0/3000060'"), "{c}");
        assert!(c.contains("archive_mode = 'off'"), "{c}");
        let l = recovery_conf(&Target::Latest);
        assert!(!l.contains("recovery_target_time"), "{l}");
        assert!(l.contains("restore_command = 'zstd -q -dc /var/lib/pgbox/wal/%f.zst > %p'"));
    }

    #[test]
    fn scratch_volumes_do_not_pile_up_suffixes() {
        assert_eq!(
            volume_name("pgbox-app-data", "20261128T010203Z"),
            "pgbox-app-data-pitr-20261128T010203Z"
        );
        assert_eq!(
            volume_name("pgbox-app-data-pitr-20261128T010203Z", "20261129T000000Z"),
            "pgbox-app-data-pitr-20261129T000000Z"
        );
        assert_eq!(volume_name("my-pitr-db", "X"), "my-pitr-db-pitr-X");
    }
}
