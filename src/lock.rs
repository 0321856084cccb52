//! Per-project locks, so two pgbox processes never work on one project at once.
//!
//! A lock is `flock` on a file under `.pgbox/`: the kernel releases it when the
//! process ends, however it ends, so a killed run never leaves a stale lock. The
//! file holds the holder's pid and command, so the one that loses says who holds it.
//! Commands that change the project (up, down, backup, restore, save, schedule run)
//! take the project lock; holding it also means anything a previous run left behind
//! is stale and may be cleaned up.

use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::Fail;

/// An exclusive lock on a file, released when dropped or when the process dies.
#[derive(Debug)]
pub struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    /// Take the lock without waiting; `None` when another process holds it.
    pub fn try_take(path: &Path) -> std::io::Result<Option<FileLock>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor this function owns.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(FileLock { file }))
    }

    /// Record who holds the lock (read by the one that loses).
    fn describe(&mut self, holder: &str) {
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = writeln!(self.file, "{} {holder}", std::process::id());
    }

    fn holder(path: &Path) -> Option<(u32, String)> {
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .read_to_string(&mut text)
            .ok()?;
        let (pid, what) = text.trim().split_once(' ')?;
        Some((pid.parse().ok()?, what.to_string()))
    }
}

/// The lock file of a project.
pub fn project_lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("lock")
}

/// Take the project's lock for `command` (`up`, `backup`, ...), or say which pgbox
/// holds it.
pub fn project(state_dir: &Path, project: &str, command: &str) -> Result<FileLock, Fail> {
    let path = project_lock_path(state_dir);
    if !state_dir.exists() {
        // `.pgbox` holds the secret too: private from the start.
        let _ = crate::fsutil::private_dir(state_dir, 0o700);
    }
    match FileLock::try_take(&path) {
        Ok(Some(mut l)) => {
            l.describe(command);
            Ok(l)
        }
        Ok(None) => {
            // The winner writes its name right after taking the lock: give it a moment.
            let mut holder = FileLock::holder(&path);
            for _ in 0..20 {
                if holder.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
                holder = FileLock::holder(&path);
            }
            let who = holder
                .map(|(pid, what)| format!("`pgbox {what}` (pid {pid})"))
                .unwrap_or_else(|| "another pgbox".into());
            Err(Fail::new(format!(
                "{who} is already running for `{project}`; this `pgbox {command}` did nothing"
            ))
            .hint("wait for it to finish and run this again"))
        }
        Err(e) => Err(Fail::new(format!(
            "cannot take the project lock `{}`: {e}",
            path.display()
        ))
        .hint("check that the project's `.pgbox` folder is writable by you")),
    }
}

/// The pid of the pgbox holding the project's lock right now, if one does.
pub fn held_by(state_dir: &Path) -> Option<u32> {
    let path = project_lock_path(state_dir);
    if !path.exists() {
        return None;
    }
    match FileLock::try_take(&path) {
        Ok(None) => FileLock::holder(&path).map(|(pid, _)| pid),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_with_the_holder_named_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = project(dir.path(), "app", "backup").unwrap();
        // flock locks belong to the open file description: a second open is refused.
        let err = project(dir.path(), "app", "up").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`pgbox backup`"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert_eq!(held_by(dir.path()), Some(std::process::id()));
        drop(first);
        assert_eq!(held_by(dir.path()), None);
        project(dir.path(), "app", "up").unwrap();
    }
}
