//! What pgbox records about a project between runs, in `.pgbox/state.json`: the
//! storage decision and the image it was made with, the digest of the password last
//! applied to the cluster, and the extensions already created; and, while a major
//! upgrade is under way or awaits `--finalize`, `.pgbox/upgrade.json` ([`Upgrade`]);
//! while a point-in-time restore is under way, `.pgbox/pitr-restore.json` ([`PitrRestore`]);
//! while the copy of a `restore --into-new` exists, `.pgbox/recovered.json` ([`Recovered`]).
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
    /// `pg_stat_statements` exists in the `postgres` maintenance database, where
    /// `pgbox stats`, `top` and `metrics` read the top queries of every database.
    #[serde(default)]
    pub statements_view: bool,
}

impl ProjectState {
    fn path(s: &Settings) -> std::path::PathBuf {
        s.state_dir().join("state.json")
    }

    /// The record, or an empty one for a project that has none yet.
    pub fn load(s: &Settings) -> Result<ProjectState, Fail> {
        Ok(read_record(
            &Self::path(s),
            "it records the storage mode in use and the password applied to the cluster; \
             restore it from a copy, or delete it to let `pgbox up` decide again",
        )?
        .unwrap_or_default())
    }

    pub fn save(&self, s: &Settings) -> anyhow::Result<()> {
        write_record(s, &Self::path(s), self)
    }
}

/// A JSON record under `.pgbox/`: None when missing; unreadable or corrupt is an
/// error with `hint` (what it records and how to recover), never "none".
fn read_record<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    hint: &str,
) -> Result<Option<T>, Fail> {
    use crate::fsutil::RecordError;
    crate::fsutil::read_record(path, "record").map_err(|e| {
        match &e {
            RecordError::Parse { source, .. } => {
                Fail::new(format!("`{}` is not valid: {source}", path.display()))
            }
            RecordError::Read { source, .. } => {
                Fail::new(format!("cannot read `{}`: {source}", path.display()))
            }
            _ => Fail::typed(e),
        }
        .hint(hint)
    })
}

/// Write a record atomically, readable by the owner only.
fn write_record<T: Serialize>(s: &Settings, path: &std::path::Path, v: &T) -> anyhow::Result<()> {
    crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
    let json = serde_json::to_vec_pretty(v)?;
    crate::fsutil::write_atomic(path, &json, 0o600)?;
    Ok(())
}

fn remove_record(path: &std::path::Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
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
        read_record(
            &Self::path(s),
            "it records a major upgrade in progress (which data is old and which new); \
             restore it from a copy, or compare `[postgres] version` and `[storage]` in pgbox.toml \
             with the data folders by hand before deleting it",
        )
    }

    pub fn save(&self, s: &Settings) -> anyhow::Result<()> {
        write_record(s, &Self::path(s), self)
    }

    pub fn remove(s: &Settings) -> anyhow::Result<()> {
        remove_record(&Self::path(s))
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

/// Where a point-in-time restore stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PitrPhase {
    /// The recovered cluster is being built in the scratch location.
    Building,
    /// The scratch location is being swapped in (direct: two renames; volume: one
    /// rewrite of pgbox.toml).
    Swapping,
}

/// `.pgbox/pitr-restore.json`: a point-in-time restore under way, so the next
/// `restore` removes what a killed one left and `up` never starts on a half swap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PitrRestore {
    pub phase: PitrPhase,
    pub mode: StorageMode,
    /// The scratch folder (direct) or volume (volume mode).
    pub scratch: String,
    /// Direct mode: where the current data folder is moved during the swap.
    #[serde(default)]
    pub aside: Option<String>,
    pub started_at: String,
}

impl PitrRestore {
    pub fn path(s: &Settings) -> std::path::PathBuf {
        s.state_dir().join("pitr-restore.json")
    }

    pub fn load(s: &Settings) -> Result<Option<PitrRestore>, Fail> {
        read_record(
            &Self::path(s),
            "it records a point-in-time restore under way (its scratch location and, \
             during the swap, where the data folder was moved); check `.pgbox/` for \
             `data-pitr-*` and `data-before-pitr-*` folders before deleting it",
        )
    }

    pub fn save(&self, s: &Settings) -> anyhow::Result<()> {
        write_record(s, &Self::path(s), self)
    }

    pub fn remove(s: &Settings) -> anyhow::Result<()> {
        remove_record(&Self::path(s))
    }

    /// A direct-mode swap cut between its two renames (a kill or a power loss):
    /// the data folder is gone and the current data is aside. Move it back, so
    /// nothing starts on an empty folder. Some(message) when something was done.
    pub fn repair_swap(s: &Settings) -> Result<Option<String>, Fail> {
        let Some(r) = Self::load(s)? else {
            return Ok(None);
        };
        let Some(aside) = r.aside.as_deref().map(std::path::PathBuf::from) else {
            return Ok(None);
        };
        if r.phase != PitrPhase::Swapping || s.data_dir.exists() || !aside.exists() {
            return Ok(None);
        }
        fs::rename(&aside, &s.data_dir).map_err(|e| {
            Fail::new(format!(
                "a point-in-time restore was cut during its swap, and moving `{}` back to `{}` failed: {e}",
                aside.display(),
                s.data_dir.display()
            ))
            .hint("rename it yourself, then delete `.pgbox/pitr-restore.json`")
        })?;
        crate::fsutil::sync_dir(s.data_dir.parent().unwrap_or(std::path::Path::new(".")));
        Ok(Some(format!(
            "a point-in-time restore was cut during its swap: the data from before it was moved back to `{}`",
            s.data_dir.display()
        )))
    }
}

/// `.pgbox/recovered.json`: the cluster `pgbox restore --into-new` recovered and
/// runs beside the project's, until `pgbox restore --discard-new` (or `down --purge`)
/// removes it. Its location is no scratch leftover: a later restore leaves it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    /// The container serving the copy (`<project container>-recovered`).
    pub container: String,
    /// The folder (direct) or volume (volume mode) holding its data.
    pub location: String,
    pub mode: StorageMode,
    /// The host port it is published on (same bind address as the project's).
    pub port: u16,
    /// The recovery target, as the restore described it.
    pub target: String,
    pub created_at: String,
}

impl Recovered {
    pub fn path(s: &Settings) -> std::path::PathBuf {
        s.state_dir().join("recovered.json")
    }

    pub fn load(s: &Settings) -> Result<Option<Recovered>, Fail> {
        read_record(
            &Self::path(s),
            "it records the copy `pgbox restore --into-new` made (its container and data \
             location); check `docker ps -a` for a `-recovered` container and `.pgbox/` for \
             `data-pitr-*` folders before deleting it",
        )
    }

    pub fn save(&self, s: &Settings) -> anyhow::Result<()> {
        write_record(s, &Self::path(s), self)
    }

    pub fn remove(s: &Settings) -> anyhow::Result<()> {
        remove_record(&Self::path(s))
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

    #[test]
    fn a_swap_cut_between_its_renames_is_moved_back() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&tmp.path().join("pgbox.toml"), &[]);
        let aside = s.data_dir.with_file_name("data-before-pitr-x");
        fs::create_dir_all(&aside).unwrap();
        fs::write(aside.join("PG_VERSION"), "15").unwrap();
        let mut r = PitrRestore {
            phase: PitrPhase::Building,
            mode: StorageMode::Direct,
            scratch: s
                .data_dir
                .with_file_name("data-pitr-x")
                .display()
                .to_string(),
            aside: Some(aside.display().to_string()),
            started_at: String::new(),
        };
        r.save(&s).unwrap();
        // Still building: the data folder was never moved, nothing to repair.
        assert_eq!(PitrRestore::repair_swap(&s).unwrap(), None);
        r.phase = PitrPhase::Swapping;
        r.save(&s).unwrap();
        assert!(PitrRestore::repair_swap(&s).unwrap().is_some());
        assert_eq!(
            fs::read_to_string(s.data_dir.join("PG_VERSION")).unwrap(),
            "15"
        );
        assert!(!aside.exists());
        // Repaired once; the data folder exists now, so a second call does nothing.
        assert_eq!(PitrRestore::repair_swap(&s).unwrap(), None);
    }

    #[test]
    fn the_recovered_record_round_trips_and_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&tmp.path().join("pgbox.toml"), &[]);
        assert_eq!(Recovered::load(&s).unwrap(), None);
        let r = Recovered {
            container: "pgbox-app-recovered".into(),
            location: "pgbox-app-data-pitr-x".into(),
            mode: StorageMode::Volume,
            port: 5433,
            target: "the newest archived WAL".into(),
            created_at: "2026-11-28T01:00:00+00:00".into(),
        };
        r.save(&s).unwrap();
        assert_eq!(Recovered::load(&s).unwrap(), Some(r));
        Recovered::remove(&s).unwrap();
        assert_eq!(Recovered::load(&s).unwrap(), None);
    }
}
