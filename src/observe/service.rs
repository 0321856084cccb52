//! `pgbox metrics --systemd-unit` and `pgbox generate metrics`: the endpoint as a
//! systemd service, printed or written for the user to install (the same quoting rules as the schedule's units: absolute
//! binary and config paths, the engine address as an argument, since a service
//! has no shell environment).

use std::path::Path;

use crate::schedule::systemd::{exec_arg, exec_program};

pub struct UnitSpec<'a> {
    pub project: &'a str,
    pub pgbox: &'a Path,
    pub config: &'a Path,
    pub engine: Option<&'a str>,
    pub listen: &'a str,
    pub allow_remote: bool,
}

/// `pgbox metrics`' default `--listen` (the exporter's usual port, on loopback).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";

pub fn unit_name(project: &str) -> String {
    format!("pgbox-metrics-{project}.service")
}

pub fn render(u: &UnitSpec<'_>) -> String {
    let name = unit_name(u.project);
    let mut args = format!(
        "{} --config {}",
        exec_program(u.pgbox),
        exec_arg(&u.config.display().to_string())
    );
    if let Some(e) = u.engine {
        args.push_str(&format!(" --engine {}", exec_arg(e)));
    }
    args.push_str(&format!(" metrics --listen {}", exec_arg(u.listen)));
    if u.allow_remote {
        args.push_str(" --allow-remote");
    }
    format!(
        "# {name}: the Prometheus endpoint of pgbox project `{p}`.\n\
         # Install: save as ~/.config/systemd/user/{name} (or /etc/systemd/system/{name}), then\n\
         #   systemctl --user daemon-reload && systemctl --user enable --now {name}\n\
         [Unit]\n\
         Description=pgbox metrics of {p} on {l}\n\
         After=network-online.target docker.service podman.socket\n\
         \n\
         [Service]\n\
         ExecStart={args}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         NoNewPrivileges=true\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        p = u.project,
        l = u.listen
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_metrics_by_absolute_paths() {
        let u = render(&UnitSpec {
            project: "shop",
            pgbox: Path::new("/usr/local/bin/pgbox"),
            config: Path::new("/srv/my shop/pgbox.toml"),
            engine: Some("unix:///run/podman/podman.sock"),
            listen: "127.0.0.1:9187",
            allow_remote: false,
        });
        assert!(u.contains(
            "ExecStart=/usr/local/bin/pgbox --config \"/srv/my shop/pgbox.toml\" --engine unix:///run/podman/podman.sock metrics --listen 127.0.0.1:9187\n"
        ), "{u}");
        assert!(u.contains("[Install]\nWantedBy=default.target\n"));
    }
}
