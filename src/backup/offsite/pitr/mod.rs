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

pub mod restore;
pub mod retention;
pub mod sync;

pub use restore::restore;
pub use retention::prune;
pub use sync::sync;

use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::backup::base::{self, BaseMeta};
use crate::crypt::Recipients;
use crate::digest::Sum;
use crate::error::Fail;
use crate::remote::Remote;

/// The base backup's files that are shipped, in order; its description last.
pub(crate) const BASE_FILES: [&str; 2] = [base::TAR, "backup_manifest"];

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

pub(crate) fn object_name(file: &str, to: Option<&Recipients>) -> String {
    match to {
        Some(_) => format!("{file}.age"),
        None => file.to_string(),
    }
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    r: &Remote,
    key: &Key,
) -> anyhow::Result<T> {
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

pub(crate) async fn put_json<T: Serialize>(r: &Remote, key: &Key, v: &T) -> anyhow::Result<()> {
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

/// The object name of `file` for a manifest's `encrypted_to`.
pub(crate) fn stored_name(file: &str, encrypted_to: &[String]) -> String {
    match encrypted_to.is_empty() {
        true => file.to_string(),
        false => format!("{file}.age"),
    }
}
