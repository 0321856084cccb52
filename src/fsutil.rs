//! Small file-system helpers: atomic writes with a chosen mode, private folders,
//! and the strict reader of pgbox's JSON records.
//!
//! Anything pgbox writes for the user (pgbox.toml, the password, state) goes to a
//! temporary name in the same folder, is fsynced, then renamed into place, so a
//! crash or a full disk never leaves a half-written file behind.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Write `bytes` to `path` atomically with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `p` against `base` unless it is absolute.
pub fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Make a rename or a removal in `dir` durable (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Free bytes for an unprivileged writer in the file system holding `path`, or the
/// nearest existing folder above it (None when unknown).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; the path is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// The device (file system) holding `path`, or the nearest existing folder above it.
pub fn device(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    path.ancestors()
        .find(|p| p.exists())
        .and_then(|p| fs::metadata(p).ok())
        .map(|m| m.dev())
}

/// Write a `.gitignore` holding `text` into `dir` unless one is there (the user's
/// own is never replaced); true when it was written.
pub fn gitignore_once(dir: &Path, text: &str) -> std::io::Result<bool> {
    let path = dir.join(".gitignore");
    if path.exists() {
        return Ok(false);
    }
    write_atomic(&path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// Create `dir` (and parents) and set its mode.
pub fn private_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

/// A JSON record pgbox keeps (a schedule, a last attempt) that could not be read,
/// written or removed; `what` names it
/// for the user ("the installed schedule", "the last run's record").
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {what} `{}`", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {what} `{}`: it is not the JSON pgbox writes", path.display())]
    Parse {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {what} `{}`", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove {what} `{}`", path.display())]
    Remove {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Refuse a secret file (`what`: "the age identity file") that its group or others
/// may read or write: the same rule as ssh's for private keys.
pub fn check_private(path: &Path, what: &str) -> Result<(), crate::error::Fail> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        crate::error::Fail::new(format!("cannot read {what} `{}`: {e}", path.display()))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(crate::error::Fail::new(format!(
            "{what} `{}` is readable by others (mode {mode:o}); refusing to use it",
            path.display()
        ))
        .hint(format!("make it private: `chmod 600 {}`", path.display())));
    }
    Ok(())
}

/// The record at `path`: `None` when there is no file, an error when there is one
/// that cannot be read or parsed, never taken for "no record": a reader that called
/// a corrupt record absent would act on something untrue (a prune after a failed
/// backup, a healthy status after a failed run).
pub fn read_record<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, RecordError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RecordError::Read {
                what,
                path: path.into(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| RecordError::Parse {
            what,
            path: path.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_sets_mode_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("secret");
        write_atomic(&p, b"abc", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"abc");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        write_atomic(&p, b"xyz", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"xyz");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_leaves_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("missing-dir").join("f");
        assert!(write_atomic(&p, b"abc", 0o600).is_err());
        assert!(!p.exists());
    }
}
