//! systemd service and timer units for scheduled backups.
//!
//! `pgbox-backup-<project>.service` is a oneshot that runs `pgbox schedule run`
//! by absolute path with `--config` by absolute path; the timer carries the
//! OnCalendar expression, `Persistent=true` (a missed run happens at the next
//! boot) and an optional randomised delay. An optional failure hook becomes
//! `pgbox-backup-<project>-failure.service`, referenced by `OnFailure=`.

use std::path::{Path, PathBuf};

pub struct Units {
    pub service: (String, String),
    pub timer: (String, String),
    pub failure: Option<(String, String)>,
}

pub struct UnitSpec<'a> {
    pub project: &'a str,
    pub pgbox: &'a Path,
    pub config: &'a Path,
    pub on_calendar: &'a str,
    pub docker_host: Option<&'a str>,
    pub path_env: &'a str,
    pub randomized_delay: Option<u64>,
    pub on_failure: Option<&'a str>,
    pub system: bool,
    /// Extra arguments for `schedule run` (engine, retention flags), with a leading space.
    pub extra_args: &'a str,
}

fn quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.contains(' ') || s.contains('"') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

pub fn unit_names(project: &str) -> (String, String, String) {
    (
        format!("pgbox-backup-{project}.service"),
        format!("pgbox-backup-{project}.timer"),
        format!("pgbox-backup-{project}-failure.service"),
    )
}

pub fn render(u: &UnitSpec<'_>) -> Units {
    let (svc, tmr, fail) = unit_names(u.project);
    let header = format!(
        "# Written by pgbox {} (`pgbox schedule install`); remove with `pgbox schedule remove`.\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut env = format!("Environment=\"PATH={}\"\n", u.path_env);
    if let Some(h) = u.docker_host {
        env.push_str(&format!("Environment=\"DOCKER_HOST={h}\"\n"));
    }
    let after = if u.system {
        "After=docker.service podman.socket network-online.target\nWants=network-online.target\n"
    } else {
        ""
    };
    let on_failure = if u.on_failure.is_some() {
        format!("OnFailure={fail}\n")
    } else {
        String::new()
    };
    let service = format!(
        "{header}[Unit]\nDescription=pgbox scheduled backup of {p}\n{after}{on_failure}\n[Service]\nType=oneshot\n{env}ExecStart={bin} --config {cfg} schedule run{extra}\n",
        p = u.project,
        bin = quote(u.pgbox),
        cfg = quote(u.config),
        extra = u.extra_args,
    );
    let delay = u
        .randomized_delay
        .map(|s| format!("RandomizedDelaySec={s}\n"))
        .unwrap_or_default();
    let timer = format!(
        "{header}[Unit]\nDescription=pgbox scheduled backup of {p}\n\n[Timer]\nOnCalendar={cal}\nPersistent=true\n{delay}Unit={svc}\n\n[Install]\nWantedBy=timers.target\n",
        p = u.project,
        cal = u.on_calendar,
    );
    let failure = u.on_failure.map(|cmd| {
        (
            fail.clone(),
            format!("{header}[Unit]\nDescription=pgbox backup of {p} failed: hook\n\n[Service]\nType=oneshot\n{env}ExecStart=/bin/sh -c {cmd}\n", p = u.project, cmd = shell_quote(cmd)),
        )
    });
    Units {
        service: (svc, service),
        timer: (tmr, timer),
        failure,
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Where units go: the user's or the system's folder.
pub fn unit_dir(system: bool) -> PathBuf {
    if system {
        PathBuf::from("/etc/systemd/system")
    } else {
        directories::BaseDirs::new()
            .map(|b| b.config_dir().join("systemd/user"))
            .unwrap_or_else(|| PathBuf::from(".config/systemd/user"))
    }
}

/// True when systemd is PID 1 (so `systemctl` can manage timers).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// True when the manager for this scope answers: the system one, or this user's.
pub fn manager_reachable(system: bool) -> bool {
    if !systemd_running() {
        return false;
    }
    let mut c = std::process::Command::new("systemctl");
    if !system {
        c.arg("--user");
    }
    c.arg("is-system-running")
        .output()
        .map(|o| {
            !String::from_utf8_lossy(&o.stdout).trim().is_empty()
                && !String::from_utf8_lossy(&o.stderr).contains("Failed to connect")
        })
        .unwrap_or(false)
}
