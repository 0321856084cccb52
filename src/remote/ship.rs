//! Shipping a backup off-site: a local backup file uploaded (and read back), or a
//! dump streamed straight from the container (`--remote-only`); then its manifest
//! object, which is what makes it count, and the local note `status` reads.

use std::path::Path;

use chrono::Utc;
use object_store::{ObjectStoreExt, PutPayload};

use super::upload::{Upload, Uploaded};
use super::Remote;
use crate::crypt::Recipients;
use crate::error::Fail;
use crate::manifest::Manifest;
use crate::printer::{size, Printer};

/// Where a backup goes off-site and how it is sealed.
#[derive(Clone)]
pub struct Shipping {
    pub remote: Remote,
    pub to: Option<Recipients>,
}

impl Shipping {
    /// `[backup.remote]` and `[backup] encrypt_to` of `s`, checked before any dump.
    pub fn from_settings(s: &crate::config::Settings) -> anyhow::Result<Shipping> {
        Ok(Shipping {
            remote: Remote::connect(s)?,
            to: Recipients::resolve(&s.encrypt_to, &s.project_dir)?,
        })
    }

    /// The object name of the backup file `file`.
    pub fn object_name(&self, file: &str) -> String {
        match self.to {
            Some(_) => format!("{file}.age"),
            None => file.to_string(),
        }
    }

    /// Start an upload for the backup file `file`.
    pub async fn begin(&self, file: &str) -> anyhow::Result<Upload> {
        let key = self.remote.key(&self.object_name(file));
        Upload::begin(&self.remote, key, self.to.as_ref()).await
    }

    /// Upload the local backup `path` (whose manifest is `m`), read it back, publish
    /// its manifest; returns the remote manifest.
    pub async fn ship_file(
        &self,
        path: &Path,
        m: &Manifest,
        p: &Printer,
    ) -> anyhow::Result<Manifest> {
        let up = self.begin(&m.file).await?;
        let bar = p.bytes_bar("uploading", Some(m.bytes));
        let done = up.send_file(path, |n| bar.inc(n)).await;
        bar.finish_and_clear();
        let done = done?;
        if done.plain.sha256 != m.sha256 || done.plain.bytes != m.bytes {
            let _ = self.remote.store.delete(&done.key).await;
            return Err(Fail::new(format!(
                "`{}` changed after it was written (sha256 {}, its manifest says {})",
                path.display(),
                done.plain.sha256,
                m.sha256
            ))
            .hint("the file is damaged; make a new backup")
            .into());
        }
        self.publish(m, &done).await
    }

    /// Write the manifest object beside the uploaded, checked object: from now on
    /// it counts. Returns the manifest as stored.
    pub async fn publish(&self, m: &Manifest, done: &Uploaded) -> anyhow::Result<Manifest> {
        let mut rm = m.clone();
        rm.verified_at = Some(Utc::now());
        rm.remote = Some(format!("s3://{}/{}", self.remote.cfg.bucket, done.key));
        if let Some(to) = &self.to {
            rm.encrypted_to = to.names.clone();
            rm.ciphertext = Some(done.stored.clone());
        }
        let json = serde_json::to_vec_pretty(&rm)?;
        let key = object_store::path::Path::from(format!("{}.json", done.key));
        self.remote
            .store
            .put(&key, PutPayload::from(json))
            .await
            .map_err(|e| self.remote.fail("writing the manifest to", e))?;
        Ok(rm)
    }
}

/// The one line `backup` prints for a shipped backup.
pub fn shipped_line(rm: &Manifest) -> String {
    let sealed = match &rm.ciphertext {
        Some(c) => format!(
            ", {} encrypted to {} recipient(s)",
            size(c.bytes),
            rm.encrypted_to.len()
        ),
        None => format!(", {}", size(rm.bytes)),
    };
    format!(
        "shipped `{}` to `{}`{sealed}, read back and matched",
        rm.database,
        rm.remote.as_deref().unwrap_or_default()
    )
}
