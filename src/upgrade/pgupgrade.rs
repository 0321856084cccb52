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
//! The order, all while the project's own server is stopped: initdb of the new
//! cluster with the old one's encoding, locale and checksum setting,
//! `pg_upgrade --check`, pg_upgrade in the chosen mode, then the new server started
//! on a private socket for `update_extensions.sql`, the statistics (`vacuumdb
//! --analyze-in-stages` before 18, only the missing ones from 18) and the collation
//! versions: indexes that depend on a collation whose version changed, or that
//! pg_upgrade cannot track (ICU and libc collations of the new catalog), are
//! rebuilt and the recorded versions refreshed, and the report says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::{Settings, StorageMode};
use crate::container::psql::{ident, lit};
use crate::container::spec;
use crate::engine::{ContainerSpec, Engine, ExecOutput, ExecSpec, MountSource, MountSpec};
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::state::{Decision, Upgrade, UpgradePhase};
use crate::templates::{ContextFile, ImageContext};

use super::check::Facts;
use super::{workers, Method};

/// Where the folder holding both data folders is mounted.
const ROOT: &str = "/pgbox-upgrade";
/// pg_upgrade's working folder and the servers' Unix socket folder.
const WORK: &str = "/tmp/pgbox-pgupgrade";

fn dump_hint() -> &'static str {
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

fn device(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    p.ancestors()
        .find(|a| a.exists())
        .and_then(|a| std::fs::metadata(a).ok())
        .map(|m| m.dev())
}

/// What can be checked while the old server still runs: the storage mode, one file
/// system for both clusters, one postgres UID, and the image with both majors.
#[allow(clippy::too_many_arguments)]
pub async fn check(
    engine: &Engine,
    old: &Settings,
    new: &Settings,
    old_tag: &str,
    new_tag: &str,
    d_old: &Decision,
    d_new: &Decision,
    method: Method,
    p: &Printer,
) -> anyhow::Result<()> {
    supported(method, d_old.mode)?;
    if (d_old.uid, d_old.gid) != (d_new.uid, d_new.gid) {
        return Err(Fail::new(format!(
            "the old cluster's files belong to uid {}:{}, and the PostgreSQL {} image runs postgres as {}:{}; pg_upgrade needs one owner for both",
            d_old.uid, d_old.gid, new.pg_version, d_new.uid, d_new.gid
        ))
        .hint(dump_hint())
        .code(EXIT_USAGE)
        .into());
    }
    let (root, _, _) = layout(old, new)?;
    if method != Method::Copy && device(&old.data_dir) != device(&new.data_dir) {
        return Err(Fail::new(format!(
            "`--method {}` needs the new cluster on the file system of the old one, and `{}` is on another",
            method.as_str(),
            new.data_dir.display()
        ))
        .hint("use `--method copy`, or `--method dump`")
        .code(EXIT_USAGE)
        .into());
    }
    let tag = ensure_image(engine, old, new, old_tag, new_tag, p).await?;
    p.info(format!(
        "pg_upgrade: image `{tag}` runs the PostgreSQL {} and {} binaries; `{}` is mounted once for `--{}`",
        old.pg_version,
        new.pg_version,
        root.display(),
        method.as_str()
    ));
    p.info(
        "pg_upgrade --check needs the old server stopped: it runs first thing during the upgrade, \
         before any file is linked or copied, and a failure there leaves the old cluster as it was",
    );
    Ok(())
}

/// The generated Containerfile of the image with both majors (see the module docs).
fn containerfile(old_major: u32, new_major: u32, old_tag: &str, new_tag: &str) -> String {
    format!(
        r#"# pg_upgrade from PostgreSQL {o} to {n}, generated by pgbox {v}.
FROM {old_tag} AS old
# Every shared library the old binaries and modules load, resolved in the old image.
RUN set -eu; mkdir -p /pgbox-libs; \
    for f in /usr/lib/postgresql/{o}/bin/* /usr/lib/postgresql/{o}/lib/*.so; do ldd "$f" 2>/dev/null || true; done \
      | awk '$2 == "=>" && $3 ~ /^\// {{ print $3 }}' | sort -u \
      | while read -r lib; do cp -L "$lib" /pgbox-libs/; done

FROM {new_tag}
COPY --from=old /usr/lib/postgresql/{o} /usr/lib/postgresql/{o}
COPY --from=old /usr/share/postgresql/{o} /usr/share/postgresql/{o}
COPY --from=old /pgbox-libs /tmp/pgbox-libs
# Only the sonames this base lacks, in a private folder (LD_LIBRARY_PATH for pg_upgrade only).
RUN set -eu; d=/usr/local/lib/pgbox-pg{o}-libs; mkdir -p "$d"; \
    for f in /tmp/pgbox-libs/*; do n="${{f##*/}}"; \
        ldconfig -p | grep -q "^[[:space:]]*$n " || cp "$f" "$d/"; done; \
    rm -rf /tmp/pgbox-libs; \
    echo "libraries of PostgreSQL {o} missing in this base: $(ls "$d" | tr '\n' ' ')"; \
    if LD_LIBRARY_PATH="$d" ldd /usr/lib/postgresql/{o}/bin/* /usr/lib/postgresql/{o}/lib/*.so | grep 'not found'; then \
        echo "the PostgreSQL {o} binaries miss libraries in this image" >&2; exit 1; fi; \
    LD_LIBRARY_PATH="$d" /usr/lib/postgresql/{o}/bin/postgres --version; \
    /usr/lib/postgresql/{n}/bin/pg_upgrade --version
LABEL org.pgbox.pg-upgrade-from="{o}"
"#,
        o = old_major,
        n = new_major,
        v = env!("CARGO_PKG_VERSION"),
    )
}

/// Build the image with both majors unless it exists (tagged by its Containerfile,
/// which names both source images by their own content tags). Returns its tag.
pub async fn ensure_image(
    engine: &Engine,
    old: &Settings,
    new: &Settings,
    old_tag: &str,
    new_tag: &str,
    p: &Printer,
) -> anyhow::Result<String> {
    let body = containerfile(old.pg_version, new.pg_version, old_tag, new_tag);
    let hex = crate::digest::hex(&Sha256::digest(body.as_bytes())[..6]);
    let tag = format!(
        "pgbox-pgupgrade:{}-{}-{hex}",
        old.pg_version, new.pg_version
    );
    if engine.image_exists(&tag).await? {
        p.detail(format!("image `{tag}` is up to date"));
        return Ok(tag);
    }
    let ctx = ImageContext {
        files: vec![ContextFile {
            path: "Containerfile".into(),
            body: body.into_bytes(),
            mode: 0o644,
        }],
        tag: tag.clone(),
    };
    let started = std::time::Instant::now();
    let bar = p.spinner(format!("building image `{tag}` (pg_upgrade)"));
    let labels = std::collections::HashMap::from([(
        crate::engine::LABEL_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )]);
    let r = engine
        .build_image(&tag, ctx.tar()?, &labels, |l| p.verbose_line(&bar, l))
        .await;
    bar.finish_and_clear();
    r.map_err(|e| {
        Fail::new(format!("building image `{tag}` for pg_upgrade failed: {e}")).hint(dump_hint())
    })?;
    p.done(format!(
        "built image `{tag}` with the PostgreSQL {} and {} binaries in {:.1}s",
        old.pg_version,
        new.pg_version,
        started.elapsed().as_secs_f64()
    ));
    Ok(tag)
}

/// The pg_upgrade container: the new cluster's worker name (so `up`, a failed
/// upgrade and `--rollback` remove it like the dump method's), idle until pgbox
/// execs into it, with the common folder and the project's configuration mounted.
fn helper_spec(
    old: &Settings,
    new: &Settings,
    tag: &str,
    d: &Decision,
    root: &Path,
) -> ContainerSpec {
    let base = spec::container_spec(new, tag, d);
    let mut s = ContainerSpec::oneshot(workers::target_name(old), tag.to_string());
    s.labels.insert(
        crate::engine::LABEL_PROJECT.to_string(),
        "-upgrade".to_string(),
    );
    s.entrypoint = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("echo {}; exec sleep infinity", spec::READY_MARKER),
    ]);
    s.user = Some("0:0".into());
    s.mounts = base
        .mounts
        .into_iter()
        .filter(|m| m.target != spec::DATA_MOUNT && m.target != "/etc/pgbox/initdb.d")
        .collect();
    s.mounts.push(MountSpec {
        source: MountSource::Bind(root.to_path_buf()),
        target: ROOT.into(),
        read_only: false,
    });
    s
}

/// A command as the postgres user, able to traverse the mounted folder.
fn as_postgres(cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--inh-caps=+dac_override",
        "--ambient-caps=+dac_override",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

struct Helper<'a> {
    engine: &'a Engine,
    name: String,
    user: String,
    old_major: u32,
}

impl Helper<'_> {
    async fn exec(&self, cmd: &[&str], env: Vec<String>) -> anyhow::Result<ExecOutput> {
        let spec = ExecSpec {
            cmd: as_postgres(cmd),
            user: Some("root".into()),
            env,
        };
        Ok(self.engine.exec_capture(&self.name, &spec).await?)
    }

    /// Run `cmd`; fail with its output's last lines when it fails.
    async fn must(&self, what: &str, cmd: &[&str], env: Vec<String>) -> anyhow::Result<String> {
        let out = self.exec(cmd, env).await?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.code != 0 {
            let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            let lines: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            return Err(Fail::new(format!(
                "{what} failed (exit {}):\n  {}",
                out.code,
                tail.join("\n  ")
            ))
            .into());
        }
        Ok(stdout)
    }

    /// SQL on the new server's private socket; stdout, trimmed.
    async fn sql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = self
            .must(
                &format!("psql in database `{db}`"),
                &[
                    "psql",
                    "--no-psqlrc",
                    "-qAt",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    WORK,
                    "-U",
                    &self.user,
                    "-d",
                    db,
                    "-c",
                    sql,
                ],
                Vec::new(),
            )
            .await?;
        Ok(out.trim().to_string())
    }

    fn old_libs(&self) -> Vec<String> {
        vec![format!(
            "LD_LIBRARY_PATH=/usr/local/lib/pgbox-pg{}-libs",
            self.old_major
        )]
    }
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

/// Build the new cluster with pg_upgrade (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    engine: &Engine,
    old: &Settings,
    new: &Settings,
    old_tag: &str,
    new_tag: &str,
    d_old: &Decision,
    d_new: &Decision,
    facts: &Facts,
    method: Method,
    p: &Printer,
) -> anyhow::Result<()> {
    let _ = d_old;
    let tag = ensure_image(engine, old, new, old_tag, new_tag, p).await?;
    let (root, old_dir, new_dir) = layout(old, new)?;
    let spec = helper_spec(old, new, &tag, d_new, &root);
    workers::start(
        engine,
        &spec,
        "the pg_upgrade container",
        Duration::from_secs(120),
        p,
    )
    .await?;
    let h = Helper {
        engine,
        name: spec.name.clone(),
        user: new.user.clone(),
        old_major: old.pg_version,
    };
    let r = steps(&h, old, new, facts, method, &old_dir, &new_dir, p).await;
    let _ = engine.remove_container(&spec.name, true).await;
    r
}

#[allow(clippy::too_many_arguments)]
async fn steps(
    h: &Helper<'_>,
    old: &Settings,
    new: &Settings,
    facts: &Facts,
    method: Method,
    old_dir: &str,
    new_dir: &str,
    p: &Printer,
) -> anyhow::Result<()> {
    let (o, n) = (old.pg_version, new.pg_version);
    h.must(
        "preparing pg_upgrade's working folder",
        &["mkdir", "-p", WORK],
        Vec::new(),
    )
    .await?;

    let t = Instant::now();
    let bar = p.spinner(format!("creating the PostgreSQL {n} cluster (initdb)"));
    let mut initdb = vec![
        format!("/usr/lib/postgresql/{n}/bin/initdb"),
        format!("--pgdata={new_dir}"),
        format!("--username={}", new.user),
        "--auth-local=trust".into(),
        "--auth-host=scram-sha-256".into(),
        "--no-sync".into(),
    ];
    initdb.extend(initdb_args(facts, n));
    let initdb: Vec<&str> = initdb.iter().map(String::as_str).collect();
    let r = h
        .must("initdb of the new cluster", &initdb, Vec::new())
        .await;
    bar.finish_and_clear();
    r?;
    p.detail(format!("initdb in {:.1}s", t.elapsed().as_secs_f64()));

    let jobs = crate::backup::restore::jobs_default().to_string();
    let old_bin = format!("/usr/lib/postgresql/{o}/bin");
    let new_bin = format!("/usr/lib/postgresql/{n}/bin");
    let pg_upgrade = format!("{new_bin}/pg_upgrade");
    let mode_flag = format!("--{}", method.as_str());
    let base: Vec<&str> = vec![
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
        old_dir,
        "-D",
        new_dir,
        "-U",
        &new.user,
        "-s",
        WORK,
        "-j",
        &jobs,
    ];

    let t = Instant::now();
    let bar = p.spinner(format!("pg_upgrade --check {mode_flag}"));
    let mut check = base.clone();
    check.extend(["--check", &mode_flag]);
    let r = h.must("`pg_upgrade --check`", &check, h.old_libs()).await;
    bar.finish_and_clear();
    let out = r.map_err(|e| {
        e.context(format!(
            "PostgreSQL {n}'s pg_upgrade refused this cluster; the old data was not touched"
        ))
    })?;
    p.done(format!(
        "pg_upgrade --check passed ({} checks of the old and new cluster) in {:.1}s",
        out.lines().filter(|l| l.trim_end().ends_with("ok")).count(),
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let bar = p.spinner(format!("pg_upgrade {mode_flag} from {o} to {n}"));
    let mut upgrade = base.clone();
    upgrade.push(&mode_flag);
    let r = h
        .must(&format!("`pg_upgrade {mode_flag}`"), &upgrade, h.old_libs())
        .await;
    bar.finish_and_clear();
    let out = match r {
        Ok(out) => out,
        Err(e) => {
            if method == Method::Link {
                restore_pg_control(h, old_dir).await;
            }
            return Err(e);
        }
    };
    p.done(format!(
        "pg_upgrade {mode_flag} done in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    if method == Method::Link {
        p.warn(format!(
            "the PostgreSQL {o} cluster now shares its files with the {n} one, which starts next: the old cluster is unusable from here on; the automatic backup is the way back"
        ));
    }

    let bar = p.spinner(format!("starting PostgreSQL {n} on a private socket"));
    let opts = format!("-c listen_addresses='' -c unix_socket_directories={WORK}");
    let log = format!("{WORK}/server.log");
    let r = h
        .must(
            "starting the new cluster",
            &[
                &format!("{new_bin}/pg_ctl"),
                "-D",
                new_dir,
                "-w",
                "-t",
                "300",
                "-l",
                &log,
                "-o",
                &opts,
                "start",
            ],
            Vec::new(),
        )
        .await;
    bar.finish_and_clear();
    r?;
    let post = after_start(h, new, &out, &jobs, p).await;
    let stopped = h
        .must(
            "stopping the new cluster",
            &[
                &format!("{new_bin}/pg_ctl"),
                "-D",
                new_dir,
                "-w",
                "-m",
                "fast",
                "stop",
            ],
            Vec::new(),
        )
        .await;
    post?;
    stopped?;
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

/// What runs on the new server before it is handed over: extension updates,
/// statistics, collation versions.
async fn after_start(
    h: &Helper<'_>,
    new: &Settings,
    upgrade_output: &str,
    jobs: &str,
    p: &Printer,
) -> anyhow::Result<()> {
    let n = new.pg_version;
    let script = format!("{WORK}/update_extensions.sql");
    let has = h.exec(&["test", "-s", &script], Vec::new()).await?.code == 0;
    if has {
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
    } else {
        p.detail("pg_upgrade wrote no update_extensions.sql: every extension is current");
    }

    let mut vacuum = vec![
        "vacuumdb", "-h", WORK, "-U", &new.user, "--all", "-q", "-j", jobs,
    ];
    let what = if n >= 18 {
        // 18 carries the planner statistics over; only what it cannot is missing.
        vacuum.extend(["--analyze-in-stages", "--missing-stats-only"]);
        "the statistics pg_upgrade does not carry over (vacuumdb --analyze-in-stages --missing-stats-only)"
    } else {
        vacuum.push("--analyze-in-stages");
        "the planner statistics (vacuumdb --analyze-in-stages)"
    };
    let _ = upgrade_output;
    let t = Instant::now();
    let bar = p.spinner(format!("gathering {what}"));
    let r = h.must("vacuumdb", &vacuum, Vec::new()).await;
    bar.finish_and_clear();
    r?;
    p.done(format!(
        "gathered {what} in {:.1}s",
        t.elapsed().as_secs_f64()
    ));

    collations(h, p).await
}

/// Collations a pg_upgrade cannot vouch for in database `db`: the rebuilt indexes
/// and the refreshed versions, as report lines.
const STALE_SQL: &str = "
with coll as (
  select c.oid, c.collnamespace = 'pg_catalog'::regnamespace as system,
         format('%I.%I', n.nspname, c.collname) as name,
         case when c.collnamespace <> 'pg_catalog'::regnamespace and c.collversion is not null
              then c.collversion is distinct from pg_collation_actual_version(c.oid) end as stale
    from pg_collation c join pg_namespace n on n.oid = c.collnamespace
   where c.oid <> 100
     and (c.collprovider = 'i' or (c.collprovider = 'c' and c.collcollate not in ('C', 'POSIX')
          and c.collcollate not like 'C.%'))
)
select 'collation' || chr(9) || name from coll where stale
union all
select 'index' || chr(9) || i.indexrelid::regclass::text
  from pg_index i join pg_class t on t.oid = i.indrelid
 where t.relnamespace <> 'pg_catalog'::regnamespace
   and (exists (select 1 from unnest(i.indcollation::oid[]) k(coll)
                 where k.coll in (select oid from coll where system or stale)
                    or (k.coll = 100 and $db_stale))
        or ($db_stale and (i.indpred is not null or i.indexprs is not null)))
";

async fn collations(h: &Helper<'_>, p: &Printer) -> anyhow::Result<()> {
    let dbs = h
        .sql(
            "postgres",
            "select datname || chr(9) || (datcollversion is distinct from pg_database_collation_actual_version(oid))::text
               || chr(9) || datallowconn::text || chr(9) || coalesce(datcollversion, 'none') || chr(9)
               || coalesce(pg_database_collation_actual_version(oid), 'none')
               from pg_database order by datname",
        )
        .await?;
    let mut done = Vec::new();
    for line in dbs.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 5 {
            anyhow::bail!("unexpected answer about the collation versions: {line}");
        }
        let (db, db_stale, conn) = (f[0], f[1] == "true", f[2] == "true");
        if !conn {
            if db_stale {
                // template0 holds no user index; its recorded version only needs refreshing.
                h.sql(
                    "postgres",
                    &format!("alter database {} refresh collation version", ident(db)),
                )
                .await?;
                done.push(format!(
                    "`{db}`: refreshed its collation version ({} → {})",
                    f[3], f[4]
                ));
            }
            continue;
        }
        let q = STALE_SQL.replace("$db_stale", if db_stale { "true" } else { "false" });
        let found = h.sql(db, &q).await?;
        let mut indexes = Vec::new();
        let mut colls = Vec::new();
        for l in found.lines() {
            match l.split_once('\t') {
                Some(("index", i)) => indexes.push(i.to_string()),
                Some(("collation", c)) => colls.push(c.to_string()),
                _ => {}
            }
        }
        if indexes.is_empty() && colls.is_empty() && !db_stale {
            continue;
        }
        let bar = p.spinner(format!(
            "rebuilding {} indexes in `{db}` that depend on collations",
            indexes.len()
        ));
        let mut sql = String::new();
        for i in &indexes {
            sql.push_str(&format!("reindex index {i};\n"));
        }
        for c in &colls {
            sql.push_str(&format!("alter collation {c} refresh version;\n"));
        }
        if db_stale {
            sql.push_str(&format!(
                "alter database {} refresh collation version;\n",
                ident(db)
            ));
        }
        let r = h.sql(db, &format!("begin;\n{sql}commit;")).await;
        bar.finish_and_clear();
        r.map_err(|e| {
            e.context(format!(
                "rebuilding the collation-dependent indexes of `{db}` failed"
            ))
        })?;
        let mut what = Vec::new();
        if !indexes.is_empty() {
            what.push(format!(
                "rebuilt {} ({})",
                plural(indexes.len(), "index", "indexes"),
                indexes.join(", ")
            ));
        }
        if !colls.is_empty() {
            what.push(format!("refreshed the versions of {}", colls.join(", ")));
        }
        if db_stale {
            what.push(format!(
                "refreshed the database's collation version ({} → {})",
                lit(f[3]),
                lit(f[4])
            ));
        }
        done.push(format!("`{db}`: {}", what.join("; ")));
    }
    if done.is_empty() {
        p.done("collations: nothing to rebuild (no index depends on a collation whose version the new C library or ICU may have changed; C and C.UTF-8 sort the same everywhere)");
    } else {
        for d in done {
            p.done(format!("collations: {d}"));
        }
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `--rollback` after `--method link` once the new cluster may have started: the
/// old cluster shares its files with the new one and cannot be started again, so
/// the rollback is refused with the way back through the automatic backup.
pub fn rollback_possible(state: Option<&Upgrade>, s: &Settings) -> Result<(), Fail> {
    let Some(st) = state.filter(|st| st.method == Method::Link.as_str()) else {
        return Ok(());
    };
    let old = super::plan::settings_for(s, &st.old);
    let global = old.data_dir.join("global");
    let unlinked = global.join("pg_control").exists();
    if st.phase != UpgradePhase::Switched && unlinked {
        return Ok(());
    }
    let backups = if st.backup.is_empty() {
        "none was recorded".to_string()
    } else {
        st.backup
            .iter()
            .map(|b| format!("`{b}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (o, n) = (st.old.major, st.new.major);
    let mut hint = format!(
        "to return to PostgreSQL {o}: `pgbox backup --all` keeps what was written on {n} if you want it; \
         `pgbox upgrade --finalize` ends the upgrade (it deletes only the old folder's names, the {n} cluster keeps its files); \
         then start a PostgreSQL {o} project (`pgbox init --pg-version {o}` in a new folder) and `pgbox restore` the automatic backup taken before the upgrade: {backups}"
    );
    if st.phase != UpgradePhase::Switched {
        hint.push_str(&format!(
            "; if the upgrade was interrupted before PostgreSQL {n} ever started, renaming `{}` back to `pg_control` makes the old cluster usable again",
            global.join("pg_control.old").display()
        ));
    }
    Err(Fail::new(format!(
        "the upgrade {o} → {n} used `--method link`: the PostgreSQL {o} data in `{}` shares its files with the {n} cluster, which has started and written to them, so it cannot run again and `--rollback` would return to a broken cluster",
        old.data_dir.display()
    ))
    .hint(hint)
    .code(EXIT_USAGE))
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
