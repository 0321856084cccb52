//! systemd service and timer units for scheduled backups.
//!
//! `pgbox-backup-<project>.service` is a oneshot that runs `pgbox schedule run`
//! by absolute path with `--config` by absolute path; the timer carries the
//! OnCalendar expression, `Persistent=true` (a missed run happens at the next
//! boot) and an optional randomised delay. An optional failure hook becomes
//! `pgbox-backup-<project>-failure.service`, referenced by `OnFailure=`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Unrepresentable;

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
    /// Extra arguments for `schedule run` (engine, retention flags), unquoted.
    pub extra_args: &'a [String],
}

fn check(s: &str) -> Result<(), Unrepresentable> {
    super::check(s, "a systemd unit")
}

/// One `ExecStart=` argument: double-quoted with `\` and `"` escaped, `%` as `%%`
/// (specifiers) and `$` as `$$` (systemd expands `$VAR` in arguments).
pub fn exec_arg(s: &str) -> String {
    if super::plain_word(s) {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The executable of an `ExecStart=` line. systemd expands no `$` there and refuses
/// a path with quotes or backslashes, so such a path is run through `/usr/bin/env`.
pub fn exec_program(p: &Path) -> String {
    let s = p.display().to_string();
    if s.contains(['"', '\'', '\\']) {
        format!("/usr/bin/env {}", exec_arg(&s))
    } else if super::plain_word(&s) {
        s
    } else {
        format!("\"{}\"", s.replace('%', "%%"))
    }
}

/// An `Environment=` assignment: quoted, `\` and `"` escaped, `%` as `%%` (no `$`
/// expansion happens there).
fn env_assignment(name: &str, value: &str) -> String {
    let v = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("Environment=\"{name}={v}\"\n")
}

pub fn unit_names(project: &str) -> (String, String, String) {
    (
        format!("pgbox-backup-{project}.service"),
        format!("pgbox-backup-{project}.timer"),
        format!("pgbox-backup-{project}-failure.service"),
    )
}

pub fn render(u: &UnitSpec<'_>) -> Result<Units, Unrepresentable> {
    for s in [
        u.pgbox.display().to_string(),
        u.config.display().to_string(),
        u.path_env.to_string(),
        u.docker_host.unwrap_or_default().to_string(),
        u.extra_args.join(" "),
        u.on_failure.unwrap_or_default().to_string(),
    ] {
        check(&s)?;
    }
    let (svc, tmr, fail) = unit_names(u.project);
    let header = format!(
        "# Written by pgbox {} (`pgbox schedule install`); remove with `pgbox schedule remove`.\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut env = env_assignment("PATH", u.path_env);
    if let Some(h) = u.docker_host {
        env.push_str(&env_assignment("DOCKER_HOST", h));
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
        bin = exec_program(u.pgbox),
        cfg = exec_arg(&u.config.display().to_string()),
        extra = u
            .extra_args
            .iter()
            .map(|a| format!(" {}", exec_arg(a)))
            .collect::<String>(),
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
            format!("{header}[Unit]\nDescription=pgbox backup of {p} failed: hook\n\n[Service]\nType=oneshot\n{env}ExecStart=/bin/sh -c {cmd}\n", p = u.project, cmd = exec_arg(cmd)),
        )
    });
    Ok(Units {
        service: (svc, service),
        timer: (tmr, timer),
        failure,
    })
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

/// `systemctl` for this scope (`--user` unless `system`), which must succeed.
pub fn systemctl(system: bool, args: &[&str]) -> anyhow::Result<()> {
    let mut c = std::process::Command::new("systemctl");
    if !system {
        c.arg("--user");
    }
    let out = c.args(args).output().context("cannot run systemctl")?;
    anyhow::ensure!(
        out.status.success(),
        "systemctl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// True when the manager for this scope answers: the system one, or this user's.
/// A host without `systemctl` has no manager to answer; failing to run it for any
/// other reason is an error.
pub fn manager_reachable(system: bool) -> anyhow::Result<bool> {
    if !systemd_running() {
        return Ok(false);
    }
    let mut c = std::process::Command::new("systemctl");
    if !system {
        c.arg("--user");
    }
    match c.arg("is-system-running").env("LC_ALL", "C").output() {
        Ok(o) => Ok(answered(&String::from_utf8_lossy(&o.stdout))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("cannot run systemctl")),
    }
}

/// Whether `systemctl is-system-running` reached the manager, from its stdout.
///
/// Not from its exit code, which is non-zero for a merely `degraded` system too, and
/// not from the text of its error ("Failed to connect to bus"): once connected it
/// prints the manager's state as one word from a documented set, and when it cannot
/// connect it prints nothing on stdout (`offline` when systemd is not PID 1,
/// `unknown` when the manager did not say).
fn answered(stdout: &str) -> bool {
    matches!(
        stdout.trim(),
        "initializing" | "starting" | "running" | "degraded" | "maintenance" | "stopping"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(pgbox: &'a Path, config: &'a Path, args: &'a [String]) -> UnitSpec<'a> {
        UnitSpec {
            project: "p",
            pgbox,
            config,
            on_calendar: "*-*-* 02:00:00",
            docker_host: Some("unix:///run/100%.sock"),
            path_env: "/usr/bin:/bin",
            randomized_delay: None,
            on_failure: Some("echo \"$HOME\" 100% done"),
            system: false,
            extra_args: args,
        }
    }

    #[test]
    fn exec_start_escapes_percent_dollar_quotes_and_backslashes() {
        let args = ["--engine".to_string(), "a$b".to_string()];
        let u = render(&spec(
            Path::new("/opt/my tools%/pgbox"),
            Path::new("/home/me/it's \"100%\" $x\\y/pgbox.toml"),
            &args,
        ))
        .unwrap();
        assert!(
            u.service.1.contains(
                "ExecStart=\"/opt/my tools%%/pgbox\" --config \"/home/me/it's \\\"100%%\\\" $$x\\\\y/pgbox.toml\" schedule run --engine \"a$$b\"\n"
            ),
            "{}",
            u.service.1
        );
        assert!(u
            .service
            .1
            .contains("Environment=\"DOCKER_HOST=unix:///run/100%%.sock\"\n"));
        let failure = u.failure.unwrap().1;
        assert!(
            failure.contains("ExecStart=/bin/sh -c \"echo \\\"$$HOME\\\" 100%% done\"\n"),
            "{failure}"
        );
    }

    #[test]
    fn a_manager_answers_with_its_state_word() {
        for out in ["running\n", "degraded\n", "starting\n"] {
            assert!(answered(out), "{out}");
        }
        for out in ["", "offline\n", "unknown\n"] {
            assert!(!answered(out), "{out}");
        }
    }

    #[test]
    fn a_program_path_systemd_refuses_goes_through_env() {
        let u = render(&spec(
            Path::new("/opt/it's/pgbox"),
            Path::new("/c.toml"),
            &[],
        ))
        .unwrap();
        assert!(
            u.service.1.contains(
                "ExecStart=/usr/bin/env \"/opt/it's/pgbox\" --config /c.toml schedule run\n"
            ),
            "{}",
            u.service.1
        );
        assert!(render(&spec(Path::new("/opt/a\nb"), Path::new("/c"), &[])).is_err());
    }
}
