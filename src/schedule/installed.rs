//! `.pgbox/schedule.json`: what `install` did, kept for `status` and `remove`,
//! read with the one strict record reader (`fsutil::read_record`).
//!
//! Reading tells three cases apart: no file (nothing installed, no run yet), a
//! record, and a file that cannot be read or parsed. The last is an error naming
//! the file, never taken for "not installed": a status that called a corrupt
//! record "no schedule" (or ignored a corrupt last run) would report something
//! untrue to the monitor that reads its exit code.

use std::io::ErrorKind;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Mechanism;
use crate::config::Settings;
use crate::fsutil::{read_record, RecordError};

/// What `install` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Installed {
    pub mechanism: Mechanism,
    pub system: bool,
    pub expression: String,
    pub cron: Option<String>,
    pub on_calendar: Option<String>,
    pub files: Vec<PathBuf>,
    pub installed_at: DateTime<Utc>,
}

const WHAT: &str = "the installed schedule";

impl Installed {
    pub fn path(s: &Settings) -> PathBuf {
        s.state_dir().join("schedule.json")
    }

    pub fn read(s: &Settings) -> Result<Option<Installed>, RecordError> {
        read_record(&Self::path(s), WHAT)
    }

    pub fn write(&self, s: &Settings) -> Result<(), RecordError> {
        let path = Self::path(s);
        let write = |source| RecordError::Write {
            what: WHAT,
            path: path.clone(),
            source,
        };
        crate::fsutil::private_dir(&s.state_dir(), 0o700).map_err(write)?;
        let bytes = serde_json::to_vec_pretty(self).expect("a record serialises");
        crate::fsutil::write_atomic(&path, &bytes, 0o600).map_err(write)
    }

    /// Remove the record; `false` when there was none.
    pub fn remove(s: &Settings) -> Result<bool, RecordError> {
        let path = Self::path(s);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RecordError::Remove {
                what: WHAT,
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_record_is_none_and_a_corrupt_one_an_error() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.json");
        assert!(read_record::<Installed>(&path, WHAT).unwrap().is_none());
        std::fs::write(&path, "{").unwrap();
        let e = read_record::<Installed>(&path, WHAT).unwrap_err();
        assert!(matches!(e, RecordError::Parse { .. }), "{e:?}");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = read_record::<Installed>(&path, WHAT).unwrap_err();
        assert!(matches!(e, RecordError::Read { .. }), "{e:?}");
    }
}
