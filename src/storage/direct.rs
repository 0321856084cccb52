//! Direct mode's data folder on the host: created, given to the container's
//! postgres ids with mode 700, and checked, never taken over when it already holds
//! someone else's files. Under rootless Podman the ownership is set inside the user
//! namespace with `podman unshare`, since the host user cannot chown to a
//! subordinate uid itself.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::Fail;

/// Run `podman unshare CMD...` (inside the rootless user namespace).
pub(super) fn unshare(args: &[&str]) -> Result<String, Fail> {
    let out = std::process::Command::new("podman")
        .arg("unshare")
        .args(args)
        .output()
        .map_err(|e| Fail::new(format!("cannot run `podman unshare`: {e}")))?;
    if !out.status.success() {
        return Err(Fail::new(format!(
            "`podman unshare {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// True when `podman unshare` works for this user (rootless Podman is set up).
pub fn unshare_available() -> bool {
    unshare(&["true"]).is_ok()
}

/// Create the data folder unless it exists. True if created.
fn create(dir: &Path) -> Result<bool, Fail> {
    if dir.exists() {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(|e| {
        Fail::new(format!(
            "cannot create data folder `{}`: {e}",
            dir.display()
        ))
    })?;
    Ok(true)
}

/// True when `dir` holds nothing; a folder that cannot be listed counts as occupied,
/// so it is never taken over.
fn is_empty(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false)
}

/// Direct mode under rootless Podman: create the folder and give it, inside the user
/// namespace, to the container's postgres ids (mode 700); then check from inside.
pub fn prepare_direct_unshare(dir: &Path, uid: u32, gid: u32) -> Result<(), Fail> {
    create(dir)?;
    let d = dir.display().to_string();
    let seen = unshare(&["stat", "-c", "%u %a", &d])?;
    if seen != format!("{uid} 700") {
        let empty = is_empty(dir);
        let owner = seen.split_whitespace().next().unwrap_or("");
        // Inside the namespace the user is root (0); other owners mean someone else's data.
        if !empty && owner != "0" && owner != uid.to_string() {
            return Err(wrong_owner(
                dir,
                owner.parse().unwrap_or(u32::MAX),
                uid,
                gid,
            ));
        }
        unshare(&["chown", &format!("{uid}:{gid}"), &d])?;
        unshare(&["chmod", "700", &d])?;
    }
    let seen = unshare(&["stat", "-c", "%u %a", &d])?;
    if seen != format!("{uid} 700") {
        return Err(Fail::new(format!(
            "data folder `{d}` is `{seen}` inside the user namespace, not `{uid} 700`"
        )));
    }
    Ok(())
}

/// What `prepare_direct` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    pub created: bool,
    pub changed_owner: bool,
    pub changed_mode: bool,
}

fn fix_command(dir: &Path, uid: u32, gid: u32) -> String {
    let d = dir.display();
    format!("sudo chown -R {uid}:{gid} '{d}' && sudo chmod 700 '{d}'")
}

fn wrong_owner(dir: &Path, owner: u32, uid: u32, gid: u32) -> Fail {
    Fail::new(format!(
        "data folder `{}` is owned by uid {owner}, but PostgreSQL in the container runs as uid {uid}",
        dir.display()
    ))
    .hint(format!(
        "run `{}`, or set `mode = \"volume\"` under `[storage]` in pgbox.toml",
        fix_command(dir, uid, gid)
    ))
}

/// Make `dir` ready for direct mode: exists, owned by uid:gid, mode 700.
/// A folder that already holds files of another owner is never taken over.
pub fn prepare_direct(dir: &Path, uid: u32, gid: u32) -> Result<Prepared, Fail> {
    let mut done = Prepared {
        created: create(dir)?,
        ..Prepared::default()
    };
    let meta = fs::metadata(dir)
        .map_err(|e| Fail::new(format!("cannot read `{}`: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(
            Fail::new(format!("data path `{}` is not a folder", dir.display()))
                .hint("point `path` under `[storage]` in pgbox.toml at a folder"),
        );
    }
    if meta.uid() != uid || meta.gid() != gid {
        let empty = is_empty(dir);
        if !empty && meta.uid() != uid {
            return Err(wrong_owner(dir, meta.uid(), uid, gid));
        }
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| {
            Fail::new(format!(
                "cannot give data folder `{}` to uid {uid}: {e}",
                dir.display()
            ))
            .hint(format!(
                "run `{}`, or use `mode = \"volume\"`",
                fix_command(dir, uid, gid)
            ))
        })?;
        done.changed_owner = true;
    }
    let meta = fs::metadata(dir)
        .map_err(|e| Fail::new(format!("cannot read `{}`: {e}", dir.display())))?;
    if meta.mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            Fail::new(format!("cannot set mode 700 on `{}`: {e}", dir.display()))
                .hint(format!("run `{}`", fix_command(dir, uid, gid)))
        })?;
        done.changed_mode = true;
    }
    verify_direct(dir, uid, gid)?;
    Ok(done)
}

/// Check, without changing anything, that `dir` is ready for direct mode.
pub fn verify_direct(dir: &Path, uid: u32, gid: u32) -> Result<(), Fail> {
    let meta = fs::metadata(dir)
        .map_err(|e| Fail::new(format!("cannot read `{}`: {e}", dir.display())))?;
    if meta.uid() != uid {
        return Err(wrong_owner(dir, meta.uid(), uid, gid));
    }
    if meta.mode() & 0o777 != 0o700 {
        return Err(Fail::new(format!(
            "data folder `{}` has mode {:o}; PostgreSQL requires 700",
            dir.display(),
            meta.mode() & 0o777
        ))
        .hint(format!("run `{}`", fix_command(dir, uid, gid))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    use crate::storage::euid;

    #[test]
    fn prepare_creates_and_sets_mode_for_own_uid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let (uid, gid) = (euid(), unsafe { libc::getegid() });
        let done = prepare_direct(&dir, uid, gid).unwrap();
        assert!(done.created);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(prepare_direct(&dir, uid, gid).unwrap(), Prepared::default());
    }

    #[test]
    fn occupied_folder_of_another_owner_is_refused_with_fix() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("file"), "x").unwrap();
        let other = euid() + 4321;
        let err = prepare_direct(tmp.path(), other, other).unwrap_err();
        assert!(
            err.message.contains(&format!("runs as uid {other}")),
            "{}",
            err.message
        );
        assert!(err
            .hint
            .unwrap()
            .contains(&format!("sudo chown -R {other}:{other}")));
    }
}
