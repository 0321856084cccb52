//! Where PostgreSQL's data lives on the host: mode decision and folder preparation.
//!
//! Direct mode bind-mounts a host folder that must be owned by the container's
//! postgres UID with mode 700. pgbox can only hand a folder to another UID when
//! it runs as root (or already is that UID); otherwise `auto` picks fallback:
//! PostgreSQL runs on a folder inside the container and the entrypoint saves it
//! as `pgsql.tar.zst` in the (user-owned) data folder. The decision and its reason are
//! recorded in `.pgbox/state.json` so `status` can say which mode is used and why.
//!
//! The whole decision lives here: made once (`decide`), recorded and confirmed on
//! every start (`decision`), read back without an engine (`in_effect`), and the
//! data location made ready (`prepare`; the direct-mode folder in `direct`).
//! Fallback mode's safety net on the host is `fallback`; deleting a location is
//! `delete`.

mod delete;
pub mod direct;
pub mod fallback;

pub use delete::delete_data;

use std::collections::HashMap;

use anyhow::Context;

use crate::config::{Settings, StorageMode};
use crate::engine::{Engine, Flavour, LABEL_CONFIG, LABEL_PROJECT};
use crate::error::Fail;
pub use crate::state::Decision;
use crate::state::ProjectState;

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Decide the storage mode for `requested` given the container's postgres ids.
/// `unshare` says whether a rootless Podman can map a folder to those ids for us.
pub fn decide(requested: StorageMode, uid: u32, gid: u32, unshare: bool) -> Result<Decision, Fail> {
    let me = euid();
    let via_unshare = unshare
        && me != 0
        && me != uid
        && matches!(requested, StorageMode::Auto | StorageMode::Direct);
    let (mode, reason) = match requested {
        StorageMode::Auto if via_unshare => (
            StorageMode::Direct,
            format!("rootless Podman maps the container's postgres uid {uid} to one of your subordinate uids; the data folder is given to it with `podman unshare chown`"),
        ),
        StorageMode::Direct => (StorageMode::Direct, "set in pgbox.toml".to_string()),
        StorageMode::Volume => (StorageMode::Volume, "set in pgbox.toml".to_string()),
        StorageMode::Fallback => (StorageMode::Fallback, "set in pgbox.toml".to_string()),
        StorageMode::Auto if me == 0 || me == uid => (
            StorageMode::Direct,
            format!("the data folder can be owned by the container's postgres uid {uid}"),
        ),
        StorageMode::Auto => (
            StorageMode::Fallback,
            format!("uid {me} cannot give a folder to the container's postgres uid {uid} without root; PostgreSQL runs on a data folder inside the container, saved as pgsql.tar.zst in the data folder"),
        ),
    };
    Ok(Decision {
        mode,
        reason,
        uid,
        gid,
        via_unshare,
    })
}

/// The storage decision: recorded at init and confirmed here; made now if absent.
pub async fn decision(engine: &Engine, s: &Settings, image: &str) -> anyhow::Result<Decision> {
    let mut state = ProjectState::load(s)?;
    let known = state
        .storage
        .as_ref()
        .filter(|_| state.image.as_deref() == Some(image))
        .map(|d| (d.uid, d.gid));
    let (uid, gid) = match (s.uid, s.gid, known) {
        (Some(u), g, _) => (u, g.unwrap_or(u)),
        (None, _, Some(ids)) => ids,
        _ => engine
            .image_user_ids(image, "postgres")
            .await
            .with_context(|| format!("cannot read the postgres user from image `{image}`"))?,
    };
    if let Some(d) = state.storage.clone() {
        let still_valid = d.uid == uid
            && d.gid == gid
            && (s.storage_mode == StorageMode::Auto || s.storage_mode == d.mode);
        if still_valid {
            if state.image.as_deref() != Some(image) {
                state.image = Some(image.to_string());
                state.save(s)?;
            }
            return Ok(d);
        }
    }
    let unshare =
        engine.rootless() && engine.flavour == Flavour::Podman && direct::unshare_available();
    let d = decide(s.storage_mode, uid, gid, unshare)?;
    state.storage = Some(d.clone());
    state.image = Some(image.to_string());
    state.save(s)?;
    Ok(d)
}

/// The storage in effect without asking the engine: the recorded decision, or,
/// before the first one, the mode pgbox.toml asks for.
pub struct InEffect {
    pub mode: StorageMode,
    pub decision: Option<Decision>,
}

/// What `down`, `save` and `status` go by (see [`InEffect`]).
pub fn in_effect(s: &Settings) -> Result<InEffect, Fail> {
    let decision = ProjectState::load(s)?.storage;
    let mode = decision.as_ref().map(|d| d.mode).unwrap_or(s.storage_mode);
    Ok(InEffect { mode, decision })
}

/// A location for messages: the folder or the volume.
pub fn location(s: &Settings, mode: StorageMode) -> String {
    match mode {
        StorageMode::Volume => format!("volume `{}`", s.volume),
        _ => format!("`{}`", s.data_dir.display()),
    }
}

/// Whether the folder or the volume exists.
pub async fn location_exists(
    engine: &Engine,
    s: &Settings,
    mode: StorageMode,
) -> anyhow::Result<bool> {
    Ok(match mode {
        StorageMode::Volume => engine.volume_exists(&s.volume).await?,
        _ => s.data_dir.exists(),
    })
}

/// Make the data location ready: the folder for direct mode, the volume otherwise.
pub async fn prepare(engine: &Engine, s: &Settings, d: &Decision) -> anyhow::Result<()> {
    match d.mode {
        StorageMode::Volume => {
            if !engine.volume_exists(&s.volume).await? {
                let labels = HashMap::from([
                    (LABEL_PROJECT.to_string(), s.project.clone()),
                    (
                        LABEL_CONFIG.to_string(),
                        s.config_path.display().to_string(),
                    ),
                ]);
                engine.create_volume(&s.volume, labels).await?;
            }
        }
        StorageMode::Fallback => {
            // The folder stays the user's; the container only writes the tarball into it.
            if !s.data_dir.exists() {
                crate::fsutil::private_dir(&s.data_dir, 0o700).with_context(|| {
                    format!("cannot create data folder `{}`", s.data_dir.display())
                })?;
            }
        }
        _ if d.via_unshare => direct::prepare_direct_unshare(&s.data_dir, d.uid, d.gid)?,
        _ => {
            direct::prepare_direct(&s.data_dir, d.uid, d.gid)?;
        }
    }
    prepare_wal_archive(s, d)
}

/// With `[backup] pitr`: the WAL archive folder, written by the container's postgres
/// user, so prepared like a direct-mode data folder. PITR is refused with fallback
/// storage (its restore could not rebuild the saved tarball).
fn prepare_wal_archive(s: &Settings, d: &Decision) -> anyhow::Result<()> {
    if !s.pitr {
        return Ok(());
    }
    let dir = s.wal_archive_dir();
    let me = euid();
    if d.mode == StorageMode::Fallback {
        return Err(Fail::new(format!(
            "`pitr = true` needs direct or volume storage, and `{}` uses fallback storage: its data lives in the container and is saved as one tarball, which a point-in-time restore cannot rebuild",
            s.project
        ))
        .hint("use `mode = \"volume\"` under `[storage]` (it works on rootless engines and macOS) or `mode = \"direct\"`; or set `pitr = false` under `[backup]` and rely on scheduled dumps")
        .code(crate::error::EXIT_USAGE)
        .into());
    }
    if d.via_unshare {
        direct::prepare_direct_unshare(&dir, d.uid, d.gid)?;
    } else if me == 0 || me == d.uid {
        direct::prepare_direct(&dir, d.uid, d.gid)?;
    } else {
        return Err(Fail::new(format!(
            "`pitr = true` needs the WAL archive `{}` to belong to the container's postgres uid {}, and uid {me} cannot give it a folder",
            dir.display(),
            d.uid
        ))
        .hint("run pgbox as root (or as that uid), or use rootless Podman, which maps it; or set `pitr = false` under `[backup]` and rely on scheduled dumps")
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_as_root_or_same_uid_is_direct() {
        let me = euid();
        let d = decide(StorageMode::Auto, me, me, false).unwrap();
        assert_eq!(d.mode, StorageMode::Direct);
        if me != 0 {
            assert_eq!(
                decide(StorageMode::Auto, me + 1, me + 1, false)
                    .unwrap()
                    .mode,
                StorageMode::Fallback
            );
        }
        assert_eq!(
            decide(StorageMode::Fallback, 0, 0, true).unwrap().mode,
            StorageMode::Fallback
        );
    }
}
