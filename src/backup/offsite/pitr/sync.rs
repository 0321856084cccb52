//! `pgbox backup sync --remote`: every WAL file, then every base backup, not yet
//! counted in the store, uploaded (encrypted to `encrypt_to`), read back, then
//! described by the `.json` that makes it count.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use object_store::path::Path as Key;

use super::{list, object_name, put_json, FileSums, RemoteBase, RemoteWal, BASE_FILES};
use crate::backup::{base, wal};
use crate::config::Settings;
use crate::crypt::Recipients;
use crate::error::Fail;
use crate::printer::Printer;
use crate::remote::upload::Upload;
use crate::remote::Remote;

/// Upload `path` to `key`, read it back; its sums.
async fn ship_one(
    r: &Remote,
    to: Option<&Recipients>,
    path: &Path,
    key: Key,
    file: &str,
) -> anyhow::Result<FileSums> {
    let up = Upload::begin(r, key, to).await?;
    let done = up.send_file(path, |_| {}).await?;
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
