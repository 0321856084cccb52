//! `schedule remove`: take this project's schedule out of every place an install
//! could have put it (the user's crontab, `/etc/cron.d`, the user's and the
//! system's units) and delete the installed record.
//!
//! A timer is stopped before its units are deleted, and the manager reloaded
//! after, so no loaded timer outlives its files; when that cannot be done the
//! command fails before deleting anything of that scope, or (when the manager
//! cannot be reached from here at all) says so. A crontab that cannot be read is an
//! error: "nothing to remove" might not be true.

use super::installed::Installed;
use super::{cron, systemd};
use crate::config::Settings;
use crate::printer::Printer;

pub fn remove(s: &Settings, dry_run: bool, p: &Printer) -> anyhow::Result<()> {
    let mut did = Vec::new();
    if let Some(tab) = cron::read_crontab_if_installed()? {
        if cron::blocks(&tab)
            .iter()
            .any(|(proj, _)| *proj == s.project)
        {
            did.push("the block in this user's crontab".to_string());
            if !dry_run {
                cron::write_crontab(&cron::with_block(&tab, &s.project, None))?;
            }
        }
    }
    let system_file = cron::system_file(&s.project);
    if system_file.exists() {
        did.push(format!("`{}`", system_file.display()));
        if !dry_run {
            std::fs::remove_file(&system_file)?;
        }
    }
    let (svc, timer, fail) = systemd::unit_names(&s.project);
    for system in [false, true] {
        let dir = systemd::unit_dir(system);
        let units: Vec<_> = [dir.join(&svc), dir.join(&timer), dir.join(&fail)]
            .into_iter()
            .filter(|u| u.exists())
            .collect();
        let manager = !units.is_empty() && !dry_run && systemd::manager_reachable(system)?;
        if manager && dir.join(&timer).exists() {
            systemd::systemctl(system, &["disable", "--now", &timer])?;
        } else if !units.is_empty() && !dry_run && systemd::systemd_running() {
            let scope = if system { "" } else { " --user" };
            p.warn(format!(
                "the systemd{scope} manager cannot be reached from here; if the timer is loaded, stop it with: systemctl{scope} disable --now {timer}"
            ));
        }
        for unit in units {
            did.push(format!("`{}`", unit.display()));
            if !dry_run {
                std::fs::remove_file(&unit)?;
            }
        }
        if manager {
            systemd::systemctl(system, &["daemon-reload"])?;
        }
    }
    if !dry_run {
        Installed::remove(s)?;
    }
    if did.is_empty() {
        p.info(format!("no schedule of `{}` to remove", s.project));
    }
    for d in did {
        p.done(format!(
            "{}removed {d}",
            if dry_run { "would have " } else { "" }
        ));
    }
    Ok(())
}
