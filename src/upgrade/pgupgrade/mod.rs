//! Methods `link`, `clone` and `copy`: PostgreSQL's own `pg_upgrade`, the fast path
//! for large clusters.
//!
//! pg_upgrade needs both majors' binaries in one place, so it runs in an image
//! built on the new major's pgbox image with the old major's
//! `/usr/lib/postgresql/<old>` and `/usr/share/postgresql/<old>` copied in, plus the
//! shared libraries those old binaries need and the new base lacks (ICU 72 on a
//! trixie base, for example). Those go to a private folder used through
//! `LD_LIBRARY_PATH` for pg_upgrade's run only, never by the server afterwards.
//!
//! It also needs both clusters on one file system and, for `--link` and
//! `--clone`, under one mount: link(2) fails across two bind mounts even of one
//! file system. So only direct storage is supported, and the folder holding both
//! data folders is mounted once. That folder (`.pgbox`) is private to the host
//! user; the postgres user inside gets `CAP_DAC_OVERRIDE` as an ambient capability
//! to traverse it, in this short-lived container only.
//!
//! The order: the image and the new cluster's initdb (with the old one's encoding,
//! locale and checksum setting) while the project's server still runs; then, with
//! it stopped, pg_upgrade in the chosen mode (its own consistency checks come first
//! and change nothing), and the new server on a private socket for
//! `update_extensions.sql` and the collation versions (`collations`). The planner
//! statistics (`vacuumdb --analyze-in-stages`, only the missing ones from 18) are
//! gathered once the new cluster is live, as that tool is meant to be used, so they
//! add nothing to the downtime.
//!
//! With `--link`, pg_upgrade's success is the point of no return: the old cluster
//! shares its files with the new one, so a later failure is [`PastNoReturn`] and
//! the new cluster goes live anyway.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{Settings, StorageMode};
use crate::engine::Engine;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

mod collations;
mod helper;
mod image;

use helper::{helper_spec, Helper};

use super::check::{self, Facts};
use super::job::{Job, PastNoReturn};
use super::options::Method;

/// Where the folder holding both data folders is mounted.
const ROOT: &str = "/pgbox-upgrade";
/// pg_upgrade's working folder and the servers' Unix socket folder.
const WORK: &str = "/tmp/pgbox-pgupgrade";

pub(super) fn dump_hint() -> &'static str {
    "use `--method dump` (the default): it moves the data with the new major's pg_dump and pg_restore and works with every storage mode"
}

/// Whether `method` can run with storage `mode`.
pub fn supported(method: Method, mode: StorageMode) -> Result<(), Fail> {
    let why = match mode {
        StorageMode::Direct | StorageMode::Auto => return Ok(()),
        StorageMode::Fallback => "fallback storage keeps the cluster inside the container and saves it as a tarball, so there is no data folder pg_upgrade could read or link",
        StorageMode::Volume => "volume storage keeps each cluster in its own engine volume, and pg_upgrade needs both clusters in one file system under one mount",
    };
    Err(Fail::new(format!(
        "`--method {}` (pg_upgrade) cannot run with {mode} storage: {why}",
        method.as_str()
    ))
    .hint(dump_hint())
    .code(EXIT_USAGE))
}

/// The folder both data folders are in, and each one's path inside the container.
fn layout(old: &Settings, new: &Settings) -> Result<(PathBuf, String, String), Fail> {
    let (o, n) = (&old.data_dir, &new.data_dir);
    let root = o
        .ancestors()
        .skip(1)
        .find(|a| n.starts_with(a))
        .filter(|a| a.parent().is_some())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Fail::new(format!(
                "the old data folder `{}` and the new one `{}` have no common parent folder to mount",
                o.display(),
                n.display()
            ))
            .hint(dump_hint())
            .code(EXIT_USAGE)
        })?;
    let inside = |p: &Path| {
        format!(
            "{ROOT}/{}",
            p.strip_prefix(&root).expect("under root").display()
        )
    };
    Ok((root.clone(), inside(o), inside(n)))
}

/// What can be checked while the old server still runs: the storage mode, one file
/// system for both clusters, one postgres UID, and the image with both majors.
pub async fn check(job: &Job<'_>) -> anyhow::Result<()> {
    let (old, new, method, p) = (&job.old, &job.new, job.method, job.p);
    supported(method, job.d_old.mode)?;
    if (job.d_old.uid, job.d_old.gid) != (job.d_new.uid, job.d_new.gid) {
        return Err(Fail::new(format!(
            "the old cluster's files belong to uid {}:{}, and the PostgreSQL {} image runs postgres as {}:{}; pg_upgrade needs one owner for both",
            job.d_old.uid, job.d_old.gid, new.pg_version, job.d_new.uid, job.d_new.gid
        ))
        .hint(dump_hint())
        .code(EXIT_USAGE)
        .into());
    }
    let (root, _, _) = layout(old, new)?;
    check::private_column_options(
        job.engine,
        &job.s.container_name(),
        job.s,
        &job.facts,
        job.new.pg_version,
    )
    .await
    .map_err(|e| e.hint(dump_hint()))?;
    if method != Method::Copy
        && crate::fsutil::device(&old.data_dir) != crate::fsutil::device(&new.data_dir)
    {
        return Err(Fail::new(format!(
            "`--method {}` needs the new cluster on the file system of the old one, and `{}` is on another",
            method.as_str(),
            new.data_dir.display()
        ))
        .hint("use `--method copy`, or `--method dump`")
        .code(EXIT_USAGE)
        .into());
    }
    let tag = image::ensure_image(job.engine, old, new, &job.old_tag, &job.new_tag, p).await?;
    p.info(format!(
        "pg_upgrade: image `{tag}` runs the PostgreSQL {} and {} binaries; `{}` is mounted once for `--{}`",
        old.pg_version,
        new.pg_version,
        root.display(),
        method.as_str()
    ));
    p.info(
        "pg_upgrade's own consistency checks need the old server stopped: they run first thing during the upgrade, \
         before any file is linked or copied, and a failure there leaves the old cluster as it was",
    );
    Ok(())
}

/// The new cluster's initdb arguments: the old one's encoding, locale and checksums.
fn initdb_args(f: &Facts, new_major: u32) -> Vec<String> {
    let mut v = vec![
        format!("--encoding={}", f.encoding),
        format!("--locale={}", f.collate),
        format!("--lc-collate={}", f.collate),
        format!("--lc-ctype={}", f.ctype),
    ];
    if f.checksums {
        v.push("--data-checksums".into());
    } else if new_major >= 18 {
        v.push("--no-data-checksums".into());
    }
    v
}

/// Before the project's server stops: the image, the helper container and the new
/// cluster's initdb. Returns the helper to [`run`] with.
pub async fn prepare<'a>(job: &Job<'a>) -> anyhow::Result<Helper<'a>> {
    let (old, new, p) = (&job.old, &job.new, job.p);
    let tag = image::ensure_image(job.engine, old, new, &job.old_tag, &job.new_tag, p).await?;
    let (root, old_dir, new_dir) = layout(old, new)?;
    let spec = helper_spec(old, new, &tag, &job.d_new, &root);
    crate::server::worker::start(
        job.engine,
        &spec,
        "the pg_upgrade container",
        job.timeout,
        p,
    )
    .await?;
    let h = Helper {
        engine: job.engine,
        name: spec.name.clone(),
        user: new.user.clone(),
        old_major: old.pg_version,
        old_dir,
        new_dir,
    };
    h.must(
        "preparing pg_upgrade's working folder",
        &["mkdir", "-p", WORK],
        Vec::new(),
    )
    .await?;
    let n = new.pg_version;
    let t = Instant::now();
    let bar = p.spinner(format!("creating the PostgreSQL {n} cluster (initdb)"));
    let mut initdb = vec![
        format!("/usr/lib/postgresql/{n}/bin/initdb"),
        format!("--pgdata={}", h.new_dir),
        format!("--username={}", new.user),
        "--auth-local=trust".into(),
        "--auth-host=scram-sha-256".into(),
        "--no-sync".into(),
    ];
    initdb.extend(initdb_args(&job.facts, n));
    let initdb: Vec<&str> = initdb.iter().map(String::as_str).collect();
    let r = h
        .must("initdb of the new cluster", &initdb, Vec::new())
        .await;
    bar.finish_and_clear();
    r?;
    p.detail(format!("initdb in {:.1}s", t.elapsed().as_secs_f64()));
    Ok(h)
}

/// With the project's server stopped: pg_upgrade, then the new server's extension
/// updates and collation versions (see the module docs). The helper goes either way.
pub async fn run(job: &Job<'_>, h: &Helper<'_>) -> anyhow::Result<()> {
    let r = steps(job, h).await;
    let _ = job.engine.remove_container(&h.name, true).await;
    r
}

async fn steps(job: &Job<'_>, h: &Helper<'_>) -> anyhow::Result<()> {
    let (o, n, p, method) = (job.old.pg_version, job.new.pg_version, job.p, job.method);
    let jobs = job.jobs.to_string();
    let old_bin = format!("/usr/lib/postgresql/{o}/bin");
    let new_bin = format!("/usr/lib/postgresql/{n}/bin");
    let pg_upgrade = format!("{new_bin}/pg_upgrade");
    let mode_flag = format!("--{}", method.as_str());
    let upgrade: Vec<&str> = vec![
        "sh",
        "-c",
        "cd \"$0\" && exec \"$@\"",
        WORK,
        &pg_upgrade,
        "-b",
        &old_bin,
        "-B",
        &new_bin,
        "-d",
        &h.old_dir,
        "-D",
        &h.new_dir,
        "-U",
        &job.new.user,
        "-s",
        WORK,
        "-j",
        &jobs,
        &mode_flag,
    ];
    let t = Instant::now();
    let bar = p.spinner(format!("pg_upgrade {mode_flag} from {o} to {n}"));
    let r = h
        .must(&format!("`pg_upgrade {mode_flag}`"), &upgrade, h.old_libs())
        .await;
    bar.finish_and_clear();
    let out = match r {
        Ok(out) => out,
        Err(e) => {
            // Its logs live in the new cluster's folder, which the undo removes.
            let script = format!(
                "for f in $(ls -t {}/pg_upgrade_output.d/*/log/*.log 2>/dev/null | head -n 2); do echo \"== $f\"; tail -n 15 \"$f\"; done",
                h.new_dir
            );
            let logs = match h.exec(&["sh", "-c", &script], Vec::new()).await {
                Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
                Err(_) => String::new(),
            };
            if method == Method::Link {
                restore_pg_control(h, &h.old_dir).await;
            }
            let e = if logs.is_empty() {
                e
            } else {
                e.context(format!(
                    "pg_upgrade's logs end with:\n  {}",
                    logs.replace('\n', "\n  ")
                ))
            };
            return Err(e.context(format!(
                "PostgreSQL {n}'s pg_upgrade refused or failed; the old cluster is as it was"
            )));
        }
    };
    p.done(format!(
        "pg_upgrade {mode_flag} done in {:.1}s ({} consistency checks passed first)",
        t.elapsed().as_secs_f64(),
        out.lines().filter(|l| l.trim_end().ends_with("ok")).count()
    ));
    let late = |e: anyhow::Error| -> anyhow::Error {
        if method == Method::Link {
            PastNoReturn(e).into()
        } else {
            e
        }
    };
    if method == Method::Link {
        p.warn(format!(
            "the PostgreSQL {o} cluster now shares its files with the {n} one, which starts next: the old cluster is unusable from here on; the automatic backup is the way back"
        ));
    }
    let bar = p.spinner(format!("starting PostgreSQL {n} on a private socket"));
    let opts = format!("-c listen_addresses='' -c unix_socket_directories={WORK}");
    let log = format!("{WORK}/server.log");
    let pg_ctl = format!("{new_bin}/pg_ctl");
    let r = h
        .must(
            "starting the new cluster",
            &[
                &pg_ctl, "-D", &h.new_dir, "-w", "-t", "300", "-l", &log, "-o", &opts, "start",
            ],
            Vec::new(),
        )
        .await;
    bar.finish_and_clear();
    r.map_err(late)?;
    let post = async {
        update_extensions(h, &job.new, p).await?;
        collations::collations(h, p).await
    }
    .await;
    let stopped = h
        .must(
            "stopping the new cluster",
            &[&pg_ctl, "-D", &h.new_dir, "-w", "-m", "fast", "stop"],
            Vec::new(),
        )
        .await;
    post.map_err(late)?;
    stopped.map_err(late)?;
    Ok(())
}

/// Once the new cluster is live (container `c`): the planner statistics, which
/// pg_upgrade does not carry over before 18 (from 18, only those it could not).
pub async fn statistics(engine: &Engine, c: &str, s: &Settings, p: &Printer) -> anyhow::Result<()> {
    let jobs = crate::backup::restore::jobs_default().to_string();
    let mut cmd = vec![
        "vacuumdb",
        "-U",
        &s.user,
        "--all",
        "-q",
        "-j",
        &jobs,
        "--analyze-in-stages",
    ];
    let what = if s.pg_version >= 18 {
        cmd.push("--missing-stats-only");
        "the statistics pg_upgrade does not carry over (vacuumdb --analyze-in-stages --missing-stats-only)"
    } else {
        "the planner statistics (vacuumdb --analyze-in-stages)"
    };
    let t = Instant::now();
    let bar = p.spinner(format!("gathering {what}"));
    let out = engine
        .exec_capture(c, &crate::container::psql::exec_spec(&cmd, "postgres"))
        .await;
    bar.finish_and_clear();
    let out = out?;
    if out.code != 0 {
        return Err(Fail::new(format!(
            "gathering {what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("the new cluster is live and correct, only slower until its statistics exist: run `pgbox psql -c 'ANALYZE'` in each database")
        .into());
    }
    p.done(format!(
        "gathered {what} in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// A failed `--link` run before the new cluster started: pg_upgrade renamed the old
/// cluster's pg_control to `pg_control.old`; renaming it back makes it usable again.
async fn restore_pg_control(h: &Helper<'_>, old_dir: &str) {
    let script = format!(
        "cd {old_dir}/global && if [ -f pg_control.old ] && [ ! -f pg_control ]; then mv pg_control.old pg_control; fi"
    );
    let _ = h.exec(&["sh", "-c", &script], Vec::new()).await;
}

/// `update_extensions.sql`, when pg_upgrade wrote one.
async fn update_extensions(h: &Helper<'_>, new: &Settings, p: &Printer) -> anyhow::Result<()> {
    let script = format!("{WORK}/update_extensions.sql");
    if h.exec(&["test", "-s", &script], Vec::new()).await?.code != 0 {
        p.detail("pg_upgrade wrote no update_extensions.sql: every extension is current");
        return Ok(());
    }
    let bar = p.spinner("updating extensions (update_extensions.sql)");
    let r = h
        .must(
            "update_extensions.sql",
            &[
                "psql",
                "--no-psqlrc",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                WORK,
                "-U",
                &new.user,
                "-d",
                "postgres",
                "-f",
                &script,
            ],
            Vec::new(),
        )
        .await;
    bar.finish_and_clear();
    r?;
    p.done("updated extensions to the versions PostgreSQL ships with the new major (update_extensions.sql)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_direct_storage_runs_pg_upgrade() {
        assert!(supported(Method::Link, StorageMode::Direct).is_ok());
        for mode in [StorageMode::Fallback, StorageMode::Volume] {
            let e = supported(Method::Copy, mode).unwrap_err();
            assert_eq!(e.code, EXIT_USAGE);
            assert!(e.hint.as_deref().unwrap_or("").contains("--method dump"));
        }
    }

    #[test]
    fn one_mount_holds_both_clusters() {
        let s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        let mut old = s.clone();
        old.data_dir = "/x/app/.pgbox/data".into();
        let mut new = s.clone();
        new.data_dir = "/x/app/.pgbox/data-pg17".into();
        let (root, o, n) = layout(&old, &new).unwrap();
        assert_eq!(root, Path::new("/x/app/.pgbox"));
        assert_eq!(o, "/pgbox-upgrade/data");
        assert_eq!(n, "/pgbox-upgrade/data-pg17");
    }

    #[test]
    fn the_new_cluster_matches_the_old_checksums() {
        let f = Facts {
            version: "15.14".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            provider: "c".into(),
            checksums: false,
            extensions: vec![],
            databases: vec![],
            bytes: 0,
        };
        assert!(initdb_args(&f, 18).contains(&"--no-data-checksums".to_string()));
        assert!(!initdb_args(&f, 17).iter().any(|a| a.contains("checksums")));
        let on = Facts {
            checksums: true,
            ..f
        };
        assert!(initdb_args(&on, 17).contains(&"--data-checksums".to_string()));
    }
}
