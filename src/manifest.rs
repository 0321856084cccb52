//! The JSON manifest beside each dump backup (`<file>.json`): what the file holds,
//! its size and sha256, when it was made and verified, and where its off-site
//! copy is. A leaf shared by the backup operations and the off-site store, which
//! publishes the same manifest beside each object.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Compression, Format};

/// The JSON manifest beside each backup file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub file: String,
    pub project: String,
    pub database: String,
    /// "database" for one database, "globals" for roles and tablespaces.
    pub kind: String,
    pub format: Format,
    pub compression: Compression,
    pub level: Option<u32>,
    pub bytes: u64,
    pub sha256: String,
    pub duration_ms: u64,
    pub server_version: String,
    pub pg_dump_version: String,
    pub pgbox_version: String,
    pub image: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub verified_at: Option<DateTime<Utc>>,
    /// The age recipients the off-site copy is encrypted to (none: not encrypted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypted_to: Vec<String>,
    /// The encrypted object's size and sha256 (`bytes` and `sha256` are the plaintext's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<crate::digest::Sum>,
    /// The off-site copy (`s3://bucket/key`), once it was uploaded and read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

pub fn manifest_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

impl Manifest {
    pub fn read(file: &Path) -> Option<Manifest> {
        Self::read_checked(file).ok()
    }

    /// The manifest of `file`, or why it cannot be read.
    pub fn read_checked(file: &Path) -> Result<Manifest, String> {
        let bytes = std::fs::read(manifest_path(file)).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("not a pgbox manifest ({e})"))
    }

    pub fn write(&self, file: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        crate::fsutil::write_atomic(&manifest_path(file), &json, 0o600)?;
        Ok(())
    }
}
