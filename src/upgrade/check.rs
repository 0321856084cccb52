//! The checks an upgrade passes before it changes anything, and the report
//! `--check` prints: the target's version, that its image builds and ships every
//! extension the old cluster uses, the old cluster's encoding, locale and checksum
//! setting (the new one is created to match), and the space the new cluster and the
//! automatic backup need against the space there is.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config::{Settings, StorageMode};
use crate::container::psql::sql;
use crate::engine::{ContainerSpec, Engine};
use crate::error::Fail;
use crate::printer::size;

use super::options::Method;

/// What the old cluster is, read from the running server.
#[derive(Debug, Clone)]
pub struct Facts {
    pub version: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// `c` (libc), `i` (ICU) or `b` (builtin).
    pub provider: String,
    pub checksums: bool,
    /// (database, extension) for every extension but plpgsql.
    pub extensions: Vec<(String, String)>,
    /// The databases to move: every one that accepts connections but the templates.
    pub databases: Vec<String>,
    pub bytes: u64,
}

impl Facts {
    /// The new cluster's initdb options, as the image's entrypoint reads them.
    pub fn initdb_env(&self) -> Vec<String> {
        vec![
            format!("PGBOX_ENCODING={}", self.encoding),
            format!("PGBOX_LOCALE={}", self.collate),
            format!("PGBOX_LC_COLLATE={}", self.collate),
            format!("PGBOX_LC_CTYPE={}", self.ctype),
            format!(
                "PGBOX_DATA_CHECKSUMS={}",
                if self.checksums { "on" } else { "off" }
            ),
        ]
    }
}

/// Read the facts from the old cluster's container `c`.
pub async fn facts(engine: &Engine, c: &str, s: &Settings) -> anyhow::Result<Facts> {
    let row = sql(
        engine,
        c,
        s,
        "postgres",
        "select concat_ws(chr(9), current_setting('server_version'), current_setting('server_encoding'),
                datcollate, datctype, datlocprovider, current_setting('data_checksums'),
                (select sum(pg_database_size(oid)) from pg_database))
           from pg_database where datname = 'template1'",
    )
    .await?;
    let f: Vec<&str> = row.split('\t').collect();
    if f.len() != 7 {
        anyhow::bail!("unexpected answer from the old server: {row}");
    }
    let databases: Vec<String> = sql(
        engine,
        c,
        s,
        "postgres",
        "select datname from pg_database where datallowconn and not datistemplate order by datname",
    )
    .await?
    .lines()
    .map(String::from)
    .collect();
    let mut extensions = Vec::new();
    for db in &databases {
        let out = sql(
            engine,
            c,
            s,
            db,
            "select extname from pg_extension where extname <> 'plpgsql' order by 1",
        )
        .await?;
        extensions.extend(out.lines().map(|e| (db.clone(), e.to_string())));
    }
    Ok(Facts {
        version: f[0].to_string(),
        encoding: f[1].to_string(),
        collate: f[2].to_string(),
        ctype: f[3].to_string(),
        provider: f[4].to_string(),
        checksums: f[5] == "on",
        extensions,
        databases,
        bytes: f[6].parse().unwrap_or(0),
    })
}

/// The extensions image `tag` ships (its `extension/*.control` files).
pub async fn shipped_extensions(
    engine: &Engine,
    s: &Settings,
    tag: &str,
    major: u32,
) -> anyhow::Result<BTreeSet<String>> {
    let mut spec = ContainerSpec::oneshot(
        format!("{}-upgrade-check", s.container_name()),
        tag.to_string(),
    );
    spec.entrypoint = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("ls /usr/share/postgresql/{major}/extension"),
    ]);
    let (code, lines) = engine.run_to_completion(&spec).await?;
    if code != 0 {
        anyhow::bail!(
            "cannot list the extensions of image `{tag}`: {}",
            lines.join("\n")
        );
    }
    Ok(lines
        .iter()
        .filter_map(|l| l.trim().strip_suffix(".control"))
        .map(String::from)
        .collect())
}

/// Refuse when the target lacks an extension the old cluster uses.
pub fn require_extensions(f: &Facts, shipped: &BTreeSet<String>, to: u32) -> Result<(), Fail> {
    let missing: Vec<String> = f
        .extensions
        .iter()
        .filter(|(_, e)| !shipped.contains(e))
        .map(|(db, e)| format!("`{e}` (database `{db}`)"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Fail::new(format!(
        "the PostgreSQL {to} image lacks {} used by the old cluster: {}",
        if missing.len() == 1 { "an extension" } else { "extensions" },
        missing.join(", ")
    ))
    .hint(format!(
        "install it in the new image (a `base_image` that ships it for {to}), or drop it from the old cluster \
         (`DROP EXTENSION`) if it is unused; nothing was changed"
    )))
}

/// Refuse a cluster whose default collation pgbox cannot recreate.
pub fn require_locale(f: &Facts) -> Result<(), Fail> {
    if f.provider != "c" {
        return Err(Fail::new(format!(
            "the old cluster's default collation comes from the `{}` provider; pgbox creates new clusters with libc locales only",
            if f.provider == "i" { "icu" } else { "builtin" }
        ))
        .hint("upgrade this cluster by hand (pg_upgrade with matching `--locale-provider`), or move it with `pgbox backup --all` and a restore"));
    }
    Ok(())
}

/// Space needed and free: the new cluster beside its data, the backup in the backup folder.
pub struct Space {
    pub cluster_need: u64,
    pub cluster_at: Option<PathBuf>,
    pub cluster_free: Option<u64>,
    pub backup_need: u64,
    pub backup_free: Option<u64>,
}

/// Estimate: the new cluster takes about what the old one does (a tenth of it with
/// `--method link`, which shares the files), and `dump` also stages an uncompressed
/// dump of the largest database beside it (at most the old cluster's size); the
/// compressed backup about half of it (what compression gains is not knowable up front).
pub fn space(s: &Settings, new: &Settings, mode: StorageMode, f: &Facts, method: Method) -> Space {
    let cluster_at = match mode {
        StorageMode::Volume => None,
        _ => Some(new.data_dir.clone()),
    };
    Space {
        cluster_need: match method {
            Method::Dump => 2 * f.bytes + f.bytes / 10,
            Method::Copy | Method::Clone => f.bytes + f.bytes / 10,
            Method::Link => f.bytes / 10,
        },
        cluster_free: cluster_at.as_deref().and_then(crate::fsutil::free_bytes),
        cluster_at,
        backup_need: f.bytes / 2,
        backup_free: crate::fsutil::free_bytes(&s.backup_dir),
    }
}

impl Space {
    pub fn lines(&self, s: &Settings) -> Vec<String> {
        let free =
            |b: Option<u64>| b.map_or("unknown".to_string(), |b| format!("{} free", size(b)));
        let at = self
            .cluster_at
            .as_ref()
            .map_or("the engine's volume store".into(), |p| {
                format!("`{}`", p.display())
            });
        vec![
            format!(
                "new cluster: about {} in {at} ({})",
                size(self.cluster_need),
                free(self.cluster_free)
            ),
            format!(
                "backup: about {} in `{}` ({})",
                size(self.backup_need),
                s.backup_dir.display(),
                free(self.backup_free)
            ),
        ]
    }

    /// Refuse when a known free space is short (both on one file system count twice).
    pub fn require(&self, s: &Settings) -> Result<(), Fail> {
        let same = self
            .cluster_at
            .as_deref()
            .map(|p| same_fs(p, &s.backup_dir))
            .unwrap_or(false);
        let short = |need: u64, free: Option<u64>| free.is_some_and(|f| f < need);
        let cluster_need = self.cluster_need + if same { self.backup_need } else { 0 };
        if short(cluster_need, self.cluster_free) || short(self.backup_need, self.backup_free) {
            return Err(Fail::new(format!(
                "not enough free space for the upgrade: {}",
                self.lines(s).join("; ")
            ))
            .hint("free space there (or set `[backup] dir` elsewhere), then run the upgrade again; nothing was changed"));
        }
        Ok(())
    }
}

fn same_fs(a: &std::path::Path, b: &std::path::Path) -> bool {
    let dev = crate::fsutil::device(a);
    dev.is_some() && dev == crate::fsutil::device(b)
}

/// The old cluster's facts as report lines.
pub fn fact_lines(f: &Facts) -> Vec<String> {
    let exts: BTreeSet<&str> = f.extensions.iter().map(|(_, e)| e.as_str()).collect();
    vec![
        format!("old cluster: PostgreSQL {}, {}", f.version, size(f.bytes)),
        format!(
            "encoding {}, collate {}, ctype {}, data checksums {} (the new cluster matches)",
            f.encoding,
            f.collate,
            f.ctype,
            if f.checksums { "on" } else { "off" }
        ),
        format!(
            "databases: {}; extensions: {}",
            f.databases.join(", "),
            if exts.is_empty() {
                "none".to_string()
            } else {
                exts.into_iter().collect::<Vec<_>>().join(", ")
            }
        ),
    ]
}

/// Column options the old server keeps for itself, which a newer pg_dump copies
/// out and the new server refuses (`unrecognized parameter`): Debian's 17.12 gives
/// every column `pg_attver`, which its own pg_dump leaves out and 18's does not.
pub const SERVER_PRIVATE_OPTIONS: &[&str] = &["pg_attver"];

/// pg_upgrade restores the schema with the new major's pg_dump, which copies
/// column options the old server keeps for itself (Debian's 17 gives every column
/// `pg_attver`) and the new server refuses. pg_upgrade's dump cannot be filtered,
/// and clearing them would write to the old cluster, so such a cluster is refused.
pub async fn private_column_options(
    engine: &Engine,
    c: &str,
    s: &Settings,
    f: &Facts,
    to: u32,
) -> Result<(), Fail> {
    let like: Vec<String> = SERVER_PRIVATE_OPTIONS
        .iter()
        .map(|o| format!("attoptions::text like '%{o}=%'"))
        .collect();
    let q = format!(
        "select count(*) from pg_attribute where {}",
        like.join(" or ")
    );
    let mut found = Vec::new();
    for db in &f.databases {
        let n = sql(engine, c, s, db, &q)
            .await
            .map_err(|e| Fail::new(format!("cannot read the column options in `{db}`: {e:#}")))?;
        if n != "0" {
            found.push(format!("`{db}` ({n} columns)"));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(Fail::new(format!(
        "pg_upgrade cannot move this cluster: its columns carry options only PostgreSQL {} itself knows ({}), in {}, and PostgreSQL {}'s pg_upgrade copies them into a schema the new server refuses",
        s.pg_version,
        SERVER_PRIVATE_OPTIONS.join(", "),
        found.join(", "),
        to
    ))
    .code(crate::error::EXIT_USAGE))
}
