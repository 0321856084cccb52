//! `pgbox restore --to-* --from-remote`: the choice made on the listing, then the
//! chosen base backup and its WAL downloaded (decrypted, both sums checked, the
//! archive times set back) into a private staging folder under `.pgbox/`, which the
//! point-in-time restore reads as its backup folder; the folder goes at the end.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures_util::io::{AsyncRead, AsyncReadExt};
use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::{list, stored_name, FileSums, Listing};
use crate::backup::base::{self, BaseMeta};
use crate::backup::pitr_restore::{self, target, PitrOptions};
use crate::backup::wal;
use crate::cancel::Guard;
use crate::config::Settings;
use crate::crypt::Identities;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::remote::upload::Hasher;
use crate::remote::Remote;

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
    let obj = stored_name(f, &w.encrypted_to);
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
        let obj = stored_name(&fs.file, &chosen.encrypted_to);
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
