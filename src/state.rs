//! What pgbox records about a project between runs, in `.pgbox/state.json`: the
//! storage decision and the image it was made with, the digest of the password last
//! applied to the cluster, and the extensions already created; and, while a major
//! upgrade is under way or awaits `--finalize`, `.pgbox/upgrade.json` ([`Upgrade`]).
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

/// One side of a major upgrade: the pgbox.toml values that select its major, image
/// and data location (`None`: the key is absent, so its default applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    pub major: u32,
    pub base_image: Option<String>,
    pub path: Option<String>,
    pub volume: Option<String>,
}

/// Where a major upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradePhase {
    /// The new cluster is being built; pgbox.toml still selects the old one.
    Building,
    /// pgbox.toml selects the new cluster; the old data is kept until `--finalize`.
    Switched,
}

/// `.pgbox/upgrade.json`: the upgrade in progress, written atomically at each step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upgrade {
    pub phase: UpgradePhase,
    pub method: String,
    pub old: Side,
    pub new: Side,
    /// The storage mode both sides use.
    pub mode: StorageMode,
    pub started_at: String,
    #[serde(default)]
    pub switched_at: Option<String>,
    /// The files of the automatic `backup --all` taken before anything changed.
    #[serde(default)]
    pub backup: Vec<String>,
    /// Whether the server was running when the upgrade began.
    #[serde(default)]
    pub was_running: bool,
    /// Rows inserted, updated and deleted on the new cluster when it went live
    /// (`pg_stat_user_tables`), so a rollback can say how many writes it drops.
    #[serde(default)]
    pub writes_at_switch: Option<i64>,
    /// The same per table (`database`.`schema.table`), so a rollback names them.
    #[serde(default)]
    pub table_writes_at_switch: Option<std::collections::BTreeMap<String, i64>>,
}

impl Upgrade {
    pub fn path(s: &Settings) -> std::path::PathBuf {
        s.state_dir().join("upgrade.json")
    }

    /// The upgrade in progress, if any; a damaged record is an error, never "none".
    pub fn load(s: &Settings) -> Result<Option<Upgrade>, Fail> {
        let path = Self::path(s);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Fail::new(format!("cannot read `{}`: {e}", path.display()))),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Fail::new(format!("`{}` is not valid: {e}", path.display())).hint(
                "it records a major upgrade in progress (which data is old and which new); \
                 restore it from a copy, or compare `[postgres] version` and `[storage]` in pgbox.toml \
                 with the data folders by hand before deleting it",
            )
        })
    }

    pub fn save(&self, s: &Settings) -> anyhow::Result<()> {
        crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
        let json = serde_json::to_vec_pretty(self)?;
        crate::fsutil::write_atomic(&Self::path(s), &json, 0o600)?;
        Ok(())
    }

    pub fn remove(s: &Settings) -> anyhow::Result<()> {
        match fs::remove_file(Self::path(s)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// What to do with an upgrade that did not finish.
    pub fn resume_hint(&self) -> String {
        format!(
            "`pgbox upgrade --to {}` resumes it, `pgbox upgrade --rollback` discards it",
            self.new.major
        )
    }

    /// One line for `status`.
    pub fn describe(&self) -> String {
        match self.phase {
            UpgradePhase::Building => format!(
                "upgrade {} → {} did not finish: {}",
                self.old.major,
                self.new.major,
                self.resume_hint()
            ),
            UpgradePhase::Switched => format!(
                "upgraded {} → {}; the old data is kept: `pgbox upgrade --finalize` deletes it, `pgbox upgrade --rollback` goes back",
                self.old.major, self.new.major
            ),
        }
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
