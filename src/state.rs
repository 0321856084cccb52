//! What pgbox records about a project between runs, in `.pgbox/state.json`: the
//! storage decision and the image it was made with, the digest of the password last
//! applied to the cluster, and the extensions already created.
//!
//! The record is a leaf: the storage decision ([`Decision`]) is defined here
//! because it is part of the record, so `storage` (which makes decisions) and the
//! container spec (which follows them) both read it without importing each other.
//! A missing file is a fresh project; an unreadable or corrupt one is an error,
//! never silently an empty record (that would forget the storage mode in use and
//! the password applied to the cluster).

use std::fs;

use serde::{Deserialize, Serialize};

use crate::config::{Settings, StorageMode};
use crate::error::Fail;

/// The mode in use, why, and the container's postgres ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub mode: StorageMode,
    pub reason: String,
    pub uid: u32,
    pub gid: u32,
    /// Direct mode under rootless Podman: the folder is owned through `podman unshare`.
    #[serde(default)]
    pub via_unshare: bool,
}

/// The recorded state of a project (`.pgbox/state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProjectState {
    #[serde(default)]
    pub storage: Option<Decision>,
    /// The image whose postgres ids `storage` was decided with.
    #[serde(default)]
    pub image: Option<String>,
    /// sha256 of the password last applied to the cluster (to detect a change).
    #[serde(default)]
    pub password_sha256: Option<String>,
    /// Extensions already created in the project database.
    #[serde(default)]
    pub extensions: Vec<String>,
}

impl ProjectState {
    fn path(s: &Settings) -> std::path::PathBuf {
        s.state_dir().join("state.json")
    }

    /// The record, or an empty one for a project that has none yet.
    pub fn load(s: &Settings) -> Result<ProjectState, Fail> {
        let path = Self::path(s);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProjectState::default())
            }
            Err(e) => return Err(Fail::new(format!("cannot read `{}`: {e}", path.display()))),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Fail::new(format!("`{}` is not valid: {e}", path.display())).hint(
                "it records the storage mode in use and the password applied to the cluster; \
                 restore it from a copy, or delete it to let `pgbox up` decide again",
            )
        })
    }

    pub fn save(&self, s: &Settings) -> anyhow::Result<()> {
        crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
        let json = serde_json::to_vec_pretty(self)?;
        crate::fsutil::write_atomic(&Self::path(s), &json, 0o600)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_empty_and_corrupt_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&tmp.path().join("pgbox.toml"), &[]);
        assert!(ProjectState::load(&s).unwrap().storage.is_none());
        fs::create_dir_all(s.state_dir()).unwrap();
        fs::write(s.state_dir().join("state.json"), "{not json").unwrap();
        let err = ProjectState::load(&s).unwrap_err();
        assert!(err.message.contains("state.json"), "{}", err.message);
    }
}
