//! The recovered copy a point-in-time restore with `--into-new` leaves running
//! beside the project's server (`.pgbox/recovered.json`): its container's name,
//! whether a container of that name is this project's, and its removal, which
//! `restore --discard-new` and `down --purge` share.

use crate::config::{Settings, StorageMode};
use crate::container::spec;
use crate::engine::{Engine, LABEL_CONFIG, LABEL_PROJECT};
use crate::error::Fail;
use crate::printer::Printer;
use crate::state::Recovered;
use crate::storage;

/// The copy's container.
pub fn name(s: &Settings) -> String {
    spec::worker_name(s, "recovered")
}

/// A container of that name is this project's copy (and not, say, the container
/// of a project whose name ends in `-recovered`).
pub fn ours(s: &Settings, labels: &std::collections::HashMap<String, String>) -> bool {
    labels.get(LABEL_PROJECT).map(String::as_str) == Some("-recovered")
        && labels.get(LABEL_CONFIG).map(String::as_str)
            == Some(s.config_path.display().to_string().as_str())
}

/// Remove the copy's container when it is this project's; anything else is left alone.
pub async fn remove_if_ours(engine: &Engine, s: &Settings) {
    if let Ok(Some(c)) = engine.inspect(&name(s)).await {
        if ours(s, &c.labels) {
            let _ = engine.remove_container(&c.name, true).await;
        }
    }
}

/// Its rendered postgresql.conf and pg_hba.conf (`[backup] pitr` off).
pub fn conf_dir(s: &Settings) -> std::path::PathBuf {
    s.state_dir().join("conf-recovered")
}

/// Stop and remove the copy's container, delete its location, its configuration
/// and the record; what is already gone is fine. The caller holds the project lock.
pub async fn remove(engine: &Engine, s: &Settings, r: &Recovered) -> anyhow::Result<()> {
    let mut image = None;
    if let Some(c) = engine.inspect(&r.container).await? {
        if !ours(s, &c.labels) {
            return Err(Fail::new(format!(
                "the container `{}` does not belong to this project's pgbox.toml; it was left alone",
                r.container
            ))
            .hint("remove it yourself if it is yours, then `pgbox restore --discard-new` again")
            .into());
        }
        if c.running {
            engine
                .stop_container(&r.container, spec::stop_timeout(r.mode))
                .await?;
        }
        engine.remove_container(&r.container, true).await?;
        image = Some(c.image);
    }
    let mut at = s.clone();
    match r.mode {
        StorageMode::Volume => at.volume = r.location.clone(),
        _ => at.data_dir = r.location.clone().into(),
    }
    if storage::location_exists(engine, &at, r.mode).await? {
        crate::storage::delete_data(engine, &at, r.mode, image, &Printer::quiet()).await?;
    }
    match std::fs::remove_dir_all(conf_dir(s)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    Recovered::remove(s)
}
