//! Point-in-time recovery off-site: base backups and the WAL archive shipped to
//! `[backup.remote]` (`pgbox backup sync --remote`), and `pgbox restore --to-*
//! --from-remote`, which downloads what the chosen target needs and hands it to
//! the local point-in-time restore.
//!
//! Layout under the prefix: `base/<name>/base.tar.zst[.age]` and
//! `base/<name>/backup_manifest[.age]`, then `base/<name>/pgbox-base.json` (the
//! base backup's description plus every file's sums), written last; `wal/<file>
//! [.age]` for each segment (`<segment>.zst`) and history file, then `wal/<file>
//! .json` (its sums and when it was archived). Only what has its `.json` counts,
//! and every object is read back ([`Upload::finish`]) before its `.json` is
//! written: an interrupted sync leaves nothing that counts, and the next one
//! ships it again. What is shipped is told by listing the store (no local note):
//! a second sync ships nothing new, and a store emptied by hand is filled again.
//!
//! A restore builds the same `wal::Archive` the local scan gives, from the
//! listing (segment names, and the archive times recorded at sync), so
//! `target::pick` chooses and refuses exactly as it does locally; then the chosen
//! base backup and the segments from its start on are downloaded (decrypted,
//! both sums checked, archive times set back on the files) into a private
//! staging folder under `.pgbox/`, which the restore reads as its backup folder,
//! and which is removed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use futures_util::io::{AsyncRead, AsyncReadExt};
use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt};

use crate::backup::base::{self, BaseMeta};
use crate::backup::pitr_restore::{self, target, PitrOptions};
use crate::backup::wal;
use crate::cancel::Guard;
use crate::config::Settings;
use crate::crypt::{Identities, Recipients};
use crate::digest::Sum;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::remote::upload::{Hasher, Upload};
use crate::remote::Remote;

/// The base backup's files that are shipped, in order; its description last.
const BASE_FILES: [&str; 2] = [base::TAR, "backup_manifest"];

/// One shipped file's sums: the plaintext's and the stored object's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSums {
    pub file: String,
    pub plain: Sum,
    pub stored: Sum,
}

/// `base/<name>/pgbox-base.json` in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteBase {
    pub name: String,
    pub meta: BaseMeta,
    pub files: Vec<FileSums>,
    #[serde(default)]
    pub encrypted_to: Vec<String>,
    pub shipped_at: DateTime<Utc>,
}

/// `wal/<file>.json` in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteWal {
    pub sums: FileSums,
    /// When the file was archived (its modification time here).
    pub archived_at: DateTime<Utc>,
    /// The `<segment>.sha256` line recorded beside it, if any.
    #[serde(default)]
    pub sha256_line: Option<String>,
    #[serde(default)]
    pub encrypted_to: Vec<String>,
}

/// What the store holds for point-in-time recovery.
#[derive(Debug, Default)]
pub struct Listing {
    pub bases: Vec<RemoteBase>,
    /// By local file name (`<segment>.zst`, `<TLI>.history.zst`).
    pub wal: BTreeMap<String, RemoteWal>,
}

fn object_name(file: &str, to: Option<&Recipients>) -> String {
    match to {
        Some(_) => format!("{file}.age"),
        None => file.to_string(),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(r: &Remote, key: &Key) -> anyhow::Result<T> {
    let bytes = r
        .store
        .get(key)
        .await
        .map_err(|e| r.fail("reading a manifest from", e))?
        .bytes()
        .await
        .map_err(|e| r.fail("reading a manifest from", e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Fail::new(format!(
            "`s3://{}/{key}` is not a pgbox manifest: {e}",
            r.cfg.bucket
        ))
        .hint("move the damaged manifest object aside")
        .into()
    })
}

async fn put_json<T: Serialize>(r: &Remote, key: &Key, v: &T) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(v)?;
    r.store
        .put(key, PutPayload::from(json))
        .await
        .map_err(|e| r.fail("writing the manifest to", e))?;
    Ok(())
}

/// Every base backup and WAL file of the project that counts in the store.
pub async fn list(r: &Remote, project: &str) -> anyhow::Result<Listing> {
    let mut out = Listing::default();
    for sub in ["base", "wal"] {
        let prefix = r.key(sub);
        let objects: Vec<_> = match r.store.list(Some(&prefix)).try_collect().await {
            Ok(o) => o,
            Err(e) => return Err(r.list_failed(e).await),
        };
        let keys: BTreeSet<String> = objects.iter().map(|o| o.location.to_string()).collect();
        for k in &keys {
            let Some(data) = k.strip_suffix(".json") else {
                continue;
            };
            if sub == "base" {
                if !data.ends_with(&format!("/{}", base::META.trim_end_matches(".json"))) {
                    continue;
                }
                let b: RemoteBase = read_json(r, &Key::from(k.as_str())).await?;
                if b.meta.project == project {
                    out.bases.push(b);
                }
            } else if keys.contains(data) {
                let w: RemoteWal = read_json(r, &Key::from(k.as_str())).await?;
                out.wal.insert(w.sums.file.clone(), w);
            }
        }
    }
    out.bases.sort_by_key(|b| b.meta.started_at);
    Ok(out)
}

/// Upload `path` to `key`, read it back; its sums.
async fn ship_one(
    r: &Remote,
    to: Option<&Recipients>,
    path: &Path,
    key: Key,
    file: &str,
) -> anyhow::Result<FileSums> {
    let mut up = Upload::begin(r, key, to).await?;
    let read = async {
        let mut f = tokio::fs::File::open(path).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            up.write(&buf[..n]).await?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = read {
        up.abort().await;
        return Err(e.context(format!("cannot ship `{}`", path.display())));
    }
    let done = up.finish().await?;
    Ok(FileSums {
        file: file.to_string(),
        plain: done.plain,
        stored: done.stored,
    })
}

/// What one sync shipped.
#[derive(Debug, Default)]
pub struct Synced {
    pub bases: usize,
    pub wal: usize,
}

/// `pgbox backup sync --remote`: ship every base backup and archived WAL file not
/// yet in the store.
pub async fn sync(s: &Settings, p: &Printer) -> anyhow::Result<Synced> {
    base::refuse_without_pitr(s)?;
    let r = Remote::connect(s)?;
    let to = Recipients::resolve(&s.encrypt_to, &s.project_dir)?;
    let names = to.as_ref().map(|t| t.names.clone()).unwrap_or_default();
    let have = list(&r, &s.project).await?;
    let mut done = Synced::default();

    // WAL first: a base backup in the store is worth something only with its WAL.
    let dir = s.wal_archive_dir();
    let mut files: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.strip_suffix(".zst").is_some_and(|stem| {
                    wal::parse_name(stem, wal::DEFAULT_SEGMENT_SIZE).is_some()
                        || stem.ends_with(".history")
                })
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => anyhow::bail!("cannot read `{}`: {e}", dir.display()),
    };
    files.sort();
    for f in files.iter().filter(|f| !have.wal.contains_key(*f)) {
        let path = dir.join(f);
        let archived_at: DateTime<Utc> = std::fs::metadata(&path)?.modified()?.into();
        let stem = f.trim_end_matches(".zst");
        let sha256_line = std::fs::read_to_string(dir.join(format!("{stem}.sha256"))).ok();
        let key = r.key(&format!("wal/{}", object_name(f, to.as_ref())));
        let sums = ship_one(&r, to.as_ref(), &path, key.clone(), f).await?;
        let w = RemoteWal {
            sums,
            archived_at,
            sha256_line,
            encrypted_to: names.clone(),
        };
        put_json(&r, &Key::from(format!("{key}.json")), &w).await?;
        done.wal += 1;
    }

    let shipped: BTreeSet<String> = have.bases.iter().map(|b| b.name.clone()).collect();
    for (path, meta) in base::list(s)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if shipped.contains(&name) {
            continue;
        }
        p.info(format!("shipping base backup `{name}`"));
        let mut sums = Vec::new();
        for f in BASE_FILES {
            let key = r.key(&format!("base/{name}/{}", object_name(f, to.as_ref())));
            sums.push(ship_one(&r, to.as_ref(), &path.join(f), key, f).await?);
        }
        if sums[0].plain.sha256 != meta.sha256 {
            return Err(Fail::new(format!(
                "`{}` changed after it was written (sha256 {}, its description says {})",
                path.join(base::TAR).display(),
                sums[0].plain.sha256,
                meta.sha256
            ))
            .hint("the base backup is damaged; take a new one with `pgbox backup --base`")
            .into());
        }
        let b = RemoteBase {
            name: name.clone(),
            meta,
            files: sums,
            encrypted_to: names.clone(),
            shipped_at: Utc::now(),
        };
        put_json(&r, &r.key(&format!("base/{name}/{}", base::META)), &b).await?;
        done.bases += 1;
    }
    p.done(format!(
        "shipped {} base backup(s) and {} WAL file(s) to `{}`{}; each read back and matched",
        done.bases,
        done.wal,
        r.cfg.url,
        match &to {
            Some(t) => format!(", encrypted to {} recipient(s)", t.names.len()),
            None => String::new(),
        }
    ));
    Ok(done)
}

/// Download `key` into `out` (mode `mode`), decrypting with `ids` when
/// `encrypted_to` is not empty; both sums must match `want`.
async fn download(
    r: &Remote,
    key: &Key,
    want: &FileSums,
    encrypted_to: &[String],
    ids: Option<&Identities>,
    out: &Path,
    mode: u32,
) -> anyhow::Result<()> {
    let ids = match (encrypted_to.is_empty(), ids) {
        (true, _) => None,
        (false, Some(ids)) => Some(ids),
        (false, None) => {
            return Err(Fail::new(format!(
                "the point-in-time backups in `{}` are encrypted to {}",
                r.cfg.url,
                encrypted_to.join(", ")
            ))
            .hint("pass `--identity FILE`, the age key file of one of those recipients")
            .code(EXIT_USAGE)
            .into())
        }
    };
    let stored = Arc::new(Mutex::new(Hasher::new()));
    let body = {
        let stored = stored.clone();
        r.store
            .get(key)
            .await
            .map_err(|e| r.fail("downloading from", e))?
            .into_stream()
            .inspect_ok(move |b| stored.lock().expect("hash lock").update(b))
            .map_err(std::io::Error::other)
            .into_async_read()
    };
    let mut reader: Box<dyn AsyncRead + Unpin + Send> = match ids {
        Some(ids) => Box::new(crate::crypt::decrypt(body, ids, encrypted_to).await?),
        None => Box::new(body),
    };
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(out)
        .await?;
    let mut plain = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| {
            Fail::new(format!("cannot read `{key}` from the store: {e}"))
                .hint("the download broke off or the stored copy is damaged; try again")
        })?;
        if n == 0 {
            break;
        }
        plain.update(&buf[..n]);
        f.write_all(&buf[..n]).await?;
    }
    f.sync_all().await?;
    let stored = std::mem::replace(&mut *stored.lock().expect("hash lock"), Hasher::new()).sum();
    if stored != want.stored || plain.sum() != want.plain {
        return Err(Fail::new(format!(
            "`s3://{}/{key}` does not match its manifest",
            r.cfg.bucket
        ))
        .hint("the stored copy is damaged; sync again from a machine that has the file")
        .into());
    }
    Ok(())
}

/// The archive as the store holds it: segments and their archive times from the
/// listing, histories from the downloaded history files in `wal_dir`.
fn archive_of(l: &Listing, wal_dir: &Path, seg: u64) -> anyhow::Result<wal::Archive> {
    let mut a = wal::Archive::default();
    for (f, w) in &l.wal {
        let stem = f.trim_end_matches(".zst");
        if let Some((tli, n)) = wal::parse_name(stem, seg) {
            let t: SystemTime = w.archived_at.into();
            a.segments.entry(tli).or_default().insert(n);
            a.newest_mtime = a.newest_mtime.max(Some(t));
            a.mtimes.insert((tli, n), t);
        } else if let Some(t) = stem.strip_suffix(".history") {
            if let Ok(tli) = u32::from_str_radix(t, 16) {
                let text = wal::decompress(&wal_dir.join(f))?;
                a.histories
                    .insert(tli, wal::parse_history(&String::from_utf8_lossy(&text)));
            }
        }
    }
    Ok(a)
}

/// Download the WAL file `f` into `wal_dir`, with its archive time and sum line.
async fn fetch_wal(
    r: &Remote,
    l: &Listing,
    f: &str,
    ids: Option<&Identities>,
    wal_dir: &Path,
) -> anyhow::Result<()> {
    let w = l
        .wal
        .get(f)
        .ok_or_else(|| anyhow::anyhow!("`{f}` is not in the store"))?;
    let obj = match w.encrypted_to.is_empty() {
        true => f.to_string(),
        false => format!("{f}.age"),
    };
    let out = wal_dir.join(f);
    let key = r.key(&format!("wal/{obj}"));
    download(r, &key, &w.sums, &w.encrypted_to, ids, &out, 0o644).await?;
    std::fs::File::options()
        .write(true)
        .open(&out)?
        .set_modified(w.archived_at.into())?;
    if let Some(line) = &w.sha256_line {
        let stem = f.trim_end_matches(".zst");
        std::fs::write(wal_dir.join(format!("{stem}.sha256")), line)?;
    }
    Ok(())
}

/// `pgbox restore --to-* --from-remote [--identity FILE]`.
pub async fn restore(
    o: &PitrOptions,
    identity: Option<&Path>,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<bool> {
    base::refuse_without_pitr(s)?;
    let r = Remote::connect(s)?;
    let ids = identity.map(Identities::load).transpose()?;
    let l = list(&r, &s.project).await?;
    if l.bases.is_empty() {
        return Err(Fail::new(format!(
            "`{}` has no base backup in `{}`: there is nothing to recover from",
            s.project, r.cfg.url
        ))
        .hint("ship one with `pgbox backup sync --remote`")
        .into());
    }
    let staging = s
        .state_dir()
        .join(format!("pitr-remote-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    crate::fsutil::private_dir(&staging, 0o700)?;
    let guard = Guard::path(staging.clone());
    let result = stage_and_restore(&r, &l, o, ids.as_ref(), &staging, s, p).await;
    guard.undo().await;
    result
}

async fn stage_and_restore(
    r: &Remote,
    l: &Listing,
    o: &PitrOptions,
    ids: Option<&Identities>,
    staging: &Path,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<bool> {
    // Inside the private folder, readable by the container's postgres uid, which
    // reads the segments through the bind mount of `wal` alone.
    let wal_dir = staging.join("wal");
    let base_root = staging.join("base");
    for d in [&wal_dir, &base_root] {
        std::fs::create_dir(d)?;
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    for f in l.wal.keys().filter(|f| f.ends_with(".history.zst")) {
        fetch_wal(r, l, f, ids, &wal_dir).await?;
    }
    let seg = l.bases[l.bases.len() - 1].meta.wal_segment_size;
    let archive = archive_of(l, &wal_dir, seg)?;
    let bases: Vec<(PathBuf, BaseMeta)> = l
        .bases
        .iter()
        .map(|b| (base_root.join(&b.name), b.meta.clone()))
        .collect();
    let reach = target::pick(&s.project, &bases, &archive, &o.target)?;
    let chosen = &l.bases[reach.base];
    let start = wal::segno(
        wal::parse_lsn(&chosen.meta.start_lsn).unwrap_or_default(),
        seg,
    );
    let need = wal::needed(&archive, chosen.meta.timeline, start, seg).unwrap_or_default();
    p.info(format!(
        "downloading base backup `{}` and {} WAL segment(s) from `{}`",
        chosen.name,
        need.iter()
            .filter(|(t, n)| archive.segments.get(t).is_some_and(|x| x.contains(n)))
            .count(),
        r.cfg.url
    ));
    let dir = base_root.join(&chosen.name);
    crate::fsutil::private_dir(&dir, 0o755)?;
    for fs in &chosen.files {
        let obj = match chosen.encrypted_to.is_empty() {
            true => fs.file.clone(),
            false => format!("{}.age", fs.file),
        };
        let key = r.key(&format!("base/{}/{obj}", chosen.name));
        download(
            r,
            &key,
            fs,
            &chosen.encrypted_to,
            ids,
            &dir.join(&fs.file),
            0o644,
        )
        .await?;
    }
    std::fs::write(
        dir.join(base::META),
        serde_json::to_vec_pretty(&chosen.meta)?,
    )?;
    for (t, n) in need {
        let f = format!("{}.zst", wal::file_name(t, n, seg));
        if l.wal.contains_key(&f) {
            fetch_wal(r, l, &f, ids, &wal_dir).await?;
        }
    }
    let mut o = o.clone();
    o.from = Some(staging.to_path_buf());
    pitr_restore::run(&o, s, p).await
}

/// What remote retention would delete: base backups (by name) and WAL files.
#[derive(Debug, Default)]
pub struct Doomed {
    pub bases: Vec<RemoteBase>,
    pub wal: Vec<String>,
}

/// Remote retention for point-in-time recovery, as `wal_retention::plan_pitr` does
/// it locally: base backups by `policy` (all were read back, so the newest is the
/// newest verified one and always stays), WAL segments from the oldest kept base
/// backup's start segment on kept; history files always kept.
pub fn plan(l: &Listing, policy: crate::backup::policy::Policy) -> Doomed {
    use crate::backup::policy::{plan, Item};
    let mut d = Doomed::default();
    let mut bases = l.bases.clone();
    bases.sort_by_key(|b| std::cmp::Reverse(b.meta.finished_at));
    let items: Vec<Item> = bases
        .iter()
        .map(|b| Item {
            created_at: b.meta.finished_at,
            verified: true,
        })
        .collect();
    let keep = plan(&items, policy);
    let mut oldest: Option<u64> = None;
    for (b, k) in bases.into_iter().zip(keep) {
        if k {
            let start = wal::parse_name(&b.meta.start_wal, b.meta.wal_segment_size).map(|(_, n)| n);
            oldest = match (oldest, start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        } else {
            d.bases.push(b);
        }
    }
    let (Some(oldest), Some(newest)) = (oldest, l.bases.last()) else {
        return d;
    };
    let seg = newest.meta.wal_segment_size;
    for f in l.wal.keys() {
        let stem = f.trim_end_matches(".zst");
        if wal::parse_name(stem, seg).is_some_and(|(_, n)| n < oldest) {
            d.wal.push(f.clone());
        }
    }
    d
}

/// `backup prune --remote` for base backups and WAL (after a confirmation unless
/// `yes`); false when the user declined. A base backup's description goes first
/// (it stops counting), then its files; then the WAL only it needed.
pub async fn prune(
    r: &Remote,
    s: &Settings,
    policy: crate::backup::policy::Policy,
    yes: bool,
    dry_run: bool,
    p: &Printer,
) -> anyhow::Result<bool> {
    let l = list(r, &s.project).await?;
    let d = plan(&l, policy);
    if d.bases.is_empty() && d.wal.is_empty() {
        p.info(format!(
            "nothing to prune in `{}`: every base backup is kept, and the WAL they need",
            r.cfg.url
        ));
        return Ok(true);
    }
    for b in &d.bases {
        p.info(format!(
            "would delete base backup `{}` ({})",
            r.url_of(&format!("base/{}", b.name)),
            b.meta.finished_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if !d.wal.is_empty() {
        p.info(format!(
            "would delete {} WAL segment(s) no kept base backup needs",
            d.wal.len()
        ));
    }
    if dry_run {
        return Ok(true);
    }
    let n = d.bases.len();
    if !p.confirm(
        format!(
            "Delete {n} remote base backup(s) and {} WAL segment(s)?",
            d.wal.len()
        ),
        yes,
        "pruning deletes remote base backups and WAL",
        "pass `--yes` to confirm without a terminal, or `--dry-run` to only look",
    )? {
        p.info("nothing deleted");
        return Ok(false);
    }
    let del = |k: Key| async move {
        match r.store.delete(&k).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(r.fail("deleting from", e)),
        }
    };
    for b in &d.bases {
        del(r.key(&format!("base/{}/{}", b.name, base::META))).await?;
        for f in &b.files {
            let obj = object_name_for(&f.file, &b.encrypted_to);
            del(r.key(&format!("base/{}/{obj}", b.name))).await?;
        }
    }
    for f in &d.wal {
        let obj = object_name_for(f, &l.wal[f].encrypted_to);
        let key = r.key(&format!("wal/{obj}"));
        del(Key::from(format!("{key}.json"))).await?;
        del(key).await?;
    }
    p.done(format!(
        "deleted {n} base backup(s) and {} WAL segment(s) from `{}`",
        d.wal.len(),
        r.cfg.url
    ));
    Ok(true)
}

fn object_name_for(file: &str, encrypted_to: &[String]) -> String {
    match encrypted_to.is_empty() {
        true => file.to_string(),
        false => format!("{file}.age"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::policy::Policy;

    const S: u64 = wal::DEFAULT_SEGMENT_SIZE;

    fn sums(file: &str) -> FileSums {
        FileSums {
            file: file.into(),
            plain: Sum::default(),
            stored: Sum::default(),
        }
    }

    fn base_at(day: u32, start: u64) -> RemoteBase {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(3, 0, 0)
            .unwrap()
            .and_utc();
        RemoteBase {
            name: format!("p-base-{day}"),
            meta: BaseMeta {
                project: "p".into(),
                pg_major: 15,
                started_at: at,
                finished_at: at,
                start_lsn: format!("0/{:X}", start * S),
                end_lsn: format!("0/{:X}", start * S + 0x100),
                timeline: 1,
                start_wal: wal::file_name(1, start, S),
                end_wal: wal::file_name(1, start, S),
                wal_segment_size: S,
                bytes: 1,
                sha256: String::new(),
                verified: true,
            },
            files: vec![sums(base::TAR)],
            encrypted_to: Vec::new(),
            shipped_at: at,
        }
    }

    fn listing() -> Listing {
        let mut l = Listing {
            bases: vec![base_at(1, 2), base_at(10, 5), base_at(20, 8)],
            ..Listing::default()
        };
        let mut add = |f: String| {
            l.wal.insert(
                f.clone(),
                RemoteWal {
                    sums: sums(&f),
                    archived_at: Utc::now(),
                    sha256_line: None,
                    encrypted_to: Vec::new(),
                },
            );
        };
        for n in 2..=9 {
            add(format!("{}.zst", wal::file_name(1, n, S)));
        }
        add("00000002.history.zst".into());
        l
    }

    #[test]
    fn remote_retention_keeps_the_wal_of_the_oldest_kept_base_backup_on() {
        let keep_one = Policy {
            keep_last: 1,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        let d = plan(&listing(), keep_one);
        let names: Vec<&str> = d.bases.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["p-base-10", "p-base-1"]);
        let want: Vec<String> = (2..8)
            .map(|n| format!("{}.zst", wal::file_name(1, n, S)))
            .collect();
        assert_eq!(
            d.wal, want,
            "segments before the kept base's start; no history"
        );

        // A policy that keeps nothing still keeps the newest base backup and its WAL.
        let none = Policy {
            keep_last: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        let d = plan(&listing(), none);
        assert!(
            !d.bases.iter().any(|b| b.name == "p-base-20"),
            "the newest base backup stays"
        );
        assert!(!d
            .wal
            .iter()
            .any(|f| f.starts_with(&wal::file_name(1, 8, S))));

        // Two kept: WAL from the older one's start on.
        let two = Policy {
            keep_last: 2,
            ..none
        };
        let d = plan(&listing(), two);
        assert_eq!(d.bases.len(), 1);
        assert_eq!(d.wal.len(), 3, "{:?}", d.wal);
    }
}
