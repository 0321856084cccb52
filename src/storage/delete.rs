//! Deleting a project's data: the volume, or a direct-mode folder's files through
//! the engine (they belong to the container's UID) and then the folder; never
//! through a symbolic link. Used by `down --purge`, an upgrade dropping one side,
//! a point-in-time restore dropping its scratch cluster, and the removal of a
//! recovered copy.

use crate::config::{Settings, StorageMode};
use crate::engine::{ContainerSpec, Engine, MountSource, MountSpec};
use crate::error::Fail;
use crate::printer::Printer;

/// Delete the data (`--purge`, and `pgbox upgrade` dropping one side): the volume, or the folder's files through the engine (they
/// belong to the container's UID) and then the folder. `image` runs the deletion.
pub async fn delete_data(
    engine: &Engine,
    s: &Settings,
    mode: StorageMode,
    image: Option<String>,
    p: &Printer,
) -> anyhow::Result<()> {
    let name = s.container_name();
    match mode {
        StorageMode::Volume if engine.volume_exists(&s.volume).await? => {
            engine.remove_volume(&s.volume).await?;
        }
        StorageMode::Volume => {}
        _ if s.data_dir.exists() => {
            refuse_symlink(&s.data_dir)?;
            let image = image.unwrap_or_else(|| s.base_image.clone());
            let mut spec = ContainerSpec::oneshot(format!("{name}-purge"), image);
            let find = ["find", "/target", "-mindepth", "1", "-delete"];
            spec.entrypoint = Some(find.map(String::from).to_vec());
            spec.user = Some("0:0".into());
            spec.mounts = vec![MountSpec {
                source: MountSource::Bind(s.data_dir.clone()),
                target: "/target".into(),
                read_only: false,
            }];
            let (code, output) = engine.run_to_completion(&spec).await?;
            if code != 0 {
                return Err(Fail::new(format!(
                    "deleting the files in `{}` failed (exit {code}): {}",
                    s.data_dir.display(),
                    output.join("\n")
                ))
                .into());
            }
            match std::fs::remove_dir(&s.data_dir) {
                Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => p.warn(format!(
                    "`{}` is a mount point: its files are deleted, the empty folder stays (unmount it to remove it)",
                    s.data_dir.display()
                )),
                r => r.map_err(|e| {
                    Fail::new(format!("cannot remove the emptied data folder `{}`: {e}", s.data_dir.display()))
                        .hint("its files are deleted; remove the folder yourself")
                })?,
            }
        }
        _ => {}
    }
    Ok(())
}

/// `--purge` does not delete through a symbolic link: the files live elsewhere, and a
/// link made by mistake could point at anything.
fn refuse_symlink(dir: &std::path::Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
        let target = std::fs::read_link(dir)?;
        return Err(Fail::new(format!(
            "the data folder `{}` is a symbolic link to `{}`; `--purge` does not delete through links",
            dir.display(),
            target.display()
        ))
        .hint(format!(
            "check that `{}` holds only this project's data, delete it yourself, then `rm {}`",
            target.display(),
            dir.display()
        ))
        .into());
    }
    Ok(())
}
