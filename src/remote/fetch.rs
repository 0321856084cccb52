//! Reading a remote backup back: its stored bytes checked against the manifest
//! without any key ([`check_stored`]), or downloaded into a private temporary
//! folder, decrypted on the way with the `--identity` key, and checked on both
//! sides (ciphertext and plaintext sha256) before `restore` or `verify --deep`
//! touch it ([`fetch`]). Streamed throughout: memory stays flat.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::io::{AsyncRead, AsyncReadExt};
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::listing::RemoteEntry;
use super::upload::{read_sum, Hasher, Sum};
use super::Remote;
use crate::cancel::Guard;
use crate::crypt::Identities;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

/// What the stored object must be: the ciphertext's sums when encrypted.
pub fn stored_sum(e: &RemoteEntry) -> Sum {
    e.manifest.ciphertext.clone().unwrap_or(Sum {
        bytes: e.manifest.bytes,
        sha256: e.manifest.sha256.clone(),
    })
}

/// Read the object back and compare it with its manifest; no key needed.
pub async fn check_stored(r: &Remote, e: &RemoteEntry) -> anyhow::Result<()> {
    let want = stored_sum(e);
    let got = read_sum(r, &e.key).await?;
    if got != want {
        return Err(Fail::new(format!(
            "`{}` does not match its manifest: {} bytes, sha256 {}; expected {} bytes, sha256 {}",
            r.url_of(&e.name),
            got.bytes,
            got.sha256,
            want.bytes,
            want.sha256
        ))
        .hint("the stored copy is damaged; use another backup (`pgbox backup list --remote`)")
        .into());
    }
    Ok(())
}

/// A downloaded, decrypted and checked backup; the folder goes with the guard.
pub struct Fetched {
    pub path: PathBuf,
    pub guard: Guard,
}

/// Download `e` into a private folder under `dir`, decrypting with `ids`.
pub async fn fetch(
    r: &Remote,
    e: &RemoteEntry,
    ids: Option<&Identities>,
    dir: &Path,
    p: &Printer,
) -> anyhow::Result<Fetched> {
    let m = &e.manifest;
    let ids = match (m.encrypted_to.is_empty(), ids) {
        (true, _) => None,
        (false, Some(ids)) => Some(ids),
        (false, None) => {
            return Err(Fail::new(format!(
                "`{}` is encrypted to {}",
                e.name,
                m.encrypted_to.join(", ")
            ))
            .hint("pass `--identity FILE`, the age key file of one of those recipients")
            .code(EXIT_USAGE)
            .into())
        }
    };
    let folder = dir.join(format!(".pgbox-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    crate::fsutil::private_dir(&folder, 0o700)?;
    let guard = Guard::path(folder.clone());
    let path = folder.join(&m.file);
    let stored = Arc::new(Mutex::new(Hasher::new()));
    let bar = p.bytes_bar(format!("downloading `{}`", e.name), Some(e.size));
    let body = {
        let (stored, bar) = (stored.clone(), bar.clone());
        r.store
            .get(&e.key)
            .await
            .map_err(|err| r.fail("downloading from", err))?
            .into_stream()
            .inspect_ok(move |b| {
                stored.lock().expect("hash lock").update(b);
                bar.inc(b.len() as u64);
            })
            .map_err(std::io::Error::other)
            .into_async_read()
    };
    let mut reader: Box<dyn AsyncRead + Unpin + Send> = match ids {
        Some(ids) => Box::new(crate::crypt::decrypt(body, ids, &m.encrypted_to).await?),
        None => Box::new(body),
    };
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await?;
    let mut plain = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).await.map_err(|err| {
            Fail::new(format!("cannot read `{}` from the store: {err}", e.name))
                .hint("the download broke off or the stored copy is damaged; try again, or use another backup")
        })?;
        if n == 0 {
            break;
        }
        plain.update(&buf[..n]);
        out.write_all(&buf[..n]).await?;
    }
    out.sync_all().await?;
    drop(out);
    bar.finish_and_clear();
    let stored = std::mem::replace(&mut *stored.lock().expect("hash lock"), Hasher::new()).sum();
    let plain = plain.sum();
    let want = stored_sum(e);
    if stored != want || plain.sha256 != m.sha256 || plain.bytes != m.bytes {
        return Err(Fail::new(format!(
            "`{}` does not match its manifest (stored sha256 {}, expected {}; content sha256 {}, expected {})",
            r.url_of(&e.name),
            stored.sha256,
            want.sha256,
            plain.sha256,
            m.sha256
        ))
        .hint("the stored copy is damaged; use another backup (`pgbox backup list --remote`)")
        .into());
    }
    // The manifest beside it, as a local backup has one: restore checks it again.
    let mut local = m.clone();
    local.encrypted_to.clear();
    local.ciphertext = None;
    local.write(&path)?;
    Ok(Fetched { path, guard })
}
